//! The booking system's REST API through the real service and a real socket: idempotent
//! upsert, cancel revoking access at once (a tap after it is denied), 422 for bad fields, and
//! tokens: missing, wrong, revoked, under-scoped or for another source, refused.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kombinat::domain::{token_hash, ApiToken, Reason, Scope, SourceId};
use kombinat::service;
use kombinat::store::{Actor, SledStore, Store};
use support::*;

const WRITER: &str = "kmb_test_writer_token";
const READER: &str = "kmb_test_reader_token";
const REVOKED: &str = "kmb_test_revoked_token";

fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = match (method, body) {
        ("PUT", Some(b)) => {
            let mut r = agent.put(url);
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.header("Content-Type", "application/json")
                .send(b.to_string().as_bytes())
        }
        ("POST", Some(b)) => {
            let mut r = agent.post(url);
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.header("Content-Type", "application/json")
                .send(b.to_string().as_bytes())
        }
        ("DELETE", _) => {
            let mut r = agent.delete(url);
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.call()
        }
        _ => {
            let mut r = agent.get(url);
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.call()
        }
    }
    .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// The prepared store with these tokens (name, token, scopes, revoked), and the service on it
/// with its HTTP API on a free port.
async fn serving_with_tokens(
    dir: &std::path::Path,
    tokens: &[(&str, &str, &[Scope], bool)],
) -> service::Running {
    prepare(dir);
    {
        let site = Arc::new(kombinat::site_file::load(&site_path()).unwrap());
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).unwrap());
        let mut g = kombinat::registry::Registry::open(site, store, Utc::now()).unwrap();
        for (name, token, scopes, revoked) in tokens {
            g.put_token(
                ApiToken {
                    name: SourceId::parse(name).unwrap(),
                    sha256: token_hash(token),
                    scopes: scopes.to_vec(),
                    created_at: Utc::now(),
                    revoked_at: revoked.then(Utc::now),
                },
                Actor::Cli("test".into()),
                Utc::now(),
            )
            .unwrap();
        }
    }
    let mut cfg = config(dir, "embedded");
    cfg.http = Some("127.0.0.1:0".parse().unwrap());
    let gw = service::start(cfg).await.unwrap();
    assert!(gw.ready(Duration::from_secs(10)).await);
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_through_the_rest_api() {
    let dir = tempfile::tempdir().unwrap();
    let gw = serving_with_tokens(
        dir.path(),
        &[
            (
                "test",
                WRITER,
                &[Scope::BookingsWrite, Scope::BookingsRead],
                false,
            ),
            ("reader", READER, &[Scope::BookingsRead], false),
            ("gone", REVOKED, &[Scope::BookingsWrite], true),
        ],
    )
    .await;
    let base = format!("http://{}/api/v1/bookings", gw.http_addr.unwrap());

    // Ivan's meeting (source "test", made by prepare) opens meeting room 1 now.
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-meeting", "d-meeting-1", key(2)).await;
    let tap = node.tap(card(NOBODY_CARD));
    node.send_tap(&tap).await;
    assert_eq!(
        node.decision(Duration::from_secs(10)).await.reason,
        Reason::Booking
    );

    let b = base.clone();
    let (start, end) = (Utc::now(), Utc::now() + chrono::Duration::hours(1));
    let body = serde_json::json!({
        "room": "meeting-3", "kind": "meeting", "organiser": "ivan",
        "start": start.to_rfc3339(), "end": end.to_rfc3339(), "title": "Planning",
        "attendees": ["marta"]
    });
    let r = tokio::task::spawn_blocking(move || {
        let put = |body: serde_json::Value| {
            call("PUT", &format!("{b}/test/m-1"), Some(WRITER), Some(body))
        };
        let first = put(body.clone());
        let again = put(body.clone());
        // Bad fields: 422, nothing written.
        let mut bad = body.clone();
        bad["start"] = "tomorrow-ish".into();
        let bad_start = put(bad);
        let mut bad = body.clone();
        bad["room"] = "attic".into();
        let bad_room = call("PUT", &format!("{b}/test/m-2"), Some(WRITER), Some(bad));
        let mut extra = body.clone();
        extra["colour"] = "red".into();
        let bad_field = call("PUT", &format!("{b}/test/m-3"), Some(WRITER), Some(extra));
        // Tokens.
        let none = call("PUT", &format!("{b}/test/m-4"), None, Some(body.clone()));
        let wrong = call(
            "PUT",
            &format!("{b}/test/m-4"),
            Some("kmb_nope"),
            Some(body.clone()),
        );
        let reader = call(
            "PUT",
            &format!("{b}/test/m-4"),
            Some(READER),
            Some(body.clone()),
        );
        let revoked = call(
            "PUT",
            &format!("{b}/gone/m-4"),
            Some(REVOKED),
            Some(body.clone()),
        );
        assert_eq!(revoked.0, 401, "a revoked token");
        let good_batch = call(
            "POST",
            &format!("{b}/batch"),
            Some(WRITER),
            Some(serde_json::json!([
                {"external_id": "g-1", "room": "meeting-4", "kind": "meeting", "organiser": "ivan",
                 "start": start.to_rfc3339(), "end": end.to_rfc3339()},
                {"external_id": "g-2", "room": "hostel-h1", "kind": "stay", "organiser": "ivan",
                 "arrival": start.format("%Y-%m-%d").to_string(),
                 "departure": (start + chrono::Duration::days(2)).format("%Y-%m-%d").to_string()}
            ])),
        );
        assert_eq!(
            good_batch,
            (
                200,
                serde_json::json!({"added": 2, "updated": 0, "unchanged": 0})
            ),
            "a meeting and a stay in one batch"
        );
        // Stays are listed by their check-in to check-out.
        let stays = call("GET", &format!("{b}?room=hostel-h1"), Some(WRITER), None);
        assert_eq!(stays.1.as_array().map(Vec::len), Some(1), "{:?}", stays.1);
        let later = (start + chrono::Duration::days(5))
            .to_rfc3339()
            .replace('+', "%2B");
        let after = call(
            "GET",
            &format!("{b}?room=hostel-h1&from={later}"),
            Some(WRITER),
            None,
        );
        assert_eq!(after.1.as_array().map(Vec::len), Some(0), "{:?}", after.1);
        let other = call(
            "PUT",
            &format!("{b}/other/m-4"),
            Some(WRITER),
            Some(body.clone()),
        );
        let batch = call(
            "POST",
            &format!("{b}/batch"),
            Some(WRITER),
            Some(serde_json::json!([
                {"external_id": "b-1", "room": "meeting-4", "kind": "meeting", "organiser": "ivan",
                 "start": start.to_rfc3339(), "end": end.to_rfc3339()},
                {"external_id": "b-2", "room": "attic", "kind": "meeting", "organiser": "ivan",
                 "start": start.to_rfc3339(), "end": end.to_rfc3339()}
            ])),
        );
        let list = call("GET", &format!("{b}?room=meeting-3"), Some(READER), None);
        let own = call("GET", &format!("{b}?room=meeting-3"), Some(WRITER), None);
        // Cancel Ivan's meeting in room 1.
        let cancel = call("DELETE", &format!("{b}/test/ivan-now"), Some(WRITER), None);
        let missing = call("DELETE", &format!("{b}/test/nothing"), Some(WRITER), None);
        (
            first, again, bad_start, bad_room, bad_field, none, wrong, reader, other, batch, list,
            own, cancel, missing,
        )
    })
    .await
    .unwrap();
    let (
        first,
        again,
        bad_start,
        bad_room,
        bad_field,
        none,
        wrong,
        reader,
        other,
        batch,
        list,
        own,
        cancel,
        missing,
    ) = r;
    assert_eq!(
        first,
        (
            200,
            serde_json::json!({"added": 1, "updated": 0, "unchanged": 0})
        )
    );
    assert_eq!(
        again,
        (
            200,
            serde_json::json!({"added": 0, "updated": 0, "unchanged": 1})
        ),
        "idempotent"
    );
    assert_eq!(bad_start.0, 422);
    assert_eq!(bad_start.1["errors"][0]["field"], "start");
    assert_eq!(bad_room.0, 422);
    assert_eq!(bad_room.1["errors"][0]["field"], "room");
    assert!(bad_room.1["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("attic"));
    assert_eq!(
        (bad_field.0, bad_field.1["errors"][0]["field"].as_str()),
        (422, Some("colour"))
    );
    assert_eq!(none.0, 401);
    assert_eq!(wrong.0, 401);
    assert_eq!(reader.0, 403, "under-scoped");
    assert_eq!(other.0, 403, "another source");
    assert_eq!(batch.0, 422, "all or nothing: {:?}", batch.1);
    assert_eq!(batch.1["errors"][0]["field"], "1.room");
    assert_eq!(
        list,
        (200, serde_json::json!([])),
        "a reader sees its own source only"
    );
    assert_eq!(own.0, 200);
    assert_eq!(own.1.as_array().unwrap().len(), 1);
    assert_eq!(cancel.0, 200);
    assert_eq!(missing.0, 404);

    // The cancelled meeting opens nothing, at once.
    let tap = node.tap(card(NOBODY_CARD));
    node.send_tap(&tap).await;
    let d = node.decision(Duration::from_secs(10)).await;
    assert!(!d.allow, "{:?}", d.reason);

    // A meeting booked through the API opens its room's door at once, and no other door.
    let b = base.clone();
    let body = serde_json::json!({
        "room": "meeting-1", "kind": "meeting", "organiser": "ivan",
        "start": Utc::now().to_rfc3339(), "end": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339()
    });
    let put = tokio::task::spawn_blocking(move || {
        call("PUT", &format!("{b}/test/m-9"), Some(WRITER), Some(body))
    })
    .await
    .unwrap();
    assert_eq!(put.0, 200, "{:?}", put.1);
    let tap = node.tap(card(NOBODY_CARD));
    node.send_tap(&tap).await;
    assert_eq!(
        node.decision(Duration::from_secs(10)).await.reason,
        Reason::Booking
    );
    // Tokens made and revoked from the command line while the gateway runs (through its
    // spool): a leaked token is refused at once, a new one works.
    let data = dir.path().to_path_buf();
    let kombinat = move |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kombinat"))
            .args(args)
            .env("KOMBINAT_SITE", site_path())
            .env("KOMBINAT_DATA", &data)
            .env("USER", "marta")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let revoke = tokio::task::spawn_blocking({
        let k = kombinat.clone();
        move || k(&["token", "revoke", "test"])
    })
    .await
    .unwrap();
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let add = tokio::task::spawn_blocking({
        let k = kombinat.clone();
        move || k(&["token", "add", "fresh", "--scope", "bookings:write"])
    })
    .await
    .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let fresh = String::from_utf8(add.stdout).unwrap().trim().to_string();
    let refused = tokio::task::spawn_blocking({
        let k = kombinat.clone();
        move || k(&["token", "revoke", "nobody"])
    })
    .await
    .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no live token nobody"));
    let b = base.clone();
    let body = serde_json::json!({
        "room": "meeting-2", "kind": "meeting", "organiser": "ivan",
        "start": Utc::now().to_rfc3339(), "end": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339()
    });
    let (old, new) = tokio::task::spawn_blocking(move || {
        (
            call(
                "PUT",
                &format!("{b}/test/m-10"),
                Some(WRITER),
                Some(body.clone()),
            ),
            call("PUT", &format!("{b}/fresh/m-10"), Some(&fresh), Some(body)),
        )
    })
    .await
    .unwrap();
    assert_eq!(old.0, 401, "revoked while running");
    assert_eq!(new.0, 200, "made while running: {:?}", new.1);

    let mut cowork = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    let tap = cowork.tap(card(NOBODY_CARD));
    cowork.send_tap(&tap).await;
    assert!(
        !cowork.decision(Duration::from_secs(10)).await.allow,
        "no other door"
    );
    gw.stop().await.unwrap();
}

/// `GET` returning the status and the body as text.
fn get_text(url: &str, token: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent.get(url);
    if let Some(t) = token {
        r = r.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = r.call().unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_without_a_login_and_metrics_with_a_metrics_token() {
    const METRICS: &str = "kmb_test_metrics_token";
    let dir = tempfile::tempdir().unwrap();
    let gw = serving_with_tokens(
        dir.path(),
        &[
            ("prometheus", METRICS, &[Scope::MetricsRead], false),
            ("rooms", READER, &[Scope::BookingsRead], false),
        ],
    )
    .await;
    let base = format!("http://{}", gw.http_addr.unwrap());

    let (status, body) = call("GET", &format!("{base}/health"), None, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["broker"]["connected"], true);
    assert_eq!(body["store"], "ok");

    // Two taps: a staff card and a stranger's.
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    for c in [STAFF_CARD, NOBODY_CARD] {
        let tap = node.tap(card(c));
        node.send_tap(&tap).await;
        node.decision(Duration::from_secs(10)).await;
    }

    // The broker's round trip is measured and, on loopback, nothing to warn about.
    let (_, body) = call("GET", &format!("{base}/health"), None, None);
    let rt = body["broker"]["round_trip_ms"].as_f64();
    assert!(rt.is_some_and(|ms| ms < 30.0), "{body}");
    assert_eq!(body["warnings"], serde_json::json!([]), "{body}");

    assert_eq!(get_text(&format!("{base}/metrics"), None).0, 401);
    assert_eq!(get_text(&format!("{base}/metrics"), Some(READER)).0, 403);
    let (status, text) = get_text(&format!("{base}/metrics"), Some(METRICS));
    assert_eq!(status, 200);
    assert!(
        text.contains("kombinat_decisions_total{reason=\"allow.staff\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("kombinat_decision_latency_seconds_count 2\n"),
        "{text}"
    );
    assert!(text.contains("kombinat_broker_connected 1\n"), "{text}");
    let denied = text
        .lines()
        .filter(|l| l.starts_with("kombinat_decisions_total{reason=\"deny."))
        .count();
    assert_eq!(denied, 1, "{text}");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_token_books_only_the_rooms_and_lengths_its_source_may() {
    let dir = tempfile::tempdir().unwrap();
    let gw = serving_with_tokens(
        dir.path(),
        &[("test", WRITER, &[Scope::BookingsWrite], false)],
    )
    .await;
    let b = format!("http://{}/api/v1/bookings", gw.http_addr.unwrap());
    let start = Utc::now() + chrono::Duration::hours(1);
    let r = tokio::task::spawn_blocking(move || {
        let put = |id: &str, room: &str, kind: &str, hours: i64| {
            let end = start + chrono::Duration::hours(hours);
            call(
                "PUT",
                &format!("{b}/test/{id}"),
                Some(WRITER),
                Some(serde_json::json!({
                    "room": room, "kind": kind, "organiser": "ivan",
                    "start": start.to_rfc3339(), "end": end.to_rfc3339(),
                })),
            )
        };
        let long_title = call(
            "PUT",
            &format!("{b}/test/long"),
            Some(WRITER),
            Some(serde_json::json!({
                "room": "meeting-3", "kind": "meeting", "organiser": "ivan",
                "start": start.to_rfc3339(),
                "end": (start + chrono::Duration::hours(1)).to_rfc3339(),
                "title": "x".repeat(100_000),
            })),
        );
        let stay = call(
            "PUT",
            &format!("{b}/test/stay"),
            Some(WRITER),
            Some(serde_json::json!({
                "room": "meeting-3", "kind": "stay", "organiser": "ivan",
                "arrival": start.date_naive().to_string(),
                "departure": (start + chrono::Duration::days(60)).date_naive().to_string(),
            })),
        );
        assert_eq!(
            stay.0, 422,
            "two months in a meeting room as a stay: {:?}",
            stay.1
        );
        assert!(
            stay.1.to_string().contains("stays are for hostel rooms"),
            "{}",
            stay.1
        );
        let r = (
            put("plant", "technical-1", "guest_pass", 30 * 24),
            put("office", "office-101", "guest_pass", 2),
            put("month", "meeting-3", "meeting", 30 * 24),
            put("fine", "meeting-3", "meeting", 2),
            put("event", "conf-a", "event", 3 * 24),
            long_title,
        );
        // Cancellations of bookings never made, and bookings over for days, change nothing at
        // the doors: not stored (they would fill the store past the source's cap).
        let ghosts: Vec<serde_json::Value> = (0..500)
            .map(|i| {
                serde_json::json!({
                    "external_id": format!("ghost-{i}"), "room": "meeting-3", "kind": "meeting",
                    "organiser": "ivan", "start": start.to_rfc3339(),
                    "end": (start + chrono::Duration::hours(1)).to_rfc3339(), "status": "cancelled",
                })
            })
            .chain((0..500).map(|i| {
                let past = start - chrono::Duration::days(30);
                serde_json::json!({
                    "external_id": format!("old-{i}"), "room": "meeting-3", "kind": "meeting",
                    "organiser": "ivan", "start": past.to_rfc3339(),
                    "end": (past + chrono::Duration::hours(1)).to_rfc3339(),
                })
            }))
            .collect();
        let ghosts = call(
            "POST",
            &format!("{b}/batch"),
            Some(WRITER),
            Some(serde_json::Value::Array(ghosts)),
        );
        assert_eq!(ghosts.0, 200, "{:?}", ghosts.1);
        assert_eq!(ghosts.1["added"], 0, "{:?}", ghosts.1);
        assert_eq!(ghosts.1["unchanged"], 1000, "{:?}", ghosts.1);
        // A source past its burst of requests is held off (429), not served without end.
        let statuses: Vec<u16> = (0..80)
            .map(|_| put("fine", "meeting-3", "meeting", 2).0)
            .collect();
        (r, statuses)
    })
    .await
    .unwrap();
    let ((plant, office, month, fine, event, long_title), statuses) = r;
    assert_eq!(long_title.0, 422, "{:?}", long_title.1);
    assert!(
        long_title.1.to_string().contains("at most 200 characters"),
        "{}",
        long_title.1
    );
    assert!(statuses[..40].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(plant.0, 422, "the plant room: {:?}", plant.1);
    assert!(
        plant.1.to_string().contains("may not book technical-1"),
        "{}",
        plant.1
    );
    assert_eq!(office.0, 422, "another tenant's office: {:?}", office.1);
    assert_eq!(month.0, 422, "a month in a meeting room: {:?}", month.1);
    assert!(month.1.to_string().contains("24 h at most"), "{}", month.1);
    assert!(fine.0 < 300, "{:?}", fine.1);
    assert!(event.0 < 300, "a three-day event in a hall: {:?}", event.1);
    // Nothing refused was stored.
    gw.stop().await.unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    for id in ["plant", "office", "month", "ghost-1", "old-1"] {
        let key = kombinat::domain::BookingKey {
            source: SourceId::parse("test").unwrap(),
            external_id: kombinat::domain::ExternalId::parse(id).unwrap(),
        };
        assert!(store.booking(&key).unwrap().is_none(), "{id}");
    }
}
