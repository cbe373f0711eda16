//! `kombinat demo` as a user runs it: started on free ports, it becomes healthy, decisions and
//! occupancy move within a bounded time, the gateway reads the simulated day's clock, and Ctrl-C
//! stops it cleanly.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::{free_port, get_signed, sign_in};

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut r = agent.get(url);
    if let Some(t) = token {
        r = r.header("Authorization", &format!("Bearer {t}"));
    }
    match r.call() {
        Ok(mut resp) => (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

/// `kombinat demo` with `args` on free ports: (http port, mqtt port, the process, its lines).
fn demo(args: &[&str]) -> (u16, u16, std::process::Child, mpsc::Receiver<String>) {
    let (http, mqtt) = (free_port(), free_port());
    let (http_at, mqtt_at) = (format!("127.0.0.1:{http}"), format!("127.0.0.1:{mqtt}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kombinat"))
        .args(["demo", "--http", &http_at, "--mqtt", &mqtt_at])
        .args(args)
        .env("RUST_LOG", "warn,rumqttd=off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the kombinat binary runs");
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (http, mqtt, child, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_comes_alive_and_stops_cleanly() {
    let (http, mqtt, mut child, lines) = demo(&["--speed", "60", "--start", "08:45"]);
    let started = Instant::now();
    // The simulated day: today if the Centre works today, else its next working day.
    let site = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/site.example.toml");
    let holidays = kombinat::site_file::load(std::path::Path::new(site))
        .unwrap()
        .holidays;
    let simulated_day =
        || kombinat::demo::working_day(chrono::Utc::now(), chrono_tz::Europe::Kyiv, &holidays);
    let day_at_start = simulated_day();
    let mut said = Vec::new();
    let token = loop {
        let l = lines
            .recv_timeout(Duration::from_secs(120))
            .expect("the demo prints its token");
        said.push(l.clone());
        if let Some(t) = l.trim().strip_prefix("token") {
            break t.trim().to_string();
        }
    };
    let base = format!("http://127.0.0.1:{http}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&format!("{base}/health"), None).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "healthy within a minute: {said:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Occupancy moves on MQTT; decisions show in the metrics.
    // As the demo says to watch it: with the broker's read-only account (no anonymous client is
    // let in).
    let watch = said
        .iter()
        .find_map(|l| l.trim().strip_prefix("watch"))
        .expect("the demo says how to watch the broker");
    let arg = |flag: &str| {
        let rest = &watch[watch.find(flag).expect(flag) + flag.len()..];
        rest.split_whitespace().next().unwrap().to_string()
    };
    let mut options = MqttOptions::new("demo-watcher", "127.0.0.1", mqtt);
    options.set_credentials(arg(" -u "), arg(" -P "));
    let (client, mut ev) = AsyncClient::new(options, 16);
    client
        .subscribe("kombinat/v1/room/+/occupancy", QoS::AtLeastOnce)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let occupied = loop {
        match tokio::time::timeout_at(deadline, ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let o: kombinat_protocol::room::Occupancy =
                    serde_json::from_slice(&p.payload).unwrap();
                if o.count > 0 {
                    break o.room.to_string();
                }
            }
            Ok(_) => {}
            Err(_) => panic!("no room filled within 90 s"),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let decisions = loop {
        let (status, text) = get(&format!("{base}/metrics"), Some(&token));
        assert_eq!(status, 200);
        let n: u64 = text
            .lines()
            .filter(|l| l.starts_with("kombinat_decisions_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        if n >= 5 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "decisions within a minute:\n{text}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    println!("room {occupied} occupied; {decisions} decisions");

    // The staff login it printed opens the dashboard's API, which shows the same building.
    let login = said
        .iter()
        .find_map(|l| l.trim().strip_prefix("sign in"))
        .expect("the demo prints a staff login");
    let mut words = login.split_whitespace();
    let (name, slash, password) = (
        words.next().unwrap(),
        words.next().unwrap(),
        words.next().unwrap(),
    );
    assert_eq!(slash, "/");
    let cookie = sign_in(&base, name, password);
    let (status, page) = get(&format!("{base}/"), None);
    assert_eq!(status, 200);
    assert!(page.contains("/dashboard/js/app.js"), "the dashboard page");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, rooms) = get_signed(&format!("{base}/api/v1/rooms"), &cookie);
        assert_eq!(status, 200);
        if rooms
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["count"].as_u64() > Some(0))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a room with people through the API: {rooms}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, log) = get_signed(
        &format!("{base}/api/v1/audit?kind=decision&limit=5"),
        &cookie,
    );
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5, "decisions in the log: {log}");
    // The log is on the simulated day's clock: from 08:45 local, 60 simulated seconds a real
    // one, so a decision made by now is stamped between 08:45 and 08:45 plus sixty times the
    // real time since the demo started (and not at the real time of day).
    let sim_limit = 8.75 * 60.0 + started.elapsed().as_secs_f64() + 1.0;
    for e in entries {
        let at = chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono_tz::Europe::Kyiv);
        use chrono::Timelike;
        let min = f64::from(at.hour() * 60 + at.minute());
        assert!(
            (8.75 * 60.0..=sim_limit).contains(&min),
            "a decision at {at} on a simulated day from 08:45 at 60x ({:.0} s in)",
            started.elapsed().as_secs_f64()
        );
        assert!(
            [day_at_start, simulated_day()].contains(&at.date_naive()),
            "{at}: the simulated day is the Centre's working day from today"
        );
    }

    // No false alarm on the simulated clock: a strike opened for three of the node's seconds is
    // not "unlocked too long" at 60x, and a node's first status clears no alarm never raised.
    let (_, alarms) = get_signed(
        &format!("{base}/api/v1/audit?kind=alarm&limit=500"),
        &cookie,
    );
    let alarms = alarms.to_string();
    assert!(!alarms.contains("lock_differs"), "{alarms}");
    assert!(!alarms.contains("device_offline"), "{alarms}");

    // Ctrl-C: a clean stop, with a last word.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "stopped within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(rest.iter().any(|l| l.starts_with("stopped:")), "{rest:?}");
}

/// `kombinat demo --drill`: 20 s after the start the main entrance's siren contact closes and
/// the mains goes off at every door node. A visitor watching the dashboard sees shelter mode,
/// the shelter's roll-call, the doors on battery with the time left, and the weak battery's
/// door shed; the test reads the same from the dashboard's API and prints how long it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_shows_shelter_mode_the_roll_call_and_the_doors_on_battery() {
    let (http, _mqtt, mut child, lines) = demo(&["--speed", "30", "--drill"]);
    let mut said = Vec::new();
    let login = loop {
        let l = lines
            .recv_timeout(Duration::from_secs(120))
            .expect("the demo prints its login");
        said.push(l.clone());
        if let Some(t) = l.trim().strip_prefix("sign in") {
            break t.trim().to_string();
        }
    };
    // The drill's line comes with the others, before the building starts.
    while !said.iter().any(|l| l.contains("Open the dashboard")) {
        said.push(lines.recv_timeout(Duration::from_secs(30)).unwrap());
    }
    let started = Instant::now();
    assert!(
        said.iter().any(|l| l.trim().starts_with("drill")),
        "{said:?}"
    );
    let base = format!("http://127.0.0.1:{http}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&format!("{base}/health"), None).0 != 200 {
        assert!(Instant::now() < deadline, "healthy within a minute");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut words = login.split_whitespace();
    let (name, _, password) = (
        words.next().unwrap(),
        words.next().unwrap(),
        words.next().unwrap(),
    );
    let cookie = sign_in(&base, name, password);

    // Everything the visitor is promised, from the same answers the dashboard reads.
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut seen = (None, None, None);
    let live = loop {
        let (status, live) = get_signed(&format!("{base}/api/v1/live"), &cookie);
        assert_eq!(status, 200);
        let t = started.elapsed().as_secs_f64();
        if seen.0.is_none() && live["mode"] == "shelter" {
            seen.0 = Some(t);
        }
        let power = &live["power"];
        if seen.1.is_none()
            && power["on_battery"]
                .as_array()
                .is_some_and(|a| a.len() >= 10)
            && power["least_left"].is_array()
        {
            seen.1 = Some(t);
        }
        if seen.2.is_none()
            && power["shed_doors"]
                .as_array()
                .is_some_and(|a| a.iter().any(|d| d == "d-meeting-1"))
        {
            seen.2 = Some(t);
        }
        if let (Some(_), Some(_), Some(_)) = seen {
            break live;
        }
        assert!(
            Instant::now() < deadline,
            "the drill seen within 150 s: {seen:?} {}",
            live["power"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "bench: drill (started 20 s in): shelter mode at {:.1} s, doors on battery with time left at {:.1} s, a door shed at {:.1} s",
        seen.0.unwrap(),
        seen.1.unwrap(),
        seen.2.unwrap()
    );
    // The alarms say so, and the shelter's door stands released.
    let alarms = live["alarms"].to_string();
    assert!(alarms.contains("mains_lost"), "{alarms}");
    assert!(live["doors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["door"] == "d-shelter" && d["released"] == true));
    // The roll-call answers.
    let (status, inside) = get_signed(&format!("{base}/api/v1/inside"), &cookie);
    assert_eq!(status, 200, "{inside}");
    // The log tells the story: the siren contact, mains lost, the load shed.
    let (_, log) = get_signed(&format!("{base}/api/v1/audit?limit=500"), &cookie);
    let log = log.to_string();
    for what in [
        "alert input of node",
        "mains lost at",
        "load shed at",
        "fail-safe, it stands unlocked",
    ] {
        assert!(log.contains(what), "{what} in the log");
    }

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "stopped within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
