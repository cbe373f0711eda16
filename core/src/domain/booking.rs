//! Bookings: meetings, hostel stays, events and guest passes, keyed by the system they came from.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{MemberId, RoomId, SourceId};

/// The booking system's own identifier of a booking: any printable text up to 255 bytes
/// (calendar UIDs look like `040000008200E000…` or `abc@google.com`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExternalId(String);

impl ExternalId {
    /// Parses an external id.
    pub fn parse(s: &str) -> Result<Self, BookingError> {
        if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) {
            return Err(BookingError::ExternalId);
        }
        Ok(ExternalId(s.to_string()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ExternalId {
    type Error = BookingError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ExternalId::parse(&s)
    }
}

impl From<ExternalId> for String {
    fn from(e: ExternalId) -> String {
        e.0
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A booking's identity: the source system and its own id, so re-sending is idempotent.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BookingKey {
    /// Where the booking came from.
    pub source: SourceId,
    /// The source's id for it.
    pub external_id: ExternalId,
}

impl fmt::Display for BookingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.source, self.external_id)
    }
}

impl fmt::Debug for BookingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BookingKey({self})")
    }
}

/// What a booking is for; each kind is reported with its own reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum BookingKind {
    /// A room for a time window, with grace before and after.
    Meeting,
    /// A hostel room from check-in on arrival day to check-out on departure day.
    Stay,
    /// An event in a hall for its attendees, with grace before and after.
    Event,
    /// A visitor invited for a time window, to the host's room and the way to it; no grace.
    GuestPass,
}

/// Whether a booking counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    /// It grants access.
    #[default]
    Confirmed,
    /// It grants nothing; kept for the record.
    Cancelled,
}

/// When a booking holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Window {
    /// From `start` to `end` (exclusive).
    Timed {
        /// Start instant.
        start: DateTime<Utc>,
        /// End instant (exclusive).
        end: DateTime<Utc>,
    },
    /// Whole days, as hostel stays are sold: the site's check-in and check-out times apply.
    Days {
        /// Arrival day (local).
        arrival: NaiveDate,
        /// Departure day (local).
        departure: NaiveDate,
    },
}

/// A booking of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// Identity: source and external id.
    pub key: BookingKey,
    /// The booked room.
    pub room: RoomId,
    /// Meeting, stay, event or guest pass.
    pub kind: BookingKind,
    /// Title as the source gave it.
    #[serde(default)]
    pub title: String,
    /// The organiser, if a member.
    #[serde(default)]
    pub organiser: Option<MemberId>,
    /// Attendees who are members (guests on a guest pass are attendees).
    #[serde(default)]
    pub attendees: Vec<MemberId>,
    /// When it holds.
    pub window: Window,
    /// Confirmed or cancelled.
    #[serde(default)]
    pub status: BookingStatus,
}

/// Why a booking is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingError {
    /// Bad external id.
    #[error("an external id is 1 to 255 characters without control characters")]
    ExternalId,
    /// End not after start.
    #[error("a booking ends after it starts")]
    EndBeforeStart,
    /// Departure not after arrival.
    #[error("a stay's departure day comes after its arrival day")]
    DepartureBeforeArrival,
    /// Stay with a timed window, or a timed kind with days.
    #[error(
        "stays are booked in days (arrival, departure); meetings, events and guest passes in times"
    )]
    WindowKind,
    /// Nobody to grant.
    #[error("a booking needs an organiser or at least one attendee")]
    NoOne,
}

impl Booking {
    /// Checks the booking's own consistency (the site checks the room).
    pub fn validate(&self) -> Result<(), BookingError> {
        match (self.kind, self.window) {
            (BookingKind::Stay, Window::Days { arrival, departure }) => {
                if departure <= arrival {
                    return Err(BookingError::DepartureBeforeArrival);
                }
            }
            (BookingKind::Stay, Window::Timed { .. }) | (_, Window::Days { .. }) => {
                return Err(BookingError::WindowKind)
            }
            (_, Window::Timed { start, end }) => {
                if end <= start {
                    return Err(BookingError::EndBeforeStart);
                }
            }
        }
        if self.organiser.is_none() && self.attendees.is_empty() {
            return Err(BookingError::NoOne);
        }
        Ok(())
    }

    /// Everyone the booking grants: organiser first, then attendees, without repeats.
    pub fn people(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.organiser.iter().copied().chain(
            self.attendees
                .iter()
                .copied()
                .filter(move |a| Some(*a) != self.organiser),
        )
    }
}
