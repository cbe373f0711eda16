//! The Kombinat door node and sensor node.
//!
//! The core is `no_std` and allocates nothing (build it with `--no-default-features`): time is
//! passed in, the hardware is embedded-hal 1.0 traits, the network a trait ([`net::Network`]).
//!
//! - [`door`]: the door node's state machine and its pins;
//! - [`sensor`]: the sensor node's state machine (PIR, two-beam counter, CO2) and its pins;
//! - [`wiegand`]: Wiegand 26/34-bit decoding from edge timestamps (and encoding, for tests and
//!   the simulator);
//! - [`drivers`]: the MFRC522 card reader (SPI) and the SCD4x CO2 sensor (I2C);
//! - [`net`]: what the state machines say to the gateway, and the [`net::Network`] trait.
//!
//! With `std` (the default): [`mqtt`], the rumqttc transport, and [`config`], the nodes' TOML
//! settings. With `rpi`: the `door-node` and `sensor-node` binaries for a Raspberry Pi. With
//! `sim`: [`sim`], the building simulator, and its binary `kombinat-sim`.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod door;
pub mod drivers;
pub mod net;
pub mod sensor;
pub mod supply;
pub mod wiegand;

#[cfg(feature = "std")]
pub mod config;
#[cfg(feature = "std")]
pub mod mqtt;
#[cfg(feature = "rpi")]
pub mod rpi;
#[cfg(all(feature = "std", target_os = "linux"))]
pub mod sdnotify;
#[cfg(feature = "sim")]
pub mod sim;

/// The time, as the caller's clocks tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Time {
    /// A monotonic clock in milliseconds (since boot): timeouts and alarms.
    pub ms: u64,
    /// Wall-clock Unix seconds: allow-list windows and offline log entries. A node whose clock
    /// is unset (booted with neither network time nor a valid real-time clock) passes 0: its
    /// offline decisions then grant only rights that hold at any hour
    /// (`allow.offline_any_hour`) and refuse the rest (`deny.offline_clock_unset`), and its log
    /// entries say 0 (the gateway logs them at their arrival).
    pub unix: u64,
}
