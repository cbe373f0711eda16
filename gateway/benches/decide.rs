//! Decision core benchmark: decisions per second on one core with 100,000 members and
//! 1,000,000 bookings on the example site, against the same decisions with each member's
//! bookings found by a linear scan of all bookings (what the per-member index saves).
//!
//! Prints `bench: decide_rate <n> per_s` and `bench: decide_vs_scan <n> ratio` (see
//! shared/design/BENCH.md). `--quick` (or running under `cargo test`, which passes no `--bench`)
//! uses 10,000 members and 100,000 bookings so that CI proves the benchmark still works.
//! Timing is reported, never asserted; the run does assert that the index and the scan agree.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use kombinat::access::{decide, BookingWindow, Snapshot, Tap};
use kombinat::domain::{
    Booking, BookingKey, BookingKind, BookingStatus, CardId, Credential, CredentialRecord,
    ExternalId, Member, MemberId, Reason, Role, RoomKind, SourceId, Window,
};

/// xorshift64*: deterministic, dependency-free randomness for the fixture.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn card(i: usize) -> Credential {
    let mut b = [0x04u8, 0, 0, 0, 0];
    b[1..].copy_from_slice(&(i as u32).to_be_bytes());
    Credential::Card(CardId::from_bytes(&b).unwrap_or_else(|_| unreachable!()))
}

struct ScanEntry {
    window: BookingWindow,
    room: usize,
    people: Vec<MemberId>,
    key: BookingKey,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let (n_members, n_bookings, n_taps, n_scan, rounds) = if quick {
        (10_000, 100_000, 100_000, 50, 3)
    } else {
        (100_000, 1_000_000, 1_000_000, 300, 5)
    };
    let site_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.example.toml");
    let site = Arc::new(kombinat::site_file::load(&site_path).unwrap_or_else(|e| panic!("{e}")));
    let base = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    // Members: staff, plan holders, tenants' people and people who only book.
    let orgs: Vec<_> = site.leases.iter().map(|l| l.organisation).collect();
    let mut members = Vec::with_capacity(n_members);
    let mut credentials = Vec::with_capacity(n_members);
    for i in 0..n_members {
        let id = MemberId::parse(&format!("m{i:07}")).unwrap();
        let mut m = Member::new(id, format!("Member {i}"));
        match rng.below(100) {
            0..=1 => m.roles = vec![Role::Staff],
            2..=41 => m.plan = Some(site.plans[rng.below(site.plans.len())].id),
            42..=51 => m.organisation = Some(orgs[rng.below(orgs.len())]),
            _ => {}
        }
        if rng.below(10) == 0 {
            m.certifications = vec![kombinat::domain::CertId::parse("induction-fablab").unwrap()];
        }
        members.push(m);
        credentials.push(CredentialRecord {
            credential: card(i),
            member: id,
            issued_at: base - Duration::days(400),
            revoked_at: None,
        });
    }

    // Bookings over a year around `base`: meetings, events, stays, guest passes.
    let hostel: Vec<usize> = (0..site.rooms.len())
        .filter(|&r| site.rooms[r].kind == RoomKind::Hostel)
        .collect();
    let source = SourceId::parse("bench").unwrap();
    let mut bookings = Vec::with_capacity(n_bookings);
    for i in 0..n_bookings {
        let kind = match rng.below(100) {
            0..=69 => BookingKind::Meeting,
            70..=79 => BookingKind::Event,
            80..=94 => BookingKind::Stay,
            _ => BookingKind::GuestPass,
        };
        let room = if kind == BookingKind::Stay {
            hostel[rng.below(hostel.len())]
        } else {
            rng.below(site.rooms.len())
        };
        let day = rng.below(360) as i64 - 180;
        let window = if kind == BookingKind::Stay {
            let arrival: NaiveDate = (base + Duration::days(day)).date_naive();
            Window::Days {
                arrival,
                departure: arrival + Duration::days(1 + rng.below(7) as i64),
            }
        } else {
            let start = base + Duration::days(day) + Duration::minutes(30 * rng.below(24) as i64);
            Window::Timed {
                start,
                end: start + Duration::minutes(30 * (1 + rng.below(8) as i64)),
            }
        };
        let attendees = (0..rng.below(4))
            .map(|_| members[rng.below(n_members)].id)
            .collect();
        bookings.push(Booking {
            key: BookingKey {
                source,
                external_id: ExternalId::parse(&format!("b{i}")).unwrap(),
            },
            room: site.rooms[room].id,
            kind,
            title: String::new(),
            organiser: Some(members[rng.below(n_members)].id),
            attendees,
            window,
            status: BookingStatus::Confirmed,
        });
    }

    // Taps: a third placed inside a random booking's window at its room's door (the booking
    // path), the rest random members at random doors over a week, one in ten with an unknown card.
    let mut taps: Vec<(Tap, DateTime<Utc>)> = Vec::with_capacity(n_taps);
    let empty = Snapshot::new(site.clone());
    for _ in 0..n_taps {
        if rng.below(3) == 0 {
            let b = &bookings[rng.below(n_bookings)];
            let w = empty.window_of(b);
            let people: Vec<MemberId> = b.people().collect();
            let who = people[rng.below(people.len())];
            let idx = who.as_str()[1..].parse::<usize>().unwrap_or(0);
            let room = site.room_index(b.room).unwrap_or(0);
            let door = *site.way(room).last().unwrap_or(&0);
            let t = w.from + (rng.next() % (w.until - w.from) as u64) as i64;
            taps.push((
                Tap {
                    door: site.doors[door].id,
                    credential: card(idx),
                },
                DateTime::from_timestamp(t, 0).unwrap_or(base),
            ));
        } else {
            let who = if rng.below(10) == 0 {
                n_members + rng.below(1000)
            } else {
                rng.below(n_members)
            };
            let door = site.doors[rng.below(site.doors.len())].id;
            let t = base + Duration::seconds(rng.below(7 * 86_400) as i64 - 3 * 86_400);
            taps.push((
                Tap {
                    door,
                    credential: card(who),
                },
                t,
            ));
        }
    }

    let scan: Vec<ScanEntry> = bookings
        .iter()
        .map(|b| ScanEntry {
            window: empty.window_of(b),
            room: site.room_index(b.room).unwrap_or(0),
            people: b.people().collect(),
            key: b.key.clone(),
        })
        .collect();
    drop(empty);

    let t = Instant::now();
    let snapshot = Snapshot::build(
        site.clone(),
        members,
        credentials,
        site.plans.clone(),
        site.leases.clone(),
        bookings,
    );
    println!(
        "snapshot: {} members, {} bookings, {} taps, built in {:.2} s",
        snapshot.member_count(),
        snapshot.booking_count(),
        taps.len(),
        t.elapsed().as_secs_f64()
    );

    // The indexed decision, one core.
    let mut rates = Vec::new();
    let mut allowed = 0usize;
    for _ in 0..rounds {
        allowed = 0;
        let t = Instant::now();
        for (tap, now) in &taps {
            let d = decide(black_box(&snapshot), black_box(tap), *now);
            allowed += usize::from(d.allowed());
            black_box(d);
        }
        rates.push(taps.len() as f64 / t.elapsed().as_secs_f64());
    }
    let decide_rate = median(rates);
    println!("allowed {allowed} of {} taps", taps.len());

    // The same decisions with the member's bookings found by scanning all of them. The scan
    // must agree with the index wherever a booking decided the tap.
    let booking_reasons = [
        Reason::Booking,
        Reason::Stay,
        Reason::Event,
        Reason::GuestPass,
    ];
    let outranks_bookings = [
        Reason::Staff,
        Reason::Exit,
        Reason::Emergency,
        Reason::Shelter,
        Reason::MemberSuspended,
        Reason::MemberNotYetValid,
        Reason::MemberExpired,
        Reason::CredentialRevoked,
        Reason::Lockdown,
        Reason::CertificationMissing,
        Reason::RoomFull,
        Reason::AntiPassback,
    ];
    let mut checked = 0usize;
    let t = Instant::now();
    for (tap, now) in taps.iter().take(n_scan) {
        let Some((rec, _)) = snapshot.credential(&tap.credential) else {
            black_box(decide(&snapshot, tap, *now));
            continue;
        };
        let door = site.door_index(tap.door).unwrap_or(0);
        let reach = site.reach(door);
        let ts = now.timestamp();
        let active: Vec<&BookingKey> = scan
            .iter()
            .filter(|e| {
                e.window.from <= ts
                    && ts < e.window.until
                    && reach.contains(e.room)
                    && e.people.contains(&rec.member)
            })
            .map(|e| &e.key)
            .collect();
        let d = decide(&snapshot, tap, *now);
        if booking_reasons.contains(&d.reason) {
            let key = d.booking.as_ref().map(|b| &b.key);
            assert!(
                key.is_some_and(|k| active.contains(&k)),
                "index and scan disagree on {tap:?} at {now}"
            );
            checked += 1;
        } else if !active.is_empty() {
            // The scan found a booking the index did not use: only a check that comes before
            // the rights (or a condition after them) may explain it.
            assert!(
                outranks_bookings.contains(&d.reason),
                "index missed a booking for {tap:?} at {now}: {}",
                d.reason
            );
        }
        black_box((active, d));
    }
    let scan_rate = n_scan as f64 / t.elapsed().as_secs_f64();
    println!("scan: {n_scan} decisions, {checked} resting on a booking, agree with the index");
    println!(
        "scan_rate {scan_rate:.0} per_s{}",
        if quick {
            " (quick mode: smaller data)"
        } else {
            ""
        }
    );
    println!("bench: decide_rate {decide_rate:.0} per_s");
    println!("bench: decide_vs_scan {:.0} ratio", decide_rate / scan_rate);
}
