//! The gateway killed with SIGKILL mid-run and started again, through mosquitto: every decision
//! a door received is in the audit log exactly once, and the replay counters survive.

mod support;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kombinat::store::{AuditEvent, SledStore, Store};
use support::*;

/// The gateway process; killed if the test fails, so no orphan holds the broker or the store.
struct GatewayProcess(Child);

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_gateway(config: &std::path::Path) -> GatewayProcess {
    GatewayProcess(
        Command::new(env!("CARGO_BIN_EXE_kombinat"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_a_door_received_survives_sigkill_exactly_once() {
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
    let mut gateway = spawn_gateway(&cfg);
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
        gateway = spawn_gateway(&cfg);
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
