//! Tap → decision round trip through a real broker, against the physical limit of a durable
//! decision: a bare echo round trip through the same broker plus one durable audit append.
//!
//! For the embedded broker (rumqttd) and for mosquitto (started here on a free port with
//! `set_tcp_nodelay true`; skipped with a note if it is not installed), while a second client
//! publishes 10,000 sensor readings per second beside it:
//! - `tap`: a door node client signs a tap, the gateway verifies, decides, appends the decision to
//!   the audit log durably and publishes the signed decision; the client waits for it;
//! - `echo`: the same client against a trivial responder that answers each message at once;
//! - `append`: the store's durable append of one audit record, alone;
//! - `alert_input`: the door node's signed dry-contact message (a siren relay closing, then
//!   opening) to the shelter door's node told to release (then back to normal): the input's
//!   counter stored, the site mode switched and logged, the command signed and published.
//!
//! Prints the `bench:` lines of shared/design/BENCH.md. `--quick` (and `cargo test`) runs a few
//! hundred taps so CI proves it still works. Nothing here asserts a time.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use kombinat::domain::{CardId, Credential, DeviceId, DeviceKey, DoorId};
use kombinat::store::{Actor, AuditEntry, SledStore, Store};
use kombinat_protocol::auth::Signed;
use kombinat_protocol::door::{self, DoorTopic, VERSION};
use kombinat_protocol::Topic;
use rumqttc::QoS;

mod common;

use common::{client, config, logs, mosquitto, prepare, PREFIX};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn micros(mut v: Vec<Duration>) -> Vec<f64> {
    let mut us: Vec<f64> = v.drain(..).map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    us
}

/// Small readings in bursts of `per_tick` every 10 ms (100: 10,000 a second), until dropped.
async fn load(port: u16, per_tick: usize) -> tokio::task::JoinHandle<()> {
    let (c, _rx) = client(port, "bench-load", &[]).await;
    tokio::spawn(async move {
        let topic = format!("{PREFIX}/sensor/sensor-load/reading");
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        // A sensor's counter only grows (a repeated one is refused): each load starts past
        // every earlier one, at the time in microseconds.
        let mut n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        loop {
            tick.tick().await;
            for _ in 0..per_tick {
                n += 1;
                let p = format!(
                    r#"{{"v":1,"device":"sensor-load","counter":{n},"reading":{{"co2":{{"ppm":{}}}}}}}"#,
                    400 + n % 800
                );
                if c.try_publish(topic.clone(), QoS::AtMostOnce, false, p)
                    .is_err()
                {
                    break;
                }
            }
        }
    })
}

struct Figures {
    /// Dry contact to the shelter door's command, each toggle.
    alert: Vec<f64>,
    tap: Vec<f64>,
    echo: Vec<f64>,
}

/// The siren's dry contact toggled `n` times on the cowork door's node (an `[[alert_inputs]]`
/// node): each closing until the shelter door's node is told `release`, each opening until it
/// is told `normal`.
async fn measure_alert(port: u16, key: &DeviceKey, n: usize) -> Vec<Duration> {
    let device = DeviceId::parse("door-cowork").unwrap();
    let shelter = DoorId::parse("d-shelter").unwrap();
    let (siren, mut commands) = client(
        port,
        "bench-siren",
        &[Topic::Door(shelter, DoorTopic::Command).to_string(PREFIX)],
    )
    .await;
    let topic = Topic::AlertInput(device).to_string(PREFIX);
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 4 {
        let active = i % 2 == 0;
        let mut a = kombinat_protocol::device::AlertInput {
            v: VERSION,
            device,
            // Past every tap's counter.
            counter: 1_000_000 + i as u64,
            active,
            mac: Default::default(),
        };
        a.sign(key);
        let t0 = Instant::now();
        siren
            .publish(
                topic.clone(),
                QoS::AtLeastOnce,
                false,
                serde_json::to_vec(&a).unwrap(),
            )
            .await
            .unwrap();
        // The shelter door's next command that matches (a release may be told again).
        loop {
            let p = tokio::time::timeout(Duration::from_secs(10), commands.recv())
                .await
                .expect("the shelter door told within 10 s")
                .expect("connected");
            let c: door::Command = serde_json::from_slice(&p).unwrap();
            let want = if active {
                door::Action::Release
            } else {
                door::Action::Normal
            };
            if c.action == want {
                break;
            }
        }
        if i >= 4 {
            out.push(t0.elapsed());
        }
    }
    out
}

async fn measure(port: u16, data: &Path, key: &DeviceKey, taps: usize, per_tick: usize) -> Figures {
    let door = DoorId::parse("d-cowork-in").unwrap();
    let device = DeviceId::parse("door-cowork").unwrap();
    let load = load(port, per_tick).await;
    // Warm up, then the echo baseline through the same broker, under the same load.
    let (responder, mut asks) = client(port, "bench-echo", &["bench/echo/ask".into()]).await;
    tokio::spawn(async move {
        while let Some(p) = asks.recv().await {
            if responder
                .publish("bench/echo/answer", QoS::AtLeastOnce, false, p)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let (asker, mut answers) = client(port, "bench-asker", &["bench/echo/answer".into()]).await;
    let mut echo = Vec::with_capacity(taps);
    for i in 0..taps + 100 {
        let t0 = Instant::now();
        asker
            .publish("bench/echo/ask", QoS::AtLeastOnce, false, vec![b'x'; 160])
            .await
            .unwrap();
        answers.recv().await.unwrap();
        if i >= 100 {
            echo.push(t0.elapsed());
        }
    }
    // The same client shape as a door node against the gateway.
    let (node, mut decisions) = client(
        port,
        "bench-door",
        &[Topic::Door(door, DoorTopic::Decision).to_string(PREFIX)],
    )
    .await;
    let topic = Topic::Door(door, DoorTopic::Tap).to_string(PREFIX);
    let mut tap = Vec::with_capacity(taps);
    let _ = data;
    for i in 0..taps + 100 {
        let mut t = door::Tap {
            v: VERSION,
            door,
            device,
            counter: i as u64 + 1,
            credential: Credential::Card(CardId::parse("04A1B2C3").unwrap()),
            mac: Default::default(),
        };
        t.sign(key);
        let payload = serde_json::to_vec(&t).unwrap();
        let t0 = Instant::now();
        node.publish(topic.clone(), QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), decisions.recv())
            .await
            .expect("a decision within 10 s")
            .expect("connected");
        let d: door::Decision = serde_json::from_slice(&answer).unwrap();
        if i >= 100 {
            tap.push(t0.elapsed());
        }
        assert!(d.allow && d.tap == t.counter && d.verify(key));
    }
    let alert = measure_alert(port, key, (taps / 25).max(20)).await;
    load.abort();
    Figures {
        alert: micros(alert),
        tap: micros(tap),
        echo: micros(echo),
    }
}

fn append_baseline(n: usize) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let mut v = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let e = AuditEntry::change(
            Utc::now(),
            Actor::System,
            format!("decision {i} of the baseline"),
        );
        let t0 = Instant::now();
        store.append_audit(&[e]).unwrap();
        if i >= 100 {
            v.push(t0.elapsed());
        }
    }
    micros(v)
}

fn report(name: &str, f: &Figures, append: &[f64]) {
    let (t50, t99) = (percentile(&f.tap, 0.5), percentile(&f.tap, 0.99));
    let (e50, e99) = (percentile(&f.echo, 0.5), percentile(&f.echo, 0.99));
    let (a50, a99) = (percentile(append, 0.5), percentile(append, 0.99));
    println!("bench: tap_p50_{name} {t50:.0} us");
    println!("bench: tap_p99_{name} {t99:.0} us");
    println!("bench: echo_p50_{name} {e50:.0} us");
    println!("bench: echo_p99_{name} {e99:.0} us");
    println!("bench: tap_p50_ratio_{name} {:.2} ratio", t50 / (e50 + a50));
    println!("bench: tap_p99_ratio_{name} {:.2} ratio", t99 / (e99 + a99));
    let (i50, i99) = (percentile(&f.alert, 0.5), percentile(&f.alert, 0.99));
    println!("bench: input_to_release_p50_{name} {i50:.0} us");
    println!("bench: input_to_release_p99_{name} {i99:.0} us");
    println!(
        "bench: input_to_release_p50_ratio_{name} {:.2} ratio",
        i50 / (e50 + a50)
    );
}

/// The shelter door's node, and the cowork door's node's dry contact as an alert input.
fn prepare_siren(data: &Path, config: &mut kombinat::config::Config) {
    let site_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.example.toml");
    let site = std::sync::Arc::new(kombinat::site_file::load(&site_path).unwrap());
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(SledStore::open(data).unwrap());
    let now = Utc::now();
    let mut g = kombinat::registry::Registry::open(site, store, now).unwrap();
    g.add_device(
        kombinat::domain::Device {
            id: DeviceId::parse("door-shelter").unwrap(),
            kind: kombinat::domain::DeviceKind::Door,
            door: Some(DoorId::parse("d-shelter").unwrap()),
            room: None,
            key: DeviceKey::from_bytes([43; 32]),
            added_at: now,
        },
        Actor::Cli("bench".into()),
        now,
    )
    .unwrap();
    config.alert_inputs = vec![DeviceId::parse("door-cowork").unwrap()];
}

fn main() {
    logs();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let taps = if quick { 300 } else { 10_000 };
    // The quick run (CI, often a debug build) proves the benchmark works; a debug build cannot
    // take 10,000 readings a second, so it gets a tenth of that.
    let per_tick = if quick { 10 } else { 100 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = DeviceKey::from_bytes([42; 32]);

    let append = append_baseline(taps);
    println!("bench: append_p50 {:.0} us", percentile(&append, 0.5));
    println!("bench: append_p99 {:.0} us", percentile(&append, 0.99));

    // Embedded broker.
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path(), &key);
    let mut cfg = config(dir.path(), "embedded");
    prepare_siren(dir.path(), &mut cfg);
    let f = rt.block_on(async {
        let gw = kombinat::service::start(cfg).await.unwrap();
        assert!(gw.ready(Duration::from_secs(10)).await);
        let f = measure(gw.mqtt_addr.port(), dir.path(), &key, taps, per_tick).await;
        let readings = gw.stats.readings.load(std::sync::atomic::Ordering::Relaxed);
        println!("embedded: {taps} taps; readings taken beside them: {readings}");
        gw.stop().await.unwrap();
        f
    });
    report("embedded", &f, &append);

    // Mosquitto.
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    match mosquitto(port, dir.path()) {
        None => println!("mosquitto: not installed, skipped (apt-get install mosquitto)"),
        Some(mut child) => {
            let data = dir.path().join("data");
            prepare(&data, &key);
            let mut cfg = config(&data, &format!("mqtt://127.0.0.1:{port}"));
            prepare_siren(&data, &mut cfg);
            let f = rt.block_on(async {
                let gw = kombinat::service::start(cfg).await.unwrap();
                assert!(gw.ready(Duration::from_secs(10)).await);
                let f = measure(port, &data, &key, taps, per_tick).await;
                let readings = gw.stats.readings.load(std::sync::atomic::Ordering::Relaxed);
                println!("mosquitto: {taps} taps; readings taken beside them: {readings}");
                let n = gw.stats.batches.load(std::sync::atomic::Ordering::Relaxed).max(1);
                let per = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed) / n / 1000;
                println!("mosquitto: per batch with decisions: write {} us, send {} us; take {} us in all", per(&gw.stats.write_ns), per(&gw.stats.send_ns), gw.stats.take_ns.load(std::sync::atomic::Ordering::Relaxed) / 1000);
                gw.stop().await.unwrap();
                f
            });
            report("mosquitto", &f, &append);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
