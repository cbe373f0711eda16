//! Tasmota: RFID reads and sensors from `tele/<t>/SENSOR`, availability from `tele/<t>/LWT`.
//!
//! A card read (PN532, RC522, RDM6300; the key's case varies, `DATA` or `Data`) is a tap the
//! gateway decides; a granted tap switches the bound relay (`cmnd/<t>/POWER<n>`) on, and the
//! relay's `PulseTime` (set to the door's unlock time) switches it off on the device itself.
//! `Switch<n>` is a PIR (`ON` = motion); any sensor object with `CarbonDioxide`, `Temperature`,
//! `Humidity` or `Illuminance` gives readings for the bound room. `Time` is the device's local
//! time without a zone: the gateway uses the time it received the message instead.

use kombinat_protocol::sensor::Measurement;
use serde_json::Value;

use super::{boolean, get_ci, number, object, Event};
use crate::domain::{Binding, CardId};
use crate::wire::desk::Rejected;

/// `tele/<t>/LWT`: `Online` or `Offline` (capitalised).
pub fn parse_lwt(payload: &[u8]) -> Result<bool, Rejected> {
    super::availability_word(payload)
}

/// One `tele/<t>/SENSOR` message.
pub fn parse_sensor(b: &Binding, payload: &[u8]) -> Result<Vec<Event>, Rejected> {
    let m = object(payload)?;
    let mut events = Vec::new();
    for (key, value) in &m {
        if key.eq_ignore_ascii_case("time") {
            continue;
        }
        // Bytes, not a string slice: a key is the device's to choose, and slicing a string
        // inside a multi-byte character would panic.
        if key.len() > 6 && key.as_bytes()[..6].eq_ignore_ascii_case(b"switch") {
            let active = boolean(value)
                .ok_or_else(|| Rejected::Json(format!("{key} is {value}, not ON or OFF")))?;
            if let Some(room) = b.room {
                events.push(Event::Reading {
                    room,
                    measurement: Measurement::Motion { active },
                });
            }
            continue;
        }
        let Value::Object(sensor) = value else {
            continue;
        };
        // The chip's own temperature is not the room's.
        if key.eq_ignore_ascii_case("ESP32") || key.eq_ignore_ascii_case("ESP8266") {
            continue;
        }
        if let Some(uid) = get_ci(sensor, "uid") {
            let uid = uid
                .as_str()
                .ok_or_else(|| Rejected::Json(format!("{key}.UID is not text")))?;
            let card = CardId::parse(uid)
                .map_err(|e| Rejected::Json(format!("{key}.UID {uid:?}: {e}")))?;
            if let Some(door) = b.door() {
                events.push(Event::Tap { door, card });
            }
            continue;
        }
        let Some(room) = b.room else {
            continue;
        };
        let field = |name: &str| get_ci(sensor, name).and_then(number);
        if let Some(ppm) = field("CarbonDioxide").or_else(|| field("CO2")) {
            events.push(Event::Reading {
                room,
                measurement: Measurement::Co2 {
                    ppm: ppm.round().clamp(0.0, 65_535.0) as u16,
                },
            });
        }
        if let Some(c) = field("Temperature") {
            events.push(Event::Reading {
                room,
                measurement: Measurement::Temperature { celsius: c as f32 },
            });
        }
        if let Some(h) = field("Humidity") {
            events.push(Event::Reading {
                room,
                measurement: Measurement::Humidity { percent: h as f32 },
            });
        }
        if let Some(lux) = field("Illuminance") {
            events.push(Event::Reading {
                room,
                measurement: Measurement::Light { lux: lux as f32 },
            });
        }
    }
    Ok(events)
}
