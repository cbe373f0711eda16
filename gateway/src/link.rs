//! The MQTT link: one rumqttc client with a stable id and a persistent session, its event loop
//! polled in its own task.
//!
//! The task never waits on disk or on a decision: every publish it receives is handed to the
//! service's core with a non-blocking send (and acknowledged by the core once handled: manual
//! acks, so an unhandled QoS 1 message is redelivered after a reconnect). It backs off
//! exponentially between reconnects (rumqttc reconnects at once by itself), re-subscribes
//! whenever a CONNACK says the broker has no session for it (and asks the core to publish its
//! retained state again), retries refused subscriptions, and drops the connection when nothing
//! at all has arrived for three keep-alive periods (a stuck connection, or rumqttc's known
//! packet-id loop after a lost session).

use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS, Transport};
use tokio::sync::watch;

use crate::bus::{LinkStats, Msg};
use crate::config::{Broker, Mqtt};

// rumqttc treats an outgoing packet over MAX_PACKET as a fatal error of the connection (and
// sends it again after reconnecting, for ever), so nothing larger may reach the client: see
// `service`'s publish.
pub use kombinat_protocol::MAX_PACKET;

/// Above this many queued publishes, QoS 0 readings are shed, so taps and other QoS 1 messages
/// always find room in the core's queue behind a flood of readings. Deep enough to ride out
/// the core being off the CPU for a scheduler slice or two under a flood (at 200,000 readings
/// a second, 10 ms is 2,000 messages), shallow enough that a tap behind it waits milliseconds
/// (the core takes readings at several hundred thousand a second) and it holds a few MB.
pub const SHED_ABOVE: usize = 16_384;

/// The core's queue: room for [`SHED_ABOVE`] readings and as many other messages again.
pub const QUEUE: usize = 2 * SHED_ABOVE;

/// Builds the client options.
pub fn options(cfg: &Mqtt, host: &str, port: u16, tls: bool) -> Result<MqttOptions, String> {
    let mut o = MqttOptions::new(&cfg.client_id, host, port);
    o.set_keep_alive(Duration::from_secs(u64::from(cfg.keep_alive_s)));
    o.set_clean_session(false);
    o.set_manual_acks(true);
    o.set_inflight(32);
    o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    // The gateway's last will: its status goes offline (retained) when it vanishes, and Home
    // Assistant marks the rooms unavailable.
    o.set_last_will(rumqttc::LastWill::new(
        crate::ha::gateway_status_topic(&cfg.prefix),
        r#"{"v":1,"state":"offline"}"#,
        QoS::AtLeastOnce,
        true,
    ));
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        o.set_credentials(u, p);
    }
    if tls {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = match &cfg.ca_file {
            Some(path) => std::fs::read(path)
                .map_err(|e| format!("cannot read mqtt.ca_file {}: {e}", path.display()))?,
            None => return Err("mqtts:// needs mqtt.ca_file".into()),
        };
        o.set_transport(Transport::tls(ca, None, None));
    }
    Ok(o)
}

/// The broker address the link connects to.
pub fn target(cfg: &Mqtt, embedded_at: Option<std::net::SocketAddr>) -> (String, u16, bool) {
    match (&cfg.broker, embedded_at) {
        (Broker::Tcp { host, port, tls }, _) => (host.clone(), *port, *tls),
        (Broker::Embedded, Some(a)) => (a.ip().to_string(), a.port(), false),
        (Broker::Embedded, None) => (cfg.listen.ip().to_string(), cfg.listen.port(), false),
    }
}

/// Runs the event loop until `stop` turns true.
pub async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filters: Vec<String>,
    keep_alive: Duration,
    to_core: SyncSender<Msg>,
    stats: Arc<LinkStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    eventloop.set_network_options(net);
    let mut backoff = Duration::from_millis(100);
    let watchdog = keep_alive * 3;
    // The watchdog counts only what arrives: our own PINGREQs are events too, and would keep a
    // dead connection looking alive.
    let mut last_incoming = tokio::time::Instant::now();
    let mut round_trips = crate::bus::RoundTrips::default();
    let mut subscribe_due = false;
    let subscribe = |client: &AsyncClient| {
        let subs = filters
            .iter()
            .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
        client.try_subscribe_many(subs)
    };
    // One timer for the watchdog, moved forward at most once a second: arming a timer for
    // every message would cost a lock in tokio's timer wheel per message.
    let alarm = tokio::time::sleep_until(last_incoming + watchdog);
    tokio::pin!(alarm);
    loop {
        if subscribe_due && stats.connected.load(Ordering::Relaxed) {
            subscribe_due = subscribe(&client).is_err();
        }
        let deadline = last_incoming + watchdog;
        if deadline > alarm.deadline() + Duration::from_secs(1) || deadline < alarm.deadline() {
            alarm.as_mut().reset(deadline);
        }
        // The poll is cut short only when the alarm rings, that is after at least three
        // keep-alives less a second without anything from the broker (cutting it short at other
        // times could abort a connection being set up or a write). If that last second did
        // bring something, the alarm is moved and the loop goes on.
        let polled = tokio::select! {
            _ = stop.changed() => break,
            r = eventloop.poll() => Ok(r),
            _ = &mut alarm => Err(()),
        };
        let polled = match polled {
            Ok(r) => r,
            Err(()) if tokio::time::Instant::now() < last_incoming + watchdog => {
                alarm.as_mut().reset(last_incoming + watchdog);
                continue;
            }
            Err(()) => {
                if stats.connected.load(Ordering::Relaxed) {
                    tracing::warn!(
                        seconds = watchdog.as_secs(),
                        "nothing from the broker; dropping the connection"
                    );
                    stats.watchdog_resets.fetch_add(1, Ordering::Relaxed);
                    stats.connected.store(false, Ordering::Relaxed);
                    stats.subscribed.store(false, Ordering::Relaxed);
                    eventloop.clean();
                    eventloop.network = None;
                }
                last_incoming = tokio::time::Instant::now();
                continue;
            }
        };
        if matches!(polled, Ok(Event::Incoming(_))) {
            last_incoming = tokio::time::Instant::now();
        }
        match polled {
            Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) if pkid != 0 => {
                round_trips.sent(pkid, std::time::Instant::now());
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(median) = round_trips.acked(ack.pkid, std::time::Instant::now()) {
                    stats.round_trip_us.store(median, Ordering::Relaxed);
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(100);
                stats.connected.store(true, Ordering::Relaxed);
                stats.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                // Subscribing again is harmless when the broker kept the session, and needed
                // when it kept a session without the subscriptions (a connection cut between
                // CONNECT and SUBSCRIBE): so on every CONNACK. Ready once the SUBACK is in.
                stats.subscribed.store(false, Ordering::Relaxed);
                if let Err(e) = subscribe(&client) {
                    tracing::error!(error = %e, "cannot queue the subscriptions; retrying");
                    subscribe_due = true;
                }
                if !ack.session_present {
                    // The broker kept nothing for us: retained messages go out again.
                    let _ = to_core.try_send(Msg::Resync);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                stats.received.fetch_add(1, Ordering::Relaxed);
                if p.qos == QoS::AtMostOnce && stats.queued.load(Ordering::Relaxed) >= SHED_ABOVE {
                    if stats.shed.fetch_add(1, Ordering::Relaxed) % 10_000 == 0 {
                        tracing::warn!("the core is behind: shedding QoS 0 readings");
                    }
                    continue;
                }
                match to_core.try_send(Msg::Publish(p, std::time::Instant::now())) {
                    Ok(()) => {
                        stats.queued.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Full(Msg::Publish(p, _))) => {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(topic = %p.topic, "core queue full; message not taken");
                        if p.qos != QoS::AtMostOnce {
                            // Unacknowledged, it holds one of the broker's in-flight slots until
                            // the next connection, when the broker sends it again: reconnect now.
                            eventloop.clean();
                            eventloop.network = None;
                            stats.connected.store(false, Ordering::Relaxed);
                        }
                    }
                    Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    tracing::error!("the broker refused a subscription; retrying");
                    subscribe_due = true;
                } else {
                    stats.subscribed.store(true, Ordering::Relaxed);
                }
            }
            Ok(_) => {}
            Err(e) => {
                stats.subscribed.store(false, Ordering::Relaxed);
                if stats.connected.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "lost the broker");
                } else {
                    tracing::debug!(error = %e, "broker unreachable");
                }
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    // Send what the core queued last (decisions, acknowledgements), then DISCONNECT.
    let _ = client.try_disconnect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, eventloop.poll()).await {
        if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
            break;
        }
    }
}
