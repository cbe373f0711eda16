//! Calendar feeds, named in the site file and polled by the gateway: a room's iCalendar calendar
//! (Google, Outlook/Exchange, Nextcloud), its occurrences becoming the room's meetings; or a
//! power schedule: the grid's outage schedule for the building's group (Yasno/DTEK-style, as
//! iCalendar) or the generator's run plan, whose events are windows.

use std::path::PathBuf;

use super::{RoomId, SourceId};

/// Where a feed is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedFrom {
    /// An `http://` or `https://` address, fetched with conditional GET.
    Url(String),
    /// A file (a calendar another tool writes), read when it changes.
    Path(PathBuf),
}

/// What a feed's events are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedKind {
    /// A room's meetings.
    #[default]
    Bookings,
    /// Windows when the grid is cut (an outage schedule).
    Outages,
    /// Windows when the generator runs.
    Generator,
}

impl FeedKind {
    /// As written in the site file.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::Bookings => "bookings",
            FeedKind::Outages => "outages",
            FeedKind::Generator => "generator",
        }
    }
}

/// One feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    /// Its name, which is also the source of the bookings it makes.
    pub id: SourceId,
    /// What its events are.
    pub kind: FeedKind,
    /// The room it books (a bookings feed; `None` for a power schedule).
    pub room: Option<RoomId>,
    /// Where it is read from.
    pub from: FeedFrom,
    /// How often it is read, seconds.
    pub interval_s: u32,
}
