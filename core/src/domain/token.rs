//! API tokens: how a booking system signs in to the REST API. A token is named after the
//! booking source it writes as; only its SHA-256 is stored, and it carries scopes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::SourceId;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Scope {
    /// Upsert and cancel bookings of its own source.
    #[serde(rename = "bookings:write")]
    #[cfg_attr(feature = "clap", value(name = "bookings:write"))]
    BookingsWrite,
    /// List bookings.
    #[serde(rename = "bookings:read")]
    #[cfg_attr(feature = "clap", value(name = "bookings:read"))]
    BookingsRead,
    /// Read the Prometheus metrics (`GET /metrics`).
    #[serde(rename = "metrics:read")]
    #[cfg_attr(feature = "clap", value(name = "metrics:read"))]
    MetricsRead,
}

/// A stored token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Its name: the booking source it writes as.
    pub name: SourceId,
    /// SHA-256 of the token, hex.
    pub sha256: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// SHA-256 of a token, hex.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
