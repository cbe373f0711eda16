//! The service's configuration file (`kombinat run --config FILE`), TOML.
//!
//! ```toml
//! site = "site.example.toml"        # relative paths are relative to this file
//! data = "/var/lib/kombinat"
//!
//! [mqtt]
//! broker = "embedded"               # or "mqtt://host:1883", "mqtts://host:8883"
//! listen = "127.0.0.1:1883"         # where the embedded broker listens
//! client_id = "kombinat-gateway"
//! prefix = "kombinat/v1"
//! keep_alive_s = 15
//! # username = "gateway"  password = "…"  ca_file = "/etc/kombinat/ca.pem"
//!
//! [doors]
//! allowlist_hours = 12              # how far ahead allow-lists reach
//! allowlist_refresh_min = 60        # republished at least this often
//!
//! [devices]
//! heartbeat_s = 30                  # expected heartbeat; offline after three missed
//!
//! [occupancy]
//! no_show_after_min = 10            # a booking's room empty this long after its start: no-show
//! counts_every_s = 300              # head counts changed since the last decision stored this often
//! hourly_after_days = 30            # 5-minute history buckets become hourly after this
//! keep_days = 730                   # history older than this is dropped
//!
//! [audit]
//! keep_days = 730                   # access-log entries older than this are removed
//!
//! [http]                            # optional: the REST API
//! listen = "127.0.0.1:8080"
//! secure_cookie = false             # true when the dashboard is served over HTTPS
//! trusted_proxies = []              # e.g. ["127.0.0.1"] behind a TLS proxy on the Pi
//!
//! [webhook]                         # optional: events (no-shows) to the booking system
//! url = "https://booking.example.org/kombinat"
//! secret = "…"                      # shared; signs each request (HMAC-SHA256)
//!
//! [[alert_feeds]]                   # optional, any number: air-raid alerts switch shelter mode
//! id = "siren"                      # named in the log and the alarm
//! source = "ukrainealarm"           # or "alerts.in.ua"
//! area = "1370"                     # the hromada: Kherson city (regionId / location_uid)
//! oblast = "23"                     # alerts.in.ua: its oblast's uid (oblast-wide alerts)
//! raion = "Херсонський район"       # alerts.in.ua: its raion's name (raion-wide alerts)
//! url = "https://siren.pp.ua/api/v3"  # default: the source's own API
//! key_file = "/etc/kombinat/alerts.key"  # the API key or token, if the source needs one
//! every_s = 20                      # how often it is read (mind the source's rate limit)
//! types = ["AIR"]                   # which alert types mean the shelter (default: air raids)
//!
//! [[alert_inputs]]                  # optional, any number: a node's dry-contact alert input
//! device = "door-main"              # a door or sensor node (kombinat device add); its signed
//!                                   # device/<id>/alert switches shelter mode like a feed
//!
//! [power]                           # optional: the nodes' backup batteries (12 V lead-acid)
//! battery_low_mv = 11800            # below this on battery: the low-battery alarm
//! battery_empty_mv = 10500          # empty, for "time left at this rate"
//! shed_below_mv = 11500             # below this, doors off the way out and to the shelter go
//!                                   # to their mechanical state (default: never)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broker {
    /// Start rumqttd inside the gateway, listening on `listen`.
    Embedded,
    /// Connect to a broker over TCP.
    Tcp {
        /// Host name or address.
        host: String,
        port: u16,
        /// Use TLS.
        tls: bool,
    },
}

impl Broker {
    fn parse(s: &str) -> Result<Broker, String> {
        if s == "embedded" {
            return Ok(Broker::Embedded);
        }
        let (tls, rest) = if let Some(r) = s.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "broker {s:?}: write \"embedded\", \"mqtt://host:port\" or \"mqtts://host:port\""
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("broker {s:?}: the port is not a number"))?,
            ),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err(format!("broker {s:?}: no host"));
        }
        Ok(Broker::Tcp {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

/// MQTT settings.
#[derive(Debug, Clone)]
pub struct Mqtt {
    /// Which broker.
    pub broker: Broker,
    /// Where the embedded broker listens.
    pub listen: SocketAddr,
    /// The gateway's client id (stable, so the broker keeps its session).
    pub client_id: String,
    /// Topic prefix with the protocol version.
    pub prefix: String,
    /// MQTT keep-alive, seconds.
    pub keep_alive_s: u16,
    /// Broker login.
    pub username: Option<String>,
    /// Broker password.
    pub password: Option<String>,
    /// CA certificate for `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// More accounts on the embedded broker, for tools on the Pi (`[[mqtt.accounts]]`).
    pub accounts: Vec<BrokerAccount>,
}

/// An account on the embedded broker for a tool on the Pi itself (Node-RED, a script, a
/// benchmark's client), beside those of the devices, the gateway and the observer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerAccount {
    /// Its user name, which is also its client id.
    pub user: String,
    /// Its password: 16 characters at least.
    pub password: String,
    /// Topic patterns (MQTT filters) it may publish to.
    #[serde(default)]
    pub write: Vec<String>,
    /// Topic patterns it may subscribe within.
    #[serde(default)]
    pub read: Vec<String>,
}

/// Whether `f` is an MQTT topic filter: not empty, `+` alone on its level, `#` alone on the last.
fn valid_filter(f: &str) -> bool {
    let levels: Vec<&str> = f.split('/').collect();
    !f.is_empty()
        && levels.iter().enumerate().all(|(i, l)| {
            (!l.contains('+') || *l == "+")
                && (!l.contains('#') || (*l == "#" && i + 1 == levels.len()))
        })
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The site file.
    pub site: PathBuf,
    /// The data directory.
    pub data: PathBuf,
    pub mqtt: Mqtt,
    /// How far ahead allow-lists reach, hours.
    pub allowlist_hours: u32,
    /// Allow-lists are republished at least this often, minutes.
    pub allowlist_refresh_min: u32,
    /// Expected device heartbeat, seconds.
    pub heartbeat_s: u32,
    /// Occupancy history and no-shows.
    pub occupancy: OccupancyConfig,
    /// Where events for the booking system go, if anywhere.
    pub webhook: Option<crate::webhook::WebhookConfig>,
    /// Where the HTTP API listens, if it does.
    pub http: Option<SocketAddr>,
    /// Access-log entries older than this many days are removed (the retention period for
    /// personal data in the log); 0 keeps them for ever.
    pub audit_keep_days: u32,
    /// Whether the session cookie is marked `Secure` (only sent over HTTPS): set it when the
    /// dashboard is served through TLS; over plain HTTP on a LAN a `Secure` cookie is never
    /// sent back and nobody could sign in.
    pub secure_cookie: bool,
    /// The reverse proxies in front of the dashboard: a request from one of them is counted
    /// against the address its `X-Forwarded-For` names (sign-in limits), not the proxy's.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Where the service reads the time: the system clock unless `kombinat run --now` (or a
    /// test) moves it. Not in the file: a gateway in service runs on the system clock.
    pub clock: crate::clock::Clock,
    /// Air-raid alert feeds.
    pub alert_feeds: Vec<AlertFeedConfig>,
    /// How the gateway tells whether its clock is synchronised (no allow-lists while it is
    /// not): [`crate::clock_sync`].
    pub clock_check: crate::clock_sync::ClockCheck,
    /// Nodes whose dry-contact alert input switches shelter mode, in the order the alert
    /// feeds' rule counts them (after the feeds).
    pub alert_inputs: Vec<kombinat_core::domain::DeviceId>,
    /// The nodes' battery thresholds and load shedding.
    pub power: kombinat_core::power::PowerPolicy,
}

/// Occupancy history and no-show settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OccupancyConfig {
    /// A booking whose room shows no presence this many minutes after its start is a no-show.
    pub no_show_after_min: u32,
    /// The rooms' head counts are stored with the next decision's log entry when they changed
    /// (at most every 5 s, in the same flush), and otherwise at most this often: what a crash
    /// can lose of them is the changes since the last decision, this many seconds at most. A
    /// store of their own is a synced write on the SD card.
    pub counts_every_s: u32,
    /// History older than this many days is kept in hourly buckets instead of 5-minute ones.
    pub hourly_after_days: u32,
    /// History older than this many days is dropped.
    pub keep_days: u32,
}

impl Default for OccupancyConfig {
    fn default() -> Self {
        OccupancyConfig {
            no_show_after_min: 10,
            counts_every_s: 300,
            hourly_after_days: 30,
            keep_days: 730,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    site: PathBuf,
    data: PathBuf,
    #[serde(default)]
    mqtt: RawMqtt,
    #[serde(default)]
    doors: RawDoors,
    #[serde(default)]
    devices: RawDevices,
    #[serde(default)]
    occupancy: RawOccupancy,
    webhook: Option<RawWebhook>,
    http: Option<RawHttp>,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    alert_feeds: Vec<RawAlertFeed>,
    #[serde(default)]
    clock: RawClock,
    #[serde(default)]
    alert_inputs: Vec<RawAlertInput>,
    #[serde(default)]
    power: RawPower,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertInput {
    device: kombinat_core::domain::DeviceId,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPower {
    battery_low_mv: Option<u32>,
    battery_empty_mv: Option<u32>,
    shed_below_mv: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawClock {
    sync_check: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertFeed {
    id: String,
    source: String,
    area: String,
    oblast: Option<String>,
    raion: Option<String>,
    url: Option<String>,
    key_file: Option<PathBuf>,
    every_s: Option<u32>,
    types: Option<Vec<String>>,
}

/// An air-raid alert feed (see [`kombinat_core::alerts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFeedConfig {
    pub id: String,
    pub source: kombinat_core::alerts::AlertSource,
    pub area: kombinat_core::alerts::Area,
    /// Where it is read: the address of the answer itself (the region's alerts, or the
    /// country's active alerts).
    pub url: String,
    /// The API key or token, read from `key_file` at start.
    pub key: Option<String>,
    pub every_s: u32,
    pub types: Vec<String>,
}

impl AlertFeedConfig {
    fn from_raw(raw: RawAlertFeed, base: &Path) -> Result<AlertFeedConfig, String> {
        use kombinat_core::alerts::AlertSource;
        let what = format!("alert_feeds {:?}", raw.id);
        let source = AlertSource::parse(&raw.source).ok_or_else(|| {
            format!(
                "{what}: source {:?} is not one of \"ukrainealarm\", \"alerts.in.ua\"",
                raw.source
            )
        })?;
        if raw.area.trim().is_empty() || raw.area.contains(['/', '?', '#']) {
            return Err(format!("{what}: area {:?} is not a region id", raw.area));
        }
        if source == AlertSource::AlertsInUa && raw.oblast.is_none() {
            // Most air-raid alerts there are oblast-wide: without it they would be missed.
            return Err(format!(
                "{what}: give oblast (its uid, e.g. \"23\" for Kherson oblast): alerts.in.ua announces most alerts for the whole oblast"
            ));
        }
        if raw.types.as_ref().is_some_and(|t| t.is_empty()) {
            return Err(format!(
                "{what}: types is empty, so no alert would ever count"
            ));
        }
        let base_url = raw.url.unwrap_or_else(|| {
            match source {
                AlertSource::UkraineAlarm => "https://api.ukrainealarm.com/api/v3",
                AlertSource::AlertsInUa => "https://api.alerts.in.ua/v1",
            }
            .to_string()
        });
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(format!(
                "{what}: url {base_url:?} is not an http(s) address"
            ));
        }
        let base_url = base_url.trim_end_matches('/');
        let url = match source {
            AlertSource::UkraineAlarm => format!("{base_url}/alerts/{}", raw.area.trim()),
            AlertSource::AlertsInUa => format!("{base_url}/alerts/active.json"),
        };
        let key = match raw.key_file {
            None => None,
            Some(f) => {
                let path = base.join(f);
                let k = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{what}: key_file {}: {e}", path.display()))?;
                Some(k.trim().to_string()).filter(|k| !k.is_empty())
            }
        };
        let every_s = raw.every_s.unwrap_or(20);
        if !(5..=3600).contains(&every_s) {
            return Err(format!("{what}: every_s is 5 to 3600"));
        }
        Ok(AlertFeedConfig {
            id: raw.id,
            source,
            area: kombinat_core::alerts::Area {
                id: raw.area.trim().to_string(),
                oblast: raw.oblast,
                raion: raw.raion,
            },
            url,
            key,
            every_s,
            types: raw.types.unwrap_or_else(|| {
                source
                    .default_types()
                    .iter()
                    .map(|t| t.to_string())
                    .collect()
            }),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    keep_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: SocketAddr,
    #[serde(default)]
    secure_cookie: bool,
    #[serde(default)]
    trusted_proxies: Vec<std::net::IpAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOccupancy {
    no_show_after_min: Option<u32>,
    counts_every_s: Option<u32>,
    hourly_after_days: Option<u32>,
    keep_days: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    broker: Option<String>,
    listen: Option<SocketAddr>,
    client_id: Option<String>,
    prefix: Option<String>,
    keep_alive_s: Option<u16>,
    username: Option<String>,
    password: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    accounts: Vec<BrokerAccount>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDoors {
    allowlist_hours: Option<u32>,
    allowlist_refresh_min: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDevices {
    heartbeat_s: Option<u32>,
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[error("config {path}: {why}")]
pub struct ConfigError {
    path: String,
    why: String,
}

impl Config {
    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |why: String| ConfigError {
            path: path.display().to_string(),
            why,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_raw(raw, base).map_err(err)
    }

    /// Parses configuration text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        Config::from_raw(raw, base)
    }

    fn from_raw(raw: RawConfig, base: &Path) -> Result<Config, String> {
        let prefix = raw
            .mqtt
            .prefix
            .unwrap_or_else(|| kombinat_protocol::DEFAULT_PREFIX.into());
        if prefix.is_empty()
            || prefix.starts_with('/')
            || prefix.ends_with('/')
            || prefix.contains(['+', '#'])
        {
            return Err(format!(
                "mqtt.prefix {prefix:?}: no wildcards, no leading or trailing '/'"
            ));
        }
        let keep_alive_s = raw.mqtt.keep_alive_s.unwrap_or(15);
        if !(5..=600).contains(&keep_alive_s) {
            return Err("mqtt.keep_alive_s is 5 to 600".into());
        }
        let client_id = raw
            .mqtt
            .client_id
            .unwrap_or_else(|| "kombinat-gateway".into());
        if client_id.is_empty() || client_id.len() > 64 {
            return Err("mqtt.client_id is 1 to 64 characters".into());
        }
        for a in &raw.mqtt.accounts {
            if a.user.is_empty() || a.user.len() > 64 || a.user.contains(['+', '#', '/']) {
                return Err(format!(
                    "mqtt.accounts: user {:?} is 1 to 64 characters, without '+', '#' or '/'",
                    a.user
                ));
            }
            if a.password.chars().count() < 16 {
                return Err(format!(
                    "mqtt.accounts: {}'s password is at least 16 characters",
                    a.user
                ));
            }
            if let Some(bad) = a.write.iter().chain(&a.read).find(|t| !valid_filter(t)) {
                return Err(format!(
                    "mqtt.accounts: {}'s topic {bad:?} is not an MQTT filter",
                    a.user
                ));
            }
        }
        let d = OccupancyConfig::default();
        let occupancy = OccupancyConfig {
            no_show_after_min: raw
                .occupancy
                .no_show_after_min
                .unwrap_or(d.no_show_after_min),
            counts_every_s: raw.occupancy.counts_every_s.unwrap_or(d.counts_every_s),
            hourly_after_days: raw
                .occupancy
                .hourly_after_days
                .unwrap_or(d.hourly_after_days),
            keep_days: raw.occupancy.keep_days.unwrap_or(d.keep_days),
        };
        if !(1..=240).contains(&occupancy.no_show_after_min) {
            return Err("occupancy.no_show_after_min is 1 to 240".into());
        }
        if !(1..=600).contains(&occupancy.counts_every_s) {
            return Err("occupancy.counts_every_s is 1 to 600".into());
        }
        if occupancy.hourly_after_days < 1 || occupancy.keep_days <= occupancy.hourly_after_days {
            return Err(
                "occupancy: hourly_after_days is at least 1 and keep_days is more than it".into(),
            );
        }
        let webhook = match raw.webhook {
            None => None,
            Some(w) => {
                if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                    return Err(format!(
                        "webhook.url {:?}: give an http:// or https:// address",
                        w.url
                    ));
                }
                if w.secret.len() < 16 {
                    return Err("webhook.secret: at least 16 characters".into());
                }
                Some(crate::webhook::WebhookConfig {
                    url: w.url,
                    secret: w.secret,
                })
            }
        };
        let mut alert_feeds = Vec::new();
        for f in raw.alert_feeds {
            let f = AlertFeedConfig::from_raw(f, base)?;
            if alert_feeds.iter().any(|x: &AlertFeedConfig| x.id == f.id) {
                return Err(format!("alert_feeds {:?} is named twice", f.id));
            }
            alert_feeds.push(f);
        }
        let clock_check = match &raw.clock.sync_check {
            Some(v) => crate::clock_sync::ClockCheck::parse(v)?,
            None => crate::clock_sync::ClockCheck::default(),
        };
        let mut alert_inputs = Vec::new();
        for i in raw.alert_inputs {
            if alert_inputs.contains(&i.device) {
                return Err(format!(
                    "alert_inputs: device {:?} is named twice",
                    i.device
                ));
            }
            alert_inputs.push(i.device);
        }
        let defaults = kombinat_core::power::PowerPolicy::default();
        let power = kombinat_core::power::PowerPolicy {
            low_mv: raw.power.battery_low_mv.unwrap_or(defaults.low_mv),
            empty_mv: raw.power.battery_empty_mv.unwrap_or(defaults.empty_mv),
            shed_below_mv: raw.power.shed_below_mv,
        };
        if power.empty_mv >= power.low_mv
            || power.shed_below_mv.is_some_and(|s| s <= power.empty_mv)
        {
            return Err(format!(
                "power: battery_empty_mv ({}) must be below battery_low_mv ({}) and shed_below_mv",
                power.empty_mv, power.low_mv
            ));
        }
        Ok(Config {
            alert_inputs,
            power,
            clock_check,
            alert_feeds,
            clock: crate::clock::Clock::system(),
            trusted_proxies: raw
                .http
                .as_ref()
                .map(|h| h.trusted_proxies.clone())
                .unwrap_or_default(),
            http: raw.http.as_ref().map(|h| h.listen),
            audit_keep_days: raw.audit.keep_days.unwrap_or(730),
            secure_cookie: raw.http.as_ref().is_some_and(|h| h.secure_cookie),
            webhook,
            site: base.join(raw.site),
            data: base.join(raw.data),
            mqtt: Mqtt {
                broker: Broker::parse(raw.mqtt.broker.as_deref().unwrap_or("embedded"))?,
                listen: raw
                    .mqtt
                    .listen
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 1883))),
                client_id,
                prefix,
                keep_alive_s,
                username: raw.mqtt.username,
                password: raw.mqtt.password,
                ca_file: raw.mqtt.ca_file.map(|p| base.join(p)),
                accounts: raw.mqtt.accounts,
            },
            allowlist_hours: raw.doors.allowlist_hours.unwrap_or(12).clamp(1, 72),
            allowlist_refresh_min: raw
                .doors
                .allowlist_refresh_min
                .unwrap_or(60)
                .clamp(1, 24 * 60),
            heartbeat_s: raw.devices.heartbeat_s.unwrap_or(30).clamp(1, 3600),
            occupancy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_reads_as_written() {
        let c = Config::parse(
            include_str!("../../deploy/kombinat.example.toml"),
            Path::new("/etc/kombinat"),
        )
        .unwrap();
        assert_eq!(c.audit_keep_days, 730);
        assert!(!c.secure_cookie);
        assert_eq!(c.clock_check, crate::clock_sync::ClockCheck::Timedatectl);
    }

    #[test]
    fn a_minimal_config_gets_the_defaults_and_paths_relative_to_it() {
        let c = Config::parse(
            "site = \"site.toml\"\ndata = \"data\"\n",
            Path::new("/etc/kombinat"),
        )
        .unwrap();
        assert_eq!(c.site, PathBuf::from("/etc/kombinat/site.toml"));
        assert_eq!(c.mqtt.broker, Broker::Embedded);
        assert_eq!(c.mqtt.listen.to_string(), "127.0.0.1:1883");
        assert_eq!(c.mqtt.prefix, "kombinat/v1");
        assert_eq!(c.clock_check, crate::clock_sync::ClockCheck::Auto);
    }

    #[test]
    fn brokers_are_named_by_url() {
        assert_eq!(
            Broker::parse("mqtt://127.0.0.1:18830"),
            Ok(Broker::Tcp {
                host: "127.0.0.1".into(),
                port: 18830,
                tls: false
            })
        );
        assert_eq!(
            Broker::parse("mqtts://broker.lan"),
            Ok(Broker::Tcp {
                host: "broker.lan".into(),
                port: 8883,
                tls: true
            })
        );
        assert!(Broker::parse("tcp://x:1").is_err());
        assert!(Broker::parse("mqtt://x:port").is_err());
        let bad = Config::parse(
            "site = \"s\"\ndata = \"d\"\n[mqtt]\nprefix = \"k/#\"\n",
            Path::new("."),
        );
        assert!(bad.unwrap_err().contains("no wildcards"));
        let typo = Config::parse(
            "site = \"s\"\ndata = \"d\"\n[mqtt]\nbrokr = \"embedded\"\n",
            Path::new("."),
        );
        assert!(typo.unwrap_err().contains("unknown field `brokr`"));
    }

    #[test]
    fn a_webhook_needs_an_http_address_and_a_real_secret() {
        let base = "site = \"s\"\ndata = \"d\"\n[webhook]\n";
        let ok = Config::parse(
            &format!("{base}url = \"https://b.example.org/k\"\nsecret = \"0123456789abcdef\"\n"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(ok.webhook.unwrap().url, "https://b.example.org/k");
        let ftp = Config::parse(
            &format!("{base}url = \"ftp://x\"\nsecret = \"0123456789abcdef\"\n"),
            Path::new("."),
        );
        assert!(ftp.unwrap_err().contains("http:// or https://"));
        let short = Config::parse(
            &format!("{base}url = \"http://x\"\nsecret = \"short\"\n"),
            Path::new("."),
        );
        assert!(short.unwrap_err().contains("at least 16"));
        assert!(
            Config::parse("site = \"s\"\ndata = \"d\"\n", Path::new("."))
                .unwrap()
                .webhook
                .is_none()
        );
    }

    #[test]
    fn head_counts_are_stored_every_300_s_unless_configured_within_bounds() {
        let with = |extra: &str| {
            Config::parse(
                &format!("site = \"s\"\ndata = \"d\"\n[occupancy]\n{extra}"),
                Path::new("."),
            )
        };
        assert_eq!(with("").unwrap().occupancy.counts_every_s, 300);
        assert_eq!(
            with("counts_every_s = 5\n")
                .unwrap()
                .occupancy
                .counts_every_s,
            5
        );
        for bad in ["counts_every_s = 0\n", "counts_every_s = 601\n"] {
            assert!(with(bad).unwrap_err().contains("1 to 600"), "{bad}");
        }
    }

    #[test]
    fn an_embedded_broker_account_needs_a_name_a_long_password_and_filters() {
        let with = |account: &str| {
            Config::parse(
                &format!("site = \"s\"\ndata = \"d\"\n[[mqtt.accounts]]\n{account}"),
                Path::new("."),
            )
        };
        let ok = with("user = \"node-red\"\npassword = \"0123456789abcdef\"\nread = [\"k/room/+/occupancy\", \"ha/#\"]\n")
            .unwrap();
        assert_eq!(ok.mqtt.accounts[0].user, "node-red");
        assert_eq!(ok.mqtt.accounts[0].read.len(), 2);
        for (bad, says) in [
            ("user = \"\"\npassword = \"0123456789abcdef\"\n", "1 to 64"),
            (
                "user = \"a/b\"\npassword = \"0123456789abcdef\"\n",
                "1 to 64",
            ),
            ("user = \"n\"\npassword = \"short\"\n", "16 characters"),
            (
                "user = \"n\"\npassword = \"0123456789abcdef\"\nwrite = [\"a/#/b\"]\n",
                "not an MQTT filter",
            ),
            (
                "user = \"n\"\npassword = \"0123456789abcdef\"\nread = [\"a/b+\"]\n",
                "not an MQTT filter",
            ),
        ] {
            assert!(with(bad).unwrap_err().contains(says), "{bad}");
        }
    }
}
