//! A room's iCalendar feed, expanded into occurrences as the feed poller does. Nothing may
//! panic, whatever the calendar (recurrence rules, time zones, exceptions).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let from = chrono::DateTime::from_timestamp(1_795_680_000, 0).unwrap();
    let until = from + chrono::Duration::days(60);
    let _ = kombinat::ics::expand(text, chrono_tz::Europe::Kyiv, from, until, 2_000);
});
