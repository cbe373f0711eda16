//! The firmware's door node (its state machine on its rumqttc transport) against the real
//! gateway through mosquitto: it takes the gateway's signed allow-list, is answered online,
//! decides alone from the list while the gateway is down, and its offline log is stored by the
//! gateway, acknowledged and cleared once the gateway is back.

mod support;

use std::time::Duration;

use kombinat::service;
use kombinat::store::{AuditEvent, SledStore, Store};
use kombinat_firmware::door::{DoorConfig, DoorController, Inputs};
use kombinat_firmware::mqtt::{
    deliver, door_subscriptions, parse_door, Clock, LinkConfig, MqttLink,
};
use kombinat_protocol::{DeviceId, DoorId, Reason};
use support::*;

type Node = DoorController<1024, 64>;

/// The node, its link and its clock.
struct Rig {
    node: Node,
    link: MqttLink,
    down: tokio::sync::mpsc::Receiver<kombinat_firmware::mqtt::Down>,
    clock: Clock,
}

impl Rig {
    /// Runs the node for up to `within` until `done` says so.
    async fn until(&mut self, within: Duration, what: &str, mut done: impl FnMut(&Node) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let t = self.clock.now();
            while let Ok(m) = self.down.try_recv() {
                deliver(&mut self.node, &m, t);
            }
            self.node.tick(Inputs::default(), t, &mut self.link);
            if done(&self.node) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn tap(&mut self, c: kombinat_protocol::Credential) {
        let t = self.clock.now();
        self.node.credential(c, t, &mut self.link);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_door_node_decides_alone_while_the_gateway_is_down_and_its_log_is_taken_back() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data);
    let gw = service::start(config(&data, &broker.url())).await.unwrap();
    assert!(gw.ready(Duration::from_secs(20)).await);

    let door = DoorId::parse("d-cowork-in").unwrap();
    let device = DeviceId::parse("door-cowork").unwrap();
    let mut cfg = DoorConfig::new(door, device, key(1));
    cfg.counter_start = 1_000;
    let link_cfg = LinkConfig::new("127.0.0.1", broker.port);
    let (link, down) = MqttLink::start(
        &link_cfg,
        device,
        door_subscriptions(&link_cfg.prefix, door),
        parse_door,
    );
    let mut r = Rig {
        node: Node::new(cfg),
        link,
        down,
        clock: Clock::default(),
    };

    // The signed allow-list arrives (retained) and checks out; the staff card is on it.
    r.until(Duration::from_secs(30), "the allow-list", |n| {
        n.held_list().is_some()
    })
    .await;
    let staff = card(STAFF_CARD);
    let (_, cards) = r.node.held_list().unwrap();
    assert!(cards
        .iter()
        .any(|e| kombinat_protocol::Credential::Card(e.card) == staff));

    // Online: the gateway answers.
    r.tap(staff);
    r.until(Duration::from_secs(5), "a decision", |n| {
        n.last_outcome().is_some()
    })
    .await;
    let online = r.node.last_outcome().unwrap();
    assert!(
        online.allow && !online.offline && online.reason == Reason::Staff,
        "{online:?}"
    );

    // The gateway stops; the broker stays. The staff card opens from the list, the other is
    // refused, both after the 800 ms wait.
    gw.stop().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut offline = Vec::new();
    for c in [STAFF_CARD, NOBODY_CARD] {
        let before = r.node.last_outcome().map(|o| o.tap);
        r.tap(card(c));
        r.until(Duration::from_secs(5), "an offline decision", |n| {
            n.last_outcome().map(|o| o.tap) != before
        })
        .await;
        offline.push(r.node.last_outcome().unwrap());
    }
    assert_eq!(
        offline
            .iter()
            .map(|o| (o.offline, o.allow, o.reason))
            .collect::<Vec<_>>(),
        [
            (true, true, Reason::OfflineListed),
            (true, false, Reason::OfflineNotListed)
        ]
    );
    assert_eq!(r.node.offline_log().len(), 2);

    // The gateway comes back: the log goes up, is stored and acknowledged, and the node forgets it.
    let gw = service::start(config(&data, &broker.url())).await.unwrap();
    assert!(gw.ready(Duration::from_secs(20)).await);
    r.until(Duration::from_secs(30), "the acknowledgement", |n| {
        n.offline_log().is_empty()
    })
    .await;
    gw.stop().await.unwrap();

    // The audit log holds each of the three taps once: the online one, and the two decided
    // offline (answered late by the gateway from its queue, or taken from the node's log).
    let store = SledStore::open(&data).unwrap();
    let taps: Vec<u64> = store
        .audit_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.entry.event {
            AuditEvent::Decision { tap, .. } => tap,
            _ => None,
        })
        .collect();
    let mut want = vec![online.tap, offline[0].tap, offline[1].tap];
    want.sort();
    let mut got = taps.clone();
    got.sort();
    assert_eq!(got, want, "each tap logged once: {taps:?}");
}
