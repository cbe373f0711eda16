//! Topic grammar: `<prefix>/<family>/<id>/<leaf>`, parsed and built here and nowhere else.
//!
//! The prefix carries the protocol version (`kombinat/v1` by default) and may have several
//! levels. Each family module owns its leaves: [`crate::door`], [`crate::sensor`],
//! [`crate::device`], [`crate::room`], [`crate::site`] (and [`crate::booking`] with `std`).

use core::fmt;

use crate::door::DoorTopic;
use crate::{DeviceId, DoorId, RoomId};

/// The default topic prefix, with the protocol version.
pub const DEFAULT_PREFIX: &str = "kombinat/v1";

/// A topic of the Kombinat protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// `door/<door>/<leaf>`
    Door(DoorId, DoorTopic),
    /// `sensor/<device>/reading`: a sensor node's reading.
    Reading(DeviceId),
    /// `device/<device>/status`: heartbeat and last will (retained).
    Status(DeviceId),
    /// `device/<device>/power`: a node's mains and battery (signed).
    Power(DeviceId),
    /// `device/<device>/alert`: a node's dry-contact alert input (signed).
    AlertInput(DeviceId),
    /// `room/<room>/occupancy`: published by the gateway (retained).
    Occupancy(RoomId),
    /// `booking/<event>`: booking events such as no-shows, published by the gateway.
    Booking(crate::site::BookingEventKind),
    /// `site/mode`: the site mode, published by the gateway (retained).
    Mode,
    /// `site/mode/set`: a signed request to change the site mode (an alert feed, staff tools).
    ModeSet,
}

/// Why a topic is not ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// It does not start with the prefix.
    OtherPrefix,
    /// The family or leaf is unknown.
    Unknown,
    /// An identifier in it does not parse.
    BadId,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicError::OtherPrefix => "not under the Kombinat prefix",
            TopicError::Unknown => "not a Kombinat topic",
            TopicError::BadId => "an identifier in the topic is malformed",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TopicError {}

impl Topic {
    /// Parses a topic under `prefix`.
    pub fn parse(prefix: &str, topic: &str) -> Result<Topic, TopicError> {
        let rest = topic
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(TopicError::OtherPrefix)?;
        let mut parts = rest.split('/');
        let (a, b, c, d) = (parts.next(), parts.next(), parts.next(), parts.next());
        if parts.next().is_some() {
            return Err(TopicError::Unknown);
        }
        let id = |s: &str| crate::Ident::parse(s).map_err(|_| TopicError::BadId);
        Ok(match (a, b, c, d) {
            (Some("door"), Some(door), Some(leaf), None) => Topic::Door(
                DoorId(id(door)?),
                DoorTopic::parse(leaf).ok_or(TopicError::Unknown)?,
            ),
            (Some("sensor"), Some(dev), Some("reading"), None) => {
                Topic::Reading(DeviceId(id(dev)?))
            }
            (Some("device"), Some(dev), Some("status"), None) => Topic::Status(DeviceId(id(dev)?)),
            (Some("device"), Some(dev), Some("power"), None) => Topic::Power(DeviceId(id(dev)?)),
            (Some("device"), Some(dev), Some("alert"), None) => {
                Topic::AlertInput(DeviceId(id(dev)?))
            }
            (Some("room"), Some(room), Some("occupancy"), None) => {
                Topic::Occupancy(RoomId(id(room)?))
            }
            (Some("booking"), Some(event), None, None) => Topic::Booking(
                crate::site::BookingEventKind::parse(event).ok_or(TopicError::Unknown)?,
            ),
            (Some("site"), Some("mode"), None, None) => Topic::Mode,
            (Some("site"), Some("mode"), Some("set"), None) => Topic::ModeSet,
            _ => return Err(TopicError::Unknown),
        })
    }

    /// Writes the topic under `prefix`.
    pub fn write(&self, prefix: &str, w: &mut impl fmt::Write) -> fmt::Result {
        match self {
            Topic::Door(d, leaf) => write!(w, "{prefix}/door/{d}/{}", leaf.leaf()),
            Topic::Reading(dev) => write!(w, "{prefix}/sensor/{dev}/reading"),
            Topic::Status(dev) => write!(w, "{prefix}/device/{dev}/status"),
            Topic::Power(dev) => write!(w, "{prefix}/device/{dev}/power"),
            Topic::AlertInput(dev) => write!(w, "{prefix}/device/{dev}/alert"),
            Topic::Occupancy(r) => write!(w, "{prefix}/room/{r}/occupancy"),
            Topic::Booking(e) => write!(w, "{prefix}/booking/{}", e.as_str()),
            Topic::Mode => write!(w, "{prefix}/site/mode"),
            Topic::ModeSet => write!(w, "{prefix}/site/mode/set"),
        }
    }

    /// The topic under `prefix` as a string.
    #[cfg(feature = "std")]
    pub fn to_string(&self, prefix: &str) -> std::string::String {
        let mut s = std::string::String::new();
        let _ = self.write(prefix, &mut s);
        s
    }
}

/// The subscriptions the gateway needs under `prefix`: everything devices send.
#[cfg(feature = "std")]
pub fn gateway_filters(prefix: &str) -> std::vec::Vec<std::string::String> {
    use std::format;
    std::vec![
        format!("{prefix}/door/+/tap"),
        format!("{prefix}/door/+/state"),
        format!("{prefix}/door/+/offline-log"),
        format!("{prefix}/sensor/+/reading"),
        format!("{prefix}/device/+/status"),
        format!("{prefix}/device/+/power"),
        format!("{prefix}/device/+/alert"),
        format!("{prefix}/site/mode/set"),
        // Home Assistant's birth message: discovery is sent again when it starts.
        "homeassistant/status".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_round_trips_and_strangers_are_refused() {
        let p = "kombinat/v1";
        let door = DoorId::parse("d-main").unwrap();
        let dev = DeviceId::parse("door-main").unwrap();
        let topics = [
            Topic::Door(door, DoorTopic::Tap),
            Topic::Door(door, DoorTopic::Decision),
            Topic::Door(door, DoorTopic::State),
            Topic::Door(door, DoorTopic::Command),
            Topic::Door(door, DoorTopic::AllowList),
            Topic::Door(door, DoorTopic::OfflineLog),
            Topic::Door(door, DoorTopic::OfflineAck),
            Topic::Reading(dev),
            Topic::Status(dev),
            Topic::Power(dev),
            Topic::AlertInput(dev),
            Topic::Occupancy(RoomId::parse("lobby").unwrap()),
            Topic::Booking(crate::site::BookingEventKind::NoShow),
            Topic::Mode,
            Topic::ModeSet,
        ];
        for t in topics {
            let s = t.to_string(p);
            assert_eq!(Topic::parse(p, &s), Ok(t), "{s}");
        }
        assert_eq!(
            Topic::parse(p, "kombinat/v1/door/d-main/tap").unwrap(),
            topics[0]
        );
        assert_eq!(
            Topic::parse(p, "kombinat/v2/door/d-main/tap"),
            Err(TopicError::OtherPrefix)
        );
        assert_eq!(
            Topic::parse(p, "kombinat/v1/door/D MAIN/tap"),
            Err(TopicError::BadId)
        );
        assert_eq!(
            Topic::parse(p, "kombinat/v1/door/d-main/open"),
            Err(TopicError::Unknown)
        );
        assert_eq!(
            Topic::parse(p, "kombinat/v1/door/d-main/tap/x"),
            Err(TopicError::Unknown)
        );
        assert_eq!(Topic::parse(p, "kombinat/v1"), Err(TopicError::OtherPrefix));
        assert_eq!(Topic::parse(p, "kombinat/v1/"), Err(TopicError::Unknown));
    }
}
