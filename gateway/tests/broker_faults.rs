//! Broker faults under load, through mosquitto: the broker killed and started again while the
//! simulated building runs (3 times here, `KOMBINAT_BROKER_RESTARTS=20` for the full run), and
//! one door node cut off from the broker for a while (20 s here, `KOMBINAT_CUT_OFF_S=180` for
//! minutes). Every decision a door acted on, whether the gateway's or the node's own, must be
//! in the audit log exactly once. Prints the reconnect times (p50, max) and
//! `bench: broker_restart_lost_taps N`.

mod support;

use std::time::{Duration, Instant};

use kombinat_firmware::mqtt::LinkConfig;
use kombinat_firmware::sim::{SimConfig, World};
use support::*;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn quantiles(mut v: Vec<Duration>) -> (u128, u128) {
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    (v[v.len() / 2].as_millis(), v[v.len() - 1].as_millis())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarts_and_a_door_cut_off_lose_no_tap() {
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    let restarts: u32 = env_or("KOMBINAT_BROKER_RESTARTS", 3);
    let cut_off_s: u64 = env_or("KOMBINAT_CUT_OFF_S", 20);
    let seed: u64 = env_or("KOMBINAT_FAULT_SEED", 13);
    let dir = tempfile::tempdir().unwrap();
    let day = SimDay::prepare(dir.path(), seed, 60.0, 8 * 60 + 30, 20.0, |t| t);
    let password = day.viewer("watcher");
    let http = free_port();
    let base = format!("http://127.0.0.1:{http}");
    let mut gw = GatewayProcess::start(dir.path(), &day.site, &day.data, &broker.url(), http);
    let mut world = World::start(
        SimConfig {
            link: LinkConfig::new("127.0.0.1", broker.port),
            speed: day.clock.speed,
            start_min: day.clock.start_min,
            seed,
        },
        &day.building,
        &day.pop,
        day.clock,
    )
    .unwrap();
    until_healthy(&mut world, &base).await;
    let cookie = sign_in(&base, "watcher", &password);
    let ahead = day.clock.real_start
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
    drive(&mut world, Duration::from_secs_f64(ahead.max(0.0) + 5.0)).await;
    assert_eq!(world.connected(), world.nodes(), "every node connected");

    // One door node cut off from the broker, the building busy around it.
    let doors = world.doors();
    // The busiest door so far.
    let so_far = world.report().decided;
    let cut = (0..doors.len())
        .max_by_key(|&i| so_far.iter().filter(|d| d.0 == doors[i]).count())
        .unwrap();
    let before_cut = world.report().decided.len();
    world.cut_off(cut, true);
    drive(&mut world, Duration::from_secs(cut_off_s)).await;
    let alone = world.report().decided[before_cut..]
        .iter()
        .filter(|d| d.0 == doors[cut] && d.2)
        .count();
    world.cut_off(cut, false);
    println!(
        "door {} cut off for {cut_off_s} s: {alone} taps decided by the node alone",
        doors[cut]
    );

    let mut rng = kombinat_firmware::sim::population::Rng::new(seed);
    let mut gateway_back = Vec::new();
    let mut nodes_back = Vec::new();
    for cycle in 0..restarts {
        drive(
            &mut world,
            Duration::from_millis(u64::from(rng.range(2_000, 6_000))),
        )
        .await;
        broker.kill();
        // The gateway sees the broker gone (health says so) before it comes back.
        let deadline = Instant::now() + Duration::from_secs(20);
        while healthy(&base) {
            assert!(
                Instant::now() < deadline,
                "/health still 200 without a broker"
            );
            drive(&mut world, Duration::from_millis(50)).await;
        }
        drive(
            &mut world,
            Duration::from_millis(u64::from(rng.range(200, 2_000))),
        )
        .await;
        broker.start_again();
        let back = Instant::now();
        let mut gateway_at = None;
        let mut nodes_at = None;
        while gateway_at.is_none() || nodes_at.is_none() {
            assert!(
                back.elapsed() < Duration::from_secs(60),
                "everything reconnected within 60 s (gateway {gateway_at:?}, nodes {} of {})",
                world.connected(),
                world.nodes()
            );
            if gateway_at.is_none() && healthy(&base) {
                gateway_at = Some(back.elapsed());
            }
            if nodes_at.is_none() && world.connected() == world.nodes() {
                nodes_at = Some(back.elapsed());
            }
            drive(&mut world, Duration::from_millis(50)).await;
        }
        println!(
            "restart {cycle}: the gateway back in {:?}, every node in {:?}",
            gateway_at.unwrap(),
            nodes_at.unwrap()
        );
        gateway_back.extend(gateway_at);
        nodes_back.extend(nodes_at);
    }
    // Everything the nodes decided alone goes up and is acknowledged.
    let deadline = Instant::now() + Duration::from_secs(60);
    while world.offline_unacknowledged() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} offline decisions still not acknowledged",
            world.offline_unacknowledged()
        );
        drive(&mut world, Duration::from_millis(200)).await;
    }
    drive(&mut world, Duration::from_secs(2)).await;
    let (people, online) = building_now(&base, &cookie);
    let report = world.report();
    assert!(
        gw.terminate(Duration::from_secs(15)),
        "exits cleanly on SIGTERM"
    );
    let logged = logged_taps(&day.data);
    let (found, lost, twice) = hold_against_log(&report.decided, &logged);
    let offline = report.decided.iter().filter(|d| d.2).count();
    let (g50, gmax) = quantiles(gateway_back);
    let (n50, nmax) = quantiles(nodes_back);
    println!(
        "broker faults: {restarts} restarts (seed {seed}); taps the doors decided {} ({offline} alone), logged once {found}, lost {}, logged twice {}; {people} people counted and {online} doors online at the end",
        report.decided.len(),
        lost.len(),
        twice.len()
    );
    println!("bench: broker_reconnect_p50 {g50} ms");
    println!("bench: broker_reconnect_max {gmax} ms");
    println!("bench: nodes_reconnect_p50 {n50} ms");
    println!("bench: nodes_reconnect_max {nmax} ms");
    println!(
        "bench: broker_restart_lost_taps {}",
        lost.len() + twice.len()
    );
    assert!(alone > 0, "the cut-off door decided alone");
    assert!(
        report.decided.len() >= 20,
        "the doors were busy: {report:?}"
    );
    assert!(lost.is_empty(), "taps the log lacks: {lost:?}");
    assert!(twice.is_empty(), "taps logged twice: {twice:?}");
}
