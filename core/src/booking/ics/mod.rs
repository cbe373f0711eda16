//! iCalendar feeds: a room's calendar (Google, Outlook/Exchange, Nextcloud) expanded into the
//! occurrences that fall in a bounded window, each with a stable identity.
//!
//! Parsing and recurrence expansion are calcard's (it resolves Windows zone names, EXDATE and
//! RECURRENCE-ID overrides, and keeps local wall-clock times across daylight-saving changes);
//! this module bounds the expansion (a window and a count), reads what a booking needs (start,
//! end, all-day, title, cancelled, organiser and attendee addresses) and names each occurrence
//! `UID` for a single event, or `UID/<original start>` for one of a series: the original start
//! in UTC (`20211231T203000Z`), or its date for an all-day series (`20200416`), the original
//! start being the RECURRENCE-ID for a moved occurrence. So re-reading a feed is idempotent and
//! a moved occurrence replaces the one it moves (also where calcard leaves both in, as with an
//! override whose SEQUENCE differs from its series'). Sans-IO: text in, occurrences out.

use calcard::icalendar::{
    dates::TimeOrDelta, ICalendar, ICalendarComponent, ICalendarParameterName, ICalendarProperty,
    ICalendarStatus,
};
use chrono::{DateTime, Utc};

/// One occurrence of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// Stable identity: `UID`, or `UID/YYYYMMDDTHHMMSSZ` (the original start) in a series.
    pub key: String,
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
    /// A whole-day event (DTSTART is a date).
    pub all_day: bool,
    /// SUMMARY.
    pub title: String,
    /// STATUS:CANCELLED.
    pub cancelled: bool,
    /// The organiser's e-mail address, if given.
    pub organiser: Option<String>,
    /// The attendees' e-mail addresses.
    pub attendees: Vec<String>,
}

/// What a feed comes to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    /// Occurrences overlapping the window, by start.
    pub occurrences: Vec<Occurrence>,
    /// Events that could not be read (no start, a bad rule), in words; the rest still count.
    pub problems: Vec<String>,
    /// The count bound cut the expansion short.
    pub truncated: bool,
}

/// Why a feed could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcsError {
    /// Not an iCalendar object.
    #[error("not an iCalendar calendar: {0}")]
    NotACalendar(String),
}

fn text(c: &ICalendarComponent, p: ICalendarProperty) -> Option<String> {
    c.property(&p)
        .and_then(|e| e.values.first())
        .and_then(|v| v.as_text())
        .map(str::to_string)
}

fn address(e: &calcard::icalendar::ICalendarEntry) -> Option<String> {
    let v = e.values.first()?.as_text()?;
    let a = calcard::icalendar::utils::strip_mailto_scheme(v).trim();
    a.contains('@').then(|| a.to_ascii_lowercase())
}

/// Prepares each series' RRULE for a bounded expansion:
/// - an UNTIL given in UTC (as Outlook, Exchange and Google write it) on a series with a local
///   clock is moved onto that clock: calcard compares it with the local wall-clock times as if
///   they were UTC, which drops the last occurrence east of Greenwich (and adds one west of it);
/// - a series without an end (no UNTIL, no COUNT) is ended at the window's end, so its
///   expansion stops there instead of running to [`EXPANSION_LIMIT`].
fn bound_rules(cal: &mut ICalendar, site_tz: chrono_tz::Tz, window_end: DateTime<Utc>) {
    use calcard::icalendar::ICalendarValue;
    use chrono::{Datelike, NaiveDateTime, Timelike};
    let resolver = cal
        .build_tz_resolver()
        .with_default(calcard::common::timezone::Tz::Tz(site_tz));
    // (component, entry, new UNTIL on the series' clock, whether with a time).
    let mut fixes: Vec<(usize, usize, NaiveDateTime, bool)> = Vec::new();
    for (ci, comp) in cal.components.iter().enumerate() {
        let Some(start) = comp.property(&ICalendarProperty::Dtstart) else {
            continue;
        };
        let has_time = start
            .values
            .first()
            .and_then(|v| v.as_partial_date_time())
            .is_some_and(|d| d.has_time());
        let tz = resolver.resolve_or_default(start.tz_id());
        let first = start
            .values
            .first()
            .and_then(|v| v.as_partial_date_time())
            .and_then(|d| d.to_date_time())
            .map(|r| r.date_time);
        let local = |t: NaiveDateTime| chrono::TimeZone::from_utc_datetime(&tz, &t).naive_local();
        for (ei, e) in comp.entries.iter().enumerate() {
            let (ICalendarProperty::Rrule, Some(ICalendarValue::RecurrenceRule(rule))) =
                (&e.name, e.values.first())
            else {
                continue;
            };
            match rule.until.as_ref().and_then(|u| u.to_date_time()) {
                Some(until) if has_time => {
                    if let Some(offset) = until.offset {
                        let instant = until.date_time
                            - chrono::Duration::seconds(i64::from(offset.local_minus_utc()));
                        fixes.push((ci, ei, local(instant), true));
                    }
                }
                Some(until) => {
                    // An all-day series ending at an instant: the day that instant falls on,
                    // on the site's clock (UNTIL is inclusive).
                    if let Some(offset) = until.offset {
                        let instant = until.date_time
                            - chrono::Duration::seconds(i64::from(offset.local_minus_utc()));
                        let day =
                            chrono::TimeZone::from_utc_datetime(&site_tz, &instant).naive_local();
                        fixes.push((ci, ei, day, false));
                    }
                }
                None if rule.count.is_none() => {
                    // A day past the window's end: the last occurrences in it are whole. (Not
                    // before the series' start: that would be an error, not an empty series.)
                    let mut end = local((window_end + chrono::Duration::days(1)).naive_utc());
                    if let Some(f) = first.filter(|f| *f > end) {
                        end = f;
                    }
                    fixes.push((ci, ei, end, has_time));
                }
                None => {}
            }
        }
    }
    for (ci, ei, t, with_time) in fixes {
        if let Some(ICalendarValue::RecurrenceRule(rule)) =
            cal.components[ci].entries[ei].values.first_mut()
        {
            let u = rule.until.get_or_insert_with(Default::default);
            u.year = u16::try_from(t.year()).ok();
            u.month = Some(t.month() as u8);
            u.day = Some(t.day() as u8);
            (u.hour, u.minute, u.second) = if with_time {
                (
                    Some(t.hour() as u8),
                    Some(t.minute() as u8),
                    Some(t.second() as u8),
                )
            } else {
                (None, None, None)
            };
            u.tz_hour = None;
            u.tz_minute = None;
            u.tz_minus = false;
        }
    }
}

/// An event with a start time and neither an end nor a length: RFC 5545 (3.6.1) makes it an
/// instant. (A start date and no end is one day; calcard does that right.)
fn lengthless(comp: &ICalendarComponent) -> bool {
    comp.property(&ICalendarProperty::Dtend).is_none()
        && comp.property(&ICalendarProperty::Duration).is_none()
        && comp
            .property(&ICalendarProperty::Dtstart)
            .and_then(|e| e.values.first())
            .and_then(|v| v.as_partial_date_time())
            .is_some_and(|d| d.has_time())
}

/// An event's length as it gives it (DTEND minus DTSTART on its own clock, or DURATION).
fn own_length(comp: &ICalendarComponent) -> Option<chrono::Duration> {
    use calcard::icalendar::ICalendarValue;
    let at = |p: ICalendarProperty| {
        comp.property(&p)
            .and_then(|e| e.values.first())
            .and_then(|v| v.as_partial_date_time())
            .and_then(|d| d.to_date_time())
            .map(|d| d.date_time)
    };
    if let (Some(s), Some(e)) = (at(ICalendarProperty::Dtstart), at(ICalendarProperty::Dtend)) {
        return Some(e - s);
    }
    match comp
        .property(&ICalendarProperty::Duration)
        .and_then(|e| e.values.first())
    {
        Some(ICalendarValue::Duration(d)) => d.to_time_delta(),
        _ => None,
    }
}

/// The name an event's occurrences go by: its `UID`, or for an event without one (some
/// exports leave it out) a name made from what it is (title, start, place), the same at every
/// reading (and said once, in `problems`).
fn event_name(comp: &ICalendarComponent, problems: &mut Vec<String>) -> String {
    let title = text(comp, ICalendarProperty::Summary).unwrap_or_default();
    let start = comp.property(&ICalendarProperty::Dtstart);
    let start_value = start
        .and_then(|e| e.values.first())
        .and_then(|v| v.as_partial_date_time());
    let shown = |uid: Option<&str>| match uid {
        Some(u) => format!("event {title:?} ({u})"),
        None => format!("event {title:?}"),
    };
    if lengthless(comp) && comp.property(&ICalendarProperty::RecurrenceId).is_none() {
        problems.push(format!(
            "{} has a start and no end: it takes no time (RFC 5545), so it books nothing",
            shown(comp.uid())
        ));
    }
    if let Some(uid) = comp.uid() {
        return uid.to_string();
    }
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for part in [
        title.as_str(),
        &start_value.map_or(String::new(), |d| {
            format!(
                "{:?}-{:?}-{:?}T{:?}:{:?}:{:?}",
                d.year, d.month, d.day, d.hour, d.minute, d.second
            )
        }),
        start.and_then(|e| e.tz_id()).unwrap_or_default(),
        &text(comp, ICalendarProperty::Location).unwrap_or_default(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let name = format!(
        "no-uid-{}",
        digest[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    problems.push(format!(
        "{} has no UID: booked as {name:?}, named by its title, start and place",
        shown(None)
    ));
    name
}

fn utc_key(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// How many occurrences calcard may generate for one feed, counting from each series' first
/// (a weekday series begun eight years ago has some 2,000 before today): enough for every
/// honest calendar, a bound for a hostile one (FREQ=SECONDLY).
pub const EXPANSION_LIMIT: usize = 200_000;

/// The largest feed read, bytes.
pub const MAX_FEED_BYTES: usize = 8 * 1024 * 1024;

/// Whether `text` is a whole calendar: it ends with `END:VCALENDAR` and closes every event it
/// opens. A calendar cut off in the middle (a broken download) parses well up to the cut, and
/// every booking past the cut would read as cancelled.
fn complete(text: &str) -> Result<(), IcsError> {
    let mut open_events = 0i64;
    let mut last = "";
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.eq_ignore_ascii_case("BEGIN:VEVENT") {
            open_events += 1;
        } else if line.eq_ignore_ascii_case("END:VEVENT") {
            open_events -= 1;
        }
        last = line;
    }
    if !last.eq_ignore_ascii_case("END:VCALENDAR") || open_events != 0 {
        return Err(IcsError::NotACalendar(
            "it is cut short (no END:VCALENDAR at its end, or an event left open): a broken download or a partial file; nothing was changed".into(),
        ));
    }
    Ok(())
}

/// Parses a feed and expands it within `[from, until)`, keeping at most `max` occurrences
/// there; floating times (and all-day dates) are read on `site_tz`.
pub fn expand(
    text_in: &str,
    site_tz: chrono_tz::Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    max: usize,
) -> Result<Expanded, IcsError> {
    use calcard::common::timezone::Tz as CalTz;
    if text_in.len() > MAX_FEED_BYTES {
        return Err(IcsError::NotACalendar(format!(
            "{} bytes, over the {MAX_FEED_BYTES}-byte limit",
            text_in.len()
        )));
    }
    complete(text_in)?;
    let mut cal: ICalendar = match calcard::Parser::new(text_in).entry() {
        calcard::Entry::ICalendar(c) => c,
        other => {
            return Err(IcsError::NotACalendar(
                format!("{other:?}").chars().take(120).collect(),
            ))
        }
    };
    let zone_problems = {
        use chrono::Datelike;
        zones::own_zones(&mut cal, site_tz, from.year()..=until.year())
    };
    zones::calendar_zone(&mut cal);
    utc_starts_on_utc(&mut cal);
    bound_rules(&mut cal, site_tz, until);
    let resolver = cal.build_tz_resolver().with_default(CalTz::Tz(site_tz));
    let expanded = cal.expand_dates(CalTz::Tz(site_tz), EXPANSION_LIMIT);
    let mut out = Expanded {
        truncated: expanded.events.len() >= EXPANSION_LIMIT,
        problems: zone_problems,
        ..Default::default()
    };
    for e in &expanded.errors {
        use calcard::icalendar::dates::CalendarErrorType as E;
        let Some(comp) = cal.components.get(e.comp_id as usize) else {
            continue;
        };
        let title = text(comp, ICalendarProperty::Summary).unwrap_or_default();
        let uid = comp.uid().map_or(String::new(), |u| format!(" ({u})"));
        let why = match &e.error {
            E::MissingDtStart => "has no start (DTSTART)".to_string(),
            E::InvalidDtStart => "has a start (DTSTART) that is not a date or time".to_string(),
            E::InvalidDtEnd => "has an end (DTEND) that is not a date or time".to_string(),
            E::InvalidDuration => "has a length (DURATION) that cannot be read".to_string(),
            E::RRule(r) => format!("has a repeat rule (RRULE) that cannot be followed: {r}"),
        };
        out.problems
            .push(format!("event {title:?}{uid} {why}, so it books nothing"));
    }
    // First only what identifies and places each occurrence: the details (title, people) are
    // copied for the few that are kept, not for every one expanded.
    struct Slot {
        key: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        comp: usize,
        all_day: bool,
        is_override: bool,
    }
    let mut slots: Vec<Slot> = Vec::new();
    let mut by_key: std::collections::HashMap<String, usize> = Default::default();
    // Per event (component): the name its occurrences go by, worked out (and any warning
    // about the event given) once: a daily series must not warn every day.
    let mut names: std::collections::HashMap<u32, String> = Default::default();
    // Each series' own length, by UID, for its moved occurrences that give none.
    let lengths: std::collections::HashMap<&str, chrono::Duration> = cal
        .components
        .iter()
        .filter(|c| c.property(&ICalendarProperty::RecurrenceId).is_none())
        .filter_map(|c| Some((c.uid()?, own_length(c)?)))
        .collect();
    for ev in expanded.events {
        let Some(comp) = cal.components.get(ev.comp_id as usize) else {
            continue;
        };
        if !comp.component_type.is_event() {
            continue;
        }
        let uid = names
            .entry(ev.comp_id)
            .or_insert_with(|| event_name(comp, &mut out.problems))
            .as_str();
        let start = ev.start.with_timezone(&Utc);
        let end = match (ev.end, lengthless(comp)) {
            // A start and no end: an instant (calcard makes it last until 23:59:59), or for a
            // moved occurrence (Google leaves DTEND out of those) as long as its series.
            (_, true) => {
                let series = comp
                    .property(&ICalendarProperty::RecurrenceId)
                    .and_then(|_| lengths.get(uid).copied())
                    .unwrap_or_default();
                start.checked_add_signed(series)
            }
            (TimeOrDelta::Time(t), false) => Some(t.with_timezone(&Utc)),
            (TimeOrDelta::Delta(d), false) => start.checked_add_signed(d),
        };
        let Some(mut end) = end else {
            out.problems
                .push(format!("event {uid:?}: a duration past the end of time"));
            continue;
        };
        let all_day = comp
            .property(&ICalendarProperty::Dtstart)
            .and_then(|e| e.values.first())
            .and_then(|v| v.as_partial_date_time())
            .is_some_and(|dt| !dt.has_time());
        if all_day {
            // Whole days on the site's clock, also across a clock change.
            let days = ((end - start).num_minutes() as f64 / 1440.0).round() as i64;
            let first = start.with_timezone(&site_tz).date_naive();
            if let Some(t) = first
                .checked_add_signed(chrono::Duration::days(days.max(1)))
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .and_then(|d| chrono::TimeZone::from_local_datetime(&site_tz, &d).earliest())
            {
                end = t.with_timezone(&Utc);
            }
        }
        let rid = comp.property(&ICalendarProperty::RecurrenceId);
        let key = if let Some(rid) = rid {
            let value = rid.values.first().and_then(|v| v.as_partial_date_time());
            let original = if all_day {
                // An all-day series is named by day; the override's RECURRENCE-ID may carry a
                // time and a zone (Exchange writes midnight in its own zone): its date counts.
                value
                    .and_then(|dt| dt.to_date_time())
                    .map(|r| r.date_time.format("%Y%m%d").to_string())
            } else {
                // The zone is the RECURRENCE-ID's own, or else its event's start's.
                let tzid = rid.tz_id().or_else(|| {
                    comp.property(&ICalendarProperty::Dtstart)
                        .and_then(|d| d.tz_id())
                });
                let rid_at = value
                    .and_then(|dt| dt.to_date_time_with_tz(resolver.resolve_or_default(tzid)))
                    .map(|t| t.with_timezone(&Utc));
                // RANGE=THISANDFUTURE: calcard hands every later occurrence this component,
                // moved by as much as this one moved: each keeps its own original start.
                let this_and_future = rid
                    .parameters(&ICalendarParameterName::Range)
                    .next()
                    .is_some();
                let own_start = comp
                    .property(&ICalendarProperty::Dtstart)
                    .and_then(|d| {
                        d.values
                            .first()
                            .and_then(|v| v.as_partial_date_time())
                            .and_then(|dt| {
                                dt.to_date_time_with_tz(resolver.resolve_or_default(d.tz_id()))
                            })
                    })
                    .map(|t| t.with_timezone(&Utc));
                match (rid_at, own_start) {
                    (Some(r), Some(s)) if this_and_future => Some(utc_key(start - (s - r))),
                    (Some(r), _) => Some(utc_key(r)),
                    _ => None,
                }
            };
            match original {
                Some(o) => format!("{uid}/{o}"),
                None => {
                    out.problems
                        .push(format!("event {uid:?}: unreadable RECURRENCE-ID"));
                    continue;
                }
            }
        } else if comp.is_recurrent() && all_day {
            format!("{uid}/{}", start.with_timezone(&site_tz).format("%Y%m%d"))
        } else if comp.is_recurrent() {
            format!("{uid}/{}", utc_key(start))
        } else {
            uid.to_string()
        };
        let slot = Slot {
            key: key.clone(),
            start,
            end,
            comp: ev.comp_id as usize,
            all_day,
            is_override: rid.is_some(),
        };
        // A moved occurrence replaces the series' own (also where calcard leaves both in);
        // a second plain one is dropped. Before the window: a move out of it must still win.
        match by_key.get(&key) {
            Some(&i) if slot.is_override && !slots[i].is_override => slots[i] = slot,
            Some(_) => {}
            None => {
                by_key.insert(key, slots.len());
                slots.push(slot);
            }
        }
    }
    slots.retain(|s| s.end > from && s.start < until);
    slots.sort_by(|a, b| (a.start, &a.key).cmp(&(b.start, &b.key)));
    if slots.len() > max {
        slots.truncate(max);
        out.truncated = true;
    }
    for s in slots {
        let comp = &cal.components[s.comp];
        out.occurrences.push(Occurrence {
            key: s.key,
            start: s.start,
            end: s.end,
            all_day: s.all_day,
            title: text(comp, ICalendarProperty::Summary)
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect(),
            cancelled: matches!(comp.status(), Some(ICalendarStatus::Cancelled)),
            organiser: comp
                .property(&ICalendarProperty::Organizer)
                .and_then(address),
            attendees: comp
                .properties(&ICalendarProperty::Attendee)
                .take(500)
                .filter_map(address)
                .collect(),
        });
    }
    Ok(out)
}

/// A DTSTART in UTC (`…Z`) without a TZID: calcard would expand the series on the default
/// (site) clock and shift every occurrence by the site's offset, so such a start is put on UTC
/// explicitly.
fn utc_starts_on_utc(cal: &mut ICalendar) {
    use calcard::icalendar::ICalendarParameter;
    for comp in &mut cal.components {
        for e in comp.entries.iter_mut() {
            if e.name != ICalendarProperty::Dtstart || e.tz_id().is_some() {
                continue;
            }
            let utc = e
                .values
                .first()
                .and_then(|v| v.as_partial_date_time())
                .is_some_and(|d| {
                    d.has_time() && d.tz_hour == Some(0) && d.tz_minute.unwrap_or(0) == 0
                });
            if utc {
                e.params.push(ICalendarParameter {
                    name: ICalendarParameterName::Tzid,
                    value: calcard::icalendar::ICalendarParameterValue::Text("UTC".into()),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
mod zones;
