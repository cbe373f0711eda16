//! The running simulation: a door node per reader and a sensor node per gathering room, each the
//! firmware's own state machine on its own MQTT connection, over simulated hardware (Wiegand
//! edges from the cards, a door contact, an exit button, light beams, a PIR, a CO2 level), and
//! the people of [`super::population`] walking their day through them.
//!
//! Everything runs on one task in 20 ms steps of real time. The nodes keep real time (their
//! timeouts are the protocol's); the people's plans run on simulated time. One person passes a
//! door at a time; a person refused at a door tries once more, then gives up that errand.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kombinat_protocol::{DeviceId, DoorId};

use super::building::{Building, Pass, OUTSIDE};
use super::population::{sensor_device, Population, Rng, SimClock, SENSED_KINDS};
use crate::door::{DoorConfig, DoorController, Inputs, Outputs, Supply};
use crate::drivers::scd4x::Co2Sample;
use crate::mqtt::{
    deliver, door_subscriptions, parse_door, parse_nothing, Down, LinkConfig, MqttLink,
};
use crate::sensor::{SensorConfig, SensorController, SensorInputs};
use crate::wiegand::{edges, encode, Format, Line, Timing, WiegandDecoder};
use crate::Time;

/// The step of the simulation loop.
pub const STEP: Duration = Duration::from_millis(20);

/// The drill ([`World::drill_after`]): how long the siren contact stays closed and the mains
/// stays off, in real time.
pub const DRILL_ALERT: Duration = Duration::from_secs(120);
/// See [`DRILL_ALERT`].
pub const DRILL_POWER_CUT: Duration = Duration::from_secs(180);
/// The door whose node has the siren relay on its alert contact.
pub const DRILL_SIREN_DOOR: &str = "d-main";
/// The door whose node's battery is weak: it falls below a shedding line within a minute.
pub const DRILL_WEAK_DOOR: &str = "d-meeting-1";

/// How the simulation runs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The broker the gateway listens on.
    pub link: LinkConfig,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Simulated minutes after midnight at the start.
    pub start_min: u32,
    /// The seed of the day.
    pub seed: u64,
}

/// What happened, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Cards presented at readers.
    pub taps: u64,
    /// Doors that opened for a card.
    pub granted: u64,
    /// Doors that stayed shut for a card.
    pub denied: u64,
    /// Of those decisions, taken by the door node alone.
    pub offline: u64,
    /// Exit-button passages.
    pub exits: u64,
    /// Errands given up after two refusals.
    pub gave_up: u64,
    /// Trips finished.
    pub trips: u64,
    /// People in each sensed room now (the simulation's truth).
    pub inside: Vec<(String, u32)>,
    /// Milliseconds from the card at the reader to the door's answer (online answers only;
    /// the reader's own 60 ms of Wiegand frame included), sorted.
    pub answer_ms: Vec<u32>,
    /// Every decision a door acted on, in order: the door, the tap's counter, and whether the
    /// node took it alone (from its allow-list). What the crash and broker-fault tests hold the
    /// gateway's audit log against.
    pub decided: Vec<(String, u64, bool)>,
}

impl SimReport {
    /// The `q` quantile (0..=1) of [`SimReport::answer_ms`].
    pub fn answer_quantile(&self, q: f64) -> Option<u32> {
        let n = self.answer_ms.len();
        (n > 0).then(|| self.answer_ms[((n - 1) as f64 * q).round() as usize])
    }
}

struct DoorSim {
    node: Box<DoorController<{ kombinat_protocol::door::ALLOW_LIST_MAX }, 512>>,
    link: MqttLink,
    down: tokio::sync::mpsc::Receiver<Down>,
    inputs: Inputs,
    out: Outputs,
    wire: VecDeque<(Line, bool, u64)>,
    decoder: WiegandDecoder,
    busy_until: u64,
    /// The tap of the last outcome recorded in [`SimReport::decided`].
    recorded: Option<u64>,
}

struct SensorSim {
    node: SensorController,
    link: MqttLink,
    room: String,
    beams: VecDeque<(u64, (bool, bool))>,
    /// The beams as they are now (outer, inner; `true` = broken): read every step, as a node
    /// reads its pins.
    beams_now: (bool, bool),
    co2: f64,
    co2_sent_at: u64,
    /// The room's air: CO2 rise per person at steady state (ppm) and the time constant of its
    /// air change (simulated seconds).
    ppm_per_person: f64,
    air_tau_s: f64,
}

/// The CO2 rise above outdoor air a room reaches with its capacity in it when ventilated as
/// designed (about 7 l/s of air a person, EN 16798-1 category II), ppm. Each simulated room is
/// ventilated 0.7 to 1.5 times as well as that, and changes its air every 15 to 30 minutes.
pub const DESIGN_RISE_AT_CAPACITY_PPM: f64 = 700.0;
/// Outdoor air, ppm.
pub const OUTDOOR_CO2_PPM: f64 = 420.0;

#[derive(Debug, Clone)]
enum Phase {
    Idle,
    Walk {
        way: Vec<Pass>,
        step: usize,
        ready_at: u64,
        tries: u8,
    },
    Tapped {
        way: Vec<Pass>,
        step: usize,
        seen: Option<u64>,
        since: u64,
        tries: u8,
    },
    Through {
        way: Vec<Pass>,
        step: usize,
        until: u64,
    },
}

struct Walker {
    at: String,
    next: usize,
    phase: Phase,
}

fn counter_start() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ms << 10
}

/// The building's nodes and people.
pub struct World<'a> {
    cfg: SimConfig,
    building: &'a Building,
    pop: &'a Population,
    clock: SimClock,
    started: Instant,
    doors: Vec<DoorSim>,
    sensors: Vec<SensorSim>,
    sensor_of: HashMap<String, usize>,
    walkers: Vec<Walker>,
    inside: HashMap<String, u32>,
    rng: Rng,
    report: SimReport,
    walk_ms: u64,
    /// When the drill starts, in the nodes' milliseconds.
    drill_at_ms: Option<u64>,
}

impl<'a> World<'a> {
    /// Connects every node (within a tokio runtime). The clock starts now.
    pub fn start(
        cfg: SimConfig,
        building: &'a Building,
        pop: &'a Population,
        clock: SimClock,
    ) -> Result<World<'a>, String> {
        let counters = counter_start();
        let mut doors = Vec::new();
        for d in &building.doors {
            let dev = pop
                .devices
                .iter()
                .find(|x| x.door.as_deref() == Some(d.id.as_str()))
                .ok_or_else(|| format!("no device for door {}", d.id))?;
            let door = DoorId::parse(&d.id).map_err(|e| format!("door {}: {e}", d.id))?;
            let device = DeviceId::parse(&dev.id).map_err(|e| format!("{}: {e}", dev.id))?;
            let mut c = DoorConfig::new(door, device, dev.key.clone());
            c.counter_start = counters;
            // Shorter than a real door's, so that the crowd at the conference moves.
            c.held_open_ms = 20_000;
            let (link, down) = MqttLink::start(
                &cfg.link.signed_in_as(device, &dev.key),
                device,
                door_subscriptions(&cfg.link.prefix, door),
                parse_door,
            );
            doors.push(DoorSim {
                node: Box::new(DoorController::new(c)),
                link,
                down,
                inputs: Inputs::default(),
                out: Outputs::default(),
                wire: VecDeque::new(),
                decoder: WiegandDecoder::new(Timing::default()),
                busy_until: 0,
                recorded: None,
            });
        }
        let mut sensors = Vec::new();
        let mut sensor_of = HashMap::new();
        let mut air = Rng::new(cfg.seed ^ 0xA1A1);
        for r in building
            .rooms
            .iter()
            .filter(|r| SENSED_KINDS.contains(&r.kind.as_str()))
        {
            let id = sensor_device(&r.id);
            let dev = pop
                .devices
                .iter()
                .find(|x| x.id == id)
                .ok_or_else(|| format!("no device for room {}", r.id))?;
            let device = DeviceId::parse(&dev.id).map_err(|e| format!("{}: {e}", dev.id))?;
            let mut c = SensorConfig::new(device);
            c.counter_start = counters;
            // The people move `speed` times faster; so does what the sensors see.
            c.pir_hold_ms = ((60_000.0 / cfg.speed) as u32).max(3_000);
            c.climate_every_ms = ((300_000.0 / cfg.speed) as u32).max(5_000);
            let (link, _) = MqttLink::start(
                &cfg.link.signed_in_as(device, &dev.key),
                device,
                Vec::new(),
                parse_nothing,
            );
            sensor_of.insert(r.id.clone(), sensors.len());
            let ventilated = 0.7 + 0.8 * f64::from(air.range(0, 1_001)) / 1_000.0;
            let ppm_per_person = match r.capacity {
                Some(c) if c > 0 => DESIGN_RISE_AT_CAPACITY_PPM / f64::from(c) / ventilated,
                _ => 40.0,
            };
            sensors.push(SensorSim {
                node: SensorController::new(c),
                link,
                room: r.id.clone(),
                beams: VecDeque::new(),
                beams_now: (false, false),
                co2: OUTDOOR_CO2_PPM,
                co2_sent_at: 0,
                ppm_per_person,
                air_tau_s: 60.0 * f64::from(air.range(15, 31)),
            });
        }
        // Whoever would already have moved before the day's start is where they went.
        let mut inside = HashMap::new();
        let start = f64::from(clock.start_min);
        let walkers = pop
            .people
            .iter()
            .map(|p| {
                let done = p.plan.iter().take_while(|v| v.at < start).count();
                let at = p.plan[..done]
                    .last()
                    .map_or(p.start_in.clone(), |v| v.to.clone());
                *inside.entry(at.clone()).or_insert(0) += 1;
                Walker {
                    at,
                    next: done,
                    phase: Phase::Idle,
                }
            })
            .collect();
        // The air of a room with people in it at the start has settled to them.
        for sensor in &mut sensors {
            let n = inside.get(&sensor.room).copied().unwrap_or(0);
            sensor.co2 = OUTDOOR_CO2_PPM + sensor.ppm_per_person * f64::from(n);
        }
        // Twenty simulated seconds from door to door, but never under 300 ms of real time.
        let walk_ms = ((20_000.0 / cfg.speed) as u64).max(300);
        let seed = cfg.seed;
        Ok(World {
            cfg,
            building,
            pop,
            clock,
            started: Instant::now(),
            doors,
            sensors,
            sensor_of,
            walkers,
            inside,
            rng: Rng::new(seed ^ 0x5151),
            report: SimReport::default(),
            walk_ms,
            drill_at_ms: None,
        })
    }

    /// What happened so far.
    pub fn report(&self) -> SimReport {
        let mut r = self.report.clone();
        r.answer_ms.sort_unstable();
        r.inside = self
            .sensors
            .iter()
            .map(|s| {
                (
                    s.room.clone(),
                    self.inside.get(&s.room).copied().unwrap_or(0),
                )
            })
            .collect();
        r
    }

    /// People in every place of the building now, sensed or not (the simulation's truth;
    /// the street left out), by room id, sorted.
    pub fn people_in(&self) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = self
            .inside
            .iter()
            .filter(|(k, _)| k.as_str() != OUTSIDE)
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        v.sort();
        v
    }

    /// Nodes whose link is up.
    pub fn connected(&self) -> usize {
        use crate::net::Network;
        self.doors.iter().filter(|d| d.link.connected()).count()
            + self.sensors.iter().filter(|s| s.link.connected()).count()
    }

    /// The doors' ids, in the order [`World::cut_off`] takes.
    pub fn doors(&self) -> Vec<String> {
        self.doors
            .iter()
            .map(|d| d.node.config().door.to_string())
            .collect()
    }

    /// Cuts door `i`'s node off the broker (its connection dropped, as when its cable is
    /// pulled; the broker gives its last will), or, with `off` false, connects it again with
    /// the same client id (the broker's session for it resumes). While cut off the node
    /// decides alone, from its allow-list, and uploads its log when back.
    pub fn cut_off(&mut self, i: usize, off: bool) {
        let Some(d) = self.doors.get_mut(i) else {
            return;
        };
        let cfg = d.node.config();
        let (door, device) = (cfg.door, cfg.device);
        let mut link = self.cfg.link.signed_in_as(device, &cfg.key);
        if off {
            // Nowhere: the node stays down until connected again.
            link.port = 0;
        }
        let (new, down) = MqttLink::start(
            &link,
            device,
            door_subscriptions(&link.prefix, door),
            parse_door,
        );
        // The old link's task is aborted when it is dropped: its connection closes.
        d.link = new;
        d.down = down;
    }

    /// Offline decisions the door nodes hold that the gateway has not acknowledged yet.
    pub fn offline_unacknowledged(&self) -> usize {
        self.doors.iter().map(|d| d.node.offline_log().len()).sum()
    }

    /// All nodes.
    pub fn nodes(&self) -> usize {
        self.doors.len() + self.sensors.len()
    }

    /// The simulated minute now: the clock runs from its real start (which may lie ahead, if
    /// the day was drawn with room for the gateway to start: nobody moves before it).
    pub fn sim_minute(&self) -> f64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.clock.sim_min(now - self.clock.real_start)
    }

    /// Runs until `stop` resolves; returns what happened.
    pub async fn run(&mut self, stop: impl std::future::Future<Output = ()>) -> SimReport {
        let mut tick = tokio::time::interval(STEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = std::pin::pin!(stop);
        let mut said = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => self.step(),
                _ = &mut stop => break,
            }
            if said.elapsed() >= Duration::from_secs(10) {
                said = Instant::now();
                let m = self.sim_minute() as u64;
                let r = &self.report;
                tracing::info!(
                    "simulated {:02}:{:02}: {} taps ({} granted, {} refused, {} offline), {} trips, {} people inside",
                    (m / 60) % 24, m % 60, r.taps, r.granted, r.denied, r.offline, r.trips,
                    self.inside.iter().filter(|(k, _)| k.as_str() != OUTSIDE).map(|(_, v)| v).sum::<u32>()
                );
            }
        }
        for d in &self.doors {
            d.link.goodbye(self.cfg.link.heartbeat_s).await;
        }
        for s in &self.sensors {
            s.link.goodbye(self.cfg.link.heartbeat_s).await;
        }
        self.report()
    }

    /// The nodes' time: their own milliseconds, and the wall clock the gateway reads too (the
    /// simulated day's, when the gateway follows it).
    fn time(&self) -> Time {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Time {
            ms: self.started.elapsed().as_millis() as u64,
            unix: self.clock.wall_now(real),
        }
    }

    /// Plays a drill `after` from now: the main entrance's siren relay closes (an air-raid alert
    /// on the node's dry contact) for [`DRILL_ALERT`], and the mains goes off at every door node
    /// for [`DRILL_POWER_CUT`]: their batteries fall at a simulated rate, one weak one
    /// ([`DRILL_WEAK_DOOR`]) fast enough to cross a shedding line within a minute.
    pub fn drill_after(&mut self, after: Duration) {
        self.drill_at_ms =
            Some(self.started.elapsed().as_millis() as u64 + after.as_millis() as u64);
    }

    /// What door node `door`'s supply and alert contact read at `ms` (its milliseconds).
    fn supply(&self, door: &str, ms: u64) -> Supply {
        let siren = door == DRILL_SIREN_DOOR;
        let weak = door == DRILL_WEAK_DOOR;
        let since = self
            .drill_at_ms
            .filter(|&at| ms >= at)
            .map(|at| Duration::from_millis(ms - at));
        let cut = since.is_some_and(|s| s < DRILL_POWER_CUT);
        // Simulated seconds on battery; a 12 V lead-acid battery under a door's load.
        let sim_s = since.map_or(0.0, |s| s.as_secs_f64() * self.cfg.speed);
        let (full, drain_mv_per_s) = if weak {
            (11_900.0, 0.45)
        } else {
            (12_700.0, 0.1)
        };
        let mv = if cut {
            full - drain_mv_per_s * sim_s
        } else {
            13_600.0
        };
        Supply {
            mains: Some(!cut),
            battery_mv: Some(mv.max(9_000.0) as u32),
            alert: siren.then(|| since.is_some_and(|s| s < DRILL_ALERT)),
        }
    }

    /// One step: the people, then every node.
    pub fn step(&mut self) {
        let t = self.time();
        let supplies: Vec<Supply> = self
            .doors
            .iter()
            .map(|d| self.supply(d.node.config().door.as_str(), t.ms))
            .collect();
        for (d, s) in self.doors.iter_mut().zip(supplies) {
            d.node.supply(s, t, &mut d.link);
        }
        let minute = self.sim_minute();
        for i in 0..self.walkers.len() {
            self.walk(i, t, minute);
        }
        for d in &mut self.doors {
            while let Ok(m) = d.down.try_recv() {
                deliver(&mut d.node, &m, t);
            }
            let now_us = t.ms * 1_000;
            while d.wire.front().is_some_and(|e| e.2 <= now_us) {
                if let Some((line, low, at)) = d.wire.pop_front() {
                    d.decoder.edge(line, low, at);
                }
            }
            if let Some(frame) = d.decoder.poll(now_us) {
                match frame {
                    Ok(f) => d.node.credential(
                        kombinat_protocol::Credential::Card(f.card()),
                        t,
                        &mut d.link,
                    ),
                    Err(e) => tracing::warn!("simulated reader: {e:?}"),
                }
            }
            d.out = d.node.tick(d.inputs, t, &mut d.link);
            d.inputs.exit_pressed = false;
            if let Some(o) = d.node.last_outcome() {
                if d.recorded != Some(o.tap) {
                    d.recorded = Some(o.tap);
                    self.report
                        .decided
                        .push((d.node.config().door.to_string(), o.tap, o.offline));
                }
            }
        }
        for s in &mut self.sensors {
            let n = self.inside.get(&s.room).copied().unwrap_or(0);
            let mut inputs = SensorInputs {
                pir: Some(n > 0 && self.rng.chance(0.2)),
                ..SensorInputs::default()
            };
            if s.beams.front().is_some_and(|b| b.0 <= t.ms) {
                if let Some((_, b)) = s.beams.pop_front() {
                    s.beams_now = b;
                }
            }
            inputs.beams = Some(s.beams_now);
            // CO2 follows the people in the room with the lag of its air change; the sensor
            // reads it within ±10 ppm (a good NDIR sensor's repeatability).
            let target = OUTDOOR_CO2_PPM + s.ppm_per_person * f64::from(n);
            let k = (STEP.as_secs_f64() * self.cfg.speed / s.air_tau_s).min(1.0);
            s.co2 += (target - s.co2) * k;
            if t.ms.saturating_sub(s.co2_sent_at) >= 5_000 {
                s.co2_sent_at = t.ms;
                let noise = f64::from(self.rng.range(0, 21)) - 10.0;
                inputs.co2 = Some(Co2Sample {
                    ppm: (s.co2 + noise).clamp(0.0, 40_000.0) as u16,
                    celsius: 21.0 + f64::from(n.min(40)) as f32 * 0.05,
                    humidity: 40.0,
                });
            }
            s.node.tick(inputs, t, &mut s.link);
        }
    }

    fn card_edges(&self, person: usize, at_ms: u64) -> impl Iterator<Item = (Line, bool, u64)> {
        let m = &self.pop.members[self.pop.people[person].member];
        let mut b = [0u8; 4];
        let raw = m.card.as_bytes();
        let n = raw.len().min(4);
        b[4 - n..].copy_from_slice(&raw[raw.len() - n..]);
        let (bits, count) = encode(Format::W34, u32::from_be_bytes(b));
        edges(bits, count, at_ms * 1_000, 50, 1_000)
    }

    fn walk(&mut self, i: usize, t: Time, minute: f64) {
        let phase = std::mem::replace(&mut self.walkers[i].phase, Phase::Idle);
        self.walkers[i].phase = match phase {
            Phase::Idle => {
                let plan = &self.pop.people[i].plan;
                let w = &mut self.walkers[i];
                match plan.get(w.next) {
                    Some(v) if v.at <= minute => {
                        w.next += 1;
                        match self.building.way(&w.at, &v.to) {
                            Some(way) if !way.is_empty() => Phase::Walk {
                                way,
                                step: 0,
                                ready_at: t.ms,
                                tries: 0,
                            },
                            _ => Phase::Idle,
                        }
                    }
                    _ => Phase::Idle,
                }
            }
            Phase::Walk {
                way,
                step,
                ready_at,
                tries,
            } => {
                let pass = way[step];
                let d = pass.door();
                if t.ms < ready_at || self.doors[d].busy_until > t.ms {
                    Phase::Walk {
                        way,
                        step,
                        ready_at,
                        tries,
                    }
                } else {
                    self.doors[d].busy_until = t.ms + 4_000;
                    match pass {
                        Pass::Tap(_) => {
                            let e: Vec<_> = self.card_edges(i, t.ms).collect();
                            self.doors[d].wire.extend(e);
                            self.report.taps += 1;
                            Phase::Tapped {
                                seen: self.doors[d].node.last_outcome().map(|o| o.tap),
                                way,
                                step,
                                since: t.ms,
                                tries,
                            }
                        }
                        Pass::Exit(_) => {
                            self.doors[d].inputs.exit_pressed = true;
                            self.report.exits += 1;
                            self.open(d, i, &way, step, t)
                        }
                    }
                }
            }
            Phase::Tapped {
                way,
                step,
                seen,
                since,
                tries,
            } => {
                let d = way[step].door();
                match self.doors[d].node.last_outcome() {
                    Some(o) if Some(o.tap) != seen => {
                        if o.offline {
                            self.report.offline += 1;
                        } else {
                            let ms = u32::try_from(t.ms.saturating_sub(since)).unwrap_or(u32::MAX);
                            self.report.answer_ms.push(ms);
                        }
                        if o.allow {
                            self.report.granted += 1;
                            self.open(d, i, &way, step, t)
                        } else {
                            self.report.denied += 1;
                            self.doors[d].busy_until = t.ms;
                            self.retry(way, step, tries, t)
                        }
                    }
                    _ if t.ms.saturating_sub(since) > 5_000 => {
                        // The reader never answered (a frame lost): try again.
                        self.doors[d].busy_until = t.ms;
                        self.retry(way, step, tries, t)
                    }
                    _ => Phase::Tapped {
                        way,
                        step,
                        seen,
                        since,
                        tries,
                    },
                }
            }
            Phase::Through { way, step, until } => {
                if t.ms < until {
                    Phase::Through { way, step, until }
                } else {
                    let d = way[step].door();
                    self.doors[d].inputs.contact_open = false;
                    self.doors[d].busy_until = t.ms + 200;
                    if step + 1 < way.len() {
                        Phase::Walk {
                            way,
                            step: step + 1,
                            ready_at: t.ms + self.walk_ms,
                            tries: 0,
                        }
                    } else {
                        self.report.trips += 1;
                        Phase::Idle
                    }
                }
            }
        };
    }

    fn retry(&mut self, way: Vec<Pass>, step: usize, tries: u8, t: Time) -> Phase {
        if tries >= 1 {
            self.report.gave_up += 1;
            return Phase::Idle;
        }
        Phase::Walk {
            way,
            step,
            ready_at: t.ms + 2_000,
            tries: tries + 1,
        }
    }

    /// The door opens, the person walks through (the beams see it), the door shuts behind.
    fn open(&mut self, d: usize, i: usize, way: &[Pass], step: usize, t: Time) -> Phase {
        let door = &self.building.doors[d];
        let (from, into) = match way[step] {
            Pass::Tap(_) => (door.from.clone(), door.into.clone()),
            Pass::Exit(_) => (door.into.clone(), door.from.clone()),
        };
        self.doors[d].inputs.contact_open = true;
        let crossing = |s: &mut SensorSim, entering: bool, start: u64| {
            let seq = if entering {
                [(true, false), (true, true), (false, true), (false, false)]
            } else {
                [(false, true), (true, true), (true, false), (false, false)]
            };
            let at = s.beams.back().map_or(start, |b| b.0.max(start)) + 60;
            for (k, b) in seq.into_iter().enumerate() {
                s.beams.push_back((at + 60 * k as u64, b));
            }
        };
        if let Some(&s) = self.sensor_of.get(&into) {
            crossing(&mut self.sensors[s], true, t.ms + 200);
        }
        if let Some(&s) = self.sensor_of.get(&from) {
            crossing(&mut self.sensors[s], false, t.ms + 200);
        }
        if let Some(n) = self.inside.get_mut(&from) {
            *n = n.saturating_sub(1);
        }
        *self.inside.entry(into.clone()).or_insert(0) += 1;
        self.walkers[i].at = into;
        Phase::Through {
            way: way.to_vec(),
            step,
            until: t.ms + 900,
        }
    }
}
