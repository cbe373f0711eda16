//! MQTT messages to events and back, without a socket: what arrives on a topic becomes a tap,
//! a reading or a status, and what the core decides becomes [`desk::Publish`]es.
//!
//! - [`desk`]: our own signed protocol (`protocol/README.md`): counters, signatures, refusals.
//! - [`dialects`]: off-the-shelf firmware speaking its own topics: esp-rfid, Tasmota and
//!   Zigbee2MQTT devices bound in the site file.
//! - [`ha`]: Home Assistant's MQTT discovery, so rooms and doors appear there.

pub mod desk;
pub mod dialects;
pub mod ha;
