//! The building as staff see it: the site and its floor plan, rooms with live occupancy, a
//! room's day, doors and alarms, devices, the site mode, remote unlock, and the live stream.
//!
//! - `GET /api/v1/site`: floors, rooms (with the shapes the floor plan is drawn from) and doors.
//! - `GET /api/v1/live`: everything live in one document ([`crate::live::LiveView`]).
//! - `GET /api/v1/events`: server-sent events, starting with a `snapshot` of the live view, then
//!   `room`, `door`, `alarm`, `alarm_cleared`, `device`, `decision` and `mode` events; a client
//!   that fell behind gets `resync` with a fresh snapshot.
//! - `GET /api/v1/rooms`, `GET /api/v1/rooms/{id}`: rooms now; one room now and today (its
//!   count in five-minute steps, its bookings, its no-shows, its doors and sensors).
//! - `GET /api/v1/doors`, `GET /api/v1/alarms`, `GET /api/v1/devices`.
//! - `POST /api/v1/doors/{id}/unlock` (operators): releases the strike, audited.
//! - `PUT /api/v1/doors/{id}/lockdown` (operators): locks one door down (staff and security
//!   only) or releases it, audited; it holds over a restart.
//! - `POST /api/v1/alarms/ack` (operators): takes a standing alarm in hand, with a note;
//!   audited, and shown with the alarm until it clears.
//! - `GET|PUT /api/v1/mode` (PUT for operators): the site mode.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use super::auth::{Operator, Viewer};
use super::{ask_core, blocking, ApiError, AppState};
use crate::bus::{Control, ServiceError};
use crate::domain::{DoorId, RoomId, SiteMode};
use crate::live::{AlarmNow, DeviceNow, DoorNow, LiveView, RoomNow};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/site", get(site))
        .route("/api/v1/live", get(live))
        .route("/api/v1/events", get(events))
        .route("/api/v1/rooms", get(rooms))
        .route("/api/v1/rooms/{id}", get(room))
        .route("/api/v1/doors", get(doors))
        .route("/api/v1/doors/{id}/unlock", post(unlock))
        .route("/api/v1/doors/{id}/lockdown", axum::routing::put(lockdown))
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/alarms/ack", post(ack_alarm))
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/mode", get(mode).put(set_mode))
}

/// A floor.
#[derive(Serialize, ToSchema)]
pub struct FloorView {
    pub id: String,
    pub name: String,
    /// The name in Ukrainian, where the site file gives one (the dashboard in Ukrainian shows
    /// it; `name` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_uk: Option<String>,
    /// 0 ground, 1 first, -1 basement.
    pub level: i8,
}

/// A room of the site file.
#[derive(Serialize, ToSchema)]
pub struct RoomView {
    pub id: String,
    pub name: String,
    /// The name in Ukrainian, where the site file gives one (the dashboard in Ukrainian shows
    /// it; `name` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_uk: Option<String>,
    pub floor: String,
    /// `conference`, `meeting`, `coworking`, `lab`, `hostel`, …
    pub kind: String,
    /// Fire-safety capacity.
    pub capacity: Option<u32>,
    /// Its outline on the floor plan, metres: `[[x, y], …]`.
    pub shape: Vec<[f32; 2]>,
    /// Whether staff may book it at the desk (the site file's `[bookings]` for the source
    /// `dashboard`).
    pub bookable_at_desk: bool,
}

/// A door of the site file.
#[derive(Serialize, ToSchema)]
pub struct DoorView {
    pub id: String,
    pub name: String,
    /// The name in Ukrainian, where the site file gives one (the dashboard in Ukrainian shows
    /// it; `name` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_uk: Option<String>,
    /// The room it leads from (none: the street).
    pub from: Option<String>,
    /// The room it leads into.
    pub into: String,
    /// Strike release, ms.
    pub unlock_ms: u32,
    /// An egress door (released in emergency mode).
    pub egress: bool,
    /// Where it is on the plan, metres, when the site file says (the dashboard puts a door
    /// without it on the wall its two rooms share).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<[f32; 2]>,
    /// What its lock does without power, `safe` (unlocked) or `secure` (locked), when the site
    /// file says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail: Option<String>,
    /// A fail-safe lock on a door from the street: without power it lets anyone in.
    pub security_hole: bool,
}

/// The site: what the floor plan is drawn from.
#[derive(Serialize, ToSchema)]
pub struct SiteView {
    /// The site's name.
    pub name: String,
    /// The name in Ukrainian, where the site file gives one (the dashboard in Ukrainian shows
    /// it; `name` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_uk: Option<String>,
    /// The IANA name (`Europe/Kyiv`): the pages show times on the site's clock, not the browser's.
    pub timezone: String,
    /// The shelter room, if any.
    pub shelter: Option<String>,
    /// Floors, lowest first.
    pub floors: Vec<FloorView>,
    pub rooms: Vec<RoomView>,
    pub doors: Vec<DoorView>,
    /// The membership plans, for naming a member's plan.
    pub plans: Vec<PlanView>,
    /// The gateway's clock as this answer left: the pages keep "now" on it (in the demo it is
    /// the simulated building's, running faster than the browser's).
    pub clock: ClockView,
}

/// A membership plan.
#[derive(Serialize, ToSchema)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_uk: Option<String>,
}

/// A reading of the gateway's clock.
#[derive(Serialize, ToSchema)]
pub struct ClockView {
    /// Its time, Unix milliseconds.
    pub now_ms: i64,
    /// Its seconds per real second (1 but in the demo).
    pub rate: f64,
}

fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The site: floors, rooms with their shapes, doors.
#[utoipa::path(get, path = "/api/v1/site", tag = "building",
    responses((status = 200, body = SiteView), (status = 401)))]
pub async fn site(State(s): State<AppState>, _who: Viewer) -> Json<SiteView> {
    let site = &s.site;
    let mut floors: Vec<FloorView> = site
        .floors
        .iter()
        .map(|f| FloorView {
            id: f.id.to_string(),
            name: f.name.clone(),
            name_uk: f.name_uk.clone(),
            level: f.level,
        })
        .collect();
    floors.sort_by_key(|f| f.level);
    let clock = ClockView {
        now_ms: s.clock.now().timestamp_millis(),
        rate: s.clock.rate(),
    };
    Json(SiteView {
        clock,
        plans: site
            .plans
            .iter()
            .map(|p| PlanView {
                id: p.id.to_string(),
                name: p.name.clone(),
                name_uk: p.name_uk.clone(),
            })
            .collect(),
        name: site.name.clone(),
        name_uk: site.name_uk.clone(),
        timezone: site.timezone.name().to_string(),
        shelter: site.shelter.map(|r| r.to_string()),
        floors,
        rooms: site
            .rooms
            .iter()
            .map(|r| RoomView {
                id: r.id.to_string(),
                name: r.name.clone(),
                name_uk: r.name_uk.clone(),
                floor: r.floor.to_string(),
                kind: word(&r.kind),
                capacity: r.capacity,
                shape: r.shape.clone(),
                bookable_at_desk: crate::domain::SourceId::parse(super::schedule::DASHBOARD_SOURCE)
                    .is_ok_and(|s| site.booking_rules.may_book(s, r.id, r.kind)),
            })
            .collect(),
        doors: site
            .doors
            .iter()
            .map(|d| DoorView {
                id: d.id.to_string(),
                name: d.name.clone(),
                name_uk: d.name_uk.clone(),
                from: d.from.map(|r| r.to_string()),
                into: d.into.to_string(),
                unlock_ms: d.unlock_ms,
                egress: d.egress,
                at: d.at,
                fail: d.fail.map(|f| {
                    match f {
                        crate::domain::FailMode::Safe => "safe",
                        crate::domain::FailMode::Secure => "secure",
                    }
                    .to_string()
                }),
                security_hole: d.security_hole(),
            })
            .collect(),
    })
}

/// Everything live: mode, rooms, doors, alarms, devices.
#[utoipa::path(get, path = "/api/v1/live", tag = "building",
    responses((status = 200, body = LiveView), (status = 401)))]
pub async fn live(State(s): State<AppState>, _who: Viewer) -> Json<LiveView> {
    Json(s.live.view())
}

/// The live stream (server-sent events). The first event is `snapshot` (a [`LiveView`]);
/// then changes; `resync` (a fresh snapshot) after the client fell behind.
#[utoipa::path(get, path = "/api/v1/events", tag = "building",
    responses((status = 200, content_type = "text/event-stream", description = "the stream"),
              (status = 401)))]
pub async fn events(
    State(s): State<AppState>,
    who: Viewer,
    headers: axum::http::HeaderMap,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let live = s.live.clone();
    let (first, rx) = live.subscribe();
    let snapshot = |kind: &'static str, v: &LiveView| {
        Event::default()
            .event(kind)
            .data(serde_json::to_string(v).unwrap_or_default())
    };
    let start = snapshot("snapshot", &first);
    // The session is checked again before every event: signing out, a removed account or an
    // expired session ends the stream.
    let session = super::auth::session_id(&headers)
        .unwrap_or_default()
        .to_string();
    let staff = s.staff.clone();
    let clock = s.clock;
    let name = who.0.name;
    let still_signed = move || {
        staff
            .session(&session, clock.session_now())
            .is_some_and(|s| s.name == name)
    };
    let stream =
        futures_util::stream::unfold((Some(start), rx, live), move |(pending, mut rx, live)| {
            let still_signed = still_signed.clone();
            async move {
                if let Some(e) = pending {
                    return Some((Ok(e), (None, rx, live)));
                }
                let next = match rx.recv().await {
                    Ok(e) => (Event::default().event(e.kind).data(&*e.data), rx),
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "a live stream fell behind; resync");
                        // The fresh view holds whatever was missed; the new receiver starts
                        // right after it.
                        let (view, rx) = live.resubscribe();
                        (snapshot("resync", &view), rx)
                    }
                    Err(RecvError::Closed) => return None,
                };
                if !still_signed() {
                    return None;
                }
                Some((Ok(next.0), (None, next.1, live)))
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Rooms now.
#[utoipa::path(get, path = "/api/v1/rooms", tag = "building",
    responses((status = 200, body = [RoomNow]), (status = 401)))]
pub async fn rooms(State(s): State<AppState>, _who: Viewer) -> Json<Vec<RoomNow>> {
    Json(s.live.view().rooms)
}

/// One booking as a room's day shows it.
#[derive(Serialize, ToSchema)]
pub struct BookingView {
    /// Source and external id, `source/id`.
    pub key: String,
    /// `meeting`, `stay`, `event`, `guest_pass`.
    pub kind: String,
    pub title: String,
    /// Start, Unix seconds (a stay's check-in).
    pub start: i64,
    /// End, Unix seconds (a stay's check-out).
    pub end: i64,
    /// `confirmed` or `cancelled`.
    pub status: String,
    /// Judged a no-show today.
    pub no_show: bool,
}

/// One step of a room's count.
#[derive(Serialize, ToSchema)]
pub struct CountStep {
    /// Start, Unix seconds.
    pub start: i64,
    /// Length, seconds.
    pub span_s: u32,
    /// Mean head count.
    pub mean: f64,
    /// Highest head count.
    pub peak: u32,
}

/// A room now and today.
#[derive(Serialize, ToSchema)]
pub struct RoomDay {
    /// The room now.
    pub now: RoomNow,
    pub name: String,
    /// Today's start on the site's clock, Unix seconds.
    pub day_start: i64,
    /// The count through today.
    pub timeline: Vec<CountStep>,
    /// Today's bookings.
    pub bookings: Vec<BookingView>,
    /// Its doors now.
    pub doors: Vec<DoorNow>,
    /// Its sensors and readers.
    pub devices: Vec<DeviceNow>,
}

fn day_start(site: &crate::domain::Site, now: DateTime<Utc>) -> DateTime<Utc> {
    let local = now.with_timezone(&site.timezone).date_naive();
    site.local_instant(local, chrono::NaiveTime::MIN)
}

/// A room now and today.
#[utoipa::path(get, path = "/api/v1/rooms/{id}", tag = "building",
    params(("id" = String, Path, description = "the room")),
    responses((status = 200, body = RoomDay), (status = 401), (status = 404)))]
pub async fn room(
    State(s): State<AppState>,
    _who: Viewer,
    Path(id): Path<String>,
) -> Result<Json<RoomDay>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no room {id:?}"));
    let room: RoomId = id.parse().map_err(|_| not_found())?;
    let i = s.site.room_index(room).ok_or_else(not_found)?;
    let now = s.clock.now();
    let from = day_start(&s.site, now);
    let (store, site) = (s.store.clone(), s.site.clone());
    let (buckets, bookings, no_shows) = blocking(move || {
        let buckets = store.history(room, from.timestamp(), now.timestamp() + 1)?;
        let bookings: Vec<_> = store
            .bookings()?
            .into_iter()
            .filter(|b| b.room == room)
            .filter(|b| {
                let (a, e) = crate::occupancy::history::booked_span(&site, b);
                a < now.timestamp() + 86_400 && e > from.timestamp()
            })
            .collect();
        // Today's no-shows, from the log (bounded: a day's log of a busy building).
        let since = crate::store::AuditId {
            micros: u64::try_from(from.timestamp_micros()).unwrap_or(0),
            seq: 0,
        };
        let no_shows: Vec<String> = store
            .audit_after(Some(since), 500_000)?
            .into_iter()
            .filter_map(|r| match r.entry.event {
                crate::store::AuditEvent::NoShow { booking, room: r } if r == room => {
                    Some(booking.to_string())
                }
                _ => None,
            })
            .collect();
        Ok::<_, crate::store::StoreError>((buckets, bookings, no_shows))
    })
    .await?
    .map_err(|_| ApiError::Unavailable)?;
    let view = s.live.view();
    let doors: Vec<DoorNow> = s
        .site
        .doors
        .iter()
        .zip(&view.doors)
        .filter(|(d, _)| d.into == room || d.from == Some(room))
        .map(|(_, n)| n.clone())
        .collect();
    let door_ids: Vec<&str> = doors.iter().map(|d| d.door.as_str()).collect();
    let devices = view
        .devices
        .iter()
        .filter(|d| d.rooms.contains(&id) || d.doors.iter().any(|x| door_ids.contains(&x.as_str())))
        .cloned()
        .collect();
    let mut bookings: Vec<BookingView> = bookings
        .iter()
        .map(|b| {
            let (start, end) = crate::occupancy::history::booked_span(&s.site, b);
            let key = b.key.to_string();
            BookingView {
                no_show: no_shows.contains(&key),
                key,
                kind: word(&b.kind),
                title: b.title.clone(),
                start,
                end,
                status: word(&b.status),
            }
        })
        .collect();
    bookings.sort_by_key(|b| b.start);
    Ok(Json(RoomDay {
        now: view.rooms[i].clone(),
        name: s.site.rooms[i].name.clone(),
        day_start: from.timestamp(),
        timeline: buckets
            .iter()
            .map(|b| CountStep {
                start: b.start,
                span_s: b.span_s,
                mean: (b.mean() * 100.0).round() / 100.0,
                peak: b.peak,
            })
            .collect(),
        bookings,
        doors,
        devices,
    }))
}

/// Doors now.
#[utoipa::path(get, path = "/api/v1/doors", tag = "building",
    responses((status = 200, body = [DoorNow]), (status = 401)))]
pub async fn doors(State(s): State<AppState>, _who: Viewer) -> Json<Vec<DoorNow>> {
    Json(s.live.view().doors)
}

/// Alarms standing now.
#[utoipa::path(get, path = "/api/v1/alarms", tag = "building",
    responses((status = 200, body = [AlarmNow]), (status = 401)))]
pub async fn alarms(State(s): State<AppState>, _who: Viewer) -> Json<Vec<AlarmNow>> {
    Json(s.live.view().alarms)
}

/// Devices and their health.
#[utoipa::path(get, path = "/api/v1/devices", tag = "building",
    responses((status = 200, body = [DeviceNow]), (status = 401)))]
pub async fn devices(State(s): State<AppState>, _who: Viewer) -> Json<Vec<DeviceNow>> {
    Json(s.live.view().devices)
}

/// A remote unlock.
#[derive(Deserialize, ToSchema)]
pub struct Unlock {
    /// How long, ms (1 to 60,000; the door's own unlock time when left out).
    pub ms: Option<u32>,
}

fn service_error(e: ServiceError) -> ApiError {
    match e {
        ServiceError::UnknownDoor(d) => ApiError::NotFound(format!("no door {d}")),
        ServiceError::NoNode(d) => ApiError::Conflict(format!("door {d} has no device to command")),
        ServiceError::NoAlarm => {
            ApiError::NotFound("no such alarm is standing (it has cleared)".into())
        }
        other => {
            tracing::error!(error = %other, "a staff request failed");
            ApiError::Unavailable
        }
    }
}

/// Releases a door's strike (operators), audited with who asked.
#[utoipa::path(post, path = "/api/v1/doors/{id}/unlock", tag = "building", request_body = Unlock,
    params(("id" = String, Path, description = "the door")),
    responses((status = 204, description = "sent to the door"), (status = 401), (status = 403),
              (status = 404), (status = 409, description = "no device at the door"), (status = 422)))]
pub async fn unlock(
    State(s): State<AppState>,
    who: Operator,
    Path(id): Path<String>,
    body: Option<Json<Unlock>>,
) -> Result<axum::http::StatusCode, ApiError> {
    let door: DoorId = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no door {id:?}")))?;
    let d = s
        .site
        .door(door)
        .ok_or_else(|| ApiError::NotFound(format!("no door {id:?}")))?;
    let ms = body.and_then(|b| b.0.ms).unwrap_or(d.unlock_ms);
    if !(1..=60_000).contains(&ms) {
        return Err(ApiError::Invalid(vec![(
            "ms".into(),
            "from 1 to 60000".into(),
        )]));
    }
    let by = who.actor();
    ask_core(&s, move |reply| Control::Unlock {
        door,
        ms,
        by,
        reply,
    })
    .await?
    .map_err(service_error)?;
    tracing::info!(staff = %who.0.name, %door, ms, "remote unlock");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// One door's lockdown.
#[derive(Deserialize, ToSchema)]
pub struct Lockdown {
    /// Locked down (true) or released from it (false).
    pub locked: bool,
}

/// Locks one door down or releases it (operators), audited with who asked: while locked
/// down only staff and security pass it (leaving is never refused), its allow-list follows,
/// and it no longer stands open in public hours.
#[utoipa::path(put, path = "/api/v1/doors/{id}/lockdown", tag = "building", request_body = Lockdown,
    params(("id" = String, Path, description = "the door")),
    responses((status = 204, description = "done"), (status = 401), (status = 403), (status = 404),
              (status = 422)))]
pub async fn lockdown(
    State(s): State<AppState>,
    who: Operator,
    Path(id): Path<String>,
    Json(body): Json<Lockdown>,
) -> Result<axum::http::StatusCode, ApiError> {
    let door: DoorId = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no door {id:?}")))?;
    let by = who.actor();
    let locked = body.locked;
    ask_core(&s, move |reply| Control::DoorLockdown {
        door,
        locked,
        by,
        reply,
    })
    .await?
    .map_err(service_error)?;
    tracing::info!(staff = %who.0.name, %door, locked, "door lockdown");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// An alarm to acknowledge: its kind and where, as `GET /api/v1/alarms` gives them.
#[derive(Deserialize, ToSchema)]
pub struct AckAlarm {
    pub alarm: String,
    pub door: Option<String>,
    pub device: Option<String>,
    pub feed: Option<String>,
    /// What staff say: who goes, what they found (at most 200 characters).
    pub note: Option<String>,
}

/// Longest note on an acknowledgement, characters.
const NOTE_MAX: usize = 200;

/// Acknowledges a standing alarm (operators), audited with who and the note; the live view
/// shows who took it and when until it clears.
#[utoipa::path(post, path = "/api/v1/alarms/ack", tag = "building", request_body = AckAlarm,
    responses((status = 204, description = "acknowledged"), (status = 401), (status = 403),
              (status = 404, description = "no such alarm is standing"), (status = 422)))]
pub async fn ack_alarm(
    State(s): State<AppState>,
    who: Operator,
    Json(body): Json<AckAlarm>,
) -> Result<axum::http::StatusCode, ApiError> {
    if body
        .note
        .as_ref()
        .is_some_and(|n| n.chars().count() > NOTE_MAX)
    {
        return Err(ApiError::Invalid(vec![(
            "note".into(),
            format!("at most {NOTE_MAX} characters"),
        )]));
    }
    if body
        .note
        .as_ref()
        .is_some_and(|n| n.chars().any(char::is_control))
    {
        return Err(ApiError::Invalid(vec![(
            "note".into(),
            "one line of text".into(),
        )]));
    }
    let by = who.actor();
    let alarm = body.alarm.clone();
    ask_core(&s, move |reply| Control::AckAlarm {
        alarm: body.alarm,
        door: body.door,
        device: body.device,
        feed: body.feed,
        note: body.note,
        by,
        reply,
    })
    .await?
    .map_err(service_error)?;
    tracing::info!(staff = %who.0.name, %alarm, "alarm acknowledged");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The site mode.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ModeView {
    /// `normal`, `lockdown`, `emergency` or `shelter`.
    pub mode: String,
    /// Since when, Unix seconds (in answers).
    #[serde(default)]
    pub since: i64,
}

/// The site mode.
#[utoipa::path(get, path = "/api/v1/mode", tag = "building",
    responses((status = 200, body = ModeView), (status = 401)))]
pub async fn mode(State(s): State<AppState>, _who: Viewer) -> Json<ModeView> {
    let v = s.live.view();
    Json(ModeView {
        mode: v.mode,
        since: v.mode_since,
    })
}

/// Switches the site mode (operators), audited with who asked.
#[utoipa::path(put, path = "/api/v1/mode", tag = "building", request_body = ModeView,
    responses((status = 200, body = ModeView), (status = 401), (status = 403), (status = 422)))]
pub async fn set_mode(
    State(s): State<AppState>,
    who: Operator,
    Json(body): Json<ModeView>,
) -> Result<Json<ModeView>, ApiError> {
    let mode: SiteMode = body.mode.parse().map_err(|_| {
        ApiError::Invalid(vec![(
            "mode".into(),
            "normal, lockdown, emergency or shelter".into(),
        )])
    })?;
    let by = who.actor();
    ask_core(&s, move |reply| Control::SetMode { mode, by, reply })
        .await?
        .map_err(service_error)?;
    tracing::info!(staff = %who.0.name, %mode, "site mode set");
    let v = s.live.view();
    Ok(Json(ModeView {
        mode: v.mode,
        since: v.mode_since,
    }))
}
