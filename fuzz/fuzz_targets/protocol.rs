//! Every MQTT payload of our own protocol, as the gateway and the door nodes read them: each
//! message type from JSON, the topic, the credential and reason codes. Input: the topic, a
//! newline, the payload. Nothing may panic; a message read must write back and read the same.
#![no_main]

use kombinat_protocol::{booking, device, door, room, sensor, site, CardId, Reason, Topic};
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(payload: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<T>(payload) {
        let again: T = serde_json::from_slice(&serde_json::to_vec(&m).unwrap())
            .expect("what was read writes back readable");
        assert_eq!(again, m);
    }
}

fuzz_target!(|data: &[u8]| {
    let (topic, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    if let Ok(t) = std::str::from_utf8(topic) {
        if let Ok(parsed) = Topic::parse("kombinat/v1", t) {
            assert_eq!(
                parsed.to_string("kombinat/v1"),
                t,
                "a topic read writes back"
            );
        }
        let _ = CardId::parse(t);
        let _ = Reason::parse(t);
    }
    round_trip::<door::Tap>(payload);
    round_trip::<door::Decision>(payload);
    round_trip::<door::Command>(payload);
    round_trip::<door::DoorState>(payload);
    round_trip::<door::AllowList>(payload);
    round_trip::<door::OfflineLog>(payload);
    round_trip::<door::OfflineAck>(payload);
    round_trip::<sensor::Reading>(payload);
    round_trip::<device::Status>(payload);
    round_trip::<room::Occupancy>(payload);
    round_trip::<booking::NoShow>(payload);
    round_trip::<site::ModeSet>(payload);
});
