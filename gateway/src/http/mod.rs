//! The HTTP API (axum, JSON under `/api/v1`): each area owns its router, and [`app`] merges
//! them, so tests can call it without a socket. So far the booking system's area
//! ([`bookings`]) and the operators' ([`observe`]: `/health` and `/metrics`); the dashboard's
//! areas join them (issue 7).
//!
//! Handlers hold no business logic: they authenticate, read the request into plain fields,
//! and hand the change to the core, which checks it against the snapshot, writes it in one
//! transaction and answers.

pub mod bookings;
pub mod observe;

use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};

use crate::domain::{token_hash, Scope, SourceId};
use crate::service::Msg;
use crate::store::Store;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The store (tokens, listings).
    pub store: Arc<dyn Store>,
    /// The core, for changes.
    pub to_core: SyncSender<Msg>,
    /// The site (its clock, for stays' check-in and check-out).
    pub site: Arc<crate::domain::Site>,
    /// The service's live figures (health and metrics).
    pub stats: Arc<crate::service::Stats>,
}

/// The whole API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(bookings::router())
        .merge(observe::router())
        .with_state(state)
}

/// Why a request was refused. Each maps to a status and a JSON body that names the problem
/// and nothing of the inside.
#[derive(Debug)]
pub enum ApiError {
    /// No or an unknown or revoked token.
    Unauthorized,
    /// The token lacks the scope, or writes for another source.
    Forbidden(String),
    /// Nothing there.
    NotFound(String),
    /// The request's content is wrong: one message per field (or item and field).
    Invalid(Vec<(String, String)>),
    /// The gateway could not do it (its core stopped, the store failed).
    Unavailable,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "a valid token is needed (Authorization: Bearer …)"}),
            ),
            ApiError::Forbidden(why) => (StatusCode::FORBIDDEN, serde_json::json!({"error": why})),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, serde_json::json!({"error": what})),
            ApiError::Invalid(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::json!({"errors": fields
                    .into_iter()
                    .map(|(field, message)| serde_json::json!({"field": field, "message": message}))
                    .collect::<Vec<_>>()}),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "the gateway cannot take this now; try again"}),
            ),
        };
        (status, Json(body)).into_response()
    }
}

/// The source a request's token writes as, if the token is live and has `scope`. Reads the
/// store off the async threads.
pub async fn authorize(
    store: &Arc<dyn Store>,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<SourceId, ApiError> {
    let store = store.clone();
    let headers = headers.clone();
    tokio::task::spawn_blocking(move || authorize_now(store.as_ref(), &headers, scope))
        .await
        .map_err(|_| ApiError::Unavailable)?
}

fn authorize_now(
    store: &dyn Store,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<SourceId, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    let hash = token_hash(token);
    let t = store
        .tokens()
        .map_err(|_| ApiError::Unavailable)?
        .into_iter()
        .find(|t| t.revoked_at.is_none() && t.sha256 == hash)
        .ok_or(ApiError::Unauthorized)?;
    if !t.scopes.contains(&scope) {
        return Err(ApiError::Forbidden(format!(
            "token {} lacks the scope this needs",
            t.name
        )));
    }
    Ok(t.name)
}
