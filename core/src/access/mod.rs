//! The access decision: `decide(snapshot, tap, now) -> Decision`, pure and I/O-free.
//!
//! A [`Snapshot`] holds everything a decision reads — the site, members, credentials, plans,
//! leases, bookings, the site mode, current occupancy and anti-passback state — indexed so that a
//! decision touches only the tapping member's own rights: credentials and members are hash
//! lookups, and each member's bookings are a short list sorted by time (an index per room by time
//! serves the views that need it). The caller keeps the snapshot current with the `upsert_*` and
//! `set_*` methods as the store changes, and reports allowed passages back with
//! [`Snapshot::record`] (for anti-passback).
//!
//! [`decide`] checks, in this order: the door, the credential, the member, emergency release,
//! the shelter route, exit readers (any member may leave, anti-passback permitting), the
//! member's status and validity, the staff role, lockdown, then the rights
//! (booking, stay, event, guest pass, lease, plan, public hours: the most specific is reported),
//! then the conditions on the room behind the door (certification, capacity) and anti-passback.
//! The first that settles it gives the one reason code.

pub mod allow_list;
mod explain;
mod snapshot;

pub use explain::explain;
pub use snapshot::{capacity_count, BookingWindow, Snapshot, SnapshotWarning, CAPACITY_CONFIDENCE};

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Booking, BookingKind, Credential, DoorId, MemberId, Reason, SiteMode};

/// A tap of a credential at a door reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tap {
    /// The reader.
    pub door: DoorId,
    /// What was presented.
    pub credential: Credential,
}

/// The outcome of a tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// When it was decided.
    pub at: DateTime<Utc>,
    /// The reader.
    pub door: DoorId,
    /// What was presented.
    pub credential: Credential,
    /// The one reason; it says whether the door opens.
    pub reason: Reason,
    /// How long to release the strike (0 when denied).
    pub unlock_ms: u32,
    /// The member the decision rests on, when the credential is known.
    pub member: Option<MemberId>,
    /// The booking the decision rests on (allowed by, or denied for being outside of).
    pub booking: Option<Arc<Booking>>,
}

impl Decision {
    /// Whether the door opens.
    pub fn allowed(&self) -> bool {
        self.reason.is_allow()
    }
}

const NEAR_MISS_SECS: i64 = 12 * 3600;

fn booking_reason(kind: BookingKind) -> Reason {
    match kind {
        BookingKind::Meeting => Reason::Booking,
        BookingKind::Stay => Reason::Stay,
        BookingKind::Event => Reason::Event,
        BookingKind::GuestPass => Reason::GuestPass,
    }
}

/// Decides a tap. Pure: the same snapshot, tap and instant always give the same decision.
pub fn decide(s: &Snapshot, tap: &Tap, now: DateTime<Utc>) -> Decision {
    let mut d = Decision {
        at: now,
        door: tap.door,
        credential: tap.credential,
        reason: Reason::UnknownDoor,
        unlock_ms: 0,
        member: None,
        booking: None,
    };
    let site = s.site();
    let Some(di) = site.door_index(tap.door) else {
        return d;
    };
    let door = &site.doors[di];
    let Some((cred, entry)) = s.holder(&tap.credential) else {
        d.reason = Reason::UnknownCredential;
        return d;
    };
    let Some(member) = entry.member.as_ref() else {
        d.reason = Reason::UnknownCredential;
        return d;
    };
    d.member = Some(member.id);
    let settle = |d: &mut Decision, reason: Reason| {
        d.reason = reason;
        if reason.is_allow() {
            d.unlock_ms = door.unlock_ms;
        }
    };
    if cred.revoked_at.is_some_and(|t| t <= now) {
        settle(&mut d, Reason::CredentialRevoked);
        return d;
    }
    // Life safety first: a released egress door lets every known holder out, even a suspended
    // one; in shelter mode the way to the shelter opens for every holder.
    if s.mode() == SiteMode::Emergency && door.egress {
        settle(&mut d, Reason::Emergency);
        return d;
    }
    if s.mode() == SiteMode::Shelter && site.on_shelter_route(di) {
        settle(&mut d, Reason::Shelter);
        return d;
    }
    // Leaving is never a matter of rights or status (nobody is trapped inside); anti-passback
    // still counts the passage.
    if site.is_exit(di) {
        let reason = match site.passback(di) {
            Some((pair, is_entry)) if s.inside(member.id, pair) == Some(is_entry) => {
                Reason::AntiPassback
            }
            _ => Reason::Exit,
        };
        settle(&mut d, reason);
        return d;
    }
    if !matches!(member.status, crate::domain::MemberStatus::Active) {
        settle(&mut d, Reason::MemberSuspended);
        return d;
    }
    if member.valid_from.is_some_and(|t| now < t) {
        settle(&mut d, Reason::MemberNotYetValid);
        return d;
    }
    if member.valid_until.is_some_and(|t| now >= t) {
        settle(&mut d, Reason::MemberExpired);
        return d;
    }
    if member.is_staff() {
        settle(&mut d, Reason::Staff);
        return d;
    }
    // The site locked down, or this door alone.
    if s.mode() == SiteMode::Lockdown || s.door_locked(di) {
        settle(&mut d, Reason::Lockdown);
        return d;
    }

    // Rights, most specific first. `near` keeps the most telling reason to deny if none holds.
    let reach = site.reach(di);
    let into = Some(site.into_room(di));
    let t = now.timestamp();
    let mut near = Reason::NoRight;
    let mut near_booking = None;
    let mut right = None;
    let mut best_slot = None;
    // The nearest booking for this door that is not on now, within NEAR_MISS_SECS either side.
    let mut nearest: Option<(i64, u32)> = None;
    for slot in entry.slots(t - NEAR_MISS_SECS, t + NEAR_MISS_SECS) {
        if !reach.contains(slot.room as usize) {
            continue;
        }
        if slot.from <= t && t < slot.until {
            let exact = Some(slot.room as usize) == into;
            match best_slot {
                Some((_, true)) => {}
                Some((_, false)) if !exact => {}
                _ => best_slot = Some((slot.booking, exact)),
            }
        } else {
            let gap = if slot.from > t {
                slot.from - t
            } else {
                t - slot.until
            };
            if gap <= NEAR_MISS_SECS && nearest.is_none_or(|(g, _)| gap < g) {
                nearest = Some((gap, slot.booking));
            }
        }
    }
    if let Some((b, _)) = best_slot {
        let booking = s.booking_at(b).cloned();
        right = booking.as_ref().map(|b| booking_reason(b.kind));
        d.booking = booking;
    } else if let Some((_, b)) = nearest {
        near = Reason::BookingNotActive;
        near_booking = s.booking_at(b).cloned();
    }
    if right.is_none() {
        let local = site.local_time(now);
        let holiday = site.holidays.contains(&local.date);
        if let Some(org) = member.organisation {
            for lease in s.leases_of(org) {
                if !reach.contains(lease.room) || !lease.valid_at(now) {
                    continue;
                }
                if lease
                    .schedule
                    .as_ref()
                    .is_none_or(|sch| sch.contains(&local))
                {
                    right = Some(Reason::Lease);
                    break;
                } else if near == Reason::NoRight {
                    near = Reason::OutsideSchedule;
                }
            }
        }
        if right.is_none() {
            if let Some(plan) = member.plan.and_then(|p| s.plan(p)) {
                for grant in plan.grants.iter().filter(|g| g.rooms.intersects(reach)) {
                    if !grant.schedule.contains(&local) {
                        if near == Reason::NoRight {
                            near = Reason::OutsideSchedule;
                        }
                    } else if holiday && plan.closed_on_holidays {
                        if matches!(near, Reason::NoRight | Reason::OutsideSchedule) {
                            near = Reason::Holiday;
                        }
                    } else {
                        right = Some(Reason::Plan);
                        break;
                    }
                }
            }
        }
        if right.is_none()
            && !holiday
            && door
                .public_hours
                .as_ref()
                .is_some_and(|h| h.contains(&local))
        {
            right = Some(Reason::PublicHours);
        }
    }
    let Some(right) = right else {
        if near == Reason::BookingNotActive {
            d.booking = near_booking;
        }
        settle(&mut d, near);
        return d;
    };

    // Conditions on the room behind the door.
    if let Some(room) = into.and_then(|i| site.rooms.get(i)) {
        if !room
            .certifications
            .iter()
            .all(|c| member.certifications.contains(c))
        {
            settle(&mut d, Reason::CertificationMissing);
            return d;
        }
        if let (Some(cap), Some(i)) = (room.capacity, into) {
            if s.occupancy(i) >= cap {
                settle(&mut d, Reason::RoomFull);
                return d;
            }
        }
    }
    if let Some((pair, is_entry)) = site.passback(di) {
        if s.inside(member.id, pair) == Some(is_entry) {
            settle(&mut d, Reason::AntiPassback);
            return d;
        }
    }
    settle(&mut d, right);
    d
}

#[cfg(any(test, feature = "testing"))]
pub mod fixture;
#[cfg(test)]
pub(crate) mod tests;
