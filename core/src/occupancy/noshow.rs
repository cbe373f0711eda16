//! No-shows: a meeting or event whose room shows no presence — no counter entry, no tap at its
//! doors, no motion — by N minutes after its start (10 by default).
//!
//! Sans-IO. The judge is asked once a tick with the bookings that started lately and answers
//! with the no-shows; it judges a booking once. It judges only what it could see: a room with
//! no sensor and no reader is never judged (nobody could have been seen), and a booking whose
//! first minutes fell (partly) before the gateway started is not judged either, since presence
//! before a restart is not remembered. Hostel stays and guest passes are not judged (a guest
//! may arrive any time after check-in).

use std::collections::HashMap;

use crate::domain::{Booking, BookingKey, BookingKind};

/// Judges bookings.
#[derive(Debug)]
pub struct Judge {
    after_s: i64,
    started: i64,
    judged: HashMap<BookingKey, i64>,
}

/// A booking judged a no-show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The booking.
    pub key: BookingKey,
    /// Its room, by index.
    pub room: usize,
    /// Booked from, Unix seconds.
    pub start: i64,
    /// Booked until.
    pub end: i64,
}

impl Judge {
    /// A judge for `after_min` minutes, on a gateway that started at `started` (Unix seconds).
    pub fn new(after_min: u32, started: i64) -> Self {
        Judge {
            after_s: i64::from(after_min) * 60,
            started,
            judged: HashMap::new(),
        }
    }

    /// How long after its start a booking is judged, seconds.
    pub fn after_s(&self) -> i64 {
        self.after_s
    }

    /// How far back a booking's start may lie to be judged now (the caller looks up bookings
    /// that started in `[now - lookback, now]`).
    pub fn lookback(&self) -> i64 {
        self.after_s + 3600
    }

    /// Judges the bookings given (room index, booking, booked start, booked end) at `now`.
    /// `observable(room)` says whether anything watches the room; `present(room, since)`
    /// whether presence was seen there at or after `since`; `grace_s` lets people who came a
    /// little early count.
    pub fn judge<'a>(
        &mut self,
        bookings: impl IntoIterator<Item = (usize, &'a Booking, i64, i64)>,
        now: i64,
        grace_s: i64,
        observable: impl Fn(usize) -> bool,
        present: impl Fn(usize, i64) -> bool,
    ) -> Vec<Verdict> {
        let mut out = Vec::new();
        for (room, b, start, end) in bookings {
            if !matches!(b.kind, BookingKind::Meeting | BookingKind::Event)
                || now < start + self.after_s
                || start < self.started + grace_s
                || end <= start + self.after_s
                || self.judged.contains_key(&b.key)
                || !observable(room)
            {
                continue;
            }
            self.judged.insert(b.key.clone(), start);
            if !present(room, start - grace_s) {
                out.push(Verdict {
                    key: b.key.clone(),
                    room,
                    start,
                    end,
                });
            }
        }
        // Bounded: what started more than a day ago cannot be judged again anyway.
        let horizon = now - self.lookback() - 86_400;
        if self.judged.len() > 1024 {
            self.judged.retain(|_, s| *s >= horizon);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::domain::{BookingStatus, ExternalId, RoomId, SourceId, Window};

    fn booking(ext: &str, kind: BookingKind, start: i64, end: i64) -> Booking {
        Booking {
            key: BookingKey {
                source: SourceId::parse("rooms").unwrap(),
                external_id: ExternalId::parse(ext).unwrap(),
            },
            room: RoomId::parse("meeting-1").unwrap(),
            kind,
            title: String::new(),
            organiser: None,
            attendees: vec![],
            window: Window::Timed {
                start: DateTime::from_timestamp(start, 0).unwrap(),
                end: DateTime::from_timestamp(end, 0).unwrap(),
            },
            status: BookingStatus::Confirmed,
        }
    }

    const T: i64 = 1_795_680_000;

    #[test]
    fn an_empty_room_ten_minutes_in_is_a_no_show_judged_once() {
        let mut j = Judge::new(10, T - 86_400);
        let b = booking("b1", BookingKind::Meeting, T, T + 3600);
        let list = || [(0usize, &b, T, T + 3600)];
        // Nine minutes in: not yet.
        assert!(j
            .judge(list(), T + 540, 900, |_| true, |_, _| false)
            .is_empty());
        let v = j.judge(list(), T + 600, 900, |_| true, |_, _| false);
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].room, v[0].start, v[0].end), (0, T, T + 3600));
        assert!(
            j.judge(list(), T + 601, 900, |_| true, |_, _| false)
                .is_empty(),
            "once"
        );
    }

    #[test]
    fn presence_since_the_grace_before_the_start_is_a_show() {
        let mut j = Judge::new(10, T - 86_400);
        let b = booking("b1", BookingKind::Meeting, T, T + 3600);
        let seen_at = T - 600; // came ten minutes early, within the 15-minute grace
        let v = j.judge(
            [(0, &b, T, T + 3600)],
            T + 600,
            900,
            |_| true,
            |_, since| seen_at >= since,
        );
        assert!(v.is_empty());
    }

    #[test]
    fn what_could_not_be_seen_is_not_judged() {
        let started = T - 60;
        let mut j = Judge::new(10, started);
        let meeting = booking("m", BookingKind::Meeting, T, T + 3600);
        let stay = booking("s", BookingKind::Stay, T, T + 86_400);
        let pass = booking("g", BookingKind::GuestPass, T, T + 3600);
        let short = booking("x", BookingKind::Meeting, T, T + 300);
        let none = |_: usize, _: i64| false;
        // Started a minute before: presence in the grace before the start was not watched.
        assert!(j
            .judge([(0, &meeting, T, T + 3600)], T + 600, 900, |_| true, none)
            .is_empty());
        let mut j = Judge::new(10, T - 86_400);
        // A room nothing watches.
        assert!(j
            .judge([(0, &meeting, T, T + 3600)], T + 600, 900, |_| false, none)
            .is_empty());
        // Stays, guest passes and bookings shorter than the wait.
        assert!(j
            .judge(
                [
                    (0, &stay, T, T + 86_400),
                    (0, &pass, T, T + 3600),
                    (0, &short, T, T + 300)
                ],
                T + 600,
                900,
                |_| true,
                none
            )
            .is_empty());
        // An event is judged like a meeting.
        let event = booking("e", BookingKind::Event, T, T + 7200);
        assert_eq!(
            j.judge([(0, &event, T, T + 7200)], T + 600, 900, |_| true, none)
                .len(),
            1
        );
    }
}
