//! Power and the building's own alert input, through the real service and the embedded broker:
//! a node's signed power reports (mains lost, its battery falling) are logged, raise and clear
//! their alarms, and below the shedding line put a fail-safe door off the way out in its
//! mechanical state (released) until mains is back; a node's dry-contact input (a siren relay)
//! switches shelter mode and releases the shelter's door, and its end switches back; a forged
//! input, or one from a node the configuration does not name, changes nothing.

mod support;

use std::sync::Arc;
use std::time::Duration;

use kombinat::registry::Registry;
use kombinat::service;
use kombinat::store::{Actor, AlarmKind, AuditEvent, SledStore, Store};
use kombinat_protocol::auth::Signed;
use kombinat_protocol::device::{AlertInput, Power};
use kombinat_protocol::door::{Action, Command, VERSION};
use kombinat_protocol::Topic;
use rumqttc::QoS;
use support::*;

const T: Duration = Duration::from_secs(20);

fn register(dir: &std::path::Path, nodes: &[(&str, &str, u8)]) {
    let site = Arc::new(kombinat::site_file::load(&site_path()).unwrap());
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).unwrap());
    let now = chrono::Utc::now();
    let mut g = Registry::open(site, store, now).unwrap();
    for (device, door, k) in nodes {
        g.add_device(
            kombinat::domain::Device {
                id: device.parse().unwrap(),
                kind: kombinat::domain::DeviceKind::Door,
                door: Some(door.parse().unwrap()),
                room: None,
                key: key(*k),
                added_at: now,
            },
            Actor::Cli("test".into()),
            now,
        )
        .unwrap();
    }
}

/// Publishes a signed message of the node's own on `topic`.
async fn publish(node: &DoorNode, topic: Topic, payload: Vec<u8>) {
    node.client
        .publish(topic.to_string(PREFIX), QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
}

async fn power(node: &mut DoorNode, mains: bool, battery_mv: Option<u32>) {
    node.counter += 1;
    let mut p = Power {
        v: VERSION,
        device: node.device,
        counter: node.counter,
        mains,
        battery_mv,
        mac: Default::default(),
    };
    p.sign(&node.key);
    publish(
        node,
        Topic::Power(node.device),
        serde_json::to_vec(&p).unwrap(),
    )
    .await;
}

async fn input(node: &mut DoorNode, active: bool, key: &kombinat_protocol::auth::DeviceKey) {
    node.counter += 1;
    let mut a = AlertInput {
        v: VERSION,
        device: node.device,
        counter: node.counter,
        active,
        mac: Default::default(),
    };
    a.sign(key);
    publish(
        node,
        Topic::AlertInput(node.device),
        serde_json::to_vec(&a).unwrap(),
    )
    .await;
}

/// The next command to the node's door that is `what` (`release`, `normal`).
async fn command(node: &mut DoorNode, what: &str) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let p = node
            .next_on("command", deadline - tokio::time::Instant::now())
            .await;
        let c: Command = serde_json::from_slice(&p).unwrap();
        node.accept_from_gateway(&c);
        let said = match c.action {
            Action::Release => "release",
            Action::Normal => "normal",
            _ => "other",
        };
        if said == what {
            return;
        }
    }
}

/// No command reached the node in `wait`.
async fn no_command(node: &mut DoorNode, wait: Duration) {
    tokio::time::sleep(wait).await;
    while let Ok((topic, p)) = node.rx.try_recv() {
        assert!(
            !topic.ends_with("/command"),
            "no command expected, got {}",
            String::from_utf8_lossy(&p)
        );
    }
}

fn changes(dir: &std::path::Path) -> (Vec<String>, Vec<(AlarmKind, bool)>) {
    let log = SledStore::open(dir)
        .unwrap()
        .audit_after(None, usize::MAX)
        .unwrap();
    let mut texts = Vec::new();
    let mut alarms = Vec::new();
    for r in log {
        match r.entry.event {
            AuditEvent::Change { summary } => texts.push(summary),
            AuditEvent::Alarm { alarm, raised, .. } => alarms.push((alarm, raised)),
            AuditEvent::Mode { mode } => texts.push(format!("mode {}", mode.as_str())),
            _ => {}
        }
    }
    (texts, alarms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mains_lost_is_logged_and_a_low_battery_sheds_a_fail_safe_door_until_mains_is_back() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    // `prepare` registers door-meeting (d-meeting-1, key 2) and door-cowork (d-cowork-in, key 1).
    let mut config = config(dir.path(), "embedded");
    config.power.shed_below_mv = Some(11_500);
    let gw = service::start(config).await.unwrap();
    assert!(gw.ready(T).await);
    // d-meeting-1: a magnetic lock (fail-safe), off the way out; d-cowork-in: fail-secure.
    let mut meeting = DoorNode::connect(gw.mqtt_addr, "door-meeting", "d-meeting-1", key(2)).await;
    let mut cowork = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;

    power(&mut meeting, true, Some(13_600)).await;
    power(&mut meeting, false, Some(12_100)).await;
    power(&mut cowork, false, Some(12_050)).await;
    // On battery but above the line: the doors work as before.
    no_command(&mut meeting, Duration::from_millis(1500)).await;
    // Below the low line, then the shedding line.
    power(&mut meeting, false, Some(11_700)).await;
    power(&mut meeting, false, Some(11_400)).await;
    command(&mut meeting, "release").await;
    // Locked down, the door is held locked whatever its battery; released from that, shed
    // again. The site in lockdown likewise.
    let who = || Actor::Cli("test".into());
    let door = "d-meeting-1".parse().unwrap();
    gw.lock_down(door, true, who()).unwrap();
    command(&mut meeting, "normal").await;
    gw.lock_down(door, false, who()).unwrap();
    command(&mut meeting, "release").await;
    gw.set_mode(kombinat::domain::SiteMode::Lockdown, who())
        .unwrap();
    command(&mut meeting, "normal").await;
    gw.set_mode(kombinat::domain::SiteMode::Normal, who())
        .unwrap();
    command(&mut meeting, "release").await;
    // The fail-secure door is not released by shedding, however low its battery.
    power(&mut cowork, false, Some(11_000)).await;
    no_command(&mut cowork, Duration::from_millis(1500)).await;
    // A forged report (another key) changes nothing: mains stays lost.
    meeting.counter += 1;
    let mut forged = Power {
        v: VERSION,
        device: meeting.device,
        counter: meeting.counter,
        mains: true,
        battery_mv: Some(13_000),
        mac: Default::default(),
    };
    forged.sign(&key(200));
    publish(
        &meeting,
        Topic::Power(meeting.device),
        serde_json::to_vec(&forged).unwrap(),
    )
    .await;
    no_command(&mut meeting, Duration::from_millis(1500)).await;
    // Mains back: the door works as before.
    power(&mut meeting, true, Some(13_200)).await;
    command(&mut meeting, "normal").await;
    gw.stop().await.unwrap();

    let (texts, alarms) = changes(dir.path());
    let said = |what: &str| texts.iter().filter(|t| t.contains(what)).count();
    assert_eq!(
        said("mains lost at door-meeting (Meeting room 1"),
        1,
        "{texts:#?}"
    );
    assert_eq!(said("mains lost at door-cowork"), 1, "{texts:#?}");
    assert_eq!(said("battery low at door-meeting"), 1, "{texts:#?}");
    assert_eq!(
        said("load shed at door-meeting (Meeting room 1), its battery at 11.40 V: d-meeting-1 goes to its mechanical state: fail-safe, it stands unlocked"),
        1,
        "{texts:#?}"
    );
    // Shedding says what it does to each door; a fail-secure lock stays locked.
    assert_eq!(
        said("d-cowork-in goes to its mechanical state: fail-secure, it stays locked"),
        1,
        "{texts:#?}"
    );
    assert_eq!(
        said("mains back at door-meeting (Meeting room 1) after"),
        1,
        "{texts:#?}"
    );
    assert_eq!(said("load back at door-meeting"), 1, "{texts:#?}");
    let count = |k: AlarmKind, raised: bool| alarms.iter().filter(|a| **a == (k, raised)).count();
    assert_eq!(count(AlarmKind::MainsLost, true), 2, "{alarms:?}");
    assert_eq!(count(AlarmKind::MainsLost, false), 1, "{alarms:?}");
    assert_eq!(count(AlarmKind::BatteryLow, true), 2, "{alarms:?}");
    assert_eq!(count(AlarmKind::BatteryLow, false), 1, "{alarms:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_dry_contact_switches_shelter_mode_and_its_end_switches_back() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    register(
        dir.path(),
        &[("door-main", "d-main", 7), ("door-shelter", "d-shelter", 9)],
    );
    let mut config = config(dir.path(), "embedded");
    config.alert_inputs = vec!["door-main".parse().unwrap()];
    let gw = service::start(config).await.unwrap();
    assert!(gw.ready(T).await);
    let mut main = DoorNode::connect(gw.mqtt_addr, "door-main", "d-main", key(7)).await;
    let mut meeting = DoorNode::connect(gw.mqtt_addr, "door-meeting", "d-meeting-1", key(2)).await;
    let mut shelter = DoorNode::connect(gw.mqtt_addr, "door-shelter", "d-shelter", key(9)).await;

    // The contact says "no alert" at the node's start: nothing changes.
    input(&mut main, false, &key(7)).await;
    // A forged "alert" (another key), and one from a node that is not an alert input.
    input(&mut main, true, &key(200)).await;
    input(&mut meeting, true, &key(2)).await;
    no_command(&mut shelter, Duration::from_millis(2000)).await;

    // The siren relay closes: shelter mode, the shelter's door released.
    let at = std::time::Instant::now();
    input(&mut main, true, &key(7)).await;
    command(&mut shelter, "release").await;
    println!(
        "bench: input_to_release_ms {} ms (the node's dry contact to the shelter door's release, embedded broker)",
        at.elapsed().as_millis()
    );
    // Its heartbeat says the same: nothing new.
    input(&mut main, true, &key(7)).await;
    no_command(&mut shelter, Duration::from_millis(1000)).await;
    // The relay opens: back to normal.
    input(&mut main, false, &key(7)).await;
    command(&mut shelter, "normal").await;
    gw.stop().await.unwrap();

    let (texts, _) = changes(dir.path());
    let modes: Vec<&String> = texts.iter().filter(|t| t.starts_with("mode ")).collect();
    assert_eq!(modes, ["mode shelter", "mode normal"], "{texts:#?}");
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("alert input of node door-main: an air-raid alert")),
        "{texts:#?}"
    );
}

/// An outage schedule (iCalendar, one group's windows in Kyiv time) read from a file by the real
/// service: the booking inside an outage is reported, those outside it (or in a window the
/// schedule cancelled) are not, and the utilisation page leaves the dark hours out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_schedule_flags_the_booking_in_the_dark_and_utilisation_leaves_it_out() {
    use chrono::TimeZone;
    use kombinat::domain::{
        Booking, BookingKey, BookingKind, BookingStatus, ExternalId, MemberId, RoomId, SourceId,
        Window,
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data);
    let kyiv = chrono_tz::Europe::Kyiv;
    let day = (chrono::Utc::now().with_timezone(&kyiv) + chrono::Duration::days(1)).date_naive();
    let at = |h: u32, m: u32| {
        kyiv.from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let schedule = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/power/outages-group-3.ics"),
    )
    .unwrap()
    .replace("{DAY}", &day.format("%Y%m%d").to_string());
    let ics = dir.path().join("group-3.ics");
    std::fs::write(&ics, schedule).unwrap();
    let site = std::fs::read_to_string(site_path()).unwrap()
        + &format!(
            "\n[[feeds]]\nid = \"yasno-3.1\"\nkind = \"outages\"\npath = {:?}\ninterval_s = 1\n",
            ics.display().to_string()
        );
    let site_file = dir.path().join("site.toml");
    std::fs::write(&site_file, site).unwrap();
    let booking = |id: &str, from: (u32, u32), until: (u32, u32)| Booking {
        key: BookingKey {
            source: SourceId::parse("test").unwrap(),
            external_id: ExternalId::parse(id).unwrap(),
        },
        room: RoomId::parse("coworking").unwrap(),
        kind: BookingKind::Meeting,
        title: "Workshop".into(),
        organiser: Some(MemberId::parse("marta").unwrap()),
        attendees: Vec::new(),
        window: Window::Timed {
            start: at(from.0, from.1),
            end: at(until.0, until.1),
        },
        status: BookingStatus::Confirmed,
    };
    {
        let site = Arc::new(kombinat::site_file::load(&site_file).unwrap());
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&data).unwrap());
        let mut g = Registry::open(site, store, chrono::Utc::now()).unwrap();
        g.import_bookings(
            vec![
                booking("in-the-dark", (10, 0), (11, 0)),
                booking("after-it", (14, 0), (15, 0)),
                booking("outage-called-off", (21, 30), (22, 30)),
            ],
            "test",
            Actor::Cli("test".into()),
            chrono::Utc::now(),
        )
        .unwrap();
    }
    let password = add_staff(&site_file, &data, "olha", "viewer");
    let mut cfg = config(&data, "embedded");
    cfg.site = site_file;
    cfg.http = Some("127.0.0.1:0".parse().unwrap());
    let gw = service::start(cfg).await.unwrap();
    assert!(gw.ready(T).await);
    let reported = || -> Vec<String> {
        changes(&data)
            .0
            .into_iter()
            .filter(|t| t.contains("falls in a power outage"))
            .collect()
    };
    let base = format!("http://{}", gw.http_addr.unwrap());
    let cookie = sign_in(&base, "olha", &password);
    // The schedule is read at start; the dark hours show on the utilisation page.
    let deadline = std::time::Instant::now() + T;
    let (from, until) = (at(0, 0), at(0, 0) + chrono::Duration::days(1));
    let url = format!(
        "{base}/api/v1/utilisation?room=coworking&from={}&until={}",
        from.format("%Y-%m-%dT%H:%M:%SZ"),
        until.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let usage = loop {
        let (status, usage) = get_signed(&url, &cookie);
        assert_eq!(status, 200, "{usage}");
        if usage["rooms"][0]["dark_hours"].as_f64() > Some(0.0) {
            break usage;
        }
        assert!(std::time::Instant::now() < deadline, "{usage}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // 09:00-13:00 and 17:00-19:00 (tentative counts); 21:00-23:00 was called off.
    assert_eq!(
        usage["rooms"][0]["dark_hours"].as_f64(),
        Some(6.0),
        "{usage}"
    );
    gw.stop().await.unwrap();
    let said = reported();
    assert_eq!(said.len(), 1, "{said:#?}");
    assert!(said[0].starts_with("booking test/in-the-dark in coworking falls in a power outage"));
    let (texts, _) = changes(&data);
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("power schedule yasno-3.1 read: 2 window(s)")),
        "{texts:#?}"
    );
}
