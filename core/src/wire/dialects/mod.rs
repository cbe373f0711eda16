//! Adapters for devices a building can buy today: esp-rfid door readers, Tasmota devices and
//! Zigbee2MQTT sensors, each bound to a door or a room in the site file.
//!
//! Sans-IO, like the desk: [`Adapters::handle`] takes a topic, a payload and the time and returns
//! native [`Event`]s (a tap to decide, a decision the device took itself, a door contact, a room
//! reading) plus health changes; the commands the devices need (esp-rfid's `adduser`, `deletuid`
//! and `opendoor`, a Tasmota relay) come back as [`Publish`]es for the service to send. One
//! module per firmware parses its payloads ([`esp_rfid`], [`tasmota`], [`zigbee2mqtt`]); this
//! module routes topics to bindings, keeps each device's health and schedules what must follow
//! later (a relay switched off after the unlock time). Formats: `../shared/design/DEVICES.md`.

pub mod esp_rfid;
pub mod tasmota;
pub mod zigbee2mqtt;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kombinat_protocol::door::AllowEntry;
use kombinat_protocol::sensor::Measurement;
use rustc_hash::FxHashMap;

use crate::domain::{Binding, BindingKind, CardId, DeviceId, DoorId, RoomId};
use crate::store::{Actor, AlarmKind, AuditEntry, AuditEvent};
use crate::wire::desk::{Publish, Rejected, MAX_PAYLOAD};

/// What a device's message comes to, in the gateway's own terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A card read the gateway decides (Tasmota readers).
    Tap {
        /// The reader.
        door: DoorId,
        card: CardId,
    },
    /// A decision the device took itself (esp-rfid), to log.
    Decided {
        /// The reader.
        door: DoorId,
        card: CardId,
        /// Whether it opened.
        allowed: bool,
        /// The device's own word for it (`Always`, `Expired`, …).
        word: String,
    },
    /// A door's contact.
    Contact {
        door: DoorId,
        /// Open (true) or closed.
        open: bool,
    },
    /// A reading for a room.
    Reading {
        room: RoomId,
        /// What was measured.
        measurement: Measurement,
    },
}

/// A bound device's health.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// Online by its availability topic (last will, `avty`, `availability`).
    pub online: bool,
    /// Availability was ever reported.
    pub known: bool,
    /// Last message of any kind.
    pub last_seen: Option<DateTime<Utc>>,
    /// Battery, percent, where the device reports it.
    pub battery: Option<u8>,
}

/// What one topic of a binding carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// esp-rfid `<T>/send`.
    EspSend,
    /// esp-rfid `<T>/avty`.
    EspAvty,
    /// Tasmota `tele/<t>/SENSOR`.
    TasSensor,
    /// Tasmota `tele/<t>/LWT`.
    TasLwt,
    /// Tasmota `tele/<t>/STATE`, `stat/<t>/RESULT`, `stat/<t>/POWER<n>`: signs of life.
    TasAlive,
    /// Zigbee2MQTT `zigbee2mqtt/<name>`.
    Z2mState,
    /// Zigbee2MQTT `zigbee2mqtt/<name>/availability`.
    Z2mAvailability,
}

/// What [`Adapters::handle`] returns for a message on a bound topic.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The device it came from.
    pub device: Option<DeviceId>,
    /// Native events.
    pub events: Vec<Event>,
    /// Alarms raised or cleared (a device going offline or coming back).
    pub alarms: Vec<AuditEntry>,
    /// Commands the device needs now (a Tasmota relay's pulse time when it comes online).
    pub commands: Vec<Publish>,
    /// The device came (back) online: its user list is pushed again in full.
    pub resync: bool,
}

struct Device {
    binding: Binding,
    health: Health,
    /// Zigbee2MQTT: the merged state, as payloads are partial.
    state: serde_json::Map<String, serde_json::Value>,
    /// esp-rfid: what its user list holds, as far as the gateway sent it (card → window).
    sent: BTreeMap<CardId, (u64, u64)>,
    /// esp-rfid: cards deleted whose window had not ended yet: deleted again whenever the
    /// reader comes back, in case it missed the `deletuid` (card → end of the old window).
    deleted: BTreeMap<CardId, u64>,
    /// Tasmota: the last card read and when, as readers repeat a card held to them.
    last_read: Option<(CardId, DateTime<Utc>)>,
    /// Tasmota: the relay is held on (emergency, public hours): taps leave it alone.
    held: bool,
    /// The strike release time of its door.
    unlock_ms: u32,
}

/// The adapters of a site's bound devices.
pub struct Adapters {
    devices: Vec<Device>,
    by_topic: FxHashMap<String, (usize, Part)>,
    by_door: FxHashMap<DoorId, usize>,
    /// Relays to switch off: (when, device, door).
    relays_off: Vec<(DateTime<Utc>, usize)>,
}

/// The same card read again at the same reader within this many seconds is the same tap.
const REPEAT_S: i64 = 3;

/// Tasmota's `PulseTime` for a pulse of `ms`: tenths of a second up to 11.1 s, then whole
/// seconds plus 100.
pub fn pulse_time(ms: u32) -> u32 {
    let tenths = ms.div_ceil(100).max(1);
    if tenths <= 111 {
        tenths
    } else {
        (ms.div_ceil(1000) + 100).min(64_900)
    }
}

fn seconds(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

impl Adapters {
    /// The adapters for these bindings; `unlock_ms` gives a door's strike release time.
    pub fn new(bindings: &[Binding], unlock_ms: impl Fn(DoorId) -> u32) -> Self {
        let mut a = Adapters {
            devices: Vec::new(),
            by_topic: FxHashMap::default(),
            by_door: FxHashMap::default(),
            relays_off: Vec::new(),
        };
        for b in bindings {
            let i = a.devices.len();
            let t = &b.topic;
            let topics: Vec<(String, Part)> = match b.kind {
                BindingKind::EspRfid => vec![
                    (format!("{t}/send"), Part::EspSend),
                    (format!("{t}/avty"), Part::EspAvty),
                ],
                BindingKind::Tasmota => vec![
                    (format!("tele/{t}/SENSOR"), Part::TasSensor),
                    (format!("tele/{t}/LWT"), Part::TasLwt),
                    (format!("tele/{t}/STATE"), Part::TasAlive),
                    (format!("stat/{t}/RESULT"), Part::TasAlive),
                    (format!("stat/{t}/POWER{}", b.relay), Part::TasAlive),
                    // With one relay, Tasmota answers on POWER without a number.
                    (format!("stat/{t}/POWER"), Part::TasAlive),
                ],
                BindingKind::Zigbee2mqtt => vec![
                    (format!("zigbee2mqtt/{t}"), Part::Z2mState),
                    (
                        format!("zigbee2mqtt/{t}/availability"),
                        Part::Z2mAvailability,
                    ),
                ],
            };
            for (topic, part) in topics {
                // A device's own state topic wins over another's availability topic of the
                // same name (a Zigbee2MQTT device may be called "x/availability").
                let own = matches!(part, Part::Z2mState | Part::EspSend | Part::TasSensor);
                if own || !a.by_topic.contains_key(&topic) {
                    a.by_topic.insert(topic, (i, part));
                }
            }
            if matches!(b.kind, BindingKind::EspRfid | BindingKind::Tasmota) {
                for d in &b.doors {
                    a.by_door.entry(*d).or_insert(i);
                }
            }
            a.devices.push(Device {
                unlock_ms: b.door().map_or(0, &unlock_ms),
                binding: b.clone(),
                health: Health::default(),
                state: serde_json::Map::new(),
                sent: BTreeMap::new(),
                deleted: BTreeMap::new(),
                last_read: None,
                held: false,
            });
        }
        a
    }

    /// The topics to subscribe to.
    pub fn filters(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_topic.keys().cloned().collect();
        v.sort();
        v
    }

    /// Whether a topic belongs to a bound device.
    pub fn takes(&self, topic: &str) -> bool {
        self.by_topic.contains_key(topic)
    }

    /// Every bound device with its health.
    pub fn health(&self) -> impl Iterator<Item = (&Binding, &Health)> {
        self.devices.iter().map(|d| (&d.binding, &d.health))
    }

    /// The bound device serving a door as its reader, if any.
    pub fn reader(&self, door: DoorId) -> Option<&Binding> {
        self.by_door.get(&door).map(|&i| &self.devices[i].binding)
    }

    /// Doors whose readers keep a user list the gateway maintains (esp-rfid).
    pub fn listed_doors(&self) -> Vec<DoorId> {
        self.devices
            .iter()
            .filter(|d| d.binding.kind == BindingKind::EspRfid)
            .flat_map(|d| d.binding.doors.iter().copied())
            .collect()
    }

    /// A message on a bound topic; `None` when the topic is not a bound device's. A retained
    /// message is the broker's memory, replayed on every reconnect: it updates state (a door's
    /// contact, availability) but never opens a door or counts as presence.
    pub fn handle(
        &mut self,
        topic: &str,
        payload: &[u8],
        retained: bool,
        now: DateTime<Utc>,
    ) -> Option<Result<Outcome, Rejected>> {
        let &(i, part) = self.by_topic.get(topic)?;
        let mut r = self.handle_part(i, part, payload, now);
        if let Ok(o) = &mut r {
            if retained {
                o.events.retain(|e| matches!(e, Event::Contact { .. }));
            }
            // A card held to a Tasmota reader is read again every second or two: one tap.
            let dev = &mut self.devices[i];
            o.events.retain(|e| match e {
                Event::Tap { card, .. } => {
                    let repeat = dev.last_read.is_some_and(|(c, t)| {
                        c == *card && now - t < chrono::Duration::seconds(REPEAT_S)
                    });
                    dev.last_read = Some((*card, now));
                    !repeat
                }
                _ => true,
            });
        }
        Some(r)
    }

    fn handle_part(
        &mut self,
        i: usize,
        part: Part,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Outcome, Rejected> {
        if payload.len() > MAX_PAYLOAD {
            return Err(Rejected::TooLarge(payload.len()));
        }
        let dev = &mut self.devices[i];
        let b = &dev.binding;
        let mut out = Outcome {
            device: Some(b.id),
            ..Default::default()
        };
        let availability = match part {
            Part::EspAvty => Some(esp_rfid::parse_availability(payload)?),
            Part::TasLwt => Some(tasmota::parse_lwt(payload)?),
            Part::Z2mAvailability => Some(zigbee2mqtt::parse_availability(payload)?),
            Part::EspSend => {
                out.events = esp_rfid::parse_event(b, payload)?;
                None
            }
            Part::TasSensor => {
                out.events = tasmota::parse_sensor(b, payload)?;
                None
            }
            Part::TasAlive => None,
            Part::Z2mState => {
                let (events, battery) = zigbee2mqtt::merge(b, &mut dev.state, payload)?;
                out.events = events;
                if battery.is_some() {
                    dev.health.battery = battery;
                }
                None
            }
        };
        dev.health.last_seen = Some(now);
        if let Some(online) = availability {
            let was = dev.health.online;
            let known = dev.health.known;
            dev.health.online = online;
            dev.health.known = true;
            if online && (!was || !known) {
                out.resync = b.kind == BindingKind::EspRfid;
                // A relay held open stays so after the device restarts; otherwise its pulse.
                if self.devices[i].held {
                    let door = self.devices[i].binding.door();
                    out.commands
                        .extend(door.and_then(|d| self.hold(d, true)).unwrap_or_default());
                } else {
                    out.commands.extend(self.pulse_times(i));
                }
            }
            let dev = &self.devices[i];
            // A change, or a device found offline at its first report (a retained last will).
            if (known && was != online) || (!known && !online) {
                tracing::info!(device = %dev.binding.id, online, "device health");
                out.alarms.push(AuditEntry {
                    at: now,
                    actor: Actor::Device(dev.binding.id),
                    event: AuditEvent::Alarm {
                        door: dev.binding.door(),
                        device: Some(dev.binding.id),
                        alarm: AlarmKind::DeviceOffline,
                        raised: !online,
                    },
                });
            }
        }
        Ok(out)
    }

    /// A Tasmota strike relay's pulse time, set to its door's unlock time, so the relay
    /// switches itself off even if the gateway's "off" never arrives.
    fn pulse_times(&self, i: usize) -> Option<Publish> {
        let d = &self.devices[i];
        if d.binding.kind != BindingKind::Tasmota || d.binding.door().is_none() {
            return None;
        }
        Some(Publish {
            topic: format!("cmnd/{}/PulseTime{}", d.binding.topic, d.binding.relay),
            payload: pulse_time(d.unlock_ms).to_string().into_bytes(),
            retain: false,
        })
    }

    /// The pulse time of every Tasmota strike relay: sent at start (and to each device again
    /// whenever it comes online).
    pub fn configure_relays(&self) -> Vec<Publish> {
        (0..self.devices.len())
            .filter_map(|i| self.pulse_times(i))
            .collect()
    }

    /// How long a bound reader keeps its door open on [`Adapters::unlock`]: the device's own
    /// setting for esp-rfid, the relay's pulse time for Tasmota (the door's unlock time).
    pub fn unlock_ms(&self, door: DoorId) -> Option<u32> {
        let &i = self.by_door.get(&door)?;
        let d = &self.devices[i];
        match d.binding.kind {
            BindingKind::Tasmota => Some(d.unlock_ms),
            _ => None,
        }
    }

    /// Opens a door through its bound reader: esp-rfid's `opendoor` (its own unlock time), or
    /// a Tasmota relay switched on now (its pulse time switches it off, and so does
    /// [`Adapters::due`] after `ms`). `None` when no bound device drives that door.
    pub fn unlock(&mut self, door: DoorId, ms: u32, now: DateTime<Utc>) -> Option<Vec<Publish>> {
        let &i = self.by_door.get(&door)?;
        let b = &self.devices[i].binding;
        match b.kind {
            BindingKind::EspRfid => Some(vec![esp_rfid::open_door(b)]),
            // Held open already: nothing to switch, and no "off" to schedule.
            BindingKind::Tasmota if self.devices[i].held => Some(Vec::new()),
            BindingKind::Tasmota => {
                let on = Publish {
                    topic: format!("cmnd/{}/POWER{}", b.topic, b.relay),
                    payload: b"ON".to_vec(),
                    retain: false,
                };
                let off_at = now + chrono::Duration::milliseconds(i64::from(ms));
                self.relays_off.retain(|(_, j)| *j != i);
                self.relays_off.push((off_at, i));
                Some(vec![on])
            }
            BindingKind::Zigbee2mqtt => None,
        }
    }

    /// Doors whose bound reader can hold them open (a Tasmota relay): for the site mode
    /// (emergency egress, the shelter route) and public hours. esp-rfid has no such command.
    pub fn holdable_doors(&self) -> Vec<DoorId> {
        self.devices
            .iter()
            .filter(|d| d.binding.kind == BindingKind::Tasmota)
            .filter_map(|d| d.binding.door())
            .collect()
    }

    /// Holds a door's relay on (`open`: no pulse, switched on) or gives it back to taps (its
    /// pulse time again, switched off). `None` when no relay drives the door.
    pub fn hold(&mut self, door: DoorId, open: bool) -> Option<Vec<Publish>> {
        let &i = self.by_door.get(&door)?;
        if self.devices[i].binding.kind != BindingKind::Tasmota {
            return None;
        }
        self.devices[i].held = open;
        let d = &self.devices[i];
        let (t, n) = (&d.binding.topic, d.binding.relay);
        let cmd = |what: &str, payload: String| Publish {
            topic: format!("cmnd/{t}/{what}{n}"),
            payload: payload.into_bytes(),
            retain: false,
        };
        // MQTT keeps the order of one connection's messages: the pulse is changed first.
        let out = if open {
            self.relays_off.retain(|(_, j)| *j != i);
            vec![cmd("PulseTime", "0".into()), cmd("POWER", "ON".into())]
        } else {
            vec![
                cmd("PulseTime", pulse_time(d.unlock_ms).to_string()),
                cmd("POWER", "OFF".into()),
            ]
        };
        Some(out)
    }

    /// What is due at `now`: relays to switch off.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<Publish> {
        let mut out = Vec::new();
        let devices = &self.devices;
        self.relays_off.retain(|(at, i)| {
            if *at > now {
                return true;
            }
            let b = &devices[*i].binding;
            out.push(Publish {
                topic: format!("cmnd/{}/POWER{}", b.topic, b.relay),
                payload: b"OFF".to_vec(),
                retain: false,
            });
            false
        });
        out
    }

    /// Brings the esp-rfid user lists in line with the doors' allow-lists: per card, the window
    /// that holds `now` (or the next one), as `adduser`; cards no longer listed, `deletuid`.
    /// `full` sends every entry again (the device came back, or the gateway restarted).
    /// `user` names a card's holder for the device's own log.
    pub fn sync_user_lists(
        &mut self,
        lists: &BTreeMap<DoorId, Vec<AllowEntry>>,
        now: DateTime<Utc>,
        full: bool,
        user: impl Fn(CardId) -> String,
    ) -> Vec<Publish> {
        let t = seconds(now);
        let mut out = Vec::new();
        for dev in self
            .devices
            .iter_mut()
            .filter(|d| d.binding.kind == BindingKind::EspRfid)
        {
            // One window per card: the device keeps one, the one that holds now or comes next.
            // Its access type ("1") covers the first relay, so the list is the first door's;
            // further relays' events are logged, their doors' lists are not kept here.
            let Some(entries) = dev.binding.door().and_then(|d| lists.get(&d)) else {
                // The door's list was not computed: change nothing on this device.
                continue;
            };
            let mut want: BTreeMap<CardId, (u64, u64)> = BTreeMap::new();
            for e in entries.iter().filter(|e| e.until > t) {
                let slot = want.entry(e.card).or_insert((e.from, e.until));
                if e.from < slot.0 {
                    *slot = (e.from, e.until);
                }
            }
            let mut kept = BTreeMap::new();
            for (card, w) in want {
                let old = dev.sent.get(&card).copied();
                // Lists are computed over a window starting now, so a right that never ends
                // comes back a little longer each time: sent again only when its window moved
                // (a new start, a shorter end, or an end more than an hour later), not each
                // round, as every `adduser` is a write to the reader's flash.
                let keep = match old {
                    Some(o) if !full => {
                        let same_start = o.0 == w.0 || (o.0 <= t && w.0 <= t);
                        same_start && w.1 >= o.1 && w.1 <= o.1 + 3600
                    }
                    _ => false,
                };
                if keep {
                    kept.insert(card, old.unwrap_or(w));
                } else {
                    out.push(esp_rfid::add_user(&dev.binding, card, &user(card), w));
                    kept.insert(card, w);
                }
                dev.deleted.remove(&card);
            }
            for (card, (_, until)) in &dev.sent {
                if !kept.contains_key(card) {
                    out.push(esp_rfid::delete_user(&dev.binding, *card));
                    dev.deleted.insert(*card, *until);
                }
            }
            // Deletions the reader may have missed while it was away are sent again.
            dev.deleted.retain(|_, until| *until > t);
            if full {
                for card in dev.deleted.keys().filter(|c| !dev.sent.contains_key(c)) {
                    out.push(esp_rfid::delete_user(&dev.binding, *card));
                }
            }
            dev.sent = kept;
        }
        out
    }

    /// The earliest end of a window on an esp-rfid reader's list: then the card's next window
    /// (if any) is due, so the lists should be brought up to date again.
    pub fn next_window_end(&self) -> Option<u64> {
        self.devices
            .iter()
            .flat_map(|d| d.sent.values().map(|(_, until)| *until))
            .min()
    }

    /// What each esp-rfid device's list holds, as last sent, and the deletions it may have
    /// missed (to keep across a restart).
    pub fn sent_lists(&self) -> Vec<UserList> {
        self.devices
            .iter()
            .filter(|d| d.binding.kind == BindingKind::EspRfid)
            .map(|d| UserList {
                device: d.binding.id,
                sent: d.sent.iter().map(|(c, (f, u))| (*c, *f, *u)).collect(),
                deleted: d.deleted.iter().map(|(c, u)| (*c, *u)).collect(),
            })
            .collect()
    }

    /// Restores what each esp-rfid device's list holds (from before a restart), so cards that
    /// lost their right meanwhile are deleted.
    pub fn restore_sent(&mut self, lists: Vec<UserList>) {
        for l in lists {
            if let Some(d) = self.devices.iter_mut().find(|d| d.binding.id == l.device) {
                d.sent = l.sent.into_iter().map(|(c, f, u)| (c, (f, u))).collect();
                d.deleted = l.deleted.into_iter().collect();
            }
        }
    }
}

/// An esp-rfid reader's user list as the gateway keeps it across restarts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserList {
    /// The reader.
    pub device: DeviceId,
    /// Cards sent with `adduser`: card, valid since, valid until.
    pub sent: Vec<(CardId, u64, u64)>,
    /// Cards deleted before their window ended: card, end of that window.
    pub deleted: Vec<(CardId, u64)>,
}

/// Looks a key up in a JSON object without regard to case (device firmwares differ: `DATA`,
/// `Data`).
pub(crate) fn get_ci<'a>(
    map: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<&'a serde_json::Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A number that may come as a string (`"359"`).
pub(crate) fn number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

/// A boolean that may come as a string or a number (`"true"`, `"ON"`, `1`).
pub(crate) fn boolean(v: &serde_json::Value) -> Option<bool> {
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::Number(n) => n.as_f64().map(|x| x != 0.0),
        serde_json::Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "1" | "yes" | "open" => Some(true),
            "false" | "off" | "0" | "no" | "closed" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The JSON object in a payload.
pub(crate) fn object(
    payload: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, Rejected> {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(Rejected::Json("expected a JSON object".into())),
        Err(e) => Err(Rejected::Json(e.to_string())),
    }
}

/// A plain availability word (`online`, `Offline`), or a JSON `{"state":"online"}`.
pub(crate) fn availability_word(payload: &[u8]) -> Result<bool, Rejected> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| Rejected::Json("availability is not text".into()))?
        .trim();
    match text.to_ascii_lowercase().as_str() {
        "online" => return Ok(true),
        "offline" => return Ok(false),
        _ => {}
    }
    let m = object(payload)?;
    match get_ci(&m, "state").and_then(|v| v.as_str()) {
        Some(s) if s.eq_ignore_ascii_case("online") => Ok(true),
        Some(s) if s.eq_ignore_ascii_case("offline") => Ok(false),
        _ => Err(Rejected::Json(format!(
            "availability {text:?} is neither online nor offline"
        ))),
    }
}

#[cfg(test)]
mod tests;
