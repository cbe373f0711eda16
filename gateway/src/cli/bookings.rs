//! Bookings from the command line: one at a time, and imported (CSV of bookings or members, a
//! room's iCalendar file through the same reconciliation as the feeds).

use super::*;

/// Booking commands.
#[derive(Debug, Subcommand)]
pub enum BookingCmd {
    /// Add (or replace) a booking.
    Add {
        #[arg(long)]
        room: String,
        /// Meeting, stay, event or guest-pass.
        #[arg(long, value_enum, default_value = "meeting")]
        kind: BookingKind,
        /// Start (meetings, events, guest passes).
        #[arg(long, required_unless_present = "arrival")]
        start: Option<String>,
        /// End (meetings, events, guest passes).
        #[arg(long, required_unless_present = "departure")]
        end: Option<String>,
        /// Arrival day YYYY-MM-DD (stays).
        #[arg(long, conflicts_with_all = ["start", "end"])]
        arrival: Option<String>,
        /// Departure day YYYY-MM-DD (stays).
        #[arg(long, conflicts_with_all = ["start", "end"])]
        departure: Option<String>,
        /// Organiser (a member).
        #[arg(long)]
        organiser: Option<String>,
        /// Attendee (a member; repeatable).
        #[arg(long = "attendee")]
        attendees: Vec<String>,
        #[arg(long, default_value = "")]
        title: String,
        /// Source system.
        #[arg(long, default_value = "cli")]
        source: String,
        /// The source's id for the booking; generated when omitted.
        #[arg(long)]
        id: Option<String>,
    },
    /// List bookings.
    List {
        /// Only this room.
        #[arg(long)]
        room: Option<String>,
        /// Include cancelled bookings.
        #[arg(long)]
        all: bool,
    },
    /// Cancel a booking.
    Cancel {
        /// Source system.
        #[arg(long, default_value = "cli")]
        source: String,
        /// The source's id for the booking.
        #[arg(long)]
        id: String,
    },
}

/// Import commands.
#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// Bookings from a CSV file (columns: external_id, room, kind, organiser, start, end or
    /// arrival, departure; optional source, title, attendees, status). All or nothing, unless
    /// --partial.
    Bookings {
        /// The CSV file.
        file: PathBuf,
        /// Check every row and say what would change, writing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write the good rows even when some rows are bad.
        #[arg(long)]
        partial: bool,
        /// The booking source for rows without a source column.
        #[arg(long, default_value = "import")]
        source: String,
    },
    /// A room's calendar from an iCalendar file (a Google, Outlook or Nextcloud room
    /// calendar's export): its occurrences in the coming days become meetings; what it booked
    /// before and no longer has is cancelled. Importing it again changes nothing.
    Calendar {
        /// The .ics file.
        file: PathBuf,
        /// The room the calendar books.
        #[arg(long)]
        room: String,
        /// The booking source (default "ical-<room>").
        #[arg(long)]
        source: Option<String>,
        /// How many days ahead occurrences are taken.
        #[arg(long, default_value_t = 60)]
        days: u32,
    },
    /// Members and their cards from a CSV file (columns: id, name; optional email, plan,
    /// organisation, roles, certifications, valid_from, valid_until, cards). All or nothing,
    /// unless --partial.
    Members {
        /// The CSV file.
        file: PathBuf,
        /// Check every row and say what would change, writing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write the good rows even when some rows are bad.
        #[arg(long)]
        partial: bool,
    },
}

/// A progress bar for a file being read: drawn only on a terminal (indicatif hides itself
/// otherwise), and only for files big enough to wait for.
fn file_bar(size: u64) -> indicatif::ProgressBar {
    if size > 256 * 1024 {
        indicatif::ProgressBar::new(size)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// Reports bad rows; refuses (all or nothing) unless `partial`.
fn report_bad(
    out: &mut dyn Write,
    file: &std::path::Path,
    errors: &[crate::import::RowError],
    good: usize,
    partial: bool,
) -> Result<()> {
    for e in errors {
        writeln!(out, "{}: {e}", file.display())?;
    }
    let bad = errors.len();
    if bad > 0 && !partial {
        bail!(
            "{} has {bad} bad row{}: nothing imported (fix them, or --partial for the {good} good ones)",
            file.display(),
            if bad == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

pub(super) fn import(
    cli: &Cli,
    c: &ImportCmd,
    out: &mut dyn Write,
    now: DateTime<Utc>,
) -> Result<()> {
    match c {
        ImportCmd::Bookings {
            file,
            dry_run,
            partial,
            source,
        } => {
            let mut ctx = open(cli, now)?;
            let source: crate::domain::SourceId = id("source", source)?;
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let bar = file_bar(f.metadata().map(|m| m.len()).unwrap_or(0));
            let parsed = crate::import::read_bookings(
                ctx.gateway.snapshot(),
                source,
                std::io::BufReader::new(f),
                |pos| bar.set_position(pos),
            )
            .with_context(|| format!("{}", file.display()))?;
            bar.finish_and_clear();
            let bad = parsed.errors.len();
            report_bad(out, file, &parsed.errors, parsed.rows.len(), *partial)?;
            let rows: Vec<_> = parsed.rows.into_iter().map(|(_, b)| b).collect();
            if *dry_run {
                let (mut added, mut updated, mut unchanged) = (0, 0, 0);
                for b in &rows {
                    match ctx.gateway.store().booking(&b.key)? {
                        Some(old) if old == *b => unchanged += 1,
                        Some(_) => updated += 1,
                        None => added += 1,
                    }
                }
                writeln!(
                    out,
                    "dry run: {added} would be added, {updated} updated, {unchanged} unchanged, {bad} bad rows skipped; nothing written"
                )?;
                return Ok(());
            }
            let what = format!("import of {}", file.display());
            let c = ctx.gateway.import_bookings(rows, &what, actor(), now)?;
            writeln!(
                out,
                "{} added, {} updated, {} unchanged, {bad} bad rows skipped",
                c.added, c.updated, c.unchanged
            )?;
            Ok(())
        }
        ImportCmd::Calendar {
            file,
            room,
            source,
            days,
        } => {
            let mut ctx = open(cli, now)?;
            let room: crate::domain::RoomId = id("room", room)?;
            if ctx.site.room(room).is_none() {
                bail!("there is no room {room} in the site file");
            }
            let source: crate::domain::SourceId = id(
                "source",
                source.as_deref().unwrap_or(&format!("ical-{room}")),
            )?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            // From a day back (an occurrence under way stays), to `days` ahead.
            let from = now - chrono::Duration::days(1);
            let until = now + chrono::Duration::days(i64::from((*days).clamp(1, 366)));
            let expanded = crate::ics::expand(&text, ctx.site.timezone, from, until, 5000)
                .with_context(|| format!("{}", file.display()))?;
            let stored = ctx.gateway.store().bookings()?;
            let plan = crate::feed::plan(
                ctx.gateway.snapshot(),
                source,
                room,
                &expanded,
                (from, until),
                now,
                &stored,
            );
            for p in &plan.problems {
                writeln!(out, "{}: {p}", file.display())?;
            }
            if !plan.unmatched.is_empty() {
                writeln!(
                    out,
                    "{}: no member has {}",
                    file.display(),
                    plan.unmatched
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
            if expanded.truncated {
                writeln!(
                    out,
                    "{}: more occurrences than taken; the window was cut",
                    file.display()
                )?;
            }
            if let Some(why) = &plan.refused {
                bail!("{}: {why}", file.display());
            }
            let cancelled = plan.cancelled;
            let what = format!("calendar {} for room {room}", file.display());
            let c = ctx
                .gateway
                .import_bookings(plan.upserts, &what, actor(), now)?;
            writeln!(
                out,
                "{} occurrences in the window: {} bookings added, {} updated (of which {cancelled} cancelled)",
                expanded.occurrences.len(),
                c.added,
                c.updated,
            )?;
            Ok(())
        }
        ImportCmd::Members {
            file,
            dry_run,
            partial,
        } => {
            let mut ctx = open(cli, now)?;
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let bar = file_bar(f.metadata().map(|m| m.len()).unwrap_or(0));
            let parsed = crate::import::read_members(
                ctx.gateway.snapshot(),
                std::io::BufReader::new(f),
                |pos| bar.set_position(pos),
            )
            .with_context(|| format!("{}", file.display()))?;
            bar.finish_and_clear();
            let bad = parsed.errors.len();
            report_bad(out, file, &parsed.errors, parsed.rows.len(), *partial)?;
            let rows: Vec<_> = parsed.rows.into_iter().map(|(_, m)| m).collect();
            if *dry_run {
                let (mut added, mut updated, mut unchanged) = (0, 0, 0);
                for r in &rows {
                    match ctx.gateway.store().member(r.member.id)? {
                        Some(old) if old == r.member => unchanged += 1,
                        Some(_) => updated += 1,
                        None => added += 1,
                    }
                }
                writeln!(
                    out,
                    "dry run: {added} members would be added, {updated} updated, {unchanged} unchanged, {bad} bad rows skipped; nothing written"
                )?;
                return Ok(());
            }
            let what = format!("import of {}", file.display());
            let (c, cards) = ctx.gateway.import_members(rows, &what, actor(), now)?;
            writeln!(
                out,
                "{} members added, {} updated, {} unchanged, {cards} cards issued, {bad} bad rows skipped",
                c.added, c.updated, c.unchanged
            )?;
            Ok(())
        }
    }
}

pub(super) fn booking_line(site: &Site, b: &Booking) -> String {
    let when = match b.window {
        Window::Timed { start, end } => format!("{} to {}", local(site, start), local(site, end)),
        Window::Days { arrival, departure } => format!("{arrival} to {departure} (days)"),
    };
    format!(
        "{:<24} {:<10} {:<16} {when}  {}{} {:?}",
        b.key.to_string(),
        format!("{:?}", b.kind).to_lowercase(),
        b.room.to_string(),
        b.people()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(","),
        if b.status == BookingStatus::Cancelled {
            " CANCELLED"
        } else {
            ""
        },
        b.title,
    )
}

pub(super) fn booking(
    cli: &Cli,
    c: &BookingCmd,
    out: &mut dyn Write,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut ctx = open(cli, now)?;
    match c {
        BookingCmd::Add {
            room,
            kind,
            start,
            end,
            arrival,
            departure,
            organiser,
            attendees,
            title,
            source,
            id: ext,
        } => {
            let window = match (start, end, arrival, departure) {
                (Some(s), Some(e), None, None) => Window::Timed {
                    start: parse_time(&ctx.site, s)?,
                    end: parse_time(&ctx.site, e)?,
                },
                (None, None, Some(a), Some(d)) => Window::Days {
                    arrival: parse_day(a)?,
                    departure: parse_day(d)?,
                },
                _ => bail!("give --start and --end (meetings, events, guest passes) or --arrival and --departure (stays)"),
            };
            let ext = match ext {
                Some(e) => ExternalId::parse(e).map_err(|e| anyhow!("--id: {e}"))?,
                None => ExternalId::parse(&format!("cli-{}", now.timestamp_micros()))
                    .map_err(|e| anyhow!("{e}"))?,
            };
            let b = Booking {
                key: BookingKey {
                    source: id::<SourceId>("source", source)?,
                    external_id: ext,
                },
                room: id::<RoomId>("room", room)?,
                kind: *kind,
                title: title.clone(),
                organiser: organiser
                    .as_deref()
                    .map(|o| id::<MemberId>("organiser", o))
                    .transpose()?,
                attendees: attendees
                    .iter()
                    .map(|a| id::<MemberId>("attendee", a))
                    .collect::<Result<_>>()?,
                window,
                status: BookingStatus::Confirmed,
            };
            let key = b.key.clone();
            ctx.gateway.upsert_booking(b, actor(), now)?;
            writeln!(out, "booking {key} saved")?;
        }
        BookingCmd::List { room, all } => {
            let room = room
                .as_deref()
                .map(|r| id::<RoomId>("room", r))
                .transpose()?;
            let mut n = 0;
            for b in ctx.gateway.store().bookings()? {
                if room.is_some_and(|r| r != b.room)
                    || (!all && b.status == BookingStatus::Cancelled)
                {
                    continue;
                }
                n += 1;
                writeln!(out, "{}", booking_line(&ctx.site, &b))?;
            }
            writeln!(out, "{n} bookings")?;
        }
        BookingCmd::Cancel { source, id: ext } => {
            let key = BookingKey {
                source: id::<SourceId>("source", source)?,
                external_id: ExternalId::parse(ext).map_err(|e| anyhow!("--id: {e}"))?,
            };
            ctx.gateway.cancel_booking(&key, actor(), now)?;
            writeln!(out, "booking {key} cancelled")?;
        }
    }
    Ok(())
}
