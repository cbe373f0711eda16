//! The building's own language as types: site, members, credentials, plans, leases, bookings.
//!
//! Everything here is plain data, validated when it is built (`parse`, `new`, `TryFrom`), so the
//! access core never meets an unchecked string. No I/O: the store persists these types, the
//! site file builds a [`Site`], and the access core indexes them into a snapshot.

mod binding;
mod booking;
mod booking_rules;
mod device;
mod feed;
mod member;
mod plan;
pub mod schedule;
pub(crate) mod site;
mod staff;
mod token;

pub use binding::{Binding, BindingKind};
pub use booking::{
    Booking, BookingError, BookingKey, BookingKind, BookingStatus, ExternalId, Window,
};
pub use booking_rules::{default_max_hours, Bookable, BookingRules, SourceRules, DEFAULT_BOOKABLE};
pub use device::{Device, DeviceKey, DeviceKind, DeviceMark};
pub use feed::{Feed, FeedFrom, FeedKind};
pub use kombinat_protocol::{
    CardId, CertId, Credential, DeviceId, DoorId, FloorId, LeaseId, MemberId, OrgId, Pin, PlanId,
    Reason, RoomId, SourceId, ZoneId,
};
pub use member::{CredentialRecord, Email, EmailError, Member, MemberStatus, Role};
pub use plan::{Lease, Plan, PlanGrant};
pub use schedule::{LocalTime, ScheduleError, WeeklySchedule};
pub use site::{
    AccessPolicy, AntiPassback, Door, FailMode, Floor, FreeExit, Room, RoomKind, RoomSet,
    RoomSupply, Site, SiteMode, Zone,
};
pub use staff::{StaffAccount, StaffName, StaffRole};
pub use token::{token_hash, ApiToken, Scope};
