//! Reason codes: the one stable word every access decision carries.
//!
//! Logs, CSV exports, the dashboard and analytics key on these strings, so a code is never renamed
//! and never reused for another meaning; new codes may be added. `docs/reason-codes.md` explains
//! each one for the staff and is checked against [`Reason::ALL`] by a test.

use core::fmt;
use core::str::FromStr;

macro_rules! reasons {
    ($( $(#[$doc:meta])* $var:ident = $code:literal, $allow:literal; )*) => {
        /// Why a door opened or stayed shut.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
        pub enum Reason {
            $( $(#[$doc])* $var, )*
        }

        impl Reason {
            /// Every reason, in documentation order.
            pub const ALL: &'static [Reason] = &[$(Reason::$var),*];

            /// The stable code, e.g. `allow.booking`.
            pub const fn code(self) -> &'static str {
                match self { $(Reason::$var => $code,)* }
            }

            /// Whether this reason opens the door.
            pub const fn is_allow(self) -> bool {
                match self { $(Reason::$var => $allow,)* }
            }

            /// Looks a code up.
            pub fn parse(code: &str) -> Result<Reason, UnknownReason> {
                match code { $($code => Ok(Reason::$var),)* _ => Err(UnknownReason) }
            }
        }
    };
}

reasons! {
    /// The member has the staff or security role: every door, any hour.
    Staff = "allow.staff", true;
    /// A meeting-room booking covers this door now (with its grace before and after).
    Booking = "allow.booking", true;
    /// A hostel stay covers this door now (check-in day to check-out time).
    Stay = "allow.stay", true;
    /// The member attends an event in a room behind this door, and the event is on.
    Event = "allow.event", true;
    /// A guest pass, issued by a member or staff, covers this door now.
    GuestPass = "allow.guest_pass", true;
    /// The member's organisation leases a room behind this door.
    Lease = "allow.lease", true;
    /// The member's plan covers a room behind this door at this hour.
    Plan = "allow.plan", true;
    /// The door stands open to the public at this hour.
    PublicHours = "allow.public_hours", true;
    /// The reader is on the way out (it leads towards the street): every member may leave.
    Exit = "allow.exit", true;
    /// Shelter mode: the door is on the way to the shelter and opens for everyone.
    Shelter = "allow.shelter", true;
    /// Emergency mode: the door is an egress door and is released.
    Emergency = "allow.emergency", true;
    /// Decided by the door node alone, while the gateway was unreachable: the card is on the
    /// door's signed allow-list for this moment.
    OfflineListed = "allow.offline_listed", true;
    /// Decided by the door node alone with its clock unset (booted with neither network nor a
    /// real-time clock): the card's entry on the allow-list holds at any hour (staff, 24/7
    /// rights), the only kind a node that does not know the time can grant.
    OfflineAnyHour = "allow.offline_any_hour", true;
    /// Decided by an off-the-shelf reader (esp-rfid) from the user list the gateway keeps on it.
    DeviceListed = "allow.device_list", true;
    /// The door is not in the site file.
    UnknownDoor = "deny.unknown_door", false;
    /// No member holds this card or PIN.
    UnknownCredential = "deny.unknown_credential", false;
    /// The card or PIN was revoked (lost, returned).
    CredentialRevoked = "deny.credential_revoked", false;
    /// The member is suspended.
    MemberSuspended = "deny.member_suspended", false;
    /// The member's validity has not started yet.
    MemberNotYetValid = "deny.member_not_yet_valid", false;
    /// The member's validity has ended.
    MemberExpired = "deny.member_expired", false;
    /// Lockdown: only staff and security pass.
    Lockdown = "deny.lockdown", false;
    /// The member has no right that reaches this door.
    NoRight = "deny.no_right", false;
    /// The member's plan or lease reaches this door, but not at this hour.
    OutsideSchedule = "deny.outside_schedule", false;
    /// The member's plan reaches this door at this hour, but today is a holiday it excludes.
    Holiday = "deny.holiday", false;
    /// The member has a booking, stay, event or guest pass for this door, but not now.
    BookingNotActive = "deny.booking_not_active", false;
    /// The room behind the door requires a certification (e.g. a lab safety induction) the member lacks.
    CertificationMissing = "deny.certification_missing", false;
    /// The room behind the door is at its fire-safety capacity.
    RoomFull = "deny.room_full", false;
    /// Anti-passback: the member already passed this way and has not passed back.
    AntiPassback = "deny.anti_passback", false;
    /// Decided by the door node alone: the card is not on the door's allow-list for this moment.
    OfflineNotListed = "deny.offline_not_listed", false;
    /// Decided by the door node alone: its allow-list has expired (or never arrived).
    OfflineListExpired = "deny.offline_list_expired", false;
    /// Decided by the door node alone with its clock unset: the card's rights on the allow-list
    /// hold only at some hours, which a node that does not know the time cannot tell.
    OfflineClockUnset = "deny.offline_clock_unset", false;
    /// Decided by an off-the-shelf reader (esp-rfid) on its own: the card is not on its user
    /// list, or its entry there is disabled or outside its validity window.
    DeviceNotListed = "deny.device_list", false;
}

/// A string that is not a known reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownReason;

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a known reason code")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnknownReason {}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Reason {
    type Err = UnknownReason;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::parse(s)
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Reason;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a reason code such as \"allow.booking\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Reason, E> {
                Reason::parse(v).map_err(|_| E::custom(format_args!("unknown reason code {v:?}")))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_unique_parses_back_and_says_allow_or_deny() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(Reason::parse(r.code()), Ok(*r));
            let prefix = if r.is_allow() { "allow." } else { "deny." };
            assert!(r.code().starts_with(prefix), "{r}");
            assert!(Reason::ALL[i + 1..].iter().all(|o| o.code() != r.code()));
        }
        assert_eq!(Reason::parse("allow.everything"), Err(UnknownReason));
    }
}

#[cfg(test)]
mod doc_tests {
    use super::*;

    #[test]
    fn the_reason_code_page_lists_exactly_the_codes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reason-codes.md");
        let page = std::fs::read_to_string(path).expect("docs/reason-codes.md exists");
        let mut listed: Vec<&str> = page
            .lines()
            .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
            .collect();
        listed.sort_unstable();
        let mut codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        assert_eq!(listed, codes);
    }
}
