//! `disk_bytes_per_day`: what the gateway writes to disk in a day of the Centre. The demo's
//! building (265 people, 62 door and sensor nodes) runs through the embedded broker; writes are
//! the process's `write_bytes` from `/proc/self/io` (the simulated nodes and the broker write
//! nothing; the pages the store dirties, so a small synced write counts a whole page).
//!
//! A day compressed by a speed-up has its taps in fewer real seconds, while the gateway's
//! periodic writes (head counts, counters, history buckets, the store's flush) go by real time.
//! And the simulated people manage fewer trips the faster their day goes (702 taps at 240x,
//! 1,041 at 120x), so the two runs are not the same day either. So the busy day (07:30 to 23:00)
//! runs twice, at two speed-ups, and each run's bytes are taken as `per tap × taps + periodic ×
//! its real seconds`: two equations for the two costs (each at least 0). The night is measured as
//! it is, at 1x from 03:00 with the nodes connected and nobody about. A day is then the slower
//! run's taps at their cost, the periodic rate over the 15.5 busy hours and the night's rate over
//! the other 8.5. Neither window holds a 10-minute store of the device counters; a real day has
//! 144 of them (a few KB each).
//!
//! `cargo bench -p kombinat-gateway --bench day` (full: 240x and 120x, a 5-minute night),
//! `-- --quick` (CI: 1,800x and 900x, a 30 s night).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::logs;
use kombinat_firmware::mqtt::LinkConfig;
use kombinat_firmware::sim::{Building, Population, SimClock, SimConfig, SimReport, World};

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
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let text = kombinat::demo::site_text();
    let site_file = dir.path().join("site.toml");
    std::fs::write(&site_file, &text).unwrap();
    let building = Building::parse(&text).unwrap();
    // The nodes connect and report in before the building's clock starts.
    let settle = 10.0;
    let clock = SimClock {
        real_start: unix_now() + settle,
        start_min,
        speed,
    };
    let pop = Population::generate(&building, 7, clock);
    kombinat::demo::seed(&site_file, &data, &pop, building.timezone).unwrap();
    let config = kombinat::config::Config::parse(
        &format!(
            "site = {:?}\ndata = {:?}\n[mqtt]\nbroker = \"embedded\"\nlisten = \"127.0.0.1:0\"\n",
            site_file.display().to_string(),
            data.display().to_string()
        ),
        dir.path(),
    )
    .unwrap();
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
        let mut measured = None;
        let report = world
            .run(async {
                let wait = clock.real_start - unix_now();
                tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
                let (w0, t0) = (written(), std::time::Instant::now());
                tokio::time::sleep(Duration::from_secs_f64(real_s)).await;
                measured = Some((written() - w0, t0.elapsed().as_secs_f64()));
            })
            .await;
        assert_eq!(
            world.connected(),
            world.nodes(),
            "every node stayed connected"
        );
        drop(world);
        gw.stop().await.unwrap();
        let (bytes, real_s) = measured.unwrap();
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
    let (fast, slow, night_s) = if quick {
        (1_800.0, 900.0, 30.0)
    } else {
        (240.0, 120.0, 300.0)
    };
    let (start_min, end_min) = (450u32, 1_380u32);
    let busy_s = f64::from(end_min - start_min) * 60.0;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let days: Vec<(f64, Run)> = [fast, slow]
        .into_iter()
        .map(|speed| (speed, run(&rt, speed, start_min, busy_s / speed)))
        .collect();
    for (speed, d) in &days {
        eprintln!(
            "day at {speed}x: {} taps ({} granted), {} trips in {:.0} s; {:.2} MB written",
            d.report.taps,
            d.report.granted,
            d.report.trips,
            d.real_s,
            d.bytes as f64 / 1e6
        );
    }
    let night = run(&rt, 1.0, 180, night_s);
    let night_rate = night.bytes as f64 / night.real_s;
    eprintln!(
        "night at 1x from 03:00: {} taps in {:.0} s; {:.3} MB written, {night_rate:.0} bytes/s",
        night.report.taps,
        night.real_s,
        night.bytes as f64 / 1e6
    );
    // bytes = per_tap × taps + periodic × seconds, for each run (Cramer's rule), each cost at
    // least 0 (with the other then from the slower run alone).
    let (a, b) = (&days[0].1, &days[1].1);
    let (ta, tb) = (a.report.taps as f64, b.report.taps as f64);
    let (ba, bb) = (a.bytes as f64, b.bytes as f64);
    let det = ta * b.real_s - tb * a.real_s;
    let (mut per_tap, mut periodic) = if det.abs() > f64::EPSILON {
        (
            (ba * b.real_s - bb * a.real_s) / det,
            (ta * bb - tb * ba) / det,
        )
    } else {
        (0.0, bb / b.real_s)
    };
    if periodic < 0.0 {
        (per_tap, periodic) = (bb / tb.max(1.0), 0.0);
    } else if per_tap < 0.0 {
        (per_tap, periodic) = (0.0, bb / b.real_s);
    }
    let per_day = per_tap * tb + periodic * busy_s + night_rate * (86_400.0 - busy_s);
    eprintln!(
        "a day: {tb:.0} taps at {:.1} KB each ({:.1} MB), {periodic:.0} bytes/s while the building is busy ({:.1} MB over {:.1} h), {:.1} MB of night",
        per_tap / 1e3,
        per_tap * tb / 1e6,
        periodic * busy_s / 1e6,
        busy_s / 3_600.0,
        night_rate * (86_400.0 - busy_s) / 1e6
    );
    println!("bench: disk_bytes_per_day {:.1} MB", per_day / 1e6);
    println!("bench: disk_bytes_per_tap {per_tap:.0} bytes");
    println!("bench: disk_busy_rate {periodic:.0} bytes_per_s");
    println!("bench: disk_idle_rate {night_rate:.0} bytes_per_s");
}
