//! Identifiers: short, fixed-capacity ASCII names that are `Copy` and need no allocation.
//!
//! Doors, rooms, zones, floors, members, plans and devices are all named by an [`Ident`]: 1 to
//! [`Ident::MAX_LEN`] bytes of lower-case ASCII letters, digits, `-`, `_` and `.`, starting with
//! a letter or digit. The same rule holds in the site file, the store, the CLI, MQTT topics and
//! the firmware, so an identifier that parsed once can be used anywhere without escaping.

use core::fmt;
use core::str::FromStr;

/// A validated identifier (see the module documentation for the rule). Ordered as its text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ident {
    len: u8,
    bytes: [u8; Ident::MAX_LEN],
}

/// Why a string is not an [`Ident`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentError {
    /// The string is empty.
    Empty,
    /// The string is longer than [`Ident::MAX_LEN`] bytes.
    TooLong,
    /// The first character is not a lower-case letter or a digit.
    BadStart,
    /// A character outside `a-z`, `0-9`, `-`, `_`, `.`; the byte offset is given.
    BadChar(usize),
}

impl fmt::Display for IdentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentError::Empty => f.write_str("an identifier cannot be empty"),
            IdentError::TooLong => write!(
                f,
                "an identifier is at most {} characters long",
                Ident::MAX_LEN
            ),
            IdentError::BadStart => {
                f.write_str("an identifier starts with a lower-case letter or a digit")
            }
            IdentError::BadChar(at) => write!(
                f,
                "character {} is not allowed in an identifier (use a-z, 0-9, '-', '_', '.')",
                at + 1
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for IdentError {}

impl Ident {
    /// The longest identifier, in bytes.
    pub const MAX_LEN: usize = 32;

    /// Parses an identifier, refusing anything outside the rule.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let raw = s.as_bytes();
        if raw.is_empty() {
            return Err(IdentError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(IdentError::TooLong);
        }
        if !(raw[0].is_ascii_lowercase() || raw[0].is_ascii_digit()) {
            return Err(IdentError::BadStart);
        }
        if let Some(at) = raw.iter().position(|&b| {
            !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.')
        }) {
            return Err(IdentError::BadChar(at));
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(Ident {
            len: raw.len() as u8,
            bytes,
        })
    }

    /// The identifier as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII was ever copied in, so this cannot fail; fall back to "" rather than panic.
        core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl Ord for Ident {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Ident {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for Ident {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ident::parse(s)
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl AsRef<str> for Ident {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl serde::Serialize for Ident {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Ident {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Ident;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an identifier (a-z, 0-9, '-', '_', '.', at most 32 characters)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Ident, E> {
                Ident::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_one_rule() {
        assert_eq!(
            Ident::parse("d-lobby").map(|i| i.to_string()),
            Ok("d-lobby".into())
        );
        assert_eq!(
            Ident::parse("0.a_b-c").map(|i| i.to_string()),
            Ok("0.a_b-c".into())
        );
        assert_eq!(Ident::parse(""), Err(IdentError::Empty));
        assert_eq!(Ident::parse("-x"), Err(IdentError::BadStart));
        assert_eq!(Ident::parse("Lobby"), Err(IdentError::BadStart));
        assert_eq!(Ident::parse("lob by"), Err(IdentError::BadChar(3)));
        assert_eq!(Ident::parse(&"a".repeat(33)), Err(IdentError::TooLong));
        assert!(Ident::parse(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn identifiers_round_trip_through_json() {
        let id = Ident::parse("room-h3").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"room-h3\"");
        assert_eq!(serde_json::from_str::<Ident>(&json).unwrap(), id);
        assert!(serde_json::from_str::<Ident>("\"Room H3\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_accepts_exactly_the_rule(s in "\\PC{0,40}") {
            let ok = !s.is_empty() && s.len() <= 32
                && s.as_bytes()[0].is_ascii_alphanumeric() && !s.as_bytes()[0].is_ascii_uppercase()
                && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
            let parsed = Ident::parse(&s);
            proptest::prop_assert_eq!(parsed.is_ok(), ok);
            if let Ok(id) = parsed { proptest::prop_assert_eq!(id.as_str(), s.as_str()); }
        }
    }
}

macro_rules! typed_ids {
    ($( $(#[$doc:meta])* $name:ident; )*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Ident);

        impl $name {
            /// Parses the identifier (see [`Ident`] for the rule).
            pub fn parse(s: &str) -> Result<Self, IdentError> {
                Ident::parse(s).map($name)
            }
            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl FromStr for $name {
            type Err = IdentError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }
    )*};
}

typed_ids! {
    /// A door, or more exactly one reader of a door (a door read from both sides has two).
    DoorId;
    /// A room of the site.
    RoomId;
    /// A zone: a named group of rooms that plans refer to ("coworking", "common").
    ZoneId;
    /// A floor of the site.
    FloorId;
    /// A member: anyone who holds a credential, staff included.
    MemberId;
    /// A plan: a bundle of rights on a weekly schedule.
    PlanId;
    /// An organisation (a tenant, a studio).
    OrgId;
    /// A certification a room may require, such as a lab safety induction.
    CertId;
    /// A lease of a room to an organisation.
    LeaseId;
    /// A booking source: the system a booking came from ("coworking", "calendar-hall-a", "cli").
    SourceId;
    /// A device that speaks to the gateway (a door node, a sensor node).
    DeviceId;
}
