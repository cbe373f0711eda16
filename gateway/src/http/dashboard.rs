//! The staff dashboard's files, compiled into the binary from `dashboard/` (plain HTML, CSS and
//! JavaScript modules; no build step, nothing from elsewhere). `GET /` is the page; every
//! other file is under `/dashboard/`. The page itself holds no data: it signs in and reads
//! the API.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

/// The files: (name, content type, content).
pub const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../../dashboard/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../../dashboard/style.css"),
    ),
    (
        "js/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/js/app.js"),
    ),
    (
        "js/api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/js/api.js"),
    ),
    (
        "js/i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/js/i18n.js"),
    ),
    (
        "js/dom.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/js/dom.js"),
    ),
    (
        "js/plan.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/js/plan.js"),
    ),
    (
        "js/views.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/js/views.js"),
    ),
    (
        "js/people.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/js/people.js"),
    ),
    (
        "js/staff.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/js/staff.js"),
    ),
    (
        "js/bookings.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/js/bookings.js"),
    ),
    (
        "js/inside.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/js/inside.js"),
    ),
    (
        "js/clock.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/js/clock.js"),
    ),
    (
        "js/alarms.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/js/alarms.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../../dashboard/favicon.svg"),
    ),
];

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/dashboard/{*path}", get(file))
}

fn serve(name: &str) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ty, body)) => (
            [
                (header::CONTENT_TYPE, *ty),
                // The files change only with the binary: revalidate on each load.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

async fn index() -> Response {
    serve("index.html")
}

async fn file(Path(path): Path<String>) -> Response {
    serve(&path)
}
