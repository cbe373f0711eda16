//! The door family: taps in, decisions out, door state in, commands out, allow-lists out
//! (retained), offline decision logs in and their acknowledgement out.
//!
//! Every message names its door and the door node's device id and is signed with that device's
//! key (see [`crate::auth`]): the node signs what it sends, the gateway signs what it sends to
//! the node, each with its own counter.

use crate::auth::{signed, Mac, MacInput};
use crate::{Credential, DeviceId, DoorId, Reason};

/// The leaves under `door/<door>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorTopic {
    /// `tap`: node → gateway, a credential was presented.
    Tap,
    /// `decision`: gateway → node, open or not.
    Decision,
    /// `state`: node → gateway, contact, lock and alarms.
    State,
    /// `command`: gateway → node, unlock, lock, mode.
    Command,
    /// `allowlist`: gateway → node (retained), who may pass when the gateway is unreachable.
    AllowList,
    /// `offline-log`: node → gateway, decisions taken from the allow-list.
    OfflineLog,
    /// `offline-ack`: gateway → node, the offline log is stored up to a tap counter.
    OfflineAck,
}

impl DoorTopic {
    pub(crate) fn parse(leaf: &str) -> Option<Self> {
        Some(match leaf {
            "tap" => DoorTopic::Tap,
            "decision" => DoorTopic::Decision,
            "state" => DoorTopic::State,
            "command" => DoorTopic::Command,
            "allowlist" => DoorTopic::AllowList,
            "offline-log" => DoorTopic::OfflineLog,
            "offline-ack" => DoorTopic::OfflineAck,
            _ => return None,
        })
    }

    pub(crate) fn leaf(self) -> &'static str {
        match self {
            DoorTopic::Tap => "tap",
            DoorTopic::Decision => "decision",
            DoorTopic::State => "state",
            DoorTopic::Command => "command",
            DoorTopic::AllowList => "allowlist",
            DoorTopic::OfflineLog => "offline-log",
            DoorTopic::OfflineAck => "offline-ack",
        }
    }
}

/// The protocol version in every payload's `v`.
pub const VERSION: u8 = 1;

fn credential_field(m: &mut MacInput, c: &Credential) {
    match c {
        Credential::Card(card) => {
            m.text("card");
            m.show(card);
        }
        Credential::Pin(pin) => {
            m.text("pin");
            m.text(pin.expose());
        }
    }
}

/// A tap: `{"v":1,"door":"d-main","device":"door-main","counter":42,"credential":{"card":"04A1B2C3"},"mac":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tap {
    /// Protocol version.
    pub v: u8,
    /// The door (must match the topic and the device's binding).
    pub door: DoorId,
    /// The door node.
    pub device: DeviceId,
    /// The node's counter, increasing with every message it signs.
    pub counter: u64,
    /// What was presented.
    pub credential: Credential,
    /// HMAC over the fields above.
    pub mac: Mac,
}

signed!(Tap, "tap", |s, m| {
    m.num(u64::from(s.v));
    m.show(s.door);
    m.show(s.device);
    m.num(s.counter);
    credential_field(m, &s.credential);
});

/// A decision for a tap, signed by the gateway with the node's key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Protocol version.
    pub v: u8,
    /// The door it is for: a node refuses a message for any door but its own.
    pub door: DoorId,
    /// The door node it is meant for.
    pub device: DeviceId,
    /// The gateway's counter towards this node.
    pub counter: u64,
    /// The counter of the tap this answers.
    pub tap: u64,
    /// Whether to open.
    pub allow: bool,
    /// The reason code.
    pub reason: Reason,
    /// How long to release the strike.
    pub unlock_ms: u32,
    /// HMAC over the fields above.
    pub mac: Mac,
}

signed!(Decision, "decision", |s, m| {
    m.num(u64::from(s.v));
    m.show(s.door);
    m.show(s.device);
    m.num(s.counter);
    m.num(s.tap);
    m.num(u64::from(s.allow));
    m.text(s.reason.code());
    m.num(u64::from(s.unlock_ms));
});

/// The door contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contact {
    /// Door shut.
    Closed,
    /// Door open.
    Open,
}

/// A door's state as its node sees it, sent on every change and with each heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorState {
    /// Protocol version.
    pub v: u8,
    /// The door it is from: the gateway refuses it when that is not the topic's door.
    pub door: DoorId,
    /// The door node.
    pub device: DeviceId,
    /// The node's counter.
    pub counter: u64,
    /// Door contact.
    pub contact: Contact,
    /// Whether the strike is locked.
    pub locked: bool,
    /// Open longer than its limit.
    pub held_open: bool,
    /// Opened while locked without an exit request.
    pub forced: bool,
    /// The reader or node housing was opened.
    pub tamper: bool,
    /// HMAC over the fields above.
    pub mac: Mac,
}

signed!(DoorState, "state", |s, m| {
    m.num(u64::from(s.v));
    m.show(s.door);
    m.show(s.device);
    m.num(s.counter);
    m.text(match s.contact {
        Contact::Closed => "closed",
        Contact::Open => "open",
    });
    m.num(u64::from(s.locked));
    m.num(u64::from(s.held_open));
    m.num(u64::from(s.forced));
    m.num(u64::from(s.tamper));
});

/// What a command asks the door to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Release the strike for `ms` milliseconds (remote unlock).
    Unlock {
        /// How long.
        ms: u32,
    },
    /// Lock now.
    Lock,
    /// Stay released until told otherwise (public hours, emergency, shelter route).
    Release,
    /// Back to normal: locked, opening on decisions.
    Normal,
}

/// A command to a door node, signed by the gateway.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Protocol version.
    pub v: u8,
    /// The door it is for: a node refuses a message for any door but its own.
    pub door: DoorId,
    /// The door node.
    pub device: DeviceId,
    /// The gateway's counter towards this node.
    pub counter: u64,
    /// What to do: `{"unlock":{"ms":5000}}`, `"lock"`, `"release"` or `"normal"`.
    pub action: Action,
    /// HMAC over the fields above.
    pub mac: Mac,
}

signed!(Command, "command", |s, m| {
    m.num(u64::from(s.v));
    m.show(s.door);
    m.show(s.device);
    m.num(s.counter);
    match s.action {
        Action::Unlock { ms } => {
            m.text("unlock");
            m.num(u64::from(ms));
        }
        Action::Lock => m.text("lock"),
        Action::Release => m.text("release"),
        Action::Normal => m.text("normal"),
    }
});

/// One card on an allow-list, with the window in which it opens the door (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    /// A card that opens the door within the window below.
    pub card: crate::CardId,
    /// First second (inclusive).
    pub from: u64,
    /// Last second (exclusive).
    pub until: u64,
}

impl AllowEntry {
    /// The bytes this entry takes in a list's JSON, with the comma after it, worked out without
    /// serialising it: what decides how many entries fit in one MQTT packet.
    pub fn json_len(&self) -> usize {
        r#"{"card":"","from":,"until":},"#.len()
            + 2 * self.card.as_bytes().len()
            + digits(self.from)
            + digits(self.until)
    }
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The most cards an allow-list carries: what a door node holds. The gateway sends no more (the
/// entries valid soonest), and a node refuses a longer list whole.
pub const ALLOW_LIST_MAX: usize = 4_096;

/// The cards that may open a door in a window, for the node to decide on when the gateway is
/// unreachable. Retained, signed, republished whenever rights change and at least hourly.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowList {
    /// Protocol version.
    pub v: u8,
    /// The door it is for: a node refuses a message for any door but its own.
    pub door: DoorId,
    /// The door node.
    pub device: DeviceId,
    /// The gateway's counter towards this node.
    pub counter: u64,
    /// The list is valid from (Unix seconds)…
    pub valid_from: u64,
    /// …until (exclusive); after that the node denies offline taps.
    pub valid_until: u64,
    /// Cards and their windows, sorted by card.
    pub cards: std::vec::Vec<AllowEntry>,
    /// HMAC over the fields above, every entry included.
    pub mac: Mac,
}

#[cfg(feature = "std")]
signed!(AllowList, "allowlist", |s, m| {
    s.head().mac_input(m, &s.cards);
});

/// An allow-list without its cards: what a node without an allocator keeps beside the cards it
/// stores in its own fixed table, and checks with [`AllowListHead::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowListHead {
    /// Protocol version.
    pub v: u8,
    /// The door it is for: a node refuses a message for any door but its own.
    pub door: DoorId,
    /// The door node.
    pub device: DeviceId,
    /// The gateway's counter towards this node.
    pub counter: u64,
    /// Valid from (Unix seconds).
    pub valid_from: u64,
    /// Valid until (exclusive).
    pub valid_until: u64,
}

impl AllowListHead {
    /// The kind in the MAC input.
    pub const KIND: &'static str = "allowlist";

    /// Feeds the head and `cards` to the MAC input, as [`AllowList`]'s `mac_input` does.
    pub fn mac_input(&self, m: &mut MacInput, cards: &[AllowEntry]) {
        m.num(u64::from(self.v));
        m.show(self.door);
        m.show(self.device);
        m.num(self.counter);
        m.num(self.valid_from);
        m.num(self.valid_until);
        m.num(cards.len() as u64);
        for e in cards {
            m.show(e.card);
            m.num(e.from);
            m.num(e.until);
        }
    }

    /// Whether `mac` signs this head with `cards` under `key`.
    pub fn verify(&self, key: &crate::auth::DeviceKey, cards: &[AllowEntry], mac: &Mac) -> bool {
        crate::auth::verify_parts(key, Self::KIND, |m| self.mac_input(m, cards), mac)
    }
}

#[cfg(feature = "std")]
impl AllowList {
    /// The list without its cards.
    pub fn head(&self) -> AllowListHead {
        AllowListHead {
            v: self.v,
            door: self.door,
            device: self.device,
            counter: self.counter,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
        }
    }
}

/// A decision a node took alone, from its allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineEntry {
    /// The counter the tap would have carried (unique per node).
    pub tap: u64,
    /// When (Unix seconds, the node's clock).
    pub at: u64,
    /// The card (PINs are not decided offline).
    pub card: crate::CardId,
    /// Whether the node opened.
    pub allow: bool,
    /// The node's reason: `allow.offline_list` or `deny.offline_not_listed`… see the reason page.
    pub reason: Reason,
}

/// A node's log of offline decisions, sent when the link returns and resent until acknowledged.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineLog {
    /// Protocol version.
    pub v: u8,
    /// The door it is from: the gateway refuses it when that is not the topic's door.
    pub door: DoorId,
    /// The door node.
    pub device: DeviceId,
    /// The node's counter.
    pub counter: u64,
    /// The decisions, oldest first.
    pub entries: std::vec::Vec<OfflineEntry>,
    /// HMAC over the fields above, every entry included.
    pub mac: Mac,
}

#[cfg(feature = "std")]
signed!(OfflineLog, "offline-log", |s, m| {
    offline_log_fields(m, s.v, s.door, s.device, s.counter, &s.entries);
});

/// Feeds an offline log's fields to the MAC input, for a node that keeps its entries in a fixed
/// table: `mac_of(key, OFFLINE_LOG_KIND, |m| offline_log_fields(m, …))`.
pub fn offline_log_fields(
    m: &mut MacInput,
    v: u8,
    door: DoorId,
    device: DeviceId,
    counter: u64,
    entries: &[OfflineEntry],
) {
    m.num(u64::from(v));
    m.show(door);
    m.show(device);
    m.num(counter);
    m.num(entries.len() as u64);
    for e in entries {
        m.num(e.tap);
        m.num(e.at);
        m.show(e.card);
        m.num(u64::from(e.allow));
        m.text(e.reason.code());
    }
}

/// The kind of an offline log in the MAC input.
pub const OFFLINE_LOG_KIND: &str = "offline-log";

/// The gateway has stored the node's offline decisions up to tap counter `up_to`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineAck {
    /// Protocol version.
    pub v: u8,
    /// The door it is for: a node refuses a message for any door but its own.
    pub door: DoorId,
    /// The door node.
    pub device: DeviceId,
    /// The gateway's counter towards this node.
    pub counter: u64,
    /// Every entry with `tap <= up_to` is stored; the node may forget them.
    pub up_to: u64,
    /// HMAC over the fields above.
    pub mac: Mac,
}

signed!(OfflineAck, "offline-ack", |s, m| {
    m.num(u64::from(s.v));
    m.show(s.door);
    m.show(s.device);
    m.num(s.counter);
    m.num(s.up_to);
});

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn an_entrys_json_length_is_what_serde_writes() {
        for card in ["05", "0A1B2C3D", "00112233445566778899"] {
            for (from, until) in [
                (0, 9),
                (9, 10),
                (1_790_000_000, 1_790_043_200),
                (u64::MAX, u64::MAX),
            ] {
                let e = AllowEntry {
                    card: crate::CardId::parse(card).unwrap(),
                    from,
                    until,
                };
                let json = serde_json::to_vec(&e).unwrap();
                assert_eq!(
                    e.json_len(),
                    json.len() + 1,
                    "{}",
                    String::from_utf8_lossy(&json)
                );
            }
        }
    }
}
