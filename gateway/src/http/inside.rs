//! Who is inside: `GET /api/v1/inside` (viewers), the people to account for in an alarm or a
//! shelter roll-call, by room.
//!
//! A person is where their last allowed tap took them (the room a door leads into; an exit
//! reader's room closer to the street), within the last [`WINDOW_SECS`]: read from the access
//! log, so it holds over a restart and names people by the log, not by a guess. Beside each
//! room's named people stands its live head count; where the count is more than the names, the
//! rest were counted (counters, the air), not seen tapping, and the answer says how many. Where
//! the count is less (people named by their taps have since left unseen), the room says so too.

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Viewer;
use super::{blocking, ApiError, AppState};
use crate::domain::{MemberId, Site};
use crate::live::RoomNow;
use crate::store::{AuditEvent, Store};

/// How far back a tap places someone: a day's visit; a hostel guest let in at night is still
/// there in the morning.
pub const WINDOW_SECS: i64 = 12 * 3600;
/// Log entries read at most (a busy day's taps are a few thousand).
const SCAN_MAX: usize = 200_000;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/inside", get(inside))
}

/// A person placed by their last allowed tap.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonInside {
    pub member: String,
    /// As now stored.
    pub name: String,
    /// When they were let in (Unix seconds).
    pub since: i64,
    /// Through which door.
    pub door: String,
}

/// One room's people.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoomInside {
    pub room: String,
    /// The live head count.
    pub count: u32,
    /// What the count rests on (`counter`, `entries`, `co2`, …).
    pub basis: String,
    /// People let into it by their taps, newest first.
    pub people: Vec<PersonInside>,
    /// Counted but not named by a tap (`count` minus the named, when more).
    pub unnamed: u32,
    /// The count is lower than the people named: some of them have left unseen (no exit
    /// reader), or the count is short.
    pub fewer_counted: bool,
}

/// Who is inside, by room (rooms with anyone named or counted).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Inside {
    /// As of (Unix seconds, the gateway's clock).
    pub at: i64,
    /// Taps since (Unix seconds): older ones place no one.
    pub from: i64,
    /// The site mode.
    pub mode: String,
    /// People named, in all.
    pub named: u32,
    /// The head counts' sum.
    pub counted: u32,
    /// At least the people to account for: per room the larger of named and counted.
    pub at_least: u32,
    pub rooms: Vec<RoomInside>,
    /// The log was longer than one request reads: the oldest taps of the window were not read.
    pub partial: bool,
}

/// Who is inside now.
#[utoipa::path(get, path = "/api/v1/inside", tag = "building",
    responses((status = 200, body = Inside), (status = 401)))]
pub async fn inside(State(s): State<AppState>, _who: Viewer) -> Result<Json<Inside>, ApiError> {
    let now = s.clock.now();
    let live = s.live.view();
    let (store, site) = (s.store.clone(), s.site.clone());
    let placed = blocking(move || placed(store.as_ref(), &site, now))
        .await?
        .map_err(|e| {
            tracing::error!(error = %e, "who is inside: the store failed");
            ApiError::Unavailable
        })?;
    Ok(Json(assemble(
        &s.site,
        &live.rooms,
        &live.mode,
        placed,
        now,
    )))
}

/// Each member's last allowed tap within the window: (door index, when), and whether the
/// scan stopped short.
type Placed = (
    HashMap<MemberId, (usize, DateTime<Utc>)>,
    HashMap<MemberId, String>,
    bool,
);

fn placed(
    store: &dyn Store,
    site: &Site,
    now: DateTime<Utc>,
) -> Result<Placed, crate::store::StoreError> {
    let from = now - chrono::Duration::seconds(WINDOW_SECS);
    // A key's time is the later of its entry's time and the key before it (the log's clock
    // never goes back), so never before the entry happened: reading keys back to the window's
    // start finds every tap within it (an offline node's uploaded later too).
    let from_us = u64::try_from(from.timestamp_micros()).unwrap_or(0);
    let mut last: HashMap<MemberId, (usize, DateTime<Utc>)> = HashMap::new();
    let mut before = None;
    let mut read = 0usize;
    let mut partial = false;
    'scan: loop {
        let page = store.audit_before(before, 1_000)?;
        let Some(tail) = page.last() else { break };
        before = Some(tail.id);
        for r in &page {
            if r.id.micros < from_us {
                break 'scan;
            }
            read += 1;
            if read > SCAN_MAX {
                partial = true;
                break 'scan;
            }
            let AuditEvent::Decision {
                door,
                reason,
                member: Some(m),
                ..
            } = &r.entry.event
            else {
                continue;
            };
            let at = r.entry.at;
            if !reason.is_allow() || at < from || at > now {
                continue;
            }
            let Some(di) = site.door_index(*door) else {
                continue;
            };
            match last.get(m) {
                Some((_, t)) if *t >= at => {}
                _ => {
                    last.insert(*m, (di, at));
                }
            }
        }
    }
    // Names as now stored; an erased member is no one to list.
    let names: HashMap<MemberId, String> = store
        .members()?
        .into_iter()
        .filter(|m| last.contains_key(&m.id))
        .map(|m| (m.id, m.name))
        .collect();
    last.retain(|m, _| names.contains_key(m));
    Ok((last, names, partial))
}

fn assemble(
    site: &Site,
    live: &[RoomNow],
    mode: &str,
    (last, names, partial): Placed,
    now: DateTime<Utc>,
) -> Inside {
    let mut people: Vec<Vec<PersonInside>> = vec![Vec::new(); site.rooms.len()];
    for (m, (di, at)) in &last {
        let room = site.into_room(*di);
        people[room].push(PersonInside {
            member: m.to_string(),
            name: names.get(m).cloned().unwrap_or_default(),
            since: at.timestamp(),
            door: site.doors[*di].id.to_string(),
        });
    }
    let mut rooms = Vec::new();
    let (mut named, mut counted, mut at_least) = (0u32, 0u32, 0u32);
    for (i, mut p) in people.into_iter().enumerate() {
        let (count, basis) = live
            .get(i)
            .map_or((0, "none".to_string()), |r| (r.count, r.basis.clone()));
        if p.is_empty() && count == 0 {
            continue;
        }
        p.sort_by(|a, b| b.since.cmp(&a.since).then_with(|| a.name.cmp(&b.name)));
        let n = u32::try_from(p.len()).unwrap_or(u32::MAX);
        named += n;
        counted += count;
        at_least += n.max(count);
        rooms.push(RoomInside {
            room: site.rooms[i].id.to_string(),
            count,
            basis,
            unnamed: count.saturating_sub(n),
            fewer_counted: count < n,
            people: p,
        });
    }
    Inside {
        at: now.timestamp(),
        from: now.timestamp() - WINDOW_SECS,
        mode: mode.to_string(),
        named,
        counted,
        at_least,
        rooms,
        partial,
    }
}
