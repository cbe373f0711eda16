//! One table of timers, by what each is for, on a clock passed in: an engine asks it when it
//! next has something to do (`next`) and whether a timer is due (`due`). No timer reads a
//! clock, so a test runs a day of them in microseconds.

use std::collections::BTreeMap;
use std::time::Instant;

/// When each timer fires next; a timer not set does not fire.
#[derive(Debug, Clone)]
pub struct Timers<T: Ord + Copy> {
    at: BTreeMap<T, Instant>,
}

impl<T: Ord + Copy> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            at: BTreeMap::new(),
        }
    }
}

impl<T: Ord + Copy> Timers<T> {
    /// Fires `timer` at `at` (instead of when it was set to).
    pub fn set(&mut self, timer: T, at: Instant) {
        self.at.insert(timer, at);
    }

    /// Fires `timer` at `at` if that is sooner than it was set to (or it was not set).
    pub fn set_earlier(&mut self, timer: T, at: Instant) {
        let slot = self.at.entry(timer).or_insert(at);
        *slot = (*slot).min(at);
    }

    /// Stops `timer`.
    pub fn stop(&mut self, timer: T) {
        self.at.remove(&timer);
    }

    /// When `timer` fires, if set.
    pub fn get(&self, timer: T) -> Option<Instant> {
        self.at.get(&timer).copied()
    }

    /// Whether `timer` is set and its time has come at `now`. It stays due until set again.
    pub fn due(&self, timer: T, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The soonest time any timer fires.
    pub fn next(&self) -> Option<Instant> {
        self.at.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum T {
        A,
        B,
    }

    #[test]
    fn the_soonest_timer_is_next_and_a_due_timer_stays_due_until_set_again() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut timers = Timers::default();
        assert_eq!(timers.next(), None);
        timers.set(T::A, t0 + 10 * s);
        timers.set(T::B, t0 + 3 * s);
        assert_eq!(timers.next(), Some(t0 + 3 * s));
        assert!(!timers.due(T::B, t0 + 2 * s));
        assert!(timers.due(T::B, t0 + 3 * s));
        assert!(
            timers.due(T::B, t0 + 4 * s),
            "still due: nobody set it again"
        );
        timers.set(T::B, t0 + 20 * s);
        assert_eq!(timers.next(), Some(t0 + 10 * s));
        timers.stop(T::A);
        assert!(!timers.due(T::A, t0 + 100 * s));
        assert_eq!(timers.next(), Some(t0 + 20 * s));
    }

    #[test]
    fn set_earlier_only_brings_a_timer_forward() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut timers = Timers::default();
        timers.set_earlier(T::A, t0 + 5 * s);
        assert_eq!(timers.get(T::A), Some(t0 + 5 * s));
        timers.set_earlier(T::A, t0 + 9 * s);
        assert_eq!(timers.get(T::A), Some(t0 + 5 * s));
        timers.set_earlier(T::A, t0 + 2 * s);
        assert_eq!(timers.get(T::A), Some(t0 + 2 * s));
    }
}
