//! Kombinat gateway: the access and occupancy gateway of the Kherson Centre of Creative Industries.
//!
//! Layout:
//! - [`domain`]: the building's language as validated types (site, members, bookings, …);
//! - [`site_file`]: the TOML site file, loaded with every error reported in place;
//! - [`access`]: the pure access decision over an indexed [`access::Snapshot`];
//! - [`store`]: persistence behind one trait, on sled or in memory, with the audit log;
//! - [`gateway`]: the state that ties store, snapshot and audit together, one change at a time;
//! - [`desk`], [`service`], [`link`], [`broker`], [`config`]: `kombinat run` on MQTT;
//! - [`occupancy`]: the presence detector and head count, calibrated on the UCI data;
//! - [`cli`]: the `kombinat` command line.
#![deny(unsafe_code)]

// The logic lives in `kombinat-core`, free of I/O; its rooms keep their names here so that
// `kombinat::domain`, `kombinat::access` … mean what they always did.
pub use kombinat_core::booking::{feed, ics, import};
pub use kombinat_core::wire::{desk, dialects, ha};
pub use kombinat_core::{access, booking, domain, occupancy, site_file, wire};

pub mod alert_poller;
pub mod broker;
pub mod bus;
pub mod cli;
pub mod clock;
pub mod clock_sync;
pub mod config;
pub mod demo;
pub mod engine;
pub mod http;
pub mod link;
pub mod live;
pub mod mosquitto;
pub mod poller;
pub mod registry;
pub use kombinat_firmware::sdnotify;
pub mod service;
pub mod spool;
pub mod staff;
pub mod store;
pub mod webhook;
