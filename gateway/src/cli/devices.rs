//! Devices from the command line: door and sensor nodes, alert feeds, their keys, and the broker
//! accounts and ACL for mosquitto.

use super::*;

/// Device commands.
#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Register a device and print its new secret key (shown once).
    Add {
        /// Identifier: its MQTT client id and topic id.
        id: String,
        /// Door node, sensor node or alert feed.
        #[arg(long, value_enum)]
        kind: DeviceKind,
        /// The door reader a door node serves.
        #[arg(long)]
        door: Option<String>,
        /// The room a sensor node watches.
        #[arg(long)]
        room: Option<String>,
        /// Use this key (64 hex digits) instead of a new random one.
        #[arg(long)]
        key: Option<String>,
    },
    /// Give a device a new key (printed once, with its new broker password): for a node that
    /// was lost, stolen or replaced. Messages signed with the old key are refused from then on;
    /// run `mosquitto-config` again.
    Rekey {
        /// The device.
        id: String,
    },
    /// Remove a device from the registry (run `mosquitto-config` again to drop its account).
    Remove {
        /// The device.
        id: String,
    },
    /// List devices.
    List,
    /// Write mosquitto's configuration for the registered devices: no anonymous access, an
    /// account per device (its password derived from its key, as `device add` prints it) and
    /// one for the gateway, an ACL keeping each device to its own topics.
    MosquittoConfig {
        /// Where to write `kombinat.conf`, `passwd` and `acl`.
        #[arg(long)]
        out: PathBuf,
        /// Where mosquitto will find the files (default: OUT).
        #[arg(long)]
        install_dir: Option<String>,
        /// The gateway's broker account.
        #[arg(long, default_value = "kombinat-gateway")]
        gateway_user: String,
        /// A file holding the gateway's broker password (the `password` of `[mqtt]` in the
        /// service configuration).
        #[arg(long)]
        gateway_password_file: PathBuf,
        /// The listener, HOST:PORT.
        #[arg(long, default_value = "0.0.0.0:8883")]
        listen: String,
        /// TLS: the CA file (with --certfile and --keyfile); without them the listener is plain.
        #[arg(long, requires_all = ["certfile", "keyfile"])]
        cafile: Option<String>,
        /// TLS: the broker's certificate.
        #[arg(long)]
        certfile: Option<String>,
        /// TLS: the broker's key.
        #[arg(long)]
        keyfile: Option<String>,
        /// The topic prefix.
        #[arg(long, default_value = kombinat_protocol::DEFAULT_PREFIX)]
        prefix: String,
    },
}

fn binding_secret(store: &dyn Store) -> Result<[u8; 32]> {
    crate::mosquitto::binding_secret(store).map_err(|e| anyhow!(e))
}

/// A group's id from /etc/group.
#[cfg(unix)]
fn group_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
        })
}

pub(super) fn run(cli: &Cli, c: &DeviceCmd, out: &mut dyn Write, now: DateTime<Utc>) -> Result<()> {
    match c {
        DeviceCmd::Add {
            id: did,
            kind,
            door,
            room,
            key,
        } => {
            let mut ctx = open(cli, now)?;
            let key = match key {
                Some(k) => DeviceKey::parse_hex(k)
                    .ok_or_else(|| anyhow!("--key: a device key is 64 hex digits"))?,
                None => {
                    let mut b = [0u8; 32];
                    getrandom::fill(&mut b)
                        .map_err(|e| anyhow!("cannot get random bytes for the key: {e}"))?;
                    DeviceKey::from_bytes(b)
                }
            };
            let device = Device {
                id: id::<DeviceId>("device", did)?,
                kind: *kind,
                door: door
                    .as_deref()
                    .map(|d| id::<DoorId>("door", d))
                    .transpose()?,
                room: room
                    .as_deref()
                    .map(|r| id::<RoomId>("room", r))
                    .transpose()?,
                key: key.clone(),
                added_at: now,
            };
            let did = device.id;
            ctx.gateway.add_device(device, actor(), now)?;
            writeln!(
                out,
                "device {did} registered; its key (shown once, put it in the device's config):"
            )?;
            writeln!(out, "{}", key.expose_hex())?;
            writeln!(
                out,
                "its broker account (for mosquitto): user {did}, password {}",
                crate::mosquitto::broker_password(&key)
            )?;
            Ok(())
        }
        DeviceCmd::Rekey { id: did } => {
            let mut ctx = open(cli, now)?;
            let did: DeviceId = id("device", did)?;
            let mut b = [0u8; 32];
            getrandom::fill(&mut b)
                .map_err(|e| anyhow!("cannot get random bytes for the key: {e}"))?;
            let key = DeviceKey::from_bytes(b);
            ctx.gateway.rekey_device(did, key.clone(), actor(), now)?;
            writeln!(
                out,
                "device {did} has a new key (shown once, put it in the device's config):"
            )?;
            writeln!(out, "{}", key.expose_hex())?;
            writeln!(
                out,
                "its broker account (for mosquitto): user {did}, password {}; run `devices mosquitto-config` again",
                crate::mosquitto::broker_password(&key)
            )?;
            Ok(())
        }
        DeviceCmd::Remove { id: did } => {
            let mut ctx = open(cli, now)?;
            let did: DeviceId = id("device", did)?;
            ctx.gateway.remove_device(did, actor(), now)?;
            writeln!(
                out,
                "device {did} removed; run `devices mosquitto-config` again to drop its broker account"
            )?;
            Ok(())
        }
        DeviceCmd::MosquittoConfig {
            out: dir,
            install_dir,
            gateway_user,
            gateway_password_file,
            listen,
            cafile,
            certfile,
            keyfile,
            prefix,
        } => {
            let ctx = open(cli, now)?;
            let devices = ctx.gateway.store().devices()?;
            let secret = binding_secret(ctx.gateway.store())?;
            let bindings = crate::mosquitto::binding_accounts(&ctx.site.bindings, &secret, prefix);
            // One account, one name: a binding called like a device or the gateway would
            // share (or widen) its rights.
            for b in &bindings {
                if b.user == *gateway_user || devices.iter().any(|d| d.id.as_str() == b.user) {
                    bail!(
                        "the broker account {} is both an off-the-shelf device in the site file and {}: rename the binding",
                        b.user,
                        if b.user == *gateway_user { "the gateway's account" } else { "a registered device" }
                    );
                }
            }
            let password = std::fs::read_to_string(gateway_password_file)
                .with_context(|| format!("cannot read {}", gateway_password_file.display()))?;
            let password = password.trim();
            if password.len() < 16 {
                bail!("the gateway's broker password is at least 16 characters");
            }
            let (host, port) = listen
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| anyhow!("--listen is HOST:PORT"))?;
            let tls = match (cafile, certfile, keyfile) {
                (Some(a), Some(b), Some(c)) => Some((a.clone(), b.clone(), c.clone())),
                _ => None,
            };
            let plain = tls.is_none();
            let listener = crate::mosquitto::Listener { host, port, tls };
            let install = install_dir
                .clone()
                .unwrap_or_else(|| dir.display().to_string());
            let mut salt_err = None;
            let files = crate::mosquitto::generate(
                &devices,
                &bindings,
                prefix,
                gateway_user,
                password,
                &listener,
                &install,
                || {
                    let mut s = [0u8; 12];
                    if let Err(e) = getrandom::fill(&mut s) {
                        salt_err = Some(e);
                    }
                    s
                },
            );
            if let Some(e) = salt_err {
                bail!("cannot get random bytes for the password salts: {e}");
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (name, text) in [
                ("kombinat.conf", &files.conf),
                ("passwd", &files.passwd),
                ("acl", &files.acl),
            ] {
                let path = dir.join(name);
                std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            // The off-the-shelf devices' passwords, for their own settings pages: for the
            // operator's eyes only.
            let accounts = dir.join("binding-accounts");
            let mut text = String::from(
                "# The broker accounts of the site file's off-the-shelf devices and of the read-only observer\n\
                 # (Home Assistant, mosquitto_sub): enter each in the\n\
                 # device's MQTT settings (user, password), then delete this file.\n",
            );
            for b in &bindings {
                text.push_str(&format!("{} {}\n", b.user, b.password));
            }
            write_private(&accounts, &text)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                // mosquitto 2 drops to its own user before it reads the password file: the file
                // is the mosquitto group's to read (0640 root:mosquitto), nobody else's.
                let passwd = dir.join("passwd");
                std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o640))?;
                match group_id("mosquitto") {
                    Some(gid) => {
                        if let Err(e) = std::os::unix::fs::chown(&passwd, None, Some(gid)) {
                            writeln!(
                                out,
                                "cannot give {} to the group mosquitto ({e}): run `chgrp mosquitto {}` as root, or mosquitto will not start",
                                passwd.display(),
                                passwd.display()
                            )?;
                        }
                    }
                    None => writeln!(
                        out,
                        "there is no group mosquitto here: on the broker's machine, `chgrp mosquitto passwd` (mosquitto reads it as its own user)"
                    )?,
                }
            }
            writeln!(
                out,
                "mosquitto configuration for {} devices and {} off-the-shelf accounts written to {}{}",
                devices.len(),
                bindings.len(),
                dir.display(),
                if plain {
                    " (plain listener: give --cafile, --certfile and --keyfile for TLS)"
                } else {
                    ""
                }
            )?;
            Ok(())
        }
        DeviceCmd::List => {
            let ctx = open(cli, now)?;
            let devices = ctx.gateway.store().devices()?;
            for d in &devices {
                writeln!(
                    out,
                    "{:<20} {:<10} {}",
                    d.id.to_string(),
                    format!("{:?}", d.kind).to_lowercase(),
                    d.door
                        .map(|x| format!("door {x}"))
                        .or(d.room.map(|r| format!("room {r}")))
                        .unwrap_or_default()
                )?;
            }
            writeln!(out, "{} devices", devices.len())?;
            Ok(())
        }
    }
}
