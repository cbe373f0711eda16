//! The embedded broker's door: accounts, per-account topic limits and a cap on retained
//! messages, in front of rumqttd, which has none of them.
//!
//! The guard listens where the broker is configured to, and rumqttd on a loopback port of its
//! own. Each client's CONNECT is checked against the accounts the generated mosquitto
//! configuration would hold (the gateway's, one per device with the password derived from its
//! key, one per off-the-shelf device): no anonymous client, a wrong password or an unknown
//! name is refused, and every account connects as its own client id (the id is rewritten to the
//! user name, as mosquitto's `use_username_as_clientid` does), so nobody takes the gateway's
//! connection by reusing its id. Then every packet from the client is read whole: a PUBLISH to
//! a topic the account may not write, or a retained one past its account's budget, goes to a
//! sink topic with its retain flag off (rumqttd still acknowledges it, as mosquitto silently
//! drops a denied publish); a SUBSCRIBE filter the account may not read becomes a filter nothing
//! is published to. What the broker sends back is copied as it comes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Where a denied publish goes: no account may read it.
pub const SINK: &str = "kombinat-guard/dropped";
/// What a denied subscription becomes: no account may write it.
pub const DENIED: &str = "kombinat-guard/denied";

/// How much an account may keep retained in the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Topics holding a retained message of this account's.
    pub topics: usize,
    /// Their payloads' bytes.
    pub bytes: usize,
}

/// Where rumqttd listens, and the one login it takes (the guard's own).
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Its loopback address.
    pub addr: SocketAddr,
    /// User and password.
    pub login: (String, String),
}

/// Clients at once: a building's nodes and tools are a few hundred; more is an attack.
const MAX_CLIENTS: usize = 4096;
/// The largest CONNECT read before the client signed in.
const MAX_CONNECT: usize = 16 * 1024;
/// The largest retained last will of an account with a budget (a status message is ~100 bytes):
/// a will is recorded when the client connects, and may later be replaced by a smaller message
/// on its topic, so this bounds what the budget can miss.
const MAX_RETAINED_WILL: usize = 1024;

/// A device's budget: its status and its own topics need a handful; a Zigbee2MQTT bridge's
/// `bridge/devices` and `bridge/definitions` can reach a megabyte on a large network.
pub const DEVICE_BUDGET: Budget = Budget {
    topics: 256,
    bytes: 4 * 1024 * 1024,
};

/// One account.
#[derive(Debug, Clone)]
pub struct Account {
    /// In the clear: the guard compares it in constant time at CONNECT.
    pub password: String,
    /// Topic patterns (MQTT filters) it may publish to.
    pub write: Vec<String>,
    /// Topic patterns it may subscribe within.
    pub read: Vec<String>,
    /// Its retained budget; `None` for the gateway itself.
    pub budget: Option<Budget>,
}

/// The accounts, by user name.
#[derive(Debug, Clone, Default)]
pub struct Accounts(HashMap<String, Account>);

impl Accounts {
    /// Adds `user`; a name taken twice is refused (a device named like the gateway's account).
    pub fn add(&mut self, user: &str, account: Account) -> Result<(), String> {
        if self.0.contains_key(user) {
            return Err(format!(
                "two broker accounts are named {user:?} (a device or binding named like the gateway's account?)"
            ));
        }
        self.0.insert(user.to_string(), account);
        Ok(())
    }

    /// The account `user` signs in to with `password`.
    fn check(&self, user: &str, password: &[u8]) -> Option<&Account> {
        let a = self.0.get(user)?;
        same(a.password.as_bytes(), password).then_some(a)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Equal bytes, in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Whether `topic` matches the filter `pattern` (`+` one level, `#` the rest).
pub fn matches(pattern: &str, topic: &str) -> bool {
    let mut p = pattern.split('/');
    let mut t = topic.split('/');
    loop {
        match (p.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic the filter `filter` can match is matched by `pattern`.
pub fn covers(pattern: &str, filter: &str) -> bool {
    let mut p = pattern.split('/');
    let mut f = filter.split('/');
    loop {
        match (p.next(), f.next()) {
            (Some("#"), _) => return true,
            (_, Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a != "+" && b != "+" && a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// What the guard refused, since it started.
#[derive(Debug, Default)]
pub struct GuardStats {
    /// Connections refused: no account, a wrong password, a will it may not leave.
    pub refused: AtomicU64,
    /// Publishes dropped: a topic the account may not write, or past its retained budget.
    pub dropped: AtomicU64,
    /// Subscriptions denied.
    pub denied: AtomicU64,
}

/// The retained messages the broker holds, by topic: whose, and how large.
#[derive(Debug, Default)]
struct Retained {
    by_topic: HashMap<String, (String, usize)>,
    by_user: HashMap<String, (usize, usize)>,
}

impl Retained {
    /// Records a retained message of `len` bytes from `user` on `topic` (0 clears it), if its
    /// `budget` allows; false if it does not (nothing is recorded).
    fn take(&mut self, user: &str, budget: Option<Budget>, topic: &str, len: usize) -> bool {
        let before = self.by_topic.get(topic).cloned();
        let (mut count, mut bytes) = self.by_user.get(user).copied().unwrap_or((0, 0));
        if let Some((owner, old)) = &before {
            if owner == user {
                count -= 1;
                bytes -= old;
            }
        }
        if len > 0 {
            if let Some(b) = budget {
                if count + 1 > b.topics || bytes + len > b.bytes {
                    return false;
                }
            }
        }
        if let Some((owner, old)) = before {
            if let Some(u) = self.by_user.get_mut(&owner) {
                u.0 -= 1;
                u.1 -= old;
            }
            self.by_topic.remove(topic);
        }
        if len > 0 {
            let u = self.by_user.entry(user.to_string()).or_default();
            u.0 += 1;
            u.1 += len;
            self.by_topic
                .insert(topic.to_string(), (user.to_string(), len));
        }
        true
    }
}

struct Shared {
    accounts: Accounts,
    upstream: Upstream,
    max_packet: usize,
    retained: Mutex<Retained>,
    stats: Arc<GuardStats>,
}

/// Serves clients on `listener` for the broker at `upstream` until `stop` turns true; their
/// connections end with it.
pub async fn serve(
    listener: TcpListener,
    upstream: Upstream,
    accounts: Accounts,
    max_packet: usize,
    stats: Arc<GuardStats>,
    mut stop: watch::Receiver<bool>,
) {
    let shared = Arc::new(Shared {
        accounts,
        upstream,
        max_packet,
        retained: Mutex::new(Retained::default()),
        stats,
    });
    let mut clients = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, "broker client refused: {MAX_CLIENTS} clients connected already");
                        continue;
                    };
                    let shared = shared.clone();
                    clients.spawn(async move {
                        if let Err(e) = client(socket, peer, &shared).await {
                            tracing::debug!(%peer, error = %e, "broker client ended");
                        }
                        drop(slot);
                    });
                }
                Err(e) => {
                    // Out of descriptors, say: wait, rather than spin.
                    tracing::warn!(error = %e, "the embedded broker cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
        }
    }
    drop(listener);
    clients.shutdown().await;
}

/// A packet: its first byte and its body.
struct Packet {
    first: u8,
    body: Vec<u8>,
}

impl Packet {
    fn kind(&self) -> u8 {
        self.first >> 4
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 5);
        out.push(self.first);
        let mut n = self.body.len();
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            out.push(b);
            if n == 0 {
                break;
            }
        }
        out.extend_from_slice(&self.body);
        out
    }
}

/// Reads one packet; `None` at the end of the stream.
async fn read_packet<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<Packet>> {
    let mut first = [0u8; 1];
    if r.read(&mut first).await? == 0 {
        return Ok(None);
    }
    let mut len = 0usize;
    for i in 0..4 {
        let b = r.read_u8().await?;
        len |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            if len > max {
                return Err(std::io::Error::other(format!(
                    "a packet of {len} bytes, more than {max}"
                )));
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).await?;
            return Ok(Some(Packet {
                first: first[0],
                body,
            }));
        }
    }
    Err(std::io::Error::other(
        "a packet length of more than 4 bytes",
    ))
}

/// Reads MQTT's length-prefixed fields.
struct Fields<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn u16(&mut self) -> Option<u16> {
        let v = self.b.get(self.at..self.at + 2)?;
        self.at += 2;
        Some(u16::from_be_bytes([v[0], v[1]]))
    }

    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        let v = self.b.get(self.at..self.at + n)?;
        self.at += n;
        Some(v)
    }

    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    fn rest(&self) -> &'a [u8] {
        &self.b[self.at.min(self.b.len())..]
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// A CONNECT, read.
struct Connect<'a> {
    name: &'a [u8],
    level: u8,
    flags: u8,
    keep_alive: u16,
    will: Option<(&'a str, &'a [u8])>,
    user: Option<&'a str>,
    password: Option<&'a [u8]>,
}

fn parse_connect(body: &[u8]) -> Option<Connect<'_>> {
    let mut f = Fields { b: body, at: 0 };
    let name = f.bytes()?;
    let level = f.u8()?;
    let flags = f.u8()?;
    let keep_alive = f.u16()?;
    let _client_id = f.bytes()?;
    let will = if flags & 0x04 != 0 {
        Some((f.text()?, f.bytes()?))
    } else {
        None
    };
    let user = if flags & 0x80 != 0 {
        Some(f.text()?)
    } else {
        None
    };
    let password = if flags & 0x40 != 0 {
        Some(f.bytes()?)
    } else {
        None
    };
    Some(Connect {
        name,
        level,
        flags,
        keep_alive,
        will,
        user,
        password,
    })
}

impl Connect<'_> {
    /// The same CONNECT with `id` for its client id, signed in as `(user, password)` (the
    /// guard's own login to rumqttd).
    fn with_client_id(&self, id: &str, (user, password): &(String, String)) -> Packet {
        let mut body = Vec::new();
        put_bytes(&mut body, self.name);
        body.push(self.level);
        body.push(self.flags | 0xC0);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        put_bytes(&mut body, id.as_bytes());
        if let Some((topic, message)) = self.will {
            put_bytes(&mut body, topic.as_bytes());
            put_bytes(&mut body, message);
        }
        put_bytes(&mut body, user.as_bytes());
        put_bytes(&mut body, password.as_bytes());
        Packet { first: 0x10, body }
    }
}

/// CONNACK return codes (MQTT 3.1.1).
const REFUSED_VERSION: u8 = 1;
const REFUSED_LOGIN: u8 = 4;
const REFUSED_NOT_AUTHORISED: u8 = 5;

async fn refuse(socket: &mut TcpStream, code: u8) {
    let _ = socket.write_all(&[0x20, 2, 0, code]).await;
    let _ = socket.shutdown().await;
}

async fn client(mut socket: TcpStream, peer: SocketAddr, shared: &Shared) -> std::io::Result<()> {
    let _ = socket.set_nodelay(true);
    let connect = match tokio::time::timeout(
        Duration::from_secs(10),
        read_packet(&mut socket, MAX_CONNECT),
    )
    .await
    {
        Ok(Ok(Some(p))) if p.kind() == 1 => p,
        _ => return Ok(()),
    };
    let Some(c) = parse_connect(&connect.body) else {
        tracing::warn!(%peer, "broker client refused: a CONNECT that does not read");
        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    };
    if !matches!((c.name, c.level), (b"MQTT", 4)) {
        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%peer, level = c.level, "broker client refused: the embedded broker speaks MQTT 3.1.1 only");
        refuse(&mut socket, REFUSED_VERSION).await;
        return Ok(());
    }
    let (Some(user), Some(account)) = (
        c.user,
        c.user
            .and_then(|u| shared.accounts.check(u, c.password.unwrap_or_default())),
    ) else {
        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%peer, user = c.user.unwrap_or("(none)"), "broker client refused: no such account or a wrong password");
        refuse(&mut socket, REFUSED_LOGIN).await;
        return Ok(());
    };
    if let Some((topic, message)) = c.will {
        let writable = account.write.iter().any(|p| matches(p, topic));
        let retained = c.flags & 0x20 != 0;
        // A retained will counts against the budget from now (whether it is ever published is
        // rumqttd's to know); an empty one, which would clear the topic, changes nothing yet.
        let small = account.budget.is_none() || message.len() <= MAX_RETAINED_WILL;
        let fits = writable
            && (!retained
                || message.is_empty()
                || small
                    && shared
                        .retained
                        .lock()
                        .map(|mut r| r.take(user, account.budget, topic, message.len()))
                        .unwrap_or(false));
        if !writable || !fits {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, user, topic, "broker client refused: a last will on a topic it may not write, or past its retained budget");
            refuse(&mut socket, REFUSED_NOT_AUTHORISED).await;
            return Ok(());
        }
    }
    let mut upstream = TcpStream::connect(shared.upstream.addr).await?;
    let _ = upstream.set_nodelay(true);
    upstream
        .write_all(&c.with_client_id(user, &shared.upstream.login).encode())
        .await?;
    let (up_read, mut up_write) = upstream.into_split();
    let (client_read, mut client_write) = socket.into_split();
    let mut down = up_read;
    let back = async move {
        let _ = tokio::io::copy(&mut down, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    let forth = async {
        let mut r = BufReader::with_capacity(16 * 1024, client_read);
        while let Some(p) = read_packet(&mut r, shared.max_packet).await? {
            let p = match p.kind() {
                1 => return Err(std::io::Error::other("a second CONNECT")),
                3 => publish(p, user, account, shared, peer)?,
                8 => subscribe(p, user, account, shared, peer)?,
                _ => p,
            };
            up_write.write_all(&p.encode()).await?;
        }
        let _ = up_write.shutdown().await;
        Ok::<(), std::io::Error>(())
    };
    tokio::select! {
        _ = back => Ok(()),
        r = forth => r,
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::other(format!("a {what} that does not read"))
}

/// A PUBLISH as it goes on: as it came, or to the sink with its retain flag off.
fn publish(
    p: Packet,
    user: &str,
    account: &Account,
    shared: &Shared,
    peer: SocketAddr,
) -> std::io::Result<Packet> {
    let qos = (p.first >> 1) & 0x03;
    let retain = p.first & 0x01 != 0;
    let mut f = Fields { b: &p.body, at: 0 };
    let topic = f.text().ok_or_else(|| bad("PUBLISH"))?;
    let id = if qos > 0 {
        Some(f.u16().ok_or_else(|| bad("PUBLISH"))?)
    } else {
        None
    };
    let payload = f.rest();
    // rumqttd records a QoS 2 retained message at PUBREL, not here: an account with a budget
    // could slip messages past it, so it is let in at QoS 0 and 1 only.
    if qos == 2 && account.budget.is_some() {
        shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%peer, user, topic, "broker client dropped: a QoS 2 publish (QoS 0 and 1 only)");
        return Err(std::io::Error::other("a QoS 2 publish"));
    }
    let allowed = account.write.iter().any(|pat| matches(pat, topic));
    // Any empty publish clears the topic's retained message in rumqttd, retained or not.
    let fits = allowed
        && (!(retain || payload.is_empty())
            || shared
                .retained
                .lock()
                .map(|mut r| r.take(user, account.budget, topic, payload.len()))
                .unwrap_or(false));
    if fits {
        return Ok(p);
    }
    shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
    if allowed {
        tracing::warn!(%peer, user, topic, "publish dropped: the account's retained messages are at their budget");
    } else {
        tracing::warn!(%peer, user, topic, "publish dropped: the account may not write this topic");
    }
    let mut body = Vec::new();
    put_bytes(&mut body, SINK.as_bytes());
    if let Some(id) = id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    Ok(Packet {
        first: p.first & !0x01,
        body,
    })
}

/// A SUBSCRIBE as it goes on, each filter the account may not read replaced by [`DENIED`].
fn subscribe(
    p: Packet,
    user: &str,
    account: &Account,
    shared: &Shared,
    peer: SocketAddr,
) -> std::io::Result<Packet> {
    let mut f = Fields { b: &p.body, at: 0 };
    let id = f.u16().ok_or_else(|| bad("SUBSCRIBE"))?;
    let mut body = id.to_be_bytes().to_vec();
    while f.at < p.body.len() {
        let filter = f.text().ok_or_else(|| bad("SUBSCRIBE"))?;
        let options = f.u8().ok_or_else(|| bad("SUBSCRIBE"))?;
        if account.read.iter().any(|pat| covers(pat, filter)) {
            put_bytes(&mut body, filter.as_bytes());
        } else {
            shared.stats.denied.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, user, filter, "subscription denied: the account may not read it");
            put_bytes(&mut body, DENIED.as_bytes());
        }
        body.push(options);
    }
    Ok(Packet {
        first: p.first,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_match_patterns_as_mosquitto_s_acl_does() {
        assert!(matches(
            "kombinat/v1/door/+/tap",
            "kombinat/v1/door/d-main/tap"
        ));
        assert!(!matches(
            "kombinat/v1/door/+/tap",
            "kombinat/v1/door/d-main/state"
        ));
        assert!(matches("tele/t1/#", "tele/t1/SENSOR"));
        assert!(matches("tele/t1/#", "tele/t1"));
        assert!(!matches("tele/t1/#", "tele/t2/SENSOR"));
        assert!(matches("#", "anything/at/all"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
    }

    #[test]
    fn a_filter_is_allowed_only_within_a_pattern() {
        assert!(covers("cmnd/t1/#", "cmnd/t1/#"));
        assert!(covers("cmnd/t1/#", "cmnd/t1/POWER"));
        assert!(covers("k/door/d-main/decision", "k/door/d-main/decision"));
        assert!(!covers("k/door/d-main/decision", "k/door/+/decision"));
        assert!(!covers("k/door/d-main/decision", "#"));
        assert!(!covers("cmnd/t1/#", "cmnd/+/#"));
        assert!(covers("k/+/x", "k/+/x"));
        assert!(covers("#", "k/#"));
        assert!(!covers("k/+", "k/#"));
    }

    #[test]
    fn retained_messages_are_held_to_each_account_s_budget() {
        let b = Some(Budget {
            topics: 2,
            bytes: 10,
        });
        let mut r = Retained::default();
        assert!(r.take("dev", b, "t/1", 4));
        assert!(r.take("dev", b, "t/2", 4));
        // A third topic is past the count; a larger message on one of its own past the bytes.
        assert!(!r.take("dev", b, "t/3", 1));
        assert!(!r.take("dev", b, "t/1", 7));
        // Replacing its own message within the budget, and clearing one, are taken.
        assert!(r.take("dev", b, "t/1", 6));
        assert!(r.take("dev", b, "t/2", 0));
        assert!(r.take("dev", b, "t/3", 4));
        // The gateway has no budget, and its message on a topic frees the device's share.
        assert!(r.take("gw", None, "t/3", 1000));
        assert!(r.take("dev", b, "t/4", 4));
        assert_eq!(r.by_user["dev"], (2, 10));
    }

    #[test]
    fn a_connect_reads_and_is_written_again_with_another_client_id() {
        let mut body = Vec::new();
        put_bytes(&mut body, b"MQTT");
        body.extend_from_slice(&[4, 0x80 | 0x40 | 0x04 | 0x20 | 0x02, 0, 30]);
        put_bytes(&mut body, b"someone-else");
        put_bytes(&mut body, b"k/status");
        put_bytes(&mut body, b"offline");
        put_bytes(&mut body, b"dn-main");
        put_bytes(&mut body, b"pw");
        let c = parse_connect(&body).unwrap();
        assert_eq!(c.user, Some("dn-main"));
        assert_eq!(c.will, Some(("k/status", b"offline".as_slice())));
        let inner = ("kombinat-guard".to_string(), "inner".to_string());
        let again = c.with_client_id("dn-main", &inner);
        let c2 = parse_connect(&again.body).unwrap();
        assert_eq!(c2.user, Some("kombinat-guard"));
        assert_eq!(c2.password, Some(b"inner".as_slice()));
        assert_eq!(c2.will, c.will);
        assert_eq!(c2.flags, c.flags);
        assert_eq!(c2.keep_alive, 30);
        let mut f = Fields {
            b: &again.body,
            at: 10,
        };
        assert_eq!(f.text(), Some("dn-main"));
        // A CONNECT cut short does not read.
        assert!(parse_connect(&body[..body.len() - 3]).is_none());
    }
}
