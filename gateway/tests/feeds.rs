//! A room's calendar feed through the real service: served by an axum server on loopback with
//! an ETag,
//! polled with conditional GET (304), changed (a meeting moved, one removed), then failing (500,
//! then garbage): the last good state is kept and the feed alarm raised, and cleared when the
//! feed reads again.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Duration as Days, Utc};
use kombinat::domain::{BookingStatus, Member, MemberId, Window};
use kombinat::service;
use kombinat::store::{Actor, AlarmKind, AuditEvent, SledStore, Store};
use support::*;

#[derive(Clone)]
enum Serve {
    Calendar(String, String),
    Fail,
    Garbage,
}

fn calendar(events: &[(&str, u32)]) -> String {
    let day = (Utc::now() + Days::days(2)).format("%Y%m%d").to_string();
    let mut s = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:test\r\n");
    for (uid, h) in events {
        s += &format!(
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART:{day}T{h:02}0000Z\r\nDTEND:{day}T{:02}0000Z\r\nSUMMARY:Review\r\nORGANIZER:mailto:olena@example.org\r\nEND:VEVENT\r\n",
            h + 1
        );
    }
    s + "END:VCALENDAR\r\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_is_polled_reconciled_and_its_failures_keep_the_last_good_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data);
    {
        let site = Arc::new(kombinat::site_file::load(&site_path()).unwrap());
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&data).unwrap());
        let mut g = kombinat::registry::Registry::open(site, store, Utc::now()).unwrap();
        let mut m = Member::new(MemberId::parse("olena").unwrap(), "Olena");
        m.email = Some(kombinat::domain::Email::parse("olena@example.org").unwrap());
        g.add_member(m, Actor::Cli("test".into()), Utc::now())
            .unwrap();
    }
    // The feed server: what it serves, and the If-None-Match of every request it had.
    let serve = Arc::new(Mutex::new(Serve::Calendar(
        calendar(&[("a@x", 10), ("b@x", 14)]),
        "\"v1\"".into(),
    )));
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    // An axum server on loopback plays the calendar host.
    let app = {
        let (serve, seen) = (serve.clone(), seen.clone());
        axum::Router::new().route(
            "/meeting-1.ics",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let (serve, seen) = (serve.clone(), seen.clone());
                async move {
                    use axum::http::StatusCode;
                    let inm = headers
                        .get("if-none-match")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    seen.lock().unwrap().push(inm.clone());
                    let now = serve.lock().unwrap().clone();
                    match now {
                        Serve::Calendar(_, etag) if inm.as_deref() == Some(&etag) => {
                            (StatusCode::NOT_MODIFIED, [("etag", etag)], String::new())
                        }
                        Serve::Calendar(body, etag) => (StatusCode::OK, [("etag", etag)], body),
                        Serve::Fail => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            [("etag", String::new())],
                            String::new(),
                        ),
                        Serve::Garbage => (
                            StatusCode::OK,
                            [("etag", "\"g\"".to_string())],
                            "<html>502</html>".to_string(),
                        ),
                    }
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let site = std::fs::read_to_string(site_path()).unwrap()
        + &format!(
            "\n[[feeds]]\nid = \"ical-meeting-1\"\nroom = \"meeting-1\"\nurl = \"http://127.0.0.1:{port}/meeting-1.ics\"\ninterval_s = 1\n"
        );
    let site_file = dir.path().join("site.toml");
    std::fs::write(&site_file, site).unwrap();
    let mut cfg = config(&data, "embedded");
    cfg.site = site_file;
    let gw = service::start(cfg.clone()).await.unwrap();
    let t = Duration::from_secs(20);
    let asked = |etag: &'static str| {
        let seen = seen.clone();
        move || {
            seen.lock()
                .unwrap()
                .iter()
                .any(|x| x.as_deref() == Some(etag))
        }
    };
    // Read, then asked again conditionally (and answered 304).
    until(t, "a conditional GET with the first ETag", asked("\"v1\"")).await;
    // The morning meeting moves to 08:00, the afternoon one is removed.
    *serve.lock().unwrap() = Serve::Calendar(calendar(&[("a@x", 8)]), "\"v2\"".into());
    until(t, "a conditional GET with the second ETag", asked("\"v2\"")).await;
    let failures = || {
        gw.stats
            .feed_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    *serve.lock().unwrap() = Serve::Fail;
    until(t, "a failed read", || failures() >= 1).await;
    *serve.lock().unwrap() = Serve::Garbage;
    until(t, "a read that does not parse", || failures() >= 2).await;
    *serve.lock().unwrap() = Serve::Calendar(calendar(&[("a@x", 8)]), "\"v2\"".into());
    let n = seen.lock().unwrap().len();
    until(t, "a good read again", || {
        seen.lock().unwrap().len() >= n + 2
    })
    .await;
    // Failing when the gateway stops, good when it is back: the alarm raised before the
    // restart is cleared after it.
    *serve.lock().unwrap() = Serve::Fail;
    until(t, "a failure before the stop", || failures() >= 3).await;
    gw.stop().await.unwrap();
    *serve.lock().unwrap() = Serve::Calendar(calendar(&[("a@x", 8)]), "\"v2\"".into());
    let gw = service::start(cfg).await.unwrap();
    let read = || {
        gw.stats
            .feeds_read
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    until(t, "a good read after the restart", || read() >= 1).await;
    gw.stop().await.unwrap();

    let store = SledStore::open(&data).unwrap();
    let b = |ext: &str| {
        store
            .bookings()
            .unwrap()
            .into_iter()
            .find(|b| {
                b.key.source.as_str() == "ical-meeting-1"
                    && b.key.external_id.as_str().starts_with(ext)
            })
            .unwrap_or_else(|| panic!("no booking {ext}"))
    };
    let a = b("a@x");
    assert_eq!(a.status, BookingStatus::Confirmed);
    let Window::Timed { start, .. } = a.window else {
        panic!()
    };
    assert_eq!(
        start.format("%H:%M").to_string(),
        "08:00",
        "moved, and kept through the failures"
    );
    assert_eq!(
        b("b@x").status,
        BookingStatus::Cancelled,
        "removed from the feed"
    );
    let alarms: Vec<bool> = store
        .audit_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.entry.event {
            AuditEvent::Alarm {
                alarm: AlarmKind::FeedFailing,
                raised,
                ..
            } => Some(raised),
            _ => None,
        })
        .collect();
    assert_eq!(
        alarms,
        [true, false, true, false],
        "raised once on the first failure, cleared once; raised before a restart, cleared after it"
    );
}
