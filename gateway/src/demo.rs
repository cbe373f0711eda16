//! `kombinat demo`: the whole thing on one machine. The embedded broker, the gateway with the
//! Kherson Centre's site, a day's members, plans, leases, bookings and hostel stays drawn by the
//! simulator, and the simulator itself (a door node per reader, a sensor node per room where
//! people gather, the Centre's people walking their day) at a speed-up; the HTTP API on
//! 127.0.0.1:8080. Data goes to a temporary directory unless `--data` is given.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use kombinat_firmware::mqtt::LinkConfig;
use kombinat_firmware::sim::{Building, Population, SimClock, SimConfig, World};

use crate::domain::{ApiToken, Device, DeviceId, DeviceKind, DoorId, RoomId, Scope, SourceId};
use crate::store::{Actor, SledStore, Store};

/// The example site, in the binary so the demo runs from anywhere.
const SITE: &str = include_str!("../../deploy/site.example.toml");

/// What `kombinat demo` was asked.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Keep the data here (else a temporary directory, removed at the end).
    pub data: Option<PathBuf>,
    /// Where the HTTP API listens (None: 127.0.0.1:8080, or a free port if that is taken).
    pub http: Option<SocketAddr>,
    /// Where the embedded broker listens (None: 127.0.0.1:1883, or a free port).
    pub mqtt: Option<SocketAddr>,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Simulated start, minutes after midnight.
    pub start_min: u32,
    /// The day's seed.
    pub seed: u64,
    /// Play an air-raid alert and a power cut this long after the start.
    pub drill: Option<std::time::Duration>,
}

/// Picks where to listen: an explicit address must be free; the default may be taken (mosquitto
/// often holds 1883), and then a free port is taken instead, and said.
fn pick(
    given: Option<SocketAddr>,
    default: &str,
    what: &str,
    out: &mut dyn Write,
) -> Result<SocketAddr> {
    if let Some(a) = given {
        if a.port() != 0 {
            TcpListener::bind(a).with_context(|| format!("--{what} {a} cannot be used"))?;
        }
        return Ok(a);
    }
    let d: SocketAddr = default
        .parse()
        .map_err(|_| anyhow!("bad default {default}"))?;
    if TcpListener::bind(d).is_ok() {
        return Ok(d);
    }
    let free = TcpListener::bind((d.ip(), 0))?.local_addr()?;
    writeln!(out, "{d} is taken (for the {what}); using {free} instead")?;
    Ok(free)
}

/// The example site as the demo runs it.
///
/// Without its off-the-shelf devices (`[[bindings]]`): the simulated building runs its own door
/// nodes at every door, those doors included, and nothing plays an esp-rfid reader, a Tasmota
/// relay or a Zigbee2MQTT sensor, which the dashboard would show as never heard from.
pub fn site_text() -> String {
    let mut out = String::with_capacity(SITE.len());
    let mut skipping = false;
    for line in SITE.lines() {
        let t = line.trim_start();
        if t.starts_with("[[bindings]]") {
            skipping = true;
            continue;
        }
        // A binding's table ends at the next table or section heading.
        if skipping && (t.starts_with('[') || t.starts_with("# ─")) {
            skipping = false;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The day the demo simulates: today on the site's calendar if the Centre works that day
/// (Monday to Friday, not one of the site file's holidays), else the next day it does. The
/// simulated people keep a working day's plans (day passes valid Monday to Friday, tenants at
/// their desks, a conference): on a Saturday the doors refused the day passes at the kitchen
/// and the coworking floor, and the figures measured against the simulation depended on the day
/// they were run.
pub fn working_day(
    now: chrono::DateTime<Utc>,
    tz: chrono_tz::Tz,
    holidays: &std::collections::BTreeSet<chrono::NaiveDate>,
) -> chrono::NaiveDate {
    use chrono::Datelike;
    let mut day = now.with_timezone(&tz).date_naive();
    // A year holds fewer holidays and weekends in a row than this.
    for _ in 0..366 {
        let weekend = matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
        if !weekend && !holidays.contains(&day) {
            break;
        }
        day = day.succ_opt().unwrap_or(day);
    }
    day
}

/// The simulated day as the banner names it: "today, Friday 4 December", or "Monday 7 December,
/// the next working day".
fn simulated_day(clock: &SimClock, tz: chrono_tz::Tz) -> String {
    let at = chrono::DateTime::from_timestamp(clock.wall_unix(720.0), 0).unwrap_or_default();
    let day = at.with_timezone(&tz).date_naive();
    let name = day.format("%A %-d %B").to_string();
    if day == Utc::now().with_timezone(&tz).date_naive() {
        format!("today, {name}")
    } else {
        format!("{name}, the next working day")
    }
}

/// The simulated day's clock, and the gateway's that follows it: the simulated day starts at
/// `start_min` on [`working_day`] once `setup_s` real seconds have passed, and runs `speed`
/// times as fast as real time. The dashboard, the log and the bookings all read it: at 11:30 on
/// the simulated day the dashboard says 11:30, and an hour's meeting lasts an hour.
pub fn clocks(
    tz: chrono_tz::Tz,
    holidays: &std::collections::BTreeSet<chrono::NaiveDate>,
    start_min: u32,
    speed: f64,
    setup_s: f64,
) -> (SimClock, crate::clock::Clock) {
    use chrono::TimeZone;
    let real_now = Utc::now();
    let real_start = real_now.timestamp_millis() as f64 / 1_000.0 + setup_s;
    let day = working_day(real_now, tz, holidays);
    // Noon of that day, whose local midnight is the simulated day's (noon is never skipped or
    // repeated when the clocks change).
    let noon = tz
        .from_local_datetime(&day.and_hms_opt(12, 0, 0).unwrap_or_default())
        .earliest()
        .map_or(real_now, |t| t.with_timezone(&Utc));
    let sim = SimClock {
        real_start,
        start_min,
        speed,
        midnight: Some(SimClock::local_midnight(noon, tz)),
    };
    let start = chrono::DateTime::from_timestamp(sim.wall_unix(f64::from(start_min)), 0)
        .unwrap_or(real_now);
    let at =
        chrono::DateTime::from_timestamp_millis((real_start * 1_000.0) as i64).unwrap_or(real_now);
    (sim, crate::clock::Clock::running(start, at, speed))
}

/// A simulated day made ready in a directory, as the demo makes it, for the benchmarks that run
/// one: see [`prepare_day`].
pub struct Day {
    pub building: Building,
    pub pop: Population,
    /// The simulated day's clock (the gateway's follows it: `config.clock`).
    pub clock: SimClock,
    /// The gateway on the embedded broker (any free port), its store seeded with the day.
    pub config: crate::config::Config,
}

/// The demo's building and a population from `seed` in `dir`: the site file written there,
/// members, bookings and devices seeded into `dir/data`, the day starting at `start_min` once
/// `settle_s` real seconds have passed (the nodes connect and report in first) and running
/// `speed` times as fast as real time.
pub fn prepare_day(
    dir: &Path,
    seed_no: u64,
    start_min: u32,
    speed: f64,
    settle_s: f64,
) -> Result<Day> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let text = site_text();
    let site_file = dir.join("site.toml");
    std::fs::write(&site_file, &text)?;
    let building = Building::parse(&text).map_err(|e| anyhow!(e))?;
    let holidays = crate::site_file::load(&site_file)?.holidays;
    let (clock, gateway_clock) = clocks(building.timezone, &holidays, start_min, speed, settle_s);
    let pop = Population::generate(&building, seed_no, clock);
    seed(
        &site_file,
        &data,
        &pop,
        building.timezone,
        gateway_clock.now(),
    )?;
    let mut config = crate::config::Config::parse(
        &format!(
            "site = {:?}\ndata = {:?}\n[mqtt]\nbroker = \"embedded\"\nlisten = \"127.0.0.1:0\"\n",
            site_file.display().to_string(),
            data.display().to_string()
        ),
        dir,
    )
    .map_err(|e| anyhow!(e))?;
    config.clock = gateway_clock;
    // The simulated day's clock is set on purpose, whatever the host's clock service says.
    config.clock_check = crate::clock_sync::ClockCheck::None;
    Ok(Day {
        building,
        pop,
        clock,
        config,
    })
}

/// Writes the day into the store: members and bookings through the importers, the devices, and a
/// token for the metrics and the bookings (returned, with the broker's read-only observer's
/// password).
pub fn seed(
    site_file: &Path,
    data: &Path,
    pop: &Population,
    tz: chrono_tz::Tz,
    now: chrono::DateTime<Utc>,
) -> Result<(String, String)> {
    let site = Arc::new(crate::site_file::load(site_file)?);
    let store: Arc<dyn Store> = Arc::new(SledStore::open(data)?);
    let mut g = crate::registry::Registry::open(site, store, now)?;
    let who = Actor::Cli("demo".into());
    let members = crate::import::read_members(g.snapshot(), pop.members_csv().as_bytes(), |_| {})?;
    if let Some(e) = members.errors.first() {
        bail!("the simulated members do not import: {e:?}");
    }
    g.import_members(
        members.rows.into_iter().map(|(_, r)| r).collect(),
        "the demo's members",
        who.clone(),
        now,
    )?;
    let source = SourceId::parse("sim").map_err(|e| anyhow!("{e}"))?;
    let bookings = crate::import::read_bookings(
        g.snapshot(),
        source,
        pop.bookings_csv(tz).as_bytes(),
        |_| {},
    )?;
    if let Some(e) = bookings.errors.first() {
        bail!("the simulated bookings do not import: {e:?}");
    }
    g.import_bookings(
        bookings.rows.into_iter().map(|(_, b)| b).collect(),
        "the demo's bookings",
        who.clone(),
        now,
    )?;
    let known: Vec<DeviceId> = g.store().devices()?.into_iter().map(|d| d.id).collect();
    for d in &pop.devices {
        if known.iter().any(|k| k.as_str() == d.id) {
            continue;
        }
        let (kind, door, room) = match (&d.door, &d.room) {
            (Some(door), _) => (DeviceKind::Door, Some(DoorId::parse(door)?), None),
            (_, Some(room)) => (DeviceKind::Sensor, None, Some(RoomId::parse(room)?)),
            _ => continue,
        };
        g.add_device(
            Device {
                id: DeviceId::parse(&d.id)?,
                kind,
                door,
                room,
                key: d.key.clone(),
                added_at: now,
            },
            who.clone(),
            now,
        )?;
    }
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| anyhow!("random bytes: {e}"))?;
    let token = format!(
        "kmb_demo_{}",
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    g.put_token(
        ApiToken {
            name: SourceId::parse("demo").map_err(|e| anyhow!("{e}"))?,
            sha256: crate::domain::token_hash(&token),
            scopes: vec![Scope::MetricsRead, Scope::BookingsRead],
            created_at: now,
            revoked_at: None,
        },
        who,
        now,
    )?;
    let secret = crate::mosquitto::binding_secret(g.store()).map_err(|e| anyhow!(e))?;
    let observer = crate::mosquitto::binding_password(&secret, crate::mosquitto::OBSERVER_USER);
    Ok((token, observer))
}

/// The demo's staff account.
pub const DEMO_STAFF: &str = "admin";

/// Makes the demo's admin account, or gives it a new password when it is there (a kept data
/// directory); returns the password.
pub fn staff_login(data: &Path, now: chrono::DateTime<Utc>) -> Result<String> {
    let store: Arc<dyn Store> = Arc::new(SledStore::open(data)?);
    let staff = crate::staff::Staff::load(store, now)?;
    let name = crate::staff::StaffName::parse(DEMO_STAFF).map_err(|e| anyhow!(e))?;
    let password = crate::staff::generate_password().map_err(|e| anyhow::anyhow!(e))?;
    let who = Actor::Cli("demo".into());
    if staff.accounts().iter().any(|a| a.name == name) {
        staff.update(&name, None, Some(&password), who, now)?;
    } else {
        staff.add(name, crate::staff::StaffRole::Admin, &password, who, now)?;
    }
    Ok(password)
}

/// Runs the demo until `stop` resolves.
pub async fn run(
    o: DemoOptions,
    out: &mut dyn Write,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    if !(1.0..=3_600.0).contains(&o.speed) {
        bail!("--speed is 1 to 3600");
    }
    let http = pick(o.http, "127.0.0.1:8080", "http", out)?;
    let mqtt = pick(o.mqtt, "127.0.0.1:1883", "mqtt", out)?;
    let (data, temporary) = match &o.data {
        Some(d) => (d.clone(), false),
        None => {
            let t = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
            (
                std::env::temp_dir().join(format!("kombinat-demo-{}-{t}", std::process::id())),
                true,
            )
        }
    };
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let text = site_text();
    let site_file = data.join("site.toml");
    std::fs::write(&site_file, &text)?;
    let building = Building::parse(&text).map_err(|e| anyhow!(e))?;
    let holidays = crate::site_file::load(&site_file)?.holidays;
    let (clock, gateway_clock) = clocks(building.timezone, &holidays, o.start_min, o.speed, 3.0);
    let pop = Population::generate(&building, o.seed, clock);
    // Seeded every time: members and devices already there stay, the bookings move to today.
    let ((token, observer), password) = {
        let (site_file, data, pop, tz) = (
            site_file.clone(),
            data.clone(),
            pop.clone(),
            building.timezone,
        );
        tokio::task::spawn_blocking(move || -> Result<((String, String), String)> {
            let now = gateway_clock.now();
            Ok((
                seed(&site_file, &data, &pop, tz, now)?,
                staff_login(&data, gateway_clock.session_now())?,
            ))
        })
        .await??
    };
    let token = Some(token);

    let config_text = format!(
        "site = {site:?}\ndata = {data:?}\n[mqtt]\nbroker = \"embedded\"\nlisten = \"{mqtt}\"\n[http]\nlisten = \"{http}\"\n",
        site = site_file.display().to_string(),
        data = data.display().to_string(),
    );
    let mut config = crate::config::Config::parse(&config_text, &data).map_err(|e| anyhow!(e))?;
    config.clock = gateway_clock;
    // The simulated day's clock is set on purpose, whatever the host's clock service says.
    config.clock_check = crate::clock_sync::ClockCheck::None;
    // The main entrance's node carries the siren relay on its alert contact, and the nodes'
    // batteries are watched with a shedding line (the drill shows both).
    config.alert_inputs = pop
        .devices
        .iter()
        .filter(|d| d.door.as_deref() == Some(kombinat_firmware::sim::DRILL_SIREN_DOOR))
        .filter_map(|d| d.id.parse().ok())
        .collect();
    config.power.shed_below_mv = Some(11_500);
    let gw = crate::service::start(config).await?;
    let http_addr = gw.http_addr.unwrap_or(http);
    writeln!(
        out,
        "Kombinat demo: the Kherson Centre, {} people, {} door nodes and sensor nodes, simulated at {}x from {:02}:{:02} on {}.",
        pop.people.len(),
        pop.devices.len(),
        o.speed,
        o.start_min / 60,
        o.start_min % 60,
        simulated_day(&clock, building.timezone)
    )?;
    writeln!(out, "  broker    mqtt://{} (embedded)", gw.mqtt_addr)?;
    writeln!(out, "  dashboard http://{http_addr}/")?;
    writeln!(
        out,
        "  sign in   {DEMO_STAFF} / {password}   (admin; made for this run)"
    )?;
    writeln!(out, "  health    http://{http_addr}/health")?;
    // The broker's read-only account: occupancy, status, mode (the doors' topics carry card
    // numbers, and no account but the gateway's and the door's own reads them).
    writeln!(
        out,
        "  watch     mosquitto_sub -h {} -p {} -u {} -P {observer} -t 'kombinat/v1/room/+/occupancy' -t 'kombinat/v1/device/+/status' -v",
        gw.mqtt_addr.ip(),
        gw.mqtt_addr.port(),
        crate::mosquitto::OBSERVER_USER,
    )?;
    if let Some(t) = &token {
        writeln!(
            out,
            "  metrics   curl -H 'Authorization: Bearer {t}' http://{http_addr}/metrics"
        )?;
        writeln!(out, "  token     {t}")?;
    }
    writeln!(
        out,
        "  data      {}{}",
        data.display(),
        if temporary {
            " (temporary: removed at the end; --data DIR keeps it)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "  devices   every door and sensor node is simulated; the example site's off-the-shelf devices (esp-rfid, Tasmota, Zigbee2MQTT) are left out, as nothing plays them"
    )?;
    if let Some(after) = o.drill {
        writeln!(
            out,
            "  drill     in {} s: an air-raid alert on the main entrance's siren contact (shelter mode, the roll-call) and a power cut (every door on battery, one shed) for {} s",
            after.as_secs(),
            kombinat_firmware::sim::DRILL_POWER_CUT.as_secs()
        )?;
    }
    writeln!(
        out,
        "Open the dashboard: the floor plan fills as people arrive; Ctrl-C stops."
    )?;
    out.flush()?;

    let sim = SimConfig {
        link: LinkConfig::new(gw.mqtt_addr.ip().to_string(), gw.mqtt_addr.port()),
        speed: o.speed,
        start_min: o.start_min,
        seed: o.seed,
    };
    let report = {
        let mut world = World::start(sim, &building, &pop, clock).map_err(|e| anyhow!(e))?;
        if let Some(after) = o.drill {
            world.drill_after(after);
        }
        world.run(stop).await
    };
    gw.stop().await?;
    writeln!(
        out,
        "stopped: {} taps ({} granted, {} refused, {} decided offline), {} trips",
        report.taps, report.granted, report.denied, report.offline, report.trips
    )?;
    if temporary {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_s_site_is_the_example_without_the_devices_it_does_not_simulate() {
        let example = crate::site_file::parse(super::SITE).unwrap();
        let demo = crate::site_file::parse(&super::site_text()).unwrap();
        assert!(!example.bindings.is_empty());
        assert!(demo.bindings.is_empty());
        assert_eq!(demo.rooms.len(), example.rooms.len());
        assert_eq!(demo.doors.len(), example.doors.len());
        assert_eq!(demo.feeds.len(), example.feeds.len());
        assert_eq!(demo.plans.len(), example.plans.len());
    }

    #[test]
    fn the_demo_simulates_a_day_the_centre_works() {
        use super::working_day;
        use chrono::{NaiveDate, TimeZone, Utc};
        let tz: chrono_tz::Tz = "Europe/Kyiv".parse().unwrap();
        let holidays = [NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()]
            .into_iter()
            .collect();
        let day = |y, m, d, h| {
            let at = Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap();
            working_day(at, tz, &holidays)
        };
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        // A Thursday is itself; Saturday and Sunday give Monday.
        assert_eq!(day(2026, 12, 3, 9), date(2026, 12, 3));
        assert_eq!(day(2026, 12, 5, 9), date(2026, 12, 7));
        assert_eq!(day(2026, 12, 6, 12), date(2026, 12, 7));
        // Friday 23:30 in Kyiv is already Saturday there (21:30 UTC Friday is 23:30 local).
        assert_eq!(day(2026, 12, 4, 21), date(2026, 12, 4));
        assert_eq!(day(2026, 12, 4, 22), date(2026, 12, 7));
        // Christmas (a holiday of the site) on a Friday: the Monday after.
        assert_eq!(day(2026, 12, 25, 9), date(2026, 12, 28));
    }
}
