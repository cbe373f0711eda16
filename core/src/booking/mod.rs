//! Bookings from outside: a room's iCalendar feed or file ([`ics`], reconciled by [`feed`]),
//! CSV files and the REST API's rows ([`import`]). Parsing and planning only: the gateway
//! fetches, writes and audits.

pub mod feed;
pub mod ics;
pub mod import;
