//! The booking family: events the gateway publishes about bookings, `booking/<kind>`.
//!
//! A no-show: `{"v":1,"source":"nextcloud","external_id":"abc@example.org","room":"meeting-1",
//! "start":1795690000,"end":1795693600,"judged_at":1795690600}`. The booking system matches it
//! by `(source, external_id)`, its own identity of the booking, and may release the room.

use std::string::String;

use crate::{RoomId, SourceId};

/// Nobody came to a booked room within the first minutes of the booking.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoShow {
    /// Protocol version.
    pub v: u8,
    /// The booking system the booking came from.
    pub source: SourceId,
    /// That system's own id of the booking.
    pub external_id: String,
    /// The booked room.
    pub room: RoomId,
    /// Booked from (Unix seconds)…
    pub start: u64,
    /// …until (exclusive).
    pub end: u64,
    /// When the gateway judged it a no-show.
    pub judged_at: u64,
}
