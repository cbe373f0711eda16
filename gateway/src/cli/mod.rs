//! The `kombinat` command line: parsing, and the commands, one file per family.
//!
//! `main.rs` parses [`Cli`], sets up logging and calls [`run`]. Each command opens the site file
//! and the store it needs, acts through [`Registry`] (so every change is validated, atomic and
//! audited) and prints for a person. Errors come back as sentences; the binary prints them and
//! exits non-zero.
//!
//! Here: the command line itself, what every family shares (opening the store, times in the
//! site's zone, who is acting), and the commands of the whole gateway (`run`, `demo`, `decide`,
//! `room`). Then `people.rs` (members and cards), `bookings.rs` (bookings and imports, the
//! calendar one through the feeds' reconciliation), `devices.rs` (nodes, keys, broker accounts)
//! and `admin.rs` (staff, tokens, backup and restore, the log, `check-config`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand};

use crate::access::{decide, explain, Tap};
use crate::domain::{
    Booking, BookingKey, BookingKind, BookingStatus, CardId, CertId, Credential, Device, DeviceId,
    DeviceKey, DeviceKind, DoorId, Email, ExternalId, Member, MemberId, MemberStatus, OrgId, Pin,
    PlanId, Role, RoomId, Site, SourceId, Window,
};
use crate::registry::Registry;
use crate::store::{Actor, AuditEvent, SledStore, Store};

mod admin;
mod bookings;
mod devices;
mod people;

use admin::check_config;
pub use admin::{LogCmd, StaffCmd, TokenCmd};
use bookings::booking;
use bookings::booking_line;
pub use bookings::{BookingCmd, ImportCmd};
pub use devices::DeviceCmd;
use people::{card, member};
pub use people::{CardCmd, MemberCmd};

/// Kombinat: the access and occupancy gateway of the Kherson Centre of Creative Industries.
#[derive(Debug, Parser)]
#[command(name = "kombinat", version, about)]
pub struct Cli {
    /// The site file (rooms, doors, plans, leases) [default: /etc/kombinat/site.toml where
    /// installed; in a source checkout, its deploy/site.example.toml].
    #[arg(long, global = true, env = "KOMBINAT_SITE")]
    pub site: Option<PathBuf>,
    /// The data directory (the store) [default: kombinat-data; for `demo`, a temporary one].
    #[arg(long, global = true, env = "KOMBINAT_DATA")]
    pub data: Option<PathBuf>,
    /// Take this as the time now (RFC 3339, or "YYYY-MM-DD HH:MM" in the site's time zone)
    /// instead of the system clock: to re-run a past import or report, and for tests.
    #[arg(long, global = true, env = "KOMBINAT_NOW")]
    pub now: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where an installed gateway's site file is (deploy/install.sh puts it there).
pub const INSTALLED_SITE: &str = "/etc/kombinat/site.toml";

impl Cli {
    /// The site file: `--site` (or `KOMBINAT_SITE`); else the installed one; else, in a source
    /// checkout (the working directory or the one this binary was built from), the example.
    /// Run from anywhere without either, it says what to give instead of failing on a path.
    pub fn site_path(&self) -> Result<PathBuf> {
        if let Some(site) = &self.site {
            return Ok(site.clone());
        }
        let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.example.toml");
        [
            PathBuf::from(INSTALLED_SITE),
            PathBuf::from("deploy/site.example.toml"),
            built_from,
        ]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "no site file: give one with --site FILE (or KOMBINAT_SITE). An installed gateway's is {INSTALLED_SITE}; deploy/site.example.toml in the source is an example to start from"
            )
        })
    }

    /// The data directory: `--data`, or `kombinat-data` here.
    pub fn data_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| PathBuf::from("kombinat-data"))
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the site file and report every problem with its line.
    CheckConfig,
    /// Members: add, list, show, suspend, resume.
    #[command(subcommand)]
    Member(MemberCmd),
    /// Cards and PINs: add, revoke.
    #[command(subcommand)]
    Card(CardCmd),
    /// Bookings: add, list, cancel.
    #[command(subcommand)]
    Booking(BookingCmd),
    /// Ask what a tap would decide, and why (nothing is written). The answer is worked out
    /// from everything stored now (today's members, cards and plans; every booking, archived
    /// ones too) for the moment --at; what a door actually decided then is in the log
    /// (`kombinat log`), which stays the record.
    Decide {
        #[command(flatten)]
        credential: CredentialArg,
        /// The door reader.
        #[arg(long)]
        door: String,
        /// When (RFC 3339, or "YYYY-MM-DD HH:MM" in the site's time zone); default now.
        #[arg(long)]
        at: Option<String>,
    },
    /// The audit log.
    #[command(subcommand)]
    Log(LogCmd),
    /// Devices: register door nodes, sensor nodes and alert feeds, list them, and the broker's
    /// accounts and ACL for them.
    #[command(subcommand, visible_alias = "devices")]
    Device(DeviceCmd),
    /// Bulk loads from CSV files.
    #[command(subcommand)]
    Import(ImportCmd),
    /// API tokens for booking systems: add (printed once), revoke, list.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Write a consistent copy of the whole store to FILE (also while `kombinat run` has it:
    /// the running gateway writes it, without stopping the doors).
    Backup {
        /// Where to write it.
        file: PathBuf,
    },
    /// Put a backup in place of the data directory, with the gateway stopped. A store
    /// already there is kept beside it as `<data>.before-restore-<time>`, and only with
    /// --force.
    Restore {
        /// The backup.
        file: PathBuf,
        /// Replace a data directory that holds a store.
        #[arg(long)]
        force: bool,
    },
    /// Staff accounts for the dashboard: add, change, remove, list.
    #[command(subcommand)]
    Staff(StaffCmd),
    /// A room's use from its occupancy history: peak and mean, occupied hours, the hour ×
    /// weekday heat map, booked versus actual.
    Room {
        room: String,
        /// From (RFC 3339 or "YYYY-MM-DD HH:MM" local); default seven days ago.
        #[arg(long)]
        from: Option<String>,
        /// Until (exclusive); default now.
        #[arg(long)]
        until: Option<String>,
    },
    /// Run the gateway service (MQTT, decisions, audit) until SIGINT or SIGTERM.
    Run {
        /// The service configuration (site, data, broker); see deploy/kombinat.example.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// The whole thing on this machine: the embedded broker, the gateway with the Kherson
    /// Centre, a simulated day's members and bookings, and the simulated building, until Ctrl-C.
    Demo {
        /// Where the HTTP API listens [default: 127.0.0.1:8080, or a free port if taken].
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
        /// Where the embedded broker listens [default: 127.0.0.1:1883, or a free port if taken].
        #[arg(long)]
        mqtt: Option<std::net::SocketAddr>,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 30.0)]
        speed: f64,
        /// Simulated time of day at the start, HH:MM (at 08:45 the building is filling up).
        #[arg(long, default_value = "08:45")]
        start: String,
        /// The day's seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Play an air-raid alert (the main entrance's siren contact) and a power cut (every
        /// door node on battery) 20 seconds after the start: shelter mode, the shelter's
        /// roll-call and the doors on battery show within a minute.
        #[arg(long)]
        drill: bool,
    },
}

/// A card or a PIN.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct CredentialArg {
    /// A card UID in hex (any case, ':' or '-' separators allowed).
    #[arg(long)]
    card: Option<String>,
    /// A PIN of 4 to 8 digits.
    #[arg(long)]
    pin: Option<String>,
}

impl CredentialArg {
    fn parse(&self) -> Result<Credential> {
        match (&self.card, &self.pin) {
            (Some(c), _) => Ok(Credential::Card(
                CardId::parse(c).map_err(|e| anyhow!("card {c:?}: {e}"))?,
            )),
            (_, Some(p)) => Ok(Credential::Pin(
                Pin::parse(p).map_err(|e| anyhow!("PIN: {e}"))?,
            )),
            _ => bail!("give --card or --pin"),
        }
    }
}

fn id<T: std::str::FromStr>(what: &str, s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    T::from_str(s).map_err(|e| anyhow!("{what} {s:?}: {e}"))
}

/// Parses an instant: RFC 3339, or a local "YYYY-MM-DD HH:MM[:SS]" on the site's clock.
pub fn parse_time(site: &Site, s: &str) -> Result<DateTime<Utc>> {
    site.parse_time(s).map_err(|e| anyhow!(e))
}

/// Writes a file only its owner can read (0600 from the start, not after).
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn parse_day(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| anyhow!("{s:?} is not a day YYYY-MM-DD"))
}

fn actor() -> Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty());
    Actor::Cli(user.unwrap_or_else(uid_name))
}

/// The name of the user this process runs as, from /etc/passwd (a service or a cron job may
/// have no USER); `uid N` where it has none.
fn uid_name() -> String {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        });
    let Some(uid) = uid else {
        return "unknown".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

fn local(site: &Site, t: DateTime<Utc>) -> String {
    t.with_timezone(&site.timezone)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

struct Ctx {
    site: Arc<Site>,
    gateway: Registry,
}

fn open(cli: &Cli, now: DateTime<Utc>) -> Result<Ctx> {
    open_as_of(cli, now, now)
}

/// Opens the store to answer for the moment `at` (see [`Registry::open_as_of`]).
fn open_as_of(cli: &Cli, now: DateTime<Utc>, at: DateTime<Utc>) -> Result<Ctx> {
    let site = Arc::new(crate::site_file::load(&cli.site_path()?)?);
    let data = cli.data_dir();
    std::fs::create_dir_all(&data)
        .with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let store: Arc<dyn Store> = Arc::new(
        SledStore::open(&data)
            .with_context(|| format!("cannot open the store in {}", data.display()))?,
    );
    let gateway = Registry::open_as_of(site.clone(), store, now, at)?;
    Ok(Ctx { site, gateway })
}

/// Runs a command, writing what it has to say to `out`.
/// `now` is the system clock's; `--now` replaces it.
pub fn run(cli: Cli, out: &mut dyn Write, now: DateTime<Utc>) -> Result<()> {
    let now = match &cli.now {
        None => now,
        Some(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => parse_time(&crate::site_file::load(&cli.site_path()?)?, s)
                .context("--now (KOMBINAT_NOW)")?,
        },
    };
    match &cli.command {
        Command::CheckConfig => check_config(&cli, out),
        Command::Member(c) => member(&cli, c, out, now),
        Command::Card(c) => card(&cli, c, out, now),
        Command::Booking(c) => booking(&cli, c, out, now),
        Command::Decide {
            credential,
            door,
            at,
        } => {
            let site = crate::site_file::load(&cli.site_path()?)?;
            let at = at
                .as_deref()
                .map(|a| parse_time(&site, a))
                .transpose()?
                .unwrap_or(now);
            let ctx = open_as_of(&cli, now, at)?;
            let tap = Tap {
                door: id("door", door)?,
                credential: credential.parse()?,
            };
            let d = decide(ctx.gateway.snapshot(), &tap, at);
            writeln!(out, "{}", explain(ctx.gateway.snapshot(), &d))?;
            Ok(())
        }
        Command::Run { config } => {
            let clock = match cli.now {
                Some(_) => crate::clock::Clock::starting_at(now),
                None => crate::clock::Clock::system(),
            };
            crate::service::run_from_file(config, clock)
        }
        Command::Demo {
            http,
            mqtt,
            speed,
            start,
            seed,
            drill,
        } => {
            let (h, m) = start
                .split_once(':')
                .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
                .filter(|(h, m)| *h < 24 && *m < 60)
                .ok_or_else(|| anyhow!("--start is HH:MM"))?;
            let opts = crate::demo::DemoOptions {
                data: cli.data.clone(),
                http: *http,
                mqtt: *mqtt,
                speed: *speed,
                start_min: h * 60 + m,
                seed: *seed,
                drill: drill.then_some(std::time::Duration::from_secs(20)),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(crate::demo::run(
                opts,
                out,
                crate::service::shutdown_signal(),
            ))
        }
        Command::Room { room, from, until } => {
            let ctx = open(&cli, now)?;
            let room: crate::domain::RoomId = id("room", room)?;
            let name = ctx
                .site
                .room(room)
                .map(|r| r.name.clone())
                .ok_or_else(|| anyhow!("there is no room {room} in the site file"))?;
            let until = until
                .as_deref()
                .map(|a| parse_time(&ctx.site, a))
                .transpose()?
                .unwrap_or(now);
            let from = from
                .as_deref()
                .map(|a| parse_time(&ctx.site, a))
                .transpose()?
                .unwrap_or(until - chrono::Duration::days(7));
            if until <= from {
                bail!("--until must be after --from");
            }
            let r = crate::occupancy::history::room_report(
                &ctx.site,
                ctx.gateway.store(),
                room,
                from.timestamp(),
                until.timestamp(),
            )?;
            writeln!(
                out,
                "{name} ({room}), {} to {}",
                local(&ctx.site, from),
                local(&ctx.site, until)
            )?;
            let u = r.usage;
            writeln!(
                out,
                "peak {} people, mean {:.2}, occupied {:.1} h of {:.1} h watched",
                u.peak, u.mean, u.occupied_hours, u.observed_hours
            )?;
            let b = r.booked;
            writeln!(
                out,
                "booked {:.1} h in {} bookings; occupied while booked {:.1} h ({:.0} % of booked time)",
                b.booked_hours,
                b.bookings,
                b.occupied_while_booked_hours,
                b.use_of_booked * 100.0
            )?;
            writeln!(out, "mean head count by hour (local), Monday first:")?;
            writeln!(
                out,
                "   {}",
                (0..24).map(|h| format!("{h:>5}")).collect::<String>()
            )?;
            for (d, day) in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
                .iter()
                .enumerate()
            {
                let cells: String = r.heat_map.cells[d]
                    .iter()
                    .map(|c| c.map_or("    .".to_string(), |v| format!("{v:>5.1}")))
                    .collect();
                writeln!(out, "{day}{cells}")?;
            }
            Ok(())
        }
        Command::Import(c) => bookings::import(&cli, c, out, now),
        Command::Token(c) => admin::token(&cli, c, out, now),
        Command::Backup { file } => admin::backup(&cli, file, out),
        Command::Restore { file, force } => admin::restore(&cli, file, *force, out, now),
        Command::Staff(c) => admin::staff(&cli, c, out, now),
        Command::Device(c) => devices::run(&cli, c, out, now),
        Command::Log(c) => admin::log(&cli, c, out, now),
    }
}
