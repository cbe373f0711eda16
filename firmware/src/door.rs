//! The door node's state machine: a credential is read → the node asks the gateway → it releases
//! the strike for the granted time → it relocks; with the door contact, the request-to-exit
//! button, the tamper input, the held-open and forced-open alarms, LED and buzzer feedback, and
//! offline decisions from the gateway's signed allow-list when no valid answer comes in time.
//!
//! [`DoorController`] is sans-IO: the caller passes the time ([`Time`]), the inputs it read
//! ([`Inputs`]), every credential and every message from the gateway, and applies the
//! [`Outputs`] it gets back; messages to the gateway go through a [`Network`]. It allocates
//! nothing: the allow-list and the offline log live in fixed tables sized by const generics
//! (`CARDS`, `LOG`). [`DoorPins`] owns the GPIO pins and turns [`Outputs`] into levels.
//!
//! Security rules kept here, whatever the transport: every message from the gateway is checked
//! for its door, its device, its MAC and a counter greater than the last one accepted; a decision
//! must answer the tap the node is waiting for; the strike is released only for a verified grant,
//! an exit request, a verified command, or a card on a verified allow-list within its window.

use embedded_hal::digital::{InputPin, OutputPin};
use heapless::Vec;
use kombinat_protocol::auth::{mac_of, DeviceKey, ReplayGuard, Signed};
use kombinat_protocol::door::{
    offline_log_fields, Action, AllowEntry, AllowListHead, Command, Contact, Decision, DoorState,
    OfflineAck, OfflineEntry, Tap, OFFLINE_LOG_KIND, VERSION,
};
use kombinat_protocol::{Credential, DeviceId, DoorId, Reason};

use crate::net::{Network, OfflineLogOut, Up};
pub use crate::supply::{Supply, SupplyReporter, BATTERY_STEP_MV};
use crate::Time;

/// The longest release a decision or command may ask for; longer asks are cut to this.
pub const MAX_UNLOCK_MS: u32 = 60_000;

/// Offline log entries sent in one message (keeps it far below the gateway's 64 KiB limit).
pub const LOG_CHUNK: usize = 64;

/// How the strike behaves without power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockKind {
    /// Locked without power (an electric strike): energised to release. Most doors.
    FailSecure,
    /// Released without power (a magnetic lock on an escape route): energised to hold.
    FailSafe,
}

/// A door node's settings.
#[derive(Debug, Clone)]
pub struct DoorConfig {
    /// The door reader this node serves.
    pub door: DoorId,
    /// The node's device id.
    pub device: DeviceId,
    /// The node's key, shared with the gateway.
    pub key: DeviceKey,
    /// Fail-secure or fail-safe.
    pub lock: LockKind,
    /// How long to wait for the gateway's decision before deciding from the allow-list.
    pub decision_timeout_ms: u32,
    /// How long an exit request releases the strike.
    pub exit_unlock_ms: u32,
    /// How long an offline grant releases the strike.
    pub offline_unlock_ms: u32,
    /// How long the door may stand open before the held-open alarm.
    pub held_open_ms: u32,
    /// How often the door state is sent when nothing changes.
    pub heartbeat_ms: u32,
    /// How often an unacknowledged offline log is sent again.
    pub log_resend_ms: u32,
    /// The same credential read again within this time is one tap (a card held to the reader).
    pub repeat_ms: u32,
    /// The first counter this boot signs with: keep a boot count in flash and start at
    /// `boot_count << 32`, so that a counter is never reused.
    pub counter_start: u64,
    /// The last gateway counter accepted before this boot (0 if not kept).
    pub gateway_counter_after: u64,
    /// The counter of the allow-list held before this boot (0 if not kept): an older list,
    /// replayed after a reboot, is refused.
    pub list_counter_after: u64,
    /// Whether the door was released by a command when the node last stopped (kept so that a
    /// power blip during an emergency does not lock an escape route).
    pub released: bool,
    /// The door contact must hold a new position this long before it counts (reed switches
    /// bounce).
    pub debounce_ms: u32,
    /// The latest Unix time the node knew before it stopped (kept in its state file): with its
    /// clock unset it is at least then, so a list that ran out before it is refused.
    pub known_unix: u64,
}

impl DoorConfig {
    /// Settings with the protocol's usual timings: 800 ms decision timeout, 5 s exit release,
    /// 3 s offline release, 30 s held-open limit, state every 30 s, log resent every 5 s.
    pub fn new(door: DoorId, device: DeviceId, key: DeviceKey) -> Self {
        DoorConfig {
            door,
            device,
            key,
            lock: LockKind::FailSecure,
            decision_timeout_ms: 800,
            exit_unlock_ms: 5_000,
            offline_unlock_ms: 3_000,
            held_open_ms: 30_000,
            heartbeat_ms: 30_000,
            log_resend_ms: 5_000,
            repeat_ms: 1_500,
            counter_start: 1,
            gateway_counter_after: 0,
            list_counter_after: 0,
            released: false,
            debounce_ms: 50,
            known_unix: 0,
        }
    }
}

/// What the node reads from its inputs, already in meaning (the pins' polarity is
/// [`DoorPins`]' business).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inputs {
    /// The door contact says open.
    pub contact_open: bool,
    /// The request-to-exit button is pressed.
    pub exit_pressed: bool,
    /// The housing's tamper switch is open.
    pub tamper: bool,
}

/// What the node drives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outputs {
    /// The strike relay's coil is energised (released on a fail-secure door, held on a
    /// fail-safe one).
    pub strike: bool,
    /// Green LED.
    pub green: bool,
    /// Red LED.
    pub red: bool,
    /// The buzzer sounds (a refusal, a door held open).
    pub buzzer: bool,
}

/// Why a message from the gateway was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Meant for another door or device.
    NotMine,
    /// The MAC does not match.
    BadMac,
    /// Its counter is not greater than the last one accepted.
    Replayed,
    /// A decision for a tap the node is not waiting for (too late, or never asked).
    NotWaiting,
    /// An allow-list longer than the node's table.
    TooLong,
    /// An allow-list that is not sorted by card, or has an empty window.
    Malformed,
    /// An allow-list older than the one held.
    Older,
}

/// Counters of what happened, for the node's log and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DoorStats {
    /// Taps sent to the gateway.
    pub taps_sent: u32,
    /// Decisions taken from the allow-list.
    pub offline_decisions: u32,
    /// Offline log entries dropped because the log was full (the oldest go first).
    pub log_dropped: u32,
    /// Messages from the gateway refused.
    pub refused: u32,
    /// Messages that could not be sent.
    pub send_failures: u32,
}

/// How a tap ended, for whoever stands at the door (and the simulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The tap's counter.
    pub tap: u64,
    /// Whether the strike was released.
    pub allow: bool,
    /// The reason (the gateway's, or the node's own offline reason).
    pub reason: Reason,
    /// Decided by the node from its allow-list.
    pub offline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Granted,
    Denied,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    tap: u64,
    credential: Credential,
    since: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reported {
    contact_open: bool,
    locked: bool,
    held_open: bool,
    forced: bool,
    tamper: bool,
}

/// The gateway's topics, each with its own replay counter.
const DECISIONS: usize = 0;
const COMMANDS: usize = 1;
const OFFLINE_ACKS: usize = 2;

/// The door node's state machine, with room for `CARDS` allow-list entries and `LOG` offline
/// decisions.
pub struct DoorController<const CARDS: usize, const LOG: usize> {
    cfg: DoorConfig,
    counter: u64,
    /// The last gateway counter accepted on each topic: decisions, commands, offline acks.
    /// MQTT keeps the gateway's messages in order on one topic only, so a command overtaken by
    /// a decision sent after it is still the gateway's latest command (protocol/README.md).
    gateway: [ReplayGuard; 3],
    pending: Option<Pending>,
    last_read: Option<(Credential, u64)>,
    unlocked_until: Option<u64>,
    released: bool,
    opened_since_unlock: bool,
    contact_open: bool,
    contact_raw: (bool, u64),
    opened_at: u64,
    exit_was_pressed: bool,
    held_open: bool,
    forced: bool,
    tamper: bool,
    signal: Option<(Signal, u64, u64)>,
    list: Option<AllowListHead>,
    cards: Vec<AllowEntry, CARDS>,
    log: Vec<OfflineEntry, LOG>,
    log_sent_at: Option<u64>,
    reported: Option<Reported>,
    reported_at: u64,
    outcome: Option<Outcome>,
    stats: DoorStats,
    /// What the supply and the alert contact last reported.
    supply_reported: SupplyReporter,
    /// The latest Unix time seen (or kept from before a reboot).
    known_unix: u64,
}

impl<const CARDS: usize, const LOG: usize> DoorController<CARDS, LOG> {
    /// A node at rest: locked, no allow-list, nothing logged.
    pub fn new(cfg: DoorConfig) -> Self {
        let released = cfg.released;
        let known_unix = cfg.known_unix;
        DoorController {
            counter: cfg.counter_start.max(1) - 1,
            gateway: [ReplayGuard::after(cfg.gateway_counter_after); 3],
            cfg,
            pending: None,
            last_read: None,
            unlocked_until: None,
            released,
            opened_since_unlock: false,
            contact_open: false,
            contact_raw: (false, 0),
            opened_at: 0,
            exit_was_pressed: false,
            held_open: false,
            forced: false,
            tamper: false,
            signal: None,
            list: None,
            cards: Vec::new(),
            log: Vec::new(),
            log_sent_at: None,
            reported: None,
            reported_at: 0,
            outcome: None,
            stats: DoorStats::default(),
            supply_reported: SupplyReporter::default(),
            known_unix,
        }
    }

    /// The settings.
    pub fn config(&self) -> &DoorConfig {
        &self.cfg
    }

    /// The last counter this node signed with (keep it, or the boot count, in flash).
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The last gateway counter accepted on any topic (keep it to refuse replays across a
    /// reboot).
    pub fn gateway_counter(&self) -> u64 {
        self.gateway
            .iter()
            .map(ReplayGuard::last)
            .max()
            .unwrap_or(0)
    }

    /// The counter of the allow-list held (keep it to refuse an older one after a reboot).
    pub fn list_counter(&self) -> u64 {
        self.list.map_or(self.cfg.list_counter_after, |h| h.counter)
    }

    /// The latest Unix time the node has known (keep it across a reboot: with the clock unset
    /// after one, lists that ran out before it are refused).
    pub fn known_unix(&self) -> u64 {
        self.known_unix
    }

    /// Whether a command holds the door released (keep it across a reboot).
    pub fn released(&self) -> bool {
        self.released
    }

    /// What happened so far.
    pub fn stats(&self) -> DoorStats {
        self.stats
    }

    /// Offline decisions not yet acknowledged by the gateway.
    pub fn offline_log(&self) -> &[OfflineEntry] {
        &self.log
    }

    /// The allow-list held, if any: its head and cards.
    pub fn held_list(&self) -> Option<(&AllowListHead, &[AllowEntry])> {
        self.list.as_ref().map(|h| (h, self.cards.as_slice()))
    }

    /// How the last tap ended.
    pub fn last_outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// Whether the node is waiting for the gateway's decision.
    pub fn waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether the strike is released at `now_ms`.
    pub fn unlocked(&self, now_ms: u64) -> bool {
        self.released || self.unlocked_until.is_some_and(|u| now_ms < u)
    }

    fn next_counter(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn release_for(&mut self, now: u64, ms: u32) {
        let until = now + u64::from(ms.min(MAX_UNLOCK_MS));
        // A new grant may lengthen a release, never shorten one already given.
        self.unlocked_until = Some(self.unlocked_until.map_or(until, |u| u.max(until)));
        if !self.contact_open {
            self.opened_since_unlock = false;
        }
    }

    fn finish(&mut self, outcome: Outcome, now: u64, unlock_ms: u32) {
        if outcome.allow {
            self.release_for(now, unlock_ms);
            self.signal = Some((Signal::Granted, now, now + u64::from(unlock_ms.min(3_000))));
        } else {
            self.signal = Some((Signal::Denied, now, now + 1_000));
        }
        self.outcome = Some(outcome);
    }

    /// A credential was read at the door.
    pub fn credential<N: Network>(&mut self, credential: Credential, t: Time, net: &mut N) {
        if let Some((last, at)) = self.last_read {
            if last == credential && t.ms.saturating_sub(at) < u64::from(self.cfg.repeat_ms) {
                self.last_read = Some((credential, t.ms));
                return;
            }
        }
        if self.pending.is_some() {
            // One tap at a time: the reader shows "waiting" until the first is answered, and
            // this card, not taken, may be presented again at once.
            return;
        }
        self.last_read = Some((credential, t.ms));
        let tap = self.next_counter();
        if net.connected() {
            let mut msg = Tap {
                v: VERSION,
                door: self.cfg.door,
                device: self.cfg.device,
                counter: tap,
                credential,
                mac: Default::default(),
            };
            msg.sign(&self.cfg.key);
            match net.send(Up::Tap(&msg)) {
                Ok(()) => {
                    self.stats.taps_sent += 1;
                    self.pending = Some(Pending {
                        tap,
                        credential,
                        since: t.ms,
                    });
                    return;
                }
                Err(_) => self.stats.send_failures += 1,
            }
        }
        self.decide_offline(tap, credential, t);
    }

    fn decide_offline(&mut self, tap: u64, credential: Credential, t: Time) {
        let (allow, reason) = match (credential, &self.list) {
            (_, None) => (false, Reason::OfflineListExpired),
            // The clock is unset (0): no window can be told, only rights that hold at any hour
            // (the gateway starts their entries at 0); and it is at least the latest time the
            // node knew, so a list that ran out before then is refused.
            (_, Some(h)) if t.unix == 0 && h.valid_until <= self.known_unix => {
                (false, Reason::OfflineListExpired)
            }
            (Credential::Pin(_), Some(_)) if t.unix == 0 => (false, Reason::OfflineClockUnset),
            (Credential::Card(card), Some(_)) if t.unix == 0 => {
                let first = self.cards.partition_point(|e| e.card < card);
                let mut entries = self.cards[first..].iter().take_while(|e| e.card == card);
                let mut listed = false;
                if entries.any(|e| {
                    listed = true;
                    e.from == 0
                }) {
                    (true, Reason::OfflineAnyHour)
                } else if listed {
                    (false, Reason::OfflineClockUnset)
                } else {
                    (false, Reason::OfflineNotListed)
                }
            }
            (_, Some(h)) if t.unix < h.valid_from || t.unix >= h.valid_until => {
                (false, Reason::OfflineListExpired)
            }
            (Credential::Pin(_), Some(_)) => (false, Reason::OfflineNotListed),
            (Credential::Card(card), Some(_)) => {
                let first = self.cards.partition_point(|e| e.card < card);
                let listed = self.cards[first..]
                    .iter()
                    .take_while(|e| e.card == card)
                    .any(|e| e.from <= t.unix && t.unix < e.until);
                if listed {
                    (true, Reason::OfflineListed)
                } else {
                    (false, Reason::OfflineNotListed)
                }
            }
        };
        self.stats.offline_decisions += 1;
        if let Credential::Card(card) = credential {
            let entry = OfflineEntry {
                tap,
                at: t.unix,
                card,
                allow,
                reason,
            };
            if self.log.is_full() {
                self.log.remove(0);
                self.stats.log_dropped += 1;
            }
            // Cannot fail: a full log was just made room in (a zero-sized log keeps nothing).
            let _ = self.log.push(entry);
        }
        self.finish(
            Outcome {
                tap,
                allow,
                reason,
                offline: true,
            },
            t.ms,
            self.cfg.offline_unlock_ms,
        );
    }

    fn check<M: Signed>(
        &mut self,
        msg: &M,
        door: DoorId,
        device: DeviceId,
        topic: usize,
    ) -> Result<(), Refusal> {
        let r = if door != self.cfg.door || device != self.cfg.device {
            Err(Refusal::NotMine)
        } else if !msg.verify(&self.cfg.key) {
            Err(Refusal::BadMac)
        } else if self.gateway[topic].accept(msg.counter()).is_err() {
            Err(Refusal::Replayed)
        } else {
            Ok(())
        };
        if r.is_err() {
            self.stats.refused += 1;
        }
        r
    }

    /// The gateway's decision on a tap.
    pub fn decision(&mut self, d: &Decision, t: Time) -> Result<(), Refusal> {
        self.check(d, d.door, d.device, DECISIONS)?;
        match self.pending {
            Some(p) if p.tap == d.tap => {
                self.pending = None;
                self.finish(
                    Outcome {
                        tap: d.tap,
                        allow: d.allow,
                        reason: d.reason,
                        offline: false,
                    },
                    t.ms,
                    d.unlock_ms,
                );
                Ok(())
            }
            _ => {
                self.stats.refused += 1;
                Err(Refusal::NotWaiting)
            }
        }
    }

    /// A command from the gateway (remote unlock, lock, release, back to normal).
    pub fn command(&mut self, c: &Command, t: Time) -> Result<(), Refusal> {
        self.check(c, c.door, c.device, COMMANDS)?;
        match c.action {
            Action::Unlock { ms } => self.release_for(t.ms, ms),
            Action::Lock => {
                self.released = false;
                self.unlocked_until = None;
            }
            Action::Release => self.released = true,
            Action::Normal => {
                self.released = false;
                self.unlocked_until = None;
            }
        }
        Ok(())
    }

    /// A new allow-list from the gateway: its head, its cards (sorted by card) and its MAC.
    /// The list held before stays if this one is refused.
    pub fn allow_list(
        &mut self,
        head: &AllowListHead,
        cards: &[AllowEntry],
        mac: &kombinat_protocol::auth::Mac,
    ) -> Result<(), Refusal> {
        let r = if head.door != self.cfg.door || head.device != self.cfg.device {
            Err(Refusal::NotMine)
        } else if !head.verify(&self.cfg.key, cards, mac) {
            Err(Refusal::BadMac)
        } else if self.list.is_some_and(|h| head.counter <= h.counter)
            || head.counter < self.cfg.list_counter_after
        {
            // A retained list comes again on every reconnect: the one held is as new. After a
            // reboot, the list held before (same counter) is taken again, an older one is not.
            Err(Refusal::Older)
        } else if cards.len() > CARDS {
            Err(Refusal::TooLong)
        } else if cards.windows(2).any(|w| w[0].card > w[1].card)
            || head.valid_until <= head.valid_from
        {
            Err(Refusal::Malformed)
        } else {
            Ok(())
        };
        if let Err(e) = r {
            if e != Refusal::Older {
                self.stats.refused += 1;
            }
            return r;
        }
        // A signed list says the gateway's time was at least its start.
        self.known_unix = self.known_unix.max(head.valid_from);
        self.cards.clear();
        // Cannot fail: the length was checked against the capacity above.
        let _ = self.cards.extend_from_slice(cards);
        self.list = Some(*head);
        Ok(())
    }

    /// The gateway has stored the offline log up to a tap counter.
    pub fn offline_ack(&mut self, a: &OfflineAck) -> Result<(), Refusal> {
        self.check(a, a.door, a.device, OFFLINE_ACKS)?;
        self.log.retain(|e| e.tap > a.up_to);
        self.log_sent_at = None;
        Ok(())
    }

    /// Advances the machine to `t` with the inputs just read; returns what to drive. Call it
    /// often (every 10–20 ms): timeouts and alarms are judged here.
    pub fn tick<N: Network>(&mut self, inputs: Inputs, t: Time, net: &mut N) -> Outputs {
        let now = t.ms;
        // The latest time known, from a set clock, but never beyond a day after the list held
        // runs out: a clock gone wrong (an RTC set to 2099) cannot pin it there.
        if t.unix != 0 {
            let cap = self
                .list
                .map_or(0, |h| h.valid_until.saturating_add(86_400));
            self.known_unix = self.known_unix.max(t.unix.min(cap));
        }
        if let Some(p) = self.pending {
            if now.saturating_sub(p.since) >= u64::from(self.cfg.decision_timeout_ms) {
                self.pending = None;
                self.decide_offline(p.tap, p.credential, t);
            }
        }
        if inputs.exit_pressed && !self.exit_was_pressed {
            self.release_for(now, self.cfg.exit_unlock_ms);
        }
        self.exit_was_pressed = inputs.exit_pressed;

        if self.unlocked_until.is_some_and(|u| now >= u) {
            self.unlocked_until = None;
        }
        let unlocked = self.unlocked(now);
        if inputs.contact_open != self.contact_raw.0 {
            self.contact_raw = (inputs.contact_open, now);
        }
        let contact_open =
            if now.saturating_sub(self.contact_raw.1) >= u64::from(self.cfg.debounce_ms) {
                self.contact_raw.0
            } else {
                self.contact_open
            };
        if contact_open && !self.contact_open {
            self.opened_at = now;
            if unlocked {
                self.opened_since_unlock = true;
            } else {
                self.forced = true;
            }
        }
        if !contact_open && self.contact_open {
            self.held_open = false;
            self.forced = false;
            // Relock once the person is through: the release is for one passage.
            if self.opened_since_unlock && !self.released {
                self.unlocked_until = None;
                self.opened_since_unlock = false;
            }
        }
        self.contact_open = contact_open;
        if self.contact_open
            && !self.released
            && now.saturating_sub(self.opened_at) >= u64::from(self.cfg.held_open_ms)
        {
            self.held_open = true;
        }
        self.tamper = inputs.tamper;

        self.report(now, net);
        self.upload_log(now, net);
        self.outputs(now, net.connected())
    }

    /// The supply and the alert input as read now, reported as [`SupplyReporter`] says.
    pub fn supply<N: Network>(&mut self, s: Supply, t: Time, net: &mut N) {
        let (device, key, beat) = (self.cfg.device, self.cfg.key.clone(), self.cfg.heartbeat_ms);
        let mut counter = self.counter;
        let failed = self.supply_reported.report(
            s,
            t.ms,
            beat,
            device,
            &key,
            || {
                counter += 1;
                counter
            },
            net,
        );
        self.counter = counter;
        self.stats.send_failures += failed;
    }

    fn report<N: Network>(&mut self, now: u64, net: &mut N) {
        let state = Reported {
            contact_open: self.contact_open,
            locked: !self.unlocked(now),
            held_open: self.held_open,
            forced: self.forced,
            tamper: self.tamper,
        };
        let due = self.reported != Some(state)
            || now.saturating_sub(self.reported_at) >= u64::from(self.cfg.heartbeat_ms);
        if !due || !net.connected() {
            return;
        }
        let mut msg = DoorState {
            v: VERSION,
            door: self.cfg.door,
            device: self.cfg.device,
            counter: self.next_counter(),
            contact: if state.contact_open {
                Contact::Open
            } else {
                Contact::Closed
            },
            locked: state.locked,
            held_open: state.held_open,
            forced: state.forced,
            tamper: state.tamper,
            mac: Default::default(),
        };
        msg.sign(&self.cfg.key);
        match net.send(Up::State(&msg)) {
            Ok(()) => {
                self.reported = Some(state);
                self.reported_at = now;
            }
            Err(_) => self.stats.send_failures += 1,
        }
    }

    fn upload_log<N: Network>(&mut self, now: u64, net: &mut N) {
        if self.log.is_empty() || !net.connected() {
            return;
        }
        if self
            .log_sent_at
            .is_some_and(|at| now.saturating_sub(at) < u64::from(self.cfg.log_resend_ms))
        {
            return;
        }
        let counter = self.next_counter();
        let entries = &self.log[..self.log.len().min(LOG_CHUNK)];
        let (door, device) = (self.cfg.door, self.cfg.device);
        let mac = mac_of(&self.cfg.key, OFFLINE_LOG_KIND, |m| {
            offline_log_fields(m, VERSION, door, device, counter, entries)
        });
        let msg = OfflineLogOut {
            v: VERSION,
            door,
            device,
            counter,
            entries,
            mac,
        };
        match net.send(Up::OfflineLog(msg)) {
            Ok(()) => self.log_sent_at = Some(now),
            Err(_) => self.stats.send_failures += 1,
        }
    }

    fn outputs(&mut self, now: u64, connected: bool) -> Outputs {
        let unlocked = self.unlocked(now);
        let strike = match self.cfg.lock {
            LockKind::FailSecure => unlocked,
            LockKind::FailSafe => !unlocked,
        };
        if self.signal.is_some_and(|(_, _, until)| now >= until) {
            self.signal = None;
        }
        let mut out = Outputs {
            strike,
            ..Outputs::default()
        };
        match self.signal {
            Some((Signal::Granted, since, _)) => {
                out.green = true;
                // One short chirp at the start of the grant.
                out.buzzer = now.saturating_sub(since) < 100;
            }
            Some((Signal::Denied, since, _)) => {
                out.red = true;
                // Two beeps: 150 ms on, 100 ms off, 150 ms on.
                let t = now.saturating_sub(since);
                out.buzzer = t < 150 || (250..400).contains(&t);
            }
            None if self.pending.is_some() => {
                // Waiting: both LEDs, amber on a bicolour LED.
                out.green = true;
                out.red = true;
            }
            None if unlocked => out.green = true,
            None if self.forced || self.held_open => {
                out.red = now % 500 < 250;
                out.buzzer = self.held_open && now % 2_000 < 100;
            }
            None if !connected => {
                // Offline: a short red blink every two seconds.
                out.red = now % 2_000 < 100;
            }
            None => {}
        }
        out
    }
}

/// Which level means "active" on each input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Polarity {
    /// The contact reads high when the door is open (a reed switch to ground, with a pull-up).
    pub contact_open_high: bool,
    /// The exit button reads high when pressed.
    pub exit_pressed_high: bool,
    /// The tamper switch reads high when the housing is open.
    pub tamper_high: bool,
}

impl Default for Polarity {
    fn default() -> Self {
        Polarity {
            contact_open_high: true,
            exit_pressed_high: false,
            tamper_high: true,
        }
    }
}

/// A pin failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinError {
    /// Reading an input.
    Input,
    /// Driving an output.
    Output,
}

/// The door node's pins: strike relay, green and red LEDs, buzzer, door contact, exit button,
/// tamper switch. It owns them ([`DoorPins::release`] gives them back) and writes an output only
/// when it changes.
pub struct DoorPins<S, G, R, B, C, X, T> {
    strike: S,
    green: G,
    red: R,
    buzzer: B,
    contact: C,
    exit: X,
    tamper: T,
    polarity: Polarity,
    driven: Option<Outputs>,
}

impl<S, G, R, B, C, X, T> DoorPins<S, G, R, B, C, X, T>
where
    S: OutputPin,
    G: OutputPin,
    R: OutputPin,
    B: OutputPin,
    C: InputPin,
    X: InputPin,
    T: InputPin,
{
    /// Takes the pins.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        strike: S,
        green: G,
        red: R,
        buzzer: B,
        contact: C,
        exit: X,
        tamper: T,
        polarity: Polarity,
    ) -> Self {
        DoorPins {
            strike,
            green,
            red,
            buzzer,
            contact,
            exit,
            tamper,
            polarity,
            driven: None,
        }
    }

    /// Gives the pins back.
    pub fn release(self) -> (S, G, R, B, C, X, T) {
        (
            self.strike,
            self.green,
            self.red,
            self.buzzer,
            self.contact,
            self.exit,
            self.tamper,
        )
    }

    /// Reads the inputs.
    pub fn read(&mut self) -> Result<Inputs, PinError> {
        let p = self.polarity;
        Ok(Inputs {
            contact_open: self.contact.is_high().map_err(|_| PinError::Input)?
                == p.contact_open_high,
            exit_pressed: self.exit.is_high().map_err(|_| PinError::Input)? == p.exit_pressed_high,
            tamper: self.tamper.is_high().map_err(|_| PinError::Input)? == p.tamper_high,
        })
    }

    /// Drives the outputs that changed since the last call (all of them the first time).
    pub fn apply(&mut self, out: &Outputs) -> Result<(), PinError> {
        fn set(pin: &mut impl OutputPin, on: bool) -> Result<(), PinError> {
            if on { pin.set_high() } else { pin.set_low() }.map_err(|_| PinError::Output)
        }
        let before = self.driven;
        let changed = |f: fn(&Outputs) -> bool| before.is_none_or(|b| f(&b) != f(out));
        if changed(|o| o.strike) {
            set(&mut self.strike, out.strike)?;
        }
        if changed(|o| o.green) {
            set(&mut self.green, out.green)?;
        }
        if changed(|o| o.red) {
            set(&mut self.red, out.red)?;
        }
        if changed(|o| o.buzzer) {
            set(&mut self.buzzer, out.buzzer)?;
        }
        self.driven = Some(*out);
        Ok(())
    }
}
