//! The HTTP API (axum, JSON under `/api/v1`) and the staff dashboard: each area owns its
//! router, and [`app`] merges them, so tests can call it without a socket.
//!
//! - [`bookings`]: the booking system's area (bearer tokens with scopes);
//! - [`observe`]: `/health` and `/metrics` for whoever runs the gateway;
//! - [`auth`]: staff sign-in, sessions, CSRF, roles, and the staff accounts;
//! - [`building`]: the site, rooms with live occupancy, doors, alarms, devices, the site mode,
//!   remote unlock, and the live event stream;
//! - [`members`]: members and their cards;
//! - [`audit`]: the access log, filtered, paged, and as CSV;
//! - [`usage`]: utilisation (heat map, peak and mean, booked against actual);
//! - [`openapi`]: the OpenAPI document, generated from the handlers' annotations;
//! - [`dashboard`]: the page itself, embedded in the binary.
//!
//! Every response carries the security headers ([`security_headers`]). Handlers hold no
//! business logic: they authenticate, read the request into plain fields, and hand the
//! change to the core, which checks it against the snapshot, writes it and answers.

pub mod audit;
pub mod auth;
pub mod bookings;
pub mod building;
pub mod dashboard;
pub mod inside;
pub mod members;
pub mod observe;
pub mod openapi;
pub mod schedule;
pub mod usage;

use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};

use crate::bus::Msg;
use crate::domain::{token_hash, Scope, SourceId};
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
    pub stats: Arc<crate::bus::Stats>,
    /// The live view and its event stream.
    pub live: Arc<crate::live::Live>,
    /// Staff accounts and sessions.
    pub staff: Arc<crate::staff::Staff>,
    /// Whether the session cookie is `Secure` (HTTPS only).
    pub secure_cookie: bool,
    /// The service's clock (sessions, "today", default periods).
    pub clock: crate::clock::Clock,
    /// Proxies whose `X-Forwarded-For` names the client (sign-in limits per address).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Each booking source's request budget ([`bookings::RATE`]).
    pub booking_rate: Arc<std::sync::Mutex<bookings::RateLimit>>,
}

/// A card number as staff below admin see it: its last four hex digits, enough to tell cards
/// apart on a list, not enough to make a copy (a door node reads nothing but the UID).
pub fn masked_card(uid: &str) -> String {
    let n = uid.chars().count();
    if n <= 4 {
        return "…".to_string();
    }
    format!("…{}", uid.chars().skip(n - 4).collect::<String>())
}

/// `text` with the UID of every "card <UID>" in it masked (audit summaries name cards so).
pub fn mask_cards_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("card ") {
        let (head, tail) = rest.split_at(i + "card ".len());
        out.push_str(head);
        let n = tail
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(tail.len());
        if n >= 2 {
            out.push_str(&masked_card(&tail[..n]));
        } else {
            out.push_str(&tail[..n]);
        }
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

/// The largest body the staff's endpoints read, bytes.
pub const STAFF_BODY_LIMIT: usize = 64 * 1024;

/// The largest body the booking system's endpoints read (a batch of bookings), bytes.
pub const BOOKINGS_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The whole API and the dashboard.
pub fn app(state: AppState) -> Router {
    let secure = state.secure_cookie;
    // What staff send is small (a sign-in, a member, a mode): anything bigger is refused
    // (413) before it is read; the booking system's batches may be large.
    let staff = Router::new()
        .merge(auth::router())
        .merge(building::router())
        .merge(inside::router())
        .merge(members::router())
        .merge(audit::router())
        .merge(usage::router())
        .merge(schedule::router())
        .layer(axum::extract::DefaultBodyLimit::max(STAFF_BODY_LIMIT));
    Router::new()
        .merge(bookings::router().layer(axum::extract::DefaultBodyLimit::max(BOOKINGS_BODY_LIMIT)))
        .merge(observe::router())
        .merge(staff)
        .merge(openapi::router())
        .merge(dashboard::router())
        .layer(axum::middleware::from_fn(move |req, next| {
            security_headers(req, next, secure)
        }))
        .with_state(state)
}

/// The headers every response carries: nothing but the gateway's own files may run, load or
/// frame the page, nothing is sniffed, no referrer leaves, API answers are not cached, and over
/// HTTPS browsers are told to stay on it.
pub async fn security_headers(req: Request, next: Next, https: bool) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let with_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let mut res = next.run(req).await;
    let refused = res.status().is_client_error();
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    if with_body && refused {
        // A request refused before its body was read (no session, a wrong role, too big): the
        // server closes the connection rather than read the rest, so it says so, and the
        // client does not send its next request down a connection about to close (RFC 9112
        // 9.6). Without it a client's next request failed now and then, unanswered.
        set(h, header::CONNECTION, "close");
    }
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        header::HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), usb=(), payment=()",
    );
    set(
        h,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if api && !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    if https {
        set(
            h,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    res
}

/// Why a request was refused. Each maps to a status and a JSON body that names the problem
/// and nothing of the inside.
#[derive(Debug)]
pub enum ApiError {
    /// No or an unknown or revoked token.
    Unauthorized,
    /// No staff session, or it ended.
    SignedOut,
    /// A change without the session's CSRF token.
    Csrf,
    /// It clashes with what is stored.
    Conflict(String),
    /// Too many failed sign-ins: try again after this many seconds.
    TooMany(u64),
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
            ApiError::SignedOut => (
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "sign in first"}),
            ),
            ApiError::Csrf => (
                StatusCode::FORBIDDEN,
                serde_json::json!({"error": "the request lacks this session's CSRF token (X-CSRF-Token)"}),
            ),
            ApiError::Conflict(why) => (StatusCode::CONFLICT, serde_json::json!({"error": why})),
            ApiError::TooMany(secs) => {
                let mut res = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(serde_json::json!({"error": "too many failed sign-ins; try again later", "retry_after_s": secs})),
                )
                    .into_response();
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return res;
            }
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

/// Hands a request to the core and waits for its answer (ten seconds at most).
pub async fn ask_core<T: Send + 'static>(
    state: &AppState,
    make: impl FnOnce(std::sync::mpsc::SyncSender<T>) -> crate::bus::Control + Send + 'static,
) -> Result<T, ApiError> {
    let tx = state.to_core.clone();
    // The core answers within milliseconds; a core that does not within ten seconds is stuck
    // or stopping, and the client hears so instead of waiting.
    tokio::task::spawn_blocking(move || {
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        tx.send(Msg::Control(make(reply)))
            .map_err(|_| ApiError::Unavailable)?;
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .map_err(|_| ApiError::Unavailable)
    })
    .await
    .map_err(|_| ApiError::Unavailable)?
}

/// A JSON object's fields as text, the way the import reads them; a list (attendees) is
/// joined with `;`.
pub fn fields(
    v: &serde_json::Value,
) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    let serde_json::Value::Object(m) = v else {
        return Err(ApiError::Invalid(vec![(
            "".into(),
            "the body must be a JSON object".into(),
        )]));
    };
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in m {
        let text = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect::<Vec<_>>()
                .join(";"),
            other => other.to_string(),
        };
        out.insert(k.to_ascii_lowercase(), text);
    }
    Ok(out)
}

/// A time in a query: RFC 3339, `YYYY-MM-DD HH:MM` on the site's clock, or a day
/// `YYYY-MM-DD` (its start on the site's clock).
pub fn parse_time(
    site: &crate::domain::Site,
    v: &str,
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let v = v.trim();
    let with_time;
    let v = if v.len() == 10 && chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok() {
        with_time = format!("{v} 00:00");
        with_time.as_str()
    } else {
        v
    };
    site.parse_time(v)
}

/// Runs a blocking closure (the store, argon2) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::Unavailable)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_masked_to_their_last_four_digits_also_inside_text() {
        assert_eq!(masked_card("04A1B2C3"), "…B2C3");
        assert_eq!(masked_card("0102"), "…");
        assert_eq!(
            mask_cards_in("card 04A1B2C3 issued to olena; card 04D4E5F6A7B8C9 of ivan revoked"),
            "card …B2C3 issued to olena; card …B8C9 of ivan revoked"
        );
        assert_eq!(mask_cards_in("cardboard card x"), "cardboard card x");
    }
}
