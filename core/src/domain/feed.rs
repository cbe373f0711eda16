//! Calendar feeds: a room's iCalendar calendar (Google, Outlook/Exchange, Nextcloud), named in
//! the site file, polled by the gateway, its occurrences becoming the room's meetings.

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

/// One feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    /// Its name, which is also the source of the bookings it makes.
    pub id: SourceId,
    /// The room it books.
    pub room: RoomId,
    /// Where it is read from.
    pub from: FeedFrom,
    /// How often it is read, seconds.
    pub interval_s: u32,
}
