//! The building simulator drives the real gateway through a real broker: the firmware's door
//! and sensor nodes, each on its own MQTT connection, with the Centre's people walking through
//! them. The day's members, bookings and devices go in through the command line's own imports.
//! A short run must give plausible decisions (granted and refused, every tap decided once and
//! logged), occupancy that follows the people, and the planned no-show found.

mod support;

use std::time::Duration;

use kombinat::service;
use kombinat::store::{AuditEvent, SledStore, Store};
use kombinat_firmware::mqtt::LinkConfig;
use kombinat_firmware::sim::population::BookingKind;
use kombinat_firmware::sim::{Building, Population, SimClock, SimConfig, World};
use kombinat_protocol::room::Occupancy;
use support::*;

const SEED: u64 = 7;
/// A simulated hour is 90 real seconds: a meeting outlasts the one-minute no-show window.
const SPEED: f64 = 40.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_morning_through_mosquitto() {
    let Some(m) = Mosquitto::start() else { return };
    simulated_morning(&m.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_morning_through_the_embedded_broker() {
    simulated_morning("embedded").await;
}

/// A morning: decisions, occupancy and the planned no-show, through `broker`.
async fn simulated_morning(broker: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The example site, without the grace before bookings (a booking may then start right
    // after the gateway does and still be judged).
    let text = std::fs::read_to_string(site_path()).unwrap().replace(
        "booking_grace_before_min = 15",
        "booking_grace_before_min = 0",
    );
    let site = dir.path().join("site.toml");
    std::fs::write(&site, &text).unwrap();
    let b = Building::parse(&text).unwrap();

    // Start the day 10 simulated minutes (15 real seconds) before the first unattended meeting.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let probe = Population::generate(
        &b,
        SEED,
        SimClock {
            real_start: now(),
            start_min: 0,
            speed: SPEED,
            midnight: None,
        },
    );
    let first = probe
        .bookings
        .iter()
        .filter(|x| x.no_show)
        .map(|x| x.sim_start)
        .fold(f64::MAX, f64::min);
    assert!(first < 24.0 * 60.0, "the day has an unattended meeting");
    // The day starts once everything is in and running (the imports and the start of the
    // gateway take a few seconds in a debug build): nobody moves before.
    let setup_s = 40.0;
    let clock = SimClock {
        real_start: now() + setup_s,
        start_min: (first - 10.0) as u32,
        speed: SPEED,
        midnight: None,
    };
    let pop = Population::generate(&b, SEED, clock);
    let day = dir.path().join("day");
    pop.write_csv(&day, b.timezone).unwrap();

    // Everything goes in as an operator would put it in.
    let s = |p: &str| day.join(p).display().to_string();
    let out = cli(&site, &data, &["import", "members", &s("members.csv")]);
    assert!(out.contains("0 bad rows"), "{out}");
    let out = cli(
        &site,
        &data,
        &["import", "bookings", &s("bookings.csv"), "--source", "sim"],
    );
    assert!(out.contains("0 bad rows"), "{out}");
    for d in &pop.devices {
        let key = d.key.expose_hex().to_string();
        let mut args = vec!["device", "add", &d.id, "--key", &key];
        match (&d.door, &d.room) {
            (Some(door), _) => args.extend(["--kind", "door", "--door", door]),
            (_, Some(room)) => args.extend(["--kind", "sensor", "--room", room]),
            _ => unreachable!(),
        }
        cli(&site, &data, &args);
    }

    know_broker_secret(&data);
    let mut cfg = config(&data, broker);
    cfg.site = site.clone();
    cfg.occupancy.no_show_after_min = 1;
    let gw = service::start(cfg).await.unwrap();
    assert!(gw.ready(Duration::from_secs(20)).await);
    let watch = vec![
        "kombinat/v1/booking/no-show".to_string(),
        "kombinat/v1/room/+/occupancy".to_string(),
    ];
    let mut watcher = DoorNode::connect_as(
        gw.mqtt_addr,
        login("observer"),
        "observer",
        "d-meeting-3",
        key(9),
        &watch,
    )
    .await;

    let sim = SimConfig {
        link: LinkConfig::new("127.0.0.1", gw.mqtt_addr.port()),
        speed: SPEED,
        start_min: clock.start_min,
        seed: SEED,
    };
    let mut world = World::start(sim, &b, &pop, clock).unwrap();
    let ahead = clock.real_start - now();
    assert!(ahead > 0.0, "the setup took longer than {setup_s} s");
    println!("set up with {ahead:.1} s to spare");
    let nodes = world.nodes();
    // The nodes connect.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while world.connected() < nodes {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {nodes} nodes connected",
            world.connected()
        );
        world.step();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Run until the unattended meeting is judged (it starts 15 s in, judged a minute later).
    let expected: Vec<_> = pop
        .bookings
        .iter()
        .filter(|x| x.kind == BookingKind::Meeting && x.sim_start == first)
        .collect();
    let mut no_shows = Vec::new();
    let mut occupied = std::collections::HashMap::new();
    let report = world
        .run(async {
            let deadline = tokio::time::Instant::now()
                + Duration::from_secs(120)
                + Duration::from_secs_f64(ahead);
            while let Ok(Some((topic, payload))) =
                tokio::time::timeout_at(deadline, watcher.rx.recv()).await
            {
                if topic.ends_with("/no-show") {
                    let n: kombinat_protocol::booking::NoShow =
                        serde_json::from_slice(&payload).unwrap();
                    no_shows.push(n.external_id.to_string());
                    if no_shows.len() == expected.iter().filter(|x| x.no_show).count() {
                        // Let the attended meetings be judged too before stopping.
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        break;
                    }
                } else if let Ok(o) = serde_json::from_slice::<Occupancy>(&payload) {
                    let e = occupied.entry(o.room.to_string()).or_insert(0u32);
                    *e = (*e).max(o.count);
                }
            }
        })
        .await;
    println!(
        "simulation: taps {} granted {} denied {} offline {} exits {} trips {} gave up {}; answer p50 {:?} ms, p99 {:?} ms, max {:?} ms",
        report.taps, report.granted, report.denied, report.offline, report.exits, report.trips, report.gave_up,
        report.answer_quantile(0.5), report.answer_quantile(0.99), report.answer_ms.last()
    );
    {
        use std::sync::atomic::Ordering::Relaxed;
        let st = &gw.stats;
        println!(
            "gateway: {} decisions ({} allowed), {} offline entries, {} readings, {} allow-lists, malformed {:?}",
            st.decisions.load(Relaxed),
            st.allowed.load(Relaxed),
            st.offline_ingested.load(Relaxed),
            st.readings.load(Relaxed),
            st.allow_lists.load(Relaxed),
            st.malformed.lock().unwrap()
        );
    }
    println!("no-shows: {no_shows:?}; peak counts: {occupied:?}");

    gw.stop().await.unwrap();
    let store = SledStore::open(&data).unwrap();
    let decisions: Vec<_> = store
        .audit_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.entry.event {
            AuditEvent::Decision { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    let mut reasons = std::collections::BTreeMap::new();
    for r in &decisions {
        *reasons.entry(r.code()).or_insert(0) += 1;
    }
    println!("reasons logged: {reasons:?}");
    // Decisions: plenty, mostly granted, (almost) none left to the nodes alone.
    assert!(report.taps >= 20, "{report:?}");
    assert!(report.granted > report.taps / 2, "{report:?}");
    assert!(
        report.offline * 50 <= report.taps,
        "the gateway answered (almost) every tap in time: {report:?}"
    );
    // The unattended meeting(s) of that hour, and only they, were no-shows.
    let mut want: Vec<String> = expected
        .iter()
        .filter(|x| x.no_show)
        .map(|x| x.external_id.clone())
        .collect();
    want.sort();
    no_shows.sort();
    assert_eq!(no_shows, want);
    // Occupancy followed the people into the coworking floor.
    assert!(
        occupied.get("coworking").copied().unwrap_or(0) > 0,
        "{occupied:?}"
    );

    let allowed = decisions.iter().filter(|r| r.is_allow()).count() as u64;
    // Every tap the nodes made was decided and logged once (a tap still in flight at the stop
    // may be logged without its answer reaching the node).
    assert!(
        decisions.len() as u64 >= report.granted + report.denied
            && decisions.len() as u64 <= report.taps,
        "{} logged, {report:?}",
        decisions.len()
    );
    assert!(
        allowed >= report.granted,
        "{allowed} allowed logged, {report:?}"
    );
}
