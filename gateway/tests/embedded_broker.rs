//! The embedded broker holds the accounts and topic limits the generated mosquitto configuration
//! would (issue 18, finding 4): no anonymous client and no wrong password gets in, a door node
//! hears its own door's allow-list and not another's, the read-only observer reads occupancy and
//! no door's topics, nobody takes the gateway's connection by its client id, and an account's
//! retained messages are capped (a flood of retained 100 KB messages once grew the broker by
//! 103 MB).

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use kombinat::service;
use rumqttc::QoS;
use support::*;

const T: Duration = Duration::from_secs(15);

/// The topics `node` received within `within`.
async fn topics(node: &mut DoorNode, within: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some((t, _))) = tokio::time::timeout_at(deadline, node.rx.recv()).await {
        out.push(t);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_keeps_out_strangers_and_each_account_to_its_own_topics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data);
    let mut cfg = config(&data, "embedded");
    let gateway_user = cfg.mqtt.client_id.clone();
    // A tool on the Pi with an account of its own, which reads what the Tasmota relay leaves.
    cfg.mqtt.accounts.push(kombinat::config::BrokerAccount {
        user: "tele-reader".into(),
        password: "a-password-for-the-reader".into(),
        write: vec![],
        read: vec!["tele/#".into()],
    });
    let gw = service::start(cfg).await.unwrap();
    assert!(gw.ready(T).await);
    let port = gw.mqtt_addr.port();
    let guard = gw.stats.guard.clone();

    // Nobody gets in without an account, with a wrong password, or as a device not registered.
    let (_a, mut anon) = broker_client("anonymous", None, port);
    assert!(
        broker_connected(&mut anon).await.is_err(),
        "anonymous refused"
    );
    let (_w, mut wrong) = broker_client("x", Some(("door-cowork", "not-its-password")), port);
    assert!(
        broker_connected(&mut wrong).await.is_err(),
        "wrong password"
    );
    let (_u, mut unknown) = broker_client("x", Some(("door-nobody", "whatever")), port);
    assert!(broker_connected(&mut unknown).await.is_err(), "no account");
    assert_eq!(guard.refused.load(Relaxed), 3);

    // A door node hears its own door's retained allow-list, not the meeting room's, even when it
    // asks for every door's.
    let allow_lists = "kombinat/v1/door/+/allowlist".to_string();
    let mut cowork = DoorNode::connect_with(
        gw.mqtt_addr,
        "door-cowork",
        "d-cowork-in",
        key(1),
        std::slice::from_ref(&allow_lists),
    )
    .await;
    let heard = topics(&mut cowork, Duration::from_secs(2)).await;
    assert!(
        heard.contains(&"kombinat/v1/door/d-cowork-in/allowlist".to_string()),
        "{heard:?}"
    );
    assert!(
        !heard.iter().any(|t| t.contains("d-meeting-1")),
        "{heard:?}"
    );
    assert!(guard.denied.load(Relaxed) >= 1);

    // The observer reads occupancy, and no door's topics (allow-lists carry card numbers).
    let mut observer = DoorNode::connect_as(
        gw.mqtt_addr,
        login("observer"),
        "observer",
        "d-meeting-1",
        key(9),
        &[allow_lists.clone(), "kombinat/v1/room/+/occupancy".into()],
    )
    .await;
    let seen = topics(&mut observer, Duration::from_secs(2)).await;
    assert!(
        seen.iter().any(|t| t.ends_with("/occupancy")),
        "retained occupancy: {seen:?}"
    );
    assert!(!seen.iter().any(|t| t.contains("/door/")), "{seen:?}");

    // A door node writes its own door's topics only: a tap on the meeting room's door is dropped
    // (the gateway never sees it), while its own tap is answered.
    let dropped = guard.dropped.load(Relaxed);
    cowork
        .client
        .publish(
            "kombinat/v1/door/d-meeting-1/tap",
            QoS::AtLeastOnce,
            false,
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    until(T, "the foreign tap dropped", || {
        guard.dropped.load(Relaxed) == dropped + 1
    })
    .await;
    assert_eq!(
        gw.stats.malformed("not_its_topic"),
        0,
        "the gateway never saw it"
    );

    // A device's account cannot take the gateway's connection with the gateway's client id:
    // every account is its own client id.
    let connects = gw.stats.link.connects.load(Relaxed);
    let (_thief, mut thief) = broker_client(
        &gateway_user,
        Some((
            "door-meeting",
            &kombinat_protocol::auth::broker_password(&key(2)),
        )),
        port,
    );
    broker_connected(&mut thief).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tap = cowork.tap(card(STAFF_CARD));
    cowork.send_tap(&tap).await;
    let d = cowork.decision(T).await;
    assert!(d.allow, "{d:?}");
    assert_eq!(
        gw.stats.link.connects.load(Relaxed),
        connects,
        "the gateway kept its connection"
    );

    // Retained messages are capped per account: of 60 retained 100 KB messages from the Tasmota
    // relay's account (which may write any topic under its own `tele/`), 40 are kept (4 MiB).
    let tasmota = DoorNode::connect_as(
        gw.mqtt_addr,
        login("tasmota-medialab"),
        "tasmota-medialab",
        "d-medialab",
        key(9),
        &[],
    )
    .await;
    let dropped = guard.dropped.load(Relaxed);
    for i in 0..60 {
        tasmota
            .client
            .publish(
                format!("tele/medialab-door/flood/{i}"),
                QoS::AtLeastOnce,
                true,
                vec![b'x'; 100 * 1024],
            )
            .await
            .unwrap();
    }
    until(T, "the retained flood past the budget dropped", || {
        guard.dropped.load(Relaxed) == dropped + 20
    })
    .await;
    // Clearing one makes room for another.
    for (topic, size) in [("flood/0", 0), ("flood/60", 100 * 1024)] {
        tasmota
            .client
            .publish(
                format!("tele/medialab-door/{topic}"),
                QoS::AtLeastOnce,
                true,
                vec![b'x'; size],
            )
            .await
            .unwrap();
    }
    // What the broker holds, as the reader's account reads it, once it has taken all that was
    // sent: it takes a client's messages in order, so with the last one held, all before are.
    let addr = gw.mqtt_addr;
    let reader = |filter: &'static str| async move {
        DoorNode::connect_as(
            addr,
            ("tele-reader".into(), "a-password-for-the-reader".into()),
            "tele-reader",
            "d-medialab",
            key(9),
            &[filter.to_string()],
        )
        .await
    };
    let mut last = reader("tele/medialab-door/flood/60").await;
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let (t, _) = tokio::time::timeout_at(deadline, last.rx.recv())
            .await
            .expect("the last message held in time")
            .unwrap();
        if t.ends_with("/flood/60") {
            break;
        }
    }
    drop(last);
    let mut reader = reader("tele/medialab-door/flood/#").await;
    let mut held = Vec::new();
    let deadline = tokio::time::Instant::now() + T;
    while let Ok(Some((t, _))) = tokio::time::timeout_at(deadline, reader.rx.recv()).await {
        if t.starts_with("tele/medialab-door/flood/") {
            held.push(t);
        }
        if held.len() >= 40 {
            break;
        }
    }
    held.extend(topics(&mut reader, Duration::from_millis(500)).await);
    held.sort();
    held.dedup();
    assert_eq!(held.len(), 40, "{held:?}");
    assert!(!held.contains(&"tele/medialab-door/flood/0".to_string()));
    assert!(held.contains(&"tele/medialab-door/flood/60".to_string()));

    // QoS 2, whose retained message rumqttd takes only at PUBREL, is not let in from an
    // account with a budget: the publish is dropped with its connection, and nothing is held.
    tasmota
        .client
        .publish(
            "tele/medialab-door/flood/qos2",
            QoS::ExactlyOnce,
            true,
            vec![b'x'; 100 * 1024],
        )
        .await
        .unwrap();
    until(T, "the QoS 2 publish dropped", || {
        guard.dropped.load(Relaxed) == dropped + 21
    })
    .await;
    let later = topics(&mut reader, Duration::from_secs(1)).await;
    assert!(!later.iter().any(|t| t.ends_with("/qos2")), "{later:?}");
    assert_eq!(
        gw.stats.link.connects.load(Relaxed),
        connects,
        "the gateway kept its connection throughout"
    );

    drop(reader);
    gw.stop().await.unwrap();
}
