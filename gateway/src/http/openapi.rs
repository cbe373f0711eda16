//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]`
//! annotations and the answer types' `ToSchema` derivations, served at
//! `GET /api/v1/openapi.json` (no sign-in: it describes, it holds no data).

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{audit, auth, bookings, building, inside, members, observe, schedule, usage, AppState};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(document))
}

struct Schemes;

impl Modify for Schemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::COOKIE,
                "A staff session from POST /api/v1/session; changes also need the X-CSRF-Token header.",
            ))),
        );
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from `kombinat token add`, with scopes."))
                    .build(),
            ),
        );
    }
}

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Kombinat gateway API", description = "Access decisions, occupancy and the staff dashboard of one building."),
    modifiers(&Schemes),
    security(("session" = [])),
    paths(
        auth::login, auth::whoami, auth::logout,
        auth::list_staff, auth::add_staff, auth::update_staff, auth::remove_staff,
        building::site, building::live, building::events, building::rooms, building::room,
        building::doors, building::unlock, building::alarms, building::devices,
        building::mode, building::set_mode, building::ack_alarm, building::lockdown,
        inside::inside,
        members::list, members::one, members::create, members::update,
        members::add_card, members::revoke_card, members::issue_pin, members::revoke_pins, members::erase,
        audit::page, audit::csv_export,
        usage::utilisation, usage::trend,
        bookings::upsert, bookings::batch, bookings::cancel, bookings::list,
        schedule::day, schedule::add, schedule::cancel,
        observe::health, observe::metrics,
    ),
    tags(
        (name = "session", description = "Staff sign-in"),
        (name = "staff", description = "Staff accounts (admins)"),
        (name = "building", description = "The site, live occupancy, doors, alarms, devices, the mode"),
        (name = "members", description = "Members and cards"),
        (name = "audit", description = "The access log"),
        (name = "utilisation", description = "Rooms' use over time"),
        (name = "bookings", description = "The booking system's area (tokens)"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// The document.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
