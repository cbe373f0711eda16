//! The time the service takes as "now": the system clock, or the system clock moved by a fixed
//! offset (`kombinat run --now`, `KOMBINAT_NOW`: replaying a past day, tests with fixed dates).
//!
//! Only wall-clock time goes through here: what decides access, stamps the log and judges
//! bookings. Timers and timeouts keep the monotonic clock (`Instant`), which an offset does
//! not change.

use chrono::{DateTime, Duration, Utc};

/// Where "now" comes from. Cheap to copy; the default is the system clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    offset_ms: i64,
}

impl Clock {
    /// The system clock.
    pub const fn system() -> Self {
        Clock { offset_ms: 0 }
    }

    /// A clock that reads `start` now and then runs at the system clock's pace.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Clock {
            offset_ms: (start - Utc::now()).num_milliseconds(),
        }
    }

    /// The time now on this clock.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms)
    }

    /// Whether this is the system clock unmoved.
    pub fn is_system(&self) -> bool {
        self.offset_ms == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_started_in_the_past_reads_that_time_and_runs_on() {
        let start = DateTime::parse_from_rfc3339("2024-02-29T12:00:00+02:00")
            .unwrap()
            .with_timezone(&Utc);
        let c = Clock::starting_at(start);
        let a = c.now();
        assert!((a - start).num_seconds().abs() < 5, "{a}");
        assert!(c.now() >= a, "it does not go back");
        assert!(!c.is_system());
        assert!(Clock::system().is_system());
        assert!((Clock::default().now() - Utc::now()).num_seconds().abs() < 5);
    }
}
