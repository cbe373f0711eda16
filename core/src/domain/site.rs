//! The site: floors, zones, rooms, doors and the way through them, and the access policy.
//!
//! A [`Site`] is built once from the site file (`crate::site_file`) and never changes while the
//! gateway runs. Building it works out, for every room, the doors on the way to it from outside
//! (along the shortest routes through the door graph), so that a right to a room opens every
//! door into the room and the doors on the way to it. Readers that lead from a room towards the
//! street are exit readers: they let any member out.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

pub use kombinat_protocol::SiteMode;

use super::schedule::SiteClock;
use super::{CertId, DoorId, FloorId, Lease, LocalTime, Plan, RoomId, WeeklySchedule, ZoneId};

/// What kind of room, for the dashboard and for defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// Entrance hall, reception.
    Lobby,
    /// Corridors, stairs and landings.
    Corridor,
    /// Exhibition hall.
    Exhibition,
    Gallery,
    /// Conference hall.
    Conference,
    /// Bookable meeting room.
    Meeting,
    /// Coworking floor.
    Coworking,
    /// Lab or workshop, usually needing an induction.
    Lab,
    /// Leased office.
    Office,
    /// Hostel room.
    Hostel,
    /// Kitchen, lounge, toilets.
    Common,
    /// Plant room, server room, storage.
    Technical,
    /// Civil-defence shelter.
    Shelter,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floor {
    /// Identifier.
    pub id: FloorId,
    /// Name shown to staff.
    pub name: String,
    /// Its name in Ukrainian, for the dashboard in Ukrainian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_uk: Option<String>,
    /// 0 = ground, negative below.
    pub level: i8,
}

/// A zone: a named group of rooms that plans refer to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Identifier.
    pub id: ZoneId,
    /// Name shown to staff.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Room {
    /// Identifier.
    pub id: RoomId,
    /// Name shown to staff.
    pub name: String,
    /// Its name in Ukrainian, for the dashboard in Ukrainian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_uk: Option<String>,
    /// The floor it is on.
    pub floor: FloorId,
    /// Zones it belongs to.
    pub zones: Vec<ZoneId>,
    pub kind: RoomKind,
    /// Fire-safety capacity (people), if limited.
    pub capacity: Option<u32>,
    /// Certifications needed to enter.
    pub certifications: Vec<CertId>,
    /// Outline on the floor plan, in metres: `[x, y]` corners.
    pub shape: Vec<[f32; 2]>,
    /// Where its power comes from when the grid is cut.
    #[serde(default)]
    pub supply: RoomSupply,
}

/// Where a room's power comes from: what an outage schedule means for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomSupply {
    /// The grid alone: dark in every outage.
    #[default]
    Grid,
    /// The generator's circuits: dark in an outage only while the generator does not run.
    Generator,
    /// Backed at all times (a UPS, the shelter's own supply): never dark.
    Backed,
}

/// A door reader: a door as seen from one side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Door {
    /// Identifier.
    pub id: DoorId,
    /// Name shown to staff.
    pub name: String,
    /// Its name in Ukrainian, for the dashboard in Ukrainian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_uk: Option<String>,
    /// Where one comes from; `None` is outside the building.
    pub from: Option<RoomId>,
    /// The room the door leads into.
    pub into: RoomId,
    /// How long the strike stays released on an allowed tap, in milliseconds.
    pub unlock_ms: u32,
    /// Whether this is an egress door released in emergency mode.
    pub egress: bool,
    /// How long it may stand open before the held-open alarm, in seconds.
    pub held_open_s: u32,
    /// Hours when it stands open to the public, if any.
    pub public_hours: Option<WeeklySchedule>,
    /// How people leave through this door without a card, when it is an exit reader.
    #[serde(default)]
    pub free_exit: Option<FreeExit>,
    /// Where it is on the floor plan, metres (`None`: on the wall its two rooms share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<[f32; 2]>,
    /// What its lock does without power (`None`: not said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail: Option<FailMode>,
}

impl Door {
    /// Whether the door is read from the street: a way into the building from outside.
    pub fn exterior(&self) -> bool {
        self.from.is_none()
    }

    /// A fail-safe lock on a door from the street: it opens when its power fails (a power cut
    /// past the battery, a cut cable), which is a way in for anyone. The dashboard flags it.
    pub fn security_hole(&self) -> bool {
        self.exterior() && self.fail == Some(FailMode::Safe)
    }
}

/// What a door's lock does without power: its mechanical state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Unlocked without power (a magnetic lock, a fail-safe strike): fire codes ask for it on
    /// escape routes; on a door from the street it lets anyone in when the power goes.
    Safe,
    /// Locked without power (a fail-secure strike): opens from inside by its handle; a key or
    /// power opens it from outside.
    Secure,
}

/// How people leave through a door without a card: an exit reader refuses revoked and
/// unknown cards, so one of these must let them out (fire codes ask for it on escape routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreeExit {
    /// An exit button (request to exit) beside the door.
    Button,
    /// A mechanical handle or panic bar that opens the door from inside.
    Handle,
}

/// A pair of readers that together enforce anti-passback: after passing `entry` one must pass
/// `exit` before `entry` opens again, and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AntiPassback {
    /// The reader on the way in.
    pub entry: DoorId,
    /// The reader on the way out.
    pub exit: DoorId,
}

/// Site-wide access rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPolicy {
    /// Minutes before a meeting or event that its door opens.
    pub booking_grace_before_min: u32,
    /// Minutes after a meeting or event that its door still opens.
    pub booking_grace_after_min: u32,
    /// Hostel check-in time on arrival day (local).
    pub check_in: NaiveTime,
    /// Hostel check-out time on departure day (local).
    pub check_out: NaiveTime,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy {
            booking_grace_before_min: 15,
            booking_grace_after_min: 15,
            check_in: NaiveTime::from_hms_opt(14, 0, 0).unwrap_or_default(),
            check_out: NaiveTime::from_hms_opt(11, 0, 0).unwrap_or_default(),
        }
    }
}

/// A set of rooms by index, for "which rooms does a right through this door reach".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomSet(Vec<u64>);

impl RoomSet {
    fn with_capacity(rooms: usize) -> Self {
        RoomSet(vec![0; rooms.div_ceil(64)])
    }
    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    /// Whether room index `i` is in the set.
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    /// Whether the sets share a room.
    pub fn intersects(&self, other: &RoomSet) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }
    /// Room indices in the set.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.0.len() * 64).filter(|&i| self.contains(i))
    }
}

/// The site, with its door graph worked out.
#[derive(Debug, Clone)]
pub struct Site {
    /// Name of the site.
    pub name: String,
    /// Its name in Ukrainian.
    pub name_uk: Option<String>,
    /// Its time zone; every schedule is read on this clock.
    pub timezone: Tz,
    /// Floors, bottom up.
    pub floors: Vec<Floor>,
    pub zones: Vec<Zone>,
    /// Rooms; a room's index in this list is its index everywhere.
    pub rooms: Vec<Room>,
    /// Door readers; a door's index in this list is its index everywhere.
    pub doors: Vec<Door>,
    /// Site-wide access rules.
    pub access: AccessPolicy,
    /// Days on which plans that say so, and public hours, pause.
    pub holidays: BTreeSet<NaiveDate>,
    /// The civil-defence shelter, if the site has one.
    pub shelter: Option<RoomId>,
    /// Reader pairs with anti-passback.
    pub anti_passback: Vec<AntiPassback>,
    /// Plans offered at this site.
    pub plans: Vec<Plan>,
    /// Leases of rooms to organisations.
    pub leases: Vec<Lease>,
    /// Off-the-shelf devices bound to doors and rooms.
    pub bindings: Vec<super::Binding>,
    /// Rooms' calendar feeds.
    pub feeds: Vec<super::Feed>,
    /// What each booking source may book.
    pub booking_rules: super::BookingRules,
    clock: SiteClock,
    room_index: FxHashMap<RoomId, usize>,
    door_index: FxHashMap<DoorId, usize>,
    /// Per door: rooms a right to which opens it.
    reach: Vec<RoomSet>,
    /// Per room: the doors on the way to it from outside, outermost first, ending with its own.
    way: Vec<Vec<usize>>,
    /// Per door: whether it is on the way to the shelter.
    shelter_route: Vec<bool>,
    /// Per door: the anti-passback pair it belongs to and whether it is the entry.
    passback: Vec<Option<(usize, bool)>>,
    /// Per door: whether it is an exit reader (leads towards the street).
    exit: Vec<bool>,
    /// Per door: the index of the room it leads into.
    into: Vec<usize>,
}

/// The parts a site is assembled from (what the site file holds, already checked for references).
pub struct SiteParts {
    pub name: String,
    pub name_uk: Option<String>,
    /// Every local time (opening hours, bookings, the night) is read in this zone.
    pub timezone: Tz,
    pub floors: Vec<Floor>,
    pub zones: Vec<Zone>,
    pub rooms: Vec<Room>,
    pub doors: Vec<Door>,
    /// Access policy.
    pub access: AccessPolicy,
    pub holidays: BTreeSet<NaiveDate>,
    /// Shelter room.
    pub shelter: Option<RoomId>,
    /// Anti-passback pairs.
    pub anti_passback: Vec<AntiPassback>,
    pub plans: Vec<Plan>,
    pub leases: Vec<Lease>,
    /// Device bindings.
    pub bindings: Vec<super::Binding>,
    /// Calendar feeds.
    pub feeds: Vec<super::Feed>,
    /// What each booking source may book.
    pub booking_rules: super::BookingRules,
}

impl Site {
    /// Assembles a site whose references were checked (unknown references are skipped here).
    pub(crate) fn assemble(p: SiteParts) -> Site {
        let room_index: FxHashMap<RoomId, usize> =
            p.rooms.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        let door_index: FxHashMap<DoorId, usize> =
            p.doors.iter().enumerate().map(|(i, d)| (d.id, i)).collect();
        let n = p.rooms.len();
        // Shortest distance from outside to every room through the doors (breadth first).
        let mut dist = vec![u32::MAX; n];
        let mut frontier: Vec<usize> = Vec::new();
        for d in p.doors.iter().filter(|d| d.from.is_none()) {
            if let Some(&r) = room_index.get(&d.into) {
                if dist[r] == u32::MAX {
                    dist[r] = 1;
                    frontier.push(r);
                }
            }
        }
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for &from in &frontier {
                for d in &p.doors {
                    let (Some(f), Some(&to)) = (d.from, room_index.get(&d.into)) else {
                        continue;
                    };
                    if room_index.get(&f) == Some(&from) && dist[to] == u32::MAX {
                        dist[to] = dist[from] + 1;
                        next.push(to);
                    }
                }
            }
            frontier = next;
        }
        let room_dist = |r: Option<RoomId>| match r {
            None => Some(0),
            Some(r) => room_index.get(&r).map(|&i| dist[i]),
        };
        // An exit reader leads back out along the way in: from a room into the room one step
        // closer to the street from which a door leads into it. A lateral door that merely ends
        // nearer the street is not an exit.
        let exit: Vec<bool> = p
            .doors
            .iter()
            .map(|d| {
                let (Some(f), Some(&i)) = (
                    d.from.and_then(|f| room_index.get(&f)),
                    room_index.get(&d.into),
                ) else {
                    return false;
                };
                dist[*f] != u32::MAX
                    && dist[i].saturating_add(1) == dist[*f]
                    && p.doors.iter().any(|e| {
                        e.from.and_then(|x| room_index.get(&x)) == Some(&i)
                            && room_index.get(&e.into) == Some(f)
                    })
            })
            .collect();
        // The way to a room: every door into it (exit readers aside), then the doors into each room one step closer
        // to outside that such a door comes from (shortest routes only), back to the street.
        let on_shortest = |d: &Door, x: usize| match room_dist(d.from) {
            Some(fd) => dist[x] == u32::MAX || fd.saturating_add(1) == dist[x],
            None => false,
        };
        let mut way = vec![Vec::new(); n];
        for (r, way_r) in way.iter_mut().enumerate() {
            let mut doors = BTreeSet::new();
            let mut rooms = Vec::new();
            let mut seen_rooms = vec![false; n];
            seen_rooms[r] = true;
            for (di, d) in p.doors.iter().enumerate() {
                if room_index.get(&d.into) == Some(&r) && !exit[di] {
                    doors.insert((room_dist(d.from).unwrap_or(u32::MAX), di));
                    if on_shortest(d, r) {
                        if let Some(&f) = d.from.as_ref().and_then(|f| room_index.get(f)) {
                            if !seen_rooms[f] {
                                seen_rooms[f] = true;
                                rooms.push(f);
                            }
                        }
                    }
                }
            }
            while let Some(x) = rooms.pop() {
                for (di, d) in p.doors.iter().enumerate() {
                    if room_index.get(&d.into) != Some(&x) || !on_shortest(d, x) {
                        continue;
                    }
                    doors.insert((room_dist(d.from).unwrap_or(0), di));
                    if let Some(&f) = d.from.as_ref().and_then(|f| room_index.get(f)) {
                        if !seen_rooms[f] {
                            seen_rooms[f] = true;
                            rooms.push(f);
                        }
                    }
                }
            }
            *way_r = doors.into_iter().map(|(_, d)| d).collect();
        }
        let mut reach = vec![RoomSet::with_capacity(n); p.doors.len()];
        for (r, doors) in way.iter().enumerate() {
            for &d in doors {
                reach[d].insert(r);
            }
        }
        let mut shelter_route = vec![false; p.doors.len()];
        if let Some(s) = p.shelter.and_then(|s| room_index.get(&s).copied()) {
            for &d in &way[s] {
                shelter_route[d] = true;
            }
        }
        let into = p
            .doors
            .iter()
            .map(|d| room_index.get(&d.into).copied().unwrap_or(usize::MAX))
            .collect();
        let mut passback = vec![None; p.doors.len()];
        for (i, pair) in p.anti_passback.iter().enumerate() {
            if let Some(&d) = door_index.get(&pair.entry) {
                passback[d] = Some((i, true));
            }
            if let Some(&d) = door_index.get(&pair.exit) {
                passback[d] = Some((i, false));
            }
        }
        Site {
            clock: SiteClock::new(p.timezone),
            name: p.name,
            name_uk: p.name_uk,
            timezone: p.timezone,
            floors: p.floors,
            zones: p.zones,
            rooms: p.rooms,
            doors: p.doors,
            access: p.access,
            holidays: p.holidays,
            shelter: p.shelter,
            anti_passback: p.anti_passback,
            plans: p.plans,
            leases: p.leases,
            bindings: p.bindings,
            feeds: p.feeds,
            booking_rules: p.booking_rules,
            room_index,
            door_index,
            reach,
            way,
            shelter_route,
            passback,
            exit,
            into,
        }
    }

    /// The site's wall clock at an instant.
    #[inline]
    pub fn local_time(&self, now: DateTime<Utc>) -> LocalTime {
        self.clock.local(now)
    }

    /// The index of a room.
    #[inline]
    pub fn room_index(&self, id: RoomId) -> Option<usize> {
        self.room_index.get(&id).copied()
    }

    /// The index of a door.
    #[inline]
    pub fn door_index(&self, id: DoorId) -> Option<usize> {
        self.door_index.get(&id).copied()
    }

    /// A room by id.
    pub fn room(&self, id: RoomId) -> Option<&Room> {
        self.room_index(id).map(|i| &self.rooms[i])
    }

    /// A door by id.
    pub fn door(&self, id: DoorId) -> Option<&Door> {
        self.door_index(id).map(|i| &self.doors[i])
    }

    /// The room (by index) door `door` (by index) leads into.
    #[inline]
    pub fn into_room(&self, door: usize) -> usize {
        self.into[door]
    }

    /// Rooms a right to which opens door `door` (by index).
    #[inline]
    pub fn reach(&self, door: usize) -> &RoomSet {
        &self.reach[door]
    }

    /// Doors (by index) on the way to room `room` (by index), outermost first, its own last.
    pub fn way(&self, room: usize) -> &[usize] {
        &self.way[room]
    }

    /// Whether door `door` (by index) is on the way to the shelter.
    #[inline]
    pub fn on_shelter_route(&self, door: usize) -> bool {
        self.shelter_route[door]
    }

    /// The exit readers with no declared way out without a card ([`FreeExit`]), in words.
    pub fn exit_warnings(&self) -> Vec<String> {
        self.doors
            .iter()
            .enumerate()
            .filter(|(i, d)| self.exit[*i] && d.free_exit.is_none())
            .map(|(_, d)| {
                format!(
                    "door {} ({}) is an exit reader: it refuses revoked and unknown cards, so people need an exit button or a mechanical exit there; say which with free_exit = \"button\" or \"handle\"",
                    d.id, d.name
                )
            })
            .collect()
    }

    /// Whether door `door` (by index) is an exit reader: it leads from a room into one closer
    /// to the street, so it lets people out rather than in.
    #[inline]
    pub fn is_exit(&self, door: usize) -> bool {
        self.exit[door]
    }

    /// The anti-passback pair of door `door` (by index) and whether it is the entry reader.
    #[inline]
    pub fn passback(&self, door: usize) -> Option<(usize, bool)> {
        self.passback[door]
    }

    /// Rooms (by index) in a set of zones and rooms.
    pub fn room_set(&self, zones: &[ZoneId], rooms: &[RoomId]) -> RoomSet {
        let mut set = RoomSet::with_capacity(self.rooms.len());
        for (i, r) in self.rooms.iter().enumerate() {
            if rooms.contains(&r.id) || r.zones.iter().any(|z| zones.contains(z)) {
                set.insert(i);
            }
        }
        set
    }

    /// The instant a local date and wall-clock time happen at the site. In the spring-forward
    /// gap the time does not exist and the first instant after it is taken; in the autumn
    /// overlap, the earlier of the two.
    pub fn local_instant(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let naive = date.and_time(time);
        // Gaps are at most a few hours long; step a minute at a time to the first valid one.
        for minutes in 0..=180 {
            let probe = naive + chrono::Duration::minutes(minutes);
            if let Some(t) = self.timezone.from_local_datetime(&probe).earliest() {
                return t.with_timezone(&Utc);
            }
        }
        naive.and_utc()
    }

    /// Parses an instant as people write it: RFC 3339, or a local "YYYY-MM-DD HH:MM[:SS]" on
    /// the site's clock. The error is a sentence.
    pub fn parse_time(&self, s: &str) -> Result<DateTime<Utc>, String> {
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(t.with_timezone(&Utc));
        }
        for fmt in [
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S",
        ] {
            if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
                return Ok(self.local_instant(n.date(), n.time()));
            }
        }
        Err(format!(
            "{s:?} is not a time: write 2026-11-26T14:00:00+02:00 or \"2026-11-26 14:00\" (site time)"
        ))
    }
}
