//! `disk_bytes_per_day`: what the gateway writes to disk in a busy day of the Centre. The demo's
//! day (265 people, 62 door and sensor nodes, from 07:30 to 23:00 simulated) runs through the
//! embedded broker at a speed-up, then the building stays connected and idle (the night: nodes
//! heartbeating, nobody moving) for a while. Writes are the process's `write_bytes` from `/proc/self/io` (the simulated nodes write
//! nothing). The day's activity is what the busy phase wrote beyond the idle rate; a real day is
//! that activity plus the idle rate over 24 hours. (History buckets of occupied rooms are written
//! once a second, so a compressed day writes fewer of them: the idle phase has rooms still
//! occupied by the evening's guests, which counts some of that back.)
//!
//! `cargo bench -p kombinat-gateway --bench day` (full: 120x, 30 s idle), `-- --quick` (CI: 1800x).

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::logs;
use kombinat_firmware::mqtt::LinkConfig;
use kombinat_firmware::sim::{Building, Population, SimClock, SimConfig, World};

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

fn main() {
    logs();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let (speed, idle_s) = if quick { (1_800.0, 20) } else { (120.0, 60) };
    let (start_min, end_min) = (450u32, 1_380u32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let text = kombinat::demo::site_text();
    let site_file = dir.path().join("site.toml");
    std::fs::write(&site_file, &text).unwrap();
    let building = Building::parse(&text).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let clock = SimClock {
        real_start: now + 5.0,
        start_min,
        speed,
    };
    let pop = Population::generate(&building, 7, clock);
    kombinat::demo::seed(&site_file, &data, &pop, building.timezone).unwrap();
    let config = kombinat::config::Config::parse(
        &format!(
            "site = {:?}\ndata = {:?}\n[mqtt]\nbroker = \"embedded\"\nlisten = \"127.0.0.1:0\"\n[occupancy]\nno_show_after_min = 1\n",
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
        // The day, until 23:00 simulated; then the night: everyone home, the nodes still
        // connected (heartbeats, door states, status), for `idle_s`.
        let day_real = f64::from(end_min - start_min) * 60.0 / speed;
        let until = clock.real_start + day_real;
        let w0 = written();
        let t0 = Instant::now();
        let mut mid = None;
        let report = world
            .run(async {
                let left = until
                    - SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_secs_f64();
                tokio::time::sleep(Duration::from_secs_f64(left.max(0.0))).await;
                mid = Some((written(), Instant::now()));
                tokio::time::sleep(Duration::from_secs(idle_s)).await;
            })
            .await;
        let (w1, t1) = mid.unwrap();
        let day_s = t1.duration_since(t0).as_secs_f64();
        let day_bytes = w1 - w0;
        let idle_rate = (written() - w1) as f64 / t1.elapsed().as_secs_f64();
        drop(world);
        gw.stop().await.unwrap();
        let activity = (day_bytes as f64 - idle_rate * day_s).max(0.0);
        let per_day = activity + idle_rate * 86_400.0;
        eprintln!(
            "day: {} taps ({} granted), {} trips in {day_s:.0} s at {speed}x; {:.2} MB written, of it {:.2} MB beyond the idle rate of {:.0} bytes/s",
            report.taps,
            report.granted,
            report.trips,
            day_bytes as f64 / 1e6,
            activity / 1e6,
            idle_rate
        );
        println!("bench: disk_bytes_per_day {:.1} MB", per_day / 1e6);
        println!("bench: disk_idle_rate {:.0} bytes_per_s", idle_rate);
    });
}
