//! The registry: the site, the store and the decision snapshot, changed together.
//!
//! Every change is validated against the site and the current data, committed to the store with
//! its audit entry (atomic, durable), and only then applied to the snapshot, so the snapshot
//! always equals what a restart would rebuild from the store. Decisions are appended to the
//! audit log, durably, before they are returned to whoever tells the door.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::access::{decide, Decision, Snapshot, Tap};
use crate::domain::{
    Booking, BookingError, BookingKey, BookingStatus, Credential, CredentialRecord, Member,
    MemberId, MemberStatus, PlanId, RoomId, Site, SiteMode,
};
use crate::store::{Actor, AuditEntry, AuditEvent, Change, Store, StoreError};

/// Why a change was refused. Nothing is written when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A member with this id exists.
    #[error("member {0} already exists")]
    MemberExists(MemberId),
    /// No member with this id.
    #[error("there is no member {0}")]
    UnknownMember(MemberId),
    /// Another member has this e-mail address.
    #[error("member {0} already has the e-mail address {1}")]
    EmailTaken(MemberId, String),
    /// The plan is not in the site file.
    #[error("there is no plan {0} in the site file")]
    UnknownPlan(PlanId),
    /// The room is not in the site file.
    #[error("there is no room {0} in the site file")]
    UnknownRoom(RoomId),
    /// The credential is held by someone.
    #[error("{0} is already issued to member {1}; revoke it first")]
    CredentialTaken(Credential, MemberId),
    /// The credential was never issued.
    #[error("{0} was never issued")]
    UnknownCredential(Credential),
    /// The credential is already revoked.
    #[error("{0} is already revoked")]
    AlreadyRevoked(Credential),
    /// The booking is inconsistent.
    #[error("invalid booking: {0}")]
    Booking(#[from] BookingError),
    /// No booking with this key.
    #[error("there is no booking {0}")]
    UnknownBooking(BookingKey),
    /// A device with this id exists.
    #[error("device {0} already exists")]
    DeviceExists(crate::domain::DeviceId),
    /// No device with this id.
    #[error("there is no device {0}")]
    UnknownDevice(crate::domain::DeviceId),
    /// A device's binding does not fit its kind or the site.
    #[error("device {0}: {1}")]
    DeviceBinding(crate::domain::DeviceId, String),
    /// A validity window that ends before it starts.
    #[error("a membership cannot end before it starts")]
    Validity,
}

/// Days after its end a booking is still held in memory (for the log's "booked, but not now"
/// and late grace); older ones stay in the store only.
pub const BOOKINGS_KEPT_DAYS: i64 = 2;

/// The gateway's state.
pub struct Registry {
    store: Arc<dyn Store>,
    snapshot: Snapshot,
}

/// Names for an audit entry: the first fifty, then how many more.
fn bounded_list(mut names: Vec<String>) -> String {
    if names.len() > 50 {
        let more = names.len() - 50;
        names.truncate(50);
        names.push(format!("and {more} more"));
    }
    names.join(", ")
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// New bookings.
    pub added: usize,
    /// Bookings that changed.
    pub updated: usize,
    /// Bookings identical to what was stored.
    pub unchanged: usize,
}

impl Registry {
    /// Opens the gateway on a store: brings the stored plans and leases in line with the site
    /// file (each difference audited) and builds the decision snapshot from the store.
    pub fn open(
        site: Arc<Site>,
        store: Arc<dyn Store>,
        now: DateTime<Utc>,
    ) -> Result<Self, RegistryError> {
        Self::open_as_of(site, store, now, now)
    }

    /// Opens the gateway to answer for the moment `at` (a question about the past, such as
    /// "why was Olena refused last Thursday?"): like [`Registry::open`], but the snapshot also
    /// holds every stored booking that can bear on `at`, archived ones included, so that
    /// `decide` answers as the door would have with today's members, cards and plans. What
    /// the door actually did then is the audit log's record, not this.
    pub fn open_as_of(
        site: Arc<Site>,
        store: Arc<dyn Store>,
        now: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Self, RegistryError> {
        let mut changes = Vec::new();
        let mut said = Vec::new();
        let stored_plans = store.plans()?;
        for p in &site.plans {
            if !stored_plans.contains(p) {
                changes.push(Change::Plan(p.clone()));
                said.push(format!("plan {} set from the site file", p.id));
            }
        }
        for p in stored_plans
            .iter()
            .filter(|p| !site.plans.iter().any(|s| s.id == p.id))
        {
            changes.push(Change::RemovePlan(p.id));
            said.push(format!(
                "plan {} removed (no longer in the site file)",
                p.id
            ));
        }
        let stored_leases = store.leases()?;
        for l in &site.leases {
            if !stored_leases.contains(l) {
                changes.push(Change::Lease(l.clone()));
                said.push(format!("lease {} set from the site file", l.id));
            }
        }
        for l in stored_leases
            .iter()
            .filter(|l| !site.leases.iter().any(|s| s.id == l.id))
        {
            changes.push(Change::RemoveLease(l.id));
            said.push(format!(
                "lease {} removed (no longer in the site file)",
                l.id
            ));
        }
        if !changes.is_empty() {
            store.commit(
                &changes,
                &AuditEntry::change(now, Actor::System, said.join("; ")),
            )?;
        }
        // Bookings that ended more than BOOKINGS_KEPT_DAYS before the moment asked about open
        // nothing then (the hourly prune lets them go from memory too): they stay in the store,
        // out of the snapshot. A moment before the archive's edge reads the archive too.
        let ended = (at.min(now) - chrono::Duration::days(BOOKINGS_KEPT_DAYS)).timestamp();
        let reaches = |b: &Booking| crate::occupancy::history::booked_span(&site, b).1 >= ended;
        let bookings = if at >= now {
            store.live_bookings_where(&mut |b| reaches(b))?
        } else {
            let mut all = store.bookings()?;
            all.retain(|b| reaches(b));
            all
        };
        let mut snapshot = Snapshot::build(
            site,
            store.members()?,
            store.credentials()?,
            store.plans()?,
            store.leases()?,
            bookings,
        );
        snapshot.set_mode(store.mode()?.unwrap_or_default());
        for door in store.locked_doors()? {
            snapshot.set_door_locked(door, true);
        }
        for w in snapshot.warnings() {
            tracing::warn!(warning = %w, "stored data the site cannot honour");
        }
        Ok(Registry { store, snapshot })
    }

    /// The snapshot decisions are made on.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The store, shared.
    pub fn store_arc(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    fn check_member(&self, m: &Member) -> Result<(), RegistryError> {
        if let Some(p) = m.plan {
            if self.snapshot.plan_def(p).is_none() {
                return Err(RegistryError::UnknownPlan(p));
            }
        }
        if let (Some(a), Some(b)) = (m.valid_from, m.valid_until) {
            if b <= a {
                return Err(RegistryError::Validity);
            }
        }
        if let Some(e) = &m.email {
            if let Some(other) = self.snapshot.member_by_email(e).filter(|o| *o != m.id) {
                return Err(RegistryError::EmailTaken(other, e.to_string()));
            }
        }
        Ok(())
    }

    fn commit(&mut self, change: Change, audit: AuditEntry) -> Result<(), RegistryError> {
        self.store.commit(std::slice::from_ref(&change), &audit)?;
        match change {
            Change::Member(m) => self.snapshot.upsert_member(m),
            Change::Credential(c) => self.snapshot.upsert_credential(c),
            Change::Booking(b) => self.snapshot.upsert_booking(b),
            Change::Plan(_) | Change::RemovePlan(_) => self.snapshot.set_plans(self.store.plans()?),
            Change::Lease(_) | Change::RemoveLease(_) => {
                self.snapshot.set_leases(self.store.leases()?)
            }
            Change::Mode(m) => self.snapshot.set_mode(m),
            Change::DoorLockdown { door, locked } => self.snapshot.set_door_locked(door, locked),
            Change::Device(_)
            | Change::Token(_)
            | Change::Staff(_)
            | Change::RemoveStaff(_)
            | Change::RemoveMember(_)
            | Change::RemoveCredential(_)
            | Change::RemoveDevice(_) => {}
        }
        Ok(())
    }

    /// Adds a new member.
    pub fn add_member(
        &mut self,
        m: Member,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        if self.store.member(m.id)?.is_some() {
            return Err(RegistryError::MemberExists(m.id));
        }
        self.check_member(&m)?;
        let audit = AuditEntry::change(now, actor, format!("member {} added", m.id));
        self.commit(Change::Member(m), audit)
    }

    /// Replaces a known member's details; the audit entry names the fields that changed.
    pub fn update_member(
        &mut self,
        m: Member,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        let old = self
            .store
            .member(m.id)?
            .ok_or(RegistryError::UnknownMember(m.id))?;
        self.check_member(&m)?;
        let mut changed = Vec::new();
        if old.name != m.name {
            changed.push("name");
        }
        if old.email != m.email {
            changed.push("email");
        }
        if old.status != m.status {
            changed.push("status");
        }
        if (old.valid_from, old.valid_until) != (m.valid_from, m.valid_until) {
            changed.push("validity");
        }
        if old.roles != m.roles {
            changed.push("roles");
        }
        if old.plan != m.plan {
            changed.push("plan");
        }
        if old.organisation != m.organisation {
            changed.push("organisation");
        }
        if old.certifications != m.certifications {
            changed.push("certifications");
        }
        if changed.is_empty() {
            return Ok(());
        }
        let summary = format!("member {} changed: {}", m.id, changed.join(", "));
        self.commit(Change::Member(m), AuditEntry::change(now, actor, summary))
    }

    /// Erases a member's personal data (the running gateway then [`Registry::reload`]s its
    /// snapshot): the log keeps every entry, in order, with the member's id replaced by a
    /// pseudonym and their cards removed; their record and cards are deleted and they leave
    /// the bookings they were in. The pseudonym is the same on every run (an HMAC of the id
    /// with a secret kept in the store), so an erasure cut short finishes when run again.
    /// Returns the pseudonym and the log entries rewritten.
    pub fn erase_member(
        &mut self,
        id: MemberId,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(MemberId, usize), RegistryError> {
        if self.store.member(id)?.is_none() {
            return Err(RegistryError::UnknownMember(id));
        }
        const SECRET: &str = "erase/secret";
        let secret = match self.store.state(SECRET)? {
            Some(s) => s,
            None => {
                let mut s = vec![0u8; 32];
                getrandom::fill(&mut s).map_err(|e| {
                    RegistryError::Store(crate::store::StoreError::Encode(e.to_string()))
                })?;
                self.store.put_state(SECRET, &s)?;
                self.store.flush()?;
                s
            }
        };
        let mac = {
            use hmac::Mac as _;
            let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret).map_err(|e| {
                RegistryError::Store(crate::store::StoreError::Encode(e.to_string()))
            })?;
            m.update(id.to_string().as_bytes());
            m.finalize().into_bytes()
        };
        let hex: String = mac.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let pseudonym = MemberId::parse(&format!("erased-{hex}"))
            .map_err(|e| RegistryError::Store(crate::store::StoreError::Encode(e.to_string())))?;
        let cards = self
            .store
            .credentials()?
            .into_iter()
            .filter(|r| r.member == id)
            .filter_map(|r| match r.credential {
                Credential::Card(c) => Some(c),
                Credential::Pin(_) => None,
            })
            .collect();
        let erasure = crate::store::Erasure {
            member: id,
            pseudonym,
            cards,
        };
        let audit = AuditEntry::change(
            now,
            actor,
            format!("member {pseudonym} erased: personal data removed, log entries pseudonymised"),
        );
        let n = self.store.erase_member(&erasure, &audit)?;
        Ok((pseudonym, n))
    }

    /// Builds the snapshot again from the store, as a start does (after an erasure in the
    /// running gateway). Anti-passback's memory of who is in or out starts afresh.
    pub fn reload(&mut self, now: DateTime<Utc>) -> Result<(), RegistryError> {
        *self = Registry::open(self.snapshot.site_arc(), self.store.clone(), now)?;
        Ok(())
    }

    /// Suspends a member (rights kept, doors shut) or lifts the suspension (`reason = None`).
    pub fn set_suspended(
        &mut self,
        id: MemberId,
        reason: Option<String>,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        let mut m = self
            .store
            .member(id)?
            .ok_or(RegistryError::UnknownMember(id))?;
        let summary = match &reason {
            Some(r) => format!("member {id} suspended: {r}"),
            None => format!("member {id} suspension lifted"),
        };
        m.status = match reason {
            Some(reason) => MemberStatus::Suspended { reason },
            None => MemberStatus::Active,
        };
        self.commit(Change::Member(m), AuditEntry::change(now, actor, summary))
    }

    /// Issues a credential to a member.
    pub fn add_credential(
        &mut self,
        member: MemberId,
        credential: Credential,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        if self.store.member(member)?.is_none() {
            return Err(RegistryError::UnknownMember(member));
        }
        if let Some(old) = self.store.credential(&credential)? {
            if old.revoked_at.is_none() {
                return Err(RegistryError::CredentialTaken(credential, old.member));
            }
        }
        let rec = CredentialRecord {
            credential,
            member,
            issued_at: now,
            revoked_at: None,
        };
        let audit = AuditEntry::change(now, actor, format!("{credential} issued to {member}"));
        self.commit(Change::Credential(rec), audit)
    }

    /// Revokes a credential; it stays known, so taps with it are reported as revoked.
    pub fn revoke_credential(
        &mut self,
        credential: Credential,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        let mut rec = self
            .store
            .credential(&credential)?
            .ok_or(RegistryError::UnknownCredential(credential))?;
        if rec.revoked_at.is_some() {
            return Err(RegistryError::AlreadyRevoked(credential));
        }
        rec.revoked_at = Some(now);
        let audit = AuditEntry::change(
            now,
            actor,
            format!("{credential} of {} revoked", rec.member),
        );
        self.commit(Change::Credential(rec), audit)
    }

    /// Adds or replaces a booking (idempotent by source and external id).
    pub fn upsert_booking(
        &mut self,
        b: Booking,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        b.validate()?;
        if self.snapshot.site().room(b.room).is_none() {
            return Err(RegistryError::UnknownRoom(b.room));
        }
        for m in b.people() {
            if self.store.member(m)?.is_none() {
                return Err(RegistryError::UnknownMember(m));
            }
        }
        let verb = if self.store.booking(&b.key)?.is_some() {
            "updated"
        } else {
            "added"
        };
        let audit = AuditEntry::change(
            now,
            actor,
            format!("booking {} {verb} ({} in {})", b.key, b.title, b.room),
        );
        self.commit(Change::Booking(b), audit)
    }

    /// Writes many bookings (checked already: an import) in one transaction with one audit
    /// entry; bookings identical to what is stored are skipped, so importing the same file
    /// twice changes nothing.
    pub fn import_bookings(
        &mut self,
        bookings: Vec<Booking>,
        what: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<ImportCounts, RegistryError> {
        let mut counts = ImportCounts::default();
        let mut changes = Vec::new();
        for b in bookings {
            b.validate()?;
            if self.snapshot.site().room(b.room).is_none() {
                return Err(RegistryError::UnknownRoom(b.room));
            }
            match self.store.booking(&b.key)? {
                Some(old) if old == b => counts.unchanged += 1,
                Some(_) => {
                    counts.updated += 1;
                    changes.push(Change::Booking(b));
                }
                None => {
                    counts.added += 1;
                    changes.push(Change::Booking(b));
                }
            }
        }
        if changes.is_empty() {
            return Ok(counts);
        }
        // The entry names every booking written (up to a bound), with what became of it.
        let names: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Booking(b) => Some(format!(
                    "{} {}",
                    b.key,
                    if b.status == BookingStatus::Cancelled {
                        "cancelled"
                    } else {
                        "confirmed"
                    }
                )),
                _ => None,
            })
            .collect();
        let audit = AuditEntry::change(
            now,
            actor,
            format!(
                "{what}: {} bookings added, {} updated: {}",
                counts.added,
                counts.updated,
                bounded_list(names)
            ),
        );
        self.store.commit(&changes, &audit)?;
        for c in changes {
            if let Change::Booking(b) = c {
                self.snapshot.upsert_booking(b);
            }
        }
        Ok(counts)
    }

    /// Writes many members and their cards (checked already: an import) in one transaction
    /// with one audit entry; members identical to what is stored and cards already held are
    /// skipped, so importing the same file twice changes nothing. Returns (members added,
    /// members updated, members unchanged, cards issued).
    pub fn import_members(
        &mut self,
        rows: Vec<crate::import::MemberRow>,
        what: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(ImportCounts, usize), RegistryError> {
        let mut counts = ImportCounts::default();
        let mut cards = 0;
        let mut changes = Vec::new();
        for row in rows {
            let m = row.member;
            self.check_member(&m)?;
            match self.store.member(m.id)? {
                Some(old) if old == m => counts.unchanged += 1,
                Some(_) => {
                    counts.updated += 1;
                    changes.push(Change::Member(m.clone()));
                }
                None => {
                    counts.added += 1;
                    changes.push(Change::Member(m.clone()));
                }
            }
            for c in row.cards {
                let credential = Credential::Card(c);
                match self.store.credential(&credential)? {
                    Some(old) if old.revoked_at.is_none() && old.member == m.id => continue,
                    Some(old) if old.revoked_at.is_none() => {
                        return Err(RegistryError::CredentialTaken(credential, old.member))
                    }
                    _ => {}
                }
                cards += 1;
                changes.push(Change::Credential(CredentialRecord {
                    credential,
                    member: m.id,
                    issued_at: now,
                    revoked_at: None,
                }));
            }
        }
        if changes.is_empty() {
            return Ok((counts, 0));
        }
        let names: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Member(m) => format!(
                    "member {}{}",
                    m.id,
                    if m.roles.is_empty() {
                        String::new()
                    } else {
                        format!(" (roles {:?})", m.roles)
                    }
                ),
                Change::Credential(r) => format!("{} to {}", r.credential, r.member),
                _ => String::new(),
            })
            .collect();
        let audit = AuditEntry::change(
            now,
            actor,
            format!(
                "{what}: {} members added, {} updated, {cards} cards issued: {}",
                counts.added,
                counts.updated,
                bounded_list(names)
            ),
        );
        self.store.commit(&changes, &audit)?;
        for c in changes {
            match c {
                Change::Member(m) => self.snapshot.upsert_member(m),
                Change::Credential(c) => self.snapshot.upsert_credential(c),
                _ => {}
            }
        }
        Ok((counts, cards))
    }

    /// Applies a token request (from the command line, directly or through the spool): a new
    /// token unless a live one has its name or a calendar feed writes as that source; a
    /// revocation of the live token of that name.
    pub fn token_request(
        &mut self,
        req: crate::spool::Request,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let live = |tokens: &[crate::domain::ApiToken], name: crate::domain::SourceId| {
            tokens
                .iter()
                .find(|t| t.name == name && t.revoked_at.is_none())
                .cloned()
        };
        let tokens = self.store.tokens().map_err(|e| e.to_string())?;
        match req {
            crate::spool::Request::AddToken(t) => {
                if self.snapshot.site().feeds.iter().any(|f| f.id == t.name) {
                    return Err(format!(
                        "{} is a calendar feed's source: a token cannot write as it",
                        t.name
                    ));
                }
                if live(&tokens, t.name).is_some() {
                    return Err(format!(
                        "token {} exists; revoke it first to make a new one",
                        t.name
                    ));
                }
                self.put_token(t, actor, now).map_err(|e| e.to_string())
            }
            crate::spool::Request::RevokeToken(name) => {
                let mut t = live(&tokens, name).ok_or(format!("there is no live token {name}"))?;
                t.revoked_at = Some(now);
                self.put_token(t, actor, now).map_err(|e| e.to_string())
            }
            crate::spool::Request::Backup => {
                Err("a backup is written by the service, not as a token request".into())
            }
        }
    }

    /// Stores an API token (new, or revoked), audited.
    pub fn put_token(
        &mut self,
        t: crate::domain::ApiToken,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        let summary = match t.revoked_at {
            Some(_) => format!("API token {} revoked", t.name),
            None => format!("API token {} made with scopes {:?}", t.name, t.scopes),
        };
        self.commit(Change::Token(t), AuditEntry::change(now, actor, summary))
    }

    /// Cancels a booking: it stays stored, marked cancelled, and opens nothing from now on.
    pub fn cancel_booking(
        &mut self,
        key: &BookingKey,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        let mut b = self
            .store
            .booking(key)?
            .ok_or_else(|| RegistryError::UnknownBooking(key.clone()))?;
        b.status = BookingStatus::Cancelled;
        let audit = AuditEntry::change(now, actor, format!("booking {key} cancelled"));
        self.commit(Change::Booking(b), audit)
    }

    /// Lets go of bookings whose window ended before `before` (they stay in the store).
    pub fn prune_bookings(&mut self, before: DateTime<Utc>) -> usize {
        self.snapshot.prune_bookings(before)
    }

    /// Sets a room's live head count (by index), which capacity limits use.
    pub fn set_occupancy(&mut self, room: usize, count: u32) {
        self.snapshot.set_occupancy(room, count);
    }

    /// Registers a device (door node, sensor node, alert feed) with its key.
    pub fn add_device(
        &mut self,
        d: crate::domain::Device,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        use crate::domain::DeviceKind;
        if self.store.devices()?.iter().any(|x| x.id == d.id) {
            return Err(RegistryError::DeviceExists(d.id));
        }
        let site = self.snapshot.site();
        let bad = |why: &str| Err(RegistryError::DeviceBinding(d.id, why.to_string()));
        // Ids the topics and the broker's accounts already use: a device called `gateway`
        // would be let write the gateway's own status, one named after a bound off-the-shelf
        // device or the Zigbee2MQTT bridge would share its broker account.
        if d.id == crate::ha::gateway_device()
            || d.id.as_str() == crate::mosquitto::Z2M_BRIDGE_USER
            || site.bindings.iter().any(|b| b.id == d.id)
        {
            return bad("the id is reserved (the gateway's own, the Zigbee2MQTT bridge's, or a [[bindings]] device's); choose another");
        }
        match (d.kind, d.door, d.room) {
            (DeviceKind::Door, Some(door), None) => {
                if site.door(door).is_none() {
                    return bad(&format!("there is no door {door} in the site file"));
                }
                if let Some(other) = self
                    .store
                    .devices()?
                    .into_iter()
                    .find(|x| x.kind == DeviceKind::Door && x.door == Some(door))
                {
                    return bad(&format!(
                        "door {door} already has the door node {}",
                        other.id
                    ));
                }
            }
            (DeviceKind::Door, _, _) => return bad("a door node is bound to one door (--door)"),
            (DeviceKind::Sensor, None, Some(room)) => {
                if site.room(room).is_none() {
                    return bad(&format!("there is no room {room} in the site file"));
                }
            }
            (DeviceKind::Sensor, _, _) => {
                return bad("a sensor node is bound to one room (--room)")
            }
            (DeviceKind::AlertFeed, None, None) => {}
            (DeviceKind::AlertFeed, _, _) => {
                return bad("an alert feed is bound to no door or room")
            }
        }
        let audit = AuditEntry::change(
            now,
            actor,
            format!("device {} ({:?}) registered", d.id, d.kind),
        );
        self.commit(Change::Device(d), audit)
    }

    /// Gives a device a new key. Its counters start again: messages signed with the old key no
    /// longer verify, so none can be replayed, and the log's taps from before (the old key's)
    /// no longer count towards the counter the node must exceed (`added_at` marks the key).
    pub fn rekey_device(
        &mut self,
        id: crate::domain::DeviceId,
        key: crate::domain::DeviceKey,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        let mut d = self
            .store
            .devices()?
            .into_iter()
            .find(|x| x.id == id)
            .ok_or(RegistryError::UnknownDevice(id))?;
        d.key = key;
        d.added_at = now;
        let audit = AuditEntry::change(now, actor, format!("device {id} given a new key"));
        self.commit(Change::Device(d), audit)?;
        self.restart_counters(id, now)
    }

    /// Removes a device from the registry (its broker account goes with the next
    /// `mosquitto-config`). Registered again later, it starts with fresh counters.
    pub fn remove_device(
        &mut self,
        id: crate::domain::DeviceId,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        if !self.store.devices()?.iter().any(|x| x.id == id) {
            return Err(RegistryError::UnknownDevice(id));
        }
        let audit = AuditEntry::change(now, actor, format!("device {id} removed"));
        self.commit(Change::RemoveDevice(id), audit)?;
        self.restart_counters(id, now)
    }

    /// A device's counters from the node start again (a new key); the gateway's own counter
    /// towards it is kept (it only grows).
    fn restart_counters(
        &mut self,
        id: crate::domain::DeviceId,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        let tx = self
            .store
            .marks()?
            .into_iter()
            .find(|m| m.device == Some(id))
            .map_or(0, |m| m.tx);
        self.store.put_marks(&[crate::domain::DeviceMark {
            device: Some(id),
            rx: 0,
            tx,
            offline: 0,
            at: Some(now),
        }])?;
        self.store.flush()?;
        Ok(())
    }

    /// Switches the site mode, audited; it survives a restart.
    pub fn set_mode(
        &mut self,
        mode: SiteMode,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        let audit = AuditEntry {
            at: now,
            actor,
            event: AuditEvent::Mode { mode },
        };
        self.commit(Change::Mode(mode), audit)
    }

    /// Locks one door down (staff and security only) or releases it from that, audited.
    pub fn set_door_locked(
        &mut self,
        door: crate::domain::DoorId,
        locked: bool,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        let summary = if locked {
            format!("door {door} locked down (staff and security only)")
        } else {
            format!("door {door} released from its lockdown")
        };
        self.commit(
            Change::DoorLockdown { door, locked },
            AuditEntry::change(now, actor, summary),
        )
    }

    /// Writes decisions taken on this snapshot (with the node's tap counter), and other entries, to the audit log in one
    /// durable append, then lets the snapshot learn from them (anti-passback).
    pub fn record(
        &mut self,
        decisions: &[(Decision, Option<u64>)],
        mut extra: Vec<AuditEntry>,
    ) -> Result<(), RegistryError> {
        let mut entries: Vec<AuditEntry> = decisions
            .iter()
            .map(|(d, tap)| {
                let mut e = AuditEntry::decision(d);
                if let AuditEvent::Decision { tap: t, .. } = &mut e.event {
                    *t = *tap;
                }
                e
            })
            .collect();
        entries.append(&mut extra);
        self.store.append_audit(&entries)?;
        for (d, _) in decisions {
            self.snapshot.record(d);
        }
        Ok(())
    }

    /// Decides a tap, writes the decision to the audit log (durable), then returns it.
    pub fn decide(&mut self, tap: &Tap, now: DateTime<Utc>) -> Result<Decision, RegistryError> {
        let d = decide(&self.snapshot, tap, now);
        self.store.append_audit(&[AuditEntry::decision(&d)])?;
        self.snapshot.record(&d);
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::access::fixture::test_site;
    use crate::domain::{BookingKind, CardId, DoorId, ExternalId, Reason, SourceId, Window};
    use crate::store::{MemoryStore, SledStore};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap()
    }

    fn cli() -> Actor {
        Actor::Cli("test".into())
    }

    fn card(n: u8) -> Credential {
        Credential::Card(CardId::from_bytes(&[0xC0, n]).unwrap())
    }

    fn key(ext: &str) -> BookingKey {
        BookingKey {
            source: SourceId::parse("cli").unwrap(),
            external_id: ExternalId::parse(ext).unwrap(),
        }
    }

    fn member(id: &str, f: impl FnOnce(&mut Member)) -> Member {
        let mut m = Member::new(MemberId::parse(id).unwrap(), id);
        f(&mut m);
        m
    }

    /// A small story: members, cards, bookings, a suspension, a revocation, a cancellation.
    fn populate(g: &mut Registry) {
        let now = t0();
        g.add_member(
            member("olena", |m| m.plan = Some(PlanId::parse("day").unwrap())),
            cli(),
            now,
        )
        .unwrap();
        g.add_member(member("taras", |_| {}), cli(), now).unwrap();
        g.add_member(
            member("iryna", |m| m.plan = Some(PlanId::parse("day").unwrap())),
            cli(),
            now,
        )
        .unwrap();
        for (i, m) in ["olena", "taras", "iryna"].iter().enumerate() {
            g.add_credential(MemberId::parse(m).unwrap(), card(i as u8), cli(), now)
                .unwrap();
        }
        let booking = |ext: &str, room: &str, h: i64| Booking {
            key: key(ext),
            room: RoomId::parse(room).unwrap(),
            kind: BookingKind::Meeting,
            title: ext.into(),
            organiser: Some(MemberId::parse("taras").unwrap()),
            attendees: vec![],
            window: Window::Timed {
                start: t0() + Duration::hours(h),
                end: t0() + Duration::hours(h + 2),
            },
            status: BookingStatus::Confirmed,
        };
        g.upsert_booking(booking("b1", "meeting-1", 2), cli(), now)
            .unwrap();
        g.upsert_booking(booking("b2", "hall", 4), cli(), now)
            .unwrap();
        g.upsert_booking(booking("b2", "hall", 5), cli(), now)
            .unwrap();
        g.cancel_booking(&key("b1"), cli(), now).unwrap();
        g.set_suspended(
            MemberId::parse("iryna").unwrap(),
            Some("unpaid".into()),
            cli(),
            now,
        )
        .unwrap();
        g.revoke_credential(card(0), cli(), now).unwrap();
        g.add_credential(MemberId::parse("olena").unwrap(), card(9), cli(), now)
            .unwrap();
    }

    fn decisions(g: &Registry) -> Vec<Reason> {
        let mut out = Vec::new();
        for c in [card(0), card(1), card(2), card(9)] {
            for door in ["d-main", "d-meeting-1", "d-hall", "d-cowork-in"] {
                for h in 0..10 {
                    let tap = Tap {
                        door: DoorId::parse(door).unwrap(),
                        credential: c,
                    };
                    out.push(decide(g.snapshot(), &tap, t0() + Duration::hours(h)).reason);
                }
            }
        }
        out
    }

    #[test]
    fn the_snapshot_always_equals_what_a_restart_rebuilds_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let live = {
            let store = Arc::new(SledStore::open(dir.path()).unwrap());
            let mut g = Registry::open(test_site(), store, t0()).unwrap();
            populate(&mut g);
            decisions(&g)
        };
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let g = Registry::open(test_site(), store, t0()).unwrap();
        assert_eq!(decisions(&g), live);
        // And the story shows in the decisions: the moved booking, the cancelled one, the
        // suspension and the replaced card.
        let at = |c, door: &str, h| {
            let tap = Tap {
                door: DoorId::parse(door).unwrap(),
                credential: c,
            };
            decide(g.snapshot(), &tap, t0() + Duration::hours(h)).reason
        };
        assert_eq!(at(card(1), "d-hall", 5), Reason::Booking);
        assert_eq!(at(card(1), "d-hall", 4), Reason::BookingNotActive);
        assert_eq!(at(card(1), "d-meeting-1", 2), Reason::NoRight);
        assert_eq!(at(card(2), "d-cowork-in", 2), Reason::MemberSuspended);
        assert_eq!(at(card(0), "d-cowork-in", 2), Reason::CredentialRevoked);
        assert_eq!(at(card(9), "d-cowork-in", 2), Reason::Plan);
    }

    #[test]
    fn the_ids_the_topics_and_broker_accounts_use_are_not_given_to_devices() {
        use crate::domain::{Device, DeviceId, DeviceKey, DeviceKind, RoomId};
        let store = Arc::new(MemoryStore::new());
        let mut g = Registry::open(test_site(), store.clone(), t0()).unwrap();
        let sensor = |id: &str| Device {
            id: DeviceId::parse(id).unwrap(),
            kind: DeviceKind::Sensor,
            door: None,
            room: Some(RoomId::parse("meeting-1").unwrap()),
            key: DeviceKey::from_bytes([3; 32]),
            added_at: t0(),
        };
        for id in ["gateway", "zigbee2mqtt"] {
            let e = g.add_device(sensor(id), cli(), t0()).unwrap_err();
            assert!(e.to_string().contains("reserved"), "{id}: {e}");
        }
        assert!(store.devices().unwrap().is_empty(), "nothing stored");
        g.add_device(sensor("sensor-meeting"), cli(), t0()).unwrap();
    }

    #[test]
    fn a_refused_change_writes_nothing() {
        let store = Arc::new(MemoryStore::new());
        let mut g = Registry::open(test_site(), store.clone(), t0()).unwrap();
        populate(&mut g);
        let log = store.audit_len().unwrap();
        let before = decisions(&g);
        g.add_member(
            member("mail", |m| {
                m.email = crate::domain::Email::parse("o@k.ua").ok()
            }),
            cli(),
            t0(),
        )
        .unwrap();
        let log = log + 1;
        let errors = [
            g.add_member(member("olena", |_| {}), cli(), t0())
                .unwrap_err(),
            g.add_member(
                member("copy", |m| {
                    m.email = crate::domain::Email::parse("O@K.UA").ok()
                }),
                cli(),
                t0(),
            )
            .unwrap_err(),
            g.add_member(
                member("new", |m| m.plan = Some(PlanId::parse("gold").unwrap())),
                cli(),
                t0(),
            )
            .unwrap_err(),
            g.add_credential(MemberId::parse("taras").unwrap(), card(9), cli(), t0())
                .unwrap_err(),
            g.add_credential(MemberId::parse("ghost").unwrap(), card(7), cli(), t0())
                .unwrap_err(),
            g.revoke_credential(card(0), cli(), t0()).unwrap_err(),
            g.cancel_booking(&key("nope"), cli(), t0()).unwrap_err(),
        ];
        let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            messages,
            [
                "member olena already exists",
                "member mail already has the e-mail address o@k.ua",
                "there is no plan gold in the site file",
                "card C009 is already issued to member olena; revoke it first",
                "there is no member ghost",
                "card C000 is already revoked",
                "there is no booking cli/nope",
            ]
        );
        let mut bad = store.booking(&key("b2")).unwrap().unwrap();
        bad.room = RoomId::parse("attic").unwrap();
        assert!(matches!(
            g.upsert_booking(bad.clone(), cli(), t0()),
            Err(RegistryError::UnknownRoom(_))
        ));
        bad.room = RoomId::parse("hall").unwrap();
        bad.attendees = vec![MemberId::parse("ghost").unwrap()];
        assert!(matches!(
            g.upsert_booking(bad.clone(), cli(), t0()),
            Err(RegistryError::UnknownMember(_))
        ));
        bad.attendees.clear();
        bad.window = Window::Timed {
            start: t0(),
            end: t0(),
        };
        assert!(matches!(
            g.upsert_booking(bad, cli(), t0()),
            Err(RegistryError::Booking(_))
        ));
        assert_eq!(
            store.audit_len().unwrap(),
            log,
            "no audit entry for a refused change"
        );
        assert_eq!(decisions(&g), before, "no effect on decisions");
    }

    #[test]
    fn bookings_long_over_stay_in_the_store_but_not_in_memory_after_a_restart() {
        let site = test_site();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut g = Registry::open(site.clone(), store.clone(), t0()).unwrap();
        populate(&mut g);
        // Ended three days before the restart; and one ending a day before it.
        let later = t0() + Duration::days(3) + Duration::hours(7);
        let day_ago = later - Duration::days(1);
        let mut recent = store.booking(&key("b2")).unwrap().unwrap();
        recent.key = key("recent");
        recent.window = Window::Timed {
            start: day_ago - Duration::hours(2),
            end: day_ago,
        };
        g.upsert_booking(recent, cli(), t0()).unwrap();
        assert!(g.snapshot().booking(&key("b2")).is_some());
        assert!(g.snapshot().booking(&key("recent")).is_some());
        let g = Registry::open(site, store.clone(), later).unwrap();
        assert!(
            store.booking(&key("b2")).unwrap().is_some(),
            "kept in the store"
        );
        assert!(
            g.snapshot().booking(&key("b2")).is_none(),
            "not held in memory"
        );
        assert!(g.snapshot().booking(&key("recent")).is_some());
    }

    #[test]
    fn every_decision_is_in_the_audit_log_when_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let mut g = Registry::open(test_site(), store.clone(), t0()).unwrap();
        populate(&mut g);
        let tap = Tap {
            door: DoorId::parse("d-hall").unwrap(),
            credential: card(1),
        };
        let d = g.decide(&tap, t0() + Duration::hours(5)).unwrap();
        assert_eq!(d.reason, Reason::Booking);
        let last = store.audit_tail(1).unwrap().pop().unwrap();
        assert_eq!(last.entry, AuditEntry::decision(&d));
        match last.entry.event {
            AuditEvent::Decision {
                booking, member, ..
            } => {
                assert_eq!(booking, Some(key("b2")));
                assert_eq!(member, MemberId::parse("taras").ok());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plans_and_leases_follow_the_site_file_and_each_sync_is_audited_once() {
        let store = Arc::new(MemoryStore::new());
        Registry::open(test_site(), store.clone(), t0()).unwrap();
        assert_eq!(store.plans().unwrap().len(), test_site().plans.len());
        assert_eq!(store.leases().unwrap().len(), test_site().leases.len());
        assert_eq!(store.audit_len().unwrap(), 1);
        Registry::open(test_site(), store.clone(), t0()).unwrap();
        assert_eq!(
            store.audit_len().unwrap(),
            1,
            "nothing changed, nothing logged"
        );
    }
}
