//! Utilisation: `GET /api/v1/utilisation?from=&until=&room=` gives, per room (or the one
//! asked for), peak and mean head count, the hour × weekday heat map on the site's clock, and
//! booked time against what the sensors saw, from the stored occupancy history. The period
//! defaults to the last 28 days.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Viewer;
use super::{blocking, ApiError, AppState};
use crate::domain::{BookingKind, RoomId};
use crate::occupancy::history::{booked_vs_actual, heat_map, usage};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/utilisation", get(utilisation))
}

/// The period and room.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// From (RFC 3339 or `YYYY-MM-DD` on the site's clock); default 28 days ago.
    pub from: Option<String>,
    /// Until (exclusive); default now.
    pub until: Option<String>,
    /// One room; default every room.
    pub room: Option<String>,
}

/// One room's use over the period.
#[derive(Serialize, ToSchema)]
pub struct RoomUsage {
    pub room: String,
    pub name: String,
    pub capacity: Option<u32>,
    /// The highest head count.
    pub peak: u32,
    /// Mean head count over the time watched.
    pub mean: f64,
    /// Hours occupied.
    pub occupied_hours: f64,
    /// Hours watched.
    pub observed_hours: f64,
    /// Confirmed bookings in the period.
    pub bookings: usize,
    /// Hours booked.
    pub booked_hours: f64,
    /// Hours occupied while booked.
    pub occupied_while_booked_hours: f64,
    /// Share of booked time in use, 0 to 1.
    pub use_of_booked: f64,
    /// Hostel nights booked (stays count here, not in the booked hours).
    pub nights_booked: u32,
    /// Of those, nights someone was in the room between check-in and the next check-out.
    pub nights_used: u32,
    /// Mean head count per weekday (Monday first) and local hour; null where unwatched.
    pub heat_map: Vec<Vec<Option<f64>>>,
}

/// Utilisation over a period.
#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    /// Period start, Unix seconds.
    pub from: i64,
    /// Period end (exclusive), Unix seconds.
    pub until: i64,
    /// Per room.
    pub rooms: Vec<RoomUsage>,
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Utilisation per room over a period.
#[utoipa::path(get, path = "/api/v1/utilisation", tag = "utilisation", params(UsageQuery),
    responses((status = 200, body = UsageReport), (status = 401), (status = 404), (status = 422)))]
pub async fn utilisation(
    State(s): State<AppState>,
    _who: Viewer,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let site = s.site.clone();
    let time = |field: &str, v: &Option<String>| {
        v.as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| {
                super::parse_time(&site, v).map_err(|e| ApiError::Invalid(vec![(field.into(), e)]))
            })
            .transpose()
    };
    let now = s.clock.now();
    let until = time("until", &q.until)?.unwrap_or(now);
    let from = time("from", &q.from)?.unwrap_or(until - Duration::days(28));
    if from >= until {
        return Err(ApiError::Invalid(vec![(
            "from".into(),
            "the period must start before it ends".into(),
        )]));
    }
    let rooms: Vec<RoomId> = match q.room.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => {
            let id: RoomId = r
                .parse()
                .map_err(|_| ApiError::NotFound(format!("no room {r:?}")))?;
            site.room(id)
                .ok_or_else(|| ApiError::NotFound(format!("no room {r:?}")))?;
            vec![id]
        }
        None => site.rooms.iter().map(|r| r.id).collect(),
    };
    let store = s.store.clone();
    let (f, u) = (from.timestamp(), until.timestamp());
    let out = blocking(move || {
        let bookings = store.bookings()?;
        let mut out = Vec::with_capacity(rooms.len());
        for id in rooms {
            let buckets = store.history(id, f, u)?;
            let mine: Vec<_> = bookings
                .iter()
                .filter(|b| b.room == id && b.kind != BookingKind::GuestPass)
                .cloned()
                .collect();
            let use_ = usage(&buckets);
            let booked = booked_vs_actual(&site, &mine, &buckets, f, u);
            let heat = heat_map(&site, &buckets);
            let room = site.room(id);
            out.push(RoomUsage {
                room: id.to_string(),
                name: room.map(|r| r.name.clone()).unwrap_or_default(),
                capacity: room.and_then(|r| r.capacity),
                peak: use_.peak,
                mean: round(use_.mean),
                occupied_hours: round(use_.occupied_hours),
                observed_hours: round(use_.observed_hours),
                bookings: booked.bookings,
                booked_hours: round(booked.booked_hours),
                occupied_while_booked_hours: round(booked.occupied_while_booked_hours),
                use_of_booked: round(booked.use_of_booked),
                nights_booked: booked.nights_booked,
                nights_used: booked.nights_used,
                heat_map: heat
                    .cells
                    .iter()
                    .map(|d| d.iter().map(|c| c.map(round)).collect())
                    .collect(),
            });
        }
        Ok::<_, crate::store::StoreError>(out)
    })
    .await?
    .map_err(|_| ApiError::Unavailable)?;
    Ok(Json(UsageReport {
        from: f,
        until: u,
        rooms: out,
    }))
}
