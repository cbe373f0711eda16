//! Devices that speak to the gateway: door nodes, sensor nodes and alert feeds, each with its
//! own secret key and binding.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DeviceId, DoorId, RoomId};
pub use kombinat_protocol::auth::DeviceKey;

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A door node: reader, strike, contact; bound to one door reader.
    Door,
    /// A sensor node: people counter, motion, CO2; bound to one room.
    Sensor,
    /// An alert feed (air-raid alerts, the fire panel's relay): may set the site mode.
    AlertFeed,
}

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Identifier (its MQTT client id and topic id).
    pub id: DeviceId,
    /// What it is.
    pub kind: DeviceKind,
    /// The door reader it serves (door nodes).
    #[serde(default)]
    pub door: Option<DoorId>,
    /// The room it watches (sensor nodes).
    #[serde(default)]
    pub room: Option<RoomId>,
    /// Its secret key.
    #[serde(with = "key_hex")]
    pub key: DeviceKey,
    /// When it was registered.
    pub added_at: DateTime<Utc>,
}

mod key_hex {
    use super::DeviceKey;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &DeviceKey, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&k.expose_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DeviceKey, D::Error> {
        let s = String::deserialize(d)?;
        DeviceKey::parse_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("a device key is 64 hex digits"))
    }
}

/// The replay counters of one device: the last counter accepted from it, and the last the
/// gateway used towards it. Stored before any message that depends on them is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceMark {
    pub device: Option<DeviceId>,
    /// Last counter accepted from the device.
    pub rx: u64,
    /// Last counter the gateway sent to the device.
    pub tx: u64,
    /// The highest offline-log tap counter stored for the device.
    #[serde(default)]
    pub offline: u64,
    /// When these counters were stored.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}
