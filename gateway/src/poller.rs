//! The feed poller: reads each room's calendar feed on its interval, an `http(s)://` address
//! with a conditional GET (ETag, Last-Modified) or a file when it has changed, and hands what
//! it read to the core, which expands, reconciles and writes it ([`crate::feed`]). A feed that
//! cannot be read is reported to the core too, which keeps the last good state and raises the
//! feed alarm. Runs on its own thread: the network may block.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::domain::{Feed, FeedFrom};
use crate::ics::MAX_FEED_BYTES;

#[derive(Default)]
struct State {
    etag: Option<String>,
    last_modified: Option<String>,
    file: Option<(SystemTime, u64)>,
}

/// Reads a feed: `Ok(Some(text))` when it changed, `Ok(None)` when not.
fn fetch(agent: &ureq::Agent, feed: &Feed, st: &mut State) -> Result<Option<String>, String> {
    match &feed.from {
        FeedFrom::Path(path) => {
            let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let stamp = (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            );
            if st.file == Some(stamp) {
                return Ok(None);
            }
            if meta.len() > MAX_FEED_BYTES as u64 {
                return Err(format!(
                    "{}: {} bytes, over the limit",
                    path.display(),
                    meta.len()
                ));
            }
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            st.file = Some(stamp);
            Ok(Some(text))
        }
        FeedFrom::Url(url) => {
            let mut req = agent.get(url);
            if let Some(e) = &st.etag {
                req = req.header("If-None-Match", e);
            }
            if let Some(m) = &st.last_modified {
                req = req.header("If-Modified-Since", m);
            }
            let mut resp = req.call().map_err(|e| e.to_string())?;
            let status = resp.status();
            if status.as_u16() == 304 {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(format!("answered {status}"));
            }
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let (etag, modified) = (header("etag"), header("last-modified"));
            let text = resp
                .body_mut()
                .with_config()
                .limit(MAX_FEED_BYTES as u64)
                .read_to_string()
                .map_err(|e| e.to_string())?;
            st.etag = etag;
            st.last_modified = modified;
            Ok(Some(text))
        }
    }
}

/// Polls `feeds` until `stop` is set, sending what it reads to the core.
/// What a feed read came to, for the core: the calendar expanded over its window (on this
/// thread, never the one that decides taps), `None` when it did not change, or why not.
pub type FeedRead = Result<Option<FeedExpanded>, String>;

/// A calendar expanded over the window the core reconciles.
#[derive(Debug, Clone)]
pub struct FeedExpanded {
    /// The occurrences and problems.
    pub expanded: crate::ics::Expanded,
    /// The window: from.
    pub from: chrono::DateTime<chrono::Utc>,
    /// The window: until.
    pub until: chrono::DateTime<chrono::Utc>,
}

/// How long a calendar may take to expand. A hostile or broken rule (a SECONDLY rule looking
/// for 30 February) can take minutes; such a calendar is refused as failing, and the feed is
/// not read again until that expansion has finished in the background.
pub const EXPAND_BUDGET: Duration = Duration::from_secs(10);

/// Expands `text` over the feed window around `now` within [`EXPAND_BUDGET`]; `busy` is set
/// while an expansion runs (it cannot be stopped, only left to finish).
fn expand_within(
    text: String,
    tz: chrono_tz::Tz,
    now: chrono::DateTime<chrono::Utc>,
    busy: &Arc<AtomicBool>,
    budget: Duration,
) -> FeedRead {
    let (from, until) = (
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(60),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    busy.store(true, Ordering::Relaxed);
    let flag = busy.clone();
    let spawned = std::thread::Builder::new()
        .name("feed-expand".into())
        .spawn(move || {
            let r = crate::ics::expand(&text, tz, from, until, 5000);
            flag.store(false, Ordering::Relaxed);
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        busy.store(false, Ordering::Relaxed);
        return Err(format!("cannot expand it: {e}"));
    }
    match rx.recv_timeout(budget) {
        Ok(Ok(expanded)) => Ok(Some(FeedExpanded {
            expanded,
            from,
            until,
        })),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the calendar takes longer than {} s to expand (a rule that finds no dates?): refused, the last good state kept",
            budget.as_secs_f64()
        )),
    }
}

/// Reads the feeds until `stop`, each on its interval, and hands what came of each read to
/// `deliver` (the feed's index and the read), which says `false` once nobody takes them.
pub fn run(
    feeds: Vec<Feed>,
    tz: chrono_tz::Tz,
    clock: crate::clock::Clock,
    mut deliver: impl FnMut(usize, FeedRead) -> bool,
    stop: Arc<AtomicBool>,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut states: Vec<State> = feeds.iter().map(|_| State::default()).collect();
    let busy: Vec<Arc<AtomicBool>> = feeds.iter().map(|_| Arc::default()).collect();
    let mut due: Vec<Instant> = feeds.iter().map(|_| Instant::now()).collect();
    while !stop.load(Ordering::Relaxed) {
        for (i, feed) in feeds.iter().enumerate() {
            if Instant::now() < due[i] || stop.load(Ordering::Relaxed) {
                continue;
            }
            due[i] = Instant::now() + Duration::from_secs(u64::from(feed.interval_s));
            if busy[i].load(Ordering::Relaxed) {
                // The last expansion over its budget still runs: not another beside it.
                continue;
            }
            let fetched = fetch(&agent, feed, &mut states[i]).and_then(|text| match text {
                None => Ok(None),
                Some(text) => expand_within(text, tz, clock.now(), &busy[i], EXPAND_BUDGET),
            });
            if fetched.is_err() {
                // Read in full again next time: the last good state is the core's.
                states[i] = State::default();
            }
            if !deliver(i, fetched) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calendar_that_expands_too_long_is_refused_in_its_time_and_the_feed_waits_for_it() {
        // Rules that never find a date make the expansion search; many of them take long.
        let mut text = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\n");
        for i in 0..400 {
            text.push_str(&format!(
                "BEGIN:VEVENT\r\nUID:x{i}\r\nDTSTART:20260101T000000Z\r\nDTEND:20260101T000001Z\r\nRRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30\r\nEND:VEVENT\r\n"
            ));
        }
        text.push_str("END:VCALENDAR\r\n");
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        // No budget at all: the answer cannot wait for the expansion, on any machine.
        let busy = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let why =
            expand_within(text, chrono_tz::Europe::Kyiv, now, &busy, Duration::ZERO).unwrap_err();
        assert!(why.contains("takes longer than"), "{why}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "answered in its time"
        );
        assert!(
            busy.load(Ordering::Relaxed),
            "still expanding in the background"
        );
        // A small calendar expands well within the budget.
        let ok = expand_within(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20261127T100000Z\r\nDTEND:20261127T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n".into(),
            chrono_tz::Europe::Kyiv,
            now,
            &Arc::new(AtomicBool::new(false)),
            EXPAND_BUDGET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.expanded.occurrences.len(), 1);
    }
}
