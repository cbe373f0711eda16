//! The service: `kombinat run`. Starts the embedded broker (or connects to one), the MQTT link
//! and the core, and stops them in order.
//!
//! The core is one thread that owns the gateway state. It takes messages in batches: every tap
//! in a batch is verified and decided, the device counters and all audit entries of the batch
//! are written with one durable flush (group commit), and only then are the signed decisions
//! published and the incoming messages acknowledged. So a decision a door received is always in
//! the audit log, and a message the core did not finish is redelivered by the broker.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kombinat_protocol::door::{Action, DoorTopic};
use kombinat_protocol::room::Occupancy;
use kombinat_protocol::sensor::Measurement;
use kombinat_protocol::Topic;
use rumqttc::{AsyncClient, Publish as MqttPublish, QoS};
use tokio::sync::watch;

use crate::access::allow_list::{allow_list, window};
use crate::access::{decide, Decision, Tap};
use crate::config::{Broker, Config};
use crate::desk::{Desk, Publish, Rejected};
use crate::dialects::{Adapters, Event};
use crate::domain::{DoorId, RoomId, Site, SiteMode};
use crate::gateway::{Gateway, GatewayError};
use crate::link;
use crate::occupancy::detector::PresenceDetector;
use crate::occupancy::estimator::{Carried, Estimate, Estimator};
use crate::occupancy::history::{cut, Recorder};
use crate::occupancy::noshow::Judge;
use crate::store::{Actor, AuditEntry, AuditEvent, HistoryBucket, OutboxEvent, SledStore, Store};

pub use crate::bus::{
    ApiBookingsResult, ApiRefusal, Control, DoorList, Histogram, MemberRefusal, MemberReply, Msg,
    Reply, ServiceError, Stats, LATENCY_BOUNDS, LOW_DISK_BYTES,
};

fn member_refusal(e: GatewayError) -> MemberRefusal {
    match e {
        GatewayError::UnknownMember(m) => MemberRefusal::NotFound(format!("no member {m}")),
        GatewayError::UnknownCredential(c) => MemberRefusal::NotFound(format!("no {c}")),
        GatewayError::MemberExists(_)
        | GatewayError::CredentialTaken(..)
        | GatewayError::AlreadyRevoked(_)
        | GatewayError::EmailTaken(..) => MemberRefusal::Conflict(e.to_string()),
        GatewayError::UnknownPlan(_) | GatewayError::Validity => {
            MemberRefusal::Invalid(e.to_string())
        }
        other => {
            tracing::error!(error = %other, "a member change failed");
            MemberRefusal::Failed
        }
    }
}

/// Writes a backup of `store` to `file` (under a temporary name, synced, then renamed). A
/// backup holds every device key and card number: it is created readable by its owner only
/// (0600), from the first byte.
pub fn write_backup(store: &dyn Store, file: &Path) -> Result<u64, String> {
    let tmp = file.with_extension("partial");
    let result = (|| {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            o.mode(0o600);
            // A partial file left by an earlier failure keeps its old mode: set it again.
            if tmp.exists() {
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| e.to_string())?;
            }
        }
        let f = o.open(&tmp).map_err(|e| e.to_string())?;
        let mut w = std::io::BufWriter::new(f);
        let n = store.export(&mut w).map_err(|e| e.to_string())?;
        let f = w.into_inner().map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, file).map_err(|e| e.to_string())?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A running service.
pub struct Running {
    /// The broker the gateway talks to (the embedded one's address when embedded).
    pub mqtt_addr: SocketAddr,
    /// Live figures.
    pub stats: Arc<Stats>,
    to_core: SyncSender<Msg>,
    stop_link: watch::Sender<bool>,
    /// Ends the embedded broker's guard (and so its clients' connections).
    stop_broker: watch::Sender<bool>,
    /// The embedded broker's guard.
    guard: Option<tokio::task::JoinHandle<()>>,
    core: Option<std::thread::JoinHandle<Result<(), ServiceError>>>,
    core_exited: Option<tokio::sync::oneshot::Receiver<()>>,
    link: Option<tokio::task::JoinHandle<()>>,
    /// The webhook sender: its stop flag and thread.
    webhook: Option<(
        Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
    /// What the webhook sender did.
    pub webhook_stats: Arc<crate::webhook::WebhookStats>,
    /// The feed poller: its stop flag and thread.
    poller: Option<(
        Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
    /// The alert feeds' poller: its stop flag and thread.
    alert_poller: Option<(
        Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
    /// Where the HTTP API listens, if it does.
    pub http_addr: Option<SocketAddr>,
    http: Option<tokio::task::JoinHandle<()>>,
    app_state: crate::http::AppState,
}

impl Running {
    fn ask(
        &self,
        make: impl FnOnce(SyncSender<Result<(), ServiceError>>) -> Control,
    ) -> Result<(), ServiceError> {
        let (tx, rx) = sync_channel(1);
        self.to_core
            .send(Msg::Control(make(tx)))
            .map_err(|_| ServiceError::Stopped)?;
        rx.recv().map_err(|_| ServiceError::Stopped)?
    }

    /// Releases a door's strike for `ms` milliseconds, audited as asked by `by`.
    pub fn unlock(&self, door: DoorId, ms: u32, by: Actor) -> Result<(), ServiceError> {
        self.ask(|reply| Control::Unlock {
            door,
            ms,
            by,
            reply,
        })
    }

    /// Switches the site mode, audited as asked by `by`.
    pub fn set_mode(&self, mode: SiteMode, by: Actor) -> Result<(), ServiceError> {
        self.ask(|reply| Control::SetMode { mode, by, reply })
    }

    /// The HTTP API over this running gateway, to call without a socket (tests use `oneshot`).
    pub fn app(&self) -> axum::Router {
        crate::http::app(self.app_state.clone())
    }

    /// The staff accounts and sessions the API uses.
    pub fn staff(&self) -> Arc<crate::staff::Staff> {
        self.app_state.staff.clone()
    }

    /// Waits until the gateway is connected and subscribed, up to `within`; false if not.
    pub async fn ready(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.stats.link.subscribed.load(Ordering::Relaxed) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Finishes in-flight work, flushes the store, disconnects.
    pub async fn stop(mut self) -> Result<(), ServiceError> {
        for (stop, thread) in [self.poller.take(), self.alert_poller.take()]
            .into_iter()
            .flatten()
        {
            stop.store(true, Ordering::Relaxed);
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let _ = self.to_core.send(Msg::Control(Control::Stop));
        let core = self.core.take();
        let joined = tokio::task::spawn_blocking(move || match core {
            Some(h) => h.join().unwrap_or(Err(ServiceError::Stopped)),
            None => Ok(()),
        });
        let result = match tokio::time::timeout(Duration::from_secs(10), joined).await {
            Ok(r) => r.unwrap_or(Err(ServiceError::Stopped)),
            Err(_) => {
                tracing::error!("the core did not finish within 10 s");
                Err(ServiceError::Stopped)
            }
        };
        let _ = self.stop_link.send(true);
        if let Some(link) = self.link.take() {
            let _ = link.await;
        }
        // After the link said goodbye through it: the embedded broker's clients are let go,
        // and its address is free again when stop returns.
        let _ = self.stop_broker.send(true);
        if let Some(guard) = self.guard.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), guard).await;
        }
        // The HTTP server holds the store: it is gone before stop returns.
        if let Some(http) = self.http.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
        }
        if let Some((stop, thread)) = self.webhook.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        result
    }
}

/// Starts the service: store, snapshot, broker, link, core. Returns once the core runs; the
/// link connects in the background.
pub async fn start(config: Config) -> Result<Running, ServiceError> {
    let now = config.clock.now();
    let site = Arc::new(crate::site_file::load(&config.site)?);
    for w in site.exit_warnings() {
        tracing::warn!(warning = %w, "site file");
    }
    std::fs::create_dir_all(&config.data)
        .map_err(|e| ServiceError::DataDir(config.data.display().to_string(), e))?;
    crate::store::keep_reserve(&config.data);
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&config.data)?);
    if let Err(why) = crate::spool::prepare(&config.data) {
        tracing::error!(%why, "the command line's requests cannot reach the gateway");
    }
    let gateway = Gateway::open(site.clone(), store.clone(), now)?;
    let marks = store.marks()?;
    // Audit entries since the counters were last stored (with a margin) tell the tap counters
    // used after that; every other signed message stores the counters before it is acted on.
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
    let recent = match since {
        Some(s) => store.audit_after(Some(s), usize::MAX)?,
        None => store.audit_after(None, usize::MAX)?,
    };
    desk.recover(&recent);
    // The gateway's counters are at least the time in microseconds: a restored store or a
    // device registered again carries counters its node has already accepted.
    desk.raise_tx_floor(u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0));
    // The gateway's counters jumped ahead (see `Desk::new`): stored at once, so a crash in the
    // next second cannot make it reuse them.
    let mut jumped = desk.all_marks(now);
    jumped.push(crate::domain::DeviceMark {
        at: Some(now),
        ..Default::default()
    });
    store.put_marks(&jumped)?;
    store.flush()?;
    let (stop_broker, broker_stop_rx) = watch::channel(false);
    let guard_stats = Arc::new(crate::broker::guard::GuardStats::default());
    let (embedded, gateway_login) = match config.mqtt.broker {
        Broker::Embedded => {
            let login = embedded_login(&config.mqtt)?;
            let accounts = embedded_accounts(
                &login,
                store.as_ref(),
                &site,
                &config.mqtt.prefix,
                &config.mqtt.accounts,
            )?;
            let (addr, guard) = crate::broker::start_guarded(
                config.mqtt.listen,
                accounts,
                guard_stats.clone(),
                broker_stop_rx,
            )
            .await?;
            (Some((addr, guard)), Some(login))
        }
        Broker::Tcp { .. } => (None, None),
    };
    let (embedded, guard) = match embedded {
        Some((addr, guard)) => (Some(addr), Some(guard)),
        None => (None, None),
    };
    let mut adapters = Adapters::new(&site.bindings, |d| {
        site.door(d).map_or(5000, |x| x.unlock_ms)
    });
    if let Some(bytes) = store.state(SENT_LISTS)? {
        match serde_json::from_slice::<Vec<crate::dialects::UserList>>(&bytes) {
            Ok(lists) => adapters.restore_sent(lists),
            // Then every card is sent again in full, which is safe.
            Err(e) => tracing::warn!(error = %e, "the stored esp-rfid user lists do not decode"),
        }
    }
    let mut filters = kombinat_protocol::topic::gateway_filters(&config.mqtt.prefix);
    filters.extend(adapters.filters());
    let observable = rooms_with_readers(&site, &desk, &adapters);
    let (host, port, tls) = link::target(&config.mqtt, embedded);
    let mut options = link::options(&config.mqtt, &host, port, tls).map_err(ServiceError::Mqtt)?;
    if let Some((user, password)) = &gateway_login {
        options.set_credentials(user, password);
    }
    let (client, eventloop) = AsyncClient::new(options, 1024);
    let stats = Arc::new(Stats {
        guard: guard_stats,
        ..Default::default()
    });
    stats
        .core_alive_at
        .store(Utc::now().timestamp().max(0) as u64, Ordering::Relaxed);
    let (to_core, from_link) = sync_channel::<Msg>(link::QUEUE);
    let (stop_link, stop_rx) = watch::channel(false);
    let link = tokio::spawn(link::run(
        eventloop,
        client.clone(),
        filters,
        Duration::from_secs(u64::from(config.mqtt.keep_alive_s)),
        to_core.clone(),
        stats.link.clone(),
        stop_rx,
    ));
    let mqtt_addr = format!("{host}:{port}")
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], port)));
    let rooms = site.rooms.len();
    let recorder = Recorder::new(site.rooms.iter().map(|r| r.id).collect());
    // Which feeds' alarms are raised survives a restart, so a raised alarm is cleared (and not
    // raised twice) afterwards.
    let failing_before: Vec<String> = store
        .state(FEEDS_FAILING)?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let feeds_failing: Vec<bool> = site
        .feeds
        .iter()
        .map(|f| failing_before.contains(&f.id.to_string()))
        .collect();
    let judge = Judge::new(config.occupancy.no_show_after_min, now.timestamp());
    let live = Arc::new(crate::live::Live::new(&site));
    let staff = Arc::new(crate::staff::Staff::load(
        store.clone(),
        config.clock.session_now(),
    )?);
    let estimator = restored_estimator(&site, store.as_ref(), rooms, now);
    let config_alert_feeds = config.alert_feeds.len();
    let alert_feeds = match store.state(ALERTS_STATE).ok().flatten() {
        Some(v) => kombinat_core::alerts::AlertFeeds::restore(config_alert_feeds, &v),
        None => kombinat_core::alerts::AlertFeeds::new(config_alert_feeds, false),
    };
    let core = Core {
        live: live.clone(),
        backups: Arc::default(),
        spool_unwritable: BTreeSet::new(),
        mode_since: now,
        gateway,
        desk,
        client,
        rt: tokio::runtime::Handle::current(),
        site,
        config,
        stats: stats.clone(),
        to_core: to_core.clone(),
        next_allow_lists: Instant::now(),
        next_prune: Instant::now(),
        allow_lists_pending: false,
        released: BTreeSet::new(),
        resend_all: true,
        resend_doors: BTreeSet::new(),
        door_sent: BTreeMap::new(),
        unlock_until: BTreeMap::new(),
        lock_differs: BTreeSet::new(),
        intent_at: BTreeMap::new(),
        released_told_at: None,
        // What was taken up counts as stored: a gateway that restarts again and again does
        // not refresh the stored time of counts it never saw change.
        saved_counts: estimator.carried(now.timestamp()),
        lists_out: std::collections::VecDeque::new(),
        saved_counts_at: now.timestamp(),
        estimator,
        alerts_failing: (0..config_alert_feeds)
            .map(|i| {
                alert_feeds
                    .failing(i)
                    .then(|| "it could not be read before the gateway restarted".to_string())
            })
            .collect(),
        alert_feeds,
        alerts_saved: None,
        next_counts: Instant::now(),
        recorder,
        judge,
        observable,
        adapters,
        full_user_lists: true,
        feeds_failing,
        disk_low: false,
        next_size: Instant::now(),
        next_marks: Instant::now(),
        occupied: vec![None; rooms],
        next_compaction: Instant::now(),
        closed: crate::domain::WeeklySchedule::parse([CLOSED]).unwrap_or_default(),
        published: vec![None; rooms],
    };
    // The HTTP port first: if it is taken, nothing else has been started yet.
    let http_listener = match core.config.http {
        None => None,
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| ServiceError::Http(format!("cannot listen on {addr}: {e}")))?,
        ),
    };
    let webhook_stats = Arc::new(crate::webhook::WebhookStats::default());
    let webhook = match core.config.webhook.clone() {
        None => None,
        Some(cfg) => {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (store, stats, flag) = (store.clone(), webhook_stats.clone(), stop.clone());
            let thread = std::thread::Builder::new()
                .name("webhook".into())
                .spawn(move || {
                    crate::webhook::run(store, cfg, crate::webhook::Backoff::default(), flag, stats)
                })
                .map_err(|_| ServiceError::Stopped)?;
            Some((stop, thread))
        }
    };
    let poller = if core.site.feeds.is_empty() {
        None
    } else {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (feeds, tx, flag) = (core.site.feeds.clone(), to_core.clone(), stop.clone());
        let (tz, clock) = (core.site.timezone, core.config.clock);
        let thread = std::thread::Builder::new()
            .name("feeds".into())
            .spawn(move || {
                let deliver = |feed, fetched| {
                    tx.send(Msg::Control(Control::Feed { feed, fetched }))
                        .is_ok()
                };
                crate::poller::run(feeds, tz, clock, deliver, flag)
            })
            .map_err(|_| ServiceError::Stopped)?;
        Some((stop, thread))
    };
    let alert_poller = if core.config.alert_feeds.is_empty() {
        None
    } else {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (feeds, tx, flag) = (
            core.config.alert_feeds.clone(),
            to_core.clone(),
            stop.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("alert-feeds".into())
            .spawn(move || {
                let deliver =
                    |feed, read| tx.send(Msg::Control(Control::Alert { feed, read })).is_ok();
                crate::alert_poller::run(feeds, deliver, flag)
            })
            .map_err(|_| ServiceError::Stopped)?;
        Some((stop, thread))
    };
    let app_state = crate::http::AppState {
        store: store.clone(),
        to_core: to_core.clone(),
        site: core.site.clone(),
        stats: stats.clone(),
        live,
        staff,
        secure_cookie: core.config.secure_cookie,
        clock: core.config.clock,
        trusted_proxies: core.config.trusted_proxies.clone(),
        booking_rate: Arc::default(),
    };
    let (http_addr, http) = match http_listener {
        None => (None, None),
        Some(listener) => {
            let local = listener.local_addr().ok();
            let app = crate::http::app(app_state.clone());
            let mut stop = stop_link.subscribe();
            let server = tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.changed().await;
                };
                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %e, "the HTTP server stopped");
                }
            });
            (local, Some(server))
        }
    };
    let (exited_tx, core_exited) = tokio::sync::oneshot::channel();
    let core = std::thread::Builder::new()
        .name("kombinat-core".into())
        .spawn(move || {
            let r = core.run(from_link);
            let _ = exited_tx.send(());
            r
        })
        .map_err(|_| ServiceError::Stopped)?;
    Ok(Running {
        mqtt_addr,
        stats,
        to_core,
        stop_link,
        stop_broker,
        guard,
        core: Some(core),
        core_exited: Some(core_exited),
        link: Some(link),
        webhook,
        webhook_stats,
        poller,
        alert_poller,
        http_addr,
        http,
        app_state,
    })
}

/// Runs the service until `shutdown` completes, then stops it cleanly.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServiceError> {
    let mut running = start(config).await?;
    tracing::info!(mqtt = %running.mqtt_addr, "kombinat running");
    let core_gone = running.core_exited.take();
    let _watchdog = AbortOnDrop(tokio::spawn(systemd(running.stats.clone())));
    tokio::select! {
        _ = shutdown => tracing::info!("stopping"),
        _ = async { if let Some(rx) = core_gone { let _ = rx.await; } } => {
            tracing::error!("the gateway core stopped on its own; shutting down");
        }
    }
    crate::sdnotify::notify("STOPPING=1");
    running.stop().await
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Tells systemd the gateway is ready once it is subscribed to the broker (or after 60 s, so a
/// broker that is down does not keep the unit "activating": the doors then decide from their
/// allow-lists), then feeds the watchdog while the core ticks.
async fn systemd(stats: Arc<Stats>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !stats.link.subscribed.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crate::sdnotify::notify("READY=1");
    let Some(every) = crate::sdnotify::watchdog_every() else {
        return;
    };
    loop {
        tokio::time::sleep(every).await;
        let alive = stats.core_alive_at.load(Ordering::Relaxed) as i64;
        // A core that has not ticked for 10 s is stuck: stay silent and let systemd restart it.
        if Utc::now().timestamp() - alive <= 10 {
            crate::sdnotify::notify("WATCHDOG=1");
        } else {
            tracing::error!("the core has not ticked for over 10 s; not feeding the watchdog");
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

/// The gateway's own account on the embedded broker: `mqtt.username` and `mqtt.password` when
/// set, else its client id and a password made for this run, which lives only in this process.
/// It is the gateway's alone (an account is its client id: a tool signing in with it would take
/// the gateway's connection); tools on the Pi get their own in `[[mqtt.accounts]]`.
fn embedded_login(cfg: &crate::config::Mqtt) -> Result<(String, String), ServiceError> {
    let user = cfg
        .username
        .clone()
        .unwrap_or_else(|| cfg.client_id.clone());
    let password = match &cfg.password {
        Some(p) => p.clone(),
        None => crate::staff::generate_password().map_err(ServiceError::Mqtt)?,
    };
    Ok((user, password))
}

/// The embedded broker's accounts: those `kombinat device mosquitto-config` would write, with the
/// same passwords and topic limits (the gateway's, one per device, one per off-the-shelf device,
/// the read-only observer's), and the configuration's own (`extra`).
fn embedded_accounts(
    (user, password): &(String, String),
    store: &dyn Store,
    site: &Site,
    prefix: &str,
    extra: &[crate::config::BrokerAccount],
) -> Result<crate::broker::guard::Accounts, ServiceError> {
    use crate::broker::guard::{Account, Accounts, DEVICE_BUDGET};
    let mut accounts = Accounts::default();
    let everything = vec!["#".to_string()];
    accounts
        .add(
            user,
            Account {
                password: password.clone(),
                write: everything.clone(),
                read: everything,
                budget: None,
            },
        )
        .map_err(ServiceError::Mqtt)?;
    for d in store.devices()? {
        let (write, read) = crate::mosquitto::device_topics(&d, prefix);
        let account = Account {
            password: crate::mosquitto::broker_password(&d.key),
            write,
            read,
            budget: Some(DEVICE_BUDGET),
        };
        accounts
            .add(d.id.as_str(), account)
            .map_err(ServiceError::Mqtt)?;
    }
    for a in extra {
        let account = Account {
            password: a.password.clone(),
            write: a.write.clone(),
            read: a.read.clone(),
            budget: Some(DEVICE_BUDGET),
        };
        accounts.add(&a.user, account).map_err(ServiceError::Mqtt)?;
    }
    let secret = crate::mosquitto::binding_secret(store).map_err(ServiceError::Mqtt)?;
    for b in crate::mosquitto::binding_accounts(&site.bindings, &secret, prefix) {
        let (write, read) = b.topics;
        let account = Account {
            password: b.password,
            write,
            read,
            budget: Some(DEVICE_BUDGET),
        };
        accounts.add(&b.user, account).map_err(ServiceError::Mqtt)?;
    }
    Ok(accounts)
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

/// A batch this big means a flood: the core lets the next one gather for [`GATHER`].
const BUSY_BATCH: usize = 64;
/// See [`BUSY_BATCH`].
const GATHER: Duration = Duration::from_micros(500);

/// How long the core waits for room in the MQTT client's queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

struct Core {
    gateway: Gateway,
    desk: Desk,
    client: AsyncClient,
    rt: tokio::runtime::Handle,
    site: Arc<Site>,
    config: Config,
    stats: Arc<Stats>,
    to_core: SyncSender<Msg>,
    next_allow_lists: Instant,
    next_prune: Instant,
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
    /// The head counts last stored (under [`COUNTS_KEY`]), to store them only when changed.
    saved_counts: Vec<Carried>,
    /// When they were stored (Unix seconds).
    saved_counts_at: i64,
    next_counts: Instant,
    /// Allow-lists waiting to be published, a few per batch.
    lists_out: std::collections::VecDeque<DoorList>,
    closed: crate::domain::WeeklySchedule,
    /// The occupancy last published per room.
    published: Vec<Option<Estimate>>,
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
    next_compaction: Instant,
    /// Per feed: whether its alarm is raised.
    feeds_failing: Vec<bool>,
    /// The disk-low alarm is up.
    disk_low: bool,
    /// When the store's size is read next.
    next_size: Instant,
    /// When the devices' counters and the "as of" mark are stored next.
    next_marks: Instant,
    /// Per room: the occupied flag last seen (for occupancy events to the booking system).
    occupied: Vec<Option<bool>>,
    /// What the dashboard shows live.
    live: Arc<crate::live::Live>,
    /// Backup requests being written.
    backups: Arc<Mutex<BTreeSet<std::path::PathBuf>>>,
    /// Command-line requests the gateway could not take up (said once each).
    spool_unwritable: BTreeSet<std::path::PathBuf>,
}

/// What one batch has to write and then send.
#[derive(Default)]
struct Batch {
    decisions: Vec<(Decision, Option<u64>)>,
    /// When each decision's message reached the link (for the latency histogram).
    arrivals: Vec<Instant>,
    audit: Vec<AuditEntry>,
    /// Signed messages other than taps were accepted: their counters are not in the log, so
    /// the counters are written with this batch.
    marks: bool,
    /// Answers to requests, sent once the batch is durable.
    answers: Vec<(Reply, Result<(), ServiceError>)>,
    /// Answers to member changes, sent once the batch is durable.
    answers_member: Vec<(MemberReply, Result<(), MemberRefusal>)>,
    replies: Vec<Publish>,
    acks: Vec<MqttPublish>,
    /// Door states, device health or alarms may have changed: the live view is refreshed.
    refresh: bool,
}

impl Core {
    /// What the gateway keeps retained on the broker: its own status, the site mode, the Home
    /// Assistant configs, every room's occupancy; allow-lists follow from their worker.
    fn announce(&mut self, b: &mut Batch) {
        b.replies.push(Publish {
            topic: crate::ha::gateway_status_topic(&self.config.mqtt.prefix),
            payload: br#"{"v":1,"state":"online"}"#.to_vec(),
            retain: true,
        });
        let mode = self.gateway.snapshot().mode();
        self.live
            .set_mode(mode.as_str(), self.mode_since.timestamp());
        b.replies.push(self.desk.mode_state(mode, self.mode_since));
        b.replies
            .extend(crate::ha::discovery(&self.site, &self.config.mqtt.prefix));
        b.replies.extend(self.adapters.configure_relays());
        self.published.iter_mut().for_each(|p| *p = None);
        self.next_allow_lists = Instant::now();
    }

    fn run(mut self, rx: Receiver<Msg>) -> Result<(), ServiceError> {
        let mut first = Batch::default();
        self.announce(&mut first);
        // The head counts taken up are out at once, on the broker and in the live view: a
        // dashboard or a client asking right after the start does not see an empty building.
        self.occupancy(self.config.clock.now(), &mut first);
        first.refresh = true;
        self.commit(first)?;
        let mut last_tick = Instant::now();
        let mut stopping = false;
        let mut last_batch = 0usize;
        while !stopping {
            // Under a flood (a big batch just now) the core lets messages gather for a moment
            // instead of being woken for each one: every wake-up costs the link a system call
            // and a lock. A quiet gateway (taps, a few readings) never waits here.
            if last_batch >= BUSY_BATCH {
                std::thread::sleep(GATHER);
            }
            let mut wait = Duration::from_secs(1).saturating_sub(last_tick.elapsed());
            if !self.lists_out.is_empty() {
                wait = wait.min(LISTS_EVERY);
            }
            let mut msgs = Vec::new();
            match rx.recv_timeout(wait) {
                Ok(m) => msgs.push(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while msgs.len() < 512 {
                match rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(_) => break,
                }
            }
            last_batch = msgs.len();
            let mut batch = Batch::default();
            let taken = Instant::now();
            // One update of the shared queue count per batch, not per message: the link
            // thread writes the same counter, and the cache line would bounce between them.
            let publishes = msgs
                .iter()
                .filter(|m| matches!(m, Msg::Publish(..)))
                .count();
            self.stats
                .link
                .queued
                .fetch_sub(publishes, Ordering::Relaxed);
            for m in msgs {
                match m {
                    Msg::Publish(p, at) => {
                        let before = batch.decisions.len();
                        self.take(&p, &mut batch);
                        let answered = batch.decisions.len() - before;
                        batch.arrivals.extend(std::iter::repeat_n(at, answered));
                        batch.acks.push(p);
                    }
                    Msg::Control(Control::Stop) => stopping = true,
                    Msg::Control(c) => self.control(c, &mut batch),
                    Msg::AllowLists(lists) => self.allow_lists_ready(lists, &mut batch),
                    Msg::Resync => self.announce(&mut batch),
                }
            }
            if stopping {
                // Finish what was queued before the stop.
                while let Ok(Msg::Publish(p, at)) = rx.try_recv() {
                    self.stats.link.queued.fetch_sub(1, Ordering::Relaxed);
                    let before = batch.decisions.len();
                    self.take(&p, &mut batch);
                    let answered = batch.decisions.len() - before;
                    batch.arrivals.extend(std::iter::repeat_n(at, answered));
                    batch.acks.push(p);
                }
            }
            self.stats
                .take_ns
                .fetch_add(taken.elapsed().as_nanos() as u64, Ordering::Relaxed);
            if last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = Instant::now();
                self.tick(&mut batch)?;
            }
            self.commit(batch)?;
        }
        // A clean stop: the retained status says offline now (the last will fires only when
        // the gateway vanishes), sent before the link's DISCONNECT.
        self.publish(&Publish {
            topic: crate::ha::gateway_status_topic(&self.config.mqtt.prefix),
            payload: br#"{"v":1,"state":"offline"}"#.to_vec(),
            retain: true,
        });
        let mut marks = self.desk.take_marks(self.config.clock.now());
        marks.push(crate::domain::DeviceMark {
            at: Some(self.config.clock.now()),
            ..Default::default()
        });
        self.gateway.store().put_marks(&marks)?;
        self.save_counts(self.config.clock.now())?;
        // The open history buckets: merged with their continuation after a restart.
        let open = self.recorder.flush(self.config.clock.now().timestamp());
        self.gateway.store().add_history(&open)?;
        self.gateway.store().flush()?;
        tracing::info!("core stopped, store flushed");
        Ok(())
    }

    /// Writes the batch durably, then publishes and acknowledges.
    fn commit(&mut self, batch: Batch) -> Result<(), ServiceError> {
        let started = Instant::now();
        let refresh = batch.refresh || !batch.audit.is_empty();
        if batch.marks {
            let marks = self.desk.take_marks(self.config.clock.now());
            self.gateway.store().put_marks(&marks)?;
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
            if self.config.clock.now().timestamp() - self.saved_counts_at >= COUNTS_WITH_LOG_S {
                self.save_counts(self.config.clock.now())?;
            }
            if let Err(e) = self.gateway.record(&batch.decisions, batch.audit) {
                // Nothing is published that is not in the log: the core stops (and with it the
                // process), the doors fall back to their allow-lists, and a restart rebuilds
                // from the store.
                tracing::error!(error = %e, "cannot write the audit log; stopping");
                for (tx, _) in batch.answers {
                    let _ = tx.send(Err(ServiceError::Stopped));
                }
                return Err(e.into());
            }
        } else if batch.marks {
            self.gateway.store().flush()?;
        }
        for (tx, r) in batch.answers {
            let _ = tx.send(r);
        }
        for (tx, r) in batch.answers_member {
            let _ = tx.send(r);
        }
        if !batch.decisions.is_empty() {
            if let Ok(mut m) = self.stats.by_reason.lock() {
                for (d, _) in &batch.decisions {
                    *m.entry(d.reason.code()).or_insert(0) += 1;
                }
            }
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
        let written = Instant::now();
        for r in &batch.replies {
            self.publish(r);
        }
        // Allow-lists go out a few at a time after the batch's own messages: a round for a
        // campus (a thousand doors, up to 256 KB each) sent at once held the decisions behind it
        // for seconds.
        // They are signed here, as they go, so a round costs the core one list at a time.
        let mut bytes = 0;
        while bytes < LIST_BYTES_PER_BATCH {
            let Some(l) = self.lists_out.pop_front() else {
                break;
            };
            if let Some(p) = self.desk.allow_list(l.door, l.from, l.until, l.cards) {
                bytes += p.payload.len();
                self.publish(&p);
                self.stats.allow_lists.fetch_add(1, Ordering::Relaxed);
            }
        }
        for at in &batch.arrivals {
            self.stats.decision_latency.observe(at.elapsed());
        }
        // QoS 0 messages (sensor readings, mostly) take no acknowledgement.
        for p in batch.acks.iter().filter(|p| p.qos != QoS::AtMostOnce) {
            let r = self
                .rt
                .block_on(async { tokio::time::timeout(SEND_TIMEOUT, self.client.ack(p)).await });
            if !matches!(r, Ok(Ok(()))) {
                tracing::warn!("cannot acknowledge a message; the broker will send it again");
            }
        }
        if !batch.decisions.is_empty() {
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            self.stats
                .write_ns
                .fetch_add((written - started).as_nanos() as u64, Ordering::Relaxed);
            self.stats
                .send_ns
                .fetch_add(written.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    fn publish(&self, p: &Publish) {
        // A packet over the link's limit would be a fatal error of the connection, sent again
        // after every reconnect: never handed to the client.
        if p.topic.len() + p.payload.len() + 16 > crate::link::MAX_PACKET {
            self.stats.oversized.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                topic = %p.topic,
                bytes = p.payload.len(),
                "a message over the broker link's packet limit; not sent"
            );
            return;
        }
        // The client's queue only fills when the broker is gone for long; then the message is
        // dropped (doors fall back to their allow-lists) rather than the core stalling.
        let r = self.rt.block_on(async {
            tokio::time::timeout(
                SEND_TIMEOUT,
                self.client.publish(
                    p.topic.clone(),
                    QoS::AtLeastOnce,
                    p.retain,
                    p.payload.clone(),
                ),
            )
            .await
        });
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(topic = %p.topic, error = %e, "cannot publish"),
            Err(_) => {
                tracing::error!(topic = %p.topic, "the MQTT client's queue is full; not sent")
            }
        }
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
        let now = self.config.clock.now();
        let field = |k: &str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let has = |k: &str| fields.contains_key(k);
        // A card another member holds is a clash, not a mistake in the request.
        let id_given = field("id").unwrap_or_default();
        for c in field("cards").unwrap_or_default().split(';') {
            let Ok(card) = crate::domain::CardId::parse(c.trim()) else {
                continue;
            };
            let cred = crate::domain::Credential::Card(card);
            if let Some((r, _)) = self.gateway.snapshot().credential(&cred) {
                if r.revoked_at.is_none() && r.member.to_string() != id_given {
                    return Err(MemberRefusal::Conflict(format!(
                        "card {card} is held by member {}",
                        r.member
                    )));
                }
            }
        }
        let row = crate::import::member_row(self.gateway.snapshot(), &field, &has)
            .map_err(MemberRefusal::Invalid)?;
        let id = row.member.id;
        let known = self.gateway.snapshot().member(id).is_some();
        match (create, known) {
            (true, true) => {
                return Err(MemberRefusal::Conflict(format!("member {id} exists")));
            }
            (false, false) => return Err(MemberRefusal::NotFound(format!("no member {id}"))),
            (true, false) => self.gateway.add_member(row.member, by.clone(), now),
            (false, true) => self.gateway.update_member(row.member, by.clone(), now),
        }
        .map_err(member_refusal)?;
        if let Some(s) = fields.get("suspended") {
            let reason = Some(s.trim().to_string()).filter(|r| !r.is_empty());
            let suspended = matches!(
                self.gateway.snapshot().member(id).map(|m| &m.status),
                Some(crate::domain::MemberStatus::Suspended { .. })
            );
            if reason.is_some() || suspended {
                self.gateway
                    .set_suspended(id, reason, by.clone(), now)
                    .map_err(member_refusal)?;
            }
        }
        for c in row.cards {
            let cred = crate::domain::Credential::Card(c);
            let held = self
                .gateway
                .snapshot()
                .credential(&cred)
                .is_some_and(|(r, _)| r.member == id && r.revoked_at.is_none());
            if !held {
                self.gateway
                    .add_credential(id, cred, by.clone(), now)
                    .map_err(member_refusal)?;
            }
        }
        Ok(())
    }

    /// Writes a backup for a command-line request on its own thread (the log is read
    /// without holding up the doors), then answers the request.
    fn backup(&mut self, request: std::path::PathBuf, by: String) {
        if let Ok(mut b) = self.backups.lock() {
            b.insert(request.clone());
        }
        let store = self.gateway.store_arc();
        let running = self.backups.clone();
        let spawned = std::thread::Builder::new()
            .name("backup".into())
            .spawn(move || {
                let file = crate::spool::backup_file(&request);
                let r = write_backup(store.as_ref(), &file).map(|n| {
                    tracing::info!(records = n, by = %by, file = %file.display(), "backup written");
                });
                crate::spool::done(&request, &r);
                if let Ok(mut b) = running.lock() {
                    b.remove(&request);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the backup");
        }
    }

    /// A decision as the dashboard shows it.
    fn decision_now(&self, d: &Decision) -> crate::live::DecisionNow {
        let snapshot = self.gateway.snapshot();
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
    fn refresh_live(&self) {
        use crate::live::{AlarmNow, DeviceNow, DoorNow};
        let now = self.config.clock.now().timestamp();
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
            });
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
            });
        }
        devices.sort_by(|a, b| a.device.cmp(&b.device));
        if self.disk_low {
            alarms.push(AlarmNow {
                alarm: "disk_low".into(),
                door: None,
                device: None,
                feed: None,
                since: now,
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
                });
            }
        }
        self.live.set_doors(doors);
        self.live.set_alarms(alarms);
        self.live.set_devices(devices);
    }

    fn reject(&mut self, topic: &str, r: Rejected) {
        let sender = crate::desk::sender(topic, &r);
        if self.desk.malformed.count(&sender, &r, Instant::now()) {
            tracing::warn!(%sender, %topic, reason = r.label(), error = %r, "refused a message");
        }
    }

    /// Handles one publish from the broker into the batch.
    fn take(&mut self, p: &MqttPublish, b: &mut Batch) {
        let now = self.config.clock.now();
        if p.topic == crate::ha::STATUS_TOPIC {
            if p.payload.as_ref() == b"online" {
                b.replies
                    .extend(crate::ha::discovery(&self.site, &self.config.mqtt.prefix));
            }
            return;
        }
        if let Some(r) = self.adapters.handle(&p.topic, &p.payload, p.retain, now) {
            match r {
                Ok(outcome) => self.device_outcome(outcome, now, b),
                Err(r) => self.reject(&p.topic, r),
            }
            return;
        }
        let topic = match Topic::parse(&self.config.mqtt.prefix, &p.topic) {
            Ok(t) => t,
            Err(_) => return self.reject(&p.topic, Rejected::Topic),
        };
        let result = match topic {
            Topic::Door(door, DoorTopic::Tap) => self
                .desk
                .handle_tap(self.gateway.snapshot(), door, &p.payload, now)
                .map(|o| {
                    b.decisions.push((o.decision, Some(o.tap)));
                    b.replies.push(o.reply);
                }),
            Topic::Door(door, DoorTopic::State) => self
                .desk
                .handle_door_state(door, &p.payload, now)
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
                .handle_offline_log(self.gateway.snapshot(), door, &p.payload, now)
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
                self.desk
                    .handle_status(device, &p.payload, now)
                    .map(|alarms| {
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
                .handle_reading(device, &p.payload, now)
                .map(|(room, m)| self.reading(room, m, now)),
            Topic::ModeSet => match self.desk.handle_mode_set(&p.payload, now) {
                Ok((mode, device)) => {
                    // The feed's counter is durable before the change it asked for, so the
                    // message cannot be replayed after a crash.
                    let marks = self.desk.take_marks(now);
                    if let Err(e) = self.gateway.store().put_marks(&marks) {
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
            self.reject(&p.topic, r);
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
            self.next_allow_lists = Instant::now();
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
                    let d = decide(self.gateway.snapshot(), &tap, now);
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
                        .gateway
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
                            let until = self.config.clock.now() + self.node_time(i64::from(ms));
                            self.unlock_until.insert(door, until);
                            (Some(vec![cmd]), format!("for {ms} ms"))
                        }
                        // A bound reader opens for its own time, whatever was asked.
                        None => (
                            self.adapters.unlock(door, ms, self.config.clock.now()),
                            self.adapters.unlock_ms(door).map_or_else(
                                || "for the reader's own unlock time".to_string(),
                                |t| format!("for {t} ms (the relay's pulse time)"),
                            ),
                        ),
                    };
                    match cmds {
                        Some(cmds) => {
                            b.audit.push(AuditEntry::change(
                                self.config.clock.now(),
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
                self.next_allow_lists = Instant::now();
                self.full_user_lists = true;
                b.answers_member.push((reply, r));
            }
            Control::RevokeCard { card, by, reply } => {
                let cred = crate::domain::Credential::Card(card);
                let r = match self
                    .gateway
                    .revoke_credential(cred, by, self.config.clock.now())
                {
                    Ok(()) => {
                        self.next_allow_lists = Instant::now();
                        self.full_user_lists = true;
                        Ok(())
                    }
                    Err(e) => Err(member_refusal(e)),
                };
                b.answers_member.push((reply, r));
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
                    match crate::import::booking_fields(self.gateway.snapshot(), &source, &field) {
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
                let kept_from = (self.config.clock.now()
                    - chrono::Duration::days(crate::gateway::BOOKINGS_KEPT_DAYS))
                .timestamp();
                let store = self.gateway.store_arc();
                let snapshot = self.gateway.snapshot();
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
                let r = if !problems.is_empty() {
                    Err(ApiRefusal::Invalid(problems))
                } else if good.is_empty() {
                    Ok(crate::gateway::ImportCounts {
                        unchanged: skipped,
                        ..Default::default()
                    })
                } else {
                    let what = format!("REST API ({} bookings)", good.len());
                    match self
                        .gateway
                        .import_bookings(good, &what, actor, self.config.clock.now())
                    {
                        Ok(mut c) => {
                            if c.added + c.updated > 0 {
                                self.next_allow_lists = Instant::now();
                            }
                            c.unchanged += skipped;
                            Ok(c)
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot write bookings from the API");
                            Err(ApiRefusal::Failed)
                        }
                    }
                };
                let _ = reply.send(r);
            }
            Control::ApiCancel { key, actor, reply } => {
                let r = match self.gateway.store().booking(&key) {
                    Err(e) => Err(e.to_string()),
                    Ok(None) => Ok(false),
                    Ok(Some(mut bk)) => {
                        bk.status = crate::domain::BookingStatus::Cancelled;
                        let what = format!("REST API cancel of {key}");
                        match self.gateway.import_bookings(
                            vec![bk],
                            &what,
                            actor,
                            self.config.clock.now(),
                        ) {
                            Ok(_) => {
                                self.next_allow_lists = Instant::now();
                                Ok(true)
                            }
                            Err(e) => Err(e.to_string()),
                        }
                    }
                };
                let _ = reply.send(r);
            }
            Control::Stop => {}
        }
    }

    /// A calendar feed read by the poller: expanded, reconciled with what it booked before,
    /// written (one transaction), and the doors' lists pushed again. A feed that cannot be read
    /// or parsed changes nothing and raises the feed alarm, cleared by its next good read.
    fn feed(&mut self, i: usize, fetched: crate::poller::FeedRead, b: &mut Batch) {
        let Some(f) = self.site.feeds.get(i).cloned() else {
            return;
        };
        let now = self.config.clock.now();
        // "Not modified" after a failure says nothing new: the content that failed may still
        // be what is served, so the alarm stays until content reads well.
        let not_modified = matches!(fetched, Ok(None));
        let applied = match fetched {
            Ok(None) => Ok(()),
            Ok(Some(read)) => {
                let (from, until) = (read.from, read.until);
                let expanded = read.expanded;
                let stored: Vec<crate::domain::Booking> = self
                    .site
                    .room_index(f.room)
                    .map(|r| {
                        self.gateway
                            .snapshot()
                            .bookings_in_room(r, from, until)
                            .map(|(bk, _)| bk.as_ref().clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let plan = crate::feed::plan(
                    self.gateway.snapshot(),
                    f.id,
                    f.room,
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
                    match self.gateway.import_bookings(
                        plan.upserts,
                        &what,
                        Actor::Source(f.id.to_string()),
                        now,
                    ) {
                        Ok(c) => {
                            tracing::info!(feed = %f.id, added = c.added, updated = c.updated, cancelled = plan.cancelled, "feed applied");
                            // Rights changed: the doors' lists follow at once.
                            self.next_allow_lists = Instant::now();
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
                    self.gateway
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
        let Some(feed) = self.config.alert_feeds.get(i).cloned() else {
            return;
        };
        let now = self.config.clock.now();
        let mode = self.gateway.snapshot().mode();
        let actor = Actor::Source(format!("{ALERT_ACTOR}{}", feed.id));
        for action in self.alert_feeds.read(i, read, mode) {
            match action {
                AlertAction::Mode(mode, why) => {
                    tracing::warn!(feed = %feed.id, mode = mode.as_str(), %why, "alert feed switches the site mode");
                    b.audit.push(AuditEntry::change(
                        now,
                        actor.clone(),
                        format!("alert feed {}: {why}", feed.id),
                    ));
                    if let Err(e) = self.set_mode(mode, actor.clone(), b) {
                        tracing::error!(error = %e, "cannot switch the site mode; asked again at the next read");
                        self.alert_feeds.mode_not_set(mode);
                    }
                }
                AlertAction::Kept(why) => {
                    tracing::warn!(feed = %feed.id, %why, "alert feed");
                    b.audit.push(AuditEntry::change(
                        now,
                        actor.clone(),
                        format!("alert feed {}: {why}", feed.id),
                    ));
                }
                AlertAction::Failing(_, why) => self.alert_alarm(i, &actor, Some(why), b),
                AlertAction::Recovered(_) => self.alert_alarm(i, &actor, None, b),
            }
        }
        self.save_alerts_switched();
    }

    /// An alert feed's alarm raised (`failing`: why it cannot be read) or cleared.
    fn alert_alarm(&mut self, i: usize, actor: &Actor, failing: Option<String>, b: &mut Batch) {
        let now = self.config.clock.now();
        let id = self.config.alert_feeds[i].id.clone();
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
        match self.gateway.store().put_state(ALERTS_STATE, &v) {
            Ok(()) => self.alerts_saved = Some(v),
            Err(e) => tracing::error!(error = %e, "cannot store the alert feeds' state"),
        }
    }

    fn set_mode(&mut self, mode: SiteMode, by: Actor, b: &mut Batch) -> Result<(), ServiceError> {
        let now = self.config.clock.now();
        let by_others = !matches!(&by, Actor::Source(s) if s.starts_with(ALERT_ACTOR));
        self.gateway.set_mode(mode, by, now)?;
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
        self.next_allow_lists = Instant::now();
        Ok(())
    }

    /// Commands doors released or back to normal as mode and public hours say.
    fn sync_released(&mut self, now: DateTime<Utc>, b: &mut Batch) {
        let mode = self.gateway.snapshot().mode();
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
            let release = match mode {
                SiteMode::Emergency => d.egress,
                SiteMode::Shelter => self.site.on_shelter_route(di),
                SiteMode::Lockdown => false,
                SiteMode::Normal => {
                    !holiday && d.public_hours.as_ref().is_some_and(|h| h.contains(&local))
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
        self.gateway.store().put_state(COUNTS_KEY, &bytes)?;
        self.saved_counts = counts;
        self.saved_counts_at = t;
        Ok(())
    }

    fn tick(&mut self, b: &mut Batch) -> Result<(), ServiceError> {
        let now = self.config.clock.now();
        // Liveness is the system clock's: the watchdog reads it (systemd() below).
        self.stats
            .core_alive_at
            .store(Utc::now().timestamp().max(0) as u64, Ordering::Relaxed);
        // Counters every MARKS_EVERY, not per message (see there).
        if Instant::now() >= self.next_marks || self.desk.marks_due() {
            self.next_marks = Instant::now() + MARKS_EVERY;
            let mut marks = self.desk.take_marks(now);
            marks.push(crate::domain::DeviceMark {
                at: Some(now),
                ..Default::default()
            });
            self.gateway.store().put_marks(&marks)?;
        }
        if Instant::now() >= self.next_counts {
            self.next_counts =
                Instant::now() + Duration::from_secs(self.config.occupancy.counts_every_s.into());
            self.save_counts(now)?;
        }
        b.audit.extend(self.desk.check_health(now));
        b.replies.extend(self.adapters.due(now));
        b.refresh = true;
        // Requests from the command line (token add and revoke while the gateway runs).
        for path in crate::spool::pending(&self.config.data) {
            if self.backups.lock().is_ok_and(|b| b.contains(&path)) {
                continue;
            }
            let path = match crate::spool::take(&path) {
                Ok(Some(taken)) => taken,
                // Withdrawn by the command line a moment ago.
                Ok(None) => continue,
                Err(e) => {
                    // Left alone: the command line says nobody took it up.
                    if self.spool_unwritable.insert(path.clone()) {
                        tracing::error!(request = %path.display(), error = %e, "cannot answer a command-line request: the spool is not the gateway's to write");
                    }
                    continue;
                }
            };
            let r = crate::spool::read(&path).and_then(|env| match env.request {
                crate::spool::Request::Backup => {
                    self.backup(path.clone(), env.by);
                    Err(String::new())
                }
                req => self.gateway.token_request(req, Actor::Cli(env.by), now),
            });
            // A backup is answered by its own thread when it is written.
            if r.as_ref().is_err_and(String::is_empty) {
                continue;
            }
            match &r {
                Ok(()) => tracing::info!(request = %path.display(), "command-line request applied"),
                Err(why) => {
                    tracing::warn!(request = %path.display(), %why, "command-line request refused")
                }
            }
            crate::spool::done(&path, &r);
        }
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
        if Instant::now() >= self.next_size {
            self.next_size = Instant::now() + Duration::from_secs(10);
            if let Some(n) = self.gateway.store().size_on_disk() {
                self.stats.store_bytes.store(n, Ordering::Relaxed);
            }
            if let Some(free) = crate::store::free_bytes(&self.config.data) {
                self.stats.disk_free.store(free, Ordering::Relaxed);
                let low = free < LOW_DISK_BYTES;
                if low != self.disk_low {
                    self.disk_low = low;
                    if low {
                        tracing::error!(free, "the data directory's disk is nearly full");
                    } else {
                        tracing::info!(free, "the data directory's disk has room again");
                    }
                    b.audit.push(AuditEntry {
                        at: now,
                        actor: Actor::System,
                        event: AuditEvent::Alarm {
                            door: None,
                            device: None,
                            alarm: crate::store::AlarmKind::DiskLow,
                            raised: low,
                        },
                    });
                    b.refresh = true;
                }
            }
        }
        self.occupancy(now, b);
        self.history(now)?;
        self.no_shows(now, b)?;
        // Bookings that ended more than a day ago open nothing: out of memory (they stay in the
        // store). Once an hour.
        if Instant::now() >= self.next_prune {
            self.next_prune = Instant::now() + Duration::from_secs(3600);
            let pruned = self.gateway.prune_bookings(now - chrono::Duration::days(1));
            if pruned > 0 {
                tracing::info!(pruned, "past bookings let go from memory");
            }
            // And out of what a start reads (a start loads only bookings ended less than
            // BOOKINGS_KEPT_DAYS ago, but read them all): archived in the store, off the core.
            let (store, site) = (self.gateway.store_arc(), self.site.clone());
            let before =
                (now - chrono::Duration::days(crate::gateway::BOOKINGS_KEPT_DAYS)).timestamp();
            let spawned = std::thread::Builder::new()
                .name("archive".into())
                .spawn(move || {
                    let mut over = |b: &crate::domain::Booking| {
                        crate::occupancy::history::booked_span(&site, b).1 < before
                    };
                    match store.archive_bookings(&mut over) {
                        Ok(0) => {}
                        Ok(archived) => tracing::info!(archived, "past bookings archived"),
                        Err(e) => tracing::error!(error = %e, "cannot archive past bookings"),
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start archiving past bookings");
            }
        }
        if Instant::now() >= self.next_compaction {
            self.next_compaction = Instant::now() + Duration::from_secs(24 * 3600);
            let t = now.timestamp();
            let rooms: Vec<crate::domain::RoomId> = self.site.rooms.iter().map(|r| r.id).collect();
            let oc = self.config.occupancy;
            let (merged, dropped) = self.gateway.store().compact_history(
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
                let removed = self.gateway.store().prune_audit(key)?;
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
        if Instant::now() >= self.next_allow_lists && !self.allow_lists_pending {
            self.allow_lists_pending = true;
            self.next_allow_lists = Instant::now()
                + Duration::from_secs(60 * u64::from(self.config.allowlist_refresh_min));
            let snapshot = self.gateway.snapshot().for_allow_lists();
            let doors: Vec<(DoorId, usize)> = self
                .desk
                .served_doors()
                .map(|(d, _)| d)
                .chain(self.adapters.listed_doors())
                .collect::<BTreeSet<DoorId>>()
                .into_iter()
                .filter_map(|d| self.site.door_index(d).map(|i| (d, i)))
                .collect();
            let hours = self.config.allowlist_hours;
            let tx = self.to_core.clone();
            // An esp-rfid reader's list is kept whole (it holds every card it is sent, and a
            // card left out would be deleted from it); a door node's is fitted here.
            let readers: BTreeSet<DoorId> = self.adapters.listed_doors().into_iter().collect();
            // Off the core: a list can take a while for a busy door.
            let spawned = std::thread::Builder::new()
                .name("allow-lists".into())
                .spawn(move || {
                    let (from, until) = window(now, hours);
                    let lists = doors
                        .into_iter()
                        .map(|(door, i)| {
                            let mut cards = allow_list(&snapshot, i, from, until);
                            if !readers.contains(&door) {
                                crate::desk::fit_for_node(door, &mut cards);
                            }
                            DoorList {
                                door,
                                from,
                                until,
                                cards,
                            }
                        })
                        .collect();
                    let _ = tx.send(Msg::AllowLists(lists));
                });
            if spawned.is_err() {
                self.allow_lists_pending = false;
            }
        }
        Ok(())
    }

    /// Publishes (retained) every room's occupancy that changed, and tells the decision
    /// snapshot, so capacity limits use live counts.
    fn occupancy(&mut self, now: DateTime<Utc>, b: &mut Batch) {
        let t = now.timestamp();
        let closed = self.closed.contains(&self.site.local_time(now));
        self.estimator.tick(t, |_| closed);
        for (i, room) in self.site.rooms.iter().enumerate() {
            let e = self.estimator.estimate(i, t);
            let ppm = |e: &Estimate| e.co2_ppm.map(|c| c.round() as i64);
            let changed = self.published[i].is_none_or(|p| {
                p.count != e.count
                    || p.occupied != e.occupied
                    || p.basis != e.basis
                    || ppm(&p) != ppm(&e)
            });
            if !changed {
                continue;
            }
            self.published[i] = Some(e);
            self.gateway.set_occupancy(
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
                if let Err(err) = self.gateway.store().push_outbox(vec![event]) {
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
        let took = Instant::now();
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
        tracing::info!(
            doors,
            entries,
            ms = took.elapsed().as_millis() as u64,
            "allow-list round taken up"
        );
        if listed.is_empty() {
            return;
        }
        let snapshot = self.gateway.snapshot();
        let now = self.config.clock.now();
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
            self.next_allow_lists = self
                .next_allow_lists
                .min(Instant::now() + Duration::from_secs(wait));
        }
        // What the readers hold is kept, so a card that loses its right while the gateway is
        // down is deleted after the restart.
        match serde_json::to_vec(&self.adapters.sent_lists()) {
            Ok(bytes) => {
                if let Err(e) = self.gateway.store().put_state(SENT_LISTS, &bytes) {
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
            self.gateway.store().add_history(&done)?;
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
        let snapshot = self.gateway.snapshot();
        let mut candidates = Vec::new();
        for i in 0..self.site.rooms.len() {
            for (booking, _) in snapshot.bookings_in_room(i, from, now) {
                let (start, end) = crate::occupancy::history::booked_span(&self.site, booking);
                if start >= from.timestamp() && start <= t {
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
        self.gateway.store().push_outbox(outbox)?;
        Ok(())
    }
}

/// Resolves when the process is asked to stop (SIGINT or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Reads the configuration and runs until SIGINT or SIGTERM.
/// `clock` is the system clock unless `kombinat run --now` moved it.
pub fn run_from_file(path: &Path, clock: crate::clock::Clock) -> anyhow::Result<()> {
    let mut config = Config::load(path)?;
    config.clock = clock;
    if !clock.is_system() {
        tracing::warn!(now = %clock.now(), "the gateway runs on a moved clock (--now)");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(config, shutdown_signal()))?;
    Ok(())
}
