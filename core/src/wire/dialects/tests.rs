//! The adapters against the exact payloads of `../shared/design/DEVICES.md`, and variants.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use kombinat_protocol::door::AllowEntry;
use kombinat_protocol::sensor::Measurement;

use super::*;

fn door(s: &str) -> DoorId {
    DoorId::parse(s).unwrap()
}

fn room(s: &str) -> RoomId {
    RoomId::parse(s).unwrap()
}

fn card(s: &str) -> CardId {
    CardId::parse(s).unwrap()
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_795_680_000 + secs, 0).unwrap()
}

fn bindings() -> Vec<Binding> {
    vec![
        Binding {
            id: DeviceId::parse("esp-gallery").unwrap(),
            kind: BindingKind::EspRfid,
            topic: "door-gallery".into(),
            doors: vec![door("d-gallery")],
            room: None,
            ip: Some("192.168.1.50".into()),
            relay: 1,
        },
        Binding {
            id: DeviceId::parse("esp-store").unwrap(),
            kind: BindingKind::EspRfid,
            topic: "store/reader".into(),
            doors: vec![door("d-store-a"), door("d-store-b")],
            room: None,
            ip: Some("192.168.1.51".into()),
            relay: 1,
        },
        Binding {
            id: DeviceId::parse("tas-lab").unwrap(),
            kind: BindingKind::Tasmota,
            topic: "lab-door".into(),
            doors: vec![door("d-lab")],
            room: Some(room("lab")),
            ip: None,
            relay: 2,
        },
        Binding {
            id: DeviceId::parse("z2m-pir").unwrap(),
            kind: BindingKind::Zigbee2mqtt,
            topic: "meeting/pir".into(),
            doors: vec![],
            room: Some(room("meeting")),
            ip: None,
            relay: 1,
        },
        Binding {
            id: DeviceId::parse("z2m-contact").unwrap(),
            kind: BindingKind::Zigbee2mqtt,
            topic: "meeting/door".into(),
            doors: vec![door("d-meeting")],
            room: None,
            ip: None,
            relay: 1,
        },
    ]
}

fn adapters() -> Adapters {
    Adapters::new(&bindings(), |_| 5000)
}

fn events(a: &mut Adapters, topic: &str, payload: &str) -> Vec<Event> {
    a.handle(topic, payload.as_bytes(), false, t(0))
        .unwrap_or_else(|| panic!("{topic} is not bound"))
        .unwrap_or_else(|e| panic!("{payload}: {e}"))
        .events
}

fn refused(a: &mut Adapters, topic: &str, payload: &str) -> Rejected {
    match a.handle(topic, payload.as_bytes(), false, t(0)) {
        Some(Err(e)) => e,
        other => panic!("{payload} should be refused, got {other:?}"),
    }
}

fn json(p: &Publish) -> serde_json::Value {
    serde_json::from_slice(&p.payload).unwrap()
}

#[test]
fn esp_rfid_access_events_become_the_devices_own_decisions() {
    let mut a = adapters();
    let e = events(
        &mut a,
        "door-gallery/send",
        r#"{"type":"access","time":1605991375,"isKnown":"true","access":"Always","username":"Olena","uid":"04A1B2C3","hostname":"door-gallery","doorName":"Gallery"}"#,
    );
    assert_eq!(
        e,
        vec![Event::Decided {
            door: door("d-gallery"),
            card: card("04A1B2C3"),
            allowed: true,
            word: "Always".into()
        }]
    );
    for (known, word, allowed) in [
        ("\"true\"", "Admin", true),
        ("true", "always", true),
        ("\"true\"", "Expired", false),
        ("\"true\"", "Disabled", false),
        ("\"false\"", "Denied", false),
        ("\"true\"", "Wrong pin code", false),
        ("\"false\"", "Always", false),
    ] {
        let p = format!(
            r#"{{"type":"access","time":"1605991375","isKnown":{known},"access":"{word}","uid":"04a1b2c3"}}"#
        );
        match events(&mut a, "door-gallery/send", &p).as_slice() {
            [Event::Decided { allowed: x, .. }] => assert_eq!(*x, allowed, "{p}"),
            other => panic!("{p}: {other:?}"),
        }
    }
}

#[test]
fn esp_rfid_with_several_relays_reports_each_door() {
    let mut a = adapters();
    let e = events(
        &mut a,
        "store/reader/send",
        r#"{"type":"access","time":1605991375,"isKnown":"true","access":["Always","Denied"],"username":"Olena","uid":"04A1B2C3","doorName":["Store A","Store B"]}"#,
    );
    assert_eq!(e.len(), 2);
    assert!(
        matches!(e[0], Event::Decided { door: d, allowed: true, .. } if d == door("d-store-a"))
    );
    assert!(
        matches!(e[1], Event::Decided { door: d, allowed: false, .. } if d == door("d-store-b"))
    );
}

#[test]
fn esp_rfid_door_and_heartbeat_messages() {
    let mut a = adapters();
    let open = events(
        &mut a,
        "door-gallery/send",
        r#"{"type":"INFO","src":"door","desc":"Door Open","data":"","time":1605991375,"cmd":"event","hostname":"door-gallery"}"#,
    );
    assert_eq!(
        open,
        vec![Event::Contact {
            door: door("d-gallery"),
            open: true
        }]
    );
    let closed = events(
        &mut a,
        "door-gallery/send",
        r#"{"type":"INFO","src":"door","desc":"Door Closed","data":"","time":1605991380,"cmd":"event"}"#,
    );
    assert!(matches!(
        closed.as_slice(),
        [Event::Contact { open: false, .. }]
    ));
    let beat = events(
        &mut a,
        "door-gallery/send",
        r#"{"type":"heartbeat","time":1605991375,"uptime":999,"ip":"192.168.1.50","hostname":"door-gallery"}"#,
    );
    assert!(beat.is_empty());
    // A boot message may send uptime as a string.
    assert!(events(
        &mut a,
        "door-gallery/send",
        r#"{"type":"boot","uptime":"12","time":"1"}"#
    )
    .is_empty());
    let (_, h) = a.health().next().unwrap();
    assert_eq!(h.last_seen, Some(t(0)));
}

#[test]
fn esp_rfid_garbage_is_refused() {
    let mut a = adapters();
    for p in [
        "not json",
        "[1,2]",
        r#"{"time":1}"#,
        r#"{"type":"access","isKnown":"true","access":"Always"}"#,
        r#"{"type":"access","isKnown":"true","access":"Always","uid":"XYZ"}"#,
        r#"{"type":"access","isKnown":"true","access":[],"uid":"04A1B2C3"}"#,
    ] {
        assert!(
            matches!(refused(&mut a, "door-gallery/send", p), Rejected::Json(_)),
            "{p}"
        );
    }
}

#[test]
fn esp_rfid_user_list_follows_the_allow_list_with_one_window_per_card() {
    let mut a = adapters();
    let (now, from, until) = (t(0), 1_795_680_000, 1_795_687_200);
    let entry = |c: &str, from: u64, until: u64| AllowEntry {
        card: card(c),
        from,
        until,
    };
    let mut lists = BTreeMap::new();
    lists.insert(
        door("d-gallery"),
        vec![
            entry("04A1B2C3", from, until),
            // A later second window for the same card: the device keeps one, the current.
            entry("04A1B2C3", until + 3600, until + 7200),
            entry("0A0B0C0D", until + 3600, until + 7200),
            // Already over: not sent.
            entry("11223344", from - 7200, from - 3600),
        ],
    );
    let sent = a.sync_user_lists(&lists, now, false, |c| format!("m-{c}"));
    assert_eq!(sent.len(), 2);
    assert!(sent
        .iter()
        .all(|p| p.topic == "door-gallery/cmd" && !p.retain));
    let first = json(&sent[0]);
    assert_eq!(
        first,
        serde_json::json!({"cmd":"adduser","doorip":"192.168.1.50","uid":"04A1B2C3","user":"m-04A1B2C3",
            "acctype":"1","validsince":from.to_string(),"validuntil":until.to_string()})
    );
    assert_eq!(
        a.next_window_end(),
        Some(until),
        "the current window ends first"
    );
    // Nothing changed: nothing sent. A full push sends everything again.
    assert!(a
        .sync_user_lists(&lists, now, false, |c| c.to_string())
        .is_empty());
    assert_eq!(
        a.sync_user_lists(&lists, now, true, |c| c.to_string())
            .len(),
        2
    );
    // The booking behind 0A0B0C0D is cancelled: deletuid.
    lists.get_mut(&door("d-gallery")).unwrap().remove(2);
    let sent = a.sync_user_lists(&lists, now, false, |c| c.to_string());
    assert_eq!(sent.len(), 1);
    assert_eq!(
        json(&sent[0]),
        serde_json::json!({"cmd":"deletuid","doorip":"192.168.1.50","uid":"0A0B0C0D"})
    );
    // What was sent survives a restart, so a card that lost its right meanwhile is deleted.
    let kept = a.sent_lists();
    let mut b = adapters();
    b.restore_sent(kept);
    lists.get_mut(&door("d-gallery")).unwrap().clear();
    let sent = b.sync_user_lists(&lists, now, false, |c| c.to_string());
    assert_eq!(sent.len(), 1);
    assert_eq!(json(&sent[0])["cmd"], "deletuid");
}

#[test]
fn remote_unlock_uses_the_devices_own_command() {
    let mut a = adapters();
    let esp = a.unlock(door("d-gallery"), 5000, t(0)).unwrap();
    assert_eq!(
        json(&esp[0]),
        serde_json::json!({"cmd":"opendoor","doorip":"192.168.1.50"})
    );
    let tas = a.unlock(door("d-lab"), 5000, t(0)).unwrap();
    assert_eq!(
        (tas[0].topic.as_str(), tas[0].payload.as_slice()),
        ("cmnd/lab-door/POWER2", b"ON".as_slice())
    );
    assert!(a.due(t(4)).is_empty());
    let off = a.due(t(5));
    assert_eq!(
        (off[0].topic.as_str(), off[0].payload.as_slice()),
        ("cmnd/lab-door/POWER2", b"OFF".as_slice())
    );
    assert!(a.due(t(6)).is_empty(), "switched off once");
    assert!(a.unlock(door("d-meeting"), 5000, t(0)).is_none());
}

#[test]
fn tasmota_card_reads_are_taps_whatever_the_reader() {
    let mut a = adapters();
    for (p, uid) in [
        (
            r#"{"Time":"2019-01-10T18:23:24","PN532":{"UID":"94D8FC5F","DATA":""}}"#,
            "94D8FC5F",
        ),
        (
            r#"{"Time":"2021-01-23T13:10:50","RC522":{"UID":"BA839D07","Data":"","Type":"MIFARE 1KB"}}"#,
            "BA839D07",
        ),
        (
            r#"{"Time":"2021-01-23T13:10:50","RDM6300":{"UID":"0012AB34"}}"#,
            "0012AB34",
        ),
        (
            r#"{"time":"2021-01-23T13:10:50","rc522":{"uid":"ba839d07"}}"#,
            "BA839D07",
        ),
    ] {
        assert_eq!(
            events(&mut a, "tele/lab-door/SENSOR", p),
            vec![Event::Tap {
                door: door("d-lab"),
                card: card(uid)
            }],
            "{p}"
        );
    }
}

#[test]
fn tasmota_pir_and_co2() {
    let mut a = adapters();
    let lab = room("lab");
    assert_eq!(
        events(
            &mut a,
            "tele/lab-door/SENSOR",
            r#"{"Time":"2021-01-23T13:10:50","Switch1":"ON"}"#
        ),
        vec![Event::Reading {
            room: lab,
            measurement: Measurement::Motion { active: true }
        }]
    );
    assert_eq!(
        events(
            &mut a,
            "tele/lab-door/SENSOR",
            r#"{"Time":"…","Switch1":"OFF"}"#
        ),
        vec![Event::Reading {
            room: lab,
            measurement: Measurement::Motion { active: false }
        }]
    );
    let scd = events(
        &mut a,
        "tele/lab-door/SENSOR",
        r#"{"Time":"…","SCD40":{"CarbonDioxide":1204,"Temperature":28.8,"Humidity":47.5}}"#,
    );
    assert_eq!(
        scd,
        vec![
            Event::Reading {
                room: lab,
                measurement: Measurement::Co2 { ppm: 1204 }
            },
            Event::Reading {
                room: lab,
                measurement: Measurement::Temperature { celsius: 28.8 }
            },
            Event::Reading {
                room: lab,
                measurement: Measurement::Humidity { percent: 47.5 }
            },
        ]
    );
    let mhz = events(
        &mut a,
        "tele/lab-door/SENSOR",
        r#"{"MHZ19B":{"Model":"B","CarbonDioxide":"424","Temperature":19.0}}"#,
    );
    assert_eq!(mhz.len(), 2);
    assert_eq!(
        mhz[0],
        Event::Reading {
            room: lab,
            measurement: Measurement::Co2 { ppm: 424 }
        }
    );
    assert!(matches!(
        refused(&mut a, "tele/lab-door/SENSOR", r#"{"Switch1":"MAYBE"}"#),
        Rejected::Json(_)
    ));
    assert!(matches!(
        refused(
            &mut a,
            "tele/lab-door/SENSOR",
            r#"{"PN532":{"UID":"not hex"}}"#
        ),
        Rejected::Json(_)
    ));
}

#[test]
fn tasmota_lwt_feeds_health_and_sets_the_relays_pulse_on_coming_online() {
    let mut a = adapters();
    let o = a
        .handle("tele/lab-door/LWT", b"Online", false, t(0))
        .unwrap()
        .unwrap();
    assert!(o.alarms.is_empty(), "first sign of life raises nothing");
    assert_eq!(o.commands.len(), 1);
    assert_eq!(o.commands[0].topic, "cmnd/lab-door/PulseTime2");
    assert_eq!(o.commands[0].payload, b"50");
    let o = a
        .handle("tele/lab-door/LWT", b"Offline", false, t(10))
        .unwrap()
        .unwrap();
    assert!(matches!(
        o.alarms[0].event,
        AuditEvent::Alarm {
            alarm: AlarmKind::DeviceOffline,
            raised: true,
            ..
        }
    ));
    let o = a
        .handle("tele/lab-door/LWT", b"Online", false, t(20))
        .unwrap()
        .unwrap();
    assert!(matches!(
        o.alarms[0].event,
        AuditEvent::Alarm { raised: false, .. }
    ));
    assert_eq!(pulse_time(300), 3);
    assert_eq!(pulse_time(11_100), 111);
    assert_eq!(pulse_time(15_000), 115);
    assert_eq!(a.configure_relays().len(), 1);
}

#[test]
fn zigbee2mqtt_partial_payloads_are_merged_and_only_what_they_carry_counts() {
    let mut a = adapters();
    let meeting = room("meeting");
    assert_eq!(
        events(
            &mut a,
            "zigbee2mqtt/meeting/pir",
            r#"{"battery":100,"illuminance":0,"linkquality":18,"occupancy":false,"illuminance_lux":0}"#
        ),
        vec![
            Event::Reading {
                room: meeting,
                measurement: Measurement::Motion { active: false }
            },
            Event::Reading {
                room: meeting,
                measurement: Measurement::Light { lux: 0.0 }
            }
        ]
    );
    // A battery report alone says nothing of occupancy.
    assert!(events(&mut a, "zigbee2mqtt/meeting/pir", r#"{"battery":"87"}"#).is_empty());
    let h = a
        .health()
        .find(|(b, _)| b.topic == "meeting/pir")
        .unwrap()
        .1;
    assert_eq!(h.battery, Some(87));
    assert_eq!(
        events(&mut a, "zigbee2mqtt/meeting/pir", r#"{"occupancy":true}"#),
        vec![Event::Reading {
            room: meeting,
            measurement: Measurement::Motion { active: true }
        }]
    );
    assert_eq!(
        a.devices[3].state.get("battery"),
        Some(&serde_json::json!("87"))
    );
    assert_eq!(
        a.devices[3].state.get("linkquality"),
        Some(&serde_json::json!(18)),
        "earlier fields kept"
    );
}

#[test]
fn zigbee2mqtt_contact_true_means_closed() {
    let mut a = adapters();
    let p = r#"{"battery":100,"battery_low":false,"contact":true,"linkquality":43,"tamper":false,"voltage":3100}"#;
    assert_eq!(
        events(&mut a, "zigbee2mqtt/meeting/door", p),
        vec![Event::Contact {
            door: door("d-meeting"),
            open: false
        }]
    );
    assert_eq!(
        events(&mut a, "zigbee2mqtt/meeting/door", r#"{"contact":false}"#),
        vec![Event::Contact {
            door: door("d-meeting"),
            open: true
        }]
    );
    assert!(matches!(
        refused(&mut a, "zigbee2mqtt/meeting/door", r#"{"contact":"ajar"}"#),
        Rejected::Json(_)
    ));
}

#[test]
fn zigbee2mqtt_air_quality() {
    let mut a = adapters();
    let e = events(
        &mut a,
        "zigbee2mqtt/meeting/pir",
        r#"{"co2":359,"humidity":62.3,"linkquality":84,"temperature":21.1,"voc":14}"#,
    );
    assert_eq!(e.len(), 3);
    assert_eq!(
        e[0],
        Event::Reading {
            room: room("meeting"),
            measurement: Measurement::Co2 { ppm: 359 }
        }
    );
    assert!(matches!(
        refused(&mut a, "zigbee2mqtt/meeting/pir", r#"{"co2":"lots"}"#),
        Rejected::Json(_)
    ));
}

#[test]
fn availability_in_every_format() {
    let mut a = adapters();
    for (topic, payload, online) in [
        (
            "zigbee2mqtt/meeting/pir/availability",
            r#"{"state":"online"}"#,
            true,
        ),
        ("zigbee2mqtt/meeting/pir/availability", "offline", false),
        ("zigbee2mqtt/meeting/pir/availability", "online", true),
        (
            "zigbee2mqtt/meeting/pir/availability",
            r#"{"state":"offline"}"#,
            false,
        ),
        ("door-gallery/avty", "online", true),
        ("door-gallery/avty", "offline", false),
        ("tele/lab-door/LWT", "Online", true),
        ("tele/lab-door/LWT", "Offline", false),
    ] {
        a.handle(topic, payload.as_bytes(), false, t(0))
            .unwrap()
            .unwrap();
        let id = a.by_topic[topic].0;
        assert_eq!(a.devices[id].health.online, online, "{topic} {payload}");
    }
    assert!(matches!(
        refused(&mut a, "door-gallery/avty", "maybe"),
        Rejected::Json(_)
    ));
    // An esp-rfid coming online gets its whole user list again.
    let o = a
        .handle("door-gallery/avty", b"online", false, t(1))
        .unwrap()
        .unwrap();
    assert!(o.resync);
}

#[test]
fn only_bound_topics_are_taken() {
    let mut a = adapters();
    assert!(a.handle("zigbee2mqtt/other", b"{}", false, t(0)).is_none());
    assert!(a.handle("tele/other/SENSOR", b"{}", false, t(0)).is_none());
    let f = a.filters();
    for topic in [
        "door-gallery/send",
        "door-gallery/avty",
        "tele/lab-door/SENSOR",
        "tele/lab-door/LWT",
        "zigbee2mqtt/meeting/pir",
        "zigbee2mqtt/meeting/pir/availability",
    ] {
        assert!(f.iter().any(|x| x == topic), "{topic}");
    }
    assert!(matches!(
        refused(
            &mut a,
            "zigbee2mqtt/meeting/pir",
            &"x".repeat(MAX_PAYLOAD + 1)
        ),
        Rejected::TooLarge(_)
    ));
}

#[test]
fn a_key_with_a_multibyte_character_is_no_switch_and_no_panic() {
    let mut a = adapters();
    // "Switcх1" with a Cyrillic х: byte 6 falls inside it.
    assert!(events(
        &mut a,
        "tele/lab-door/SENSOR",
        r#"{"Switcх1":"ON","Ж":{"UID":"04A1B2C3"}}"#
    )
    .iter()
    .all(|e| !matches!(e, Event::Reading { .. })));
    // The chip's own temperature is not the room's.
    assert!(events(
        &mut a,
        "tele/lab-door/SENSOR",
        r#"{"ESP32":{"Temperature":61.2}}"#
    )
    .is_empty());
}

#[test]
fn a_retained_card_read_opens_nothing_and_a_held_card_is_one_tap() {
    let mut a = adapters();
    let read = r#"{"Time":"2021-01-23T13:10:50","RC522":{"UID":"BA839D07","Data":""}}"#;
    let o = a
        .handle("tele/lab-door/SENSOR", read.as_bytes(), true, t(0))
        .unwrap()
        .unwrap();
    assert!(
        o.events.is_empty(),
        "a retained read is the broker's memory, not a tap"
    );
    let tap = |a: &mut Adapters, at: i64| {
        a.handle("tele/lab-door/SENSOR", read.as_bytes(), false, t(at))
            .unwrap()
            .unwrap()
            .events
            .len()
    };
    assert_eq!(tap(&mut a, 10), 1);
    assert_eq!(
        tap(&mut a, 12),
        0,
        "the same card two seconds later is the same tap"
    );
    assert_eq!(
        tap(&mut a, 16),
        1,
        "four seconds after the last read it is a new tap"
    );
    // A retained door contact is the door's state: kept.
    let o = a
        .handle(
            "zigbee2mqtt/meeting/door",
            br#"{"contact":false}"#,
            true,
            t(20),
        )
        .unwrap()
        .unwrap();
    assert_eq!(o.events.len(), 1);
}

#[test]
fn a_device_found_offline_at_its_first_report_raises_the_alarm() {
    let mut a = adapters();
    let o = a
        .handle("door-gallery/avty", b"offline", true, t(0))
        .unwrap()
        .unwrap();
    assert!(matches!(
        o.alarms.as_slice(),
        [AuditEntry {
            event: AuditEvent::Alarm { raised: true, .. },
            ..
        }]
    ));
}

#[test]
fn zigbee2mqtt_null_fields_say_nothing() {
    let mut a = adapters();
    assert!(events(
        &mut a,
        "zigbee2mqtt/meeting/pir",
        r#"{"occupancy":null,"co2":null,"battery":90}"#
    )
    .is_empty());
}

#[test]
fn esp_rfid_lists_are_not_rewritten_each_round_and_missed_deletions_are_repeated() {
    let mut a = adapters();
    let now = t(0);
    let t0 = 1_795_680_000u64;
    let entry = |c: &str, from: u64, until: u64| AllowEntry {
        card: card(c),
        from,
        until,
    };
    let list = |from: u64, until: u64| {
        let mut m = BTreeMap::new();
        m.insert(
            door("d-gallery"),
            vec![
                entry("04A1B2C3", from, until),
                entry("0A0B0C0D", from, until),
            ],
        );
        m
    };
    assert_eq!(
        a.sync_user_lists(&list(t0, t0 + 43_200), now, false, |c| c.to_string())
            .len(),
        2
    );
    // An hour later the lists reach an hour further: the same rights, nothing written.
    let later = t(3600);
    assert!(a
        .sync_user_lists(&list(t0 + 3600, t0 + 46_800), later, false, |c| c
            .to_string())
        .is_empty());
    // A shorter window (a right cut short) is written at once.
    assert_eq!(
        a.sync_user_lists(&list(t0 + 3600, t0 + 7200), later, false, |c| c.to_string())
            .len(),
        2
    );
    // 0A0B0C0D loses its right while the reader is away: deleted, and deleted again when the
    // reader comes back (a full push), in case it missed it.
    let mut only = list(t0 + 3600, t0 + 7200);
    only.get_mut(&door("d-gallery")).unwrap().pop();
    let sent = a.sync_user_lists(&only, later, false, |c| c.to_string());
    assert_eq!(json(&sent[0])["cmd"], "deletuid");
    let again = a.sync_user_lists(&only, later, true, |c| c.to_string());
    let cmds: Vec<String> = again.iter().map(|p| json(p)["cmd"].to_string()).collect();
    assert_eq!(cmds, ["\"adduser\"", "\"deletuid\""]);
    // Kept across a restart, and forgotten once the old window is over.
    let mut b = adapters();
    b.restore_sent(a.sent_lists());
    let full = b.sync_user_lists(&only, later, true, |c| c.to_string());
    assert_eq!(full.len(), 2);
    let after = Utc.timestamp_opt(1_795_680_000 + 7300, 0).unwrap();
    let mut none = only.clone();
    none.get_mut(&door("d-gallery")).unwrap().clear();
    let last = b.sync_user_lists(&none, after, true, |c| c.to_string());
    // The expired card is cleaned off the reader; the one deleted earlier is not repeated,
    // its window being over.
    assert_eq!(last.len(), 1, "{last:?}");
    assert_eq!(json(&last[0])["uid"], "04A1B2C3");
    assert!(b
        .sync_user_lists(&none, after, true, |c| c.to_string())
        .is_empty());
}

#[test]
fn a_reader_with_two_relays_keeps_the_first_doors_list() {
    let mut a = adapters();
    let t0 = 1_795_680_000u64;
    let mut lists = BTreeMap::new();
    lists.insert(
        door("d-store-a"),
        vec![AllowEntry {
            card: card("04A1B2C3"),
            from: t0,
            until: t0 + 3600,
        }],
    );
    lists.insert(
        door("d-store-b"),
        vec![AllowEntry {
            card: card("0A0B0C0D"),
            from: t0,
            until: t0 + 3600,
        }],
    );
    let sent = a.sync_user_lists(&lists, t(0), false, |c| c.to_string());
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(json(&sent[0])["uid"], "04A1B2C3");
    assert_eq!(sent[0].topic, "store/reader/cmd");
}

#[test]
fn a_relay_held_open_for_the_mode_is_left_alone_by_taps_and_given_back_after() {
    let mut a = adapters();
    assert_eq!(a.holdable_doors(), vec![door("d-lab")]);
    let hold = a.hold(door("d-lab"), true).unwrap();
    let sent: Vec<(&str, &[u8])> = hold
        .iter()
        .map(|p| (p.topic.as_str(), p.payload.as_slice()))
        .collect();
    assert_eq!(
        sent,
        [
            ("cmnd/lab-door/PulseTime2", b"0".as_slice()),
            ("cmnd/lab-door/POWER2", b"ON".as_slice())
        ]
    );
    assert_eq!(a.unlock(door("d-lab"), 5000, t(0)), Some(Vec::new()));
    assert!(a.due(t(60)).is_empty(), "no off while held");
    let back = a.hold(door("d-lab"), false).unwrap();
    assert_eq!(back[0].payload, b"50");
    assert_eq!(back[1].payload, b"OFF");
    assert!(
        a.hold(door("d-gallery"), true).is_none(),
        "esp-rfid cannot hold a door"
    );
}
