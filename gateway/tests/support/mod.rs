//! Shared fixtures for the integration tests: a prepared data directory, a mosquitto the test
//! starts itself, and a door node played by a rumqttc client.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use kombinat::config::Config;
use kombinat::domain::{
    CardId, Credential, Device, DeviceId, DeviceKey, DeviceKind, DoorId, Member, MemberId, Role,
};
use kombinat::gateway::Gateway;
use kombinat::store::{Actor, SledStore, Store};
use kombinat_protocol::auth::Signed;
use kombinat_protocol::door::{self, DoorTopic, VERSION};
use kombinat_protocol::Topic;
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::sync::mpsc;

pub const PREFIX: &str = "kombinat/v1";
pub const STAFF_CARD: &str = "04A1B2C3";
pub const NOBODY_CARD: &str = "04D4E5F6";

pub fn site_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.example.toml")
}

pub fn key(n: u8) -> DeviceKey {
    DeviceKey::from_bytes([n; 32])
}

pub fn card(s: &str) -> Credential {
    Credential::Card(CardId::parse(s).unwrap())
}

/// A data directory with a staff member, a member without rights, and two door nodes:
/// `door-cowork` (key 1) on `d-cowork-in` and `door-meeting` (key 2) on `d-meeting-1`.
pub fn prepare(dir: &Path) {
    let site = Arc::new(kombinat::site_file::load(&site_path()).unwrap());
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).unwrap());
    let now = Utc::now();
    let mut g = Gateway::open(site, store, now).unwrap();
    let who = Actor::Cli("test".into());
    let mut staff = Member::new(MemberId::parse("marta").unwrap(), "Marta (staff)");
    staff.roles = vec![Role::Staff];
    g.add_member(staff, who.clone(), now).unwrap();
    g.add_member(
        Member::new(MemberId::parse("ivan").unwrap(), "Ivan"),
        who.clone(),
        now,
    )
    .unwrap();
    g.add_credential(
        MemberId::parse("marta").unwrap(),
        card(STAFF_CARD),
        who.clone(),
        now,
    )
    .unwrap();
    g.add_credential(
        MemberId::parse("ivan").unwrap(),
        card(NOBODY_CARD),
        who.clone(),
        now,
    )
    .unwrap();
    for (id, door, k) in [
        ("door-cowork", "d-cowork-in", 1),
        ("door-meeting", "d-meeting-1", 2),
    ] {
        g.add_device(
            Device {
                id: DeviceId::parse(id).unwrap(),
                kind: DeviceKind::Door,
                door: Some(DoorId::parse(door).unwrap()),
                room: None,
                key: key(k),
                added_at: now,
            },
            who.clone(),
            now,
        )
        .unwrap();
    }
    g.add_device(
        Device {
            id: DeviceId::parse("sensor-meeting").unwrap(),
            kind: DeviceKind::Sensor,
            door: None,
            room: Some(kombinat::domain::RoomId::parse("meeting-1").unwrap()),
            key: key(4),
            added_at: now,
        },
        who.clone(),
        now,
    )
    .unwrap();
    g.upsert_booking(
        kombinat::domain::Booking {
            key: kombinat::domain::BookingKey {
                source: kombinat::domain::SourceId::parse("test").unwrap(),
                external_id: kombinat::domain::ExternalId::parse("ivan-now").unwrap(),
            },
            room: kombinat::domain::RoomId::parse("meeting-1").unwrap(),
            kind: kombinat::domain::BookingKind::Meeting,
            title: "Ivan's meeting".into(),
            organiser: Some(MemberId::parse("ivan").unwrap()),
            attendees: vec![],
            window: kombinat::domain::Window::Timed {
                start: now - chrono::Duration::hours(1),
                end: now + chrono::Duration::hours(3),
            },
            status: kombinat::domain::BookingStatus::Confirmed,
        },
        who.clone(),
        now,
    )
    .unwrap();
    g.add_device(
        Device {
            id: DeviceId::parse("alert-feed").unwrap(),
            kind: DeviceKind::AlertFeed,
            door: None,
            room: None,
            key: key(3),
            added_at: now,
        },
        who,
        now,
    )
    .unwrap();
}

/// Logs to the test's output; `RUST_LOG` picks what.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off")),
        )
        .with_test_writer()
        .try_init();
}

pub fn config(data: &Path, broker: &str) -> Config {
    logs();
    let text = format!(
        "site = {:?}\ndata = {:?}\n[mqtt]\nbroker = {broker:?}\nlisten = \"127.0.0.1:0\"\nkeep_alive_s = 5\nclient_id = \"gw-{}\"\n",
        site_path(),
        data,
        std::process::id()
    );
    Config::parse(&text, Path::new("/")).unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto started by the test, on its own port, with its own config.
pub struct Mosquitto {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

fn mosquitto_binary() -> Option<PathBuf> {
    [
        "mosquitto",
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| {
        Command::new(p)
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}

impl Mosquitto {
    /// Starts mosquitto, or returns `None` on a developer machine without it (printing why).
    /// In CI (`CI` set) a missing mosquitto fails the test.
    pub fn start() -> Option<Mosquitto> {
        let Some(bin) = mosquitto_binary() else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "mosquitto is not installed; CI must install it (apt-get install mosquitto)"
                );
            }
            eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nmax_inflight_messages 100\nmax_queued_messages 100000\n"),
        )
        .unwrap();
        let child = Self::spawn(&bin, &conf, port);
        Some(Mosquitto { port, child, dir })
    }

    /// Starts mosquitto with a configuration file of the test's own that listens on `port`
    /// (`None` on a developer machine without mosquitto; in CI a missing mosquitto fails).
    pub fn start_with(conf: &Path, port: u16) -> Option<Mosquitto> {
        let Some(bin) = mosquitto_binary() else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "mosquitto is not installed; CI must install it (apt-get install mosquitto)"
                );
            }
            eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let child = Self::spawn(&bin, conf, port);
        Some(Mosquitto { port, child, dir })
    }

    fn spawn(bin: &Path, conf: &Path, port: u16) -> Child {
        let child = Command::new(bin)
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        wait_for_port(port);
        child
    }

    /// Kills it and starts it again on the same port (sessions and retained messages are lost:
    /// persistence is off).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let bin = mosquitto_binary().unwrap();
        self.child = Self::spawn(&bin, &self.dir.path().join("mosquitto.conf"), self.port);
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

/// A door node played by a test: it signs taps and collects what the gateway sends it.
pub struct DoorNode {
    pub client: AsyncClient,
    pub door: DoorId,
    pub device: DeviceId,
    pub key: DeviceKey,
    pub counter: u64,
    pub rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    gateway_rx: kombinat_protocol::auth::ReplayGuard,
    /// Tap counters of the decisions received.
    pub received: Vec<u64>,
}

impl DoorNode {
    pub async fn connect(addr: SocketAddr, device: &str, door: &str, key: DeviceKey) -> DoorNode {
        Self::connect_with(addr, device, door, key, &[]).await
    }

    /// Connects and also subscribes to `extra` topics.
    pub async fn connect_with(
        addr: SocketAddr,
        device: &str,
        door: &str,
        key: DeviceKey,
        extra: &[String],
    ) -> DoorNode {
        static NODES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut o = MqttOptions::new(
            format!("{device}-{}-{n}", std::process::id()),
            addr.ip().to_string(),
            addr.port(),
        );
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(200 * 1024, 200 * 1024);
        let (client, mut ev) = AsyncClient::new(o, 256);
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        ev.set_network_options(net);
        let (tx, rx) = mpsc::unbounded_channel();
        let door = DoorId::parse(door).unwrap();
        let mut subs = vec![
            Topic::Door(door, DoorTopic::Decision).to_string(PREFIX),
            Topic::Door(door, DoorTopic::Command).to_string(PREFIX),
            Topic::Door(door, DoorTopic::AllowList).to_string(PREFIX),
            Topic::Door(door, DoorTopic::OfflineAck).to_string(PREFIX),
        ];
        subs.extend(extra.iter().cloned());
        let n_subs = subs.len();
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let sub_client = client.clone();
        tokio::spawn(async move {
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for s in &subs {
                            let _ = sub_client.subscribe(s.clone(), QoS::AtLeastOnce).await;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        for _ in 0..n_subs {
            tokio::time::timeout(Duration::from_secs(10), ready_rx.recv())
                .await
                .expect("subscribed");
        }
        DoorNode {
            client,
            door,
            device: DeviceId::parse(device).unwrap(),
            key,
            counter: 0,
            rx,
            gateway_rx: Default::default(),
            received: Vec::new(),
        }
    }

    /// A signed tap with the next counter.
    pub fn tap(&mut self, c: Credential) -> door::Tap {
        self.counter += 1;
        let mut t = door::Tap {
            v: VERSION,
            door: self.door,
            device: self.device,
            counter: self.counter,
            credential: c,
            mac: Default::default(),
        };
        t.sign(&self.key);
        t
    }

    pub async fn send(&self, topic_door: DoorId, payload: Vec<u8>) {
        self.client
            .publish(
                Topic::Door(topic_door, DoorTopic::Tap).to_string(PREFIX),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }

    pub async fn send_tap(&self, t: &door::Tap) {
        self.send(self.door, serde_json::to_vec(t).unwrap()).await;
    }

    /// The next decision for this door, verified as a door node would (MAC and counter).
    pub async fn decision(&mut self, within: Duration) -> door::Decision {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (topic, payload) = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .expect("a decision in time")
                .expect("the node's connection is alive");
            if !topic.ends_with("/decision") {
                continue;
            }
            let d: door::Decision = serde_json::from_slice(&payload).unwrap();
            assert!(d.verify(&self.key), "the decision's MAC verifies");
            self.gateway_rx
                .accept(d.counter)
                .expect("the gateway's counter increases");
            return d;
        }
    }

    /// Checks a message from the gateway as the node would: MAC, and a counter greater than
    /// every one before (across decisions, commands, lists and acknowledgements).
    pub fn accept_from_gateway<M: Signed>(&mut self, m: &M) {
        assert!(m.verify(&self.key), "the gateway's MAC verifies");
        self.gateway_rx
            .accept(m.counter())
            .expect("the gateway's counter increases");
    }

    /// The next message on a leaf (`command`, `allowlist`, `offline-ack`).
    pub async fn next_on(&mut self, leaf: &str, within: Duration) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (topic, payload) = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("a message on {leaf} in time"))
                .expect("alive");
            if topic.ends_with(&format!("/{leaf}")) {
                return payload;
            }
        }
    }
}

/// Waits until `f` holds, checking every few milliseconds, or panics after `within`.
pub async fn until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
