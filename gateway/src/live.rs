//! What the dashboard shows live: the core writes it, the HTTP side reads it and streams it.
//!
//! [`Live`] keeps one [`LiveView`] (the site mode, every room's count, every door's state, the
//! alarms standing, the devices' health) behind a mutex, and a broadcast channel of
//! [`LiveEvent`]s. The core calls the `set_*` methods with what it now knows; each compares
//! with what the view holds and sends an event only for what changed, so a quiet building
//! sends nothing. Decisions are sent as they are made. A subscriber takes the view and its
//! receiver under the same lock, so no event falls between the two.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;
use utoipa::ToSchema;

/// How many events a slow subscriber may fall behind before it is told to resync.
pub const BACKLOG: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RoomNow {
    /// The room's id.
    pub room: String,
    /// Head count.
    pub count: u32,
    /// Anyone there.
    pub occupied: bool,
    /// How sure the estimate is, 0 to 1.
    pub confidence: f32,
    /// What it rests on (`counter`, `entries`, `motion`, `co2`, `none`, …).
    pub basis: String,
    /// CO2, ppm, when a sensor reported it lately.
    pub co2_ppm: Option<u32>,
    /// Fire-safety capacity, if set.
    pub capacity: Option<u32>,
    /// Without power now by the outage schedule (its supply does not cover the outage).
    pub dark: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DoorNow {
    /// The door's id.
    pub door: String,
    /// The room it leads into.
    pub room: String,
    /// The device at it, if any.
    pub device: Option<String>,
    /// Whether a device at it is heard from.
    pub online: bool,
    /// `open`, `closed` or `unknown`.
    pub contact: String,
    /// Whether the strike is locked, as last reported.
    pub locked: Option<bool>,
    /// Held open, forced or tampered with now.
    pub alarm: bool,
    /// Kept released by the gateway (site mode, public hours).
    pub released: bool,
    /// Locked down on its own: staff and security only.
    pub locked_down: bool,
}

/// An alarm standing now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlarmNow {
    /// `held_open`, `forced`, `tamper`, `lock_differs`, `device_offline`,
    /// `feed_failing`, `disk_low`.
    pub alarm: String,
    /// The door, for door alarms.
    pub door: Option<String>,
    /// The device, for device alarms.
    pub device: Option<String>,
    /// The calendar feed, for feed alarms.
    pub feed: Option<String>,
    /// Since when (Unix seconds; when the gateway first saw it).
    pub since: i64,
    /// Taken in hand by staff; an alarm that clears and is raised again is new work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<AlarmAck>,
}

/// Who acknowledged an alarm, when, and what they said (who goes, what was found).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlarmAck {
    /// The staff account.
    pub by: String,
    /// When (Unix seconds).
    pub at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl AlarmNow {
    /// What tells one alarm from another: its kind and where.
    pub fn key(&self) -> (&str, Option<&str>, Option<&str>, Option<&str>) {
        (
            &self.alarm,
            self.door.as_deref(),
            self.device.as_deref(),
            self.feed.as_deref(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeviceNow {
    /// The device's id (a registered node) or binding id (an off-the-shelf device).
    pub device: String,
    /// `door_node`, `sensor_node`, `esp_rfid`, `tasmota`, `zigbee2mqtt`.
    pub kind: String,
    /// The doors it serves.
    pub doors: Vec<String>,
    /// The rooms it reports on.
    pub rooms: Vec<String>,
    /// Heard from lately.
    pub online: bool,
    /// Last message, Unix seconds.
    pub last_seen: Option<i64>,
    /// Firmware it reported.
    pub firmware: Option<String>,
    /// Battery, percent, where known.
    pub battery: Option<u8>,
    /// Mains and backup battery, for a node that reports them.
    pub power: Option<PowerNow>,
}

/// A node's power supply as it last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PowerNow {
    /// Mains present.
    pub mains: bool,
    /// Since when mains has been as it is, Unix seconds.
    pub since: i64,
    /// The battery's voltage, millivolts, if the node measures it.
    pub battery_mv: Option<u32>,
    /// Seconds left on battery at the rate its voltage falls (once five minutes of readings
    /// show a fall).
    pub left_s: Option<i64>,
    /// Below the site's low-battery line.
    pub low: bool,
    /// Its load is shed (its door in its mechanical state).
    pub shed: bool,
}

/// The site's power as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct SitePowerNow {
    /// Nodes that report their power.
    pub nodes: usize,
    /// Nodes on battery now.
    pub on_battery: Vec<String>,
    /// When the first of them lost mains, Unix seconds.
    pub mains_lost_since: Option<i64>,
    /// The node with the least time left, and its seconds, where known.
    pub least_left: Option<(String, i64)>,
    /// Doors standing unlocked because their node's load is shed.
    pub shed_doors: Vec<String>,
}

/// A decision as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DecisionNow {
    /// When, RFC 3339.
    pub at: String,
    pub door: String,
    /// The room behind it.
    pub room: String,
    /// Whether the door opened.
    pub allowed: bool,
    /// The reason code.
    pub reason: String,
    /// The member, when the credential is known.
    pub member: Option<String>,
    /// The member's name.
    pub member_name: Option<String>,
    /// The card, when a card was presented.
    pub card: Option<String>,
}

/// Everything live, as one document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct LiveView {
    /// Changes since start; each event carries the number it brought the view to.
    pub seq: u64,
    /// The site mode.
    pub mode: String,
    /// Since when, Unix seconds.
    pub mode_since: i64,
    /// The shelter room's head count, when the site has a shelter.
    pub shelter: Option<String>,
    /// Every room, in site-file order.
    pub rooms: Vec<RoomNow>,
    /// Every door, in site-file order.
    pub doors: Vec<DoorNow>,
    /// Alarms standing.
    pub alarms: Vec<AlarmNow>,
    pub devices: Vec<DeviceNow>,
    /// Mains and batteries.
    pub power: SitePowerNow,
}

/// One change, as sent on the stream: its SSE event name and its JSON.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    /// `room`, `door`, `alarm`, `alarm_cleared`, `device`, `decision`, `mode`.
    pub kind: &'static str,
    /// The JSON body: `{"seq": …, …}`.
    pub data: Arc<str>,
}

/// The live view and its stream.
pub struct Live {
    view: Mutex<LiveView>,
    tx: broadcast::Sender<LiveEvent>,
}

impl Live {
    /// A view of the site's rooms and doors, nothing known yet.
    pub fn new(site: &crate::domain::Site) -> Self {
        let view = LiveView {
            mode: "normal".into(),
            shelter: site.shelter.map(|r| r.to_string()),
            rooms: site
                .rooms
                .iter()
                .map(|r| RoomNow {
                    room: r.id.to_string(),
                    count: 0,
                    occupied: false,
                    confidence: 0.0,
                    basis: "none".into(),
                    co2_ppm: None,
                    capacity: r.capacity,
                    dark: false,
                })
                .collect(),
            doors: site
                .doors
                .iter()
                .map(|d| DoorNow {
                    door: d.id.to_string(),
                    room: d.into.to_string(),
                    device: None,
                    online: false,
                    contact: "unknown".into(),
                    locked: None,
                    alarm: false,
                    released: false,
                    locked_down: false,
                })
                .collect(),
            ..LiveView::default()
        };
        let (tx, _) = broadcast::channel(BACKLOG);
        Live {
            view: Mutex::new(view),
            tx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LiveView> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The view now.
    pub fn view(&self) -> LiveView {
        self.lock().clone()
    }

    /// The view now and a receiver of every change after it.
    pub fn subscribe(&self) -> (LiveView, broadcast::Receiver<LiveEvent>) {
        let v = self.lock();
        (v.clone(), self.tx.subscribe())
    }

    /// After a receiver fell behind: the view now and a new receiver of every change after
    /// it, taken together like [`Live::subscribe`].
    pub fn resubscribe(&self) -> (LiveView, broadcast::Receiver<LiveEvent>) {
        self.subscribe()
    }

    fn send(&self, v: &mut LiveView, kind: &'static str, body: serde_json::Value) {
        v.seq += 1;
        let mut body = body;
        if let serde_json::Value::Object(m) = &mut body {
            m.insert("seq".into(), v.seq.into());
        }
        // Nobody listening is not an error.
        let _ = self.tx.send(LiveEvent {
            kind,
            data: body.to_string().into(),
        });
    }

    /// A room's estimate (by index in the site file).
    pub fn set_room(&self, i: usize, now: RoomNow) {
        let mut v = self.lock();
        if v.rooms.get(i).is_none_or(|r| *r == now) {
            return;
        }
        v.rooms[i] = now.clone();
        self.send(&mut v, "room", serde_json::json!({ "room": now }));
    }

    /// Every door's state (in site-file order).
    pub fn set_doors(&self, doors: Vec<DoorNow>) {
        let mut v = self.lock();
        for (i, d) in doors.into_iter().enumerate() {
            if v.doors.get(i).is_none_or(|x| *x == d) {
                continue;
            }
            v.doors[i] = d.clone();
            self.send(&mut v, "door", serde_json::json!({ "door": d }));
        }
    }

    /// The alarms standing now; `since` of one already standing is kept, and a change of its
    /// acknowledgement is sent as the alarm again.
    pub fn set_alarms(&self, now: Vec<AlarmNow>) {
        let mut v = self.lock();
        let old = std::mem::take(&mut v.alarms);
        let mut kept = Vec::with_capacity(now.len());
        for a in now {
            match old.iter().find(|o| o.key() == a.key()) {
                Some(o) if o.ack == a.ack => kept.push(o.clone()),
                Some(o) => {
                    let a = AlarmNow {
                        since: o.since,
                        ..a
                    };
                    self.send(&mut v, "alarm", serde_json::json!({ "alarm": a }));
                    kept.push(a);
                }
                None => {
                    self.send(&mut v, "alarm", serde_json::json!({ "alarm": a }));
                    kept.push(a);
                }
            }
        }
        for o in &old {
            if !kept.iter().any(|a| a.key() == o.key()) {
                self.send(&mut v, "alarm_cleared", serde_json::json!({ "alarm": o }));
            }
        }
        v.alarms = kept;
    }

    /// Every device's health.
    pub fn set_devices(&self, devices: Vec<DeviceNow>) {
        let mut v = self.lock();
        // By id, not a search of the list per device: a campus has ten thousand of them.
        let changed: Vec<usize> = {
            let old: std::collections::HashMap<&str, &DeviceNow> =
                v.devices.iter().map(|d| (d.device.as_str(), d)).collect();
            devices
                .iter()
                .enumerate()
                .filter(|(_, d)| old.get(d.device.as_str()) != Some(d))
                .map(|(i, _)| i)
                .collect()
        };
        for i in changed {
            self.send(
                &mut v,
                "device",
                serde_json::json!({ "device": &devices[i] }),
            );
        }
        v.devices = devices;
    }

    /// The site's power.
    pub fn set_power(&self, power: SitePowerNow) {
        let mut v = self.lock();
        if v.power == power {
            return;
        }
        v.power = power.clone();
        self.send(&mut v, "power", serde_json::json!({ "power": power }));
    }

    /// The site mode.
    pub fn set_mode(&self, mode: &str, since: i64) {
        let mut v = self.lock();
        if v.mode == mode && v.mode_since == since {
            return;
        }
        v.mode = mode.to_string();
        v.mode_since = since;
        self.send(
            &mut v,
            "mode",
            serde_json::json!({ "mode": mode, "since": since }),
        );
    }

    /// A decision just made (sent, not kept in the view: the log has them).
    pub fn decision(&self, d: DecisionNow) {
        let mut v = self.lock();
        self.send(&mut v, "decision", serde_json::json!({ "decision": d }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> crate::domain::Site {
        crate::site_file::parse(include_str!("../../deploy/site.example.toml"))
            .expect("the example site loads")
    }

    fn alarm(kind: &str, door: &str, since: i64) -> AlarmNow {
        AlarmNow {
            alarm: kind.into(),
            door: Some(door.into()),
            device: None,
            feed: None,
            since,
            ack: None,
        }
    }

    #[test]
    fn only_changes_are_sent_and_a_subscriber_misses_none() {
        let live = Live::new(&site());
        let (view, mut rx) = live.subscribe();
        assert_eq!(view.seq, 0);
        let mut room = view.rooms[0].clone();
        live.set_room(0, room.clone());
        assert!(rx.try_recv().is_err(), "no change, no event");
        room.count = 3;
        live.set_room(0, room.clone());
        let e = rx.try_recv().unwrap();
        assert_eq!(e.kind, "room");
        let body: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(body["seq"], 1);
        assert_eq!(body["room"]["count"], 3);
        assert_eq!(live.view().rooms[0].count, 3);
    }

    #[test]
    fn alarms_are_raised_once_keep_their_start_and_clear() {
        let live = Live::new(&site());
        let (_, mut rx) = live.subscribe();
        live.set_alarms(vec![alarm("forced", "d1", 100)]);
        live.set_alarms(vec![alarm("forced", "d1", 200)]);
        assert_eq!(live.view().alarms[0].since, 100);
        live.set_alarms(vec![]);
        let kinds: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, vec!["alarm", "alarm_cleared"]);
    }

    #[test]
    fn an_acknowledgement_is_sent_as_the_alarm_again_and_keeps_its_start() {
        let live = Live::new(&site());
        let (_, mut rx) = live.subscribe();
        live.set_alarms(vec![alarm("held_open", "d1", 100)]);
        let mut acked = alarm("held_open", "d1", 160);
        acked.ack = Some(AlarmAck {
            by: "olena".into(),
            at: 150,
            note: Some("going there".into()),
        });
        live.set_alarms(vec![acked.clone()]);
        live.set_alarms(vec![acked]);
        let events: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(
            events.len(),
            2,
            "raised, then acknowledged; the same again is no event"
        );
        let body: serde_json::Value = serde_json::from_str(&events[1].data).unwrap();
        assert_eq!(events[1].kind, "alarm");
        assert_eq!(body["alarm"]["ack"]["by"], "olena");
        assert_eq!(body["alarm"]["since"], 100);
        assert_eq!(live.view().alarms[0].since, 100);
    }
}
