//! The presence detector and the head count, calibrated on data.
//!
//! Presence: a room is occupied when its light is on (at least `light_lux`) and its CO2 is
//! above the empty-room level (`co2_with_light_ppm`); a room without a light sensor is occupied
//! when its CO2 is high (`co2_ppm`) or rising (`co2_rise_ppm_per_min`). The thresholds are fitted
//! by trying every value on a grid and keeping the one right most often on the training data:
//! four numbers a facility manager can read and a Pi evaluates in nanoseconds.
//!
//! Head count from workplace lights: one person per workplace lamp switched on (at least
//! `light_lux` at the desk sensor), and, where the data says so, one when motion is seen with no
//! lamp on.

/// What a room's sensors say at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// Illuminance, lux.
    pub light: Option<f32>,
    /// CO2, ppm.
    pub co2: Option<f32>,
    /// CO2 change, ppm per minute (over the last few minutes).
    pub co2_slope: Option<f32>,
}

/// The presence detector's thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresenceDetector {
    /// Light at or above this means lights are on.
    pub light_lux: f32,
    /// With a light sensor: CO2 at or above this confirms people.
    pub co2_with_light_ppm: f32,
    /// Without one: CO2 at or above this means people…
    pub co2_ppm: f32,
    /// …or CO2 rising at least this fast.
    pub co2_rise_ppm_per_min: f32,
}

impl Default for PresenceDetector {
    /// The thresholds [`PresenceDetector::fit`] finds on the UCI training data
    /// (`datatraining.txt`); a test checks that they still are.
    fn default() -> Self {
        PresenceDetector {
            light_lux: 190.0,
            co2_with_light_ppm: 470.0,
            co2_ppm: 760.0,
            co2_rise_ppm_per_min: 2.5,
        }
    }
}

impl PresenceDetector {
    /// Whether the room is occupied; `None` with neither light nor CO2.
    pub fn occupied(&self, s: &Sample) -> Option<bool> {
        match (s.light, s.co2) {
            (Some(l), Some(c)) => Some(l >= self.light_lux && c >= self.co2_with_light_ppm),
            (Some(l), None) => Some(l >= self.light_lux),
            (None, Some(c)) => Some(
                c >= self.co2_ppm || s.co2_slope.is_some_and(|d| d >= self.co2_rise_ppm_per_min),
            ),
            (None, None) => None,
        }
    }

    /// The rule in words.
    pub fn explain(&self) -> String {
        format!(
            "occupied when light ≥ {:.0} lx and CO2 ≥ {:.0} ppm; without a light sensor, when CO2 ≥ {:.0} ppm or rising ≥ {:.1} ppm/min",
            self.light_lux, self.co2_with_light_ppm, self.co2_ppm, self.co2_rise_ppm_per_min
        )
    }

    /// Fits the thresholds to labelled samples: every pair on a grid is tried, and of the pairs
    /// right most often the middle one is kept (the centre of the plateau, not its edge).
    pub fn fit(data: &[(Sample, bool)]) -> PresenceDetector {
        let right = |f: &dyn Fn(&Sample) -> bool| data.iter().filter(|(s, o)| f(s) == *o).count();
        let lights: Vec<f32> = (0..=1000).step_by(5).map(|x| x as f32).collect();
        let co2s: Vec<f32> = (350..=1000).step_by(10).map(|x| x as f32).collect();
        let (light_lux, co2_with_light_ppm) = plateau_centre(&co2s, &lights, |c, l| {
            right(&|s: &Sample| s.light.is_some_and(|v| v >= l) && s.co2.is_some_and(|v| v >= c))
        });
        let levels: Vec<f32> = (400..=1500).step_by(10).map(|x| x as f32).collect();
        let rises: Vec<f32> = (-4..=20).map(|x| x as f32 / 2.0).collect();
        let (co2_rise_ppm_per_min, co2_ppm) = plateau_centre(&levels, &rises, |c, d| {
            right(&|s: &Sample| {
                s.co2.is_some_and(|v| v >= c) || s.co2_slope.is_some_and(|v| v >= d)
            })
        });
        PresenceDetector {
            light_lux,
            co2_with_light_ppm,
            co2_ppm,
            co2_rise_ppm_per_min,
        }
    }

    /// The share of samples it gets right, looking only at what `see` keeps of each sample.
    pub fn accuracy(&self, data: &[(Sample, bool)], see: impl Fn(&Sample) -> Sample) -> f64 {
        let right = data
            .iter()
            .filter(|(s, o)| self.occupied(&see(s)) == Some(*o))
            .count();
        right as f64 / data.len().max(1) as f64
    }
}

/// The best-scoring pair on a grid of `outer × inner` values: of all pairs with the top score,
/// the middle `outer` value, then the middle `inner` value at it. Returns `(inner, outer)`.
fn plateau_centre(outer: &[f32], inner: &[f32], score: impl Fn(f32, f32) -> usize) -> (f32, f32) {
    let mut best = 0;
    let mut pairs: Vec<(f32, f32)> = Vec::new();
    for &o in outer {
        for &i in inner {
            let n = score(o, i);
            if n > best {
                best = n;
                pairs.clear();
            }
            if n == best {
                pairs.push((o, i));
            }
        }
    }
    let Some(&(mid, _)) = pairs.get(pairs.len() / 2) else {
        return (
            inner.first().copied().unwrap_or(0.0),
            outer.first().copied().unwrap_or(0.0),
        );
    };
    let at: Vec<f32> = pairs
        .iter()
        .filter(|(o, _)| *o == mid)
        .map(|(_, i)| *i)
        .collect();
    (at[at.len() / 2], mid)
}

/// One moment of a room with workplace lights, a motion sensor and a known head count.
#[derive(Debug, Clone, PartialEq)]
pub struct CountSample {
    /// The day, for leave-one-day-out evaluation.
    pub day: String,
    /// Light at each workplace, lux.
    pub lights: [f32; 4],
    /// Motion seen.
    pub motion: bool,
    /// People present.
    pub count: u8,
}

/// The head count from workplace lights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkplaceCount {
    /// A workplace lamp is on at or above this.
    pub light_lux: f32,
    /// Whether motion with no lamp on counts one person (fitted: in some rooms motion without
    /// a lamp is mostly someone passing through).
    pub motion_is_one: bool,
}

impl WorkplaceCount {
    /// People present.
    pub fn count(&self, lights: &[f32], motion: bool) -> u8 {
        let lit = lights.iter().filter(|l| **l >= self.light_lux).count() as u8;
        if lit == 0 && motion && self.motion_is_one {
            1
        } else {
            lit
        }
    }

    /// Fits the threshold and the motion rule (grid search, most samples exactly right).
    pub fn fit(data: &[&CountSample]) -> WorkplaceCount {
        let mut best = (
            0,
            WorkplaceCount {
                light_lux: 0.0,
                motion_is_one: false,
            },
        );
        for motion_is_one in [false, true] {
            for t in (10..=500).step_by(10).map(|x| x as f32) {
                let m = WorkplaceCount {
                    light_lux: t,
                    motion_is_one,
                };
                let n = data
                    .iter()
                    .filter(|s| m.count(&s.lights, s.motion) == s.count)
                    .count();
                if n > best.0 {
                    best = (n, m);
                }
            }
        }
        best.1
    }
}

/// Exact head-count accuracy, leaving one day out at a time (fit on the other days, count the
/// left-out one): (over all samples, over the occupied samples only).
pub fn leave_one_day_out(data: &[CountSample]) -> (f64, f64) {
    let mut days: Vec<&str> = data.iter().map(|s| s.day.as_str()).collect();
    days.sort_unstable();
    days.dedup();
    let (mut right, mut occ_right, mut occ) = (0usize, 0usize, 0usize);
    for day in days {
        let train: Vec<&CountSample> = data.iter().filter(|s| s.day != day).collect();
        let model = WorkplaceCount::fit(&train);
        for s in data.iter().filter(|s| s.day == day) {
            let ok = model.count(&s.lights, s.motion) == s.count;
            right += usize::from(ok);
            if s.count > 0 {
                occ += 1;
                occ_right += usize::from(ok);
            }
        }
    }
    (
        right as f64 / data.len().max(1) as f64,
        occ_right as f64 / occ.max(1) as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn data(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/occupancy")
            .join(name)
    }

    #[test]
    fn the_rules_read_as_written() {
        let d = PresenceDetector {
            light_lux: 300.0,
            co2_with_light_ppm: 470.0,
            co2_ppm: 760.0,
            co2_rise_ppm_per_min: 2.5,
        };
        let s = |light, co2, slope| Sample {
            light,
            co2,
            co2_slope: slope,
        };
        assert_eq!(d.occupied(&s(Some(400.0), Some(500.0), None)), Some(true));
        assert_eq!(
            d.occupied(&s(Some(400.0), Some(420.0), None)),
            Some(false),
            "lights left on in an empty room"
        );
        assert_eq!(
            d.occupied(&s(None, Some(700.0), Some(3.0))),
            Some(true),
            "CO2 rising"
        );
        assert_eq!(d.occupied(&s(None, Some(700.0), Some(0.0))), Some(false));
        assert_eq!(d.occupied(&s(None, None, None)), None);
        let m = WorkplaceCount {
            light_lux: 110.0,
            motion_is_one: true,
        };
        assert_eq!(m.count(&[120.0, 30.0, 200.0, 10.0], false), 2);
        assert_eq!(m.count(&[0.0; 4], true), 1);
        assert_eq!(m.count(&[0.0; 4], false), 0);
        let m = WorkplaceCount {
            motion_is_one: false,
            ..m
        };
        assert_eq!(m.count(&[0.0; 4], true), 0);
    }

    #[test]
    fn fitted_on_the_uci_training_days_it_detects_presence_on_the_test_days() {
        let train = uci_or_skip("datatraining.txt");
        let test = uci_or_skip("datatest.txt");
        let (Some(train), Some(test)) = (train, test) else {
            return;
        };
        let d = PresenceDetector::fit(&train);
        assert_eq!(
            d,
            PresenceDetector::default(),
            "the built-in thresholds are the fitted ones"
        );
        let with_light = d.accuracy(&test, |s| *s);
        let co2_only = d.accuracy(&test, |s| Sample { light: None, ..*s });
        assert!(
            with_light >= 0.975,
            "light and CO2: {with_light} ({})",
            d.explain()
        );
        assert!(co2_only >= 0.85, "CO2 only: {co2_only} ({})", d.explain());
    }

    #[test]
    fn workplace_lights_count_heads_on_days_they_were_not_fitted_on() {
        let path = data("Occupancy_Estimation_2017-12.csv");
        let Ok(samples) = super::super::uci::estimation(&path) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "the dataset is missing: {}",
                path.display()
            );
            return;
        };
        let (all, occupied) = leave_one_day_out(&samples);
        assert!(all > 0.95 && occupied > 0.9, "{all} {occupied}");
    }

    fn uci_or_skip(name: &str) -> Option<Vec<(Sample, bool)>> {
        let path = data(name);
        match super::super::uci::detection(&path) {
            Ok(d) => Some(d),
            Err(e) => {
                assert!(std::env::var_os("CI").is_none(), "{e}");
                eprintln!("SKIPPED: {e}");
                None
            }
        }
    }
}
