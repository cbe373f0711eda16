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
        /// Entered.
        #[serde(rename = "in")]
        entered: u16,
        /// Left.
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
        /// Open.
        open: bool,
    },
    /// Temperature.
    Temperature {
        /// Degrees Celsius.
        celsius: f32,
    },
    /// Relative humidity.
    Humidity {
        /// Percent.
        percent: f32,
    },
    /// Illuminance.
    Light {
        /// Lux.
        lux: f32,
    },
}

/// A reading.
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
