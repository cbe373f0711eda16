//! A room's calendar feed reconciled with the bookings it made before: the pure part of feed
//! sync (the fetching, with conditional GET, is the poller's).
//!
//! Each occurrence in the window becomes a meeting booking keyed by the feed's source and the
//! occurrence's identity ([`crate::booking::ics::Occurrence::key`]); people are the organiser and
//! attendees whose e-mail a member has (the others are reported, never invented). A booking
//! this feed made earlier whose occurrence is gone from the window, or cancelled, is cancelled.
//! Bookings outside the window are left as they are (the past stays history). Applying the
//! plan twice changes nothing the second time.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::access::Snapshot;
use crate::booking::ics::Expanded;
use crate::domain::{
    Booking, BookingKey, BookingKind, BookingStatus, Email, ExternalId, RoomId, SourceId, Window,
};

/// What a feed asks for.
#[derive(Debug, Default, PartialEq)]
pub struct FeedPlan {
    /// Bookings to write (new, changed, or cancelled), identical ones left out.
    pub upserts: Vec<Booking>,
    /// Of which cancellations.
    pub cancelled: usize,
    /// Addresses in the feed that no member has.
    pub unmatched: BTreeSet<String>,
    /// Occurrences that could not become bookings, in words.
    pub problems: Vec<String>,
    /// Why the plan must not be applied at all, in words: it would cancel most of the room's
    /// coming bookings at once because they are missing from the feed (a calendar cut short,
    /// an emptied export). Then nothing changes and the feed counts as failing.
    pub refused: Option<String>,
}

/// Bookings a feed may cancel at once for being missing from it, whatever their share.
pub const MISSING_CANCEL_FREE: usize = 2;

/// Plans the bookings for `room` from `expanded` (a feed expanded over `[from, until)`),
/// given the bookings `source` made before (`stored`), at `now`.
pub fn plan(
    snapshot: &Snapshot,
    source: SourceId,
    room: RoomId,
    expanded: &Expanded,
    (from, until): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    stored: &[Booking],
) -> FeedPlan {
    let mut out = FeedPlan {
        problems: expanded.problems.clone(),
        ..Default::default()
    };
    let before: HashMap<&BookingKey, &Booking> = stored
        .iter()
        .filter(|b| b.key.source == source)
        .map(|b| (&b.key, b))
        .collect();
    let mut seen: BTreeSet<BookingKey> = BTreeSet::new();
    let person = |addr: &str, out: &mut FeedPlan| {
        let m = Email::parse(addr)
            .ok()
            .and_then(|e| snapshot.member_by_email(&e));
        if m.is_none() {
            out.unmatched.insert(addr.to_string());
        }
        m
    };
    for o in &expanded.occurrences {
        let external_id = match ExternalId::parse(&o.key) {
            Ok(x) => x,
            Err(_) => {
                out.problems.push(format!(
                    "occurrence {:?}: its identity is over 255 characters",
                    o.key.chars().take(40).collect::<String>()
                ));
                continue;
            }
        };
        let key = BookingKey {
            source,
            external_id,
        };
        seen.insert(key.clone());
        let organiser = o.organiser.as_deref().and_then(|a| person(a, &mut out));
        let mut attendees: Vec<_> = o
            .attendees
            .iter()
            .filter_map(|a| person(a, &mut out))
            .filter(|m| Some(*m) != organiser)
            .collect();
        attendees.sort();
        attendees.dedup();
        let old = before.get(&key).copied();
        let b = Booking {
            key: key.clone(),
            room,
            kind: BookingKind::Meeting,
            title: o.title.trim().to_string(),
            organiser,
            attendees,
            window: Window::Timed {
                start: o.start,
                end: o.end,
            },
            status: if o.cancelled {
                BookingStatus::Cancelled
            } else {
                BookingStatus::Confirmed
            },
        };
        if o.cancelled && old.is_none() {
            // Cancelled before it was ever booked here: nothing to revoke.
            continue;
        }
        if o.end == o.start && !o.cancelled {
            // An instant (a start and no end: the expansion said so once for its event) books
            // nothing, and what it booked before stops opening the door.
            if let Some(old) = old.filter(|x| x.status == BookingStatus::Confirmed) {
                let mut c = old.clone();
                c.status = BookingStatus::Cancelled;
                out.cancelled += 1;
                out.upserts.push(c);
            }
            continue;
        }
        // A feed books what its source may book, like every other source (the site file's
        // `[bookings]`): a feed pointed at the plant room, or a month-long "meeting", books
        // nothing.
        let allowed = b.validate().map_err(|e| e.to_string()).and_then(|()| {
            if o.cancelled {
                Ok(())
            } else {
                snapshot.site().booking_rules.check(snapshot.site(), &b)
            }
        });
        if let Err(e) = allowed {
            // The occurrence can no longer be a booking (no member attends any more, no
            // length, a room or length its source may not book): what it booked before must
            // not keep opening the door.
            if !o.cancelled {
                if let Some(old) = old.filter(|x| x.status == BookingStatus::Confirmed) {
                    let mut c = old.clone();
                    c.status = BookingStatus::Cancelled;
                    out.cancelled += 1;
                    out.upserts.push(c);
                }
            }
            if o.cancelled {
                // A cancellation needs no people: keep the stored booking's, marked cancelled.
                if let Some(old) = old.filter(|x| x.status != BookingStatus::Cancelled) {
                    let mut c = old.clone();
                    c.status = BookingStatus::Cancelled;
                    out.cancelled += 1;
                    out.upserts.push(c);
                }
                continue;
            }
            out.problems
                .push(format!("{:?} at {}: {e}", o.title.trim(), o.start));
            continue;
        }
        if old != Some(&b) {
            if o.cancelled {
                out.cancelled += 1;
            }
            out.upserts.push(b);
        }
    }
    // What the feed made before, not over yet and inside the window, that it no longer has:
    // cancelled. Not when the expansion was cut short: an occurrence missing then may merely
    // be past the cut.
    if expanded.truncated {
        out.problems.push(
            "the feed has more occurrences than taken: nothing was cancelled for missing".into(),
        );
        return out;
    }
    let mut missing = 0usize;
    let mut coming = 0usize;
    for b in stored
        .iter()
        .filter(|b| b.key.source == source && b.kind == BookingKind::Meeting)
    {
        let Window::Timed { start, end } = b.window else {
            continue;
        };
        let live = b.room == room
            && b.status == BookingStatus::Confirmed
            && end > from.max(now)
            && start < until;
        if live {
            coming += 1;
        }
        if live && !seen.contains(&b.key) {
            let mut c = b.clone();
            c.status = BookingStatus::Cancelled;
            out.cancelled += 1;
            missing += 1;
            out.upserts.push(c);
        }
    }
    // A feed that drops most of the room's coming bookings at once is far likelier a broken
    // download or an emptied export than everyone cancelling: people with bookings would find
    // the door shut. It changes nothing and says so; cancelled one by one, or marked
    // STATUS:CANCELLED, bookings go as usual.
    if missing > MISSING_CANCEL_FREE && missing * 2 > coming {
        out.refused = Some(format!(
            "it would cancel {missing} of the room's {coming} coming bookings at once for missing from the calendar; nothing was changed (cancel them in the booking system, or import the calendar with the room's bookings cancelled one by one)"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::booking::ics::Occurrence;
    use crate::domain::{Member, MemberId};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn snapshot() -> Snapshot {
        let mut s = Snapshot::new(crate::access::fixture::test_site());
        let mut m = Member::new(MemberId::parse("olena").unwrap(), "Olena");
        m.email = Some(Email::parse("olena@example.org").unwrap());
        s.upsert_member(m);
        s
    }

    fn occurrence(key: &str, start: &str, end: &str) -> Occurrence {
        Occurrence {
            key: key.into(),
            start: at(start),
            end: at(end),
            all_day: false,
            title: "Review".into(),
            cancelled: false,
            organiser: Some("olena@example.org".into()),
            attendees: vec![],
        }
    }

    #[test]
    fn an_event_with_a_start_and_no_end_books_nothing_and_is_not_reported_per_occurrence() {
        let snap = snapshot();
        let source = SourceId::parse("cal").unwrap();
        let now = at("2026-11-23T08:00:00Z");
        let window = (now, at("2026-12-23T08:00:00Z"));
        let meeting = RoomId::parse("meeting-1").unwrap();
        let hour = Expanded {
            occurrences: vec![occurrence(
                "a@x",
                "2026-11-24T10:00:00Z",
                "2026-11-24T11:00:00Z",
            )],
            ..Default::default()
        };
        let booked = plan(&snap, source, meeting, &hour, window, now, &[]);
        assert_eq!(booked.upserts.len(), 1);
        // The organiser takes the end out: an instant, so the hour booked before is withdrawn.
        let instant = Expanded {
            occurrences: (0..5)
                .map(|d| {
                    let t = format!("2026-11-{}T10:00:00Z", 24 + d);
                    occurrence(if d == 0 { "a@x" } else { "b@x" }, &t, &t)
                })
                .collect(),
            ..Default::default()
        };
        let p = plan(
            &snap,
            source,
            meeting,
            &instant,
            window,
            now,
            &booked.upserts,
        );
        assert_eq!((p.cancelled, p.upserts.len()), (1, 1), "{p:?}");
        assert_eq!(p.upserts[0].status, BookingStatus::Cancelled);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(p.refused.is_none());
    }

    #[test]
    fn a_feed_books_only_what_its_source_may_book_and_a_refused_booking_is_withdrawn() {
        let snap = snapshot();
        let source = SourceId::parse("cal").unwrap();
        let now = at("2026-11-23T08:00:00Z");
        let window = (now, at("2026-12-23T08:00:00Z"));
        let feed = |occurrences| Expanded {
            occurrences,
            ..Default::default()
        };
        // A meeting room's feed books its meeting.
        let meeting = RoomId::parse("meeting-1").unwrap();
        let ok = plan(
            &snap,
            source,
            meeting,
            &feed(vec![occurrence(
                "a@x",
                "2026-11-24T10:00:00Z",
                "2026-11-24T11:00:00Z",
            )]),
            window,
            now,
            &[],
        );
        assert_eq!(ok.upserts.len(), 1, "{:?}", ok.problems);
        // A feed pointed at an office (offices are not bookable by default) books nothing and
        // says why.
        let office = plan(
            &snap,
            source,
            RoomId::parse("office-1").unwrap(),
            &feed(vec![occurrence(
                "a@x",
                "2026-11-24T10:00:00Z",
                "2026-11-24T11:00:00Z",
            )]),
            window,
            now,
            &[],
        );
        assert!(office.upserts.is_empty());
        assert!(
            office.problems.iter().any(|p| p.contains("may not book")),
            "{:?}",
            office.problems
        );
        // A three-day "meeting" is longer than a meeting may be: not booked, and the same
        // occurrence booked before (an hour long then) is cancelled, not left opening the door.
        let long = feed(vec![occurrence(
            "a@x",
            "2026-11-24T10:00:00Z",
            "2026-11-27T10:00:00Z",
        )]);
        let refused = plan(&snap, source, meeting, &long, window, now, &ok.upserts);
        assert_eq!(refused.cancelled, 1, "{:?}", refused);
        assert_eq!(refused.upserts.len(), 1);
        assert_eq!(refused.upserts[0].status, BookingStatus::Cancelled);
        assert!(
            refused.problems.iter().any(|p| p.contains("at most")),
            "{:?}",
            refused.problems
        );
    }

    #[test]
    fn a_feed_that_drops_most_of_the_room_s_coming_bookings_at_once_changes_nothing() {
        let snap = snapshot();
        let source = SourceId::parse("cal").unwrap();
        let now = at("2026-11-23T08:00:00Z");
        let window = (now, at("2026-12-23T08:00:00Z"));
        let meeting = RoomId::parse("meeting-1").unwrap();
        let occ = |d: u32| {
            occurrence(
                &format!("m{d}@x"),
                &format!("2026-12-{d:02}T10:00:00Z"),
                &format!("2026-12-{d:02}T11:00:00Z"),
            )
        };
        let feed = |days: &[u32]| Expanded {
            occurrences: days.iter().map(|d| occ(*d)).collect(),
            ..Default::default()
        };
        let first = plan(
            &snap,
            source,
            meeting,
            &feed(&[1, 2, 3, 4, 5, 6]),
            window,
            now,
            &[],
        );
        assert_eq!(first.upserts.len(), 6);
        // The same calendar cut after its first meeting (or emptied): five of six would go.
        let cut = plan(
            &snap,
            source,
            meeting,
            &feed(&[1]),
            window,
            now,
            &first.upserts,
        );
        let why = cut.refused.expect("refused");
        assert!(why.contains("5 of the room's 6"), "{why}");
        // Two meetings dropped is an ordinary change, and goes through.
        let moved = plan(
            &snap,
            source,
            meeting,
            &feed(&[1, 2, 3, 4]),
            window,
            now,
            &first.upserts,
        );
        assert_eq!((moved.refused, moved.cancelled), (None, 2));
    }
}
