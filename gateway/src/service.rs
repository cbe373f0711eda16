//! The service: `kombinat run`. Starts the embedded broker (or connects to one), the MQTT link,
//! the core thread and the HTTP API, and stops them in order.
//!
//! The core thread ([`Runtime`]) drives the engine (`engine/`, which holds the gateway's state
//! and does no I/O). It takes messages in batches: every tap in a batch is verified and decided,
//! the device counters and all audit entries of the batch are written with one durable flush
//! (group commit), and only then are the signed decisions published and the incoming messages
//! acknowledged. So a decision a door received is always in the audit log, and a message the
//! core did not finish is redelivered by the broker.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use rumqttc::{AsyncClient, Publish as MqttPublish, QoS};
use tokio::sync::watch;

use crate::config::{Broker, Config};
use crate::desk::Publish;
use crate::domain::{DoorId, Site, SiteMode};
use crate::engine::{Effect, Engine, Now, TICK};
use crate::link;
use crate::store::{Actor, SledStore, Store};

pub use crate::bus::{
    ApiBookingsResult, ApiRefusal, Control, DoorList, Histogram, MemberRefusal, MemberReply, Msg,
    Reply, ServiceError, Stats, LATENCY_BOUNDS, LOW_DISK_BYTES,
};

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
    /// The clock check: its stop flag and thread.
    clock_watch: Option<(
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

    /// Locks one door down (staff and security only) or releases it from that, audited.
    pub fn lock_down(&self, door: DoorId, locked: bool, by: Actor) -> Result<(), ServiceError> {
        self.ask(|reply| Control::DoorLockdown {
            door,
            locked,
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
        for (stop, thread) in [
            self.poller.take(),
            self.alert_poller.take(),
            self.clock_watch.take(),
        ]
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
    let now = Now {
        at: Instant::now(),
        wall: config.clock.now(),
    };
    let site = Arc::new(crate::site_file::load(&config.site)?);
    for w in site.exit_warnings() {
        tracing::warn!(warning = %w, "site file");
    }
    std::fs::create_dir_all(&config.data)
        .map_err(|e| ServiceError::DataDir(config.data.display().to_string(), e))?;
    crate::store::keep_reserve(&config.data);
    // An erasure from the dashboard: the old versions leave the store's files before it opens.
    crate::store::rewrite::if_pending(&config.data).map_err(ServiceError::Rewrite)?;
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&config.data)?);
    if let Err(why) = crate::spool::prepare(&config.data) {
        tracing::error!(%why, "the command line's requests cannot reach the gateway");
    }
    let guard_stats = Arc::new(crate::broker::guard::GuardStats::default());
    let stats = Arc::new(Stats {
        guard: guard_stats.clone(),
        ..Default::default()
    });
    stats
        .core_alive_at
        .store(Utc::now().timestamp().max(0) as u64, Ordering::Relaxed);
    let live = Arc::new(crate::live::Live::new(&site));
    // The gateway's counters are at least the time in microseconds (the system's, whatever
    // the site's clock says): a restored store or a device registered again carries counters
    // its node has already accepted.
    let tx_floor = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0);
    let engine = Engine::open(
        config.clone(),
        site.clone(),
        store.clone(),
        stats.clone(),
        live.clone(),
        now,
        tx_floor,
    )?;
    let (stop_broker, broker_stop_rx) = watch::channel(false);
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
                guard_stats,
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
    let mut filters = kombinat_protocol::topic::gateway_filters(&config.mqtt.prefix);
    filters.extend(engine.device_filters());
    let (host, port, tls) = link::target(&config.mqtt, embedded);
    let mut options = link::options(&config.mqtt, &host, port, tls).map_err(ServiceError::Mqtt)?;
    if let Some((user, password)) = &gateway_login {
        options.set_credentials(user, password);
    }
    let (client, eventloop) = AsyncClient::new(options, 1024);
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
    let staff = Arc::new(crate::staff::Staff::load(
        store.clone(),
        config.clock.session_now(),
    )?);
    let core = Runtime {
        engine,
        client,
        rt: tokio::runtime::Handle::current(),
        clock: config.clock,
        data: config.data.clone(),
        stats: stats.clone(),
        to_core: to_core.clone(),
        backups: Arc::default(),
        spool_unwritable: BTreeSet::new(),
        acks: Vec::new(),
        arrivals: Vec::new(),
    };
    // The HTTP port first: if it is taken, nothing else has been started yet.
    let http_listener = match config.http {
        None => None,
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| ServiceError::Http(format!("cannot listen on {addr}: {e}")))?,
        ),
    };
    let webhook_stats = Arc::new(crate::webhook::WebhookStats::default());
    let webhook = match config.webhook.clone() {
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
    let poller = if site.feeds.is_empty() {
        None
    } else {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (feeds, tx, flag) = (site.feeds.clone(), to_core.clone(), stop.clone());
        let (tz, clock) = (site.timezone, config.clock);
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
    let clock_watch = if config.clock_check == crate::clock_sync::ClockCheck::None {
        None
    } else {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (check, tx, flag) = (config.clock_check.clone(), to_core.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("clock-check".into())
            .spawn(move || {
                let deliver = |found| tx.send(Msg::Control(Control::ClockSync(found))).is_ok();
                crate::clock_sync::watch(check, deliver, flag)
            })
            .map_err(|_| ServiceError::Stopped)?;
        Some((stop, thread))
    };
    let alert_poller = if config.alert_feeds.is_empty() {
        None
    } else {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (feeds, tx, flag) = (config.alert_feeds.clone(), to_core.clone(), stop.clone());
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
        site: site.clone(),
        stats: stats.clone(),
        live,
        staff,
        secure_cookie: config.secure_cookie,
        clock: config.clock,
        trusted_proxies: config.trusted_proxies.clone(),
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
        clock_watch,
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

/// A batch this big means a flood: the core lets the next one gather for [`GATHER`].
const BUSY_BATCH: usize = 64;
/// See [`BUSY_BATCH`].
const GATHER: Duration = Duration::from_micros(500);

/// How long the core waits for room in the MQTT client's queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// The core thread: takes messages in batches, hands them to the engine, commits, carries out
/// what the engine asks (publish, answer, build allow-lists, read the spool and the disk), and
/// only then acknowledges the messages.
struct Runtime {
    engine: Engine,
    client: AsyncClient,
    rt: tokio::runtime::Handle,
    clock: crate::clock::Clock,
    /// The data directory (the spool, the disk's free space).
    data: std::path::PathBuf,
    stats: Arc<Stats>,
    /// Where the allow-list worker sends its round.
    to_core: SyncSender<Msg>,
    /// Backup requests being written.
    backups: Arc<Mutex<BTreeSet<std::path::PathBuf>>>,
    /// Command-line requests the gateway could not take up (said once each).
    spool_unwritable: BTreeSet<std::path::PathBuf>,
    /// The batch's messages, acknowledged once it is durable and sent.
    acks: Vec<MqttPublish>,
    /// When each of the batch's decisions' messages reached the link (the latency histogram).
    arrivals: Vec<Instant>,
}

impl Runtime {
    fn now(&self) -> Now {
        Now {
            at: Instant::now(),
            wall: self.clock.now(),
        }
    }

    fn run(mut self, rx: Receiver<Msg>) -> Result<(), ServiceError> {
        self.engine.handle_start(self.now());
        self.finish_batch()?;
        let mut stopping = false;
        let mut last_batch = 0usize;
        while !stopping {
            // Under a flood (a big batch just now) the core lets messages gather for a moment
            // instead of being woken for each one: every wake-up costs the link a system call
            // and a lock. A quiet gateway (taps, a few readings) never waits here.
            if last_batch >= BUSY_BATCH {
                std::thread::sleep(GATHER);
            }
            let wait = self
                .engine
                .poll_timeout()
                .map_or(TICK, |t| t.saturating_duration_since(Instant::now()));
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
            let now = self.now();
            for m in msgs {
                match m {
                    Msg::Publish(p, at) => self.message(p, at, now),
                    Msg::Control(Control::Stop) => stopping = true,
                    Msg::Control(c) => self.engine.handle_request(c, now),
                    Msg::AllowLists(lists) => self.engine.handle_allow_lists(lists, now),
                    Msg::Resync => self.engine.handle_reconnect(now),
                }
            }
            if stopping {
                // Finish what was queued before the stop.
                while let Ok(Msg::Publish(p, at)) = rx.try_recv() {
                    self.stats.link.queued.fetch_sub(1, Ordering::Relaxed);
                    self.message(p, at, now);
                }
            }
            self.stats
                .take_ns
                .fetch_add(taken.elapsed().as_nanos() as u64, Ordering::Relaxed);
            self.engine.handle_timeout(self.now())?;
            // Liveness is the system clock's: the watchdog reads it (systemd() above).
            self.stats
                .core_alive_at
                .store(Utc::now().timestamp().max(0) as u64, Ordering::Relaxed);
            self.finish_batch()?;
        }
        let stopped = self.engine.stop(self.now());
        // The offline status, sent before the link's DISCONNECT and before the last writes
        // (a slow flush on the SD card must not keep it from going out).
        self.carry_out();
        stopped?;
        self.engine.close(self.now())?;
        tracing::info!("core stopped");
        Ok(())
    }

    /// A message from the link into the engine; acknowledged after the batch.
    fn message(&mut self, p: MqttPublish, at: Instant, now: Now) {
        let decided = self
            .engine
            .handle_message(&p.topic, &p.payload, p.retain, now);
        self.arrivals.extend(std::iter::repeat_n(at, decided));
        self.acks.push(p);
    }

    /// Commits the engine's batch, carries out what it asks, then acknowledges.
    fn finish_batch(&mut self) -> Result<(), ServiceError> {
        let started = Instant::now();
        let decided = !self.arrivals.is_empty();
        self.engine.commit(self.now())?;
        let written = Instant::now();
        self.carry_out();
        for at in self.arrivals.drain(..) {
            self.stats.decision_latency.observe(at.elapsed());
        }
        // QoS 0 messages (sensor readings, mostly) take no acknowledgement.
        for p in std::mem::take(&mut self.acks) {
            if p.qos == QoS::AtMostOnce {
                continue;
            }
            let r = self
                .rt
                .block_on(async { tokio::time::timeout(SEND_TIMEOUT, self.client.ack(&p)).await });
            if !matches!(r, Ok(Ok(()))) {
                tracing::warn!("cannot acknowledge a message; the broker will send it again");
            }
        }
        if decided {
            self.stats
                .write_ns
                .fetch_add((written - started).as_nanos() as u64, Ordering::Relaxed);
            self.stats
                .send_ns
                .fetch_add(written.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Does what the engine asked, in order.
    fn carry_out(&mut self) {
        while let Some(effect) = self.engine.poll_effect() {
            match effect {
                Effect::Publish(p) => self.publish(&p),
                Effect::Answer(a) => a.send(),
                Effect::BuildAllowLists(job) => {
                    let tx = self.to_core.clone();
                    let spawned = std::thread::Builder::new()
                        .name("allow-lists".into())
                        .spawn(move || {
                            let _ = tx.send(Msg::AllowLists(job.build()));
                        });
                    if let Err(e) = spawned {
                        tracing::error!(error = %e, "cannot start building allow-lists");
                        self.engine.allow_lists_failed();
                    }
                }
                Effect::ArchiveBookings { before } => {
                    let (store, site) = (self.engine.store(), self.engine.site().clone());
                    let spawned =
                        std::thread::Builder::new()
                            .name("archive".into())
                            .spawn(move || {
                                let mut over = |b: &crate::domain::Booking| {
                                    crate::occupancy::history::booked_span(&site, b).1 < before
                                };
                                match store.archive_bookings(&mut over) {
                                    Ok(0) => {}
                                    Ok(archived) => {
                                        tracing::info!(archived, "past bookings archived")
                                    }
                                    Err(e) => {
                                        tracing::error!(error = %e, "cannot archive past bookings")
                                    }
                                }
                            });
                    if let Err(e) = spawned {
                        tracing::error!(error = %e, "cannot start archiving past bookings");
                    }
                }
                Effect::CheckDisk => {
                    let free = crate::store::free_bytes(&self.data);
                    self.engine.handle_disk(free, self.now());
                }
                Effect::ReadSpool => self.read_spool(),
                Effect::RewriteStoreAtStart => {
                    let marker = self.data.join(crate::store::rewrite::PENDING);
                    if let Err(e) = std::fs::write(&marker, b"a member was erased\n") {
                        tracing::error!(error = %e, file = %marker.display(), "cannot leave the marker that has the store written anew at the next start");
                    }
                }
            }
        }
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

    /// Requests from the command line (token add and revoke, backups) while the gateway runs.
    fn read_spool(&mut self) {
        for path in crate::spool::pending(&self.data) {
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
            let r = match crate::spool::read(&path) {
                Err(e) => Err(e),
                Ok(env) => match env.request {
                    // A backup is answered by its own thread when it is written.
                    crate::spool::Request::Backup => {
                        self.backup(path.clone(), env.by);
                        continue;
                    }
                    req => self.engine.handle_cli(req, env.by, self.now()),
                },
            };
            match &r {
                Ok(()) => tracing::info!(request = %path.display(), "command-line request applied"),
                Err(why) => {
                    tracing::warn!(request = %path.display(), %why, "command-line request refused")
                }
            }
            crate::spool::done(&path, &r);
        }
    }

    /// Writes a backup for a command-line request on its own thread (the log is read
    /// without holding up the doors), then answers the request.
    fn backup(&mut self, request: std::path::PathBuf, by: String) {
        if let Ok(mut b) = self.backups.lock() {
            b.insert(request.clone());
        }
        let store = self.engine.store();
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
