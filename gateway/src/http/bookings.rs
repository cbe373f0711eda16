//! The booking system's area: upsert and cancel bookings (meetings, stays, events, guest
//! passes) by its own id, in batches, and list them.
//!
//! - `PUT /api/v1/bookings/{source}/{external_id}` with the booking's fields: added, updated or
//!   unchanged (idempotent).
//! - `DELETE /api/v1/bookings/{source}/{external_id}`: cancelled; it opens nothing from then on.
//! - `POST /api/v1/bookings/batch` with `[{"external_id": …, …}, …]` of the token's source: all
//!   or nothing, in one transaction.
//! - `GET /api/v1/bookings?room=&from=&until=`: the token's own source's bookings.
//!
//! Fields are those of the CSV import (`room`, `kind`, `organiser`, `attendees` as a list,
//! `start` and `end` or `arrival` and `departure`, `title`, `status`). A token writes only the
//! source it is named after (scope `bookings:write`); reading needs `bookings:read`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde_json::Value;

use super::{ask_core, authorize, fields, ApiError, AppState};
use crate::bus::Control;
use crate::domain::{BookingKey, ExternalId, Scope, SourceId};
use crate::store::Actor;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/bookings/{source}/{external_id}",
            put(upsert).delete(cancel),
        )
        .route("/api/v1/bookings/batch", post(batch))
        .route("/api/v1/bookings", axum::routing::get(list))
}

fn own_source(token: SourceId, path: &str) -> Result<SourceId, ApiError> {
    let s: SourceId = path
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no source {path:?}")))?;
    if s != token {
        return Err(ApiError::Forbidden(format!(
            "token {token} writes bookings of source {token} only"
        )));
    }
    Ok(s)
}

/// Requests a booking source may make: a burst of [`RATE`].0, then [`RATE`].1 a second.
pub const RATE: (f64, f64) = (60.0, 10.0);

/// Each source's request budget (a token bucket per source).
#[derive(Debug, Default)]
pub struct RateLimit(std::collections::HashMap<SourceId, (f64, std::time::Instant)>);

impl RateLimit {
    /// Takes one request from `source`'s budget at `now`, or says how many seconds until one.
    pub fn take(&mut self, source: SourceId, now: std::time::Instant) -> Result<(), u64> {
        let (burst, per_s) = RATE;
        let (left, at) = self.0.entry(source).or_insert((burst, now));
        *left = (*left + now.duration_since(*at).as_secs_f64() * per_s).min(burst);
        *at = now;
        if *left >= 1.0 {
            *left -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *left) / per_s).ceil().max(1.0) as u64)
        }
    }
}

async fn write(
    state: &AppState,
    source: SourceId,
    items: Vec<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let allowed = state
        .booking_rate
        .lock()
        .map_err(|_| ApiError::Unavailable)?
        .take(source, std::time::Instant::now());
    if let Err(wait) = allowed {
        tracing::warn!(source = %source, "booking requests refused: over the source's rate");
        return Err(ApiError::TooMany(wait));
    }
    let actor = Actor::Source(source.to_string());
    let r = ask_core(state, move |reply| Control::ApiBookings {
        source,
        items,
        actor,
        reply,
    })
    .await?;
    match r {
        Ok(c) => Ok(Json(serde_json::json!({
            "added": c.added, "updated": c.updated, "unchanged": c.unchanged
        }))),
        Err(crate::bus::ApiRefusal::Invalid(problems)) => Err(ApiError::Invalid(problems)),
        Err(crate::bus::ApiRefusal::Failed) => Err(ApiError::Unavailable),
    }
}

/// Adds or updates one booking of the token's source (idempotent).
#[utoipa::path(put, path = "/api/v1/bookings/{source}/{external_id}", tag = "bookings",
    params(("source" = String, Path, description = "the token's source"),
           ("external_id" = String, Path, description = "the booking system's id")),
    request_body(content = Object, description = "the booking's fields, as the bookings CSV has them"),
    responses((status = 200, description = "added, updated or unchanged"), (status = 401),
              (status = 403), (status = 422)),
    security(("token" = [])))]
pub async fn upsert(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((source, external_id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let token = authorize(&state.store, &headers, Scope::BookingsWrite).await?;
    let source = own_source(token, &source)?;
    let mut f = fields(&body)?;
    f.insert("external_id".into(), external_id);
    f.insert("source".into(), source.to_string());
    write(&state, source, vec![f]).await
}

/// Adds or updates many bookings of the token's source, all or nothing.
#[utoipa::path(post, path = "/api/v1/bookings/batch", tag = "bookings",
    request_body(content = [Object], description = "bookings with their external_id"),
    responses((status = 200, description = "the counts"), (status = 401), (status = 403),
              (status = 422)),
    security(("token" = [])))]
pub async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let source = authorize(&state.store, &headers, Scope::BookingsWrite).await?;
    let Value::Array(list) = body else {
        return Err(ApiError::Invalid(vec![(
            "".into(),
            "a batch is a JSON list of bookings".into(),
        )]));
    };
    // The core checks a batch while doors wait: a batch is a few seconds' work at most.
    if list.len() > 1000 {
        return Err(ApiError::Invalid(vec![(
            "".into(),
            "at most 1,000 bookings a batch".into(),
        )]));
    }
    let mut items = Vec::new();
    for (n, v) in list.iter().enumerate() {
        let mut f = fields(v).map_err(|_| {
            ApiError::Invalid(vec![(format!("{n}."), "a booking is a JSON object".into())])
        })?;
        if f.get("source").is_some_and(|s| *s != source.to_string()) {
            return Err(ApiError::Forbidden(format!(
                "token {source} writes bookings of source {source} only"
            )));
        }
        f.insert("source".into(), source.to_string());
        items.push(f);
    }
    write(&state, source, items).await
}

/// Cancels a booking of the token's source.
#[utoipa::path(delete, path = "/api/v1/bookings/{source}/{external_id}", tag = "bookings",
    params(("source" = String, Path, description = "the token's source"),
           ("external_id" = String, Path, description = "the booking system's id")),
    responses((status = 200), (status = 401), (status = 403), (status = 404)),
    security(("token" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((source, external_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let token = authorize(&state.store, &headers, Scope::BookingsWrite).await?;
    let source = own_source(token, &source)?;
    let external_id = ExternalId::parse(&external_id)
        .map_err(|e| ApiError::Invalid(vec![("external_id".into(), e.to_string())]))?;
    let key = BookingKey {
        source,
        external_id,
    };
    let actor = Actor::Source(source.to_string());
    let k = key.clone();
    let found = ask_core(&state, move |reply| Control::ApiCancel {
        key: k,
        actor,
        reply,
    })
    .await?;
    match found {
        Ok(true) => Ok(Json(serde_json::json!({"cancelled": key.to_string()}))),
        Ok(false) => Err(ApiError::NotFound(format!("no booking {key}"))),
        Err(_) => Err(ApiError::Unavailable),
    }
}

/// The list's filters.
#[derive(serde::Deserialize)]
pub struct ListQuery {
    /// One room.
    pub room: Option<String>,
    /// Bookings overlapping from.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Bookings overlapping until.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The token's source's bookings.
#[utoipa::path(get, path = "/api/v1/bookings", tag = "bookings",
    params(("room" = Option<String>, Query, description = "one room"),
           ("from" = Option<String>, Query, description = "overlapping from (RFC 3339)"),
           ("until" = Option<String>, Query, description = "overlapping until (RFC 3339)")),
    responses((status = 200, description = "the bookings"), (status = 401), (status = 403)),
    security(("token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let source = authorize(&state.store, &headers, Scope::BookingsRead).await?;
    let store = state.store.clone();
    let bookings = tokio::task::spawn_blocking(move || store.bookings())
        .await
        .map_err(|_| ApiError::Unavailable)?
        .map_err(|_| ApiError::Unavailable)?;
    let out: Vec<Value> = bookings
        .into_iter()
        .filter(|b| b.key.source == source)
        .filter(|b| q.room.as_ref().is_none_or(|r| b.room.to_string() == *r))
        .filter(|b| {
            // Stays by their check-in and check-out on the site's clock.
            let (start, end) = crate::occupancy::history::booked_span(&state.site, b);
            q.from.is_none_or(|f| end > f.timestamp())
                && q.until.is_none_or(|u| start < u.timestamp())
        })
        .map(|b| serde_json::to_value(&b).unwrap_or(Value::Null))
        .collect();
    Ok(Json(Value::Array(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_a_burst_then_its_rate_and_others_are_not_held_up() {
        let mut r = RateLimit::default();
        let t = std::time::Instant::now();
        let a = SourceId::parse("a").unwrap();
        let b = SourceId::parse("b").unwrap();
        for _ in 0..RATE.0 as usize {
            assert!(r.take(a, t).is_ok());
        }
        assert_eq!(r.take(a, t), Err(1));
        assert!(r.take(b, t).is_ok(), "another source has its own budget");
        let later = t + std::time::Duration::from_millis(200);
        assert!(r.take(a, later).is_ok(), "two more after 0.2 s");
        assert!(r.take(a, later).is_ok());
        assert!(r.take(a, later).is_err());
    }
}
