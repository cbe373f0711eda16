//! The room family: occupancy, published by the gateway, retained, on `room/<room>/occupancy`.

use crate::RoomId;

/// What an occupancy figure rests on, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Bidirectional people counters at the doorways.
    Counter,
    /// Allowed entries through the room's doors.
    Entries,
    /// Motion sensors.
    Motion,
    /// Carbon dioxide.
    Co2,
    /// Nothing recent.
    None,
}

/// A room's occupancy.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Occupancy {
    /// Protocol version.
    pub v: u8,
    /// The room counted, the same as in the topic.
    pub room: RoomId,
    /// Head count.
    pub count: u32,
    /// Whether anyone is there.
    pub occupied: bool,
    /// How sure, 0 to 1.
    pub confidence: f32,
    /// What it rests on.
    pub basis: Basis,
    /// The room's CO2, when a sensor reported it lately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub co2_ppm: Option<u16>,
    /// When (Unix seconds).
    pub at: u64,
}
