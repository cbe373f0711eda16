//! esp-rfid (ESP8266 door reader, `dev` branch): its events in, its user-list commands out.
//!
//! The reader decides on its own from a user list in its flash; the gateway logs what it
//! reports (`type: access`), follows its door (`INFO` / `Door Open`), and keeps the list right
//! with `adduser` (one validity window per card) and `deletuid`. Every command carries the
//! device's own IP in `doorip`, or the device drops it without a word. Quirks handled: `isKnown`
//! is a string, `access` and `doorName` become arrays with several relays, `uptime` and `time`
//! may be strings.

use serde_json::{json, Value};

use super::{boolean, get_ci, object, Event};
use crate::domain::{Binding, CardId};
use crate::wire::desk::{Publish, Rejected};

/// The device's words for an open door.
const GRANTED: [&str; 2] = ["always", "admin"];

/// `<T>/avty`: `online` or `offline`.
pub fn parse_availability(payload: &[u8]) -> Result<bool, Rejected> {
    super::availability_word(payload)
}

/// One message on `<T>/send`.
pub fn parse_event(b: &Binding, payload: &[u8]) -> Result<Vec<Event>, Rejected> {
    let m = object(payload)?;
    let kind = get_ci(&m, "type")
        .and_then(Value::as_str)
        .ok_or_else(|| Rejected::Json("an esp-rfid event needs a type".into()))?;
    match kind.to_ascii_lowercase().as_str() {
        "access" => {
            let uid = get_ci(&m, "uid")
                .and_then(Value::as_str)
                .ok_or_else(|| Rejected::Json("an access event needs a uid".into()))?;
            let card =
                CardId::parse(uid).map_err(|e| Rejected::Json(format!("uid {uid:?}: {e}")))?;
            let known = get_ci(&m, "isKnown").and_then(boolean).unwrap_or(false);
            // One word per relay; a single relay sends a string.
            let words: Vec<String> = match get_ci(&m, "access") {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_string).unwrap_or_default())
                    .collect(),
                _ => return Err(Rejected::Json("an access event needs access".into())),
            };
            if words.is_empty() {
                return Err(Rejected::Json("access is an empty list".into()));
            }
            Ok(words
                .into_iter()
                .zip(b.doors.iter())
                .map(|(word, door)| Event::Decided {
                    door: *door,
                    card,
                    allowed: known && GRANTED.contains(&word.to_ascii_lowercase().as_str()),
                    word,
                })
                .collect())
        }
        "info" | "warn" | "error" => {
            // Door events: `src: door`, `desc: Door Open` / `Door Closed`.
            let src = get_ci(&m, "src").and_then(Value::as_str).unwrap_or("");
            let desc = get_ci(&m, "desc").and_then(Value::as_str).unwrap_or("");
            let Some(door) = b.door() else {
                return Ok(Vec::new());
            };
            if !src.eq_ignore_ascii_case("door") {
                return Ok(Vec::new());
            }
            let d = desc.to_ascii_lowercase();
            let open = if d.contains("open") {
                true
            } else if d.contains("close") {
                false
            } else {
                return Ok(Vec::new());
            };
            Ok(vec![Event::Contact { door, open }])
        }
        // Heartbeats, boot messages and answers to commands: signs of life only.
        _ => Ok(Vec::new()),
    }
}

fn command(b: &Binding, body: Value) -> Publish {
    Publish {
        topic: format!("{}/cmd", b.topic),
        payload: serde_json::to_vec(&body).unwrap_or_default(),
        retain: false,
    }
}

/// `adduser`: the card with its validity window (Unix seconds), access type 1 ("always" within
/// the window).
pub fn add_user(b: &Binding, card: CardId, user: &str, (from, until): (u64, u64)) -> Publish {
    command(
        b,
        json!({
            "cmd": "adduser",
            "doorip": b.ip.as_deref().unwrap_or_default(),
            "uid": card.to_string(),
            "user": user,
            "acctype": "1",
            "validsince": from.to_string(),
            "validuntil": until.to_string(),
        }),
    )
}

/// `deletuid`: the card off the list.
pub fn delete_user(b: &Binding, card: CardId) -> Publish {
    command(
        b,
        json!({
            "cmd": "deletuid",
            "doorip": b.ip.as_deref().unwrap_or_default(),
            "uid": card.to_string(),
        }),
    )
}

/// `opendoor`: remote unlock (the device's own unlock time).
pub fn open_door(b: &Binding) -> Publish {
    command(
        b,
        json!({"cmd": "opendoor", "doorip": b.ip.as_deref().unwrap_or_default()}),
    )
}
