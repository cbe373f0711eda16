//! Staff sign-in and the staff accounts.
//!
//! - `POST /api/v1/session` with `{"name", "password"}`: sets the session cookie (HttpOnly,
//!   SameSite=Strict, `Secure` when configured) and answers who signed in, their role and the
//!   session's CSRF token. Failed attempts are limited per client address and per name.
//! - `GET /api/v1/session`: who is signed in (and the CSRF token again, for a reloaded page).
//! - `DELETE /api/v1/session`: signs out.
//! - `GET|POST /api/v1/staff`, `PATCH|DELETE /api/v1/staff/{name}`: accounts (admins).
//!
//! Handlers name the role they need by taking [`Viewer`], [`Operator`] or [`Admin`]: each
//! checks the session and the role, and on any method that changes something also the
//! `X-CSRF-Token` header against the session's token.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{blocking, ApiError, AppState};
use crate::staff::{Signed, StaffError, StaffName, StaffRole};
use crate::store::Actor;

/// The session cookie's name.
pub const COOKIE: &str = "kombinat_session";

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/session", get(whoami).post(login).delete(logout))
        .route("/api/v1/staff", get(list_staff).post(add_staff))
        .route(
            "/api/v1/staff/{name}",
            patch(update_staff).delete(remove_staff),
        )
}

/// The session id in a request's cookie, if any.
pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// Constant-time comparison, so a forged token cannot be guessed byte by byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The signed-in staff member of a request, if the role suffices (and, for a change, the
/// CSRF token matches).
fn check(parts: &Parts, state: &AppState, need: StaffRole) -> Result<Signed, ApiError> {
    let id = session_id(&parts.headers).ok_or(ApiError::SignedOut)?;
    let signed = state
        .staff
        .session(id, state.clock.session_now())
        .ok_or(ApiError::SignedOut)?;
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let token = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same(token, &signed.csrf) {
            return Err(ApiError::Csrf);
        }
    }
    if signed.role < need {
        return Err(ApiError::Forbidden(format!(
            "this needs the {need} role; {} is {}",
            signed.name, signed.role
        )));
    }
    Ok(signed)
}

macro_rules! role_extractor {
    ($name:ident, $role:expr, $doc:literal) => {
        #[doc = $doc]
        pub struct $name(pub Signed);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, ApiError> {
                check(parts, state, $role).map($name)
            }
        }

        impl $name {
            /// Who, for the audit log.
            pub fn actor(&self) -> Actor {
                Actor::Staff(self.0.name.to_string())
            }
        }
    };
}

role_extractor!(
    Viewer,
    StaffRole::Viewer,
    "A signed-in staff member (any role)."
);
role_extractor!(
    Operator,
    StaffRole::Operator,
    "A signed-in operator or admin."
);
role_extractor!(Admin, StaffRole::Admin, "A signed-in admin.");

/// A sign-in.
#[derive(Deserialize, ToSchema)]
pub struct Login {
    /// The account's name.
    pub name: String,
    pub password: String,
}

/// What a staff member may do, as the OpenAPI document shows [`StaffRole`] (the core's type
/// knows no OpenAPI): each role includes the ones before it.
#[derive(ToSchema)]
#[schema(as = StaffRole, rename_all = "snake_case")]
#[allow(dead_code)]
enum RoleSchema {
    /// Watches: the floor plan, rooms, doors, the log, utilisation, devices.
    Viewer,
    /// Also unlocks doors and switches the site mode.
    Operator,
    /// Also manages staff accounts, members and cards.
    Admin,
}

/// Who is signed in.
#[derive(Serialize, ToSchema)]
pub struct Me {
    /// The account's name.
    pub name: String,
    #[schema(value_type = RoleSchema)]
    pub role: StaffRole,
    /// Send it back as `X-CSRF-Token` with every change.
    pub csrf: String,
}

/// The client's address: the peer's, or, when the peer is a trusted proxy (the documented TLS
/// proxy in front of the dashboard), the last address in `X-Forwarded-For` that is not one of
/// the trusted proxies (what the proxy saw; earlier entries are the client's to forge).
pub fn client_addr(
    peer: Option<IpAddr>,
    headers: &axum::http::HeaderMap,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    // From the right: each trusted proxy appended the address it saw. The first entry that is
    // not a trusted proxy is the client; an entry that does not read as an address ends the
    // walk at the peer (what is left of it may be the client's own forgery).
    let entries: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().to_string())
        .collect();
    for e in entries.iter().rev() {
        match e.parse::<IpAddr>() {
            Ok(a) if trusted.contains(&a.to_canonical()) => continue,
            Ok(a) => return Some(a.to_canonical()),
            Err(_) => return Some(peer),
        }
    }
    Some(peer)
}

/// Signs in.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = Login,
    responses((status = 200, body = Me, description = "signed in; the cookie is set"),
              (status = 401, description = "wrong name or password"),
              (status = 429, description = "too many failed attempts")))]
pub async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
    Json(body): Json<Login>,
) -> Result<Response, ApiError> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let addr = client_addr(peer, &headers, &state.trusted_proxies);
    let at = std::time::Instant::now();
    let admitted = state
        .staff
        .limiter
        .lock()
        .map_err(|_| ApiError::Unavailable)?
        .begin(addr, &body.name, at);
    let name_limited = match admitted {
        Err(wait) => {
            tracing::warn!(name = %body.name, addr = ?addr, "sign-in refused: too many failures from this address");
            return Err(ApiError::TooMany(wait.as_secs().max(1)));
        }
        Ok(w) => w,
    };
    let staff = state.staff.clone();
    let (name, password) = (body.name.clone(), body.password);
    let account = {
        let _slot = state
            .staff
            .hashing
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable)?;
        blocking(move || staff.check_password(&name, &password)).await?
    };
    let Some(account) = account else {
        tracing::warn!(name = %body.name, addr = ?addr, "sign-in failed");
        if let Some(wait) = name_limited {
            // The name is being guessed from elsewhere too: its owner still gets in with the
            // right password, a guess costs time.
            tokio::time::sleep(crate::staff::NAME_LIMITED_DELAY).await;
            return Err(ApiError::TooMany(wait.as_secs().max(1)));
        }
        return Err(ApiError::SignedOut);
    };
    if let Ok(mut l) = state.staff.limiter.lock() {
        l.succeeded(addr, &body.name, at);
    }
    let staff = state.staff.clone();
    let store = state.store.clone();
    let name = account.name.clone();
    let now = state.clock.now();
    let opened_at = state.clock.session_now();
    let (id, session) = blocking(move || {
        let opened = staff.open_session(&name, opened_at)?;
        store.append_audit(&[crate::store::AuditEntry::change(
            now,
            Actor::Staff(name.to_string()),
            format!("staff {name} signed in"),
        )])?;
        Ok::<_, StaffError>(opened)
    })
    .await?
    .map_err(|e| {
        tracing::error!(error = %e, "cannot open a session");
        ApiError::Unavailable
    })?;
    tracing::info!(staff = %account.name, role = %account.role, "signed in");
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        crate::staff::SESSION_HOURS * 3600,
        if state.secure_cookie { "; Secure" } else { "" }
    );
    let me = Me {
        name: account.name.to_string(),
        role: account.role,
        csrf: session.csrf,
    };
    let mut res = Json(me).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Who is signed in.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = Me), (status = 401)))]
pub async fn whoami(who: Viewer) -> Json<Me> {
    Json(Me {
        name: who.0.name.to_string(),
        role: who.0.role,
        csrf: who.0.csrf,
    })
}

/// Signs out.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204), (status = 401), (status = 403, description = "no CSRF token")))]
pub async fn logout(
    State(state): State<AppState>,
    who: Viewer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = session_id(&headers).unwrap_or("").to_string();
    let staff = state.staff.clone();
    blocking(move || staff.close_session(&id))
        .await?
        .map_err(|_| ApiError::Unavailable)?;
    tracing::info!(staff = %who.0.name, "signed out");
    let gone = format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if state.secure_cookie { "; Secure" } else { "" }
    );
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&gone) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// A staff account as listed (never its hash).
#[derive(Serialize, ToSchema)]
pub struct StaffView {
    pub name: String,
    #[schema(value_type = RoleSchema)]
    pub role: StaffRole,
    /// When it was made, RFC 3339.
    pub created_at: String,
}

/// A new account.
#[derive(Deserialize, ToSchema)]
pub struct NewStaff {
    pub name: String,
    #[schema(value_type = RoleSchema)]
    pub role: StaffRole,
    /// The password (10 to 256 characters).
    pub password: String,
}

/// A change to an account.
#[derive(Deserialize, ToSchema)]
pub struct StaffChange {
    /// A new role.
    #[schema(value_type = Option<RoleSchema>)]
    pub role: Option<StaffRole>,
    /// A new password (signs the account out everywhere).
    pub password: Option<String>,
}

fn staff_error(e: StaffError) -> ApiError {
    match e {
        StaffError::Exists(_) | StaffError::LastAdmin(_) => ApiError::Conflict(e.to_string()),
        StaffError::Unknown(_) => ApiError::NotFound(e.to_string()),
        StaffError::WeakPassword => ApiError::Invalid(vec![("password".into(), e.to_string())]),
        other => {
            tracing::error!(error = %other, "a staff change failed");
            ApiError::Unavailable
        }
    }
}

/// The staff accounts.
#[utoipa::path(get, path = "/api/v1/staff", tag = "staff",
    responses((status = 200, body = [StaffView]), (status = 401), (status = 403)))]
pub async fn list_staff(State(state): State<AppState>, _who: Admin) -> Json<Vec<StaffView>> {
    Json(
        state
            .staff
            .accounts()
            .into_iter()
            .map(|a| StaffView {
                name: a.name.to_string(),
                role: a.role,
                created_at: a.created_at.to_rfc3339(),
            })
            .collect(),
    )
}

/// Adds a staff account.
#[utoipa::path(post, path = "/api/v1/staff", tag = "staff", request_body = NewStaff,
    responses((status = 201, body = StaffView), (status = 401), (status = 403),
              (status = 409, description = "the name is taken"), (status = 422)))]
pub async fn add_staff(
    State(state): State<AppState>,
    who: Admin,
    Json(body): Json<NewStaff>,
) -> Result<Response, ApiError> {
    let name =
        StaffName::parse(&body.name).map_err(|e| ApiError::Invalid(vec![("name".into(), e)]))?;
    let staff = state.staff.clone();
    let by = who.actor();
    let now = state.clock.now();
    let a = blocking(move || staff.add(name, body.role, &body.password, by, now))
        .await?
        .map_err(staff_error)?;
    let view = StaffView {
        name: a.name.to_string(),
        role: a.role,
        created_at: a.created_at.to_rfc3339(),
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Changes a staff account's role or password.
#[utoipa::path(patch, path = "/api/v1/staff/{name}", tag = "staff", request_body = StaffChange,
    params(("name" = String, Path, description = "the account")),
    responses((status = 200, body = StaffView), (status = 401), (status = 403), (status = 404),
              (status = 409, description = "the last admin")))]
pub async fn update_staff(
    State(state): State<AppState>,
    who: Admin,
    Path(name): Path<String>,
    Json(body): Json<StaffChange>,
) -> Result<Json<StaffView>, ApiError> {
    let name = StaffName::parse(&name).map_err(ApiError::NotFound)?;
    let staff = state.staff.clone();
    let by = who.actor();
    let now = state.clock.now();
    let a = blocking(move || staff.update(&name, body.role, body.password.as_deref(), by, now))
        .await?
        .map_err(staff_error)?;
    Ok(Json(StaffView {
        name: a.name.to_string(),
        role: a.role,
        created_at: a.created_at.to_rfc3339(),
    }))
}

/// Removes a staff account and signs it out.
#[utoipa::path(delete, path = "/api/v1/staff/{name}", tag = "staff",
    params(("name" = String, Path, description = "the account")),
    responses((status = 204), (status = 401), (status = 403), (status = 404),
              (status = 409, description = "the last admin")))]
pub async fn remove_staff(
    State(state): State<AppState>,
    who: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = StaffName::parse(&name).map_err(ApiError::NotFound)?;
    let staff = state.staff.clone();
    let by = who.actor();
    let now = state.clock.now();
    blocking(move || staff.remove(&name, by, now))
        .await?
        .map_err(staff_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_first_untrusted_address_from_the_right() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let trusted = [proxy];
        let with = |xff: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert("x-forwarded-for", xff.parse().unwrap());
            h
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // Not from the proxy: the peer, whatever the header says.
        assert_eq!(
            client_addr(ip("10.0.0.9"), &with("10.0.0.1"), &trusted),
            ip("10.0.0.9")
        );
        // From the proxy: what it appended, not what the client put before it.
        assert_eq!(
            client_addr(Some(proxy), &with("1.2.3.4, 10.0.0.1"), &trusted),
            ip("10.0.0.1")
        );
        // An entry that does not read ends the walk at the proxy.
        assert_eq!(
            client_addr(Some(proxy), &with("10.0.0.1, unknown"), &trusted),
            Some(proxy)
        );
        // The proxy reached over IPv6 as a mapped IPv4 address is still the proxy.
        assert_eq!(
            client_addr(ip("::ffff:127.0.0.1"), &with("10.0.0.2"), &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_addr(Some(proxy), &axum::http::HeaderMap::new(), &trusted),
            Some(proxy)
        );
    }
}
