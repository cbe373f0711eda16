//! Time zones a calendar names in ways calcard does not resolve by itself:
//! - a `VTIMEZONE` whose `TZID` is neither an IANA nor a Windows name ("Kherson local time",
//!   exports from older Outlook and Lotus versions, hand-written files): its rules are read
//!   and matched to the IANA zone that keeps the same offsets over the years the feed covers;
//! - `X-WR-TIMEZONE` (Google's calendar-wide zone): the clock of the calendar's floating times.
//!
//! Both work by rewriting the calendar before expansion, so the expansion (and its keys) sees
//! ordinary `TZID` parameters.

use std::collections::HashMap;
use std::str::FromStr;

use calcard::icalendar::{
    ICalendar, ICalendarComponentType, ICalendarFrequency, ICalendarParameter,
    ICalendarParameterName, ICalendarParameterValue, ICalendarProperty, ICalendarValue,
};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone};

/// One observance of a zone: from its onset (UTC seconds) on, this offset (seconds east); and
/// the offset before it (TZOFFSETFROM), which holds before the zone's first onset.
type Onset = (i64, i32, i32);

/// At most this many onsets a zone (RDATE lists can be long) and this many zones a calendar
/// are compared: a hostile file must not cost seconds at every read.
const MAX_ONSETS: usize = 2_000;
const MAX_ZONES: usize = 16;

/// How many years of a zone's rules are compared around the window.
const MARGIN_YEARS: i32 = 1;

fn utc_offset(v: Option<&ICalendarValue>) -> Option<i32> {
    let d = v?.as_partial_date_time()?;
    let s = i32::from(d.tz_hour?) * 3600 + i32::from(d.tz_minute.unwrap_or(0)) * 60;
    Some(if d.tz_minus { -s } else { s })
}

fn weekday(w: calcard::icalendar::ICalendarWeekday) -> chrono::Weekday {
    use calcard::icalendar::ICalendarWeekday as W;
    match w {
        W::Monday => chrono::Weekday::Mon,
        W::Tuesday => chrono::Weekday::Tue,
        W::Wednesday => chrono::Weekday::Wed,
        W::Thursday => chrono::Weekday::Thu,
        W::Friday => chrono::Weekday::Fri,
        W::Saturday => chrono::Weekday::Sat,
        W::Sunday => chrono::Weekday::Sun,
    }
}

/// The `nth` (1 = first, -1 = last) `day` of a month.
fn nth_weekday(year: i32, month: u32, nth: i16, day: chrono::Weekday) -> Option<NaiveDate> {
    let days: Vec<NaiveDate> = (1..=31)
        .filter_map(|d| NaiveDate::from_ymd_opt(year, month, d))
        .filter(|d| d.weekday() == day)
        .collect();
    let i = if nth > 0 {
        usize::try_from(nth - 1).ok()?
    } else {
        days.len().checked_sub(usize::try_from(-nth).ok()?)?
    };
    days.get(i).copied()
}

/// The onsets a `VTIMEZONE`'s observances describe up to the end of `last_year`, or `None`
/// for a rule shape no real zone uses (then the zone is not guessed at).
fn onsets(cal: &ICalendar, tz: usize, last_year: i32) -> Option<Vec<Onset>> {
    let mut out = Vec::new();
    for id in &cal.components[tz].component_ids {
        let c = cal.components.get(*id as usize)?;
        if !matches!(
            c.component_type,
            ICalendarComponentType::Standard | ICalendarComponentType::Daylight
        ) {
            continue;
        }
        let value = |p: ICalendarProperty| c.property(&p).and_then(|e| e.values.first());
        let from = utc_offset(value(ICalendarProperty::Tzoffsetfrom))?;
        let to = utc_offset(value(ICalendarProperty::Tzoffsetto))?;
        let start: NaiveDateTime = value(ICalendarProperty::Dtstart)?
            .as_partial_date_time()?
            .to_date_time()?
            .date_time;
        let onset = |local: NaiveDateTime| local.and_utc().timestamp() - i64::from(from);
        out.push((onset(start), to, from));
        for e in c.properties(&ICalendarProperty::Rdate) {
            for v in &e.values {
                if let Some(t) = v.as_partial_date_time().and_then(|d| d.to_date_time()) {
                    out.push((onset(t.date_time), to, from));
                }
                if out.len() > MAX_ONSETS {
                    return None;
                }
            }
        }
        let Some(ICalendarValue::RecurrenceRule(rule)) = value(ICalendarProperty::Rrule) else {
            continue;
        };
        if rule.freq != ICalendarFrequency::Yearly || rule.bymonth.len() != 1 {
            return None;
        }
        let month = u32::from(rule.bymonth[0].month());
        let until = rule
            .until
            .as_ref()
            .and_then(|u| u.to_date_time())
            .map(|u| u.date_time.and_utc().timestamp());
        for year in start.year() + 1..=last_year {
            let date = match (rule.byday.as_slice(), rule.bymonthday.as_slice()) {
                // "The last Sunday of October", or "the Sunday on or after the 8th".
                ([d], []) => nth_weekday(year, month, d.ordwk.unwrap_or(1), weekday(d.weekday)),
                ([d], days) if days.len() >= 7 => days
                    .iter()
                    .filter_map(|m| {
                        NaiveDate::from_ymd_opt(year, month, u32::from(m.unsigned_abs()))
                    })
                    .find(|x| x.weekday() == weekday(d.weekday)),
                ([], [m]) => NaiveDate::from_ymd_opt(year, month, u32::from(m.unsigned_abs())),
                _ => return None,
            };
            let Some(date) = date else { continue };
            let at = onset(date.and_time(start.time()));
            if until.is_some_and(|u| at > u) {
                break;
            }
            out.push((at, to, from));
        }
        if out.len() > MAX_ONSETS {
            return None;
        }
    }
    out.sort_unstable();
    (!out.is_empty()).then_some(out)
}

/// RFC 5545, 3.6.5: the offset in effect is the one of the last onset before; before the
/// first, the zone's earliest offset.
fn offset_at(onsets: &[Onset], at: i64) -> i32 {
    match onsets.partition_point(|(t, _, _)| *t <= at).checked_sub(1) {
        Some(i) => onsets[i].1,
        None => onsets[0].2,
    }
}

/// The IANA zone keeping `onsets`' offsets at every sample over `years`: the site's own if
/// it does, else the first of the database's zones that does.
fn matching_zone(
    onsets: &[Onset],
    years: std::ops::RangeInclusive<i32>,
    site_tz: chrono_tz::Tz,
) -> Option<chrono_tz::Tz> {
    let mut samples: Vec<i64> = Vec::new();
    for year in years.clone() {
        for month in 1..=12 {
            for day in [1, 15] {
                if let Some(t) =
                    NaiveDate::from_ymd_opt(year, month, day).and_then(|d| d.and_hms_opt(12, 0, 0))
                {
                    samples.push(t.and_utc().timestamp());
                }
            }
        }
    }
    let (lo, hi) = (
        samples.first().copied().unwrap_or(0),
        samples.last().copied().unwrap_or(0),
    );
    // Either side of each change, where zones with other change days differ.
    for (t, _, _) in onsets.iter().filter(|(t, _, _)| (lo..=hi).contains(t)) {
        samples.extend([t - 3600, t + 3600]);
    }
    let same = |tz: &chrono_tz::Tz| {
        samples.iter().all(|t| {
            chrono::DateTime::from_timestamp(*t, 0).is_some_and(|at| {
                tz.offset_from_utc_datetime(&at.naive_utc())
                    .fix()
                    .local_minus_utc()
                    == offset_at(onsets, *t)
            })
        })
    };
    std::iter::once(site_tz)
        .chain(chrono_tz::TZ_VARIANTS.iter().copied())
        .find(same)
}

/// Puts every `TZID` that names a zone defined only in the calendar's own `VTIMEZONE` onto the
/// IANA zone that matches its rules over `years`. Returns what could not be matched, in words.
pub(super) fn own_zones(
    cal: &mut ICalendar,
    site_tz: chrono_tz::Tz,
    years: std::ops::RangeInclusive<i32>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let years = years.start() - MARGIN_YEARS..=years.end() + MARGIN_YEARS;
    let mut tried = 0usize;
    for (i, c) in cal.components.iter().enumerate() {
        if c.component_type != ICalendarComponentType::VTimezone || c.timezone().is_some() {
            continue;
        }
        tried += 1;
        if tried > MAX_ZONES {
            problems.push(format!(
                "the calendar defines more than {MAX_ZONES} time zones of its own; the others are read on the site's clock"
            ));
            break;
        }
        let Some(name) = c
            .property(&ICalendarProperty::Tzid)
            .and_then(|e| e.values.first())
            .and_then(|v| v.as_text())
        else {
            continue;
        };
        if calcard::common::timezone::Tz::from_str(name).is_ok() {
            continue;
        }
        match onsets(cal, i, *years.end()).and_then(|o| matching_zone(&o, years.clone(), site_tz))
        {
            Some(tz) => {
                names.insert(name.to_string(), tz.name().to_string());
            }
            None => problems.push(format!(
                "the time zone {name:?} the calendar defines matches no known zone's rules; its times are read on the site's clock"
            )),
        }
    }
    if names.is_empty() {
        return problems;
    }
    for c in &mut cal.components {
        for e in &mut c.entries {
            for p in &mut e.params {
                if p.name != ICalendarParameterName::Tzid {
                    continue;
                }
                if let ICalendarParameterValue::Text(t) = &mut p.value {
                    if let Some(iana) = names.get(t.as_str()) {
                        *t = iana.clone();
                    }
                }
            }
        }
    }
    problems
}

/// Google's `X-WR-TIMEZONE`: where a calendar names its zone, its floating date-times (no
/// `TZID`, no `Z`) are on that zone's clock, not the site's. Dates stay days at the site.
pub(super) fn calendar_zone(cal: &mut ICalendar) {
    let Some(zone) = cal.components.first().and_then(|root| {
        root.entries
            .iter()
            .find(|e| {
                matches!(&e.name, ICalendarProperty::Other(n) if n.eq_ignore_ascii_case("X-WR-TIMEZONE"))
            })
            .and_then(|e| e.values.first())
            .and_then(|v| v.as_text())
            .map(|z| z.trim().to_string())
    }) else {
        return;
    };
    if calcard::common::timezone::Tz::from_str(&zone).is_err() {
        return;
    }
    for c in &mut cal.components {
        if c.component_type == ICalendarComponentType::VTimezone
            || matches!(
                c.component_type,
                ICalendarComponentType::Standard | ICalendarComponentType::Daylight
            )
        {
            continue;
        }
        // Only an event whose start floats: one with its own TZID reads its other times
        // (RECURRENCE-ID, EXDATE) on that zone, and a date is a day at the site.
        let floating_start = c.entries.iter().any(|e| {
            e.name == ICalendarProperty::Dtstart
                && e.tz_id().is_none()
                && e.values
                    .first()
                    .and_then(|v| v.as_partial_date_time())
                    .is_some_and(|d| d.has_time() && d.tz_hour.is_none() && d.tz_minute.is_none())
        });
        if !floating_start {
            continue;
        }
        for e in &mut c.entries {
            let dated = matches!(
                e.name,
                ICalendarProperty::Dtstart
                    | ICalendarProperty::Dtend
                    | ICalendarProperty::Due
                    | ICalendarProperty::Exdate
                    | ICalendarProperty::Rdate
                    | ICalendarProperty::RecurrenceId
            );
            let floating = e.tz_id().is_none()
                && e.values
                    .first()
                    .and_then(|v| v.as_partial_date_time())
                    .is_some_and(|d| d.has_time() && d.tz_hour.is_none() && d.tz_minute.is_none());
            if dated && floating {
                e.params.push(ICalendarParameter {
                    name: ICalendarParameterName::Tzid,
                    value: ICalendarParameterValue::Text(zone.clone()),
                });
            }
        }
    }
}
