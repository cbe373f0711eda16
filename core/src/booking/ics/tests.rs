//! Every file in ../shared/data/ics, expanded and checked against what the file itself says
//! (each expectation worked out by hand from the file's DTSTART, RRULE, EXDATE, RDATE and
//! RECURRENCE-ID lines and its time zone).

use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone, Utc};

use super::*;

fn file(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/ics")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn window(name: &str, from: &str, until: &str) -> Expanded {
    let e = expand(
        &file(name),
        chrono_tz::Europe::Kyiv,
        utc(from),
        utc(until),
        1000,
    )
    .unwrap();
    assert!(e.problems.is_empty(), "{name}: {:?}", e.problems);
    e
}

fn starts(e: &Expanded) -> Vec<String> {
    e.occurrences
        .iter()
        .map(|o| o.start.format("%Y-%m-%dT%H:%MZ").to_string())
        .collect()
}

#[test]
fn sabredav_weekly_with_a_deleted_week_keeps_berlin_wall_clock_across_the_spring_change() {
    // WEEKLY;COUNT=8 from Mon 2019-03-04 00:30 Berlin; EXDATE 2019-03-10T23:30Z is the
    // 2019-03-11 occurrence. Clocks went forward on 2019-03-31: 00:30 CET is 23:30Z before,
    // 00:30 CEST is 22:30Z after.
    let e = window(
        "each_week_but_one_deleted.ics",
        "2019-01-01T00:00:00Z",
        "2020-01-01T00:00:00Z",
    );
    assert_eq!(
        starts(&e),
        [
            "2019-03-03T23:30Z",
            "2019-03-17T23:30Z",
            "2019-03-24T23:30Z",
            "2019-03-31T22:30Z",
            "2019-04-07T22:30Z",
            "2019-04-14T22:30Z",
            "2019-04-21T22:30Z"
        ]
    );
    let o = &e.occurrences[0];
    assert_eq!(o.end - o.start, chrono::Duration::minutes(30));
    assert_eq!(o.key, "SX2CURHKFTKKFFU3VUD7K/20190303T233000Z");
    assert_eq!(o.title, "test6");
    assert!(!o.all_day && !o.cancelled);
}

#[test]
fn exchange_all_day_biweekly_with_moved_days_and_a_windows_zone() {
    // "Refuse black bin": every second Thursday from 2020-04-02 UNTIL 2020-09-16T23:00:00Z,
    // which is midnight starting 09-17 in London (and 02:00 on 09-17 in Kyiv): UNTIL is
    // inclusive, so 09-17 is the last. The occurrences of 04-16, 05-28 and 09-03 moved to the
    // Friday after (RECURRENCE-ID given as midnight "GMT Standard Time" while DTSTART is a
    // DATE). All-day: on the site's clock.
    let e = window(
        "issue_28_rrule_with_UTC_endinginZ.ics",
        "2020-01-01T00:00:00Z",
        "2021-01-01T00:00:00Z",
    );
    let refuse: Vec<String> = e
        .occurrences
        .iter()
        .filter(|o| o.title == "Refuse black bin")
        .map(|o| {
            assert!(o.all_day);
            assert_eq!(o.end - o.start, chrono::Duration::days(1));
            o.start
                .with_timezone(&chrono_tz::Europe::Kyiv)
                .format("%m-%d")
                .to_string()
        })
        .collect();
    assert_eq!(
        refuse,
        [
            "04-02", "04-17", "04-30", "05-14", "05-29", "06-11", "06-25", "07-09", "07-23",
            "08-06", "08-20", "09-04", "09-17"
        ]
    );
    let moved = e
        .occurrences
        .iter()
        .find(|o| o.key.ends_with("/20200416"))
        .unwrap();
    assert_eq!(
        moved
            .start
            .with_timezone(&chrono_tz::Europe::Kyiv)
            .format("%m-%d")
            .to_string(),
        "04-17",
        "the moved day replaces the day it moves, under the same identity"
    );
    let blue = e
        .occurrences
        .iter()
        .filter(|o| o.title == "Blue Recycle bin")
        .count();
    assert_eq!(blue, 13, "04-09 to 09-24, every second Thursday");
}

#[test]
fn google_last_friday_monthly_with_one_occurrence_moved() {
    // Last Friday of each month, 21:30 Berlin, from 2021-11-26; December's (12-31) moved to
    // 12-17. Summer time keeps 21:30 local (19:30Z), winter 20:30Z.
    let e = window(
        "issue_62_moved_event.ics",
        "2021-11-01T00:00:00Z",
        "2022-06-01T00:00:00Z",
    );
    assert_eq!(
        starts(&e),
        [
            "2021-11-26T20:30Z",
            "2021-12-17T20:30Z",
            "2022-01-28T20:30Z",
            "2022-02-25T20:30Z",
            "2022-03-25T20:30Z",
            "2022-04-29T19:30Z",
            "2022-05-27T19:30Z"
        ]
    );
    assert_eq!(
        e.occurrences[1].key,
        "38m812jicsrer5gorh3mlp7qhc@google.com/20211231T203000Z"
    );
}

#[test]
fn outlook_teams_invite_with_a_windows_zone_and_until_in_utc() {
    // DAILY;INTERVAL=2 from 2020-11-24 11:00 "W. Europe Standard Time" (10:00Z) UNTIL
    // 2020-11-26T10:00:00Z: the until is the second occurrence itself, so both count.
    let e = window(
        "o365_meeting.ics",
        "2020-11-01T00:00:00Z",
        "2020-12-01T00:00:00Z",
    );
    assert_eq!(starts(&e), ["2020-11-24T10:00Z", "2020-11-26T10:00Z"]);
    let o = &e.occurrences[0];
    assert_eq!(o.end - o.start, chrono::Duration::minutes(30));
    assert!(o.title.contains("Testmeeting"));
    assert_eq!(
        o.attendees,
        [
            "annonym.usernames@email.com",
            "testmeeting.channel@email365.onmicrosoft.com"
        ]
    );
}

#[test]
fn zimbra_monthly_with_rdates_exdates_and_two_overrides() {
    // First Tuesday monthly, 10:00 Los Angeles, from 2012-10-02; EXDATE 12-04, 02-05 and
    // 04-02; RDATE 11-05, 11-10, 11-30; the 10-02 occurrence moved to 15:00 the same day, and
    // the RDATE of 11-05 (RECURRENCE-ID 18:00Z) moved to 11-06 20:00.
    let e = window(
        "recur_instances.ics",
        "2012-10-01T00:00:00Z",
        "2013-05-01T00:00:00Z",
    );
    assert_eq!(
        starts(&e),
        [
            "2012-10-02T22:00Z",
            "2012-11-06T18:00Z",
            "2012-11-07T04:00Z",
            "2012-11-10T18:00Z",
            "2012-11-30T18:00Z",
            "2013-01-01T18:00Z",
            "2013-03-05T18:00Z"
        ]
    );
    let o = &e.occurrences[0];
    assert_eq!(
        o.key,
        "623c13c0-6c2b-45d6-a12b-c33ad61c4868/20121002T170000Z"
    );
    assert_eq!(o.organiser.as_deref(), Some("jlal@mozilla.com"));
}

#[test]
fn google_weekdays_open_ended_reach_today_and_the_window_bounds_them() {
    // Mon-Fri 14:00 Zurich since 2016-10-28, no end: eight years of occurrences come before
    // the window, which still gets its own, each a weekday at 14:00 local.
    let e = window(
        "x_location.ics",
        "2026-11-23T00:00:00Z",
        "2026-11-30T00:00:00Z",
    );
    assert_eq!(
        starts(&e),
        [
            "2026-11-23T13:00Z",
            "2026-11-24T13:00Z",
            "2026-11-25T13:00Z",
            "2026-11-26T13:00Z",
            "2026-11-27T13:00Z"
        ]
    );
    assert!(!e.truncated);
    // A count bound on the window is honoured and said.
    let few = expand(
        &file("x_location.ics"),
        chrono_tz::Europe::Kyiv,
        utc("2026-11-01T00:00:00Z"),
        utc("2026-12-31T00:00:00Z"),
        10,
    )
    .unwrap();
    assert_eq!(few.occurrences.len(), 10);
    assert!(few.truncated);
}

#[test]
fn garbage_is_an_error_and_never_a_panic() {
    let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let until = from + chrono::Duration::days(60);
    for text in [
        "",
        "hello",
        "BEGIN:VCARD\nEND:VCARD\n",
        "<html>502 Bad Gateway</html>",
    ] {
        assert!(
            expand(text, chrono_tz::Europe::Kyiv, from, until, 100).is_err(),
            "{text:?}"
        );
    }
    // An event without a start is reported; the others still count.
    let cal = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nSUMMARY:no start\nEND:VEVENT\nBEGIN:VEVENT\nUID:b\nDTSTART:20260105T100000Z\nDTEND:20260105T110000Z\nEND:VEVENT\nEND:VCALENDAR\n";
    let e = expand(cal, chrono_tz::Europe::Kyiv, from, until, 100).unwrap();
    assert_eq!(e.occurrences.len(), 1);
    assert_eq!(e.occurrences[0].key, "b");
    assert_eq!(e.problems.len(), 1, "{:?}", e.problems);
}

#[test]
fn a_hostile_rule_is_bounded() {
    let cal = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:flood\nDTSTART:20260101T000000Z\nDTEND:20260101T000001Z\nRRULE:FREQ=SECONDLY\nEND:VEVENT\nEND:VCALENDAR\n";
    let from = utc("2026-01-01T00:00:00Z");
    let e = expand(
        cal,
        chrono_tz::Europe::Kyiv,
        from,
        from + chrono::Duration::days(60),
        500,
    )
    .unwrap();
    assert_eq!(e.occurrences.len(), 500);
    assert!(e.truncated);
}

#[test]
fn a_series_starting_in_utc_stays_on_utc_with_its_exdate_and_move() {
    // Weekly Mondays 10:00Z; the second deleted (EXDATE in UTC), the third moved to 12:00Z
    // (RECURRENCE-ID in UTC). Kyiv is UTC+2 in January: nothing may move by two hours.
    let cal = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:u\nDTSTART:20260105T100000Z\nDTEND:20260105T110000Z\nRRULE:FREQ=WEEKLY;COUNT=4\nEXDATE:20260112T100000Z\nSUMMARY:weekly\nEND:VEVENT\nBEGIN:VEVENT\nUID:u\nRECURRENCE-ID:20260119T100000Z\nDTSTART:20260119T120000Z\nDTEND:20260119T130000Z\nSUMMARY:moved\nEND:VEVENT\nEND:VCALENDAR\n";
    let e = expand(
        cal,
        chrono_tz::Europe::Kyiv,
        utc("2026-01-01T00:00:00Z"),
        utc("2026-03-01T00:00:00Z"),
        100,
    )
    .unwrap();
    assert_eq!(
        starts(&e),
        [
            "2026-01-05T10:00Z",
            "2026-01-19T12:00Z",
            "2026-01-26T10:00Z"
        ]
    );
    assert_eq!(e.occurrences[1].key, "u/20260119T100000Z");
    assert_eq!(e.occurrences[1].title, "moved");
}

#[test]
fn this_and_future_moves_keep_each_occurrence_s_own_identity() {
    // Daily 09:00Z for five days; from the third on, moved an hour later.
    let cal = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:d\nDTSTART:20260105T090000Z\nDTEND:20260105T093000Z\nRRULE:FREQ=DAILY;COUNT=5\nEND:VEVENT\nBEGIN:VEVENT\nUID:d\nRECURRENCE-ID;RANGE=THISANDFUTURE:20260107T090000Z\nDTSTART:20260107T100000Z\nDTEND:20260107T103000Z\nEND:VEVENT\nEND:VCALENDAR\n";
    let e = expand(
        cal,
        chrono_tz::Europe::Kyiv,
        utc("2026-01-01T00:00:00Z"),
        utc("2026-02-01T00:00:00Z"),
        100,
    )
    .unwrap();
    let keys: Vec<&str> = e.occurrences.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "d/20260105T090000Z",
            "d/20260106T090000Z",
            "d/20260107T090000Z",
            "d/20260108T090000Z",
            "d/20260109T090000Z"
        ]
    );
    assert_eq!(starts(&e)[4], "2026-01-09T10:00Z");
}

#[test]
fn absurd_durations_and_floods_of_attendees_are_bounded() {
    let mut cal = String::from("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:long\nDTSTART:20260105T090000Z\nDURATION:P20000000W\nEND:VEVENT\nBEGIN:VEVENT\nUID:crowd\nDTSTART:20260105T090000Z\nDTEND:20260105T100000Z\nRRULE:FREQ=SECONDLY\n");
    for i in 0..2000 {
        cal.push_str(&format!("ATTENDEE:mailto:p{i}@example.org\n"));
    }
    cal.push_str("END:VEVENT\nEND:VCALENDAR\n");
    let from = utc("2026-01-05T00:00:00Z");
    let e = expand(
        &cal,
        chrono_tz::Europe::Kyiv,
        from,
        from + chrono::Duration::days(60),
        50,
    )
    .unwrap();
    assert_eq!(e.occurrences.len(), 50);
    assert!(e.truncated);
    assert!(e.occurrences.iter().all(|o| o.attendees.len() <= 500));
    let big = "X".repeat(MAX_FEED_BYTES + 1);
    assert!(expand(&big, chrono_tz::Europe::Kyiv, from, from, 1).is_err());
}

#[test]
fn a_calendar_cut_off_anywhere_is_refused_whole_never_read_in_part() {
    for entry in std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/ics"),
    )
    .unwrap()
    {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if !name.ends_with(".ics") {
            continue;
        }
        let text = file(&name);
        let (from, until) = (utc("2000-01-01T00:00:00Z"), utc("2040-01-01T00:00:00Z"));
        assert!(
            expand(&text, chrono_tz::Europe::Kyiv, from, until, 1000).is_ok(),
            "{name} whole"
        );
        // Cut after every line but the last: never a calendar.
        let lines: Vec<&str> = text.lines().collect();
        for n in 1..lines.len().saturating_sub(1) {
            let cut = lines[..n].join("\r\n");
            if lines[n..].iter().all(|l| l.trim().is_empty()) {
                continue;
            }
            match expand(&cut, chrono_tz::Europe::Kyiv, from, until, 1000) {
                Err(IcsError::NotACalendar(why)) => assert!(why.contains("cut short"), "{why}"),
                Ok(e) => panic!(
                    "{name} cut after line {n} read as a calendar of {} occurrences",
                    e.occurrences.len()
                ),
            }
        }
    }
}

/// A calendar written for these tests (`core/testdata/ics`), each the shape of a real export
/// that went wrong, expanded over October and November 2026 on `site`'s clock.
fn case(name: &str, site: chrono_tz::Tz) -> Expanded {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/ics")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    expand(
        &text,
        site,
        utc("2026-10-01T00:00:00Z"),
        utc("2026-12-01T00:00:00Z"),
        1000,
    )
    .unwrap()
}

fn ends(e: &Expanded) -> Vec<String> {
    e.occurrences
        .iter()
        .map(|o| o.end.format("%Y-%m-%dT%H:%MZ").to_string())
        .collect()
}

#[test]
fn a_zone_defined_only_in_the_file_s_own_vtimezone_is_used() {
    // The site's clock is UTC here, so falling back to it would put each start 2-7 h off.
    let e = case("own_vtimezone_only.ics", chrono_tz::UTC);
    assert!(e.problems.is_empty(), "{:?}", e.problems);
    assert_eq!(
        starts(&e),
        [
            // 10:00 in summer time (+03:00), then after the change on 25 October (+02:00).
            "2026-10-18T07:00Z",
            "2026-10-20T08:00Z", // 15:00 on a fixed +07:00 clock
            "2026-10-25T08:00Z",
            "2026-11-01T08:00Z",
        ]
    );
    assert_eq!(ends(&e)[0], "2026-10-18T08:00Z");
}

#[test]
fn events_without_a_uid_are_booked_under_a_stable_name_and_warned_about_once_each() {
    let e = case("no_uid.ics", chrono_tz::Europe::Kyiv);
    let standups: Vec<_> = e
        .occurrences
        .iter()
        .filter(|o| o.title == "Daily stand-up")
        .collect();
    assert_eq!(standups.len(), 14);
    assert_eq!(standups[0].start, utc("2026-10-05T06:30:00Z"));
    let board: Vec<_> = e
        .occurrences
        .iter()
        .filter(|o| o.title == "Board meeting")
        .collect();
    assert_eq!(board.len(), 1);
    assert_eq!(board[0].start, utc("2026-10-07T11:00:00Z"));
    // Each occurrence its own name, the same on every reading.
    let keys: BTreeSet<_> = e.occurrences.iter().map(|o| o.key.clone()).collect();
    assert_eq!(keys.len(), e.occurrences.len());
    let again = case("no_uid.ics", chrono_tz::Europe::Kyiv);
    assert_eq!(
        again.occurrences.iter().map(|o| &o.key).collect::<Vec<_>>(),
        e.occurrences.iter().map(|o| &o.key).collect::<Vec<_>>()
    );
    // One warning per event, not per occurrence (a SECONDLY series would print millions).
    let warned = e.problems.iter().filter(|p| p.contains("no UID")).count();
    assert_eq!(warned, 3, "{:?}", e.problems);
    assert!(e.problems.len() <= 4, "{:?}", e.problems);
}

#[test]
fn an_event_with_a_start_and_no_end_lasts_as_rfc_5545_says() {
    let e = case("start_only.ics", chrono_tz::Europe::Kyiv);
    // A time: an instant, not a day until 23:59 (so it can book nothing); a date: that one
    // day on the site's clock. The calendar hears why once per event, not per occurrence.
    assert_eq!(
        starts(&e),
        [
            "2026-10-12T14:00Z",
            "2026-10-13T06:00Z",
            "2026-10-13T21:00Z",
            "2026-10-20T06:00Z"
        ]
    );
    assert_eq!(
        ends(&e),
        [
            "2026-10-12T14:00Z",
            "2026-10-13T06:00Z",
            "2026-10-14T21:00Z",
            "2026-10-20T06:00Z"
        ]
    );
    assert!(e.occurrences[2].all_day);
    let zero = e.problems.iter().filter(|p| p.contains("no end")).count();
    assert_eq!(zero, 2, "{:?}", e.problems);
    assert_eq!(e.problems.len(), 2, "{:?}", e.problems);
}

#[test]
fn an_all_day_series_leaves_out_the_days_its_exdate_names() {
    let e = case("exdate_value_date.ics", chrono_tz::Europe::Kyiv);
    assert!(e.problems.is_empty(), "{:?}", e.problems);
    let days: Vec<String> = e
        .occurrences
        .iter()
        .map(|o| {
            o.start
                .with_timezone(&chrono_tz::Europe::Kyiv)
                .format("%d")
                .to_string()
        })
        .collect();
    assert_eq!(days, ["19", "20", "22", "23"]);
}

#[test]
fn floating_times_are_read_on_the_calendar_s_x_wr_timezone() {
    // Google writes the calendar's zone once, as X-WR-TIMEZONE, and some exports then leave
    // the times floating. New York changed its clocks on 1 November 2026.
    let e = case("x_wr_timezone.ics", chrono_tz::Europe::Kyiv);
    assert!(e.problems.is_empty(), "{:?}", e.problems);
    assert_eq!(
        starts(&e),
        [
            "2026-10-26T14:00Z",
            "2026-10-27T08:00Z",
            "2026-10-28T10:00Z",
            "2026-11-02T15:00Z",
        ]
    );
}
