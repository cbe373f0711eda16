//! The MQTT transport for the nodes (std): rumqttc, with the settings the protocol asks for
//! (stable client id, `clean_session = false`, QoS 1, TCP_NODELAY, a retained "offline" last
//! will and a retained "online" status with heartbeats), and the loops that run a door node and
//! a sensor node over it.
//!
//! [`MqttLink`] implements [`Network`]: `send` serialises and hands the message to rumqttc
//! without waiting (`try_publish`). Messages from the gateway arrive on a channel, already
//! parsed ([`Down`]); a malformed one is counted and logged, never acted on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kombinat_protocol::auth::DeviceKey;
use kombinat_protocol::device::{Presence, Status};
use kombinat_protocol::door::{
    AllowList, Command, Decision, DoorTopic, OfflineAck, OfflineLog, VERSION,
};
use kombinat_protocol::{DeviceId, DoorId, Ident, Topic};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::net::{Network, Up};
use crate::Time;

/// Where and how to connect.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The topic prefix.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Broker account (mosquitto with per-device accounts).
    #[serde(default)]
    pub username: Option<String>,
    /// The account's password (`kombinat device mosquitto-config` derives it from the node's key).
    #[serde(default)]
    pub password: Option<String>,
    /// Seconds between status heartbeats.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_s: u32,
    /// The CA certificate (PEM) the broker's must chain to: with it the node connects over TLS
    /// (the broker's TLS listener, `deploy/README.md`), without it in plain MQTT (a closed
    /// network, the simulator).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_port() -> u16 {
    1883
}
fn default_prefix() -> String {
    kombinat_protocol::DEFAULT_PREFIX.to_owned()
}
fn default_heartbeat() -> u32 {
    30
}

impl LinkConfig {
    /// A plain connection to `host:port` with the default prefix.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        LinkConfig {
            host: host.into(),
            port,
            prefix: default_prefix(),
            username: None,
            password: None,
            heartbeat_s: default_heartbeat(),
            ca_file: None,
        }
    }

    /// The link as `device` signs in: the account the configuration names, or else its own
    /// (the device id, with the password derived from its key: what `kombinat device add`
    /// prints, what the gateway's accounts on mosquitto and on its embedded broker hold).
    pub fn signed_in_as(&self, device: DeviceId, key: &DeviceKey) -> LinkConfig {
        let mut l = self.clone();
        if l.username.is_none() {
            l.username = Some(device.as_str().to_string());
            l.password = Some(kombinat_protocol::auth::broker_password(key));
        }
        l
    }
}

/// A message from the gateway.
#[derive(Debug, Clone)]
pub enum Down {
    /// `door/<door>/decision`: the answer to a tap.
    Decision(Decision),
    /// `door/<door>/command`: unlock, release, back to normal.
    Command(Command),
    /// `door/<door>/allowlist` (retained): the cards the node decides alone while offline.
    AllowList(AllowList),
    /// An offline-log acknowledgement.
    OfflineAck(OfflineAck),
}

/// Counters of the link.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Messages that did not parse.
    pub malformed: AtomicU64,
    /// Connections made.
    pub connects: AtomicU64,
    /// Messages that arrived after the node stopped listening.
    pub dropped: AtomicU64,
}

/// The link to the broker.
pub struct MqttLink {
    client: AsyncClient,
    prefix: String,
    device: DeviceId,
    up: Arc<AtomicBool>,
    stats: Arc<LinkStats>,
    task: tokio::task::JoinHandle<()>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for MqttLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The link is down.
    #[error("the link to the broker is down")]
    Down,
    /// rumqttc's queue is full.
    #[error("the MQTT client's queue is full: {0}")]
    Queue(#[from] rumqttc::ClientError),
    /// A message that cannot be written as JSON (cannot happen with the protocol's types).
    #[error("cannot encode the message: {0}")]
    Encode(#[from] serde_json::Error),
}

fn status(state: Presence, uptime_s: Option<u64>, heartbeat_s: u32) -> Vec<u8> {
    let s = Status {
        v: VERSION,
        state,
        firmware: Ident::parse(env!("CARGO_PKG_VERSION")).ok(),
        uptime_s,
        heartbeat_s: (state == Presence::Online).then_some(heartbeat_s),
    };
    serde_json::to_vec(&s).unwrap_or_default()
}

impl MqttLink {
    /// Connects as `device` and subscribes to `subscriptions`; what arrives on them is parsed by
    /// `parse` and sent to the returned channel. Reconnects by itself, backing off up to 10 s.
    /// Must be called within a tokio runtime.
    pub fn start<T: Send + 'static>(
        cfg: &LinkConfig,
        device: DeviceId,
        subscriptions: Vec<String>,
        parse: fn(&str, &str, &[u8]) -> Result<T, String>,
    ) -> (MqttLink, mpsc::Receiver<T>) {
        let status_topic = Topic::Status(device).to_string(&cfg.prefix);
        let mut o = MqttOptions::new(device.as_str(), cfg.host.clone(), cfg.port);
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(15));
        o.set_max_packet_size(kombinat_protocol::MAX_PACKET, 64 * 1024);
        o.set_inflight(32);
        o.set_last_will(LastWill::new(
            &status_topic,
            status(Presence::Offline, None, cfg.heartbeat_s),
            QoS::AtLeastOnce,
            true,
        ));
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            o.set_credentials(u, p);
        }
        if let Some(path) = &cfg.ca_file {
            let _ = rustls::crypto::ring::default_provider().install_default();
            // A CA that cannot be read leaves none: every handshake fails, and says so; the
            // node never falls back to plain MQTT.
            let ca = std::fs::read(path).unwrap_or_else(|e| {
                tracing::error!(file = %path.display(), error = %e, "cannot read the broker's CA certificate");
                Vec::new()
            });
            o.set_transport(rumqttc::Transport::tls(ca, None, None));
        }
        let (client, mut ev) = AsyncClient::new(o, 256);
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        ev.set_network_options(net);
        let (tx, rx) = mpsc::channel(256);
        let up = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(LinkStats::default());
        let (task_up, task_stats, task_client) = (up.clone(), stats.clone(), client.clone());
        let prefix = cfg.prefix.clone();
        let heartbeat = Duration::from_secs(u64::from(cfg.heartbeat_s.max(1)));
        let heartbeat_s = cfg.heartbeat_s;
        let started = Instant::now();
        // The heartbeat runs beside the event loop: polling must never be cancelled half-way
        // (a connection cut short in its handshake leaves a session without subscriptions).
        let beat_up = up.clone();
        let beat_client = client.clone();
        let beat_topic = status_topic.clone();
        let beat = tokio::spawn(async move {
            let mut beat = tokio::time::interval(heartbeat);
            beat.tick().await;
            loop {
                beat.tick().await;
                if beat_up.load(Ordering::Acquire) {
                    let up_s = started.elapsed().as_secs();
                    let _ = beat_client.try_publish(
                        &beat_topic,
                        QoS::AtLeastOnce,
                        true,
                        status(Presence::Online, Some(up_s), heartbeat_s),
                    );
                }
            }
        });
        let task = tokio::spawn(async move {
            let _beat = AbortOnDrop(beat);
            let mut backoff = Duration::from_millis(250);
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = Duration::from_millis(250);
                        task_stats.connects.fetch_add(1, Ordering::Relaxed);
                        // Subscribe on every connection, session or not: a session the broker
                        // kept may be one whose subscriptions never got through. The link
                        // counts as up once the broker has granted them (a node that sent taps
                        // it could not hear the answers to would wait for nothing).
                        if !subscriptions.is_empty() {
                            let filters = subscriptions.iter().map(|s| {
                                rumqttc::SubscribeFilter::new(s.clone(), QoS::AtLeastOnce)
                            });
                            if let Err(e) = task_client.try_subscribe_many(filters) {
                                tracing::warn!("cannot subscribe: {e}");
                            }
                        }
                        let up_s = started.elapsed().as_secs();
                        if let Err(e) = task_client.try_publish(
                            &status_topic,
                            QoS::AtLeastOnce,
                            true,
                            status(Presence::Online, Some(up_s), heartbeat_s),
                        ) {
                            tracing::warn!("cannot publish the status: {e}");
                        }
                        if subscriptions.is_empty() {
                            task_up.store(true, Ordering::Release);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let granted = ack
                            .return_codes
                            .iter()
                            .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_)));
                        if granted {
                            task_up.store(true, Ordering::Release);
                        } else {
                            tracing::warn!(
                                "the broker refused a subscription: {:?}",
                                ack.return_codes
                            );
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        match parse(&prefix, &p.topic, &p.payload) {
                            Ok(m) => {
                                // Wait for the node to take it rather than drop it: the
                                // broker holds the rest meanwhile.
                                if tx.send(m).await.is_err() {
                                    task_stats.dropped.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Err(e) => {
                                task_stats.malformed.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(topic = %p.topic, "refused a message: {e}");
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if task_up.swap(false, Ordering::AcqRel) {
                            tracing::warn!("link to the broker lost: {e}");
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
        (
            MqttLink {
                client,
                prefix: cfg.prefix.clone(),
                device,
                up,
                stats,
                task,
            },
            rx,
        )
    }

    /// The link's counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Says goodbye: publishes "offline" (retained) and disconnects.
    pub async fn goodbye(&self, heartbeat_s: u32) {
        let topic = Topic::Status(self.device).to_string(&self.prefix);
        let _ = self
            .client
            .publish(
                topic,
                QoS::AtLeastOnce,
                true,
                status(Presence::Offline, None, heartbeat_s),
            )
            .await;
        let _ = self.client.disconnect().await;
    }

    fn publish(&self, topic: Topic, body: Vec<u8>) -> Result<(), SendError> {
        if !self.up.load(Ordering::Acquire) {
            return Err(SendError::Down);
        }
        self.client
            .try_publish(topic.to_string(&self.prefix), QoS::AtLeastOnce, false, body)?;
        Ok(())
    }
}

impl Network for MqttLink {
    type Error = SendError;

    fn connected(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    fn send(&mut self, msg: Up<'_>) -> Result<(), SendError> {
        match msg {
            Up::Tap(t) => self.publish(Topic::Door(t.door, DoorTopic::Tap), serde_json::to_vec(t)?),
            Up::State(s) => self.publish(
                Topic::Door(s.door, DoorTopic::State),
                serde_json::to_vec(s)?,
            ),
            Up::OfflineLog(l) => {
                let log = OfflineLog {
                    v: l.v,
                    door: l.door,
                    device: l.device,
                    counter: l.counter,
                    entries: l.entries.to_vec(),
                    mac: l.mac,
                };
                self.publish(
                    Topic::Door(l.door, DoorTopic::OfflineLog),
                    serde_json::to_vec(&log)?,
                )
            }
            Up::Reading(r) => self.publish(Topic::Reading(r.device), serde_json::to_vec(r)?),
            Up::Power(p) => self.publish(Topic::Power(p.device), serde_json::to_vec(p)?),
            Up::Alert(a) => self.publish(Topic::AlertInput(a.device), serde_json::to_vec(a)?),
        }
    }
}

/// The topics a door node listens on.
pub fn door_subscriptions(prefix: &str, door: DoorId) -> Vec<String> {
    [
        DoorTopic::Decision,
        DoorTopic::Command,
        DoorTopic::AllowList,
        DoorTopic::OfflineAck,
    ]
    .into_iter()
    .map(|l| Topic::Door(door, l).to_string(prefix))
    .collect()
}

/// Parses a message for a door node.
pub fn parse_door(prefix: &str, topic: &str, payload: &[u8]) -> Result<Down, String> {
    let leaf = match Topic::parse(prefix, topic) {
        Ok(Topic::Door(_, leaf)) => leaf,
        Ok(_) => return Err("not a door topic".into()),
        Err(e) => return Err(e.to_string()),
    };
    let e = |e: serde_json::Error| format!("{leaf:?}: {e}");
    Ok(match leaf {
        DoorTopic::Decision => Down::Decision(serde_json::from_slice(payload).map_err(e)?),
        DoorTopic::Command => Down::Command(serde_json::from_slice(payload).map_err(e)?),
        DoorTopic::AllowList => Down::AllowList(serde_json::from_slice(payload).map_err(e)?),
        DoorTopic::OfflineAck => Down::OfflineAck(serde_json::from_slice(payload).map_err(e)?),
        other => return Err(format!("a door node does not take {other:?}")),
    })
}

/// A sensor node takes nothing from the gateway.
pub fn parse_nothing(_: &str, topic: &str, _: &[u8]) -> Result<(), String> {
    Err(format!("unexpected message on {topic}"))
}

/// The node's clocks: monotonic since start, and the wall clock where it can be trusted.
#[derive(Debug, Clone)]
pub struct Clock {
    start: Instant,
    /// A file that exists while the system clock is synchronised.
    synced_flag: Option<std::path::PathBuf>,
    /// An RTC's Unix time at start, and when it was read.
    rtc: Option<(u64, Instant)>,
    /// The flag as last looked at.
    checked: std::cell::Cell<Option<(Instant, bool)>>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            start: Instant::now(),
            synced_flag: None,
            rtc: None,
            checked: std::cell::Cell::new(None),
        }
    }
}

/// How often the synchronised flag is looked at.
const SYNC_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

impl Clock {
    /// A clock that trusts the system's time only while `synced_flag` exists (systemd-timesyncd's
    /// `/run/systemd/timesync/synchronized`), and otherwise counts on from `rtc_unix`, a real-time
    /// clock's reading at start (`None`: no RTC, or one whose time cannot be trusted). With
    /// neither the clock is unset: [`Clock::now`] gives 0 as the Unix time.
    pub fn new(synced_flag: Option<std::path::PathBuf>, rtc_unix: Option<u64>) -> Self {
        Clock {
            start: Instant::now(),
            synced_flag,
            rtc: rtc_unix.map(|u| (u, Instant::now())),
            checked: std::cell::Cell::new(None),
        }
    }

    /// Whether the system clock is synchronised (always, without a flag to check).
    pub fn system_synced(&self) -> bool {
        let Some(flag) = &self.synced_flag else {
            return true;
        };
        match self.checked.get() {
            Some((at, synced)) if at.elapsed() < SYNC_CHECK => synced,
            _ => {
                let synced = flag.exists();
                self.checked.set(Some((Instant::now(), synced)));
                synced
            }
        }
    }

    /// Whether the node knows the time (its offline decisions keep their hours).
    pub fn set(&self) -> bool {
        self.now().unix != 0
    }

    /// The node's time: milliseconds since it started (its timers) and Unix seconds (allow-list
    /// windows): the system's while it is synchronised, else the RTC's counted on, else 0.
    pub fn now(&self) -> Time {
        let unix = if self.system_synced() {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        } else if let Some((u, at)) = self.rtc {
            u + at.elapsed().as_secs()
        } else {
            0
        };
        Time {
            ms: self.start.elapsed().as_millis() as u64,
            unix,
        }
    }
}

/// Hands a message from the gateway to a door node; logs what it refused.
pub fn deliver<const C: usize, const L: usize>(
    node: &mut crate::door::DoorController<C, L>,
    msg: &Down,
    t: Time,
) {
    let r = match msg {
        Down::Decision(d) => node.decision(d, t),
        Down::Command(c) => node.command(c, t),
        Down::AllowList(l) => node.allow_list(&l.head(), &l.cards, &l.mac),
        Down::OfflineAck(a) => node.offline_ack(a),
    };
    match r {
        Ok(()) | Err(crate::door::Refusal::Older) => {}
        Err(e) => {
            tracing::warn!(door = %node.config().door, "refused a message from the gateway: {e:?}")
        }
    }
}
