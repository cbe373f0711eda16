//! The contract between the Kombinat gateway and the devices at the doors and in the rooms.
//!
//! Both sides of the MQTT link compile this crate, so that they always agree on topics,
//! payloads, identifiers, reason codes and how messages are signed. It is `no_std` without the
//! `std` feature (the default turns it on) and allocates nothing there; the two list-carrying
//! messages (allow-lists, offline logs) need `std`. `protocol/README.md` is the full contract.
//!
//! - [`id`]: short ASCII identifiers ([`Ident`]) and their typed forms ([`DoorId`], …);
//! - [`credential`]: a card UID ([`CardId`], upper-case hex) or a keypad PIN ([`Pin`]);
//! - [`reason`]: the stable reason code every access decision carries ([`Reason`]);
//! - [`auth`]: HMAC-SHA256 signing with per-device keys and replay counters;
//! - [`topic`]: the topic grammar, parsed and built in one place;
//! - one module per topic family: [`door`], [`sensor`], [`device`], [`room`], [`site`].
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
#[cfg(feature = "std")]
pub mod booking;
pub mod credential;
pub mod device;
pub mod door;
pub mod id;
pub mod reason;
pub mod room;
pub mod sensor;
pub mod site;
pub mod topic;

pub use credential::{CardId, Credential, CredentialError, Pin};
pub use id::{
    CertId, DeviceId, DoorId, FloorId, Ident, IdentError, LeaseId, MemberId, OrgId, PlanId, RoomId,
    SourceId, ZoneId,
};
pub use reason::{Reason, UnknownReason};
pub use site::SiteMode;
pub use topic::{Topic, TopicError, DEFAULT_PREFIX};

/// The largest MQTT packet either side sends or takes, bytes: a door's allow-list is the
/// largest message, and 256 KiB holds about 4,700 cards. The gateway's client, the embedded
/// broker and the door node are all sized by it.
pub const MAX_PACKET: usize = 256 * 1024;
