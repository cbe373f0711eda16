//! Attacks on a running gateway, over its real sockets (mosquitto and HTTP), each tried many
//! times and counted: MQTT clients without a key, with another device's key, a captured tap
//! replayed, a captured decision replayed to a door node, a topic flooded; HTTP without a
//! session, a viewer on operator endpoints, a forged CSRF token, a password guessed again and
//! again, oversized bodies, and script and SQL-ish strings in the text fields the dashboard
//! shows. Prints `attack: NAME refused R/T` for each (goal: all refused) and checks the gateway
//! still serves at the end.

mod support;

use std::time::Duration;

use kombinat::service;
use kombinat_protocol::auth::Signed;
use kombinat_protocol::door::Decision;
use serde_json::{json, Value};
use support::*;

/// Tried and refused, per attack, printed at the end.
#[derive(Default)]
struct Tally(Vec<(&'static str, usize, usize)>);

impl Tally {
    fn add(&mut self, name: &'static str, tried: usize, refused: usize) {
        println!("attack: {name} refused {refused}/{tried}");
        self.0.push((name, tried, refused));
    }
}

/// Decisions heard on any door within `within`.
async fn decisions(node: &mut DoorNode, within: Duration) -> Vec<Decision> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some((topic, payload))) = tokio::time::timeout_at(deadline, node.rx.recv()).await {
        if topic.ends_with("/decision") {
            out.push(serde_json::from_slice(&payload).unwrap());
        }
    }
    out
}

struct Http {
    base: String,
    agent: ureq::Agent,
}

/// A browser's session: its cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Http {
    fn new(addr: std::net::SocketAddr) -> Http {
        Http {
            base: format!("http://{addr}"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(20)))
                .build()
                .into(),
        }
    }

    /// A request; the status and the body.
    fn call(
        &self,
        method: &str,
        path: &str,
        who: Option<(&str, &str)>,
        body: Option<&[u8]>,
    ) -> (u16, String) {
        match self.call_once(method, path, who, body) {
            // No answer at all: the server may have closed the kept-alive connection this
            // request went out on (it does after answering a request whose body it did not
            // read), so it is asked again on a new one. A second failure is the answer.
            (0, _) => self.call_once(method, path, who, body),
            answer => answer,
        }
    }

    fn call_once(
        &self,
        method: &str,
        path: &str,
        who: Option<(&str, &str)>,
        body: Option<&[u8]>,
    ) -> (u16, String) {
        let uri = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&uri);
        if let Some((cookie, csrf)) = who {
            req = req.header("Cookie", cookie).header("X-CSRF-Token", csrf);
        }
        let req = req
            .header("Content-Type", "application/json")
            .body(body.map(<[u8]>::to_vec).unwrap_or_default())
            .unwrap();
        match self.agent.run(req) {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut()
                    .with_config()
                    .limit(64 << 20)
                    .read_to_string()
                    .unwrap_or_default(),
            ),
            // The server may close on a body it will not read to the end: refused too.
            Err(e) => (0, e.to_string()),
        }
    }

    fn login(&self, name: &str, password: &str) -> (u16, Option<Session>) {
        let body = json!({"name": name, "password": password}).to_string();
        let uri = format!("{}/api/v1/session", self.base);
        let mut r = self
            .agent
            .post(&uri)
            .header("Content-Type", "application/json")
            .send(body.as_str())
            .unwrap();
        let status = r.status().as_u16();
        if status != 200 {
            return (status, None);
        }
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        let csrf = v["csrf"].as_str().unwrap().to_string();
        (status, Some(Session { cookie, csrf }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_refused_and_the_gateway_still_serves() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data);
    let site = site_path();
    let viewer_pw = add_staff(&site, &data, "vera", "viewer");
    let operator_pw = add_staff(&site, &data, "olena", "operator");
    let admin_pw = add_staff(&site, &data, "adam", "admin");
    // The production broker's own access control, generated from the same registry.
    let Some((_acl_broker, acl_port, _, _)) = acl_mosquitto(dir.path(), &data) else {
        return;
    };
    let mut cfg = config(&data, &broker.url());
    cfg.http = Some("127.0.0.1:0".parse().unwrap());
    let gw = service::start(cfg).await.unwrap();
    assert!(gw.ready(Duration::from_secs(20)).await);
    let http_addr = gw.http_addr.unwrap();
    let http = Http::new(http_addr);
    let addr = format!("127.0.0.1:{}", broker.port).parse().unwrap();
    let watch = vec!["kombinat/v1/door/+/decision".to_string()];
    let mut node = DoorNode::connect_with(addr, "door-cowork", "d-cowork-in", key(1), &watch).await;
    let mut tally = Tally::default();
    const N: usize = 20;

    // A legitimate tap is answered: the baseline, and a tap to capture.
    let t = node.tap(card(STAFF_CARD));
    node.send_tap(&t).await;
    let d = node.decision(Duration::from_secs(5)).await;
    assert!(d.allow && d.tap == t.counter);
    let captured_tap = serde_json::to_vec(&t).unwrap();
    let captured_decision = d.clone();

    // MQTT, at the production broker: no account, a wrong password, another device's password;
    // and a device's own account writing another door's tap topic.
    let cowork_pw = kombinat::mosquitto::broker_password(&key(1));
    let meeting_pw = kombinat::mosquitto::broker_password(&key(2));
    let mut refused = 0;
    let logins: [Option<(&str, &str)>; 3] = [
        None,
        Some(("door-cowork", "not-its-password")),
        Some(("door-cowork", &meeting_pw)),
    ];
    for (i, login) in logins.iter().cycle().take(N).enumerate() {
        let (_c, mut rx) = broker_client(&format!("intruder-{i}"), *login, acl_port);
        // Refused means the broker said no (not a broker that never answered).
        refused += usize::from(
            broker_connected(&mut rx)
                .await
                .is_err_and(|e| e != "no answer"),
        );
    }
    tally.add(
        "mqtt client without a key or with another device's",
        N,
        refused,
    );
    let (gw_c, mut gw_rx) = broker_client(
        "kombinat-gateway-watch",
        Some(("kombinat-gateway", GATEWAY_BROKER_PASSWORD)),
        acl_port,
    );
    broker_connected(&mut gw_rx).await.unwrap();
    gw_c.subscribe("kombinat/v1/door/+/tap", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let (cowork, mut cowork_rx) = broker_client(
        "door-cowork-acl",
        Some(("door-cowork", &cowork_pw)),
        acl_port,
    );
    broker_connected(&mut cowork_rx).await.unwrap();
    // Its own door's topic gets through (the watcher hears it): the refusals below are the ACL's.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        cowork
            .publish(
                "kombinat/v1/door/d-cowork-in/tap",
                rumqttc::QoS::AtLeastOnce,
                false,
                b"{}".to_vec(),
            )
            .await
            .unwrap();
        if !broker_messages(&mut gw_rx, Duration::from_millis(500))
            .await
            .is_empty()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "its own topic gets through"
        );
    }
    for _ in 0..N {
        cowork
            .publish(
                "kombinat/v1/door/d-meeting-1/tap",
                rumqttc::QoS::AtLeastOnce,
                false,
                b"{}".to_vec(),
            )
            .await
            .unwrap();
    }
    let through = broker_messages(&mut gw_rx, Duration::from_secs(1)).await;
    tally.add(
        "mqtt device writing another door's topic",
        N,
        N - through.len(),
    );

    // MQTT: taps nobody signed, signed with another device's key, claimed for another door.
    let mut forged = Vec::new();
    for i in 0..N {
        let mut t = node.tap(card(STAFF_CARD));
        match i % 3 {
            0 => t.mac = Default::default(),
            1 => t.sign(&key(2)), // door-meeting's key
            _ => {
                t.door = kombinat::domain::DoorId::parse("d-meeting-1").unwrap();
                t.sign(&key(1));
            }
        }
        forged.push(t.counter);
        node.send(t.door, serde_json::to_vec(&t).unwrap()).await;
    }
    let heard = decisions(&mut node, Duration::from_secs(2)).await;
    let answered = heard.iter().filter(|d| forged.contains(&d.tap)).count();
    tally.add(
        "mqtt tap without a valid key or for another door",
        N,
        N - answered,
    );

    // A captured tap sent again.
    for _ in 0..N {
        node.send(node.door, captured_tap.clone()).await;
    }
    let heard = decisions(&mut node, Duration::from_secs(2)).await;
    tally.add("mqtt captured tap replayed", N, N - heard.len());

    // A captured decision replayed to a door node: the firmware's own controller judges it.
    {
        use kombinat_firmware::door::{DoorConfig, DoorController, Refusal};
        let mut door =
            DoorController::<64, 16>::new(DoorConfig::new(node.door, node.device, key(1)));
        let at = kombinat_firmware::Time {
            ms: 1_000,
            unix: chrono::Utc::now().timestamp() as u64,
        };
        // First sight: the counter is new (no tap waits for it, so it opens nothing either).
        assert_eq!(
            door.decision(&captured_decision, at),
            Err(Refusal::NotWaiting)
        );
        let refused = (0..N)
            .filter(|_| door.decision(&captured_decision, at) == Err(Refusal::Replayed))
            .count();
        tally.add("mqtt captured decision replayed to the door", N, refused);
    }

    // A topic flooded with garbage and with forged taps, as fast as the client can.
    let flood = 20_000;
    let malformed_before = gw.stats.malformed.lock().unwrap().values().sum::<u64>();
    for i in 0..flood {
        let payload = if i % 2 == 0 {
            format!("{{\"v\":1,\"junk\":{i}}}").into_bytes()
        } else {
            vec![0xff; 64]
        };
        node.client
            .publish(
                "kombinat/v1/door/d-cowork-in/tap",
                rumqttc::QoS::AtMostOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }
    // Still serving: a real tap after the flood is answered.
    let t = node.tap(card(STAFF_CARD));
    node.send_tap(&t).await;
    let heard = decisions(&mut node, Duration::from_secs(15)).await;
    assert!(
        heard.iter().any(|d| d.tap == t.counter && d.allow),
        "a tap after the flood is answered"
    );
    let malformed = gw.stats.malformed.lock().unwrap().values().sum::<u64>() - malformed_before;
    let shed = gw
        .stats
        .link
        .shed
        .load(std::sync::atomic::Ordering::Relaxed);
    println!("flood: {flood} messages, {malformed} counted malformed, {shed} shed unread");
    // Each one refused as malformed (counted) or shed unread under the flood, none decided.
    let decided = heard.iter().filter(|d| d.tap != t.counter).count();
    let refused = (malformed + shed) as usize - decided.min((malformed + shed) as usize);
    tally.add(
        "mqtt flood of garbage on a tap topic",
        flood,
        refused.min(flood),
    );

    // HTTP without a session: every guarded endpoint.
    let mut refused = 0;
    for (m, p) in GUARDED {
        let (status, body) = http.call(m, p, None, Some(b"{}"));
        if status == 401 {
            refused += 1;
        } else {
            println!("not refused without a session: {m} {p}: {status} {body}");
        }
    }
    tally.add("http without a session", GUARDED.len(), refused);
    // A refused request whose body comes after its head (as a slow client or a busy network
    // sends it): the server answers without reading the body and closes, so it must say so,
    // or a client sends its next request down a dying connection and gets no answer.
    let head = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(http_addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            b"POST /api/v1/members HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n",
        )
        .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "an answer before the body");
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&answer).to_lowercase()
    };
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    // A refusal without a body leaves the connection open for the next request.
    let head = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(http_addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /api/v1/site HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).to_lowercase()
    };
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");

    // A viewer on operator and admin endpoints.
    let (_, viewer) = http.login("vera", &viewer_pw);
    let viewer = viewer.unwrap();
    let vw = Some((viewer.cookie.as_str(), viewer.csrf.as_str()));
    let higher: &[(&str, &str, Value)] = &[
        ("POST", "/api/v1/doors/d-cowork-in/unlock", json!({})),
        ("PUT", "/api/v1/mode", json!({"mode": "lockdown"})),
        ("POST", "/api/v1/members", json!({"id": "x1", "name": "X"})),
        ("PATCH", "/api/v1/members/ivan", json!({"name": "Y"})),
        (
            "POST",
            "/api/v1/members/ivan/cards",
            json!({"card": "04AA0001"}),
        ),
        ("DELETE", "/api/v1/cards/04D4E5F6", json!({})),
        ("GET", "/api/v1/staff", json!({})),
        (
            "POST",
            "/api/v1/staff",
            json!({"name": "eve", "role": "admin", "password": "0123456789ab"}),
        ),
        ("PATCH", "/api/v1/staff/vera", json!({"role": "admin"})),
        ("DELETE", "/api/v1/staff/olena", json!({})),
    ];
    let refused = higher
        .iter()
        .filter(|(m, p, b)| http.call(m, p, vw, Some(b.to_string().as_bytes())).0 == 403)
        .count();
    tally.add(
        "http viewer session on operator and admin endpoints",
        higher.len(),
        refused,
    );

    // An operator's session with a forged CSRF token, or none.
    let (_, op) = http.login("olena", &operator_pw);
    let op = op.unwrap();
    let changes: &[(&str, &str, Value)] = &[
        ("POST", "/api/v1/doors/d-cowork-in/unlock", json!({})),
        ("PUT", "/api/v1/mode", json!({"mode": "lockdown"})),
        ("DELETE", "/api/v1/session", json!({})),
    ];
    let mut tried = 0;
    let mut refused = 0;
    for forged in ["", "0000", &op.csrf[..op.csrf.len() - 1], &viewer.csrf] {
        for (m, p, b) in changes {
            tried += 1;
            let s = http.call(
                m,
                p,
                Some((&op.cookie, forged)),
                Some(b.to_string().as_bytes()),
            );
            refused += usize::from(s.0 == 403);
        }
    }
    tally.add("http forged or missing CSRF token", tried, refused);
    let (status, mode) = http.call("GET", "/api/v1/mode", Some((&op.cookie, &op.csrf)), None);
    assert_eq!(status, 200);
    assert!(
        !mode.contains("lockdown"),
        "the mode did not change: {mode}"
    );

    // Script and SQL-ish strings in the free-text fields the dashboard shows (identifiers such as
    // ids, organisations and staff names take only a-z, 0-9, '.', '_', '-'): stored and given
    // back as the very text (data, never markup); the page escapes (no HTML built from data,
    // and a policy that runs no inline script).
    let hostile = [
        "<script>alert('x')</script>",
        "'; DROP TABLE members; --",
        "<img src=x onerror=alert(1)>",
        "\" onmouseover=\"alert(1)",
        "Robert'); DELETE FROM audit;--",
        "{{7*7}} ${7*7} </textarea><svg onload=alert(1)>",
    ];
    let (_, admin) = http.login("adam", &admin_pw);
    let admin = admin.unwrap();
    let ad = Some((admin.cookie.as_str(), admin.csrf.as_str()));
    let mut tried = 0;
    let mut refused = 0;
    for (i, h) in hostile.iter().enumerate() {
        tried += 1;
        let body = json!({"id": format!("evil-{i}"), "name": h});
        let (s, said) = http.call(
            "POST",
            "/api/v1/members",
            ad,
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(s, 201, "{said}");
        let (s, body) = http.call("GET", &format!("/api/v1/members/evil-{i}"), vw, None);
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        refused += usize::from(s == 200 && v["name"] == *h);
    }
    let js: String = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboard/js"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(
            !js.contains(sink),
            "the dashboard builds no markup from data ({sink})"
        );
    }
    let page = http.agent.get(&format!("{}/", http.base)).call().unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    tally.add("hostile strings in displayed text fields", tried, refused);

    // Guessing a password: wrong ones, then the right one while locked out.
    let guesses = 30;
    let mut refused = 0;
    let mut limited = 0;
    for i in 0..guesses {
        let (s, _) = http.login("adam", &format!("guess-{i}-password"));
        refused += usize::from(s != 200);
        limited += usize::from(s == 429);
    }
    let (s, _) = http.login("adam", &admin_pw);
    refused += usize::from(s != 200);
    println!(
        "brute force: {limited} of {guesses} guesses answered 429; the right password then: {s}"
    );
    assert_eq!(
        s, 429,
        "locked out even with the right password for a while"
    );
    tally.add("http brute-force login", guesses + 1, refused);

    // Oversized bodies, to sign-in and to an admin's endpoint.
    let big = |n: usize| format!("{{\"name\":\"{}\"}}", "a".repeat(n)).into_bytes();
    let mut tried = 0;
    let mut refused = 0;
    for size in [100_000, 2 << 20, 16 << 20] {
        for (m, p, who) in [
            ("POST", "/api/v1/session", None),
            ("POST", "/api/v1/members", ad),
            (
                "PUT",
                "/api/v1/mode",
                Some((op.cookie.as_str(), op.csrf.as_str())),
            ),
        ] {
            tried += 1;
            let (s, _) = http.call(m, p, who, Some(&big(size)));
            refused += usize::from(s == 413 || s == 0);
        }
    }
    tally.add("http oversized bodies", tried, refused);

    // Still serving, and everything refused.
    assert!(healthy(&http.base));
    let t = node.tap(card(STAFF_CARD));
    node.send_tap(&t).await;
    let heard = decisions(&mut node, Duration::from_secs(5)).await;
    assert!(heard.iter().any(|d| d.tap == t.counter && d.allow));
    let all: usize = tally.0.iter().map(|t| t.1).sum();
    let refused: usize = tally.0.iter().map(|t| t.2).sum();
    println!("attacks: {refused} of {all} refused; the gateway still serves");
    for (name, tried, refused) in &tally.0 {
        assert_eq!(tried, refused, "{name}: {refused}/{tried} refused");
    }
    gw.stop().await.unwrap();
}
