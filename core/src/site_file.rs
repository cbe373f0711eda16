//! Loading the site file (TOML): every error is reported, each with its line and column.
//!
//! The file has one `[site]` table, an optional `[access]` and `[calendar]`, and arrays of
//! tables `[[floors]]`, `[[zones]]`, `[[rooms]]`, `[[doors]]`, `[[anti_passback]]`, `[[plans]]`, `[[leases]]`
//! and `[[bindings]]` (off-the-shelf devices). `deploy/site.example.toml` describes the Kherson Centre and documents every
//! field. Each entry is read on its own, so one bad room does not hide the errors of the next;
//! then references between entries (a door into an unknown room, a plan naming an unknown
//! zone) are checked, again reporting all of them.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::Spanned;

use crate::domain::site::SiteParts;
use crate::domain::{
    AccessPolicy, AntiPassback, Binding, BindingKind, CertId, DeviceId, Door, DoorId, Floor,
    FloorId, Lease, Plan, Room, RoomId, RoomKind, Site, SourceId, WeeklySchedule, Zone, ZoneId,
};

/// One problem in the site file, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteProblem {
    /// 1-based line, if known.
    pub line: usize,
    /// 1-based column, if known.
    pub column: usize,
    /// What is wrong, as a sentence.
    pub message: String,
}

/// Why the site file could not be loaded: every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFileError {
    /// The file, for messages.
    pub path: PathBuf,
    /// Every problem, in file order.
    pub problems: Vec<SiteProblem>,
}

impl fmt::Display for SiteFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the site file {} has {} problem{}:",
            self.path.display(),
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(
                f,
                "\n  {}:{}:{}: {}",
                self.path.display(),
                p.line,
                p.column,
                p.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SiteFileError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    site: Spanned<toml::Table>,
    access: Option<Spanned<toml::Table>>,
    calendar: Option<Spanned<toml::Table>>,
    #[serde(default)]
    floors: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    zones: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    rooms: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    doors: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    anti_passback: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    plans: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    leases: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    bindings: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    feeds: Vec<Spanned<toml::Table>>,
    bookings: Option<Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBookings {
    rooms: Option<Vec<String>>,
    max_days: Option<u32>,
    #[serde(default)]
    sources: Vec<RawBookingSource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBookingSource {
    id: SourceId,
    rooms: Option<Vec<String>>,
    max_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    id: SourceId,
    kind: Option<String>,
    room: Option<RoomId>,
    url: Option<String>,
    path: Option<PathBuf>,
    interval_s: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: String,
    name_uk: Option<String>,
    timezone: String,
    shelter: Option<RoomId>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    booking_grace_before_min: Option<u32>,
    booking_grace_after_min: Option<u32>,
    check_in: Option<String>,
    check_out: Option<String>,
    default_unlock_ms: Option<u32>,
    default_held_open_s: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    #[serde(default)]
    holidays: Vec<NaiveDate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoom {
    id: RoomId,
    name: String,
    name_uk: Option<String>,
    floor: FloorId,
    #[serde(default)]
    zones: Vec<ZoneId>,
    kind: RoomKind,
    capacity: Option<u32>,
    #[serde(default)]
    certifications: Vec<CertId>,
    /// `[x, y, width, height]` in metres, for rectangular rooms.
    rect: Option<[f32; 4]>,
    /// Corners `[[x, y], …]` in metres, for other shapes.
    shape: Option<Vec<[f32; 2]>>,
    supply: Option<crate::domain::RoomSupply>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoor {
    id: DoorId,
    name: String,
    name_uk: Option<String>,
    /// A room id, or "outside".
    from: String,
    into: RoomId,
    unlock_ms: Option<u32>,
    #[serde(default)]
    egress: bool,
    held_open_s: Option<u32>,
    public_hours: Option<WeeklySchedule>,
    free_exit: Option<crate::domain::FreeExit>,
    at: Option<[f32; 2]>,
    fail: Option<crate::domain::FailMode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBinding {
    id: DeviceId,
    kind: BindingKind,
    topic: String,
    door: Option<DoorId>,
    #[serde(default)]
    doors: Vec<DoorId>,
    room: Option<RoomId>,
    ip: Option<String>,
    relay: Option<u8>,
}

/// Checks one binding on its own; returns it, or the problem in words.
fn binding(b: RawBinding) -> Result<Binding, String> {
    let what = format!("binding {:?}", b.id.to_string());
    let t = &b.topic;
    if t.is_empty()
        || t.len() > 128
        || t.contains(['+', '#', '\0'])
        || t.starts_with('/')
        || t.ends_with('/')
        || t.contains("//")
    {
        return Err(format!(
            "{what}: topic {t:?} must be 1-128 characters, without + # or empty levels"
        ));
    }
    if b.door.is_some() && !b.doors.is_empty() {
        return Err(format!("{what}: give either door or doors, not both"));
    }
    let doors: Vec<DoorId> = b.door.into_iter().chain(b.doors).collect();
    match b.kind {
        BindingKind::EspRfid => {
            if doors.is_empty() {
                return Err(format!("{what}: an esp_rfid reader needs its door"));
            }
            match &b.ip {
                Some(ip) if ip.parse::<std::net::IpAddr>().is_ok() => {}
                _ => {
                    return Err(format!(
                        "{what}: an esp_rfid reader needs its ip (it drops commands without it)"
                    ))
                }
            }
        }
        BindingKind::Tasmota => {
            if doors.len() > 1 {
                return Err(format!("{what}: a Tasmota device serves one door"));
            }
            if doors.is_empty() && b.room.is_none() {
                return Err(format!("{what}: a Tasmota device needs a door or a room"));
            }
        }
        BindingKind::Zigbee2mqtt => {
            if doors.len() > 1 || (doors.is_empty() && b.room.is_none()) {
                return Err(format!(
                    "{what}: a Zigbee2MQTT device needs one door (a contact) or a room"
                ));
            }
        }
    }
    if b.relay == Some(0) || b.relay.is_some_and(|r| r > 8) {
        return Err(format!("{what}: relay counts from 1 to 8"));
    }
    if b.ip.is_some() && b.kind != BindingKind::EspRfid {
        return Err(format!("{what}: only esp_rfid readers take an ip"));
    }
    Ok(Binding {
        id: b.id,
        kind: b.kind,
        topic: b.topic,
        doors,
        room: b.room,
        ip: b.ip,
        relay: b.relay.unwrap_or(1),
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Problems<'a> {
    text: &'a str,
    list: Vec<(usize, SiteProblem)>,
}

impl Problems<'_> {
    fn at(&mut self, offset: usize, message: impl Into<String>) {
        let (line, column) = line_col(self.text, offset);
        self.list.push((
            offset,
            SiteProblem {
                line,
                column,
                message: message.into(),
            },
        ));
    }

    /// Reads one entry into its typed form, reporting a failure at the entry.
    fn entry<T: DeserializeOwned>(&mut self, what: &str, e: &Spanned<toml::Table>) -> Option<T> {
        match toml::Value::Table(e.get_ref().clone()).try_into::<T>() {
            Ok(v) => Some(v),
            Err(err) => {
                let id = e
                    .get_ref()
                    .get("id")
                    .and_then(|v| v.as_str())
                    .map(|s| format!(" {s:?}"))
                    .unwrap_or_default();
                self.at(
                    e.span().start,
                    format!("{what}{id}: {}", err.message().trim()),
                );
                None
            }
        }
    }
}

/// Reads and checks a site file.
pub fn load(path: &Path) -> Result<Site, SiteFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| SiteFileError {
        path: path.to_path_buf(),
        problems: vec![SiteProblem {
            line: 0,
            column: 0,
            message: format!("cannot read it: {e}"),
        }],
    })?;
    parse(&text).map_err(|problems| SiteFileError {
        path: path.to_path_buf(),
        problems,
    })
}

/// Parses and checks the text of a site file.
pub fn parse(text: &str) -> Result<Site, Vec<SiteProblem>> {
    let mut p = Problems {
        text,
        list: Vec::new(),
    };
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            p.at(offset, e.message().trim().to_string());
            return Err(p.list.into_iter().map(|(_, x)| x).collect());
        }
    };

    let site: Option<RawSite> = p.entry("[site]", &raw.site);
    let timezone = site.as_ref().and_then(|s| match s.timezone.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            p.at(
                raw.site.span().start,
                format!(
                    "[site]: unknown time zone {:?} (use an IANA name such as \"Europe/Kyiv\")",
                    s.timezone
                ),
            );
            None
        }
    });

    let mut access = AccessPolicy::default();
    let mut default_unlock_ms = 5000;
    let mut default_held_open_s = 30;
    if let Some(a) = &raw.access {
        if let Some(ra) = p.entry::<RawAccess>("[access]", a) {
            access.booking_grace_before_min = ra.booking_grace_before_min.unwrap_or(15);
            access.booking_grace_after_min = ra.booking_grace_after_min.unwrap_or(15);
            for (field, value, slot) in [
                ("check_in", &ra.check_in, &mut access.check_in),
                ("check_out", &ra.check_out, &mut access.check_out),
            ] {
                if let Some(v) = value {
                    match NaiveTime::parse_from_str(v, "%H:%M") {
                        Ok(t) => *slot = t,
                        Err(_) => p.at(
                            a.span().start,
                            format!("[access]: {field} {v:?} is not a time such as \"14:00\""),
                        ),
                    }
                }
            }
            default_unlock_ms = ra.default_unlock_ms.unwrap_or(default_unlock_ms);
            default_held_open_s = ra.default_held_open_s.unwrap_or(default_held_open_s);
        }
    }
    let holidays: BTreeSet<NaiveDate> = raw
        .calendar
        .as_ref()
        .and_then(|c| p.entry::<RawCalendar>("[calendar]", c))
        .map(|c| c.holidays.into_iter().collect())
        .unwrap_or_default();

    let floors: Vec<(usize, Floor)> = raw
        .floors
        .iter()
        .filter_map(|e| Some((e.span().start, p.entry::<Floor>("floor", e)?)))
        .collect();
    let zones: Vec<(usize, Zone)> = raw
        .zones
        .iter()
        .filter_map(|e| Some((e.span().start, p.entry::<Zone>("zone", e)?)))
        .collect();
    let rooms: Vec<(usize, RawRoom)> = raw
        .rooms
        .iter()
        .filter_map(|e| Some((e.span().start, p.entry::<RawRoom>("room", e)?)))
        .collect();
    let doors: Vec<(usize, RawDoor)> = raw
        .doors
        .iter()
        .filter_map(|e| Some((e.span().start, p.entry::<RawDoor>("door", e)?)))
        .collect();
    let pairs: Vec<(usize, AntiPassback)> = raw
        .anti_passback
        .iter()
        .filter_map(|e| Some((e.span().start, p.entry("anti_passback pair", e)?)))
        .collect();
    let plans: Vec<(usize, Plan)> = raw
        .plans
        .iter()
        .filter_map(|e| Some((e.span().start, p.entry::<Plan>("plan", e)?)))
        .collect();
    let leases: Vec<(usize, Lease)> = raw
        .leases
        .iter()
        .filter_map(|e| Some((e.span().start, p.entry::<Lease>("lease", e)?)))
        .collect();

    // Duplicates and references.
    fn unique<'x, K: std::hash::Hash + Eq + fmt::Display + Copy + 'x>(
        p: &mut Problems,
        what: &str,
        items: impl Iterator<Item = (usize, K)>,
    ) -> HashSet<K> {
        let mut seen = HashSet::new();
        for (at, id) in items {
            if !seen.insert(id) {
                p.at(
                    at,
                    format!("{what} {id:?} is defined twice", id = id.to_string()),
                );
            }
        }
        seen
    }
    // Entries that did not read still name their id, when it is readable: references to them are
    // not reported again, so one mistake gives one message.
    fn ids_of<K: std::str::FromStr + std::hash::Hash + Eq>(
        entries: &[Spanned<toml::Table>],
    ) -> HashSet<K> {
        entries
            .iter()
            .filter_map(|e| e.get_ref().get("id")?.as_str()?.parse().ok())
            .collect()
    }
    let mut floor_ids = unique(&mut p, "floor", floors.iter().map(|(a, f)| (*a, f.id)));
    let mut zone_ids = unique(&mut p, "zone", zones.iter().map(|(a, z)| (*a, z.id)));
    let mut room_ids = unique(&mut p, "room", rooms.iter().map(|(a, r)| (*a, r.id)));
    let mut door_ids = unique(&mut p, "door", doors.iter().map(|(a, d)| (*a, d.id)));
    floor_ids.extend(ids_of::<FloorId>(&raw.floors));
    zone_ids.extend(ids_of::<ZoneId>(&raw.zones));
    room_ids.extend(ids_of::<RoomId>(&raw.rooms));
    door_ids.extend(ids_of::<DoorId>(&raw.doors));
    unique(&mut p, "plan", plans.iter().map(|(a, x)| (*a, x.id)));
    unique(&mut p, "lease", leases.iter().map(|(a, x)| (*a, x.id)));

    let mut site_rooms = Vec::new();
    for (at, r) in rooms {
        if !floor_ids.contains(&r.floor) {
            p.at(
                at,
                format!(
                    "room {:?}: unknown floor {:?}",
                    r.id.to_string(),
                    r.floor.to_string()
                ),
            );
        }
        for z in &r.zones {
            if !zone_ids.contains(z) {
                p.at(
                    at,
                    format!(
                        "room {:?}: unknown zone {:?}",
                        r.id.to_string(),
                        z.to_string()
                    ),
                );
            }
        }
        if r.capacity == Some(0) {
            p.at(
                at,
                format!(
                    "room {:?}: a capacity of 0 would lock everyone out; leave it out for no limit",
                    r.id.to_string()
                ),
            );
        }
        let shape = match (r.rect, r.shape) {
            (Some(_), Some(_)) => {
                p.at(
                    at,
                    format!(
                        "room {:?}: give either rect or shape, not both",
                        r.id.to_string()
                    ),
                );
                Vec::new()
            }
            (Some([x, y, w, h]), None) => {
                if w <= 0.0 || h <= 0.0 {
                    p.at(
                        at,
                        format!(
                            "room {:?}: rect needs a positive width and height",
                            r.id.to_string()
                        ),
                    );
                }
                vec![[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
            }
            (None, Some(s)) => {
                if s.len() < 3 {
                    p.at(
                        at,
                        format!(
                            "room {:?}: a shape needs at least three corners",
                            r.id.to_string()
                        ),
                    );
                }
                s
            }
            (None, None) => Vec::new(),
        };
        site_rooms.push(Room {
            id: r.id,
            name: r.name,
            name_uk: r.name_uk,
            floor: r.floor,
            zones: r.zones,
            kind: r.kind,
            capacity: r.capacity,
            certifications: r.certifications,
            shape,
            supply: r.supply.unwrap_or_default(),
        });
    }

    let mut site_doors = Vec::new();
    for (at, d) in doors {
        let from = if d.from == "outside" {
            None
        } else {
            match RoomId::parse(&d.from) {
                Ok(r) if room_ids.contains(&r) => Some(r),
                _ => {
                    p.at(
                        at,
                        format!(
                            "door {:?}: from {:?} is neither a room nor \"outside\"",
                            d.id.to_string(),
                            d.from
                        ),
                    );
                    None
                }
            }
        };
        if !room_ids.contains(&d.into) {
            p.at(
                at,
                format!(
                    "door {:?}: into unknown room {:?}",
                    d.id.to_string(),
                    d.into.to_string()
                ),
            );
        }
        if from == Some(d.into) {
            p.at(
                at,
                format!(
                    "door {:?}: leads from a room into the same room",
                    d.id.to_string()
                ),
            );
        }
        let unlock_ms = d.unlock_ms.unwrap_or(default_unlock_ms);
        if !(500..=60_000).contains(&unlock_ms) {
            p.at(
                at,
                format!(
                    "door {:?}: unlock_ms {unlock_ms} is outside 500..60000",
                    d.id.to_string()
                ),
            );
        }
        if d.at.is_some_and(|[x, y]| !x.is_finite() || !y.is_finite()) {
            p.at(
                at,
                format!(
                    "door {:?}: at must be two numbers, metres",
                    d.id.to_string()
                ),
            );
        }
        site_doors.push(Door {
            id: d.id,
            name: d.name,
            name_uk: d.name_uk,
            from,
            into: d.into,
            unlock_ms,
            egress: d.egress,
            held_open_s: d.held_open_s.unwrap_or(default_held_open_s),
            public_hours: d.public_hours,
            free_exit: d.free_exit,
            at: d.at,
            fail: d.fail,
        });
    }

    let mut anti_passback = Vec::new();
    let mut paired = HashSet::new();
    for (at, pair) in pairs {
        for door in [pair.entry, pair.exit] {
            if !door_ids.contains(&door) {
                p.at(
                    at,
                    format!("anti_passback pair: unknown door {:?}", door.to_string()),
                );
            }
            if !paired.insert(door) {
                p.at(
                    at,
                    format!(
                        "anti_passback pair: door {:?} is already in a pair",
                        door.to_string()
                    ),
                );
            }
        }
        anti_passback.push(pair);
    }

    for (at, plan) in &plans {
        if plan.grants.is_empty() {
            p.at(
                *at,
                format!("plan {:?}: grants nothing", plan.id.to_string()),
            );
        }
        for g in &plan.grants {
            for z in &g.zones {
                if !zone_ids.contains(z) {
                    p.at(
                        *at,
                        format!(
                            "plan {:?}: unknown zone {:?}",
                            plan.id.to_string(),
                            z.to_string()
                        ),
                    );
                }
            }
            for r in &g.rooms {
                if !room_ids.contains(r) {
                    p.at(
                        *at,
                        format!(
                            "plan {:?}: unknown room {:?}",
                            plan.id.to_string(),
                            r.to_string()
                        ),
                    );
                }
            }
        }
    }
    for (at, lease) in &leases {
        if !room_ids.contains(&lease.room) {
            p.at(
                *at,
                format!(
                    "lease {:?}: unknown room {:?}",
                    lease.id.to_string(),
                    lease.room.to_string()
                ),
            );
        }
        if let (Some(a), Some(b)) = (lease.from, lease.until) {
            if b <= a {
                p.at(
                    *at,
                    format!("lease {:?}: ends before it starts", lease.id.to_string()),
                );
            }
        }
    }
    let mut bindings = Vec::new();
    let mut bound = HashSet::new();
    for e in &raw.bindings {
        let Some(raw_b) = p.entry::<RawBinding>("binding", e) else {
            continue;
        };
        let at = e.span().start;
        match binding(raw_b) {
            Err(m) => p.at(at, m),
            Ok(b) => {
                let what = format!("binding {:?}", b.id.to_string());
                for d in &b.doors {
                    if !door_ids.contains(d) {
                        p.at(at, format!("{what}: unknown door {:?}", d.to_string()));
                    }
                }
                if let Some(r) = b.room.filter(|r| !room_ids.contains(r)) {
                    p.at(at, format!("{what}: unknown room {:?}", r.to_string()));
                }
                if !bound.insert((b.kind, b.topic.clone())) {
                    p.at(
                        at,
                        format!(
                            "{what}: another {} binding has topic {:?}",
                            b.kind.as_str(),
                            b.topic
                        ),
                    );
                }
                bindings.push((at, b));
            }
        }
    }
    unique(&mut p, "binding", bindings.iter().map(|(a, b)| (*a, b.id)));
    let mut feeds = Vec::new();
    for e in &raw.feeds {
        let Some(f) = p.entry::<RawFeed>("feed", e) else {
            continue;
        };
        let at = e.span().start;
        let what = format!("feed {:?}", f.id.to_string());
        let kind = match f.kind.as_deref().unwrap_or("bookings") {
            "bookings" => crate::domain::FeedKind::Bookings,
            "outages" => crate::domain::FeedKind::Outages,
            "generator" => crate::domain::FeedKind::Generator,
            other => {
                p.at(
                    at,
                    format!("{what}: kind {other:?} is not one of \"bookings\", \"outages\", \"generator\""),
                );
                continue;
            }
        };
        match (kind, &f.room) {
            (crate::domain::FeedKind::Bookings, None) => {
                p.at(at, format!("{what}: give the room it books"));
            }
            (crate::domain::FeedKind::Bookings, Some(r)) if !room_ids.contains(r) => {
                p.at(at, format!("{what}: unknown room {:?}", r.to_string()));
            }
            (crate::domain::FeedKind::Outages | crate::domain::FeedKind::Generator, Some(_)) => {
                p.at(
                    at,
                    format!("{what}: a power schedule is for the whole site (rooms say their supply): leave out room"),
                );
            }
            _ => {}
        }
        let from = match (f.url, f.path) {
            (Some(u), None) if u.starts_with("http://") || u.starts_with("https://") => {
                crate::domain::FeedFrom::Url(u)
            }
            (Some(u), None) => {
                p.at(at, format!("{what}: url {u:?} is not http:// or https://"));
                continue;
            }
            (None, Some(path)) => crate::domain::FeedFrom::Path(path),
            _ => {
                p.at(at, format!("{what}: give either url or path"));
                continue;
            }
        };
        let interval_s = f.interval_s.unwrap_or(300);
        if interval_s == 0 {
            p.at(at, format!("{what}: interval_s must be at least 1"));
        }
        feeds.push((
            at,
            crate::domain::Feed {
                id: f.id,
                kind,
                room: f.room,
                from,
                interval_s: interval_s.max(1),
            },
        ));
    }
    unique(&mut p, "feed", feeds.iter().map(|(a, f)| (*a, f.id)));
    let mut booking_rules = crate::domain::BookingRules::default();
    if let Some(b) = &raw.bookings {
        let at = b.span().start;
        if let Some(rb) = p.entry::<RawBookings>("[bookings]", b) {
            let rooms_of = |p: &mut Problems<'_>,
                            what: &str,
                            list: Option<Vec<String>>,
                            default: &[crate::domain::Bookable]| {
                let Some(list) = list else {
                    return default.to_vec();
                };
                let mut out = Vec::new();
                for r in list {
                    let kind: Option<RoomKind> =
                        serde_json::from_value(serde_json::Value::String(r.clone())).ok();
                    match (kind, r.parse::<RoomId>()) {
                        (Some(k), _) => out.push(crate::domain::Bookable::Kind(k)),
                        (None, Ok(id)) if room_ids.contains(&id) => {
                            out.push(crate::domain::Bookable::Room(id))
                        }
                        _ => p.at(
                            at,
                            format!("{what}: {r:?} is neither a room kind nor a room"),
                        ),
                    }
                }
                out
            };
            let zero = |d: Option<u32>| d.filter(|d| *d == 0).is_some();
            let default_rooms = rooms_of(
                &mut p,
                "[bookings] rooms",
                rb.rooms,
                &booking_rules.default.rooms,
            );
            let mut sources = std::collections::BTreeMap::new();
            for s in rb.sources {
                let what = format!("[[bookings.sources]] {:?}", s.id.to_string());
                let rooms = rooms_of(&mut p, &what, s.rooms, &default_rooms);
                if zero(s.max_days) {
                    p.at(at, format!("{what}: max_days must be at least 1"));
                }
                if sources
                    .insert(
                        s.id,
                        crate::domain::SourceRules {
                            rooms,
                            max_days: s.max_days.or(rb.max_days),
                        },
                    )
                    .is_some()
                {
                    p.at(at, format!("{what} appears twice"));
                }
            }
            if zero(rb.max_days) {
                p.at(at, "[bookings]: max_days must be at least 1");
            }
            booking_rules = crate::domain::BookingRules {
                default: crate::domain::SourceRules {
                    rooms: default_rooms,
                    max_days: rb.max_days,
                },
                sources,
            };
        }
    }
    let shelter = site.as_ref().and_then(|s| s.shelter);
    if let Some(s) = shelter {
        if !room_ids.contains(&s) {
            p.at(
                raw.site.span().start,
                format!("[site]: shelter {:?} is not a room", s.to_string()),
            );
        }
    }

    if !p.list.is_empty() {
        p.list.sort_by_key(|(at, _)| *at);
        return Err(p.list.into_iter().map(|(_, x)| x).collect());
    }
    let (Some(site), Some(timezone)) = (site, timezone) else {
        return Err(vec![SiteProblem {
            line: 1,
            column: 1,
            message: "[site] needs a name and a time zone".into(),
        }]);
    };
    Ok(Site::assemble(SiteParts {
        name: site.name,
        name_uk: site.name_uk,
        timezone,
        floors: floors.into_iter().map(|(_, f)| f).collect(),
        zones: zones.into_iter().map(|(_, z)| z).collect(),
        rooms: site_rooms,
        doors: site_doors,
        access,
        holidays,
        shelter,
        anti_passback,
        plans: plans.into_iter().map(|(_, x)| x).collect(),
        leases: leases.into_iter().map(|(_, x)| x).collect(),
        bindings: bindings.into_iter().map(|(_, b)| b).collect(),
        feeds: feeds.into_iter().map(|(_, f)| f).collect(),
        booking_rules,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[site]
name = "Mini"
timezone = "Europe/Kyiv"

[[floors]]
id = "f0"
name = "Ground"
level = 0

[[rooms]]
id = "lobby"
name = "Lobby"
floor = "f0"
kind = "lobby"
rect = [0.0, 0.0, 10.0, 5.0]

[[doors]]
id = "d-main"
name = "Main"
from = "outside"
into = "lobby"
"#;

    #[test]
    fn a_good_file_loads_with_defaults_filled_in() {
        let site = parse(GOOD).unwrap();
        assert_eq!(site.timezone, chrono_tz::Europe::Kyiv);
        assert_eq!(site.doors[0].unlock_ms, 5000);
        assert_eq!(site.doors[0].held_open_s, 30);
        assert_eq!(site.rooms[0].shape.len(), 4);
        assert_eq!(site.access, AccessPolicy::default());
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let bad = GOOD.replace("kind = \"lobby\"", "kind = \"lobby\"\ncapcity = 10")
            + r#"
[[rooms]]
id = "office"
name = "Office"
floor = "f9"
kind = "office"

[[doors]]
id = "d-office"
name = "Office"
from = "nowhere"
into = "attic"
public_hours = "mon-fry 08:00-20:00"

[[doors]]
id = "d-main"
name = "Main again"
from = "outside"
into = "office"
unlock_ms = 100
"#;
        let problems = parse(&bad).unwrap_err();
        let lines: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.line, p.message))
            .collect();
        let text = lines.join("\n");
        // The misspelt field, the unknown floor, the bad schedule, the duplicate id and the
        // unlock time are all reported, in file order, each at its entry's line.
        assert!(text.contains("unknown field `capcity`"), "{text}");
        assert!(
            text.contains("room \"office\": unknown floor \"f9\""),
            "{text}"
        );
        assert!(text.contains("mon-fry 08:00-20:00"), "{text}");
        assert!(text.contains("door \"d-main\" is defined twice"), "{text}");
        assert!(
            text.contains("unlock_ms 100 is outside 500..60000"),
            "{text}"
        );
        assert_eq!(problems.len(), 5, "{text}");
        let line_of = |needle: &str| {
            bad.lines()
                .position(|l| l.contains(needle))
                .map(|i| i + 1)
                .unwrap()
        };
        assert_eq!(problems[0].line, line_of("[[rooms]]"));
        assert!(problems.windows(2).all(|w| w[0].line <= w[1].line));
        let d_main_again = problems
            .iter()
            .find(|p| p.message.contains("twice"))
            .unwrap();
        let lines: Vec<&str> = bad.lines().collect();
        let last_door = lines.iter().rposition(|l| *l == "[[doors]]").unwrap() + 1;
        assert_eq!(d_main_again.line, last_door);
    }

    #[test]
    fn references_between_entries_are_checked() {
        let bad = GOOD.to_string()
            + r#"
[[doors]]
id = "d-x"
name = "X"
from = "nowhere"
into = "attic"

[[plans]]
id = "p"
name = "P"
grants = [{ zones = ["ghost"], rooms = ["attic"], schedule = "always" }]

[[leases]]
id = "l"
organisation = "o"
room = "attic"

[[anti_passback]]
entry = "d-main"
exit = "d-nope"
"#;
        let text: Vec<String> = parse(&bad)
            .unwrap_err()
            .into_iter()
            .map(|p| p.message)
            .collect();
        for expected in [
            "door \"d-x\": from \"nowhere\" is neither a room nor \"outside\"",
            "door \"d-x\": into unknown room \"attic\"",
            "plan \"p\": unknown zone \"ghost\"",
            "plan \"p\": unknown room \"attic\"",
            "lease \"l\": unknown room \"attic\"",
            "anti_passback pair: unknown door \"d-nope\"",
        ] {
            assert!(
                text.iter().any(|t| t == expected),
                "missing {expected:?} in {text:?}"
            );
        }
    }

    #[test]
    fn booking_sources_name_room_kinds_or_rooms_and_a_length_of_at_least_a_day() {
        let good = GOOD.to_string()
            + r#"
[bookings]
rooms = ["meeting", "lobby"]
max_days = 3

[[bookings.sources]]
id = "desk"
rooms = ["lobby"]
"#;
        let site = parse(&good).unwrap();
        let r = &site.booking_rules;
        assert_eq!(
            r.default.rooms,
            [
                crate::domain::Bookable::Kind(RoomKind::Meeting),
                crate::domain::Bookable::Kind(RoomKind::Lobby)
            ]
        );
        assert_eq!(r.default.max_days, Some(3));
        let desk = r.of(SourceId::parse("desk").unwrap());
        // A name that is a kind is the kind (here the same room either way).
        assert_eq!(desk.rooms, [crate::domain::Bookable::Kind(RoomKind::Lobby)]);
        assert_eq!(desk.max_days, Some(3), "the default length");
        let bad = GOOD.to_string()
            + r#"
[bookings]
rooms = ["attic"]
max_days = 0

[[bookings.sources]]
id = "desk"
max_days = 0
"#;
        let msgs: Vec<String> = parse(&bad)
            .unwrap_err()
            .into_iter()
            .map(|p| p.message)
            .collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("\"attic\" is neither a room kind nor a room")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("[bookings]: max_days must be at least 1")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("\"desk\": max_days must be at least 1")),
            "{msgs:?}"
        );
        // Without the section: the rooms people book.
        let plain = parse(GOOD).unwrap();
        assert_eq!(plain.booking_rules, crate::domain::BookingRules::default());
    }

    #[test]
    fn an_exit_reader_without_a_free_exit_is_warned_about() {
        let text = GOOD.to_string()
            + r#"
[[rooms]]
id = "office"
name = "Office"
floor = "f0"
kind = "office"
rect = [0.0, 5.0, 5.0, 5.0]

[[doors]]
id = "d-office"
name = "Office in"
from = "lobby"
into = "office"

[[doors]]
id = "d-office-out"
name = "Office out"
from = "office"
into = "lobby"
"#;
        let site = parse(&text).unwrap();
        let w = site.exit_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("door d-office-out (Office out) is an exit reader"),
            "{w:?}"
        );
        let with = text.replace(
            "into = \"lobby\"\n",
            "into = \"lobby\"\nfree_exit = \"handle\"\n",
        );
        let site = parse(&with).unwrap();
        assert!(site.exit_warnings().is_empty());
        assert_eq!(
            site.door(DoorId::parse("d-office-out").unwrap())
                .unwrap()
                .free_exit,
            Some(crate::domain::FreeExit::Handle)
        );
    }

    #[test]
    fn a_door_may_say_where_it_is_on_the_plan() {
        let text = GOOD.to_string()
            + r#"
[[rooms]]
id = "office"
name = "Office"
floor = "f0"
kind = "office"
rect = [0.0, 5.0, 5.0, 5.0]

[[doors]]
id = "d-office"
name = "Office in"
from = "lobby"
into = "office"
at = [2.5, 5.0]
"#;
        let site = parse(&text).unwrap();
        let door = |id: &str| site.door(DoorId::parse(id).unwrap()).unwrap().at;
        assert_eq!(door("d-office"), Some([2.5, 5.0]));
        let bad = text.replace("at = [2.5, 5.0]", "at = [2.5]");
        assert!(parse(&bad).is_err(), "two numbers");
        let bad = text.replace("at = [2.5, 5.0]", "at = [nan, 5.0]");
        assert!(parse(&bad).is_err(), "numbers");
    }

    #[test]
    fn device_bindings_are_checked_each_with_its_line() {
        let bad = GOOD.to_string()
            + r#"
[[bindings]]
id = "esp-1"
kind = "esp_rfid"
topic = "door-main"
door = "d-main"

[[bindings]]
id = "esp-2"
kind = "esp_rfid"
topic = "door-office"
door = "d-nope"
ip = "10.0.0.2"

[[bindings]]
id = "z-1"
kind = "zigbee2mqtt"
topic = "lobby/+"
room = "lobby"

[[bindings]]
id = "z-2"
kind = "zigbee2mqtt"
topic = "lobby/pir"
room = "attic"

[[bindings]]
id = "z-3"
kind = "zigbee2mqtt"
topic = "lobby/pir"
room = "lobby"

[[bindings]]
id = "t-1"
kind = "tasmota"
topic = "t1"
relay = 0
door = "d-main"

[[bindings]]
id = "t-2"
kind = "heater"
topic = "t2"
"#;
        let text: Vec<String> = parse(&bad)
            .unwrap_err()
            .into_iter()
            .map(|p| p.message)
            .collect();
        for expected in [
            "binding \"esp-1\": an esp_rfid reader needs its ip (it drops commands without it)",
            "binding \"esp-2\": unknown door \"d-nope\"",
            "binding \"z-1\": topic \"lobby/+\" must be 1-128 characters, without + # or empty levels",
            "binding \"z-2\": unknown room \"attic\"",
            "binding \"z-3\": another zigbee2mqtt binding has topic \"lobby/pir\"",
            "binding \"t-1\": relay counts from 1 to 8",
        ] {
            assert!(
                text.iter().any(|t| t == expected),
                "missing {expected:?} in {text:?}"
            );
        }
        assert!(
            text.iter()
                .any(|t| t.starts_with("binding \"t-2\": unknown variant `heater`")),
            "{text:?}"
        );
        let good = GOOD.to_string()
            + r#"
[[bindings]]
id = "esp-1"
kind = "esp_rfid"
topic = "door-main"
door = "d-main"
ip = "10.0.0.1"
"#;
        let site = parse(&good).unwrap();
        assert_eq!(site.bindings.len(), 1);
        assert_eq!(site.bindings[0].ip.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn syntax_errors_and_bad_time_zones_say_where() {
        let problems = parse("[site]\nname = \"x\"\ntimezone = \n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 3);
        let problems = parse(&GOOD.replace("Europe/Kyiv", "Europe/Kherson-ish")).unwrap_err();
        assert!(
            problems[0].message.contains("unknown time zone"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_example_site_of_the_kherson_centre_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.example.toml");
        let site = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(site.rooms.len() >= 30, "{} rooms", site.rooms.len());
        let floors: BTreeSet<i8> = site.floors.iter().map(|f| f.level).collect();
        assert!(floors.len() >= 3);
        for (i, room) in site.rooms.iter().enumerate() {
            let has_door = site.doors.iter().any(|d| d.into == room.id);
            let way = site.way(i);
            assert!(
                !has_door || way.first().is_some_and(|&d| site.doors[d].from.is_none()),
                "room {} cannot be reached from outside",
                room.id
            );
        }
        let need_induction: Vec<_> = site
            .rooms
            .iter()
            .filter(|r| !r.certifications.is_empty())
            .map(|r| r.kind)
            .collect();
        assert_eq!(need_induction, [RoomKind::Lab, RoomKind::Lab]);
        assert!(site.shelter.is_some());
    }
}
