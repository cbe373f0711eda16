//! Home Assistant MQTT discovery: every room appears in Home Assistant as an occupancy binary
//! sensor, a head-count sensor and a CO2 sensor, all reading the room's retained occupancy
//! message, available while the gateway is.
//!
//! Configs are retained on `homeassistant/<component>/<node_id>/<object_id>/config` and sent
//! again whenever Home Assistant announces `homeassistant/status` = `online`.

use kombinat_protocol::{DeviceId, Topic};
use serde_json::json;

use crate::domain::Site;
use crate::wire::desk::Publish;

/// Home Assistant's discovery prefix and its birth topic.
pub const DISCOVERY_PREFIX: &str = "homeassistant";
/// Where Home Assistant announces itself.
pub const STATUS_TOPIC: &str = "homeassistant/status";

/// The gateway's own status topic (retained; its last will says offline).
pub fn gateway_status_topic(prefix: &str) -> String {
    Topic::Status(gateway_device()).to_string(prefix)
}

/// The device id the gateway uses for its own status.
pub fn gateway_device() -> DeviceId {
    DeviceId::parse("gateway").unwrap_or_else(|_| unreachable!("a valid identifier"))
}

/// The discovery configs for every room of the site.
pub fn discovery(site: &Site, prefix: &str) -> Vec<Publish> {
    let availability = gateway_status_topic(prefix);
    let mut out = Vec::new();
    for room in &site.rooms {
        let node = format!("kombinat_{}", room.id.as_str().replace(['-', '.'], "_"));
        let state = Topic::Occupancy(room.id).to_string(prefix);
        let device = json!({
            "identifiers": [node],
            "name": room.name,
            "manufacturer": "Kombinat",
            "model": format!("{:?}", room.kind).to_lowercase(),
            "suggested_area": room.name,
        });
        let common = |object: &str, name: &str| {
            json!({
                "name": name,
                "unique_id": format!("{node}_{object}"),
                "object_id": format!("{node}_{object}"),
                "state_topic": state,
                "availability_topic": availability,
                "availability_template": "{{ value_json.state }}",
                "payload_available": "online",
                "payload_not_available": "offline",
                "device": device,
            })
        };
        let mut occupied = common("occupancy", "Occupancy");
        occupied["device_class"] = json!("occupancy");
        occupied["value_template"] = json!("{{ 'ON' if value_json.occupied else 'OFF' }}");
        let mut count = common("count", "People");
        count["state_class"] = json!("measurement");
        count["unit_of_measurement"] = json!("people");
        count["value_template"] = json!("{{ value_json.count }}");
        let mut co2 = common("co2", "CO2");
        co2["device_class"] = json!("carbon_dioxide");
        co2["state_class"] = json!("measurement");
        co2["unit_of_measurement"] = json!("ppm");
        co2["value_template"] = json!("{{ value_json.co2_ppm | default(None) }}");
        for (component, object, config) in [
            ("binary_sensor", "occupancy", occupied),
            ("sensor", "count", count),
            ("sensor", "co2", co2),
        ] {
            out.push(Publish {
                topic: format!("{DISCOVERY_PREFIX}/{component}/{node}/{object}/config"),
                payload: serde_json::to_vec(&config).unwrap_or_default(),
                retain: true,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::fixture::test_site;

    #[test]
    fn every_room_gets_three_entities_with_unique_ids_and_its_own_device() {
        let site = test_site();
        let configs = discovery(&site, "kombinat/v1");
        assert_eq!(configs.len(), site.rooms.len() * 3);
        let mut ids = std::collections::HashSet::new();
        for p in &configs {
            assert!(p.retain);
            let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
            assert!(ids.insert(v["unique_id"].as_str().unwrap().to_string()));
            assert_eq!(v["availability_topic"], "kombinat/v1/device/gateway/status");
        }
        let lab = configs
            .iter()
            .find(|p| p.topic == "homeassistant/binary_sensor/kombinat_fablab/occupancy/config")
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&lab.payload).unwrap();
        assert_eq!(v["device_class"], "occupancy");
        assert_eq!(v["state_topic"], "kombinat/v1/room/fablab/occupancy");
        assert_eq!(v["device"]["name"], "Fab lab");
        let co2 = configs
            .iter()
            .find(|p| p.topic == "homeassistant/sensor/kombinat_fablab/co2/config")
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&co2.payload).unwrap();
        assert_eq!(
            (
                v["device_class"].as_str(),
                v["unit_of_measurement"].as_str()
            ),
            (Some("carbon_dioxide"), Some("ppm"))
        );
    }
}
