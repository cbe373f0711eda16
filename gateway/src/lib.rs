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

pub mod access;
pub mod adapters;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod desk;
pub mod domain;
pub mod feed;
pub mod gateway;
pub mod ha;
pub mod http;
pub mod ics;
pub mod import;
pub mod link;
pub mod live;
pub mod mosquitto;
pub mod occupancy;
pub mod poller;
pub use kombinat_firmware::sdnotify;
pub mod service;
pub mod site_file;
pub mod spool;
pub mod staff;
pub mod store;
pub mod webhook;
