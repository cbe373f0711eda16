//! The store on sled 0.34.7, configured for a Raspberry Pi.
//!
//! Trees: `data` holds every record under a prefix (`m/` members, `c/` credentials, `p/` plans,
//! `l/` leases, `b/` bookings), as JSON so that records stay readable and migrations can add
//! fields; `audit` holds the log under 16-byte time-ordered keys; `meta` holds the schema
//! version; `marks` the devices' replay counters; `history` the rooms' occupancy buckets (24
//! bytes each, keyed by room and start); `state` small pieces of the gateway's own state;
//! `outbox` events waiting for the booking system. A commit is one sled transaction over `data` and `audit`, followed by a flush.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::backup::{BackupError, Item, Reader, Writer};
use super::history::{downsample, HistoryBucket, OutboxEvent};
use super::{
    AuditClock, AuditEntry, AuditId, AuditRecord, Change, Store, StoreError, SCHEMA_VERSION,
};
use crate::domain::{
    Booking, BookingKey, Credential, CredentialRecord, Device, DeviceMark, Lease, Member, MemberId,
    Plan, RoomId, SiteMode,
};

/// sled's failure as the store's (the port knows no sled): its words kept.
fn db_err(e: sled::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

/// Cache for the page cache of sled: small enough for a Pi, large enough for the working set.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// The sled-backed store.
pub struct SledStore {
    db: sled::Db,
    pub(super) data: sled::Tree,
    audit: sled::Tree,
    pub(super) meta: sled::Tree,
    marks: sled::Tree,
    history: sled::Tree,
    state: sled::Tree,
    outbox: sled::Tree,
    clock: AuditClock,
    /// Held from taking an audit id to writing it, so ids reach the log in order.
    write: std::sync::Mutex<()>,
    /// Held while bookings move to the archive, and while both ranges are listed, so a
    /// listing never misses one that moved between its two scans.
    archiving: std::sync::Mutex<()>,
    /// Where it lives.
    dir: std::path::PathBuf,
}

fn member_key(id: MemberId) -> Vec<u8> {
    [b"m/".as_slice(), id.as_str().as_bytes()].concat()
}

fn credential_key(c: &Credential) -> Vec<u8> {
    match c {
        Credential::Card(card) => format!("c/card/{card}").into_bytes(),
        Credential::Pin(pin) => format!("c/pin/{}", pin.expose()).into_bytes(),
    }
}

fn booking_key(k: &BookingKey) -> Vec<u8> {
    let mut v = b"b/".to_vec();
    v.extend_from_slice(k.source.as_str().as_bytes());
    v.push(0);
    v.extend_from_slice(k.external_id.as_str().as_bytes());
    v
}

/// An archived booking's key: its live key under `a/` instead of `b/` (a separate range of the
/// tree, which a start's scan of `b/` never reads).
fn archived_key(live: &[u8]) -> Vec<u8> {
    [b"a/".as_slice(), &live[2..]].concat()
}

/// Bookings moved to the archive per write (and per hold of the write lock).
const ARCHIVE_CHUNK: usize = 256;

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Encode(e.to_string()))
}

fn decode<T: DeserializeOwned>(tree: &'static str, key: &[u8], v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
        why: e.to_string(),
    })
}

fn change_kv(c: &Change) -> Result<(Vec<u8>, Option<Vec<u8>>), StoreError> {
    Ok(match c {
        Change::Member(m) => (member_key(m.id), Some(encode(m)?)),
        Change::Credential(r) => (credential_key(&r.credential), Some(encode(r)?)),
        Change::Plan(p) => (format!("p/{}", p.id).into_bytes(), Some(encode(p)?)),
        Change::RemovePlan(id) => (format!("p/{id}").into_bytes(), None),
        Change::Lease(l) => (format!("l/{}", l.id).into_bytes(), Some(encode(l)?)),
        Change::RemoveLease(id) => (format!("l/{id}").into_bytes(), None),
        Change::Booking(b) => (booking_key(&b.key), Some(encode(b)?)),
        Change::Mode(m) => (b"s/mode".to_vec(), Some(encode(m)?)),
        Change::DoorLockdown { door, locked } => (
            format!("s/lockdown/{door}").into_bytes(),
            if *locked { Some(encode(door)?) } else { None },
        ),
        Change::Device(d) => (format!("d/{}", d.id).into_bytes(), Some(encode(d)?)),
        Change::Token(t) => (format!("t/{}", t.name).into_bytes(), Some(encode(t)?)),
        Change::Staff(a) => (format!("u/{}", a.name).into_bytes(), Some(encode(a)?)),
        Change::RemoveStaff(n) => (format!("u/{n}").into_bytes(), None),
        Change::RemoveMember(id) => (member_key(*id), None),
        Change::RemoveCredential(c) => (credential_key(c), None),
        Change::RemoveDevice(id) => (format!("d/{id}").into_bytes(), None),
    })
}

/// Every tree a store has.
const TREES: [&str; 7] = [
    "meta", "data", "marks", "history", "state", "outbox", "audit",
];

/// Removes the snapshot files sled left half-written (`snap.*.generating`): a start on a full
/// disk leaves an empty one, and sled then refuses to open the store ("Read corrupted data")
/// even once there is space again. Only old ones, or empty ones a few seconds old: a running
/// gateway may be writing one right now (it renames it when done).
fn clear_partial_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("snap.") && name.ends_with(".generating")) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or_default();
        let stale = age > std::time::Duration::from_secs(60)
            || (meta.len() == 0 && age > std::time::Duration::from_secs(5));
        if stale {
            match std::fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::warn!(file = %e.path().display(), bytes = meta.len(), "a half-written snapshot removed before opening the store")
                }
                Err(err) => {
                    tracing::error!(file = %e.path().display(), error = %err, "cannot remove a half-written snapshot")
                }
            }
        }
    }
}

/// The reserve file's size: room kept on the data directory's disk so that a gateway on a full
/// disk can still start (read its store, log that it starts) and stop cleanly.
pub const RESERVE_BYTES: u64 = 32 * 1024 * 1024;

/// What to do with the reserve file, given whether it is there and the bytes free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// Leave things as they are.
    Keep,
    /// Make it: there is room for it and more.
    Make,
    /// Give its space up: the disk is (nearly) full and the gateway must start.
    Release,
}

/// The reserve's next step: made while at least four times its size is free, released when
/// less than its size is.
pub fn reserve_step(present: bool, free: u64) -> Reserve {
    match (present, free) {
        (false, f) if f >= 4 * RESERVE_BYTES => Reserve::Make,
        (true, f) if f < RESERVE_BYTES => Reserve::Release,
        _ => Reserve::Keep,
    }
}

/// Keeps the reserve file `<data>/reserve` ([`RESERVE_BYTES`]): made when there is room,
/// released (with an error in the log) when the disk is full, so that the gateway starts.
pub fn keep_reserve(dir: &Path) {
    let path = dir.join("reserve");
    let Some(free) = free_bytes(dir) else { return };
    match reserve_step(path.exists(), free) {
        Reserve::Keep => {}
        Reserve::Make => {
            // Allocated, not written: the blocks are the file's without wearing the card.
            let made = std::fs::File::create(&path).and_then(|f| {
                rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, RESERVE_BYTES)
                    .map_err(std::io::Error::from)?;
                f.sync_all()
            });
            if let Err(e) = made {
                let _ = std::fs::remove_file(&path);
                tracing::warn!(error = %e, "cannot make the disk reserve");
            }
        }
        Reserve::Release => match std::fs::remove_file(&path) {
            Ok(()) => tracing::error!(
                free,
                "the disk is full: its reserve released so the gateway can start; free space now"
            ),
            Err(e) => {
                tracing::error!(error = %e, "the disk is full and its reserve cannot be released")
            }
        },
    }
}

/// Bytes free for an unprivileged writer on the file system of `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, migrating older data.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        clear_partial_snapshots(dir);
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::LowSpace)
            .flush_every_ms(Some(1000));
        // sled's file lock outlives a dropped handle while its flusher thread winds down, so a
        // store closed a moment ago may still look busy: wait up to two seconds before saying so.
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    attempts += 1;
                    if attempts >= 40 {
                        return Err(StoreError::Busy);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(db_err(e)),
            }
        };
        let data = db.open_tree("data").map_err(db_err)?;
        let audit = db.open_tree("audit").map_err(db_err)?;
        let meta = db.open_tree("meta").map_err(db_err)?;
        let marks = db.open_tree("marks").map_err(db_err)?;
        let history = db.open_tree("history").map_err(db_err)?;
        let state = db.open_tree("state").map_err(db_err)?;
        let outbox = db.open_tree("outbox").map_err(db_err)?;
        let store = SledStore {
            clock: AuditClock::starting_after(
                audit
                    .last()
                    .map_err(db_err)?
                    .and_then(|(k, _)| AuditId::from_key(&k)),
            ),
            db,
            data,
            audit,
            meta,
            marks,
            history,
            state,
            outbox,
            write: std::sync::Mutex::new(()),
            archiving: std::sync::Mutex::new(()),
            dir: dir.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Restores a backup into `dir`, which must not hold a store: everything is read and
    /// checked (magic, schema, checksum) into `dir`, and on any problem `dir` is removed
    /// again. Returns the records restored. Older schemas are migrated at the next open.
    pub fn restore(dir: &Path, input: &mut dyn std::io::Read) -> Result<u64, BackupError> {
        if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
            return Err(BackupError::Bad(format!(
                "{} is not empty: restore into a new directory",
                dir.display()
            )));
        }
        let result = (|| {
            let mut r = Reader::open(input)?;
            let db = sled::Config::new()
                .path(dir)
                .cache_capacity(CACHE_BYTES)
                .mode(sled::Mode::LowSpace)
                .open()
                .map_err(db_err)?;
            let mut tree: Option<sled::Tree> = None;
            let mut batch = sled::Batch::default();
            let mut in_batch = 0;
            let mut n = 0u64;
            let mut max_outbox = 0u64;
            while let Some(item) = r.next_item()? {
                match item {
                    Item::Tree(name) => {
                        if let Some(t) = &tree {
                            t.apply_batch(std::mem::take(&mut batch)).map_err(db_err)?;
                            in_batch = 0;
                        }
                        if !TREES.contains(&name.as_str()) {
                            return Err(BackupError::Bad(format!("an unknown tree {name:?}")));
                        }
                        tree = Some(db.open_tree(&name).map_err(db_err)?);
                    }
                    Item::Record(k, v) => {
                        let Some(t) = &tree else {
                            return Err(BackupError::Bad("a record before any tree".into()));
                        };
                        if t.name() == b"outbox".as_slice() {
                            if let Ok(id) = <[u8; 8]>::try_from(k.as_slice()) {
                                max_outbox = max_outbox.max(u64::from_be_bytes(id));
                            }
                        }
                        batch.insert(k, v);
                        in_batch += 1;
                        n += 1;
                        if in_batch >= 10_000 {
                            t.apply_batch(std::mem::take(&mut batch)).map_err(db_err)?;
                            in_batch = 0;
                        }
                    }
                }
            }
            if let Some(t) = &tree {
                t.apply_batch(batch).map_err(db_err)?;
            }
            // Outbox ids keep increasing after the restore.
            while db.generate_id().map_err(db_err)? < max_outbox {}
            db.flush().map_err(db_err)?;
            Ok(n)
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }

    /// Writes `<data>.schema-<from>.backup` beside the data directory (kept, never removed), or,
    /// where that cannot be written (a hardened service may write only its state directory),
    /// `schema-<from>.backup` inside it.
    fn backup_before_migration(&self, from: u32) -> Result<(), StoreError> {
        let dir = self.dir.clone();
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into());
        let io = |e: std::io::Error| StoreError::Encode(format!("backup before migration: {e}"));
        let beside = dir.with_file_name(format!("{name}.schema-{from}.backup"));
        let (file, f) = match std::fs::File::create(&beside) {
            Ok(f) => (beside, f),
            Err(e) => {
                let inside = dir.join(format!("schema-{from}.backup"));
                tracing::warn!(
                    beside = %beside.display(),
                    error = %e,
                    inside = %inside.display(),
                    "cannot write the backup beside the data directory; writing it inside"
                );
                let f = std::fs::File::create(&inside).map_err(io)?;
                (inside, f)
            }
        };
        let mut w = std::io::BufWriter::new(f);
        Store::export(self, &mut w)
            .map_err(|e| StoreError::Encode(format!("backup before migration: {e}")))?;
        w.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)?;
        tracing::info!(file = %file.display(), from, to = SCHEMA_VERSION, "backed up before migrating");
        Ok(())
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let found = self.schema_version()?;
        if found == 0 {
            if !self.data.is_empty() || !self.audit.is_empty() {
                return Err(StoreError::NotAStore);
            }
        } else if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { found });
        }
        if found != 0 && found < SCHEMA_VERSION {
            // An upgrade: the data as it was is kept in a backup beside the directory first.
            self.backup_before_migration(found)?;
        }
        // The migration hook: one step per version, each run once, in order. Version 1 is the
        // first schema. 1 -> 2: past bookings may be archived (under `a/`, see
        // `archive_bookings`); a version 1 gateway would not see them, so the version goes up,
        // but nothing is converted (the running gateway archives what is old, hourly).
        let mut v = found.max(1);
        while v < SCHEMA_VERSION {
            #[allow(clippy::match_single_binding)]
            match v {
                _ => {}
            }
            v += 1;
        }
        if found != SCHEMA_VERSION {
            self.meta
                .insert("schema_version", &SCHEMA_VERSION.to_be_bytes())
                .map_err(db_err)?;
            self.db.flush().map_err(db_err)?;
        }
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.data
            .get(key)
            .map_err(db_err)?
            .map(|v| decode("data", key, &v))
            .transpose()
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
        self.data
            .scan_prefix(prefix)
            .map(|kv| {
                let (k, v) = kv.map_err(db_err)?;
                decode("data", &k, &v)
            })
            .collect()
    }

    fn records(
        &self,
        iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        iter.map(|kv| {
            let (k, v) = kv.map_err(db_err)?;
            let id = AuditId::from_key(&k).ok_or_else(|| StoreError::Corrupt {
                tree: "audit",
                key: format!("{k:?}"),
                why: "the key is not 16 bytes".into(),
            })?;
            Ok(AuditRecord {
                id,
                entry: decode("audit", id.to_string().as_bytes(), &v)?,
            })
        })
        .collect()
    }
}

impl Store for SledStore {
    fn commit(&self, changes: &[Change], audit: &AuditEntry) -> Result<AuditId, StoreError> {
        let kvs = changes
            .iter()
            .map(change_kv)
            .collect::<Result<Vec<_>, _>>()?;
        let entry = encode(audit)?;
        // A booking written again is live again: its archived copy goes.
        let unarchived: Vec<Vec<u8>> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Booking(b) => Some(archived_key(&booking_key(&b.key))),
                _ => None,
            })
            .collect();
        let guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.clock.next(audit.at);
        (&self.data, &self.audit)
            .transaction(|(data, log)| {
                for (k, v) in &kvs {
                    match v {
                        Some(v) => data.insert(k.as_slice(), v.as_slice())?,
                        None => data.remove(k.as_slice())?,
                    };
                }
                for k in &unarchived {
                    data.remove(k.as_slice())?;
                }
                log.insert(&id.to_key(), entry.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => db_err(e),
                TransactionError::Abort(()) => StoreError::Encode("transaction aborted".into()),
            })?;
        drop(guard);
        self.db.flush().map_err(db_err)?;
        Ok(id)
    }

    fn append_audit(&self, entries: &[AuditEntry]) -> Result<Vec<AuditId>, StoreError> {
        let encoded = entries
            .iter()
            .map(|e| encode(e).map(|v| (e.at, v)))
            .collect::<Result<Vec<_>, _>>()?;
        // Plain inserts, not a sled batch: a batch writes out what is pending and a manifest of
        // its own before its entries (two more synced pages on the SD card per decision), and
        // its atomicity buys nothing here. Nobody is told of an entry before the flush below
        // returns; a crash before it may keep some of them, none announced (as a crash between
        // the flush and the publish does).
        let mut ids = Vec::with_capacity(entries.len());
        let guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        for (at, v) in encoded {
            let id = self.clock.next(at);
            self.audit.insert(id.to_key(), v).map_err(db_err)?;
            ids.push(id);
        }
        drop(guard);
        self.audit.flush().map_err(db_err)?;
        Ok(ids)
    }

    fn member(&self, id: MemberId) -> Result<Option<Member>, StoreError> {
        self.get(&member_key(id))
    }

    fn members(&self) -> Result<Vec<Member>, StoreError> {
        self.scan(b"m/")
    }

    fn credential(&self, c: &Credential) -> Result<Option<CredentialRecord>, StoreError> {
        self.get(&credential_key(c))
    }

    fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        self.scan(b"c/")
    }

    fn plans(&self) -> Result<Vec<Plan>, StoreError> {
        self.scan(b"p/")
    }

    fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.scan(b"l/")
    }

    fn booking(&self, key: &BookingKey) -> Result<Option<Booking>, StoreError> {
        let live = booking_key(key);
        match self.get(&live)? {
            Some(b) => Ok(Some(b)),
            None => self.get(&archived_key(&live)),
        }
    }

    fn bookings(&self) -> Result<Vec<Booking>, StoreError> {
        // The archive first: a booking written again between the scans (archived to live) is
        // then seen twice, and the live copy wins; none moves the other way meanwhile.
        let _moves = self.archiving.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: std::collections::BTreeMap<BookingKey, Booking> = self
            .scan::<Booking>(b"a/")?
            .into_iter()
            .map(|b| (b.key.clone(), b))
            .collect();
        all.extend(
            self.scan::<Booking>(b"b/")?
                .into_iter()
                .map(|b| (b.key.clone(), b)),
        );
        Ok(all.into_values().collect())
    }

    fn live_bookings_where(
        &self,
        keep: &mut dyn FnMut(&Booking) -> bool,
    ) -> Result<Vec<Booking>, StoreError> {
        let mut out = Vec::new();
        for kv in self.data.scan_prefix(b"b/") {
            let (k, v) = kv.map_err(db_err)?;
            let b: Booking = decode("data", &k, &v)?;
            if keep(&b) {
                out.push(b);
            }
        }
        Ok(out)
    }

    fn archive_bookings(
        &self,
        over: &mut dyn FnMut(&Booking) -> bool,
    ) -> Result<usize, StoreError> {
        // Found without the write lock (decisions append to the log under it); moved under it
        // a chunk at a time, each only if it is still what was read, so a booking written
        // meanwhile stays live as written.
        let mut moved = 0;
        let mut move_chunk = |found: &mut Vec<(sled::IVec, sled::IVec)>| -> Result<(), StoreError> {
            let _moves = self.archiving.lock().unwrap_or_else(|p| p.into_inner());
            let _log = self.write.lock().unwrap_or_else(|p| p.into_inner());
            let mut batch = sled::Batch::default();
            for (k, v) in found.drain(..) {
                if self.data.get(&k).map_err(db_err)?.as_ref() == Some(&v) {
                    batch.insert(archived_key(&k), v);
                    batch.remove(k);
                    moved += 1;
                }
            }
            self.data.apply_batch(batch).map_err(db_err)?;
            Ok(())
        };
        let mut found = Vec::with_capacity(ARCHIVE_CHUNK);
        for kv in self.data.scan_prefix(b"b/") {
            let (k, v) = kv.map_err(db_err)?;
            let b: Booking = decode("data", &k, &v)?;
            if over(&b) {
                found.push((k, v));
                if found.len() == ARCHIVE_CHUNK {
                    move_chunk(&mut found)?;
                }
            }
        }
        move_chunk(&mut found)?;
        if moved > 0 {
            self.data.flush().map_err(db_err)?;
        }
        Ok(moved)
    }

    fn mode(&self) -> Result<Option<SiteMode>, StoreError> {
        self.get(b"s/mode")
    }

    fn locked_doors(&self) -> Result<Vec<crate::domain::DoorId>, StoreError> {
        self.scan(b"s/lockdown/")
    }

    fn devices(&self) -> Result<Vec<Device>, StoreError> {
        self.scan(b"d/")
    }

    fn tokens(&self) -> Result<Vec<crate::domain::ApiToken>, StoreError> {
        self.scan(b"t/")
    }

    fn staff(&self) -> Result<Vec<crate::domain::StaffAccount>, StoreError> {
        self.scan(b"u/")
    }

    fn put_marks(&self, marks: &[DeviceMark]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for m in marks {
            // The mark without a device says when the counters were stored; "~" sorts after
            // every identifier and is not one.
            let key = m.device.map_or("~as-of".to_string(), |d| d.to_string());
            batch.insert(key.as_bytes(), encode(m)?);
        }
        self.marks.apply_batch(batch).map_err(db_err)?;
        Ok(())
    }

    fn marks(&self) -> Result<Vec<DeviceMark>, StoreError> {
        self.marks
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(db_err)?;
                decode("marks", &k, &v)
            })
            .collect()
    }

    fn audit_after(
        &self,
        after: Option<AuditId>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let iter = match after {
            Some(a) => self.audit.range((
                std::ops::Bound::Excluded(a.to_key().to_vec()),
                std::ops::Bound::Unbounded,
            )),
            None => self.audit.iter(),
        };
        self.records(iter.take(limit))
    }

    fn audit_before(
        &self,
        before: Option<AuditId>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let iter = match before {
            Some(b) => self.audit.range(..b.to_key().to_vec()),
            None => self.audit.iter(),
        };
        self.records(iter.rev().take(limit))
    }

    fn prune_audit(&self, before: AuditId) -> Result<usize, StoreError> {
        let mut n = 0;
        loop {
            let mut batch = sled::Batch::default();
            let mut in_batch = 0;
            for kv in self.audit.range(..before.to_key().to_vec()).take(10_000) {
                let (k, _) = kv.map_err(db_err)?;
                batch.remove(k);
                in_batch += 1;
            }
            if in_batch == 0 {
                break;
            }
            self.audit.apply_batch(batch).map_err(db_err)?;
            n += in_batch;
        }
        Ok(n)
    }

    fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let mut v = self.records(self.audit.iter().rev().take(n))?;
        v.reverse();
        Ok(v)
    }

    fn audit_len(&self) -> Result<usize, StoreError> {
        Ok(self.audit.len())
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        match self.meta.get("schema_version").map_err(db_err)? {
            None => Ok(0),
            Some(v) => {
                let b: [u8; 4] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    tree: "meta",
                    key: "schema_version".into(),
                    why: "not 4 bytes".into(),
                })?;
                Ok(u32::from_be_bytes(b))
            }
        }
    }

    fn size_on_disk(&self) -> Option<u64> {
        self.db.size_on_disk().ok()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(db_err)?;
        Ok(())
    }

    fn add_history(&self, buckets: &[HistoryBucket]) -> Result<(), StoreError> {
        // One writer (the core) adds history, so read-merge-write needs no transaction.
        let mut batch = sled::Batch::default();
        let mut merged: Vec<HistoryBucket> = Vec::with_capacity(buckets.len());
        for b in buckets {
            let key = HistoryBucket::key(b.room, b.start);
            let mut b = *b;
            if let Some(i) = merged
                .iter()
                .position(|x| x.room == b.room && x.start == b.start)
            {
                merged[i].merge(&b);
                continue;
            }
            if let Some(old) = self.history.get(&key).map_err(db_err)? {
                let old = HistoryBucket::decode(&key, &old)?;
                let mut o = old;
                o.merge(&b);
                o.span_s = old.span_s.max(b.span_s);
                b = o;
            }
            merged.push(b);
        }
        for b in merged {
            batch.insert(HistoryBucket::key(b.room, b.start), b.encode().to_vec());
        }
        self.history.apply_batch(batch).map_err(db_err)?;
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
        self.history
            .range(HistoryBucket::key(room, from)..HistoryBucket::key(room, until))
            .map(|kv| {
                let (k, v) = kv.map_err(db_err)?;
                HistoryBucket::decode(&k, &v)
            })
            .collect()
    }

    fn compact_history(
        &self,
        rooms: &[RoomId],
        hourly_before: i64,
        drop_before: i64,
    ) -> Result<(usize, usize), StoreError> {
        let (mut merged, mut dropped) = (0, 0);
        for &room in rooms {
            let mut batch = sled::Batch::default();
            for kv in self
                .history
                .range(HistoryBucket::key(room, i64::MIN)..HistoryBucket::key(room, drop_before))
            {
                let (k, _) = kv.map_err(db_err)?;
                batch.remove(k);
                dropped += 1;
            }
            let old = self.history(room, drop_before, hourly_before)?;
            let plan = downsample(&old);
            merged += plan.remove.len();
            for (r, start) in plan.remove {
                batch.remove(HistoryBucket::key(r, start));
            }
            for b in plan.put {
                batch.insert(HistoryBucket::key(b.room, b.start), b.encode().to_vec());
            }
            // Per room, atomically: a crash leaves each room either before or after.
            self.history.apply_batch(batch).map_err(db_err)?;
        }
        Ok((merged, dropped))
    }

    fn put_state(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.state.insert(key.as_bytes(), value).map_err(db_err)?;
        Ok(())
    }

    fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .state
            .get(key.as_bytes())
            .map_err(db_err)?
            .map(|v| v.to_vec()))
    }

    fn push_outbox(&self, events: Vec<OutboxEvent>) -> Result<Vec<u64>, StoreError> {
        let mut batch = sled::Batch::default();
        let mut ids = Vec::new();
        for mut e in events {
            // sled's ids increase across restarts (it persists a high-water mark).
            e.id = self.db.generate_id().map_err(db_err)? + 1;
            batch.insert(&e.id.to_be_bytes(), encode(&e)?);
            ids.push(e.id);
        }
        self.outbox.apply_batch(batch).map_err(db_err)?;
        Ok(ids)
    }

    fn outbox(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.outbox
            .iter()
            .take(limit)
            .map(|kv| {
                let (k, v) = kv.map_err(db_err)?;
                decode("outbox", &k, &v)
            })
            .collect()
    }

    fn remove_outbox(&self, id: u64) -> Result<(), StoreError> {
        self.outbox.remove(id.to_be_bytes()).map_err(db_err)?;
        Ok(())
    }

    fn erase_member(
        &self,
        erasure: &super::Erasure,
        audit: &AuditEntry,
    ) -> Result<usize, StoreError> {
        let mut rewritten = 0;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for kv in self.audit.iter() {
            let (k, v) = kv.map_err(db_err)?;
            let e: AuditEntry = decode("audit", &k, &v)?;
            if let Some(n) = erasure.apply(&e) {
                batch.insert(k, encode(&n)?);
                rewritten += 1;
                in_batch += 1;
                if in_batch >= 10_000 {
                    self.audit
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(db_err)?;
                    in_batch = 0;
                }
            }
        }
        self.audit.apply_batch(batch).map_err(db_err)?;
        let changes = super::erasure_changes(self, erasure)?;
        self.commit(&changes, audit)?;
        Ok(rewritten)
    }

    fn export(&self, out: &mut dyn std::io::Write) -> Result<u64, BackupError> {
        let mut w = Writer::start(out, self.schema_version()?)?;
        let trees = [
            ("meta", &self.meta),
            ("data", &self.data),
            ("marks", &self.marks),
            ("history", &self.history),
            ("state", &self.state),
            ("outbox", &self.outbox),
        ];
        // Records and their audit entries are written together under this lock: while it is
        // held, the records and the log's end are read as of one moment. The log is
        // append-only, so its entries up to that end are read afterwards, without holding up
        // the doors.
        let last = {
            let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
            for (name, tree) in trees {
                w.tree(name)?;
                for kv in tree.iter() {
                    let (k, v) = kv.map_err(db_err)?;
                    w.record(&k, &v)?;
                }
            }
            self.audit.last().map_err(db_err)?.map(|(k, _)| k)
        };
        w.tree("audit")?;
        if let Some(last) = last {
            for kv in self.audit.range(..=last) {
                let (k, v) = kv.map_err(db_err)?;
                w.record(&k, &v)?;
            }
        }
        w.finish()
    }
}
