//! Credentials presented at a door: a card UID or a keypad PIN.
//!
//! Readers report UIDs in many spellings (`04:a1:b2:c3`, `04A1B2C3`, `04-A1-B2-C3`); [`CardId::parse`]
//! accepts them all and keeps one canonical form, upper-case hex without separators, so that the
//! same card is the same key everywhere. UIDs are 1 to 10 bytes (ISO 14443 single, double and
//! triple size; shorter for 125 kHz and Wiegand numbers written as hex).

use core::fmt;
use core::str::FromStr;

/// Why a string is not a card UID or a PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    /// No hex digits at all.
    EmptyCard,
    /// A character that is neither a hex digit nor a separator (`:`, `-`, space).
    NotHex,
    /// An odd number of hex digits: a UID is whole bytes.
    OddLength,
    /// More than [`CardId::MAX_BYTES`] bytes.
    CardTooLong,
    /// A PIN has 4 to 8 digits.
    PinLength,
    /// A PIN holds digits only.
    PinNotDigits,
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialError::EmptyCard => "a card UID needs at least one byte of hex",
            CredentialError::NotHex => "a card UID is written in hex digits (0-9, A-F)",
            CredentialError::OddLength => "a card UID has an even number of hex digits",
            CredentialError::CardTooLong => "a card UID is at most 10 bytes (20 hex digits)",
            CredentialError::PinLength => "a PIN has 4 to 8 digits",
            CredentialError::PinNotDigits => "a PIN holds digits only",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CredentialError {}

/// A card UID in canonical form. Ordered as its bytes (and so as its hex text).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CardId {
    len: u8,
    bytes: [u8; CardId::MAX_BYTES],
}

impl CardId {
    /// The longest UID, in bytes (ISO 14443 triple size).
    pub const MAX_BYTES: usize = 10;

    /// Parses a UID written in hex, in either case, with optional `:`, `-` or space separators.
    pub fn parse(s: &str) -> Result<Self, CredentialError> {
        let mut bytes = [0u8; Self::MAX_BYTES];
        let mut nibbles = 0usize;
        for c in s.trim().bytes() {
            let v = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                b':' | b'-' | b' ' => continue,
                _ => return Err(CredentialError::NotHex),
            };
            if nibbles / 2 >= Self::MAX_BYTES {
                return Err(CredentialError::CardTooLong);
            }
            bytes[nibbles / 2] |= if nibbles % 2 == 0 { v << 4 } else { v };
            nibbles += 1;
        }
        if nibbles == 0 {
            return Err(CredentialError::EmptyCard);
        }
        if nibbles % 2 == 1 {
            return Err(CredentialError::OddLength);
        }
        Ok(CardId {
            len: (nibbles / 2) as u8,
            bytes,
        })
    }

    /// Builds a UID from raw bytes as a reader returns them.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, CredentialError> {
        if raw.is_empty() {
            return Err(CredentialError::EmptyCard);
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(CredentialError::CardTooLong);
        }
        let mut bytes = [0u8; Self::MAX_BYTES];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(CardId {
            len: raw.len() as u8,
            bytes,
        })
    }

    /// The UID's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl Ord for CardId {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl PartialOrd for CardId {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pin {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.expose().cmp(other.expose())
    }
}

impl PartialOrd for Pin {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardId({self})")
    }
}

impl FromStr for CardId {
    type Err = CredentialError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CardId::parse(s)
    }
}

/// A keypad PIN: 4 to 8 decimal digits. Its `Debug` form hides the digits, so it never reaches
/// a log by accident. Ordered as its digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin {
    len: u8,
    digits: [u8; 8],
}

impl Pin {
    /// Parses a PIN.
    pub fn parse(s: &str) -> Result<Self, CredentialError> {
        let raw = s.trim().as_bytes();
        if !(4..=8).contains(&raw.len()) {
            return Err(CredentialError::PinLength);
        }
        if !raw.iter().all(u8::is_ascii_digit) {
            return Err(CredentialError::PinNotDigits);
        }
        let mut digits = [0u8; 8];
        digits[..raw.len()].copy_from_slice(raw);
        Ok(Pin {
            len: raw.len() as u8,
            digits,
        })
    }

    /// The digits, for storing and for the wire; do not log them.
    pub fn expose(&self) -> &str {
        core::str::from_utf8(&self.digits[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(****)")
    }
}

/// What a member presents at a door.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Credential {
    /// A card (or phone, or fob) read by its UID.
    Card(CardId),
    /// A PIN typed on the door's keypad.
    Pin(Pin),
}

impl fmt::Display for Credential {
    /// Cards print their UID, PINs print masked: this form is safe for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Card(c) => write!(f, "card {c}"),
            Credential::Pin(_) => f.write_str("PIN ****"),
        }
    }
}

macro_rules! string_serde {
    ($t:ty, $what:literal, |$v:ident| $to:expr) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let $v = self;
                s.collect_str(&$to)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        <$t>::from_str(v).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

impl FromStr for Pin {
    type Err = CredentialError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pin::parse(s)
    }
}

string_serde!(CardId, "a card UID in hex", |v| v);
string_serde!(Pin, "a PIN of 4 to 8 digits", |v| v.expose());

/// On the wire a credential is `{"card":"04A1B2C3"}` or `{"pin":"1234"}`.
impl serde::Serialize for Credential {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Credential::Card(c) => m.serialize_entry("card", c)?,
            Credential::Pin(p) => m.serialize_entry("pin", p)?,
        }
        m.end()
    }
}

impl<'de> serde::Deserialize<'de> for Credential {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "lowercase", deny_unknown_fields)]
        enum Wire {
            Card(CardId),
            Pin(Pin),
        }
        Ok(match Wire::deserialize(d)? {
            Wire::Card(c) => Credential::Card(c),
            Wire::Pin(p) => Credential::Pin(p),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_uids_are_canonical_upper_case_hex() {
        let a = CardId::parse("04:a1:b2:c3").unwrap();
        let b = CardId::parse("04A1B2C3").unwrap();
        let c = CardId::parse(" 04-A1-b2-C3 ").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.to_string(), "04A1B2C3");
        assert_eq!(a.as_bytes(), &[0x04, 0xA1, 0xB2, 0xC3]);
    }

    #[test]
    fn malformed_card_uids_are_refused_with_a_reason() {
        assert_eq!(CardId::parse(""), Err(CredentialError::EmptyCard));
        assert_eq!(CardId::parse("::"), Err(CredentialError::EmptyCard));
        assert_eq!(CardId::parse("04A1B2C"), Err(CredentialError::OddLength));
        assert_eq!(CardId::parse("04G1"), Err(CredentialError::NotHex));
        assert_eq!(
            CardId::parse(&"AB".repeat(11)),
            Err(CredentialError::CardTooLong)
        );
        assert!(CardId::parse(&"AB".repeat(10)).is_ok());
    }

    #[test]
    fn pins_hide_their_digits_in_debug_and_display() {
        let p = Pin::parse("123456").unwrap();
        assert_eq!(format!("{p:?}"), "Pin(****)");
        assert_eq!(Credential::Pin(p).to_string(), "PIN ****");
        assert_eq!(Pin::parse("123"), Err(CredentialError::PinLength));
        assert_eq!(Pin::parse("12a4"), Err(CredentialError::PinNotDigits));
    }

    #[test]
    fn credentials_have_a_stable_wire_form() {
        let c = Credential::Card(CardId::parse("04a1b2c3").unwrap());
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"card":"04A1B2C3"}"#);
        let p: Credential = serde_json::from_str(r#"{"pin":"0042"}"#).unwrap();
        assert_eq!(p, Credential::Pin(Pin::parse("0042").unwrap()));
        assert!(serde_json::from_str::<Credential>(r#"{"card":"zz"}"#).is_err());
        assert!(serde_json::from_str::<Credential>(r#"{"key":"00"}"#).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_uid_survives_display_and_parse(raw in proptest::collection::vec(proptest::num::u8::ANY, 1..=10)) {
            let id = CardId::from_bytes(&raw).unwrap();
            let again = CardId::parse(&id.to_string()).unwrap();
            proptest::prop_assert_eq!(id, again);
            proptest::prop_assert_eq!(again.as_bytes(), &raw[..]);
        }

        #[test]
        fn card_parse_never_panics(s in "\\PC{0,40}") {
            let _ = CardId::parse(&s);
            let _ = Pin::parse(&s);
        }
    }
}
