//! Zigbee2MQTT: a device's state on `zigbee2mqtt/<name>`, availability on
//! `zigbee2mqtt/<name>/availability` (`{"state":"online"}` in version 2, plain `online` in 1).
//!
//! Payloads may be partial: each is merged into the device's last known state, and only the
//! fields it carries become events, so a battery report never resets occupancy. `occupancy`
//! is motion; `contact: true` means CLOSED (a door binding reports its door, a room binding a
//! window); `co2`, `temperature`, `humidity` and `illuminance_lux` are readings; `battery` goes
//! to the device's health.

use kombinat_protocol::sensor::Measurement;
use serde_json::{Map, Value};

use super::{boolean, get_ci, number, object, Event};
use crate::domain::Binding;
use crate::wire::desk::Rejected;

/// `zigbee2mqtt/<name>/availability`, either version.
pub fn parse_availability(payload: &[u8]) -> Result<bool, Rejected> {
    super::availability_word(payload)
}

/// Merges one state message into `state`; returns the events of the fields it carried and the
/// battery level if it carried one.
pub fn merge(
    b: &Binding,
    state: &mut Map<String, Value>,
    payload: &[u8],
) -> Result<(Vec<Event>, Option<u8>), Rejected> {
    let m = object(payload)?;
    let mut events = Vec::new();
    let reading = |events: &mut Vec<Event>, measurement| {
        if let Some(room) = b.room {
            events.push(Event::Reading { room, measurement });
        }
    };
    // A field the device sends as null says nothing.
    let flag = |name: &str| get_ci(&m, name).filter(|v| !v.is_null());
    if let Some(v) = flag("occupancy") {
        let active = boolean(v).ok_or_else(|| Rejected::Json(format!("occupancy is {v}")))?;
        reading(&mut events, Measurement::Motion { active });
    }
    if let Some(v) = flag("contact") {
        let closed = boolean(v).ok_or_else(|| Rejected::Json(format!("contact is {v}")))?;
        match b.door() {
            Some(door) => events.push(Event::Contact {
                door,
                open: !closed,
            }),
            None => reading(&mut events, Measurement::Contact { open: !closed }),
        }
    }
    let field = |name: &str| match get_ci(&m, name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => number(v)
            .map(Some)
            .ok_or_else(|| Rejected::Json(format!("{name} is {v}, not a number"))),
    };
    if let Some(ppm) = field("co2")? {
        reading(
            &mut events,
            Measurement::Co2 {
                ppm: ppm.round().clamp(0.0, 65_535.0) as u16,
            },
        );
    }
    if let Some(c) = field("temperature")? {
        reading(&mut events, Measurement::Temperature { celsius: c as f32 });
    }
    if let Some(h) = field("humidity")? {
        reading(&mut events, Measurement::Humidity { percent: h as f32 });
    }
    if let Some(lux) = field("illuminance_lux")? {
        reading(&mut events, Measurement::Light { lux: lux as f32 });
    }
    let battery = field("battery")?.map(|p| p.round().clamp(0.0, 100.0) as u8);
    // Keys are the device's to choose: the merged state stays bounded.
    if state.len() + m.len() > 128 {
        state.clear();
    }
    for (k, v) in m {
        state.insert(k, v);
    }
    Ok((events, battery))
}
