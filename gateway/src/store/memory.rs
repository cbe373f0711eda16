//! The store in memory, for tests and tools: same contract, nothing on disk.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{
    AuditClock, AuditEntry, AuditId, AuditRecord, Change, Store, StoreError, SCHEMA_VERSION,
};
use crate::domain::{
    Booking, BookingKey, Credential, CredentialRecord, Lease, LeaseId, Member, MemberId, Plan,
    PlanId, SiteMode,
};
use crate::domain::{Device, DeviceMark};
use kombinat_protocol::DeviceId;

#[derive(Default)]
struct Inner {
    members: BTreeMap<MemberId, Member>,
    credentials: BTreeMap<Credential, CredentialRecord>,
    plans: BTreeMap<PlanId, Plan>,
    leases: BTreeMap<LeaseId, Lease>,
    bookings: BTreeMap<BookingKey, Booking>,
    audit: BTreeMap<AuditId, AuditEntry>,
    mode: Option<SiteMode>,
    devices: BTreeMap<DeviceId, Device>,
    marks: BTreeMap<DeviceId, DeviceMark>,
    as_of: Option<DeviceMark>,
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
                Change::Device(d) => {
                    i.devices.insert(d.id, d);
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

    fn devices(&self) -> Result<Vec<Device>, StoreError> {
        Ok(self.lock().devices.values().cloned().collect())
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
}
