//! The network as the state machines see it: a [`Network`] sends what a node has to say and
//! tells whether the link is up. A transport implements it (rumqttc on a Raspberry Pi and in the
//! simulator, see `mqtt`; an ESP32 or RP2040 port writes its own); what arrives from the
//! gateway is handed to the state machine's methods by the transport, already parsed.

use kombinat_protocol::auth::Mac;
use kombinat_protocol::device::{AlertInput, Power};
use kombinat_protocol::door::{DoorState, OfflineEntry, Tap};
use kombinat_protocol::sensor::Reading;
use kombinat_protocol::{DeviceId, DoorId};

/// An offline log as the node keeps it (entries in its own table), signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineLogOut<'a> {
    /// Protocol version.
    pub v: u8,
    /// The node's own door; the gateway refuses the log when it is not the topic's.
    pub door: DoorId,
    /// The door node.
    pub device: DeviceId,
    /// The node's counter.
    pub counter: u64,
    /// The entries, oldest first.
    pub entries: &'a [OfflineEntry],
    /// The MAC over all of it.
    pub mac: Mac,
}

/// A message from a node to the gateway.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Up<'a> {
    /// A tap (`door/<door>/tap`).
    Tap(&'a Tap),
    /// The door's state (`door/<door>/state`).
    State(&'a DoorState),
    /// Offline decisions (`door/<door>/offline-log`).
    OfflineLog(OfflineLogOut<'a>),
    /// A sensor reading (`sensor/<device>/reading`).
    Reading(&'a Reading),
    /// The node's mains and battery (`device/<device>/power`).
    Power(&'a Power),
    /// The node's dry-contact alert input (`device/<device>/alert`).
    Alert(&'a AlertInput),
}

/// The link to the gateway.
pub trait Network {
    /// Why a message could not be handed to the link.
    type Error: core::fmt::Debug;

    /// Whether the link to the broker is up (a message sent now will most likely arrive).
    fn connected(&self) -> bool;

    /// Hands a message to the link; must not block.
    fn send(&mut self, msg: Up<'_>) -> Result<(), Self::Error>;
}
