//! The device family: a device's status, sent as a heartbeat and set as its last will.
//!
//! `device/<id>/status`, retained: `{"v":1,"state":"online","firmware":"1.0.0","uptime_s":3600,
//! "heartbeat_s":30}` while alive, and the last will `{"v":1,"state":"offline"}`. Status is not
//! signed (a last will cannot be signed at the moment it is sent); the broker's per-device ACL
//! keeps other clients off this topic, and the gateway never opens a door because of it.
//!
//! Nodes also send, signed, their power supply ([`Power`], `device/<id>/power`) and their
//! dry-contact alert input ([`AlertInput`], `device/<id>/alert`).

use crate::auth::{signed, Mac};
use crate::DeviceId;

/// Online or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Alive.
    Online,
    /// Gone (last will, or an orderly goodbye).
    Offline,
}

/// A device's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    /// Protocol version.
    pub v: u8,
    /// Online or offline.
    pub state: Presence,
    /// Firmware version, if the device says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<crate::Ident>,
    /// Seconds since the device started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    /// How often the device sends its status; the gateway raises an alarm after three missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_s: Option<u32>,
}

/// A node's power supply, on `device/<device>/power`: sent at start, whenever mains comes or
/// goes, and with each heartbeat while on battery (signed: load shedding acts on it).
///
/// `{"v":1,"device":"door-main","counter":12,"mains":false,"battery_mv":12180,"mac":"…"}`
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Power {
    /// Protocol version.
    pub v: u8,
    /// The node.
    pub device: DeviceId,
    /// The node's counter (the same one its other signed messages use).
    pub counter: u64,
    /// Whether mains power is present at the node's supply.
    pub mains: bool,
    /// The backup battery's voltage in millivolts, if the node can measure it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_mv: Option<u32>,
    /// HMAC over the fields above (`battery_mv` as an empty field when absent).
    pub mac: Mac,
}

signed!(Power, "power", |s, m| {
    m.num(u64::from(s.v));
    m.show(s.device);
    m.num(s.counter);
    m.num(u64::from(s.mains));
    match s.battery_mv {
        Some(mv) => m.num(u64::from(mv)),
        None => m.text(""),
    }
});

/// A node's dry-contact alert input (a siren relay, a staff key switch), on
/// `device/<device>/alert`: sent at start, on every change and with each heartbeat. While it
/// is active the gateway keeps the site in shelter mode, as an air-raid alert from a feed
/// would, if the gateway's configuration names the node among its `[[alert_inputs]]`.
///
/// `{"v":1,"device":"door-main","counter":13,"active":true,"mac":"…"}`
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertInput {
    /// Protocol version.
    pub v: u8,
    /// The node.
    pub device: DeviceId,
    /// The node's counter.
    pub counter: u64,
    /// The contact says alert (the siren relay closed, the key switch on).
    pub active: bool,
    /// HMAC over the fields above.
    pub mac: Mac,
}

signed!(AlertInput, "alert-input", |s, m| {
    m.num(u64::from(s.v));
    m.show(s.device);
    m.num(s.counter);
    m.num(u64::from(s.active));
});
