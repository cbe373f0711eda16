//! `soak`: the gateway at campus scale through mosquitto for a long while: 1,000 doors (the
//! Centre's 41 and 959 leased offices more along its first-floor corridor), 10,000 sensor nodes
//! (ten in each room), 100,000 members with cards, plans and an office each (about a hundred to
//! an office). `kombinat run` is its own process; this program plays
//! every door and sensor node over a few MQTT connections: signed taps (20 a second across the
//! doors, random members, most of them refused: it is not their office) and readings (every sensor
//! every 30 s, 333 a second). Each minute it prints the decision round trip (p50, p99, from the
//! tap's publish to its decision's arrival), and the gateway's resident memory; at the end
//! `bench: soak_rss_growth` (from the end of the first minute to the end), the p99 of the first
//! and last minutes, taps left unanswered and messages the gateway refused (its log).
//!
//! `scripts/bench soak` runs 30 minutes; `-- --minutes N` another length; `--quick` (CI) one
//! minute, with the memory growth taken from its second 20 s to its end.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{free_addr, health, mosquitto, status_mb, PREFIX};
use kombinat::domain::{
    CardId, Credential, CredentialRecord, Device, DeviceId, DeviceKey, DeviceKind, DoorId, Member,
    MemberId, RoomId,
};
use kombinat::store::{Actor, AuditEntry, Change, SledStore, Store};
use kombinat_protocol::auth::Signed;
use kombinat_protocol::door::{Decision, Tap, VERSION};
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};

const DOORS: usize = 1_000;
const SENSORS_PER_ROOM: usize = 10;
const MEMBERS: usize = 100_000;
/// Taps a second across the doors (`--taps-per-s N`).
const TAPS_PER_S: u64 = 20;
/// Each sensor reads every this many seconds (`--reading-every-s N`; 0: no readings).
const READING_EVERY_S: u64 = 30;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} N")))
        .unwrap_or(default)
}

/// The example site with leased offices added along the first-floor corridor up to `doors`
/// doors (office `campus-N` leased to `org-N`); its path, the door ids and the offices added.
fn campus_site(dir: &Path, doors: usize) -> (PathBuf, Vec<String>, usize) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.example.toml");
    let mut text = std::fs::read_to_string(example).unwrap();
    let site = kombinat::site_file::parse(&text).unwrap();
    let mut ids: Vec<String> = site.doors.iter().map(|d| d.id.to_string()).collect();
    let mut i = 0;
    while ids.len() < doors {
        i += 1;
        let x = (i % 100) as f32 * 3.0;
        let y = 30.0 + (i / 100) as f32 * 4.0;
        text.push_str(&format!(
            "\n[[rooms]]\nid = \"campus-{i:04}\"\nname = \"Campus office {i}\"\nfloor = \"f1\"\nzones = [\"offices\"]\nkind = \"office\"\nrect = [{x:.1}, {y:.1}, 3.0, 4.0]\n\n[[doors]]\nid = \"d-campus-{i:04}\"\nname = \"Campus office {i}\"\nfrom = \"corridor-f1\"\ninto = \"campus-{i:04}\"\n\n[[leases]]\nid = \"lease-campus-{i:04}\"\norganisation = \"org-{i:04}\"\nroom = \"campus-{i:04}\"\nfrom = 2025-12-31T22:00:00Z\n"
        ));
        ids.push(format!("d-campus-{i:04}"));
    }
    let path = dir.join("campus.toml");
    std::fs::write(&path, text).unwrap();
    (path, ids, i)
}

fn key(kind: u8, i: usize) -> DeviceKey {
    let mut k = [kind; 32];
    k[..8].copy_from_slice(&(i as u64).to_le_bytes());
    DeviceKey::from_bytes(k)
}

fn door_device(i: usize) -> String {
    format!("dn-{i:04}")
}

fn sensor_device(i: usize) -> String {
    format!("sn-{i:05}")
}

/// Members with cards and plans, a door node per door and the sensor nodes, written straight
/// into the store in large transactions (what imports would leave).
fn fill(
    data: &Path,
    site: &kombinat::domain::Site,
    doors: &[String],
    offices: usize,
    sensors: usize,
) {
    let store = SledStore::open(data).unwrap();
    let now = Utc::now();
    let who = AuditEntry::change(now, Actor::Cli("soak".into()), "soak data");
    let plans = ["coworking-resident", "coworking-day", "lab-member"];
    for chunk in (0..MEMBERS).collect::<Vec<_>>().chunks(2_000) {
        let mut changes = Vec::with_capacity(chunk.len() * 2);
        for &i in chunk {
            let id = MemberId::parse(&format!("m{i}")).unwrap();
            let mut m = Member::new(id, format!("Member {i}"));
            m.plan = Some(plans[i % plans.len()].parse().unwrap());
            // A hundred or so work in each office.
            m.organisation = Some(format!("org-{:04}", 1 + i % offices).parse().unwrap());
            changes.push(Change::Member(m));
            changes.push(Change::Credential(CredentialRecord {
                credential: Credential::Card(CardId::parse(&format!("05{i:08X}")).unwrap()),
                member: id,
                issued_at: now,
                revoked_at: None,
            }));
        }
        store.commit(&changes, &who).unwrap();
    }
    let rooms: Vec<RoomId> = site.rooms.iter().map(|r| r.id).collect();
    let mut devices: Vec<Change> = doors
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Change::Device(Device {
                id: DeviceId::parse(&door_device(i)).unwrap(),
                kind: DeviceKind::Door,
                door: Some(DoorId::parse(d).unwrap()),
                room: None,
                key: key(0xd0, i),
                added_at: now,
            })
        })
        .collect();
    devices.extend((0..sensors).map(|i| {
        Change::Device(Device {
            id: DeviceId::parse(&sensor_device(i)).unwrap(),
            kind: DeviceKind::Sensor,
            door: None,
            room: Some(rooms[i % rooms.len()]),
            key: key(0x5e, i),
            added_at: now,
        })
    }));
    for chunk in devices.chunks(2_000) {
        store.commit(chunk, &who).unwrap();
    }
}

async fn client(port: u16, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut o = MqttOptions::new(format!("{id}-{}", std::process::id()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (c, mut ev) = AsyncClient::new(o, 10_000);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    ev.set_network_options(net);
    (c, ev)
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Taps sent and not yet answered: (door index, counter) → when sent.
type InFlight = Arc<Mutex<HashMap<(usize, u64), Instant>>>;

fn main() {
    common::logs();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let minutes = arg(&args, "--minutes", if quick { 1 } else { 30 });
    let taps_per_s = arg(&args, "--taps-per-s", TAPS_PER_S).max(1);
    let reading_every_s = arg(&args, "--reading-every-s", READING_EVERY_S);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (site_path, doors, offices) = campus_site(dir.path(), DOORS);
    let site = kombinat::site_file::load(&site_path).unwrap();
    let sensors = site.rooms.len() * SENSORS_PER_ROOM;
    let filled = Instant::now();
    fill(&data, &site, &doors, offices, sensors);
    eprintln!(
        "soak: {} doors, {sensors} sensors in {} rooms, {MEMBERS} members written in {:.1} s",
        doors.len(),
        site.rooms.len(),
        filled.elapsed().as_secs_f64()
    );

    let port = free_addr().port();
    let Some(mut broker) = mosquitto(port, dir.path()) else {
        if std::env::var_os("CI").is_some() {
            panic!("mosquitto is not installed; CI must install it");
        }
        eprintln!("SKIPPED: soak needs mosquitto (apt-get install mosquitto)");
        return;
    };
    let http = free_addr();
    let config = dir.path().join("kombinat.toml");
    std::fs::write(
        &config,
        format!(
            "site = {:?}\ndata = {:?}\n[mqtt]\nbroker = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"soak-gateway\"\n[http]\nlisten = \"{http}\"\n",
            site_path.display().to_string(),
            data.display().to_string()
        ),
    )
    .unwrap();
    let log = dir.path().join("gateway.log");
    // `KOMBINAT_SOAK_WRAPPER=heaptrack` (say) runs the gateway under a profiler.
    let mut gateway = match std::env::var("KOMBINAT_SOAK_WRAPPER") {
        Ok(w) => {
            let mut c = Command::new(w);
            c.arg(env!("CARGO_BIN_EXE_kombinat"));
            c
        }
        Err(_) => Command::new(env!("CARGO_BIN_EXE_kombinat")),
    };
    let mut gateway = gateway
        .args(["run", "--config"])
        .arg(&config)
        .env(
            "RUST_LOG",
            std::env::var("KOMBINAT_SOAK_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while health(http) != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the gateway was not ready within five minutes"
        );
        if let Some(s) = gateway.try_wait().unwrap() {
            panic!("the gateway exited: {s}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "soak: the gateway ready in {:.1} s, {:.0} MB",
        started.elapsed().as_secs_f64(),
        status_mb(gateway.id(), "VmRSS:")
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pid = gateway.id();
    let (minutes_seen, sent, unanswered) = rt.block_on(async move {
        let in_flight: InFlight = Arc::default();
        // The decisions, timed against their taps.
        let (listener, mut ev) = client(port, "soak-listen").await;
        listener
            .subscribe(format!("{PREFIX}/door/+/decision"), QoS::AtMostOnce)
            .await
            .unwrap();
        let index: Arc<HashMap<String, usize>> = Arc::new(
            doors
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, d)| (d, i))
                .collect(),
        );
        // (when the tap was sent, seconds from the start of the load; round trip, ms)
        let latencies = Arc::new(Mutex::new(Vec::<(f64, f64)>::new()));
        let load_start = Instant::now();
        eprintln!("soak: load starts at {}", Utc::now().format("%H:%M:%S%.3f"));
        {
            let (in_flight, latencies, index) =
                (in_flight.clone(), latencies.clone(), index.clone());
            tokio::spawn(async move {
                loop {
                    match ev.poll().await {
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let Ok(d) = serde_json::from_slice::<Decision>(&p.payload) else {
                                continue;
                            };
                            let Some(&i) = index.get(d.door.as_str()) else {
                                continue;
                            };
                            if let Some(at) = in_flight.lock().unwrap().remove(&(i, d.tap)) {
                                latencies.lock().unwrap().push((
                                    at.duration_since(load_start).as_secs_f64(),
                                    at.elapsed().as_secs_f64() * 1e3,
                                ));
                            }
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The door nodes: signed taps, paced.
        let (taps, mut ev) = client(port, "soak-doors").await;
        tokio::spawn(async move {
            loop {
                if ev.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        let base = (Utc::now().timestamp_millis() as u64) << 10;
        let door_ids: Vec<(DoorId, DeviceId, DeviceKey)> = doors
            .iter()
            .enumerate()
            .map(|(i, d)| {
                (
                    DoorId::parse(d).unwrap(),
                    DeviceId::parse(&door_device(i)).unwrap(),
                    key(0xd0, i),
                )
            })
            .collect();
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        {
            let (in_flight, sent) = (in_flight.clone(), sent.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / taps_per_s));
                let mut counters = vec![base; door_ids.len()];
                let mut rng = 0x9e37_79b9_7f4a_7c15u64;
                loop {
                    tick.tick().await;
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let i = (rng % door_ids.len() as u64) as usize;
                    let member = ((rng >> 20) % MEMBERS as u64) as usize;
                    counters[i] += 1;
                    let (door, device, k) = &door_ids[i];
                    let mut t = Tap {
                        v: VERSION,
                        door: *door,
                        device: *device,
                        counter: counters[i],
                        credential: Credential::Card(
                            CardId::parse(&format!("05{member:08X}")).unwrap(),
                        ),
                        mac: Default::default(),
                    };
                    t.sign(k);
                    in_flight
                        .lock()
                        .unwrap()
                        .insert((i, t.counter), Instant::now());
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let topic = format!("{PREFIX}/door/{door}/tap");
                    // A tap the client could not even queue never left: not the gateway's.
                    if taps
                        .try_publish(
                            topic,
                            QoS::AtLeastOnce,
                            false,
                            serde_json::to_vec(&t).unwrap(),
                        )
                        .is_err()
                    {
                        in_flight.lock().unwrap().remove(&(i, t.counter));
                        sent.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
        // The sensor nodes: every one every READING_EVERY_S, spread evenly.
        let (readings, mut ev) = client(port, "soak-sensors").await;
        tokio::spawn(async move {
            loop {
                if ev.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        tokio::spawn(async move {
            if reading_every_s == 0 {
                return;
            }
            let per_tick = (sensors as u64 / reading_every_s / 10).max(1) as usize;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut n = 0usize;
            let mut counter = base;
            loop {
                tick.tick().await;
                for _ in 0..per_tick {
                    // Per reading: a sensor's counter only grows (a repeated one is refused).
                    counter += 1;
                    let s = n % sensors;
                    n += 1;
                    let reading = match n % 3 {
                        0 => format!(r#"{{"co2":{{"ppm":{}}}}}"#, 420 + n % 600),
                        1 => r#"{"motion":{"active":true}}"#.to_string(),
                        _ => r#"{"counter":{"in":1,"out":1}}"#.to_string(),
                    };
                    let payload = format!(
                        r#"{{"v":1,"device":"{}","counter":{counter},"reading":{reading}}}"#,
                        sensor_device(s)
                    );
                    let topic = format!("{PREFIX}/sensor/{}/reading", sensor_device(s));
                    let _ = readings.try_publish(topic, QoS::AtMostOnce, false, payload);
                }
            }
        });
        // Minute by minute: the round trip and the memory.
        let mut seen = Vec::new();
        let span = if quick { 20 } else { 60 };
        let rounds = minutes * 60 / span;
        for m in 1..=rounds {
            tokio::time::sleep(Duration::from_secs(span)).await;
            let timed = std::mem::take(&mut *latencies.lock().unwrap());
            let rss = status_mb(pid, "VmRSS:");
            let mut l: Vec<f64> = timed.iter().map(|t| t.1).collect();
            let (p50, p99) = (quantile(&mut l, 0.5), quantile(&mut l, 0.99));
            // When the slow ones were sent: a stall shows as one stretch.
            let slow: Vec<f64> = timed.iter().filter(|t| t.1 > 100.0).map(|t| t.0).collect();
            let stretch = match (slow.first(), slow.last()) {
                (Some(a), Some(b)) => format!(", {} over 100 ms sent {a:.1}-{b:.1} s", slow.len()),
                _ => String::new(),
            };
            println!(
                "soak {} s: {} decisions, p50 {p50:.2} ms, p99 {p99:.2} ms, gateway {rss:.1} MB{stretch}",
                m * span,
                l.len()
            );
            seen.push((l.len(), p99, rss));
        }
        // Taps older than five seconds never answered.
        let late = in_flight
            .lock()
            .unwrap()
            .values()
            .filter(|t| t.elapsed() > Duration::from_secs(5))
            .count();
        (seen, sent.load(std::sync::atomic::Ordering::Relaxed), late)
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    let healthy = health(http) == 200;
    let _ = Command::new("kill")
        .args(["-TERM", &gateway.id().to_string()])
        .status();
    let stopped = gateway.wait().unwrap();
    let _ = broker.kill();
    let _ = broker.wait();
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    let refused = said
        .lines()
        .filter(|l| l.contains("refused a message"))
        .count();
    // With `KOMBINAT_SOAK_LOG=warn,kombinat=info`: what each allow-list round cost the core.
    for l in said
        .lines()
        .filter(|l| l.contains("allow-list round taken up"))
    {
        eprintln!("soak: {}", l.trim());
    }
    if unanswered > 0 || refused > 0 || !healthy {
        eprintln!("soak: the gateway's log (but its repeats, last 40 lines):");
        let lines: Vec<&str> = said
            .lines()
            .filter(|l| !l.contains("cannot acknowledge") && !l.contains("cannot publish"))
            .collect();
        for l in &lines[lines.len().saturating_sub(40)..] {
            eprintln!("  {l}");
        }
    }
    let first = if quick { 1 } else { 0 };
    let start_rss = minutes_seen[first].2;
    let end_rss = minutes_seen.last().unwrap().2;
    let growth = (end_rss - start_rss) / start_rss * 100.0;
    let p99s: Vec<f64> = minutes_seen.iter().map(|m| m.1).collect();
    let answered: usize = minutes_seen.iter().map(|m| m.0).sum();
    println!("bench: soak_rss_start {start_rss:.1} MB");
    println!("bench: soak_rss_end {end_rss:.1} MB");
    println!("bench: soak_rss_growth {growth:.2} %");
    println!("bench: soak_p99_first {:.2} ms", p99s[first]);
    println!("bench: soak_p99_last {:.2} ms", p99s[p99s.len() - 1]);
    println!(
        "bench: soak_p99_max {:.2} ms",
        p99s.iter().copied().fold(0.0, f64::max)
    );
    println!("bench: soak_taps_sent {sent}");
    println!("bench: soak_taps_answered {answered}");
    println!("bench: soak_taps_unanswered {unanswered}");
    println!("bench: soak_messages_refused {refused}");
    assert!(healthy, "the gateway still healthy at the end");
    assert!(stopped.success(), "the gateway stopped cleanly: {stopped}");
    assert_eq!(unanswered, 0, "every tap answered");
    assert_eq!(refused, 0, "no message of the load refused");
}
