//! The broker's access control generated from the device registry, loaded by a real mosquitto:
//! anonymous clients and wrong passwords are refused, a door node writes its own tap topic and
//! not another door's, and hears its own decisions and not another door's.

mod support;

use std::time::Duration;

use kombinat::mosquitto::broker_password;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::*;
use tokio::sync::mpsc;

enum Seen {
    Connected,
    Refused(String),
    Message(String),
}

fn client(
    id: &str,
    login: Option<(&str, &str)>,
    port: u16,
) -> (AsyncClient, mpsc::UnboundedReceiver<Seen>) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    let (c, mut ev) = AsyncClient::new(o, 32);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let seen = match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::Connected,
                Ok(Event::Incoming(Packet::Publish(p))) => Seen::Message(p.topic.clone()),
                Ok(_) => continue,
                Err(e) => Seen::Refused(e.to_string()),
            };
            let refused = matches!(seen, Seen::Refused(_));
            if tx.send(seen).is_err() || refused {
                break;
            }
        }
    });
    (c, rx)
}

async fn connected(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(Seen::Connected)) => Ok(()),
        Ok(Some(Seen::Refused(e))) => Err(e),
        _ => Err("no answer".into()),
    }
}

/// Messages that arrive within `within`.
async fn messages(rx: &mut mpsc::UnboundedReceiver<Seen>, within: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(s)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if let Seen::Message(t) = s {
            out.push(t);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_acl_keeps_each_device_to_its_own_topics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data);
    let pw = dir.path().join("gateway-password");
    std::fs::write(&pw, "a-long-gateway-password-for-tests\n").unwrap();
    let port = free_port();
    let mq = dir.path().join("mq");
    let mut out = Vec::new();
    {
        use clap::Parser;
        let cli = kombinat::cli::Cli::parse_from([
            "kombinat",
            "--site",
            site_path().to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "devices",
            "mosquitto-config",
            "--out",
            mq.to_str().unwrap(),
            "--gateway-password-file",
            pw.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ]);
        kombinat::cli::run(cli, &mut out, chrono::Utc::now()).unwrap();
    }
    let said = String::from_utf8(out).unwrap();
    assert!(said.contains("for 4 devices"), "{said}");
    let acl = std::fs::read_to_string(mq.join("acl")).unwrap();
    assert!(
        acl.contains("user door-cowork\ntopic write kombinat/v1/door/d-cowork-in/tap\n"),
        "{acl}"
    );
    // Started as root (CI containers), mosquitto would drop to its own user, which cannot read
    // the test's private directory: let it keep the test's user. (An installation gives the
    // files to the mosquitto user instead.)
    let conf = mq.join("kombinat.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("user root\n");
    std::fs::write(&conf, text).unwrap();
    let Some(_broker) = Mosquitto::start_with(&conf, port) else {
        return;
    };

    // Nobody gets in without an account, or with a wrong password.
    let (_a, mut anon) = client("anonymous", None, port);
    assert!(connected(&mut anon).await.is_err(), "anonymous refused");
    let (_w, mut wrong) = client(
        "door-cowork",
        Some(("door-cowork", "not-its-password")),
        port,
    );
    assert!(
        connected(&mut wrong).await.is_err(),
        "a wrong password refused"
    );

    let (gw, mut gw_rx) = client(
        "kombinat-gateway",
        Some(("kombinat-gateway", "a-long-gateway-password-for-tests")),
        port,
    );
    connected(&mut gw_rx).await.unwrap();
    gw.subscribe("kombinat/v1/door/+/tap", QoS::AtLeastOnce)
        .await
        .unwrap();

    let cowork_pw = broker_password(&key(1));
    let (node, mut node_rx) = client("door-cowork", Some(("door-cowork", &cowork_pw)), port);
    connected(&mut node_rx).await.unwrap();
    node.subscribe("kombinat/v1/door/+/decision", QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // It writes its own door's tap topic, not the meeting room's.
    for door in ["d-meeting-1", "d-cowork-in"] {
        node.publish(
            format!("kombinat/v1/door/{door}/tap"),
            QoS::AtLeastOnce,
            false,
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        messages(&mut gw_rx, Duration::from_secs(1)).await,
        ["kombinat/v1/door/d-cowork-in/tap"]
    );
    // It hears its own door's decisions, not the meeting room's.
    for door in ["d-meeting-1", "d-cowork-in"] {
        gw.publish(
            format!("kombinat/v1/door/{door}/decision"),
            QoS::AtLeastOnce,
            false,
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        messages(&mut node_rx, Duration::from_secs(1)).await,
        ["kombinat/v1/door/d-cowork-in/decision"]
    );
}
