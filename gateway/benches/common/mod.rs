//! What the broker benchmarks share: an MQTT client with TCP_NODELAY, a prepared data
//! directory (a staff card, a door node, a sensor node), a mosquitto on a free port, a config.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kombinat::config::Config;
use kombinat::domain::{
    CardId, Credential, Device, DeviceId, DeviceKey, DeviceKind, DoorId, Member, MemberId, Role,
};
use kombinat::registry::Registry;
use kombinat::store::{Actor, SledStore, Store};
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::sync::mpsc;

pub const PREFIX: &str = "kombinat/v1";

/// Logs to stderr, filtered as the `kombinat` binary does unless `RUST_LOG` says otherwise:
/// rumqttd's per-message spans would otherwise cost the embedded broker most of its time.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// A client subscribed to `subscribe`, its publishes delivered on the channel.
pub async fn client(
    port: u16,
    id: &str,
    subscribe: &[String],
) -> (AsyncClient, mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    o.set_inflight(100);
    // Its account on the embedded broker (see `bench_account`); a broker without accounts
    // ignores it.
    o.set_credentials(id, BENCH_PASSWORD);
    let (c, mut ev) = AsyncClient::new(o, 10_000);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    ev.set_network_options(net);
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let subs = subscribe.to_vec();
    let c2 = c.clone();
    tokio::spawn(async move {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for s in &subs {
                        let _ = c2.subscribe(s.clone(), QoS::AtLeastOnce).await;
                    }
                    if subs.is_empty() {
                        let _ = ready_tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send(p.payload.to_vec()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    for _ in 0..subscribe.len().max(1) {
        let _ = tokio::time::timeout(Duration::from_secs(10), ready.recv()).await;
    }
    (c, rx)
}

/// The sensor nodes [`prepare`] registers in the coworking room.
pub const SENSORS: [&str; 2] = ["sensor-load", "sensor-load-2"];

/// The example site with a staff card (04A1B2C3), the door node `door-cowork` on
/// `d-cowork-in` (key `key`) and the sensor nodes [`SENSORS`] in the coworking room.
pub fn prepare(dir: &Path, key: &DeviceKey) {
    let site_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.example.toml");
    let site = Arc::new(kombinat::site_file::load(&site_path).unwrap_or_else(|e| panic!("{e}")));
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).unwrap());
    let now = Utc::now();
    let mut g = Registry::open(site, store, now).unwrap();
    let who = Actor::Cli("bench".into());
    let mut m = Member::new(MemberId::parse("marta").unwrap(), "Marta");
    m.roles = vec![Role::Staff];
    g.add_member(m, who.clone(), now).unwrap();
    g.add_credential(
        MemberId::parse("marta").unwrap(),
        Credential::Card(CardId::parse("04A1B2C3").unwrap()),
        who.clone(),
        now,
    )
    .unwrap();
    for id in SENSORS {
        g.add_device(
            Device {
                id: DeviceId::parse(id).unwrap(),
                kind: DeviceKind::Sensor,
                door: None,
                room: Some(kombinat::domain::RoomId::parse("coworking").unwrap()),
                key: DeviceKey::from_bytes([7; 32]),
                added_at: now,
            },
            who.clone(),
            now,
        )
        .unwrap();
    }
    g.add_device(
        Device {
            id: DeviceId::parse("door-cowork").unwrap(),
            kind: DeviceKind::Door,
            door: Some(DoorId::parse("d-cowork-in").unwrap()),
            room: None,
            key: key.clone(),
            added_at: now,
        },
        who,
        now,
    )
    .unwrap();
}

/// A mosquitto with `set_tcp_nodelay true` on `port`, or `None` if it is not installed.
pub fn mosquitto(port: u16, dir: &Path) -> Option<Child> {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nmax_queued_messages 1000000\n")).ok()?;
    let bin = ["mosquitto", "/usr/sbin/mosquitto"].into_iter().find(|b| {
        Command::new(b)
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// The password of the benchmarks' own clients' accounts on the embedded broker.
pub const BENCH_PASSWORD: &str = "a-benchmark-client-password";

/// Gives the benchmark's client `id` an account on the embedded broker that reads and writes
/// everything (as a tool on the Pi would be given one in `[[mqtt.accounts]]`).
pub fn bench_account(config: &mut Config, id: &str) {
    config.mqtt.accounts.push(kombinat::config::BrokerAccount {
        user: id.to_string(),
        password: BENCH_PASSWORD.to_string(),
        write: vec!["#".into()],
        read: vec!["#".into()],
    });
}

/// The service configuration for `broker`, with accounts on the embedded broker for the
/// benchmarks' clients `bench-load`, `bench-echo`, `bench-asker`, `bench-door` and `bench-siren`.
pub fn config(data: &Path, broker: &str) -> Config {
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.example.toml");
    let mut config = Config::parse(
        &format!("site = {site:?}\ndata = {data:?}\n[mqtt]\nbroker = \"{broker}\"\nlisten = \"127.0.0.1:0\"\nclient_id = \"bench-gateway\"\n"),
        Path::new("/"),
    )
    .unwrap();
    config.clock_check = kombinat::clock_sync::ClockCheck::None;
    for id in [
        "bench-load",
        "bench-echo",
        "bench-asker",
        "bench-door",
        "bench-siren",
    ] {
        bench_account(&mut config, id);
    }
    config
}

pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `/health`'s status, or 0 when nothing answers yet.
pub fn health(addr: std::net::SocketAddr) -> u16 {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return 0;
    }
    let mut head = [0u8; 12];
    if s.read_exact(&mut head).is_err() {
        return 0;
    }
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A line of `/proc/<pid>/status` in MB.
pub fn status_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
