//! The `kombinat` command line: parsing, and one function per command.
//!
//! `main.rs` parses [`Cli`], sets up logging and calls [`run`]. Each command opens the site file
//! and the store it needs, acts through [`Gateway`] (so every change is validated, atomic and
//! audited) and prints for a person. Errors come back as sentences; the binary prints them and
//! exits non-zero.

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
use crate::gateway::Gateway;
use crate::store::{Actor, AuditEvent, SledStore, Store};

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
    },
}

/// Staff commands (with the gateway stopped; while it runs, admins use the dashboard).
#[derive(Debug, Subcommand)]
pub enum StaffCmd {
    /// Add an account. The password is read from the first line of standard input (at least
    /// 10 characters), or made up and printed once with --generate.
    Add {
        /// The login name (a-z, 0-9, '.', '_', '-').
        name: String,
        /// What it may do.
        #[arg(long, value_enum)]
        role: crate::staff::StaffRole,
        /// Make up a password and print it.
        #[arg(long)]
        generate: bool,
    },
    /// Change an account's role, or its password (read as for add; signs it out everywhere).
    Set {
        /// The login name.
        name: String,
        /// A new role.
        #[arg(long, value_enum)]
        role: Option<crate::staff::StaffRole>,
        /// Read a new password from standard input.
        #[arg(long)]
        password: bool,
    },
    /// Remove an account (not the last admin).
    Remove {
        /// The login name.
        name: String,
    },
    /// List accounts (names and roles; never a password).
    List,
}

/// A password from the first line of standard input.
fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        bail!("give the password on standard input, or use --generate");
    }
    Ok(p)
}

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Make a token for a booking system; NAME is the booking source it writes as. The token
    /// is printed once; only its hash is kept.
    Add {
        /// The booking source.
        name: String,
        /// What it may do (repeat for several).
        #[arg(long = "scope", value_enum, required = true)]
        scopes: Vec<crate::domain::Scope>,
    },
    /// Revoke a token: it is refused from now on.
    Revoke {
        /// The token's name.
        name: String,
    },
    /// List tokens (names, scopes, state; never the token).
    List,
}

/// Import commands.
#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// Bookings from a CSV file (columns: external_id, room, kind, organiser, start, end or
    /// arrival, departure; optional source, title, attendees, status). All or nothing, unless
    /// --partial.
    Bookings {
        /// The CSV file.
        file: PathBuf,
        /// Check every row and say what would change, writing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write the good rows even when some rows are bad.
        #[arg(long)]
        partial: bool,
        /// The booking source for rows without a source column.
        #[arg(long, default_value = "import")]
        source: String,
    },
    /// A room's calendar from an iCalendar file (a Google, Outlook or Nextcloud room
    /// calendar's export): its occurrences in the coming days become meetings; what it booked
    /// before and no longer has is cancelled. Importing it again changes nothing.
    Calendar {
        /// The .ics file.
        file: PathBuf,
        /// The room the calendar books.
        #[arg(long)]
        room: String,
        /// The booking source (default "ical-<room>").
        #[arg(long)]
        source: Option<String>,
        /// How many days ahead occurrences are taken.
        #[arg(long, default_value_t = 60)]
        days: u32,
    },
    /// Members and their cards from a CSV file (columns: id, name; optional email, plan,
    /// organisation, roles, certifications, valid_from, valid_until, cards). All or nothing,
    /// unless --partial.
    Members {
        /// The CSV file.
        file: PathBuf,
        /// Check every row and say what would change, writing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write the good rows even when some rows are bad.
        #[arg(long)]
        partial: bool,
    },
}

/// A progress bar for a file being read: drawn only on a terminal (indicatif hides itself
/// otherwise), and only for files big enough to wait for.
fn file_bar(size: u64) -> indicatif::ProgressBar {
    if size > 256 * 1024 {
        indicatif::ProgressBar::new(size)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// Reports bad rows; refuses (all or nothing) unless `partial`.
fn report_bad(
    out: &mut dyn Write,
    file: &std::path::Path,
    errors: &[crate::import::RowError],
    good: usize,
    partial: bool,
) -> Result<()> {
    for e in errors {
        writeln!(out, "{}: {e}", file.display())?;
    }
    let bad = errors.len();
    if bad > 0 && !partial {
        bail!(
            "{} has {bad} bad row{}: nothing imported (fix them, or --partial for the {good} good ones)",
            file.display(),
            if bad == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// Device commands.
#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Register a device and print its new secret key (shown once).
    Add {
        /// Identifier: its MQTT client id and topic id.
        id: String,
        /// Door node, sensor node or alert feed.
        #[arg(long, value_enum)]
        kind: DeviceKind,
        /// The door reader a door node serves.
        #[arg(long)]
        door: Option<String>,
        /// The room a sensor node watches.
        #[arg(long)]
        room: Option<String>,
        /// Use this key (64 hex digits) instead of a new random one.
        #[arg(long)]
        key: Option<String>,
    },
    /// Give a device a new key (printed once, with its new broker password): for a node that
    /// was lost, stolen or replaced. Messages signed with the old key are refused from then on;
    /// run `mosquitto-config` again.
    Rekey {
        /// The device.
        id: String,
    },
    /// Remove a device from the registry (run `mosquitto-config` again to drop its account).
    Remove {
        /// The device.
        id: String,
    },
    /// List devices.
    List,
    /// Write mosquitto's configuration for the registered devices: no anonymous access, an
    /// account per device (its password derived from its key, as `device add` prints it) and
    /// one for the gateway, an ACL keeping each device to its own topics.
    MosquittoConfig {
        /// Where to write `kombinat.conf`, `passwd` and `acl`.
        #[arg(long)]
        out: PathBuf,
        /// Where mosquitto will find the files (default: OUT).
        #[arg(long)]
        install_dir: Option<String>,
        /// The gateway's broker account.
        #[arg(long, default_value = "kombinat-gateway")]
        gateway_user: String,
        /// A file holding the gateway's broker password (the `password` of `[mqtt]` in the
        /// service configuration).
        #[arg(long)]
        gateway_password_file: PathBuf,
        /// The listener, HOST:PORT.
        #[arg(long, default_value = "0.0.0.0:8883")]
        listen: String,
        /// TLS: the CA file (with --certfile and --keyfile); without them the listener is plain.
        #[arg(long, requires_all = ["certfile", "keyfile"])]
        cafile: Option<String>,
        /// TLS: the broker's certificate.
        #[arg(long)]
        certfile: Option<String>,
        /// TLS: the broker's key.
        #[arg(long)]
        keyfile: Option<String>,
        /// The topic prefix.
        #[arg(long, default_value = kombinat_protocol::DEFAULT_PREFIX)]
        prefix: String,
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

/// Member commands.
#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Add a member.
    Add {
        /// Identifier (a-z, 0-9, '-', '_', '.').
        id: String,
        /// Full name.
        #[arg(long)]
        name: String,
        /// E-mail address (to match calendar attendees).
        #[arg(long)]
        email: Option<String>,
        /// A role that grants rights by itself (repeatable).
        #[arg(long = "role", value_enum)]
        roles: Vec<Role>,
        /// A plan from the site file.
        #[arg(long)]
        plan: Option<String>,
        /// Organisation (for leases).
        #[arg(long = "org")]
        organisation: Option<String>,
        /// A certification held (repeatable), e.g. induction-fablab.
        #[arg(long = "cert")]
        certifications: Vec<String>,
        /// Membership starts (RFC 3339 or local "YYYY-MM-DD HH:MM").
        #[arg(long)]
        valid_from: Option<String>,
        /// Membership ends (RFC 3339 or local "YYYY-MM-DD HH:MM").
        #[arg(long)]
        valid_until: Option<String>,
    },
    /// List members.
    List,
    /// Show a member, their cards and their bookings.
    Show {
        /// The member.
        id: String,
    },
    /// Suspend a member: their doors stay shut until resumed.
    Suspend {
        /// The member.
        id: String,
        /// Why (kept in the log).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Erase a member's personal data, with the gateway stopped: their record and cards go,
    /// they leave their bookings, and the log keeps every entry with their id replaced by a
    /// pseudonym and their cards removed. Cannot be undone (a backup first is wise).
    Erase {
        /// The member.
        id: String,
        /// Yes, erase.
        #[arg(long)]
        yes: bool,
    },
    /// Lift a suspension.
    Resume {
        /// The member.
        id: String,
    },
}

/// Credential commands.
#[derive(Debug, Subcommand)]
pub enum CardCmd {
    /// Issue a card or PIN to a member.
    Add {
        member: String,
        #[command(flatten)]
        credential: CredentialArg,
    },
    /// Revoke a card or PIN.
    Revoke {
        #[command(flatten)]
        credential: CredentialArg,
    },
}

/// Booking commands.
#[derive(Debug, Subcommand)]
pub enum BookingCmd {
    /// Add (or replace) a booking.
    Add {
        #[arg(long)]
        room: String,
        /// Meeting, stay, event or guest-pass.
        #[arg(long, value_enum, default_value = "meeting")]
        kind: BookingKind,
        /// Start (meetings, events, guest passes).
        #[arg(long, required_unless_present = "arrival")]
        start: Option<String>,
        /// End (meetings, events, guest passes).
        #[arg(long, required_unless_present = "departure")]
        end: Option<String>,
        /// Arrival day YYYY-MM-DD (stays).
        #[arg(long, conflicts_with_all = ["start", "end"])]
        arrival: Option<String>,
        /// Departure day YYYY-MM-DD (stays).
        #[arg(long, conflicts_with_all = ["start", "end"])]
        departure: Option<String>,
        /// Organiser (a member).
        #[arg(long)]
        organiser: Option<String>,
        /// Attendee (a member; repeatable).
        #[arg(long = "attendee")]
        attendees: Vec<String>,
        #[arg(long, default_value = "")]
        title: String,
        /// Source system.
        #[arg(long, default_value = "cli")]
        source: String,
        /// The source's id for the booking; generated when omitted.
        #[arg(long)]
        id: Option<String>,
    },
    /// List bookings.
    List {
        /// Only this room.
        #[arg(long)]
        room: Option<String>,
        /// Include cancelled bookings.
        #[arg(long)]
        all: bool,
    },
    /// Cancel a booking.
    Cancel {
        /// Source system.
        #[arg(long, default_value = "cli")]
        source: String,
        /// The source's id for the booking.
        #[arg(long)]
        id: String,
    },
}

/// Audit log commands.
#[derive(Debug, Subcommand)]
pub enum LogCmd {
    /// The latest entries, oldest first.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
    },
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

/// The secret the off-the-shelf devices' broker passwords derive from: made once, kept in the
/// store (and its backups), so that generating the configuration again keeps every password.
fn binding_secret(store: &dyn Store) -> Result<[u8; 32]> {
    const KEY: &str = "mqtt-binding-secret";
    if let Some(v) = store.state(KEY)? {
        if let Ok(s) = <[u8; 32]>::try_from(v.as_slice()) {
            return Ok(s);
        }
        bail!("the stored {KEY} is not 32 bytes: the store is damaged");
    }
    let mut s = [0u8; 32];
    getrandom::fill(&mut s).map_err(|e| anyhow!("cannot get random bytes: {e}"))?;
    store.put_state(KEY, &s)?;
    store.flush()?;
    Ok(s)
}

/// A group's id from /etc/group.
#[cfg(unix)]
fn group_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
        })
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
    gateway: Gateway,
}

fn open(cli: &Cli, now: DateTime<Utc>) -> Result<Ctx> {
    open_as_of(cli, now, now)
}

/// Opens the store to answer for the moment `at` (see [`Gateway::open_as_of`]).
fn open_as_of(cli: &Cli, now: DateTime<Utc>, at: DateTime<Utc>) -> Result<Ctx> {
    let site = Arc::new(crate::site_file::load(&cli.site_path()?)?);
    let data = cli.data_dir();
    std::fs::create_dir_all(&data)
        .with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let store: Arc<dyn Store> = Arc::new(
        SledStore::open(&data)
            .with_context(|| format!("cannot open the store in {}", data.display()))?,
    );
    let gateway = Gateway::open_as_of(site.clone(), store, now, at)?;
    Ok(Ctx { site, gateway })
}

/// A token request: applied directly when the store is free, or handed to the running
/// gateway through the spool when `kombinat run` holds it (a leaked token must be revocable
/// without stopping the doors).
fn token_request(cli: &Cli, now: DateTime<Utc>, req: crate::spool::Request) -> Result<()> {
    match open(cli, now) {
        Ok(mut ctx) => ctx
            .gateway
            .token_request(req, actor(), now)
            .map_err(|e| anyhow!(e)),
        Err(e)
            if e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<crate::store::StoreError>(),
                    Some(crate::store::StoreError::Busy)
                )
            }) =>
        {
            let Actor::Cli(by) = actor() else {
                unreachable!("the command line's actor")
            };
            let path = crate::spool::submit(
                &cli.data_dir(),
                &crate::spool::Envelope { by, request: req },
            )
            .with_context(|| {
                format!(
                    "cannot write to {}",
                    crate::spool::dir(&cli.data_dir()).display()
                )
            })?;
            crate::spool::wait(&path, std::time::Duration::from_secs(30)).map_err(|e| anyhow!(e))
        }
        Err(e) => Err(e),
    }
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
        Command::Import(ImportCmd::Bookings {
            file,
            dry_run,
            partial,
            source,
        }) => {
            let mut ctx = open(&cli, now)?;
            let source: crate::domain::SourceId = id("source", source)?;
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let bar = file_bar(f.metadata().map(|m| m.len()).unwrap_or(0));
            let parsed = crate::import::read_bookings(
                ctx.gateway.snapshot(),
                source,
                std::io::BufReader::new(f),
                |pos| bar.set_position(pos),
            )
            .with_context(|| format!("{}", file.display()))?;
            bar.finish_and_clear();
            let bad = parsed.errors.len();
            report_bad(out, file, &parsed.errors, parsed.rows.len(), *partial)?;
            let rows: Vec<_> = parsed.rows.into_iter().map(|(_, b)| b).collect();
            if *dry_run {
                let (mut added, mut updated, mut unchanged) = (0, 0, 0);
                for b in &rows {
                    match ctx.gateway.store().booking(&b.key)? {
                        Some(old) if old == *b => unchanged += 1,
                        Some(_) => updated += 1,
                        None => added += 1,
                    }
                }
                writeln!(
                    out,
                    "dry run: {added} would be added, {updated} updated, {unchanged} unchanged, {bad} bad rows skipped; nothing written"
                )?;
                return Ok(());
            }
            let what = format!("import of {}", file.display());
            let c = ctx.gateway.import_bookings(rows, &what, actor(), now)?;
            writeln!(
                out,
                "{} added, {} updated, {} unchanged, {bad} bad rows skipped",
                c.added, c.updated, c.unchanged
            )?;
            Ok(())
        }
        Command::Import(ImportCmd::Calendar {
            file,
            room,
            source,
            days,
        }) => {
            let mut ctx = open(&cli, now)?;
            let room: crate::domain::RoomId = id("room", room)?;
            if ctx.site.room(room).is_none() {
                bail!("there is no room {room} in the site file");
            }
            let source: crate::domain::SourceId = id(
                "source",
                source.as_deref().unwrap_or(&format!("ical-{room}")),
            )?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            // From a day back (an occurrence under way stays), to `days` ahead.
            let from = now - chrono::Duration::days(1);
            let until = now + chrono::Duration::days(i64::from((*days).clamp(1, 366)));
            let expanded = crate::ics::expand(&text, ctx.site.timezone, from, until, 5000)
                .with_context(|| format!("{}", file.display()))?;
            let stored = ctx.gateway.store().bookings()?;
            let plan = crate::feed::plan(
                ctx.gateway.snapshot(),
                source,
                room,
                &expanded,
                (from, until),
                now,
                &stored,
            );
            for p in &plan.problems {
                writeln!(out, "{}: {p}", file.display())?;
            }
            if !plan.unmatched.is_empty() {
                writeln!(
                    out,
                    "{}: no member has {}",
                    file.display(),
                    plan.unmatched
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
            if expanded.truncated {
                writeln!(
                    out,
                    "{}: more occurrences than taken; the window was cut",
                    file.display()
                )?;
            }
            if let Some(why) = &plan.refused {
                bail!("{}: {why}", file.display());
            }
            let cancelled = plan.cancelled;
            let what = format!("calendar {} for room {room}", file.display());
            let c = ctx
                .gateway
                .import_bookings(plan.upserts, &what, actor(), now)?;
            writeln!(
                out,
                "{} occurrences in the window: {} bookings added, {} updated (of which {cancelled} cancelled)",
                expanded.occurrences.len(),
                c.added,
                c.updated,
            )?;
            Ok(())
        }
        Command::Import(ImportCmd::Members {
            file,
            dry_run,
            partial,
        }) => {
            let mut ctx = open(&cli, now)?;
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let bar = file_bar(f.metadata().map(|m| m.len()).unwrap_or(0));
            let parsed = crate::import::read_members(
                ctx.gateway.snapshot(),
                std::io::BufReader::new(f),
                |pos| bar.set_position(pos),
            )
            .with_context(|| format!("{}", file.display()))?;
            bar.finish_and_clear();
            let bad = parsed.errors.len();
            report_bad(out, file, &parsed.errors, parsed.rows.len(), *partial)?;
            let rows: Vec<_> = parsed.rows.into_iter().map(|(_, m)| m).collect();
            if *dry_run {
                let (mut added, mut updated, mut unchanged) = (0, 0, 0);
                for r in &rows {
                    match ctx.gateway.store().member(r.member.id)? {
                        Some(old) if old == r.member => unchanged += 1,
                        Some(_) => updated += 1,
                        None => added += 1,
                    }
                }
                writeln!(
                    out,
                    "dry run: {added} members would be added, {updated} updated, {unchanged} unchanged, {bad} bad rows skipped; nothing written"
                )?;
                return Ok(());
            }
            let what = format!("import of {}", file.display());
            let (c, cards) = ctx.gateway.import_members(rows, &what, actor(), now)?;
            writeln!(
                out,
                "{} members added, {} updated, {} unchanged, {cards} cards issued, {bad} bad rows skipped",
                c.added, c.updated, c.unchanged
            )?;
            Ok(())
        }
        Command::Token(TokenCmd::Add { name, scopes }) => {
            let name: crate::domain::SourceId = id("token name", name)?;
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw).map_err(|e| anyhow!("no randomness: {e}"))?;
            let token = format!(
                "kmb_{}",
                raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            let mut scopes = scopes.clone();
            scopes.sort_by_key(|s| *s as u8);
            scopes.dedup();
            token_request(
                &cli,
                now,
                crate::spool::Request::AddToken(crate::domain::ApiToken {
                    name,
                    sha256: crate::domain::token_hash(&token),
                    scopes,
                    created_at: now,
                    revoked_at: None,
                }),
            )?;
            writeln!(out, "{token}")?;
            eprintln!("the token is shown once: give it to the booking system as Authorization: Bearer <token>");
            Ok(())
        }
        Command::Token(TokenCmd::Revoke { name }) => {
            let name: crate::domain::SourceId = id("token name", name)?;
            token_request(&cli, now, crate::spool::Request::RevokeToken(name))?;
            writeln!(out, "token {name} revoked")?;
            Ok(())
        }
        Command::Backup { file } => {
            let data = cli.data_dir();
            let n = match SledStore::open(&data) {
                Ok(store) => crate::service::write_backup(&store, file).map_err(|e| anyhow!(e))?,
                Err(crate::store::StoreError::Busy) => {
                    let Actor::Cli(by) = actor() else {
                        unreachable!("the command line's actor")
                    };
                    let path = crate::spool::submit(
                        &data,
                        &crate::spool::Envelope {
                            by,
                            request: crate::spool::Request::Backup,
                        },
                    )
                    .with_context(|| {
                        format!("cannot write to {}", crate::spool::dir(&data).display())
                    })?;
                    crate::spool::wait(&path, std::time::Duration::from_secs(3600)).map_err(
                        |e| anyhow!("the running gateway did not write the backup: {e}"),
                    )?;
                    let written = crate::spool::backup_file(&path);
                    // The gateway wrote it in its own directory; it moves to where it was asked.
                    if std::fs::rename(&written, file).is_err() {
                        std::fs::copy(&written, file)
                            .with_context(|| format!("cannot write {}", file.display()))?;
                        let _ = std::fs::remove_file(&written);
                    }
                    let mut f = std::fs::File::open(file)?;
                    let mut r = crate::store::backup::Reader::open(&mut f)?;
                    let mut n = 0;
                    while let Some(i) = r.next_item()? {
                        n += u64::from(matches!(i, crate::store::backup::Item::Record(..)));
                    }
                    n
                }
                Err(e) => return Err(e).with_context(|| format!("cannot open {}", data.display())),
            };
            writeln!(
                out,
                "backup of {} written to {}: {n} records",
                data.display(),
                file.display()
            )?;
            Ok(())
        }
        Command::Restore { file, force } => {
            let data = cli.data_dir();
            let mut input = std::io::BufReader::new(
                std::fs::File::open(file)
                    .with_context(|| format!("cannot read {}", file.display()))?,
            );
            let occupied = data.exists() && std::fs::read_dir(&data)?.next().is_some();
            // The counters the store being replaced has seen: the backup's are older, and a
            // message captured since would be taken again.
            let mut seen = Vec::new();
            if occupied {
                // Busy means the gateway runs: it is stopped first.
                let current = SledStore::open(&data)
                    .with_context(|| format!("cannot open {}", data.display()))?;
                if !force {
                    bail!("{} holds a store: stop the gateway and add --force to replace it (it is kept beside)", data.display());
                }
                seen = crate::store::counters_seen(&current)?;
            }
            let name = data
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "data".into());
            let staged = data.with_file_name(format!(".{name}.restoring"));
            let _ = std::fs::remove_dir_all(&staged);
            let n = SledStore::restore(&staged, &mut input)?;
            // Opened once: a restore from an older schema is migrated now, not at the next start.
            let restored = SledStore::open(&staged)?;
            let raised = crate::store::raise_counters(&restored, &seen, now)?;
            drop(restored);
            if raised > 0 {
                writeln!(
                    out,
                    "{raised} devices' replay counters moved past what the replaced store had seen"
                )?;
            } else if !occupied {
                writeln!(
                    out,
                    "no store was here: the devices' replay counters are the backup's; if messages may have been captured since it was made, give the devices new keys (`kombinat device rekey`)"
                )?;
            }
            if occupied {
                let kept = data.with_file_name(format!(
                    "{name}.before-restore-{}",
                    now.format("%Y%m%d-%H%M%S")
                ));
                std::fs::rename(&data, &kept)?;
                writeln!(
                    out,
                    "the store that was there is kept in {}",
                    kept.display()
                )?;
            } else if data.exists() {
                std::fs::remove_dir(&data)?;
            }
            std::fs::rename(&staged, &data)?;
            writeln!(
                out,
                "restored {n} records from {} into {}",
                file.display(),
                data.display()
            )?;
            Ok(())
        }
        Command::Staff(cmd) => {
            let ctx = open(&cli, now)?;
            let store: Arc<dyn Store> = ctx.gateway.store_arc();
            let staff = crate::staff::Staff::load(store, now)?;
            match cmd {
                StaffCmd::Add {
                    name,
                    role,
                    generate,
                } => {
                    let name = crate::staff::StaffName::parse(name).map_err(|e| anyhow!(e))?;
                    let password = if *generate {
                        crate::staff::generate_password().map_err(|e| anyhow!(e))?
                    } else {
                        read_password()?
                    };
                    staff.add(name.clone(), *role, &password, actor(), now)?;
                    writeln!(out, "staff {name} added as {role}")?;
                    if *generate {
                        writeln!(out, "password (shown once): {password}")?;
                    }
                }
                StaffCmd::Set {
                    name,
                    role,
                    password,
                } => {
                    let name = crate::staff::StaffName::parse(name).map_err(|e| anyhow!(e))?;
                    let pw = if *password {
                        Some(read_password()?)
                    } else {
                        None
                    };
                    if role.is_none() && pw.is_none() {
                        bail!("say what to change: --role, --password");
                    }
                    let a = staff.update(&name, *role, pw.as_deref(), actor(), now)?;
                    writeln!(out, "staff {name}: {}", a.role)?;
                }
                StaffCmd::Remove { name } => {
                    let name = crate::staff::StaffName::parse(name).map_err(|e| anyhow!(e))?;
                    staff.remove(&name, actor(), now)?;
                    writeln!(out, "staff {name} removed")?;
                }
                StaffCmd::List => {
                    for a in staff.accounts() {
                        writeln!(
                            out,
                            "{}\t{}\tsince {}",
                            a.name,
                            a.role,
                            local(&ctx.site, a.created_at)
                        )?;
                    }
                }
            }
            Ok(())
        }
        Command::Token(TokenCmd::List) => {
            let ctx = open(&cli, now)?;
            for t in ctx.gateway.store().tokens()? {
                writeln!(
                    out,
                    "{:<24} {:<32} {}",
                    t.name.to_string(),
                    t.scopes
                        .iter()
                        .map(|s| match s {
                            crate::domain::Scope::BookingsWrite => "bookings:write",
                            crate::domain::Scope::BookingsRead => "bookings:read",
                            crate::domain::Scope::MetricsRead => "metrics:read",
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    t.revoked_at.map_or("live".to_string(), |r| format!(
                        "revoked {}",
                        local(&ctx.site, r)
                    ))
                )?;
            }
            Ok(())
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
        Command::Device(DeviceCmd::Add {
            id: did,
            kind,
            door,
            room,
            key,
        }) => {
            let mut ctx = open(&cli, now)?;
            let key = match key {
                Some(k) => DeviceKey::parse_hex(k)
                    .ok_or_else(|| anyhow!("--key: a device key is 64 hex digits"))?,
                None => {
                    let mut b = [0u8; 32];
                    getrandom::fill(&mut b)
                        .map_err(|e| anyhow!("cannot get random bytes for the key: {e}"))?;
                    DeviceKey::from_bytes(b)
                }
            };
            let device = Device {
                id: id::<DeviceId>("device", did)?,
                kind: *kind,
                door: door
                    .as_deref()
                    .map(|d| id::<DoorId>("door", d))
                    .transpose()?,
                room: room
                    .as_deref()
                    .map(|r| id::<RoomId>("room", r))
                    .transpose()?,
                key: key.clone(),
                added_at: now,
            };
            let did = device.id;
            ctx.gateway.add_device(device, actor(), now)?;
            writeln!(
                out,
                "device {did} registered; its key (shown once, put it in the device's config):"
            )?;
            writeln!(out, "{}", key.expose_hex())?;
            writeln!(
                out,
                "its broker account (for mosquitto): user {did}, password {}",
                crate::mosquitto::broker_password(&key)
            )?;
            Ok(())
        }
        Command::Device(DeviceCmd::Rekey { id: did }) => {
            let mut ctx = open(&cli, now)?;
            let did: DeviceId = id("device", did)?;
            let mut b = [0u8; 32];
            getrandom::fill(&mut b)
                .map_err(|e| anyhow!("cannot get random bytes for the key: {e}"))?;
            let key = DeviceKey::from_bytes(b);
            ctx.gateway.rekey_device(did, key.clone(), actor(), now)?;
            writeln!(
                out,
                "device {did} has a new key (shown once, put it in the device's config):"
            )?;
            writeln!(out, "{}", key.expose_hex())?;
            writeln!(
                out,
                "its broker account (for mosquitto): user {did}, password {}; run `devices mosquitto-config` again",
                crate::mosquitto::broker_password(&key)
            )?;
            Ok(())
        }
        Command::Device(DeviceCmd::Remove { id: did }) => {
            let mut ctx = open(&cli, now)?;
            let did: DeviceId = id("device", did)?;
            ctx.gateway.remove_device(did, actor(), now)?;
            writeln!(
                out,
                "device {did} removed; run `devices mosquitto-config` again to drop its broker account"
            )?;
            Ok(())
        }
        Command::Device(DeviceCmd::MosquittoConfig {
            out: dir,
            install_dir,
            gateway_user,
            gateway_password_file,
            listen,
            cafile,
            certfile,
            keyfile,
            prefix,
        }) => {
            let ctx = open(&cli, now)?;
            let devices = ctx.gateway.store().devices()?;
            let secret = binding_secret(ctx.gateway.store())?;
            let bindings = crate::mosquitto::binding_accounts(&ctx.site.bindings, &secret);
            // One account, one name: a binding called like a device or the gateway would
            // share (or widen) its rights.
            for b in &bindings {
                if b.user == *gateway_user || devices.iter().any(|d| d.id.as_str() == b.user) {
                    bail!(
                        "the broker account {} is both an off-the-shelf device in the site file and {}: rename the binding",
                        b.user,
                        if b.user == *gateway_user { "the gateway's account" } else { "a registered device" }
                    );
                }
            }
            let password = std::fs::read_to_string(gateway_password_file)
                .with_context(|| format!("cannot read {}", gateway_password_file.display()))?;
            let password = password.trim();
            if password.len() < 16 {
                bail!("the gateway's broker password is at least 16 characters");
            }
            let (host, port) = listen
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| anyhow!("--listen is HOST:PORT"))?;
            let tls = match (cafile, certfile, keyfile) {
                (Some(a), Some(b), Some(c)) => Some((a.clone(), b.clone(), c.clone())),
                _ => None,
            };
            let plain = tls.is_none();
            let listener = crate::mosquitto::Listener { host, port, tls };
            let install = install_dir
                .clone()
                .unwrap_or_else(|| dir.display().to_string());
            let mut salt_err = None;
            let files = crate::mosquitto::generate(
                &devices,
                &bindings,
                prefix,
                gateway_user,
                password,
                &listener,
                &install,
                || {
                    let mut s = [0u8; 12];
                    if let Err(e) = getrandom::fill(&mut s) {
                        salt_err = Some(e);
                    }
                    s
                },
            );
            if let Some(e) = salt_err {
                bail!("cannot get random bytes for the password salts: {e}");
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (name, text) in [
                ("kombinat.conf", &files.conf),
                ("passwd", &files.passwd),
                ("acl", &files.acl),
            ] {
                let path = dir.join(name);
                std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            // The off-the-shelf devices' passwords, for their own settings pages: for the
            // operator's eyes only.
            let accounts = dir.join("binding-accounts");
            let mut text = String::from(
                "# The broker accounts of the site file's off-the-shelf devices: enter each in the\n\
                 # device's MQTT settings (user, password), then delete this file.\n",
            );
            for b in &bindings {
                text.push_str(&format!("{} {}\n", b.user, b.password));
            }
            write_private(&accounts, &text)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                // mosquitto 2 drops to its own user before it reads the password file: the file
                // is the mosquitto group's to read (0640 root:mosquitto), nobody else's.
                let passwd = dir.join("passwd");
                std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o640))?;
                match group_id("mosquitto") {
                    Some(gid) => {
                        if let Err(e) = std::os::unix::fs::chown(&passwd, None, Some(gid)) {
                            writeln!(
                                out,
                                "cannot give {} to the group mosquitto ({e}): run `chgrp mosquitto {}` as root, or mosquitto will not start",
                                passwd.display(),
                                passwd.display()
                            )?;
                        }
                    }
                    None => writeln!(
                        out,
                        "there is no group mosquitto here: on the broker's machine, `chgrp mosquitto passwd` (mosquitto reads it as its own user)"
                    )?,
                }
            }
            writeln!(
                out,
                "mosquitto configuration for {} devices and {} off-the-shelf accounts written to {}{}",
                devices.len(),
                bindings.len(),
                dir.display(),
                if plain {
                    " (plain listener: give --cafile, --certfile and --keyfile for TLS)"
                } else {
                    ""
                }
            )?;
            Ok(())
        }
        Command::Device(DeviceCmd::List) => {
            let ctx = open(&cli, now)?;
            let devices = ctx.gateway.store().devices()?;
            for d in &devices {
                writeln!(
                    out,
                    "{:<20} {:<10} {}",
                    d.id.to_string(),
                    format!("{:?}", d.kind).to_lowercase(),
                    d.door
                        .map(|x| format!("door {x}"))
                        .or(d.room.map(|r| format!("room {r}")))
                        .unwrap_or_default()
                )?;
            }
            writeln!(out, "{} devices", devices.len())?;
            Ok(())
        }
        Command::Log(LogCmd::Tail { lines }) => {
            let ctx = open(&cli, now)?;
            for r in ctx.gateway.store().audit_tail(*lines)? {
                let e = &r.entry;
                let what = match &e.event {
                    AuditEvent::Decision {
                        door,
                        card,
                        reason,
                        member,
                        booking,
                        offline,
                        ..
                    } => format!(
                        "{reason:<28} door {door} {} member {}{}{}",
                        card.map_or("PIN".to_string(), |c| format!("card {c}")),
                        member.map_or("-".to_string(), |m| m.to_string()),
                        booking
                            .as_ref()
                            .map_or(String::new(), |b| format!(" booking {b}")),
                        if *offline { " (decided offline)" } else { "" }
                    ),
                    AuditEvent::Change { summary } => summary.clone(),
                    AuditEvent::Mode { mode } => format!("site mode set to {mode}"),
                    AuditEvent::NoShow { booking, room } => {
                        format!("no-show: booking {booking} in room {room}")
                    }
                    AuditEvent::Alarm {
                        door,
                        device,
                        alarm,
                        raised,
                    } => format!(
                        "alarm {alarm:?} {} {}",
                        if *raised { "raised" } else { "cleared" },
                        door.map(|d| format!("door {d}"))
                            .or(device.map(|d| format!("device {d}")))
                            .unwrap_or_default()
                    ),
                };
                writeln!(
                    out,
                    "{}  {:<16} {what}",
                    local(&ctx.site, e.at),
                    e.actor.to_string()
                )?;
            }
            Ok(())
        }
    }
}

fn check_config(cli: &Cli, out: &mut dyn Write) -> Result<()> {
    let path = cli.site_path()?;
    let site = crate::site_file::load(&path)?;
    for w in site.exit_warnings() {
        writeln!(out, "warning: {w}")?;
    }
    writeln!(
        out,
        "{}: {} ({}), {} floors, {} zones, {} rooms, {} doors, {} plans, {} leases, {} holidays",
        path.display(),
        site.name,
        site.timezone,
        site.floors.len(),
        site.zones.len(),
        site.rooms.len(),
        site.doors.len(),
        site.plans.len(),
        site.leases.len(),
        site.holidays.len()
    )?;
    let mut unreachable = Vec::new();
    for (i, r) in site.rooms.iter().enumerate() {
        let way: Vec<String> = site
            .way(i)
            .iter()
            .map(|&d| site.doors[d].id.to_string())
            .collect();
        let reachable = site
            .way(i)
            .first()
            .is_some_and(|&d| site.doors[d].from.is_none());
        if !reachable && site.doors.iter().any(|d| d.into == r.id) {
            unreachable.push(r.id.to_string());
        }
        writeln!(
            out,
            "  {:<18} {:<11} cap {:>4}  way in: {}",
            r.id.to_string(),
            format!("{:?}", r.kind).to_lowercase(),
            r.capacity.map_or("-".into(), |c| c.to_string()),
            if way.is_empty() {
                "(no door)".into()
            } else {
                way.join(" > ")
            }
        )?;
    }
    if !unreachable.is_empty() {
        bail!(
            "no way in from outside leads to: {} (check the doors' from and into)",
            unreachable.join(", ")
        );
    }
    writeln!(out, "OK")?;
    Ok(())
}

fn member(cli: &Cli, c: &MemberCmd, out: &mut dyn Write, now: DateTime<Utc>) -> Result<()> {
    let mut ctx = open(cli, now)?;
    let mut erased = None;
    match c {
        MemberCmd::Add {
            id: mid,
            name,
            email,
            roles,
            plan,
            organisation,
            certifications,
            valid_from,
            valid_until,
        } => {
            if name.trim().is_empty() {
                bail!("a member needs a name");
            }
            let mut m = Member::new(id::<MemberId>("member", mid)?, name.trim());
            m.email = email
                .as_deref()
                .map(Email::parse)
                .transpose()
                .map_err(|e| anyhow!("{e}"))?;
            m.roles = roles.clone();
            m.plan = plan
                .as_deref()
                .map(|p| id::<PlanId>("plan", p))
                .transpose()?;
            m.organisation = organisation
                .as_deref()
                .map(|o| id::<OrgId>("organisation", o))
                .transpose()?;
            m.certifications = certifications
                .iter()
                .map(|c| id::<CertId>("certification", c))
                .collect::<Result<_>>()?;
            m.valid_from = valid_from
                .as_deref()
                .map(|t| parse_time(&ctx.site, t))
                .transpose()?;
            m.valid_until = valid_until
                .as_deref()
                .map(|t| parse_time(&ctx.site, t))
                .transpose()?;
            let mid = m.id;
            ctx.gateway.add_member(m, actor(), now)?;
            writeln!(out, "member {mid} added")?;
        }
        MemberCmd::Erase { id: mid, yes } => {
            let mid = MemberId::parse(mid).map_err(|e| anyhow!("member {mid:?}: {e}"))?;
            if !yes {
                bail!("erasing {mid} cannot be undone: add --yes (and take a backup first)");
            }
            let (pseudonym, n) = ctx.gateway.erase_member(mid, actor(), now)?;
            writeln!(
                out,
                "member {mid} erased; the log calls them {pseudonym} ({n} entries rewritten)"
            )?;
            erased = Some(mid);
        }
        MemberCmd::List => {
            let members = ctx.gateway.store().members()?;
            for m in &members {
                writeln!(
                    out,
                    "{:<20} {:<28} {:<10} plan {:<18} org {}",
                    m.id.to_string(),
                    m.name,
                    match m.status {
                        MemberStatus::Active => "active",
                        MemberStatus::Suspended { .. } => "suspended",
                    },
                    m.plan.map_or("-".into(), |p| p.to_string()),
                    m.organisation.map_or("-".into(), |o| o.to_string()),
                )?;
            }
            writeln!(out, "{} members", members.len())?;
        }
        MemberCmd::Show { id: mid } => {
            let mid = id::<MemberId>("member", mid)?;
            let m = ctx
                .gateway
                .store()
                .member(mid)?
                .ok_or_else(|| anyhow!("there is no member {mid}"))?;
            writeln!(out, "{} — {}", m.id, m.name)?;
            writeln!(
                out,
                "  e-mail:          {}",
                m.email.as_ref().map_or("-".into(), |e| e.to_string())
            )?;
            writeln!(
                out,
                "  status:          {}",
                match &m.status {
                    MemberStatus::Active => "active".to_string(),
                    MemberStatus::Suspended { reason } => format!("suspended ({reason})"),
                }
            )?;
            writeln!(
                out,
                "  valid:           {} to {}",
                m.valid_from.map_or("-".into(), |t| local(&ctx.site, t)),
                m.valid_until.map_or("-".into(), |t| local(&ctx.site, t))
            )?;
            writeln!(
                out,
                "  roles:           {}",
                if m.roles.is_empty() {
                    "-".into()
                } else {
                    format!("{:?}", m.roles).to_lowercase()
                }
            )?;
            writeln!(
                out,
                "  plan:            {}",
                m.plan.map_or("-".into(), |p| p.to_string())
            )?;
            writeln!(
                out,
                "  organisation:    {}",
                m.organisation.map_or("-".into(), |o| o.to_string())
            )?;
            writeln!(
                out,
                "  certifications:  {}",
                m.certifications
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            for c in ctx
                .gateway
                .store()
                .credentials()?
                .iter()
                .filter(|c| c.member == mid)
            {
                writeln!(
                    out,
                    "  credential:      {} issued {}{}",
                    c.credential,
                    local(&ctx.site, c.issued_at),
                    c.revoked_at.map_or(String::new(), |t| format!(
                        ", revoked {}",
                        local(&ctx.site, t)
                    ))
                )?;
            }
            for b in ctx
                .gateway
                .store()
                .bookings()?
                .iter()
                .filter(|b| b.people().any(|p| p == mid))
            {
                writeln!(out, "  booking:         {}", booking_line(&ctx.site, b))?;
            }
        }
        MemberCmd::Suspend { id: mid, reason } => {
            let mid = id::<MemberId>("member", mid)?;
            ctx.gateway
                .set_suspended(mid, Some(reason.clone()), actor(), now)?;
            writeln!(out, "member {mid} suspended")?;
        }
        MemberCmd::Resume { id: mid } => {
            let mid = id::<MemberId>("member", mid)?;
            ctx.gateway.set_suspended(mid, None, actor(), now)?;
            writeln!(out, "member {mid} resumed")?;
        }
    }
    if let Some(mid) = erased {
        drop(ctx);
        after_erasure(&cli.data_dir(), mid, out)?;
    }
    Ok(())
}

/// After an erasure: the store is written anew (sled keeps old versions of what it rewrote
/// in its files until it reuses the space: the erased name and e-mail would still be on the
/// card), and the older copies of the store beside it, which still hold them, are listed.
fn after_erasure(data: &std::path::Path, mid: MemberId, out: &mut dyn Write) -> Result<()> {
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let copy = data.with_file_name(format!(".{name}.compact.kbk"));
    let staged = data.with_file_name(format!(".{name}.compacting"));
    let old = data.with_file_name(format!(".{name}.before-compact"));
    let _ = std::fs::remove_dir_all(&staged);
    if old.exists() {
        bail!(
            "{} is there: an earlier rewrite stopped half-way and it may be the only copy of the store; if {} is missing or empty, move it back, then erase again",
            old.display(),
            data.display()
        );
    }
    let rewritten = (|| -> Result<u64> {
        {
            let s = SledStore::open(data)?;
            crate::service::write_backup(&s, &copy).map_err(|e| anyhow!(e))?;
        }
        let mut input = std::io::BufReader::new(std::fs::File::open(&copy)?);
        let n = SledStore::restore(&staged, &mut input)?;
        drop(SledStore::open(&staged)?);
        // The new store belongs to whoever owned the old one (the gateway's user, when the
        // command runs as root), with the same mode.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(data)?;
            std::fs::set_permissions(&staged, meta.permissions())?;
            let mut todo = vec![staged.clone()];
            while let Some(p) = todo.pop() {
                std::os::unix::fs::chown(&p, Some(meta.uid()), Some(meta.gid()))?;
                if p.is_dir() {
                    todo.extend(std::fs::read_dir(&p)?.flatten().map(|e| e.path()));
                }
            }
        }
        // What is not the store's own (the spool, the disk reserve) moves along.
        for extra in ["spool", "reserve"] {
            let from = data.join(extra);
            if from.exists() {
                std::fs::rename(&from, staged.join(extra))?;
            }
        }
        std::fs::rename(data, &old)?;
        if let Err(e) = std::fs::rename(&staged, data) {
            // Put the store back as it was (erased, not yet rewritten).
            std::fs::rename(&old, data)?;
            return Err(e.into());
        }
        std::fs::remove_dir_all(&old)?;
        Ok(n)
    })();
    let _ = std::fs::remove_file(&copy);
    let _ = std::fs::remove_dir_all(&staged);
    match rewritten {
        Ok(n) => writeln!(
            out,
            "the store was written anew ({n} records): nothing of {mid} is left in its files"
        )?,
        Err(e) => writeln!(
            out,
            "the store could not be written anew ({e:#}): its files may still hold {mid}'s old details until sled reuses the space"
        )?,
    }
    // Older copies beside the store: restores kept, migrations' backups.
    let dir = data.parent().unwrap_or(std::path::Path::new("."));
    let mut older: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let n = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    n.starts_with(&format!("{name}.before-restore-"))
                        || (n.starts_with(&format!("{name}.schema-")) && n.ends_with(".backup"))
                })
                .collect()
        })
        .unwrap_or_default();
    // A migration's backup may also sit inside the data directory.
    if let Ok(rd) = std::fs::read_dir(data) {
        older.extend(rd.flatten().map(|e| e.path()).filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".backup"))
        }));
    }
    older.sort();
    if !older.is_empty() {
        writeln!(
            out,
            "these older copies still hold {mid}'s details; delete them (and the backups taken before today) to finish the erasure:"
        )?;
        for p in &older {
            writeln!(out, "  {}", p.display())?;
        }
    }
    Ok(())
}

fn card(cli: &Cli, c: &CardCmd, out: &mut dyn Write, now: DateTime<Utc>) -> Result<()> {
    let mut ctx = open(cli, now)?;
    match c {
        CardCmd::Add { member, credential } => {
            let mid = id::<MemberId>("member", member)?;
            let cred = credential.parse()?;
            ctx.gateway.add_credential(mid, cred, actor(), now)?;
            writeln!(out, "{cred} issued to {mid}")?;
        }
        CardCmd::Revoke { credential } => {
            let cred = credential.parse()?;
            ctx.gateway.revoke_credential(cred, actor(), now)?;
            writeln!(out, "{cred} revoked")?;
        }
    }
    Ok(())
}

fn booking_line(site: &Site, b: &Booking) -> String {
    let when = match b.window {
        Window::Timed { start, end } => format!("{} to {}", local(site, start), local(site, end)),
        Window::Days { arrival, departure } => format!("{arrival} to {departure} (days)"),
    };
    format!(
        "{:<24} {:<10} {:<16} {when}  {}{} {:?}",
        b.key.to_string(),
        format!("{:?}", b.kind).to_lowercase(),
        b.room.to_string(),
        b.people()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(","),
        if b.status == BookingStatus::Cancelled {
            " CANCELLED"
        } else {
            ""
        },
        b.title,
    )
}

fn booking(cli: &Cli, c: &BookingCmd, out: &mut dyn Write, now: DateTime<Utc>) -> Result<()> {
    let mut ctx = open(cli, now)?;
    match c {
        BookingCmd::Add {
            room,
            kind,
            start,
            end,
            arrival,
            departure,
            organiser,
            attendees,
            title,
            source,
            id: ext,
        } => {
            let window = match (start, end, arrival, departure) {
                (Some(s), Some(e), None, None) => Window::Timed {
                    start: parse_time(&ctx.site, s)?,
                    end: parse_time(&ctx.site, e)?,
                },
                (None, None, Some(a), Some(d)) => Window::Days {
                    arrival: parse_day(a)?,
                    departure: parse_day(d)?,
                },
                _ => bail!("give --start and --end (meetings, events, guest passes) or --arrival and --departure (stays)"),
            };
            let ext = match ext {
                Some(e) => ExternalId::parse(e).map_err(|e| anyhow!("--id: {e}"))?,
                None => ExternalId::parse(&format!("cli-{}", now.timestamp_micros()))
                    .map_err(|e| anyhow!("{e}"))?,
            };
            let b = Booking {
                key: BookingKey {
                    source: id::<SourceId>("source", source)?,
                    external_id: ext,
                },
                room: id::<RoomId>("room", room)?,
                kind: *kind,
                title: title.clone(),
                organiser: organiser
                    .as_deref()
                    .map(|o| id::<MemberId>("organiser", o))
                    .transpose()?,
                attendees: attendees
                    .iter()
                    .map(|a| id::<MemberId>("attendee", a))
                    .collect::<Result<_>>()?,
                window,
                status: BookingStatus::Confirmed,
            };
            let key = b.key.clone();
            ctx.gateway.upsert_booking(b, actor(), now)?;
            writeln!(out, "booking {key} saved")?;
        }
        BookingCmd::List { room, all } => {
            let room = room
                .as_deref()
                .map(|r| id::<RoomId>("room", r))
                .transpose()?;
            let mut n = 0;
            for b in ctx.gateway.store().bookings()? {
                if room.is_some_and(|r| r != b.room)
                    || (!all && b.status == BookingStatus::Cancelled)
                {
                    continue;
                }
                n += 1;
                writeln!(out, "{}", booking_line(&ctx.site, &b))?;
            }
            writeln!(out, "{n} bookings")?;
        }
        BookingCmd::Cancel { source, id: ext } => {
            let key = BookingKey {
                source: id::<SourceId>("source", source)?,
                external_id: ExternalId::parse(ext).map_err(|e| anyhow!("--id: {e}"))?,
            };
            ctx.gateway.cancel_booking(&key, actor(), now)?;
            writeln!(out, "booking {key} cancelled")?;
        }
    }
    Ok(())
}
