//! Device bindings: off-the-shelf devices (esp-rfid, Tasmota, Zigbee2MQTT) named in the site
//! file, each saying which door or room its MQTT topic stands for.
//!
//! Native Kombinat nodes are registered with a key (`kombinat device add`); these devices have
//! no key and speak their own formats, so the site file binds them: the broker's ACL is what
//! keeps another client off their topics (see `deploy/`).

use serde::{Deserialize, Serialize};

use super::{DeviceId, DoorId, RoomId};

/// Which off-the-shelf firmware a device runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingKind {
    /// esp-rfid: a door reader that decides from its own user list; topics `<topic>/send`,
    /// `<topic>/avty`, commands to `<topic>/cmd`.
    EspRfid,
    /// Tasmota: RFID reads and sensors on `tele/<topic>/SENSOR`, a relay as the strike.
    Tasmota,
    /// Zigbee2MQTT: a Zigbee sensor's state on `zigbee2mqtt/<topic>`.
    Zigbee2mqtt,
}

impl BindingKind {
    /// The name used in the site file.
    pub fn as_str(self) -> &'static str {
        match self {
            BindingKind::EspRfid => "esp_rfid",
            BindingKind::Tasmota => "tasmota",
            BindingKind::Zigbee2mqtt => "zigbee2mqtt",
        }
    }
}

/// One bound device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The device's name in the gateway (health, log).
    pub id: DeviceId,
    /// Its firmware.
    pub kind: BindingKind,
    /// Its topic: esp-rfid's base topic, Tasmota's `%topic%`, Zigbee2MQTT's friendly name.
    pub topic: String,
    /// The door readers it serves, in relay order (esp-rfid with several relays names several).
    pub doors: Vec<DoorId>,
    /// The room its sensors are in.
    pub room: Option<RoomId>,
    /// esp-rfid: the device's own IP address, which every command must carry.
    pub ip: Option<String>,
    /// Tasmota: the relay driving the strike (1 for `POWER1`/`POWER`).
    pub relay: u8,
}

impl Binding {
    /// The first door it serves.
    pub fn door(&self) -> Option<DoorId> {
        self.doors.first().copied()
    }
}
