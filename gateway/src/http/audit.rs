//! The access log, newest first: `GET /api/v1/audit` (pages of JSON) and
//! `GET /api/v1/audit.csv` (every matching entry, up to [`CSV_MAX`]).
//!
//! Filters: `member`, `door`, `room` (a decision at a door into it, an alarm at such a door,
//! a no-show), `reason` (a code such as `deny.no_right`, or `allow` / `deny` for all of
//! either), `kind` (`decision`, `alarm`, `change`, `mode`, `no_show`), `from` and `until`
//! (RFC 3339, or `YYYY-MM-DD[ HH:MM]` on the site's clock). A page ends with `next`, the
//! cursor to pass as `before` for the one after; a scan stops after [`SCAN_MAX`] entries so a
//! rare filter over a long log answers in bounded time (and says where it stopped).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Viewer;
use super::{blocking, ApiError, AppState};
use crate::domain::{MemberId, RoomId, Site};
use crate::store::{AuditEvent, AuditId, AuditRecord, Store};

/// Entries a single request looks at, at most.
pub const SCAN_MAX: usize = 200_000;
/// How much later than it happened an entry may have been written (an offline door node's
/// log, uploaded when it is back), microseconds: a week.
const LATE_UPLOAD_US: u64 = 7 * 86_400 * 1_000_000;
/// Rows a CSV export holds, at most.
pub const CSV_MAX: usize = 100_000;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit", get(page))
        .route("/api/v1/audit.csv", get(csv_export))
}

/// The filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// A member: text found in their id or name (any case), as staff type it.
    pub member: Option<String>,
    /// A door's id.
    pub door: Option<String>,
    /// A room's id.
    pub room: Option<String>,
    /// A reason code, or `allow` / `deny`.
    pub reason: Option<String>,
    /// `decision`, `alarm`, `change`, `mode`, `no_show`.
    pub kind: Option<String>,
    /// From (inclusive).
    pub from: Option<String>,
    /// Until (exclusive).
    pub until: Option<String>,
    /// The cursor: entries before this one (the `next` of the page before).
    pub before: Option<String>,
    /// Entries per page (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// One entry as the log shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EntryView {
    /// Its cursor.
    pub id: String,
    /// When, RFC 3339.
    pub at: String,
    /// `decision`, `alarm`, `change`, `mode`, `no_show`.
    pub kind: String,
    /// Who or what caused it (`door:…`, `staff:…`, `cli:…`, `source:…`, `system`).
    pub actor: String,
    pub door: Option<String>,
    pub room: Option<String>,
    pub member: Option<String>,
    /// The member's name (as now stored).
    pub member_name: Option<String>,
    pub card: Option<String>,
    /// The reason code (decisions).
    pub reason: Option<String>,
    /// Whether the door opened (decisions).
    pub allowed: Option<bool>,
    /// Decided by the door node alone.
    pub offline: bool,
    /// The alarm (alarms).
    pub alarm: Option<String>,
    /// Raised or cleared (alarms).
    pub raised: Option<bool>,
    /// A change in words, the new mode, the booking of a no-show.
    pub details: Option<String>,
    /// A no-show's booking: its title (its organiser is `member`).
    pub title: Option<String>,
    /// A no-show's booking: when it was to start and end, RFC 3339.
    pub start: Option<String>,
    pub end: Option<String>,
}

/// A page of the log.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<EntryView>,
    /// Pass as `before` for the next page; absent at the log's start (or `from`).
    pub next: Option<String>,
    /// Entries looked at.
    pub scanned: usize,
}

/// The filters, checked.
#[derive(Clone)]
struct Filter {
    /// Lower case.
    member: Option<String>,
    /// The member text is a member's whole id: that member alone.
    member_is_id: bool,
    door: Option<String>,
    room: Option<RoomId>,
    reason: Option<String>,
    kind: Option<String>,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    before: Option<AuditId>,
}

fn bad(field: &str, why: impl Into<String>) -> ApiError {
    ApiError::Invalid(vec![(field.into(), why.into())])
}

fn parse_cursor(s: &str) -> Option<AuditId> {
    let (a, b) = s.split_once('-')?;
    Some(AuditId {
        micros: a.parse().ok()?,
        seq: b.parse().ok()?,
    })
}

impl Filter {
    fn parse(site: &Site, q: &AuditQuery) -> Result<Filter, ApiError> {
        let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.trim().is_empty());
        let time = |field: &str, v: &Option<String>| {
            nonempty(v)
                .map(|v| super::parse_time(site, &v).map_err(|e| bad(field, e)))
                .transpose()
        };
        let kind = nonempty(&q.kind);
        if let Some(k) = &kind {
            if !["decision", "alarm", "change", "mode", "no_show"].contains(&k.as_str()) {
                return Err(bad("kind", "decision, alarm, change, mode or no_show"));
            }
        }
        let reason = nonempty(&q.reason);
        if let Some(r) = &reason {
            if r != "allow" && r != "deny" && crate::domain::Reason::parse(r).is_err() {
                return Err(bad("reason", format!("{r:?} is not a reason code")));
            }
        }
        Ok(Filter {
            member: nonempty(&q.member).map(|m| m.trim().to_lowercase()),
            member_is_id: false,
            door: nonempty(&q.door),
            room: nonempty(&q.room)
                .map(|r| {
                    r.parse()
                        .map_err(|_| bad("room", format!("{r:?} is not a room id")))
                })
                .transpose()?,
            reason,
            kind,
            from: time("from", &q.from)?,
            until: time("until", &q.until)?,
            before: nonempty(&q.before)
                .map(|b| {
                    parse_cursor(&b).ok_or_else(|| bad("before", "not a cursor from this log"))
                })
                .transpose()?,
        })
    }

    fn keeps(&self, v: &EntryView) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        self.member.as_ref().is_none_or(|m| {
            if self.member_is_id {
                return v.member.as_deref() == Some(m.as_str());
            }
            v.member.as_ref().is_some_and(|id| id.contains(m.as_str()))
                || v.member_name
                    .as_ref()
                    .is_some_and(|n| n.to_lowercase().contains(m.as_str()))
        }) && eq(&self.door, &v.door)
            && self
                .room
                .is_none_or(|r| v.room.as_deref() == Some(&r.to_string()))
            && self.kind.as_ref().is_none_or(|k| *k == v.kind)
            && self
                .reason
                .as_ref()
                .is_none_or(|r| match (r.as_str(), &v.reason) {
                    (_, None) => false,
                    ("allow", Some(_)) => v.allowed == Some(true),
                    ("deny", Some(_)) => v.allowed == Some(false),
                    (code, Some(have)) => code == have,
                })
    }
}

fn entry_view(
    site: &Site,
    store: &dyn Store,
    names: &HashMap<MemberId, String>,
    r: &AuditRecord,
) -> EntryView {
    let room_of = |d: crate::domain::DoorId| site.door(d).map(|x| x.into.to_string());
    let mut v = EntryView {
        id: r.id.to_string(),
        at: r
            .entry
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        kind: String::new(),
        actor: r.entry.actor.to_string(),
        door: None,
        room: None,
        member: None,
        member_name: None,
        card: None,
        reason: None,
        allowed: None,
        offline: false,
        alarm: None,
        raised: None,
        details: None,
        title: None,
        start: None,
        end: None,
    };
    match &r.entry.event {
        AuditEvent::Decision {
            door,
            card,
            reason,
            member,
            booking,
            offline,
            ..
        } => {
            v.kind = "decision".into();
            v.door = Some(door.to_string());
            v.room = room_of(*door);
            v.member = member.map(|m| m.to_string());
            v.member_name = member.and_then(|m| names.get(&m).cloned());
            v.card = card.map(|c| c.to_string());
            v.reason = Some(reason.code().to_string());
            v.allowed = Some(reason.is_allow());
            v.offline = *offline;
            v.details = booking.as_ref().map(|b| b.to_string());
        }
        AuditEvent::Alarm {
            door,
            device,
            alarm,
            raised,
        } => {
            v.kind = "alarm".into();
            v.door = door.map(|d| d.to_string());
            v.room = door.and_then(room_of);
            v.alarm = serde_json::to_value(alarm)
                .ok()
                .and_then(|a| a.as_str().map(str::to_string));
            v.raised = Some(*raised);
            v.details = device.map(|d| d.to_string());
        }
        AuditEvent::Change { summary } => {
            v.kind = "change".into();
            v.details = Some(summary.clone());
        }
        AuditEvent::Mode { mode } => {
            v.kind = "mode".into();
            v.details = Some(mode.to_string());
        }
        AuditEvent::NoShow { booking, room } => {
            v.kind = "no_show".into();
            v.room = Some(room.to_string());
            v.details = Some(booking.to_string());
            // What staff know it by: its title, organiser and time (as the booking is now).
            if let Ok(Some(b)) = store.booking(booking) {
                let (start, end) = crate::occupancy::history::booked_span(site, &b);
                let rfc = |t: i64| {
                    chrono::DateTime::from_timestamp(t, 0)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                };
                v.title = Some(b.title.clone());
                v.member = b.organiser.map(|m| m.to_string());
                v.member_name = b.organiser.and_then(|m| names.get(&m).cloned());
                v.start = rfc(start);
                v.end = rfc(end);
            }
        }
    }
    v
}

/// Scans the log backwards for up to `limit` entries that pass `f`. Returns them, the cursor
/// to go on from (if the log goes on), and how many were looked at.
fn scan(
    site: &Site,
    store: &dyn Store,
    f: &Filter,
    limit: usize,
) -> Result<(Vec<EntryView>, Option<String>, usize), crate::store::StoreError> {
    let names: HashMap<MemberId, String> = store
        .members()?
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect();
    // A member's whole id finds that member alone (an export for one person holds no one else's
    // entries); other text is looked for in ids and names.
    let exact = f
        .member
        .as_ref()
        .is_some_and(|m| names.keys().any(|id| id.to_string() == *m));
    let f = &Filter {
        member_is_id: exact,
        ..f.clone()
    };
    let until = f.until.map(|t| AuditId {
        micros: u64::try_from(t.timestamp_micros()).unwrap_or(0),
        seq: 0,
    });
    let from_id = f.from.map(|t| AuditId {
        micros: u64::try_from(t.timestamp_micros()).unwrap_or(0),
        seq: 0,
    });
    // Entries written after `until` may still have happened before it (a door node's
    // offline decisions, uploaded when it is back): the scan starts a week later and filters
    // by time.
    let until = until.map(|u| AuditId {
        micros: u.micros.saturating_add(LATE_UPLOAD_US),
        seq: 0,
    });
    let mut cursor = match (f.before, until) {
        (Some(b), Some(u)) => Some(b.min(u)),
        (b, u) => b.or(u),
    };
    let mut out = Vec::new();
    let mut scanned = 0;
    loop {
        let chunk = store.audit_before(cursor, 2_000)?;
        let Some(last) = chunk.last() else {
            return Ok((out, None, scanned));
        };
        cursor = Some(last.id);
        for r in &chunk {
            // Keys follow the order entries were written (never earlier than the one
            // before); an entry's own time can be earlier (a door node's offline decision,
            // uploaded later). The scan stops by key and filters by time.
            if from_id.is_some_and(|from| r.id < from) {
                return Ok((out, None, scanned));
            }
            scanned += 1;
            let in_period = f.from.is_none_or(|from| r.entry.at >= from)
                && f.until.is_none_or(|until| r.entry.at < until);
            let v = entry_view(site, store, &names, r);
            if in_period && f.keeps(&v) {
                out.push(v);
                if out.len() >= limit {
                    return Ok((out, Some(r.id.to_string()), scanned));
                }
            }
            if scanned >= SCAN_MAX {
                return Ok((out, Some(r.id.to_string()), scanned));
            }
        }
    }
}

/// A page of the log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 401), (status = 422)))]
pub async fn page(
    State(s): State<AppState>,
    who: Viewer,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let f = Filter::parse(&s.site, &q)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let (site, store) = (s.site.clone(), s.store.clone());
    let (mut entries, next, scanned) = blocking(move || scan(&site, store.as_ref(), &f, limit))
        .await?
        .map_err(|_| ApiError::Unavailable)?;
    if who.0.role != crate::staff::StaffRole::Admin {
        entries.iter_mut().for_each(mask_entry);
    }
    Ok(Json(AuditPage {
        entries,
        next,
        scanned,
    }))
}

/// An entry as staff below admin see it: card numbers masked, in its fields and its text.
fn mask_entry(e: &mut EntryView) {
    if let Some(c) = &mut e.card {
        *c = super::masked_card(c);
    }
    if let Some(d) = &mut e.details {
        *d = super::mask_cards_in(d);
    }
}

/// A cell a spreadsheet would not run as a formula.
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// The entries as CSV, one row each, in the columns of [`CSV_HEADER`]; `at_local` is `at` on
/// the site's clock (`zone`), as the dashboard shows it.
pub fn to_csv(entries: &[EntryView], zone: chrono_tz::Tz) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    let opt = |o: &Option<String>| cell(o.as_deref().unwrap_or(""));
    let flag = |o: Option<bool>| o.map_or(String::new(), |b| b.to_string());
    for e in entries {
        w.write_record([
            e.at.clone(),
            e.kind.clone(),
            opt(&e.door),
            opt(&e.room),
            opt(&e.member),
            opt(&e.member_name),
            opt(&e.card),
            opt(&e.reason),
            flag(e.allowed),
            e.offline.to_string(),
            opt(&e.alarm),
            flag(e.raised),
            cell(&e.actor),
            opt(&e.details),
            opt(&e.title),
            opt(&e.start),
            opt(&e.end),
            chrono::DateTime::parse_from_rfc3339(&e.at)
                .map(|t| {
                    t.with_timezone(&zone)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default(),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// The CSV export's columns.
pub const CSV_HEADER: [&str; 18] = [
    "at",
    "kind",
    "door",
    "room",
    "member",
    "member_name",
    "card",
    "reason",
    "allowed",
    "offline",
    "alarm",
    "raised",
    "actor",
    "details",
    "title",
    "start",
    "end",
    "at_local",
];

/// Every matching entry (up to 100,000), newest first, as CSV.
#[utoipa::path(get, path = "/api/v1/audit.csv", tag = "audit", params(AuditQuery),
    responses((status = 200, content_type = "text/csv", description = "the entries"),
              (status = 401), (status = 422)))]
pub async fn csv_export(
    State(s): State<AppState>,
    who: Viewer,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let f = Filter::parse(&s.site, &q)?;
    let (site, store) = (s.site.clone(), s.store.clone());
    let whole = who.0.role == crate::staff::StaffRole::Admin;
    let body = blocking(move || {
        let (mut entries, _, _) =
            scan(&site, store.as_ref(), &f, CSV_MAX).map_err(|e| e.to_string())?;
        if !whole {
            entries.iter_mut().for_each(mask_entry);
        }
        to_csv(&entries, site.timezone).map_err(|e| e.to_string())
    })
    .await?
    .map_err(|e| {
        tracing::error!(error = %e, "cannot export the log");
        ApiError::Unavailable
    })?;
    let name = format!(
        "attachment; filename=\"kombinat-log-{}.csv\"",
        s.clock.now().format("%Y%m%d-%H%M%S")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_that_looks_like_a_formula_is_quoted() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("Olena"), "Olena");
    }

    #[test]
    fn cursors_round_trip() {
        let id = AuditId { micros: 17, seq: 4 };
        assert_eq!(parse_cursor(&id.to_string()), Some(id));
        assert_eq!(parse_cursor("x-1"), None);
    }
}
