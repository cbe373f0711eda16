//! The dashboard's API through `oneshot` on the running gateway's router (a real core, a real
//! sled store, the embedded broker): sign-in and sessions, roles, CSRF, every endpoint's
//! happy path, the access log and its CSV, the OpenAPI document, the live stream.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use futures_util::StreamExt;
use kombinat::service;
use kombinat::staff::{Staff, StaffName, StaffRole};
use kombinat::store::{Actor, SledStore, Store};
use serde_json::{json, Value};
use support::*;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";

/// A data directory as `prepare` makes it, with a viewer, an operator and an admin.
fn prepare_staff(dir: &std::path::Path) {
    prepare(dir);
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).unwrap());
    let staff = Staff::load(store, chrono::Utc::now()).unwrap();
    for (name, role) in [
        ("vera", StaffRole::Viewer),
        ("olena", StaffRole::Operator),
        ("adam", StaffRole::Admin),
    ] {
        staff
            .add(
                StaffName::parse(name).unwrap(),
                role,
                PASSWORD,
                Actor::Cli("test".into()),
                chrono::Utc::now(),
            )
            .unwrap();
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A browser's session: its cookie and CSRF token.
#[derive(Clone, Default)]
struct Session {
    cookie: String,
    csrf: String,
}

async fn call(
    gw: &service::Running,
    method: Method,
    path: &str,
    who: Option<&Session>,
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(s) = who {
        req = req
            .header(header::COOKIE, &s.cookie)
            .header("x-csrf-token", &s.csrf);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = gw.app().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), 16 << 20)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn login(gw: &service::Running, name: &str) -> Session {
    let r = call(
        gw,
        Method::POST,
        "/api/v1/session",
        None,
        Some(json!({"name": name, "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{name} signs in: {}", r.text());
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains("Secure"),
        "not Secure over plain HTTP unless configured"
    );
    Session {
        cookie: cookie.split(';').next().unwrap().to_string(),
        csrf: r.json()["csrf"].as_str().unwrap().to_string(),
    }
}

async fn gateway(dir: &std::path::Path) -> service::Running {
    let gw = service::start(config(dir, "embedded")).await.unwrap();
    assert!(gw.ready(Duration::from_secs(20)).await);
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_a_call_without_a_session_and_the_wrong_role() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    for (m, p) in GUARDED {
        let r = call(&gw, m.parse().unwrap(), p, None, Some(json!({}))).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{m} {p} without a session"
        );
    }
    // A forged cookie is no session.
    let forged = Session {
        cookie: "kombinat_session=00ff".into(),
        csrf: "x".into(),
    };
    let r = call(&gw, Method::GET, "/api/v1/site", Some(&forged), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Health and the document need nobody.
    assert_ne!(
        call(&gw, Method::GET, "/health", None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&gw, Method::GET, "/api/v1/openapi.json", None, None)
            .await
            .status,
        StatusCode::OK
    );

    let viewer = login(&gw, "vera").await;
    let operator = login(&gw, "olena").await;
    for (m, p, body) in [
        ("POST", "/api/v1/doors/d-cowork-in/unlock", json!({})),
        ("PUT", "/api/v1/mode", json!({"mode": "lockdown"})),
        ("POST", "/api/v1/members", json!({"id": "x1", "name": "X"})),
        ("GET", "/api/v1/staff", json!({})),
    ] {
        let r = call(
            &gw,
            m.parse().unwrap(),
            p,
            Some(&viewer),
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "a viewer on {m} {p}");
        if p.contains("members") || p.contains("staff") {
            let r = call(&gw, m.parse().unwrap(), p, Some(&operator), Some(body)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "an operator on {m} {p}");
        }
    }
    // Nothing changed.
    let mode = call(&gw, Method::GET, "/api/v1/mode", Some(&viewer), None).await;
    assert_eq!(mode.json()["mode"], "normal");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_without_the_sessions_csrf_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let operator = login(&gw, "olena").await;
    let other = login(&gw, "vera").await;
    for csrf in ["", "forged", other.csrf.as_str()] {
        let s = Session {
            cookie: operator.cookie.clone(),
            csrf: csrf.into(),
        };
        let r = call(
            &gw,
            Method::PUT,
            "/api/v1/mode",
            Some(&s),
            Some(json!({"mode": "lockdown"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "CSRF token {csrf:?}");
        assert!(r.text().contains("CSRF"));
    }
    let r = call(&gw, Method::GET, "/api/v1/mode", Some(&operator), None).await;
    assert_eq!(r.json()["mode"], "normal", "nothing changed");
    // With it, the mode changes and the log says who.
    let r = call(
        &gw,
        Method::PUT,
        "/api/v1/mode",
        Some(&operator),
        Some(json!({"mode": "lockdown"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["mode"], "lockdown");
    let log = call(
        &gw,
        Method::GET,
        "/api/v1/audit?kind=mode",
        Some(&operator),
        None,
    )
    .await;
    let e = &log.json()["entries"][0];
    assert_eq!(
        (e["actor"].as_str(), e["details"].as_str()),
        (Some("staff:olena"), Some("lockdown"))
    );
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_rate_limited_and_sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let admin = login(&gw, "adam").await;
    for _ in 0..kombinat::staff::LOGIN_FAILURES {
        let r = call(
            &gw,
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"name": "vera", "password": "guess guess guess"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // A name being guessed never locks its owner out: the right password signs in; a wrong
    // one past the limit is answered as limited (and costs time).
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/session",
        None,
        Some(json!({"name": "adam", "password": "guess guess guess"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    login(&gw, "vera").await;
    for _ in 0..kombinat::staff::LOGIN_FAILURES {
        call(
            &gw,
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"name": "vera", "password": "guess guess guess"})),
        )
        .await;
    }
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/session",
        None,
        Some(json!({"name": "vera", "password": "guess guess guess"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    login(&gw, "vera").await;
    // Another name is not held up by vera's.
    login(&gw, "olena").await;
    gw.stop().await.unwrap();

    let gw = gateway(dir.path()).await;
    let r = call(&gw, Method::GET, "/api/v1/session", Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "the session outlived the restart");
    assert_eq!(r.json()["role"], "admin");
    // Signing out ends it.
    let r = call(&gw, Method::DELETE, "/api/v1/session", Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(&gw, Method::GET, "/api/v1/session", Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_see_the_day_s_bookings_and_operators_book_and_cancel_at_the_desk() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let viewer = login(&gw, "vera").await;
    let operator = login(&gw, "olena").await;
    let book = |who, body| call(&gw, Method::POST, "/api/v1/schedule", Some(who), Some(body));
    // Today's: Ivan's meeting from the booking system (see `prepare`), with its organiser.
    let today = call(&gw, Method::GET, "/api/v1/schedule", Some(&viewer), None).await;
    assert_eq!(today.status, StatusCode::OK);
    let b = &today.json()["bookings"][0];
    assert_eq!(
        (
            &b["title"],
            &b["organiser_name"],
            &b["source"],
            &b["no_show"]
        ),
        (
            &json!("Ivan's meeting"),
            &json!("Ivan"),
            &json!("test"),
            &json!(false)
        ),
        "{b}"
    );
    // The site says which rooms may be booked at the desk (the form lists those).
    let site = call(&gw, Method::GET, "/api/v1/site", Some(&viewer), None)
        .await
        .json();
    let desk = |id: &str| {
        site["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["bookable_at_desk"]
            .clone()
    };
    assert_eq!(
        (desk("meeting-2"), desk("office-101")),
        (json!(true), json!(false))
    );
    // A viewer books nothing; an operator books a free meeting room for an hour, not an office.
    let start = chrono::Utc::now() + chrono::Duration::hours(1);
    let end = start + chrono::Duration::hours(1);
    let new = |room: &str| {
        json!({"room": room, "title": "Walk-in meeting", "organiser": "ivan",
               "start": start.to_rfc3339(), "end": end.to_rfc3339()})
    };
    let r = book(&viewer, new("meeting-2")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = book(&operator, new("office-101")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    // The desk books meetings, a day at most: three days as an "event" is refused.
    let mut long = new("meeting-2");
    long["kind"] = json!("event");
    long["end"] = json!((start + chrono::Duration::days(3)).to_rfc3339());
    let r = book(&operator, long).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let r = book(&operator, new("meeting-2")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let key = r.json()["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("dashboard/"), "{key}");
    let day = start
        .with_timezone(&chrono_tz::Europe::Kyiv)
        .date_naive()
        .to_string();
    let listed = call(
        &gw,
        Method::GET,
        &format!("/api/v1/schedule?day={day}&room=meeting-2"),
        Some(&viewer),
        None,
    )
    .await;
    let all = listed.json();
    let mine: Vec<&serde_json::Value> = all["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["key"] == key.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{}", listed.text());
    assert_eq!(mine[0]["status"], "confirmed");
    // Cancelled by an operator (not a viewer), and in the log as theirs.
    let path = format!("/api/v1/schedule/{key}");
    assert_eq!(
        call(&gw, Method::DELETE, &path, Some(&viewer), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = call(&gw, Method::DELETE, &path, Some(&operator), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let listed = call(
        &gw,
        Method::GET,
        &format!("/api/v1/schedule?day={day}&room=meeting-2"),
        Some(&viewer),
        None,
    )
    .await;
    assert!(
        listed.text().contains("\"status\":\"cancelled\""),
        "{}",
        listed.text()
    );
    let log = call(
        &gw,
        Method::GET,
        "/api/v1/audit?limit=100",
        Some(&viewer),
        None,
    )
    .await;
    let by_olena = log.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["actor"] == "staff:olena"
                && e["details"].as_str().unwrap_or("").contains("dashboard/")
        })
        .count();
    assert!(
        by_olena >= 2,
        "booked and cancelled as olena's: {}",
        log.text()
    );
    // A day that is not one, a room that is not one.
    for q in ["day=tomorrow", "room=nowhere"] {
        let r = call(
            &gw,
            Method::GET,
            &format!("/api/v1/schedule?{q}"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
    }
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_show_in_the_log_says_the_booking_s_title_organiser_and_time() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    // Ivan's meeting (see `prepare`), judged a no-show.
    {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .append_audit(&[kombinat::store::AuditEntry {
                at: chrono::Utc::now(),
                actor: kombinat::store::Actor::System,
                event: kombinat::store::AuditEvent::NoShow {
                    booking: kombinat::domain::BookingKey {
                        source: "test".parse().unwrap(),
                        external_id: kombinat::domain::ExternalId::parse("ivan-now").unwrap(),
                    },
                    room: "meeting-1".parse().unwrap(),
                },
            }])
            .unwrap();
    }
    let gw = gateway(dir.path()).await;
    let s = login(&gw, "vera").await;
    let page = call(
        &gw,
        Method::GET,
        "/api/v1/audit?kind=no_show",
        Some(&s),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let e = &page.json()["entries"][0];
    assert_eq!(e["title"], "Ivan's meeting", "{e}");
    assert_eq!(
        (&e["member"], &e["member_name"]),
        (&serde_json::json!("ivan"), &serde_json::json!("Ivan"))
    );
    let start = chrono::DateTime::parse_from_rfc3339(e["start"].as_str().unwrap()).unwrap();
    let end = chrono::DateTime::parse_from_rfc3339(e["end"].as_str().unwrap()).unwrap();
    assert_eq!(end - start, chrono::Duration::hours(4), "{e}");
    // Found by its organiser, and in the export.
    let mine = call(
        &gw,
        Method::GET,
        "/api/v1/audit?kind=no_show&member=ivan",
        Some(&s),
        None,
    )
    .await;
    assert_eq!(mine.json()["entries"].as_array().unwrap().len(), 1);
    let csv = call(
        &gw,
        Method::GET,
        "/api/v1/audit.csv?kind=no_show",
        Some(&s),
        None,
    )
    .await;
    assert!(
        csv.text()
            .lines()
            .next()
            .unwrap()
            .ends_with(",title,start,end,at_local"),
        "{}",
        csv.text()
    );
    assert!(csv.text().contains("Ivan's meeting"), "{}", csv.text());
    // Its time also on the site's clock, as the page shows it.
    let row: Vec<String> = csv
        .text()
        .lines()
        .find(|l| l.contains("Ivan's meeting"))
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let at = chrono::DateTime::parse_from_rfc3339(&row[0]).unwrap();
    assert_eq!(
        row.last().unwrap(),
        &at.with_timezone(&chrono_tz::Europe::Kyiv)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    );
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_see_the_building_unlock_a_door_and_search_and_export_the_log() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    let viewer = login(&gw, "vera").await;
    let operator = login(&gw, "olena").await;

    // The site, with the shapes the plan is drawn from.
    let site = call(&gw, Method::GET, "/api/v1/site", Some(&viewer), None)
        .await
        .json();
    let rooms = site["rooms"].as_array().unwrap();
    assert!(rooms.len() > 20 && rooms.iter().all(|r| r["shape"].as_array().is_some()));
    assert!(
        rooms
            .iter()
            .filter(|r| r["shape"].as_array().unwrap().len() >= 4)
            .count()
            > 20
    );
    assert!(site["floors"].as_array().unwrap().len() >= 3);

    // Taps: one allowed, one denied, then the log, filtered, and its CSV.
    for c in [STAFF_CARD, NOBODY_CARD] {
        let t = node.tap(card(c));
        node.send_tap(&t).await;
        node.decision(Duration::from_secs(10)).await;
    }
    let log = call(
        &gw,
        Method::GET,
        "/api/v1/audit?kind=decision",
        Some(&viewer),
        None,
    )
    .await
    .json();
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{log}");
    assert_eq!(entries[0]["reason"], "deny.no_right", "newest first");
    assert_eq!(entries[0]["member_name"], "Ivan");
    assert_eq!(entries[0]["room"], "coworking");
    assert_eq!(entries[1]["reason"], "allow.staff");
    let denied = call(
        &gw,
        Method::GET,
        "/api/v1/audit?reason=deny&door=d-cowork-in",
        Some(&viewer),
        None,
    )
    .await
    .json();
    assert_eq!(denied["entries"].as_array().unwrap().len(), 1);
    let marta = call(
        &gw,
        Method::GET,
        "/api/v1/audit?member=marta",
        Some(&viewer),
        None,
    )
    .await
    .json();
    assert_eq!(marta["entries"].as_array().unwrap().len(), 1);
    // As staff type it: part of the name, any case, or part of the id.
    for typed in ["Mart", "MARTA (staff)", "art"] {
        let found = call(
            &gw,
            Method::GET,
            &format!(
                "/api/v1/audit?member={}",
                typed
                    .replace(' ', "%20")
                    .replace('(', "%28")
                    .replace(')', "%29")
            ),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(found.status, StatusCode::OK, "{typed}: {}", found.text());
        assert_eq!(
            found.json()["entries"].as_array().unwrap().len(),
            1,
            "{typed}"
        );
    }
    // Paging: one at a time, backwards, the cursor carries on.
    let p1 = call(
        &gw,
        Method::GET,
        "/api/v1/audit?kind=decision&limit=1",
        Some(&viewer),
        None,
    )
    .await
    .json();
    let next = p1["next"].as_str().unwrap().to_string();
    let p2 = call(
        &gw,
        Method::GET,
        &format!("/api/v1/audit?kind=decision&limit=1&before={next}"),
        Some(&viewer),
        None,
    )
    .await
    .json();
    assert_eq!(p2["entries"][0]["reason"], "allow.staff");
    let bad = call(
        &gw,
        Method::GET,
        "/api/v1/audit?reason=deny.nonsense",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let csv = call(
        &gw,
        Method::GET,
        "/api/v1/audit.csv?kind=decision",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(csv.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let mut rows = csv::Reader::from_reader(csv.body.as_slice());
    let head: Vec<String> = rows.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(head, kombinat::http::audit::CSV_HEADER);
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            &rows[0][1],
            &rows[0][2],
            &rows[0][4],
            &rows[0][5],
            &rows[0][6],
            &rows[0][7],
            &rows[0][8]
        ),
        (
            "decision",
            "d-cowork-in",
            "ivan",
            "Ivan",
            // A viewer's export: the card's last four digits only.
            format!("…{}", &NOBODY_CARD[4..]).as_str(),
            "deny.no_right",
            "false"
        )
    );
    assert_eq!(&rows[1][7], "allow.staff");

    // Live: the whole view, rooms, doors, devices, alarms.
    let view = call(&gw, Method::GET, "/api/v1/live", Some(&viewer), None)
        .await
        .json();
    assert_eq!(view["mode"], "normal");
    assert_eq!(view["rooms"].as_array().unwrap().len(), rooms.len());
    assert!(view["seq"].as_u64().unwrap() > 0);
    let rooms_now = call(&gw, Method::GET, "/api/v1/rooms", Some(&viewer), None)
        .await
        .json();
    assert_eq!(rooms_now.as_array().unwrap().len(), rooms.len());
    let doors = call(&gw, Method::GET, "/api/v1/doors", Some(&viewer), None)
        .await
        .json();
    let cowork = doors
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["door"] == "d-cowork-in")
        .unwrap();
    assert_eq!(cowork["device"], "door-cowork");
    let devices = call(&gw, Method::GET, "/api/v1/devices", Some(&viewer), None)
        .await
        .json();
    assert!(devices
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["device"] == "door-cowork"));
    assert!(
        call(&gw, Method::GET, "/api/v1/alarms", Some(&viewer), None)
            .await
            .json()
            .is_array()
    );
    let day = call(
        &gw,
        Method::GET,
        "/api/v1/rooms/meeting-1",
        Some(&viewer),
        None,
    )
    .await
    .json();
    assert_eq!(day["bookings"][0]["title"], "Ivan's meeting");
    assert!(day["devices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["device"] == "sensor-meeting"));
    assert_eq!(
        call(
            &gw,
            Method::GET,
            "/api/v1/rooms/nowhere",
            Some(&viewer),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let usage = call(
        &gw,
        Method::GET,
        "/api/v1/utilisation?room=meeting-1",
        Some(&viewer),
        None,
    )
    .await
    .json();
    assert_eq!(usage["rooms"][0]["heat_map"].as_array().unwrap().len(), 7);
    assert_eq!(usage["rooms"][0]["bookings"], 1);

    // A remote unlock reaches the door node, signed, and the log says who.
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/doors/d-cowork-in/unlock",
        Some(&operator),
        Some(json!({"ms": 3000})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let cmd = node.next_on("command", Duration::from_secs(10)).await;
    let cmd: Value = serde_json::from_slice(&cmd).unwrap();
    assert_eq!(cmd["action"]["unlock"]["ms"], 3000, "{cmd}");
    let changes = call(
        &gw,
        Method::GET,
        "/api/v1/audit?kind=change",
        Some(&viewer),
        None,
    )
    .await
    .json();
    assert!(changes["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"] == "staff:olena"
            && e["details"]
                .as_str()
                .unwrap()
                .contains("remote unlock of door d-cowork-in")));
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/doors/d-main/unlock",
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "a door without a device: {}",
        r.text()
    );
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/doors/d-cowork-in/unlock",
        Some(&operator),
        Some(json!({"ms": 600000})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_members_cards_and_staff_and_every_change_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let admin = login(&gw, "adam").await;
    let r = call(&gw, Method::POST, "/api/v1/members", Some(&admin),
        Some(json!({"id": "petro", "name": "Petro <script>alert(1)</script>", "email": "petro@example.org", "plan": "coworking-resident", "cards": ["04:11:22:33"]}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let m = r.json();
    assert_eq!(
        m["name"], "Petro <script>alert(1)</script>",
        "stored as given; the page escapes it"
    );
    assert_eq!(m["cards"][0]["card"], "04112233");
    let again = call(
        &gw,
        Method::POST,
        "/api/v1/members",
        Some(&admin),
        Some(json!({"id": "petro", "name": "P"})),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let bad = call(
        &gw,
        Method::POST,
        "/api/v1/members",
        Some(&admin),
        Some(json!({"id": "p2", "name": "P", "plan": "no-such-plan"})),
    )
    .await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad.text()
    );
    let bad = call(
        &gw,
        Method::POST,
        "/api/v1/members",
        Some(&admin),
        Some(json!({"id": "p3", "name": "P", "shoe_size": 44})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let taken = call(
        &gw,
        Method::POST,
        "/api/v1/members/petro/cards",
        Some(&admin),
        Some(json!({"card": STAFF_CARD})),
    )
    .await;
    assert_eq!(
        taken.status,
        StatusCode::CONFLICT,
        "Marta holds that card: {}",
        taken.text()
    );
    let r = call(
        &gw,
        Method::PATCH,
        "/api/v1/members/petro",
        Some(&admin),
        Some(json!({"suspended": "lost the key twice"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "suspended");
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/members/petro/cards",
        Some(&admin),
        Some(json!({"card": "04AABBCC"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["cards"].as_array().unwrap().len(), 2);
    assert_eq!(
        call(
            &gw,
            Method::DELETE,
            "/api/v1/cards/04112233",
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(
            &gw,
            Method::DELETE,
            "/api/v1/cards/04112233",
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    let found = call(
        &gw,
        Method::GET,
        "/api/v1/members?q=PETRO",
        Some(&admin),
        None,
    )
    .await
    .json();
    assert_eq!(found["total"], 1);
    assert_eq!(
        found["members"][0]["cards"].as_array().unwrap().len(),
        1,
        "only cards in force"
    );
    let one = call(
        &gw,
        Method::GET,
        "/api/v1/members/petro",
        Some(&admin),
        None,
    )
    .await
    .json();
    assert!(one["cards"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["revoked_at"].is_string()));

    // Staff accounts.
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/staff",
        Some(&admin),
        Some(json!({"name": "ihor", "role": "viewer", "password": "short"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/staff",
        Some(&admin),
        Some(json!({"name": "ihor", "role": "viewer", "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let ihor = login(&gw, "ihor").await;
    let r = call(
        &gw,
        Method::PATCH,
        "/api/v1/staff/ihor",
        Some(&admin),
        Some(json!({"role": "operator"})),
    )
    .await;
    assert_eq!(r.json()["role"], "operator");
    assert_eq!(
        call(&gw, Method::GET, "/api/v1/session", Some(&ihor), None)
            .await
            .json()["role"],
        "operator",
        "a new role applies at once"
    );
    let list = call(&gw, Method::GET, "/api/v1/staff", Some(&admin), None).await;
    assert!(
        !list.text().contains("argon2"),
        "no hash leaves the gateway"
    );
    assert_eq!(
        call(
            &gw,
            Method::DELETE,
            "/api/v1/staff/ihor",
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&gw, Method::GET, "/api/v1/session", Some(&ihor), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "removed, signed out"
    );
    assert_eq!(
        call(
            &gw,
            Method::DELETE,
            "/api/v1/staff/adam",
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::CONFLICT,
        "the last admin stays"
    );

    let changes = call(
        &gw,
        Method::GET,
        "/api/v1/audit?kind=change&limit=1000",
        Some(&admin),
        None,
    )
    .await
    .json();
    let by_adam: Vec<&str> = changes["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "staff:adam")
        .map(|e| e["details"].as_str().unwrap())
        .collect();
    for said in [
        "member petro added",
        "suspended: lost the key twice",
        "04AABBCC issued to petro",
        "04112233 of petro revoked",
        "staff ihor added as viewer",
        "staff ihor removed",
    ] {
        assert!(
            by_adam.iter().any(|d| d.contains(said)),
            "{said:?} in {by_adam:?}"
        );
    }
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_and_covers_the_api() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let doc = call(&gw, Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (m, p) in GUARDED {
        let template = p
            .replace("/test/ivan-now", "/{source}/{external_id}")
            .replace("/vera", "/{name}")
            .replace("/meeting-1", "/{id}")
            .replace("/d-cowork-in", "/{id}")
            .replace("/ivan", "/{id}")
            .replace("/04D4E5F6", "/{card}");
        let op = &paths
            .get(&template)
            .unwrap_or_else(|| panic!("{template} is in the document"))[m.to_lowercase()];
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{m} {template} has responses"
        );
    }
    for p in ["/api/v1/bookings", "/health", "/metrics"] {
        assert!(paths.contains_key(p), "{p}");
    }
    // A path parameter is one the path's template names; filters are query parameters, and
    // optional ones are not required.
    for (template, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            for param in op["parameters"].as_array().into_iter().flatten() {
                let name = param["name"].as_str().unwrap();
                match param["in"].as_str().unwrap() {
                    "path" => assert!(
                        template.contains(&format!("{{{name}}}")),
                        "{method} {template}: path parameter {name} is not in the path"
                    ),
                    "query" if template == "/api/v1/audit" => {
                        assert_ne!(param["required"], true, "{template}: {name} is optional")
                    }
                    _ => {}
                }
            }
        }
    }
    // Every reference resolves to a schema in the document.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20);
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} resolves"
        );
    }
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_starts_with_a_snapshot_and_carries_decisions_and_the_page_has_its_headers()
{
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    let viewer = login(&gw, "vera").await;
    let req = Request::get("/api/v1/events")
        .header(header::COOKIE, &viewer.cookie)
        .body(Body::empty())
        .unwrap();
    let res = gw.app().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = res.into_body().into_data_stream();
    let mut seen = String::new();
    let mut next = async || {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream goes on")
            .unwrap();
        String::from_utf8_lossy(&chunk).into_owned()
    };
    seen.push_str(&next().await);
    assert!(seen.starts_with("event: snapshot\n"), "{seen}");
    assert!(seen.contains("\"rooms\":["));
    let t = node.tap(card(STAFF_CARD));
    node.send_tap(&t).await;
    node.decision(Duration::from_secs(10)).await;
    while !seen.contains("event: decision") {
        seen.push_str(&next().await);
    }
    let data = seen
        .split("event: decision\ndata: ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    let d: Value = serde_json::from_str(data).unwrap();
    assert_eq!(d["decision"]["reason"], "allow.staff");
    assert_eq!(d["decision"]["member_name"], "Marta (staff)");
    // Signed out, the stream ends at its next event.
    let r = call(&gw, Method::DELETE, "/api/v1/session", Some(&viewer), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let t = node.tap(card(STAFF_CARD));
    node.send_tap(&t).await;
    node.decision(Duration::from_secs(10)).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = body.next().await {
            assert!(
                !String::from_utf8_lossy(&chunk.unwrap()).contains("event: decision"),
                "no decision reaches a signed-out stream"
            );
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ended");
    let viewer = login(&gw, "vera").await;

    // The page and the API carry the security headers; the page loads nothing from elsewhere.
    for path in ["/", "/api/v1/site", "/dashboard/js/app.js"] {
        let r = call(&gw, Method::GET, path, Some(&viewer), None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers[header::X_FRAME_OPTIONS], "DENY");
    }
    for (name, _, text) in kombinat::http::dashboard::FILES {
        let text = text.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{name} refers to nothing outside the gateway"
        );
    }
    // An oversized body is refused before it is read.
    let big = json!({"name": "x".repeat(3 << 20), "password": "y"});
    let r = call(&gw, Method::POST, "/api/v1/session", None, Some(big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    gw.stop().await.unwrap();
}

#[test]
fn every_reason_code_and_every_string_is_in_both_languages() {
    let text = include_str!("../../dashboard/js/i18n.js");
    let block = |lang: &str, next: &str| -> Vec<String> {
        let start = text.find(&format!("  {lang}: {{")).unwrap();
        let end = text[start..].find(next).map_or(text.len(), |e| start + e);
        text[start..end]
            .lines()
            .flat_map(|l| l.split(", "))
            .filter_map(|l| {
                l.trim()
                    .strip_prefix('\'')
                    .and_then(|l| l.split_once('\''))
                    .map(|(k, _)| k.to_string())
            })
            .collect()
    };
    let uk = block("uk", "\n  en: {");
    let en = block("en", "\n};");
    assert!(uk.len() > 150, "{}", uk.len());
    assert_eq!(uk, en, "the same keys, in the same order");
    for r in kombinat::domain::Reason::ALL {
        assert!(
            uk.contains(&format!("reason.{}", r.code())),
            "{} in words",
            r.code()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_finds_entries_by_their_time_even_when_a_late_upload_came_between() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let now = chrono::Utc::now();
    {
        // An hour ago a change; then a door node's offline decision from three days ago,
        // uploaded after it (its key comes later, its time earlier).
        let store = SledStore::open(dir.path()).unwrap();
        let offline = kombinat::store::AuditEntry {
            at: now - chrono::Duration::days(3),
            actor: Actor::Door("d-cowork-in".parse().unwrap()),
            event: kombinat::store::AuditEvent::Decision {
                door: "d-cowork-in".parse().unwrap(),
                card: None,
                reason: kombinat::domain::Reason::OfflineListed,
                unlock_ms: 5000,
                member: None,
                booking: None,
                offline: true,
                tap: Some(7),
            },
        };
        store
            .append_audit(&[
                kombinat::store::AuditEntry::change(
                    now - chrono::Duration::hours(1),
                    Actor::System,
                    "an hour ago",
                ),
                offline,
            ])
            .unwrap();
        store.flush().unwrap();
    }
    let gw = gateway(dir.path()).await;
    let viewer = login(&gw, "vera").await;
    let from = (now - chrono::Duration::hours(2)).to_rfc3339();
    let q = format!("/api/v1/audit?from={}", urlencode(&from));
    let page = call(&gw, Method::GET, &q, Some(&viewer), None).await.json();
    let details: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["details"].as_str())
        .collect();
    assert!(details.contains(&"an hour ago"), "{page}");
    assert!(
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["offline"] == false),
        "the old one is outside the period"
    );
    let day = (now - chrono::Duration::days(3))
        .with_timezone(&chrono_tz::Europe::Kyiv)
        .format("%Y-%m-%d")
        .to_string();
    let q = format!("/api/v1/audit?from={day}&until={day}%2023:59&kind=decision");
    let page = call(&gw, Method::GET, &q, Some(&viewer), None).await.json();
    let e = &page["entries"].as_array().unwrap();
    assert_eq!(e.len(), 1, "{page}");
    assert_eq!(
        (e[0]["offline"].as_bool(), e[0]["reason"].as_str()),
        (Some(true), Some("allow.offline_listed"))
    );
    gw.stop().await.unwrap();
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_keeps_entries_for_its_retention_period_only() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Written three years ago (the store's first entry, so its key is that old too).
        let store = SledStore::open(dir.path()).unwrap();
        store
            .append_audit(&[kombinat::store::AuditEntry::change(
                chrono::Utc::now() - chrono::Duration::days(3 * 365),
                Actor::System,
                "three years ago",
            )])
            .unwrap();
        store.flush().unwrap();
    }
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let viewer = login(&gw, "vera").await;
    let mut said = Vec::new();
    for _ in 0..100 {
        let page = call(
            &gw,
            Method::GET,
            "/api/v1/audit?kind=change&limit=1000",
            Some(&viewer),
            None,
        )
        .await
        .json();
        said = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["details"].as_str().map(str::to_string))
            .collect();
        if said.iter().any(|d| d.contains("(retention)")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        said.iter()
            .any(|d| d.contains("access log: 1 entries older than 730 days removed")),
        "{said:?}"
    );
    assert!(!said.iter().any(|d| d == "three years ago"), "{said:?}");
    assert!(
        said.iter().any(|d| d.contains("staff vera added")),
        "the recent ones stay"
    );
    gw.stop().await.unwrap();
}

/// A sign-in as it reaches the gateway from `peer`, with `forwarded` as `X-Forwarded-For`.
async fn sign_in_from(
    gw: &service::Running,
    peer: &str,
    forwarded: Option<&str>,
    name: &str,
    password: &str,
) -> StatusCode {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    let mut req = req
        .body(Body::from(
            json!({"name": name, "password": password}).to_string(),
        ))
        .unwrap();
    let peer: std::net::SocketAddr = format!("{peer}:40000").parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    gw.app().oneshot(req).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_the_trusted_proxy_one_client_s_failures_lock_out_that_client_only() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let mut c = config(dir.path(), "embedded");
    c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let gw = service::start(c).await.unwrap();
    assert!(gw.ready(Duration::from_secs(20)).await);
    let proxy = "127.0.0.1";
    for _ in 0..kombinat::staff::LOGIN_FAILURES {
        let s = sign_in_from(&gw, proxy, Some("10.0.0.1"), "adam", "guess guess guess").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // The guessing client is held off, even with the right password...
    assert_eq!(
        sign_in_from(&gw, proxy, Some("10.0.0.1"), "adam", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...a client that puts another address first in the header is still itself...
    assert_eq!(
        sign_in_from(&gw, proxy, Some("10.0.0.9, 10.0.0.1"), "olena", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...and everyone else behind the same proxy signs in, the admin too.
    assert_eq!(
        sign_in_from(&gw, proxy, Some("10.0.0.2"), "adam", PASSWORD).await,
        StatusCode::OK
    );
    assert_eq!(
        sign_in_from(&gw, proxy, Some("10.0.0.3"), "olena", PASSWORD).await,
        StatusCode::OK
    );
    // A peer that is not a trusted proxy cannot name another address to get round its limit.
    for _ in 0..kombinat::staff::LOGIN_FAILURES {
        sign_in_from(
            &gw,
            "127.0.0.9",
            Some("10.0.0.50"),
            "vera",
            "guess guess guess",
        )
        .await;
    }
    assert_eq!(
        sign_in_from(&gw, "127.0.0.9", Some("10.0.0.51"), "olena", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_admin_card_numbers_are_masked_in_members_the_log_and_its_export() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let whole = STAFF_CARD;
    let masked = format!("…{}", &STAFF_CARD[STAFF_CARD.len() - 4..]);
    for (who, sees_whole) in [("vera", false), ("olena", false), ("adam", true)] {
        let s = login(&gw, who).await;
        let members = call(&gw, Method::GET, "/api/v1/members?q=marta", Some(&s), None).await;
        assert_eq!(members.status, StatusCode::OK);
        let card = members.json()["members"][0]["cards"][0]["card"].clone();
        let one = call(&gw, Method::GET, "/api/v1/members/marta", Some(&s), None).await;
        let log = call(&gw, Method::GET, "/api/v1/audit?limit=1000", Some(&s), None).await;
        let csv = call(&gw, Method::GET, "/api/v1/audit.csv", Some(&s), None).await;
        assert_eq!(csv.status, StatusCode::OK);
        // Looked up by the card's number in another spelling: found for an admin only (below
        // admin, a number in hand does not tell whose card it is).
        let by_card = call(
            &gw,
            Method::GET,
            "/api/v1/members?q=04:a1:b2:c3",
            Some(&s),
            None,
        )
        .await;
        let found: Vec<String> = by_card.json()["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(found.len(), usize::from(sees_whole), "{who}: {found:?}");
        if sees_whole {
            assert_eq!(found, ["marta"]);
        }
        if sees_whole {
            assert_eq!(card, whole, "{who}");
            for r in [&one, &log, &csv] {
                assert!(r.text().contains(whole), "{who}: {}", r.text());
            }
        } else {
            assert_eq!(card, masked.as_str(), "{who}");
            for r in [&members, &one, &log, &csv] {
                assert!(!r.text().contains(whole), "{who}: {}", r.text());
            }
            assert!(log.text().contains(&masked), "{who}: {}", log.text());
        }
    }
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_shows_the_head_counts_it_took_up_from_its_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let viewer = login(&gw, "vera").await;
    // The meeting room's people counter counts three in.
    let node = DoorNode::connect(gw.mqtt_addr, "sensor-meeting", "d-meeting-1", key(4)).await;
    let reading = kombinat_protocol::sensor::Reading {
        v: kombinat_protocol::door::VERSION,
        device: "sensor-meeting".parse().unwrap(),
        counter: 1,
        reading: kombinat_protocol::sensor::Measurement::Counter { entered: 3, out: 0 },
    };
    node.client
        .publish(
            kombinat_protocol::Topic::Reading("sensor-meeting".parse().unwrap()).to_string(PREFIX),
            rumqttc::QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&reading).unwrap(),
        )
        .await
        .unwrap();
    let count = |r: Reply| r.json()["now"]["count"].as_u64();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while count(
        call(
            &gw,
            Method::GET,
            "/api/v1/rooms/meeting-1",
            Some(&viewer),
            None,
        )
        .await,
    ) != Some(3)
    {
        assert!(tokio::time::Instant::now() < deadline, "counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(node);
    gw.stop().await.unwrap();
    // Started again: the first answer after ready already has the three (not 0 until the core's
    // first tick a second later).
    let gw = gateway(dir.path()).await;
    let viewer = login(&gw, "vera").await;
    let room = call(
        &gw,
        Method::GET,
        "/api/v1/rooms/meeting-1",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(count(room), Some(3));
    gw.stop().await.unwrap();
}

/// The standing alarms, until `f` holds of them.
async fn alarms_until(
    gw: &service::Running,
    who: &Session,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let a = call(gw, Method::GET, "/api/v1/alarms", Some(who), None)
            .await
            .json();
        if f(&a) {
            return a;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_acknowledges_an_alarm_with_a_note_and_it_is_new_work_once_raised_again() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    let viewer = login(&gw, "vera").await;
    let operator = login(&gw, "olena").await;
    let forced = json!({"alarm": "forced", "door": "d-cowork-in", "note": "Taras is going there"});
    let is_forced = |a: &Value| a["alarm"] == "forced" && a["door"] == "d-cowork-in";

    // Nothing standing yet: nothing to acknowledge.
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/alarms/ack",
        Some(&operator),
        Some(forced.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());

    node.send_state(true).await;
    alarms_until(&gw, &viewer, "raised", |a| {
        a.as_array().unwrap().iter().any(is_forced)
    })
    .await;
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/alarms/ack",
        Some(&viewer),
        Some(forced.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a viewer does not");
    let long = json!({"alarm": "forced", "door": "d-cowork-in", "note": "x".repeat(201)});
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/alarms/ack",
        Some(&operator),
        Some(long),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/alarms/ack",
        Some(&operator),
        Some(forced.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let a = alarms_until(&gw, &viewer, "acknowledged", |a| {
        a.as_array()
            .unwrap()
            .iter()
            .any(|x| is_forced(x) && x["ack"]["by"] == "olena")
    })
    .await;
    let a = a
        .as_array()
        .unwrap()
        .iter()
        .find(|x| is_forced(x))
        .unwrap()
        .clone();
    assert_eq!(a["ack"]["note"], "Taras is going there");
    assert!(a["ack"]["at"].as_i64().unwrap() >= a["since"].as_i64().unwrap());
    let log = call(
        &gw,
        Method::GET,
        "/api/v1/audit?kind=change",
        Some(&viewer),
        None,
    )
    .await
    .json();
    let entry = &log["entries"][0];
    assert_eq!(entry["actor"], "staff:olena", "{log}");
    assert_eq!(
        entry["details"],
        "acknowledged the alarm forced at door d-cowork-in: Taras is going there"
    );

    // Cleared, then forced again: a new alarm, not yet taken in hand.
    node.send_state(false).await;
    alarms_until(&gw, &viewer, "cleared", |a| {
        !a.as_array().unwrap().iter().any(is_forced)
    })
    .await;
    node.send_state(true).await;
    let a = alarms_until(&gw, &viewer, "raised again", |a| {
        a.as_array().unwrap().iter().any(is_forced)
    })
    .await;
    let a = a
        .as_array()
        .unwrap()
        .iter()
        .find(|x| is_forced(x))
        .unwrap()
        .clone();
    assert!(a.get("ack").is_none(), "{a}");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_is_inside_names_people_by_their_last_tap_beside_what_the_counters_count() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let viewer = login(&gw, "vera").await;
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-cowork", "d-cowork-in", key(1)).await;
    // Marta is let into the coworking floor; Ivan is refused there: he is not inside it.
    for c in [STAFF_CARD, NOBODY_CARD] {
        let t = node.tap(card(c));
        node.send_tap(&t).await;
        node.decision(Duration::from_secs(10)).await;
    }
    // The meeting room's counter counts three nobody named.
    let counter = DoorNode::connect(gw.mqtt_addr, "sensor-meeting", "d-meeting-1", key(4)).await;
    let reading = kombinat_protocol::sensor::Reading {
        v: kombinat_protocol::door::VERSION,
        device: "sensor-meeting".parse().unwrap(),
        counter: 1,
        reading: kombinat_protocol::sensor::Measurement::Counter { entered: 3, out: 0 },
    };
    counter
        .client
        .publish(
            kombinat_protocol::Topic::Reading("sensor-meeting".parse().unwrap()).to_string(PREFIX),
            rumqttc::QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&reading).unwrap(),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let inside = loop {
        let r = call(&gw, Method::GET, "/api/v1/inside", Some(&viewer), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        let meeting = v["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["room"] == "meeting-1" && r["count"] == 3);
        if meeting {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let room = |id: &str| {
        inside["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["room"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {inside}"))
    };
    let cowork = room("coworking");
    let people = cowork["people"].as_array().unwrap();
    assert_eq!(people.len(), 1, "{cowork}");
    assert_eq!(people[0]["name"], "Marta (staff)");
    assert_eq!(people[0]["door"], "d-cowork-in");
    let meeting = room("meeting-1");
    assert_eq!(meeting["people"].as_array().unwrap().len(), 0);
    assert_eq!(meeting["unnamed"], 3, "counted, not named");
    assert_eq!(inside["named"], 1);
    assert!(inside["at_least"].as_u64().unwrap() >= 4, "{inside}");
    assert!(
        !inside.to_string().contains("Ivan"),
        "refused is not inside"
    );

    // Marta goes on into the meeting room: she is there now, no longer on the floor.
    let mut meeting_door =
        DoorNode::connect(gw.mqtt_addr, "door-meeting", "d-meeting-1", key(2)).await;
    let t = meeting_door.tap(card(STAFF_CARD));
    meeting_door.send_tap(&t).await;
    meeting_door.decision(Duration::from_secs(10)).await;
    let inside = call(&gw, Method::GET, "/api/v1/inside", Some(&viewer), None)
        .await
        .json();
    let marta: Vec<_> = inside["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["people"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["member"] == "marta")
        })
        .map(|r| r["room"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(marta, vec!["meeting-1"], "{inside}");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_locks_one_door_down_over_a_restart_and_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let viewer = login(&gw, "vera").await;
    let operator = login(&gw, "olena").await;
    let lock = |locked: bool| json!({ "locked": locked });
    let r = call(
        &gw,
        Method::PUT,
        "/api/v1/doors/d-meeting-1/lockdown",
        Some(&viewer),
        Some(lock(true)),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a viewer does not");
    let r = call(
        &gw,
        Method::PUT,
        "/api/v1/doors/no-such-door/lockdown",
        Some(&operator),
        Some(lock(true)),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Ivan's meeting lets him into meeting room 1.
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-meeting", "d-meeting-1", key(2)).await;
    let tap = async |node: &mut DoorNode, c: &str| {
        let t = node.tap(card(c));
        node.send_tap(&t).await;
        node.decision(Duration::from_secs(10)).await.reason
    };
    assert!(tap(&mut node, NOBODY_CARD).await.is_allow());
    let r = call(
        &gw,
        Method::PUT,
        "/api/v1/doors/d-meeting-1/lockdown",
        Some(&operator),
        Some(lock(true)),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(tap(&mut node, NOBODY_CARD).await.code(), "deny.lockdown");
    assert!(tap(&mut node, STAFF_CARD).await.is_allow(), "staff pass");
    let doors = call(&gw, Method::GET, "/api/v1/doors", Some(&viewer), None)
        .await
        .json();
    let meeting = doors
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["door"] == "d-meeting-1")
        .unwrap()
        .clone();
    assert_eq!(meeting["locked_down"], true, "{meeting}");
    drop(node);
    gw.stop().await.unwrap();

    // Still locked down after a restart; released, Ivan passes again.
    let gw = gateway(dir.path()).await;
    let operator = login(&gw, "olena").await;
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-meeting", "d-meeting-1", key(2)).await;
    node.counter = 100;
    assert_eq!(tap(&mut node, NOBODY_CARD).await.code(), "deny.lockdown");
    let r = call(
        &gw,
        Method::PUT,
        "/api/v1/doors/d-meeting-1/lockdown",
        Some(&operator),
        Some(lock(false)),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(tap(&mut node, NOBODY_CARD).await.is_allow());
    let log = call(
        &gw,
        Method::GET,
        "/api/v1/audit?kind=change",
        Some(&operator),
        None,
    )
    .await
    .json();
    let said: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "staff:olena")
        .map(|e| e["details"].as_str().unwrap())
        .filter(|d| d.starts_with("door "))
        .collect();
    assert_eq!(
        said,
        [
            "door d-meeting-1 released from its lockdown",
            "door d-meeting-1 locked down (staff and security only)"
        ]
    );
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_issues_a_pin_shown_once_that_opens_the_door_and_revokes_it() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let operator = login(&gw, "olena").await;
    let admin = login(&gw, "adam").await;
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/members/ivan/pin",
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "admins only");
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/members/nobody/pin",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &gw,
        Method::DELETE,
        "/api/v1/members/ivan/pin",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "he holds none yet");

    let r = call(
        &gw,
        Method::POST,
        "/api/v1/members/ivan/pin",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let issued = r.json();
    let pin = issued["pin"].as_str().unwrap().to_string();
    assert!(
        pin.len() == 6 && pin.chars().all(|c| c.is_ascii_digit()),
        "{pin}"
    );
    assert_eq!(issued["member"]["pins"], 1);
    // Nobody reads it again: not the member's record, not the log.
    let record = call(&gw, Method::GET, "/api/v1/members/ivan", Some(&admin), None).await;
    assert!(!record.text().contains(&pin));
    let log = call(
        &gw,
        Method::GET,
        "/api/v1/audit?kind=change",
        Some(&admin),
        None,
    )
    .await;
    assert!(
        log.text().contains("PIN **** issued to ivan"),
        "{}",
        log.text()
    );
    assert!(!log.text().contains(&pin));

    // Ivan's meeting room opens to his PIN; once revoked, it does not.
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-meeting", "d-meeting-1", key(2)).await;
    let credential = kombinat::domain::Credential::Pin(kombinat::domain::Pin::parse(&pin).unwrap());
    let t = node.tap(credential);
    node.send_tap(&t).await;
    assert!(node
        .decision(Duration::from_secs(10))
        .await
        .reason
        .is_allow());
    let r = call(
        &gw,
        Method::DELETE,
        "/api/v1/members/ivan/pin",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let t = node.tap(credential);
    node.send_tap(&t).await;
    assert!(!node
        .decision(Duration::from_secs(10))
        .await
        .reason
        .is_allow());
    let record = call(&gw, Method::GET, "/api/v1/members/ivan", Some(&admin), None).await;
    assert_eq!(record.json()["pins"], 0);
    gw.stop().await.unwrap();
}

/// Whether any file under `dir` holds `needle`.
fn in_files(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if std::fs::read(&p)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            found.push(p);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_erases_a_member_from_the_dashboard_and_the_next_start_writes_the_store_anew() {
    let dir = tempfile::tempdir().unwrap();
    prepare_staff(dir.path());
    let gw = gateway(dir.path()).await;
    let operator = login(&gw, "olena").await;
    let admin = login(&gw, "adam").await;
    let email = "ivan.franko@example.org";
    let r = call(
        &gw,
        Method::PATCH,
        "/api/v1/members/ivan",
        Some(&admin),
        Some(json!({ "email": email })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Ivan goes into his meeting: the log names him.
    let mut node = DoorNode::connect(gw.mqtt_addr, "door-meeting", "d-meeting-1", key(2)).await;
    let t = node.tap(card(NOBODY_CARD));
    node.send_tap(&t).await;
    assert!(node
        .decision(Duration::from_secs(10))
        .await
        .reason
        .is_allow());

    let confirm = |id: &str| Some(json!({ "confirm": id }));
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/members/ivan/erase",
        Some(&operator),
        confirm("ivan"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "admins only");
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/members/ivan/erase",
        Some(&admin),
        confirm("iva"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the id typed again"
    );
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/members/ivan/erase",
        Some(&admin),
        confirm("ivan"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let pseudonym = r.json()["pseudonym"].as_str().unwrap().to_string();
    assert!(pseudonym.starts_with("erased-"), "{pseudonym}");

    // Gone from the running gateway at once: the record, the log's names, his card.
    let r = call(&gw, Method::GET, "/api/v1/members/ivan", Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let log = call(
        &gw,
        Method::GET,
        "/api/v1/audit?limit=1000",
        Some(&admin),
        None,
    )
    .await
    .text();
    for gone in ["\"ivan\"", "Ivan\"", NOBODY_CARD, email] {
        assert!(!log.contains(gone), "{gone} in the log");
    }
    assert!(log.contains(&pseudonym));
    let t = node.tap(card(NOBODY_CARD));
    node.send_tap(&t).await;
    assert!(
        !node
            .decision(Duration::from_secs(10))
            .await
            .reason
            .is_allow(),
        "his card opens nothing"
    );
    let r = call(
        &gw,
        Method::POST,
        "/api/v1/members/ivan/erase",
        Some(&admin),
        confirm("ivan"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "nobody left to erase");
    drop(node);
    gw.stop().await.unwrap();
    assert!(dir.path().join(kombinat::store::rewrite::PENDING).exists());
    // Until then sled keeps the old versions in its files: this is what the rewrite is for.
    assert!(
        !in_files(dir.path(), email).is_empty(),
        "sled's files hold the old record"
    );

    // The next start writes the store anew: nothing of him is left in its files.
    let gw = gateway(dir.path()).await;
    assert!(!dir.path().join(kombinat::store::rewrite::PENDING).exists());
    let admin = login(&gw, "adam").await;
    let marta = call(
        &gw,
        Method::GET,
        "/api/v1/members/marta",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(marta.status, StatusCode::OK, "the others are all there");
    gw.stop().await.unwrap();
    assert_eq!(
        in_files(dir.path(), email),
        Vec::<std::path::PathBuf>::new()
    );
}
