//! One line a staff member understands: why a door opened or stayed shut.

use chrono::{DateTime, Utc};

use super::{Decision, Snapshot};
use crate::domain::{Reason, Window};

fn hm(s: &Snapshot, t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .map(|t| {
            t.with_timezone(&s.site().timezone)
                .format("%a %d %b %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// Explains a decision in words, with the facts it rests on.
pub fn explain(s: &Snapshot, d: &Decision) -> String {
    let site = s.site();
    let door = site.door(d.door);
    let door_name = door.map_or_else(|| d.door.to_string(), |x| x.name.clone());
    let room = door.and_then(|x| site.room(x.into));
    let room_name = room.map_or("the room", |r| r.name.as_str());
    let member = d.member.and_then(|m| s.member(m));
    let who = member.map_or_else(
        || "This credential's holder".to_string(),
        |m| m.name.clone(),
    );
    let booking = d.booking.as_ref().map(|b| {
        let w = s.window_of(b);
        let room = site
            .room(b.room)
            .map_or(b.room.to_string(), |r| r.name.clone());
        let what = match b.window {
            Window::Timed { start, end } => {
                format!("{} to {}", hm(s, start.timestamp()), hm(s, end.timestamp()))
            }
            Window::Days { arrival, departure } => format!("{arrival} to {departure}"),
        };
        format!(
            "{:?} ({}, {} in {}; opens {} to {})",
            b.title,
            b.key,
            what,
            room,
            hm(s, w.from),
            hm(s, w.until)
        )
    });
    let plan = member.and_then(|m| m.plan).and_then(|p| s.plan_def(p));
    let local = site.local_time(d.at);
    let when = hm(s, d.at.timestamp());
    let verdict = if d.allowed() { "ALLOW" } else { "DENY" };
    let why = match d.reason {
        Reason::Staff => format!("{who} is staff: every door, any hour"),
        Reason::Booking | Reason::Stay | Reason::Event | Reason::GuestPass => format!(
            "{who} holds {} {}",
            match d.reason {
                Reason::Booking => "the booking",
                Reason::Stay => "the hostel stay",
                Reason::Event => "a place at the event",
                _ => "the guest pass",
            },
            booking.unwrap_or_default()
        ),
        Reason::Lease => format!(
            "{who}'s organisation ({}) leases a room behind this door",
            member
                .and_then(|m| m.organisation)
                .map_or_else(String::new, |o| o.to_string())
        ),
        Reason::Plan => format!(
            "{who}'s plan {:?} opens {room_name} at this hour",
            plan.map_or("?", |p| p.name.as_str())
        ),
        Reason::PublicHours => format!(
            "the door stands open to the public now ({})",
            door.and_then(|x| x.public_hours.as_ref())
                .map_or_else(String::new, |h| h.to_string())
        ),
        Reason::Exit => format!(
            "{who} is leaving {}: exit readers let every member out",
            door.and_then(|x| x.from)
                .and_then(|r| site.room(r))
                .map_or("the room", |r| r.name.as_str())
        ),
        Reason::Shelter => "shelter mode: this door is on the way to the shelter".to_string(),
        Reason::Emergency => "emergency mode: egress doors are released".to_string(),
        Reason::UnknownDoor => {
            format!("there is no door {:?} in the site file", d.door.to_string())
        }
        Reason::UnknownCredential => format!("no member holds {}", d.credential),
        Reason::CredentialRevoked => format!("{} of {who} was revoked", d.credential),
        Reason::MemberSuspended => format!(
            "{who} is suspended{}",
            match member.map(|m| &m.status) {
                Some(crate::domain::MemberStatus::Suspended { reason }) if !reason.is_empty() =>
                    format!(" ({reason})"),
                _ => String::new(),
            }
        ),
        Reason::MemberNotYetValid => format!(
            "{who}'s membership starts {}",
            member
                .and_then(|m| m.valid_from)
                .map_or_else(String::new, |t| hm(s, t.timestamp()))
        ),
        Reason::MemberExpired => format!(
            "{who}'s membership ended {}",
            member
                .and_then(|m| m.valid_until)
                .map_or_else(String::new, |t| hm(s, t.timestamp()))
        ),
        Reason::Lockdown => format!("lockdown: only staff and security pass, and {who} is neither"),
        Reason::NoRight => {
            format!("{who} has no plan, lease, booking or pass that reaches {room_name}")
        }
        Reason::OutsideSchedule => format!(
            "{who}'s plan or lease reaches {room_name}, but not at {when}{}",
            plan.map_or_else(String::new, |p| format!(
                " (plan {:?}: {})",
                p.name,
                p.grants
                    .iter()
                    .map(|g| g.schedule.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        ),
        Reason::Holiday => format!(
            "{} is a holiday and {who}'s plan pauses on holidays",
            local.date
        ),
        Reason::BookingNotActive => format!(
            "{who}'s booking {} does not cover {when}",
            booking.unwrap_or_default()
        ),
        Reason::CertificationMissing => format!(
            "{room_name} requires {}, which {who} does not hold",
            room.map_or_else(String::new, |r| r
                .certifications
                .iter()
                .filter(|c| member.is_none_or(|m| !m.certifications.contains(c)))
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", "))
        ),
        Reason::RoomFull => format!(
            "{room_name} is at its capacity of {}: the people counters at its doorways count {} inside",
            room.and_then(|r| r.capacity).unwrap_or(0),
            room.and_then(|r| site.room_index(r.id))
                .map_or(0, |i| s.occupancy(i))
        ),
        Reason::OfflineListed => {
            "the door decided alone (gateway unreachable): the card was on its allow-list"
                .to_string()
        }
        Reason::OfflineNotListed => {
            "the door decided alone (gateway unreachable): the card was not on its allow-list"
                .to_string()
        }
        Reason::OfflineListExpired => {
            "the door decided alone (gateway unreachable) and its allow-list had expired"
                .to_string()
        }
        Reason::OfflineAnyHour => {
            "the door decided alone with its clock unset: the card's rights on its allow-list hold at any hour"
                .to_string()
        }
        Reason::OfflineClockUnset => {
            "the door decided alone with its clock unset: the card's rights on its allow-list hold only at some hours, which the door could not tell"
                .to_string()
        }
        Reason::AntiPassback => format!("{who} already passed this way and has not passed back"),
        Reason::DeviceListed => {
            format!("the reader decided itself: {who}'s card is on the user list the gateway keeps on it")
        }
        Reason::DeviceNotListed => format!(
            "the reader decided itself: {who}'s card is not on its user list for this moment"
        ),
    };
    let unlock = if d.allowed() {
        format!(", unlock {:.1} s", f64::from(d.unlock_ms) / 1000.0)
    } else {
        String::new()
    };
    format!(
        "{verdict} at {door_name} ({when}): {why} [{}{unlock}]",
        d.reason.code()
    )
}
