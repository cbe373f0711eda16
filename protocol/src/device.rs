//! The device family: a device's status, sent as a heartbeat and set as its last will.
//!
//! `device/<id>/status`, retained: `{"v":1,"state":"online","firmware":"1.0.0","uptime_s":3600,
//! "heartbeat_s":30}` while alive, and the last will `{"v":1,"state":"offline"}`. Status is not
//! signed (a last will cannot be signed at the moment it is sent); the broker's per-device ACL
//! keeps other clients off this topic, and the gateway never opens a door because of it.

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
