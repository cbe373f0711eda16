//! A room's iCalendar feed, expanded into occurrences as the feed poller does. Nothing may
//! panic, whatever the calendar (recurrence rules, time zones, exceptions), and:
//! - a calendar cut short anywhere (a broken download) is refused whole, never read in part;
//! - a time zone the calendar defines in its own VTIMEZONE, whatever its rules, is read or
//!   reported, never a panic or a hang (an input starting `Z:` is the VTIMEZONE's observances,
//!   put around a fixed event that uses the zone).
#![no_main]

use libfuzzer_sys::fuzz_target;

fn expand(text: &str) -> Result<kombinat::ics::Expanded, kombinat::ics::IcsError> {
    let from = chrono::DateTime::from_timestamp(1_795_680_000, 0).unwrap();
    let until = from + chrono::Duration::days(60);
    kombinat::ics::expand(text, chrono_tz::Europe::Kyiv, from, until, 2_000)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(text) = text.strip_prefix("Z:") {
        let calendar = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:fuzz\r\nBEGIN:VTIMEZONE\r\nTZID:Own zone\r\n{text}\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:e@fuzz\r\nDTSTART;TZID=Own zone:20261201T100000\r\nDTEND;TZID=Own zone:20261201T110000\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        );
        let _ = expand(&calendar);
        return;
    }
    let whole = expand(text);
    // Cut somewhere the input itself picks: without its END:VCALENDAR line the calendar is
    // refused, whatever came before.
    let pick = data.iter().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(*b)));
    let at = pick % (text.len() + 1);
    if let Some(cut) = text.get(..at) {
        let ends = cut
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .is_some_and(|l| l.eq_ignore_ascii_case("END:VCALENDAR"));
        if !ends {
            assert!(expand(cut).is_err(), "a calendar cut short was read");
        }
    }
    let _ = whole;
});
