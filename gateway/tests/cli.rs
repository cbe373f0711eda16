//! The `kombinat` binary end to end, against the example site and a real sled store in a temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The time the commands take as "now" (Monday 23 November 2026, 08:00 in Kyiv): the dates
/// below are fixed, so the clock is too, whatever day the tests run on.
const NOW: &str = "2026-11-23T08:00:00+02:00";

struct Kombinat {
    data: tempfile::TempDir,
    site: PathBuf,
}

impl Kombinat {
    fn new() -> Self {
        Kombinat {
            data: tempfile::tempdir().unwrap(),
            site: Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.example.toml"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kombinat"))
            .args(args)
            .env("KOMBINAT_SITE", &self.site)
            .env("KOMBINAT_DATA", self.data.path())
            .env("USER", "marta")
            .env("KOMBINAT_NOW", NOW)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its error output.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should have failed");
        String::from_utf8(out.stderr).unwrap()
    }
}

#[test]
fn a_member_s_day_through_the_command_line() {
    let k = Kombinat::new();
    assert!(k.ok(&["check-config"]).trim_end().ends_with("OK"));
    k.ok(&[
        "member",
        "add",
        "olena",
        "--name",
        "Olena Kovalenko",
        "--plan",
        "coworking-day",
        "--email",
        "Olena@Example.UA",
    ]);
    k.ok(&["card", "add", "olena", "--card", "04:a1:b2:c3"]);

    // Thursday 26 November 2026, 10:00 in Kyiv: the day pass holds.
    let line = k.ok(&[
        "decide",
        "--card",
        "04A1B2C3",
        "--door",
        "d-cowork-in",
        "--at",
        "2026-11-26 10:00",
    ]);
    assert!(line.starts_with("ALLOW"), "{line}");
    assert!(
        line.contains("Olena Kovalenko's plan \"Coworking day pass\""),
        "{line}"
    );
    assert!(line.contains("[allow.plan, unlock"), "{line}");
    // Saturday: outside the plan's hours, and the line says which hours.
    let line = k.ok(&[
        "decide",
        "--card",
        "04a1b2c3",
        "--door",
        "d-cowork-in",
        "--at",
        "2026-11-28 10:00",
    ]);
    assert!(line.starts_with("DENY"), "{line}");
    assert!(
        line.contains("mon-fri 08:00-20:00") && line.contains("[deny.outside_schedule]"),
        "{line}"
    );

    // A booking opens the meeting room 15 minutes early; cancelling it shuts it at once.
    k.ok(&[
        "booking",
        "add",
        "--room",
        "meeting-1",
        "--start",
        "2026-11-26 14:00",
        "--end",
        "2026-11-26 16:00",
        "--organiser",
        "olena",
        "--id",
        "b1",
        "--title",
        "Design review",
    ]);
    let line = k.ok(&[
        "decide",
        "--card",
        "04A1B2C3",
        "--door",
        "d-meeting-1",
        "--at",
        "2026-11-26 13:45",
    ]);
    assert!(line.contains("[allow.booking"), "{line}");
    assert!(
        line.contains("opens Thu 26 Nov 13:45 to Thu 26 Nov 16:15"),
        "{line}"
    );
    assert!(k.ok(&["booking", "list"]).contains("cli/b1"));
    k.ok(&["booking", "cancel", "--id", "b1"]);
    let line = k.ok(&[
        "decide",
        "--card",
        "04A1B2C3",
        "--door",
        "d-meeting-1",
        "--at",
        "2026-11-26 14:30",
    ]);
    assert!(line.contains("[deny.no_right]"), "{line}");

    k.ok(&["member", "suspend", "olena", "--reason", "unpaid invoice"]);
    let line = k.ok(&[
        "decide",
        "--card",
        "04A1B2C3",
        "--door",
        "d-cowork-in",
        "--at",
        "2026-11-26 10:00",
    ]);
    assert!(
        line.contains("is suspended (unpaid invoice)") && line.contains("[deny.member_suspended]"),
        "{line}"
    );
    let show = k.ok(&["member", "show", "olena"]);
    assert!(
        show.contains("olena@example.ua") && show.contains("card 04A1B2C3"),
        "{show}"
    );

    let log = k.ok(&["log", "tail", "-n", "50"]);
    for expected in [
        "cli:marta",
        "member olena added",
        "card 04A1B2C3 issued to olena",
        "booking cli/b1 added",
        "booking cli/b1 cancelled",
        "member olena suspended: unpaid invoice",
    ] {
        assert!(log.contains(expected), "{expected:?} not in\n{log}");
    }
    // `decide` only asks; it writes no decision to the log.
    assert!(!log.contains("allow."), "{log}");
}

#[test]
fn mistakes_are_sentences_with_a_non_zero_exit_and_change_nothing() {
    let k = Kombinat::new();
    k.ok(&["member", "add", "taras", "--name", "Taras"]);
    let before = k.ok(&["log", "tail", "-n", "100"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["member", "add", "taras", "--name", "Taras again"],
            "member taras already exists",
        ),
        (
            &["member", "add", "Taras", "--name", "T"],
            "member \"Taras\": an identifier starts with a lower-case letter or a digit",
        ),
        (
            &[
                "member", "add", "ivan", "--name", "Ivan", "--plan", "platinum",
            ],
            "there is no plan platinum in the site file",
        ),
        (
            &[
                "member",
                "add",
                "ivan",
                "--name",
                "Ivan",
                "--email",
                "ivan-at-home",
            ],
            "is not an e-mail address",
        ),
        (
            &["card", "add", "ghost", "--card", "0102"],
            "there is no member ghost",
        ),
        (
            &["card", "add", "taras", "--card", "01G2"],
            "a card UID is written in hex digits",
        ),
        (
            &["card", "revoke", "--card", "0A0B"],
            "card 0A0B was never issued",
        ),
        (
            &[
                "booking",
                "add",
                "--room",
                "attic",
                "--start",
                "2026-11-26 10:00",
                "--end",
                "2026-11-26 11:00",
                "--organiser",
                "taras",
            ],
            "there is no room attic in the site file",
        ),
        (
            &[
                "booking",
                "add",
                "--room",
                "meeting-1",
                "--start",
                "2026-11-26 12:00",
                "--end",
                "2026-11-26 11:00",
                "--organiser",
                "taras",
            ],
            "a booking ends after it starts",
        ),
        (
            &[
                "booking",
                "add",
                "--room",
                "meeting-1",
                "--start",
                "tomorrow",
                "--end",
                "2026-11-26 11:00",
                "--organiser",
                "taras",
            ],
            "\"tomorrow\" is not a time",
        ),
        (
            &[
                "decide", "--card", "0102", "--door", "d-main", "--at", "noon",
            ],
            "\"noon\" is not a time",
        ),
    ];
    for (args, expected) in cases {
        let err = k.fails(args);
        assert!(err.starts_with("error: "), "{err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in {err:?}"
        );
        assert_eq!(err.lines().count(), 1, "one sentence, no backtrace: {err}");
    }
    assert_eq!(
        k.ok(&["log", "tail", "-n", "100"]),
        before,
        "nothing was written"
    );
}

#[test]
fn a_broken_site_file_is_reported_with_every_problem_and_its_line() {
    let k = Kombinat::new();
    let broken = tempfile::NamedTempFile::new().unwrap();
    let text = std::fs::read_to_string(&k.site)
        .unwrap()
        .replacen("into = \"lobby\"", "into = \"lobbby\"", 1)
        .replacen("capacity = 150", "capacity = 0", 1);
    std::fs::write(broken.path(), &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kombinat"))
        .args(["--site", broken.path().to_str().unwrap(), "--data"])
        .arg(k.data.path())
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("has 2 problems"), "{err}");
    let path = broken.path().display().to_string();
    assert!(err.contains(&format!("{path}:")), "{err}");
    assert!(err.contains("into unknown room \"lobbby\""), "{err}");
    assert!(
        err.contains("a capacity of 0 would lock everyone out"),
        "{err}"
    );
}

#[test]
fn a_room_s_use_from_its_history() {
    use kombinat::store::{HistoryBucket, SledStore, Store};
    let k = Kombinat::new();
    k.ok(&["check-config"]);
    {
        // Monday 2026-11-23 09:00-09:10 Kyiv (07:00 UTC): three people, then one.
        let store = SledStore::open(k.data.path()).unwrap();
        let room = "meeting-1".parse().unwrap();
        let start = 1_795_417_200;
        let bucket = |start: i64, count: u64| HistoryBucket {
            room,
            start,
            span_s: 300,
            person_s: count * 300,
            observed_s: 300,
            peak: count as u32,
            occupied_s: 300,
        };
        store
            .add_history(&[bucket(start, 3), bucket(start + 300, 1)])
            .unwrap();
        store.flush().unwrap();
    }
    let out = k.ok(&[
        "room",
        "meeting-1",
        "--from",
        "2026-11-23 00:00",
        "--until",
        "2026-11-24 00:00",
    ]);
    assert!(
        out.contains("peak 3 people, mean 2.00, occupied 0.2 h of 0.2 h watched"),
        "{out}"
    );
    let monday = out.lines().find(|l| l.starts_with("Mon")).unwrap();
    let cells: Vec<&str> = monday[3..].split_whitespace().collect();
    assert_eq!(cells[9], "2.0", "{out}");
    assert_eq!(cells[10], ".", "{out}");
    assert!(k.fails(&["room", "attic"]).contains("no room attic"));
}

#[test]
fn bookings_from_csv_all_or_nothing_idempotent_with_every_bad_row_by_line() {
    let k = Kombinat::new();
    k.ok(&[
        "member",
        "add",
        "ivan",
        "--name",
        "Ivan",
        "--email",
        "ivan@example.org",
    ]);
    k.ok(&["member", "add", "olha", "--name", "Olha"]);
    k.ok(&["card", "add", "ivan", "--card", "0A0B0C0D"]);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "External_ID,room,kind,organiser,start,end,title,attendees\n\
         m-1,meeting-1,meeting,ivan@example.org,2026-12-01 10:00,2026-12-01 11:00,Планування,olha\n\
         m-2,meeting-2,meeting,olha,2026-12-01 14:00,2026-12-01 15:00,Review,\n",
    )
    .unwrap();
    let file = good.to_str().unwrap();
    // A dry run says what would happen and writes nothing.
    let out = k.ok(&["import", "bookings", file, "--dry-run"]);
    assert!(
        out.contains("2 would be added, 0 updated, 0 unchanged"),
        "{out}"
    );
    assert!(
        !k.ok(&["booking", "list", "--all"]).contains("m-1"),
        "a dry run writes nothing"
    );
    let out = k.ok(&["import", "bookings", file]);
    assert!(out.contains("2 added, 0 updated, 0 unchanged"), "{out}");
    // The same file again changes nothing.
    let out = k.ok(&["import", "bookings", file]);
    assert!(out.contains("0 added, 0 updated, 2 unchanged"), "{out}");
    // The booking opens its room's door during its time (with grace), and nothing else.
    let at = |door: &str, when: &str| {
        k.ok(&["decide", "--card", "0A0B0C0D", "--door", door, "--at", when])
    };
    assert!(at("d-meeting-1", "2026-12-01 10:30").contains("allow.booking"));
    assert!(at("d-meeting-1", "2026-12-01 13:00").contains("DENY"));
    assert!(at("d-meeting-2", "2026-12-01 10:30").contains("DENY"));

    // Bad rows: each reported with its line; nothing written without --partial.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "external_id,room,kind,organiser,start,end\n\
         m-3,meeting-1,meeting,ivan,2026-12-02 10:00,2026-12-02 11:00\n\
         m-4,attic,meeting,ivan,2026-12-02 10:00,2026-12-02 11:00\n\
         m-5,meeting-1,meeting,nobody,2026-12-02 10:00,2026-12-02 11:00\n\
         m-6,meeting-1,meeting,ivan,2026-12-02 12:00,2026-12-02 11:00\n\
         m-7,meeting-1,lunch,ivan,2026-12-02 10:00,2026-12-02 11:00\n\
         m-8,meeting-1,meeting,ivan,tomorrow,2026-12-02 11:00\n\
         m-3,meeting-2,meeting,ivan,2026-12-02 10:00,2026-12-02 11:00\n",
    )
    .unwrap();
    let b = bad.to_str().unwrap();
    let out = k.run(&["import", "bookings", b]);
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for expected in [
        "line 3: there is no room \"attic\" in the site file",
        "line 4: there is no member \"nobody\"",
        "line 5: a booking ends after it starts",
        "line 6: kind \"lunch\" is not meeting, stay, event or guest_pass",
        "line 7: start:",
        "line 8: booking import/m-3 appears twice in the file",
        "6 bad rows: nothing imported",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    assert!(!k.ok(&["booking", "list", "--all"]).contains("m-3"));
    // --partial writes the good row.
    let out = k.ok(&["import", "bookings", b, "--partial"]);
    assert!(
        out.contains("1 added, 0 updated, 0 unchanged, 6 bad rows skipped"),
        "{out}"
    );
    // A broken header is one clear error.
    let header = dir.path().join("header.csv");
    std::fs::write(&header, "id,room,kind\nx,meeting-1,meeting\n").unwrap();
    let err = k.fails(&["import", "bookings", header.to_str().unwrap()]);
    assert!(err.contains("unknown column \"id\""), "{err}");
}

#[test]
fn members_from_csv_with_cards_by_line_and_idempotent() {
    let k = Kombinat::new();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("members.csv");
    std::fs::write(
        &good,
        "id,name,email,plan,roles,cards\n\
         oksana,Оксана Мельник,oksana@example.org,coworking-day,,04AA0001\n\
         petro,Petro,,,staff,04AA0002;04AA0003\n",
    )
    .unwrap();
    let file = good.to_str().unwrap();
    let out = k.ok(&["import", "members", file, "--dry-run"]);
    assert!(out.contains("2 members would be added"), "{out}");
    let out = k.ok(&["import", "members", file]);
    assert!(
        out.contains("2 members added, 0 updated, 0 unchanged, 3 cards issued"),
        "{out}"
    );
    let out = k.ok(&["import", "members", file]);
    assert!(
        out.contains("0 members added, 0 updated, 2 unchanged, 0 cards issued"),
        "{out}"
    );
    // The imported plan opens the coworking door on a weekday morning.
    let d = k.ok(&[
        "decide",
        "--card",
        "04AA0001",
        "--door",
        "d-cowork-in",
        "--at",
        "2026-11-26 10:00",
    ]);
    assert!(d.contains("allow.plan"), "{d}");
    // A changed name updates the member; a file without the plan column keeps the plan.
    let again = dir.path().join("again.csv");
    std::fs::write(&again, "id,name\noksana,Oksana Melnyk\n").unwrap();
    let out = k.ok(&["import", "members", again.to_str().unwrap()]);
    assert!(out.contains("0 members added, 1 updated"), "{out}");
    assert!(k
        .ok(&["member", "show", "oksana"])
        .contains("coworking-day"));
    // Bad rows, by line.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "id,name,email,plan,cards\n\
         ok-1,Fine,,,\n\
         bad id,Name,,,\n\
         ok-2,Name,not-an-email,,\n\
         ok-3,Name,,gold,\n\
         ok-4,Name,,,04AA0002\n\
         ok-5,Name,oksana@example.org,,\n",
    )
    .unwrap();
    let out = k.run(&["import", "members", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for expected in [
        "line 3: id \"bad id\"",
        "line 4: email \"not-an-email\"",
        "line 5: there is no plan \"gold\" in the site file",
        "line 6: card 04AA0002 is held by member petro",
        "line 7: e-mail oksana@example.org belongs to member oksana",
        "5 bad rows: nothing imported",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    assert!(k.fails(&["member", "show", "ok-1"]).contains("ok-1"));
}

#[test]
fn a_room_calendar_books_its_room_and_follows_moves_and_cancellations() {
    use chrono::Duration;
    let k = Kombinat::new();
    k.ok(&[
        "member",
        "add",
        "ivan",
        "--name",
        "Ivan",
        "--email",
        "ivan@example.org",
    ]);
    k.ok(&["card", "add", "ivan", "--card", "0A0B0C0D"]);
    let dir = tempfile::tempdir().unwrap();
    let ics = dir.path().join("meeting-1.ics");
    // Two meetings the day after tomorrow, 10:00-11:00 and 14:00-15:00 UTC.
    let day = (chrono::DateTime::parse_from_rfc3339(NOW).unwrap() + Duration::days(2))
        .format("%Y%m%d")
        .to_string();
    let local = |h: u32| {
        let t = chrono::NaiveDate::parse_from_str(&day, "%Y%m%d")
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
            .and_utc()
            .with_timezone(&chrono_tz::Europe::Kyiv);
        t.format("%Y-%m-%d %H:%M").to_string()
    };
    let event = |uid: &str, h: u32, extra: &str| {
        format!(
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART:{day}T{h:02}0000Z\r\nDTEND:{day}T{:02}0000Z\r\nSUMMARY:Standup\r\nORGANIZER;CN=Ivan:mailto:IVAN@example.org\r\nATTENDEE:mailto:guest@elsewhere.org\r\n{extra}END:VEVENT\r\n",
            h + 1
        )
    };
    let write = |events: &str| {
        std::fs::write(
            &ics,
            format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:test\r\n{events}END:VCALENDAR\r\n"),
        )
        .unwrap()
    };
    write(&(event("a@x", 10, "") + &event("b@x", 14, "")));
    let file = ics.to_str().unwrap();
    let out = k.ok(&["import", "calendar", file, "--room", "meeting-1"]);
    assert!(
        out.contains("2 occurrences in the window: 2 bookings added"),
        "{out}"
    );
    assert!(out.contains("no member has guest@elsewhere.org"), "{out}");
    let at = |door: &str, h: u32| {
        k.ok(&[
            "decide",
            "--card",
            "0A0B0C0D",
            "--door",
            door,
            "--at",
            &local(h),
        ])
    };
    assert!(at("d-meeting-1", 10).contains("allow.booking"));
    assert!(at("d-meeting-1", 14).contains("allow.booking"));
    assert!(at("d-meeting-1", 12).contains("DENY"));
    assert!(at("d-meeting-2", 10).contains("DENY"), "no other room");
    // The same feed again changes nothing.
    let out = k.ok(&["import", "calendar", file, "--room", "meeting-1"]);
    assert!(out.contains("0 bookings added, 0 updated"), "{out}");
    // The morning meeting moves to 08:00, the afternoon one is removed from the calendar.
    write(&event("a@x", 8, ""));
    let out = k.ok(&["import", "calendar", file, "--room", "meeting-1"]);
    assert!(out.contains("2 updated (of which 1 cancelled)"), "{out}");
    assert!(at("d-meeting-1", 8).contains("allow.booking"));
    assert!(at("d-meeting-1", 14).contains("DENY"));
    // STATUS:CANCELLED revokes it too.
    write(&event("a@x", 8, "STATUS:CANCELLED\r\n"));
    let out = k.ok(&["import", "calendar", file, "--room", "meeting-1"]);
    assert!(out.contains("1 updated (of which 1 cancelled)"), "{out}");
    assert!(at("d-meeting-1", 8).contains("DENY"));
    // A broken file changes nothing and says so.
    std::fs::write(&ics, "<html>502</html>").unwrap();
    let err = k.fails(&["import", "calendar", file, "--room", "meeting-1"]);
    assert!(err.contains("not an iCalendar calendar"), "{err}");
    // A calendar cut off in the middle (a broken download) is refused whole: the meetings
    // past the cut are not cancelled.
    write(&(event("c@x", 9, "") + &event("d@x", 13, "") + &event("e@x", 16, "")));
    k.ok(&["import", "calendar", file, "--room", "meeting-1"]);
    let whole = std::fs::read_to_string(&ics).unwrap();
    std::fs::write(&ics, &whole[..whole.find("UID:d@x").unwrap()]).unwrap();
    let err = k.fails(&["import", "calendar", file, "--room", "meeting-1"]);
    assert!(err.contains("cut short"), "{err}");
    assert!(at("d-meeting-1", 13).contains("allow.booking"));
    assert!(at("d-meeting-1", 16).contains("allow.booking"));
}

#[test]
fn api_tokens_are_shown_once_kept_hashed_and_revoked() {
    let k = Kombinat::new();
    let token = k.ok(&[
        "token",
        "add",
        "rooms",
        "--scope",
        "bookings:write",
        "--scope",
        "bookings:read",
    ]);
    let token = token.trim();
    assert!(token.starts_with("kmb_") && token.len() == 68, "{token}");
    let list = k.ok(&["token", "list"]);
    assert!(
        list.contains("rooms")
            && list.contains("bookings:write,bookings:read")
            && list.contains("live"),
        "{list}"
    );
    assert!(
        !list.contains(token),
        "the token itself is never shown again"
    );
    assert!(k
        .fails(&["token", "add", "rooms", "--scope", "bookings:read"])
        .contains("exists"));
    k.ok(&["token", "revoke", "rooms"]);
    assert!(k.ok(&["token", "list"]).contains("revoked"));
    assert!(k
        .fails(&["token", "revoke", "rooms"])
        .contains("no live token"));
    assert!(k
        .fails(&["token", "add", "x", "--scope", "doors:open"])
        .contains("doors:open"));
}

#[test]
fn a_member_is_erased_and_the_log_keeps_a_pseudonym() {
    let k = Kombinat::new();
    k.ok(&[
        "member",
        "add",
        "petro",
        "--name",
        "Petro Shevchenko",
        "--email",
        "petro@example.org",
    ]);
    k.ok(&["card", "add", "petro", "--card", "04:11:22:33"]);
    let refused = k.fails(&["member", "erase", "petro"]);
    assert!(refused.contains("--yes"), "{refused}");
    // A restore kept an older store beside this one: it still holds Petro.
    let kept = k.data.path().with_file_name(format!(
        "{}.before-restore-20261120-100000",
        k.data.path().file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&kept).unwrap();
    let said = k.ok(&["member", "erase", "petro", "--yes"]);
    let _ = std::fs::remove_dir_all(&kept);
    assert!(said.contains("erased-"), "{said}");
    assert!(said.contains("the store was written anew"), "{said}");
    assert!(
        said.contains("older copies still hold") && said.contains(&kept.display().to_string()),
        "{said}"
    );
    // Nothing of Petro is left in the store's files (sled keeps old versions until it reuses
    // their space: the store is written anew).
    let mut files = vec![k.data.path().to_path_buf()];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&p).unwrap();
            for needle in ["Shevchenko", "petro@example.org"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} in {}",
                    p.display()
                );
            }
        }
    }
    let pseudonym = said
        .split_whitespace()
        .find(|w| w.starts_with("erased-"))
        .unwrap()
        .to_string();
    k.fails(&["member", "show", "petro"]);
    let log = k.ok(&["log", "tail", "-n", "20"]);
    assert!(
        !log.contains("petro") && !log.contains("04112233") && !log.contains("Shevchenko"),
        "{log}"
    );
    assert!(log.contains(&pseudonym), "{log}");
    // The card is free again.
    k.ok(&["member", "add", "olena", "--name", "Olena"]);
    k.ok(&["card", "add", "olena", "--card", "04112233"]);
    // A second erase of the same member: there is nobody left to erase.
    k.fails(&["member", "erase", "petro", "--yes"]);
}

#[test]
fn decide_at_a_past_moment_answers_from_archived_bookings_too() {
    use kombinat::store::{SledStore, Store};
    let k = Kombinat::new();
    k.ok(&["member", "add", "olena", "--name", "Olena"]);
    k.ok(&["card", "add", "olena", "--card", "04A1B2C3"]);
    // Last Thursday's meeting, and one three years back.
    for (id, day) in [("last-week", "2026-11-19"), ("years-ago", "2023-11-23")] {
        k.ok(&[
            "booking",
            "add",
            "--room",
            "meeting-1",
            "--start",
            &format!("{day} 14:00"),
            "--end",
            &format!("{day} 16:00"),
            "--organiser",
            "olena",
            "--id",
            id,
        ]);
    }
    let at = |when: &str| {
        k.ok(&[
            "decide",
            "--card",
            "04A1B2C3",
            "--door",
            "d-meeting-1",
            "--at",
            when,
        ])
    };
    let before = [
        at("2026-11-19 14:30"),
        at("2023-11-23 14:30"),
        at("2023-11-23 17:00"),
    ];
    assert!(before[0].contains("[allow.booking"), "{}", before[0]);
    assert!(before[1].contains("[allow.booking"), "{}", before[1]);
    assert!(before[2].starts_with("DENY"), "{}", before[2]);
    // The service archives bookings that ended days ago out of what a start reads; the
    // answer about their time stays what it was.
    {
        let store = SledStore::open(k.data.path()).unwrap();
        let archived = store.archive_bookings(&mut |_| true).unwrap();
        assert_eq!(archived, 2);
        store.flush().unwrap();
    }
    let after = [
        at("2026-11-19 14:30"),
        at("2023-11-23 14:30"),
        at("2023-11-23 17:00"),
    ];
    assert_eq!(before, after);
    // Today, the old bookings open nothing.
    let now = k.ok(&["decide", "--card", "04A1B2C3", "--door", "d-meeting-1"]);
    assert!(now.contains("[deny.no_right]"), "{now}");
}

#[test]
fn without_user_in_the_environment_the_log_names_the_account_the_command_ran_as() {
    let k = Kombinat::new();
    let out = Command::new(env!("CARGO_BIN_EXE_kombinat"))
        .args(["member", "add", "olena", "--name", "Olena"])
        .env("KOMBINAT_SITE", &k.site)
        .env("KOMBINAT_DATA", k.data.path())
        .env("KOMBINAT_NOW", NOW)
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Whoever runs the tests: the name /etc/passwd gives this uid (root in CI).
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|v| v.split_whitespace().next().unwrap().to_string())
        })
        .unwrap();
    let name = std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.get(2) == Some(&uid.as_str())).then(|| f[0].to_string())
        })
        .unwrap_or(format!("uid {uid}"));
    let log = k.ok(&["log", "tail", "-n", "5"]);
    assert!(log.contains(&format!("cli:{name}")), "{name} not in\n{log}");
    assert!(!log.contains("cli:unknown"), "{log}");
}

#[test]
fn run_from_any_directory_without_a_site_file_it_finds_one_or_says_what_to_give() {
    // From a directory that is not the checkout's root, without --site: this development
    // build finds the example it was built beside (an installed one, /etc/kombinat/site.toml).
    let k = Kombinat::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kombinat"))
        .arg("check-config")
        .current_dir(elsewhere.path())
        .env_remove("KOMBINAT_SITE")
        .env("KOMBINAT_DATA", k.data.path())
        .env("KOMBINAT_NOW", NOW)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = Path::new("/etc/kombinat/site.toml").is_file();
    assert!(
        installed || said.contains("deploy/site.example.toml"),
        "{said}"
    );
    // A site file named that is not there: the path, and why, in a sentence.
    let out = Command::new(env!("CARGO_BIN_EXE_kombinat"))
        .args(["--site", "nowhere/site.toml", "check-config"])
        .current_dir(elsewhere.path())
        .env("KOMBINAT_DATA", k.data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nowhere/site.toml"), "{err}");
}
