//! The time the service takes as "now": the system clock, the system clock moved by a fixed
//! offset (`kombinat run --now`, `KOMBINAT_NOW`: replaying a past day, tests with fixed dates),
//! or, in the demo, the simulated building's clock, which runs faster than the system's.
//!
//! Only the building's time goes through here: what decides access, stamps the log, judges
//! bookings and ages occupancy evidence. Timers and timeouts keep the monotonic clock
//! (`Instant`), which neither an offset nor a speed-up changes, and a staff member's session
//! lasts real hours.

use chrono::{DateTime, Utc};

/// Where "now" comes from. Cheap to copy; the default is the system clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// This clock's reading (Unix ms) when the system clock read `anchor_ms`.
    start_ms: i64,
    anchor_ms: i64,
    /// Seconds on this clock per system second.
    rate: f64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The system clock.
    pub const fn system() -> Self {
        Clock {
            start_ms: 0,
            anchor_ms: 0,
            rate: 1.0,
        }
    }

    /// A clock that reads `start` now and then runs at the system clock's pace.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Clock::running(start, Utc::now(), 1.0)
    }

    /// A clock that reads `start` when the system clock reads `at`, and runs `rate` times as
    /// fast as the system clock (a simulated day: `rate` 30 runs an hour in two minutes).
    /// `rate` must be finite and positive; anything else is taken as 1.
    pub fn running(start: DateTime<Utc>, at: DateTime<Utc>, rate: f64) -> Self {
        Clock {
            start_ms: start.timestamp_millis(),
            anchor_ms: at.timestamp_millis(),
            rate: if rate.is_finite() && rate > 0.0 {
                rate
            } else {
                1.0
            },
        }
    }

    /// The time now on this clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.at(Utc::now())
    }

    /// The time on this clock when the system clock reads `system`.
    pub fn at(&self, system: DateTime<Utc>) -> DateTime<Utc> {
        let since = (system.timestamp_millis() - self.anchor_ms) as f64 * self.rate;
        let ms = self.start_ms.saturating_add(since.round() as i64);
        DateTime::from_timestamp_millis(ms).unwrap_or(system)
    }

    /// The time a staff member's session lives by: this clock when it runs at the system's
    /// pace, the system clock when it runs faster (a session lasts real hours in the demo).
    pub fn session_now(&self) -> DateTime<Utc> {
        if self.rate == 1.0 {
            self.now()
        } else {
            Utc::now()
        }
    }

    /// Seconds on this clock per system second: 1 but in a simulation.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Whether this is the system clock unmoved.
    pub fn is_system(&self) -> bool {
        self.start_ms == self.anchor_ms && self.rate == 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_clock_started_in_the_past_reads_that_time_and_runs_on() {
        let start = t("2024-02-29T12:00:00+02:00");
        let c = Clock::starting_at(start);
        let a = c.now();
        assert!((a - start).num_seconds().abs() < 5, "{a}");
        assert!(c.now() >= a, "it does not go back");
        assert!(!c.is_system());
        assert!(Clock::system().is_system());
        assert!((Clock::default().now() - Utc::now()).num_seconds().abs() < 5);
    }

    #[test]
    fn a_simulated_clock_runs_its_rate_times_as_fast() {
        let anchor = t("2026-12-04T20:00:00Z");
        let start = t("2026-12-04T06:00:00Z");
        let c = Clock::running(start, anchor, 30.0);
        assert_eq!(c.at(anchor), start);
        // Two system minutes are an hour on it.
        assert_eq!(
            c.at(anchor + chrono::Duration::minutes(2)),
            t("2026-12-04T07:00:00Z")
        );
        assert_eq!(c.rate(), 30.0);
        assert!(!c.is_system());
        // A nonsense rate is the system's pace.
        let c = Clock::running(start, anchor, f64::NAN);
        assert_eq!(
            c.at(anchor + chrono::Duration::minutes(2)),
            t("2026-12-04T06:02:00Z")
        );
        assert!(!Clock::running(start, anchor, 0.0).rate().is_nan());
    }

    #[test]
    fn a_session_lives_by_real_hours_on_a_fast_clock_and_by_the_moved_one_else() {
        let fast = Clock::running(t("2026-12-04T06:00:00Z"), Utc::now(), 30.0);
        assert!((fast.session_now() - Utc::now()).num_seconds().abs() < 5);
        let moved = Clock::starting_at(t("2024-02-29T12:00:00Z"));
        assert!((moved.session_now() - moved.now()).num_seconds().abs() < 5);
    }
}
