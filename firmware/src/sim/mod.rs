//! The building simulator (feature `sim`): the Kherson Centre's door nodes and sensor nodes,
//! built from the same firmware core as the real ones, over simulated hardware, with the
//! Centre's people walking a day through them at a chosen speed-up, all over MQTT to a real
//! gateway. The demo and the load benchmarks drive it; `kombinat-sim` runs it alone.
//!
//! - [`building`]: the site file's rooms, doors and leases, and the ways through them;
//! - [`population`]: the day's people, bookings and devices, from a seed; the import files;
//! - [`world`]: the nodes and the people, running.

pub mod building;
pub mod population;
pub mod world;

pub use building::Building;
pub use population::{Population, SimClock};
pub use world::{
    SimConfig, SimReport, World, DRILL_ALERT, DRILL_POWER_CUT, DRILL_SIREN_DOOR, DRILL_WEAK_DOOR,
};

/// What `kombinat-sim seed` leaves for `kombinat-sim run`: the clock the bookings were written
/// for, and the seed, so that both draw the same day.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DayFile {
    /// Draws the day's people and plans: the same seed, the same day.
    pub seed: u64,
    /// Real Unix time at the simulated start.
    pub real_start: f64,
    /// Simulated minutes after midnight at the start.
    pub start_min: u32,
    /// Speed-up.
    pub speed: f64,
    /// See [`SimClock::midnight`] (absent: real time).
    #[serde(default)]
    pub midnight: Option<i64>,
}

impl DayFile {
    /// The simulated clock this day runs on.
    pub fn clock(&self) -> SimClock {
        SimClock {
            real_start: self.real_start,
            start_min: self.start_min,
            speed: self.speed,
            midnight: self.midnight,
        }
    }
}
