//! Message authentication: HMAC-SHA256 with a per-device key and a monotonic counter.
//!
//! Every signed message (taps, decisions, door state, commands, allow-lists, offline logs, mode
//! changes) carries a `counter` and a `mac`. The MAC covers a canonical text of the message's
//! fields, built by [`Signed::mac_input`]: `kombinat/1|<kind>|<field>|<field>|…`, where every
//! field is an identifier, hex, a reason code or a decimal number (none can contain `|`). Signing
//! over fields instead of the JSON bytes means both sides agree without canonical JSON.
//!
//! The receiver checks, in this order: the device is known, the MAC is right, the counter is
//! greater than the last one accepted from that device ([`ReplayGuard`]). Each direction has
//! its own counter: the device counts what it sends, the gateway counts what it sends to that
//! device, and each side remembers the other's last counter.

use core::fmt;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The version tag at the start of every MAC input.
pub const MAC_DOMAIN: &str = "kombinat/1";

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn from_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (hex_digit(b[2 * i])? << 4) | hex_digit(b[2 * i + 1])?;
    }
    Some(out)
}

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A device's 256-bit secret key. Its `Debug` form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey([u8; 32]);

impl DeviceKey {
    /// A key from raw bytes (e.g. from the OS random generator).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        DeviceKey(b)
    }

    /// Parses 64 hex digits.
    pub fn parse_hex(s: &str) -> Option<Self> {
        from_hex32(s.trim()).map(DeviceKey)
    }

    /// The key as 64 lower-case hex digits, for provisioning a device. Do not log it.
    pub fn expose_hex(&self) -> impl fmt::Display + '_ {
        Hex(&self.0)
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(****)")
    }
}

/// A MAC: 32 bytes, 64 hex digits on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Mac(pub [u8; 32]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Hex(&self.0).fmt(f)
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Mac;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a MAC of 64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Mac, E> {
                from_hex32(v)
                    .map(Mac)
                    .ok_or_else(|| E::custom("a MAC is 64 hex digits"))
            }
        }
        d.deserialize_str(V)
    }
}

/// Collects the canonical MAC input of a message, field by field.
pub struct MacInput(HmacSha256);

impl MacInput {
    fn new(key: &DeviceKey, kind: &str) -> Self {
        // HMAC accepts keys of any length; a 32-byte key cannot fail.
        let mut m = match HmacSha256::new_from_slice(&key.0) {
            Ok(m) => MacInput(m),
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        m.text(MAC_DOMAIN);
        m.text(kind);
        m
    }

    /// Adds a text field.
    pub fn text(&mut self, s: &str) {
        self.0.update(s.as_bytes());
        self.0.update(b"|");
    }

    /// Adds a number field, in decimal.
    pub fn num(&mut self, n: u64) {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        let mut n = n;
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.0.update(&buf[i..]);
        self.0.update(b"|");
    }

    /// Adds any displayable field (identifiers, card UIDs, reason codes).
    pub fn show(&mut self, v: impl fmt::Display) {
        struct W<'a>(&'a mut HmacSha256);
        impl fmt::Write for W<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0.update(s.as_bytes());
                Ok(())
            }
        }
        let _ = fmt::write(&mut W(&mut self.0), format_args!("{v}"));
        self.0.update(b"|");
    }
}

/// Computes the MAC of a message of `kind` held in parts, whose fields `fields` feeds in the
/// order [`Signed::mac_input`] would: for a node without an allocator, which keeps a long
/// message (an allow-list, its offline log) in its own fixed storage rather than in a struct.
pub fn mac_of(key: &DeviceKey, kind: &str, fields: impl FnOnce(&mut MacInput)) -> Mac {
    let mut m = MacInput::new(key, kind);
    fields(&mut m);
    Mac(m.0.finalize().into_bytes().into())
}

/// A device's MQTT broker password, derived from its key: the first 16 bytes of a MAC, in 32
/// hex digits. The gateway writes it into the broker's accounts (mosquitto's password file, the
/// embedded broker's), and a node that has its key can derive it, so it is never stored apart
/// from the key.
#[cfg(feature = "std")]
pub fn broker_password(key: &DeviceKey) -> String {
    mac_of(key, "mqtt-password", |_| {}).password()
}

#[cfg(feature = "std")]
impl Mac {
    /// Its first 16 bytes in hex: a broker password (see [`broker_password`]).
    pub fn password(&self) -> String {
        Hex(&self.0[..16]).to_string()
    }
}

/// Whether `mac` is the MAC of a message of `kind` held in parts (see [`mac_of`]), compared in
/// constant time.
pub fn verify_parts(
    key: &DeviceKey,
    kind: &str,
    fields: impl FnOnce(&mut MacInput),
    mac: &Mac,
) -> bool {
    let mut m = MacInput::new(key, kind);
    fields(&mut m);
    m.0.verify_slice(&mac.0).is_ok()
}

/// A message that carries a counter and a MAC.
pub trait Signed {
    /// The message kind, part of the MAC input (e.g. `tap`).
    const KIND: &'static str;
    /// Feeds every field except the MAC, in a fixed order.
    fn mac_input(&self, m: &mut MacInput);
    /// The sender's counter: it grows with every message it signs, so a replay is refused.
    fn counter(&self) -> u64;
    /// The MAC carried.
    fn mac(&self) -> &Mac;
    /// Sets the MAC.
    fn set_mac(&mut self, mac: Mac);

    /// Computes the MAC under `key`.
    fn compute_mac(&self, key: &DeviceKey) -> Mac {
        let mut m = MacInput::new(key, Self::KIND);
        self.mac_input(&mut m);
        Mac(m.0.finalize().into_bytes().into())
    }

    /// Signs the message in place.
    fn sign(&mut self, key: &DeviceKey) {
        let mac = self.compute_mac(key);
        self.set_mac(mac);
    }

    /// Whether the MAC is right, compared in constant time.
    fn verify(&self, key: &DeviceKey) -> bool {
        let mut m = MacInput::new(key, Self::KIND);
        self.mac_input(&mut m);
        m.0.verify_slice(&self.mac().0).is_ok()
    }
}

/// Implements [`Signed`] for a message with `counter` and `mac` fields, given its kind and how
/// its other fields feed the MAC input.
macro_rules! signed {
    ($t:ty, $kind:literal, |$s:ident, $m:ident| $body:block) => {
        impl $crate::auth::Signed for $t {
            const KIND: &'static str = $kind;
            fn mac_input(&self, $m: &mut $crate::auth::MacInput) {
                let $s = self;
                $body
            }
            fn counter(&self) -> u64 {
                self.counter
            }
            fn mac(&self) -> &$crate::auth::Mac {
                &self.mac
            }
            fn set_mac(&mut self, mac: $crate::auth::Mac) {
                self.mac = mac;
            }
        }
    };
}
pub(crate) use signed;

/// A counter that was not greater than the last one accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// The counter received.
    pub counter: u64,
    /// The last counter accepted.
    pub last: u64,
}

/// Remembers the last counter accepted from one sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayGuard {
    last: u64,
}

impl ReplayGuard {
    /// A guard that has accepted everything up to `last`.
    pub fn after(last: u64) -> Self {
        ReplayGuard { last }
    }

    /// The last counter accepted.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Accepts `counter` if it is greater than every counter accepted before.
    pub fn accept(&mut self, counter: u64) -> Result<(), Replayed> {
        if counter <= self.last {
            return Err(Replayed {
                counter,
                last: self.last,
            });
        }
        self.last = counter;
        Ok(())
    }
}
