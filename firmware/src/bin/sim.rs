//! `kombinat-sim`: the Kherson Centre simulated, door nodes, sensor nodes and people, over MQTT
//! to a running gateway.
//!
//! ```text
//! kombinat-sim seed --site deploy/site.example.toml --out day/ [--seed 7] [--speed 60] [--start 07:30]
//!   # then, on the gateway (stopped): kombinat import members day/members.csv,
//!   # kombinat import bookings day/bookings.csv --source sim, and for each line of
//!   # day/devices.csv: kombinat device add ID --kind K --door D | --room R --key KEY
//! kombinat-sim run --site deploy/site.example.toml --day day/ --mqtt 127.0.0.1:1883 [--for 600]
//! ```

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use kombinat_firmware::mqtt::LinkConfig;
use kombinat_firmware::sim::{Building, DayFile, Population, SimConfig, World};

#[derive(Parser)]
#[command(
    name = "kombinat-sim",
    version,
    about = "Simulates the Centre's doors, sensors and people"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Draws a day and writes what the gateway must import (members, bookings, devices).
    Seed {
        /// The site file.
        #[arg(long)]
        site: PathBuf,
        /// Where to write the files.
        #[arg(long)]
        out: PathBuf,
        /// The seed of the day.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 60.0)]
        speed: f64,
        /// Simulated time of day at the start, HH:MM.
        #[arg(long, default_value = "07:30")]
        start: String,
    },
    /// Runs the day drawn by `seed` against a gateway.
    Run {
        /// The site file.
        #[arg(long)]
        site: PathBuf,
        /// The directory `seed` wrote.
        #[arg(long)]
        day: PathBuf,
        /// The gateway's broker, HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:1883")]
        mqtt: String,
        /// Stop after this many real seconds (default: Ctrl-C).
        #[arg(long = "for")]
        run_for: Option<u64>,
    },
}

fn minutes(hhmm: &str) -> Result<u32> {
    let (h, m) = hhmm
        .split_once(':')
        .ok_or_else(|| anyhow!("--start is HH:MM"))?;
    let (h, m): (u32, u32) = (h.parse()?, m.parse()?);
    if h > 23 || m > 59 {
        bail!("--start is HH:MM within a day");
    }
    Ok(h * 60 + m)
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Args::parse().cmd {
        Cmd::Seed {
            site,
            out,
            seed,
            speed,
            start,
        } => {
            if !(1.0..=3_600.0).contains(&speed) {
                bail!("--speed is 1 to 3600");
            }
            let b = Building::load(&site).map_err(|e| anyhow!(e))?;
            let day = DayFile {
                seed,
                real_start: SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64(),
                start_min: minutes(&start)?,
                speed,
                midnight: None,
            };
            let pop = Population::generate(&b, seed, day.clock());
            pop.write_csv(&out, b.timezone)
                .with_context(|| format!("writing {}", out.display()))?;
            std::fs::write(out.join("day.toml"), toml::to_string(&day)?)?;
            println!(
                "{} members, {} bookings, {} devices written to {}",
                pop.members.len(),
                pop.bookings.len(),
                pop.devices.len(),
                out.display()
            );
            Ok(())
        }
        Cmd::Run {
            site,
            day,
            mqtt,
            run_for,
        } => {
            let b = Building::load(&site).map_err(|e| anyhow!(e))?;
            let text = std::fs::read_to_string(day.join("day.toml"))
                .with_context(|| format!("{}: run `kombinat-sim seed` first", day.display()))?;
            let d: DayFile = toml::from_str(&text)?;
            let (host, port) = mqtt
                .rsplit_once(':')
                .ok_or_else(|| anyhow!("--mqtt is HOST:PORT"))?;
            let cfg = SimConfig {
                link: LinkConfig::new(host, port.parse()?),
                speed: d.speed,
                start_min: d.start_min,
                seed: d.seed,
            };
            let pop = Population::generate(&b, d.seed, d.clock());
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt.block_on(async {
                let mut world = World::start(cfg, &b, &pop, d.clock()).map_err(|e| anyhow!(e))?;
                let stop = async {
                    match run_for {
                        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                        None => {
                            let _ = tokio::signal::ctrl_c().await;
                        }
                    }
                };
                Ok::<_, anyhow::Error>(world.run(stop).await)
            })?;
            println!(
                "taps {} (granted {}, refused {}, offline {}), exits {}, trips {}, errands given up {}",
                report.taps,
                report.granted,
                report.denied,
                report.offline,
                report.exits,
                report.trips,
                report.gave_up
            );
            Ok(())
        }
    }
}
