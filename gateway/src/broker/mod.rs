//! The embedded MQTT broker (rumqttd), for a gateway that runs alone on its Pi.
//!
//! rumqttd's `start()` blocks and only logs a failed bind, so the port is probed first and the
//! broker is known to be up only once its listener holds the address. It keeps sessions and
//! retained messages in memory, and has no accounts, topic ACLs, retained cap or TLS of its own:
//! the gateway runs it on a loopback port of its own, behind [`guard`], which holds the accounts
//! and topic limits the generated mosquitto configuration would (one per device, one per
//! off-the-shelf device, the gateway's) and caps what each account keeps retained. It listens
//! on loopback only (the gateway, the demo's simulated building, tools and bridges on the Pi
//! itself): with no TLS, devices on the network reach mosquitto (see `deploy/`).

pub mod guard;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

#[cfg(feature = "embedded-broker")]
use std::sync::Arc;

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
    /// Asked to listen where others than this machine can reach it.
    #[error("the embedded MQTT broker listens on loopback only, not {0}: it has no TLS, so the devices' passwords and every door's allow-list would cross the network in clear; for door and sensor nodes on the network, run mosquitto with `kombinat devices mosquitto-config` (deploy/README.md) and set mqtt.broker to its URL")]
    NotLoopback(SocketAddr),
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
/// Only a loopback address is taken (see [`BrokerError::NotLoopback`]).
pub fn probe(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    if !addr.ip().is_loopback() {
        return Err(BrokerError::NotLoopback(addr));
    }
    let l = TcpListener::bind(addr).map_err(|why| BrokerError::AddressInUse { addr, why })?;
    l.local_addr()
        .map_err(|why| BrokerError::AddressInUse { addr, why })
}

/// Starts rumqttd on `addr` (probed first) and returns once it accepts connections.
#[cfg(feature = "embedded-broker")]
pub fn start(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    start_with_login(addr, None)
}

/// Starts rumqttd as [`start`] does, letting in only `login` (user, password) when given.
#[cfg(feature = "embedded-broker")]
fn start_with_login(
    addr: SocketAddr,
    login: Option<(String, String)>,
) -> Result<SocketAddr, BrokerError> {
    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

    let addr = probe(addr)?;
    let probe_login = login.clone();
    let server = ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 5000,
            max_payload_size: kombinat_protocol::MAX_PACKET,
            max_inflight_count: 500,
            auth: login.map(|(u, p)| HashMap::from([(u, p)])),
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
    let mut nodelay = false;
    while Instant::now() < deadline {
        // rumqttd leaves Nagle's algorithm on for its clients, which makes every QoS 1
        // request/response wait ~40 ms for a delayed ACK. Sockets accepted by a listener
        // inherit its TCP_NODELAY, so it is set on the listener as soon as it exists, before
        // any device connects.
        if !nodelay {
            match nodelay::set_on_listener(addr) {
                Ok(true) => nodelay = true,
                Ok(false) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot set TCP_NODELAY on the embedded broker; expect ~40 ms round trips");
                    nodelay = true;
                }
            }
        }
        if mqtt_ping(addr, probe_login.as_ref()) {
            tracing::info!(%addr, "embedded MQTT broker up");
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(BrokerError::NotUp(addr))
}

/// Starts the embedded broker as the gateway runs it: rumqttd on a loopback port of its own
/// (which lets in only the guard), and [`guard`] with `accounts` on `listen` (loopback only),
/// serving until `stop` turns true. Returns the address clients connect to, and the guard's
/// task (done once its clients' connections are closed).
#[cfg(feature = "embedded-broker")]
pub async fn start_guarded(
    listen: SocketAddr,
    accounts: guard::Accounts,
    stats: Arc<guard::GuardStats>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), BrokerError> {
    if !listen.ip().is_loopback() {
        return Err(BrokerError::NotLoopback(listen));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|why| BrokerError::AddressInUse { addr: listen, why })?;
    let addr = listener
        .local_addr()
        .map_err(|why| BrokerError::AddressInUse { addr: listen, why })?;
    // rumqttd itself lets in only the guard: its own port is on loopback too, and a process on
    // the Pi that found it would otherwise pass by every account and topic limit.
    let password = crate::staff::generate_password().map_err(|_| BrokerError::NotUp(addr))?;
    let inner_login = ("kombinat-guard".to_string(), password);
    let login = inner_login.clone();
    let inner = tokio::task::spawn_blocking(move || {
        start_with_login(SocketAddr::from(([127, 0, 0, 1], 0)), Some(login))
    })
    .await
    .map_err(|_| BrokerError::NotUp(addr))??;
    tracing::info!(%addr, accounts = accounts.len(), "embedded MQTT broker's accounts and topic limits in force");
    let guard = tokio::spawn(guard::serve(
        listener,
        guard::Upstream {
            addr: inner,
            login: inner_login,
        },
        accounts,
        kombinat_protocol::MAX_PACKET,
        stats,
        stop,
    ));
    Ok((addr, guard))
}

#[cfg(all(feature = "embedded-broker", target_os = "linux"))]
mod nodelay {
    //! Finds rumqttd's listening socket among this process's descriptors (by the inode that
    //! `/proc/net/tcp` gives for the listening address) and sets TCP_NODELAY on it.
    use std::io;
    use std::net::{IpAddr, SocketAddr};

    fn proc_addr(addr: SocketAddr) -> Option<String> {
        match addr.ip() {
            IpAddr::V4(ip) => Some(format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(ip.octets()),
                addr.port()
            )),
            IpAddr::V6(_) => None,
        }
    }

    fn listen_inode(addr: SocketAddr) -> io::Result<Option<String>> {
        let Some(want) = proc_addr(addr) else {
            return Ok(None);
        };
        let table = std::fs::read_to_string("/proc/net/tcp")?;
        Ok(table.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sl local_address rem_address st … inode (field 9); st 0A is LISTEN.
            (f.len() > 9 && f[1] == want && f[3] == "0A").then(|| f[9].to_string())
        }))
    }

    /// Sets TCP_NODELAY on this process's listener at `addr`; `Ok(false)` if it is not there yet.
    pub fn set_on_listener(addr: SocketAddr) -> io::Result<bool> {
        let Some(inode) = listen_inode(addr)? else {
            return Ok(false);
        };
        let want = format!("socket:[{inode}]");
        for entry in std::fs::read_dir("/proc/self/fd")? {
            let entry = entry?;
            if std::fs::read_link(entry.path())
                .ok()
                .and_then(|t| t.to_str().map(|t| t == want))
                != Some(true)
            {
                continue;
            }
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            // SAFETY: `fd` is open in this process (it is listed in /proc/self/fd) and is the
            // embedded broker's listening socket, which lives as long as the process; it is
            // borrowed for one setsockopt call and not closed.
            #[allow(unsafe_code)]
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            socket2::SockRef::from(&borrowed).set_tcp_nodelay(true)?;
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(all(feature = "embedded-broker", not(target_os = "linux")))]
mod nodelay {
    pub fn set_on_listener(_: std::net::SocketAddr) -> std::io::Result<bool> {
        Err(std::io::Error::other("only done on Linux"))
    }
}

/// Whether an MQTT broker answers at `addr`: a clean CONNECT, CONNACK, DISCONNECT (a bare TCP
/// connect would make rumqttd log a client error).
#[cfg(feature = "embedded-broker")]
fn mqtt_ping(addr: SocketAddr, login: Option<&(String, String)>) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let field = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    };
    let flags = if login.is_some() { 0xC2 } else { 0x02 };
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 5];
    field(&mut body, b"kombinat-probe");
    if let Some((u, p)) = login {
        field(&mut body, u.as_bytes());
        field(&mut body, p.as_bytes());
    }
    if body.len() > 127 {
        return false;
    }
    let mut connect = vec![0x10, body.len() as u8];
    connect.extend_from_slice(&body);
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

/// Without the feature there is no embedded broker.
#[cfg(not(feature = "embedded-broker"))]
pub async fn start_guarded(
    _listen: SocketAddr,
    _accounts: guard::Accounts,
    _stats: std::sync::Arc<guard::GuardStats>,
    _stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), BrokerError> {
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

    #[cfg(feature = "embedded-broker")]
    #[test]
    fn rumqttd_behind_the_guard_lets_in_only_the_guard_s_login() {
        let login = (
            "kombinat-guard".to_string(),
            "a-long-inner-password".to_string(),
        );
        let addr = start_with_login("127.0.0.1:0".parse().unwrap(), Some(login.clone())).unwrap();
        assert!(mqtt_ping(addr, Some(&login)));
        assert!(!mqtt_ping(addr, None), "anonymous");
        let wrong = (login.0.clone(), "guessed".to_string());
        assert!(!mqtt_ping(addr, Some(&wrong)), "a wrong password");
    }

    #[test]
    fn the_embedded_broker_refuses_to_listen_beyond_loopback() {
        for addr in ["0.0.0.0:0", "192.168.1.10:1883", "[::]:0"] {
            let e = probe(addr.parse().unwrap()).unwrap_err();
            assert!(matches!(e, BrokerError::NotLoopback(_)), "{addr}: {e}");
            assert!(e.to_string().contains("mosquitto-config"), "{e}");
        }
        assert!(probe("127.0.0.1:0".parse().unwrap()).is_ok());
    }
}
