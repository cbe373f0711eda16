//! Air-raid alerts from the public sources, through the real service: recorded answers of the
//! ukrainealarm API served by a local HTTP server (loopback) switch the site to shelter mode and
//! open the shelter route's doors; a feed that fails keeps the mode and raises its alarm; the
//! alert's end switches back. Also the alerts.in.ua reader over HTTP: its token, and 304.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use kombinat::config::AlertFeedConfig;
use kombinat::registry::Registry;
use kombinat::service;
use kombinat::store::{Actor, AlarmKind, AuditEvent, SledStore, Store};
use kombinat_core::alerts::{AlertSource, Area};
use kombinat_protocol::door::{Action, Command};
use support::*;

const T: Duration = Duration::from_secs(20);

fn answer(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/alerts")
            .join(name),
    )
    .unwrap()
}

/// What the local "API" answers now, and the headers it was last asked with.
#[derive(Clone, Default)]
struct Api {
    now: Arc<Mutex<(u16, String)>>,
    asked: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Api {
    fn set(&self, status: u16, body: String) {
        *self.now.lock().unwrap() = (status, body);
    }

    async fn serve(&self, path: &str) -> u16 {
        async fn answer(State(api): State<Api>, headers: HeaderMap) -> (StatusCode, String) {
            api.asked.lock().unwrap().push(headers.clone());
            let (status, body) = api.now.lock().unwrap().clone();
            if status == 200 && headers.get("if-modified-since").is_some() {
                return (StatusCode::NOT_MODIFIED, String::new());
            }
            (StatusCode::from_u16(status).unwrap(), body)
        }
        let app = axum::Router::new()
            .route(path, get(answer))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    }
}

fn kherson() -> Area {
    Area {
        id: "1370".into(),
        oblast: Some("23".into()),
        raion: Some("Херсонський район".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_air_raid_alert_opens_the_shelter_route_a_lost_feed_keeps_it_and_its_end_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    // A door node on the shelter's door.
    {
        let site = Arc::new(kombinat::site_file::load(&site_path()).unwrap());
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let now = chrono::Utc::now();
        let mut g = Registry::open(site, store, now).unwrap();
        g.add_device(
            kombinat::domain::Device {
                id: "door-shelter".parse().unwrap(),
                kind: kombinat::domain::DeviceKind::Door,
                door: Some("d-shelter".parse().unwrap()),
                room: None,
                key: key(9),
                added_at: now,
            },
            Actor::Cli("test".into()),
            now,
        )
        .unwrap();
    }
    let api = Api::default();
    api.set(200, answer("ukrainealarm-1370-clear.json"));
    let port = api.serve("/api/v3/alerts/{region}").await;
    let mut config = config(dir.path(), "embedded");
    config.alert_feeds = vec![AlertFeedConfig {
        id: "siren".into(),
        source: AlertSource::UkraineAlarm,
        area: kherson(),
        url: format!("http://127.0.0.1:{port}/api/v3/alerts/1370"),
        key: Some("test-key".into()),
        every_s: 1,
        types: vec!["AIR".into()],
    }];
    let gw = service::start(config).await.unwrap();
    assert!(gw.ready(T).await);
    let mode_topic = format!("{PREFIX}/site/mode");
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-shelter", "d-shelter", key(9)).await;
    // The mode, as the broker's read-only observer reads it (a door node's account reads only
    // its own door's topics).
    let mut watcher = DoorNode::connect_as(
        gw.mqtt_addr,
        login("observer"),
        "observer",
        "d-shelter",
        key(9),
        std::slice::from_ref(&mode_topic),
    )
    .await;
    // The next message on `leaf` that says `what` (the retained mode comes at subscribing and
    // again when the gateway announces itself).
    async fn next(node: &mut DoorNode, leaf: &str, what: &str) {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let left = deadline - tokio::time::Instant::now();
            let p = node.next_on(leaf, left).await;
            let said = match leaf {
                "mode" => serde_json::from_slice::<serde_json::Value>(&p).unwrap()["mode"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                _ => match serde_json::from_slice::<Command>(&p).unwrap().action {
                    Action::Release => "release".into(),
                    Action::Normal => "normal".into(),
                    other => format!("{other:?}"),
                },
            };
            if said == what {
                return;
            }
        }
    }
    next(&mut watcher, "mode", "normal").await;

    // Shelling only: not an air raid, nothing changes.
    api.set(200, answer("ukrainealarm-1370-artillery.json"));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The air-raid alert: shelter mode, and the shelter's door is released.
    api.set(200, answer("ukrainealarm-1370-air.json"));
    let alert_at = std::time::Instant::now();
    next(&mut watcher, "mode", "shelter").await;
    next(&mut node, "command", "release").await;
    // From the alert in the answer to the shelter's door told to release, read every second.
    println!(
        "bench: alert_to_release_ms {} ms (the feed read every 1 s)",
        alert_at.elapsed().as_millis()
    );
    // The API asked with the key, as the source wants it.
    assert!(api
        .asked
        .lock()
        .unwrap()
        .iter()
        .all(|h| h.get("authorization").is_some_and(|v| v == "test-key")));

    // The feed is lost (errors, then garbage): the site stays in shelter mode.
    api.set(503, "upstream down".into());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    api.set(200, "<html>maintenance</html>".into());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The alert is over: back to normal, the door told so.
    api.set(200, answer("ukrainealarm-1370-clear.json"));
    next(&mut watcher, "mode", "normal").await;
    next(&mut node, "command", "normal").await;
    gw.stop().await.unwrap();

    // The log: shelter, the feed's alarm raised while it failed and cleared, normal again; no
    // other mode between (losing the feed was never an all clear).
    let log = SledStore::open(dir.path())
        .unwrap()
        .audit_after(None, usize::MAX)
        .unwrap();
    let seen: Vec<String> = log
        .iter()
        .filter_map(|r| match &r.entry.event {
            AuditEvent::Mode { mode, .. } => Some(format!("mode {}", mode.as_str())),
            AuditEvent::Alarm {
                alarm: AlarmKind::AlertFeedFailing,
                raised,
                ..
            } => Some(format!("alarm {raised}")),
            _ => None,
        })
        .collect();
    // (The alarm's clearing and the mode come of the same read; their order in the log is the
    // order they were written in, not a sequence.)
    let mut end = seen.get(2..).unwrap_or_default().to_vec();
    end.sort();
    assert_eq!(
        seen.get(..2),
        Some(&["mode shelter".to_string(), "alarm true".into()][..]),
        "{seen:?}"
    );
    assert_eq!(end, ["alarm false", "mode normal"], "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_in_ua_reader_sends_its_token_reads_the_hromada_and_takes_304_as_unchanged() {
    let api = Api::default();
    api.set(200, answer("alerts-in-ua-active-oblast.json"));
    let port = api.serve("/v1/alerts/active.json").await;
    let feed = AlertFeedConfig {
        id: "alerts-in-ua".into(),
        source: AlertSource::AlertsInUa,
        area: kherson(),
        url: format!("http://127.0.0.1:{port}/v1/alerts/active.json"),
        key: Some("tok".into()),
        every_s: 20,
        types: vec!["air_raid".into()],
    };
    let read = move |modified: Option<String>| {
        let feed = feed.clone();
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut m = modified;
            (kombinat::alert_poller::read(&agent, &feed, &mut m), m)
        })
    };
    assert_eq!(read(None).await.unwrap().0, Ok(Some(true)));
    assert!(api.asked.lock().unwrap()[0]
        .get("authorization")
        .is_some_and(|v| v == "Bearer tok"));
    api.set(200, answer("alerts-in-ua-active-elsewhere.json"));
    assert_eq!(read(None).await.unwrap().0, Ok(Some(false)));
    // Not modified since: unchanged, not a failure.
    let (r, _) = read(Some("Fri, 04 Dec 2026 09:40:01 GMT".into()))
        .await
        .unwrap();
    assert_eq!(r, Ok(None));
    // A refused token is a failure, in words.
    api.set(401, r#"{"message":"API token required"}"#.into());
    let (r, _) = read(None).await.unwrap();
    assert!(r.unwrap_err().contains("refused"));
}
