//! For whoever runs the gateway: `GET /health` (no login: the broker link, the store, the feeds;
//! 200 when the doors can be served, 503 when not) and `GET /metrics` in the Prometheus text
//! format (a bearer token with the `metrics:read` scope: `kombinat token add prometheus --scope
//! metrics:read`).

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::{authorize, ApiError, AppState};
use crate::domain::Scope;

/// `/health` and `/metrics`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// Seconds without a tick after which `/health` calls the core stalled.
pub const STALLED_S: i64 = 10;

/// The gateway's health (no sign-in).
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "the doors can be served"),
              (status = 503, description = "the broker link or the store is down, or the core stalled")))]
pub async fn health(State(s): State<AppState>) -> Response {
    let link = &s.stats.link;
    let connected = link.connected.load(Relaxed);
    let subscribed = link.subscribed.load(Relaxed);
    let store = s.store.clone();
    let store_ok = tokio::task::spawn_blocking(move || store.schema_version().is_ok())
        .await
        .unwrap_or(false);
    let failing = s.stats.feeds_failing.load(Relaxed);
    // The core ticks every second; one silent for longer than STALLED_S decides no taps.
    let alive = s.stats.core_alive_at.load(Relaxed) as i64;
    let core_ok = chrono::Utc::now().timestamp() - alive <= STALLED_S;
    let ok = connected && subscribed && store_ok && core_ok;
    let free = s.stats.disk_free.load(Relaxed);
    let disk_low = free > 0 && free < crate::bus::LOW_DISK_BYTES;
    let round_trip = link.round_trip_us.load(Relaxed);
    let warnings: Vec<String> = crate::bus::round_trip_warning(round_trip)
        .into_iter()
        .collect();
    let body = serde_json::json!({
        "status": if !ok { "down" } else if failing > 0 || disk_low { "degraded" } else { "ok" },
        "core": if core_ok { "ok" } else { "stalled" },
        "disk": {"free_bytes": free, "low": disk_low},
        "broker": {
            "connected": connected,
            "subscribed": subscribed,
            "round_trip_ms": (round_trip > 0).then(|| round_trip as f64 / 1000.0),
            // The embedded broker's guard: clients refused, publishes dropped, subscriptions
            // denied (zero with an outside broker, which keeps its own).
            "refused": s.stats.guard.refused.load(Relaxed),
            "dropped": s.stats.guard.dropped.load(Relaxed),
            "denied": s.stats.guard.denied.load(Relaxed),
        },
        "warnings": warnings,
        "store": if store_ok { "ok" } else { "error" },
        "feeds_failing": failing,
        "devices": {
            "registered": s.stats.devices.load(Relaxed),
            "online": s.stats.devices_online.load(Relaxed),
        },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics (a token with `metrics:read`).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", description = "the metrics"),
              (status = 401), (status = 403)),
    security(("token" = [])))]
pub async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&s.store, &headers, Scope::MetricsRead).await?;
    let text = render(&s.stats);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn one(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The metrics in the Prometheus text exposition format.
pub fn render(st: &crate::bus::Stats) -> String {
    let mut o = String::new();
    family(
        &mut o,
        "kombinat_decisions_total",
        "counter",
        "Access decisions made, by reason code.",
    );
    if let Ok(m) = st.by_reason.lock() {
        for (reason, n) in m.iter() {
            let _ = writeln!(o, "kombinat_decisions_total{{reason=\"{reason}\"}} {n}");
        }
    }
    let (buckets, count, sum) = st.decision_latency.read();
    family(
        &mut o,
        "kombinat_decision_latency_seconds",
        "histogram",
        "From a tap reaching the gateway to its answer handed to the broker (the audit log written in between).",
    );
    for (bound, n) in buckets {
        let _ = writeln!(
            o,
            "kombinat_decision_latency_seconds_bucket{{le=\"{bound}\"}} {n}"
        );
    }
    let _ = writeln!(
        o,
        "kombinat_decision_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(o, "kombinat_decision_latency_seconds_sum {sum}");
    let _ = writeln!(o, "kombinat_decision_latency_seconds_count {count}");
    family(
        &mut o,
        "kombinat_broker_guard_total",
        "counter",
        "What the embedded broker's guard refused: connections without a valid account, publishes to a topic the account may not write or past its retained budget, subscriptions it may not read.",
    );
    for (what, n) in [
        ("refused", &st.guard.refused),
        ("dropped", &st.guard.dropped),
        ("denied", &st.guard.denied),
    ] {
        let _ = writeln!(
            o,
            "kombinat_broker_guard_total{{what=\"{what}\"}} {}",
            n.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    one(
        &mut o,
        "kombinat_readings_total",
        "counter",
        "Sensor readings taken (native and from bound devices).",
        st.readings.load(Relaxed),
    );
    family(
        &mut o,
        "kombinat_malformed_messages_total",
        "counter",
        "Messages refused, by reason.",
    );
    if let Ok(m) = st.malformed.lock() {
        for (reason, n) in m.iter() {
            let _ = writeln!(
                o,
                "kombinat_malformed_messages_total{{reason=\"{reason}\"}} {n}"
            );
        }
    }
    one(
        &mut o,
        "kombinat_devices",
        "gauge",
        "Devices registered.",
        st.devices.load(Relaxed),
    );
    one(
        &mut o,
        "kombinat_devices_online",
        "gauge",
        "Devices registered and online.",
        st.devices_online.load(Relaxed),
    );
    let link = &st.link;
    one(
        &mut o,
        "kombinat_core_queue_depth",
        "gauge",
        "Messages from the broker waiting for the core.",
        link.queued.load(Relaxed) as u64,
    );
    one(
        &mut o,
        "kombinat_messages_shed_total",
        "counter",
        "Readings shed while the core was behind.",
        link.shed.load(Relaxed),
    );
    one(
        &mut o,
        "kombinat_messages_dropped_total",
        "counter",
        "Messages not taken because the core's queue was full.",
        link.dropped.load(Relaxed),
    );
    one(
        &mut o,
        "kombinat_messages_oversized_total",
        "counter",
        "Messages of the gateway's own not sent: over the broker link's packet limit.",
        st.oversized.load(Relaxed),
    );
    one(
        &mut o,
        "kombinat_broker_connected",
        "gauge",
        "1 while the link to the broker is up.",
        u64::from(link.connected.load(Relaxed)),
    );
    one(
        &mut o,
        "kombinat_broker_connects_total",
        "counter",
        "Connections made to the broker.",
        link.connects.load(Relaxed),
    );
    one(
        &mut o,
        "kombinat_store_bytes",
        "gauge",
        "The store's size on disk.",
        st.store_bytes.load(Relaxed),
    );
    one(
        &mut o,
        "kombinat_no_shows_total",
        "counter",
        "Bookings judged no-shows.",
        st.no_shows.load(Relaxed),
    );
    one(
        &mut o,
        "kombinat_alarms_raised_total",
        "counter",
        "Door and device alarms raised.",
        st.alarms_raised.load(Relaxed),
    );
    one(
        &mut o,
        "kombinat_offline_decisions_ingested_total",
        "counter",
        "Decisions door nodes took alone, stored from their offline logs.",
        st.offline_ingested.load(Relaxed),
    );
    one(
        &mut o,
        "kombinat_feeds_failing",
        "gauge",
        "Calendar feeds failing now.",
        st.feeds_failing.load(Relaxed),
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_text_format_has_every_family_and_a_cumulative_histogram() {
        let st = crate::bus::Stats::default();
        st.by_reason
            .lock()
            .unwrap()
            .extend([("allow.staff", 3), ("deny.no_right", 1)]);
        st.decision_latency.observe(Duration::from_micros(300));
        st.decision_latency.observe(Duration::from_millis(3));
        st.decision_latency.observe(Duration::from_secs(2));
        let t = render(&st);
        assert!(t.contains("kombinat_decisions_total{reason=\"allow.staff\"} 3\n"));
        assert!(t.contains("kombinat_decision_latency_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(t.contains("kombinat_decision_latency_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(t.contains("kombinat_decision_latency_seconds_bucket{le=\"1\"} 2\n"));
        assert!(t.contains("kombinat_decision_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(t.contains("kombinat_decision_latency_seconds_count 3\n"));
        // Every sample line belongs to a family declared before it.
        let mut declared = std::collections::HashSet::new();
        for line in t.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let base = name
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count");
                assert!(declared.contains(name) || declared.contains(base), "{line}");
            }
        }
    }
}
