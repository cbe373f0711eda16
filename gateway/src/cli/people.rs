//! Members and their cards from the command line: add, change, suspend, erase; issue and revoke
//! cards and PINs.

use super::*;

/// Member commands.
#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Add a member.
    Add {
        /// Identifier (a-z, 0-9, '-', '_', '.').
        id: String,
        /// Full name.
        #[arg(long)]
        name: String,
        /// E-mail address (to match calendar attendees).
        #[arg(long)]
        email: Option<String>,
        /// A role that grants rights by itself (repeatable).
        #[arg(long = "role", value_enum)]
        roles: Vec<Role>,
        /// A plan from the site file.
        #[arg(long)]
        plan: Option<String>,
        /// Organisation (for leases).
        #[arg(long = "org")]
        organisation: Option<String>,
        /// A certification held (repeatable), e.g. induction-fablab.
        #[arg(long = "cert")]
        certifications: Vec<String>,
        /// Membership starts (RFC 3339 or local "YYYY-MM-DD HH:MM").
        #[arg(long)]
        valid_from: Option<String>,
        /// Membership ends (RFC 3339 or local "YYYY-MM-DD HH:MM").
        #[arg(long)]
        valid_until: Option<String>,
    },
    /// List members.
    List,
    /// Show a member, their cards and their bookings.
    Show {
        /// The member.
        id: String,
    },
    /// Suspend a member: their doors stay shut until resumed.
    Suspend {
        /// The member.
        id: String,
        /// Why (kept in the log).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Erase a member's personal data, with the gateway stopped: their record and cards go,
    /// they leave their bookings, and the log keeps every entry with their id replaced by a
    /// pseudonym and their cards removed. Cannot be undone (a backup first is wise).
    Erase {
        /// The member.
        id: String,
        /// Yes, erase.
        #[arg(long)]
        yes: bool,
    },
    /// Lift a suspension.
    Resume {
        /// The member.
        id: String,
    },
}

/// Credential commands.
#[derive(Debug, Subcommand)]
pub enum CardCmd {
    /// Issue a card or PIN to a member.
    Add {
        member: String,
        #[command(flatten)]
        credential: CredentialArg,
    },
    /// Revoke a card or PIN.
    Revoke {
        #[command(flatten)]
        credential: CredentialArg,
    },
}

pub(super) fn member(
    cli: &Cli,
    c: &MemberCmd,
    out: &mut dyn Write,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut ctx = open(cli, now)?;
    let mut erased = None;
    match c {
        MemberCmd::Add {
            id: mid,
            name,
            email,
            roles,
            plan,
            organisation,
            certifications,
            valid_from,
            valid_until,
        } => {
            if name.trim().is_empty() {
                bail!("a member needs a name");
            }
            let mut m = Member::new(id::<MemberId>("member", mid)?, name.trim());
            m.email = email
                .as_deref()
                .map(Email::parse)
                .transpose()
                .map_err(|e| anyhow!("{e}"))?;
            m.roles = roles.clone();
            m.plan = plan
                .as_deref()
                .map(|p| id::<PlanId>("plan", p))
                .transpose()?;
            m.organisation = organisation
                .as_deref()
                .map(|o| id::<OrgId>("organisation", o))
                .transpose()?;
            m.certifications = certifications
                .iter()
                .map(|c| id::<CertId>("certification", c))
                .collect::<Result<_>>()?;
            m.valid_from = valid_from
                .as_deref()
                .map(|t| parse_time(&ctx.site, t))
                .transpose()?;
            m.valid_until = valid_until
                .as_deref()
                .map(|t| parse_time(&ctx.site, t))
                .transpose()?;
            let mid = m.id;
            ctx.gateway.add_member(m, actor(), now)?;
            writeln!(out, "member {mid} added")?;
        }
        MemberCmd::Erase { id: mid, yes } => {
            let mid = MemberId::parse(mid).map_err(|e| anyhow!("member {mid:?}: {e}"))?;
            if !yes {
                bail!("erasing {mid} cannot be undone: add --yes (and take a backup first)");
            }
            let (pseudonym, n) = ctx.gateway.erase_member(mid, actor(), now)?;
            writeln!(
                out,
                "member {mid} erased; the log calls them {pseudonym} ({n} entries rewritten)"
            )?;
            erased = Some(mid);
        }
        MemberCmd::List => {
            let members = ctx.gateway.store().members()?;
            for m in &members {
                writeln!(
                    out,
                    "{:<20} {:<28} {:<10} plan {:<18} org {}",
                    m.id.to_string(),
                    m.name,
                    match m.status {
                        MemberStatus::Active => "active",
                        MemberStatus::Suspended { .. } => "suspended",
                    },
                    m.plan.map_or("-".into(), |p| p.to_string()),
                    m.organisation.map_or("-".into(), |o| o.to_string()),
                )?;
            }
            writeln!(out, "{} members", members.len())?;
        }
        MemberCmd::Show { id: mid } => {
            let mid = id::<MemberId>("member", mid)?;
            let m = ctx
                .gateway
                .store()
                .member(mid)?
                .ok_or_else(|| anyhow!("there is no member {mid}"))?;
            writeln!(out, "{} — {}", m.id, m.name)?;
            writeln!(
                out,
                "  e-mail:          {}",
                m.email.as_ref().map_or("-".into(), |e| e.to_string())
            )?;
            writeln!(
                out,
                "  status:          {}",
                match &m.status {
                    MemberStatus::Active => "active".to_string(),
                    MemberStatus::Suspended { reason } => format!("suspended ({reason})"),
                }
            )?;
            writeln!(
                out,
                "  valid:           {} to {}",
                m.valid_from.map_or("-".into(), |t| local(&ctx.site, t)),
                m.valid_until.map_or("-".into(), |t| local(&ctx.site, t))
            )?;
            writeln!(
                out,
                "  roles:           {}",
                if m.roles.is_empty() {
                    "-".into()
                } else {
                    format!("{:?}", m.roles).to_lowercase()
                }
            )?;
            writeln!(
                out,
                "  plan:            {}",
                m.plan.map_or("-".into(), |p| p.to_string())
            )?;
            writeln!(
                out,
                "  organisation:    {}",
                m.organisation.map_or("-".into(), |o| o.to_string())
            )?;
            writeln!(
                out,
                "  certifications:  {}",
                m.certifications
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            for c in ctx
                .gateway
                .store()
                .credentials()?
                .iter()
                .filter(|c| c.member == mid)
            {
                writeln!(
                    out,
                    "  credential:      {} issued {}{}",
                    c.credential,
                    local(&ctx.site, c.issued_at),
                    c.revoked_at.map_or(String::new(), |t| format!(
                        ", revoked {}",
                        local(&ctx.site, t)
                    ))
                )?;
            }
            for b in ctx
                .gateway
                .store()
                .bookings()?
                .iter()
                .filter(|b| b.people().any(|p| p == mid))
            {
                writeln!(out, "  booking:         {}", booking_line(&ctx.site, b))?;
            }
        }
        MemberCmd::Suspend { id: mid, reason } => {
            let mid = id::<MemberId>("member", mid)?;
            ctx.gateway
                .set_suspended(mid, Some(reason.clone()), actor(), now)?;
            writeln!(out, "member {mid} suspended")?;
        }
        MemberCmd::Resume { id: mid } => {
            let mid = id::<MemberId>("member", mid)?;
            ctx.gateway.set_suspended(mid, None, actor(), now)?;
            writeln!(out, "member {mid} resumed")?;
        }
    }
    if let Some(mid) = erased {
        drop(ctx);
        after_erasure(&cli.data_dir(), mid, out)?;
    }
    Ok(())
}

/// After an erasure: the store is written anew ([`crate::store::rewrite`]: sled keeps old
/// versions of what it rewrote in its files until it reuses the space), and the older copies of
/// the store beside it, which still hold the member's details, are listed.
fn after_erasure(data: &std::path::Path, mid: MemberId, out: &mut dyn Write) -> Result<()> {
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let rewritten = crate::store::rewrite::rewrite_in_place(data);
    match rewritten {
        Ok(n) => writeln!(
            out,
            "the store was written anew ({n} records): nothing of {mid} is left in its files"
        )?,
        Err(e) => writeln!(
            out,
            "the store could not be written anew ({e}): its files may still hold {mid}'s old details until sled reuses the space; the rewrite works inside {}, so run erasures as the user who owns it (or root, as deploy/README.md does)",
            data.display()
        )?,
    }
    // Older copies beside the store: restores kept, migrations' backups.
    let dir = data.parent().unwrap_or(std::path::Path::new("."));
    let mut older: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let n = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    n.starts_with(&format!("{name}.before-restore-"))
                        || (n.starts_with(&format!("{name}.schema-")) && n.ends_with(".backup"))
                })
                .collect()
        })
        .unwrap_or_default();
    // A migration's backup may also sit inside the data directory.
    if let Ok(rd) = std::fs::read_dir(data) {
        older.extend(rd.flatten().map(|e| e.path()).filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".backup"))
        }));
    }
    older.sort();
    if !older.is_empty() {
        writeln!(
            out,
            "these older copies still hold {mid}'s details; delete them (and the backups taken before today) to finish the erasure:"
        )?;
        for p in &older {
            writeln!(out, "  {}", p.display())?;
        }
    }
    Ok(())
}

pub(super) fn card(cli: &Cli, c: &CardCmd, out: &mut dyn Write, now: DateTime<Utc>) -> Result<()> {
    let mut ctx = open(cli, now)?;
    match c {
        CardCmd::Add { member, credential } => {
            let mid = id::<MemberId>("member", member)?;
            let cred = credential.parse()?;
            ctx.gateway.add_credential(mid, cred, actor(), now)?;
            writeln!(out, "{cred} issued to {mid}")?;
        }
        CardCmd::Revoke { credential } => {
            let cred = credential.parse()?;
            ctx.gateway.revoke_credential(cred, actor(), now)?;
            writeln!(out, "{cred} revoked")?;
        }
    }
    Ok(())
}
