//! The contract every [`Store`] keeps: [`suite`] and [`audit_log_is_ordered_and_pages`], run
//! here against the memory store and by the gateway against sled (in a temp dir). Compiled
//! for tests and with the `testing` feature.
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::domain::{
    BookingKind, BookingStatus, CardId, ExternalId, Pin, PlanGrant, RoomId, SourceId,
    WeeklySchedule, Window,
};

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()
}

pub fn member(id: &str) -> Member {
    Member::new(MemberId::parse(id).unwrap(), format!("Member {id}"))
}

pub fn booking(ext: &str, room: &str) -> Booking {
    Booking {
        key: BookingKey {
            source: SourceId::parse("coworking").unwrap(),
            external_id: ExternalId::parse(ext).unwrap(),
        },
        room: RoomId::parse(room).unwrap(),
        kind: BookingKind::Meeting,
        title: "Дизайн-рев'ю".into(),
        organiser: Some(MemberId::parse("m-1").unwrap()),
        attendees: vec![MemberId::parse("m-2").unwrap()],
        window: Window::Timed {
            start: t0(),
            end: t0() + Duration::hours(2),
        },
        status: BookingStatus::Confirmed,
    }
}

fn plan(id: &str) -> Plan {
    Plan {
        id: PlanId::parse(id).unwrap(),
        name: "Coworking day".into(),
        name_uk: None,
        grants: vec![PlanGrant {
            zones: vec![],
            rooms: vec![RoomId::parse("coworking").unwrap()],
            schedule: WeeklySchedule::parse(["mon-fri 08:00-20:00"]).unwrap(),
        }],
        closed_on_holidays: true,
    }
}

pub fn change(summary: &str) -> AuditEntry {
    AuditEntry::change(t0(), Actor::Cli("test".into()), summary)
}

/// Everything written comes back exactly, in key order.
fn records_round_trip(s: &dyn Store) {
    let mut m1 = member("m-1");
    m1.email = Some(crate::domain::Email::parse("m1@example.ua").unwrap());
    let m2 = member("m-2");
    let card = CredentialRecord {
        credential: Credential::Card(CardId::parse("04A1B2C3").unwrap()),
        member: m1.id,
        issued_at: t0(),
        revoked_at: None,
    };
    let pin = CredentialRecord {
        credential: Credential::Pin(Pin::parse("4321").unwrap()),
        member: m2.id,
        issued_at: t0(),
        revoked_at: Some(t0()),
    };
    let lease = Lease {
        id: LeaseId::parse("l-1").unwrap(),
        organisation: crate::domain::OrgId::parse("studio").unwrap(),
        room: RoomId::parse("office-1").unwrap(),
        from: Some(t0()),
        until: None,
        schedule: None,
    };
    let (b1, b2) = (booking("b-2", "meeting-1"), booking("b-1", "meeting-2"));
    s.commit(
        &[
            Change::Member(m2.clone()),
            Change::Member(m1.clone()),
            Change::Credential(card.clone()),
            Change::Credential(pin.clone()),
            Change::Plan(plan("p-1")),
            Change::Lease(lease.clone()),
            Change::Booking(b1.clone()),
            Change::Booking(b2.clone()),
        ],
        &change("seed"),
    )
    .unwrap();
    assert_eq!(s.members().unwrap(), vec![m1.clone(), m2.clone()]);
    assert_eq!(s.member(m1.id).unwrap(), Some(m1));
    assert_eq!(s.member(MemberId::parse("m-9").unwrap()).unwrap(), None);
    assert_eq!(s.credentials().unwrap(), vec![card.clone(), pin.clone()]);
    assert_eq!(s.credential(&pin.credential).unwrap(), Some(pin));
    assert_eq!(s.plans().unwrap(), vec![plan("p-1")]);
    assert_eq!(s.leases().unwrap(), vec![lease]);
    assert_eq!(s.bookings().unwrap(), vec![b2, b1.clone()]);
    assert_eq!(s.booking(&b1.key).unwrap(), Some(b1));
}

/// A change replaces, removes, and always leaves exactly one audit entry.
fn changes_replace_and_are_audited(s: &dyn Store) {
    let before = s.audit_len().unwrap();
    let mut b = booking("x", "meeting-1");
    s.commit(
        &[Change::Booking(b.clone()), Change::Plan(plan("p-2"))],
        &change("add"),
    )
    .unwrap();
    b.status = BookingStatus::Cancelled;
    s.commit(
        &[
            Change::Booking(b.clone()),
            Change::RemovePlan(plan("p-2").id),
        ],
        &change("cancel"),
    )
    .unwrap();
    assert_eq!(s.booking(&b.key).unwrap(), Some(b));
    assert_eq!(s.bookings().unwrap().len(), 3);
    assert_eq!(s.plans().unwrap(), vec![plan("p-1")]);
    assert_eq!(s.audit_len().unwrap(), before + 2);
    let tail = s.audit_tail(2).unwrap();
    assert_eq!(tail[0].entry, change("add"));
    assert_eq!(tail[1].entry, change("cancel"));
}

/// The log is append-only and time-ordered, even when the clock steps back.
pub fn audit_log_is_ordered_and_pages(s: &dyn Store) {
    let entries: Vec<AuditEntry> = (0..25)
        .map(|i| {
            // The clock jumps back by an hour at entry 10.
            let at = t0() + Duration::seconds(i) - Duration::hours(if i >= 10 { 1 } else { 0 });
            AuditEntry::change(at, Actor::System, format!("e{i}"))
        })
        .collect();
    let ids = s.append_audit(&entries).unwrap();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = s.audit_after(after, 7).unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.id);
        all.extend(page);
    }
    assert_eq!(all.len(), 25);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    // Backwards, newest first, in pages: the same records in reverse.
    let mut back = Vec::new();
    let mut before = None;
    loop {
        let page = s.audit_before(before, 6).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.windows(2).all(|w| w[0].id > w[1].id));
        before = page.last().map(|r| r.id);
        back.extend(page);
    }
    back.reverse();
    assert_eq!(back, all, "paging backwards gives every record once");
    let texts: Vec<_> = all.iter().map(|r| r.entry.clone()).collect();
    assert_eq!(
        texts, entries,
        "entries come back in the order they were appended"
    );
    assert_eq!(
        s.audit_tail(3)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        ids[22..]
    );
    assert_eq!(s.audit_tail(1000).unwrap().len(), 25);
    // Retention: what was written before a key goes, the rest stays in order.
    assert_eq!(s.prune_audit(all[10].id).unwrap(), 10);
    assert_eq!(s.audit_after(None, 100).unwrap(), all[10..].to_vec());
    assert_eq!(s.prune_audit(all[10].id).unwrap(), 0);
}

fn history_merges_pages_and_downsamples(s: &dyn Store) {
    use crate::store::history::{FINE_S, HOUR_S};
    let room = RoomId::parse("meeting-1").unwrap();
    let other = RoomId::parse("meeting-10").unwrap();
    let h = t0().timestamp(); // 09:00 UTC, a whole hour
    let fine = |start: i64, count: u64, peak: u32| HistoryBucket {
        room,
        start,
        span_s: FINE_S,
        person_s: count * 300,
        observed_s: 300,
        peak,
        occupied_s: if count > 0 { 300 } else { 0 },
    };
    // Twelve buckets of 09:00-10:00 (count = index), one of 10:00, one in another room whose
    // name starts with this room's.
    let mut all: Vec<HistoryBucket> = (0..12)
        .map(|i| fine(h + i * 300, i as u64, i as u32))
        .collect();
    all.push(fine(h + 3600, 2, 4));
    s.add_history(&all).unwrap();
    s.add_history(&[HistoryBucket {
        room: other,
        ..fine(h, 9, 9)
    }])
    .unwrap();
    // A partial bucket written at a stop and continued after the restart: merged.
    let mut half = fine(h + 3600, 4, 6);
    half.observed_s = 100;
    half.person_s = 400;
    s.add_history(&[half]).unwrap();
    let got = s.history(room, h, h + 7200).unwrap();
    assert_eq!(got.len(), 13);
    assert!(
        got.windows(2).all(|w| w[0].start < w[1].start),
        "time order"
    );
    let last = got[12];
    assert_eq!(
        (last.person_s, last.observed_s, last.peak),
        (600 + 400, 400, 6)
    );
    assert_eq!(
        s.history(room, h + 300, h + 900).unwrap().len(),
        2,
        "[from, until)"
    );
    assert!(s.history(room, h, h).unwrap().is_empty());
    assert_eq!(s.history(other, h, h + 7200).unwrap().len(), 1);
    // 09:00-10:00 becomes one hourly bucket; nothing dropped yet.
    let (merged, dropped) = s
        .compact_history(&[room, other], h + 3600, h - 86_400)
        .unwrap();
    assert_eq!((merged, dropped), (11, 0));
    let got = s.history(room, h, h + 7200).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].span_s, got[0].observed_s, got[0].peak),
        (HOUR_S, 3600, 11)
    );
    assert_eq!(got[0].person_s, (0..12).sum::<u64>() * 300);
    assert_eq!(got[1].span_s, FINE_S, "10:00 is after the cut");
    // Compacting again changes nothing; dropping removes what is older than the cut.
    assert_eq!(
        s.compact_history(&[room], h + 3600, h - 86_400).unwrap(),
        (0, 0)
    );
    assert_eq!(
        s.compact_history(&[room], h + 3600, h + 3600).unwrap(),
        (0, 1)
    );
    assert_eq!(s.history(room, i64::MIN, i64::MAX).unwrap().len(), 1);
}

fn state_and_outbox(s: &dyn Store) {
    assert_eq!(s.state("esp-rfid/door-1").unwrap(), None);
    s.put_state("esp-rfid/door-1", b"{}").unwrap();
    s.put_state("esp-rfid/door-1", b"{\"a\":1}").unwrap();
    assert_eq!(
        s.state("esp-rfid/door-1").unwrap().as_deref(),
        Some(b"{\"a\":1}".as_slice())
    );
    let ev = |n: u32| OutboxEvent {
        id: 0,
        kind: "no_show".into(),
        at: t0(),
        body: format!("{{\"n\":{n}}}"),
    };
    let ids = s.push_outbox(vec![ev(1), ev(2)]).unwrap();
    let more = s.push_outbox(vec![ev(3)]).unwrap();
    assert!(ids[0] < ids[1] && ids[1] < more[0], "{ids:?} {more:?}");
    let q = s.outbox(10).unwrap();
    assert_eq!(
        q.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[0], ids[1], more[0]]
    );
    assert_eq!(q[1].body, "{\"n\":2}");
    s.remove_outbox(ids[0]).unwrap();
    assert_eq!(s.outbox(1).unwrap()[0].id, ids[1]);
}

fn staff_accounts_are_stored_and_removed(s: &dyn Store) {
    let name = crate::domain::StaffName::parse("olena").unwrap();
    let account = crate::domain::StaffAccount {
        name: name.clone(),
        role: crate::domain::StaffRole::Operator,
        password: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        created_at: t0(),
    };
    s.commit(
        &[Change::Staff(account.clone())],
        &AuditEntry::change(t0(), Actor::System, "staff olena added"),
    )
    .unwrap();
    assert_eq!(s.staff().unwrap(), vec![account]);
    s.commit(
        &[Change::RemoveStaff(name)],
        &AuditEntry::change(t0(), Actor::System, "staff olena removed"),
    )
    .unwrap();
    assert!(s.staff().unwrap().is_empty());
}

fn devices_are_stored_and_removed(s: &dyn Store) {
    let d = crate::domain::Device {
        id: crate::domain::DeviceId::parse("door-x").unwrap(),
        kind: crate::domain::DeviceKind::AlertFeed,
        door: None,
        room: None,
        key: crate::domain::DeviceKey::from_bytes([7; 32]),
        added_at: t0(),
    };
    s.commit(
        &[Change::Device(d.clone())],
        &AuditEntry::change(t0(), Actor::System, "device door-x registered"),
    )
    .unwrap();
    assert!(s.devices().unwrap().iter().any(|x| x.id == d.id));
    s.commit(
        &[Change::RemoveDevice(d.id)],
        &AuditEntry::change(t0(), Actor::System, "device door-x removed"),
    )
    .unwrap();
    assert!(!s.devices().unwrap().iter().any(|x| x.id == d.id));
}

fn an_erasure_pseudonymises_the_log_and_removes_the_member(s: &dyn Store) {
    let gone = member("m-9");
    let card = CardId::parse("04AABB01").unwrap();
    let mut b = booking("b-erase", "meeting-1");
    b.organiser = Some(gone.id);
    b.attendees = vec![gone.id, MemberId::parse("m-2").unwrap()];
    s.commit(
        &[
            Change::Member(gone.clone()),
            Change::Credential(CredentialRecord {
                credential: Credential::Card(card),
                member: gone.id,
                issued_at: t0(),
                revoked_at: None,
            }),
            Change::Booking(b.clone()),
        ],
        &change("04AABB01 issued to m-9"),
    )
    .unwrap();
    let door = crate::domain::DoorId::parse("d-cowork-in").unwrap();
    let decision = |m: &str, c: Option<CardId>| AuditEntry {
        at: t0(),
        actor: Actor::Door(door),
        event: AuditEvent::Decision {
            door,
            card: c,
            reason: Reason::Plan,
            unlock_ms: 5000,
            member: Some(MemberId::parse(m).unwrap()),
            booking: None,
            offline: false,
            tap: Some(1),
        },
    };
    let other = decision("m-2", Some(CardId::parse("04CCDD02").unwrap()));
    s.append_audit(&[decision("m-9", Some(card)), other.clone()])
        .unwrap();
    let before = s.audit_len().unwrap();
    let erasure = Erasure {
        member: gone.id,
        pseudonym: MemberId::parse("erased-0a1b2c").unwrap(),
        cards: vec![card],
    };
    let n = s
        .erase_member(&erasure, &change("member erased-0a1b2c erased"))
        .unwrap();
    assert_eq!(n, 2, "the decision and the change naming the member");
    assert!(s.member(gone.id).unwrap().is_none());
    assert!(s.credential(&Credential::Card(card)).unwrap().is_none());
    let b = s.booking(&b.key).unwrap().unwrap();
    assert_eq!((b.organiser, b.attendees.len()), (None, 1));
    let log = s.audit_tail(4).unwrap();
    assert_eq!(
        s.audit_len().unwrap(),
        before + 1,
        "no entry lost, one added"
    );
    let texts: Vec<String> = log.iter().map(|r| format!("{:?}", r.entry)).collect();
    assert!(
        texts
            .iter()
            .all(|t| !t.contains("m-9") && !t.contains("04AABB01")),
        "{texts:#?}"
    );
    assert!(texts
        .iter()
        .any(|t| t.contains("(erased card) issued to erased-0a1b2c")));
    assert_eq!(log[2].entry, other, "others' entries untouched");
    match &log[1].entry.event {
        AuditEvent::Decision { member, card, .. } => {
            assert_eq!((*member, *card), (Some(erasure.pseudonym), None));
        }
        e => panic!("{e:?}"),
    }
    // Again (a run cut short and repeated): nothing left to rewrite.
    assert_eq!(s.erase_member(&erasure, &change("again")).unwrap(), 0);
}

fn doors_locked_down_are_kept_until_released(s: &dyn Store) {
    use crate::domain::DoorId;
    let (a, b) = (DoorId::parse("d-a").unwrap(), DoorId::parse("d-b").unwrap());
    assert!(s.locked_doors().unwrap().is_empty());
    for door in [b, a] {
        s.commit(
            &[Change::DoorLockdown { door, locked: true }],
            &change("lock"),
        )
        .unwrap();
    }
    assert_eq!(s.locked_doors().unwrap(), vec![a, b], "by id");
    s.commit(
        &[Change::DoorLockdown {
            door: a,
            locked: false,
        }],
        &change("release"),
    )
    .unwrap();
    assert_eq!(s.locked_doors().unwrap(), vec![b]);
    s.commit(
        &[Change::DoorLockdown {
            door: b,
            locked: false,
        }],
        &change("release"),
    )
    .unwrap();
    assert!(s.locked_doors().unwrap().is_empty());
}

pub fn suite(s: &dyn Store) {
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    records_round_trip(s);
    changes_replace_and_are_audited(s);
    history_merges_pages_and_downsamples(s);
    state_and_outbox(s);
    staff_accounts_are_stored_and_removed(s);
    devices_are_stored_and_removed(s);
    an_erasure_pseudonymises_the_log_and_removes_the_member(s);
    doors_locked_down_are_kept_until_released(s);
    s.flush().unwrap();
}

#[test]
fn memory_store_keeps_the_contract() {
    suite(&MemoryStore::new());
    audit_log_is_ordered_and_pages(&MemoryStore::new());
}
