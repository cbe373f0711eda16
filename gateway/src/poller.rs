//! The feed poller: reads each room's calendar feed on its interval, an `http(s)://` address
//! with a conditional GET (ETag, Last-Modified) or a file when it has changed, and hands what
//! it read to the core, which expands, reconciles and writes it ([`crate::feed`]). A feed that
//! cannot be read is reported to the core too, which keeps the last good state and raises the
//! feed alarm. Runs on its own thread: the network may block.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::domain::{Feed, FeedFrom};
use crate::ics::MAX_FEED_BYTES;
use crate::service::{Control, Msg};

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
pub fn run(feeds: Vec<Feed>, to_core: SyncSender<Msg>, stop: Arc<AtomicBool>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut states: Vec<State> = feeds.iter().map(|_| State::default()).collect();
    let mut due: Vec<Instant> = feeds.iter().map(|_| Instant::now()).collect();
    while !stop.load(Ordering::Relaxed) {
        for (i, feed) in feeds.iter().enumerate() {
            if Instant::now() < due[i] || stop.load(Ordering::Relaxed) {
                continue;
            }
            due[i] = Instant::now() + Duration::from_secs(u64::from(feed.interval_s));
            let fetched = fetch(&agent, feed, &mut states[i]);
            if fetched.is_err() {
                // Read in full again next time: the last good state is the core's.
                states[i] = State::default();
            }
            if to_core
                .send(Msg::Control(Control::Feed { feed: i, fetched }))
                .is_err()
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
