//! Kombinat's logic, kept free of I/O by the compiler: this crate depends on no runtime, broker,
//! database or HTTP crate (`.ci/run` checks `cargo tree -p kombinat-core`), so everything here
//! takes time and input as arguments and can be tested on a virtual clock.
//!
//! - [`domain`]: the site and its people as validated types, and the site file's rules.
//! - [`access`]: the decision at a door, from a snapshot of members, plans, leases and bookings.
//! - [`occupancy`]: the head-count estimator, the presence detector, no-shows and reports.
//! - [`booking`]: bookings from outside: iCalendar, CSV and the REST shape, and the one
//!   calendar reconciliation the CLI, the feeds and the API share.
//! - [`wire`]: MQTT payloads to events and back without a socket: the desk (our signed
//!   protocol), the off-the-shelf dialects (esp-rfid, Tasmota, Zigbee2MQTT), Home Assistant.
//! - [`store`]: the store's port: the [`store::Store`] trait, its records and audit vocabulary,
//!   the memory store, and the contract every store keeps.
//!
//! The gateway crate (`kombinat`) is the runtime around it: sockets, threads, the sled store,
//! HTTP and the command line. See ARCHITECTURE.md.

#![deny(unsafe_code)]

pub mod access;
pub mod alerts;
pub mod booking;
pub mod domain;
pub mod occupancy;
pub mod power;
pub mod site_file;
pub mod store;
pub mod timers;
pub mod wire;
