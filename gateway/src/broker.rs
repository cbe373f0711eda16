//! The embedded MQTT broker (rumqttd), for a gateway that runs alone on its Pi.
//!
//! rumqttd's `start()` blocks and only logs a failed bind, so the port is probed first and the
//! broker is known to be up only once its listener holds the address. It keeps sessions and
//! retained messages in memory and has no topic ACLs: production sites with many devices use
//! mosquitto (see `deploy/`).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// Why the embedded broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The address is taken.
    #[error("cannot listen on {addr} for the embedded MQTT broker: {why} (another broker, e.g. mosquitto, may hold it; set mqtt.listen to a free address)")]
    AddressInUse {
        /// Where.
        addr: SocketAddr,
        /// The OS's words.
        why: std::io::Error,
    },
    /// It did not come up.
    #[error("the embedded MQTT broker did not accept connections on {0} within 5 seconds")]
    NotUp(SocketAddr),
    /// The feature is off.
    #[error(
        "this build has no embedded broker (feature `embedded-broker`); set mqtt.broker to a URL"
    )]
    NotBuilt,
}

/// Probes `addr` and returns the address to use: the same, or the port the OS chose for port 0.
pub fn probe(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let l = TcpListener::bind(addr).map_err(|why| BrokerError::AddressInUse { addr, why })?;
    l.local_addr()
        .map_err(|why| BrokerError::AddressInUse { addr, why })
}

/// Starts rumqttd on `addr` (probed first) and returns once it accepts connections.
#[cfg(feature = "embedded-broker")]
pub fn start(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

    let addr = probe(addr)?;
    let server = ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 5000,
            max_payload_size: 256 * 1024,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    // RouterConfig::default() is all zeros: every field is set, sized for a Pi.
    let router = RouterConfig {
        max_connections: 10_010,
        max_outgoing_packet_count: 1000,
        max_segment_size: 1024 * 1024,
        max_segment_count: 4,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    };
    let config = Config {
        id: 0,
        router,
        v4: Some(HashMap::from([("v4".to_string(), server)])),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded MQTT broker stopped");
            }
        })
        .map_err(|_| BrokerError::NotUp(addr))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if mqtt_ping(addr) {
            tracing::info!(%addr, "embedded MQTT broker up");
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(BrokerError::NotUp(addr))
}

/// Whether an MQTT broker answers at `addr`: a clean CONNECT, CONNACK, DISCONNECT (a bare TCP
/// connect would make rumqttd log a client error).
#[cfg(feature = "embedded-broker")]
fn mqtt_ping(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let id = b"kombinat-probe";
    let mut connect = vec![0x10, (10 + 2 + id.len()) as u8];
    connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 5]);
    connect.extend_from_slice(&[0, id.len() as u8]);
    connect.extend_from_slice(id);
    let mut ack = [0u8; 4];
    let ok = s.write_all(&connect).is_ok() && s.read_exact(&mut ack).is_ok() && ack[0] == 0x20;
    let _ = s.write_all(&[0xE0, 0]);
    ok
}

/// Without the feature there is no embedded broker.
#[cfg(not(feature = "embedded-broker"))]
pub fn start(_addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    Err(BrokerError::NotBuilt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = start(addr).unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        assert!(matches!(err, BrokerError::AddressInUse { .. }));
    }
}
