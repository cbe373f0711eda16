//! `disk_bytes_per_day`: what the gateway writes to disk in a day of the Centre. The demo's
//! building (265 people, 62 door and sensor nodes) runs through the embedded broker; writes are
//! the process's `write_bytes` from `/proc/self/io` (the simulated nodes and the broker write
//! nothing; the pages the store dirties, so a small synced write counts a whole page).
//!
//! A day compressed by a speed-up is not a day's writes: its taps come in fewer real seconds,
//! the gateway's periodic writes (head counts, counters, history buckets, the store's flush) go
//! by real time, and the simulated people manage fewer trips the faster their day goes (702 taps
//! at 240x, 1,041 at 120x). So the day is sampled at 1x, as it is: four windows of the busy day
//! (08:30, 11:30, 14:30 and 18:30, the building peopled as the simulated day has it by then, the
//! nodes connected) and one of the night (03:00). A day is the busy windows' mean rate over the
//! 15.5 hours from 07:30 to 23:00 and the night's rate over the other 8.5.
//!
//! `cargo bench -p kombinat-gateway --bench day` (full: windows of 5 minutes), `-- --quick` (CI:
//! 20 s).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::logs;
use kombinat_firmware::mqtt::LinkConfig;
use kombinat_firmware::sim::{SimConfig, SimReport, World};

fn written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// What one run wrote, in how many real seconds, and what the building did.
struct Run {
    bytes: u64,
    real_s: f64,
    report: SimReport,
}

/// A fresh gateway and building from `start_min` (minutes after midnight, the building's time)
/// at `speed`, measured for `real_s` seconds once the nodes have connected and settled.
fn run(rt: &tokio::runtime::Runtime, speed: f64, start_min: u32, real_s: f64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    // The nodes connect and report in before the building's clock starts.
    let day = kombinat::demo::prepare_day(dir.path(), 7, start_min, speed, 10.0).unwrap();
    let (building, pop, clock, config) = (day.building, day.pop, day.clock, day.config);
    rt.block_on(async {
        let gw = kombinat::service::start(config).await.unwrap();
        assert!(gw.ready(Duration::from_secs(30)).await);
        let sim = SimConfig {
            link: LinkConfig::new("127.0.0.1", gw.mqtt_addr.port()),
            speed,
            start_min,
            seed: 7,
        };
        let mut world = World::start(sim, &building, &pop, clock).unwrap();
        // The building steps on its own clock; the measurement starts with its day.
        async fn step_for(world: &mut World<'_>, d: Duration) {
            let end = std::time::Instant::now() + d;
            while std::time::Instant::now() < end {
                world.step();
                tokio::time::sleep(kombinat_firmware::sim::world::STEP).await;
            }
        }
        let wait = clock.real_start - unix_now();
        step_for(&mut world, Duration::from_secs_f64(wait.max(0.0))).await;
        let (w0, t0) = (written(), std::time::Instant::now());
        step_for(&mut world, Duration::from_secs_f64(real_s)).await;
        let (bytes, real_s) = (written() - w0, t0.elapsed().as_secs_f64());
        // Before the nodes say goodbye (`run` ends with it, and a node that has said it is no
        // longer connected).
        assert_eq!(
            world.connected(),
            world.nodes(),
            "every node stayed connected"
        );
        let report = world.run(std::future::ready(())).await;
        drop(world);
        gw.stop().await.unwrap();
        Run {
            bytes,
            real_s,
            report,
        }
    })
}

fn main() {
    logs();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let window_s = if quick { 20.0 } else { 300.0 };
    let busy_s = f64::from(1_380 - 450) * 60.0;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rates = Vec::new();
    for at in [510u32, 690, 870, 1_110] {
        let w = run(&rt, 1.0, at, window_s);
        let rate = w.bytes as f64 / w.real_s;
        eprintln!(
            "day from {:02}:{:02} at 1x: {} taps ({} granted) in {:.0} s; {:.3} MB written, {rate:.0} bytes/s",
            at / 60,
            at % 60,
            w.report.taps,
            w.report.granted,
            w.real_s,
            w.bytes as f64 / 1e6
        );
        rates.push(rate);
    }
    let busy_rate = rates.iter().sum::<f64>() / rates.len() as f64;
    let night = run(&rt, 1.0, 180, window_s);
    let night_rate = night.bytes as f64 / night.real_s;
    eprintln!(
        "night from 03:00 at 1x: {} taps in {:.0} s; {:.3} MB written, {night_rate:.0} bytes/s",
        night.report.taps,
        night.real_s,
        night.bytes as f64 / 1e6
    );
    let per_day = busy_rate * busy_s + night_rate * (86_400.0 - busy_s);
    eprintln!(
        "a day: {:.1} MB over the {:.1} busy hours, {:.1} MB of night",
        busy_rate * busy_s / 1e6,
        busy_s / 3_600.0,
        night_rate * (86_400.0 - busy_s) / 1e6
    );
    println!("bench: disk_bytes_per_day {:.1} MB", per_day / 1e6);
    println!("bench: disk_busy_rate {busy_rate:.0} bytes_per_s");
    println!("bench: disk_idle_rate {night_rate:.0} bytes_per_s");
}
