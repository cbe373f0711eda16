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
use kombinat::registry::Registry;
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
    let mut g = Registry::open(site, store, now).unwrap();
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
    g.store()
        .put_state(kombinat::mosquitto::BINDING_SECRET_KEY, &BINDING_SECRET)
        .unwrap();
}

/// The secret [`prepare`] stores for the off-the-shelf devices' and the observer's broker
/// passwords (a fixed one, so that a test knows them while the gateway holds the store).
pub const BINDING_SECRET: [u8; 32] = [7; 32];

/// Puts [`BINDING_SECRET`] into the store at `data` (one not made by [`prepare`]), so that
/// [`login`] gives its accounts' passwords.
pub fn know_broker_secret(data: &Path) {
    SledStore::open(data)
        .unwrap()
        .put_state(kombinat::mosquitto::BINDING_SECRET_KEY, &BINDING_SECRET)
        .unwrap();
}

/// The broker login of an off-the-shelf device's account or the observer's, in a store made by
/// [`prepare`] (or given [`know_broker_secret`]).
pub fn login(user: &str) -> (String, String) {
    (
        user.to_string(),
        kombinat::mosquitto::binding_password(&BINDING_SECRET, user),
    )
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
    let mut config = Config::parse(&text, Path::new("/")).unwrap();
    // Tests do not depend on the host's clock service (the engine's tests drive the check).
    config.clock_check = kombinat::clock_sync::ClockCheck::None;
    config
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

    /// Kills it (SIGKILL: no goodbye to anyone).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again after [`Mosquitto::kill`], on the same port with the same configuration.
    pub fn start_again(&mut self) {
        let bin = mosquitto_binary().unwrap();
        self.child = Self::spawn(&bin, &self.dir.path().join("mosquitto.conf"), self.port);
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
        // Its own broker account, as a node signs in (the embedded broker lets no one in without
        // one; a broker with no accounts ignores it).
        let login = (
            device.to_string(),
            kombinat_protocol::auth::broker_password(&key),
        );
        Self::connect_as(addr, login, device, door, key, extra).await
    }

    /// Connects with the broker account `login` (an off-the-shelf device's, the observer's: see
    /// [`login`]) as `device` at `door`, and also subscribes to `extra` topics. What the
    /// account may not read, it does not get.
    pub async fn connect_as(
        addr: SocketAddr,
        (user, password): (String, String),
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
        o.set_credentials(user, password);
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
            // Ends once the node is dropped: a node left reconnecting would take its account's
            // client id back from the next node of the same device, again and again.
            while !tx.is_closed() {
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

    /// The door's state as its node reports it, signed: standing open, and whether it was
    /// forced (opened while locked).
    pub async fn send_state(&mut self, forced: bool) {
        self.send_door_state(door::Contact::Open, true, forced)
            .await;
    }

    /// The door's state as its node reports it, signed: its contact, its strike, forced or not.
    pub async fn send_door_state(&mut self, contact: door::Contact, locked: bool, forced: bool) {
        self.counter += 1;
        let mut st = door::DoorState {
            v: VERSION,
            door: self.door,
            device: self.device,
            counter: self.counter,
            contact,
            locked,
            held_open: false,
            forced,
            tamper: false,
            mac: Default::default(),
        };
        st.sign(&self.key);
        self.client
            .publish(
                Topic::Door(self.door, DoorTopic::State).to_string(PREFIX),
                QoS::AtLeastOnce,
                false,
                serde_json::to_vec(&st).unwrap(),
            )
            .await
            .unwrap();
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

/// `kombinat --site SITE --data DATA ARGS…`, in this process; what it printed.
pub fn cli(site: &Path, data: &Path, args: &[&str]) -> String {
    use clap::Parser;
    let mut argv = vec![
        "kombinat".to_string(),
        "--site".into(),
        site.display().to_string(),
        "--data".into(),
        data.display().to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    let mut out = Vec::new();
    kombinat::cli::run(
        kombinat::cli::Cli::parse_from(argv),
        &mut out,
        chrono::Utc::now(),
    )
    .unwrap_or_else(|e| panic!("kombinat {args:?}: {e:#}"));
    String::from_utf8(out).unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Signs in to the dashboard's API; the session cookie.
pub fn sign_in(base: &str, name: &str, password: &str) -> String {
    let body = serde_json::json!({"name": name, "password": password}).to_string();
    let resp = agent()
        .post(&format!("{base}/api/v1/session"))
        .header("Content-Type", "application/json")
        .send(body.as_str())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "the login works");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

/// A GET with the session cookie: status and JSON.
pub fn get_signed(url: &str, cookie: &str) -> (u16, serde_json::Value) {
    let mut resp = agent().get(url).header("Cookie", cookie).call().unwrap();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        resp.status().as_u16(),
        serde_json::from_str(&text).unwrap_or_default(),
    )
}

/// `GET /health` answers 200.
pub fn healthy(base: &str) -> bool {
    agent()
        .get(&format!("{base}/health"))
        .call()
        .is_ok_and(|r| r.status().as_u16() == 200)
}

/// A simulated day made ready in a data directory, as an operator would: the site (the
/// example's), the day's members and bookings imported, the nodes registered.
pub struct SimDay {
    pub site: PathBuf,
    pub data: PathBuf,
    pub building: kombinat_firmware::sim::Building,
    pub pop: kombinat_firmware::sim::Population,
    pub clock: kombinat_firmware::sim::SimClock,
}

impl SimDay {
    /// The day of `seed` at `speed`, starting at simulated minute `start_min` once `setup_s`
    /// real seconds have passed (nobody moves before); `site_text` edits the example site.
    pub fn prepare(
        dir: &Path,
        seed: u64,
        speed: f64,
        start_min: u32,
        setup_s: f64,
        site_text: impl FnOnce(String) -> String,
    ) -> SimDay {
        use kombinat_firmware::sim::{Building, Population, SimClock};
        let data = dir.join("data");
        let text = site_text(std::fs::read_to_string(site_path()).unwrap());
        let site = dir.join("site.toml");
        std::fs::write(&site, &text).unwrap();
        let building = Building::parse(&text).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let clock = SimClock {
            real_start: now + setup_s,
            start_min,
            speed,
            midnight: None,
        };
        let pop = Population::generate(&building, seed, clock);
        let day = dir.join("day");
        pop.write_csv(&day, building.timezone).unwrap();
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
        SimDay {
            site,
            data,
            building,
            pop,
            clock,
        }
    }

    /// A viewer account for the dashboard's API; its password.
    pub fn viewer(&self, name: &str) -> String {
        add_staff(&self.site, &self.data, name, "viewer")
    }
}

/// The gateway as its own process (`kombinat run`), killed when dropped.
pub struct GatewayProcess {
    pub child: Child,
    config: PathBuf,
}

impl GatewayProcess {
    /// Writes a configuration for `data` and `site` through `broker` (a mosquitto URL) with
    /// the HTTP API on `http`, and starts the gateway. The simulated buildings these tests run
    /// go at 60x: the head counts are stored every 5 s when they change (every 5 minutes of
    /// the building's time; the default is 300 s of real time, or with the next decision).
    pub fn start(dir: &Path, site: &Path, data: &Path, broker: &str, http: u16) -> Self {
        let config = dir.join("kombinat.toml");
        std::fs::write(
            &config,
            format!(
                "site = {site:?}\ndata = {data:?}\n[mqtt]\nbroker = \"{broker}\"\nclient_id = \"gw-{}\"\nkeep_alive_s = 5\n[http]\nlisten = \"127.0.0.1:{http}\"\n[occupancy]\ncounts_every_s = 5\n",
                std::process::id()
            ),
        )
        .unwrap();
        let child = Self::spawn(&config);
        GatewayProcess { child, config }
    }

    /// Starts the gateway with a configuration file of the test's own.
    pub fn start_config(config: PathBuf) -> Self {
        let child = Self::spawn(&config);
        GatewayProcess { child, config }
    }

    /// Its log goes to `gateway.log` beside the configuration (appended over restarts).
    fn spawn(config: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.with_file_name("gateway.log"))
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_kombinat"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn,kombinat=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.config.with_file_name("gateway.log")).unwrap_or_default()
    }

    /// SIGKILL, and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again with the same configuration.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(&self.config);
    }

    /// SIGTERM; true if it exits cleanly within `within`.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let pid = self.child.id().to_string();
        if !Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success())
        {
            return false;
        }
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.success();
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory now, kB (from /proc).
    pub fn rss_kb(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every `Decision` in the audit log, counted by (door, tap).
pub fn logged_taps(data: &Path) -> std::collections::HashMap<(String, u64), u32> {
    let store = SledStore::open(data).unwrap();
    let mut n = std::collections::HashMap::new();
    for r in store.audit_after(None, usize::MAX).unwrap() {
        if let kombinat::store::AuditEvent::Decision {
            door, tap: Some(t), ..
        } = r.entry.event
        {
            *n.entry((door.to_string(), t)).or_insert(0) += 1;
        }
    }
    n
}

/// A decision a door acted on: the door, the tap's counter, taken alone.
pub type Acted = (String, u64, bool);

/// What the doors acted on held against the audit log: (found once, lost, found more than once).
pub fn hold_against_log(
    decided: &[Acted],
    logged: &std::collections::HashMap<(String, u64), u32>,
) -> (usize, Vec<Acted>, Vec<Acted>) {
    let mut found = 0;
    let mut lost = Vec::new();
    let mut twice = Vec::new();
    for d in decided {
        match logged.get(&(d.0.clone(), d.1)).copied().unwrap_or(0) {
            0 => lost.push(d.clone()),
            1 => found += 1,
            _ => twice.push(d.clone()),
        }
    }
    (found, lost, twice)
}

/// Steps the simulated building for `d` of real time.
pub async fn drive(world: &mut kombinat_firmware::sim::World<'_>, d: Duration) {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        world.step();
        tokio::time::sleep(kombinat_firmware::sim::world::STEP).await;
    }
}

/// Steps the building until the gateway's `/health` says 200; how long that took.
pub async fn until_healthy(world: &mut kombinat_firmware::sim::World<'_>, base: &str) -> Duration {
    let started = std::time::Instant::now();
    while !healthy(base) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "healthy within 60 s of start"
        );
        drive(world, Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// The rooms' head counts and the doors heard from, as the dashboard's API shows them.
pub fn building_now(base: &str, cookie: &str) -> (u64, usize) {
    let (status, live) = get_signed(&format!("{base}/api/v1/live"), cookie);
    assert_eq!(status, 200, "{live}");
    let people = live["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    let online = live["doors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["online"].as_bool() == Some(true))
        .count();
    (people, online)
}

/// Every endpoint but health, sign-in, the OpenAPI document and the page's own files.
pub const GUARDED: &[(&str, &str)] = &[
    ("GET", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/staff"),
    ("POST", "/api/v1/staff"),
    ("PATCH", "/api/v1/staff/vera"),
    ("DELETE", "/api/v1/staff/vera"),
    ("GET", "/api/v1/site"),
    ("GET", "/api/v1/live"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms/meeting-1"),
    ("GET", "/api/v1/doors"),
    ("POST", "/api/v1/doors/d-cowork-in/unlock"),
    ("PUT", "/api/v1/doors/d-cowork-in/lockdown"),
    ("GET", "/api/v1/alarms"),
    ("POST", "/api/v1/alarms/ack"),
    ("GET", "/api/v1/inside"),
    ("GET", "/api/v1/devices"),
    ("GET", "/api/v1/mode"),
    ("PUT", "/api/v1/mode"),
    ("GET", "/api/v1/members"),
    ("POST", "/api/v1/members"),
    ("GET", "/api/v1/members/ivan"),
    ("PATCH", "/api/v1/members/ivan"),
    ("POST", "/api/v1/members/ivan/cards"),
    ("POST", "/api/v1/members/ivan/pin"),
    ("POST", "/api/v1/members/ivan/erase"),
    ("DELETE", "/api/v1/members/ivan/pin"),
    ("DELETE", "/api/v1/cards/04D4E5F6"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/audit.csv"),
    ("GET", "/api/v1/utilisation"),
    ("GET", "/api/v1/occupancy"),
    ("GET", "/api/v1/schedule"),
    ("POST", "/api/v1/schedule"),
    ("DELETE", "/api/v1/schedule/test/ivan-now"),
];

/// Adds a staff account through the command line (gateway stopped); its made-up password.
pub fn add_staff(site: &Path, data: &Path, name: &str, role: &str) -> String {
    let out = cli(
        site,
        data,
        &["staff", "add", name, "--role", role, "--generate"],
    );
    out.lines()
        .find_map(|l| l.strip_prefix("password (shown once): "))
        .unwrap_or_else(|| panic!("no password in {out:?}"))
        .trim()
        .to_string()
}

/// What a client of the test's own saw of the broker.
pub enum BrokerSeen {
    Connected,
    Refused(String),
    Message(String),
}

pub fn broker_client(
    id: &str,
    login: Option<(&str, &str)>,
    port: u16,
) -> (AsyncClient, mpsc::UnboundedReceiver<BrokerSeen>) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    let (c, mut ev) = AsyncClient::new(o, 32);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let seen = match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => BrokerSeen::Connected,
                Ok(Event::Incoming(Packet::Publish(p))) => BrokerSeen::Message(p.topic.clone()),
                Ok(_) => continue,
                Err(e) => BrokerSeen::Refused(e.to_string()),
            };
            let refused = matches!(seen, BrokerSeen::Refused(_));
            if tx.send(seen).is_err() || refused {
                break;
            }
        }
    });
    (c, rx)
}

pub async fn broker_connected(rx: &mut mpsc::UnboundedReceiver<BrokerSeen>) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(BrokerSeen::Connected)) => Ok(()),
        Ok(Some(BrokerSeen::Refused(e))) => Err(e),
        _ => Err("no answer".into()),
    }
}

/// Messages that arrive within `within`.
pub async fn broker_messages(
    rx: &mut mpsc::UnboundedReceiver<BrokerSeen>,
    within: Duration,
) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(s)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if let BrokerSeen::Message(t) = s {
            out.push(t);
        }
    }
    out
}

/// The gateway's broker account's password in [`acl_mosquitto`].
pub const GATEWAY_BROKER_PASSWORD: &str = "a-long-gateway-password-for-tests";

/// A mosquitto on a free port with the configuration `kombinat devices mosquitto-config`
/// generates from `data`'s registry (no anonymous access, an account per device, the ACL):
/// the broker, its port, what the command said and the ACL. `None` on a developer machine
/// without mosquitto; in CI a missing mosquitto fails.
pub fn acl_mosquitto(dir: &Path, data: &Path) -> Option<(Mosquitto, u16, String, String)> {
    acl_mosquitto_with(dir, data, &[])
}

/// [`acl_mosquitto`] with more arguments for `mosquitto-config` (`--cafile` and the rest).
pub fn acl_mosquitto_with(
    dir: &Path,
    data: &Path,
    extra: &[&str],
) -> Option<(Mosquitto, u16, String, String)> {
    let pw = dir.join("gateway-password");
    std::fs::write(&pw, format!("{GATEWAY_BROKER_PASSWORD}\n")).unwrap();
    let port = free_port();
    let mq = dir.join("mq");
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "devices",
        "mosquitto-config",
        "--out",
        mq.to_str().unwrap(),
        "--gateway-password-file",
        pw.to_str().unwrap(),
        "--listen",
        &listen,
    ];
    args.extend_from_slice(extra);
    let said = cli(&site_path(), data, &args);
    let acl = std::fs::read_to_string(mq.join("acl")).unwrap();
    // Started as root (CI containers), mosquitto would drop to its own user, which cannot read
    // the test's private directory: let it keep the test's user. (An installation gives the
    // files to the mosquitto user instead.)
    let conf = mq.join("kombinat.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("user root\n");
    std::fs::write(&conf, text).unwrap();
    let broker = Mosquitto::start_with(&conf, port)?;
    Some((broker, port, said, acl))
}
