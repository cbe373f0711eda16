//! What each booking source may book: which rooms, and for how long. A `bookings:write` token,
//! a CSV import and a calendar feed write bookings that open doors; without limits a token for
//! the meeting-room system could give anyone a month in the plant room or another tenant's
//! office. The site file's `[bookings]` section sets the rules; without it, sources book the
//! rooms people book (meeting rooms, halls, the coworking floor, galleries, labs, hostel rooms,
//! common rooms) and never offices, technical rooms, corridors, lobbies or the shelter.

use std::collections::BTreeMap;

use super::{Booking, BookingKind, RoomId, RoomKind, Site, SourceId, Window};

/// A room a source may book: every room of a kind, or one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bookable {
    /// Every room of this kind.
    Kind(RoomKind),
    Room(RoomId),
}

/// One source's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRules {
    /// The rooms it may book.
    pub rooms: Vec<Bookable>,
    /// Its longest booking, days; `None`: the length each kind of booking has by default
    /// ([`default_max_hours`]).
    pub max_days: Option<u32>,
}

/// The longest booking of a kind, hours, unless a source's rules say otherwise: a meeting or a
/// guest pass is a day at most, an event two weeks, a hostel stay three months.
pub fn default_max_hours(kind: BookingKind) -> i64 {
    match kind {
        BookingKind::Meeting | BookingKind::GuestPass => 24,
        BookingKind::Event => 14 * 24,
        BookingKind::Stay => 92 * 24,
    }
}

/// The room kinds sources may book when the site file does not say.
pub const DEFAULT_BOOKABLE: [RoomKind; 8] = [
    RoomKind::Meeting,
    RoomKind::Conference,
    RoomKind::Coworking,
    RoomKind::Exhibition,
    RoomKind::Gallery,
    RoomKind::Lab,
    RoomKind::Hostel,
    RoomKind::Common,
];

/// Every source's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRules {
    /// For sources not named below.
    pub default: SourceRules,
    /// By source.
    pub sources: BTreeMap<SourceId, SourceRules>,
}

impl Default for BookingRules {
    fn default() -> Self {
        BookingRules {
            default: SourceRules {
                rooms: DEFAULT_BOOKABLE
                    .iter()
                    .map(|k| Bookable::Kind(*k))
                    .collect(),
                max_days: None,
            },
            sources: BTreeMap::new(),
        }
    }
}

impl BookingRules {
    /// The rules of a source.
    pub fn of(&self, source: SourceId) -> &SourceRules {
        self.sources.get(&source).unwrap_or(&self.default)
    }

    /// Whether `source` may book `room` (of kind `kind`) at all.
    pub fn may_book(&self, source: SourceId, room: RoomId, kind: RoomKind) -> bool {
        self.of(source).rooms.iter().any(|r| match r {
            Bookable::Kind(k) => *k == kind,
            Bookable::Room(id) => *id == room,
        })
    }

    /// Whether `b`'s source may make it: the room is one it may book and the booking is no
    /// longer than it may be. The answer says why not in a sentence.
    pub fn check(&self, site: &Site, b: &Booking) -> Result<(), String> {
        let rules = self.of(b.key.source);
        let room = site
            .room(b.room)
            .ok_or_else(|| format!("there is no room {} in the site file", b.room))?;
        let bookable = self.may_book(b.key.source, room.id, room.kind);
        if !bookable {
            return Err(format!(
                "source {} may not book {} ({}): the site file's [bookings] says which rooms each source books",
                b.key.source,
                room.id,
                serde_json::to_value(room.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ));
        }
        // The kind of booking must fit the room: a stay is a bed in a hostel room, and a
        // hostel room is booked only as a stay (a stay's length is the longest).
        let fits = match b.kind {
            BookingKind::Stay => room.kind == RoomKind::Hostel,
            _ => room.kind != RoomKind::Hostel,
        };
        if !fits {
            return Err(format!(
                "a {} cannot be booked in {}: stays are for hostel rooms, and hostel rooms are for stays",
                serde_json::to_value(b.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                    .unwrap_or_default(),
                room.id
            ));
        }
        let hours = match b.window {
            Window::Timed { start, end } => {
                (end - start).num_minutes().div_euclid(60)
                    + i64::from((end - start).num_minutes().rem_euclid(60) > 0)
            }
            Window::Days { arrival, departure } => (departure - arrival).num_days() * 24,
        };
        let max = rules
            .max_days
            .map_or_else(|| default_max_hours(b.kind), |d| i64::from(d) * 24);
        if hours > max {
            return Err(format!(
                "a booking from {} lasts {} at most ({} asked)",
                b.key.source,
                span(max),
                span(hours)
            ));
        }
        Ok(())
    }
}

fn span(hours: i64) -> String {
    if hours % 24 == 0 && hours >= 48 {
        format!("{} days", hours / 24)
    } else {
        format!("{hours} h")
    }
}
