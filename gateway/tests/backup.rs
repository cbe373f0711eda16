//! Backup and restore as an operator does them: `kombinat backup FILE` while the gateway runs
//! (the running gateway writes it), the data directory wiped, `kombinat restore FILE`, the
//! gateway started again: the API answers as before, the same session still signed in. A cut
//! backup restores nothing.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use kombinat::service;
use kombinat::staff::{Staff, StaffName, StaffRole};
use kombinat::store::{Actor, SledStore, Store};
use serde_json::{json, Value};
use support::*;
use tower::ServiceExt;

fn kombinat(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kombinat"))
        .args(args)
        .env("KOMBINAT_SITE", site_path())
        .env("KOMBINAT_DATA", data)
        .env("USER", "marta")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

async fn call(
    gw: &service::Running,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookie)
        .header("x-csrf-token", csrf)
        .header(header::CONTENT_TYPE, "application/json");
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let res = gw.app().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 16 << 20)
        .await
        .unwrap();
    let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(c) = headers.get(header::SET_COOKIE) {
        v["cookie"] = Value::String(c.to_str().unwrap().split(';').next().unwrap().into());
    }
    (status, v)
}

/// What staff see that must come back identical.
async fn answers(gw: &service::Running, cookie: &str, csrf: &str, before: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "/api/v1/site".to_string(),
        "/api/v1/members?limit=1000".into(),
        "/api/v1/members/petro".into(),
        "/api/v1/staff".into(),
        format!("/api/v1/audit?limit=1000&before={before}"),
        "/api/v1/utilisation?from=2026-01-01&until=2026-02-01".into(),
    ] {
        let (status, mut v) = call(gw, Method::GET, &path, cookie, csrf, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        // The site answer carries the gateway's clock as it left: a reading, not stored data.
        if let Some(o) = v.as_object_mut() {
            o.remove("clock");
        }
        out.push(v);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_running_restores_to_the_same_answers() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    prepare(&data);
    {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&data).unwrap());
        Staff::load(store, chrono::Utc::now())
            .unwrap()
            .add(
                StaffName::parse("adam").unwrap(),
                StaffRole::Admin,
                "correct horse battery staple",
                Actor::Cli("test".into()),
                chrono::Utc::now(),
            )
            .unwrap();
    }
    // mosquitto outlives the gateway's restart, so the door node finds the restored one.
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let cfg = |data: &Path| config(data, &broker.url());
    let gw = service::start(cfg(&data)).await.unwrap();
    assert!(gw.ready(Duration::from_secs(20)).await);
    let (status, me) = call(
        &gw,
        Method::POST,
        "/api/v1/session",
        "",
        "",
        Some(json!({"name": "adam", "password": "correct horse battery staple"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (cookie, csrf) = (
        me["cookie"].as_str().unwrap().to_string(),
        me["csrf"].as_str().unwrap().to_string(),
    );
    let (status, _) = call(
        &gw,
        Method::POST,
        "/api/v1/members",
        &cookie,
        &csrf,
        Some(json!({"id": "petro", "name": "Petro", "cards": "04112233"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    for c in [STAFF_CARD, NOBODY_CARD, "04112233"] {
        let t = node.tap(card(c));
        node.send_tap(&t).await;
        node.decision(Duration::from_secs(10)).await;
    }
    // The log's newest entry now: the cursor just after it bounds what is compared.
    let (_, log) = call(
        &gw,
        Method::GET,
        "/api/v1/audit?limit=1",
        &cookie,
        &csrf,
        None,
    )
    .await;
    let newest = log["entries"][0]["id"].as_str().unwrap().to_string();
    let (micros, seq) = newest.split_once('-').unwrap();
    let before = format!("{micros}-{}", seq.parse::<u64>().unwrap() + 1);
    let was = answers(&gw, &cookie, &csrf, &before).await;
    assert!(was[4]["entries"].as_array().unwrap().len() >= 5);

    // Backed up while it runs: the running gateway writes it.
    let file = root.path().join("kombinat.backup");
    let file_s = file.display().to_string();
    let backup = tokio::task::spawn_blocking({
        let data = data.clone();
        let file_s = file_s.clone();
        move || kombinat(&data, &["backup", &file_s])
    })
    .await
    .unwrap();
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let said = String::from_utf8_lossy(&backup.stdout).to_string();
    assert!(said.contains("records"), "{said}");
    // Restoring over a running gateway is refused.
    let busy = kombinat(&data, &["restore", &file_s, "--force"]);
    assert!(!busy.status.success());
    gw.stop().await.unwrap();

    // Wiped; a cut backup restores nothing; the whole one restores everything.
    std::fs::remove_dir_all(&data).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let cut = root.path().join("cut.backup");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let r = kombinat(&data, &["restore", &cut.display().to_string()]);
    assert!(!r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("cut short"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        !data.exists() || std::fs::read_dir(&data).unwrap().next().is_none(),
        "nothing restored"
    );
    let r = kombinat(&data, &["restore", &file_s]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    let gw = service::start(cfg(&data)).await.unwrap();
    assert!(gw.ready(Duration::from_secs(20)).await);
    let now = answers(&gw, &cookie, &csrf, &before).await;
    for (a, b) in was.iter().zip(&now) {
        assert_eq!(a, b, "the same answer after the restore");
    }
    // The restored gateway goes on: the door node's counters were kept, so its next tap is
    // taken and a replayed one is not.
    let t = node.tap(card(STAFF_CARD));
    node.send_tap(&t).await;
    let d = node.decision(Duration::from_secs(10)).await;
    assert_eq!(d.reason, kombinat::domain::Reason::Staff);
    gw.stop().await.unwrap();

    // Over a store, only with --force, and the old one is kept beside.
    let again = kombinat(&data, &["restore", &file_s]);
    assert!(!again.status.success());
    let forced = kombinat(&data, &["restore", &file_s, "--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let kept = std::fs::read_dir(root.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("data.before-restore-")
        });
    assert!(kept);
}
