//! The building as the simulator needs it, read from the gateway's site file: rooms, door
//! readers (which way each leads), leases, the time zone; and the ways through it.
//!
//! Only these parts of the file are read (the gateway checks the rest); the simulator depends
//! on the file's format, not on the gateway's code.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

/// A room of the site file, as far as the simulation needs it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Room {
    /// As in the site file (`[[rooms]] id`).
    pub id: String,
    /// Its kind (meeting, coworking, office, hostel, …).
    pub kind: String,
    /// Fire-safety capacity.
    #[serde(default)]
    pub capacity: Option<u32>,
}

/// A door reader: tapped at `from` to go into `into`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Door {
    /// As in the site file (`[[doors]] id`).
    pub id: String,
    /// Where the reader is.
    pub from: String,
    /// Where it leads.
    pub into: String,
}

/// A lease of the site file: the organisation's people work in the room.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Lease {
    /// Who rents it (members of it get a card for the room).
    pub organisation: String,
    /// The room rented.
    pub room: String,
}

#[derive(serde::Deserialize)]
struct SiteSection {
    timezone: String,
}

#[derive(serde::Deserialize)]
struct SiteFile {
    site: SiteSection,
    #[serde(default)]
    rooms: Vec<Room>,
    #[serde(default)]
    doors: Vec<Door>,
    #[serde(default)]
    leases: Vec<Lease>,
}

/// How a door is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Tap at the reader of `doors[i]` (its way in, or an exit reader).
    Tap(usize),
    /// Leave through `doors[i]` the wrong way: press its exit button.
    Exit(usize),
}

impl Pass {
    /// The door node passed.
    pub fn door(self) -> usize {
        match self {
            Pass::Tap(i) | Pass::Exit(i) => i,
        }
    }
}

/// The building as the simulation reads it from the site file: rooms, readers, leases.
#[derive(Debug, Clone)]
pub struct Building {
    /// The site's time zone.
    pub timezone: chrono_tz::Tz,
    /// In site-file order.
    pub rooms: Vec<Room>,
    /// Door readers.
    pub doors: Vec<Door>,
    /// Who works where.
    pub leases: Vec<Lease>,
    /// (from, into) → door index.
    by_way: HashMap<(String, String), usize>,
}

/// The street.
pub const OUTSIDE: &str = "outside";

impl Building {
    /// Reads the parts of a site file the simulator uses.
    pub fn load(path: &Path) -> Result<Building, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a site file's text.
    pub fn parse(text: &str) -> Result<Building, String> {
        let f: SiteFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let timezone = f
            .site
            .timezone
            .parse()
            .map_err(|_| format!("unknown time zone {:?}", f.site.timezone))?;
        let by_way = f
            .doors
            .iter()
            .enumerate()
            .map(|(i, d)| ((d.from.clone(), d.into.clone()), i))
            .collect();
        Ok(Building {
            timezone,
            rooms: f.rooms,
            doors: f.doors,
            leases: f.leases,
            by_way,
        })
    }

    /// The room with this id.
    pub fn room(&self, id: &str) -> Option<&Room> {
        self.rooms.iter().find(|r| r.id == id)
    }

    /// Rooms of a kind.
    pub fn rooms_of(&self, kind: &str) -> Vec<&Room> {
        self.rooms.iter().filter(|r| r.kind == kind).collect()
    }

    fn hop(&self, a: &str, b: &str) -> Option<Pass> {
        if let Some(&i) = self.by_way.get(&(a.to_owned(), b.to_owned())) {
            return Some(Pass::Tap(i));
        }
        self.by_way
            .get(&(b.to_owned(), a.to_owned()))
            .map(|&i| Pass::Exit(i))
    }

    /// The doors to pass from room `a` to room `b` (either may be [`OUTSIDE`]), fewest first;
    /// `None` if no way leads there.
    pub fn way(&self, a: &str, b: &str) -> Option<Vec<Pass>> {
        if a == b {
            return Some(Vec::new());
        }
        let mut prev: HashMap<&str, &str> = HashMap::new();
        let mut queue = VecDeque::from([a]);
        prev.insert(a, a);
        while let Some(r) = queue.pop_front() {
            if r == b {
                break;
            }
            for d in &self.doors {
                for (x, y) in [(&d.from, &d.into), (&d.into, &d.from)] {
                    if x == r && !prev.contains_key(y.as_str()) {
                        prev.insert(y.as_str(), r);
                        queue.push_back(y.as_str());
                    }
                }
            }
        }
        prev.get(b)?;
        let mut rooms = vec![b];
        while let Some(&p) = prev.get(rooms[rooms.len() - 1]) {
            if p == rooms[rooms.len() - 1] {
                break;
            }
            rooms.push(p);
        }
        rooms.reverse();
        rooms.windows(2).map(|w| self.hop(w[0], w[1])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Building {
        Building::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.example.toml"))
            .unwrap()
    }

    #[test]
    fn the_way_into_the_coworking_floor_taps_three_readers() {
        let b = site();
        let way: Vec<&str> = b
            .way(OUTSIDE, "coworking")
            .unwrap()
            .iter()
            .map(|p| b.doors[p.door()].id.as_str())
            .collect();
        assert_eq!(way, ["d-main", "d-corridor-f1", "d-cowork-in"]);
    }

    #[test]
    fn the_way_out_uses_exit_readers_where_there_are_some_and_buttons_elsewhere() {
        let b = site();
        let way = b.way("coworking", OUTSIDE).unwrap();
        let names: Vec<(bool, &str)> = way
            .iter()
            .map(|p| (matches!(p, Pass::Tap(_)), b.doors[p.door()].id.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (true, "d-cowork-out"),
                (false, "d-corridor-f1"),
                (false, "d-main")
            ]
        );
        assert!(b.way("coworking", "nowhere").is_none());
    }
}
