//! The door desk: what the gateway does with each message from a device, without I/O.
//!
//! The desk knows the registered devices, their keys and replay counters, the doors' last
//! reported state and the devices' health. Each `handle_*` takes a message (topic parts already
//! parsed, payload bytes) and the time, checks it (size, JSON, known device, bound door, MAC,
//! counter) and returns what should happen: a decision to audit, a signed reply to publish,
//! alarms to log. The gateway's service carries that out: audit durably, then publish.
//! Anything refused is a [`Rejected`] with a stable label, counted by [`Malformed`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kombinat_protocol::auth::{ReplayGuard, Signed};
use kombinat_protocol::device::{AlertInput, Power, Presence, Status};
use kombinat_protocol::door::{self, Action, AllowEntry, Contact, DoorTopic, VERSION};
use kombinat_protocol::site::{ModeSet, ModeState};
use kombinat_protocol::{Ident, Topic};
use rustc_hash::FxHashMap;

use crate::access::allow_list::fit;
use crate::access::{decide, Decision, Snapshot, Tap};
use crate::domain::{Device, DeviceId, DeviceKind, DeviceMark, DoorId, Reason, SiteMode};
use crate::store::{Actor, AlarmKind, AuditEntry, AuditEvent};

/// How far the gateway's counter towards a device jumps at start (see [`Desk::new`]).
pub const TX_JUMP: u64 = 1 << 20;

/// The JSON an allow-list's entries may take: one MQTT packet, less room for the list's own
/// fields, its MAC and its topic.
pub const LIST_BYTES: usize = kombinat_protocol::MAX_PACKET - 2_048;

/// Fits a door's allow-list to what its node holds and one packet carries (see
/// [`fit`]), saying so in the log when entries are left out.
pub fn fit_for_node(door: DoorId, cards: &mut Vec<AllowEntry>) {
    let had = fit(cards, LIST_BYTES);
    if had > cards.len() {
        tracing::warn!(
            %door,
            cards = had,
            kept = cards.len(),
            "allow-list longer than a door node holds; the entries valid soonest are sent"
        );
    }
}

/// The largest payload accepted from a device.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Why a message was refused. Each variant has a stable label for counters and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Larger than [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Not JSON of the expected shape.
    #[error("malformed payload: {0}")]
    Json(String),
    /// The device is not registered.
    #[error("unknown device {0}")]
    UnknownDevice(String),
    /// The device may not send this (a sensor sending taps, a door node on another door).
    #[error("device {0} may not send this message")]
    NotItsTopic(String),
    /// The MAC does not verify under the device's key.
    #[error("bad MAC from {0}")]
    BadMac(String),
    /// A counter already seen.
    #[error("replayed counter {counter} from {device} (last {last})")]
    Replay {
        device: String,
        /// The counter received.
        counter: u64,
        /// The last accepted.
        last: u64,
    },
    /// The topic is not one the gateway takes.
    #[error("not a topic the gateway takes")]
    Topic,
    /// A protocol version this gateway does not speak.
    #[error("protocol version {0} is not supported")]
    Version(u8),
}

impl Rejected {
    /// The stable label.
    pub fn label(&self) -> &'static str {
        match self {
            Rejected::TooLarge(_) => "too_large",
            Rejected::Json(_) => "malformed_json",
            Rejected::UnknownDevice(_) => "unknown_device",
            Rejected::NotItsTopic(_) => "not_its_topic",
            Rejected::BadMac(_) => "bad_mac",
            Rejected::Replay { .. } => "replay",
            Rejected::Topic => "unknown_topic",
            Rejected::Version(_) => "bad_version",
        }
    }
}

/// Counts refused messages by label, and says when to log one: once per sender per minute, so
/// a flood cannot flood the log.
#[derive(Debug, Default)]
pub struct Malformed {
    counts: BTreeMap<&'static str, u64>,
    last_logged: FxHashMap<String, Instant>,
}

/// Who sent a refused message, as far as it can be told: the device it names (a signed
/// message's, a reading's), else the door or device its topic is for (a message too large or
/// too broken to name anyone), else the topic itself. MQTT does not tell a subscriber which
/// client published, so this is what the log can say.
pub fn sender(topic: &str, r: &Rejected) -> String {
    match r {
        Rejected::UnknownDevice(d)
        | Rejected::NotItsTopic(d)
        | Rejected::BadMac(d)
        | Rejected::Replay { device: d, .. } => format!("device {d}"),
        _ => {
            let parts: Vec<&str> = topic.split('/').collect();
            let id = |kind: &str| {
                parts
                    .windows(2)
                    .find(|w| w[0] == kind)
                    .map(|w| w[1].chars().take(64).collect::<String>())
            };
            if let Some(d) = id("door") {
                format!("the node on door {d}")
            } else if let Some(d) = id("sensor").or_else(|| id("device")) {
                format!("device {d}")
            } else {
                format!(
                    "a client publishing on {}",
                    topic.chars().take(128).collect::<String>()
                )
            }
        }
    }
}

impl Malformed {
    /// Counts a refusal; returns whether to log it (the first from `sender` in a minute: see
    /// [`sender`]).
    pub fn count(&mut self, sender: &str, r: &Rejected, now: Instant) -> bool {
        *self.counts.entry(r.label()).or_default() += 1;
        // Senders are chosen by whoever publishes: the map is bounded, and emptied (once per
        // thousand new senders, so in amortised constant time) when it is full.
        if self.last_logged.len() >= 1024 {
            self.last_logged.clear();
        }
        match self.last_logged.get(sender) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(60) => false,
            _ => {
                self.last_logged.insert(sender.to_string(), now);
                true
            }
        }
    }

    /// The counts by label.
    pub fn counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.counts
    }
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    /// Payload (JSON).
    pub payload: Vec<u8>,
    /// Retained.
    pub retain: bool,
}

/// A door's last reported state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorStatus {
    pub contact: Contact,
    /// Strike locked.
    pub locked: bool,
    /// Held-open alarm.
    pub held_open: bool,
    /// Forced-open alarm.
    pub forced: bool,
    /// Tamper alarm.
    pub tamper: bool,
    /// When reported.
    pub at: DateTime<Utc>,
    /// Since when the strike has been reported unlocked without a break, if it is.
    pub unlocked_since: Option<DateTime<Utc>>,
}

/// A device's health as the desk sees it.
#[derive(Debug, Clone)]
pub struct Health {
    /// Last message of any kind.
    pub last_seen: Option<DateTime<Utc>>,
    /// Online by its status (and not silent for three heartbeats).
    pub online: bool,
    /// Firmware version it reported.
    pub firmware: Option<Ident>,
    /// Heartbeat it announced.
    pub heartbeat_s: u32,
    /// It said it was online at least once since the gateway started (so being offline now
    /// is an alarm, not a device not yet installed).
    pub was_online: bool,
}

/// What a device sends on one of its topics. MQTT keeps one sender's messages in order on each
/// topic, not across topics (a broker may hand over a node's power report before the reading it
/// sent first), so each topic's counters are checked against that topic's alone: a message is
/// a replay when its counter is not above the last one taken on its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Tap,
    State,
    OfflineLog,
    Reading,
    Power,
    Alert,
    ModeSet,
}

impl Stream {
    /// How many there are: the last variant's index and one (a variant added after it is
    /// counted by moving this).
    const COUNT: usize = Stream::ModeSet as usize + 1;
}

/// The last counter taken from a device on each of its topics ([`Stream`]).
#[derive(Debug, Clone, Copy, Default)]
struct Streams([ReplayGuard; Stream::COUNT]);

impl Streams {
    /// Every topic past `last` (a stored mark: the last counter taken on any).
    fn after(last: u64) -> Self {
        Streams([ReplayGuard::after(last); Stream::COUNT])
    }

    fn get(&mut self, stream: Stream) -> &mut ReplayGuard {
        &mut self.0[stream as usize]
    }

    /// The last counter taken on any topic.
    fn last(&self) -> u64 {
        self.0.iter().map(ReplayGuard::last).max().unwrap_or(0)
    }
}

struct DeviceState {
    device: Device,
    /// Tap counters decided online lately, so an offline log entry for a tap the gateway also
    /// answered (it reached the gateway late) is not stored a second time.
    online_taps: std::collections::VecDeque<u64>,
    rx: Streams,
    tx: u64,
    /// `tx` as last stored.
    stored_tx: u64,
    offline_up_to: u64,
    health: Health,
}

/// What a tap comes to.
#[derive(Debug)]
pub struct TapOutcome {
    /// The node's counter on the tap.
    pub tap: u64,
    /// The decision, to audit and to record in the snapshot.
    pub decision: Decision,
    /// The signed decision for the door.
    pub reply: Publish,
}

pub struct Desk {
    prefix: String,
    default_heartbeat_s: u32,
    devices: FxHashMap<DeviceId, DeviceState>,
    by_door: FxHashMap<DoorId, DeviceId>,
    doors: FxHashMap<DoorId, DoorStatus>,
    dirty: Vec<DeviceId>,
    /// A counter of the gateway's has gone half its start-up jump past what is stored.
    marks_due: bool,
    /// Refusals by label.
    pub malformed: Malformed,
    /// The least counter the gateway signs with towards any device ([`Desk::raise_tx_floor`]).
    tx_floor: u64,
    /// Seconds of the `now` the desk is given per second of the devices' own timers: 1 but in
    /// a simulated day ([`Desk::set_time_rate`]).
    time_rate: f64,
}

fn remember(taps: &mut std::collections::VecDeque<u64>, tap: u64) {
    if taps.len() >= 4096 {
        taps.pop_front();
    }
    taps.push_back(tap);
}

fn parse<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, Rejected> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Rejected::TooLarge(payload.len()));
    }
    serde_json::from_slice(payload).map_err(|e| Rejected::Json(e.to_string()))
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Our own payload types always serialise; an empty body would be refused by the device.
    serde_json::to_vec(v).unwrap_or_default()
}

impl Desk {
    /// A desk for these devices and their stored counters.
    pub fn new(
        prefix: &str,
        default_heartbeat_s: u32,
        devices: Vec<Device>,
        marks: Vec<DeviceMark>,
    ) -> Self {
        let mut d = Desk {
            prefix: prefix.to_string(),
            default_heartbeat_s,
            devices: FxHashMap::default(),
            by_door: FxHashMap::default(),
            doors: FxHashMap::default(),
            dirty: Vec::new(),
            marks_due: false,
            malformed: Malformed::default(),
            tx_floor: 0,
            time_rate: 1.0,
        };
        for dev in devices {
            d.add_device(dev);
        }
        for m in marks {
            if let Some(s) = m.device.and_then(|id| d.devices.get_mut(&id)) {
                s.rx = Streams::after(m.rx);
                // Counters are stored every few minutes, not with every message: after a crash
                // the last minutes' messages to the node may have used counters past the stored
                // one, so the gateway's counter jumps ahead (the node only needs it to grow;
                // `marks_due` keeps what is used between stores under half the jump).
                s.tx = m.tx + TX_JUMP;
                s.stored_tx = m.tx;
                s.offline_up_to = m.offline;
            }
        }
        d
    }

    /// Brings replay counters up to what the audit log shows since the marks were stored: the
    /// taps decided and the offline decisions taken in the last second before a crash.
    pub fn recover(&mut self, log: &[crate::store::AuditRecord]) {
        for r in log {
            if let AuditEvent::Decision {
                door,
                tap: Some(tap),
                offline,
                ..
            } = r.entry.event
            {
                let Some(s) = self
                    .by_door
                    .get(&door)
                    .and_then(|d| self.devices.get_mut(d))
                else {
                    continue;
                };
                // Taps from before the device got its key were the old key's node's.
                if r.entry.at < s.device.added_at {
                    continue;
                }
                if offline {
                    s.offline_up_to = s.offline_up_to.max(tap);
                } else {
                    remember(&mut s.online_taps, tap);
                    let taps = s.rx.get(Stream::Tap);
                    if tap > taps.last() {
                        *taps = ReplayGuard::after(tap);
                    }
                }
            }
        }
    }

    /// Raises the gateway's counters towards every device to at least `floor` (and those of
    /// devices registered later): the service passes the time in microseconds, so that a
    /// store restored from a backup or a device registered again with its old key (its node
    /// remembers the counters it accepted) never meets a counter it has already seen.
    pub fn raise_tx_floor(&mut self, floor: u64) {
        self.tx_floor = self.tx_floor.max(floor);
        for s in self.devices.values_mut() {
            s.tx = s.tx.max(floor);
        }
    }

    /// Registers (or replaces) a device; its counters start fresh unless it was known.
    pub fn add_device(&mut self, dev: Device) {
        if let Some(door) = dev.door.filter(|_| dev.kind == DeviceKind::Door) {
            self.by_door.insert(door, dev.id);
        }
        let heartbeat_s = self.default_heartbeat_s;
        match self.devices.get_mut(&dev.id) {
            Some(s) => s.device = dev,
            None => {
                self.devices.insert(
                    dev.id,
                    DeviceState {
                        device: dev,
                        online_taps: Default::default(),
                        rx: Streams::default(),
                        tx: self.tx_floor,
                        stored_tx: 0,
                        offline_up_to: 0,
                        health: Health {
                            last_seen: None,
                            online: false,
                            firmware: None,
                            heartbeat_s,
                            was_online: false,
                        },
                    },
                );
            }
        }
    }

    /// The door node serving a door.
    pub fn device_of(&self, door: DoorId) -> Option<DeviceId> {
        self.by_door.get(&door).copied()
    }

    /// Doors that have a door node.
    pub fn served_doors(&self) -> impl Iterator<Item = (DoorId, DeviceId)> + '_ {
        self.by_door.iter().map(|(d, dev)| (*d, *dev))
    }

    /// A door's last reported state.
    pub fn door_status(&self, door: DoorId) -> Option<DoorStatus> {
        self.doors.get(&door).copied()
    }

    /// A device's health.
    pub fn health(&self, device: DeviceId) -> Option<&Health> {
        self.devices.get(&device).map(|s| &s.health)
    }

    /// Every registered device with its health, by id.
    pub fn devices(&self) -> impl Iterator<Item = (&Device, &Health)> {
        self.devices.values().map(|d| (&d.device, &d.health))
    }

    /// Devices online, and all registered.
    pub fn online_count(&self) -> (usize, usize) {
        let online = self.devices.values().filter(|s| s.health.online).count();
        (online, self.devices.len())
    }

    /// Every device's counters, to store at start.
    pub fn all_marks(&mut self, now: DateTime<Utc>) -> Vec<DeviceMark> {
        self.dirty = self.devices.keys().copied().collect();
        self.take_marks(now)
    }

    /// Counters changed since the last call, to store (see [`Desk::recover`] and
    /// [`Desk::marks_due`] for how often).
    pub fn take_marks(&mut self, now: DateTime<Utc>) -> Vec<DeviceMark> {
        self.marks_due = false;
        let mut ids = std::mem::take(&mut self.dirty);
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| {
                self.devices.get_mut(&id).map(|s| {
                    s.stored_tx = s.tx;
                    DeviceMark {
                        device: Some(id),
                        rx: s.rx.last(),
                        tx: s.tx,
                        offline: s.offline_up_to,
                        at: Some(now),
                    }
                })
            })
            .collect()
    }

    /// The marks must be stored now, not at the next periodic store: a counter of the
    /// gateway's towards a node has gone half of [`TX_JUMP`] past what is stored, so a crash
    /// after the other half could make it reuse counters.
    pub fn marks_due(&self) -> bool {
        self.marks_due
    }

    fn topic(&self, t: Topic) -> String {
        t.to_string(&self.prefix)
    }

    /// Checks a signed message from a device: known, of the right kind, on its own door (if
    /// any), MAC right, counter fresh. Marks the device seen.
    fn verify<M: Signed>(
        &mut self,
        device: DeviceId,
        kind: DeviceKind,
        door: Option<DoorId>,
        msg: &M,
        stream: Stream,
        now: DateTime<Utc>,
    ) -> Result<(), Rejected> {
        let s = self
            .devices
            .get_mut(&device)
            .ok_or_else(|| Rejected::UnknownDevice(device.to_string()))?;
        if s.device.kind != kind || (door.is_some() && s.device.door != door) {
            return Err(Rejected::NotItsTopic(device.to_string()));
        }
        if !msg.verify(&s.device.key) {
            return Err(Rejected::BadMac(device.to_string()));
        }
        accept_counter(s.rx.get(stream), device, msg.counter())?;
        s.health.last_seen = Some(now);
        self.mark_dirty(device);
        Ok(())
    }

    fn sign_for<M: Signed>(&mut self, device: DeviceId, make: impl FnOnce(u64) -> M) -> Option<M> {
        let s = self.devices.get_mut(&device)?;
        s.tx += 1;
        if s.tx.saturating_sub(s.stored_tx) >= TX_JUMP / 2 {
            self.marks_due = true;
        }
        let mut m = make(s.tx);
        m.sign(&s.device.key);
        self.mark_dirty(device);
        Some(m)
    }

    /// Notes a device's counters as changed. Between two stores (minutes) thousands of devices
    /// send a message a second each: the list is compacted whenever it outgrows the devices.
    fn mark_dirty(&mut self, device: DeviceId) {
        self.dirty.push(device);
        if self.dirty.len() > 2 * self.devices.len() + 64 {
            self.dirty.sort_unstable();
            self.dirty.dedup();
        }
    }

    /// A tap on `door/<door>/tap`: verify, decide, sign the answer.
    pub fn handle_tap(
        &mut self,
        snapshot: &Snapshot,
        door: DoorId,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<TapOutcome, Rejected> {
        let tap: door::Tap = parse(payload)?;
        if tap.v != VERSION {
            return Err(Rejected::Version(tap.v));
        }
        if tap.door != door {
            return Err(Rejected::NotItsTopic(tap.device.to_string()));
        }
        self.verify(
            tap.device,
            DeviceKind::Door,
            Some(door),
            &tap,
            Stream::Tap,
            now,
        )?;
        if let Some(s) = self.devices.get_mut(&tap.device) {
            remember(&mut s.online_taps, tap.counter);
        }
        let decision = decide(
            snapshot,
            &Tap {
                door,
                credential: tap.credential,
            },
            now,
        );
        let reply = self
            .sign_for(tap.device, |counter| door::Decision {
                v: VERSION,
                door,
                device: tap.device,
                counter,
                tap: tap.counter,
                allow: decision.allowed(),
                reason: decision.reason,
                unlock_ms: decision.unlock_ms,
                mac: Default::default(),
            })
            .ok_or_else(|| Rejected::UnknownDevice(tap.device.to_string()))?;
        Ok(TapOutcome {
            tap: tap.counter,
            reply: Publish {
                topic: self.topic(Topic::Door(door, DoorTopic::Decision)),
                payload: json(&reply),
                retain: false,
            },
            decision,
        })
    }

    /// A door state report: updates the door and returns alarms raised or cleared.
    pub fn handle_door_state(
        &mut self,
        door: DoorId,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<AuditEntry>, Rejected> {
        let st: door::DoorState = parse(payload)?;
        if st.v != VERSION {
            return Err(Rejected::Version(st.v));
        }
        if st.door != door {
            return Err(Rejected::NotItsTopic(st.device.to_string()));
        }
        self.verify(
            st.device,
            DeviceKind::Door,
            Some(door),
            &st,
            Stream::State,
            now,
        )?;
        let before = self.doors.get(&door).copied();
        let after = DoorStatus {
            contact: st.contact,
            locked: st.locked,
            held_open: st.held_open,
            forced: st.forced,
            tamper: st.tamper,
            at: now,
            unlocked_since: (!st.locked)
                .then(|| before.and_then(|b| b.unlocked_since).unwrap_or(now)),
        };
        self.doors.insert(door, after);
        let mut alarms = Vec::new();
        for (kind, was, is) in [
            (
                AlarmKind::HeldOpen,
                before.is_some_and(|b| b.held_open),
                after.held_open,
            ),
            (
                AlarmKind::Forced,
                before.is_some_and(|b| b.forced),
                after.forced,
            ),
            (
                AlarmKind::Tamper,
                before.is_some_and(|b| b.tamper),
                after.tamper,
            ),
        ] {
            if was != is {
                tracing::warn!(door = %door, alarm = ?kind, raised = is, "door alarm");
                alarms.push(AuditEntry {
                    at: now,
                    actor: Actor::Door(door),
                    event: AuditEvent::Alarm {
                        door: Some(door),
                        device: Some(st.device),
                        alarm: kind,
                        raised: is,
                    },
                });
            }
        }
        Ok(alarms)
    }

    /// A door contact reported by a device without a door node (an esp-rfid reader, a Zigbee
    /// contact): the door's state follows; its lock is the reader's own business.
    pub fn note_contact(&mut self, door: DoorId, open: bool, now: DateTime<Utc>) {
        let contact = if open { Contact::Open } else { Contact::Closed };
        let st = self.doors.entry(door).or_insert(DoorStatus {
            contact,
            locked: true,
            held_open: false,
            forced: false,
            tamper: false,
            at: now,
            unlocked_since: None,
        });
        st.contact = contact;
        st.at = now;
    }

    /// A device status (heartbeat or last will): health, and the offline alarm cleared or raised.
    pub fn handle_status(
        &mut self,
        device: DeviceId,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<AuditEntry>, Rejected> {
        let st: Status = parse(payload)?;
        if st.v != VERSION {
            return Err(Rejected::Version(st.v));
        }
        let s = self
            .devices
            .get_mut(&device)
            .ok_or_else(|| Rejected::UnknownDevice(device.to_string()))?;
        let was_online = s.health.online;
        let seen_online_before = s.health.was_online;
        s.health.last_seen = Some(now);
        s.health.online = st.state == Presence::Online;
        s.health.was_online |= s.health.online;
        if st.firmware.is_some() {
            s.health.firmware = st.firmware;
        }
        if let Some(h) = st.heartbeat_s {
            s.health.heartbeat_s = h.clamp(1, 3600);
        }
        if s.health.online && !seen_online_before {
            // The first word from a device since the gateway started: no offline alarm was
            // raised for it, so none is cleared (62 "cleared" rows at every start said
            // nothing).
            tracing::debug!(device = %device, "device online");
            return Ok(Vec::new());
        }
        Ok(self.offline_alarm(device, was_online, now))
    }

    fn offline_alarm(
        &self,
        device: DeviceId,
        was_online: bool,
        now: DateTime<Utc>,
    ) -> Vec<AuditEntry> {
        let Some(s) = self.devices.get(&device) else {
            return Vec::new();
        };
        if was_online == s.health.online {
            return Vec::new();
        }
        tracing::info!(device = %device, online = s.health.online, "device health");
        vec![AuditEntry {
            at: now,
            actor: Actor::Device(device),
            event: AuditEvent::Alarm {
                door: s.device.door,
                device: Some(device),
                alarm: AlarmKind::DeviceOffline,
                raised: !s.health.online,
            },
        }]
    }

    /// The `now` this desk is given runs `rate` times as fast as the devices' own timers (a
    /// simulated day: the building's clock at 30x while the nodes heartbeat in real seconds).
    /// A heartbeat's period is judged on the building's clock accordingly.
    pub fn set_time_rate(&mut self, rate: f64) {
        self.time_rate = if rate.is_finite() && rate >= 1.0 {
            rate
        } else {
            1.0
        };
    }

    /// Marks devices silent for three heartbeats offline; returns the alarms.
    pub fn check_health(&mut self, now: DateTime<Utc>) -> Vec<AuditEntry> {
        let rate = self.time_rate;
        let silent: Vec<DeviceId> = self
            .devices
            .iter()
            .filter(|(_, s)| {
                let ms = (3_000.0 * f64::from(s.health.heartbeat_s) * rate) as i64;
                s.health.online
                    && s.health
                        .last_seen
                        .is_some_and(|t| now - t > chrono::Duration::milliseconds(ms))
            })
            .map(|(id, _)| *id)
            .collect();
        let mut alarms = Vec::new();
        for id in silent {
            if let Some(s) = self.devices.get_mut(&id) {
                s.health.online = false;
            }
            alarms.extend(self.offline_alarm(id, true, now));
        }
        alarms
    }

    /// A door node's offline log: the decisions not seen before, as audit entries (at the
    /// node's time, bounded by [`offline_time`]), and the signed acknowledgement to send once
    /// they are stored.
    pub fn handle_offline_log(
        &mut self,
        snapshot: &Snapshot,
        door: DoorId,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(Vec<AuditEntry>, Publish), Rejected> {
        let log: door::OfflineLog = parse(payload)?;
        if log.v != VERSION {
            return Err(Rejected::Version(log.v));
        }
        if log.door != door {
            return Err(Rejected::NotItsTopic(log.device.to_string()));
        }
        self.verify(
            log.device,
            DeviceKind::Door,
            Some(door),
            &log,
            Stream::OfflineLog,
            now,
        )?;
        let Some(s) = self.devices.get_mut(&log.device) else {
            return Err(Rejected::UnknownDevice(log.device.to_string()));
        };
        let mut entries = Vec::new();
        // Every entry of the log is dealt with once this returns: stored now, stored before,
        // or answered online (the tap reached the gateway late). The acknowledgement covers
        // them all, or a node whose offline taps were all answered late would send its log
        // for ever.
        let up_to = log
            .entries
            .iter()
            .map(|e| e.tap)
            .fold(s.offline_up_to, u64::max);
        for e in log
            .entries
            .iter()
            .filter(|e| e.tap > s.offline_up_to && !s.online_taps.contains(&e.tap))
        {
            let member = snapshot
                .credential(&crate::domain::Credential::Card(e.card))
                .map(|(rec, _)| rec.member);
            entries.push(AuditEntry {
                at: offline_time(e.at, now, log.device),
                actor: Actor::Door(door),
                event: AuditEvent::Decision {
                    door,
                    card: Some(e.card),
                    reason: e.reason,
                    unlock_ms: 0,
                    member,
                    booking: None,
                    offline: true,
                    tap: Some(e.tap),
                },
            });
        }
        s.offline_up_to = up_to;
        let unset = entries
            .iter()
            .filter(|e| {
                matches!(
                    e.event,
                    AuditEvent::Decision {
                        reason: Reason::OfflineAnyHour | Reason::OfflineClockUnset,
                        ..
                    }
                )
            })
            .count();
        if unset > 0 {
            // The node booted without the time: its entries are logged at their arrival.
            tracing::warn!(device = %log.device, taps = unset, "a door node decided taps with its clock unset");
            entries.push(AuditEntry::change(
                now,
                Actor::Door(door),
                format!(
                    "door node {} decided {unset} tap(s) offline with its clock unset (booted without network time or a real-time clock): only rights that hold at any hour were granted; logged at their arrival",
                    log.device
                ),
            ));
        }
        let device = log.device;
        let ack = self
            .sign_for(device, |counter| door::OfflineAck {
                v: VERSION,
                door,
                device,
                counter,
                up_to,
                mac: Default::default(),
            })
            .ok_or_else(|| Rejected::UnknownDevice(device.to_string()))?;
        Ok((
            entries,
            Publish {
                topic: self.topic(Topic::Door(door, DoorTopic::OfflineAck)),
                payload: json(&ack),
                retain: false,
            },
        ))
    }

    /// A sensor reading: the room of the registered sensor node that sent it, and the reading.
    pub fn handle_reading(
        &mut self,
        device: DeviceId,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<
        (
            crate::domain::RoomId,
            kombinat_protocol::sensor::Measurement,
        ),
        Rejected,
    > {
        let r: kombinat_protocol::sensor::Reading = parse(payload)?;
        if r.v != VERSION {
            return Err(Rejected::Version(r.v));
        }
        if r.device != device {
            return Err(Rejected::NotItsTopic(r.device.to_string()));
        }
        let s = self
            .devices
            .get_mut(&device)
            .ok_or_else(|| Rejected::UnknownDevice(device.to_string()))?;
        let room = match (s.device.kind, s.device.room) {
            (DeviceKind::Sensor, Some(room)) => room,
            _ => return Err(Rejected::NotItsTopic(device.to_string())),
        };
        // A reading is unsigned, but its counter still grows with every reading the node sends
        // (protocol/README.md): one delivered twice (QoS 1 redelivers) or replayed would count
        // its people twice.
        accept_counter(s.rx.get(Stream::Reading), device, r.counter)?;
        s.health.last_seen = Some(now);
        self.mark_dirty(device);
        Ok((room, r.reading))
    }

    /// A signed request to change the site mode, from an alert feed.
    pub fn handle_mode_set(
        &mut self,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(SiteMode, DeviceId), Rejected> {
        let m: ModeSet = parse(payload)?;
        if m.v != VERSION {
            return Err(Rejected::Version(m.v));
        }
        self.verify(
            m.device,
            DeviceKind::AlertFeed,
            None,
            &m,
            Stream::ModeSet,
            now,
        )?;
        Ok((m.mode, m.device))
    }

    /// A node's signed power report on `device/<device>/power`: (mains, battery millivolts).
    /// Door and sensor nodes send it.
    pub fn handle_power(
        &mut self,
        device: DeviceId,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(bool, Option<u32>), Rejected> {
        let p: Power = parse(payload)?;
        if p.v != VERSION {
            return Err(Rejected::Version(p.v));
        }
        self.verify_node(device, p.device, &p, Stream::Power, now)?;
        Ok((p.mains, p.battery_mv))
    }

    /// A node's signed dry-contact alert input on `device/<device>/alert`: whether it is active.
    pub fn handle_alert_input(
        &mut self,
        device: DeviceId,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<bool, Rejected> {
        let a: AlertInput = parse(payload)?;
        if a.v != VERSION {
            return Err(Rejected::Version(a.v));
        }
        self.verify_node(device, a.device, &a, Stream::Alert, now)?;
        Ok(a.active)
    }

    /// Checks a signed message a door or sensor node sent on its own `device/<id>/…` topic.
    fn verify_node<M: Signed>(
        &mut self,
        topic_device: DeviceId,
        device: DeviceId,
        msg: &M,
        stream: Stream,
        now: DateTime<Utc>,
    ) -> Result<(), Rejected> {
        if device != topic_device {
            return Err(Rejected::NotItsTopic(device.to_string()));
        }
        let kind = self
            .devices
            .get(&device)
            .map(|s| s.device.kind)
            .ok_or_else(|| Rejected::UnknownDevice(device.to_string()))?;
        if kind == DeviceKind::AlertFeed {
            return Err(Rejected::NotItsTopic(device.to_string()));
        }
        self.verify(device, kind, None, msg, stream, now)
    }

    /// The retained site mode message.
    pub fn mode_state(&self, mode: SiteMode, since: DateTime<Utc>) -> Publish {
        Publish {
            topic: self.topic(Topic::Mode),
            payload: json(&ModeState {
                v: VERSION,
                mode,
                since: since.timestamp().max(0) as u64,
            }),
            retain: true,
        }
    }

    /// A signed command to a door's node; `None` if the door has no node.
    pub fn command(&mut self, door: DoorId, action: Action) -> Option<Publish> {
        let device = self.device_of(door)?;
        let cmd = self.sign_for(device, |counter| door::Command {
            v: VERSION,
            door,
            device,
            counter,
            action,
            mac: Default::default(),
        })?;
        Some(Publish {
            topic: self.topic(Topic::Door(door, DoorTopic::Command)),
            payload: json(&cmd),
            retain: false,
        })
    }

    /// A signed, retained allow-list for a door's node; `None` if the door has no node. A list
    /// longer than a node holds ([`door::ALLOW_LIST_MAX`]) or than one MQTT packet carries keeps
    /// the entries valid soonest (then by card), and says so in the log: a node refuses a
    /// longer list whole, and a packet over the limit would break the gateway's broker link.
    pub fn allow_list(
        &mut self,
        door: DoorId,
        valid_from: DateTime<Utc>,
        valid_until: DateTime<Utc>,
        mut cards: Vec<AllowEntry>,
    ) -> Option<Publish> {
        let device = self.device_of(door)?;
        // Already done where the lists are worked out (off the core); cheap when it was.
        fit_for_node(door, &mut cards);
        let list = self.sign_for(device, |counter| door::AllowList {
            v: VERSION,
            door,
            device,
            counter,
            valid_from: valid_from.timestamp().max(0) as u64,
            valid_until: valid_until.timestamp().max(0) as u64,
            cards,
            mac: Default::default(),
        })?;
        Some(Publish {
            topic: self.topic(Topic::Door(door, DoorTopic::AllowList)),
            payload: json(&list),
            retain: true,
        })
    }
}

/// How far back a node's offline decision may be dated: a node decides offline only from an
/// allow-list, which reaches 72 hours at most; a week leaves room for a log that waited for the
/// link to come back.
pub const OFFLINE_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// Takes `counter` from `device` if it is past every one taken before; a replay otherwise.
fn accept_counter(rx: &mut ReplayGuard, device: DeviceId, counter: u64) -> Result<(), Rejected> {
    rx.accept(counter).map_err(|r| Rejected::Replay {
        device: device.to_string(),
        counter: r.counter,
        last: r.last,
    })
}

/// The time an offline decision is logged at: the node's clock, unless it is in the future or
/// older than [`OFFLINE_MAX_AGE`] (a node whose clock was wrong, or a forged date). Then the
/// arrival time: the log is ordered by time, and one entry dated 2100 would otherwise move its
/// clock on, put every later entry in 2100 and out of the retention period's reach.
pub fn offline_time(node_at: u64, now: DateTime<Utc>, device: DeviceId) -> DateTime<Utc> {
    match i64::try_from(node_at)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
    {
        Some(t) if t <= now && now - t <= OFFLINE_MAX_AGE => t,
        // A node with its clock unset says 0: expected, and said once per log by the caller.
        _ if node_at == 0 => now,
        _ => {
            tracing::warn!(
                device = %device,
                node_at,
                "an offline decision's time is in the future or too old: logged at its arrival"
            );
            now
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::World;
    use crate::domain::{CardId, Credential, MemberId, Role};
    use kombinat_protocol::auth::DeviceKey;

    fn door() -> DoorId {
        DoorId::parse("d-cowork-in").unwrap()
    }

    fn device() -> Device {
        Device {
            id: DeviceId::parse("door-cowork").unwrap(),
            kind: DeviceKind::Door,
            door: Some(door()),
            room: None,
            key: DeviceKey::from_bytes([1; 32]),
            added_at: Utc::now(),
        }
    }

    fn tap(counter: u64, key: &DeviceKey) -> Vec<u8> {
        let mut t = door::Tap {
            v: VERSION,
            door: door(),
            device: device().id,
            counter,
            credential: Credential::Card(CardId::parse("04A1B2C3").unwrap()),
            mac: Default::default(),
        };
        t.sign(key);
        serde_json::to_vec(&t).unwrap()
    }

    fn world() -> World {
        let mut w = World::new();
        w.member("staff", |m| m.roles = vec![Role::Staff]);
        // Give the staff member the card the taps carry.
        w.snapshot
            .upsert_credential(crate::domain::CredentialRecord {
                credential: Credential::Card(CardId::parse("04A1B2C3").unwrap()),
                member: MemberId::parse("staff").unwrap(),
                issued_at: Utc::now(),
                revoked_at: None,
            });
        w
    }

    #[test]
    fn refusals_are_logged_once_a_minute_per_sender_whatever_the_topic_and_name_it() {
        let mut m = Malformed::default();
        let t0 = Instant::now();
        let mac = |d: &str| Rejected::BadMac(d.into());
        // One node refused on four topics in a minute: logged once, counted four times.
        let logged: Vec<bool> = ["tap", "state", "offline-log", "tap"]
            .iter()
            .enumerate()
            .map(|(i, leaf)| {
                let topic = format!("kombinat/v1/door/d-main/{leaf}");
                let r = mac("door-main");
                m.count(&sender(&topic, &r), &r, t0 + Duration::from_secs(i as u64))
            })
            .collect();
        assert_eq!(logged, [true, false, false, false]);
        assert_eq!(m.counts()["bad_mac"], 4);
        // Three other senders are each logged.
        for d in ["door-a", "door-b", "door-c"] {
            let r = Rejected::UnknownDevice(d.into());
            assert!(m.count(&sender("kombinat/v1/door/x/tap", &r), &r, t0));
        }
        // After a minute the first is logged again.
        let r = mac("door-main");
        assert!(m.count(
            &sender("kombinat/v1/door/d-main/tap", &r),
            &r,
            t0 + Duration::from_secs(61)
        ));
        // A payload too large to read names the door or device of its topic.
        let big = Rejected::TooLarge(70_000);
        assert_eq!(
            sender("kombinat/v1/door/d-main/tap", &big),
            "the node on door d-main"
        );
        assert_eq!(
            sender("kombinat/v1/sensor/co2-hall/reading", &big),
            "device co2-hall"
        );
        assert_eq!(
            sender("kombinat/v1/device/co2-hall/status", &big),
            "device co2-hall"
        );
    }

    #[test]
    fn an_offline_decision_is_logged_at_the_node_s_time_only_when_it_can_be_true() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |t: DateTime<Utc>| u64::try_from(t.timestamp()).unwrap();
        let d = device().id;
        let hour_ago = now - chrono::Duration::hours(1);
        assert_eq!(offline_time(at(hour_ago), now, d), hour_ago);
        let in_2100 = DateTime::parse_from_rfc3339("2100-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(offline_time(at(in_2100), now, d), now, "not in the future");
        assert_eq!(offline_time(at(now) + 5, now, d), now);
        let month_ago = now - chrono::Duration::days(30);
        assert_eq!(offline_time(at(month_ago), now, d), now, "not too old");
        assert_eq!(offline_time(u64::MAX, now, d), now);
        assert_eq!(offline_time(0, now, d), now);
    }

    #[test]
    fn silence_is_judged_in_heartbeats_of_the_devices_own_time() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-26T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let online = br#"{"v":1,"state":"online","heartbeat_s":30}"#;
        let secs = |s: i64| t0 + chrono::Duration::seconds(s);
        // On the system clock: three heartbeats of 30 s missed is offline.
        let mut desk = Desk::new("kombinat/v1", 30, vec![device()], vec![]);
        desk.handle_status(device().id, online, t0).unwrap();
        assert!(desk.check_health(secs(90)).is_empty());
        let alarms = desk.check_health(secs(91));
        assert_eq!(alarms.len(), 1, "offline after 90 s of silence");
        // On a building clock running 30 times as fast (the demo's simulated day), 91 s of it
        // are 3 real seconds: the node still sends its status every 30 real seconds.
        let mut desk = Desk::new("kombinat/v1", 30, vec![device()], vec![]);
        desk.set_time_rate(30.0);
        desk.handle_status(device().id, online, t0).unwrap();
        assert!(desk.check_health(secs(91)).is_empty());
        assert!(desk.check_health(secs(2_700)).is_empty());
        assert_eq!(desk.check_health(secs(2_701)).len(), 1);
        // A rate below 1 or not a number is the system's.
        let mut desk = Desk::new("kombinat/v1", 30, vec![device()], vec![]);
        desk.set_time_rate(f64::NAN);
        desk.handle_status(device().id, online, t0).unwrap();
        assert_eq!(desk.check_health(secs(91)).len(), 1);
        // A node's first status after the gateway started sets its own heartbeat (a node that
        // reports every 5 minutes is not offline after 90 s).
        let mut desk = Desk::new("kombinat/v1", 30, vec![device()], vec![]);
        let slow = br#"{"v":1,"state":"online","heartbeat_s":300}"#;
        assert!(desk
            .handle_status(device().id, slow, t0)
            .unwrap()
            .is_empty());
        assert!(desk.check_health(secs(91)).is_empty());
        assert_eq!(desk.check_health(secs(901)).len(), 1);
    }

    #[test]
    fn a_tap_is_decided_once_and_answered_with_a_signed_decision() {
        let w = world();
        let mut desk = Desk::new("kombinat/v1", 30, vec![device()], vec![]);
        let key = device().key;
        let o = desk
            .handle_tap(&w.snapshot, door(), &tap(5, &key), Utc::now())
            .unwrap();
        assert_eq!(o.decision.reason, crate::domain::Reason::Staff);
        assert_eq!(o.reply.topic, "kombinat/v1/door/d-cowork-in/decision");
        let d: door::Decision = serde_json::from_slice(&o.reply.payload).unwrap();
        assert!(d.verify(&key) && d.tap == 5 && d.counter == 1);
        let again = desk.handle_tap(&w.snapshot, door(), &tap(5, &key), Utc::now());
        assert_eq!(again.unwrap_err().label(), "replay");
        let older = desk.handle_tap(&w.snapshot, door(), &tap(4, &key), Utc::now());
        assert_eq!(older.unwrap_err().label(), "replay");
        let forged = desk.handle_tap(
            &w.snapshot,
            door(),
            &tap(6, &DeviceKey::from_bytes([2; 32])),
            Utc::now(),
        );
        assert_eq!(forged.unwrap_err().label(), "bad_mac");
        // A forged tap does not use up the counter: the real 6 still goes through.
        assert!(desk
            .handle_tap(&w.snapshot, door(), &tap(6, &key), Utc::now())
            .is_ok());
        let marks = desk.take_marks(Utc::now());
        assert_eq!((marks[0].rx, marks[0].tx), (6, 2));
    }

    #[test]
    fn after_a_restart_counters_come_from_the_marks_and_the_log() {
        let w = world();
        let mark = DeviceMark {
            device: Some(device().id),
            rx: 10,
            tx: 3,
            offline: 0,
            at: Some(Utc::now()),
        };
        let mut desk = Desk::new("kombinat/v1", 30, vec![device()], vec![mark]);
        // The log shows tap 12 decided after the marks were stored.
        let mut entry = AuditEntry::change(Utc::now(), Actor::System, "");
        entry.event = AuditEvent::Decision {
            door: door(),
            card: None,
            reason: crate::domain::Reason::Staff,
            unlock_ms: 0,
            member: None,
            booking: None,
            offline: false,
            tap: Some(12),
        };
        desk.recover(&[crate::store::AuditRecord {
            id: Default::default(),
            entry,
        }]);
        let key = device().key;
        assert_eq!(
            desk.handle_tap(&w.snapshot, door(), &tap(12, &key), Utc::now())
                .unwrap_err()
                .label(),
            "replay"
        );
        let o = desk
            .handle_tap(&w.snapshot, door(), &tap(13, &key), Utc::now())
            .unwrap();
        let d: door::Decision = serde_json::from_slice(&o.reply.payload).unwrap();
        assert_eq!(
            d.counter,
            3 + TX_JUMP + 1,
            "the gateway's counter jumps past anything it may have sent"
        );
    }

    #[test]
    fn the_marks_are_due_at_once_when_a_counter_goes_half_its_jump_past_what_is_stored() {
        let mark = DeviceMark {
            device: Some(device().id),
            rx: 10,
            tx: 3,
            offline: 0,
            at: Some(Utc::now()),
        };
        let mut desk = Desk::new("kombinat/v1", 30, vec![device()], vec![mark]);
        assert!(!desk.marks_due(), "nothing sent yet");
        // The jump at start is not stored: the first message sent makes the marks due.
        assert!(desk.command(door(), Action::Lock).is_some());
        assert!(desk.marks_due());
        let marks = desk.take_marks(Utc::now());
        assert_eq!(marks[0].tx, 3 + TX_JUMP + 1);
        assert!(!desk.marks_due(), "stored");
        // Messages from the node and to it wait for the periodic store.
        for _ in 0..100 {
            assert!(desk.command(door(), Action::Normal).is_some());
        }
        assert!(!desk.marks_due());
        let marks = desk.take_marks(Utc::now());
        assert_eq!(marks[0].tx, 3 + TX_JUMP + 101);
    }

    #[test]
    fn refusals_are_counted_always_and_logged_once_a_minute_per_sender() {
        let mut m = Malformed::default();
        let t0 = Instant::now();
        let r = Rejected::Json("x".into());
        assert!(m.count("a", &r, t0));
        assert!(!m.count("a", &r, t0 + Duration::from_secs(30)));
        assert!(m.count("b", &r, t0 + Duration::from_secs(30)));
        assert!(m.count("a", &r, t0 + Duration::from_secs(61)));
        assert_eq!(m.counts().get("malformed_json"), Some(&4));
    }

    /// The sensor node of meeting room 1.
    fn meeting_sensor() -> Device {
        Device {
            id: DeviceId::parse("sensor-meeting").unwrap(),
            kind: DeviceKind::Sensor,
            door: None,
            room: Some(crate::domain::RoomId::parse("meeting-1").unwrap()),
            key: DeviceKey::from_bytes([2; 32]),
            added_at: Utc::now(),
        }
    }

    #[test]
    fn a_reading_delivered_twice_or_replayed_is_refused_and_counted_also_after_a_restart() {
        let sensor = meeting_sensor();
        let reading = |counter: u64| {
            format!(
                r#"{{"v":1,"device":"sensor-meeting","counter":{counter},"reading":{{"counter":{{"in":2,"out":0}}}}}}"#
            )
        };
        let now = Utc::now();
        let mut desk = Desk::new("kombinat/v1", 30, vec![sensor.clone()], vec![]);
        let (room, _) = desk
            .handle_reading(sensor.id, reading(5).as_bytes(), now)
            .unwrap();
        assert_eq!(room.as_str(), "meeting-1");
        for again in [5, 4, 1] {
            let r = desk.handle_reading(sensor.id, reading(again).as_bytes(), now);
            assert_eq!(r.unwrap_err().label(), "replay", "counter {again}");
        }
        assert!(desk
            .handle_reading(sensor.id, reading(6).as_bytes(), now)
            .is_ok());
        // The counter is among the marks the service stores, and a restarted desk refuses
        // what the node sent before.
        let marks = desk.all_marks(now);
        let mut desk = Desk::new("kombinat/v1", 30, vec![sensor.clone()], marks);
        let r = desk.handle_reading(sensor.id, reading(6).as_bytes(), now);
        assert_eq!(r.unwrap_err().label(), "replay");
        assert!(desk
            .handle_reading(sensor.id, reading(7).as_bytes(), now)
            .is_ok());
    }

    #[test]
    fn each_topic_keeps_its_own_order_and_a_replay_on_any_is_refused() {
        let sensor = meeting_sensor();
        let reading = |counter: u64| {
            format!(
                r#"{{"v":1,"device":"sensor-meeting","counter":{counter},"reading":{{"counter":{{"in":1,"out":0}}}}}}"#
            )
        };
        let power = |counter: u64| {
            let mut p = Power {
                v: VERSION,
                device: sensor.id,
                counter,
                mains: false,
                battery_mv: Some(12_100),
                mac: Default::default(),
            };
            p.sign(&sensor.key);
            serde_json::to_vec(&p).unwrap()
        };
        let now = Utc::now();
        let mut desk = Desk::new("kombinat/v1", 30, vec![sensor.clone()], vec![]);
        // The node sent reading 7 and then power report 8; the broker handed the report over
        // first. Both are taken: each is the newest on its topic.
        assert!(desk.handle_power(sensor.id, &power(8), now).is_ok());
        assert!(desk
            .handle_reading(sensor.id, reading(7).as_bytes(), now)
            .is_ok());
        // Each again, or older on its own topic, is a replay.
        let r = desk.handle_power(sensor.id, &power(8), now);
        assert_eq!(r.unwrap_err().label(), "replay");
        let r = desk.handle_power(sensor.id, &power(3), now);
        assert_eq!(r.unwrap_err().label(), "replay");
        for again in [7, 6] {
            let r = desk.handle_reading(sensor.id, reading(again).as_bytes(), now);
            assert_eq!(r.unwrap_err().label(), "replay", "reading {again}");
        }
        // The stored mark is the newest counter on any topic: after a restart nothing the
        // node sent before it is taken on any topic.
        let marks = desk.all_marks(now);
        assert_eq!(marks[0].rx, 8);
        let mut desk = Desk::new("kombinat/v1", 30, vec![sensor.clone()], marks);
        let r = desk.handle_reading(sensor.id, reading(8).as_bytes(), now);
        assert_eq!(r.unwrap_err().label(), "replay");
        assert!(desk.handle_power(sensor.id, &power(9), now).is_ok());
    }

    #[test]
    fn a_sensor_cannot_tap_and_a_door_node_cannot_tap_for_another_door() {
        let w = world();
        let mut sensor = device();
        sensor.kind = DeviceKind::Sensor;
        sensor.door = None;
        let mut desk = Desk::new("kombinat/v1", 30, vec![sensor], vec![]);
        let r = desk.handle_tap(&w.snapshot, door(), &tap(1, &device().key), Utc::now());
        assert_eq!(r.unwrap_err().label(), "not_its_topic");
        let mut desk = Desk::new("kombinat/v1", 30, vec![device()], vec![]);
        let r = desk.handle_tap(
            &w.snapshot,
            DoorId::parse("d-main").unwrap(),
            &tap(1, &device().key),
            Utc::now(),
        );
        assert_eq!(r.unwrap_err().label(), "not_its_topic");
        let r = desk.handle_tap(&w.snapshot, door(), b"[1,2]", Utc::now());
        assert_eq!(r.unwrap_err().label(), "malformed_json");
    }

    #[test]
    fn a_list_longer_than_a_node_holds_keeps_the_entries_valid_soonest_and_fits_a_packet() {
        let mut desk = Desk::new("kombinat/v1", 30, vec![device()], vec![]);
        let now = Utc::now();
        let t0 = now.timestamp() as u64;
        // Twice what a node holds, the later half valid sooner.
        let n = 2 * door::ALLOW_LIST_MAX;
        let cards: Vec<AllowEntry> = (0..n)
            .map(|i| AllowEntry {
                card: CardId::parse(&format!("05{i:08X}")).unwrap(),
                from: if i < n / 2 { t0 + 3_600 } else { t0 },
                until: t0 + 7_200,
            })
            .collect();
        let p = desk
            .allow_list(door(), now, now + chrono::Duration::hours(2), cards)
            .unwrap();
        assert!(p.payload.len() + p.topic.len() + 16 <= kombinat_protocol::MAX_PACKET);
        let l: door::AllowList = serde_json::from_slice(&p.payload).unwrap();
        assert_eq!(l.cards.len(), door::ALLOW_LIST_MAX);
        assert!(
            l.cards.iter().all(|e| e.from == t0),
            "the ones valid soonest"
        );
        assert!(
            l.cards.windows(2).all(|w| w[0].card < w[1].card),
            "sorted by card"
        );
        assert!(
            Signed::verify(&l, &device().key),
            "signed over what is sent"
        );
    }
}
