//! Allow-lists: which cards may open a door in the hours ahead, for the door node to decide on
//! when it cannot reach the gateway.
//!
//! The list is worked out with [`decide`] itself, so it can never grant what the gateway would
//! refuse: every candidate card is decided at every step (5 minutes) across the window, and
//! consecutive allowed steps become one entry. Entries are conservative: they start at the first
//! allowed step and end at the last (a right that starts at 13:47 is listed from 13:50). The
//! snapshot given should come from [`Snapshot::for_allow_lists`] (no occupancy, no
//! anti-passback). Candidates are cards whose holder is staff, has a plan or lease reaching the
//! door, or a booking for it in the window; others cannot be allowed and are skipped.
//!
//! **Rights that hold at any hour** are marked: an entry whose card is allowed throughout the
//! window by a right with no hours (staff, an exit reader, a 24/7 plan that does not pause on
//! holidays, a lease without a schedule) starts at 0, the epoch, instead of the window's start.
//! A node whose clock is unset grants only those (`allow.offline_any_hour`); an older node reads
//! the entry as it always did, since it checks the list's own validity first, and the entry
//! covers all of it.

use chrono::{DateTime, Duration, Utc};
use kombinat_protocol::door::{AllowEntry, ALLOW_LIST_MAX};

use super::{decide, Snapshot, Tap};
use crate::domain::Credential;

/// The sampling step.
pub const STEP_SECS: i64 = 300;

/// Keeps of `cards` what one list may carry: at most [`ALLOW_LIST_MAX`] entries (what a door node
/// holds) whose JSON fits in `bytes`. The entries valid soonest stay (then by card), sorted by
/// card then start as [`allow_list`] gives them. Returns how many there were. Linear in the
/// list's length: it runs on lists of a hundred thousand cards at campus scale.
pub fn fit(cards: &mut Vec<AllowEntry>, bytes: usize) -> usize {
    let had = cards.len();
    let widest = cards.iter().map(AllowEntry::json_len).max().unwrap_or(1);
    // n entries take at most n × widest bytes with their commas, and the brackets one more.
    let keep = ALLOW_LIST_MAX.min(bytes.saturating_sub(1) / widest);
    if had > keep {
        cards.select_nth_unstable_by(keep, |a, b| a.from.cmp(&b.from).then(a.card.cmp(&b.card)));
        cards.truncate(keep);
        cards.sort_unstable_by(|a, b| a.card.cmp(&b.card).then(a.from.cmp(&b.from)));
    }
    had
}

/// The allow-list of door `door` (by index) for `[from, until)`, sorted by card.
pub fn allow_list(
    s: &Snapshot,
    door: usize,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<AllowEntry> {
    let site = s.site();
    let Some(d) = site.doors.get(door) else {
        return Vec::new();
    };
    let reach = site.reach(door);
    let exit = site.is_exit(door);
    let (t0, t1) = (from.timestamp(), until.timestamp());
    let mut out = Vec::new();
    for (card, entry) in s.cards() {
        let Some(m) = entry.member.as_ref() else {
            continue;
        };
        let candidate = exit
            || d.public_hours.is_some()
            || m.is_staff()
            || m.plan
                .and_then(|p| s.plan(p))
                .is_some_and(|p| p.grants.iter().any(|g| g.rooms.intersects(reach)))
            || m.organisation
                .is_some_and(|o| s.leases_of(o).iter().any(|l| reach.contains(l.room)))
            || entry
                .slots(t0, t1)
                .iter()
                .any(|sl| reach.contains(sl.room as usize) && sl.until > t0 && sl.from < t1);
        if !candidate {
            continue;
        }
        let tap = Tap {
            door: d.id,
            credential: Credential::Card(card),
        };
        let mut open: Option<i64> = None;
        let mut last_allowed = t0;
        let mut t = t0;
        while t < t1 {
            let now = DateTime::from_timestamp(t, 0).unwrap_or(from);
            let allowed = decide(s, &tap, now).allowed();
            match (allowed, open) {
                (true, None) => open = Some(t),
                (false, Some(start)) => {
                    out.push(AllowEntry {
                        card,
                        from: start as u64,
                        until: last_allowed as u64 + 1,
                    });
                    open = None;
                }
                _ => {}
            }
            if allowed {
                last_allowed = t;
            }
            t += STEP_SECS;
        }
        if let Some(start) = open {
            // Allowed at every step, by a right without hours: marked as holding at any hour.
            let whole = start == t0 && last_allowed + STEP_SECS >= t1;
            let any_hour = whole && holds_at_any_hour(s, m, reach, exit, from);
            out.push(AllowEntry {
                card,
                from: if any_hour { 0 } else { start as u64 },
                until: last_allowed as u64 + 1,
            });
        }
    }
    out.sort_by(|a, b| a.card.cmp(&b.card).then(a.from.cmp(&b.from)));
    out
}

/// Whether `m`'s right to pass a door reaching `reach` holds at every hour of every day: an
/// exit reader (leaving is never refused), or an active member whose validity has begun and
/// never ends who is staff, holds a lease without a schedule or end, or a plan whose grant
/// reaching the door is open all week and does not pause on holidays. A right the site mode
/// alone gives (the shelter route, emergency egress) is not one: it ends with the mode.
fn holds_at_any_hour(
    s: &Snapshot,
    m: &crate::domain::Member,
    reach: &crate::domain::RoomSet,
    exit: bool,
    from: DateTime<Utc>,
) -> bool {
    if exit {
        return true;
    }
    if !matches!(m.status, crate::domain::MemberStatus::Active)
        || m.valid_until.is_some()
        || m.valid_from.is_some_and(|v| v > from)
    {
        return false;
    }
    if m.is_staff() {
        return true;
    }
    let leased = m.organisation.is_some_and(|o| {
        s.leases_of(o)
            .iter()
            .any(|l| reach.contains(l.room) && l.schedule.is_none() && l.lease.until.is_none())
    });
    leased
        || m.plan.and_then(|p| s.plan(p)).is_some_and(|p| {
            !p.closed_on_holidays
                && p.grants
                    .iter()
                    .any(|g| g.rooms.intersects(reach) && g.schedule.is_always())
        })
}

/// The window of a list built now: from the current step to `hours` ahead.
pub fn window(now: DateTime<Utc>, hours: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = now.timestamp() - now.timestamp().rem_euclid(STEP_SECS);
    let from = DateTime::from_timestamp(start, 0).unwrap_or(now);
    (from, from + Duration::hours(i64::from(hours)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::{card, World};
    use crate::domain::{BookingKind, PlanId, Role, Window};
    use chrono::TimeZone;

    #[test]
    fn a_list_holds_exactly_the_cards_decide_allows_at_each_step() {
        let mut w = World::new();
        let staff = w.member("staff", |m| m.roles = vec![Role::Staff]);
        let day = w.member("day", |m| m.plan = Some(PlanId::parse("day").unwrap()));
        let booker = w.member("booker", |_| {});
        let _nobody = w.member("nobody", |_| {});
        let start = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap(); // 14:00 Kyiv
        w.booking(
            "m",
            "meeting-1",
            BookingKind::Meeting,
            &["booker"],
            Window::Timed {
                start,
                end: start + Duration::hours(1),
            },
        );
        let s = w.snapshot.for_allow_lists();
        let door = s
            .site()
            .door_index(crate::domain::DoorId::parse("d-meeting-1").unwrap())
            .unwrap();
        let (from, until) = window(Utc.with_ymd_and_hms(2026, 11, 26, 8, 2, 0).unwrap(), 12);
        let list = allow_list(&s, door, from, until);
        let cards: Vec<_> = list.iter().map(|e| Credential::Card(e.card)).collect();
        assert!(cards.contains(&staff) && cards.contains(&booker));
        assert!(
            !cards.contains(&day),
            "a day pass does not reach a meeting room"
        );
        let b = list
            .iter()
            .find(|e| Credential::Card(e.card) == booker)
            .unwrap();
        // 13:45 to 15:15 Kyiv with grace, i.e. 11:45Z to 13:15Z; the last step at 13:10Z.
        assert_eq!(b.from as i64, (start - Duration::minutes(15)).timestamp());
        assert_eq!(
            b.until as i64,
            (start + Duration::minutes(70)).timestamp() + 1
        );
        // Every listed moment is one decide allows; every step decide allows is listed.
        let tap = |c| Tap {
            door: s.site().doors[door].id,
            credential: c,
        };
        let mut t = from.timestamp();
        while t < until.timestamp() {
            let now = DateTime::from_timestamp(t, 0).unwrap();
            for c in [staff, day, booker, card(99)] {
                let listed = list.iter().any(|e| {
                    Credential::Card(e.card) == c && (e.from as i64) <= t && t < e.until as i64
                });
                assert_eq!(listed, decide(&s, &tap(c), now).allowed(), "{c} at {now}");
            }
            t += STEP_SECS;
        }
    }

    #[test]
    fn rights_without_hours_are_marked_as_holding_at_any_hour_and_no_others() {
        let mut w = World::new();
        let staff = w.member("staff", |m| m.roles = vec![Role::Staff]);
        let leaving = w.member("leaving", |m| {
            m.roles = vec![Role::Staff];
            m.valid_until = Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        });
        let day = w.member("day", |m| m.plan = Some(PlanId::parse("day").unwrap()));
        let s = w.snapshot.for_allow_lists();
        let door = |id| {
            s.site()
                .door_index(crate::domain::DoorId::parse(id).unwrap())
                .unwrap()
        };
        // 10:00 to 22:00 Kyiv: a day pass (08:00-20:00) holds for part of it.
        let (from, until) = window(Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap(), 12);
        let entries = |d, c| -> Vec<(u64, u64)> {
            allow_list(&s, door(d), from, until)
                .iter()
                .filter(|e| Credential::Card(e.card) == c)
                .map(|e| (e.from, e.until))
                .collect()
        };
        let last = (until.timestamp() - STEP_SECS + 1) as u64;
        assert_eq!(
            entries("d-cowork-in", staff),
            [(0, last)],
            "staff: any hour"
        );
        assert_eq!(
            entries("d-cowork-in", leaving),
            [(from.timestamp() as u64, last)],
            "a member whose validity ends is not"
        );
        let d = entries("d-cowork-in", day);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].0,
            from.timestamp() as u64,
            "a day pass holds at some hours only"
        );
        assert!(d[0].1 < last);
    }

    #[test]
    fn fitting_keeps_the_entries_valid_soonest_within_the_count_and_the_bytes() {
        let entry = |i: u32, from: u64| AllowEntry {
            card: kombinat_protocol::CardId::parse(&format!("{i:08X}")).unwrap(),
            from,
            until: from + 3_600,
        };
        // Twice what a node holds, the later half valid sooner.
        let n = 2 * ALLOW_LIST_MAX as u32;
        let mut cards: Vec<AllowEntry> = (0..n)
            .map(|i| {
                entry(
                    i,
                    if i < n / 2 {
                        1_790_003_600
                    } else {
                        1_790_000_000
                    },
                )
            })
            .collect();
        assert_eq!(fit(&mut cards, 1 << 20), n as usize);
        assert_eq!(cards.len(), ALLOW_LIST_MAX);
        assert!(cards.iter().all(|e| e.from == 1_790_000_000));
        assert!(cards.windows(2).all(|w| w[0].card < w[1].card));
        // Within the bytes, by the widest entry: a ten-byte card and far-off times.
        let mut cards: Vec<AllowEntry> = (0..100)
            .map(|i| entry(i, 1_790_000_000 + u64::from(i)))
            .collect();
        cards.push(AllowEntry {
            card: kombinat_protocol::CardId::parse("00112233445566778899").unwrap(),
            from: u64::MAX - 1,
            until: u64::MAX,
        });
        let budget = 10 * 89 + 1;
        assert_eq!(fit(&mut cards, budget), 101);
        assert_eq!(cards.len(), 10);
        assert!(serde_json::to_vec(&cards).unwrap().len() <= budget);
        assert_eq!(cards.iter().map(|e| e.from).max(), Some(1_790_000_009));
        // A list that fits is left as it is.
        let mut short: Vec<AllowEntry> = (0..5).map(|i| entry(i, 1_790_000_000)).collect();
        let before = short.clone();
        assert_eq!(fit(&mut short, 1 << 20), 5);
        assert_eq!(short, before);
    }
}
