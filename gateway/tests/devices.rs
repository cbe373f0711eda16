//! Off-the-shelf devices end to end, through a real broker (the embedded one, and mosquitto)
//! into the real service: an esp-rfid reader, a Tasmota reader with a relay and sensors,
//! Zigbee2MQTT sensors and a native counter, each bound in the example site file, publishing
//! the payloads of DEVICES.md, and the gateway's numbers moving in answer.

mod support;

use std::time::Duration;

use kombinat::domain::{DoorId, Reason};
use kombinat::service::{self, Running};
use kombinat::store::{AuditEvent, SledStore, Store};
use kombinat_protocol::room::{Basis, Occupancy};
use kombinat_protocol::Topic;
use rumqttc::QoS;
use support::*;

const T: Duration = Duration::from_secs(10);

async fn publish(node: &DoorNode, topic: &str, payload: &str) {
    node.client
        .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
        .await
        .unwrap();
}

/// The next occupancy of `room` that satisfies `ok`.
async fn occupancy_until(
    node: &mut DoorNode,
    room: &str,
    ok: impl Fn(&Occupancy) -> bool,
) -> Occupancy {
    let topic = Topic::Occupancy(room.parse().unwrap()).to_string(PREFIX);
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let (t, payload) = tokio::time::timeout_at(deadline, node.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("occupancy of {room} in time"))
            .unwrap();
        if t != topic {
            continue;
        }
        let o: Occupancy = serde_json::from_slice(&payload).unwrap();
        if ok(&o) {
            return o;
        }
    }
}

/// The next message on exactly `topic`.
async fn next_exact(node: &mut DoorNode, topic: &str) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let (t, payload) = tokio::time::timeout_at(deadline, node.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("a message on {topic} in time"))
            .unwrap();
        if t == topic {
            return payload;
        }
    }
}

/// A client signed in with the broker account `user` (see [`login`]), also reading `extra`.
async fn account(gw: &Running, user: &str, extra: &[&str]) -> DoorNode {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    DoorNode::connect_as(
        gw.mqtt_addr,
        login(user),
        user,
        "d-meeting-3",
        key(9),
        &extra,
    )
    .await
}

/// Each device speaks with its own broker account, as it would on site: the Tasmota relay,
/// the esp-rfid reader and the Zigbee2MQTT bridge with theirs, the people counter with its own,
/// and what watches occupancy with the read-only observer's.
async fn devices_flow(gw: &Running) {
    assert!(gw.ready(T).await, "the gateway connects and subscribes");
    let mut watcher = account(gw, "observer", &["kombinat/v1/room/+/occupancy"]).await;
    let mut tasmota = account(gw, "tasmota-medialab", &["cmnd/medialab-door/#"]).await;
    let mut esp = account(gw, "esp-gallery-2", &["door-gallery/cmd"]).await;
    let zigbee = account(gw, "zigbee2mqtt", &[]).await;
    let counter = DoorNode::connect(gw.mqtt_addr, "sensor-meeting", "d-meeting-3", key(4)).await;

    // Tasmota: comes online, gets its relay's pulse time; a staff card read opens the relay.
    publish(&tasmota, "tele/medialab-door/LWT", "Online").await;
    let pulse = next_exact(&mut tasmota, "cmnd/medialab-door/PulseTime1").await;
    assert_eq!(pulse, b"50", "the door's 5 s unlock in tenths");
    publish(
        &tasmota,
        "tele/medialab-door/SENSOR",
        &format!(r#"{{"Time":"2021-01-23T13:10:50","RC522":{{"UID":"{STAFF_CARD}","Data":"","Type":"MIFARE 1KB"}}}}"#),
    )
    .await;
    let on = next_exact(&mut tasmota, "cmnd/medialab-door/POWER1").await;
    assert_eq!(on, b"ON");
    // A member without rights: decided, logged, and the relay stays off (the next relay
    // message is the "off" of the first tap, not an "on").
    publish(
        &tasmota,
        "tele/medialab-door/SENSOR",
        &format!(r#"{{"Time":"2021-01-23T13:10:55","PN532":{{"UID":"{NOBODY_CARD}","DATA":""}}}}"#),
    )
    .await;
    let off = next_exact(&mut tasmota, "cmnd/medialab-door/POWER1").await;
    assert_eq!(off, b"OFF");

    // esp-rfid: comes online and gets its user list (staff open every door); reports an access
    // it decided itself and its door opening.
    publish(&esp, "door-gallery/avty", "online").await;
    let add: serde_json::Value =
        serde_json::from_slice(&next_exact(&mut esp, "door-gallery/cmd").await).unwrap();
    assert_eq!(add["cmd"], "adduser");
    assert_eq!(add["doorip"], "192.168.1.50");
    assert_eq!(add["uid"], STAFF_CARD);
    assert_eq!(add["acctype"], "1");
    assert!(add["validuntil"].as_str().unwrap().parse::<u64>().unwrap() > 0);
    publish(
        &esp,
        "door-gallery/send",
        &format!(r#"{{"type":"access","time":1605991375,"isKnown":"true","access":"Always","username":"marta","uid":"{STAFF_CARD}","hostname":"door-gallery","doorName":"Gallery"}}"#),
    )
    .await;
    publish(
        &esp,
        "door-gallery/send",
        r#"{"type":"INFO","src":"door","desc":"Door Open","data":"","time":1605991375,"cmd":"event","hostname":"door-gallery"}"#,
    )
    .await;

    // Zigbee2MQTT: motion and CO2 in meeting room 2 show in its retained occupancy.
    publish(
        &zigbee,
        "zigbee2mqtt/meeting-2/motion",
        r#"{"battery":100,"illuminance":0,"linkquality":18,"occupancy":true,"illuminance_lux":0}"#,
    )
    .await;
    publish(
        &zigbee,
        "zigbee2mqtt/meeting-2/air",
        r#"{"co2":912,"humidity":62.3,"linkquality":84,"temperature":21.1,"voc":14}"#,
    )
    .await;
    let o = occupancy_until(&mut watcher, "meeting-2", |o| {
        o.occupied && o.co2_ppm == Some(912)
    })
    .await;
    assert_eq!(o.basis, Basis::Motion);
    publish(
        &zigbee,
        "zigbee2mqtt/meeting-2/availability",
        r#"{"state":"online"}"#,
    )
    .await;

    // A native people counter in meeting room 1.
    let reading =
        r#"{"v":1,"device":"sensor-meeting","counter":1,"reading":{"counter":{"in":3,"out":0}}}"#;
    publish(
        &counter,
        "kombinat/v1/sensor/sensor-meeting/reading",
        reading,
    )
    .await;
    let o = occupancy_until(&mut watcher, "meeting-1", |o| o.count == 3).await;
    assert_eq!(o.basis, Basis::Counter);
    // The same reading again (QoS 1 redelivers; or replayed) is refused and counted, not
    // added: the next reading, one more in, makes four, not seven.
    let replays = gw.stats.malformed("replay");
    publish(
        &counter,
        "kombinat/v1/sensor/sensor-meeting/reading",
        reading,
    )
    .await;
    let next =
        r#"{"v":1,"device":"sensor-meeting","counter":2,"reading":{"counter":{"in":1,"out":0}}}"#;
    publish(&counter, "kombinat/v1/sensor/sensor-meeting/reading", next).await;
    occupancy_until(&mut watcher, "meeting-1", |o| o.count == 4).await;
    assert_eq!(gw.stats.malformed("replay"), replays + 1);

    // Garbage from a bound device is refused and counted; the gateway goes on.
    let before = gw.stats.malformed("malformed_json");
    publish(
        &zigbee,
        "zigbee2mqtt/meeting-2/motion",
        r#"{"occupancy":"perhaps"}"#,
    )
    .await;
    publish(&tasmota, "tele/medialab-door/SENSOR", "not json").await;
    until(T, "both refusals counted", || {
        gw.stats.malformed("malformed_json") == before + 2
    })
    .await;
    assert!(
        gw.stats
            .device_messages
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 8
    );
}

fn audit(data: &std::path::Path) -> Vec<AuditEvent> {
    let store = SledStore::open(data).unwrap();
    store
        .audit_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| r.entry.event)
        .collect()
}

fn check_log(events: &[AuditEvent]) {
    let at = |door: &str| DoorId::parse(door).unwrap();
    let decisions: Vec<(DoorId, Reason)> = events
        .iter()
        .filter_map(|e| match e {
            AuditEvent::Decision { door, reason, .. } => Some((*door, *reason)),
            _ => None,
        })
        .collect();
    assert!(
        decisions.contains(&(at("d-medialab"), Reason::Staff)),
        "{decisions:?}"
    );
    assert!(
        decisions.contains(&(at("d-medialab"), Reason::NoRight)),
        "{decisions:?}"
    );
    assert!(
        decisions.contains(&(at("d-gallery-2"), Reason::DeviceListed)),
        "{decisions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_through_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let gw = service::start(config(dir.path(), "embedded"))
        .await
        .unwrap();
    devices_flow(&gw).await;
    gw.stop().await.unwrap();
    check_log(&audit(dir.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_through_mosquitto() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let gw = service::start(config(dir.path(), &broker.url()))
        .await
        .unwrap();
    devices_flow(&gw).await;
    gw.stop().await.unwrap();
    check_log(&audit(dir.path()));
}

/// A booking in `room` from `start` for an hour.
fn booking(
    ext: &str,
    room: &str,
    start: chrono::DateTime<chrono::Utc>,
) -> kombinat::domain::Booking {
    use kombinat::domain::*;
    Booking {
        key: BookingKey {
            source: SourceId::parse("rooms").unwrap(),
            external_id: ExternalId::parse(ext).unwrap(),
        },
        room: RoomId::parse(room).unwrap(),
        kind: BookingKind::Meeting,
        title: ext.into(),
        organiser: Some(MemberId::parse("ivan").unwrap()),
        attendees: vec![],
        window: Window::Timed {
            start,
            end: start + chrono::Duration::hours(1),
        },
        status: BookingStatus::Confirmed,
    }
}

/// Three meetings start together: nobody comes to meeting room 1 (a reader and a counter
/// watch it), motion shows in meeting room 2 (Zigbee2MQTT), and meeting room 4 has nothing
/// that could see anyone. After the wait (one minute here) only the first is a no-show: logged,
/// queued for the booking system and published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_booked_room_is_a_no_show_once_and_only_where_it_could_be_seen() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data);
    let start = chrono::Utc::now() + chrono::Duration::seconds(3);
    {
        let site = Arc::new(kombinat::site_file::load(&site_path()).unwrap());
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&data).unwrap());
        let mut g = kombinat::registry::Registry::open(site, store, chrono::Utc::now()).unwrap();
        for (ext, room) in [
            ("m1", "meeting-1"),
            ("m2", "meeting-2"),
            ("m4", "meeting-4"),
        ] {
            g.upsert_booking(
                booking(ext, room, start),
                kombinat::store::Actor::Cli("test".into()),
                chrono::Utc::now(),
            )
            .unwrap();
        }
    }
    // The example site, with no grace before bookings, so a booking may start right after the
    // gateway does and be judged a minute later.
    let site = std::fs::read_to_string(site_path()).unwrap().replace(
        "booking_grace_before_min = 15",
        "booking_grace_before_min = 0",
    );
    let site_file = dir.path().join("site.toml");
    std::fs::write(&site_file, site).unwrap();
    let mut cfg = config(&data, "embedded");
    cfg.site = site_file;
    cfg.occupancy.no_show_after_min = 1;
    let gw = service::start(cfg).await.unwrap();
    assert!(gw.ready(T).await);
    let mut node = account(&gw, "observer", &["kombinat/v1/booking/no-show"]).await;
    let zigbee = account(&gw, "zigbee2mqtt", &[]).await;
    // Someone moves in meeting room 2 after its start.
    tokio::time::sleep_until(
        tokio::time::Instant::now()
            + (start - chrono::Utc::now() + chrono::Duration::seconds(2))
                .to_std()
                .unwrap_or_default(),
    )
    .await;
    publish(
        &zigbee,
        "zigbee2mqtt/meeting-2/motion",
        r#"{"occupancy":true}"#,
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let payload = loop {
        let (topic, payload) = tokio::time::timeout_at(deadline, node.rx.recv())
            .await
            .expect("a no-show within 90 s")
            .unwrap();
        if topic == "kombinat/v1/booking/no-show" {
            break payload;
        }
    };
    let n: kombinat_protocol::booking::NoShow = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        (n.source.as_str(), n.external_id.as_str(), n.room.as_str()),
        ("rooms", "m1", "meeting-1")
    );
    assert_eq!(n.start, start.timestamp() as u64);
    assert!(n.judged_at >= n.start + 60);
    // Two more judging rounds: nothing else, and meeting room 1 not twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        gw.stats.no_shows.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    gw.stop().await.unwrap();
    let store = SledStore::open(&data).unwrap();
    let queued = store.outbox(10).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].kind, "no_show");
    assert_eq!(queued[0].body.as_bytes(), payload.as_slice());
    let logged: Vec<AuditEvent> = store
        .audit_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| r.entry.event)
        .filter(|e| matches!(e, AuditEvent::NoShow { .. }))
        .collect();
    assert_eq!(logged.len(), 1);
    // The rooms' history was kept meanwhile (the last, open buckets written at the stop).
    let h = store
        .history("meeting-2".parse().unwrap(), 0, i64::MAX)
        .unwrap();
    assert!(h.iter().any(|b| b.occupied_s > 0), "{h:?}");
}
