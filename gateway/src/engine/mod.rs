//! The engine: what the gateway does with what reaches it, without I/O. It owns the gateway's
//! state (the snapshot and the store kept in step, the desk, the estimator, the doors' intended
//! states, the alert feeds, the timers) and is driven the way quinn-proto's connection is:
//!
//! - in: [`Engine::handle_message`] (a publish from the broker), [`Engine::handle_request`] (the
//!   HTTP API, the pollers), [`Engine::handle_allow_lists`], [`Engine::handle_cli`],
//!   [`Engine::handle_disk`], [`Engine::handle_timeout`]; each with the time ([`Now`]) passed
//!   in: the engine reads no clock;
//! - [`Engine::commit`]: what the batch came to is written durably, with one flush, through the
//!   store port ([`Store`]: sled in the gateway, memory in tests);
//! - out: [`Engine::poll_effect`] (publish this, answer that, build these allow-lists, read the
//!   spool or the disk, archive bookings) and [`Engine::poll_timeout`] (when to call
//!   `handle_timeout`).
//!
//! The runtime (`service.rs`) takes messages in batches, hands each in, commits, then carries
//! out the effects and only then acknowledges the messages: a decision a door received is
//! always in the log, and a message the engine did not finish is redelivered by the broker.
//! Nothing here touches a socket, a thread, a channel's receiving end or a file; the engine
//! is unit-tested on a virtual clock (`tests.rs`).
//!
//! The engine lives in the gateway crate, not in `kombinat-core`, because of three things it
//! still holds: the live view (`live.rs`, which the HTTP side streams through a tokio
//! broadcast), the shared figures (`bus::Stats`) and the requests' answer channels. Moving it
//! means turning those into effects too; see ARCHITECTURE.md.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kombinat_core::timers::Timers;
use kombinat_protocol::door::{Action, DoorTopic};
use kombinat_protocol::room::Occupancy;
use kombinat_protocol::sensor::Measurement;
use kombinat_protocol::Topic;

use crate::access::allow_list::{allow_list, window};
use crate::access::{decide, Decision, Snapshot, Tap};
use crate::bus::{
    ApiBookingsResult, ApiRefusal, Control, DoorList, MemberRefusal, MemberReply, Reply,
    ServiceError, Stats, LOW_DISK_BYTES,
};
use crate::config::Config;
use crate::desk::{Desk, Publish, Rejected};
use crate::dialects::{Adapters, Event};
use crate::domain::{DoorId, RoomId, Site, SiteMode};
use crate::occupancy::detector::PresenceDetector;
use crate::occupancy::estimator::{Carried, Estimate, Estimator};
use crate::occupancy::history::{cut, Recorder};
use crate::occupancy::noshow::Judge;
use crate::registry::{Registry, RegistryError};
use crate::store::{Actor, AuditEntry, AuditEvent, HistoryBucket, OutboxEvent, Store};

#[cfg(test)]
mod tests;

/// The time of what is handled: `at` for the engine's timers (monotonic), `wall` for what is
/// decided and logged (the site's clock, which `kombinat run --now` and the demo move).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub wall: DateTime<Utc>,
}

/// What the engine's timers are for. The tick drives the rest: each other timer is looked at
/// on the tick, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Once a second: health, door states, occupancy, history, no-shows, and the timers below.
    Tick,
    /// The devices' counters and the "as of" mark are stored ([`MARKS_EVERY`]).
    Marks,
    /// The head counts are stored when changed (`occupancy.counts_every_s`).
    Counts,
    /// The store's size and the disk's free space are read (every 10 s).
    Disk,
    /// Past bookings leave memory and are archived (hourly).
    Prune,
    /// The history is downsampled and the log past its retention removed (daily).
    Compaction,
    /// A round of allow-lists is built (`allowlist_refresh_min`, and at the next tick after
    /// rights or the mode changed).
    AllowLists,
}

/// How often the tick fires.
pub const TICK: Duration = Duration::from_secs(1);

/// What the engine asks of the runtime.
pub enum Effect {
    /// Publish this (QoS 1). Only ever queued after the batch it came from is durable.
    Publish(Publish),
    /// Send this answer to whoever asked.
    Answer(Answer),
    /// Build these allow-lists off the engine (a list can take a while for a busy door) and
    /// hand them back with [`Engine::handle_allow_lists`].
    BuildAllowLists(Box<ListJob>),
    /// Read the command line's spool and hand each request in ([`Engine::handle_cli`]).
    ReadSpool,
    /// Read the data directory's free space and hand it in ([`Engine::handle_disk`]).
    CheckDisk,
    /// Archive, off the engine, the bookings that ended before `before` (Unix seconds).
    ArchiveBookings { before: i64 },
    /// A member was erased: leave the marker that has the store written anew at the next start
    /// (sled keeps the old versions in its files until then; [`crate::store::rewrite`]).
    RewriteStoreAtStart,
}

/// An answer to a request, with where it goes.
pub enum Answer {
    Done(Reply, Result<(), ServiceError>),
    Member(MemberReply, Result<(), MemberRefusal>),
    Bookings(SyncSender<ApiBookingsResult>, ApiBookingsResult),
    Cancel(SyncSender<Result<bool, String>>, Result<bool, String>),
    Erase(
        SyncSender<Result<(String, usize), MemberRefusal>>,
        Result<(String, usize), MemberRefusal>,
    ),
}

impl Answer {
    /// Sends it; one who stopped waiting is no error.
    pub fn send(self) {
        match self {
            Answer::Done(tx, r) => {
                let _ = tx.send(r);
            }
            Answer::Member(tx, r) => {
                let _ = tx.send(r);
            }
            Answer::Bookings(tx, r) => {
                let _ = tx.send(r);
            }
            Answer::Cancel(tx, r) => {
                let _ = tx.send(r);
            }
            Answer::Erase(tx, r) => {
                let _ = tx.send(r);
            }
        }
    }
}

/// A round of allow-lists to build: the snapshot they are built from and the doors.
pub struct ListJob {
    snapshot: Snapshot,
    doors: Vec<(DoorId, usize)>,
    /// esp-rfid readers' doors: their lists are kept whole (a reader holds every card it is
    /// sent, and a card left out would be deleted from it); a door node's is fitted.
    readers: BTreeSet<DoorId>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
}

impl ListJob {
    /// Builds the lists (pure; the runtime runs it on a thread of its own).
    pub fn build(self) -> Vec<DoorList> {
        self.doors
            .into_iter()
            .map(|(door, i)| {
                let mut cards = allow_list(&self.snapshot, i, self.from, self.until);
                if !self.readers.contains(&door) {
                    crate::desk::fit_for_node(door, &mut cards);
                }
                DoorList {
                    door,
                    from: self.from,
                    until: self.until,
                    cards,
                }
            })
            .collect()
    }
}

fn member_refusal(e: RegistryError) -> MemberRefusal {
    match e {
        RegistryError::UnknownMember(m) => MemberRefusal::NotFound(format!("no member {m}")),
        RegistryError::UnknownCredential(c) => MemberRefusal::NotFound(format!("no {c}")),
        RegistryError::MemberExists(_)
        | RegistryError::CredentialTaken(..)
        | RegistryError::AlreadyRevoked(_)
        | RegistryError::EmailTaken(..) => MemberRefusal::Conflict(e.to_string()),
        RegistryError::UnknownPlan(_) | RegistryError::Validity => {
            MemberRefusal::Invalid(e.to_string())
        }
        other => {
            tracing::error!(error = %other, "a member change failed");
            MemberRefusal::Failed
        }
    }
}

/// How often the devices' counters and the "as of" mark are stored. What a crash loses of them
/// is recovered or harmless: tap counters come back from the audit log (entries after the "as of"
/// mark), offline logs, alarms and mode changes store their device's counters before they are
/// acted on, the gateway's own counters jump ahead at start (see [`Desk::marks_due`] for the
/// bound), and a heartbeat replayed after a crash changes nothing. Each store costs the SD card
/// a flush of a few pages: every 15 s it was the largest part of a day's writes.
const MARKS_EVERY: Duration = Duration::from_secs(600);

/// How often the store's size and the disk's free space are read.
const DISK_EVERY: Duration = Duration::from_secs(10);

/// How often past bookings leave memory and are archived.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often the history is downsampled and the log's retention applied.
const COMPACTION_EVERY: Duration = Duration::from_secs(24 * 3600);

/// How long past its last grant a door's reported strike may differ from what the gateway
/// holds before the lock-differs alarm (reports cross commands on the way).
const LOCK_GRACE_MS: i64 = 10_000;

/// How often a door whose lock differs is sent its state again.
const RESEND_DIFFERING: chrono::TimeDelta = chrono::TimeDelta::seconds(15);

/// How often released doors are told again to stay released (harmless to repeat; a door told
/// back to normal is not told so again while it reports locked, since that would cut short
/// the unlock of someone walking through).
const RELEASED_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Where the rooms' head counts are stored (with the marks, when changed), so that a restart,
/// even after a crash, carries on counting from where it was rather than from an empty building.
const COUNTS_KEY: &str = "occupancy/counts";

/// While allow-lists wait to go out, the core wakes at least this often to send some.
const LISTS_EVERY: Duration = Duration::from_millis(20);

/// After each batch, allow-lists are signed and published until this many bytes have gone out
/// (or none is left waiting): two lists of full size.
const LIST_BYTES_PER_BATCH: usize = 512 * 1024;

/// Head counts that changed are stored with a log write at most this often.
const COUNTS_WITH_LOG_S: i64 = 5;

/// A room's last activity alone is stored again at most this often.
const COUNTS_ACTIVITY_EVERY_S: i64 = 600;

/// Head counts stored longer ago than this are not taken up at start (the building has moved on;
/// the sensors will tell).
const COUNTS_KEPT_SECS: i64 = 3600;

/// The stored head counts: when, and per room id its count and last activity.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SavedCounts {
    at: i64,
    rooms: Vec<(String, Carried)>,
}

/// The estimator, with the head counts stored before the last stop (or crash) taken up when
/// they are recent; a count that cannot be read is logged and ignored (the sensors will tell).
fn restored_estimator(
    site: &Site,
    store: &dyn Store,
    rooms: usize,
    now: DateTime<Utc>,
) -> Estimator {
    let mut e = Estimator::new(rooms, PresenceDetector::default(), STILL_SECS);
    e.set_transit(|i| {
        site.rooms.get(i).is_some_and(|r| {
            matches!(
                r.kind,
                crate::domain::RoomKind::Lobby | crate::domain::RoomKind::Corridor
            )
        })
    });
    e.set_capacity(|i| site.rooms.get(i).and_then(|r| r.capacity));
    let t = now.timestamp();
    let saved = match store.state(COUNTS_KEY) {
        Ok(Some(bytes)) => match serde_json::from_slice::<SavedCounts>(&bytes) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(error = %err, "stored head counts unreadable; counting from zero");
                return e;
            }
        },
        Ok(None) => return e,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the stored head counts; counting from zero");
            return e;
        }
    };
    if t - saved.at > COUNTS_KEPT_SECS {
        tracing::info!(
            age_s = t - saved.at,
            "stored head counts too old; counting from zero"
        );
        return e;
    }
    let mut counts = vec![Carried::default(); rooms];
    let mut taken = 0;
    for (id, carried) in saved.rooms {
        if let Some(i) = RoomId::parse(&id).ok().and_then(|r| site.room_index(r)) {
            counts[i] = carried;
            taken += 1;
        }
    }
    e.restore(&counts, t);
    tracing::info!(
        rooms = taken,
        age_s = t - saved.at,
        "head counts taken up from before the restart"
    );
    e
}

/// Tells the estimator how many people the meetings and events in progress in each room name
/// as the gateway starts: where counters start with people inside, a second estimate of how
/// many beside the air's ([`Estimator::set_booked_at_start`]). Stays are left out: a hostel
/// guest is as often out as in.
fn booked_at_start(e: &mut Estimator, snapshot: &Snapshot, rooms: usize, now: DateTime<Utc>) {
    use crate::domain::{BookingKind, BookingStatus, Window};
    for room in 0..rooms {
        let mut people = BTreeSet::new();
        for (b, _) in snapshot.bookings_in_room(room, now, now + chrono::Duration::seconds(1)) {
            let on = matches!(b.window, Window::Timed { start, end } if start <= now && now < end);
            if on
                && b.status == BookingStatus::Confirmed
                && matches!(b.kind, BookingKind::Meeting | BookingKind::Event)
            {
                people.extend(b.people());
            }
        }
        e.set_booked_at_start(
            room,
            u32::try_from(people.len()).unwrap_or(u32::MAX),
            now.timestamp(),
        );
    }
}

/// A closed room still this long drifts back to empty.
const STILL_SECS: i64 = 2 * 3600;

/// When rooms count as closed, for the drift to zero: the Centre's night.
const CLOSED: &str = "daily 22:00-07:00";

/// A counter or motion sensor silent for longer than this no longer makes its room one where
/// no-shows can be told.
const WATCHED_S: i64 = 24 * 3600;

/// How an alert feed is named as the actor of what it does (`alert-feed:<id>`).
const ALERT_ACTOR: &str = "alert-feed:";

/// The state key of the alert feeds' state (what each last read, whether an alert is on, whether
/// they switched the site to shelter), so a restart neither ends an alert nor starts it again.
const ALERTS_STATE: &str = "alerts/switched";

/// The state key of the feeds whose alarm is raised.
const FEEDS_FAILING: &str = "feeds/failing";
/// The power schedules as last read, and the bookings already reported as falling in the dark
/// (JSON: [`PowerSchedules`]); the HTTP side reads it too.
pub const POWER_SCHEDULES: &str = "power/schedules";
/// Each node's power as last reported (JSON), kept over a restart.
const POWER_NODES: &str = "power/nodes";

/// What is kept of the power schedules over a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PowerSchedules {
    /// The outage and generator windows.
    #[serde(default)]
    pub plan: kombinat_core::power::PowerPlan,
    /// Bookings reported as falling in an outage, by key and the dark window's start (dropped
    /// a day after that start).
    #[serde(default)]
    pub told: BTreeSet<(String, i64)>,
}

impl PowerSchedules {
    /// As last stored (nothing read yet, or unreadable: none).
    pub fn read(store: &dyn Store) -> Result<Self, crate::store::StoreError> {
        Ok(store
            .state(POWER_SCHEDULES)?
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default())
    }
}

/// How often bookings are looked at again for the dark hours (bookings change between reads
/// of an unchanged schedule).
const UNPOWERED_EVERY_S: i64 = 300;

/// The state key of what the esp-rfid readers' user lists hold.
const SENT_LISTS: &str = "esp-rfid/sent";

/// Rooms with a reader at a door into them (a native door node or a bound reader): a person
/// coming in would be seen there. Rooms with a counter or motion sensor are found as their
/// readings arrive ([`Estimator::watched`]).
fn rooms_with_readers(site: &Site, desk: &Desk, adapters: &Adapters) -> Vec<bool> {
    let mut seen = vec![false; site.rooms.len()];
    let doors = desk
        .served_doors()
        .map(|(d, _)| d)
        .chain(adapters.health().flat_map(|(b, _)| {
            b.doors
                .iter()
                .copied()
                .filter(|_| b.kind != crate::domain::BindingKind::Zigbee2mqtt)
        }));
    for d in doors {
        if let Some(i) = site.door(d).and_then(|x| site.room_index(x.into)) {
            seen[i] = true;
        }
    }
    seen
}

pub struct Engine {
    registry: Registry,
    desk: Desk,
    site: Arc<Site>,
    config: Config,
    stats: Arc<Stats>,
    allow_lists_pending: bool,
    mode_since: DateTime<Utc>,
    /// Doors the gateway has commanded to stay released (mode, public hours).
    released: BTreeSet<DoorId>,
    /// Every served door's state is sent at the next check (true at start: a node may hold a
    /// release from before the gateway's restart).
    resend_all: bool,
    /// Doors whose state is sent again at the next check (their node came back online).
    resend_doors: BTreeSet<DoorId>,
    /// When each door's state was last sent.
    door_sent: BTreeMap<DoorId, DateTime<Utc>>,
    /// Remote unlocks: until when a door may stand unlocked by one.
    unlock_until: BTreeMap<DoorId, DateTime<Utc>>,
    /// Doors whose reported strike differs from what the gateway holds (the alarm is up).
    lock_differs: BTreeSet<DoorId>,
    /// Staff's acknowledgements of the alarms standing, by the alarm's kind and where; one
    /// goes when its alarm clears.
    alarm_acks: BTreeMap<AlarmKey, crate::live::AlarmAck>,
    /// When each door's intended state last changed (or was first worked out).
    intent_at: BTreeMap<DoorId, DateTime<Utc>>,
    /// When released doors were last told again ([`RELEASED_EVERY`]).
    released_told_at: Option<DateTime<Utc>>,
    estimator: Estimator,
    /// The air-raid alert feeds and the shelter mode they switched.
    alert_feeds: kombinat_core::alerts::AlertFeeds,
    /// Per alert feed: why it cannot be read, while it cannot.
    alerts_failing: Vec<Option<String>>,
    /// The alert feeds' state as last stored.
    alerts_saved: Option<Vec<u8>>,
    /// The nodes' mains and batteries, and which shed load.
    power: kombinat_core::power::PowerBook,
    /// The grid's outage schedule and the generator's plan, from the site's power feeds.
    schedules: PowerSchedules,
    /// The schedules as last stored.
    schedules_saved: Option<Vec<u8>>,
    /// When bookings were last looked at for the dark hours (Unix seconds).
    unpowered_at: i64,
    /// The head counts last stored (under [`COUNTS_KEY`]), to store them only when changed.
    saved_counts: Vec<Carried>,
    /// When they were stored (Unix seconds).
    saved_counts_at: i64,
    /// Allow-lists waiting to be published, a few per batch.
    lists_out: std::collections::VecDeque<DoorList>,
    closed: crate::domain::WeeklySchedule,
    /// The occupancy last published per room.
    published: Vec<Option<Estimate>>,
    /// Per room: dark now by the outage schedule, as last published.
    dark_now: Vec<bool>,
    /// History buckets from the estimates.
    recorder: Recorder,
    /// No-shows.
    judge: Judge,
    /// Per room: whether a reader at a door into it would see people come in.
    observable: Vec<bool>,
    /// Off-the-shelf devices.
    adapters: Adapters,
    /// Send the esp-rfid user lists in full with the next allow-lists.
    full_user_lists: bool,
    /// Per feed: whether its alarm is raised.
    feeds_failing: Vec<bool>,
    /// The disk-low alarm is up.
    disk_low: bool,
    /// The gateway's clock is not synchronised (why): no allow-lists are published.
    clock_unsynced: Option<String>,
    /// The clock check has answered once (or there is none): until then no allow-lists go
    /// out either (at a Pi's boot the answer may take a few seconds).
    clock_checked: bool,
    /// Per room: the occupied flag last seen (for occupancy events to the booking system).
    occupied: Vec<Option<bool>>,
    /// What the dashboard shows live.
    live: Arc<crate::live::Live>,
    /// The time of what is being handled, as the runtime passed it in.
    now: Now,
    /// The engine's timers, by what they are for.
    timers: Timers<Timer>,
    /// What the messages, requests and timers handled since the last commit came to.
    batch: Batch,
    /// What the runtime is to do, in order (see [`Effect`]).
    out: VecDeque<Effect>,
}

/// An alarm's kind and where (door, device, feed), owned.
type AlarmKey = (String, Option<String>, Option<String>, Option<String>);

fn alarm_key(a: &crate::live::AlarmNow) -> AlarmKey {
    (
        a.alarm.clone(),
        a.door.clone(),
        a.device.clone(),
        a.feed.clone(),
    )
}

/// What one batch has to write and then send.
#[derive(Default)]
struct Batch {
    /// The decisions, each with its tap's counter (none for a bound reader's).
    decisions: Vec<(Decision, Option<u64>)>,
    audit: Vec<AuditEntry>,
    /// Signed messages other than taps were accepted: their counters are not in the log, so
    /// the counters are written with this batch.
    marks: bool,
    /// Answers to requests, sent once the batch is durable.
    answers: Vec<(Reply, Result<(), ServiceError>)>,
    /// Answers to member changes, sent once the batch is durable.
    answers_member: Vec<(MemberReply, Result<(), MemberRefusal>)>,
    /// Other answers (bookings from the API), sent once the batch is durable.
    answers_other: Vec<Answer>,
    replies: Vec<Publish>,
    /// Door states, device health or alarms may have changed: the live view is refreshed.
    refresh: bool,
}

impl Engine {
    /// The engine over `store`: the snapshot loaded, the devices' counters recovered from the
    /// log and moved past `tx_floor` (the gateway's own counters are at least the time in
    /// microseconds, see `start`), and what was stored before the last stop taken up (head
    /// counts, the alert feeds' state, which feeds were failing, what the esp-rfid readers
    /// hold). Every timer starts to fire at the first tick, a second after `now`.
    pub fn open(
        config: Config,
        site: Arc<Site>,
        store: Arc<dyn Store>,
        stats: Arc<Stats>,
        live: Arc<crate::live::Live>,
        now: Now,
        tx_floor: u64,
    ) -> Result<Engine, ServiceError> {
        let wall = now.wall;
        let registry = Registry::open(site.clone(), store.clone(), wall)?;
        let marks = store.marks()?;
        // Audit entries since the counters were last stored (with a margin) tell the tap
        // counters used after that; every other signed message stores the counters before it
        // is acted on.
        let since = marks
            .iter()
            .filter(|m| m.device.is_none())
            .filter_map(|m| m.at)
            .max()
            .map(|t| crate::store::AuditId {
                micros: u64::try_from((t - chrono::Duration::seconds(5)).timestamp_micros())
                    .unwrap_or(0),
                seq: 0,
            });
        let mut desk = Desk::new(
            &config.mqtt.prefix,
            config.heartbeat_s,
            store.devices()?,
            marks,
        );
        desk.set_time_rate(config.clock.rate());
        desk.recover(&store.audit_after(since, usize::MAX)?);
        desk.raise_tx_floor(tx_floor);
        // The gateway's counters jumped ahead (see `Desk::new`): stored at once, so a crash in
        // the next second cannot make it reuse them.
        let mut jumped = desk.all_marks(wall);
        jumped.push(crate::domain::DeviceMark {
            at: Some(wall),
            ..Default::default()
        });
        store.put_marks(&jumped)?;
        store.flush()?;
        let mut adapters = Adapters::new(&site.bindings, |d| {
            site.door(d).map_or(5000, |x| x.unlock_ms)
        });
        if let Some(bytes) = store.state(SENT_LISTS)? {
            match serde_json::from_slice::<Vec<crate::dialects::UserList>>(&bytes) {
                Ok(lists) => adapters.restore_sent(lists),
                // Then every card is sent again in full, which is safe.
                Err(e) => {
                    tracing::warn!(error = %e, "the stored esp-rfid user lists do not decode")
                }
            }
        }
        let observable = rooms_with_readers(&site, &desk, &adapters);
        let rooms = site.rooms.len();
        let recorder = Recorder::new(site.rooms.iter().map(|r| r.id).collect());
        // Which feeds' alarms are raised survives a restart, so a raised alarm is cleared (and
        // not raised twice) afterwards.
        let failing_before: Vec<String> = store
            .state(FEEDS_FAILING)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let feeds_failing: Vec<bool> = site
            .feeds
            .iter()
            .map(|f| failing_before.contains(&f.id.to_string()))
            .collect();
        let judge = Judge::new(config.occupancy.no_show_after_min, wall.timestamp());
        let mut estimator = restored_estimator(&site, store.as_ref(), rooms, wall);
        booked_at_start(&mut estimator, registry.snapshot(), rooms, wall);
        // What the nodes said of their power before a restart: a node still on battery is
        // not news again, one whose mains came back meanwhile is.
        let power = match store.state(POWER_NODES).ok().flatten() {
            Some(v) => kombinat_core::power::PowerBook::restore(config.power, &v),
            None => kombinat_core::power::PowerBook::new(config.power),
        };
        let power_feeds: Vec<crate::domain::Feed> = site.feeds.clone();
        // The feeds, then the nodes' dry-contact inputs: one rule for all.
        let alert_count = config.alert_feeds.len();
        let sources: Vec<(String, bool)> = config
            .alert_feeds
            .iter()
            .map(|f| (f.id.clone(), false))
            .chain(config.alert_inputs.iter().map(|d| (d.to_string(), true)))
            .collect();
        let alert_feeds = match store.state(ALERTS_STATE).ok().flatten() {
            Some(v) => kombinat_core::alerts::AlertFeeds::restore(&sources, &v),
            None => kombinat_core::alerts::AlertFeeds::new(&sources, false),
        };
        let alerts_failing = (0..alert_count)
            .map(|i| {
                alert_feeds
                    .failing(i)
                    .then(|| "it could not be read before the gateway restarted".to_string())
            })
            .collect();
        let mut timers = Timers::default();
        let first = now.at + TICK;
        for t in [
            Timer::Tick,
            Timer::Marks,
            Timer::Counts,
            Timer::Disk,
            Timer::Prune,
            Timer::Compaction,
            Timer::AllowLists,
        ] {
            timers.set(t, first);
        }
        let clock_checked = config.clock_check == crate::clock_sync::ClockCheck::None;
        Ok(Engine {
            live,
            mode_since: wall,
            registry,
            desk,
            closed: crate::domain::WeeklySchedule::parse([CLOSED]).unwrap_or_default(),
            site,
            config,
            stats,
            allow_lists_pending: false,
            released: BTreeSet::new(),
            resend_all: true,
            resend_doors: BTreeSet::new(),
            door_sent: BTreeMap::new(),
            unlock_until: BTreeMap::new(),
            lock_differs: BTreeSet::new(),
            alarm_acks: BTreeMap::new(),
            intent_at: BTreeMap::new(),
            released_told_at: None,
            // What was taken up counts as stored: a gateway that restarts again and again does
            // not refresh the stored time of counts it never saw change.
            saved_counts: estimator.carried(wall.timestamp()),
            saved_counts_at: wall.timestamp(),
            lists_out: VecDeque::new(),
            estimator,
            alerts_failing,
            alert_feeds,
            alerts_saved: None,
            power,
            schedules: {
                let mut s = PowerSchedules::read(store.as_ref()).unwrap_or_default();
                // Feeds gone from the site file (or of another kind now) darken nothing.
                let current: Vec<(String, bool)> = power_feeds
                    .iter()
                    .filter(|f| f.kind != crate::domain::FeedKind::Bookings)
                    .map(|f| {
                        (
                            f.id.to_string(),
                            f.kind == crate::domain::FeedKind::Generator,
                        )
                    })
                    .collect();
                s.plan.keep_only(&current);
                s
            },
            schedules_saved: None,
            unpowered_at: 0,
            recorder,
            judge,
            observable,
            adapters,
            full_user_lists: true,
            feeds_failing,
            disk_low: false,
            clock_unsynced: None,
            clock_checked,
            occupied: vec![None; rooms],
            published: vec![None; rooms],
            dark_now: vec![false; rooms],
            now,
            timers,
            batch: Batch::default(),
            out: VecDeque::new(),
        })
    }

    /// What the gateway keeps retained on the broker: its own status, the site mode, the Home
    /// Assistant configs, every room's occupancy; allow-lists follow from their worker.
    fn announce(&mut self, b: &mut Batch) {
        b.replies.push(Publish {
            topic: crate::ha::gateway_status_topic(&self.config.mqtt.prefix),
            payload: br#"{"v":1,"state":"online"}"#.to_vec(),
            retain: true,
        });
        let mode = self.registry.snapshot().mode();
        self.live
            .set_mode(mode.as_str(), self.mode_since.timestamp());
        b.replies.push(self.desk.mode_state(mode, self.mode_since));
        b.replies
            .extend(crate::ha::discovery(&self.site, &self.config.mqtt.prefix));
        b.replies.extend(self.adapters.configure_relays());
        self.published.iter_mut().for_each(|p| *p = None);
        self.lists_soon();
    }

    /// Starts: what the gateway keeps retained goes out, and the head counts taken up are
    /// out at once, on the broker and in the live view (a dashboard or a client asking right
    /// after the start does not see an empty building). Commit after it.
    pub fn handle_start(&mut self, now: Now) {
        self.now = now;
        let mut b = std::mem::take(&mut self.batch);
        self.announce(&mut b);
        self.occupancy(now.wall, &mut b);
        b.refresh = true;
        self.batch = b;
    }

    /// The link connected again: what the gateway keeps retained is sent again.
    pub fn handle_reconnect(&mut self, now: Now) {
        self.now = now;
        let mut b = std::mem::take(&mut self.batch);
        self.announce(&mut b);
        self.batch = b;
    }

    /// A message from the broker. Returns how many decisions it came to (a tap: one), for
    /// the runtime's latency figures. What it sends goes out after the next [`Self::commit`].
    pub fn handle_message(&mut self, topic: &str, payload: &[u8], retain: bool, now: Now) -> usize {
        self.now = now;
        let mut b = std::mem::take(&mut self.batch);
        let before = b.decisions.len();
        self.take(topic, payload, retain, &mut b);
        let decided = b.decisions.len() - before;
        self.batch = b;
        decided
    }

    /// A request from inside the process (the HTTP API, the pollers). Its answer is an
    /// [`Effect::Answer`] after the next [`Self::commit`].
    pub fn handle_request(&mut self, c: Control, now: Now) {
        self.now = now;
        let mut b = std::mem::take(&mut self.batch);
        self.control(c, &mut b);
        self.batch = b;
    }

    /// A round of allow-lists built from an [`Effect::BuildAllowLists`].
    pub fn handle_allow_lists(&mut self, lists: Vec<DoorList>, now: Now) {
        self.now = now;
        let mut b = std::mem::take(&mut self.batch);
        self.allow_lists_ready(lists, &mut b);
        self.batch = b;
    }

    /// The runtime could not build the round an [`Effect::BuildAllowLists`] asked for: asked
    /// again at the next tick.
    pub fn allow_lists_failed(&mut self) {
        self.allow_lists_pending = false;
        self.lists_soon();
    }

    /// A request of the command line's (an [`Effect::ReadSpool`] found it), other than a
    /// backup, which the runtime writes itself.
    pub fn handle_cli(
        &mut self,
        request: crate::spool::Request,
        by: String,
        now: Now,
    ) -> Result<(), String> {
        self.now = now;
        self.registry
            .token_request(request, Actor::Cli(by), now.wall)
    }

    /// The free space on the data directory's disk, read for an [`Effect::CheckDisk`]
    /// (`None`: it could not be read). Raises or clears the disk-low alarm.
    pub fn handle_disk(&mut self, free: Option<u64>, now: Now) {
        self.now = now;
        if let Some(n) = self.registry.store().size_on_disk() {
            self.stats.store_bytes.store(n, Ordering::Relaxed);
        }
        let Some(free) = free else {
            return;
        };
        self.stats.disk_free.store(free, Ordering::Relaxed);
        let low = free < LOW_DISK_BYTES;
        if low == self.disk_low {
            return;
        }
        self.disk_low = low;
        if low {
            tracing::error!(free, "the data directory's disk is nearly full");
        } else {
            tracing::info!(free, "the data directory's disk has room again");
        }
        self.batch.audit.push(AuditEntry {
            at: now.wall,
            actor: Actor::System,
            event: AuditEvent::Alarm {
                door: None,
                device: None,
                alarm: crate::store::AlarmKind::DiskLow,
                raised: low,
            },
        });
        self.batch.refresh = true;
    }

    /// Fires the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Now) -> Result<(), ServiceError> {
        self.now = now;
        if !self.timers.due(Timer::Tick, now.at) {
            return Ok(());
        }
        self.timers.set(Timer::Tick, now.at + TICK);
        let mut b = std::mem::take(&mut self.batch);
        let r = self.tick(&mut b);
        self.batch = b;
        r
    }

    /// When the engine wants [`Self::handle_timeout`] called next (at the latest; a message
    /// may come first). While allow-lists wait to go out, soon, so a commit sends some.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // The tick: every other timer is looked at on it, so one that is due before the tick
        // (they drift from it by the tick's lateness, and a round of allow-lists stays due
        // while the last one is built) waits for it rather than waking the runtime at once.
        let next = self.timers.get(Timer::Tick);
        if self.lists_out.is_empty() {
            return next;
        }
        let lists = self.now.at + LISTS_EVERY;
        Some(next.map_or(lists, |t| t.min(lists)))
    }

    /// The next thing the runtime is to do, in order.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.out.pop_front()
    }

    /// The MQTT filters the gateway subscribes to beyond its own protocol's: the bound
    /// off-the-shelf devices'.
    pub fn device_filters(&self) -> Vec<String> {
        self.adapters.filters()
    }

    /// The store the engine writes to.
    pub fn store(&self) -> Arc<dyn Store> {
        self.registry.store_arc()
    }

    /// The site it runs (the runtime's archive thread reads the bookings' rooms from it).
    pub fn site(&self) -> &Arc<Site> {
        &self.site
    }

    /// Writes what was handled since the last commit durably (the decisions and audit entries
    /// with one flush), then queues what it sends and answers as effects: nothing is sent
    /// that is not in the log. An error means the log cannot be written: the runtime stops
    /// (and with it the process); the doors fall back to their allow-lists, and a restart
    /// rebuilds from the store.
    pub fn commit(&mut self, now: Now) -> Result<(), ServiceError> {
        self.now = now;
        let batch = std::mem::take(&mut self.batch);
        let refresh = batch.refresh || !batch.audit.is_empty();
        if batch.marks {
            let marks = self.desk.take_marks(self.now.wall);
            self.registry.store().put_marks(&marks)?;
        }
        let raised = batch
            .audit
            .iter()
            .filter(|e| {
                matches!(
                    e.event,
                    crate::store::AuditEvent::Alarm { raised: true, .. }
                )
            })
            .count();
        if !batch.decisions.is_empty() || !batch.audit.is_empty() {
            // Changed head counts ride along with the log's flush (one synced write on the SD
            // card for both); the periodic store is for changes without any decision after them.
            if self.now.wall.timestamp() - self.saved_counts_at >= COUNTS_WITH_LOG_S {
                self.save_counts(self.now.wall)?;
            }
            if let Err(e) = self.registry.record(&batch.decisions, batch.audit) {
                // The answers waiting are dropped with the batch: who asked hears the core
                // stopped.
                tracing::error!(error = %e, "cannot write the audit log; stopping");
                return Err(e.into());
            }
        } else if batch.marks {
            self.registry.store().flush()?;
        }
        self.out.extend(
            batch
                .answers
                .into_iter()
                .map(|(tx, r)| Effect::Answer(Answer::Done(tx, r))),
        );
        self.out.extend(
            batch
                .answers_member
                .into_iter()
                .map(|(tx, r)| Effect::Answer(Answer::Member(tx, r))),
        );
        self.out
            .extend(batch.answers_other.into_iter().map(Effect::Answer));
        if !batch.decisions.is_empty() {
            if let Ok(mut m) = self.stats.by_reason.lock() {
                for (d, _) in &batch.decisions {
                    *m.entry(d.reason.code()).or_insert(0) += 1;
                }
            }
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
        }
        for (d, _) in &batch.decisions {
            self.live.decision(self.decision_now(d));
        }
        if refresh {
            self.refresh_live();
        }
        for (d, _) in &batch.decisions {
            self.stats.decisions.fetch_add(1, Ordering::Relaxed);
            if d.allowed() {
                self.stats.allowed.fetch_add(1, Ordering::Relaxed);
            }
            // Someone refused at the door of a room they booked (too early, say) came for the
            // booking: that is presence for no-shows. A stranger's refused card is not.
            let came_for = d.booking.as_ref().map(|b| b.room);
            self.passage(d.door, d.allowed(), d.member, came_for, d.at.timestamp());
        }
        self.stats
            .alarms_raised
            .fetch_add(raised as u64, Ordering::Relaxed);
        if let Ok(mut m) = self.stats.malformed.lock() {
            m.clone_from(self.desk.malformed.counts());
        }
        self.out
            .extend(batch.replies.into_iter().map(Effect::Publish));
        // Allow-lists go out a few at a time after the batch's own messages: a round for a
        // campus (a thousand doors, up to 256 KB each) sent at once held the decisions behind it
        // for seconds. They are signed here, as they go, so a round costs one list at a time.
        let mut bytes = 0;
        while bytes < LIST_BYTES_PER_BATCH {
            let Some(l) = self.lists_out.pop_front() else {
                break;
            };
            if let Some(p) = self.desk.allow_list(l.door, l.from, l.until, l.cards) {
                bytes += p.payload.len();
                self.out.push_back(Effect::Publish(p));
                self.stats.allow_lists.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// A clean stop, first step: what is still in the batch (an alarm found while the last
    /// effects were carried out) is committed, and the retained status says offline (the last
    /// will fires only when the gateway vanishes). The runtime sends it before the link's
    /// DISCONNECT, then calls [`Self::close`].
    pub fn stop(&mut self, now: Now) -> Result<(), ServiceError> {
        self.commit(now)?;
        self.out.push_back(Effect::Publish(Publish {
            topic: crate::ha::gateway_status_topic(&self.config.mqtt.prefix),
            payload: br#"{"v":1,"state":"offline"}"#.to_vec(),
            retain: true,
        }));
        Ok(())
    }

    /// A clean stop, last step: the counters, the head counts and the open history buckets
    /// are stored and the store flushed.
    pub fn close(&mut self, now: Now) -> Result<(), ServiceError> {
        self.now = now;
        let mut marks = self.desk.take_marks(now.wall);
        marks.push(crate::domain::DeviceMark {
            at: Some(now.wall),
            ..Default::default()
        });
        self.registry.store().put_marks(&marks)?;
        self.save_counts(now.wall)?;
        // The open history buckets: merged with their continuation after a restart.
        let open = self.recorder.flush(now.wall.timestamp());
        self.registry.store().add_history(&open)?;
        self.registry.store().flush()?;
        tracing::info!("engine stopped, store flushed");
        Ok(())
    }

    /// Allow-lists at the next tick (rights or the mode changed).
    fn lists_soon(&mut self) {
        let tick = self.timers.get(Timer::Tick).unwrap_or(self.now.at);
        self.timers.set(Timer::AllowLists, tick);
    }

    /// A member added or changed from the dashboard, and the cards it lists issued.
    fn member_change(
        &mut self,
        fields: &BTreeMap<String, String>,
        create: bool,
        by: Actor,
    ) -> Result<(), MemberRefusal> {
        // The members CSV's fields, and `suspended`.
        let known = |k: &str| k == "suspended" || crate::import::MEMBER_COLUMNS.contains(&k);
        if let Some(k) = fields.keys().find(|k| !known(k)) {
            return Err(MemberRefusal::Invalid(format!(
                "{k:?} is not a member field"
            )));
        }
        let now = self.now.wall;
        let field = |k: &str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let has = |k: &str| fields.contains_key(k);
        // A card another member holds is a clash, not a mistake in the request.
        let id_given = field("id").unwrap_or_default();
        for c in field("cards").unwrap_or_default().split(';') {
            let Ok(card) = crate::domain::CardId::parse(c.trim()) else {
                continue;
            };
            let cred = crate::domain::Credential::Card(card);
            if let Some((r, _)) = self.registry.snapshot().credential(&cred) {
                if r.revoked_at.is_none() && r.member.to_string() != id_given {
                    return Err(MemberRefusal::Conflict(format!(
                        "card {card} is held by member {}",
                        r.member
                    )));
                }
            }
        }
        let row = crate::import::member_row(self.registry.snapshot(), &field, &has)
            .map_err(MemberRefusal::Invalid)?;
        let id = row.member.id;
        let known = self.registry.snapshot().member(id).is_some();
        match (create, known) {
            (true, true) => {
                return Err(MemberRefusal::Conflict(format!("member {id} exists")));
            }
            (false, false) => return Err(MemberRefusal::NotFound(format!("no member {id}"))),
            (true, false) => self.registry.add_member(row.member, by.clone(), now),
            (false, true) => self.registry.update_member(row.member, by.clone(), now),
        }
        .map_err(member_refusal)?;
        if let Some(s) = fields.get("suspended") {
            let reason = Some(s.trim().to_string()).filter(|r| !r.is_empty());
            let suspended = matches!(
                self.registry.snapshot().member(id).map(|m| &m.status),
                Some(crate::domain::MemberStatus::Suspended { .. })
            );
            if reason.is_some() || suspended {
                self.registry
                    .set_suspended(id, reason, by.clone(), now)
                    .map_err(member_refusal)?;
            }
        }
        for c in row.cards {
            let cred = crate::domain::Credential::Card(c);
            let held = self
                .registry
                .snapshot()
                .credential(&cred)
                .is_some_and(|(r, _)| r.member == id && r.revoked_at.is_none());
            if !held {
                self.registry
                    .add_credential(id, cred, by.clone(), now)
                    .map_err(member_refusal)?;
            }
        }
        Ok(())
    }

    /// A decision as the dashboard shows it.
    fn decision_now(&self, d: &Decision) -> crate::live::DecisionNow {
        let snapshot = self.registry.snapshot();
        crate::live::DecisionNow {
            at: d.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            door: d.door.to_string(),
            room: self
                .site
                .door(d.door)
                .map(|x| x.into.to_string())
                .unwrap_or_default(),
            allowed: d.allowed(),
            reason: d.reason.code().to_string(),
            member: d.member.map(|m| m.to_string()),
            member_name: d
                .member
                .and_then(|m| snapshot.member(m))
                .map(|m| m.name.clone()),
            // The live stream goes to every signed-in staff member: card numbers masked (an
            // admin finds the whole number in the log).
            card: match d.credential {
                crate::domain::Credential::Card(c) => {
                    Some(crate::http::masked_card(&c.to_string()))
                }
                crate::domain::Credential::Pin(_) => None,
            },
        }
    }

    /// Tells the live view the doors, alarms and devices as the core knows them now.
    fn refresh_live(&mut self) {
        use crate::live::{AlarmNow, DeviceNow, DoorNow};
        let now = self.now.wall.timestamp();
        let secs = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp());
        let mut alarms = Vec::new();
        let mut doors = Vec::with_capacity(self.site.doors.len());
        for d in &self.site.doors {
            let status = self.desk.door_status(d.id);
            let (device, online) = match self.desk.device_of(d.id) {
                Some(dev) => (
                    Some(dev.to_string()),
                    self.desk.health(dev).is_some_and(|h| h.online),
                ),
                None => match self.adapters.reader(d.id) {
                    Some(b) => (
                        Some(b.id.to_string()),
                        self.adapters
                            .health()
                            .find(|(x, _)| x.id == b.id)
                            .is_some_and(|(_, h)| h.online || !h.known && h.last_seen.is_some()),
                    ),
                    None => (None, false),
                },
            };
            if let Some(s) = status {
                for (on, kind) in [
                    (s.held_open, "held_open"),
                    (s.forced, "forced"),
                    (s.tamper, "tamper"),
                    (self.lock_differs.contains(&d.id), "lock_differs"),
                ] {
                    if on {
                        alarms.push(AlarmNow {
                            alarm: kind.into(),
                            door: Some(d.id.to_string()),
                            device: None,
                            feed: None,
                            since: now,
                            ack: None,
                        });
                    }
                }
            }
            doors.push(DoorNow {
                door: d.id.to_string(),
                room: d.into.to_string(),
                device,
                online,
                contact: match status.map(|s| s.contact) {
                    Some(kombinat_protocol::door::Contact::Open) => "open",
                    Some(kombinat_protocol::door::Contact::Closed) => "closed",
                    None => "unknown",
                }
                .into(),
                locked: status.map(|s| s.locked),
                alarm: status.is_some_and(|s| s.held_open || s.forced || s.tamper),
                released: self.released.contains(&d.id),
                locked_down: self
                    .site
                    .door_index(d.id)
                    .is_some_and(|di| self.registry.snapshot().door_locked(di)),
            });
        }
        let mut devices = Vec::new();
        for (dev, h) in self.desk.devices() {
            if !h.online && h.was_online {
                alarms.push(AlarmNow {
                    alarm: "device_offline".into(),
                    door: None,
                    device: Some(dev.id.to_string()),
                    feed: None,
                    since: now,
                    ack: None,
                });
            }
            devices.push(DeviceNow {
                device: dev.id.to_string(),
                kind: match dev.kind {
                    crate::domain::DeviceKind::Door => "door_node",
                    crate::domain::DeviceKind::Sensor => "sensor_node",
                    crate::domain::DeviceKind::AlertFeed => "alert_feed",
                }
                .into(),
                doors: dev.door.iter().map(|d| d.to_string()).collect(),
                rooms: dev.room.iter().map(|r| r.to_string()).collect(),
                online: h.online,
                last_seen: secs(h.last_seen),
                firmware: h.firmware.as_ref().map(|f| f.to_string()),
                battery: None,
                power: self.power.node(dev.id).map(|p| crate::live::PowerNow {
                    mains: p.mains,
                    since: p.since,
                    battery_mv: p.battery_mv,
                    left_s: self.power.left_s(dev.id),
                    low: p.low,
                    shed: p.shed,
                }),
            });
            // A low battery is each node's own alarm; mains lost is one for the site (below).
            if self.power.node(dev.id).is_some_and(|p| p.low) {
                alarms.push(AlarmNow {
                    alarm: "battery_low".into(),
                    door: None,
                    device: Some(dev.id.to_string()),
                    feed: None,
                    since: now,
                    ack: None,
                });
            }
        }
        for (b, h) in self.adapters.health() {
            devices.push(DeviceNow {
                device: b.id.to_string(),
                kind: match b.kind {
                    crate::domain::BindingKind::EspRfid => "esp_rfid",
                    crate::domain::BindingKind::Tasmota => "tasmota",
                    crate::domain::BindingKind::Zigbee2mqtt => "zigbee2mqtt",
                }
                .into(),
                doors: b.doors.iter().map(|d| d.to_string()).collect(),
                rooms: b.room.iter().map(|r| r.to_string()).collect(),
                online: h.online || !h.known && h.last_seen.is_some(),
                last_seen: secs(h.last_seen),
                firmware: None,
                battery: h.battery,
                power: None,
            });
        }
        devices.sort_by(|a, b| a.device.cmp(&b.device));
        if self.clock_unsynced.is_some() {
            alarms.push(AlarmNow {
                alarm: "clock_unsynchronised".into(),
                door: None,
                device: None,
                feed: None,
                since: now,
                ack: None,
            });
        }
        if self.disk_low {
            alarms.push(AlarmNow {
                alarm: "disk_low".into(),
                door: None,
                device: None,
                feed: None,
                since: now,
                ack: None,
            });
        }
        for (f, failing) in self.site.feeds.iter().zip(&self.feeds_failing) {
            if *failing {
                alarms.push(AlarmNow {
                    alarm: "feed_failing".into(),
                    door: None,
                    device: None,
                    feed: Some(f.id.to_string()),
                    since: now,
                    ack: None,
                });
            }
        }
        for (f, failing) in self.config.alert_feeds.iter().zip(&self.alerts_failing) {
            if failing.is_some() {
                alarms.push(AlarmNow {
                    alarm: "alert_feed_failing".into(),
                    door: None,
                    device: None,
                    feed: Some(f.id.clone()),
                    since: now,
                    ack: None,
                });
            }
        }
        let site_power = self.power.site();
        // A power cut takes every node at once: one alarm for the site, not one per door (the
        // power bar and the devices page say which nodes and how long they last).
        if let Some(since) = site_power.mains_lost_since {
            alarms.push(AlarmNow {
                alarm: "mains_lost".into(),
                door: None,
                device: None,
                feed: None,
                since,
                ack: None,
            });
        }
        self.alarm_acks
            .retain(|k, _| alarms.iter().any(|a| alarm_key(a) == *k));
        for a in &mut alarms {
            a.ack = self.alarm_acks.get(&alarm_key(a)).cloned();
        }
        self.live.set_power(crate::live::SitePowerNow {
            nodes: site_power.nodes,
            on_battery: site_power
                .on_battery
                .iter()
                .map(|d| d.to_string())
                .collect(),
            mains_lost_since: site_power.mains_lost_since,
            least_left: site_power.least_left_s.map(|(d, s)| (d.to_string(), s)),
            // The doors shedding holds released now (not in lockdown, which keeps them locked).
            shed_doors: (0..self.site.doors.len())
                .filter(|&i| self.shed_release(i) && self.released.contains(&self.site.doors[i].id))
                .map(|i| self.site.doors[i].id.to_string())
                .collect(),
        });
        self.live.set_doors(doors);
        self.live.set_alarms(alarms);
        self.live.set_devices(devices);
    }

    fn reject(&mut self, topic: &str, r: Rejected) {
        let sender = crate::desk::sender(topic, &r);
        if self.desk.malformed.count(&sender, &r, self.now.at) {
            tracing::warn!(%sender, %topic, reason = r.label(), error = %r, "refused a message");
        }
    }

    /// Handles one publish from the broker into the batch.
    fn take(&mut self, topic: &str, payload: &[u8], retain: bool, b: &mut Batch) {
        let now = self.now.wall;
        if topic == crate::ha::STATUS_TOPIC {
            if payload == b"online" {
                b.replies
                    .extend(crate::ha::discovery(&self.site, &self.config.mqtt.prefix));
            }
            return;
        }
        if let Some(r) = self.adapters.handle(topic, payload, retain, now) {
            match r {
                Ok(outcome) => self.device_outcome(outcome, now, b),
                Err(r) => self.reject(topic, r),
            }
            return;
        }
        let parsed = match Topic::parse(&self.config.mqtt.prefix, topic) {
            Ok(t) => t,
            Err(_) => return self.reject(topic, Rejected::Topic),
        };
        let result = match parsed {
            Topic::Door(door, DoorTopic::Tap) => self
                .desk
                .handle_tap(self.registry.snapshot(), door, payload, now)
                .map(|o| {
                    b.decisions.push((o.decision, Some(o.tap)));
                    b.replies.push(o.reply);
                }),
            Topic::Door(door, DoorTopic::State) => self
                .desk
                .handle_door_state(door, payload, now)
                .map(|alarms| {
                    b.refresh = true;
                    // A state that raises or clears an alarm has its counter stored with the
                    // alarm; a heartbeat that changes nothing waits for the periodic marks (a
                    // replay of it after a crash would change nothing either).
                    if !alarms.is_empty() {
                        b.marks = true;
                    }
                    b.audit.extend(alarms)
                }),
            Topic::Door(door, DoorTopic::OfflineLog) => self
                .desk
                .handle_offline_log(self.registry.snapshot(), door, payload, now)
                .map(|(entries, ack)| {
                    b.marks = true;
                    self.stats
                        .offline_ingested
                        .fetch_add(entries.len() as u64, Ordering::Relaxed);
                    b.audit.extend(entries);
                    b.replies.push(ack);
                }),
            // The gateway's own status comes back through its subscription: nothing to do.
            Topic::Status(device) if device == crate::ha::gateway_device() => Ok(()),
            Topic::Status(device) => {
                self.desk.handle_status(device, payload, now).map(|alarms| {
                    b.refresh = true;
                    // A door node back online may have missed its door's state (a
                    // command queued for it is lost with its session): send it again.
                    for a in &alarms {
                        if let AuditEvent::Alarm {
                            alarm: crate::store::AlarmKind::DeviceOffline,
                            raised: false,
                            door: Some(d),
                            ..
                        } = a.event
                        {
                            self.resend_doors.insert(d);
                        }
                    }
                    b.audit.extend(alarms)
                })
            }
            Topic::Reading(device) => self
                .desk
                .handle_reading(device, payload, now)
                .map(|(room, m)| self.reading(room, m, now)),
            Topic::Power(device) => self.desk.handle_power(device, payload, now).map(|(mains, mv)| {
                // A report that changes something (an alarm, shedding a door) has its counter
                // stored first: it cannot be replayed after a crash.
                if self
                    .power
                    .would_change(device, mains, mv, now.timestamp())
                {
                    let marks = self.desk.take_marks(now);
                    if let Err(e) = self.registry.store().put_marks(&marks) {
                        tracing::error!(error = %e, "cannot store the node's counter; its power report is taken at its next one");
                        return;
                    }
                }
                self.power_report(device, mains, mv, b)
            }),
            Topic::AlertInput(device) => match self.desk.handle_alert_input(device, payload, now) {
                Ok(active) => {
                    match self.config.alert_inputs.iter().position(|d| *d == device) {
                        Some(j) => {
                            let i = self.config.alert_feeds.len() + j;
                            if self.alert_feeds.last_read(i) != Some(active) {
                                // The node's counter is durable before the change it brings:
                                // a replayed "active" cannot switch the mode after a crash.
                                let marks = self.desk.take_marks(now);
                                if let Err(e) = self.registry.store().put_marks(&marks) {
                                    tracing::error!(error = %e, "cannot store the node's counter; its input is read again at its next message");
                                    return;
                                }
                            }
                            self.alert(i, Ok(Some(active)), b);
                            Ok(())
                        }
                        // A node with a contact wired that the configuration does not name:
                        // heard, and left alone.
                        None => {
                            tracing::debug!(%device, "an alert input not among [[alert_inputs]]: ignored");
                            Ok(())
                        }
                    }
                }
                Err(r) => Err(r),
            },
            Topic::ModeSet => match self.desk.handle_mode_set(payload, now) {
                Ok((mode, device)) => {
                    // The feed's counter is durable before the change it asked for, so the
                    // message cannot be replayed after a crash.
                    let marks = self.desk.take_marks(now);
                    if let Err(e) = self.registry.store().put_marks(&marks) {
                        tracing::error!(error = %e, "cannot store the feed's counter");
                    } else if let Err(e) = self.set_mode(mode, Actor::Device(device), b) {
                        tracing::error!(error = %e, "cannot switch the site mode");
                    }
                    Ok(())
                }
                Err(r) => Err(r),
            },
            // What the gateway itself publishes is not taken back.
            _ => Err(Rejected::Topic),
        };
        if let Err(r) = result {
            self.reject(topic, r);
        }
    }

    /// A reading for a room, from a sensor node or a bound device.
    fn reading(&mut self, room: crate::domain::RoomId, m: Measurement, now: DateTime<Utc>) {
        self.stats.readings.fetch_add(1, Ordering::Relaxed);
        let Some(r) = self.site.room_index(room) else {
            return;
        };
        let t = now.timestamp();
        let e = &mut self.estimator;
        match m {
            Measurement::Counter { entered, out } => e.handle_counter(r, entered, out, t),
            Measurement::Motion { active } => e.handle_motion(r, active, t),
            Measurement::Co2 { ppm } => e.handle_co2(r, f32::from(ppm), t),
            Measurement::Light { lux } => e.handle_light(r, lux, t),
            // Contacts, temperature and humidity do not count people.
            Measurement::Contact { .. }
            | Measurement::Temperature { .. }
            | Measurement::Humidity { .. } => {}
        }
    }

    /// What a bound off-the-shelf device's message came to.
    fn device_outcome(&mut self, o: crate::dialects::Outcome, now: DateTime<Utc>, b: &mut Batch) {
        self.stats.device_messages.fetch_add(1, Ordering::Relaxed);
        b.refresh |= o.device.is_some();
        b.audit.extend(o.alarms);
        b.replies.extend(o.commands);
        if o.resync {
            self.full_user_lists = true;
            self.lists_soon();
        }
        for e in o.events {
            match e {
                Event::Tap { door, card } => {
                    // A Tasmota reader: the gateway decides, and drives the relay once the
                    // decision is in the log (replies are sent after the batch is durable).
                    let tap = Tap {
                        door,
                        credential: crate::domain::Credential::Card(card),
                    };
                    let d = decide(self.registry.snapshot(), &tap, now);
                    tracing::info!(door = %door, reason = %d.reason, "tap from a bound reader");
                    // A relay command queued while the broker is away would open the door
                    // whenever the link comes back, for nobody: only sent while connected.
                    let connected = self.stats.link.connected.load(Ordering::Relaxed);
                    if d.allowed() && connected {
                        if let Some(cmds) = self.adapters.unlock(door, d.unlock_ms, now) {
                            b.replies.extend(cmds);
                        }
                    } else if d.allowed() {
                        tracing::warn!(door = %door, "allowed, but the broker is away: relay not switched");
                    }
                    b.decisions.push((d, None));
                }
                Event::Decided {
                    door,
                    card,
                    allowed,
                    word,
                } => {
                    // esp-rfid decided itself: logged with the device's own word in the trace.
                    let member = self
                        .registry
                        .snapshot()
                        .credential(&crate::domain::Credential::Card(card))
                        .map(|(rec, _)| rec.member);
                    let reason = if allowed {
                        crate::domain::Reason::DeviceListed
                    } else {
                        crate::domain::Reason::DeviceNotListed
                    };
                    tracing::info!(door = %door, %reason, device_says = %word, "decided by the reader");
                    b.audit.push(AuditEntry {
                        at: now,
                        actor: o.device.map_or(Actor::Door(door), Actor::Device),
                        event: AuditEvent::Decision {
                            door,
                            card: Some(card),
                            reason,
                            unlock_ms: 0,
                            member,
                            booking: None,
                            offline: false,
                            tap: None,
                        },
                    });
                    self.passage(door, allowed, member, None, now.timestamp());
                }
                Event::Contact { door, open } => self.desk.note_contact(door, open, now),
                Event::Reading { room, measurement } => self.reading(room, measurement, now),
            }
        }
    }

    /// Someone presented a card at a door: when allowed, a passage into the room behind it (or
    /// out of the room an exit reader leads from); when refused but holding a booking of the
    /// room `came_for` at that room's own door, presence there.
    fn passage(
        &mut self,
        door: DoorId,
        allowed: bool,
        who: Option<crate::domain::MemberId>,
        came_for: Option<crate::domain::RoomId>,
        t: i64,
    ) {
        let Some(di) = self.site.door_index(door) else {
            return;
        };
        // A stable key of the person, so the estimator holds each one in one room.
        let key = who.map(|m| {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            m.hash(&mut h);
            h.finish()
        });
        if self.site.is_exit(di) {
            if allowed {
                if let Some(from) = self.site.doors[di]
                    .from
                    .and_then(|r| self.site.room_index(r))
                {
                    match key {
                        Some(k) => self.estimator.handle_exit_of(k, from, t),
                        None => self.estimator.handle_exit(from, t),
                    }
                }
            }
        } else if allowed {
            let into = self.site.into_room(di);
            match key {
                Some(k) => self.estimator.handle_entry_of(k, into, t),
                None => self.estimator.handle_entry(into, t),
            }
        } else if let Some(room) = came_for.and_then(|r| self.site.room_index(r)) {
            // Only at the booked room's own door: someone refused at the street door on their
            // way to the office is not in the meeting room they also booked.
            if self.site.into_room(di) == room {
                self.estimator.handle_presence(room, t);
            }
        }
    }

    /// Revokes every PIN a member holds (they are shown to nobody, so they go together).
    fn revoke_pins(
        &mut self,
        member: crate::domain::MemberId,
        by: crate::store::Actor,
    ) -> Result<(), MemberRefusal> {
        let pins: Vec<_> = match self.registry.store().credentials() {
            Ok(c) => c
                .into_iter()
                .filter(|r| r.member == member && r.revoked_at.is_none())
                .map(|r| r.credential)
                .filter(|c| matches!(c, crate::domain::Credential::Pin(_)))
                .collect(),
            Err(e) => return Err(member_refusal(e.into())),
        };
        if pins.is_empty() {
            return Err(MemberRefusal::NotFound(format!(
                "member {member} holds no PIN"
            )));
        }
        for pin in pins {
            self.registry
                .revoke_credential(pin, by.clone(), self.now.wall)
                .map_err(member_refusal)?;
        }
        Ok(())
    }

    fn control(&mut self, c: Control, b: &mut Batch) {
        match c {
            Control::Unlock {
                door,
                ms,
                by,
                reply,
            } => {
                let r = if self.site.door(door).is_none() {
                    Err(ServiceError::UnknownDoor(door))
                } else {
                    let (cmds, how_long) = match self.desk.command(door, Action::Unlock { ms }) {
                        Some(cmd) => {
                            let until = self.now.wall + self.node_time(i64::from(ms));
                            self.unlock_until.insert(door, until);
                            (Some(vec![cmd]), format!("for {ms} ms"))
                        }
                        // A bound reader opens for its own time, whatever was asked.
                        None => (
                            self.adapters.unlock(door, ms, self.now.wall),
                            self.adapters.unlock_ms(door).map_or_else(
                                || "for the reader's own unlock time".to_string(),
                                |t| format!("for {t} ms (the relay's pulse time)"),
                            ),
                        ),
                    };
                    match cmds {
                        Some(cmds) => {
                            b.audit.push(AuditEntry::change(
                                self.now.wall,
                                by,
                                format!("remote unlock of door {door} {how_long}"),
                            ));
                            b.replies.extend(cmds);
                            Ok(())
                        }
                        None => Err(ServiceError::NoNode(door)),
                    }
                };
                b.answers.push((reply, r));
            }
            Control::Member {
                fields,
                create,
                by,
                reply,
            } => {
                let r = self.member_change(&fields, create, by);
                // Allow-lists follow the member's rights (also after a change that stopped
                // half-way: what was written counts).
                self.lists_soon();
                self.full_user_lists = true;
                b.answers_member.push((reply, r));
            }
            Control::ClockSync(found) => {
                let why = match found {
                    crate::clock_sync::Synced::No(why) => Some(why),
                    crate::clock_sync::Synced::Yes | crate::clock_sync::Synced::Unknown => None,
                };
                if why.is_some() != self.clock_unsynced.is_some() {
                    match &why {
                        Some(w) => {
                            tracing::error!(why = %w, "the gateway's clock is not synchronised: no allow-lists are published until it is")
                        }
                        None => tracing::info!(
                            "the gateway's clock is synchronised: allow-lists are published again"
                        ),
                    }
                    b.audit.push(AuditEntry {
                        at: self.now.wall,
                        actor: Actor::System,
                        event: AuditEvent::Alarm {
                            door: None,
                            device: None,
                            alarm: crate::store::AlarmKind::ClockUnsynchronised,
                            raised: why.is_some(),
                        },
                    });
                    if why.is_none() {
                        self.lists_soon();
                    }
                }
                self.clock_unsynced = why;
                if !self.clock_checked {
                    self.clock_checked = true;
                    self.lists_soon();
                }
                b.refresh = true;
            }
            Control::Erase { member, by, reply } => {
                let now = self.now.wall;
                let r = self
                    .registry
                    .erase_member(member, by, now)
                    .and_then(|done| {
                        // The running snapshot still holds them: built again from the store,
                        // and given the rooms' counts again at the next tick.
                        self.registry.reload(now)?;
                        self.published.iter_mut().for_each(|p| *p = None);
                        Ok(done)
                    })
                    .map(|(pseudonym, n)| (pseudonym.to_string(), n))
                    .map_err(member_refusal);
                if r.is_ok() {
                    self.lists_soon();
                    self.full_user_lists = true;
                    self.out.push_back(Effect::RewriteStoreAtStart);
                }
                b.answers_other.push(Answer::Erase(reply, r));
            }
            Control::Pin {
                member,
                issue,
                by,
                reply,
            } => {
                let now = self.now.wall;
                let r = match issue {
                    Some(pin) => self
                        .registry
                        .add_credential(member, crate::domain::Credential::Pin(pin), by, now)
                        .map_err(member_refusal),
                    None => self.revoke_pins(member, by),
                };
                if r.is_ok() {
                    self.lists_soon();
                    self.full_user_lists = true;
                }
                b.answers_member.push((reply, r));
            }
            Control::RevokeCard { card, by, reply } => {
                let cred = crate::domain::Credential::Card(card);
                let r = match self.registry.revoke_credential(cred, by, self.now.wall) {
                    Ok(()) => {
                        self.lists_soon();
                        self.full_user_lists = true;
                        Ok(())
                    }
                    Err(e) => Err(member_refusal(e)),
                };
                b.answers_member.push((reply, r));
            }
            Control::DoorLockdown {
                door,
                locked,
                by,
                reply,
            } => {
                let already = self
                    .site
                    .door_index(door)
                    .is_some_and(|di| self.registry.snapshot().door_locked(di) == locked);
                let r = if self.site.door(door).is_none() {
                    Err(ServiceError::UnknownDoor(door))
                } else if already {
                    // Nothing to change, nothing to log.
                    Ok(())
                } else {
                    match self
                        .registry
                        .set_door_locked(door, locked, by, self.now.wall)
                    {
                        Ok(()) => {
                            // The door's list now holds staff only (or its people again), and
                            // a door standing open to the public closes.
                            self.lists_soon();
                            self.full_user_lists = true;
                            self.sync_released(self.now.wall, b);
                            b.refresh = true;
                            Ok(())
                        }
                        Err(e) => Err(ServiceError::Registry(e)),
                    }
                };
                b.answers.push((reply, r));
            }
            Control::AckAlarm {
                alarm,
                door,
                device,
                feed,
                note,
                by,
                reply,
            } => {
                let key: AlarmKey = (alarm, door, device, feed);
                let standing = self.live.view().alarms.iter().any(|a| alarm_key(a) == key);
                let r = if standing {
                    let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
                    let (kind, door, device, feed) = &key;
                    let place = match (door, device, feed) {
                        (Some(d), _, _) => format!(" at door {d}"),
                        (_, Some(d), _) => format!(" of device {d}"),
                        (_, _, Some(f)) => format!(" of feed {f}"),
                        _ => String::new(),
                    };
                    let said = note.as_deref().map_or(String::new(), |n| format!(": {n}"));
                    b.audit.push(AuditEntry::change(
                        self.now.wall,
                        by.clone(),
                        format!("acknowledged the alarm {kind}{place}{said}"),
                    ));
                    let who = match &by {
                        crate::store::Actor::Staff(u) => u.clone(),
                        other => other.to_string(),
                    };
                    self.alarm_acks.insert(
                        key,
                        crate::live::AlarmAck {
                            by: who,
                            at: self.now.wall.timestamp(),
                            note,
                        },
                    );
                    // Shown once the batch (its audit entry) is written.
                    b.refresh = true;
                    Ok(())
                } else {
                    Err(ServiceError::NoAlarm)
                };
                b.answers.push((reply, r));
            }
            Control::SetMode { mode, by, reply } => {
                let r = self.set_mode(mode, by, b);
                b.answers.push((reply, r));
            }
            Control::Feed { feed, fetched } => self.feed(feed, fetched, b),
            Control::Alert { feed, read } => self.alert(feed, read, b),
            Control::ApiBookings {
                source,
                items,
                actor,
                reply,
            } => {
                let r = self.api_bookings(source, items, actor);
                b.answers_other.push(Answer::Bookings(reply, r));
            }
            Control::ApiCancel { key, actor, reply } => {
                let r = self.api_cancel(key, actor);
                b.answers_other.push(Answer::Cancel(reply, r));
            }
            Control::Stop => {}
        }
    }

    /// Bookings from the REST API, checked and written in one transaction.
    fn api_bookings(
        &mut self,
        source: crate::domain::SourceId,
        items: Vec<BTreeMap<String, String>>,
        actor: Actor,
    ) -> ApiBookingsResult {
        let mut good = Vec::new();
        let mut problems = Vec::new();
        let mut keys = std::collections::HashSet::new();
        let batch = items.len() > 1;
        let name = |n: usize, field: &str| {
            if batch {
                format!("{n}.{field}")
            } else {
                field.to_string()
            }
        };
        for (n, f) in items.iter().enumerate() {
            if let Some(k) = f
                .keys()
                .find(|k| !crate::import::BOOKING_FIELDS.contains(&k.as_str()))
            {
                problems.push((name(n, k), format!("{k:?} is not a booking field")));
                continue;
            }
            let field = |k: &str| f.get(k).map(String::as_str).filter(|v| !v.is_empty());
            match crate::import::booking_fields(self.registry.snapshot(), &source, &field) {
                Ok(bk) if !keys.insert(bk.key.clone()) => problems.push((
                    name(n, "external_id"),
                    format!("booking {} appears twice in the batch", bk.key),
                )),
                Ok(bk) => good.push(bk),
                Err(e) => problems.push((name(n, e.field), e.message)),
            }
        }
        // What would change nothing at the doors and is not stored yet is not stored:
        // a cancellation of a booking never made, a booking over for days. Otherwise
        // they would pile up in the store past the source's cap, which counts what is
        // held in memory.
        let kept_from = (self.now.wall
            - chrono::Duration::days(crate::registry::BOOKINGS_KEPT_DAYS))
        .timestamp();
        let store = self.registry.store_arc();
        let snapshot = self.registry.snapshot();
        let mut skipped = 0;
        good.retain(|bk| {
            let live = bk.status == crate::domain::BookingStatus::Confirmed
                && crate::occupancy::history::booked_span(&self.site, bk).1 >= kept_from;
            let keep = live
                || snapshot.booking(&bk.key).is_some()
                || store.booking(&bk.key).ok().flatten().is_some();
            skipped += usize::from(!keep);
            keep
        });
        let new = good
            .iter()
            .filter(|b| snapshot.booking(&b.key).is_none())
            .count();
        let held = snapshot.bookings_of_source(source);
        if problems.is_empty() && held + new > crate::import::SOURCE_BOOKINGS_MAX {
            problems.push((
                "source".into(),
                format!(
                    "source {source} holds {held} bookings; at most {} at once",
                    crate::import::SOURCE_BOOKINGS_MAX
                ),
            ));
        }
        if !problems.is_empty() {
            Err(ApiRefusal::Invalid(problems))
        } else if good.is_empty() {
            Ok(crate::registry::ImportCounts {
                unchanged: skipped,
                ..Default::default()
            })
        } else {
            let what = format!("REST API ({} bookings)", good.len());
            match self
                .registry
                .import_bookings(good, &what, actor, self.now.wall)
            {
                Ok(mut c) => {
                    if c.added + c.updated > 0 {
                        self.lists_soon();
                    }
                    c.unchanged += skipped;
                    Ok(c)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot write bookings from the API");
                    Err(ApiRefusal::Failed)
                }
            }
        }
    }

    /// A booking cancelled from the REST API; whether it was there.
    fn api_cancel(&mut self, key: crate::domain::BookingKey, actor: Actor) -> Result<bool, String> {
        match self.registry.store().booking(&key) {
            Err(e) => Err(e.to_string()),
            Ok(None) => Ok(false),
            Ok(Some(mut bk)) => {
                bk.status = crate::domain::BookingStatus::Cancelled;
                let what = format!("REST API cancel of {key}");
                match self
                    .registry
                    .import_bookings(vec![bk], &what, actor, self.now.wall)
                {
                    Ok(_) => {
                        self.lists_soon();
                        Ok(true)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }

    /// A calendar feed read by the poller: expanded, reconciled with what it booked before,
    /// written (one transaction), and the doors' lists pushed again. A feed that cannot be read
    /// or parsed changes nothing and raises the feed alarm, cleared by its next good read.
    fn feed(&mut self, i: usize, fetched: crate::poller::FeedRead, b: &mut Batch) {
        let Some(f) = self.site.feeds.get(i).cloned() else {
            return;
        };
        let now = self.now.wall;
        // "Not modified" after a failure says nothing new: the content that failed may still
        // be what is served, so the alarm stays until content reads well.
        let not_modified = matches!(fetched, Ok(None));
        let applied = match fetched {
            Ok(None) => Ok(()),
            Ok(Some(read)) if f.kind != crate::domain::FeedKind::Bookings => {
                self.power_schedule(&f, read, b)
            }
            // The site file refuses it; said as the feed's failure rather than lost.
            Ok(Some(_)) if f.room.is_none() => Err("a bookings feed names no room".into()),
            Ok(Some(read)) => {
                let (from, until) = (read.from, read.until);
                let expanded = read.expanded;
                let Some(room) = f.room else {
                    // Cannot happen: the arm above answers a bookings feed without a room.
                    return;
                };
                let stored: Vec<crate::domain::Booking> = self
                    .site
                    .room_index(room)
                    .map(|r| {
                        self.registry
                            .snapshot()
                            .bookings_in_room(r, from, until)
                            .map(|(bk, _)| bk.as_ref().clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let plan = crate::feed::plan(
                    self.registry.snapshot(),
                    f.id,
                    room,
                    &expanded,
                    (from, until),
                    now,
                    &stored,
                );
                for p in &plan.problems {
                    tracing::warn!(feed = %f.id, problem = %p, "feed");
                }
                if !plan.unmatched.is_empty() {
                    tracing::info!(feed = %f.id, unmatched = ?plan.unmatched, "addresses no member has");
                }
                if let Some(why) = plan.refused {
                    Err(why)
                } else if plan.upserts.is_empty() {
                    Ok(())
                } else {
                    let what = format!("feed {}", f.id);
                    match self.registry.import_bookings(
                        plan.upserts,
                        &what,
                        Actor::Source(f.id.to_string()),
                        now,
                    ) {
                        Ok(c) => {
                            tracing::info!(feed = %f.id, added = c.added, updated = c.updated, cancelled = plan.cancelled, "feed applied");
                            // Rights changed: the doors' lists follow at once.
                            self.lists_soon();
                            Ok(())
                        }
                        Err(e) => Err(format!("cannot write its bookings: {e}")),
                    }
                }
            }
            Err(why) => Err(why),
        };
        self.stats.feeds_read.fetch_add(1, Ordering::Relaxed);
        let was = self.feeds_failing.get(i).copied().unwrap_or(false);
        let is = applied.is_err() || (was && not_modified);
        if let Err(why) = &applied {
            self.stats.feed_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(feed = %f.id, %why, "feed not read; its last good state is kept");
        }
        if was != is {
            let applied = if is && applied.is_ok() {
                Err(String::new())
            } else {
                applied
            };
            if let Some(slot) = self.feeds_failing.get_mut(i) {
                *slot = is;
            }
            let failing: Vec<String> = self
                .site
                .feeds
                .iter()
                .zip(&self.feeds_failing)
                .filter(|(_, f)| **f)
                .map(|(feed, _)| feed.id.to_string())
                .collect();
            if let Err(e) = serde_json::to_vec(&failing)
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    self.registry
                        .store()
                        .put_state(FEEDS_FAILING, &v)
                        .map_err(|e| e.to_string())
                })
            {
                tracing::error!(error = %e, "cannot store which feeds fail");
            }
            b.audit.push(AuditEntry::change(
                now,
                Actor::Source(f.id.to_string()),
                match &applied {
                    Err(why) => format!("feed {} failing: {why}", f.id),
                    Ok(()) => format!("feed {} read again", f.id),
                },
            ));
            b.audit.push(AuditEntry {
                at: now,
                actor: Actor::Source(f.id.to_string()),
                event: AuditEvent::Alarm {
                    door: None,
                    device: None,
                    alarm: crate::store::AlarmKind::FeedFailing,
                    raised: is,
                },
            });
        }
    }

    /// What an alert feed read: the shelter mode switched as [`kombinat_core::alerts`] says,
    /// the feed's alarm raised or cleared, each logged.
    fn alert(&mut self, i: usize, read: kombinat_core::alerts::AlertRead, b: &mut Batch) {
        use kombinat_core::alerts::AlertAction;
        let feeds = self.config.alert_feeds.len();
        let (what, name) = match self.config.alert_feeds.get(i) {
            Some(f) => ("alert feed", f.id.clone()),
            None => match self.config.alert_inputs.get(i - feeds) {
                Some(d) => ("alert input of node", d.to_string()),
                None => return,
            },
        };
        let now = self.now.wall;
        let mode = self.registry.snapshot().mode();
        let actor = Actor::Source(format!("{ALERT_ACTOR}{name}"));
        for action in self.alert_feeds.read(i, read, mode) {
            match action {
                AlertAction::Mode(mode, why) => {
                    tracing::warn!(source = %name, mode = mode.as_str(), %why, "{what} switches the site mode");
                    b.audit.push(AuditEntry::change(
                        now,
                        actor.clone(),
                        format!("{what} {name}: {why}"),
                    ));
                    if let Err(e) = self.set_mode(mode, actor.clone(), b) {
                        tracing::error!(error = %e, "cannot switch the site mode; asked again at the next read");
                        self.alert_feeds.mode_not_set(mode);
                    }
                }
                AlertAction::Kept(why) => {
                    tracing::warn!(source = %name, %why, "{what}");
                    b.audit.push(AuditEntry::change(
                        now,
                        actor.clone(),
                        format!("{what} {name}: {why}"),
                    ));
                }
                AlertAction::Failing(_, why) => self.alert_alarm(i, &actor, Some(why), b),
                AlertAction::Recovered(_) => self.alert_alarm(i, &actor, None, b),
            }
        }
        self.save_alerts_switched();
    }

    /// A node's power report: its changes logged (mains lost or back, battery low, load shed),
    /// their alarms raised or cleared, and the doors' state worked out again when shedding
    /// starts or ends.
    fn power_report(
        &mut self,
        device: crate::domain::DeviceId,
        mains: bool,
        mv: Option<u32>,
        b: &mut Batch,
    ) {
        use kombinat_core::power::{hours_minutes, PowerChange};
        let now = self.now.wall;
        let changes = self.power.report(device, mains, mv, now.timestamp());
        if changes.is_empty() {
            return;
        }
        // Stored on a change only (a heartbeat's voltage is not worth an SD card write).
        if let Err(e) = self
            .registry
            .store()
            .put_state(POWER_NODES, &self.power.state())
        {
            tracing::error!(error = %e, "cannot store the nodes' power");
        }
        let volts = |mv: u32| format!("{:.2} V", f64::from(mv) / 1000.0);
        let door = self
            .desk
            .devices()
            .find(|(d, _)| d.id == device)
            .and_then(|(d, _)| d.door);
        let place = door
            .and_then(|d| self.site.door_index(d))
            .map(|i| format!(" ({})", self.site.doors[i].name))
            .unwrap_or_default();
        let left = self
            .power
            .left_s(device)
            .map(|s| format!("; {} left at this rate", hours_minutes(s)))
            .unwrap_or_default();
        let mut shed_changed = false;
        for c in changes {
            let (text, alarm) = match c {
                PowerChange::MainsLost(_, mv) => (
                    format!(
                        "mains lost at {device}{place}: on battery{}",
                        mv.map(|v| format!(" at {}", volts(v))).unwrap_or_default()
                    ),
                    Some((crate::store::AlarmKind::MainsLost, true)),
                ),
                PowerChange::MainsBack(_, secs) => (
                    format!(
                        "mains back at {device}{place} after {}",
                        hours_minutes(secs)
                    ),
                    Some((crate::store::AlarmKind::MainsLost, false)),
                ),
                PowerChange::BatteryLow(_, v) => (
                    format!(
                        "battery low at {device}{place}: {} (the line is {}){left}",
                        volts(v),
                        volts(self.power.policy().low_mv)
                    ),
                    Some((crate::store::AlarmKind::BatteryLow, true)),
                ),
                PowerChange::BatteryOk(_) => (
                    format!("battery of {device}{place} no longer low"),
                    Some((crate::store::AlarmKind::BatteryLow, false)),
                ),
                PowerChange::Shed(_, v) => {
                    shed_changed = true;
                    (
                        format!(
                            "load shed at {device}{place}, its battery at {}: {}",
                            volts(v),
                            self.shed_effect(door)
                        ),
                        None,
                    )
                }
                PowerChange::Unshed(_) => {
                    shed_changed = true;
                    (
                        format!("load back at {device}{place}: its door works as before"),
                        None,
                    )
                }
            };
            tracing::warn!(%device, "{text}");
            b.audit
                .push(AuditEntry::change(now, Actor::Device(device), text));
            if let Some((alarm, raised)) = alarm {
                b.audit.push(AuditEntry {
                    at: now,
                    actor: Actor::Device(device),
                    event: AuditEvent::Alarm {
                        door,
                        device: Some(device),
                        alarm,
                        raised,
                    },
                });
            }
        }
        b.refresh = true;
        if shed_changed {
            self.sync_released(now, b);
        }
    }

    /// What shedding a node's load does to its door, in words (the gateway says which doors
    /// it leaves open and which locked).
    fn shed_effect(&self, door: Option<DoorId>) -> String {
        let Some((di, d)) =
            door.and_then(|id| self.site.door_index(id).map(|i| (i, &self.site.doors[i])))
        else {
            return "it serves no door".into();
        };
        if d.egress || self.site.on_shelter_route(di) {
            return format!(
                "{} is on the way out or to the shelter and keeps working",
                d.id
            );
        }
        if d.security_hole() {
            return format!(
                "{} keeps working: a fail-safe lock on a door from the street is never shed (it would let anyone in)",
                d.id
            );
        }
        if self.registry.snapshot().door_locked(di) {
            return format!("{} keeps working: it is locked down", d.id);
        }
        if self.registry.snapshot().mode() == SiteMode::Lockdown {
            return format!(
                "{} stays locked: the site is locked down (shedding opens nothing then)",
                d.id
            );
        }
        match d.fail {
            Some(crate::domain::FailMode::Safe) => format!(
                "{} goes to its mechanical state: fail-safe, it stands unlocked until the load is back",
                d.id
            ),
            Some(crate::domain::FailMode::Secure) => format!(
                "{} goes to its mechanical state: fail-secure, it stays locked at rest and draws power only when opened",
                d.id
            ),
            None => format!(
                "{} keeps working: the site file does not say whether its lock is fail-safe or fail-secure",
                d.id
            ),
        }
    }

    /// Whether door `di` stands released because its node's load is shed: a fail-safe lock off
    /// the way out and the shelter route, whose node's battery fell below the shedding line.
    fn shed_release(&self, di: usize) -> bool {
        let d = &self.site.doors[di];
        d.fail == Some(crate::domain::FailMode::Safe)
            // Never a door from the street, nor one locked down: shedding opens neither.
            && !d.security_hole()
            && !self.registry.snapshot().door_locked(di)
            && !d.egress
            && !self.site.on_shelter_route(di)
            && self
                .desk
                .device_of(d.id)
                .is_some_and(|dev| self.power.shed(dev))
    }

    /// A power feed read well: its windows replace what it said before, each change logged;
    /// bookings that now fall in a room's dark hours are reported (the webhook and the log),
    /// once each.
    fn power_schedule(
        &mut self,
        f: &crate::domain::Feed,
        read: crate::poller::FeedExpanded,
        b: &mut Batch,
    ) -> Result<(), String> {
        let now = self.now.wall;
        let expanded = read.expanded;
        let generator = f.kind == crate::domain::FeedKind::Generator;
        let windows: Vec<(i64, i64)> = expanded
            .occurrences
            .iter()
            .filter(|o| !o.cancelled)
            .map(|o| (o.start.timestamp(), o.end.timestamp()))
            .collect();
        for p in &expanded.problems {
            tracing::warn!(feed = %f.id, problem = %p, "power schedule");
        }
        // A calendar whose every event failed to read says nothing: the last good state stays
        // (as a cut calendar's does) and the feed's alarm is raised.
        if windows.is_empty() && !expanded.problems.is_empty() {
            return Err(format!(
                "no window could be read ({})",
                expanded.problems.join("; ")
            ));
        }
        let before = self.schedules.plan.clone();
        let keep_after = now.timestamp() - i64::from(self.config.occupancy.keep_days) * 86_400;
        self.schedules.plan.set(
            &f.id.to_string(),
            generator,
            windows,
            (read.from.timestamp(), read.until.timestamp()),
            keep_after,
        );
        if self.schedules.plan != before {
            let t = now.timestamp();
            let ahead = self
                .schedules
                .plan
                .dark(crate::domain::RoomSupply::Grid, t, t + 86_400);
            let hours = ahead.iter().map(|(a, b)| b - a).sum::<i64>() as f64 / 3600.0;
            b.audit.push(AuditEntry::change(
                now,
                Actor::Source(f.id.to_string()),
                format!(
                    "power schedule {} read: {} window(s); the grid is cut {hours:.1} h in the next 24 h",
                    f.id,
                    expanded.occurrences.iter().filter(|o| !o.cancelled).count()
                ),
            ));
        }
        self.unpowered_bookings(b);
        self.save_schedules();
        Ok(())
    }

    /// Reports each booking (from now to 60 days on) that falls in its room's dark hours, once
    /// per dark window: to the booking system (the webhook's `booking_unpowered`) and the log.
    fn unpowered_bookings(&mut self, b: &mut Batch) {
        let now = self.now.wall;
        let until = now + chrono::Duration::days(60);
        let snapshot = self.registry.snapshot();
        let booked: Vec<(usize, std::sync::Arc<crate::domain::Booking>)> =
            (0..self.site.rooms.len())
                .filter(|&ri| self.site.rooms[ri].supply != crate::domain::RoomSupply::Backed)
                .flat_map(|ri| {
                    snapshot
                        .bookings_in_room(ri, now, until)
                        .map(move |(bk, _)| (ri, bk.clone()))
                })
                .collect();
        let mut outbox = Vec::new();
        let mut told = Vec::new();
        let mut entries = Vec::new();
        for (ri, booking) in &booked {
            let room = &self.site.rooms[*ri];
            {
                let (start, end) = crate::occupancy::history::booked_span(&self.site, booking);
                for (a, z) in self.schedules.plan.dark(room.supply, start, end) {
                    let key = booking.key.to_string();
                    if self.schedules.told.contains(&(key.clone(), a)) {
                        continue;
                    }
                    told.push((key.clone(), a));
                    let local = |t: i64| {
                        DateTime::from_timestamp(t, 0)
                            .map(|d| {
                                d.with_timezone(&self.site.timezone)
                                    .format("%d.%m %H:%M")
                                    .to_string()
                            })
                            .unwrap_or_default()
                    };
                    entries.push(AuditEntry::change(
                        now,
                        Actor::System,
                        format!(
                            "booking {key} in {} falls in a power outage {}–{} (the room's supply: {}): reported to the booking system",
                            room.id,
                            local(a),
                            local(z),
                            match room.supply {
                                crate::domain::RoomSupply::Grid => "the grid",
                                crate::domain::RoomSupply::Generator => "the generator, not running then",
                                crate::domain::RoomSupply::Backed => "backed",
                            }
                        ),
                    ));
                    if self.config.webhook.is_some() {
                        outbox.push(OutboxEvent {
                            id: 0,
                            kind: "booking_unpowered".into(),
                            at: now,
                            body: serde_json::json!({
                                "v": kombinat_protocol::door::VERSION,
                                "source": booking.key.source.to_string(),
                                "external_id": booking.key.external_id.to_string(),
                                "room": room.id.to_string(),
                                "start": start,
                                "end": end,
                                "dark_from": a,
                                "dark_until": z,
                            })
                            .to_string(),
                        });
                    }
                }
            }
        }
        // Told once each, and only once the booking system's event is queued (tried again at
        // the next look otherwise); forgotten a day after the dark window began.
        if !outbox.is_empty() {
            if let Err(e) = self.registry.store().push_outbox(outbox) {
                tracing::error!(error = %e, "cannot queue the bookings in the dark; tried again");
                return;
            }
        }
        b.audit.extend(entries);
        self.schedules.told.extend(told);
        let old = now.timestamp() - 86_400;
        self.schedules.told.retain(|(_, a)| *a >= old);
    }

    /// Stores the power schedules when they changed.
    fn save_schedules(&mut self) {
        let Ok(v) = serde_json::to_vec(&self.schedules) else {
            return;
        };
        if self.schedules_saved.as_deref() == Some(&v[..]) {
            return;
        }
        match self.registry.store().put_state(POWER_SCHEDULES, &v) {
            Ok(()) => self.schedules_saved = Some(v),
            Err(e) => tracing::error!(error = %e, "cannot store the power schedules"),
        }
    }

    /// An alert feed's alarm raised (`failing`: why it cannot be read) or cleared.
    fn alert_alarm(&mut self, i: usize, actor: &Actor, failing: Option<String>, b: &mut Batch) {
        let now = self.now.wall;
        let Some(id) = self.config.alert_feeds.get(i).map(|f| f.id.clone()) else {
            return;
        };
        let what = match &failing {
            Some(why) => {
                tracing::error!(feed = %id, %why, "alert feed cannot be read; the site mode stays as it is");
                format!("alert feed {id} failing: {why}; the site mode stays as it is")
            }
            None => {
                tracing::info!(feed = %id, "alert feed read again");
                format!("alert feed {id} read again")
            }
        };
        let raised = failing.is_some();
        self.alerts_failing[i] = failing;
        b.audit.push(AuditEntry::change(now, actor.clone(), what));
        b.audit.push(AuditEntry {
            at: now,
            actor: actor.clone(),
            event: AuditEvent::Alarm {
                door: None,
                device: None,
                alarm: crate::store::AlarmKind::AlertFeedFailing,
                raised,
            },
        });
        b.refresh = true;
    }

    /// Stores the alert feeds' state when it changed (not at every read: the SD card).
    fn save_alerts_switched(&mut self) {
        let v = self.alert_feeds.state();
        if self.alerts_saved.as_deref() == Some(&v[..]) {
            return;
        }
        match self.registry.store().put_state(ALERTS_STATE, &v) {
            Ok(()) => self.alerts_saved = Some(v),
            Err(e) => tracing::error!(error = %e, "cannot store the alert feeds' state"),
        }
    }

    fn set_mode(&mut self, mode: SiteMode, by: Actor, b: &mut Batch) -> Result<(), ServiceError> {
        let now = self.now.wall;
        let by_others = !matches!(&by, Actor::Source(s) if s.starts_with(ALERT_ACTOR));
        self.registry.set_mode(mode, by, now)?;
        if by_others && self.alert_feeds.switched() {
            // Staff, the API or a device set the mode: an alert's end leaves it to them.
            self.alert_feeds.mode_set_by_others();
            self.save_alerts_switched();
        }
        self.mode_since = now;
        self.live.set_mode(mode.as_str(), now.timestamp());
        b.replies.push(self.desk.mode_state(mode, now));
        self.sync_released(now, b);
        // The doors' allow-lists must follow the mode (in lockdown only staff are listed).
        self.lists_soon();
        Ok(())
    }

    /// Commands doors released or back to normal as mode and public hours say.
    fn sync_released(&mut self, now: DateTime<Utc>, b: &mut Batch) {
        let mode = self.registry.snapshot().mode();
        if self
            .released_told_at
            .is_none_or(|t| now - t >= RELEASED_EVERY)
        {
            self.released_told_at = Some(now);
            self.resend_doors.extend(self.released.iter().copied());
        }
        let local = self.site.local_time(now);
        let holiday = self.site.holidays.contains(&local.date);
        let served: Vec<DoorId> = self
            .desk
            .served_doors()
            .map(|(d, _)| d)
            .chain(self.adapters.holdable_doors())
            .collect();
        for door in served {
            let Some(di) = self.site.door_index(door) else {
                continue;
            };
            let d = &self.site.doors[di];
            let shed = self.shed_release(di);
            let release = match mode {
                SiteMode::Emergency => d.egress || shed,
                SiteMode::Shelter => self.site.on_shelter_route(di) || shed,
                SiteMode::Lockdown => false,
                // A door locked down on its own does not stand open to the public, nor when
                // its load is shed.
                SiteMode::Normal => {
                    !self.registry.snapshot().door_locked(di)
                        && (shed
                            || !holiday
                                && d.public_hours.as_ref().is_some_and(|h| h.contains(&local)))
                }
            };
            let was = self.released.contains(&door);
            if release != was || !self.intent_at.contains_key(&door) {
                self.intent_at.insert(door, now);
            }
            let differs = self.lock_state_differs(door, release, now);
            let last_sent = self.door_sent.get(&door).copied();
            // A door that differs is sent its state again, at most every RESEND_DIFFERING.
            let retry = differs && last_sent.is_none_or(|t| now - t >= RESEND_DIFFERING);
            // A release is repeated at start, when the node comes back and every few minutes
            // (repeating it harms nothing). "Back to normal" is not repeated blindly: it ends
            // the unlock of someone walking through; a node that stays unlocked past its
            // grant differs, and is told then.
            let again =
                (release && (self.resend_all || self.resend_doors.contains(&door))) || retry;
            if release != was || again {
                let action = if release {
                    Action::Release
                } else {
                    Action::Normal
                };
                // A bound reader's relay is held on a change, and again at start: a Tasmota
                // relay keeps whatever it was told before the gateway's restart.
                let cmds = match self.desk.command(door, action) {
                    Some(cmd) => Some(vec![cmd]),
                    None if release != was || self.resend_all => self.adapters.hold(door, release),
                    None => None,
                };
                if let Some(cmds) = cmds {
                    tracing::debug!(door = %door, ?action, again, "door state sent");
                    b.replies.extend(cmds);
                    self.door_sent.insert(door, now);
                    if release {
                        self.released.insert(door);
                    } else {
                        self.released.remove(&door);
                    }
                }
            }
            if differs != self.lock_differs.contains(&door) {
                tracing::warn!(door = %door, raised = differs, released = release, "the door's lock differs from its state");
                if differs {
                    self.lock_differs.insert(door);
                } else {
                    self.lock_differs.remove(&door);
                }
                b.audit.push(AuditEntry {
                    at: now,
                    actor: Actor::Door(door),
                    event: AuditEvent::Alarm {
                        door: Some(door),
                        device: self.desk.device_of(door),
                        alarm: crate::store::AlarmKind::LockDiffers,
                        raised: differs,
                    },
                });
                b.refresh = true;
            }
        }
        self.resend_all = false;
        self.resend_doors.clear();
        let grace = self.node_time(LOCK_GRACE_MS);
        self.unlock_until.retain(|_, t| *t + grace > now);
    }

    /// Whether a door node's last report contradicts what the gateway holds for its door: it
    /// should stand released and reports its strike locked (a report after the last command
    /// had time to arrive), or it should be locked and has reported the strike unlocked for
    /// longer than any grant (the door's unlock time, an exit press, a remote unlock) with
    /// [`LOCK_GRACE_MS`] to spare.
    fn lock_state_differs(&self, door: DoorId, release: bool, now: DateTime<Utc>) -> bool {
        let Some(s) = self.desk.door_status(door) else {
            return false;
        };
        if self.desk.device_of(door).is_none() {
            return false;
        }
        // Reports made before the intended state changed, or within the grace after, say
        // nothing about whether the node heard the change.
        let intent = self.intent_at.get(&door).copied().unwrap_or(now);
        if release {
            return s.locked && s.at > intent + self.node_time(LOCK_GRACE_MS);
        }
        let Some(since) = s.unlocked_since else {
            return false;
        };
        let since = since.max(intent);
        let unlock = self
            .site
            .door(door)
            .map_or(5_000, |d| d.unlock_ms.max(5_000));
        let granted = since + self.node_time(i64::from(unlock));
        let remote = self.unlock_until.get(&door).copied().unwrap_or(granted);
        now > granted.max(remote) + self.node_time(LOCK_GRACE_MS)
    }

    /// `ms` of a device's own time (a strike's unlock time, a message's way) on the gateway's
    /// clock: the same, but in a simulated day the gateway's clock runs `rate` times as fast
    /// as the nodes' timers (see `Desk::set_time_rate`).
    fn node_time(&self, ms: i64) -> chrono::Duration {
        chrono::Duration::milliseconds((ms as f64 * self.config.clock.rate().max(1.0)) as i64)
    }

    /// Stores the rooms' head counts when they changed since last stored.
    fn save_counts(&mut self, now: DateTime<Utc>) -> Result<(), ServiceError> {
        let t = now.timestamp();
        let counts = self.estimator.carried(t);
        // A changed count is stored at once; a room's last activity alone (it changes with
        // every movement) at most every ten minutes, for the SD card's sake.
        let counts_changed = counts.len() != self.saved_counts.len()
            || counts
                .iter()
                .zip(&self.saved_counts)
                .any(|(a, b)| a.count != b.count);
        if !counts_changed
            && (counts == self.saved_counts || t - self.saved_counts_at < COUNTS_ACTIVITY_EVERY_S)
        {
            return Ok(());
        }
        let saved = SavedCounts {
            at: t,
            rooms: self
                .site
                .rooms
                .iter()
                .zip(&counts)
                .map(|(r, c)| (r.id.to_string(), c.clone()))
                .collect(),
        };
        let bytes = serde_json::to_vec(&saved).unwrap_or_default();
        self.registry.store().put_state(COUNTS_KEY, &bytes)?;
        self.saved_counts = counts;
        self.saved_counts_at = t;
        Ok(())
    }

    fn tick(&mut self, b: &mut Batch) -> Result<(), ServiceError> {
        let now = self.now.wall;
        let at = self.now.at;
        // Counters every MARKS_EVERY, not per message (see there).
        if self.timers.due(Timer::Marks, at) || self.desk.marks_due() {
            self.timers.set(Timer::Marks, at + MARKS_EVERY);
            let mut marks = self.desk.take_marks(now);
            marks.push(crate::domain::DeviceMark {
                at: Some(now),
                ..Default::default()
            });
            self.registry.store().put_marks(&marks)?;
        }
        if self.timers.due(Timer::Counts, at) {
            let every = Duration::from_secs(self.config.occupancy.counts_every_s.into());
            self.timers.set(Timer::Counts, at + every);
            self.save_counts(now)?;
        }
        b.audit.extend(self.desk.check_health(now));
        b.replies.extend(self.adapters.due(now));
        b.refresh = true;
        // Requests from the command line (token add and revoke, backups while the gateway runs).
        self.out.push_back(Effect::ReadSpool);
        self.sync_released(now, b);
        let (online, all) = self.desk.online_count();
        self.stats.devices.store(all as u64, Ordering::Relaxed);
        self.stats
            .devices_online
            .store(online as u64, Ordering::Relaxed);
        self.stats.feeds_failing.store(
            self.feeds_failing.iter().filter(|f| **f).count() as u64,
            Ordering::Relaxed,
        );
        if self.timers.due(Timer::Disk, at) {
            self.timers.set(Timer::Disk, at + DISK_EVERY);
            self.out.push_back(Effect::CheckDisk);
        }
        self.occupancy(now, b);
        self.history(now)?;
        self.no_shows(now, b)?;
        // Bookings made since the schedule was read, checked against its dark hours.
        if now.timestamp() - self.unpowered_at >= UNPOWERED_EVERY_S
            && self.schedules.plan.outages_after(now.timestamp()) > 0
        {
            self.unpowered_at = now.timestamp();
            self.unpowered_bookings(b);
            self.save_schedules();
        }
        // Bookings that ended more than a day ago open nothing: out of memory (they stay in the
        // store). Once an hour.
        if self.timers.due(Timer::Prune, at) {
            self.timers.set(Timer::Prune, at + PRUNE_EVERY);
            let pruned = self
                .registry
                .prune_bookings(now - chrono::Duration::days(1));
            if pruned > 0 {
                tracing::info!(pruned, "past bookings let go from memory");
            }
            // And out of what a start reads (a start loads only bookings ended less than
            // BOOKINGS_KEPT_DAYS ago, but read them all): archived in the store, off the engine.
            let before =
                (now - chrono::Duration::days(crate::registry::BOOKINGS_KEPT_DAYS)).timestamp();
            self.out.push_back(Effect::ArchiveBookings { before });
        }
        if self.timers.due(Timer::Compaction, at) {
            self.timers.set(Timer::Compaction, at + COMPACTION_EVERY);
            let t = now.timestamp();
            let rooms: Vec<crate::domain::RoomId> = self.site.rooms.iter().map(|r| r.id).collect();
            let oc = self.config.occupancy;
            let (merged, dropped) = self.registry.store().compact_history(
                &rooms,
                cut(t, oc.hourly_after_days),
                cut(t, oc.keep_days),
            )?;
            if merged + dropped > 0 {
                tracing::info!(merged, dropped, "occupancy history downsampled");
            }
            if self.config.audit_keep_days > 0 {
                // The access log's retention period: what was written before it goes, and the
                // removal itself is in the log.
                let before = now - chrono::Duration::days(i64::from(self.config.audit_keep_days));
                let key = crate::store::AuditId {
                    micros: u64::try_from(before.timestamp_micros()).unwrap_or(0),
                    seq: 0,
                };
                let removed = self.registry.store().prune_audit(key)?;
                if removed > 0 {
                    tracing::info!(
                        removed,
                        keep_days = self.config.audit_keep_days,
                        "access log past its retention removed"
                    );
                    b.audit.push(AuditEntry::change(
                        now,
                        Actor::System,
                        format!(
                            "access log: {removed} entries older than {} days removed (retention)",
                            self.config.audit_keep_days
                        ),
                    ));
                }
            }
        }
        if self.timers.due(Timer::AllowLists, at)
            && !self.allow_lists_pending
            && self.clock_unsynced.is_none()
            && self.clock_checked
        {
            self.allow_lists_pending = true;
            let every = Duration::from_secs(60 * u64::from(self.config.allowlist_refresh_min));
            self.timers.set(Timer::AllowLists, at + every);
            let doors: Vec<(DoorId, usize)> = self
                .desk
                .served_doors()
                .map(|(d, _)| d)
                .chain(self.adapters.listed_doors())
                .collect::<BTreeSet<DoorId>>()
                .into_iter()
                .filter_map(|d| self.site.door_index(d).map(|i| (d, i)))
                .collect();
            let (from, until) = window(now, self.config.allowlist_hours);
            self.out
                .push_back(Effect::BuildAllowLists(Box::new(ListJob {
                    snapshot: self.registry.snapshot().for_allow_lists(),
                    doors,
                    readers: self.adapters.listed_doors().into_iter().collect(),
                    from,
                    until,
                })));
        }
        Ok(())
    }

    /// Publishes (retained) every room's occupancy that changed, and tells the decision
    /// snapshot, so capacity limits use live counts.
    fn occupancy(&mut self, now: DateTime<Utc>, b: &mut Batch) {
        let t = now.timestamp();
        let closed = self.closed.contains(&self.site.local_time(now));
        self.estimator.tick(t, |_| closed);
        // Which supplies are without power this second (once, not per room).
        let plan = &self.schedules.plan;
        let dark_of = |supply| plan.dark_secs(supply, t, t + 1) > 0;
        let (dark_grid, dark_generator) = (
            dark_of(crate::domain::RoomSupply::Grid),
            dark_of(crate::domain::RoomSupply::Generator),
        );
        for (i, room) in self.site.rooms.iter().enumerate() {
            let e = self.estimator.estimate(i, t);
            let dark = match room.supply {
                crate::domain::RoomSupply::Grid => dark_grid,
                crate::domain::RoomSupply::Generator => dark_generator,
                crate::domain::RoomSupply::Backed => false,
            };
            let ppm = |e: &Estimate| e.co2_ppm.map(|c| c.round() as i64);
            let changed = self.dark_now[i] != dark
                || self.published[i].is_none_or(|p| {
                    p.count != e.count
                        || p.occupied != e.occupied
                        || p.basis != e.basis
                        || ppm(&p) != ppm(&e)
                });
            if !changed {
                continue;
            }
            self.published[i] = Some(e);
            self.dark_now[i] = dark;
            self.registry.set_occupancy(
                i,
                crate::access::capacity_count(e.count, e.basis, e.confidence),
            );
            self.live.set_room(
                i,
                crate::live::RoomNow {
                    room: room.id.to_string(),
                    count: e.count,
                    occupied: e.occupied,
                    confidence: e.confidence,
                    basis: serde_json::to_value(e.basis)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    co2_ppm: e.co2_ppm.map(|c| c.round().max(0.0) as u32),
                    capacity: room.capacity,
                    dark,
                },
            );
            // The booking system hears when a room becomes occupied or empty (through the
            // webhook's outbox; only when there is a webhook to empty it).
            let before = self.occupied[i].replace(e.occupied);
            if self.config.webhook.is_some() && before.is_some_and(|o| o != e.occupied) {
                let body = serde_json::json!({
                    "v": kombinat_protocol::door::VERSION,
                    "room": room.id.to_string(),
                    "occupied": e.occupied,
                    "count": e.count,
                    "basis": e.basis,
                    "at": t,
                })
                .to_string();
                let event = OutboxEvent {
                    id: 0,
                    kind: "occupancy".into(),
                    at: now,
                    body,
                };
                if let Err(err) = self.registry.store().push_outbox(vec![event]) {
                    tracing::error!(error = %err, "cannot queue an occupancy event");
                }
            }
            let msg = Occupancy {
                v: kombinat_protocol::door::VERSION,
                room: room.id,
                count: e.count,
                occupied: e.occupied,
                confidence: e.confidence,
                basis: e.basis,
                co2_ppm: e.co2_ppm.map(|c| c.round().clamp(0.0, 65_535.0) as u16),
                at: t.max(0) as u64,
            };
            b.replies.push(Publish {
                topic: Topic::Occupancy(room.id).to_string(&self.config.mqtt.prefix),
                payload: serde_json::to_vec(&msg).unwrap_or_default(),
                retain: true,
            });
        }
    }

    fn allow_lists_ready(&mut self, lists: Vec<DoorList>, b: &mut Batch) {
        self.allow_lists_pending = false;
        let (doors, entries) = (
            lists.len(),
            lists.iter().map(|l| l.cards.len()).sum::<usize>(),
        );
        let listed: BTreeSet<DoorId> = self.adapters.listed_doors().into_iter().collect();
        let mut user_lists = std::collections::BTreeMap::new();
        for l in lists {
            if listed.contains(&l.door) {
                user_lists.insert(l.door, l.cards.clone());
            }
            if self.desk.device_of(l.door).is_some() {
                // A list still waiting for the same door is replaced by the newer one.
                self.lists_out.retain(|q| q.door != l.door);
                self.lists_out.push_back(l);
            }
        }
        tracing::info!(doors, entries, "allow-list round taken up");
        if listed.is_empty() {
            return;
        }
        let snapshot = self.registry.snapshot();
        let now = self.now.wall;
        let cmds = self.adapters.sync_user_lists(
            &user_lists,
            now,
            std::mem::take(&mut self.full_user_lists),
            |card| {
                snapshot
                    .credential(&crate::domain::Credential::Card(card))
                    .map_or_else(|| card.to_string(), |(rec, _)| rec.member.to_string())
            },
        );
        self.stats
            .user_list_commands
            .fetch_add(cmds.len() as u64, Ordering::Relaxed);
        b.replies.extend(cmds);
        // A reader keeps one window per card: when the first window ends, the next is sent.
        if let Some(end) = self.adapters.next_window_end() {
            let wait = (end as i64 - now.timestamp()).max(0) as u64 + 1;
            self.timers
                .set_earlier(Timer::AllowLists, self.now.at + Duration::from_secs(wait));
        }
        // What the readers hold is kept, so a card that loses its right while the gateway is
        // down is deleted after the restart.
        match serde_json::to_vec(&self.adapters.sent_lists()) {
            Ok(bytes) => {
                if let Err(e) = self.registry.store().put_state(SENT_LISTS, &bytes) {
                    tracing::error!(error = %e, "cannot store the esp-rfid user lists");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode the esp-rfid user lists"),
        }
    }

    /// Feeds every room's estimate to the history recorder and writes the buckets that closed.
    fn history(&mut self, now: DateTime<Utc>) -> Result<(), ServiceError> {
        let t = now.timestamp();
        let mut done: Vec<HistoryBucket> = Vec::new();
        for i in 0..self.site.rooms.len() {
            let e = self.estimator.estimate(i, t);
            self.recorder.observe(i, e.count, e.occupied, t, &mut done);
        }
        if !done.is_empty() {
            self.registry.store().add_history(&done)?;
            self.stats
                .history_buckets
                .fetch_add(done.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Judges the bookings that started lately; a no-show is logged, queued for the booking
    /// system (durably, in the outbox) and published.
    fn no_shows(&mut self, now: DateTime<Utc>, b: &mut Batch) -> Result<(), ServiceError> {
        let t = now.timestamp();
        let from = now - chrono::Duration::seconds(self.judge.lookback());
        let grace = i64::from(self.site.access.booking_grace_before_min) * 60;
        let snapshot = self.registry.snapshot();
        let mut candidates = Vec::new();
        for i in 0..self.site.rooms.len() {
            for (booking, _) in snapshot.bookings_in_room(i, from, now) {
                let (start, end) = crate::occupancy::history::booked_span(&self.site, booking);
                // An empty room in the dark is not a no-show: a booking whose judged time
                // falls in its room's outage is not judged.
                let dark = self.schedules.plan.dark_secs(
                    self.site.rooms[i].supply,
                    start - grace,
                    start + self.judge.after_s(),
                ) > 0;
                if start >= from.timestamp() && start <= t && !dark {
                    candidates.push((i, booking.clone(), start, end));
                }
            }
        }
        let estimator = &self.estimator;
        let observable = &self.observable;
        let verdicts = self.judge.judge(
            candidates
                .iter()
                .map(|(i, bk, s, e)| (*i, bk.as_ref(), *s, *e)),
            t,
            grace,
            |room| {
                observable.get(room).copied().unwrap_or(false)
                    || estimator.watched(room, t, WATCHED_S)
            },
            |room, since| estimator.present_since(room, since, t),
        );
        if verdicts.is_empty() {
            return Ok(());
        }
        let mut outbox = Vec::new();
        for v in verdicts {
            let room = self.site.rooms[v.room].id;
            tracing::info!(booking = %v.key, room = %room, "no-show");
            self.stats.no_shows.fetch_add(1, Ordering::Relaxed);
            let msg = kombinat_protocol::booking::NoShow {
                v: kombinat_protocol::door::VERSION,
                source: v.key.source,
                external_id: v.key.external_id.to_string(),
                room,
                start: v.start.max(0) as u64,
                end: v.end.max(0) as u64,
                judged_at: t.max(0) as u64,
            };
            let body = serde_json::to_string(&msg).unwrap_or_default();
            b.audit.push(AuditEntry {
                at: now,
                actor: Actor::System,
                event: AuditEvent::NoShow {
                    booking: v.key.clone(),
                    room,
                },
            });
            b.replies.push(Publish {
                topic: Topic::Booking(kombinat_protocol::site::BookingEventKind::NoShow)
                    .to_string(&self.config.mqtt.prefix),
                payload: body.clone().into_bytes(),
                retain: false,
            });
            outbox.push(OutboxEvent {
                id: 0,
                kind: "no_show".into(),
                at: now,
                body,
            });
        }
        // Queued before the batch's audit entries are made durable (same flush).
        self.registry.store().push_outbox(outbox)?;
        Ok(())
    }
}
