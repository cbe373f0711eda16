//! The gateway killed with SIGKILL mid-run and started again, through mosquitto: every decision
//! a door received is in the audit log exactly once, and the replay counters survive.
//!
//! The simulated building run (the second test) is the crash test of the benchmarks: 5 cycles
//! here, `KOMBINAT_CRASH_CYCLES=50` for the full one (see BENCHMARKS.md); it prints
//! `bench: crash_lost_decisions N`.

mod support;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kombinat::store::{AuditEvent, SledStore, Store};
use kombinat_firmware::mqtt::LinkConfig;
use kombinat_firmware::sim::{SimConfig, World};
use support::*;

fn spawn_gateway(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kombinat"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills the child when dropped (a failed test leaves no gateway behind).
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends taps until one is answered or `tries` run out; records every decision seen.
async fn tap_until_answered(
    node: &mut DoorNode,
    received: &mut HashSet<u64>,
    tries: usize,
) -> bool {
    for _ in 0..tries {
        let t = node.tap(card(STAFF_CARD));
        node.send_tap(&t).await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(Some((topic, payload))) =
            tokio::time::timeout_at(deadline, node.rx.recv()).await
        {
            if !topic.ends_with("/decision") {
                continue;
            }
            let d: kombinat_protocol::door::Decision = serde_json::from_slice(&payload).unwrap();
            node.accept_from_gateway(&d);
            assert!(received.insert(d.tap), "tap {} answered twice", d.tap);
            if d.tap == t.counter {
                return true;
            }
        }
    }
    false
}

/// The two tests one at a time: each has deadlines a machine of two cores meets alone.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_a_door_received_survives_sigkill_exactly_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let cycles = if std::env::var_os("CI").is_some() {
        3
    } else {
        5
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data);
    let cfg = dir.path().join("kombinat.toml");
    std::fs::write(
        &cfg,
        format!(
            "site = {:?}\ndata = {:?}\n[mqtt]\nbroker = \"{}\"\nclient_id = \"gw-crash-{}\"\nkeep_alive_s = 5\n",
            site_path(),
            data,
            broker.url(),
            std::process::id()
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", broker.port).parse().unwrap();
    let mut node = DoorNode::connect(addr, "door-cowork", "d-cowork-in", key(1)).await;
    let mut received = HashSet::new();
    let mut gateway = Reaper(spawn_gateway(&cfg));
    for cycle in 0..cycles {
        assert!(
            tap_until_answered(&mut node, &mut received, 100).await,
            "answered in cycle {cycle}"
        );
        for _ in 0..(5 + cycle * 3) {
            tap_until_answered(&mut node, &mut received, 1).await;
        }
        // Kill it in the middle of a stream of taps.
        let t = node.tap(card(STAFF_CARD));
        node.send_tap(&t).await;
        gateway.0.kill().unwrap();
        gateway.0.wait().unwrap();
        // Taps while it is down wait in the broker's session for it.
        for _ in 0..3 {
            let t = node.tap(card(STAFF_CARD));
            node.send_tap(&t).await;
        }
        gateway = Reaper(spawn_gateway(&cfg));
    }
    assert!(tap_until_answered(&mut node, &mut received, 100).await);
    // A clean stop on SIGTERM.
    let pid = gateway.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = gateway.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit within 15 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exits cleanly on SIGTERM");

    let store = SledStore::open(&data).unwrap();
    let mut logged = HashSet::new();
    for r in store.audit_after(None, usize::MAX).unwrap() {
        if let AuditEvent::Decision { tap: Some(t), .. } = r.entry.event {
            assert!(logged.insert(t), "tap {t} logged twice");
        }
    }
    let lost: Vec<_> = received.difference(&logged).collect();
    println!(
        "crash test: {cycles} SIGKILL cycles, decisions received {}, found in the log {}, lost {}",
        received.len(),
        received.intersection(&logged).count(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "decisions a door received but the log lacks: {lost:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_building_through_sigkill_at_random_moments() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let cycles: u32 = std::env::var("KOMBINAT_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed = std::env::var("KOMBINAT_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11u64);
    let dir = tempfile::tempdir().unwrap();
    // A morning: people arriving, doors busy. The day starts once the imports are in.
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
    // Everyone connected, and the day under way.
    let ahead = day.clock.real_start
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
    drive(&mut world, Duration::from_secs_f64(ahead.max(0.0) + 5.0)).await;
    assert_eq!(world.connected(), world.nodes(), "every node connected");

    let mut rng = kombinat_firmware::sim::population::Rng::new(seed);
    let mut recoveries = Vec::new();
    for cycle in 0..cycles {
        // Up long enough for the head counts to have been stored (every 5 s when they change).
        drive(
            &mut world,
            Duration::from_millis(u64::from(rng.range(6_000, 12_000))),
        )
        .await;
        let (people, online) = building_now(&base, &cookie);
        // The kill lands anywhere in the core's work: mid-batch, mid-flush, mid-publish.
        tokio::time::sleep(Duration::from_millis(u64::from(rng.range(0, 50)))).await;
        gw.kill();
        drive(
            &mut world,
            Duration::from_millis(u64::from(rng.range(200, 3_000))),
        )
        .await;
        gw.restart();
        let took = until_healthy(&mut world, &base).await;
        recoveries.push(took);
        // The head counts carry on from before (not an empty building): read with the
        // building held still (nobody walks in to make up the numbers), once the first
        // estimate is out (the core's first tick, within a second or so).
        let mut after = building_now(&base, &cookie);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while after.0 == 0 && people > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            after = building_now(&base, &cookie);
        }
        let taken_up = gw.log().matches("head counts taken up").count();
        assert_eq!(
            taken_up,
            cycle as usize + 1,
            "every restart took the stored head counts up"
        );
        assert!(
            after.0 * 2 >= people,
            "head counts recovered: {people} before the kill, {} after",
            after.0
        );
        // The doors are heard from again (their retained status), with the same session
        // cookie as before.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while after.1 < online && std::time::Instant::now() < deadline {
            drive(&mut world, Duration::from_millis(200)).await;
            after.1 = building_now(&base, &cookie).1;
        }
        println!(
            "cycle {cycle}: {people} people and {online} doors online before the kill, {} and {} after, healthy {took:?} after restart",
            after.0, after.1
        );
        assert!(
            after.1 >= online,
            "doors online again: {online} before, {} after",
            after.1
        );
    }
    // Back up for good: the nodes upload what they decided alone, and hear it was stored.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while world.offline_unacknowledged() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} offline decisions still not acknowledged",
            world.offline_unacknowledged()
        );
        drive(&mut world, Duration::from_millis(200)).await;
    }
    drive(&mut world, Duration::from_secs(2)).await;
    let report = world.report();
    assert!(
        gw.terminate(Duration::from_secs(15)),
        "exits cleanly on SIGTERM"
    );

    let logged = logged_taps(&day.data);
    let (found, lost, twice) = hold_against_log(&report.decided, &logged);
    let offline = report.decided.iter().filter(|d| d.2).count();
    let mut took: Vec<_> = recoveries.iter().map(Duration::as_millis).collect();
    took.sort_unstable();
    if took.is_empty() {
        took.push(0); // no cycles asked for
    }
    println!(
        "crash test: {cycles} SIGKILL cycles (seed {seed}); decisions the doors acted on {} ({} from the gateway, {offline} alone), found in the log once {found}, lost {}, logged twice {}; healthy after restart p50 {} ms, max {} ms",
        report.decided.len(),
        report.decided.len() - offline,
        lost.len(),
        twice.len(),
        took[took.len() / 2],
        took[took.len() - 1],
    );
    println!("bench: crash_lost_decisions {}", lost.len() + twice.len());
    assert!(
        report.decided.len() >= 20,
        "the doors were busy: {report:?}"
    );
    assert!(
        lost.is_empty(),
        "decisions a door acted on that the log lacks: {lost:?}"
    );
    assert!(twice.is_empty(), "decisions logged twice: {twice:?}");
}
