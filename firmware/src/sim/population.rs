//! The people of the Centre for one simulated day, drawn from a seed: staff on their rounds,
//! coworking residents and day-pass holders, the tenants of the leased offices, lab members,
//! meetings that follow bookings (some never attended), a conference with 150 guests, hostel
//! guests leaving in the morning and arriving at night. With them: the bookings and devices the
//! gateway must know, written as the gateway's own import files.
//!
//! Simulated time runs `speed` times faster than real time from `start_min` (minutes after local
//! midnight). Bookings are written on the clock the gateway reads ([`SimClock::wall_unix`]): the
//! simulated day's own time when the gateway follows it (the demo), else real time compressed
//! the same way (a meeting of a simulated hour booked for `60 / speed` real minutes at the moment
//! the simulated people go to it).

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Days, Utc};
use kombinat_protocol::auth::{mac_of, DeviceKey};
use kombinat_protocol::CardId;

use super::building::{Building, OUTSIDE};

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same day.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`lo` if empty).
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        lo + (self.bits() % u64::from(hi - lo)) as u32
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.bits() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.bits() as usize % items.len()]
    }
}

/// How simulated time maps to real time, and which time the gateway and the nodes read.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    /// Real Unix time (seconds, fractional) at the start.
    pub real_start: f64,
    /// Simulated minutes after local midnight at the start.
    pub start_min: u32,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// `Some`: the gateway and the nodes read the simulated time, the simulated day's local
    /// midnight being this Unix second (the demo: the dashboard shows 11:30 when the simulated
    /// building is at 11:30, and an hour's meeting lasts an hour on every clock). `None`: they
    /// read real time, and the simulated day is compressed into it (a meeting of a simulated
    /// hour is booked for `60 / speed` real minutes).
    pub midnight: Option<i64>,
}

impl SimClock {
    /// The real Unix second at which the simulated day reaches `min`.
    pub fn real_unix(&self, min: f64) -> i64 {
        (self.real_start + (min - f64::from(self.start_min)) * 60.0 / self.speed).round() as i64
    }

    /// The simulated minute after `elapsed_s` real seconds.
    pub fn sim_min(&self, elapsed_s: f64) -> f64 {
        f64::from(self.start_min) + elapsed_s * self.speed / 60.0
    }

    /// The Unix second the gateway and the nodes read when the simulated day reaches `min`:
    /// the simulated time, or the real one (see [`SimClock::midnight`]).
    pub fn wall_unix(&self, min: f64) -> i64 {
        match self.midnight {
            Some(m) => m + (min * 60.0).round() as i64,
            None => self.real_unix(min),
        }
    }

    /// The Unix second the nodes read at real Unix time `real_now`.
    pub fn wall_now(&self, real_now: f64) -> u64 {
        match self.midnight {
            Some(_) => {
                let t = self.wall_unix(self.sim_min(real_now - self.real_start));
                u64::try_from(t).unwrap_or(0)
            }
            None => real_now.max(0.0) as u64,
        }
    }

    /// The Unix second of local midnight on the day `at` falls on, in `tz`.
    pub fn local_midnight(at: DateTime<Utc>, tz: chrono_tz::Tz) -> i64 {
        use chrono::TimeZone;
        let day = at.with_timezone(&tz).date_naive();
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        tz.from_local_datetime(&midnight)
            .earliest()
            .map_or(at.timestamp() - at.timestamp() % 86_400, |t| t.timestamp())
    }
}

/// A member as the gateway's member import takes it: the fields are the CSV's columns of the
/// same names.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub card: CardId,
    /// A plan from the site file.
    pub plan: Option<&'static str>,
    /// An organisation (a lease).
    pub organisation: Option<String>,
    pub roles: &'static str,
    pub certifications: &'static str,
}

/// What a booking is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingKind {
    /// A meeting room booking.
    Meeting,
    /// An event (the conference).
    Event,
    /// A hostel stay.
    Stay,
}

/// A booking as the gateway's booking import takes it: the fields are the CSV's columns of the
/// same names, and what the simulation knows besides.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct Booking {
    pub external_id: String,
    pub room: String,
    pub kind: BookingKind,
    /// Organiser (member id).
    pub organiser: String,
    /// Attendees (member ids).
    pub attendees: Vec<String>,
    pub title: String,
    /// Start and end, real Unix seconds (meetings, events); arrival and departure days for
    /// stays are the local dates of these instants.
    pub start: i64,
    pub end: i64,
    /// Start in simulated minutes after midnight.
    pub sim_start: f64,
    /// Nobody will come (the simulation's plan; the gateway has to find it out).
    pub no_show: bool,
}

/// A device to register on the gateway.
#[derive(Debug, Clone)]
pub struct Device {
    /// Device id.
    pub id: String,
    /// Its door (door nodes) …
    pub door: Option<String>,
    /// … or its room (sensor nodes).
    pub room: Option<String>,
    /// The key it signs with, registered on the gateway with it.
    pub key: DeviceKey,
}

/// Where someone goes, and when (simulated minutes after midnight).
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    /// When to set off.
    pub at: f64,
    /// Where to (a room id, or [`OUTSIDE`]).
    pub to: String,
}

/// A person of the day.
#[derive(Debug, Clone)]
pub struct Person {
    /// Index into [`Population::members`].
    pub member: usize,
    /// Where they are when the day starts.
    pub start_in: String,
    /// Their day, in time order.
    pub plan: Vec<Visit>,
}

/// Everyone and everything of the day.
#[derive(Debug, Clone)]
pub struct Population {
    /// As `members.csv` has them.
    pub members: Vec<Member>,
    /// As `bookings.csv` has them.
    pub bookings: Vec<Booking>,
    /// Devices: a door node per reader, a sensor node per room where people gather.
    pub devices: Vec<Device>,
    /// People and their days.
    pub people: Vec<Person>,
}

/// Rooms that get a sensor node (a counter at the door, a PIR, CO2): where people gather.
/// Hostel rooms have none: they are bedrooms.
pub const SENSED_KINDS: [&str; 8] = [
    "lobby",
    "exhibition",
    "gallery",
    "conference",
    "meeting",
    "coworking",
    "lab",
    "office",
];

fn card(rng: &mut Rng) -> CardId {
    let b = (rng.bits() as u32 | 0x0100_0000).to_be_bytes();
    match CardId::from_bytes(&b) {
        Ok(c) => c,
        Err(_) => unreachable!("four bytes are a valid UID"),
    }
}

/// A simulated device's key, derived from the seed: for a simulation only. Real devices get
/// random keys from `kombinat device add`.
pub fn device_key(seed: u64, device: &str) -> DeviceKey {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&seed.to_be_bytes());
    let mac = mac_of(&DeviceKey::from_bytes(k), "simulated-device-key", |m| {
        m.text(device)
    });
    DeviceKey::from_bytes(mac.0)
}

/// A door node's id for a door reader: `dn-<door without "d-">`, at most 32 characters.
pub fn door_device(door: &str) -> String {
    let mut s = format!("dn-{}", door.strip_prefix("d-").unwrap_or(door));
    s.truncate(32);
    s
}

/// A sensor node's id for a room.
pub fn sensor_device(room: &str) -> String {
    let mut s = format!("sn-{room}");
    s.truncate(32);
    s
}

struct Builder {
    rng: Rng,
    clock: SimClock,
    members: Vec<Member>,
    people: Vec<Person>,
    bookings: Vec<Booking>,
}

impl Builder {
    fn member(
        &mut self,
        id: String,
        name: String,
        plan: Option<&'static str>,
        org: Option<String>,
    ) -> usize {
        let card = card(&mut self.rng);
        self.members.push(Member {
            id,
            name,
            card,
            plan,
            organisation: org,
            roles: "",
            certifications: "",
        });
        self.members.len() - 1
    }

    fn person(&mut self, member: usize, start_in: &str, plan: Vec<Visit>) -> usize {
        self.people.push(Person {
            member,
            start_in: start_in.to_owned(),
            plan,
        });
        self.people.len() - 1
    }

    fn t(&mut self, lo_h: f64, hi_h: f64) -> f64 {
        let (lo, hi) = ((lo_h * 60.0) as u32, (hi_h * 60.0) as u32);
        f64::from(self.rng.range(lo, hi))
    }

    /// A working day based in `base`: arrive, lunch in the kitchen, leave.
    fn workday(&mut self, base: &str, arrive: (f64, f64), leave: (f64, f64)) -> Vec<Visit> {
        let mut plan = vec![Visit {
            at: self.t(arrive.0, arrive.1),
            to: base.to_owned(),
        }];
        if self.rng.chance(0.6) {
            let lunch = self.t(12.0, 13.5);
            plan.push(Visit {
                at: lunch,
                to: "kitchen".into(),
            });
            plan.push(Visit {
                at: lunch + f64::from(self.rng.range(20, 50)),
                to: base.to_owned(),
            });
        }
        plan.push(Visit {
            at: self.t(leave.0, leave.1),
            to: OUTSIDE.into(),
        });
        plan
    }
}

fn busy(plan: &[Visit], from: f64, to: f64) -> bool {
    // Anything planned in the window, or not arrived/already left around it.
    let arrived = plan.first().is_some_and(|v| v.at < from - 10.0);
    let leaves = plan.last().is_some_and(|v| v.at > to + 10.0);
    !arrived || !leaves || plan.iter().any(|v| v.at > from - 30.0 && v.at < to + 30.0)
}

impl Population {
    /// The day's people, bookings and devices, drawn from `seed`.
    pub fn generate(b: &Building, seed: u64, clock: SimClock) -> Population {
        let mut g = Builder {
            rng: Rng::new(seed),
            clock,
            members: Vec::new(),
            people: Vec::new(),
            bookings: Vec::new(),
        };
        // Staff: open up, rounds every two hours, leave in the evening.
        let rounds = [
            "exhibition-hall",
            "corridor-f1",
            "coworking",
            "corridor-f2",
            "conf-a",
        ];
        for i in 1..=4 {
            let m = g.member(
                format!("staff-{i}"),
                format!("Staff member {i}"),
                None,
                None,
            );
            g.members[m].roles = "staff";
            let mut plan = vec![Visit {
                at: g.t(7.0, 8.5),
                to: "lobby".into(),
            }];
            let mut h = 9.0 + f64::from(i) * 0.4;
            while h < 18.0 {
                let at = g.t(h, h + 0.3);
                for (k, r) in rounds.iter().enumerate() {
                    if b.room(r).is_some() {
                        plan.push(Visit {
                            at: at + 6.0 * k as f64,
                            to: (*r).into(),
                        });
                    }
                }
                plan.push(Visit {
                    at: at + 40.0,
                    to: "lobby".into(),
                });
                h += 2.0;
            }
            plan.push(Visit {
                at: g.t(18.5, 20.0),
                to: OUTSIDE.into(),
            });
            g.person(m, OUTSIDE, plan);
        }
        // Coworking.
        let mut desk_people = Vec::new();
        for i in 1..=40 {
            let m = g.member(
                format!("resident-{i:02}"),
                format!("Coworking resident {i}"),
                Some("coworking-resident"),
                None,
            );
            let plan = g.workday("coworking", (7.8, 10.5), (16.5, 20.5));
            desk_people.push((g.person(m, OUTSIDE, plan), "coworking".to_owned()));
        }
        for i in 1..=15 {
            let m = g.member(
                format!("daypass-{i:02}"),
                format!("Day pass {i}"),
                Some("coworking-day"),
                None,
            );
            let plan = g.workday("coworking", (9.0, 11.0), (15.0, 18.0));
            g.person(m, OUTSIDE, plan);
        }
        // Tenants of the leased offices.
        for lease in &b.leases {
            let n = g.rng.range(3, 7);
            for i in 1..=n {
                let m = g.member(
                    format!("{}-{i}", lease.organisation),
                    format!("{} member {i}", lease.organisation),
                    Some("tenant-staff"),
                    Some(lease.organisation.clone()),
                );
                let plan = g.workday(&lease.room, (8.3, 10.0), (17.0, 19.5));
                desk_people.push((g.person(m, OUTSIDE, plan), lease.room.clone()));
            }
        }
        // Lab members, inducted for the fab lab.
        for i in 1..=8 {
            let m = g.member(
                format!("maker-{i}"),
                format!("Lab member {i}"),
                Some("lab-member"),
                None,
            );
            g.members[m].certifications = "induction-fablab";
            let arrive = g.t(10.0, 14.0);
            let stay = f64::from(g.rng.range(90, 200));
            g.person(
                m,
                OUTSIDE,
                vec![
                    Visit {
                        at: arrive,
                        to: "fablab".into(),
                    },
                    Visit {
                        at: arrive + stay,
                        to: OUTSIDE.into(),
                    },
                ],
            );
        }
        // Meetings, some never attended.
        let meeting_rooms: Vec<String> =
            b.rooms_of("meeting").iter().map(|r| r.id.clone()).collect();
        let mut n_meeting = 0;
        for start_h in [9.0, 10.5, 14.0, 15.5, 17.0] {
            let mut in_slot = 0;
            for room in &meeting_rooms {
                if !g.rng.chance(0.7) {
                    continue;
                }
                let start = start_h * 60.0;
                let end = start + 60.0;
                let free: Vec<(usize, String)> = desk_people
                    .iter()
                    .filter(|(p, _)| !busy(&g.people[*p].plan, start, end))
                    .cloned()
                    .collect();
                if free.len() < 3 {
                    continue;
                }
                n_meeting += 1;
                in_slot += 1;
                // The second meeting of each slot is booked and never attended.
                let no_show = in_slot == 2;
                let mut who: Vec<(usize, String)> = Vec::new();
                for _ in 0..g.rng.range(2, 5) {
                    let p = g.rng.pick(&free).clone();
                    if !who.iter().any(|w| w.0 == p.0) {
                        who.push(p);
                    }
                }
                let organiser = g.members[g.people[who[0].0].member].id.clone();
                let attendees = who[1..]
                    .iter()
                    .map(|(p, _)| g.members[g.people[*p].member].id.clone())
                    .collect();
                if !no_show {
                    for (p, base) in &who {
                        // On time, give or take: up to four minutes late.
                        let at = start + f64::from(g.rng.range(0, 4));
                        let plan = &mut g.people[*p].plan;
                        plan.push(Visit {
                            at,
                            to: room.clone(),
                        });
                        plan.push(Visit {
                            at: end,
                            to: base.clone(),
                        });
                        plan.sort_by(|a, b| a.at.total_cmp(&b.at));
                    }
                }
                let (s, e) = (g.clock.wall_unix(start), g.clock.wall_unix(end));
                g.bookings.push(Booking {
                    external_id: format!("sim-meeting-{n_meeting}"),
                    room: room.clone(),
                    kind: BookingKind::Meeting,
                    organiser,
                    attendees,
                    title: format!("Meeting {n_meeting}"),
                    start: s,
                    end: e,
                    sim_start: start,
                    no_show,
                });
            }
        }
        // The conference: 150 guests on an event booking in the big hall.
        if let Some(hall) = b.rooms_of("conference").first().map(|r| r.id.clone()) {
            let mut guests = Vec::new();
            for i in 1..=150 {
                let m = g.member(
                    format!("guest-{i:03}"),
                    format!("Conference guest {i}"),
                    None,
                    None,
                );
                guests.push(g.members[m].id.clone());
                let arrive = g.t(9.2, 10.2);
                let leave = if g.rng.chance(0.15) {
                    g.t(12.0, 14.0)
                } else {
                    g.t(16.0, 16.8)
                };
                g.person(
                    m,
                    OUTSIDE,
                    vec![
                        Visit {
                            at: arrive,
                            to: hall.clone(),
                        },
                        Visit {
                            at: leave,
                            to: OUTSIDE.into(),
                        },
                    ],
                );
            }
            // Booked from 09:00, when the hall opens for registration; the talks begin at 10:00.
            let (s, e) = (g.clock.wall_unix(540.0), g.clock.wall_unix(1_020.0));
            g.bookings.push(Booking {
                external_id: "sim-conference".into(),
                room: hall,
                kind: BookingKind::Event,
                organiser: guests[0].clone(),
                attendees: guests[1..].to_vec(),
                title: "Rebuilding Kherson: creative industries conference".into(),
                start: s,
                end: e,
                sim_start: 540.0,
                no_show: false,
            });
        }
        // Hostel: guests leaving in the morning, guests arriving at night.
        let hostel: Vec<String> = b.rooms_of("hostel").iter().map(|r| r.id.clone()).collect();
        for (i, room) in hostel.iter().enumerate() {
            let m = g.member(
                format!("hostel-{}", i + 1),
                format!("Hostel guest {}", i + 1),
                None,
                None,
            );
            let leaving = i % 2 == 0;
            let plan = if leaving {
                vec![Visit {
                    at: g.t(7.5, 10.5),
                    to: OUTSIDE.into(),
                }]
            } else {
                vec![Visit {
                    at: g.t(18.0, 22.5),
                    to: room.clone(),
                }]
            };
            let start_in = if leaving { room.as_str() } else { OUTSIDE };
            g.person(m, start_in, plan);
            // A stay that holds now, whatever the real hour: from yesterday to tomorrow.
            let now = g.clock.wall_unix(f64::from(g.clock.start_min));
            g.bookings.push(Booking {
                external_id: format!("sim-stay-{}", i + 1),
                room: room.clone(),
                kind: BookingKind::Stay,
                organiser: g.members[m].id.clone(),
                attendees: Vec::new(),
                title: format!("Stay {}", i + 1),
                start: now - 86_400,
                end: now + 86_400,
                sim_start: 0.0,
                no_show: false,
            });
        }
        let devices = devices(b, seed);
        Population {
            members: g.members,
            bookings: g.bookings,
            devices,
            people: g.people,
        }
    }

    /// Writes `members.csv`, `bookings.csv` (the gateway's import formats) and `devices.csv`
    /// (`id,kind,door,room,key`: `kombinat device add ID --kind K --door D|--room R --key KEY`).
    pub fn write_csv(&self, dir: &Path, tz: chrono_tz::Tz) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("members.csv"), self.members_csv())?;
        std::fs::write(dir.join("bookings.csv"), self.bookings_csv(tz))?;
        std::fs::write(dir.join("devices.csv"), self.devices_csv())
    }

    /// The members in the gateway's member import format.
    pub fn members_csv(&self) -> String {
        let mut s = String::from("id,name,plan,organisation,roles,certifications,cards\n");
        for m in &self.members {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{}",
                m.id,
                m.name,
                m.plan.unwrap_or(""),
                m.organisation.as_deref().unwrap_or(""),
                m.roles,
                m.certifications,
                m.card
            );
        }
        s
    }

    /// The bookings in the gateway's booking import format.
    pub fn bookings_csv(&self, tz: chrono_tz::Tz) -> String {
        let mut s = String::from(
            "external_id,room,kind,organiser,start,end,arrival,departure,title,attendees\n",
        );
        let at = |t: i64| DateTime::<Utc>::from_timestamp(t, 0).unwrap_or_default();
        for b in &self.bookings {
            let (kind, start, end, arrival, departure) = match b.kind {
                BookingKind::Stay => {
                    let day = |t: i64| at(t).with_timezone(&tz).date_naive();
                    let dep = day(b.end).max(day(b.start) + Days::new(1));
                    (
                        "stay",
                        String::new(),
                        String::new(),
                        day(b.start).to_string(),
                        dep.to_string(),
                    )
                }
                k => (
                    if k == BookingKind::Event {
                        "event"
                    } else {
                        "meeting"
                    },
                    at(b.start).to_rfc3339(),
                    at(b.end).to_rfc3339(),
                    String::new(),
                    String::new(),
                ),
            };
            let _ = writeln!(
                s,
                "{},{},{kind},{},{start},{end},{arrival},{departure},{},{}",
                b.external_id,
                b.room,
                b.organiser,
                b.title.replace(',', " "),
                b.attendees.join(";")
            );
        }
        s
    }

    /// The devices, with their keys.
    pub fn devices_csv(&self) -> String {
        let mut s = String::from("id,kind,door,room,key\n");
        for d in &self.devices {
            let kind = if d.door.is_some() { "door" } else { "sensor" };
            let _ = writeln!(
                s,
                "{},{kind},{},{},{}",
                d.id,
                d.door.as_deref().unwrap_or(""),
                d.room.as_deref().unwrap_or(""),
                d.key.expose_hex()
            );
        }
        s
    }
}

fn devices(b: &Building, seed: u64) -> Vec<Device> {
    let mut out: Vec<Device> = b
        .doors
        .iter()
        .map(|d| {
            let id = door_device(&d.id);
            Device {
                key: device_key(seed, &id),
                id,
                door: Some(d.id.clone()),
                room: None,
            }
        })
        .collect();
    for r in b
        .rooms
        .iter()
        .filter(|r| SENSED_KINDS.contains(&r.kind.as_str()))
    {
        let id = sensor_device(&r.id);
        out.push(Device {
            key: device_key(seed, &id),
            id,
            door: None,
            room: Some(r.id.clone()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> (Building, Population) {
        let b = Building::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.example.toml"),
        )
        .unwrap();
        let clock = SimClock {
            real_start: 1_795_680_000.0,
            start_min: 450,
            speed: 60.0,
            midnight: None,
        };
        let p = Population::generate(&b, 7, clock);
        (b, p)
    }

    #[test]
    fn the_day_has_everyone_the_centre_expects() {
        let (b, p) = day();
        let count = |pre: &str| p.members.iter().filter(|m| m.id.starts_with(pre)).count();
        assert_eq!(count("guest-"), 150);
        assert_eq!(count("staff-"), 4);
        assert_eq!(count("resident-"), 40);
        assert_eq!(count("hostel-"), b.rooms_of("hostel").len());
        let meetings: Vec<_> = p
            .bookings
            .iter()
            .filter(|b| b.kind == BookingKind::Meeting)
            .collect();
        assert!(meetings.len() >= 6, "{}", meetings.len());
        assert!(meetings.iter().any(|m| m.no_show) && meetings.iter().any(|m| !m.no_show));
        let cards: std::collections::HashSet<_> = p.members.iter().map(|m| m.card).collect();
        assert_eq!(cards.len(), p.members.len(), "every card is unique");
        assert_eq!(
            p.devices.iter().filter(|d| d.door.is_some()).count(),
            b.doors.len()
        );
        for person in &p.people {
            assert!(person.plan.windows(2).all(|w| w[0].at <= w[1].at));
            for v in &person.plan {
                assert!(v.to == OUTSIDE || b.room(&v.to).is_some(), "{}", v.to);
            }
        }
    }

    #[test]
    fn attended_meetings_bring_their_people_and_no_shows_bring_nobody() {
        let (_, p) = day();
        for bk in p.bookings.iter().filter(|b| b.kind == BookingKind::Meeting) {
            let goes = p
                .people
                .iter()
                .any(|x| x.plan.iter().any(|v| v.to == bk.room));
            if !bk.no_show {
                assert!(goes, "{} has people", bk.external_id);
            }
        }
        let csv = p.bookings_csv(chrono_tz::Europe::Kyiv);
        assert!(csv
            .lines()
            .any(|l| l.starts_with("sim-stay-1,hostel-h1,stay,")));
        assert!(p
            .members_csv()
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("staff-1,"));
    }

    #[test]
    fn the_same_seed_gives_the_same_day() {
        let (_, a) = day();
        let (_, b) = day();
        assert_eq!(a.members_csv(), b.members_csv());
        assert_eq!(a.devices_csv(), b.devices_csv());
    }
}
