//! The alert feeds' poller: reads each air-raid alert feed on its interval (with
//! If-Modified-Since where the source answers 304) and hands what it read to the core, which
//! switches the site's shelter mode ([`kombinat_core::alerts::AlertFeeds`]). A feed that cannot
//! be read is reported as such: the core keeps the state it last read and raises the feed's
//! alarm. Runs on its own thread: the network may block, the doors may not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kombinat_core::alerts::{alert_in, AlertRead, AlertSource};

use crate::config::AlertFeedConfig;

/// The largest answer read (the whole country's active alerts is a few tens of KB).
const MAX_ANSWER_BYTES: u64 = 4 * 1024 * 1024;

/// Reads a feed once: whether an alert is on, `None` when unchanged since `last_modified`.
pub fn read(
    agent: &ureq::Agent,
    feed: &AlertFeedConfig,
    last_modified: &mut Option<String>,
) -> AlertRead {
    let mut req = agent.get(&feed.url).header("Accept", "application/json");
    if let Some(key) = &feed.key {
        req = match feed.source {
            // The raw key (api.ukrainealarm.com's scheme); the keyless mirror ignores it.
            AlertSource::UkraineAlarm => req.header("Authorization", key),
            AlertSource::AlertsInUa => req.header("Authorization", &format!("Bearer {key}")),
        };
    }
    if let Some(m) = last_modified.as_deref() {
        req = req.header("If-Modified-Since", m);
    }
    let mut resp = req
        .call()
        .map_err(|e| format!("cannot reach {}: {e}", feed.url))?;
    let status = resp.status().as_u16();
    if status == 304 {
        return Ok(None);
    }
    if !(200..300).contains(&status) {
        let why = match status {
            401 | 403 => "the key or token is refused (or the rate limit is exceeded)",
            429 => "too many requests: read it less often (every_s)",
            _ => "an error",
        };
        return Err(format!("{} answered {status}: {why}", feed.url));
    }
    let modified = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .map_err(|e| format!("{}: {e}", feed.url))?;
    let on = alert_in(feed.source, &body, &feed.area, &feed.types)?;
    *last_modified = modified;
    Ok(Some(on))
}

/// Reads the feeds until `stop`, each on its interval, and hands each read to `deliver` (the
/// feed's index and the read), which says `false` once nobody takes them.
pub fn run(
    feeds: Vec<AlertFeedConfig>,
    mut deliver: impl FnMut(usize, AlertRead) -> bool,
    stop: Arc<AtomicBool>,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut modified: Vec<Option<String>> = vec![None; feeds.len()];
    let mut due: Vec<Instant> = vec![Instant::now(); feeds.len()];
    while !stop.load(Ordering::Relaxed) {
        for (i, feed) in feeds.iter().enumerate() {
            if Instant::now() < due[i] || stop.load(Ordering::Relaxed) {
                continue;
            }
            due[i] = Instant::now() + Duration::from_secs(u64::from(feed.every_s));
            let r = read(&agent, feed, &mut modified[i]);
            if r.is_err() {
                // Read in full next time.
                modified[i] = None;
            }
            if !deliver(i, r) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
