//! The outbox reaches the booking system: a receiver on loopback that is down, then answers
//! 500, then takes events; every event arrives, in order, once per id, signed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use kombinat::store::{OutboxEvent, SledStore, Store};
use kombinat::webhook::{self, Backoff, WebhookConfig, WebhookStats};

const SECRET: &str = "a-secret-of-sixteen+";

/// A request's headers (lower-case names) and body.
type Request = (Vec<(String, String)>, Vec<u8>);

/// Reads one request.
fn read_request(stream: &mut std::net::TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    if !line.starts_with("POST ") {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((headers, body))
}

#[test]
fn every_event_arrives_once_per_id_in_order_and_signed_through_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    let events: Vec<OutboxEvent> = (1..=5)
        .map(|n| OutboxEvent {
            id: 0,
            kind: "no_show".into(),
            at: Utc::now(),
            body: format!(r#"{{"v":1,"n":{n}}}"#),
        })
        .collect();
    let ids = store.push_outbox(events).unwrap();
    // A port nobody listens on yet: the receiver is down.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(WebhookStats::default());
    let sender = {
        let (store, stop, stats) = (store.clone(), stop.clone(), stats.clone());
        std::thread::spawn(move || {
            webhook::run(
                store,
                WebhookConfig {
                    url: format!("http://127.0.0.1:{port}/hook"),
                    secret: SECRET.into(),
                },
                Backoff {
                    first: Duration::from_millis(20),
                    max: Duration::from_millis(100),
                },
                stop,
                stats,
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.failed.load(Ordering::Relaxed) < 2 {
        assert!(
            Instant::now() < deadline,
            "the sender tries while the receiver is down"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Up: refuses the first two requests with 500, then takes every event.
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let taken: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let bad_signatures = Arc::new(Mutex::new(0));
    let receiver = {
        let (taken, bad) = (taken.clone(), bad_signatures.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let Some((h, body)) = read_request(&mut s) else {
                    continue;
                };
                n += 1;
                let get = |k: &str| h.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
                let ts: i64 = get("x-kombinat-timestamp").unwrap().parse().unwrap();
                let sig = get("x-kombinat-signature").unwrap();
                if sig != format!("sha256={}", webhook::sign(SECRET, ts, &body))
                    || (Utc::now().timestamp() - ts).abs() > 60
                {
                    *bad.lock().unwrap() += 1;
                }
                let status = if n <= 2 {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                if n > 2 {
                    let id: u64 = get("x-kombinat-event-id").unwrap().parse().unwrap();
                    assert_eq!(get("x-kombinat-event").as_deref(), Some("no_show"));
                    let mut t = taken.lock().unwrap();
                    t.push((id, String::from_utf8(body).unwrap()));
                    if t.len() == 5 {
                        return;
                    }
                }
            }
        })
    };
    receiver.join().unwrap();
    while stats.delivered.load(Ordering::Relaxed) < 5 || !store.outbox(10).unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "delivered and removed from the outbox"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let taken = taken.lock().unwrap().clone();
    assert_eq!(
        taken.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ids,
        "each once, in order"
    );
    assert_eq!(taken[0].1, r#"{"v":1,"n":1}"#);
    assert_eq!(
        *bad_signatures.lock().unwrap(),
        0,
        "every signature verifies"
    );
    assert!(
        stats.failed.load(Ordering::Relaxed) >= 4,
        "two refused connections, two 500s"
    );
}

#[path = "support/mod.rs"]
mod support;

/// A room becoming occupied reaches the booking system through the running service's webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_becoming_occupied_is_sent_to_the_booking_system() {
    use support::*;
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    {
        let got = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let Some((h, body)) = read_request(&mut s) else {
                    continue;
                };
                let get = |k: &str| h.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
                let ts: i64 = get("x-kombinat-timestamp").unwrap().parse().unwrap();
                assert_eq!(
                    get("x-kombinat-signature").unwrap(),
                    format!("sha256={}", webhook::sign(SECRET, ts, &body))
                );
                let _ = write!(s, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
                got.lock().unwrap().push((
                    get("x-kombinat-event").unwrap(),
                    String::from_utf8(body).unwrap(),
                ));
            }
        });
    }
    let mut cfg = config(dir.path(), "embedded");
    cfg.webhook = Some(WebhookConfig {
        url: format!("http://127.0.0.1:{port}/hook"),
        secret: SECRET.into(),
    });
    let gw = kombinat::service::start(cfg).await.unwrap();
    assert!(gw.ready(Duration::from_secs(10)).await);
    let node = DoorNode::connect(gw.mqtt_addr, "sensor-meeting", "d-meeting-3", key(4)).await;
    // Let the first tick see every room empty, then two people come in.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.client
        .publish(
            "kombinat/v1/sensor/sensor-meeting/reading",
            rumqttc::QoS::AtLeastOnce,
            false,
            r#"{"v":1,"device":"sensor-meeting","counter":1,"reading":{"counter":{"in":2,"out":0}}}"#,
        )
        .await
        .unwrap();
    until(
        Duration::from_secs(15),
        "an occupancy event delivered",
        || {
            got.lock().unwrap().iter().any(|(kind, body)| {
                kind == "occupancy"
                    && body.contains(r#""room":"meeting-1""#)
                    && body.contains(r#""occupied":true"#)
            })
        },
    )
    .await;
    gw.stop().await.unwrap();
}
