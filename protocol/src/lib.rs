//! The contract between the Kombinat gateway and the devices at the doors and in the rooms.
//!
//! Both sides of the MQTT link compile this crate, so that they always agree on what an
//! identifier, a credential or a reason code is. It is `no_std` without the `std` feature (the
//! default turns it on), allocates nothing, and holds only types that cross the wire:
//!
//! - [`id`]: short ASCII identifiers of doors, rooms, zones, members, devices ([`Ident`]);
//! - [`credential`]: a card UID ([`CardId`], upper-case hex) or a keypad PIN ([`Pin`]);
//! - [`reason`]: the stable reason code every access decision carries ([`Reason`]).
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod credential;
pub mod id;
pub mod reason;

pub use credential::{CardId, Credential, CredentialError, Pin};
pub use id::{
    CertId, DeviceId, DoorId, FloorId, Ident, IdentError, LeaseId, MemberId, OrgId, PlanId, RoomId,
    SourceId, ZoneId,
};
pub use reason::{Reason, UnknownReason};
