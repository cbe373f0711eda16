//! The sled store against the contract every store keeps (`kombinat_core::store::contract`),
//! and what only sled has: reopening, schema migration, a full disk.

use chrono::Duration;
use kombinat_core::store::contract::{
    audit_log_is_ordered_and_pages, booking, change, member, suite, t0,
};

use super::*;
use crate::domain::{Booking, MemberId, Window};

#[test]
fn sled_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    suite(&SledStore::open(dir.path()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    audit_log_is_ordered_and_pages(&SledStore::open(dir.path()).unwrap());
}

#[test]
fn a_reopened_sled_store_returns_exactly_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let (members, bookings, audit) = {
        let s = SledStore::open(dir.path()).unwrap();
        suite(&s);
        s.append_audit(&[change("last words")]).unwrap();
        (
            s.members().unwrap(),
            s.bookings().unwrap(),
            s.audit_tail(100).unwrap(),
        )
    };
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.members().unwrap(), members);
    assert_eq!(s.bookings().unwrap(), bookings);
    assert_eq!(s.audit_tail(100).unwrap(), audit);
    // New entries keep counting after the old ones, even with an earlier clock.
    let id = s
        .append_audit(&[AuditEntry::change(
            t0() - Duration::days(1),
            Actor::System,
            "after reopen",
        )])
        .unwrap()[0];
    assert!(id > audit.last().unwrap().id);
}

#[test]
fn a_store_from_a_newer_kombinat_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::NewerSchema { found }) if found == SCHEMA_VERSION + 1
    ));
}

#[test]
fn a_record_that_does_not_decode_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        s.commit(&[Change::Member(member("m-1"))], &change("seed"))
            .unwrap();
        s.data.insert("m/m-2", b"{not json".as_slice()).unwrap();
        s.flush().unwrap();
    }
    let s = SledStore::open(dir.path()).unwrap();
    let err = s.members().unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { tree: "data", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("m/m-2"));
    // The good record is still there.
    assert!(s.member(MemberId::parse("m-1").unwrap()).unwrap().is_some());
}

#[test]
fn past_bookings_are_archived_out_of_what_a_start_reads_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path()).unwrap();
    let old = booking("old", "meeting-1");
    let mut new = booking("new", "meeting-2");
    new.window = Window::Timed {
        start: t0() + Duration::days(10),
        end: t0() + Duration::days(10) + Duration::hours(1),
    };
    s.commit(
        &[Change::Booking(old.clone()), Change::Booking(new.clone())],
        &change("import"),
    )
    .unwrap();
    let cut = (t0() + Duration::days(1)).timestamp();
    let mut over = |b: &Booking| match b.window {
        Window::Timed { end, .. } => end.timestamp() < cut,
        Window::Days { .. } => false,
    };
    assert_eq!(s.archive_bookings(&mut over).unwrap(), 1);
    assert_eq!(s.archive_bookings(&mut over).unwrap(), 0, "archived once");
    assert_eq!(
        s.live_bookings_where(&mut |_| true).unwrap(),
        vec![new.clone()]
    );
    // Still in the store, by key and in the listing (by key: "new" before "old").
    assert_eq!(s.booking(&old.key).unwrap(), Some(old.clone()));
    assert_eq!(s.bookings().unwrap(), vec![new.clone(), old.clone()]);
    // And in a backup, restored as it was.
    let mut file = Vec::new();
    s.export(&mut file).unwrap();
    let restored = tempfile::tempdir().unwrap();
    let into = restored.path().join("data");
    SledStore::restore(&into, &mut file.as_slice()).unwrap();
    let r = SledStore::open(&into).unwrap();
    assert_eq!(r.bookings().unwrap(), vec![new.clone(), old.clone()]);
    assert_eq!(
        r.live_bookings_where(&mut |_| true).unwrap(),
        vec![new.clone()]
    );
    // Written again, it is live again, once.
    let mut again = old.clone();
    again.title = "moved back".into();
    s.commit(&[Change::Booking(again.clone())], &change("edit"))
        .unwrap();
    assert_eq!(s.bookings().unwrap(), vec![new.clone(), again.clone()]);
    assert_eq!(
        s.live_bookings_where(&mut |_| true).unwrap(),
        vec![new.clone(), again.clone()]
    );
    assert_eq!(s.booking(&old.key).unwrap(), Some(again));
}

/// A store with a member in it, as a schema 1 build left it: (its parent, its directory).
fn a_schema_1_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let s = SledStore::open(&dir).unwrap();
    s.commit(&[Change::Member(member("m-1"))], &change("seed"))
        .unwrap();
    s.meta
        .insert("schema_version", &1u32.to_be_bytes())
        .unwrap();
    s.flush().unwrap();
    (parent, dir)
}

#[test]
fn a_store_of_an_older_schema_is_backed_up_then_migrated() {
    let (parent, dir) = a_schema_1_store();
    let s = SledStore::open(&dir).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(s.members().unwrap(), vec![member("m-1")]);
    // The data as it was, beside the directory, restorable; its header says schema 1 (a
    // version 1 binary restores it).
    let backup = parent.path().join("data.schema-1.backup");
    let mut file = std::fs::File::open(&backup).expect("a backup before the migration");
    assert_eq!(backup::Reader::open(&mut file).unwrap().schema, 1);
    let mut file = std::fs::File::open(&backup).unwrap();
    let restored = parent.path().join("restored");
    SledStore::restore(&restored, &mut file).unwrap();
    assert_eq!(
        SledStore::open(&restored).unwrap().members().unwrap(),
        vec![member("m-1")]
    );
    // Opened again, nothing more to migrate: no second backup is written over it.
    let modified = std::fs::metadata(&backup).unwrap().modified().unwrap();
    drop(s);
    let _s = SledStore::open(&dir).unwrap();
    assert_eq!(
        std::fs::metadata(&backup).unwrap().modified().unwrap(),
        modified
    );
}

#[test]
fn where_the_backup_cannot_go_beside_the_store_it_goes_inside() {
    let (parent, dir) = a_schema_1_store();
    // Something that is not a writable file where the backup would go (as /var/lib is to a
    // hardened service: not writable).
    std::fs::create_dir(parent.path().join("data.schema-1.backup")).unwrap();
    let s = SledStore::open(&dir).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let mut file = std::fs::File::open(dir.join("schema-1.backup")).expect("the backup inside");
    assert_eq!(backup::Reader::open(&mut file).unwrap().schema, 1);
    assert_eq!(s.members().unwrap(), vec![member("m-1")]);
}

#[test]
fn a_half_written_snapshot_left_by_a_start_on_a_full_disk_does_not_keep_the_store_shut() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        s.commit(
            &[Change::Member(member("olena"))],
            &AuditEntry::change(t0(), Actor::System, "member olena added"),
        )
        .unwrap();
        s.flush().unwrap();
    }
    // What a failed start on a full disk leaves: an empty snapshot being generated.
    let partial = dir.path().join("snap.00000000000000A0.generating");
    let f = std::fs::File::create(&partial).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(30))
        .unwrap();
    drop(f);
    let s = SledStore::open(dir.path()).unwrap();
    assert!(!partial.exists(), "removed before opening");
    assert!(s.member(member("olena").id).unwrap().is_some());
    assert!(super::free_bytes(dir.path()).is_some_and(|b| b > 0));
}

#[test]
fn the_disk_reserve_is_made_with_room_to_spare_and_released_on_a_full_disk() {
    use super::sled_store::{reserve_step, Reserve, RESERVE_BYTES};
    assert_eq!(reserve_step(false, 10 * RESERVE_BYTES), Reserve::Make);
    assert_eq!(
        reserve_step(false, 2 * RESERVE_BYTES),
        Reserve::Keep,
        "not on a tight disk"
    );
    assert_eq!(reserve_step(true, 2 * RESERVE_BYTES), Reserve::Keep);
    assert_eq!(reserve_step(true, RESERVE_BYTES / 2), Reserve::Release);
    assert_eq!(reserve_step(false, 0), Reserve::Keep);
    // With room to spare, the reserve is made.
    let dir = tempfile::tempdir().unwrap();
    super::keep_reserve(dir.path());
    if super::free_bytes(dir.path()).is_some_and(|f| f >= 4 * RESERVE_BYTES) {
        let len = std::fs::metadata(dir.path().join("reserve")).unwrap().len();
        assert_eq!(len, RESERVE_BYTES);
    }
}
