//! The door flow end to end through a real broker (the embedded rumqttd, and a mosquitto the
//! test starts), the real service (`service::start`, as `kombinat run` uses it) and a real sled
//! store. A rumqttc client plays the door node.

mod support;

use std::time::Duration;

use kombinat::domain::{DoorId, Reason, SiteMode};
use kombinat::service::{self, Running};
use kombinat::store::{Actor, AuditEvent, SledStore, Store};
use kombinat_protocol::auth::Signed;
use kombinat_protocol::door::{self, VERSION};
use kombinat_protocol::site::ModeSet;
use kombinat_protocol::Topic;
use rumqttc::QoS;
use support::*;

const T: Duration = Duration::from_secs(10);

/// Taps of every kind a door can send, good and bad; returns the node for more.
async fn door_flow(gw: &Running) -> DoorNode {
    assert!(gw.ready(T).await, "the gateway connects and subscribes");
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;

    // Allowed: staff.
    let t = node.tap(card(STAFF_CARD));
    node.send_tap(&t).await;
    let d = node.decision(T).await;
    assert_eq!((d.allow, d.reason, d.tap), (true, Reason::Staff, t.counter));
    assert!(d.unlock_ms > 0);

    // Denied: a member without rights, and an unknown card.
    let t = node.tap(card(NOBODY_CARD));
    node.send_tap(&t).await;
    let d = node.decision(T).await;
    assert_eq!(
        (d.allow, d.reason, d.tap, d.unlock_ms),
        (false, Reason::NoRight, t.counter, 0)
    );
    let t = node.tap(card("0BADC0DE"));
    node.send_tap(&t).await;
    assert_eq!(node.decision(T).await.reason, Reason::UnknownCredential);

    // Refused without an answer: a bad MAC, a replayed counter, another device's key, a tap
    // for a door the device does not serve, malformed JSON, an oversized payload.
    let mut bad_mac = node.tap(card(STAFF_CARD));
    bad_mac.mac.0[0] ^= 1;
    node.send_tap(&bad_mac).await;
    node.send_tap(&t).await; // replay of the unknown-card tap
    let mut foreign = node.tap(card(STAFF_CARD));
    foreign.sign(&key(2));
    node.send_tap(&foreign).await;
    let mut elsewhere = node.tap(card(STAFF_CARD));
    elsewhere.door = DoorId::parse("d-meeting-1").unwrap();
    elsewhere.sign(&node.key);
    node.send(elsewhere.door, serde_json::to_vec(&elsewhere).unwrap())
        .await;
    node.send(node.door, b"{\"v\":1,\"door\":".to_vec()).await;
    node.send(node.door, vec![b' '; 70 * 1024]).await;
    // In order behind them, a good tap: its decision is the next one the node sees, so none of
    // the refused ones was answered.
    let good = node.tap(card(STAFF_CARD));
    node.send_tap(&good).await;
    let d = node.decision(T).await;
    assert_eq!((d.tap, d.reason), (good.counter, Reason::Staff));
    for (label, n) in [
        ("bad_mac", 2),
        ("replay", 1),
        ("malformed_json", 1),
        ("too_large", 1),
    ] {
        assert_eq!(gw.stats.malformed(label), n, "{label}");
    }
    // The tap on another door's topic: the embedded broker drops it (the node's account may not
    // write there); a broker without accounts hands it on and the gateway refuses it.
    let dropped = gw
        .stats
        .guard
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(gw.stats.malformed("not_its_topic") + dropped, 1);
    node
}

fn audit_taps(data: &std::path::Path) -> Vec<(u64, Reason)> {
    let store = SledStore::open(data).unwrap();
    store
        .audit_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.entry.event {
            AuditEvent::Decision {
                tap: Some(t),
                reason,
                ..
            } => Some((t, reason)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_flow_through_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let gw = service::start(config(dir.path(), "embedded"))
        .await
        .unwrap();
    let mut node = door_flow(&gw).await;

    // Remote unlock and site mode are signed commands, audited with who asked.
    gw.unlock(
        DoorId::parse("d-cowork-in").unwrap(),
        4000,
        Actor::Staff("olha".into()),
    )
    .unwrap();
    let cmd: door::Command = serde_json::from_slice(&node.next_on("command", T).await).unwrap();
    assert!(cmd.verify(&key(1)));
    assert_eq!(cmd.action, door::Action::Unlock { ms: 4000 });
    assert!(matches!(
        gw.unlock(
            DoorId::parse("d-main").unwrap(),
            4000,
            Actor::Staff("olha".into())
        ),
        Err(service::ServiceError::NoNode(_))
    ));
    gw.set_mode(SiteMode::Lockdown, Actor::Staff("olha".into()))
        .unwrap();
    let t = node.tap(card(NOBODY_CARD));
    node.send_tap(&t).await;
    assert_eq!(node.decision(T).await.reason, Reason::Lockdown);

    // An alert feed switches to shelter mode with a signed message; a forged one (through the
    // feed's own broker account) is refused.
    let feed_node = DoorNode::connect(gw.mqtt_addr, "alert-feed", "d-cowork-in", key(3)).await;
    let feed = &feed_node.client;
    let mut m = ModeSet {
        v: VERSION,
        device: "alert-feed".parse().unwrap(),
        counter: 1,
        mode: SiteMode::Shelter,
        mac: Default::default(),
    };
    m.sign(&key(3));
    let mut forged = m.clone();
    forged.counter = 2;
    forged.mode = SiteMode::Normal;
    forged.sign(&key(9));
    for msg in [&m, &forged] {
        feed.publish(
            Topic::ModeSet.to_string(PREFIX),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(msg).unwrap(),
        )
        .await
        .unwrap();
    }
    // The feed and the door speak on connections of their own, which the broker does not keep
    // in order with each other: the tap waits until the forged message, sent after the good
    // one on the feed's connection, has been refused (so the good one was taken).
    let stats = gw.stats.clone();
    until(T, "the feed's two messages taken", || {
        stats.malformed("bad_mac") == 3
    })
    .await;
    let t = node.tap(card(NOBODY_CARD));
    node.send_tap(&t).await;
    // d-cowork-in is not on the way to the shelter: normal rules, so no right.
    assert_eq!(node.decision(T).await.reason, Reason::NoRight);
    assert_eq!(gw.stats.malformed("bad_mac"), 3);

    let published = gw
        .stats
        .decisions
        .load(std::sync::atomic::Ordering::Relaxed);
    gw.stop().await.unwrap();
    let taps = audit_taps(dir.path());
    assert_eq!(
        taps.len() as u64,
        published,
        "every decision sent is in the log, once"
    );
    let log = SledStore::open(dir.path())
        .unwrap()
        .audit_tail(100)
        .unwrap();
    let text = format!("{log:?}");
    assert!(
        text.contains("remote unlock of door d-cowork-in for 4000 ms"),
        "{text}"
    );
    assert!(text.contains("Staff(\"olha\")"));
    assert!(
        text.contains("mode: Shelter") && text.contains("Device(DeviceId(\"alert-feed\"))"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_flow_through_mosquitto_survives_a_broker_restart_and_a_gateway_restart() {
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let gw = service::start(config(dir.path(), &broker.url()))
        .await
        .unwrap();
    let mut node = door_flow(&gw).await;

    let first: door::AllowList =
        serde_json::from_slice(&node.next_on("allowlist", T).await).unwrap();
    node.accept_from_gateway(&first);

    // The broker dies and comes back with no sessions: the gateway reconnects and subscribes
    // again, publishes its retained allow-lists again, and the node's next taps are answered.
    let connects = gw
        .stats
        .link
        .connects
        .load(std::sync::atomic::Ordering::Relaxed);
    broker.restart();
    until(T, "the gateway to reconnect", || {
        gw.stats
            .link
            .connects
            .load(std::sync::atomic::Ordering::Relaxed)
            > connects
    })
    .await;
    // The node's client reconnects by itself and subscribes again.
    // The first tap may race the gateway's new subscription: send until one is answered.
    let mut answered = None;
    for _ in 0..50 {
        let t = node.tap(card(STAFF_CARD));
        node.send_tap(&t).await;
        if let Ok(d) = tokio::time::timeout(Duration::from_millis(200), node.decision(T)).await {
            answered = Some(d);
            break;
        }
    }
    assert_eq!(
        answered.expect("answered after the restart").reason,
        Reason::Staff
    );

    // The gateway stops and starts again on the same data: counters and log are kept.
    let last = node.counter;
    drop(node);
    gw.stop().await.unwrap();
    let gw = service::start(config(dir.path(), &broker.url()))
        .await
        .unwrap();
    assert!(gw.ready(T).await);
    let mut node2 = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    node2.counter = last - 1;
    let old = node2.tap(card(STAFF_CARD));
    node2.counter = last;
    node2.send_tap(&old).await; // an old counter: a replay after the restart too
    let t = node2.tap(card(STAFF_CARD));
    node2.send_tap(&t).await;
    let d = node2.decision(T).await;
    assert_eq!((d.tap, d.reason), (t.counter, Reason::Staff));
    assert_eq!(gw.stats.malformed("replay"), 1);
    gw.stop().await.unwrap();
    let taps = audit_taps(dir.path());
    let mut seen = std::collections::HashSet::new();
    assert!(
        taps.iter().all(|(t, _)| seen.insert(*t)),
        "no tap is logged twice: {taps:?}"
    );
    assert!(seen.contains(&t.counter));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_lists_offline_logs_door_alarms_and_device_health() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let mut cfg = config(dir.path(), "embedded");
    cfg.heartbeat_s = 1;
    let gw = service::start(cfg).await.unwrap();
    assert!(gw.ready(T).await);
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;

    // A signed, retained allow-list reaching ahead: staff listed, the member without rights not.
    let list: door::AllowList =
        serde_json::from_slice(&node.next_on("allowlist", T).await).unwrap();
    assert!(list.verify(&key(1)), "the allow-list's MAC verifies");
    assert!(list.valid_until >= list.valid_from + 11 * 3600);
    let staff = kombinat::domain::CardId::parse(STAFF_CARD).unwrap();
    let nobody = kombinat::domain::CardId::parse(NOBODY_CARD).unwrap();
    // Staff hold at any hour: their entry starts at 0, which a node with its clock unset grants.
    assert!(list
        .cards
        .iter()
        .any(|e| e.card == staff && e.from == 0 && e.until > list.valid_until - 300));
    assert!(list.cards.iter().all(|e| e.card != nobody));

    // An offline log is stored once, however often it is sent, and acknowledged.
    let entries = vec![
        door::OfflineEntry {
            tap: 1001,
            at: 1_790_000_000,
            card: staff,
            allow: true,
            reason: Reason::OfflineListed,
        },
        door::OfflineEntry {
            tap: 1002,
            at: 1_790_000_060,
            card: nobody,
            allow: false,
            reason: Reason::OfflineNotListed,
        },
    ];
    for _ in 0..2 {
        node.counter += 1;
        let mut log = door::OfflineLog {
            v: VERSION,
            door: node.door,
            device: node.device,
            counter: node.counter,
            entries: entries.clone(),
            mac: Default::default(),
        };
        log.sign(&node.key);
        node.client
            .publish(
                Topic::Door(node.door, kombinat_protocol::door::DoorTopic::OfflineLog)
                    .to_string(PREFIX),
                QoS::AtLeastOnce,
                false,
                serde_json::to_vec(&log).unwrap(),
            )
            .await
            .unwrap();
        let ack: door::OfflineAck =
            serde_json::from_slice(&node.next_on("offline-ack", T).await).unwrap();
        assert!(ack.verify(&key(1)));
        assert_eq!(ack.up_to, 1002);
    }
    assert_eq!(
        gw.stats
            .offline_ingested
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );

    // A forced door raises an alarm, and clears it.
    for forced in [true, false] {
        node.send_state(forced).await;
    }

    // A tap behind them makes sure the core has taken them.
    let t = node.tap(card(STAFF_CARD));
    node.send_tap(&t).await;
    node.decision(T).await;
    gw.stop().await.unwrap();
    let log = SledStore::open(dir.path())
        .unwrap()
        .audit_after(None, usize::MAX)
        .unwrap();
    let offline: Vec<_> = log
        .iter()
        .filter(|r| matches!(r.entry.event, AuditEvent::Decision { offline: true, .. }))
        .collect();
    assert_eq!(offline.len(), 2, "each offline decision stored once");
    let alarms: Vec<(bool, kombinat::store::AlarmKind)> = log
        .iter()
        .filter_map(|r| match r.entry.event {
            AuditEvent::Alarm { raised, alarm, .. } => Some((raised, alarm)),
            _ => None,
        })
        .collect();
    assert!(
        alarms.contains(&(true, kombinat::store::AlarmKind::Forced)),
        "{alarms:?}"
    );
    assert!(
        alarms.contains(&(false, kombinat::store::AlarmKind::Forced)),
        "{alarms:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_raises_the_offline_alarm() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let mut cfg = config(dir.path(), "embedded");
    cfg.heartbeat_s = 1;
    let gw = service::start(cfg).await.unwrap();
    assert!(gw.ready(T).await);
    let node = DoorNode::connect(gw.mqtt_addr, "door-meeting", "d-meeting-1", key(2)).await;
    let status = kombinat_protocol::device::Status {
        v: VERSION,
        state: kombinat_protocol::device::Presence::Online,
        firmware: None,
        uptime_s: None,
        heartbeat_s: Some(1),
    };
    node.client
        .publish(
            Topic::Status(node.device).to_string(PREFIX),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&status).unwrap(),
        )
        .await
        .unwrap();
    // Three missed heartbeats of one second: the health check (every second) raises the alarm.
    let data = dir.path().to_path_buf();
    let stats = gw.stats.clone();
    until(T, "the offline alarm", || {
        stats
            .alarms_raised
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    })
    .await;
    gw.stop().await.unwrap();
    let log = SledStore::open(&data)
        .unwrap()
        .audit_after(None, usize::MAX)
        .unwrap();
    let offline: Vec<bool> = log
        .iter()
        .filter_map(|r| match r.entry.event {
            AuditEvent::Alarm {
                alarm: kombinat::store::AlarmKind::DeviceOffline,
                raised,
                ..
            } => Some(raised),
            _ => None,
        })
        .collect();
    // Raised, and never "cleared" before it was raised: the node's first status after the
    // gateway started clears nothing.
    assert_eq!(offline, [true], "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_people_counter_moves_the_room_s_count_and_a_full_room_turns_a_booking_away() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let gw = service::start(config(dir.path(), "embedded"))
        .await
        .unwrap();
    assert!(gw.ready(T).await);
    let occupancy = Topic::Occupancy("meeting-1".parse().unwrap()).to_string(PREFIX);
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-meeting", "d-meeting-1", key(2)).await;
    let counter = DoorNode::connect(gw.mqtt_addr, "sensor-meeting", "d-meeting-1", key(4)).await;
    let mut watcher = DoorNode::connect_as(
        gw.mqtt_addr,
        login("observer"),
        "observer",
        "d-meeting-1",
        key(9),
        std::slice::from_ref(&occupancy),
    )
    .await;

    // Ivan's booking opens the meeting room while it has room.
    let t = node.tap(card(NOBODY_CARD));
    node.send_tap(&t).await;
    assert_eq!(node.decision(T).await.reason, Reason::Booking);

    // The room's people counter, heard for the first time, reports twelve in: Ivan, let in a
    // moment ago (the same person, not one more), and eleven others: twelve, the room's capacity
    // in the example site. And two readings that are not ours to trust (an unregistered sensor, a
    // door node posing as one).
    let reading = |device: &str, entered: u16| {
        serde_json::to_vec(&kombinat_protocol::sensor::Reading {
            v: VERSION,
            device: device.parse().unwrap(),
            counter: 1,
            reading: kombinat_protocol::sensor::Measurement::Counter { entered, out: 0 },
        })
        .unwrap()
    };
    for (device, n) in [
        ("sensor-ghost", 50),
        ("door-cowork", 50),
        ("sensor-meeting", 12),
    ] {
        let from = if device == "sensor-meeting" {
            &counter
        } else {
            &node
        };
        from.client
            .publish(
                Topic::Reading(device.parse().unwrap()).to_string(PREFIX),
                QoS::AtLeastOnce,
                false,
                reading(device, n),
            )
            .await
            .unwrap();
    }
    // The retained occupancy follows: the count from the counter, and nothing from the others.
    let deadline = tokio::time::Instant::now() + T;
    let occ = loop {
        let (topic, payload) = tokio::time::timeout_at(deadline, watcher.rx.recv())
            .await
            .expect("occupancy in time")
            .unwrap();
        if topic != occupancy {
            continue;
        }
        let o: kombinat_protocol::room::Occupancy = serde_json::from_slice(&payload).unwrap();
        if o.basis == kombinat_protocol::room::Basis::Counter {
            break o;
        }
    };
    assert_eq!((occ.count, occ.occupied), (12, true));
    // The broker dropped both (the door node's account may not write a sensor's topics).
    let stats = gw.stats.clone();
    until(T, "both dropped by the broker", || {
        stats
            .guard
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
            == 2
    })
    .await;

    // Now the room is at its fire-safety capacity: the same booking is turned away.
    let t = node.tap(card(NOBODY_CARD));
    node.send_tap(&t).await;
    assert_eq!(node.decision(T).await.reason, Reason::RoomFull);
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_finds_every_room_and_gets_them_again_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let gw = service::start(config(dir.path(), "embedded"))
        .await
        .unwrap();
    assert!(gw.ready(T).await);
    let config_topic =
        "homeassistant/binary_sensor/kombinat_meeting_1/occupancy/config".to_string();
    let status = "kombinat/v1/device/gateway/status".to_string();
    // Home Assistant signs in with the broker's read-only observer account.
    let mut node = DoorNode::connect_as(
        gw.mqtt_addr,
        login("observer"),
        "observer",
        "d-meeting-1",
        key(9),
        &[config_topic.clone(), status.clone()],
    )
    .await;
    let first: serde_json::Value =
        serde_json::from_slice(&node.next_on("occupancy/config", T).await).unwrap();
    assert_eq!(first["device_class"], "occupancy");
    assert_eq!(first["state_topic"], "kombinat/v1/room/meeting-1/occupancy");
    let online: serde_json::Value =
        serde_json::from_slice(&node.next_on("gateway/status", T).await).unwrap();
    assert_eq!(online["state"], "online");
    // Home Assistant restarts and says so: the configs come again.
    node.client
        .publish("homeassistant/status", QoS::AtLeastOnce, false, "online")
        .await
        .unwrap();
    let again: serde_json::Value =
        serde_json::from_slice(&node.next_on("occupancy/config", T).await).unwrap();
    assert_eq!(again, first);
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_given_a_clock_decides_and_logs_on_that_clock() {
    use kombinat::domain::{
        Booking, BookingKey, BookingKind, BookingStatus, ExternalId, Member, MemberId, RoomId,
        SourceId, Window,
    };
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    // Thursday 26 November 2026, 14:00-16:00 in Kyiv: Olena's meeting, on fixed dates.
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let then = at("2026-11-26T14:30:00+02:00");
    {
        let site = std::sync::Arc::new(kombinat::site_file::load(&site_path()).unwrap());
        let store: std::sync::Arc<dyn Store> =
            std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
        let mut g = kombinat::registry::Registry::open(site, store, then).unwrap();
        let who = Actor::Cli("test".into());
        let olena = MemberId::parse("olena").unwrap();
        g.add_member(Member::new(olena, "Olena"), who.clone(), then)
            .unwrap();
        g.add_credential(olena, card("0A0B0C0D"), who.clone(), then)
            .unwrap();
        g.upsert_booking(
            Booking {
                key: BookingKey {
                    source: SourceId::parse("test").unwrap(),
                    external_id: ExternalId::parse("olena-thursday").unwrap(),
                },
                room: RoomId::parse("meeting-1").unwrap(),
                kind: BookingKind::Meeting,
                title: "Design review".into(),
                organiser: Some(olena),
                attendees: vec![],
                window: Window::Timed {
                    start: at("2026-11-26T14:00:00+02:00"),
                    end: at("2026-11-26T16:00:00+02:00"),
                },
                status: BookingStatus::Confirmed,
            },
            who,
            then,
        )
        .unwrap();
    }
    let mut config = config(dir.path(), "embedded");
    config.clock = kombinat::clock::Clock::starting_at(then);
    let gw = service::start(config).await.unwrap();
    assert!(gw.ready(T).await);
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-meeting", "d-meeting-1", key(2)).await;
    let t = node.tap(card("0A0B0C0D"));
    node.send_tap(&t).await;
    let d = node.decision(T).await;
    assert_eq!(
        (d.allow, d.reason),
        (true, Reason::Booking),
        "on the given clock"
    );
    gw.stop().await.unwrap();
    // The log has it at the clock's time, not the system's.
    let store = SledStore::open(dir.path()).unwrap();
    let logged = store
        .audit_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .rev()
        .find(|r| matches!(r.entry.event, AuditEvent::Decision { tap: Some(n), .. } if n == t.counter))
        .expect("the decision is logged");
    let off = (logged.entry.at - then).num_seconds();
    assert!((0..120).contains(&off), "logged at {}", logged.entry.at);
}

/// A door node's signed state report.
async fn report_lock(node: &mut DoorNode, locked: bool) {
    node.send_door_state(door::Contact::Closed, locked, false)
        .await;
}

/// A door node says it is online (as it does on every connect).
async fn say_online(node: &DoorNode) {
    let status = kombinat_protocol::device::Status {
        v: VERSION,
        state: kombinat_protocol::device::Presence::Online,
        firmware: None,
        uptime_s: None,
        heartbeat_s: Some(30),
    };
    node.client
        .publish(
            Topic::Status(node.device).to_string(PREFIX),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&status).unwrap(),
        )
        .await
        .unwrap();
}

/// The node's link drops (its last will says offline), `meanwhile` happens, and it connects
/// again (a new session: what was queued for it is lost) and says it is online.
async fn away_and_back(
    node: DoorNode,
    addr: std::net::SocketAddr,
    meanwhile: impl FnOnce(),
) -> DoorNode {
    let gone = kombinat_protocol::device::Status {
        v: VERSION,
        state: kombinat_protocol::device::Presence::Offline,
        firmware: None,
        uptime_s: None,
        heartbeat_s: None,
    };
    node.client
        .publish(
            Topic::Status(node.device).to_string(PREFIX),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&gone).unwrap(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.client.disconnect().await.unwrap();
    let counter = node.counter;
    let (device, door, key) = (node.device, node.door, node.key.clone());
    drop(node);
    meanwhile();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut node = DoorNode::connect(addr, device.as_str(), door.as_str(), key).await;
    node.counter = counter;
    say_online(&node).await;
    node
}

/// The next command the node hears, verified.
async fn next_command(node: &mut DoorNode, within: Duration) -> door::Action {
    let cmd: door::Command =
        serde_json::from_slice(&node.next_on("command", within).await).unwrap();
    assert!(cmd.verify(&node.key), "signed");
    cmd.action
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_door_released_while_its_node_was_away_is_told_back_to_normal_and_a_lock_left_open_is_an_alarm(
) {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    {
        // The coworking floor's exit door, an egress door: released in an emergency.
        let site = std::sync::Arc::new(kombinat::site_file::load(&site_path()).unwrap());
        let store: std::sync::Arc<dyn Store> =
            std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
        let now = chrono::Utc::now();
        let mut g = kombinat::registry::Registry::open(site, store, now).unwrap();
        g.add_device(
            kombinat::domain::Device {
                id: "door-cowork-out".parse().unwrap(),
                kind: kombinat::domain::DeviceKind::Door,
                door: Some(DoorId::parse("d-cowork-out").unwrap()),
                room: None,
                key: key(5),
                added_at: now,
            },
            Actor::Cli("test".into()),
            now,
        )
        .unwrap();
    }
    let data = dir.path().to_path_buf();
    let gw = service::start(config(&data, "embedded")).await.unwrap();
    assert!(gw.ready(T).await);
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork-out", "d-cowork-out", key(5)).await;
    say_online(&node).await;
    gw.set_mode(SiteMode::Emergency, Actor::Staff("olha".into()))
        .unwrap();
    assert_eq!(next_command(&mut node, T).await, door::Action::Release);
    report_lock(&mut node, false).await;

    // The node drops off the network (its last will says so) and comes back: a released door
    // is told again that it stays released.
    node = away_and_back(node, gw.mqtt_addr, || {}).await;
    assert_eq!(next_command(&mut node, T).await, door::Action::Release);

    // It drops off again, and the emergency ends meanwhile (the command is lost with the
    // node's session): back, it still holds the door released and says so. Past the door's
    // unlock time and the grace, the lock differs: the alarm, and "back to normal" again.
    node = away_and_back(node, gw.mqtt_addr, || {
        gw.set_mode(SiteMode::Normal, Actor::Staff("olha".into()))
            .unwrap()
    })
    .await;
    report_lock(&mut node, false).await;
    assert_eq!(
        next_command(&mut node, Duration::from_secs(60)).await,
        door::Action::Normal,
        "told back to normal"
    );
    report_lock(&mut node, true).await;
    let stats = gw.stats.clone();
    until(T, "the refresh", || {
        stats
            .alarms_raised
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.stop().await.unwrap();
    let log = SledStore::open(&data)
        .unwrap()
        .audit_after(None, usize::MAX)
        .unwrap();
    let differs: Vec<bool> = log
        .iter()
        .filter_map(|r| match r.entry.event {
            AuditEvent::Alarm {
                alarm: kombinat::store::AlarmKind::LockDiffers,
                door: Some(d),
                raised,
                ..
            } if d.as_str() == "d-cowork-out" => Some(raised),
            _ => None,
        })
        .collect();
    assert_eq!(
        differs,
        [true, false],
        "raised, then cleared once it reports locked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restore_old_captured_messages_are_refused_and_the_node_still_hears_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data);
    let backup = dir.path().join("before.kbk");
    cli(&site_path(), &data, &["backup", backup.to_str().unwrap()]);

    // After the backup: taps the door node sent (one of them captured by someone on the
    // network), and a decision the gateway signed.
    let gw = service::start(config(&data, "embedded")).await.unwrap();
    assert!(gw.ready(T).await);
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    let mut captured = None;
    let mut last_gateway_counter = 0;
    for n in 0..5 {
        let t = node.tap(card(STAFF_CARD));
        node.send_tap(&t).await;
        let d = node.decision(T).await;
        last_gateway_counter = d.counter;
        if n == 2 {
            captured = Some(t);
        }
    }
    let counter = node.counter;
    gw.stop().await.unwrap();
    drop(node);

    // The operator restores the backup over the store.
    let said = cli(
        &site_path(),
        &data,
        &["restore", backup.to_str().unwrap(), "--force"],
    );
    assert!(
        said.contains("replay counters moved past what the replaced store had seen"),
        "{said}"
    );
    let gw = service::start(config(&data, "embedded")).await.unwrap();
    assert!(gw.ready(T).await);
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    node.counter = counter;
    // The captured tap, sent again: refused as a replay, not decided.
    node.send_tap(&captured.unwrap()).await;
    // A new tap is decided, with a gateway counter the node has not seen.
    let t = node.tap(card(STAFF_CARD));
    node.send_tap(&t).await;
    let d = node.decision(T).await;
    assert_eq!(d.tap, t.counter, "the replayed tap got no answer");
    assert!(
        d.counter > last_gateway_counter,
        "{} after {last_gateway_counter}",
        d.counter
    );
    assert_eq!(gw.stats.malformed("replay"), 1);
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_registered_again_on_a_fresh_store_is_heard_by_its_node_and_a_rekeyed_one_is_not_the_old_key(
) {
    // The first store: the node hears the gateway's decisions.
    let first = tempfile::tempdir().unwrap();
    prepare(first.path());
    let gw = service::start(config(first.path(), "embedded"))
        .await
        .unwrap();
    assert!(gw.ready(T).await);
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    let t = node.tap(card(STAFF_CARD));
    node.send_tap(&t).await;
    let before = node.decision(T).await.counter;
    gw.stop().await.unwrap();
    drop(node);

    // A fresh store (the SD card replaced), the device added again with its key.
    let second = tempfile::tempdir().unwrap();
    prepare(second.path());
    let gw = service::start(config(second.path(), "embedded"))
        .await
        .unwrap();
    assert!(gw.ready(T).await);
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    node.counter = t.counter;
    let t = node.tap(card(STAFF_CARD));
    node.send_tap(&t).await;
    let after = node.decision(T).await.counter;
    assert!(
        after > before,
        "the node accepts it: {after} after {before}"
    );
    gw.stop().await.unwrap();
    drop(node);

    // Rekeyed: the old key's taps are refused; the device keeps its place.
    let said = cli(
        &site_path(),
        second.path(),
        &["device", "rekey", "door-cowork"],
    );
    let new_key = said.lines().nth(1).unwrap().trim().to_string();
    let new_key = kombinat_protocol::auth::DeviceKey::parse_hex(&new_key).unwrap();
    let gw = service::start(config(second.path(), "embedded"))
        .await
        .unwrap();
    assert!(gw.ready(T).await);
    // The old key does not even sign in to the broker: its password derives from the key.
    let (_old, mut old) = broker_client(
        "door-cowork",
        Some((
            "door-cowork",
            &kombinat_protocol::auth::broker_password(&key(1)),
        )),
        gw.mqtt_addr.port(),
    );
    assert!(
        broker_connected(&mut old).await.is_err(),
        "the old key's broker password is refused"
    );
    // A new node with the new key starts its counters from scratch and is heard.
    let mut fresh = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", new_key).await;
    let t = fresh.tap(card(STAFF_CARD));
    fresh.send_tap(&t).await;
    let d = fresh.decision(T).await;
    assert_eq!((d.tap, d.reason), (1, Reason::Staff));
    gw.stop().await.unwrap();
    // Removed: gone from the registry.
    cli(
        &site_path(),
        second.path(),
        &["device", "remove", "door-cowork"],
    );
    let list = cli(&site_path(), second.path(), &["device", "list"]);
    assert!(!list.contains("door-cowork"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_tapped_200_times_does_not_fill_the_coworking_floor_for_a_resident() {
    use kombinat::domain::{Member, MemberId, PlanId};
    const RESIDENT_CARD: &str = "0A0B0C0D";
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    {
        let site = std::sync::Arc::new(kombinat::site_file::load(&site_path()).unwrap());
        let store: std::sync::Arc<dyn Store> =
            std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
        let now = chrono::Utc::now();
        let mut g = kombinat::registry::Registry::open(site, store, now).unwrap();
        let mut m = Member::new(MemberId::parse("olha").unwrap(), "Olha");
        m.plan = Some(PlanId::parse("coworking-resident").unwrap());
        let who = Actor::Cli("test".into());
        g.add_member(m, who.clone(), now).unwrap();
        g.add_credential(
            MemberId::parse("olha").unwrap(),
            card(RESIDENT_CARD),
            who,
            now,
        )
        .unwrap();
    }
    let gw = service::start(config(dir.path(), "embedded"))
        .await
        .unwrap();
    assert!(gw.ready(T).await);
    let occupancy = Topic::Occupancy("coworking".parse().unwrap()).to_string(PREFIX);
    let mut node = DoorNode::connect_with(
        gw.mqtt_addr,
        "door-cowork",
        "d-cowork-in",
        key(1),
        std::slice::from_ref(&occupancy),
    )
    .await;
    // A staff card tapped 200 times at the turnstile (capacity 80): each tap is let in.
    for _ in 0..200 {
        let t = node.tap(card(STAFF_CARD));
        node.send_tap(&t).await;
        assert_eq!(node.decision(T).await.reason, Reason::Staff);
    }
    // Whatever the floor's count comes to from those taps (the core publishes it within a
    // second), a count from entries alone does not shut the door on a resident.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some((topic, payload))) = tokio::time::timeout_at(deadline, node.rx.recv()).await {
        if topic == occupancy {
            let o: kombinat_protocol::room::Occupancy = serde_json::from_slice(&payload).unwrap();
            if o.count >= 80 {
                break;
            }
        }
    }
    let t = node.tap(card(RESIDENT_CARD));
    node.send_tap(&t).await;
    let d = node.decision(T).await;
    assert_eq!((d.allow, d.reason), (true, Reason::Plan));
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_clean_stop_the_gateway_s_retained_status_says_offline() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let gw = service::start(config(dir.path(), &broker.url()))
        .await
        .unwrap();
    assert!(gw.ready(T).await);
    let status = Topic::Status("gateway".parse().unwrap()).to_string(PREFIX);
    let retained = |addr: std::net::SocketAddr, status: String| async move {
        let mut node = DoorNode::connect_with(
            addr,
            "door-cowork",
            "d-cowork-in",
            key(1),
            std::slice::from_ref(&status),
        )
        .await;
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let (t, payload) = tokio::time::timeout_at(deadline, node.rx.recv())
                .await
                .expect("the retained status in time")
                .unwrap();
            if t == status {
                let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                return v["state"].as_str().unwrap().to_string();
            }
        }
    };
    let addr = gw.mqtt_addr;
    assert_eq!(retained(addr, status.clone()).await, "online");
    gw.stop().await.unwrap();
    // The broker keeps what the gateway said last: offline, though no will fired.
    assert_eq!(retained(addr, status).await, "offline");
    drop(broker);
}
