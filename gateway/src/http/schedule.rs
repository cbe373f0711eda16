//! The bookings as staff see and make them on the dashboard (the booking system's own area, with
//! tokens, is [`super::bookings`]):
//!
//! - `GET /api/v1/schedule?day=YYYY-MM-DD&room=` (viewers): every source's bookings overlapping
//!   that day on the site's clock (today by default), with their title, organiser, time, status
//!   and whether the day's no-show judgement found nobody.
//! - `POST /api/v1/schedule` (operators): a booking made at the front desk, of the source
//!   `dashboard`, kept to what that source may book (the site file's `[bookings]`).
//! - `DELETE /api/v1/schedule/{source}/{external_id}` (operators): cancelled; it opens nothing
//!   from then on. A booking system that sends it again books it again: cancel it there too.
//!
//! Every change goes through the core, as the booking system's do, and is logged as the staff
//! member's.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Operator, Viewer};
use super::{ask_core, blocking, ApiError, AppState};
use crate::bus::Control;
use crate::domain::{BookingKey, ExternalId, MemberId, RoomId, SourceId};

/// The source of bookings made on the dashboard.
pub const DASHBOARD_SOURCE: &str = "dashboard";

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/schedule", get(day).post(add))
        .route("/api/v1/schedule/{source}/{external_id}", delete(cancel))
}

/// The day's filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DayQuery {
    /// The day on the site's clock, `YYYY-MM-DD` (default today).
    pub day: Option<String>,
    /// One room.
    pub room: Option<String>,
}

/// A booking as the schedule shows it.
#[derive(Serialize, ToSchema)]
pub struct Entry {
    /// `source/external_id`.
    pub key: String,
    pub source: String,
    pub external_id: String,
    pub room: String,
    /// `meeting`, `stay`, `event`, `guest_pass`.
    pub kind: String,
    pub title: String,
    /// The organiser's member id and name, if any.
    pub organiser: Option<String>,
    pub organiser_name: Option<String>,
    /// Attendees named on it.
    pub attendees: usize,
    /// RFC 3339 (a stay: its check-in and check-out on the site's clock).
    pub start: String,
    pub end: String,
    /// `confirmed` or `cancelled`.
    pub status: String,
    /// Judged a no-show that day: nobody came.
    pub no_show: bool,
    /// When the room has no power during it by the outage schedules, RFC 3339 pairs (the
    /// booking system was told).
    pub dark: Vec<[String; 2]>,
}

/// A day's bookings.
#[derive(Serialize, ToSchema)]
pub struct Day {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// By start.
    pub bookings: Vec<Entry>,
}

fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn rfc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// A day's bookings, every source's.
#[utoipa::path(get, path = "/api/v1/schedule", tag = "bookings", params(DayQuery),
    responses((status = 200, body = Day), (status = 401), (status = 422)))]
pub async fn day(
    State(s): State<AppState>,
    _who: Viewer,
    Query(q): Query<DayQuery>,
) -> Result<Json<Day>, ApiError> {
    let bad = |f: &str, why: String| ApiError::Invalid(vec![(f.into(), why)]);
    let date = match q.day.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| bad("day", format!("{d:?} is not a date (YYYY-MM-DD)")))?,
        None => s.clock.now().with_timezone(&s.site.timezone).date_naive(),
    };
    let room: Option<RoomId> = match q.room.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(
            r.parse()
                .ok()
                .filter(|r| s.site.room_index(*r).is_some())
                .ok_or_else(|| bad("room", format!("there is no room {r:?}")))?,
        ),
        None => None,
    };
    let from = s.site.local_instant(date, chrono::NaiveTime::MIN);
    let until = s
        .site
        .local_instant(date.succ_opt().unwrap_or(date), chrono::NaiveTime::MIN);
    let (store, site) = (s.store.clone(), s.site.clone());
    let (bookings, names, no_shows, plan) = blocking(move || {
        let bookings: Vec<_> = store
            .bookings()?
            .into_iter()
            .filter(|b| room.is_none_or(|r| b.room == r))
            .filter(|b| {
                let (a, e) = crate::occupancy::history::booked_span(&site, b);
                a < until.timestamp() && e > from.timestamp()
            })
            .collect();
        let names: HashMap<MemberId, String> = store
            .members()?
            .into_iter()
            .map(|m| (m.id, m.name))
            .collect();
        // That day's no-shows, from the log (judged at most a few hours after the start), read
        // a page at a time up to then.
        let mut since = crate::store::AuditId {
            micros: u64::try_from(from.timestamp_micros()).unwrap_or(0),
            seq: 0,
        };
        let stop = until + chrono::Duration::hours(6);
        let mut no_shows: Vec<BookingKey> = Vec::new();
        'pages: loop {
            let page = store.audit_after(Some(since), 2_000)?;
            let Some(last) = page.last().map(|r| r.id) else {
                break;
            };
            for r in page {
                if r.entry.at >= stop {
                    break 'pages;
                }
                if let crate::store::AuditEvent::NoShow { booking, .. } = r.entry.event {
                    no_shows.push(booking);
                }
            }
            since = last;
        }
        let plan = crate::engine::PowerSchedules::read(store.as_ref())?.plan;
        Ok::<_, crate::store::StoreError>((bookings, names, no_shows, plan))
    })
    .await?
    .map_err(|_| ApiError::Unavailable)?;
    let mut out: Vec<(i64, Entry)> = bookings
        .iter()
        .map(|b| {
            let (start, end) = crate::occupancy::history::booked_span(&s.site, b);
            (
                start,
                Entry {
                    key: b.key.to_string(),
                    source: b.key.source.to_string(),
                    external_id: b.key.external_id.to_string(),
                    room: b.room.to_string(),
                    kind: word(&b.kind),
                    title: b.title.clone(),
                    organiser: b.organiser.map(|m| m.to_string()),
                    organiser_name: b.organiser.and_then(|m| names.get(&m).cloned()),
                    attendees: b.attendees.len(),
                    start: rfc(start),
                    end: rfc(end),
                    status: word(&b.status),
                    no_show: no_shows.contains(&b.key),
                    // What the booking system was told of: confirmed bookings only.
                    dark: if b.status != crate::domain::BookingStatus::Confirmed {
                        Vec::new()
                    } else {
                        plan.dark(
                            s.site.room(b.room).map(|r| r.supply).unwrap_or_default(),
                            start,
                            end,
                        )
                        .into_iter()
                        .map(|(a, z)| [rfc(a), rfc(z)])
                        .collect()
                    },
                },
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.room.cmp(&b.1.room)));
    Ok(Json(Day {
        day: date.to_string(),
        bookings: out.into_iter().map(|(_, e)| e).collect(),
    }))
}

/// A booking made at the front desk.
#[derive(Deserialize, ToSchema)]
pub struct NewBooking {
    pub room: String,
    pub title: String,
    /// RFC 3339, or local `YYYY-MM-DDTHH:MM` on the site's clock.
    pub start: String,
    pub end: String,
    /// The organiser's member id (who the booking lets in, with its attendees).
    pub organiser: Option<String>,
}

/// Adds a booking of the source `dashboard` (operators).
#[utoipa::path(post, path = "/api/v1/schedule", tag = "bookings", request_body = NewBooking,
    responses((status = 201, description = "booked: its key"), (status = 401), (status = 403),
              (status = 422, description = "not a booking this source may make, with why")))]
pub async fn add(
    State(s): State<AppState>,
    who: Operator,
    Json(b): Json<NewBooking>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let source = SourceId::parse(DASHBOARD_SOURCE).map_err(|_| ApiError::Unavailable)?;
    let mut raw = [0u8; 6];
    getrandom::fill(&mut raw).map_err(|_| ApiError::Unavailable)?;
    let external_id = format!(
        "desk-{}",
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let mut f = BTreeMap::new();
    f.insert("external_id".to_string(), external_id.clone());
    f.insert("source".to_string(), DASHBOARD_SOURCE.to_string());
    f.insert("room".to_string(), b.room);
    f.insert("title".to_string(), b.title);
    f.insert("start".to_string(), b.start);
    f.insert("end".to_string(), b.end);
    // A meeting, held to a meeting's length (a day at most): the desk lets someone into a room
    // for a while; longer access is a lease, a plan or an event from the booking system.
    f.insert("kind".to_string(), "meeting".into());
    if let Some(o) = b.organiser.filter(|o| !o.trim().is_empty()) {
        f.insert("organiser".to_string(), o.trim().to_string());
    }
    let actor = who.actor();
    let r = ask_core(&s, move |reply| Control::ApiBookings {
        source,
        items: vec![f],
        actor,
        reply,
    })
    .await?;
    match r {
        // Over for days already: the core keeps nothing of it.
        Ok(c) if c.added + c.updated == 0 => Err(ApiError::Invalid(vec![(
            "end".into(),
            "that booking is over for days: nothing was booked".into(),
        )])),
        Ok(_) => Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({ "key": format!("{DASHBOARD_SOURCE}/{external_id}") })),
        )),
        Err(crate::bus::ApiRefusal::Invalid(problems)) => Err(ApiError::Invalid(problems)),
        Err(crate::bus::ApiRefusal::Failed) => Err(ApiError::Unavailable),
    }
}

/// Cancels a booking of any source (operators).
#[utoipa::path(delete, path = "/api/v1/schedule/{source}/{external_id}", tag = "bookings",
    params(("source" = String, Path, description = "the booking's source"),
           ("external_id" = String, Path, description = "its id in that source")),
    responses((status = 200, description = "cancelled"), (status = 401), (status = 403),
              (status = 404)))]
pub async fn cancel(
    State(s): State<AppState>,
    who: Operator,
    Path((source, external_id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no booking {source}/{external_id}"));
    let key = BookingKey {
        source: source.parse().map_err(|_| not_found())?,
        external_id: ExternalId::parse(&external_id).map_err(|_| not_found())?,
    };
    let actor = who.actor();
    let k = key.clone();
    match ask_core(&s, move |reply| Control::ApiCancel {
        key: k,
        actor,
        reply,
    })
    .await?
    {
        Ok(true) => Ok(Json(serde_json::json!({"cancelled": key.to_string()}))),
        Ok(false) => Err(not_found()),
        Err(_) => Err(ApiError::Unavailable),
    }
}
