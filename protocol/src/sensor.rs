//! The sensor family: readings from sensor nodes, `sensor/<device>/reading`.
//!
//! `{"v":1,"device":"sensor-cowork","counter":7,"reading":{"co2":{"ppm":812}}}`. Readings are
//! not signed: they open no door, the broker's ACL keeps a device to its own topic, and at
//! thousands per second a Pi's cycles are better spent elsewhere.

use crate::DeviceId;

/// What a sensor measured.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Measurement {
    /// A bidirectional people counter at a doorway: people in and out since the last reading.
    Counter {
        /// People who came in since the node's last reading (a delta, not a running total).
        #[serde(rename = "in")]
        entered: u16,
        /// People who went out since the node's last reading.
        out: u16,
    },
    /// Motion (PIR).
    Motion {
        /// Motion seen.
        active: bool,
    },
    /// Carbon dioxide.
    Co2 {
        /// Parts per million.
        ppm: u16,
    },
    /// A door or window contact.
    Contact {
        /// True while it stands open.
        open: bool,
    },
    /// Air temperature (for the dashboard; it counts nobody).
    Temperature {
        /// Degrees Celsius.
        celsius: f32,
    },
    /// Relative humidity.
    Humidity {
        /// 0 to 100.
        percent: f32,
    },
    /// Illuminance.
    Light {
        /// In lux, at the sensor.
        lux: f32,
    },
}

/// One measurement of a sensor node, on `sensor/<device>/reading` (see the README for QoS and counters).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reading {
    /// Protocol version.
    pub v: u8,
    /// The sensor node.
    pub device: DeviceId,
    /// The node's counter (detects lost or repeated readings).
    pub counter: u64,
    /// The measurement.
    pub reading: Measurement,
}
