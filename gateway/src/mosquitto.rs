//! The production broker's access control, generated from the device registry: a mosquitto
//! configuration with no anonymous access, an account per device and one for the gateway, and an
//! ACL that lets a device write only its own topics and read only what is meant for it
//! (`kombinat device mosquitto-config`).
//!
//! A device's broker password is derived from its key ([`broker_password`]), so it is never
//! stored apart from the key and `kombinat device add` can print it with the key. Off-the-shelf
//! devices (the site file's `[[bindings]]`: esp-rfid, Tasmota, the Zigbee2MQTT bridge) have no
//! key of ours: their passwords are derived from a secret the store keeps
//! ([`binding_password`]), and each gets an ACL for its own firmware's topics. The password
//! file holds salted SHA-512 hashes (mosquitto's `$6$` format), never the passwords.
//!
//! Every account is its own client id (`use_username_as_clientid`): an account cannot take
//! over another client's connection by connecting with that client's id.

use std::fmt::Write as _;

use kombinat_protocol::auth::{mac_of, DeviceKey};
use kombinat_protocol::door::DoorTopic;
use kombinat_protocol::Topic;
use sha2::{Digest, Sha512};

use crate::domain::{Binding, BindingKind, Device, DeviceKind};

pub use kombinat_protocol::auth::broker_password;

/// The broker account of an off-the-shelf device: its user name (the binding's id; the
/// Zigbee2MQTT bridge's is [`Z2M_BRIDGE_USER`]).
pub fn binding_user(b: &Binding) -> String {
    match b.kind {
        BindingKind::Zigbee2mqtt => Z2M_BRIDGE_USER.to_string(),
        BindingKind::EspRfid | BindingKind::Tasmota => b.id.to_string(),
    }
}

/// The account the Zigbee2MQTT bridge connects with: one bridge speaks for every Zigbee device.
pub const Z2M_BRIDGE_USER: &str = "zigbee2mqtt";

/// The broker password of an account that is not one of our devices (`user` from
/// [`binding_user`]): 32 hex digits derived from the store's secret, stable across runs.
pub fn binding_password(secret: &[u8; 32], user: &str) -> String {
    let key = DeviceKey::from_bytes(*secret);
    mac_of(&key, "mqtt-binding-password", |m| m.text(user)).password()
}

/// Where the store keeps [`binding_secret`].
pub const BINDING_SECRET_KEY: &str = "mqtt-binding-secret";

/// The secret the off-the-shelf devices' broker passwords derive from: made once, kept in the
/// store (and its backups), so that generating the configuration again, or starting the
/// embedded broker, keeps every password.
pub fn binding_secret(store: &dyn crate::store::Store) -> Result<[u8; 32], String> {
    const KEY: &str = BINDING_SECRET_KEY;
    if let Some(v) = store.state(KEY).map_err(|e| e.to_string())? {
        return <[u8; 32]>::try_from(v.as_slice())
            .map_err(|_| format!("the stored {KEY} is not 32 bytes: the store is damaged"));
    }
    let mut s = [0u8; 32];
    getrandom::fill(&mut s).map_err(|e| format!("cannot get random bytes: {e}"))?;
    store.put_state(KEY, &s).map_err(|e| e.to_string())?;
    store.flush().map_err(|e| e.to_string())?;
    Ok(s)
}

/// The topics an off-the-shelf device's account may write and read: its firmware's own, under
/// its own topic name (esp-rfid `T/send`, `T/avty` and `T/cmd`; Tasmota `tele/T/…`, `stat/T/…`
/// and `cmnd/T/…`; the Zigbee2MQTT bridge its base topic).
pub fn binding_topics(b: &Binding) -> (Vec<String>, Vec<String>) {
    let t = &b.topic;
    match b.kind {
        BindingKind::EspRfid => (
            vec![format!("{t}/send"), format!("{t}/avty")],
            vec![format!("{t}/cmd")],
        ),
        BindingKind::Tasmota => (
            vec![format!("tele/{t}/#"), format!("stat/{t}/#")],
            vec![format!("cmnd/{t}/#")],
        ),
        BindingKind::Zigbee2mqtt => (
            vec!["zigbee2mqtt/#".to_string()],
            vec!["zigbee2mqtt/#".to_string()],
        ),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A line of mosquitto's password file: `user:$6$<salt>$<SHA-512(password ‖ salt)>`, both in
/// base64.
pub fn passwd_line(user: &str, password: &str, salt: &[u8; 12]) -> String {
    let mut h = Sha512::new();
    h.update(password.as_bytes());
    h.update(salt);
    format!("{user}:$6${}${}", base64(salt), base64(&h.finalize()))
}

/// Where and how mosquitto listens.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Address to bind.
    pub host: String,
    pub port: u16,
    /// CA, certificate and key files for TLS; `None` for a plain listener (a closed network or
    /// a test only: passwords then cross the wire in clear).
    pub tls: Option<(String, String, String)>,
}

/// The three files.
#[derive(Debug, Clone)]
pub struct Files {
    /// `mosquitto.conf` (or a file for `/etc/mosquitto/conf.d/`).
    pub conf: String,
    /// The password file.
    pub passwd: String,
    /// The ACL file.
    pub acl: String,
}

/// The topics a device may write and read, under `prefix`.
pub fn device_topics(d: &Device, prefix: &str) -> (Vec<String>, Vec<String>) {
    let status = Topic::Status(d.id).to_string(prefix);
    // A node's power and dry-contact input, signed (door and sensor nodes).
    let power = Topic::Power(d.id).to_string(prefix);
    let alert = Topic::AlertInput(d.id).to_string(prefix);
    match (d.kind, d.door) {
        (DeviceKind::Door, Some(door)) => {
            let t = |l| Topic::Door(door, l).to_string(prefix);
            (
                vec![
                    t(DoorTopic::Tap),
                    t(DoorTopic::State),
                    t(DoorTopic::OfflineLog),
                    status,
                    power,
                    alert,
                ],
                vec![
                    t(DoorTopic::Decision),
                    t(DoorTopic::Command),
                    t(DoorTopic::AllowList),
                    t(DoorTopic::OfflineAck),
                ],
            )
        }
        (DeviceKind::Sensor, _) => (
            vec![Topic::Reading(d.id).to_string(prefix), status, power, alert],
            Vec::new(),
        ),
        (DeviceKind::AlertFeed, _) => (
            vec![Topic::ModeSet.to_string(prefix), status],
            vec![Topic::Mode.to_string(prefix)],
        ),
        (DeviceKind::Door, None) => (vec![status, power, alert], Vec::new()),
    }
}

/// An off-the-shelf device's account: the binding, its user and its password.
#[derive(Debug, Clone)]
pub struct BindingAccount {
    /// User name ([`binding_user`]).
    pub user: String,
    /// Password ([`binding_password`]).
    pub password: String,
    /// Topics it may write, then read ([`binding_topics`]).
    pub topics: (Vec<String>, Vec<String>),
}

/// The read-only account for what watches the building from beside it: Home Assistant (which
/// also announces itself on `homeassistant/status`), a dashboard, `mosquitto_sub`. It reads
/// occupancy, device status, the site's mode, booking events and the discovery messages; not
/// the doors' topics, which carry card numbers and allow-lists.
pub const OBSERVER_USER: &str = "observer";

/// The observer's topics under `prefix`: what it may write, then read.
pub fn observer_topics(prefix: &str) -> (Vec<String>, Vec<String>) {
    (
        vec!["homeassistant/status".to_string()],
        vec![
            format!("{prefix}/room/+/occupancy"),
            format!("{prefix}/device/+/status"),
            format!("{prefix}/site/mode"),
            format!("{prefix}/booking/+"),
            "homeassistant/#".to_string(),
        ],
    )
}

/// One account per user among `bindings` (every Zigbee2MQTT binding shares the bridge's), and
/// the [`OBSERVER_USER`]'s, with topics under `prefix`.
pub fn binding_accounts(
    bindings: &[Binding],
    secret: &[u8; 32],
    prefix: &str,
) -> Vec<BindingAccount> {
    let mut out: Vec<BindingAccount> = vec![BindingAccount {
        user: OBSERVER_USER.to_string(),
        password: binding_password(secret, OBSERVER_USER),
        topics: observer_topics(prefix),
    }];
    for b in bindings {
        let user = binding_user(b);
        if out.iter().any(|a| a.user == user) {
            continue;
        }
        out.push(BindingAccount {
            password: binding_password(secret, &user),
            topics: binding_topics(b),
            user,
        });
    }
    out
}

/// The configuration for `devices` and the off-the-shelf devices' `bindings`, the gateway's
/// account (`gateway_user`, `gateway_password`), files to be installed in `dir`, with a fresh
/// salt per password from `salt`.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    devices: &[Device],
    bindings: &[BindingAccount],
    prefix: &str,
    gateway_user: &str,
    gateway_password: &str,
    listener: &Listener,
    dir: &str,
    mut salt: impl FnMut() -> [u8; 12],
) -> Files {
    let mut conf = String::from(
        "# Generated by `kombinat device mosquitto-config` from the device registry: do not edit,\n\
         # generate again after adding or removing a device (then reload mosquitto).\n",
    );
    let _ = writeln!(conf, "per_listener_settings false");
    let _ = writeln!(conf, "allow_anonymous false");
    let _ = writeln!(conf, "password_file {dir}/passwd");
    let _ = writeln!(conf, "acl_file {dir}/acl");
    let _ = writeln!(conf, "set_tcp_nodelay true");
    let _ = writeln!(conf, "persistence true");
    let _ = writeln!(conf, "max_inflight_messages 32");
    let _ = writeln!(conf, "max_queued_messages 10000");
    let _ = writeln!(conf, "listener {} {}", listener.port, listener.host);
    // An account connects as itself only: a device's password cannot take the gateway's
    // connection (or another device's) by reusing its client id. A listener's option: after
    // its `listener` line, or mosquitto opens a default listener on 1883 for it.
    let _ = writeln!(conf, "use_username_as_clientid true");
    match &listener.tls {
        Some((ca, cert, key)) => {
            let _ = writeln!(conf, "cafile {ca}\ncertfile {cert}\nkeyfile {key}");
            let _ = writeln!(conf, "tls_version tlsv1.2");
        }
        None => {
            let _ = writeln!(
                conf,
                "# plain listener: passwords cross the network in clear (tests, closed networks)"
            );
        }
    }

    let mut passwd = passwd_line(gateway_user, gateway_password, &salt());
    passwd.push('\n');
    let mut acl = format!(
        "# Generated by `kombinat device mosquitto-config`: each device writes only its own topics.\n\n\
         # The gateway reads and writes everything (it also serves off-the-shelf devices' topics).\n\
         user {gateway_user}\ntopic readwrite #\n"
    );
    let mut sorted: Vec<&Device> = devices.iter().collect();
    sorted.sort_by_key(|d| d.id);
    for d in sorted {
        let _ = writeln!(
            passwd,
            "{}",
            passwd_line(d.id.as_str(), &broker_password(&d.key), &salt())
        );
        let (write, read) = device_topics(d, prefix);
        let _ = writeln!(acl, "\nuser {}", d.id);
        for t in write {
            let _ = writeln!(acl, "topic write {t}");
        }
        for t in read {
            let _ = writeln!(acl, "topic read {t}");
        }
    }
    for b in bindings {
        let _ = writeln!(passwd, "{}", passwd_line(&b.user, &b.password, &salt()));
        let _ = writeln!(
            acl,
            "\n# an off-the-shelf device from the site file's [[bindings]]"
        );
        let _ = writeln!(acl, "user {}", b.user);
        for t in &b.topics.0 {
            let _ = writeln!(acl, "topic write {t}");
        }
        for t in &b.topics.1 {
            let _ = writeln!(acl, "topic read {t}");
        }
    }
    Files { conf, passwd, acl }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn a_password_line_has_mosquittos_shape_and_a_password_is_stable() {
        let line = passwd_line("dn-main", "secret", &[1; 12]);
        let parts: Vec<&str> = line.split('$').collect();
        assert_eq!(parts[0], "dn-main:");
        assert_eq!(parts[1], "6");
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3].len(), 88);
        let k = DeviceKey::from_bytes([9; 32]);
        assert_eq!(broker_password(&k), broker_password(&k));
        assert_eq!(broker_password(&k).len(), 32);
        assert_ne!(
            broker_password(&k),
            broker_password(&DeviceKey::from_bytes([8; 32]))
        );
    }
}
