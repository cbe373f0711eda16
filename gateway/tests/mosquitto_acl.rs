//! The broker's access control generated from the device registry, loaded by a real mosquitto:
//! anonymous clients and wrong passwords are refused, a door node writes its own tap topic and
//! not another door's, and hears its own decisions and not another door's.

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
}
