//! Whether the gateway's own clock can be trusted. An allow-list says from when until when each
//! card opens a door on its own; built on a clock that is wrong (a Pi booted without network
//! or RTC starts at its last shutdown's time, or in 1970), it would open doors at the wrong
//! hours. So while the clock is not synchronised the gateway publishes no allow-lists (the
//! doors keep the ones they hold until those expire) and raises an alarm.
//!
//! The check (`[clock] sync_check` in the configuration):
//! - `"auto"` (the default): systemd's `timedatectl show -p NTPSynchronized --value` where it
//!   answers; where it does not (no systemd: a container, a developer's machine) no check;
//! - `"timedatectl"`: the same, and a `timedatectl` that does not answer counts as not
//!   synchronised;
//! - `["command", "arg", …]`: a command of the site's own (a chrony or GPS check): exit status 0
//!   is synchronised;
//! - `"none"`: no check.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the check runs.
pub const EVERY: Duration = Duration::from_secs(60);

/// Which check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClockCheck {
    /// `timedatectl` where it answers.
    #[default]
    Auto,
    /// `timedatectl`, which must answer.
    Timedatectl,
    /// A command: exit 0 is synchronised.
    Command(Vec<String>),
    /// No check.
    None,
}

impl ClockCheck {
    /// From the configuration's `sync_check`: a word or a command as a list.
    pub fn parse(v: &toml::Value) -> Result<ClockCheck, String> {
        match v {
            toml::Value::String(s) => match s.as_str() {
                "auto" => Ok(ClockCheck::Auto),
                "timedatectl" => Ok(ClockCheck::Timedatectl),
                "none" => Ok(ClockCheck::None),
                other => Err(format!(
                    "clock.sync_check {other:?}: \"auto\", \"timedatectl\", \"none\" or a command as a list"
                )),
            },
            toml::Value::Array(a) if !a.is_empty() => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| "clock.sync_check: a command is a list of strings".into())
                })
                .collect::<Result<Vec<_>, String>>()
                .map(ClockCheck::Command),
            _ => Err(
                "clock.sync_check: \"auto\", \"timedatectl\", \"none\" or a command as a list"
                    .into(),
            ),
        }
    }
}

/// What a check found: synchronised, not (and why), or nothing to go by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    Yes,
    No(String),
    Unknown,
}

/// Runs `argv` (at most ten seconds); its exit status and first line of output. The output
/// goes to a file, not a pipe: a command that writes much, or leaves a process behind holding
/// its output open, cannot hold the check up.
fn run(argv: &[String]) -> Result<(bool, String), String> {
    let (cmd, args) = argv.split_first().ok_or("an empty command")?;
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let out_path =
        std::env::temp_dir().join(format!("kombinat-clock-check-{}-{n}", std::process::id()));
    let out =
        std::fs::File::create(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait().map_err(|e| format!("{cmd}: {e}"))? {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_file(&out_path);
                return Err(format!("{cmd} did not answer within 10 s"));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let mut text = String::new();
    if let Ok(f) = std::fs::File::open(&out_path) {
        use std::io::Read as _;
        let _ = f.take(4096).read_to_string(&mut text);
    }
    let _ = std::fs::remove_file(&out_path);
    let line = text.lines().next().unwrap_or("").trim().to_string();
    Ok((status.success(), line))
}

/// Runs the check once.
pub fn check(c: &ClockCheck) -> Synced {
    let timedatectl = || {
        let argv: Vec<String> = ["timedatectl", "show", "-p", "NTPSynchronized", "--value"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        run(&argv).and_then(|(ok, line)| match (ok, line.as_str()) {
            (true, "yes") => Ok(true),
            (true, "no") => Ok(false),
            _ => Err(format!("timedatectl answered {line:?}")),
        })
    };
    match c {
        ClockCheck::None => Synced::Unknown,
        ClockCheck::Auto => match timedatectl() {
            Ok(true) => Synced::Yes,
            Ok(false) => Synced::No("systemd says the clock is not synchronised".into()),
            Err(_) => Synced::Unknown,
        },
        ClockCheck::Timedatectl => match timedatectl() {
            Ok(true) => Synced::Yes,
            Ok(false) => Synced::No("systemd says the clock is not synchronised".into()),
            Err(why) => Synced::No(why),
        },
        ClockCheck::Command(argv) => match run(argv) {
            Ok((true, _)) => Synced::Yes,
            Ok((false, line)) if line.is_empty() => {
                Synced::No(format!("{} says the clock is not synchronised", argv[0]))
            }
            Ok((false, line)) => Synced::No(format!("{}: {line}", argv[0])),
            Err(why) => Synced::No(why),
        },
    }
}

/// Checks every [`EVERY`] until `stop`, handing each change to `deliver` (the first reading
/// too); returns when `deliver` says the core is gone.
pub fn watch(c: ClockCheck, mut deliver: impl FnMut(Synced) -> bool, stop: Arc<AtomicBool>) {
    if c == ClockCheck::None {
        return;
    }
    let mut last: Option<Synced> = None;
    while !stop.load(Ordering::Relaxed) {
        let now = check(&c);
        if last.as_ref() != Some(&now) {
            if !deliver(now.clone()) {
                return;
            }
            last = Some(now);
        }
        let until = Instant::now() + EVERY;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_reads_a_command_s_exit_status_and_says_why() {
        let cmd = |v: &[&str]| ClockCheck::Command(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(check(&cmd(&["true"])), Synced::Yes);
        assert_eq!(
            check(&cmd(&["sh", "-c", "echo chrony: no sources; exit 1"])),
            Synced::No("sh: chrony: no sources".into())
        );
        assert!(matches!(
            check(&cmd(&["/nonexistent/check-clock"])),
            Synced::No(_)
        ));
        assert_eq!(check(&ClockCheck::None), Synced::Unknown);
    }

    #[test]
    fn the_configuration_names_a_check_or_a_command() {
        let v = |s: &str| toml::from_str::<toml::Table>(&format!("x = {s}")).unwrap()["x"].clone();
        assert_eq!(ClockCheck::parse(&v("\"auto\"")), Ok(ClockCheck::Auto));
        assert_eq!(ClockCheck::parse(&v("\"none\"")), Ok(ClockCheck::None));
        assert_eq!(
            ClockCheck::parse(&v("[\"chronyc\", \"waitsync\", \"1\"]")),
            Ok(ClockCheck::Command(vec![
                "chronyc".into(),
                "waitsync".into(),
                "1".into()
            ]))
        );
        assert!(ClockCheck::parse(&v("\"sometimes\"")).is_err());
        assert!(ClockCheck::parse(&v("[]")).is_err());
    }

    #[test]
    fn a_watch_hands_in_the_first_reading_and_each_change_only() {
        let stop = Arc::new(AtomicBool::new(false));
        let mut seen = Vec::new();
        let s = stop.clone();
        watch(
            ClockCheck::Command(vec!["true".into()]),
            |r| {
                seen.push(r);
                s.store(true, Ordering::Relaxed);
                true
            },
            stop,
        );
        assert_eq!(seen, vec![Synced::Yes]);
    }
}
