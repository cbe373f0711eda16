//! Weekly schedules in the site's local time, written the way staff say them.
//!
//! A schedule is a list of rules such as `mon-fri 08:00-20:00`, `tue-sun 10:00-18:00`,
//! `sat,sun 10:00-16:00`, `daily 22:00-06:00` (crossing midnight) or `always`. Rules are evaluated
//! on the wall clock of the site's time zone, so `08:00` stays 08:00 across daylight-saving
//! changes. [`LocalTime`] is the one conversion from an instant to that wall clock.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// An instant as the site's wall clock shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// The local calendar date.
    pub date: NaiveDate,
    /// Day of the week, Monday = 0.
    pub weekday: u8,
    /// Minutes since local midnight (0..1440).
    pub minute: u16,
}

impl LocalTime {
    /// Converts an instant to the wall clock of `tz`.
    pub fn of(now: DateTime<Utc>, tz: Tz) -> Self {
        let local = now.with_timezone(&tz);
        LocalTime {
            date: local.date_naive(),
            weekday: local.weekday().num_days_from_monday() as u8,
            minute: (local.hour() * 60 + local.minute()) as u16,
        }
    }
}

/// The site's wall clock as a table of UTC offsets, so that reading it costs a binary search
/// instead of a time-zone database lookup on every decision. Built for 2000–2100; outside that
/// range it falls back to the database.
#[derive(Debug, Clone)]
pub struct SiteClock {
    tz: Tz,
    /// (first UTC second the offset applies, offset in seconds), by time.
    spans: Vec<(i64, i32)>,
    range: (i64, i64),
}

impl SiteClock {
    /// Works out the offset table of `tz`.
    pub fn new(tz: Tz) -> Self {
        let offset = |t: i64| {
            tz.offset_from_utc_datetime(
                &DateTime::from_timestamp(t, 0)
                    .unwrap_or_default()
                    .naive_utc(),
            )
            .fix()
            .local_minus_utc()
        };
        let start = NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(0, |d| d.and_utc().timestamp());
        let end = start + 101 * 365 * 86_400;
        let mut spans = vec![(start, offset(start))];
        let mut t = start;
        // Sample every 6 hours (zones change at most a few times a year, never twice in 6 hours)
        // and find each change to the second by bisection.
        while t < end {
            let next = t + 6 * 3600;
            let (a, b) = (offset(t), offset(next));
            if a != b {
                let (mut lo, mut hi) = (t, next);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if offset(mid) == a {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                spans.push((hi, b));
            }
            t = next;
        }
        SiteClock {
            tz,
            spans,
            range: (start, end),
        }
    }

    /// The zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The wall clock at an instant.
    #[inline]
    pub fn local(&self, now: DateTime<Utc>) -> LocalTime {
        let t = now.timestamp();
        if t < self.range.0 || t >= self.range.1 {
            return LocalTime::of(now, self.tz);
        }
        let i = self.spans.partition_point(|&(from, _)| from <= t);
        let offset = self.spans[i.saturating_sub(1)].1;
        let local = t + i64::from(offset);
        let days = local.div_euclid(86_400);
        let date = DateTime::from_timestamp(days * 86_400, 0)
            .unwrap_or_default()
            .date_naive();
        LocalTime {
            date,
            // 1970-01-01 was a Thursday (Monday = 0).
            weekday: (days + 3).rem_euclid(7) as u8,
            minute: (local.rem_euclid(86_400) / 60) as u16,
        }
    }
}

/// One rule: a set of weekdays and a span of the day, which may cross midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    /// Bit `d` set = the span starts on weekday `d` (Monday = 0).
    days: u8,
    start: u16,
    /// Exclusive end in minutes, 1..=1440; `end <= start` means the span ends the next day.
    end: u16,
}

impl Rule {
    fn contains(&self, t: &LocalTime) -> bool {
        let today = self.days & (1 << t.weekday) != 0;
        if self.start < self.end {
            today && t.minute >= self.start && t.minute < self.end
        } else {
            let yesterday = self.days & (1 << ((t.weekday + 6) % 7)) != 0;
            (today && t.minute >= self.start) || (yesterday && t.minute < self.end)
        }
    }
}

/// A weekly schedule: open when any rule holds. The empty schedule is never open.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct WeeklySchedule {
    rules: Vec<Rule>,
    text: Vec<String>,
}

/// Why a schedule rule did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule rule {rule:?}: {why} (write e.g. \"mon-fri 08:00-20:00\", \"sat,sun 10:00-16:00\", \"daily 22:00-06:00\" or \"always\")")]
pub struct ScheduleError {
    rule: String,
    why: &'static str,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Option<u8> {
    DAY_NAMES.iter().position(|d| *d == s).map(|d| d as u8)
}

fn clock(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl WeeklySchedule {
    /// Always open.
    pub fn always() -> Self {
        Self::parse(["always"]).unwrap_or_default()
    }

    /// Parses a list of rules.
    pub fn parse<'a>(rules: impl IntoIterator<Item = &'a str>) -> Result<Self, ScheduleError> {
        let mut out = WeeklySchedule::default();
        for text in rules {
            let err = |why| ScheduleError {
                rule: text.to_string(),
                why,
            };
            let lower = text.trim().to_ascii_lowercase();
            if lower == "always" {
                out.rules.push(Rule {
                    days: 0x7f,
                    start: 0,
                    end: 1440,
                });
                out.text.push(lower);
                continue;
            }
            let (days_text, span) = lower
                .split_once(' ')
                .ok_or_else(|| err("expected days, a space and a time span"))?;
            let mut days = 0u8;
            if days_text == "daily" {
                days = 0x7f;
            } else {
                for part in days_text.split(',') {
                    match part.split_once('-') {
                        Some((a, b)) => {
                            let (a, b) = (
                                day(a).ok_or_else(|| err("unknown day"))?,
                                day(b).ok_or_else(|| err("unknown day"))?,
                            );
                            let mut d = a;
                            loop {
                                days |= 1 << d;
                                if d == b {
                                    break;
                                }
                                d = (d + 1) % 7;
                            }
                        }
                        None => days |= 1 << day(part).ok_or_else(|| err("unknown day"))?,
                    }
                }
            }
            let (a, b) = span
                .trim()
                .split_once('-')
                .ok_or_else(|| err("expected a span such as 08:00-20:00"))?;
            let start = clock(a).ok_or_else(|| err("bad start time"))?;
            let end = clock(b).ok_or_else(|| err("bad end time"))?;
            if start == 1440 {
                return Err(err("a span cannot start at 24:00"));
            }
            if start == end {
                return Err(err("a span needs a start and an end that differ"));
            }
            out.rules.push(Rule { days, start, end });
            out.text.push(format!("{days_text} {a}-{b}"));
        }
        Ok(out)
    }

    /// Whether the schedule is open at this local time.
    pub fn contains(&self, t: &LocalTime) -> bool {
        self.rules.iter().any(|r| r.contains(t))
    }

    /// Whether the schedule is open at every minute of the week ("always", "daily 00:00-24:00",
    /// or rules that together cover the week).
    pub fn is_always(&self) -> bool {
        (0..7u8).all(|weekday| {
            (0..1440u16).all(|minute| {
                self.contains(&LocalTime {
                    date: chrono::NaiveDate::default(),
                    weekday,
                    minute,
                })
            })
        })
    }

    /// The rules as written (normalised to lower case).
    pub fn rules(&self) -> &[String] {
        &self.text
    }
}

impl fmt::Debug for WeeklySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WeeklySchedule({:?})", self.text)
    }
}

impl fmt::Display for WeeklySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text.is_empty() {
            return f.write_str("never");
        }
        f.write_str(&self.text.join(", "))
    }
}

impl Serialize for WeeklySchedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.text.serialize(s)
    }
}

impl<'de> Deserialize<'de> for WeeklySchedule {
    /// Accepts one rule as a string or several as a list.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let rules = match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        WeeklySchedule::parse(rules.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

/// Day-of-week name for messages.
pub fn weekday_name(d: Weekday) -> &'static str {
    DAY_NAMES[d.num_days_from_monday() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(weekday: u8, h: u16, m: u16) -> LocalTime {
        LocalTime {
            date: NaiveDate::from_ymd_opt(2026, 11, 23 + weekday as u32).unwrap(),
            weekday,
            minute: h * 60 + m,
        }
    }

    #[test]
    fn the_offset_table_reads_the_same_wall_clock_as_the_time_zone_database() {
        let clock = SiteClock::new(chrono_tz::Europe::Kyiv);
        // Every 17 minutes through 2026 (both changes included), and the seconds around them.
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        for k in 0..(366 * 24 * 60 / 17) {
            let t = start + chrono::Duration::minutes(17 * k);
            assert_eq!(clock.local(t), LocalTime::of(t, clock.tz()), "{t}");
        }
        for edge in ["2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z"] {
            let e = DateTime::parse_from_rfc3339(edge).unwrap().to_utc();
            for d in -2..=2 {
                let t = e + chrono::Duration::seconds(d);
                assert_eq!(clock.local(t), LocalTime::of(t, clock.tz()), "{t}");
            }
        }
        let far = DateTime::parse_from_rfc3339("2150-06-01T12:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(clock.local(far), LocalTime::of(far, clock.tz()));
    }

    #[test]
    fn weekday_rule_holds_inside_its_span_only() {
        let s = WeeklySchedule::parse(["mon-fri 08:00-20:00"]).unwrap();
        assert!(s.contains(&at(0, 8, 0)));
        assert!(s.contains(&at(4, 19, 59)));
        assert!(!s.contains(&at(4, 20, 0)));
        assert!(!s.contains(&at(0, 7, 59)));
        assert!(!s.contains(&at(5, 12, 0)));
    }

    #[test]
    fn a_span_across_midnight_belongs_to_the_day_it_starts() {
        let s = WeeklySchedule::parse(["fri 22:00-06:00"]).unwrap();
        assert!(s.contains(&at(4, 23, 0)));
        assert!(s.contains(&at(5, 5, 59)));
        assert!(!s.contains(&at(5, 6, 0)));
        assert!(!s.contains(&at(3, 23, 0)));
        assert!(!s.contains(&at(4, 5, 0)));
    }

    #[test]
    fn day_ranges_wrap_around_the_week_and_lists_combine() {
        let s = WeeklySchedule::parse(["tue-sun 10:00-18:00"]).unwrap();
        assert!(!s.contains(&at(0, 12, 0)));
        assert!(s.contains(&at(6, 12, 0)));
        let s = WeeklySchedule::parse(["sat,sun 10:00-24:00", "mon 09:00-10:00"]).unwrap();
        assert!(s.contains(&at(5, 23, 59)));
        assert!(s.contains(&at(0, 9, 30)));
        assert!(WeeklySchedule::always().contains(&at(3, 3, 3)));
        assert!(!WeeklySchedule::default().contains(&at(3, 3, 3)));
    }

    #[test]
    fn bad_rules_are_refused_with_the_rule_quoted() {
        for bad in [
            "mon-fri",
            "mon-fry 08:00-20:00",
            "mon 25:00-26:00",
            "mon 08:00-08:00",
            "mon 8-20",
            "mon 24:00-01:00",
        ] {
            let e = WeeklySchedule::parse([bad]).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
