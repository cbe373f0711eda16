//! The webhook: events for the booking system (no-shows, …) sent from the durable outbox in
//! the store, in order, until the receiver confirms each.
//!
//! Each event is POSTed as its JSON body with `X-Kombinat-Event` (its kind),
//! `X-Kombinat-Event-Id` (its outbox id: the receiver drops a second delivery of an id it has
//! taken), `X-Kombinat-Timestamp` (Unix seconds) and `X-Kombinat-Signature: sha256=<hex>`, the
//! HMAC-SHA256 under the shared secret of `<timestamp>.<body>` (the receiver checks it and that
//! the timestamp is recent, so a captured request cannot be replayed later). A 2xx answer
//! removes the event from the outbox (durably); anything else, or no answer, leaves it there
//! and the sender waits, doubling the wait up to a limit, and tries the same event again. So
//! nothing is lost when the booking system or the network is down, and nothing is reordered.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};

use crate::store::{OutboxEvent, Store};

/// Where and how to send.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The receiver, `http://` or `https://`.
    pub url: String,
    /// The shared secret the signature is made with.
    pub secret: String,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"…")
            .finish()
    }
}

/// How long to wait after a failure: `first`, doubling up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first wait.
    pub first: Duration,
    /// The longest.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

/// What the sender did.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events the receiver confirmed.
    pub delivered: AtomicU64,
    /// Attempts that failed (refused, unreachable, not 2xx).
    pub failed: AtomicU64,
}

/// The signature of `body` sent at `timestamp`: hex HMAC-SHA256 of `<timestamp>.<body>`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn send(agent: &ureq::Agent, cfg: &WebhookConfig, e: &OutboxEvent) -> Result<(), String> {
    let ts = chrono::Utc::now().timestamp();
    let signature = sign(&cfg.secret, ts, e.body.as_bytes());
    let r = agent
        .post(&cfg.url)
        .header("Content-Type", "application/json")
        .header("X-Kombinat-Event", &e.kind)
        .header("X-Kombinat-Event-Id", e.id.to_string())
        .header("X-Kombinat-Timestamp", ts.to_string())
        .header("X-Kombinat-Signature", format!("sha256={signature}"))
        .send(e.body.as_bytes());
    match r {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("answered {}", resp.status())),
        Err(err) => Err(err.to_string()),
    }
}

/// Sends the outbox until `stop` is set. Runs on its own thread (it blocks on the network).
pub fn run(
    store: Arc<dyn Store>,
    cfg: WebhookConfig,
    backoff: Backoff,
    stop: Arc<AtomicBool>,
    stats: Arc<WebhookStats>,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        // A 4xx/5xx is an answer to read, not an error to unwind.
        .http_status_as_error(false)
        // A redirect could turn the POST into a GET that answers 2xx: not a delivery.
        .max_redirects(0)
        .build()
        .into();
    let mut wait = backoff.first;
    let nap = |d: Duration| {
        // Sleeps in short steps so a stop is seen at once.
        let step = Duration::from_millis(20);
        let mut left = d;
        while !left.is_zero() && !stop.load(Ordering::Relaxed) {
            let s = left.min(step);
            std::thread::sleep(s);
            left -= s;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let batch = match store.outbox(20) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                nap(wait);
                continue;
            }
        };
        if batch.is_empty() {
            nap(Duration::from_millis(500));
            continue;
        }
        for e in batch {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match send(&agent, &cfg, &e) {
                Ok(()) => {
                    wait = backoff.first;
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    if let Err(err) = store.remove_outbox(e.id).and_then(|()| store.flush()) {
                        // It will be sent again (the receiver drops the repeated id); wait, and
                        // start again from it so nothing after it goes first.
                        tracing::error!(error = %err, id = e.id, "cannot remove a delivered event");
                        nap(wait);
                        wait = (wait * 2).min(backoff.max);
                        break;
                    }
                }
                Err(why) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(id = e.id, kind = %e.kind, %why, wait_ms = wait.as_millis() as u64, "webhook not taken; trying again");
                    nap(wait);
                    wait = (wait * 2).min(backoff.max);
                    // The same event again, first: order is kept.
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Worked out independently: HMAC-SHA256("secret", "1700000000.{}").
        let s = sign("secret", 1_700_000_000, b"{}");
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(b"secret").unwrap();
        m.update(b"1700000000.{}");
        let hex: String = m
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(s, hex);
        assert_ne!(
            sign("secret", 1_700_000_001, b"{}"),
            s,
            "the time is signed"
        );
        assert_ne!(sign("other", 1_700_000_000, b"{}"), s);
    }
}
