//! The broker's access control generated from the device registry, loaded by a real mosquitto:
//! anonymous clients and wrong passwords are refused, a door node writes its own tap topic and
//! not another door's, and hears its own decisions and not another door's; no account takes
//! another client's connection by its client id; the site file's off-the-shelf devices get
//! accounts of their own, kept to their firmware's topics.

mod support;

use std::time::Duration;

use kombinat::mosquitto::broker_password;
use rumqttc::QoS;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_acl_keeps_each_device_to_its_own_topics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data);
    let Some((_broker, port, said, acl)) = acl_mosquitto(dir.path(), &data) else {
        return;
    };
    assert!(said.contains("for 4 devices"), "{said}");
    assert!(
        acl.contains("user door-cowork\ntopic write kombinat/v1/door/d-cowork-in/tap\n"),
        "{acl}"
    );

    // Nobody gets in without an account, or with a wrong password.
    let (_a, mut anon) = broker_client("anonymous", None, port);
    assert!(
        broker_connected(&mut anon).await.is_err(),
        "anonymous refused"
    );
    let (_w, mut wrong) = broker_client(
        "door-cowork",
        Some(("door-cowork", "not-its-password")),
        port,
    );
    assert!(
        broker_connected(&mut wrong).await.is_err(),
        "a wrong password refused"
    );

    let (gw, mut gw_rx) = broker_client(
        "kombinat-gateway",
        Some(("kombinat-gateway", GATEWAY_BROKER_PASSWORD)),
        port,
    );
    broker_connected(&mut gw_rx).await.unwrap();
    gw.subscribe("kombinat/v1/door/+/tap", QoS::AtLeastOnce)
        .await
        .unwrap();

    let cowork_pw = broker_password(&key(1));
    let (node, mut node_rx) = broker_client("door-cowork", Some(("door-cowork", &cowork_pw)), port);
    broker_connected(&mut node_rx).await.unwrap();
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
        broker_messages(&mut gw_rx, Duration::from_secs(1)).await,
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
        broker_messages(&mut node_rx, Duration::from_secs(1)).await,
        ["kombinat/v1/door/d-cowork-in/decision"]
    );
    // A device's account cannot take the gateway's connection by connecting with its client
    // id: every account is its own client id.
    let (_thief, mut thief_rx) = broker_client(
        "kombinat-gateway",
        Some(("door-meeting", &broker_password(&key(2)))),
        port,
    );
    broker_connected(&mut thief_rx).await.unwrap();
    gw.subscribe("kombinat/v1/still-here", QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.publish(
        "kombinat/v1/still-here",
        QoS::AtLeastOnce,
        false,
        b"1".to_vec(),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    while let Ok(Some(s)) = tokio::time::timeout(Duration::from_secs(1), gw_rx.recv()).await {
        seen.push(match s {
            BrokerSeen::Message(t) => t,
            BrokerSeen::Refused(e) => format!("disconnected: {e}"),
            BrokerSeen::Connected => "connected again".into(),
        });
    }
    assert_eq!(
        seen,
        ["kombinat/v1/still-here"],
        "the gateway keeps its connection"
    );

    // The off-the-shelf devices: their accounts are in a file only its owner reads, and each
    // writes its own firmware's topics only.
    let mq = dir.path().join("mq");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| std::fs::metadata(mq.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("binding-accounts"), 0o600);
        assert_eq!(
            mode("passwd"),
            0o640,
            "mosquitto's group reads it, nobody else"
        );
    }
    let accounts = std::fs::read_to_string(mq.join("binding-accounts")).unwrap();
    let password = |user: &str| {
        accounts
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{user} ")))
            .unwrap_or_else(|| panic!("no account for {user} in {accounts}"))
            .to_string()
    };
    assert!(
        acl.contains("user tasmota-medialab\ntopic write tele/medialab-door/#\n"),
        "{acl}"
    );
    gw.subscribe("tele/#", QoS::AtLeastOnce).await.unwrap();
    gw.subscribe("cmnd/#", QoS::AtLeastOnce).await.unwrap();
    gw.subscribe("door-gallery/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let tasmota_pw = password("tasmota-medialab");
    let (tasmota, mut tasmota_rx) =
        broker_client("any-id", Some(("tasmota-medialab", &tasmota_pw)), port);
    broker_connected(&mut tasmota_rx).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for topic in [
        "tele/medialab-door/SENSOR",
        "tele/another-device/SENSOR",
        "cmnd/medialab-door/POWER1",
        "door-gallery/send",
    ] {
        tasmota
            .publish(topic, QoS::AtLeastOnce, false, b"{}".to_vec())
            .await
            .unwrap();
    }
    assert_eq!(
        broker_messages(&mut gw_rx, Duration::from_secs(1)).await,
        ["tele/medialab-door/SENSOR"]
    );
    // Without an account, nobody sends a Tasmota a command or a card read.
    let (_a2, mut anon2) = broker_client("cmnd-sender", None, port);
    assert!(broker_connected(&mut anon2).await.is_err());
    let (_w2, mut wrong2) = broker_client("esp", Some(("esp-gallery-2", &tasmota_pw)), port);
    assert!(
        broker_connected(&mut wrong2).await.is_err(),
        "one device's password is not another's"
    );
}
