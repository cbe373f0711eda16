//! Decision tests: one table row per right and condition, then modes and state, then properties.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::domain::{
    BookingKey, BookingStatus, CardId, CertId, CredentialRecord, ExternalId, Member, MemberStatus,
    OrgId, Pin, PlanId, Role, RoomId, SourceId, Window,
};

use super::fixture::test_site;

/// Small builders for the fixture world.
pub(crate) struct World {
    pub snapshot: Snapshot,
    next_card: u32,
}

pub(crate) fn card(n: u32) -> Credential {
    Credential::Card(CardId::from_bytes(&n.to_be_bytes()).unwrap())
}

fn at(s: &str) -> DateTime<Utc> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return t.with_timezone(&Utc);
    }
    let n = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
        .unwrap_or_else(|_| panic!("bad time {s}"));
    test_site().local_instant(n.date(), n.time())
}

fn mid(s: &str) -> MemberId {
    MemberId::parse(s).unwrap()
}

impl World {
    pub fn new() -> Self {
        let site = test_site();
        let plans = site.plans.clone();
        let leases = site.leases.clone();
        let mut snapshot = Snapshot::new(site);
        snapshot.set_plans(plans);
        snapshot.set_leases(leases);
        World {
            snapshot,
            next_card: 1,
        }
    }

    /// Adds a member, tweaked by `f`, with one card; returns the card.
    pub fn member(&mut self, id: &str, f: impl FnOnce(&mut Member)) -> Credential {
        let mut m = Member::new(mid(id), id);
        f(&mut m);
        let c = card(self.next_card);
        self.next_card += 1;
        self.snapshot.upsert_member(m);
        self.snapshot.upsert_credential(CredentialRecord {
            credential: c,
            member: mid(id),
            issued_at: at("2026-01-01 00:00"),
            revoked_at: None,
        });
        c
    }

    pub fn booking(
        &mut self,
        ext: &str,
        room: &str,
        kind: BookingKind,
        people: &[&str],
        window: Window,
    ) -> BookingKey {
        let key = BookingKey {
            source: SourceId::parse("test").unwrap(),
            external_id: ExternalId::parse(ext).unwrap(),
        };
        let b = Booking {
            key: key.clone(),
            room: RoomId::parse(room).unwrap(),
            kind,
            title: ext.into(),
            organiser: Some(mid(people[0])),
            attendees: people[1..].iter().map(|p| mid(p)).collect(),
            window,
            status: BookingStatus::Confirmed,
        };
        b.validate().unwrap();
        self.snapshot.upsert_booking(b);
        key
    }

    pub fn decide(&self, c: Credential, door: &str, when: &str) -> Decision {
        decide(
            &self.snapshot,
            &Tap {
                door: DoorId::parse(door).unwrap(),
                credential: c,
            },
            at(when),
        )
    }
}

fn timed(a: &str, b: &str) -> Window {
    Window::Timed {
        start: at(a),
        end: at(b),
    }
}

/// The fixture: one member per right and condition, named after it.
fn world() -> World {
    let mut w = World::new();
    w.member("staff", |m| m.roles = vec![Role::Staff]);
    w.member("security", |m| m.roles = vec![Role::Security]);
    w.member("day", |m| m.plan = Some(PlanId::parse("day").unwrap()));
    w.member("lab", |m| {
        m.plan = Some(PlanId::parse("lab").unwrap());
        m.certifications = vec![CertId::parse("induction-fablab").unwrap()];
    });
    w.member("lab-no-induction", |m| {
        m.plan = Some(PlanId::parse("lab").unwrap())
    });
    w.member("tenant", |m| {
        m.organisation = Some(OrgId::parse("studio").unwrap())
    });
    w.member("tenant-b", |m| {
        m.organisation = Some(OrgId::parse("studio-b").unwrap())
    });
    w.member("booker", |_| {});
    w.member("attendee", |_| {});
    w.member("night", |_| {});
    w.member("guest", |_| {});
    w.member("dst-guest", |_| {});
    w.member("speaker", |_| {});
    w.member("visitor", |_| {});
    w.member("suspended", |m| {
        m.plan = Some(PlanId::parse("day").unwrap());
        m.status = MemberStatus::Suspended {
            reason: "unpaid".into(),
        };
    });
    w.member("expired", |m| {
        m.plan = Some(PlanId::parse("day").unwrap());
        m.valid_until = Some(at("2026-11-01 00:00"));
    });
    w.member("future", |m| {
        m.plan = Some(PlanId::parse("day").unwrap());
        m.valid_from = Some(at("2026-12-01 00:00"));
    });
    w.member("nobody", |_| {});
    w.booking(
        "meeting",
        "meeting-1",
        BookingKind::Meeting,
        &["booker", "attendee", "suspended"],
        timed("2026-11-26 14:00", "2026-11-26 16:00"),
    );
    w.booking(
        "late",
        "meeting-1",
        BookingKind::Meeting,
        &["night"],
        timed("2026-11-26 22:00", "2026-11-27 02:00"),
    );
    w.booking(
        "stay",
        "hostel-h1",
        BookingKind::Stay,
        &["guest"],
        Window::Days {
            arrival: chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
            departure: chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
        },
    );
    w.booking(
        "dst-stay",
        "hostel-h2",
        BookingKind::Stay,
        &["dst-guest"],
        Window::Days {
            arrival: chrono::NaiveDate::from_ymd_opt(2026, 10, 23).unwrap(),
            departure: chrono::NaiveDate::from_ymd_opt(2026, 10, 25).unwrap(),
        },
    );
    w.booking(
        "forum",
        "hall",
        BookingKind::Event,
        &["speaker"],
        timed("2026-11-27 09:00", "2026-11-27 18:00"),
    );
    w.booking(
        "visit",
        "office-1",
        BookingKind::GuestPass,
        &["visitor"],
        timed("2026-11-26 10:00", "2026-11-26 12:00"),
    );
    w
}

fn cred_of(w: &World, member: &str) -> Credential {
    w.snapshot
        .credentials_of(mid(member))
        .next()
        .map(|c| c.credential)
        .unwrap_or_else(|| panic!("no card for {member}"))
}

/// (what, member, door, when: local "YYYY-MM-DD HH:MM[:SS]" or RFC 3339 UTC, expected reason)
/// 2026-11-26 is a Thursday. Kyiv moves to summer time on 2026-03-29 and back on 2026-10-25.
const TABLE: &[(&str, &str, &str, &str, Reason)] = &[
    (
        "staff open every door at any hour",
        "staff",
        "d-office-1",
        "2026-11-29 03:00",
        Reason::Staff,
    ),
    (
        "security is staff too",
        "security",
        "d-h1",
        "2026-11-29 03:00",
        Reason::Staff,
    ),
    (
        "staff skip the lab induction",
        "staff",
        "d-fablab",
        "2026-11-26 10:00",
        Reason::Staff,
    ),
    (
        "plan inside its hours",
        "day",
        "d-cowork-in",
        "2026-11-26 09:00",
        Reason::Plan,
    ),
    (
        "plan on its first minute",
        "day",
        "d-cowork-in",
        "2026-11-26 08:00:00",
        Reason::Plan,
    ),
    (
        "plan closes at its end",
        "day",
        "d-cowork-in",
        "2026-11-26 20:00:00",
        Reason::OutsideSchedule,
    ),
    (
        "plan on a weekend",
        "day",
        "d-cowork-in",
        "2026-11-28 12:00",
        Reason::OutsideSchedule,
    ),
    (
        "plan paused on a holiday",
        "day",
        "d-cowork-in",
        "2026-12-25 10:00",
        Reason::Holiday,
    ),
    (
        "plan opens the way in",
        "day",
        "d-main",
        "2026-11-26 09:00",
        Reason::Plan,
    ),
    (
        "plan does not open an office",
        "day",
        "d-office-1",
        "2026-11-26 09:00",
        Reason::NoRight,
    ),
    (
        "lease around the clock",
        "tenant",
        "d-office-1",
        "2026-11-29 03:00",
        Reason::Lease,
    ),
    (
        "lease opens the stairs on the way",
        "tenant",
        "d-stairs-f1",
        "2026-11-29 03:00",
        Reason::Lease,
    ),
    (
        "lease opens the main door",
        "tenant",
        "d-main",
        "2026-11-29 03:00",
        Reason::Lease,
    ),
    (
        "lease does not open the hostel",
        "tenant",
        "d-hostel",
        "2026-11-29 03:00",
        Reason::NoRight,
    ),
    (
        "lease with hours, inside",
        "tenant-b",
        "d-office-1",
        "2026-11-29 07:00",
        Reason::Lease,
    ),
    (
        "lease with hours, outside",
        "tenant-b",
        "d-office-1",
        "2026-11-29 22:00",
        Reason::OutsideSchedule,
    ),
    (
        "booking: grace starts 15 min before",
        "booker",
        "d-meeting-1",
        "2026-11-26 13:45:00",
        Reason::Booking,
    ),
    (
        "booking: one second before grace",
        "booker",
        "d-meeting-1",
        "2026-11-26 13:44:59",
        Reason::BookingNotActive,
    ),
    (
        "booking: last second of grace",
        "booker",
        "d-meeting-1",
        "2026-11-26 16:14:59",
        Reason::Booking,
    ),
    (
        "booking: grace over",
        "booker",
        "d-meeting-1",
        "2026-11-26 16:15:00",
        Reason::BookingNotActive,
    ),
    (
        "booking for an attendee",
        "attendee",
        "d-meeting-1",
        "2026-11-26 15:00",
        Reason::Booking,
    ),
    (
        "booking opens the main door",
        "booker",
        "d-main",
        "2026-11-26 14:30",
        Reason::Booking,
    ),
    (
        "booking opens no other room",
        "booker",
        "d-fablab",
        "2026-11-26 14:30",
        Reason::NoRight,
    ),
    (
        "booking across midnight, after midnight",
        "night",
        "d-meeting-1",
        "2026-11-27 01:00",
        Reason::Booking,
    ),
    (
        "booking across midnight, before start",
        "night",
        "d-meeting-1",
        "2026-11-26 21:44:59",
        Reason::BookingNotActive,
    ),
    (
        "booking across midnight, grace end",
        "night",
        "d-meeting-1",
        "2026-11-27 02:15:00",
        Reason::BookingNotActive,
    ),
    (
        "stay: before check-in",
        "guest",
        "d-h1",
        "2026-11-26 13:59:59",
        Reason::BookingNotActive,
    ),
    (
        "stay: at check-in",
        "guest",
        "d-h1",
        "2026-11-26 14:00:00",
        Reason::Stay,
    ),
    (
        "stay: at night",
        "guest",
        "d-h1",
        "2026-11-27 03:00",
        Reason::Stay,
    ),
    (
        "stay: the hostel floor door",
        "guest",
        "d-hostel",
        "2026-11-27 03:00",
        Reason::Stay,
    ),
    (
        "stay: the stairs on the way",
        "guest",
        "d-stairs-f1",
        "2026-11-27 03:00",
        Reason::Stay,
    ),
    (
        "stay: not another hostel room",
        "guest",
        "d-h2",
        "2026-11-27 03:00",
        Reason::NoRight,
    ),
    (
        "stay: check-out day, before",
        "guest",
        "d-h1",
        "2026-11-28 10:59:59",
        Reason::Stay,
    ),
    (
        "stay: check-out day, at check-out",
        "guest",
        "d-h1",
        "2026-11-28 11:00:00",
        Reason::BookingNotActive,
    ),
    (
        "stay: check-in in summer time (14:00 EEST = 11:00Z)",
        "dst-guest",
        "d-h2",
        "2026-10-23T11:00:00Z",
        Reason::Stay,
    ),
    (
        "stay: a second before summer check-in",
        "dst-guest",
        "d-h2",
        "2026-10-23T10:59:59Z",
        Reason::BookingNotActive,
    ),
    (
        "stay: check-out on the night clocks go back (11:00 EET = 09:00Z)",
        "dst-guest",
        "d-h2",
        "2026-10-25T08:59:59Z",
        Reason::Stay,
    ),
    (
        "stay: check-out after clocks went back",
        "dst-guest",
        "d-h2",
        "2026-10-25T09:00:00Z",
        Reason::BookingNotActive,
    ),
    (
        "event with grace",
        "speaker",
        "d-hall",
        "2026-11-27 08:45",
        Reason::Event,
    ),
    (
        "event not yet",
        "speaker",
        "d-hall",
        "2026-11-27 06:00",
        Reason::BookingNotActive,
    ),
    (
        "event far away is no right at all",
        "speaker",
        "d-hall",
        "2026-11-26 12:00",
        Reason::NoRight,
    ),
    (
        "guest pass, no grace",
        "visitor",
        "d-office-1",
        "2026-11-26 10:00:00",
        Reason::GuestPass,
    ),
    (
        "guest pass, a second early",
        "visitor",
        "d-office-1",
        "2026-11-26 09:59:59",
        Reason::BookingNotActive,
    ),
    (
        "guest pass ends on time",
        "visitor",
        "d-office-1",
        "2026-11-26 12:00:00",
        Reason::BookingNotActive,
    ),
    (
        "guest pass opens the way",
        "visitor",
        "d-main",
        "2026-11-26 11:00",
        Reason::GuestPass,
    ),
    (
        "suspended member with a valid booking",
        "suspended",
        "d-meeting-1",
        "2026-11-26 14:30",
        Reason::MemberSuspended,
    ),
    (
        "expired member",
        "expired",
        "d-cowork-in",
        "2026-11-26 09:00",
        Reason::MemberExpired,
    ),
    (
        "member not yet valid",
        "future",
        "d-cowork-in",
        "2026-11-26 09:00",
        Reason::MemberNotYetValid,
    ),
    (
        "lab with induction",
        "lab",
        "d-fablab",
        "2026-11-26 10:00",
        Reason::Plan,
    ),
    (
        "lab without induction",
        "lab-no-induction",
        "d-fablab",
        "2026-11-26 10:00",
        Reason::CertificationMissing,
    ),
    (
        "no induction needed on the way to the lab",
        "lab-no-induction",
        "d-main",
        "2026-11-26 10:00",
        Reason::Plan,
    ),
    (
        "public hours open to any member",
        "nobody",
        "d-gallery",
        "2026-11-24 12:00",
        Reason::PublicHours,
    ),
    (
        "public hours closed on Monday",
        "nobody",
        "d-gallery",
        "2026-11-23 12:00",
        Reason::NoRight,
    ),
    (
        "public hours closed on a holiday",
        "nobody",
        "d-gallery",
        "2026-12-25 12:00",
        Reason::NoRight,
    ),
    (
        "no right anywhere",
        "nobody",
        "d-cowork-in",
        "2026-11-26 09:00",
        Reason::NoRight,
    ),
    (
        "anyone may leave through an exit reader",
        "nobody",
        "d-cowork-out",
        "2026-11-29 03:00",
        Reason::Exit,
    ),
    (
        "leaving after the plan's hours",
        "day",
        "d-cowork-out",
        "2026-11-26 21:00",
        Reason::Exit,
    ),
    // Kyiv summer time starts 2026-03-29 03:00: 08:00 local is 06:00Z before, 05:00Z after.
    (
        "plan opens 08:00 EET before spring forward",
        "day",
        "d-cowork-in",
        "2026-03-27T06:00:00Z",
        Reason::Plan,
    ),
    (
        "plan still shut 07:59 EET",
        "day",
        "d-cowork-in",
        "2026-03-27T05:59:59Z",
        Reason::OutsideSchedule,
    ),
    (
        "plan opens 08:00 EEST after spring forward",
        "day",
        "d-cowork-in",
        "2026-03-30T05:00:00Z",
        Reason::Plan,
    ),
    (
        "plan shut 07:59 EEST",
        "day",
        "d-cowork-in",
        "2026-03-30T04:59:59Z",
        Reason::OutsideSchedule,
    ),
    (
        "plan opens 08:00 EET after fall back",
        "day",
        "d-cowork-in",
        "2026-10-26T06:00:00Z",
        Reason::Plan,
    ),
    (
        "plan shut 07:00 EET after fall back",
        "day",
        "d-cowork-in",
        "2026-10-26T05:00:00Z",
        Reason::OutsideSchedule,
    ),
];

#[test]
fn every_right_and_condition_gives_its_reason() {
    let w = world();
    let mut failures = Vec::new();
    for &(what, member, door, when, expected) in TABLE {
        let d = w.decide(cred_of(&w, member), door, when);
        if d.reason != expected {
            failures.push(format!(
                "{what}: {member} at {door} {when}: expected {expected}, got {} ({})",
                d.reason,
                explain(&w.snapshot, &d)
            ));
        }
        assert_eq!(d.allowed(), expected.is_allow());
        assert_eq!(d.unlock_ms > 0, expected.is_allow(), "{what}");
        assert_eq!(d.member, Some(mid(member)), "{what}");
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_decision_names_the_booking_it_rests_on_and_the_door_s_unlock_time() {
    let w = world();
    let d = w.decide(cred_of(&w, "booker"), "d-meeting-1", "2026-11-26 14:30");
    assert_eq!(
        d.booking.as_ref().map(|b| b.key.external_id.as_str()),
        Some("meeting")
    );
    assert_eq!(d.unlock_ms, 3000);
    let d = w.decide(cred_of(&w, "booker"), "d-meeting-1", "2026-11-26 17:00");
    assert_eq!(d.reason, Reason::BookingNotActive);
    assert_eq!(
        d.booking.as_ref().map(|b| b.key.external_id.as_str()),
        Some("meeting")
    );
    let d = w.decide(cred_of(&w, "day"), "d-cowork-in", "2026-11-26 09:00");
    assert_eq!((d.booking, d.unlock_ms), (None, 5000));
}

#[test]
fn unknown_cards_doors_and_revoked_cards_are_denied() {
    let mut w = world();
    let d = w.decide(card(0xdead), "d-main", "2026-11-26 09:00");
    assert_eq!((d.reason, d.member), (Reason::UnknownCredential, None));
    let d = w.decide(cred_of(&w, "day"), "d-nowhere", "2026-11-26 09:00");
    assert_eq!(d.reason, Reason::UnknownDoor);
    let c = cred_of(&w, "day");
    w.snapshot.upsert_credential(CredentialRecord {
        credential: c,
        member: mid("day"),
        issued_at: at("2026-01-01 00:00"),
        revoked_at: Some(at("2026-11-26 08:30")),
    });
    assert_eq!(
        w.decide(c, "d-cowork-in", "2026-11-26 08:29").reason,
        Reason::Plan
    );
    assert_eq!(
        w.decide(c, "d-cowork-in", "2026-11-26 09:00").reason,
        Reason::CredentialRevoked
    );
}

#[test]
fn a_pin_works_like_a_card() {
    let mut w = world();
    let pin = Credential::Pin(Pin::parse("4242").unwrap());
    w.snapshot.upsert_credential(CredentialRecord {
        credential: pin,
        member: mid("day"),
        issued_at: at("2026-01-01 00:00"),
        revoked_at: None,
    });
    assert_eq!(
        w.decide(pin, "d-cowork-in", "2026-11-26 09:00").reason,
        Reason::Plan
    );
}

#[test]
fn a_full_room_turns_members_away_but_not_staff() {
    let mut w = world();
    let room = w
        .snapshot
        .site()
        .room_index(RoomId::parse("coworking").unwrap())
        .unwrap();
    w.snapshot.set_occupancy(room, 2);
    assert_eq!(
        w.decide(cred_of(&w, "day"), "d-cowork-in", "2026-11-26 09:00")
            .reason,
        Reason::Plan
    );
    w.snapshot.set_occupancy(room, 3);
    assert_eq!(
        w.decide(cred_of(&w, "day"), "d-cowork-in", "2026-11-26 09:00")
            .reason,
        Reason::RoomFull
    );
    assert_eq!(
        w.decide(cred_of(&w, "staff"), "d-cowork-in", "2026-11-26 09:00")
            .reason,
        Reason::Staff
    );
    // Leaving is not limited by capacity.
    assert_eq!(
        w.decide(cred_of(&w, "day"), "d-cowork-out", "2026-11-26 09:00")
            .reason,
        Reason::Exit
    );
}

#[test]
fn only_a_count_kept_by_people_counters_fills_a_room_at_the_door() {
    use kombinat_protocol::room::Basis;
    let mut w = world();
    let room = w
        .snapshot
        .site()
        .room_index(RoomId::parse("coworking").unwrap())
        .unwrap();
    // One staff card tapped 200 times at the turnstile: a count from entries alone, far over
    // the capacity of 3. It turns no one away.
    w.snapshot
        .set_occupancy(room, capacity_count(200, Basis::Entries, 0.7));
    let d = w.decide(cred_of(&w, "day"), "d-cowork-in", "2026-11-26 09:00");
    assert_eq!(d.reason, Reason::Plan);
    // Nor do motion or CO2, nor a counter's count while it is unsure.
    for (basis, confidence) in [
        (Basis::Motion, 0.6),
        (Basis::Co2, 0.5),
        (Basis::Counter, 0.5),
    ] {
        w.snapshot
            .set_occupancy(room, capacity_count(50, basis, confidence));
        let d = w.decide(cred_of(&w, "day"), "d-cowork-in", "2026-11-26 09:00");
        assert_eq!(d.reason, Reason::Plan, "{basis:?} at {confidence}");
    }
    // People counters at the doorways, sure of their count: the room is full, and the reason
    // says what the count rests on.
    w.snapshot
        .set_occupancy(room, capacity_count(3, Basis::Counter, 0.95));
    let d = w.decide(cred_of(&w, "day"), "d-cowork-in", "2026-11-26 09:00");
    assert_eq!(d.reason, Reason::RoomFull);
    let line = explain(&w.snapshot, &d);
    assert!(line.contains("people counters"), "{line}");
    assert!(line.contains("count 3 inside"), "{line}");
}

#[test]
fn lockdown_lets_only_staff_and_security_through() {
    let mut w = world();
    w.snapshot.set_mode(SiteMode::Lockdown);
    for (m, door, expected) in [
        ("staff", "d-main", Reason::Staff),
        ("security", "d-office-1", Reason::Staff),
        ("day", "d-cowork-in", Reason::Lockdown),
        ("tenant", "d-office-1", Reason::Lockdown),
        ("booker", "d-meeting-1", Reason::Lockdown),
    ] {
        assert_eq!(
            w.decide(cred_of(&w, m), door, "2026-11-26 14:30").reason,
            expected,
            "{m}"
        );
    }
}

#[test]
fn a_door_locked_down_alone_lets_only_staff_through_it_and_the_others_stay_as_they_were() {
    let mut w = world();
    let t = "2026-11-26 14:30";
    assert!(w.decide(cred_of(&w, "tenant"), "d-office-1", t).allowed());
    w.snapshot
        .set_door_locked(DoorId::parse("d-office-1").unwrap(), true);
    assert_eq!(
        w.decide(cred_of(&w, "tenant"), "d-office-1", t).reason,
        Reason::Lockdown
    );
    assert_eq!(
        w.decide(cred_of(&w, "security"), "d-office-1", t).reason,
        Reason::Staff
    );
    assert!(
        w.decide(cred_of(&w, "day"), "d-cowork-in", t).allowed(),
        "another door is not locked down"
    );
    w.snapshot
        .set_door_locked(DoorId::parse("d-office-1").unwrap(), false);
    assert!(w.decide(cred_of(&w, "tenant"), "d-office-1", t).allowed());
}

#[test]
fn emergency_releases_egress_doors_only() {
    let mut w = world();
    w.snapshot.set_mode(SiteMode::Emergency);
    let t = "2026-11-26 03:00";
    assert_eq!(
        w.decide(cred_of(&w, "nobody"), "d-main", t).reason,
        Reason::Emergency
    );
    assert_eq!(
        w.decide(cred_of(&w, "suspended"), "d-stairs-f1", t).reason,
        Reason::Emergency
    );
    assert_eq!(
        w.decide(cred_of(&w, "nobody"), "d-office-1", t).reason,
        Reason::NoRight
    );
    assert_eq!(
        w.decide(cred_of(&w, "tenant"), "d-office-1", t).reason,
        Reason::Lease
    );
    assert_eq!(
        w.decide(card(0xdead), "d-main", t).reason,
        Reason::UnknownCredential
    );
}

#[test]
fn shelter_mode_opens_the_way_to_the_shelter_for_every_member_and_keeps_other_rules() {
    let mut w = world();
    w.snapshot.set_mode(SiteMode::Shelter);
    let t = "2026-11-26 03:00";
    assert_eq!(
        w.decide(cred_of(&w, "nobody"), "d-main", t).reason,
        Reason::Shelter
    );
    assert_eq!(
        w.decide(cred_of(&w, "nobody"), "d-shelter", t).reason,
        Reason::Shelter
    );
    assert_eq!(
        w.decide(cred_of(&w, "nobody"), "d-office-1", t).reason,
        Reason::NoRight
    );
    assert_eq!(
        w.decide(cred_of(&w, "tenant"), "d-office-1", t).reason,
        Reason::Lease
    );
    // "For everyone": a suspended member reaches the shelter too, and nowhere else.
    assert_eq!(
        w.decide(cred_of(&w, "suspended"), "d-shelter", t).reason,
        Reason::Shelter
    );
    assert_eq!(
        w.decide(cred_of(&w, "suspended"), "d-cowork-in", t).reason,
        Reason::MemberSuspended
    );
}

#[test]
fn anti_passback_needs_an_exit_before_the_next_entry() {
    let mut w = world();
    let c = cred_of(&w, "day");
    let t = "2026-11-26 09:00";
    let steps = [
        ("d-cowork-in", Reason::Plan),
        ("d-cowork-in", Reason::AntiPassback),
        ("d-cowork-out", Reason::Exit),
        ("d-cowork-out", Reason::AntiPassback),
        ("d-cowork-in", Reason::Plan),
    ];
    for (i, (door, expected)) in steps.into_iter().enumerate() {
        let d = w.decide(c, door, t);
        assert_eq!(d.reason, expected, "step {i}");
        w.snapshot.record(&d);
    }
    // Another member is not affected.
    assert_eq!(
        w.decide(cred_of(&w, "staff"), "d-cowork-in", t).reason,
        Reason::Staff
    );
}

#[test]
fn cancelling_or_moving_a_booking_takes_effect_at_once() {
    let mut w = world();
    let c = cred_of(&w, "booker");
    assert_eq!(
        w.decide(c, "d-meeting-1", "2026-11-26 14:30").reason,
        Reason::Booking
    );
    let (b, _) = w
        .snapshot
        .booking(&BookingKey {
            source: SourceId::parse("test").unwrap(),
            external_id: ExternalId::parse("meeting").unwrap(),
        })
        .unwrap();
    let mut moved = (**b).clone();
    moved.window = timed("2026-11-26 18:00", "2026-11-26 19:00");
    w.snapshot.upsert_booking(moved.clone());
    assert_eq!(
        w.decide(c, "d-meeting-1", "2026-11-26 14:30").reason,
        Reason::BookingNotActive
    );
    assert_eq!(
        w.decide(c, "d-meeting-1", "2026-11-26 18:30").reason,
        Reason::Booking
    );
    moved.status = BookingStatus::Cancelled;
    w.snapshot.upsert_booking(moved);
    assert_eq!(
        w.decide(c, "d-meeting-1", "2026-11-26 18:30").reason,
        Reason::NoRight
    );
    assert_eq!(w.snapshot.booking_count(), 5);
}

#[test]
fn the_room_index_lists_a_room_s_bookings_by_time() {
    let w = world();
    let room = w
        .snapshot
        .site()
        .room_index(RoomId::parse("meeting-1").unwrap())
        .unwrap();
    let day: Vec<_> = w
        .snapshot
        .bookings_in_room(room, at("2026-11-26 00:00"), at("2026-11-27 00:00"))
        .map(|(b, _)| b.key.external_id.to_string())
        .collect();
    assert_eq!(day, ["meeting", "late"]);
    let next_morning: Vec<_> = w
        .snapshot
        .bookings_in_room(room, at("2026-11-27 01:00"), at("2026-11-27 12:00"))
        .map(|(b, _)| b.key.external_id.to_string())
        .collect();
    assert_eq!(next_morning, ["late"]);
}

#[test]
fn changing_a_booking_s_people_moves_the_right_with_them() {
    let mut w = world();
    let (b, _) = w
        .snapshot
        .booking(&BookingKey {
            source: SourceId::parse("test").unwrap(),
            external_id: ExternalId::parse("meeting").unwrap(),
        })
        .unwrap();
    let mut b = (**b).clone();
    b.attendees = vec![mid("nobody")];
    w.snapshot.upsert_booking(b);
    assert_eq!(
        w.decide(cred_of(&w, "attendee"), "d-meeting-1", "2026-11-26 15:00")
            .reason,
        Reason::NoRight
    );
    assert_eq!(
        w.decide(cred_of(&w, "nobody"), "d-meeting-1", "2026-11-26 15:00")
            .reason,
        Reason::Booking
    );
    assert_eq!(
        w.decide(cred_of(&w, "booker"), "d-meeting-1", "2026-11-26 15:00")
            .reason,
        Reason::Booking
    );
    // A freed slot reused by a new booking carries no trace of the old one.
    w.booking(
        "other",
        "hall",
        BookingKind::Meeting,
        &["attendee"],
        timed("2026-11-26 15:00", "2026-11-26 16:00"),
    );
    assert_eq!(
        w.decide(cred_of(&w, "attendee"), "d-meeting-1", "2026-11-26 15:00")
            .reason,
        Reason::NoRight
    );
    assert_eq!(
        w.decide(cred_of(&w, "attendee"), "d-hall", "2026-11-26 15:00")
            .reason,
        Reason::Booking
    );
}

#[test]
fn a_near_miss_is_the_nearest_booking_within_twelve_hours_and_only_then() {
    let mut w = world();
    // The hostel guest also had a meeting two days before; a long stay must not make it "near".
    w.booking(
        "old",
        "meeting-1",
        BookingKind::Meeting,
        &["guest"],
        timed("2026-11-25 09:00", "2026-11-25 10:00"),
    );
    w.booking(
        "soon",
        "meeting-1",
        BookingKind::Meeting,
        &["guest"],
        timed("2026-11-27 18:00", "2026-11-27 19:00"),
    );
    w.booking(
        "later",
        "meeting-1",
        BookingKind::Meeting,
        &["guest"],
        timed("2026-11-27 20:00", "2026-11-27 21:00"),
    );
    let d = w.decide(cred_of(&w, "guest"), "d-meeting-1", "2026-11-27 12:00");
    assert_eq!(d.reason, Reason::BookingNotActive);
    assert_eq!(
        d.booking.map(|b| b.key.external_id.to_string()).as_deref(),
        Some("soon")
    );
    let d = w.decide(cred_of(&w, "guest"), "d-meeting-1", "2026-11-27 03:00");
    assert_eq!((d.reason, d.booking), (Reason::NoRight, None));
}

#[test]
fn a_decision_resting_on_a_plan_names_no_booking() {
    let mut w = world();
    w.booking(
        "evening",
        "meeting-1",
        BookingKind::Meeting,
        &["day"],
        timed("2026-11-26 18:00", "2026-11-26 19:00"),
    );
    let d = w.decide(cred_of(&w, "day"), "d-main", "2026-11-26 09:00");
    assert_eq!((d.reason, d.booking), (Reason::Plan, None));
    let d = w.decide(cred_of(&w, "day"), "d-meeting-1", "2026-11-26 09:00");
    assert_eq!(d.reason, Reason::BookingNotActive);
}

#[test]
fn a_lateral_door_is_no_exit_and_opens_only_for_the_room_behind_it() {
    let w = world();
    let t = "2026-11-26 10:00";
    assert_eq!(
        w.decide(cred_of(&w, "nobody"), "d-office-to-lab", t).reason,
        Reason::NoRight
    );
    assert_eq!(
        w.decide(cred_of(&w, "tenant"), "d-office-to-lab", t).reason,
        Reason::NoRight
    );
    assert_eq!(
        w.decide(cred_of(&w, "lab"), "d-office-to-lab", t).reason,
        Reason::Plan
    );
    assert_eq!(
        w.decide(cred_of(&w, "lab-no-induction"), "d-office-to-lab", t)
            .reason,
        Reason::CertificationMissing
    );
    let site = test_site();
    let exits: Vec<_> = (0..site.doors.len())
        .filter(|&d| site.is_exit(d))
        .map(|d| site.doors[d].id.to_string())
        .collect();
    assert_eq!(exits, ["d-cowork-out"]);
}

#[test]
fn a_local_time_in_the_spring_forward_gap_is_the_first_instant_after_it() {
    let site = test_site();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
    let t = |h, m| site.local_instant(day, chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap());
    // 03:00-04:00 does not exist that night in Kyiv; 04:00 EEST is 01:00Z.
    assert_eq!(
        t(3, 10),
        Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
    );
    assert_eq!(
        t(3, 30),
        Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
    );
    assert_eq!(
        t(2, 59),
        Utc.with_ymd_and_hms(2026, 3, 29, 0, 59, 0).unwrap()
    );
    assert_eq!(t(4, 0), Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap());
    // In the autumn overlap 03:30 happens twice; the earlier (EEST, 00:30Z) is taken.
    let autumn = chrono::NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
    let overlap = site.local_instant(autumn, chrono::NaiveTime::from_hms_opt(3, 30, 0).unwrap());
    assert_eq!(
        overlap,
        Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap()
    );
}

#[test]
fn explanations_name_the_facts() {
    let w = world();
    let line = explain(
        &w.snapshot,
        &w.decide(cred_of(&w, "booker"), "d-meeting-1", "2026-11-26 14:30"),
    );
    assert!(line.starts_with("ALLOW at Meeting room 1"), "{line}");
    assert!(
        line.contains("test/meeting") && line.contains("[allow.booking, unlock 3.0 s]"),
        "{line}"
    );
    let line = explain(
        &w.snapshot,
        &w.decide(
            cred_of(&w, "lab-no-induction"),
            "d-fablab",
            "2026-11-26 10:00",
        ),
    );
    assert!(
        line.contains("Fab lab requires induction-fablab, which lab-no-induction does not hold"),
        "{line}"
    );
    let line = explain(
        &w.snapshot,
        &w.decide(cred_of(&w, "day"), "d-cowork-in", "2026-11-28 12:00"),
    );
    assert!(
        line.contains("mon-fri 08:00-20:00") && line.contains("[deny.outside_schedule]"),
        "{line}"
    );
}

// Properties over the fixture: random members, doors and instants in a fortnight around the
// fixture's bookings.

fn members() -> Vec<&'static str> {
    vec![
        "staff",
        "security",
        "day",
        "lab",
        "lab-no-induction",
        "tenant",
        "tenant-b",
        "booker",
        "attendee",
        "night",
        "guest",
        "speaker",
        "visitor",
        "suspended",
        "expired",
        "future",
        "nobody",
    ]
}

fn any_case() -> impl Strategy<Value = (usize, usize, i64)> {
    let doors = test_site().doors.len();
    (0..members().len(), 0..doors, 0i64..14 * 86_400)
}

fn instant(offset: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + chrono::Duration::seconds(offset)
}

fn tap(w: &World, m: usize, door: usize) -> Tap {
    Tap {
        door: w.snapshot.site().doors[door].id,
        credential: cred_of(w, members()[m]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn an_unknown_card_is_always_denied(
        uid in proptest::collection::vec(any::<u8>(), 1..=10),
        (_, door, t) in any_case(),
        mode in prop_oneof![Just(SiteMode::Normal), Just(SiteMode::Lockdown), Just(SiteMode::Emergency), Just(SiteMode::Shelter)],
    ) {
        let mut w = world();
        w.snapshot.set_mode(mode);
        let c = Credential::Card(CardId::from_bytes(&uid).unwrap());
        prop_assume!(w.snapshot.credential(&c).is_none());
        let d = decide(&w.snapshot, &Tap { door: w.snapshot.site().doors[door].id, credential: c }, instant(t));
        prop_assert!(!d.allowed());
        prop_assert_eq!(d.reason, Reason::UnknownCredential);
    }

    #[test]
    fn the_decision_does_not_depend_on_the_order_data_was_loaded((m, door, t) in any_case()) {
        let w = world();
        let site = w.snapshot.site_arc();
        let ids: Vec<MemberId> = members().iter().map(|m| mid(m)).collect();
        let people: Vec<Member> = ids.iter().rev().filter_map(|id| w.snapshot.member(*id).cloned()).collect();
        let creds: Vec<CredentialRecord> = ids.iter().rev().flat_map(|id| w.snapshot.credentials_of(*id).cloned().collect::<Vec<_>>()).collect();
        let bookings: Vec<Booking> = ["visit", "forum", "dst-stay", "stay", "late", "meeting"]
            .iter()
            .filter_map(|k| w.snapshot.booking(&BookingKey {
                source: SourceId::parse("test").unwrap(),
                external_id: ExternalId::parse(k).unwrap(),
            }).map(|(b, _)| (**b).clone()))
            .collect();
        prop_assert_eq!(bookings.len(), 6);
        let reversed = Snapshot::build(site.clone(), people, creds, site.plans.clone(), site.leases.clone(), bookings);
        let tap = tap(&w, m, door);
        prop_assert_eq!(decide(&w.snapshot, &tap, instant(t)), decide(&reversed, &tap, instant(t)));
    }

    #[test]
    fn adding_a_right_never_turns_an_allow_into_a_deny(
        (m, door, t) in any_case(),
        room in 0usize..12,
        kind in prop_oneof![Just(BookingKind::Meeting), Just(BookingKind::Event), Just(BookingKind::GuestPass), Just(BookingKind::Stay)],
        start in 0i64..14 * 86_400,
        len in 60i64..3 * 86_400,
        full in any::<bool>(),
    ) {
        let mut w = world();
        if full {
            // Conditions stay the same before and after; only the rights change.
            w.snapshot.set_occupancy(2, 3);
        }
        let tap = tap(&w, m, door);
        let before = decide(&w.snapshot, &tap, instant(t));
        let room_id = w.snapshot.site().rooms[room % w.snapshot.site().rooms.len()].id;
        let window = if kind == BookingKind::Stay {
            let a = instant(start).date_naive();
            Window::Days { arrival: a, departure: a + chrono::Duration::days(1 + len / 86_400) }
        } else {
            Window::Timed { start: instant(start), end: instant(start + len) }
        };
        w.booking("added", room_id.as_str(), kind, &[members()[m]], window);
        let after = decide(&w.snapshot, &tap, instant(t));
        if before.allowed() {
            prop_assert!(after.allowed(), "{} became {}", before.reason, after.reason);
        }
    }

    #[test]
    fn removing_every_right_always_denies((m, door, t) in any_case()) {
        let mut w = world();
        let id = mid(members()[m]);
        let mut member = w.snapshot.member(id).unwrap().clone();
        member.roles.clear();
        member.plan = None;
        member.organisation = None;
        w.snapshot.upsert_member(member);
        for key in ["meeting", "late", "stay", "dst-stay", "forum", "visit"] {
            w.snapshot.remove_booking(&BookingKey {
                source: SourceId::parse("test").unwrap(),
                external_id: ExternalId::parse(key).unwrap(),
            });
        }
        let d = decide(&w.snapshot, &tap(&w, m, door), instant(t));
        // Public hours and exit readers are the door's own, open to every member; nothing else
        // may open.
        prop_assert!(!d.allowed() || matches!(d.reason, Reason::PublicHours | Reason::Exit), "{}", d.reason);
    }
}
