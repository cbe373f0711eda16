//! The in-memory snapshot a decision reads, with its indexes, kept current change by change.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use crate::domain::{
    Booking, BookingKey, BookingKind, BookingStatus, Credential, CredentialRecord, Email, Lease,
    Member, MemberId, OrgId, Plan, PlanId, RoomSet, Site, SiteMode, WeeklySchedule, Window,
};

/// Something in the stored data that the site cannot honour; reported, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SnapshotWarning {
    /// A booking names a room the site file does not have.
    BookingRoomUnknown(BookingKey),
    /// A lease names a room the site file does not have.
    LeaseRoomUnknown(crate::domain::LeaseId),
    /// A credential belongs to a member that does not exist.
    CredentialWithoutMember(Credential),
}

impl std::fmt::Display for SnapshotWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotWarning::BookingRoomUnknown(k) => {
                write!(
                    f,
                    "booking {k} is for a room the site file does not have; it grants nothing"
                )
            }
            SnapshotWarning::LeaseRoomUnknown(l) => {
                write!(
                    f,
                    "lease {l} is for a room the site file does not have; it grants nothing"
                )
            }
            SnapshotWarning::CredentialWithoutMember(c) => {
                write!(f, "{c} belongs to no member; it opens nothing")
            }
        }
    }
}

/// The effective window of a booking: when it opens its doors (grace and check-in applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingWindow {
    /// First second it opens (Unix seconds, inclusive).
    pub from: i64,
    /// First second it no longer opens (exclusive).
    pub until: i64,
}

/// One booking's right for one member: the member's index entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub from: i64,
    pub until: i64,
    pub room: u32,
    pub booking: u32,
}

/// A member and their booking slots, side by side so a decision touches one entry. The member
/// is `None` while only bookings name them (a booking may arrive before its attendee does).
#[derive(Debug, Default, Clone)]
pub(crate) struct MemberEntry {
    pub member: Option<Member>,
    /// Sorted by `from`.
    slots: Vec<Slot>,
    /// The longest `until - from` among them, to bound the search backwards in time.
    max_span: i64,
}

impl MemberEntry {
    /// The slots whose window starts before `to` and may still be open at `from`, by start.
    #[inline]
    pub fn slots(&self, from: i64, to: i64) -> &[Slot] {
        // One binary search for the end, then a short walk back: the slots in question sit
        // together, so the walk reads memory already fetched.
        let hi = self.slots.partition_point(|s| s.from <= to);
        let floor = from.saturating_sub(self.max_span);
        let lo = self.slots[..hi]
            .iter()
            .rposition(|s| s.from < floor)
            .map_or(0, |i| i + 1);
        &self.slots[lo..hi]
    }
}

#[derive(Debug, Clone)]
struct BookingEntry {
    booking: Arc<Booking>,
    window: BookingWindow,
    room: Option<u32>,
}

/// A plan compiled against the site: each grant's rooms as a set.
#[derive(Debug, Clone)]
pub(crate) struct CompiledPlan {
    pub plan: Plan,
    pub grants: Vec<CompiledGrant>,
    pub closed_on_holidays: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledGrant {
    pub rooms: RoomSet,
    pub schedule: WeeklySchedule,
}

/// A lease compiled against the site.
#[derive(Debug, Clone)]
pub(crate) struct CompiledLease {
    pub lease: Lease,
    pub room: usize,
    pub schedule: Option<WeeklySchedule>,
}

impl CompiledLease {
    pub fn valid_at(&self, now: DateTime<Utc>) -> bool {
        self.lease.from.is_none_or(|f| f <= now) && self.lease.until.is_none_or(|u| now < u)
    }
}

/// Everything a decision reads.
#[derive(Debug, Clone)]
pub struct Snapshot {
    site: Arc<Site>,
    mode: SiteMode,
    /// Doors locked down one by one (by index): staff and security only, whatever the mode.
    locked_doors: BTreeSet<usize>,
    members: Vec<MemberEntry>,
    member_index: FxHashMap<MemberId, u32>,
    member_count: usize,
    by_email: FxHashMap<Email, MemberId>,
    /// Each credential with the index of its holder's entry.
    credentials: FxHashMap<Credential, (CredentialRecord, u32)>,
    plans: FxHashMap<PlanId, CompiledPlan>,
    leases: FxHashMap<OrgId, Vec<CompiledLease>>,
    bookings: Vec<Option<BookingEntry>>,
    free: Vec<u32>,
    by_key: FxHashMap<BookingKey, u32>,
    /// Per room: (from, booking index), and the longest booking seen in that room.
    by_room: Vec<(BTreeSet<(i64, u32)>, i64)>,
    empty_room: BTreeSet<(i64, u32)>,
    occupancy: Vec<u32>,
    inside: FxHashMap<(MemberId, usize), bool>,
    warnings: BTreeSet<SnapshotWarning>,
}

impl Snapshot {
    /// An empty snapshot of a site: nobody holds any right yet.
    pub fn new(site: Arc<Site>) -> Self {
        let rooms = site.rooms.len();
        Snapshot {
            site,
            mode: SiteMode::Normal,
            locked_doors: BTreeSet::new(),
            members: Vec::new(),
            member_index: FxHashMap::default(),
            member_count: 0,
            by_email: FxHashMap::default(),
            credentials: FxHashMap::default(),
            plans: FxHashMap::default(),
            leases: FxHashMap::default(),
            bookings: Vec::new(),
            free: Vec::new(),
            by_key: FxHashMap::default(),
            by_room: vec![(BTreeSet::new(), 0); rooms],
            empty_room: BTreeSet::new(),
            occupancy: vec![0; rooms],
            inside: FxHashMap::default(),
            warnings: BTreeSet::new(),
        }
    }

    /// Builds a snapshot from stored data in one go.
    pub fn build(
        site: Arc<Site>,
        members: impl IntoIterator<Item = Member>,
        credentials: impl IntoIterator<Item = CredentialRecord>,
        plans: impl IntoIterator<Item = Plan>,
        leases: impl IntoIterator<Item = Lease>,
        bookings: impl IntoIterator<Item = Booking>,
    ) -> Self {
        let mut s = Snapshot::new(site);
        for m in members {
            s.upsert_member(m);
        }
        for c in credentials {
            s.upsert_credential(c);
        }
        s.set_plans(plans);
        s.set_leases(leases);
        for b in bookings {
            s.upsert_booking(b);
        }
        s.check_credentials();
        s
    }

    fn check_credentials(&mut self) {
        for (c, m) in self.credentials.values() {
            if self.members[*m as usize].member.is_none() {
                self.warnings
                    .insert(SnapshotWarning::CredentialWithoutMember(c.credential));
            }
        }
    }

    pub fn site(&self) -> &Site {
        &self.site
    }

    /// The site, shared.
    pub fn site_arc(&self) -> Arc<Site> {
        self.site.clone()
    }

    /// What the stored data asks that the site cannot honour.
    pub fn warnings(&self) -> impl Iterator<Item = &SnapshotWarning> {
        self.warnings.iter()
    }

    /// The site mode.
    pub fn mode(&self) -> SiteMode {
        self.mode
    }

    /// Switches the site mode.
    pub fn set_mode(&mut self, mode: SiteMode) {
        self.mode = mode;
    }

    /// Whether door `door` (by index) is locked down on its own.
    #[inline]
    pub fn door_locked(&self, door: usize) -> bool {
        self.locked_doors.contains(&door)
    }

    /// Locks door `door` (by id) down, or releases it from that; a door the site does not
    /// have is no change.
    pub fn set_door_locked(&mut self, door: crate::domain::DoorId, locked: bool) {
        if let Some(di) = self.site.door_index(door) {
            if locked {
                self.locked_doors.insert(di);
            } else {
                self.locked_doors.remove(&di);
            }
        }
    }

    /// Current head count of room `room` (by index).
    #[inline]
    pub fn occupancy(&self, room: usize) -> u32 {
        self.occupancy.get(room).copied().unwrap_or(0)
    }

    /// Sets the head count of room `room` (by index) that its doors may refuse people on
    /// (`deny.room_full`): a count [`capacity_count`] trusts, or 0.
    pub fn set_occupancy(&mut self, room: usize, count: u32) {
        if let Some(o) = self.occupancy.get_mut(room) {
            *o = count;
        }
    }

    /// A member by id.
    pub fn member(&self, id: MemberId) -> Option<&Member> {
        let i = *self.member_index.get(&id)?;
        self.members[i as usize].member.as_ref()
    }

    /// The member with this e-mail address (addresses are unique among members).
    pub fn member_by_email(&self, email: &Email) -> Option<MemberId> {
        self.by_email.get(email).copied()
    }

    /// Number of members.
    pub fn member_count(&self) -> usize {
        self.member_count
    }

    /// Number of bookings that grant something (confirmed, for a known room).
    pub fn booking_count(&self) -> usize {
        self.by_key.len()
    }

    /// Adds or replaces a member.
    pub fn upsert_member(&mut self, m: Member) {
        let i = self.entry(m.id);
        let e = &mut self.members[i as usize];
        match &e.member {
            None => self.member_count += 1,
            Some(old) => {
                if let Some(email) = &old.email {
                    self.by_email.remove(email);
                }
            }
        }
        if let Some(email) = &m.email {
            self.by_email.insert(email.clone(), m.id);
        }
        e.member = Some(m);
    }

    fn entry(&mut self, id: MemberId) -> u32 {
        let members = &mut self.members;
        *self.member_index.entry(id).or_insert_with(|| {
            members.push(MemberEntry::default());
            (members.len() - 1) as u32
        })
    }

    /// Adds or replaces a credential record.
    pub fn upsert_credential(&mut self, c: CredentialRecord) {
        let i = self.entry(c.member);
        self.credentials.insert(c.credential, (c, i));
    }

    /// A credential and its holder, if both are known.
    #[inline]
    pub fn credential(&self, c: &Credential) -> Option<(&CredentialRecord, &Member)> {
        let (rec, entry) = self.holder(c)?;
        Some((rec, entry.member.as_ref()?))
    }

    /// A credential and its holder's entry (member and booking slots).
    #[inline]
    pub(crate) fn holder(&self, c: &Credential) -> Option<(&CredentialRecord, &MemberEntry)> {
        let (rec, i) = self.credentials.get(c)?;
        Some((rec, &self.members[*i as usize]))
    }

    /// Credentials held by a member.
    pub fn credentials_of(&self, m: MemberId) -> impl Iterator<Item = &CredentialRecord> {
        self.credentials
            .values()
            .map(|(c, _)| c)
            .filter(move |c| c.member == m)
    }

    /// Replaces all plans.
    pub fn set_plans(&mut self, plans: impl IntoIterator<Item = Plan>) {
        self.plans = plans
            .into_iter()
            .map(|p| {
                let grants = p
                    .grants
                    .iter()
                    .map(|g| CompiledGrant {
                        rooms: self.site.room_set(&g.zones, &g.rooms),
                        schedule: g.schedule.clone(),
                    })
                    .collect();
                let closed_on_holidays = p.closed_on_holidays;
                (
                    p.id,
                    CompiledPlan {
                        plan: p,
                        grants,
                        closed_on_holidays,
                    },
                )
            })
            .collect();
    }

    pub(crate) fn plan(&self, id: PlanId) -> Option<&CompiledPlan> {
        self.plans.get(&id)
    }

    /// A plan by id.
    pub fn plan_def(&self, id: PlanId) -> Option<&Plan> {
        self.plans.get(&id).map(|p| &p.plan)
    }

    /// Replaces all leases.
    pub fn set_leases(&mut self, leases: impl IntoIterator<Item = Lease>) {
        self.leases.clear();
        self.warnings
            .retain(|w| !matches!(w, SnapshotWarning::LeaseRoomUnknown(_)));
        for lease in leases {
            let Some(room) = self.site.room_index(lease.room) else {
                self.warnings
                    .insert(SnapshotWarning::LeaseRoomUnknown(lease.id));
                continue;
            };
            self.leases
                .entry(lease.organisation)
                .or_default()
                .push(CompiledLease {
                    schedule: lease.schedule.clone(),
                    lease,
                    room,
                });
        }
    }

    pub(crate) fn leases_of(&self, org: OrgId) -> &[CompiledLease] {
        self.leases.get(&org).map_or(&[], Vec::as_slice)
    }

    /// The window in which a booking opens its doors, by the site's policy.
    pub fn window_of(&self, b: &Booking) -> BookingWindow {
        let policy = &self.site.access;
        match (b.kind, b.window) {
            (_, Window::Days { arrival, departure }) => BookingWindow {
                from: self
                    .site
                    .local_instant(arrival, policy.check_in)
                    .timestamp(),
                until: self
                    .site
                    .local_instant(departure, policy.check_out)
                    .timestamp(),
            },
            (BookingKind::GuestPass, Window::Timed { start, end }) => BookingWindow {
                from: start.timestamp(),
                until: end.timestamp(),
            },
            (_, Window::Timed { start, end }) => BookingWindow {
                from: start.timestamp() - i64::from(policy.booking_grace_before_min) * 60,
                until: end.timestamp() + i64::from(policy.booking_grace_after_min) * 60,
            },
        }
    }

    /// Adds, replaces or (when cancelled) withdraws a booking, updating every index.
    pub fn upsert_booking(&mut self, b: Booking) {
        self.remove_booking(&b.key);
        self.warnings
            .remove(&SnapshotWarning::BookingRoomUnknown(b.key.clone()));
        if b.status == BookingStatus::Cancelled {
            return;
        }
        let Some(room) = self.site.room_index(b.room) else {
            self.warnings
                .insert(SnapshotWarning::BookingRoomUnknown(b.key.clone()));
            return;
        };
        let window = self.window_of(&b);
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.bookings.push(None);
                (self.bookings.len() - 1) as u32
            }
        };
        let slot = Slot {
            from: window.from,
            until: window.until,
            room: room as u32,
            booking: idx,
        };
        let mut people: Vec<MemberId> = b.people().collect();
        people.sort_unstable();
        people.dedup();
        for m in people {
            let i = self.entry(m);
            let ms = &mut self.members[i as usize];
            let at = ms.slots.partition_point(|s| s.from <= slot.from);
            ms.slots.insert(at, slot);
            ms.max_span = ms.max_span.max(slot.until - slot.from);
        }
        let (set, span) = &mut self.by_room[room];
        set.insert((window.from, idx));
        *span = (*span).max(window.until - window.from);
        self.by_key.insert(b.key.clone(), idx);
        self.bookings[idx as usize] = Some(BookingEntry {
            booking: Arc::new(b),
            window,
            room: Some(room as u32),
        });
    }

    /// Withdraws a booking from every index (cancelled, or replaced).
    pub fn remove_booking(&mut self, key: &BookingKey) {
        let Some(idx) = self.by_key.remove(key) else {
            return;
        };
        let Some(entry) = self.bookings[idx as usize].take() else {
            return;
        };
        for m in entry.booking.people() {
            if let Some(&i) = self.member_index.get(&m) {
                self.members[i as usize].slots.retain(|s| s.booking != idx);
            }
        }
        if let Some(room) = entry.room {
            self.by_room[room as usize]
                .0
                .remove(&(entry.window.from, idx));
        }
        self.free.push(idx);
    }

    /// Withdraws bookings whose window ended before `before`, to keep memory bounded; they stay
    /// in the store.
    pub fn prune_bookings(&mut self, before: DateTime<Utc>) -> usize {
        let t = before.timestamp();
        let old: Vec<BookingKey> = self
            .bookings
            .iter()
            .flatten()
            .filter(|e| e.window.until < t)
            .map(|e| e.booking.key.clone())
            .collect();
        for k in &old {
            self.remove_booking(k);
        }
        old.len()
    }

    #[inline]
    pub(crate) fn booking_at(&self, idx: u32) -> Option<&Arc<Booking>> {
        self.bookings
            .get(idx as usize)
            .and_then(Option::as_ref)
            .map(|e| &e.booking)
    }

    /// How many confirmed bookings of `source` are held (recent and future ones).
    pub fn bookings_of_source(&self, source: crate::domain::SourceId) -> usize {
        self.bookings
            .iter()
            .flatten()
            .filter(|e| e.booking.key.source == source)
            .count()
    }

    /// A booking by key (only confirmed bookings for known rooms are held).
    pub fn booking(&self, key: &BookingKey) -> Option<(&Arc<Booking>, BookingWindow)> {
        let idx = *self.by_key.get(key)?;
        let e = self.bookings.get(idx as usize)?.as_ref()?;
        Some((&e.booking, e.window))
    }

    /// Bookings of room `room` (by index) whose window overlaps `[from, until)`, by start.
    pub fn bookings_in_room(
        &self,
        room: usize,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Iterator<Item = (&Arc<Booking>, BookingWindow)> {
        let (from, until) = (from.timestamp(), until.timestamp());
        let (set, span) = match self.by_room.get(room) {
            Some((set, span)) => (set, *span),
            None => (&self.empty_room, 0),
        };
        set.range((from.saturating_sub(span), 0)..(until, 0))
            .filter_map(move |&(_, idx)| {
                let e = self.bookings[idx as usize].as_ref()?;
                (e.window.until > from).then_some((&e.booking, e.window))
            })
    }

    /// Whether a member is inside anti-passback pair `pair`: `Some(true)` after the entry reader,
    /// `Some(false)` after the exit reader, `None` before either.
    #[inline]
    pub fn inside(&self, m: MemberId, pair: usize) -> Option<bool> {
        self.inside.get(&(m, pair)).copied()
    }

    /// A copy for computing allow-lists: the same rights and mode, but no occupancy and no
    /// anti-passback state, which a door deciding alone cannot know.
    pub fn for_allow_lists(&self) -> Snapshot {
        let mut s = self.clone();
        s.occupancy.iter_mut().for_each(|o| *o = 0);
        s.inside.clear();
        s
    }

    /// Card credentials that are not revoked, with their holder's entry.
    pub(crate) fn cards(&self) -> impl Iterator<Item = (crate::domain::CardId, &MemberEntry)> {
        self.credentials.iter().filter_map(|(c, (rec, i))| match c {
            Credential::Card(card) if rec.revoked_at.is_none() => {
                Some((*card, &self.members[*i as usize]))
            }
            _ => None,
        })
    }

    /// Records what an allowed decision means for later ones (anti-passback state).
    pub fn record(&mut self, d: &super::Decision) {
        if !d.allowed() {
            return;
        }
        let (Some(m), Some(di)) = (d.member, self.site.door_index(d.door)) else {
            return;
        };
        if let Some((pair, is_entry)) = self.site.passback(di) {
            self.inside.insert((m, pair), is_entry);
        }
    }
}

/// How sure a head count must be before a door refuses someone for it.
pub const CAPACITY_CONFIDENCE: f32 = 0.9;

/// The head count a room's doors may refuse people on (`deny.room_full`), from the occupancy
/// estimate: the count when people counters at the room's doorways keep it (basis `counter`)
/// and it is sure to [`CAPACITY_CONFIDENCE`]; otherwise 0, and no one is refused for a full
/// room. A count from allowed entries alone only grows where no exit is seen (a card tapped
/// 200 times is not 200 people), and motion or CO2 say a room is in use, not how many are in
/// it: a wrong count at a door locks out people with every right to come in.
pub fn capacity_count(count: u32, basis: kombinat_protocol::room::Basis, confidence: f32) -> u32 {
    if basis == kombinat_protocol::room::Basis::Counter && confidence >= CAPACITY_CONFIDENCE {
        count
    } else {
        0
    }
}
