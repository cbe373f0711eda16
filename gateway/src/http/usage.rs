//! Utilisation: `GET /api/v1/utilisation?from=&until=&room=` gives, per room (or the one
//! asked for), peak and mean head count, the hour × weekday heat map on the site's clock, and
//! booked time against what the sensors saw, from the stored occupancy history. The period
//! defaults to the last 28 days.
//!
//! The building over time: `GET /api/v1/occupancy?from=&until=` gives the mean number of
//! people in the building and on each floor, in five-minute steps over two days or less and
//! hourly steps over longer (at most 92 days), from the same history.

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
    Router::new()
        .route("/api/v1/utilisation", get(utilisation))
        .route("/api/v1/occupancy", get(trend))
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
    /// Hours of the period the room had no power by the outage schedules: left out of
    /// everything above.
    pub dark_hours: f64,
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

/// A period's end from the query: RFC 3339 or a day (and time) on the site's clock; empty or
/// left out is none.
fn query_time(
    site: &crate::domain::Site,
    field: &str,
    v: &Option<String>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    v.as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| super::parse_time(site, v).map_err(|e| ApiError::Invalid(vec![(field.into(), e)])))
        .transpose()
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
    let time = |field: &str, v: &Option<String>| query_time(&site, field, v);
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
        // The power schedules' dark hours are left out: an empty room without power is not an
        // unused one.
        let plan = crate::engine::PowerSchedules::read(store.as_ref())?.plan;
        let mut out = Vec::with_capacity(rooms.len());
        for id in rooms {
            let supply = site.room(id).map(|r| r.supply).unwrap_or_default();
            let dark = plan.dark(supply, f, u);
            let buckets: Vec<_> = store
                .history(id, f, u)?
                .into_iter()
                // A bucket wholly in the dark is left out; one partly so (an hourly bucket of
                // older history) is kept: the room was empty in the dark part anyway.
                .filter(|b| {
                    let (s, e) = (b.start, b.start + i64::from(b.span_s));
                    !dark.iter().any(|(a, z)| *a <= s && e <= *z)
                })
                .collect();
            let mine: Vec<_> = bookings
                .iter()
                .filter(|b| b.room == id && b.kind != BookingKind::GuestPass)
                .cloned()
                .collect();
            let use_ = usage(&buckets);
            let booked = booked_vs_actual(&site, &mine, &buckets, f, u, &dark);
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
                dark_hours: round(dark.iter().map(|(a, z)| z - a).sum::<i64>() as f64 / 3600.0),
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

/// The building's period.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrendQuery {
    /// From (RFC 3339 or `YYYY-MM-DD` on the site's clock); default the start of today.
    pub from: Option<String>,
    /// Until (exclusive); default the midnight after `from` on the site's clock.
    pub until: Option<String>,
}

/// One step of the building's day.
#[derive(Serialize, ToSchema)]
pub struct TrendStep {
    /// Start, Unix seconds.
    pub start: i64,
    /// Mean people in the building over the step (the rooms' means added up); null where no
    /// room was watched.
    pub building: Option<f64>,
    /// The same per floor, in the site file's order of floors.
    pub floors: Vec<Option<f64>>,
}

/// The building and its floors over a period.
#[derive(Serialize, ToSchema)]
pub struct Trend {
    pub from: i64,
    pub until: i64,
    /// Seconds a step.
    pub step_s: i64,
    /// The floors' ids, in the order of each step's `floors`.
    pub floors: Vec<String>,
    pub steps: Vec<TrendStep>,
}

/// Longest period one request covers, days.
const TREND_MAX_DAYS: i64 = 92;

/// The building and each floor over a day or a week.
#[utoipa::path(get, path = "/api/v1/occupancy", tag = "utilisation", params(TrendQuery),
    responses((status = 200, body = Trend), (status = 401), (status = 422)))]
pub async fn trend(
    State(s): State<AppState>,
    _who: Viewer,
    Query(q): Query<TrendQuery>,
) -> Result<Json<Trend>, ApiError> {
    let site = s.site.clone();
    let time = |field: &str, v: &Option<String>| query_time(&site, field, v);
    let now = s.clock.now();
    let from = match time("from", &q.from)? {
        Some(t) => t,
        None => {
            let today = site.local_time(now).date;
            super::parse_time(&site, &today.format("%Y-%m-%d").to_string())
                .map_err(|e| ApiError::Invalid(vec![("from".into(), e)]))?
        }
    };
    let until = match time("until", &q.until)? {
        Some(t) => t,
        // The next midnight on the site's clock: a day of 23 or 25 hours when the clocks change.
        None => {
            let next = site.local_time(from).date + Duration::days(1);
            super::parse_time(&site, &next.format("%Y-%m-%d").to_string())
                .map_err(|e| ApiError::Invalid(vec![("until".into(), e)]))?
        }
    };
    if from >= until {
        return Err(ApiError::Invalid(vec![(
            "from".into(),
            "the period must start before it ends".into(),
        )]));
    }
    if until - from > Duration::days(TREND_MAX_DAYS) {
        return Err(ApiError::Invalid(vec![(
            "until".into(),
            format!("at most {TREND_MAX_DAYS} days"),
        )]));
    }
    let (f, u) = (from.timestamp(), until.timestamp());
    let step: i64 = if u - f <= 2 * 86_400 { 300 } else { 3_600 };
    let store = s.store.clone();
    let out = blocking(move || trend_of(store.as_ref(), &site, f, u, step))
        .await?
        .map_err(|_| ApiError::Unavailable)?;
    Ok(Json(out))
}

/// Each room's mean over each step (person-seconds over seconds watched), added up by floor
/// and for the building.
fn trend_of(
    store: &dyn crate::store::Store,
    site: &crate::domain::Site,
    f: i64,
    u: i64,
    step: i64,
) -> Result<Trend, crate::store::StoreError> {
    let n = usize::try_from((u - f + step - 1) / step).unwrap_or(0);
    let floors: Vec<_> = site.floors.iter().map(|x| x.id).collect();
    let mut by_floor = vec![vec![None::<f64>; floors.len()]; n];
    let mut building = vec![None::<f64>; n];
    for room in &site.rooms {
        let mut person = vec![0u64; n];
        let mut watched = vec![0u64; n];
        for b in store.history(room.id, f, u)? {
            // A bucket longer than a step (hourly, after compaction) spreads over its steps.
            let parts = (i64::from(b.span_s) / step).max(1);
            for k in 0..parts {
                let at = b.start + k * step;
                if at < f || at >= u {
                    continue;
                }
                let i = usize::try_from((at - f) / step).unwrap_or(usize::MAX);
                if let (Some(p), Some(w)) = (person.get_mut(i), watched.get_mut(i)) {
                    *p += b.person_s / parts as u64;
                    *w += u64::from(b.observed_s) / parts as u64;
                }
            }
        }
        let fi = floors.iter().position(|x| *x == room.floor);
        for i in 0..n {
            if watched[i] == 0 {
                continue;
            }
            let mean = person[i] as f64 / watched[i] as f64;
            *building[i].get_or_insert(0.0) += mean;
            if let Some(fi) = fi {
                *by_floor[i][fi].get_or_insert(0.0) += mean;
            }
        }
    }
    Ok(Trend {
        from: f,
        until: u,
        step_s: step,
        floors: floors.iter().map(|x| x.to_string()).collect(),
        steps: (0..n)
            .map(|i| TrendStep {
                start: f + i as i64 * step,
                building: building[i].map(round),
                floors: by_floor[i].iter().map(|v| v.map(round)).collect(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{HistoryBucket, MemoryStore, Store};

    fn site() -> crate::domain::Site {
        crate::site_file::parse(include_str!("../../../deploy/site.example.toml"))
            .expect("the example site loads")
    }

    fn bucket(room: &str, start: i64, span_s: u32, mean: u64, watched: u32) -> HistoryBucket {
        HistoryBucket {
            room: room.parse().unwrap(),
            start,
            span_s,
            person_s: mean * u64::from(watched),
            observed_s: watched,
            peak: mean as u32,
            occupied_s: watched,
        }
    }

    #[test]
    fn the_building_over_a_day_adds_up_its_rooms_by_floor_and_leaves_unwatched_steps_empty() {
        let site = site();
        let store = MemoryStore::new();
        let f = 1_795_392_000; // a whole hour
        store
            .add_history(&[
                bucket("meeting-1", f, 300, 3, 300),
                bucket("coworking", f, 300, 10, 300),
                // Watched half the step (a restart): its mean is over the half.
                bucket("coworking", f + 300, 300, 8, 150),
                // Compacted to an hour: spread over its twelve steps.
                bucket("lobby", f + 3_600, 3_600, 2, 3_600),
            ])
            .unwrap();
        let t = trend_of(&store, &site, f, f + 86_400, 300).unwrap();
        assert_eq!(t.steps.len(), 288);
        let f1 = t.floors.iter().position(|x| x == "f1").unwrap();
        let f0 = t.floors.iter().position(|x| x == "f0").unwrap();
        assert_eq!(t.steps[0].building, Some(13.0));
        assert_eq!(t.steps[0].floors[f1], Some(13.0), "both on the first floor");
        assert_eq!(t.steps[0].floors[f0], None);
        assert_eq!(t.steps[1].building, Some(8.0));
        assert_eq!(t.steps[2].building, None, "nothing watched");
        for i in 12..24 {
            assert_eq!(t.steps[i].building, Some(2.0), "step {i}");
            assert_eq!(t.steps[i].floors[f0], Some(2.0));
        }
        assert_eq!(t.steps[24].building, None);

        // A week, hourly: the first hour's means over what was watched.
        let w = trend_of(&store, &site, f, f + 7 * 86_400, 3_600).unwrap();
        assert_eq!(w.steps.len(), 168);
        // meeting-1 3 over 300 s; coworking (10·300 + 8·150) / 450 = 9.33.
        assert_eq!(w.steps[0].building, Some(12.33));
        assert_eq!(w.steps[1].building, Some(2.0));
    }
}
