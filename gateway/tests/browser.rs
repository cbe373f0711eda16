//! The dashboard in a real browser: the gateway with the embedded broker and its HTTP API on a
//! free port, a staff operator, and `dashboard/tests/browser.mjs` driving Debian's Chromium
//! through playwright-core. When the script says `WAIT counter`, a people counter's reading
//! goes over MQTT; at `WAIT tap`, two signed taps (one allowed, one denied); at `WAIT forced`
//! and `WAIT unforced`, the coworking door node reports its door forced, or no longer; the
//! script checks that the page followed without a reload. Marta's entry to the coworking floor
//! yesterday afternoon is in the log before the gateway starts. Screenshots land in the folder this test prints.
//!
//! Needs `node`, `/usr/bin/chromium` (or `CHROMIUM`) and `npm ci` in `dashboard/tests`:
//! `.ci/run` installs them. Missing, the test fails in CI and says why elsewhere.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kombinat::service;
use kombinat::staff::{Staff, StaffName, StaffRole};
use kombinat::store::{Actor, SledStore, Store};
use kombinat_protocol::sensor::{Measurement, Reading};
use kombinat_protocol::{DeviceId, Topic};
use support::*;

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboard/tests")
}

/// Why the browser test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("no Chromium at {chromium} (apt install chromium)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node (apt install nodejs)".into());
    }
    if !tests_dir().join("node_modules/playwright-core").exists() {
        return Some("playwright-core is not installed (npm ci --prefix dashboard/tests)".into());
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_watch_the_building_live_in_a_real_browser() {
    if let Some(why) = missing() {
        if std::env::var_os("CI").is_some() {
            panic!("the browser test needs {why}");
        }
        eprintln!("skipping the browser test: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let password = "a long operator password";
    {
        let store: std::sync::Arc<dyn Store> =
            std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
        let staff = Staff::load(store, chrono::Utc::now()).unwrap();
        staff
            .add(
                StaffName::parse("olena").unwrap(),
                StaffRole::Operator,
                password,
                Actor::Cli("test".into()),
                chrono::Utc::now(),
            )
            .unwrap();
        // An admin, who adds a person with a card, suspends them and revokes the card.
        staff
            .add(
                StaffName::parse("oksana").unwrap(),
                StaffRole::Admin,
                ADMIN_PASSWORD,
                Actor::Cli("test".into()),
                chrono::Utc::now(),
            )
            .unwrap();
    }
    // Marta went into the coworking floor yesterday afternoon: staff find her in the log (the
    // script is told which day that is: it may run past midnight).
    let seeded_day;
    {
        let site = std::sync::Arc::new(kombinat::site_file::load(&site_path()).unwrap());
        let store: std::sync::Arc<dyn Store> =
            std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
        let now = chrono::Utc::now();
        let yesterday = site.local_time(now).date.pred_opt().unwrap();
        seeded_day = yesterday.format("%Y-%m-%d").to_string();
        let at = site
            .parse_time(&format!("{} 15:10", yesterday.format("%Y-%m-%d")))
            .unwrap();
        let mut registry =
            kombinat::registry::Registry::open(site.clone(), store.clone(), now).unwrap();
        let tap = kombinat::access::Tap {
            door: "d-cowork-in".parse().unwrap(),
            credential: card(STAFF_CARD),
        };
        assert!(registry.decide(&tap, at).unwrap().allowed());
        store.flush().unwrap();
    }
    let mut config = config(dir.path(), "embedded");
    config.http = Some("127.0.0.1:0".parse().unwrap());
    let gw = service::start(config).await.unwrap();
    assert!(
        gw.ready(Duration::from_secs(20)).await,
        "gateway subscribed"
    );
    let url = format!("http://{}/", gw.http_addr.unwrap());
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    // The meeting room's people counter, on its own broker account.
    let counter = DoorNode::connect(gw.mqtt_addr, "sensor-meeting", "d-meeting-1", key(4)).await;

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    println!("screenshots: {}", shots.display());

    // Under scripts/test-ahead this process sees a clock moved ahead by libfaketime; Chromium
    // does not run under it (it crashes), so the page is given this process's time instead.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut child = Command::new("node")
        .env_remove("LD_PRELOAD")
        .env("KOMBINAT_BROWSER_NOW_MS", now_ms.to_string())
        .env("KOMBINAT_BROWSER_YESTERDAY", &seeded_day)
        .arg(tests_dir().join("browser.mjs"))
        .args([&url, "olena", password, &shots.display().to_string()])
        .args(["oksana", ADMIN_PASSWORD])
        .current_dir(tests_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node starts");
    let mut stdin = child.stdin.take().unwrap();
    let (tx, said) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut transcript = Vec::new();
    loop {
        let line = tokio::task::block_in_place(|| said.recv_timeout(Duration::from_secs(120)))
            .unwrap_or_else(|_| panic!("the browser script went quiet; it said {transcript:?}"));
        println!("browser: {line}");
        transcript.push(line.clone());
        match line.as_str() {
            "WAIT counter" => {
                let reading = Reading {
                    v: kombinat_protocol::door::VERSION,
                    device: DeviceId::parse("sensor-meeting").unwrap(),
                    counter: 1,
                    reading: Measurement::Counter { entered: 3, out: 0 },
                };
                counter
                    .client
                    .publish(
                        Topic::Reading(reading.device).to_string(PREFIX),
                        rumqttc::QoS::AtLeastOnce,
                        false,
                        serde_json::to_vec(&reading).unwrap(),
                    )
                    .await
                    .unwrap();
                writeln!(stdin, "GO").unwrap();
            }
            "WAIT tap" => {
                for c in [STAFF_CARD, NOBODY_CARD] {
                    let t = node.tap(card(c));
                    node.send_tap(&t).await;
                    node.decision(Duration::from_secs(10)).await;
                }
                writeln!(stdin, "GO").unwrap();
            }
            "WAIT forced" => {
                node.send_state(true).await;
                writeln!(stdin, "GO").unwrap();
            }
            "WAIT unforced" => {
                node.send_state(false).await;
                writeln!(stdin, "GO").unwrap();
            }
            "DONE" => break,
            l if l.starts_with("FAIL") => {
                panic!(
                    "the dashboard failed in the browser: {l} (screenshots in {})",
                    shots.display()
                )
            }
            _ => {}
        }
    }
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    assert!(status.success(), "the browser script ended with {status}");
    let taken: Vec<_> = std::fs::read_dir(&shots)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(taken.len() >= 12, "a screenshot of every page: {taken:?}");
    gw.stop().await.unwrap();

    // What the admin did in the browser is in the store, and in the log with who did it.
    let store: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
    let olha = store
        .member(kombinat::domain::MemberId::parse("olha-k").unwrap())
        .unwrap()
        .expect("the person added in the browser");
    assert_eq!(olha.name, "Olha Koval");
    // Of the members each walk added, the last was erased in the browser.
    for n in 1..=3 {
        let id = kombinat::domain::MemberId::parse(&format!("walk-{n}")).unwrap();
        assert!(store.member(id).unwrap().is_some(), "walk-{n} added");
    }
    let erased = kombinat::domain::MemberId::parse("walk-4").unwrap();
    assert!(store.member(erased).unwrap().is_none(), "walk-4 erased");
    assert!(dir.path().join(kombinat::store::rewrite::PENDING).exists());
    assert!(
        matches!(olha.status, kombinat::domain::MemberStatus::Active),
        "suspended, then resumed: {:?}",
        olha.status
    );
    let card = store
        .credentials()
        .unwrap()
        .into_iter()
        .find(|r| r.member == olha.id)
        .expect("the card issued with her");
    assert!(card.revoked_at.is_some(), "the card revoked in the browser");
    let by_admin: Vec<String> = store
        .audit_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.actor == Actor::Staff("oksana".into()))
        .map(|r| format!("{:?}", r.entry.event))
        .collect();
    // The staff account added, changed and removed in the browser is gone, and the log says so.
    let accounts = Staff::load(store.clone(), chrono::Utc::now())
        .unwrap()
        .accounts();
    assert!(
        !accounts.iter().any(|a| a.name.to_string() == "viktor"),
        "removed"
    );
    assert!(
        by_admin.iter().filter(|e| e.contains("viktor")).count() >= 3,
        "viktor added, made an operator and removed, as oksana: {by_admin:#?}"
    );
    let desk: Vec<_> = store
        .bookings()
        .unwrap()
        .into_iter()
        .filter(|b| b.key.source.to_string() == "dashboard")
        .collect();
    assert_eq!(desk.len(), 1, "the booking made at the desk: {desk:?}");
    assert_eq!(desk[0].title, "Walk-in meeting");
    assert_eq!(
        desk[0].status,
        kombinat::domain::BookingStatus::Cancelled,
        "and cancelled"
    );
    assert!(
        by_admin.len() >= 9,
        "every change made in the browser is in the log as oksana's: {by_admin:#?}"
    );
}

const ADMIN_PASSWORD: &str = "a long admin password";
