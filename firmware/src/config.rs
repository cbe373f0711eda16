//! The nodes' configuration files (TOML) and the small state file that keeps counters across
//! reboots. `deploy/door-node.example.toml` and `deploy/sensor-node.example.toml` are examples,
//! checked by the tests below.

use std::path::{Path, PathBuf};

use kombinat_protocol::auth::DeviceKey;
use kombinat_protocol::{DeviceId, DoorId};

use crate::door::{DoorConfig, LockKind, Polarity};
use crate::mqtt::LinkConfig;
use crate::sensor::SensorConfig;

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// It is not valid TOML of the right shape.
    #[error("{0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    /// A value is wrong.
    #[error("{0}: {1}")]
    Value(PathBuf, String),
}

/// `[node]` of a door node.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorNodeSection {
    /// Device id.
    pub device: String,
    /// The door reader it serves.
    pub door: String,
    /// The device key, 64 hex digits (or `key_file`).
    #[serde(default)]
    pub key: Option<String>,
    /// A file holding the key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Where the counters are kept.
    pub state_file: PathBuf,
    /// `fail-secure` (default) or `fail-safe`.
    #[serde(default = "fail_secure")]
    pub lock: LockKind,
    /// Decision timeout.
    #[serde(default = "ms800")]
    pub decision_timeout_ms: u32,
    /// Exit button release.
    #[serde(default = "ms5000")]
    pub exit_unlock_ms: u32,
    /// Offline grant release.
    #[serde(default = "ms3000")]
    pub offline_unlock_ms: u32,
    /// Held-open limit.
    #[serde(default = "ms30000")]
    pub held_open_ms: u32,
}

fn fail_secure() -> LockKind {
    LockKind::FailSecure
}
fn ms800() -> u32 {
    800
}
fn ms3000() -> u32 {
    3_000
}
fn ms5000() -> u32 {
    5_000
}
fn ms30000() -> u32 {
    30_000
}

/// `[pins]` of a door node: BCM GPIO numbers.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorPinNumbers {
    /// Strike relay.
    pub strike: u8,
    /// Green LED.
    pub green: u8,
    /// Red LED.
    pub red: u8,
    /// BCM pin of the buzzer.
    pub buzzer: u8,
    /// Door contact.
    pub contact: u8,
    /// Exit button.
    pub exit: u8,
    /// Tamper switch.
    pub tamper: u8,
    /// Mains present (a PSU's "AC OK" output or a relay on the mains side): high while mains
    /// is there. Without it the node does not report its supply.
    #[serde(default)]
    pub mains: Option<u8>,
    /// A dry-contact alert input (a siren relay, a staff key switch), to ground when closed:
    /// closed means alert. Without it the node reports no alert input.
    #[serde(default)]
    pub alert: Option<u8>,
}

/// `[clock]`: how the node knows the time when it boots without network.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    /// A file that exists only while the system clock is synchronised
    /// (`/run/systemd/timesync/synchronized` with systemd-timesyncd). Without it the system
    /// clock is trusted as it is (as before).
    #[serde(default)]
    pub synced_flag: Option<PathBuf>,
    /// The I2C bus of a DS3231 real-time clock (1 on a Raspberry Pi's header), if fitted.
    #[serde(default)]
    pub rtc_i2c_bus: Option<u8>,
}

/// `[reader]`: which reader is fitted.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ReaderConfig {
    /// An MFRC522 on SPI.
    Mfrc522 {
        /// SPI bus (0 or 1).
        #[serde(default)]
        bus: u8,
        /// Chip select (0 or 1).
        #[serde(default)]
        cs: u8,
        /// Clock, Hz.
        #[serde(default = "spi_hz")]
        clock_hz: u32,
    },
    /// A Wiegand reader on two GPIO inputs.
    Wiegand {
        /// D0 pin.
        d0: u8,
        /// D1 pin.
        d1: u8,
    },
}

fn spi_hz() -> u32 {
    1_000_000
}

/// A door node's file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorNodeFile {
    /// `[node]`: the node's id, its door and key.
    pub node: DoorNodeSection,
    /// The broker.
    pub mqtt: LinkConfig,
    /// `[pins]`: BCM pin numbers.
    pub pins: DoorPinNumbers,
    /// Input polarity.
    #[serde(default)]
    pub polarity: Polarity,
    /// `[reader]`: which card reader the node has, and how it is wired.
    pub reader: ReaderConfig,
    /// `[clock]`: the synchronised-clock flag and the real-time clock.
    #[serde(default)]
    pub clock: ClockConfig,
    /// `[battery]`: an INA219 gauge on the backup battery, if fitted.
    #[serde(default)]
    pub battery: Option<BatteryConfig>,
}

/// `[battery]`: where the battery's INA219 gauge is.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatteryConfig {
    /// The I2C bus (1 on a Raspberry Pi's header).
    #[serde(default = "bus1")]
    pub i2c_bus: u8,
    /// Its address (0x40 on most UPS HATs; 64 in decimal).
    #[serde(default = "ina219_address")]
    pub address: u8,
}

fn bus1() -> u8 {
    1
}

fn ina219_address() -> u8 {
    0x40
}

/// `[node]` of a sensor node.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorNodeSection {
    /// Device id.
    pub device: String,
    /// Where the counters are kept.
    pub state_file: PathBuf,
    /// PIR hold time.
    #[serde(default = "ms60000")]
    pub pir_hold_ms: u32,
    /// Climate interval.
    #[serde(default = "ms60000")]
    pub climate_every_ms: u32,
    /// The node's key (64 hex digits, from `kombinat device add`), or the file holding it:
    /// needed only to sign power and alert reports (readings are not signed).
    #[serde(default)]
    pub key: Option<String>,
    /// See `key`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

fn ms60000() -> u32 {
    60_000
}

/// `[pins]` of a sensor node: each optional.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorPinNumbers {
    /// PIR output.
    #[serde(default)]
    pub pir: Option<u8>,
    /// The corridor-side beam's receiver.
    #[serde(default)]
    pub beam_outer: Option<u8>,
    /// The room-side beam's receiver.
    #[serde(default)]
    pub beam_inner: Option<u8>,
    /// The receivers read high while they see their light.
    #[serde(default = "yes")]
    pub beam_whole_high: bool,
    /// Mains present (high while mains is there); needs the node's key.
    #[serde(default)]
    pub mains: Option<u8>,
    /// A dry-contact alert input to ground (closed = alert); needs the node's key.
    #[serde(default)]
    pub alert: Option<u8>,
}

fn yes() -> bool {
    true
}

/// A sensor node's file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorNodeFile {
    /// `[node]`: the node's id, its room and key.
    pub node: SensorNodeSection,
    /// The broker.
    pub mqtt: LinkConfig,
    /// `[pins]`: BCM pin numbers.
    #[serde(default)]
    pub pins: SensorPinNumbers,
    /// An SCD4x on I2C bus 1 is fitted.
    #[serde(default)]
    pub scd4x: bool,
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse(path.to_owned(), e))
}

fn value(path: &Path, what: &str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Value(path.to_owned(), format!("{what}: {e}"))
}

impl DoorNodeFile {
    /// Reads and checks a door node's file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let f: DoorNodeFile = read(path)?;
        f.door_config(path, &State::default())?;
        Ok(f)
    }

    /// The state machine's settings for this boot.
    pub fn door_config(&self, path: &Path, state: &State) -> Result<DoorConfig, ConfigError> {
        let n = &self.node;
        let device = DeviceId::parse(&n.device).map_err(|e| value(path, "node.device", e))?;
        let door = DoorId::parse(&n.door).map_err(|e| value(path, "node.door", e))?;
        let key = load_key(path, n.key.as_deref(), n.key_file.as_deref())?;
        let mut c = DoorConfig::new(door, device, key);
        c.lock = n.lock;
        c.decision_timeout_ms = n.decision_timeout_ms;
        c.exit_unlock_ms = n.exit_unlock_ms;
        c.offline_unlock_ms = n.offline_unlock_ms;
        c.held_open_ms = n.held_open_ms;
        c.counter_start = state.boot << 32;
        c.gateway_counter_after = state.gateway_counter;
        c.list_counter_after = state.list_counter;
        c.released = state.released;
        c.known_unix = state.known_unix;
        Ok(c)
    }
}

impl SensorNodeFile {
    /// Reads and checks a sensor node's file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let f: SensorNodeFile = read(path)?;
        f.sensor_config(path, &State::default())?;
        f.key(path)?;
        Ok(f)
    }

    /// The state machine's settings for this boot.
    pub fn sensor_config(&self, path: &Path, state: &State) -> Result<SensorConfig, ConfigError> {
        let device =
            DeviceId::parse(&self.node.device).map_err(|e| value(path, "node.device", e))?;
        let mut c = SensorConfig::new(device);
        c.pir_hold_ms = self.node.pir_hold_ms;
        c.climate_every_ms = self.node.climate_every_ms;
        c.counter_start = state.boot << 32;
        Ok(c)
    }

    /// The node's key, if the file gives one; an error if the supply or alert pins are wired
    /// without one (their reports must be signed).
    pub fn key(&self, path: &Path) -> Result<Option<DeviceKey>, ConfigError> {
        let n = &self.node;
        if n.key.is_none() && n.key_file.is_none() {
            if self.pins.mains.is_some() || self.pins.alert.is_some() {
                return Err(value(
                    path,
                    "node.key",
                    "pins.mains and pins.alert report signed: give key or key_file",
                ));
            }
            return Ok(None);
        }
        load_key(path, n.key.as_deref(), n.key_file.as_deref()).map(Some)
    }
}

fn load_key(path: &Path, key: Option<&str>, file: Option<&Path>) -> Result<DeviceKey, ConfigError> {
    let text = match (key, file) {
        (Some(k), None) => k.to_owned(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).map_err(|e| value(path, "node.key_file", e))?
        }
        _ => return Err(value(path, "node", "give exactly one of key and key_file")),
    };
    DeviceKey::parse_hex(&text).ok_or_else(|| value(path, "node.key", "64 hex digits"))
}

/// What a node keeps across reboots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Boots so far; this boot signs from `boot << 32`.
    pub boot: u64,
    /// The last gateway counter accepted.
    #[serde(default)]
    pub gateway_counter: u64,
    /// The counter of the allow-list held.
    #[serde(default)]
    pub list_counter: u64,
    /// A command holds the door released.
    #[serde(default)]
    pub released: bool,
    /// The latest Unix time the node knew (saved every ten minutes or so): with its clock unset
    /// after a reboot, it is at least then.
    #[serde(default)]
    pub known_unix: u64,
}

impl State {
    /// Reads the state file (none yet: a first boot), counts this boot and writes it back
    /// before anything is signed, so a counter is never reused.
    pub fn next_boot(path: &Path) -> std::io::Result<State> {
        let mut s = match std::fs::read_to_string(path) {
            Ok(t) => toml::from_str(&t).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        s.boot += 1;
        s.save(path)?;
        Ok(s)
    }

    /// Writes the file atomically and durably: a new file, synced, renamed over the old, and
    /// the directory synced, so a power cut leaves the old state or the new, never neither.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(
            toml::to_string(self)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        )?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy")
            .join(name)
    }

    #[test]
    fn the_door_node_example_loads() {
        let p = example("door-node.example.toml");
        let f = DoorNodeFile::load(&p).unwrap();
        let c = f
            .door_config(
                &p,
                &State {
                    boot: 3,
                    gateway_counter: 9,
                    ..State::default()
                },
            )
            .unwrap();
        assert_eq!(c.counter_start, 3 << 32);
        assert_eq!(c.gateway_counter_after, 9);
        assert!(matches!(f.reader, ReaderConfig::Mfrc522 { .. }));
        assert_eq!(
            f.mqtt.ca_file.as_deref(),
            Some(Path::new("/etc/kombinat/ca.crt")),
            "TLS to the broker"
        );
    }

    #[test]
    fn the_sensor_node_example_loads() {
        let p = example("sensor-node.example.toml");
        let f = SensorNodeFile::load(&p).unwrap();
        assert!(f.pins.beam_outer.is_some() && f.scd4x);
    }

    #[test]
    fn a_bad_key_is_refused_with_the_file_named() {
        let dir = std::env::temp_dir().join(format!("kombinat-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("door.toml");
        let text = std::fs::read_to_string(example("door-node.example.toml"))
            .unwrap()
            .replace(
                "key = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"",
                "key = \"0001\"",
            );
        std::fs::write(&p, text).unwrap();
        let e = DoorNodeFile::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("door.toml") && e.contains("64 hex digits"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_boot_gets_a_new_counter_range() {
        let dir = std::env::temp_dir().join(format!("kombinat-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state.toml");
        assert_eq!(State::next_boot(&p).unwrap().boot, 1);
        let mut s = State::next_boot(&p).unwrap();
        assert_eq!(s.boot, 2);
        s.gateway_counter = 77;
        s.save(&p).unwrap();
        assert_eq!(
            State::next_boot(&p).unwrap(),
            State {
                boot: 3,
                gateway_counter: 77,
                ..State::default()
            }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
