//! The store in memory, for tests and tools: same contract, nothing on disk.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::history::{downsample, HistoryBucket, OutboxEvent};
use super::{
    AuditClock, AuditEntry, AuditId, AuditRecord, Change, Store, StoreError, SCHEMA_VERSION,
};
use crate::domain::{
    Booking, BookingKey, Credential, CredentialRecord, Lease, LeaseId, Member, MemberId, Plan,
    PlanId, SiteMode,
};
use crate::domain::{Device, DeviceMark};
use kombinat_protocol::{DeviceId, RoomId};

#[derive(Default)]
struct Inner {
    members: BTreeMap<MemberId, Member>,
    credentials: BTreeMap<Credential, CredentialRecord>,
    plans: BTreeMap<PlanId, Plan>,
    leases: BTreeMap<LeaseId, Lease>,
    bookings: BTreeMap<BookingKey, Booking>,
    audit: BTreeMap<AuditId, AuditEntry>,
    mode: Option<SiteMode>,
    locked_doors: std::collections::BTreeSet<crate::domain::DoorId>,
    devices: BTreeMap<DeviceId, Device>,
    marks: BTreeMap<DeviceId, DeviceMark>,
    as_of: Option<DeviceMark>,
    history: BTreeMap<(RoomId, i64), HistoryBucket>,
    tokens: BTreeMap<kombinat_protocol::SourceId, crate::domain::ApiToken>,
    staff: BTreeMap<crate::domain::StaffName, crate::domain::StaffAccount>,
    state: BTreeMap<String, Vec<u8>>,
    outbox: BTreeMap<u64, OutboxEvent>,
    next_outbox: u64,
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    clock: AuditClock,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn commit(&self, changes: &[Change], audit: &AuditEntry) -> Result<AuditId, StoreError> {
        let mut i = self.lock();
        for c in changes {
            match c.clone() {
                Change::Member(m) => {
                    i.members.insert(m.id, m);
                }
                Change::Credential(r) => {
                    i.credentials.insert(r.credential, r);
                }
                Change::Plan(p) => {
                    i.plans.insert(p.id, p);
                }
                Change::RemovePlan(id) => {
                    i.plans.remove(&id);
                }
                Change::Lease(l) => {
                    i.leases.insert(l.id, l);
                }
                Change::RemoveLease(id) => {
                    i.leases.remove(&id);
                }
                Change::Booking(b) => {
                    i.bookings.insert(b.key.clone(), b);
                }
                Change::Mode(m) => i.mode = Some(m),
                Change::DoorLockdown { door, locked } => {
                    if locked {
                        i.locked_doors.insert(door);
                    } else {
                        i.locked_doors.remove(&door);
                    }
                }
                Change::Device(d) => {
                    i.devices.insert(d.id, d);
                }
                Change::Token(t) => {
                    i.tokens.insert(t.name, t);
                }
                Change::Staff(a) => {
                    i.staff.insert(a.name.clone(), a);
                }
                Change::RemoveStaff(n) => {
                    i.staff.remove(&n);
                }
                Change::RemoveMember(id) => {
                    i.members.remove(&id);
                }
                Change::RemoveCredential(c) => {
                    i.credentials.remove(&c);
                }
                Change::RemoveDevice(d) => {
                    i.devices.remove(&d);
                }
            }
        }
        let id = self.clock.next(audit.at);
        i.audit.insert(id, audit.clone());
        Ok(id)
    }

    fn append_audit(&self, entries: &[AuditEntry]) -> Result<Vec<AuditId>, StoreError> {
        let mut i = self.lock();
        Ok(entries
            .iter()
            .map(|e| {
                let id = self.clock.next(e.at);
                i.audit.insert(id, e.clone());
                id
            })
            .collect())
    }

    fn member(&self, id: MemberId) -> Result<Option<Member>, StoreError> {
        Ok(self.lock().members.get(&id).cloned())
    }

    fn members(&self) -> Result<Vec<Member>, StoreError> {
        Ok(self.lock().members.values().cloned().collect())
    }

    fn credential(&self, c: &Credential) -> Result<Option<CredentialRecord>, StoreError> {
        Ok(self.lock().credentials.get(c).cloned())
    }

    fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        Ok(self.lock().credentials.values().cloned().collect())
    }

    fn plans(&self) -> Result<Vec<Plan>, StoreError> {
        Ok(self.lock().plans.values().cloned().collect())
    }

    fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        Ok(self.lock().leases.values().cloned().collect())
    }

    fn booking(&self, key: &BookingKey) -> Result<Option<Booking>, StoreError> {
        Ok(self.lock().bookings.get(key).cloned())
    }

    fn bookings(&self) -> Result<Vec<Booking>, StoreError> {
        Ok(self.lock().bookings.values().cloned().collect())
    }

    fn mode(&self) -> Result<Option<SiteMode>, StoreError> {
        Ok(self.lock().mode)
    }

    fn locked_doors(&self) -> Result<Vec<crate::domain::DoorId>, StoreError> {
        Ok(self.lock().locked_doors.iter().copied().collect())
    }

    fn devices(&self) -> Result<Vec<Device>, StoreError> {
        Ok(self.lock().devices.values().cloned().collect())
    }

    fn tokens(&self) -> Result<Vec<crate::domain::ApiToken>, StoreError> {
        Ok(self.lock().tokens.values().cloned().collect())
    }

    fn erase_member(
        &self,
        erasure: &super::Erasure,
        audit: &AuditEntry,
    ) -> Result<usize, StoreError> {
        let rewritten = {
            let mut i = self.lock();
            let mut n = 0;
            for e in i.audit.values_mut() {
                if let Some(x) = erasure.apply(e) {
                    *e = x;
                    n += 1;
                }
            }
            n
        };
        let changes = super::erasure_changes(self, erasure)?;
        self.commit(&changes, audit)?;
        Ok(rewritten)
    }

    fn staff(&self) -> Result<Vec<crate::domain::StaffAccount>, StoreError> {
        Ok(self.lock().staff.values().cloned().collect())
    }

    fn put_marks(&self, marks: &[DeviceMark]) -> Result<(), StoreError> {
        let mut i = self.lock();
        for m in marks {
            match m.device {
                Some(d) => {
                    i.marks.insert(d, *m);
                }
                None => i.as_of = Some(*m),
            }
        }
        Ok(())
    }

    fn marks(&self) -> Result<Vec<DeviceMark>, StoreError> {
        let i = self.lock();
        Ok(i.marks.values().copied().chain(i.as_of).collect())
    }

    fn audit_after(
        &self,
        after: Option<AuditId>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let i = self.lock();
        let range = match after {
            Some(a) => i
                .audit
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => i.audit.range(..),
        };
        Ok(range
            .take(limit)
            .map(|(id, e)| AuditRecord {
                id: *id,
                entry: e.clone(),
            })
            .collect())
    }

    fn prune_audit(&self, before: AuditId) -> Result<usize, StoreError> {
        let mut i = self.lock();
        let keep = i.audit.split_off(&before);
        let n = i.audit.len();
        i.audit = keep;
        Ok(n)
    }

    fn audit_before(
        &self,
        before: Option<AuditId>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let i = self.lock();
        let range = match before {
            Some(b) => i.audit.range(..b),
            None => i.audit.range(..),
        };
        Ok(range
            .rev()
            .take(limit)
            .map(|(id, e)| AuditRecord {
                id: *id,
                entry: e.clone(),
            })
            .collect())
    }

    fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let i = self.lock();
        let mut v: Vec<AuditRecord> = i
            .audit
            .iter()
            .rev()
            .take(n)
            .map(|(id, e)| AuditRecord {
                id: *id,
                entry: e.clone(),
            })
            .collect();
        v.reverse();
        Ok(v)
    }

    fn audit_len(&self) -> Result<usize, StoreError> {
        Ok(self.lock().audit.len())
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(SCHEMA_VERSION)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn add_history(&self, buckets: &[HistoryBucket]) -> Result<(), StoreError> {
        let mut i = self.lock();
        for b in buckets {
            i.history
                .entry((b.room, b.start))
                .and_modify(|x| x.merge(b))
                .or_insert(*b);
        }
        Ok(())
    }

    fn history(
        &self,
        room: RoomId,
        from: i64,
        until: i64,
    ) -> Result<Vec<HistoryBucket>, StoreError> {
        if until <= from {
            return Ok(Vec::new());
        }
        Ok(self
            .lock()
            .history
            .range((room, from)..(room, until))
            .map(|(_, b)| *b)
            .collect())
    }

    fn compact_history(
        &self,
        rooms: &[RoomId],
        hourly_before: i64,
        drop_before: i64,
    ) -> Result<(usize, usize), StoreError> {
        let mut i = self.lock();
        let (mut merged, mut dropped) = (0, 0);
        for &room in rooms {
            let gone: Vec<(RoomId, i64)> = i
                .history
                .range((room, i64::MIN)..(room, drop_before))
                .map(|(k, _)| *k)
                .collect();
            dropped += gone.len();
            for k in gone {
                i.history.remove(&k);
            }
            let old: Vec<HistoryBucket> = i
                .history
                .range((room, drop_before)..(room, hourly_before))
                .map(|(_, b)| *b)
                .collect();
            let plan = downsample(&old);
            merged += plan.remove.len();
            for k in plan.remove {
                i.history.remove(&k);
            }
            for b in plan.put {
                i.history.insert((b.room, b.start), b);
            }
        }
        Ok((merged, dropped))
    }

    fn put_state(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.lock().state.insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().state.get(key).cloned())
    }

    fn push_outbox(&self, events: Vec<OutboxEvent>) -> Result<Vec<u64>, StoreError> {
        let mut i = self.lock();
        let mut ids = Vec::new();
        for mut e in events {
            i.next_outbox += 1;
            e.id = i.next_outbox;
            ids.push(e.id);
            i.outbox.insert(e.id, e);
        }
        Ok(ids)
    }

    fn outbox(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        Ok(self.lock().outbox.values().take(limit).cloned().collect())
    }

    fn remove_outbox(&self, id: u64) -> Result<(), StoreError> {
        self.lock().outbox.remove(&id);
        Ok(())
    }
}
