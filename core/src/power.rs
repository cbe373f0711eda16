//! Power as a state of the building: each node's mains and backup battery as it reports them
//! (signed `device/<id>/power` messages), the site's as a whole, how long a battery lasts at the
//! rate it is falling, and which nodes are to shed load. Sans-IO: reports in with the time
//! passed in, changes out for the gateway to log, raise as alarms and act on.
//!
//! - **Mains** lost or back is a change at once, logged with the time.
//! - **Time left** on battery is the voltage's own trend since mains was lost: a least-squares
//!   line through the readings (at least [`MIN_TREND_S`] of them, falling), extended down to the
//!   battery's empty voltage. "4 h 10 m left at this rate", not a datasheet's promise.
//! - **Low battery** below [`PowerPolicy::low_mv`] on battery raises an alarm; **shedding**
//!   below [`PowerPolicy::shed_below_mv`] (if the site sets it) asks the gateway to put the
//!   node's door in its mechanical state. The alarm ends when mains is back, or when the battery
//!   reads [`HYSTERESIS_MV`] above its line again (a charger on a generator), so a voltage
//!   hovering at the line does not flap; shedding ends only when mains is back (shedding lifts
//!   the battery's voltage by itself). A report without a voltage changes neither.
//!
//! Power state is kept in memory: nodes send it at start, on every change and with each
//! heartbeat while on battery, so a restarted gateway knows it again within a heartbeat.

use std::collections::BTreeMap;

use crate::domain::{DeviceId, RoomSupply};

/// The least time on battery, in seconds, before a trend is drawn from the readings.
pub const MIN_TREND_S: i64 = 300;
/// How far above a line a battery must read again to end its alarm or shedding, in millivolts.
pub const HYSTERESIS_MV: u32 = 200;
/// The most readings kept per node for its trend; beyond it every other one is dropped.
const SAMPLES: usize = 128;

/// The site's battery thresholds (lead-acid 12 V by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerPolicy {
    /// Below this on battery: the low-battery alarm.
    pub low_mv: u32,
    /// What counts as empty, for the time left.
    pub empty_mv: u32,
    /// Below this on battery, doors that are not on the way out or to the shelter are put in
    /// their mechanical state (`None`: never).
    pub shed_below_mv: Option<u32>,
}

impl Default for PowerPolicy {
    fn default() -> Self {
        PowerPolicy {
            low_mv: 11_800,
            empty_mv: 10_500,
            shed_below_mv: None,
        }
    }
}

/// One node's power as last reported.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodePower {
    /// Mains present.
    pub mains: bool,
    /// The battery's last voltage, if the node measures it.
    pub battery_mv: Option<u32>,
    /// Since when mains has been as it is (Unix seconds; the first report's time at first).
    pub since: i64,
    /// When it last reported.
    pub at: i64,
    /// The low-battery alarm stands.
    pub low: bool,
    /// The node is to shed load.
    pub shed: bool,
    /// Battery readings since mains was lost: (seconds, millivolts).
    #[serde(default)]
    samples: Vec<(i64, u32)>,
}

/// What a report changed, for the log and the alarms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerChange {
    /// Mains lost at the node (the battery's voltage, if known).
    MainsLost(DeviceId, Option<u32>),
    /// Mains back at the node after this many seconds without.
    MainsBack(DeviceId, i64),
    /// The battery fell below the low line.
    BatteryLow(DeviceId, u32),
    /// The battery's alarm ended (mains back, or the voltage recovered).
    BatteryOk(DeviceId),
    /// The node is to shed load (its battery below the shedding line).
    Shed(DeviceId, u32),
    /// The node's load is back.
    Unshed(DeviceId),
}

/// The site's power, summed up for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SitePower {
    /// Nodes reporting.
    pub nodes: usize,
    /// Nodes on battery now.
    pub on_battery: Vec<DeviceId>,
    /// When the earliest of them lost mains.
    pub mains_lost_since: Option<i64>,
    /// The least time left among them, in seconds, where a trend is known.
    pub least_left_s: Option<(DeviceId, i64)>,
    /// Nodes shedding load.
    pub shed: Vec<DeviceId>,
}

/// Every node's power.
#[derive(Debug, Clone, Default)]
pub struct PowerBook {
    policy: PowerPolicy,
    nodes: BTreeMap<DeviceId, NodePower>,
}

impl PowerBook {
    /// An empty book under `policy`.
    pub fn new(policy: PowerPolicy) -> Self {
        PowerBook {
            policy,
            nodes: BTreeMap::new(),
        }
    }

    /// The thresholds.
    pub fn policy(&self) -> PowerPolicy {
        self.policy
    }

    /// What to keep over a restart: every node's state (JSON). Kept, a node still on battery
    /// after a restart is not news again, and one whose mains came back meanwhile is.
    pub fn state(&self) -> Vec<u8> {
        serde_json::to_vec(&self.nodes).unwrap_or_default()
    }

    /// A book under `policy` taken up from [`PowerBook::state`] (empty if it does not read).
    pub fn restore(policy: PowerPolicy, state: &[u8]) -> Self {
        PowerBook {
            policy,
            nodes: serde_json::from_slice(state).unwrap_or_default(),
        }
    }

    /// Whether a report would change anything ([`PowerBook::report`] would say something), left
    /// unmade: the caller stores the node's counter first when it would.
    pub fn would_change(
        &self,
        device: DeviceId,
        mains: bool,
        battery_mv: Option<u32>,
        now: i64,
    ) -> bool {
        let mut n = self
            .nodes
            .get(&device)
            .cloned()
            .unwrap_or_else(|| NodePower::first(now));
        !step(&mut n, self.policy, device, mains, battery_mv, now).is_empty()
    }

    /// A node's report at `now` (Unix seconds): what it changed.
    pub fn report(
        &mut self,
        device: DeviceId,
        mains: bool,
        battery_mv: Option<u32>,
        now: i64,
    ) -> Vec<PowerChange> {
        let policy = self.policy;
        let n = self
            .nodes
            .entry(device)
            .or_insert_with(|| NodePower::first(now));
        step(n, policy, device, mains, battery_mv, now)
    }

    /// A node's power as last reported.
    pub fn node(&self, device: DeviceId) -> Option<&NodePower> {
        self.nodes.get(&device)
    }

    /// Whether the node is to shed load.
    pub fn shed(&self, device: DeviceId) -> bool {
        self.nodes.get(&device).is_some_and(|n| n.shed)
    }

    /// Seconds of battery left for the node at the rate its voltage falls, from its last
    /// reading; `None` on mains, without a battery reading, before [`MIN_TREND_S`] of readings,
    /// or while the voltage does not fall.
    pub fn left_s(&self, device: DeviceId) -> Option<i64> {
        let n = self.nodes.get(&device)?;
        if n.mains {
            return None;
        }
        let (first, last) = (n.samples.first()?, n.samples.last()?);
        if last.0 - first.0 < MIN_TREND_S {
            return None;
        }
        // Least squares: millivolts per second.
        let k = n.samples.len() as f64;
        let (mt, mv) = n.samples.iter().fold((0.0, 0.0), |(a, b), &(t, v)| {
            (a + (t - first.0) as f64 / k, b + f64::from(v) / k)
        });
        let (mut cov, mut var) = (0.0, 0.0);
        for &(t, v) in &n.samples {
            let dt = (t - first.0) as f64 - mt;
            cov += dt * (f64::from(v) - mv);
            var += dt * dt;
        }
        let slope = cov / var;
        if !slope.is_finite() || slope >= 0.0 {
            return None;
        }
        // From the line's value now, not the last (noisy) reading.
        let at_last = mv + slope * ((last.0 - first.0) as f64 - mt);
        let left = (at_last - f64::from(self.policy.empty_mv)) / -slope;
        Some(left.max(0.0) as i64)
    }

    /// Every node, by id.
    pub fn nodes(&self) -> impl Iterator<Item = (DeviceId, &NodePower)> {
        self.nodes.iter().map(|(d, n)| (*d, n))
    }

    /// The site as a whole.
    pub fn site(&self) -> SitePower {
        let mut s = SitePower {
            nodes: self.nodes.len(),
            ..SitePower::default()
        };
        for (d, n) in &self.nodes {
            if n.shed {
                s.shed.push(*d);
            }
            if n.mains {
                continue;
            }
            s.on_battery.push(*d);
            s.mains_lost_since = Some(s.mains_lost_since.map_or(n.since, |t| t.min(n.since)));
            if let Some(left) = self.left_s(*d) {
                if s.least_left_s.is_none_or(|(_, l)| left < l) {
                    s.least_left_s = Some((*d, left));
                }
            }
        }
        s
    }
}

impl NodePower {
    /// A node not heard before: on mains until it says otherwise (a first report is news only
    /// if it says mains is lost).
    fn first(now: i64) -> Self {
        NodePower {
            mains: true,
            battery_mv: None,
            since: now,
            at: now,
            low: false,
            shed: false,
            samples: Vec::new(),
        }
    }
}

/// One report applied to a node: what it changed.
fn step(
    n: &mut NodePower,
    policy: PowerPolicy,
    device: DeviceId,
    mains: bool,
    battery_mv: Option<u32>,
    now: i64,
) -> Vec<PowerChange> {
    let mut out = Vec::new();

    n.battery_mv = battery_mv;
    if n.mains != mains {
        if mains {
            out.push(PowerChange::MainsBack(device, now - n.since));
        } else {
            out.push(PowerChange::MainsLost(device, battery_mv));
        }
        n.mains = mains;
        n.since = now;
        n.samples.clear();
    }
    if !mains {
        if let Some(mv) = battery_mv {
            if n.samples.len() >= SAMPLES {
                // Keep the first and every other one after: the trend's whole span stays.
                let mut i = 0;
                n.samples.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
            }
            n.samples.push((now, mv));
        }
    }
    // On battery without a reading (a gauge that dropped out) nothing changes; mains back
    // ends both the alarm and the shedding.
    let mv = battery_mv.filter(|_| !mains);
    let below = |line: u32| mv.is_some_and(|v| v < line);
    let low_over = mains || mv.is_some_and(|v| v >= policy.low_mv + HYSTERESIS_MV);
    if !n.low && below(policy.low_mv) {
        n.low = true;
        out.push(PowerChange::BatteryLow(device, mv.unwrap_or(0)));
    } else if n.low && low_over {
        n.low = false;
        out.push(PowerChange::BatteryOk(device));
    }
    // Shedding ends only with mains back: shedding the load itself lifts the battery's
    // voltage, which would end it and start it again, the door flapping.
    match policy.shed_below_mv {
        Some(line) if !n.shed && below(line) => {
            n.shed = true;
            out.push(PowerChange::Shed(device, mv.unwrap_or(0)));
        }
        _ if n.shed && (mains || policy.shed_below_mv.is_none()) => {
            n.shed = false;
            out.push(PowerChange::Unshed(device));
        }
        _ => {}
    }
    out
}

/// The power schedules read from the site's power feeds: when the grid is cut and when the
/// generator runs, as windows of Unix seconds, each feed's replaced whole at each good read.
/// What a room loses follows from its supply ([`RoomSupply`]): a grid room is dark in every
/// outage, a generator room only where no generator window covers it, a backed room never.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PowerPlan {
    /// Per feed (by its id): outage windows.
    #[serde(default)]
    outages: BTreeMap<String, Vec<(i64, i64)>>,
    /// Per feed: generator windows.
    #[serde(default)]
    generator: BTreeMap<String, Vec<(i64, i64)>>,
}

/// Sorted, merged windows.
fn merged(mut w: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    w.retain(|(a, b)| a < b);
    w.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(w.len());
    for (a, b) in w {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `a` less `b` (both sorted and merged): what of the windows `a` lies outside `b`.
pub fn minus(a: &[(i64, i64)], b: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &(mut s, e) in a {
        for &(bs, be) in b {
            if be <= s || bs >= e {
                continue;
            }
            if bs > s {
                out.push((s, bs));
            }
            s = s.max(be);
            if s >= e {
                break;
            }
        }
        if s < e {
            out.push((s, e));
        }
    }
    out
}

impl PowerPlan {
    /// Feed `feed`'s windows as just read over `[from, until)`: outages, or generator runs.
    /// What it said of times outside the read stays (a read reaches a day back: the past's dark
    /// hours are kept for the utilisation page), clipped at its edges; windows that ended before
    /// `keep_after` are dropped.
    pub fn set(
        &mut self,
        feed: &str,
        generator: bool,
        windows: Vec<(i64, i64)>,
        (from, until): (i64, i64),
        keep_after: i64,
    ) {
        let map = if generator {
            &mut self.generator
        } else {
            &mut self.outages
        };
        let mut kept: Vec<(i64, i64)> = map
            .remove(feed)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(a, b)| [(a, b.min(from)), (a.max(until), b)])
            .filter(|(a, b)| a < b && *b > keep_after)
            .collect();
        kept.extend(
            windows
                .into_iter()
                .map(|(a, b)| (a.max(from), b.min(until))),
        );
        map.insert(feed.to_string(), merged(kept));
    }

    /// Forgets the feeds not in `current` (removed from the site file, or of another kind now):
    /// (id, whether a generator plan).
    pub fn keep_only(&mut self, current: &[(String, bool)]) {
        self.outages
            .retain(|id, _| current.iter().any(|(c, g)| c == id && !g));
        self.generator
            .retain(|id, _| current.iter().any(|(c, g)| c == id && *g));
    }

    /// The outage windows ahead of `now`, by any feed.
    pub fn outages_after(&self, now: i64) -> usize {
        self.outages
            .values()
            .flatten()
            .filter(|(_, b)| *b > now)
            .count()
    }

    /// Whether any schedule has been read.
    pub fn is_empty(&self) -> bool {
        self.outages.values().all(Vec::is_empty)
    }

    /// The windows in `[from, until)` when a room with `supply` has no power.
    pub fn dark(&self, supply: RoomSupply, from: i64, until: i64) -> Vec<(i64, i64)> {
        let outages = merged(self.outages.values().flatten().copied().collect());
        let dark = match supply {
            RoomSupply::Backed => return Vec::new(),
            RoomSupply::Grid => outages,
            RoomSupply::Generator => minus(
                &outages,
                &merged(self.generator.values().flatten().copied().collect()),
            ),
        };
        dark.into_iter()
            .map(|(a, b)| (a.max(from), b.min(until)))
            .filter(|(a, b)| a < b)
            .collect()
    }

    /// Seconds of `[from, until)` a room with `supply` spends without power.
    pub fn dark_secs(&self, supply: RoomSupply, from: i64, until: i64) -> i64 {
        self.dark(supply, from, until)
            .iter()
            .map(|(a, b)| b - a)
            .sum()
    }
}

/// "4 h 10 m", "35 m", "40 s": a duration as staff read it.
pub fn hours_minutes(secs: i64) -> String {
    let m = secs.max(0) / 60;
    if m == 0 {
        format!("{} s", secs.max(0))
    } else if m >= 60 {
        format!("{} h {} m", m / 60, m % 60)
    } else {
        format!("{m} m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(s: &str) -> DeviceId {
        DeviceId::parse(s).unwrap()
    }

    fn policy() -> PowerPolicy {
        PowerPolicy {
            low_mv: 11_800,
            empty_mv: 10_500,
            shed_below_mv: Some(11_500),
        }
    }

    #[test]
    fn mains_lost_and_back_are_changes_with_their_time() {
        let mut b = PowerBook::new(policy());
        let d = dev("door-main");
        assert_eq!(b.report(d, true, Some(13_600), 1_000), vec![]);
        assert_eq!(
            b.report(d, false, Some(12_700), 1_100),
            vec![PowerChange::MainsLost(d, Some(12_700))]
        );
        assert_eq!(b.report(d, false, Some(12_690), 1_130), vec![]);
        let s = b.site();
        assert_eq!((s.nodes, s.on_battery.clone()), (1, vec![d]));
        assert_eq!(s.mains_lost_since, Some(1_100));
        assert_eq!(
            b.report(d, true, Some(13_400), 1_700),
            vec![PowerChange::MainsBack(d, 600)]
        );
        assert!(b.site().on_battery.is_empty());
        // A node whose first word is "on battery" is news too.
        let e = dev("door-side");
        assert_eq!(
            b.report(e, false, None, 2_000),
            vec![PowerChange::MainsLost(e, None)]
        );
    }

    #[test]
    fn time_left_follows_the_voltages_fall_and_not_its_noise() {
        let mut b = PowerBook::new(policy());
        let d = dev("door-main");
        b.report(d, true, Some(13_600), 0);
        // 12,700 mV falling 2 mV a minute with ±15 mV of noise: 10,500 is 1,100 minutes away
        // from the start.
        let mut left = None;
        for minute in 0..=60i64 {
            let noise = [0i64, 15, -15, 7, -7][(minute % 5) as usize];
            let mv = (12_700 - 2 * minute + noise) as u32;
            b.report(d, false, Some(mv), 60 + minute * 60);
            left = b.left_s(d);
            if minute < 5 {
                assert_eq!(left, None, "no trend before five minutes");
            }
        }
        let left_min = left.unwrap() / 60;
        assert!(
            (1_030..=1_050).contains(&left_min),
            "{left_min} minutes left, 1,040 expected"
        );
        assert_eq!(hours_minutes(left.unwrap()).split(' ').next(), Some("17"));
        // A voltage that does not fall gives no estimate.
        let e = dev("door-side");
        b.report(e, false, Some(12_000), 0);
        b.report(e, false, Some(12_000), 600);
        assert_eq!(b.left_s(e), None);
        assert_eq!(b.site().least_left_s.map(|(d, _)| d), Some(d));
    }

    #[test]
    fn low_battery_and_shedding_start_below_their_lines_and_end_clear_of_them() {
        let mut b = PowerBook::new(policy());
        let d = dev("door-office");
        b.report(d, false, Some(12_000), 0);
        assert_eq!(
            b.report(d, false, Some(11_790), 60),
            vec![PowerChange::BatteryLow(d, 11_790)]
        );
        assert_eq!(b.report(d, false, Some(11_850), 120), vec![], "no flapping");
        assert_eq!(
            b.report(d, false, Some(11_490), 180),
            vec![PowerChange::Shed(d, 11_490)]
        );
        assert!(b.shed(d));
        assert_eq!(b.site().shed, vec![d]);
        assert_eq!(b.report(d, false, Some(11_600), 240), vec![]);
        // Shedding lifts the voltage well clear of the line: still shed (no flapping door), and
        // a gauge that drops out changes nothing either.
        assert_eq!(
            b.report(d, false, Some(12_100), 250),
            vec![PowerChange::BatteryOk(d)]
        );
        assert!(b.shed(d));
        assert_eq!(b.report(d, false, None, 260), vec![]);
        assert_eq!(
            b.report(d, false, Some(11_700), 270),
            vec![PowerChange::BatteryLow(d, 11_700)]
        );
        // Mains back ends both.
        assert_eq!(
            b.report(d, true, Some(13_000), 300),
            vec![
                PowerChange::MainsBack(d, 300),
                PowerChange::BatteryOk(d),
                PowerChange::Unshed(d)
            ]
        );
        assert!(!b.shed(d));
        // Without a shedding line nothing is shed.
        let mut c = PowerBook::new(PowerPolicy::default());
        c.report(d, false, Some(10_000), 0);
        assert!(!c.shed(d));
    }

    #[test]
    fn a_restart_keeps_what_is_known_so_the_same_news_is_not_news_twice() {
        let mut b = PowerBook::new(policy());
        let (d, e) = (dev("door-main"), dev("door-side"));
        b.report(d, false, Some(11_400), 100);
        b.report(e, false, Some(12_600), 100);
        let mut c = PowerBook::restore(policy(), &b.state());
        assert!(c.shed(d), "still shed after the restart");
        assert_eq!(c.report(d, false, Some(11_390), 200), vec![]);
        assert_eq!(
            c.report(e, true, Some(13_500), 300),
            vec![PowerChange::MainsBack(e, 200)]
        );
        assert_eq!(PowerBook::restore(policy(), b"garbage").site().nodes, 0);
    }

    #[test]
    fn a_room_is_dark_in_the_outages_its_supply_does_not_cover() {
        let mut p = PowerPlan::default();
        let all = (0, 100_000);
        // Two schedules overlapping (two groups' feeds), and the generator 10:30-11:00.
        p.set("a", false, vec![(1_000, 2_000), (5_000, 6_000)], all, 0);
        p.set("b", false, vec![(1_500, 2_500)], all, 0);
        p.set("gen", true, vec![(1_200, 1_400), (5_000, 7_000)], all, 0);
        assert_eq!(
            p.dark(RoomSupply::Grid, 0, 10_000),
            [(1_000, 2_500), (5_000, 6_000)]
        );
        assert_eq!(
            p.dark(RoomSupply::Generator, 0, 10_000),
            [(1_000, 1_200), (1_400, 2_500)]
        );
        assert_eq!(p.dark(RoomSupply::Backed, 0, 10_000), []);
        assert_eq!(
            p.dark(RoomSupply::Grid, 1_800, 5_500),
            [(1_800, 2_500), (5_000, 5_500)]
        );
        assert_eq!(p.dark_secs(RoomSupply::Grid, 0, 10_000), 2_500);
        // A feed read again replaces what it said: the outage at 5,000 was called off.
        p.set("a", false, vec![(1_000, 2_000)], all, 0);
        assert_eq!(p.dark(RoomSupply::Grid, 0, 10_000), [(1_000, 2_500)]);
        // Empty and reversed windows count for nothing.
        p.set("b", false, vec![(3_000, 3_000), (4_000, 3_500)], all, 0);
        assert_eq!(p.dark(RoomSupply::Grid, 0, 10_000), [(1_000, 2_000)]);
        // A later read reaches only from 1,500 on: what it said before that stays, clipped.
        p.set("a", false, vec![(1_800, 1_900)], (1_500, 100_000), 0);
        assert_eq!(
            p.dark(RoomSupply::Grid, 0, 10_000),
            [(1_000, 1_500), (1_800, 1_900)]
        );
        // Windows past the retention go; a feed gone from the site file is forgotten.
        p.set("a", false, vec![], (1_500, 100_000), 1_600);
        assert_eq!(p.dark(RoomSupply::Grid, 0, 10_000), []);
        p.set("c", false, vec![(8_000, 9_000)], all, 0);
        p.keep_only(&[("a".into(), false)]);
        assert_eq!(p.dark(RoomSupply::Grid, 0, 10_000), []);
    }

    #[test]
    fn a_long_outage_keeps_the_trend_over_its_whole_span() {
        let mut b = PowerBook::new(policy());
        let d = dev("door-main");
        for i in 0..1_000i64 {
            b.report(d, false, Some((12_700 - i) as u32), i * 10);
        }
        let n = b.node(d).unwrap();
        assert!(n.samples.len() <= SAMPLES);
        assert_eq!(n.samples.first().map(|s| s.0), Some(0));
        // 0.1 mV a second: 11,701 mV now, 1,201 mV above empty: 12,010 s.
        let left = b.left_s(d).unwrap();
        assert!((11_900..=12_100).contains(&left), "{left}");
    }
}
