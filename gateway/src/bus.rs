//! What the runtime's parts send the core thread and read back from it: the messages
//! ([`Msg`], [`Control`] with their reply channels), the errors the service stops with, and
//! the live figures ([`Stats`], [`LinkStats`]) that `/metrics` and `/health` read. The link,
//! the feed poller and the HTTP side depend on this module, not on the service that runs them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kombinat_protocol::door::AllowEntry;
use rumqttc::Publish as MqttPublish;

use crate::domain::{DoorId, SiteMode};
use crate::registry::RegistryError;
use crate::store::Actor;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The site file.
    #[error(transparent)]
    Site(#[from] crate::site_file::SiteFileError),
    /// The store or a change.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The embedded broker.
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    /// MQTT settings.
    #[error("mqtt: {0}")]
    Mqtt(String),
    /// The HTTP API's port.
    #[error("http: {0}")]
    Http(String),
    /// The data directory.
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    /// The store's files are half moved by a rewrite that cannot be put right: not opened.
    #[error("{0}")]
    Rewrite(String),
    /// A request named a door without a door node.
    #[error("door {0} has no door node")]
    NoNode(DoorId),
    /// A request named an unknown door.
    #[error("there is no door {0}")]
    UnknownDoor(DoorId),
    /// A request named an alarm that is not standing (it cleared, or never was).
    #[error("no such alarm is standing")]
    NoAlarm,
    /// The core has stopped.
    #[error("the gateway core has stopped")]
    Stopped,
}

/// Where the core sends the answer to a request.
pub type Reply = SyncSender<Result<(), ServiceError>>;

/// Requests to the core from inside the process (the HTTP API, tests).
pub enum Control {
    /// Release a door's strike for `ms`, on behalf of `by`.
    Unlock {
        door: DoorId,
        /// How long.
        ms: u32,
        /// Who asked.
        by: Actor,
        /// The answer.
        reply: SyncSender<Result<(), ServiceError>>,
    },
    /// Lock one door down (staff and security only) or release it from that.
    DoorLockdown {
        door: DoorId,
        locked: bool,
        /// Who asked.
        by: Actor,
        /// The answer.
        reply: SyncSender<Result<(), ServiceError>>,
    },
    /// Acknowledge an alarm standing now (staff take it in hand), with an optional note.
    AckAlarm {
        /// Its kind (`held_open`, `forced`, …) and where, as the live view names it.
        alarm: String,
        door: Option<String>,
        device: Option<String>,
        feed: Option<String>,
        note: Option<String>,
        /// Who.
        by: Actor,
        /// The answer.
        reply: SyncSender<Result<(), ServiceError>>,
    },
    /// Switch the site mode.
    SetMode {
        mode: SiteMode,
        /// Who asked.
        by: Actor,
        /// The answer.
        reply: SyncSender<Result<(), ServiceError>>,
    },
    /// What the feed poller read from feed `feed` (by index in the site file): the text when
    /// it changed, `None` when not, or why it could not be read.
    Feed {
        feed: usize,
        /// What came of reading it (expanded by the poller).
        fetched: crate::poller::FeedRead,
    },
    /// What the alert poller read from alert feed `feed` (by index in the configuration).
    Alert {
        feed: usize,
        read: kombinat_core::alerts::AlertRead,
    },
    /// Bookings from the REST API, as fields by name: checked against the snapshot and
    /// written in one transaction, or refused with a message per item and field.
    ApiBookings {
        /// The source they are written as.
        source: crate::domain::SourceId,
        /// Each booking's fields.
        items: Vec<std::collections::BTreeMap<String, String>>,
        /// Who asked.
        actor: Actor,
        /// The answer.
        reply: SyncSender<ApiBookingsResult>,
    },
    /// Cancel a booking from the REST API; answers whether it was there.
    ApiCancel {
        /// The booking.
        key: crate::domain::BookingKey,
        /// Who asked.
        actor: Actor,
        /// The answer.
        reply: SyncSender<Result<bool, String>>,
    },
    /// Add (`create`) or change a member from the dashboard, with fields by name as the CSV
    /// import reads them (`cards` adds cards; `suspended` with a reason suspends, empty lifts).
    Member {
        fields: BTreeMap<String, String>,
        /// A new member (refused if the id is taken) or a known one (refused if unknown).
        create: bool,
        /// Who asked.
        by: Actor,
        /// The answer.
        reply: SyncSender<Result<(), MemberRefusal>>,
    },
    /// What the clock check found ([`crate::clock_sync`]): while the clock is not
    /// synchronised no allow-lists are published.
    ClockSync(crate::clock_sync::Synced),
    /// Erase a member's personal data (as `kombinat member erase`): answered with the
    /// pseudonym the log now calls them and the entries rewritten.
    Erase {
        member: crate::domain::MemberId,
        /// Who asked.
        by: Actor,
        /// The answer.
        reply: SyncSender<Result<(String, usize), MemberRefusal>>,
    },
    /// Issue a member a PIN (`Some`), or revoke every PIN they hold (`None`).
    Pin {
        member: crate::domain::MemberId,
        issue: Option<crate::domain::Pin>,
        /// Who asked.
        by: Actor,
        /// The answer.
        reply: SyncSender<Result<(), MemberRefusal>>,
    },
    RevokeCard {
        card: crate::domain::CardId,
        /// Who asked.
        by: Actor,
        /// The answer.
        reply: SyncSender<Result<(), MemberRefusal>>,
    },
    /// Finish what is queued, flush and stop.
    Stop,
}

/// Where the core sends the answer to a member change.
pub type MemberReply = SyncSender<Result<(), MemberRefusal>>;

/// Why the core did not change a member or card.
#[derive(Debug)]
pub enum MemberRefusal {
    /// The request is wrong.
    Invalid(String),
    /// No such member or card.
    NotFound(String),
    /// It clashes with what is stored (an id or card taken).
    Conflict(String),
    /// The store failed; nothing was changed.
    Failed,
}

/// What the core answers to [`Control::ApiBookings`]: the counts, or why not.
pub type ApiBookingsResult = Result<crate::registry::ImportCounts, ApiRefusal>;

/// Why the core did not take bookings from the API.
#[derive(Debug)]
pub enum ApiRefusal {
    /// The request is wrong: (field, message) pairs; for a batch the field is `<index>.<field>`.
    Invalid(Vec<(String, String)>),
    /// The gateway could not write them (the store failed); nothing was written.
    Failed,
}

/// What reaches the core.
pub enum Msg {
    /// A publish from the broker, with when the link took it.
    Publish(MqttPublish, Instant),
    /// A request.
    Control(Control),
    /// Allow-lists computed off the core.
    AllowLists(Vec<DoorList>),
    /// The broker has no session for the gateway (restarted, or expired): retained state is
    /// published again.
    Resync,
}

/// One door's allow-list, computed off the core, to sign and publish.
pub struct DoorList {
    pub(crate) door: DoorId,
    pub(crate) from: DateTime<Utc>,
    pub(crate) until: DateTime<Utc>,
    pub(crate) cards: Vec<AllowEntry>,
}

/// A latency histogram with fixed buckets (upper bounds in seconds), as Prometheus reads one.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; LATENCY_BOUNDS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// The decision latency buckets' upper bounds, in seconds.
pub const LATENCY_BOUNDS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

impl Histogram {
    /// Counts one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = LATENCY_BOUNDS.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket bound, the total count and the sum in seconds.
    pub fn read(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut acc = 0;
        let buckets = LATENCY_BOUNDS
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                acc += c.load(Ordering::Relaxed);
                (*b, acc)
            })
            .collect();
        (
            buckets,
            self.count.load(Ordering::Relaxed),
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }
}

/// Live figures.
#[derive(Debug, Default)]
pub struct Stats {
    /// What the embedded broker's guard refused (zero with an outside broker).
    pub guard: Arc<crate::broker::guard::GuardStats>,
    /// Decisions made (taps answered).
    pub decisions: AtomicU64,
    /// Decisions by reason code.
    pub by_reason: Mutex<BTreeMap<&'static str, u64>>,
    /// From a tap's arrival at the gateway to its answer handed to the broker.
    pub decision_latency: Histogram,
    /// Registered devices.
    pub devices: AtomicU64,
    /// Registered devices heard from lately.
    pub devices_online: AtomicU64,
    /// Feeds failing now.
    pub feeds_failing: AtomicU64,
    /// The store's size on disk, bytes (updated every ten seconds).
    pub store_bytes: AtomicU64,
    /// Bytes free on the data directory's disk (updated every ten seconds; 0 until known).
    pub disk_free: AtomicU64,
    /// Unix second of the core's last housekeeping tick (once a second while it is alive).
    pub core_alive_at: AtomicU64,
    /// Of which allowed.
    pub allowed: AtomicU64,
    /// Sensor readings taken (native and from bound devices).
    pub readings: AtomicU64,
    /// Messages from bound off-the-shelf devices taken.
    pub device_messages: AtomicU64,
    /// Bookings judged no-shows.
    pub no_shows: AtomicU64,
    /// History buckets written.
    pub history_buckets: AtomicU64,
    /// Commands sent to esp-rfid readers' user lists (adduser, deletuid).
    pub user_list_commands: AtomicU64,
    /// Calendar feeds read and applied (changed or not).
    pub feeds_read: AtomicU64,
    /// Calendar feed reads that failed (download or parse).
    pub feed_failures: AtomicU64,
    /// Offline decisions ingested.
    pub offline_ingested: AtomicU64,
    /// Allow-lists published.
    pub allow_lists: AtomicU64,
    /// Alarms raised (door and device).
    pub alarms_raised: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Time spent taking batches in (parse, verify, decide), nanoseconds in all.
    pub take_ns: AtomicU64,
    /// Time spent writing batches durably, nanoseconds in all.
    pub write_ns: AtomicU64,
    /// Time spent handing replies and acks to the MQTT client, nanoseconds in all.
    pub send_ns: AtomicU64,
    /// Refused messages by reason label.
    pub malformed: Mutex<BTreeMap<&'static str, u64>>,
    /// Messages of the gateway's own not sent: over the link's packet limit.
    pub oversized: AtomicU64,
    /// The MQTT link.
    pub link: Arc<LinkStats>,
}

impl Stats {
    /// Refusals with this label so far.
    pub fn malformed(&self, label: &str) -> u64 {
        self.malformed
            .lock()
            .map(|m| m.get(label).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// Free bytes on the data directory's disk under which the disk-low alarm is raised and
/// `/health` says degraded: a day of a busy building writes about 100 MB.
pub const LOW_DISK_BYTES: u64 = 256 * 1024 * 1024;

/// Live figures of the link.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Connected right now.
    pub connected: AtomicBool,
    /// Subscribed on the current connection (SUBACK seen, or the session was kept).
    pub subscribed: AtomicBool,
    /// CONNACKs received (first connection included).
    pub connects: AtomicU64,
    /// Connections dropped by the watchdog.
    pub watchdog_resets: AtomicU64,
    /// Publishes received.
    pub received: AtomicU64,
    /// Publishes dropped because the core's queue was full.
    pub dropped: AtomicU64,
    /// QoS 0 publishes (readings) dropped because the core's queue was half full.
    pub shed: AtomicU64,
    /// Publishes handed to the core and not yet taken by it.
    pub queued: AtomicUsize,
    /// The median time from the gateway's QoS 1 publish to the broker's PUBACK over the last
    /// [`RoundTrips::KEPT`], microseconds (0: none measured yet).
    pub round_trip_us: AtomicU64,
}

/// The broker's last round trips (publish to PUBACK), for the median in
/// [`LinkStats::round_trip_us`].
#[derive(Debug, Default)]
pub struct RoundTrips {
    sent: std::collections::HashMap<u16, std::time::Instant>,
    last: std::collections::VecDeque<u64>,
}

impl RoundTrips {
    pub const KEPT: usize = 32;

    /// A QoS 1 publish went out with this packet id.
    pub fn sent(&mut self, pkid: u16, at: std::time::Instant) {
        if self.sent.len() >= 1024 {
            // PUBACKs lost with a connection: start again.
            self.sent.clear();
        }
        self.sent.insert(pkid, at);
    }

    /// Its PUBACK came: the median of the last round trips, microseconds.
    pub fn acked(&mut self, pkid: u16, at: std::time::Instant) -> Option<u64> {
        let sent = self.sent.remove(&pkid)?;
        if self.last.len() >= Self::KEPT {
            self.last.pop_front();
        }
        self.last
            .push_back(u64::try_from(at.duration_since(sent).as_micros()).unwrap_or(u64::MAX));
        let mut v: Vec<u64> = self.last.iter().copied().collect();
        v.sort_unstable();
        Some(v[v.len() / 2])
    }
}

/// A broker that takes this long (median) to acknowledge is most likely delaying small packets
/// (Nagle's algorithm meeting delayed ACKs: about 40 ms on Linux); one on the same machine or
/// the LAN answers in about a millisecond.
pub const SLOW_ROUND_TRIP_US: u64 = 30_000;

/// What `/health` says about a broker's round trip, if anything.
pub fn round_trip_warning(median_us: u64) -> Option<String> {
    (median_us >= SLOW_ROUND_TRIP_US).then(|| {
        format!(
            "the broker takes {:.0} ms to acknowledge a message (about 1 ms is usual on a LAN): it is probably not setting TCP_NODELAY; for mosquitto add `set_tcp_nodelay true` (kombinat devices mosquitto-config writes it)",
            median_us as f64 / 1000.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_broker_s_round_trip_is_the_median_of_the_last_acks_and_a_slow_one_is_named() {
        let mut r = RoundTrips::default();
        let t0 = Instant::now();
        // An ack for nothing sent (a session's leftover) measures nothing.
        assert_eq!(r.acked(9, t0), None);
        let mut median = 0;
        for (i, ms) in [1u64, 44, 1, 1, 44].iter().enumerate() {
            let pkid = i as u16 + 1;
            r.sent(pkid, t0);
            median = r.acked(pkid, t0 + Duration::from_millis(*ms)).unwrap();
        }
        assert_eq!(median, 1_000, "one slow ack in a few is not the broker");
        for pkid in 10..40u16 {
            r.sent(pkid, t0);
            median = r.acked(pkid, t0 + Duration::from_millis(44)).unwrap();
        }
        assert_eq!(median, 44_000);
        assert!(round_trip_warning(median)
            .is_some_and(|w| w.contains("44 ms") && w.contains("set_tcp_nodelay true")));
        assert_eq!(round_trip_warning(1_000), None);
        assert_eq!(round_trip_warning(0), None);
    }
}
