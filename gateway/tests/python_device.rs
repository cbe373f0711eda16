//! A device written from `protocol/README.md` alone, in Python with its standard library only
//! (`tests/device/door_node.py`: its own MQTT client, its own HMAC signing), against the real
//! `kombinat run`, through mosquitto and through the embedded broker (which lets it in only with
//! the account the page says to sign in with): the page is enough to build a door node and a
//! people counter that the gateway hears, answers and counts.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

/// The Python interpreter, or `None` on a developer machine without one (printing why); in
/// CI (`CI` set) a missing one fails the test.
fn python() -> Option<&'static str> {
    let found = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("python3");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "python3 is not installed; CI must install it (apt-get install python3)"
    );
    eprintln!("SKIPPED: python3 is not installed");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_door_node_and_a_counter_written_in_python_from_the_protocol_page_work() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    python_device(Some(&broker.url()), broker.port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_device_signs_in_to_the_embedded_broker_as_the_page_says() {
    python_device(None, free_port()).await;
}

/// Runs the Python device against a gateway through `broker` (a mosquitto URL), or through its
/// embedded broker on `port`.
async fn python_device(broker: Option<&str>, port: u16) {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data);
    let http = free_port();
    let mut gw = match broker {
        Some(url) => GatewayProcess::start(dir.path(), &site_path(), &data, url, http),
        None => {
            let config = dir.path().join("kombinat.toml");
            std::fs::write(
                &config,
                format!(
                    "site = {:?}\ndata = {data:?}\n[mqtt]\nbroker = \"embedded\"\nlisten = \"127.0.0.1:{port}\"\nkeep_alive_s = 5\n[http]\nlisten = \"127.0.0.1:{http}\"\n[occupancy]\ncounts_every_s = 5\n",
                    site_path()
                ),
            )
            .unwrap();
            GatewayProcess::start_config(config)
        }
    };
    let base = format!("http://127.0.0.1:{http}");
    until(Duration::from_secs(30), "the gateway is healthy", || {
        healthy(&base)
    })
    .await;

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/device/door_node.py");
    let key = "01".repeat(32); // support::key(1), door-cowork's
    let sensor_key = "04".repeat(32); // support::key(4), sensor-meeting's
    let observer = login("observer").1;
    let port = port.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(["--port", &port])
            .args(["--door", "d-cowork-in", "--device", "door-cowork"])
            .args(["--key", &key])
            .args(["--allowed", STAFF_CARD, "--refused", NOBODY_CARD])
            .args(["--sensor", "sensor-meeting", "--sensor-key", &sensor_key])
            .args(["--room", "meeting-1", "--observer-password", &observer])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    println!("{printed}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Python device failed:\n{printed}");
    assert!(printed.contains("ok: stopped cleanly"), "{printed}");

    // The gateway refused nothing it was sent but the replay the device sent on purpose, and
    // the decisions are in its log.
    assert!(gw.terminate(Duration::from_secs(15)), "exits cleanly");
    let log = gw.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused a message"))
        .collect();
    assert!(
        refused
            .iter()
            .all(|l| l.contains("reason=\"replay\"") || l.contains("reason=replay")),
        "refused: {refused:#?}"
    );
    let taps = logged_taps(&data);
    assert_eq!(
        taps.keys().filter(|(d, _)| d == "d-cowork-in").count(),
        4,
        "four taps decided and logged: {taps:?}"
    );
}
