//! Plans (rights over zones and rooms on a weekly schedule) and leases (an organisation's office).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{LeaseId, OrgId, PlanId, RoomId, WeeklySchedule, ZoneId};

/// One grant of a plan: these zones and rooms, on this schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanGrant {
    /// Every room of these zones.
    #[serde(default)]
    pub zones: Vec<ZoneId>,
    /// These rooms.
    #[serde(default)]
    pub rooms: Vec<RoomId>,
    /// When the grant holds, in site local time.
    pub schedule: WeeklySchedule,
}

/// A plan, such as "coworking day pass": rights on a weekly schedule, minus holidays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Stable identifier.
    pub id: PlanId,
    /// Name as sold.
    pub name: String,
    /// Its name in Ukrainian, for the dashboard in Ukrainian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_uk: Option<String>,
    /// What the plan opens and when.
    pub grants: Vec<PlanGrant>,
    /// Whether the plan's rights pause on the site's holidays.
    #[serde(default)]
    pub closed_on_holidays: bool,
}

/// An organisation's lease of a room: its members open that room (and the way to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// Stable identifier.
    pub id: LeaseId,
    /// The tenant.
    pub organisation: OrgId,
    /// The leased room.
    pub room: RoomId,
    /// Start of the lease (inclusive), if bounded.
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    /// End of the lease (exclusive), if bounded.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Hours of access; none means around the clock.
    #[serde(default)]
    pub schedule: Option<WeeklySchedule>,
}
