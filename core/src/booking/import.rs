//! CSV import of bookings (`kombinat import bookings FILE`): the booking system's bulk export,
//! read row by row into validated bookings, every bad row reported with its line and why.
//!
//! The header is checked first (names in any order and case; unknown columns refused, so a
//! misspelt column is not silently ignored). Each row becomes a [`Booking`] or a [`RowError`];
//! nothing is written here. The gateway (`Registry::import_bookings`) then writes the good
//! rows in one transaction with one audit entry, skipping rows identical to what is stored, so
//! importing the same file twice changes nothing the second time.
//!
//! Columns: `external_id`, `room`, `kind` (meeting, stay, event, guest_pass), `organiser` (a
//! member id or e-mail), then `start` and `end` (RFC 3339, or `YYYY-MM-DD HH:MM` on the site's
//! clock) for timed bookings or `arrival` and `departure` (`YYYY-MM-DD`) for stays; optional
//! `source` (default: the `--source` given), `title`, `attendees` (ids or e-mails separated by
//! `;`), `status` (confirmed, cancelled).
//!
//! Members (`kombinat import members FILE`): `id`, `name`; optional `email`, `plan`,
//! `organisation`, `roles` (staff, security; `;`-separated), `certifications`, `valid_from`,
//! `valid_until`, `cards` (UIDs, `;`-separated). A member already stored keeps what the file
//! has no column for (and a suspension); listed cards are issued, cards not listed are not
//! revoked (revoking is its own act, `kombinat card revoke`).

use std::collections::HashSet;
use std::io::Read;

use chrono::NaiveDate;

use crate::access::Snapshot;
use crate::domain::{
    Booking, BookingKey, BookingKind, BookingStatus, Email, ExternalId, MemberId, SourceId, Window,
};

/// A bad row: its line in the file (1 is the header) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Line number, counting the header as 1.
    pub line: u64,
    /// What is wrong, as a sentence.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The header is not what the import needs.
    #[error("the header {0}")]
    Header(String),
    /// The file is not CSV (or not UTF-8), or could not be read.
    #[error("the file cannot be read as CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// What a file comes to.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Good rows with their line.
    pub rows: Vec<(u64, Booking)>,
    /// Bad rows.
    pub errors: Vec<RowError>,
}

const REQUIRED: [&str; 4] = ["external_id", "room", "kind", "organiser"];
/// The fields a booking has, in a CSV header or a REST body.
pub const BOOKING_FIELDS: [&str; 12] = [
    "external_id",
    "room",
    "kind",
    "organiser",
    "start",
    "end",
    "arrival",
    "departure",
    "source",
    "title",
    "attendees",
    "status",
];

/// Reads bookings from CSV. `source` is used for rows without a `source` column; `progress`
/// is told the bytes read so far (for a progress bar).
pub fn read_bookings(
    snapshot: &Snapshot,
    source: SourceId,
    input: impl Read,
    mut progress: impl FnMut(u64),
) -> Result<Parsed, ImportError> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(input);
    let header = check_header(&mut r, &BOOKING_FIELDS, &REQUIRED)?;
    let seen: HashSet<&str> = header.iter().map(String::as_str).collect();
    let has_times = seen.contains("start") && seen.contains("end");
    let has_days = seen.contains("arrival") && seen.contains("departure");
    if !has_times && !has_days {
        return Err(ImportError::Header(
            "needs start and end (timed bookings) or arrival and departure (stays)".into(),
        ));
    }
    let col = |name: &str| header.iter().position(|h| h == name);
    let mut out = Parsed::default();
    let mut keys = HashSet::new();
    for record in r.records() {
        let record = match record {
            Ok(rec) => rec,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                out.errors.push(RowError {
                    line,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let pos = record.position().map_or(0, |p| p.line());
        progress(record.position().map_or(0, |p| p.byte()));
        let field = |name: &str| {
            col(name)
                .and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
        };
        match booking_from_fields(snapshot, &source, &field) {
            Ok(b) => {
                if !keys.insert(b.key.clone()) {
                    out.errors.push(RowError {
                        line: pos,
                        message: format!("booking {} appears twice in the file", b.key),
                    });
                } else {
                    out.rows.push((pos, b));
                }
            }
            Err(message) => out.errors.push(RowError { line: pos, message }),
        }
    }
    Ok(out)
}

/// A member's row: the member as the file has it, and the cards to issue.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRow {
    pub member: crate::domain::Member,
    /// Cards the member should hold.
    pub cards: Vec<crate::domain::CardId>,
}

/// What a members file comes to.
#[derive(Debug, Default)]
pub struct ParsedMembers {
    /// Good rows with their line.
    pub rows: Vec<(u64, MemberRow)>,
    /// Bad rows.
    pub errors: Vec<RowError>,
}

/// The members CSV's columns (the fields a member is read from everywhere).
pub const MEMBER_COLUMNS: [&str; 10] = [
    "id",
    "name",
    "email",
    "plan",
    "organisation",
    "roles",
    "certifications",
    "valid_from",
    "valid_until",
    "cards",
];

fn check_header(
    r: &mut csv::Reader<impl Read>,
    known: &[&str],
    required: &[&str],
) -> Result<Vec<String>, ImportError> {
    let header: Vec<String> = r
        .headers()?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let mut seen = HashSet::new();
    for h in &header {
        if !known.contains(&h.as_str()) {
            return Err(ImportError::Header(format!(
                "has an unknown column {h:?} (known: {})",
                known.join(", ")
            )));
        }
        if !seen.insert(h.clone()) {
            return Err(ImportError::Header(format!("names {h:?} twice")));
        }
    }
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| !seen.contains(*c))
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::Header(format!(
            "lacks the column{} {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        )));
    }
    Ok(header)
}

/// Reads members from CSV; `progress` is told the bytes read so far.
pub fn read_members(
    snapshot: &Snapshot,
    input: impl Read,
    mut progress: impl FnMut(u64),
) -> Result<ParsedMembers, ImportError> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = check_header(&mut r, &MEMBER_COLUMNS, &["id", "name"])?;
    let col = |name: &str| header.iter().position(|h| h == name);
    let mut out = ParsedMembers::default();
    let (mut ids, mut emails, mut cards) = (HashSet::new(), HashSet::new(), HashSet::new());
    for record in r.records() {
        let record = match record {
            Ok(rec) => rec,
            Err(e) => {
                out.errors.push(RowError {
                    line: e.position().map_or(0, |p| p.line()),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        progress(record.position().map_or(0, |p| p.byte()));
        let field = |name: &str| {
            col(name)
                .and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
        };
        let has = |name: &str| col(name).is_some();
        match member_row(snapshot, &field, &has) {
            Ok(m) => {
                let dup = if !ids.insert(m.member.id) {
                    Some(format!("member {} appears twice in the file", m.member.id))
                } else if let Some(e) = m
                    .member
                    .email
                    .as_ref()
                    .filter(|e| !emails.insert((*e).clone()))
                {
                    Some(format!("e-mail {e} appears twice in the file"))
                } else {
                    m.cards
                        .iter()
                        .find(|c| !cards.insert(**c))
                        .map(|c| format!("card {c} appears twice in the file"))
                };
                match dup {
                    Some(message) => out.errors.push(RowError { line, message }),
                    None => out.rows.push((line, m)),
                }
            }
            Err(message) => out.errors.push(RowError { line, message }),
        }
    }
    Ok(out)
}

fn list(v: Option<&str>) -> impl Iterator<Item = &str> {
    v.unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A member's fields by name, as a CSV row or a JSON body gives them: the member (a known
/// member keeps what the fields say nothing about) and the cards listed, all checked against
/// the snapshot.
pub fn member_row<'a>(
    snapshot: &Snapshot,
    field: &impl Fn(&str) -> Option<&'a str>,
    has: &impl Fn(&str) -> bool,
) -> Result<MemberRow, String> {
    use crate::domain::{CardId, Member, Role};
    let site = snapshot.site();
    let id_s = field("id").ok_or("id is empty")?;
    let id = MemberId::parse(id_s).map_err(|e| format!("id {id_s:?}: {e}"))?;
    let name = field("name").ok_or("name is empty")?;
    // A member already known keeps what the file says nothing about.
    let mut m = snapshot
        .member(id)
        .cloned()
        .unwrap_or_else(|| Member::new(id, name));
    m.name = name.to_string();
    if has("email") {
        m.email = field("email")
            .map(|e| Email::parse(e).map_err(|x| format!("email {e:?}: {x}")))
            .transpose()?;
    }
    if has("plan") {
        m.plan = match field("plan") {
            None => None,
            Some(p) => {
                let plan = p.parse().map_err(|e| format!("plan {p:?}: {e}"))?;
                if snapshot.plan_def(plan).is_none() {
                    return Err(format!("there is no plan {p:?} in the site file"));
                }
                Some(plan)
            }
        };
    }
    if has("organisation") {
        m.organisation = field("organisation")
            .map(|o| o.parse().map_err(|e| format!("organisation {o:?}: {e}")))
            .transpose()?;
    }
    if has("roles") {
        m.roles = list(field("roles"))
            .map(|r| match r.to_ascii_lowercase().as_str() {
                "staff" => Ok(Role::Staff),
                "security" => Ok(Role::Security),
                other => Err(format!("role {other:?} is not staff or security")),
            })
            .collect::<Result<_, _>>()?;
    }
    if has("certifications") {
        m.certifications = list(field("certifications"))
            .map(|c| c.parse().map_err(|e| format!("certification {c:?}: {e}")))
            .collect::<Result<_, _>>()?;
    }
    for (name, slot) in [
        ("valid_from", &mut m.valid_from),
        ("valid_until", &mut m.valid_until),
    ] {
        if has(name) {
            *slot = field(name)
                .map(|v| site.parse_time(v).map_err(|e| format!("{name}: {e}")))
                .transpose()?;
        }
    }
    if let (Some(a), Some(b)) = (m.valid_from, m.valid_until) {
        if b <= a {
            return Err("valid_until comes before valid_from".into());
        }
    }
    if let Some(e) = &m.email {
        if let Some(other) = snapshot.member_by_email(e).filter(|o| *o != id) {
            return Err(format!("e-mail {e} belongs to member {other}"));
        }
    }
    let cards = list(field("cards"))
        .map(|c| CardId::parse(c).map_err(|e| format!("card {c:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    for c in &cards {
        let cred = crate::domain::Credential::Card(*c);
        if let Some((rec, _)) = snapshot.credential(&cred) {
            if rec.member != id && rec.revoked_at.is_none() {
                return Err(format!("card {c} is held by member {}", rec.member));
            }
        }
    }
    Ok(MemberRow { member: m, cards })
}

/// A member by id or e-mail.
fn member(snapshot: &Snapshot, who: &str) -> Result<MemberId, String> {
    if who.contains('@') {
        let email = Email::parse(who).map_err(|e| format!("{who:?}: {e}"))?;
        return snapshot
            .member_by_email(&email)
            .ok_or_else(|| format!("no member has the e-mail {who:?}"));
    }
    let id = MemberId::parse(who).map_err(|e| format!("member {who:?}: {e}"))?;
    snapshot
        .member(id)
        .map(|m| m.id)
        .ok_or_else(|| format!("there is no member {who:?}"))
}

/// What is wrong with one field of a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field (`room`, `start`, …).
    pub field: &'static str,
    /// What is wrong, as a sentence.
    pub message: String,
}

/// One booking from its fields by name (a CSV row): checked, or why not in one sentence.
pub fn booking_from_fields<'a>(
    snapshot: &Snapshot,
    default_source: &SourceId,
    field: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Booking, String> {
    booking_fields(snapshot, default_source, field).map_err(|e| e.message)
}

/// The longest booking title kept, characters.
pub const TITLE_MAX: usize = 200;

/// The most attendees a booking names.
pub const ATTENDEES_MAX: usize = 500;

/// The most bookings one source holds at once (recent and future), so that a booking system
/// gone wrong, or a leaked token, cannot fill the Pi's store.
pub const SOURCE_BOOKINGS_MAX: usize = 20_000;

/// One booking from its fields by name (a CSV row, a REST body): checked, or the field that
/// is wrong and why.
pub fn booking_fields<'a>(
    snapshot: &Snapshot,
    default_source: &SourceId,
    field: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Booking, FieldError> {
    let fe = |field: &'static str| move |message: String| FieldError { field, message };
    let need = |name: &'static str| {
        field(name).ok_or_else(|| FieldError {
            field: name,
            message: format!("{name} is empty"),
        })
    };
    let site = snapshot.site();
    let source = match field("source") {
        Some(s) => SourceId::parse(s)
            .map_err(|e| format!("source {s:?}: {e}"))
            .map_err(fe("source"))?,
        None => *default_source,
    };
    let ext = need("external_id")?;
    let external_id = ExternalId::parse(ext)
        .map_err(|e| format!("external_id {ext:?}: {e}"))
        .map_err(fe("external_id"))?;
    let room_s = need("room")?;
    let room = room_s
        .parse()
        .map_err(|e| format!("room {room_s:?}: {e}"))
        .map_err(fe("room"))?;
    if site.room(room).is_none() {
        return Err(fe("room")(format!(
            "there is no room {room_s:?} in the site file"
        )));
    }
    let kind_s = need("kind")?;
    let kind: BookingKind = serde_json::from_value(serde_json::Value::String(
        kind_s.to_ascii_lowercase().replace('-', "_"),
    ))
    .map_err(|_| format!("kind {kind_s:?} is not meeting, stay, event or guest_pass"))
    .map_err(fe("kind"))?;
    let organiser = Some(member(snapshot, need("organiser")?).map_err(fe("organiser"))?);
    let attendees = match field("attendees") {
        None => Vec::new(),
        Some(list) => list
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|who| member(snapshot, who))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fe("attendees"))?,
    };
    let window = if kind == BookingKind::Stay {
        let day = |name: &'static str| -> Result<NaiveDate, FieldError> {
            let v = need(name)?;
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| format!("{name} {v:?} is not a day such as 2026-12-01"))
                .map_err(fe(name))
        };
        Window::Days {
            arrival: day("arrival")?,
            departure: day("departure")?,
        }
    } else {
        let time = |name: &'static str| {
            let v = need(name)?;
            site.parse_time(v)
                .map_err(|e| format!("{name}: {e}"))
                .map_err(fe(name))
        };
        Window::Timed {
            start: time("start")?,
            end: time("end")?,
        }
    };
    let status = match field("status").map(str::to_ascii_lowercase).as_deref() {
        None | Some("confirmed") => BookingStatus::Confirmed,
        Some("cancelled") | Some("canceled") => BookingStatus::Cancelled,
        Some(other) => {
            return Err(fe("status")(format!(
                "status {other:?} is not confirmed or cancelled"
            )))
        }
    };
    let title = field("title").unwrap_or_default();
    if title.chars().count() > TITLE_MAX {
        return Err(fe("title")(format!(
            "a title is at most {TITLE_MAX} characters"
        )));
    }
    if attendees.len() > ATTENDEES_MAX {
        return Err(fe("attendees")(format!(
            "a booking has at most {ATTENDEES_MAX} attendees (an event's guests are members with a plan or passes)"
        )));
    }
    let b = Booking {
        key: BookingKey {
            source,
            external_id,
        },
        room,
        kind,
        title: title.to_string(),
        organiser,
        attendees,
        window,
        status,
    };
    b.validate().map_err(|e| {
        let field = match e {
            crate::domain::BookingError::NoOne => "organiser",
            crate::domain::BookingError::ExternalId => "external_id",
            _ if b.kind == BookingKind::Stay => "departure",
            _ => "end",
        };
        FieldError {
            field,
            message: e.to_string(),
        }
    })?;
    // What the source may book (a cancellation always goes through: it opens nothing).
    if b.status == BookingStatus::Confirmed {
        site.booking_rules
            .check(site, &b)
            .map_err(|message| FieldError {
                field: if message.contains("may not book") {
                    "room"
                } else if b.kind == BookingKind::Stay {
                    "departure"
                } else {
                    "end"
                },
                message,
            })?;
    }
    Ok(b)
}
