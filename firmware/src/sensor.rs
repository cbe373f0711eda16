//! The sensor node: a PIR with a hold time, a two-beam people counter that tells direction from
//! the order the beams are broken, and a CO2 sensor; it sends motion when it changes, counts
//! within a second, and CO2, temperature and humidity at a fixed interval.
//!
//! Like the door node it is sans-IO: [`SensorController::tick`] takes the inputs read and the
//! time, and sends [`Reading`]s through a [`Network`]. Crossings counted while the link is down
//! are kept (summed) and sent when it is back; the latest motion state is sent again then.

use embedded_hal::digital::InputPin;
use kombinat_protocol::sensor::{Measurement, Reading};
use kombinat_protocol::DeviceId;

use crate::drivers::scd4x::Co2Sample;
use crate::net::{Network, Up};
use crate::Time;

/// A PIR: active from the first high until `hold_ms` after the last high.
#[derive(Debug, Clone, Copy)]
pub struct Pir {
    hold_ms: u32,
    last_high: Option<u64>,
}

impl Pir {
    /// A PIR that holds its "active" for `hold_ms` after the last movement.
    pub fn new(hold_ms: u32) -> Self {
        Pir {
            hold_ms,
            last_high: None,
        }
    }

    /// Whether motion is active at `now`, given the input's level.
    pub fn update(&mut self, high: bool, now: u64) -> bool {
        if high {
            self.last_high = Some(now);
        }
        self.last_high
            .is_some_and(|t| now.saturating_sub(t) < u64::from(self.hold_ms))
    }
}

/// Which way someone went through the doorway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Outer beam first, inner beam last: into the room.
    In,
    /// Inner beam first, outer beam last: out of the room.
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beam {
    Outer,
    Inner,
}

/// Two light beams across a doorway, the outer one on the corridor side. A person going in
/// breaks the outer beam first and frees the inner one last; someone who steps in and turns
/// back frees the beam they broke first last, and counts nothing. A crossing that takes longer
/// than `stuck_ms` (a trolley parked in the door) counts nothing either.
#[derive(Debug, Clone, Copy)]
pub struct BeamCounter {
    stuck_ms: u32,
    first: Option<(Option<Beam>, u64)>,
    last_alone: Option<Beam>,
    was: (bool, bool),
}

impl BeamCounter {
    /// A counter that gives up on a crossing after `stuck_ms`.
    pub fn new(stuck_ms: u32) -> Self {
        BeamCounter {
            stuck_ms,
            first: None,
            last_alone: None,
            was: (false, false),
        }
    }

    /// The beams' state at `now` (`true` = broken); returns a crossing when one completes.
    pub fn update(&mut self, outer: bool, inner: bool, now: u64) -> Option<Direction> {
        if (outer, inner) == self.was {
            return None;
        }
        self.was = (outer, inner);
        match (outer, inner) {
            (false, false) => {
                let first = self.first.take();
                let last = self.last_alone.take();
                match (first, last) {
                    (Some((Some(f), at)), Some(l))
                        if f != l && now.saturating_sub(at) <= u64::from(self.stuck_ms) =>
                    {
                        Some(if f == Beam::Outer {
                            Direction::In
                        } else {
                            Direction::Out
                        })
                    }
                    _ => None,
                }
            }
            (o, i) => {
                let alone = match (o, i) {
                    (true, false) => Some(Beam::Outer),
                    (false, true) => Some(Beam::Inner),
                    _ => None,
                };
                if self.first.is_none() {
                    // Both at once from idle leaves no order to tell: that crossing counts nothing.
                    self.first = Some((alone, now));
                }
                if let Some(a) = alone {
                    self.last_alone = Some(a);
                }
                None
            }
        }
    }
}

/// A sensor node's settings.
#[derive(Debug, Clone, Copy)]
pub struct SensorConfig {
    /// The node's device id.
    pub device: DeviceId,
    /// PIR hold time.
    pub pir_hold_ms: u32,
    /// Crossings are sent at most this often (summed).
    pub counter_flush_ms: u32,
    /// A crossing longer than this counts nothing.
    pub beam_stuck_ms: u32,
    /// CO2, temperature and humidity are sent this often.
    pub climate_every_ms: u32,
    /// Motion state is sent again this often even without a change, and so is a counter
    /// reading of nobody in and nobody out (the counter is there and alive) when no one crossed.
    pub motion_refresh_ms: u32,
    /// The first counter of this boot.
    pub counter_start: u64,
}

impl SensorConfig {
    /// Usual settings: 60 s PIR hold, crossings within 1 s, climate every 60 s, motion refreshed
    /// every 5 minutes.
    pub fn new(device: DeviceId) -> Self {
        SensorConfig {
            device,
            pir_hold_ms: 60_000,
            counter_flush_ms: 1_000,
            beam_stuck_ms: 5_000,
            climate_every_ms: 60_000,
            motion_refresh_ms: 300_000,
            counter_start: 1,
        }
    }
}

/// What a sensor node read this tick; a sensor the node lacks is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SensorInputs {
    /// The PIR's level.
    pub pir: Option<bool>,
    /// The beams (outer, inner), `true` = broken.
    pub beams: Option<(bool, bool)>,
    /// A new CO2 sample, if the sensor had one.
    pub co2: Option<Co2Sample>,
}

/// The sensor node's state machine.
pub struct SensorController {
    cfg: SensorConfig,
    counter: u64,
    pir: Pir,
    beams: BeamCounter,
    entered: u16,
    left: u16,
    flushed_at: u64,
    /// A counter reading was sent since the start: the gateway knows the room has a counter.
    counter_sent: bool,
    motion: Option<bool>,
    motion_sent: Option<(bool, u64)>,
    climate: Option<Co2Sample>,
    climate_sent_at: Option<u64>,
    failures: u32,
    /// What the supply and the alert contact last reported.
    supply_reported: crate::supply::SupplyReporter,
}

impl SensorController {
    /// A node at rest.
    pub fn new(cfg: SensorConfig) -> Self {
        SensorController {
            counter: cfg.counter_start.max(1) - 1,
            pir: Pir::new(cfg.pir_hold_ms),
            beams: BeamCounter::new(cfg.beam_stuck_ms),
            cfg,
            entered: 0,
            left: 0,
            flushed_at: 0,
            counter_sent: false,
            motion: None,
            motion_sent: None,
            climate: None,
            climate_sent_at: None,
            failures: 0,
            supply_reported: crate::supply::SupplyReporter::default(),
        }
    }

    /// Crossings counted and not yet sent: (in, out).
    pub fn unsent(&self) -> (u16, u16) {
        (self.entered, self.left)
    }

    /// Messages that could not be sent.
    pub fn send_failures(&self) -> u32 {
        self.failures
    }

    /// The node's supply and alert contact as read now, signed with `key` (the node's, from
    /// `kombinat device add`) and its reading counter, and sent as
    /// [`crate::supply::SupplyReporter`] says (the heartbeat is 30 s).
    pub fn supply<N: Network>(
        &mut self,
        s: crate::supply::Supply,
        key: &kombinat_protocol::auth::DeviceKey,
        t: Time,
        net: &mut N,
    ) {
        let mut counter = self.counter;
        self.failures += self.supply_reported.report(
            s,
            t.ms,
            30_000,
            self.cfg.device,
            key,
            || {
                counter += 1;
                counter
            },
            net,
        );
        self.counter = counter;
    }

    fn send<N: Network>(&mut self, m: Measurement, net: &mut N) -> bool {
        self.counter += 1;
        let r = Reading {
            v: kombinat_protocol::door::VERSION,
            device: self.cfg.device,
            counter: self.counter,
            reading: m,
        };
        let ok = net.send(Up::Reading(&r)).is_ok();
        if !ok {
            self.failures += 1;
        }
        ok
    }

    /// Advances to `t` with what was read.
    pub fn tick<N: Network>(&mut self, inputs: SensorInputs, t: Time, net: &mut N) {
        let now = t.ms;
        if let Some((outer, inner)) = inputs.beams {
            match self.beams.update(outer, inner, now) {
                Some(Direction::In) => self.entered = self.entered.saturating_add(1),
                Some(Direction::Out) => self.left = self.left.saturating_add(1),
                None => {}
            }
        }
        if let Some(level) = inputs.pir {
            self.motion = Some(self.pir.update(level, now));
        }
        if inputs.co2.is_some() {
            self.climate = inputs.co2;
        }
        if !net.connected() {
            return;
        }
        // Crossings, summed over a second; with none, at the start and every refresh a reading
        // of nobody in or out, so the gateway knows a counter watches the room before anyone
        // crosses (it counts a door's allowed entries only in rooms no counter watches, and
        // would count the first person twice).
        let crossed = (self.entered, self.left) != (0, 0)
            && now.saturating_sub(self.flushed_at) >= u64::from(self.cfg.counter_flush_ms);
        let alive_due = inputs.beams.is_some()
            && (!self.counter_sent
                || now.saturating_sub(self.flushed_at) >= u64::from(self.cfg.motion_refresh_ms));
        if crossed || alive_due {
            let m = Measurement::Counter {
                entered: self.entered,
                out: self.left,
            };
            if self.send(m, net) {
                self.entered = 0;
                self.left = 0;
                self.flushed_at = now;
                self.counter_sent = true;
            }
        }
        if let Some(active) = self.motion {
            let due = match self.motion_sent {
                None => true,
                Some((sent, at)) => {
                    sent != active
                        || now.saturating_sub(at) >= u64::from(self.cfg.motion_refresh_ms)
                }
            };
            if due && self.send(Measurement::Motion { active }, net) {
                self.motion_sent = Some((active, now));
            }
        }
        if let Some(c) = self.climate {
            let due = self
                .climate_sent_at
                .is_none_or(|at| now.saturating_sub(at) >= u64::from(self.cfg.climate_every_ms));
            if due {
                let sent = self.send(Measurement::Co2 { ppm: c.ppm }, net)
                    & self.send(Measurement::Temperature { celsius: c.celsius }, net)
                    & self.send(
                        Measurement::Humidity {
                            percent: c.humidity,
                        },
                        net,
                    );
                if sent {
                    self.climate_sent_at = Some(now);
                }
            }
        }
    }
}

/// A sensor node's input pins: PIR, and the two beams of a counter (each optional by type:
/// use [`NoPin`] for one the node lacks).
pub struct SensorPins<P, A, B> {
    pir: P,
    outer: A,
    inner: B,
    /// A beam's receiver reads high while it sees its light (the beam is whole).
    pub beam_whole_high: bool,
}

/// A pin that is not fitted: reading it gives nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPin;

/// An input that may be missing.
pub trait MaybeInput {
    /// The level, if the input exists and could be read.
    fn level(&mut self) -> Option<bool>;
}

impl MaybeInput for NoPin {
    fn level(&mut self) -> Option<bool> {
        None
    }
}

/// An input pin that is fitted.
pub struct Fitted<P>(pub P);

impl<P: InputPin> MaybeInput for Fitted<P> {
    fn level(&mut self) -> Option<bool> {
        self.0.is_high().ok()
    }
}

impl<P: MaybeInput, A: MaybeInput, B: MaybeInput> SensorPins<P, A, B> {
    /// Takes the pins.
    pub fn new(pir: P, outer: A, inner: B, beam_whole_high: bool) -> Self {
        SensorPins {
            pir,
            outer,
            inner,
            beam_whole_high,
        }
    }

    /// Gives them back.
    pub fn release(self) -> (P, A, B) {
        (self.pir, self.outer, self.inner)
    }

    /// Reads the PIR and the beams (a beam is broken when its receiver sees no light).
    pub fn read(&mut self) -> SensorInputs {
        let whole = self.beam_whole_high;
        let beams = match (self.outer.level(), self.inner.level()) {
            (Some(o), Some(i)) => Some((o != whole, i != whole)),
            _ => None,
        };
        SensorInputs {
            pir: self.pir.level(),
            beams,
            co2: None,
        }
    }
}
