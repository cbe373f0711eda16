//! Persistence behind one trait: members, credentials, plans, leases, bookings and the audit log.
//!
//! [`Store`] has two implementations that pass the same contract tests ([`contract`], behind
//! the `testing` feature): the gateway's `SledStore` on disk (sled 0.34.7, sized for a
//! Raspberry Pi) and [`MemoryStore`] here, for tests and tools. Every change goes through [`Store::commit`], which writes the changed records and
//! their audit entry together, atomically, and returns only once both are durable: there is no
//! way to change a record without leaving a trace in the log, and a crash leaves either both or
//! neither. Decisions are appended with [`Store::append_audit`], durable before it returns.
//!
//! Audit keys are time-ordered: the microsecond of the entry (never earlier than the previous
//! key's, so a clock stepping back cannot reorder the log) followed by a sequence number.

pub mod backup;
#[cfg(any(test, feature = "testing"))]
pub mod contract;
pub mod history;
mod memory;

pub use history::{HistoryBucket, OutboxEvent};
pub use memory::MemoryStore;

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::Decision;
use crate::domain::{
    Booking, BookingKey, CardId, Credential, CredentialRecord, Device, DeviceId, DeviceMark,
    DoorId, Lease, LeaseId, Member, MemberId, Plan, PlanId, Reason, RoomId, SiteMode,
};

/// The schema version this build writes. Stores written by older builds are migrated at open.
pub const SCHEMA_VERSION: u32 = 2;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database itself failed (disk, corruption detected by the database), in its words.
    #[error("database error: {0}")]
    Db(String),
    /// A stored record did not decode; nothing was changed.
    #[error("stored record {key} in {tree} does not decode: {why}")]
    Corrupt {
        /// Which tree.
        tree: &'static str,
        /// Which key, printable.
        key: String,
        /// The decoder's complaint.
        why: String,
    },
    /// The data was written by a newer Kombinat.
    #[error("the data directory was written by a newer Kombinat (schema {found}, this build knows up to {SCHEMA_VERSION}); upgrade Kombinat or restore a backup")]
    NewerSchema {
        /// The version found.
        found: u32,
    },
    /// The directory holds something that is not a Kombinat store.
    #[error("the data directory holds data but no schema version: it is not a Kombinat store")]
    NotAStore,
    /// Another process has the store open.
    #[error("the data directory is in use by another Kombinat process")]
    Busy,
    /// A record could not be encoded (a bug, reported rather than hidden).
    #[error("cannot encode a record: {0}")]
    Encode(String),
}

/// Who caused an audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "id")]
pub enum Actor {
    /// A door reader (for decisions).
    Door(DoorId),
    /// A person at the command line (their login name).
    Cli(String),
    /// A staff account on the dashboard.
    Staff(String),
    /// A booking source.
    Source(String),
    /// A device (an alert feed changing the site mode).
    Device(DeviceId),
    /// The gateway itself (start-up sync, schedules).
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Door(d) => write!(f, "door:{d}"),
            Actor::Cli(u) => write!(f, "cli:{u}"),
            Actor::Staff(u) => write!(f, "staff:{u}"),
            Actor::Source(s) => write!(f, "source:{s}"),
            Actor::Device(d) => write!(f, "device:{d}"),
            Actor::System => f.write_str("system"),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AuditEvent {
    /// An access decision.
    Decision {
        /// The reader.
        door: DoorId,
        /// The card, when a card was presented (a PIN is never logged).
        card: Option<CardId>,
        /// The reason code.
        reason: Reason,
        /// Strike release in ms (0 when denied).
        unlock_ms: u32,
        /// The member it rests on.
        member: Option<MemberId>,
        /// The booking it rests on.
        booking: Option<BookingKey>,
        /// Taken by the door node alone, from its allow-list, and uploaded later.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        offline: bool,
        /// The door node's counter on the tap (unique per node), when it came over MQTT.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tap: Option<u64>,
    },
    /// An alarm was raised or cleared.
    Alarm {
        /// The door, for door alarms.
        door: Option<DoorId>,
        /// The device, for device alarms.
        device: Option<DeviceId>,
        /// Which alarm.
        alarm: AlarmKind,
        /// Raised (true) or cleared (false).
        raised: bool,
    },
    /// A change to stored data, in words.
    Change {
        /// What changed.
        summary: String,
    },
    /// The site mode changed.
    Mode {
        /// The new mode.
        mode: SiteMode,
    },
    /// Nobody came to a booked room in the first minutes of the booking.
    NoShow { booking: BookingKey, room: RoomId },
}

/// Alarms the gateway raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// A door stood open longer than its limit.
    HeldOpen,
    /// A door was opened while locked, without an exit request.
    Forced,
    /// A reader or node housing was opened.
    Tamper,
    /// A device missed three heartbeats or sent its last will.
    DeviceOffline,
    /// A calendar feed cannot be read (download or parse); its last good state is kept.
    FeedFailing,
    /// An air-raid alert feed cannot be read: the site mode stays as it was (losing the feed is
    /// never an all clear).
    AlertFeedFailing,
    /// A door node reports its strike otherwise than the gateway holds it: unlocked for
    /// longer than any grant while it should be locked, or locked while it should stand
    /// released. The gateway sends the door's state again while this lasts.
    LockDiffers,
    /// The gateway's own clock is not synchronised: it publishes no allow-lists (they would
    /// open doors at the wrong hours) until it is.
    ClockUnsynchronised,
    /// The data directory's disk is nearly full (the gateway's `LOW_DISK_BYTES`): when it
    /// fills, decisions can no longer be logged and the gateway stops.
    DiskLow,
    /// A node lost mains power and runs on its battery.
    MainsLost,
    /// A node's battery is below the site's low line while on battery.
    BatteryLow,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who caused it.
    pub actor: Actor,
    /// What happened.
    pub event: AuditEvent,
}

impl AuditEntry {
    /// The entry for a decision.
    pub fn decision(d: &Decision) -> Self {
        AuditEntry {
            at: d.at,
            actor: Actor::Door(d.door),
            event: AuditEvent::Decision {
                door: d.door,
                card: match d.credential {
                    Credential::Card(c) => Some(c),
                    Credential::Pin(_) => None,
                },
                reason: d.reason,
                unlock_ms: d.unlock_ms,
                member: d.member,
                booking: d.booking.as_ref().map(|b| b.key.clone()),
                offline: false,
                tap: None,
            },
        }
    }

    /// The entry for a change.
    pub fn change(at: DateTime<Utc>, actor: Actor, summary: impl Into<String>) -> Self {
        AuditEntry {
            at,
            actor,
            event: AuditEvent::Change {
                summary: summary.into(),
            },
        }
    }
}

/// The key of an audit entry: its microsecond, then a sequence number.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct AuditId {
    /// Microseconds since the Unix epoch (non-decreasing along the log).
    pub micros: u64,
    /// Sequence number (strictly increasing along the log).
    pub seq: u64,
}

impl AuditId {
    /// The 16-byte big-endian key, which sorts like the id.
    pub fn to_key(self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.micros.to_be_bytes());
        k[8..].copy_from_slice(&self.seq.to_be_bytes());
        k
    }

    /// Reads a key back.
    pub fn from_key(k: &[u8]) -> Option<Self> {
        let k: [u8; 16] = k.try_into().ok()?;
        let (a, b) = k.split_at(8);
        Some(AuditId {
            micros: u64::from_be_bytes(a.try_into().ok()?),
            seq: u64::from_be_bytes(b.try_into().ok()?),
        })
    }
}

impl fmt::Display for AuditId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.micros, self.seq)
    }
}

/// An audit entry with its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Its key.
    pub id: AuditId,
    pub entry: AuditEntry,
}

/// Hands out audit ids in order, shared by both implementations.
#[derive(Debug, Default)]
pub struct AuditClock(Mutex<AuditId>);

impl AuditClock {
    pub fn starting_after(last: Option<AuditId>) -> Self {
        AuditClock(Mutex::new(last.unwrap_or(AuditId { micros: 0, seq: 0 })))
    }

    pub fn next(&self, at: DateTime<Utc>) -> AuditId {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let micros = u64::try_from(at.timestamp_micros()).unwrap_or(0);
        *last = AuditId {
            micros: micros.max(last.micros),
            seq: last.seq + 1,
        };
        *last
    }
}

/// One change to stored data.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Add or replace a member.
    Member(Member),
    /// Add or replace a credential.
    Credential(CredentialRecord),
    /// Add or replace a plan.
    Plan(Plan),
    RemovePlan(PlanId),
    /// Add or replace a lease.
    Lease(Lease),
    RemoveLease(LeaseId),
    /// Add or replace a booking (cancelling is replacing with a cancelled one).
    Booking(Booking),
    /// Set the site mode (it survives a restart).
    Mode(SiteMode),
    /// Lock one door down (staff and security only) or release it from that (it survives a
    /// restart).
    DoorLockdown {
        door: DoorId,
        locked: bool,
    },
    /// Register or replace a device.
    Device(Device),
    /// Add or replace (revoke) an API token.
    Token(crate::domain::ApiToken),
    /// Add or replace a staff account.
    Staff(crate::domain::StaffAccount),
    /// Remove a member (an erasure).
    RemoveMember(MemberId),
    /// Remove a credential (an erasure).
    RemoveCredential(Credential),
    /// Remove a staff account.
    RemoveStaff(crate::domain::StaffName),
    /// Remove a device from the registry.
    RemoveDevice(crate::domain::DeviceId),
}

/// What erasing a member replaces: their id by a pseudonym, their cards by nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// The member erased.
    pub member: MemberId,
    /// What the log calls them from now on.
    pub pseudonym: MemberId,
    /// Every card they held.
    pub cards: Vec<CardId>,
}

impl Erasure {
    /// `text` with the member's id and cards, as whole words, replaced.
    fn scrub(&self, text: &str) -> String {
        let id = self.member.to_string();
        let cards: Vec<String> = self.cards.iter().map(|c| c.to_string()).collect();
        let mut out = String::with_capacity(text.len());
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String| {
            if *word == id {
                out.push_str(self.pseudonym.as_str());
            } else if cards.iter().any(|c| c.eq_ignore_ascii_case(word)) {
                out.push_str("(erased card)");
            } else {
                out.push_str(word);
            }
            word.clear();
        };
        for c in text.chars() {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') {
                word.push(c);
            } else {
                flush(&mut word, &mut out);
                out.push(c);
            }
        }
        flush(&mut word, &mut out);
        out
    }

    /// The entry with the member's personal data replaced, if it had any.
    pub fn apply(&self, e: &AuditEntry) -> Option<AuditEntry> {
        let mut n = e.clone();
        match &mut n.event {
            AuditEvent::Decision { card, member, .. } => {
                if *member == Some(self.member) {
                    *member = Some(self.pseudonym);
                }
                if card.is_some_and(|c| self.cards.contains(&c)) {
                    *card = None;
                }
            }
            AuditEvent::Change { summary } => *summary = self.scrub(summary),
            AuditEvent::Alarm { .. } | AuditEvent::Mode { .. } | AuditEvent::NoShow { .. } => {}
        }
        (n != *e).then_some(n)
    }
}

/// The record changes of an erasure: the member and their credentials removed, their place
/// in bookings cleared.
pub fn erasure_changes(s: &dyn Store, erasure: &Erasure) -> Result<Vec<Change>, StoreError> {
    let mut changes = vec![Change::RemoveMember(erasure.member)];
    changes.extend(
        s.credentials()?
            .into_iter()
            .filter(|r| r.member == erasure.member)
            .map(|r| Change::RemoveCredential(r.credential)),
    );
    changes.extend(s.bookings()?.into_iter().filter_map(|mut b| {
        let before = (b.organiser, b.attendees.len());
        if b.organiser == Some(erasure.member) {
            b.organiser = None;
        }
        b.attendees.retain(|a| *a != erasure.member);
        (before != (b.organiser, b.attendees.len())).then_some(Change::Booking(b))
    }));
    Ok(changes)
}

/// The replay counters a store has seen per device: its stored marks, raised by the taps its
/// log holds since (marks are stored every few minutes, decisions with every tap).
pub fn counters_seen(store: &dyn Store) -> Result<Vec<DeviceMark>, StoreError> {
    let devices = store.devices()?;
    let mut seen: std::collections::BTreeMap<crate::domain::DeviceId, DeviceMark> = store
        .marks()?
        .into_iter()
        .filter_map(|m| Some((m.device?, m)))
        .collect();
    for r in store.audit_tail(100_000)? {
        if let AuditEvent::Decision {
            door,
            tap: Some(tap),
            offline,
            ..
        } = r.entry.event
        {
            let Some(d) = devices
                .iter()
                .find(|d| d.door == Some(door) && r.entry.at >= d.added_at)
            else {
                continue;
            };
            let m = seen.entry(d.id).or_insert(DeviceMark {
                device: Some(d.id),
                ..Default::default()
            });
            if offline {
                m.offline = m.offline.max(tap);
            } else {
                m.rx = m.rx.max(tap);
            }
        }
    }
    Ok(seen.into_values().collect())
}

/// Raises `store`'s replay counters to at least `seen`, device by device (for devices it
/// has); returns how many devices it raised.
pub fn raise_counters(
    store: &dyn Store,
    seen: &[DeviceMark],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let devices = store.devices()?;
    let marks = store.marks()?;
    let mut raised = Vec::new();
    for s in seen {
        let Some(id) = s.device else { continue };
        if !devices.iter().any(|d| d.id == id) {
            continue;
        }
        let mut m = marks
            .iter()
            .find(|m| m.device == Some(id))
            .copied()
            .unwrap_or(DeviceMark {
                device: Some(id),
                ..Default::default()
            });
        let before = (m.rx, m.tx, m.offline);
        m.rx = m.rx.max(s.rx);
        m.tx = m.tx.max(s.tx);
        m.offline = m.offline.max(s.offline);
        if (m.rx, m.tx, m.offline) != before {
            m.at = Some(now);
            raised.push(m);
        }
    }
    if !raised.is_empty() {
        store.put_marks(&raised)?;
        store.flush()?;
    }
    Ok(raised.len())
}

/// Persistence for the gateway.
pub trait Store: Send + Sync {
    /// Applies changes and their audit entry atomically; durable when it returns.
    fn commit(&self, changes: &[Change], audit: &AuditEntry) -> Result<AuditId, StoreError>;
    /// Appends audit entries (decisions) in order; durable when it returns.
    fn append_audit(&self, entries: &[AuditEntry]) -> Result<Vec<AuditId>, StoreError>;
    /// A member by id.
    fn member(&self, id: MemberId) -> Result<Option<Member>, StoreError>;
    /// Every member, by id.
    fn members(&self) -> Result<Vec<Member>, StoreError>;
    /// A credential record.
    fn credential(&self, c: &Credential) -> Result<Option<CredentialRecord>, StoreError>;
    /// Every credential record.
    fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError>;
    /// Every plan, by id.
    fn plans(&self) -> Result<Vec<Plan>, StoreError>;
    /// Every lease, by id.
    fn leases(&self) -> Result<Vec<Lease>, StoreError>;
    /// A booking by key.
    fn booking(&self, key: &BookingKey) -> Result<Option<Booking>, StoreError>;
    /// Every booking, by key.
    fn bookings(&self) -> Result<Vec<Booking>, StoreError>;
    /// The bookings `keep` accepts among those not archived (see [`Store::archive_bookings`]),
    /// without holding the others in memory at once: what a start reads.
    fn live_bookings_where(
        &self,
        keep: &mut dyn FnMut(&Booking) -> bool,
    ) -> Result<Vec<Booking>, StoreError> {
        let mut all = self.bookings()?;
        all.retain(|b| keep(b));
        Ok(all)
    }
    /// Archives the live bookings `over` accepts (long past ones): they stay in the store
    /// ([`Store::booking`], [`Store::bookings`], backups), but a start no longer reads them.
    /// A booking written again is live again. Returns how many were archived. A store that
    /// keeps everything in memory has nothing to gain and archives nothing.
    fn archive_bookings(
        &self,
        _over: &mut dyn FnMut(&Booking) -> bool,
    ) -> Result<usize, StoreError> {
        Ok(0)
    }
    /// Every registered device, by id.
    fn devices(&self) -> Result<Vec<Device>, StoreError>;
    /// Every API token (revoked ones too), by name.
    fn tokens(&self) -> Result<Vec<crate::domain::ApiToken>, StoreError>;
    /// Every staff account, by name.
    fn staff(&self) -> Result<Vec<crate::domain::StaffAccount>, StoreError>;
    /// Stores devices' replay counters (durable with the next flush or audit append).
    fn put_marks(&self, marks: &[DeviceMark]) -> Result<(), StoreError>;
    /// Every device's replay counters.
    fn marks(&self) -> Result<Vec<DeviceMark>, StoreError>;
    /// The site mode last set, if ever.
    fn mode(&self) -> Result<Option<SiteMode>, StoreError>;
    /// The doors locked down one by one, by id.
    fn locked_doors(&self) -> Result<Vec<DoorId>, StoreError>;
    /// Up to `limit` audit records after `after` (from the start when `None`), oldest first.
    fn audit_after(
        &self,
        after: Option<AuditId>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Up to `limit` audit records before `before` (from the end when `None`), newest first.
    fn audit_before(
        &self,
        before: Option<AuditId>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Removes the audit records written before `before` (by key: the log's order); returns
    /// how many. The retention period's end.
    fn prune_audit(&self, before: AuditId) -> Result<usize, StoreError>;
    /// The last `n` audit records, oldest first.
    fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError>;
    /// Number of audit records.
    fn audit_len(&self) -> Result<usize, StoreError>;
    /// The schema version of the data.
    fn schema_version(&self) -> Result<u32, StoreError>;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// The bytes the store takes on disk, if it has a disk.
    fn size_on_disk(&self) -> Option<u64> {
        None
    }
    /// Adds occupancy history: each bucket is merged into the one stored at its room and
    /// start, if any (durable with the next flush).
    fn add_history(&self, buckets: &[HistoryBucket]) -> Result<(), StoreError>;
    /// A room's history buckets starting in `[from, until)` (Unix seconds), in time order.
    fn history(
        &self,
        room: RoomId,
        from: i64,
        until: i64,
    ) -> Result<Vec<HistoryBucket>, StoreError>;
    /// Merges the five-minute buckets of `rooms` that start before `hourly_before` (a whole
    /// hour) into hourly ones, and drops every bucket that starts before `drop_before`.
    /// Returns (buckets merged away, buckets dropped).
    fn compact_history(
        &self,
        rooms: &[RoomId],
        hourly_before: i64,
        drop_before: i64,
    ) -> Result<(usize, usize), StoreError>;
    /// Stores a small piece of the gateway's own state under `key` (what an esp-rfid reader's
    /// user list holds, …); durable with the next flush.
    fn put_state(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// A piece of state stored with [`Store::put_state`].
    fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Queues events for the booking system; assigns and returns their ids (increasing).
    fn push_outbox(&self, events: Vec<OutboxEvent>) -> Result<Vec<u64>, StoreError>;
    /// Up to `limit` queued events, oldest first.
    fn outbox(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError>;
    /// Removes a delivered event.
    fn remove_outbox(&self, id: u64) -> Result<(), StoreError>;
    /// Erases a member's personal data: every log entry naming them is rewritten by
    /// `erasure` (same key, same order, the identifying fields replaced), then their record and
    /// credentials are removed, their place in bookings cleared, and `audit` appended, in one
    /// transaction. Returns the log entries rewritten. Safe to run again after a crash.
    fn erase_member(&self, erasure: &Erasure, audit: &AuditEntry) -> Result<usize, StoreError>;
    /// Writes a consistent copy of everything to `out` in the [`backup`] format, while the
    /// store is in use; returns the records written.
    fn export(&self, out: &mut dyn std::io::Write) -> Result<u64, backup::BackupError> {
        let _ = out;
        Err(backup::BackupError::Bad(
            "this store is in memory: there is nothing to back up".into(),
        ))
    }
}
