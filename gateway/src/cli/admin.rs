//! Running the gateway's operations from the command line: staff accounts, API tokens, backups
//! and restores, the access log's tail, checking the configuration.

use super::*;

/// Staff commands (with the gateway stopped; while it runs, admins use the dashboard).
#[derive(Debug, Subcommand)]
pub enum StaffCmd {
    /// Add an account. The password is read from the first line of standard input (at least
    /// 10 characters), or made up and printed once with --generate.
    Add {
        /// The login name (a-z, 0-9, '.', '_', '-').
        name: String,
        /// What it may do.
        #[arg(long, value_enum)]
        role: crate::staff::StaffRole,
        /// Make up a password and print it.
        #[arg(long)]
        generate: bool,
    },
    /// Change an account's role, or its password (read as for add; signs it out everywhere).
    Set {
        /// The login name.
        name: String,
        /// A new role.
        #[arg(long, value_enum)]
        role: Option<crate::staff::StaffRole>,
        /// Read a new password from standard input.
        #[arg(long)]
        password: bool,
    },
    /// Remove an account (not the last admin).
    Remove {
        /// The login name.
        name: String,
    },
    /// List accounts (names and roles; never a password).
    List,
}

/// A password from the first line of standard input.
fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        bail!("give the password on standard input, or use --generate");
    }
    Ok(p)
}

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Make a token for a booking system; NAME is the booking source it writes as. The token
    /// is printed once; only its hash is kept.
    Add {
        /// The booking source.
        name: String,
        /// What it may do (repeat for several).
        #[arg(long = "scope", value_enum, required = true)]
        scopes: Vec<crate::domain::Scope>,
    },
    /// Revoke a token: it is refused from now on.
    Revoke {
        /// The token's name.
        name: String,
    },
    /// List tokens (names, scopes, state; never the token).
    List,
}

/// Audit log commands.
#[derive(Debug, Subcommand)]
pub enum LogCmd {
    /// The latest entries, oldest first.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
    },
}

/// A token request: applied directly when the store is free, or handed to the running
/// gateway through the spool when `kombinat run` holds it (a leaked token must be revocable
/// without stopping the doors).
fn token_request(cli: &Cli, now: DateTime<Utc>, req: crate::spool::Request) -> Result<()> {
    match open(cli, now) {
        Ok(mut ctx) => ctx
            .gateway
            .token_request(req, actor(), now)
            .map_err(|e| anyhow!(e)),
        Err(e)
            if e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<crate::store::StoreError>(),
                    Some(crate::store::StoreError::Busy)
                )
            }) =>
        {
            let Actor::Cli(by) = actor() else {
                unreachable!("the command line's actor")
            };
            let path = crate::spool::submit(
                &cli.data_dir(),
                &crate::spool::Envelope { by, request: req },
            )
            .with_context(|| {
                format!(
                    "cannot write to {}",
                    crate::spool::dir(&cli.data_dir()).display()
                )
            })?;
            crate::spool::wait(&path, std::time::Duration::from_secs(30)).map_err(|e| anyhow!(e))
        }
        Err(e) => Err(e),
    }
}

pub(super) fn token(
    cli: &Cli,
    c: &TokenCmd,
    out: &mut dyn Write,
    now: DateTime<Utc>,
) -> Result<()> {
    match c {
        TokenCmd::Add { name, scopes } => {
            let name: crate::domain::SourceId = id("token name", name)?;
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw).map_err(|e| anyhow!("no randomness: {e}"))?;
            let token = format!(
                "kmb_{}",
                raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            let mut scopes = scopes.clone();
            scopes.sort_by_key(|s| *s as u8);
            scopes.dedup();
            token_request(
                cli,
                now,
                crate::spool::Request::AddToken(crate::domain::ApiToken {
                    name,
                    sha256: crate::domain::token_hash(&token),
                    scopes,
                    created_at: now,
                    revoked_at: None,
                }),
            )?;
            writeln!(out, "{token}")?;
            eprintln!("the token is shown once: give it to the booking system as Authorization: Bearer <token>");
            Ok(())
        }
        TokenCmd::Revoke { name } => {
            let name: crate::domain::SourceId = id("token name", name)?;
            token_request(cli, now, crate::spool::Request::RevokeToken(name))?;
            writeln!(out, "token {name} revoked")?;
            Ok(())
        }
        TokenCmd::List => {
            let ctx = open(cli, now)?;
            for t in ctx.gateway.store().tokens()? {
                writeln!(
                    out,
                    "{:<24} {:<32} {}",
                    t.name.to_string(),
                    t.scopes
                        .iter()
                        .map(|s| match s {
                            crate::domain::Scope::BookingsWrite => "bookings:write",
                            crate::domain::Scope::BookingsRead => "bookings:read",
                            crate::domain::Scope::MetricsRead => "metrics:read",
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    t.revoked_at.map_or("live".to_string(), |r| format!(
                        "revoked {}",
                        local(&ctx.site, r)
                    ))
                )?;
            }
            Ok(())
        }
    }
}

pub(super) fn backup(cli: &Cli, file: &Path, out: &mut dyn Write) -> Result<()> {
    let data = cli.data_dir();
    let n = match SledStore::open(&data) {
        Ok(store) => crate::service::write_backup(&store, file).map_err(|e| anyhow!(e))?,
        Err(crate::store::StoreError::Busy) => {
            let Actor::Cli(by) = actor() else {
                unreachable!("the command line's actor")
            };
            let path = crate::spool::submit(
                &data,
                &crate::spool::Envelope {
                    by,
                    request: crate::spool::Request::Backup,
                },
            )
            .with_context(|| format!("cannot write to {}", crate::spool::dir(&data).display()))?;
            crate::spool::wait(&path, std::time::Duration::from_secs(3600))
                .map_err(|e| anyhow!("the running gateway did not write the backup: {e}"))?;
            let written = crate::spool::backup_file(&path);
            // The gateway wrote it in its own directory; it moves to where it was asked.
            if std::fs::rename(&written, file).is_err() {
                std::fs::copy(&written, file)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                let _ = std::fs::remove_file(&written);
            }
            let mut f = std::fs::File::open(file)?;
            let mut r = crate::store::backup::Reader::open(&mut f)?;
            let mut n = 0;
            while let Some(i) = r.next_item()? {
                n += u64::from(matches!(i, crate::store::backup::Item::Record(..)));
            }
            n
        }
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", data.display())),
    };
    writeln!(
        out,
        "backup of {} written to {}: {n} records",
        data.display(),
        file.display()
    )?;
    Ok(())
}

pub(super) fn restore(
    cli: &Cli,
    file: &Path,
    force: bool,
    out: &mut dyn Write,
    now: DateTime<Utc>,
) -> Result<()> {
    let data = cli.data_dir();
    let mut input = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?,
    );
    let occupied = data.exists() && std::fs::read_dir(&data)?.next().is_some();
    // The counters the store being replaced has seen: the backup's are older, and a
    // message captured since would be taken again.
    let mut seen = Vec::new();
    if occupied {
        // Busy means the gateway runs: it is stopped first.
        let current =
            SledStore::open(&data).with_context(|| format!("cannot open {}", data.display()))?;
        if !force {
            bail!("{} holds a store: stop the gateway and add --force to replace it (it is kept beside)", data.display());
        }
        seen = crate::store::counters_seen(&current)?;
    }
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let staged = data.with_file_name(format!(".{name}.restoring"));
    let _ = std::fs::remove_dir_all(&staged);
    let n = SledStore::restore(&staged, &mut input)?;
    // Opened once: a restore from an older schema is migrated now, not at the next start.
    let restored = SledStore::open(&staged)?;
    let raised = crate::store::raise_counters(&restored, &seen, now)?;
    drop(restored);
    if raised > 0 {
        writeln!(
            out,
            "{raised} devices' replay counters moved past what the replaced store had seen"
        )?;
    } else if !occupied {
        writeln!(
            out,
            "no store was here: the devices' replay counters are the backup's; if messages may have been captured since it was made, give the devices new keys (`kombinat device rekey`)"
        )?;
    }
    if occupied {
        let kept = data.with_file_name(format!(
            "{name}.before-restore-{}",
            now.format("%Y%m%d-%H%M%S")
        ));
        std::fs::rename(&data, &kept)?;
        writeln!(
            out,
            "the store that was there is kept in {}",
            kept.display()
        )?;
    } else if data.exists() {
        std::fs::remove_dir(&data)?;
    }
    std::fs::rename(&staged, &data)?;
    writeln!(
        out,
        "restored {n} records from {} into {}",
        file.display(),
        data.display()
    )?;
    Ok(())
}

pub(super) fn staff(
    cli: &Cli,
    cmd: &StaffCmd,
    out: &mut dyn Write,
    now: DateTime<Utc>,
) -> Result<()> {
    let ctx = open(cli, now)?;
    let store: Arc<dyn Store> = ctx.gateway.store_arc();
    let staff = crate::staff::Staff::load(store, now)?;
    match cmd {
        StaffCmd::Add {
            name,
            role,
            generate,
        } => {
            let name = crate::staff::StaffName::parse(name).map_err(|e| anyhow!(e))?;
            let password = if *generate {
                crate::staff::generate_password().map_err(|e| anyhow!(e))?
            } else {
                read_password()?
            };
            staff.add(name.clone(), *role, &password, actor(), now)?;
            writeln!(out, "staff {name} added as {role}")?;
            if *generate {
                writeln!(out, "password (shown once): {password}")?;
            }
        }
        StaffCmd::Set {
            name,
            role,
            password,
        } => {
            let name = crate::staff::StaffName::parse(name).map_err(|e| anyhow!(e))?;
            let pw = if *password {
                Some(read_password()?)
            } else {
                None
            };
            if role.is_none() && pw.is_none() {
                bail!("say what to change: --role, --password");
            }
            let a = staff.update(&name, *role, pw.as_deref(), actor(), now)?;
            writeln!(out, "staff {name}: {}", a.role)?;
        }
        StaffCmd::Remove { name } => {
            let name = crate::staff::StaffName::parse(name).map_err(|e| anyhow!(e))?;
            staff.remove(&name, actor(), now)?;
            writeln!(out, "staff {name} removed")?;
        }
        StaffCmd::List => {
            for a in staff.accounts() {
                writeln!(
                    out,
                    "{}\t{}\tsince {}",
                    a.name,
                    a.role,
                    local(&ctx.site, a.created_at)
                )?;
            }
        }
    }
    Ok(())
}

pub(super) fn log(cli: &Cli, c: &LogCmd, out: &mut dyn Write, now: DateTime<Utc>) -> Result<()> {
    match c {
        LogCmd::Tail { lines } => {
            let ctx = open(cli, now)?;
            for r in ctx.gateway.store().audit_tail(*lines)? {
                let e = &r.entry;
                let what = match &e.event {
                    AuditEvent::Decision {
                        door,
                        card,
                        reason,
                        member,
                        booking,
                        offline,
                        ..
                    } => format!(
                        "{reason:<28} door {door} {} member {}{}{}",
                        card.map_or("PIN".to_string(), |c| format!("card {c}")),
                        member.map_or("-".to_string(), |m| m.to_string()),
                        booking
                            .as_ref()
                            .map_or(String::new(), |b| format!(" booking {b}")),
                        if *offline { " (decided offline)" } else { "" }
                    ),
                    AuditEvent::Change { summary } => summary.clone(),
                    AuditEvent::Mode { mode } => format!("site mode set to {mode}"),
                    AuditEvent::NoShow { booking, room } => {
                        format!("no-show: booking {booking} in room {room}")
                    }
                    AuditEvent::Alarm {
                        door,
                        device,
                        alarm,
                        raised,
                    } => format!(
                        "alarm {alarm:?} {} {}",
                        if *raised { "raised" } else { "cleared" },
                        door.map(|d| format!("door {d}"))
                            .or(device.map(|d| format!("device {d}")))
                            .unwrap_or_default()
                    ),
                };
                writeln!(
                    out,
                    "{}  {:<16} {what}",
                    local(&ctx.site, e.at),
                    e.actor.to_string()
                )?;
            }
            Ok(())
        }
    }
}

pub(super) fn check_config(cli: &Cli, out: &mut dyn Write) -> Result<()> {
    let path = cli.site_path()?;
    let site = crate::site_file::load(&path)?;
    for w in site.exit_warnings() {
        writeln!(out, "warning: {w}")?;
    }
    writeln!(
        out,
        "{}: {} ({}), {} floors, {} zones, {} rooms, {} doors, {} plans, {} leases, {} holidays",
        path.display(),
        site.name,
        site.timezone,
        site.floors.len(),
        site.zones.len(),
        site.rooms.len(),
        site.doors.len(),
        site.plans.len(),
        site.leases.len(),
        site.holidays.len()
    )?;
    let mut unreachable = Vec::new();
    for (i, r) in site.rooms.iter().enumerate() {
        let way: Vec<String> = site
            .way(i)
            .iter()
            .map(|&d| site.doors[d].id.to_string())
            .collect();
        let reachable = site
            .way(i)
            .first()
            .is_some_and(|&d| site.doors[d].from.is_none());
        if !reachable && site.doors.iter().any(|d| d.into == r.id) {
            unreachable.push(r.id.to_string());
        }
        writeln!(
            out,
            "  {:<18} {:<11} cap {:>4}  way in: {}",
            r.id.to_string(),
            format!("{:?}", r.kind).to_lowercase(),
            r.capacity.map_or("-".into(), |c| c.to_string()),
            if way.is_empty() {
                "(no door)".into()
            } else {
                way.join(" > ")
            }
        )?;
    }
    if !unreachable.is_empty() {
        bail!(
            "no way in from outside leads to: {} (check the doors' from and into)",
            unreachable.join(", ")
        );
    }
    writeln!(out, "OK")?;
    Ok(())
}
