//! Occupancy history: the recorder that turns each room's live estimate into five-minute
//! buckets, and the queries staff ask of them (peak and mean use, occupied hours, the hour ×
//! weekday heat map, booked versus actual).
//!
//! Sans-IO: the recorder is told each room's estimate with the time and hands back the buckets
//! that closed; the service writes them to the store, which merges a bucket written at a stop
//! with its continuation after the restart and downsamples old buckets into hours. Between two
//! observations the estimate is taken to hold (it is piecewise constant); a gap longer than
//! [`MAX_GAP_S`] (the gateway was down) is not counted as observed, so means stay honest.

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::domain::{Booking, BookingKind, BookingStatus, RoomId, Site, Window};
use crate::store::history::{FINE_S, HOUR_S};
use crate::store::{HistoryBucket, Store, StoreError};

/// Longer than this between two observations, and the time between is not counted.
pub const MAX_GAP_S: i64 = 120;

#[derive(Debug, Clone)]
struct Acc {
    open: Option<HistoryBucket>,
    /// The last observation: time, count, occupied.
    last: Option<(i64, u32, bool)>,
}

/// Turns rooms' estimates into history buckets.
#[derive(Debug, Clone)]
pub struct Recorder {
    rooms: Vec<RoomId>,
    acc: Vec<Acc>,
}

fn bucket_start(t: i64) -> i64 {
    t.div_euclid(i64::from(FINE_S)) * i64::from(FINE_S)
}

impl Recorder {
    /// A recorder for these rooms (by index).
    pub fn new(rooms: Vec<RoomId>) -> Self {
        let acc = vec![
            Acc {
                open: None,
                last: None
            };
            rooms.len()
        ];
        Recorder { rooms, acc }
    }

    fn bucket_for(
        &mut self,
        i: usize,
        t: i64,
        done: &mut Vec<HistoryBucket>,
    ) -> &mut HistoryBucket {
        let start = bucket_start(t);
        let room = self.rooms[i];
        let a = &mut self.acc[i];
        if a.open.is_some_and(|b| b.start != start) {
            done.extend(a.open.take());
        }
        a.open
            .get_or_insert_with(|| HistoryBucket::new(room, start, FINE_S))
    }

    /// Room `i`'s estimate at `now` (Unix seconds, not going back); buckets that closed are
    /// added to `done`.
    pub fn observe(
        &mut self,
        i: usize,
        count: u32,
        occupied: bool,
        now: i64,
        done: &mut Vec<HistoryBucket>,
    ) {
        if i >= self.acc.len() {
            return;
        }
        if let Some((t0, c, o)) = self.acc[i].last {
            if now > t0 && now - t0 <= MAX_GAP_S {
                // Integrate [t0, now) with the last estimate, bucket by bucket.
                let mut a = t0;
                while a < now {
                    let b = (bucket_start(a) + i64::from(FINE_S)).min(now);
                    let secs = (b - a) as u32;
                    let bucket = self.bucket_for(i, a, done);
                    bucket.person_s += u64::from(c) * u64::from(secs);
                    bucket.observed_s += secs;
                    if o {
                        bucket.occupied_s += secs;
                    }
                    bucket.peak = bucket.peak.max(c);
                    a = b;
                }
            } else if now < t0 {
                return;
            }
        }
        let bucket = self.bucket_for(i, now, done);
        bucket.peak = bucket.peak.max(count);
        self.acc[i].last = Some((now, count, occupied));
    }

    /// Every open bucket, integrated up to `now`, for writing at a stop; the store merges them
    /// with their continuation after a restart.
    pub fn flush(&mut self, now: i64) -> Vec<HistoryBucket> {
        let mut done = Vec::new();
        for i in 0..self.acc.len() {
            if let Some((_, c, o)) = self.acc[i].last {
                self.observe(i, c, o, now, &mut done);
            }
            done.extend(self.acc[i].open.take());
            self.acc[i].last = None;
        }
        done.retain(|b| b.observed_s > 0 || b.peak > 0);
        done
    }
}

/// Peak and mean use of a room over a period.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Usage {
    /// The highest head count.
    pub peak: u32,
    /// Mean head count over the time observed.
    pub mean: f64,
    /// Hours the room was occupied.
    pub occupied_hours: f64,
    /// Hours the gateway was watching.
    pub observed_hours: f64,
}

/// Peak and mean use from buckets.
pub fn usage(buckets: &[HistoryBucket]) -> Usage {
    let person: u64 = buckets.iter().map(|b| b.person_s).sum();
    let observed: u64 = buckets.iter().map(|b| u64::from(b.observed_s)).sum();
    let occupied: u64 = buckets.iter().map(|b| u64::from(b.occupied_s)).sum();
    Usage {
        peak: buckets.iter().map(|b| b.peak).max().unwrap_or(0),
        mean: if observed == 0 {
            0.0
        } else {
            person as f64 / observed as f64
        },
        occupied_hours: occupied as f64 / 3600.0,
        observed_hours: observed as f64 / 3600.0,
    }
}

/// The hour × weekday heat map: mean head count per local hour of each weekday (Monday first),
/// `None` where nothing was observed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HeatMap {
    /// `cells[weekday][hour]`.
    pub cells: [[Option<f64>; 24]; 7],
}

/// The heat map of buckets, on the site's clock.
pub fn heat_map(site: &Site, buckets: &[HistoryBucket]) -> HeatMap {
    let mut person = [[0u64; 24]; 7];
    let mut observed = [[0u64; 24]; 7];
    for b in buckets {
        let Some(t) = DateTime::<Utc>::from_timestamp(b.start, 0) else {
            continue;
        };
        let local = t.with_timezone(&site.timezone);
        let (d, h) = (
            local.weekday().num_days_from_monday() as usize,
            local.hour() as usize,
        );
        person[d][h] += b.person_s;
        observed[d][h] += u64::from(b.observed_s);
    }
    let mut cells = [[None; 24]; 7];
    for d in 0..7 {
        for h in 0..24 {
            if observed[d][h] > 0 {
                cells[d][h] = Some(person[d][h] as f64 / observed[d][h] as f64);
            }
        }
    }
    HeatMap { cells }
}

/// Booked time against what the sensors saw, for one room and period.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BookedVsActual {
    /// Confirmed bookings overlapping the period.
    pub bookings: usize,
    /// Hours booked (overlapping bookings counted once).
    pub booked_hours: f64,
    /// Hours the room was occupied.
    pub occupied_hours: f64,
    /// Hours the room was occupied while booked (buckets' occupied time spread evenly over
    /// the bucket, so exact to the bucket's length).
    pub occupied_while_booked_hours: f64,
    /// Share of booked time the room was in use, 0 to 1.
    pub use_of_booked: f64,
    /// Hostel nights booked (a night with several guests counted once). A stay is not booked
    /// time in the hours above: guests are out most of the day, so a room with a guest every
    /// night would read as 90 % unused. A stay is judged by its nights instead.
    pub nights_booked: u32,
    /// Of those, nights the room showed anyone between that night's check-in and the next
    /// morning's check-out.
    pub nights_used: u32,
}

/// When a booking holds the room, without grace: a meeting's start to end, a stay's check-in
/// to check-out.
pub fn booked_span(site: &Site, b: &Booking) -> (i64, i64) {
    match b.window {
        Window::Timed { start, end } => (start.timestamp(), end.timestamp()),
        Window::Days { arrival, departure } => (
            site.local_instant(arrival, site.access.check_in)
                .timestamp(),
            site.local_instant(departure, site.access.check_out)
                .timestamp(),
        ),
    }
}

/// Booked versus actual for `[from, until)`: `bookings` are the room's, `buckets` its history.
pub fn booked_vs_actual(
    site: &Site,
    bookings: &[Booking],
    buckets: &[HistoryBucket],
    from: i64,
    until: i64,
    dark: &[(i64, i64)],
) -> BookedVsActual {
    // Hostel nights: each booked night whose check-in falls in the period, once.
    let mut nights: Vec<chrono::NaiveDate> = bookings
        .iter()
        .filter(|b| b.status == BookingStatus::Confirmed)
        .filter_map(|b| match b.window {
            Window::Days { arrival, departure } => Some((arrival, departure)),
            Window::Timed { .. } => None,
        })
        .flat_map(|(a, d)| a.iter_days().take_while(move |n| *n < d))
        .filter(|n| {
            let t = site.local_instant(*n, site.access.check_in).timestamp();
            (from..until).contains(&t)
        })
        .collect();
    nights.sort_unstable();
    nights.dedup();
    let nights_used = nights
        .iter()
        .filter(|n| {
            let a = site.local_instant(**n, site.access.check_in).timestamp();
            let b = n.succ_opt().map_or(a, |m| {
                site.local_instant(m, site.access.check_out).timestamp()
            });
            buckets.iter().any(|bk| {
                let (s, e) = (bk.start, bk.start + i64::from(bk.span_s));
                bk.occupied_s > 0 && s < b && e > a
            })
        })
        .count();
    let stays = bookings
        .iter()
        .filter(|b| b.status == BookingStatus::Confirmed && matches!(b.window, Window::Days { .. }))
        .map(|b| booked_span(site, b))
        .filter(|(a, b)| *a < until && *b > from)
        .count();
    let mut spans: Vec<(i64, i64)> = bookings
        .iter()
        .filter(|b| b.status == BookingStatus::Confirmed)
        .filter(|b| matches!(b.window, Window::Timed { .. }))
        .map(|b| booked_span(site, b))
        .map(|(a, b)| (a.max(from), b.min(until)))
        .filter(|(a, b)| a < b)
        .collect();
    let count = spans.len() + stays;
    spans.sort_unstable();
    let mut union: Vec<(i64, i64)> = Vec::new();
    for (a, b) in spans {
        match union.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => union.push((a, b)),
        }
    }
    // Hours the room had no power (an outage schedule) are not booked use that could be had.
    let union = crate::power::minus(&union, dark);
    let booked: i64 = union.iter().map(|(a, b)| b - a).sum();
    let mut while_booked = 0.0;
    for bk in buckets {
        let (s, e) = (bk.start, bk.start + i64::from(bk.span_s));
        let overlap: i64 = union
            .iter()
            .map(|(a, b)| (e.min(*b) - s.max(*a)).max(0))
            .sum();
        while_booked += f64::from(bk.occupied_s) * overlap as f64 / f64::from(bk.span_s);
    }
    let occupied: u64 = buckets.iter().map(|b| u64::from(b.occupied_s)).sum();
    BookedVsActual {
        bookings: count,
        booked_hours: booked as f64 / 3600.0,
        occupied_hours: occupied as f64 / 3600.0,
        occupied_while_booked_hours: while_booked / 3600.0,
        use_of_booked: if booked == 0 {
            0.0
        } else {
            (while_booked / booked as f64).min(1.0)
        },
        nights_booked: u32::try_from(nights.len()).unwrap_or(u32::MAX),
        nights_used: u32::try_from(nights_used).unwrap_or(u32::MAX),
    }
}

/// Everything the dashboard shows of one room's use over a period.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RoomReport {
    pub room: RoomId,
    /// Period start, Unix seconds.
    pub from: i64,
    /// Period end (exclusive).
    pub until: i64,
    /// Peak and mean use.
    pub usage: Usage,
    /// The hour × weekday heat map.
    pub heat_map: HeatMap,
    /// Booked versus actual.
    pub booked: BookedVsActual,
}

/// A room's report for `[from, until)` from the store's history and bookings.
pub fn room_report(
    site: &Site,
    store: &dyn Store,
    room: RoomId,
    from: i64,
    until: i64,
) -> Result<RoomReport, StoreError> {
    // A bucket starting up to an hour before `from` may reach into the period; only whole
    // buckets inside it are counted, so the figures are exact to the bucket.
    let buckets = store.history(room, from, until)?;
    let bookings: Vec<Booking> = store
        .bookings()?
        .into_iter()
        .filter(|b| b.room == room && b.kind != BookingKind::GuestPass)
        .collect();
    Ok(RoomReport {
        room,
        from,
        until,
        usage: usage(&buckets),
        heat_map: heat_map(site, &buckets),
        booked: booked_vs_actual(site, &bookings, &buckets, from, until, &[]),
    })
}

/// The cut for downsampling: the start of the hour `days` days before `now`.
pub fn cut(now: i64, days: u32) -> i64 {
    let t = now - i64::from(days) * 86_400;
    t.div_euclid(i64::from(HOUR_S)) * i64::from(HOUR_S)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BookingKey, ExternalId, SourceId};
    use crate::store::MemoryStore;

    fn room() -> RoomId {
        RoomId::parse("meeting-1").unwrap()
    }

    /// Monday 2026-11-23 09:00 Kyiv (07:00 UTC).
    const MON_9: i64 = 1_795_417_200;

    fn site() -> std::sync::Arc<Site> {
        crate::access::fixture::test_site()
    }

    #[test]
    fn the_recorder_integrates_the_count_over_each_five_minutes() {
        let mut r = Recorder::new(vec![room()]);
        let mut done = Vec::new();
        // 09:00 two people; 09:02:30 three; 09:07:30 none; observed every 30 s until 09:10.
        let count_at = |t: i64| match t - MON_9 {
            x if x < 150 => 2,
            x if x < 450 => 3,
            _ => 0,
        };
        let mut t = MON_9;
        while t <= MON_9 + 600 {
            r.observe(0, count_at(t), count_at(t) > 0, t, &mut done);
            t += 30;
        }
        assert_eq!(done.len(), 2, "09:00 and 09:05 closed at 09:10");
        let a = done[0];
        assert_eq!((a.start, a.observed_s, a.peak), (MON_9, 300, 3));
        assert_eq!(a.person_s, 2 * 150 + 3 * 150);
        assert_eq!(a.occupied_s, 300);
        let b = done[1];
        assert_eq!((b.person_s, b.occupied_s, b.peak), (3 * 150, 150, 3));
        // The open bucket (09:10) comes out at a stop.
        let rest = r.flush(MON_9 + 630);
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].start, rest[0].observed_s), (MON_9 + 600, 30));
    }

    #[test]
    fn a_gap_while_the_gateway_was_down_is_not_observed() {
        let mut r = Recorder::new(vec![room()]);
        let mut done = Vec::new();
        r.observe(0, 4, true, MON_9, &mut done);
        r.observe(0, 4, true, MON_9 + 60, &mut done);
        // Down from 09:01 to 09:30.
        r.observe(0, 1, true, MON_9 + 1800, &mut done);
        r.observe(0, 1, true, MON_9 + 1860, &mut done);
        let all: Vec<HistoryBucket> = done.into_iter().chain(r.flush(MON_9 + 1860)).collect();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].observed_s, all[0].person_s), (60, 240));
        assert_eq!((all[1].observed_s, all[1].person_s), (60, 60));
        assert_eq!(usage(&all).mean, 2.5);
    }

    #[test]
    fn a_hostel_stay_is_judged_by_its_nights_not_as_booked_hours() {
        let site = site();
        let hostel = RoomId::parse("hostel-h1").unwrap();
        // Two guests from Monday to Thursday (three nights), one of them staying a night more.
        let stay = |ext: &str, departure: &str| Booking {
            key: BookingKey {
                source: SourceId::parse("hostel").unwrap(),
                external_id: ExternalId::parse(ext).unwrap(),
            },
            room: hostel,
            kind: BookingKind::Stay,
            title: String::new(),
            organiser: None,
            attendees: vec![],
            window: Window::Days {
                arrival: chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
                departure: departure.parse().unwrap(),
            },
            status: BookingStatus::Confirmed,
        };
        let bs = [stay("s1", "2026-11-26"), stay("s2", "2026-11-27")];
        // Someone in the room on Monday night (23:00) and Wednesday night (02:00 Thursday),
        // and in the middle of Tuesday (not a night).
        let seen = |t: i64| {
            let mut b = HistoryBucket::new(hostel, t, FINE_S);
            (b.observed_s, b.person_s, b.peak, b.occupied_s) = (300, 300, 1, 300);
            b
        };
        let buckets = [
            seen(MON_9 + 14 * 3600),
            seen(MON_9 + 86_400 + 3 * 3600),
            seen(MON_9 + 3 * 86_400 - 7 * 3600),
        ];
        let bva = booked_vs_actual(&site, &bs, &buckets, MON_9, MON_9 + 7 * 86_400, &[]);
        assert_eq!(bva.bookings, 2);
        assert_eq!(bva.booked_hours, 0.0, "a stay is not booked hours");
        assert_eq!((bva.nights_booked, bva.nights_used), (4, 2));
    }

    #[test]
    fn usage_heat_map_and_booked_versus_actual_by_hand() {
        let site = site();
        let store = MemoryStore::new();
        // Monday 09:00-10:00: 4 people for the first half hour, then empty; Tuesday 14:00-14:05
        // one person.
        let mut buckets = Vec::new();
        for i in 0..12 {
            let mut b = HistoryBucket::new(room(), MON_9 + i * 300, FINE_S);
            b.observed_s = 300;
            if i < 6 {
                (b.person_s, b.peak, b.occupied_s) = (1200, 4, 300);
            }
            buckets.push(b);
        }
        let tue_14 = MON_9 + 86_400 + 5 * 3600;
        let mut b = HistoryBucket::new(room(), tue_14, FINE_S);
        (b.observed_s, b.person_s, b.peak, b.occupied_s) = (300, 300, 1, 300);
        buckets.push(b);
        store.add_history(&buckets).unwrap();
        // Booked Monday 09:00-11:00, and a cancelled booking that does not count.
        let booking = |ext: &str, start: i64, end: i64, status| Booking {
            key: BookingKey {
                source: SourceId::parse("rooms").unwrap(),
                external_id: ExternalId::parse(ext).unwrap(),
            },
            room: room(),
            kind: BookingKind::Meeting,
            title: String::new(),
            organiser: None,
            attendees: vec![],
            window: Window::Timed {
                start: DateTime::from_timestamp(start, 0).unwrap(),
                end: DateTime::from_timestamp(end, 0).unwrap(),
            },
            status,
        };
        let report = {
            let bs = [
                booking("b1", MON_9, MON_9 + 7200, BookingStatus::Confirmed),
                booking("b2", tue_14, tue_14 + 3600, BookingStatus::Cancelled),
            ];
            let usage = usage(&store.history(room(), MON_9, MON_9 + 7 * 86_400).unwrap());
            let bva = booked_vs_actual(&site, &bs, &buckets, MON_9, MON_9 + 7 * 86_400, &[]);
            (usage, bva)
        };
        let (u, bva) = report;
        assert_eq!(u.peak, 4);
        // (6 × 1200 + 300) person-seconds over 13 × 300 s observed.
        assert!((u.mean - 7500.0 / 3900.0).abs() < 1e-9);
        assert!((u.occupied_hours - (6.0 * 300.0 + 300.0) / 3600.0).abs() < 1e-9);
        assert_eq!(bva.bookings, 1);
        assert_eq!(bva.booked_hours, 2.0);
        assert_eq!(bva.occupied_while_booked_hours, 0.5);
        assert_eq!(bva.use_of_booked, 0.25);
        let hm = heat_map(&site, &buckets);
        assert_eq!(
            hm.cells[0][9],
            Some(2.0),
            "Monday 09:00 local: 4 people half the hour"
        );
        assert_eq!(hm.cells[1][14], Some(1.0), "Tuesday 14:00 local");
        assert_eq!(hm.cells[0][10], None);
        assert_eq!(hm.cells.iter().flatten().filter(|c| c.is_some()).count(), 2);
        let r = room_report(&site, &store, room(), MON_9, MON_9 + 86_400).unwrap();
        assert_eq!(r.usage.peak, 4);
        assert_eq!(r.booked.bookings, 0, "no bookings in the store");
    }

    #[test]
    fn the_downsampling_cut_is_a_whole_hour() {
        assert_eq!(cut(MON_9 + 1234, 30) % 3600, 0);
        assert!(cut(MON_9 + 1234, 30) <= MON_9 + 1234 - 30 * 86_400);
    }
}
