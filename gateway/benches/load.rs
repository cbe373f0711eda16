//! `rss_loaded` and `start_to_ready`: the `kombinat run` process over a store with 10,000
//! members (a card each), 100,000 bookings (an hour each, from 60 days ago to 9 days ahead: about
//! 16,500 not yet over) and 1,000,000 audit entries, as a gateway that ran before and is started
//! again (its "as of" mark is in the store, bookings over for two days archived as its hourly job
//! leaves them). Start to ready is from the
//! process's spawn to `/health` answering 200 (the store open, the snapshot built, the embedded
//! broker up, the gateway connected and subscribed); resident memory (`VmRSS` from
//! `/proc/<pid>/status`) is read three seconds later, after the first allow-list round, with
//! the peak (`VmHWM`) beside it.
//!
//! `cargo bench -p kombinat-gateway --bench load` (full size); `-- --quick` (CI: a tenth of the
//! members and bookings, a twentieth of the log); `-- --members N --bookings N --audit N` to see
//! what each part costs.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use kombinat::domain::{
    Booking, BookingKey, BookingKind, BookingStatus, CardId, Credential, CredentialRecord,
    DeviceMark, DoorId, ExternalId, Member, MemberId, Reason, RoomId, SourceId, Window,
};
use kombinat::store::{Actor, AuditEntry, AuditEvent, Change, SledStore, Store};

fn fill(data: &Path, members: usize, bookings: usize, audit: usize) {
    let store = SledStore::open(data).unwrap();
    let now = Utc::now();
    let who = AuditEntry::change(now, Actor::Cli("bench".into()), "bench data");
    let plan = "coworking-day".parse().unwrap();
    for chunk in (0..members).collect::<Vec<_>>().chunks(1_000) {
        let mut changes = Vec::with_capacity(chunk.len() * 2);
        for &i in chunk {
            let id = MemberId::parse(&format!("m{i}")).unwrap();
            let mut m = Member::new(id, format!("Member {i}"));
            m.plan = Some(plan);
            changes.push(Change::Member(m));
            changes.push(Change::Credential(CredentialRecord {
                credential: Credential::Card(CardId::parse(&format!("04{i:08X}")).unwrap()),
                member: id,
                issued_at: now,
                revoked_at: None,
            }));
        }
        store.commit(&changes, &who).unwrap();
    }
    let rooms: Vec<RoomId> = ["meeting-1", "meeting-2", "meeting-3", "meeting-4", "conf-b"]
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    let source = SourceId::parse("bench").unwrap();
    for chunk in (0..bookings).collect::<Vec<_>>().chunks(5_000) {
        let changes: Vec<Change> = chunk
            .iter()
            .map(|&i| {
                // Spread over sixty days either side of now, an hour each.
                let start = now + chrono::Duration::minutes((i as i64 % 172_800) - 86_400);
                Change::Booking(Booking {
                    key: BookingKey {
                        source,
                        external_id: ExternalId::parse(&format!("b{i}")).unwrap(),
                    },
                    room: rooms[i % rooms.len()],
                    kind: BookingKind::Meeting,
                    title: format!("Meeting {i}"),
                    organiser: Some(MemberId::parse(&format!("m{}", i % members)).unwrap()),
                    attendees: vec![],
                    window: Window::Timed {
                        start,
                        end: start + chrono::Duration::hours(1),
                    },
                    status: BookingStatus::Confirmed,
                })
            })
            .collect();
        store.commit(&changes, &who).unwrap();
    }
    let door = DoorId::parse("d-cowork-in").unwrap();
    for chunk in (0..audit).collect::<Vec<_>>().chunks(10_000) {
        let entries: Vec<AuditEntry> = chunk
            .iter()
            .map(|&i| {
                let at = now - chrono::Duration::seconds((audit - i) as i64 * 30);
                AuditEntry {
                    at,
                    actor: Actor::Door(door),
                    event: AuditEvent::Decision {
                        door,
                        card: Some(CardId::parse(&format!("04{:08X}", i % members)).unwrap()),
                        reason: Reason::Plan,
                        unlock_ms: 5_000,
                        member: Some(MemberId::parse(&format!("m{}", i % members)).unwrap()),
                        booking: None,
                        offline: false,
                        tap: Some(i as u64),
                    },
                }
            })
            .collect();
        store.append_audit(&entries).unwrap();
    }
    // As a gateway that ran before leaves it: bookings over for more than two days archived
    // (its hourly job), the "as of" mark stored.
    let before = (now - chrono::Duration::days(kombinat::registry::BOOKINGS_KEPT_DAYS)).timestamp();
    let archived = store
        .archive_bookings(
            &mut |b| matches!(b.window, Window::Timed { end, .. } if end.timestamp() < before),
        )
        .unwrap();
    eprintln!("load: {archived} of {bookings} bookings archived (over for more than two days)");
    store
        .put_marks(&[DeviceMark {
            at: Some(Utc::now()),
            ..Default::default()
        }])
        .unwrap();
    store.flush().unwrap();
}

fn main() {
    common::logs();
    use common::{free_addr, health, status_mb};
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let (mut members, mut bookings, mut audit) = if quick {
        (1_000, 10_000, 50_000)
    } else {
        (10_000, 100_000, 1_000_000)
    };
    // `--members N`, `--bookings N`, `--audit N` to see what each costs.
    for (flag, slot) in [
        ("--members", &mut members),
        ("--bookings", &mut bookings),
        ("--audit", &mut audit),
    ] {
        if let Some(v) = args
            .iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
        {
            *slot = v.parse().expect("a number");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let filled = Instant::now();
    fill(&data, members, bookings, audit);
    eprintln!(
        "load: {members} members, {bookings} bookings, {audit} log entries written in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    let (http, mqtt) = (free_addr(), free_addr());
    let config = dir.path().join("kombinat.toml");
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.example.toml");
    std::fs::write(
        &config,
        format!(
            "site = {:?}\ndata = {:?}\n[mqtt]\nbroker = \"embedded\"\nlisten = \"{mqtt}\"\n[http]\nlisten = \"{http}\"\n",
            site.display().to_string(),
            data.display().to_string()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kombinat"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn,rumqttd=off")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    while health(http) != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the gateway was not ready within two minutes"
        );
        if let Some(s) = child.try_wait().unwrap() {
            panic!("the gateway exited: {s}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let ready = started.elapsed();
    let at_ready = status_mb(child.id(), "VmRSS:");
    std::thread::sleep(Duration::from_secs(3));
    let rss = status_mb(child.id(), "VmRSS:");
    let peak = status_mb(child.id(), "VmHWM:");
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let stopped = child.wait().unwrap();
    assert!(stopped.success(), "the gateway stopped cleanly: {stopped}");
    println!("bench: start_to_ready {} ms", ready.as_millis());
    println!("bench: rss_loaded {rss:.1} MB");
    println!("bench: rss_peak {peak:.1} MB");
    println!("bench: rss_at_ready {at_ready:.1} MB");
}
