//! The engine on a virtual clock: no broker, no thread, no sleep. Each test moves time by
//! passing it in, and reads what the engine did from its effects, its store (the memory
//! store) and its live view.

use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use kombinat_core::store::MemoryStore;
use kombinat_protocol::auth::Signed;
use kombinat_protocol::door::{self, DoorTopic, VERSION};
use kombinat_protocol::sensor::{Measurement, Reading};
use kombinat_protocol::Topic;

use super::{Effect, Engine, Now, Timer};
use crate::bus::{Control, Stats};
use crate::config::Config;
use crate::domain::{
    CardId, Credential, Device, DeviceId, DeviceKey, DeviceKind, DoorId, Member, MemberId, Role,
    RoomId, SiteMode,
};
use crate::registry::Registry;
use crate::store::{Actor, AuditEvent, Store};

const PREFIX: &str = "kombinat/v1";

fn key(n: u8) -> DeviceKey {
    DeviceKey::from_bytes([n; 32])
}

/// A weekday morning, the site's clock; the tests never read the real one.
fn wall0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 3, 8, 0, 0).unwrap()
}

/// The engine's virtual clock: both of its times moved together.
struct Clock {
    t0: Instant,
    w0: DateTime<Utc>,
}

impl Clock {
    fn at(&self, d: Duration) -> Now {
        Now {
            at: self.t0 + d,
            wall: self.w0 + chrono::Duration::from_std(d).unwrap(),
        }
    }
}

struct Fixture {
    engine: Engine,
    store: Arc<dyn Store>,
    live: Arc<crate::live::Live>,
    clock: Clock,
}

/// The example site on a memory store: Marta (staff) with a card, the coworking door's node
/// (`door-cowork`, key 1) and meeting room 1's sensor node (`sensor-meeting`, key 4).
/// Its configuration changed by `change`.
fn fixture_with(change: impl FnOnce(&mut Config)) -> Fixture {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    fixture_on(&root.join("deploy/site.example.toml"), change)
}

/// As [`fixture_with`], on the site file at `site_path`.
fn fixture_on(site_path: &Path, change: impl FnOnce(&mut Config)) -> Fixture {
    let site = Arc::new(crate::site_file::load(site_path).unwrap());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let w0 = wall0();
    let who = Actor::Cli("test".into());
    {
        let mut g = Registry::open(site.clone(), store.clone(), w0).unwrap();
        let mut marta = Member::new(MemberId::parse("marta").unwrap(), "Marta");
        marta.roles = vec![Role::Staff];
        g.add_member(marta, who.clone(), w0).unwrap();
        let card = Credential::Card(CardId::parse("04A1B2C3").unwrap());
        g.add_credential(MemberId::parse("marta").unwrap(), card, who.clone(), w0)
            .unwrap();
        g.add_device(
            Device {
                id: DeviceId::parse("door-cowork").unwrap(),
                kind: DeviceKind::Door,
                door: Some(DoorId::parse("d-cowork-in").unwrap()),
                room: None,
                key: key(1),
                added_at: w0,
            },
            who.clone(),
            w0,
        )
        .unwrap();
        g.add_device(
            Device {
                id: DeviceId::parse("sensor-meeting").unwrap(),
                kind: DeviceKind::Sensor,
                door: None,
                room: Some(RoomId::parse("meeting-1").unwrap()),
                key: key(4),
                added_at: w0,
            },
            who,
            w0,
        )
        .unwrap();
    }
    let text = format!("site = {site_path:?}\ndata = \"/nonexistent\"\n");
    let mut config = Config::parse(&text, Path::new("/")).unwrap();
    // No clock check unless a test hands one in (the host's clock service is not the test's).
    config.clock_check = crate::clock_sync::ClockCheck::None;
    change(&mut config);
    let live = Arc::new(crate::live::Live::new(&site));
    let clock = Clock {
        t0: Instant::now(),
        w0,
    };
    let engine = Engine::open(
        config,
        site,
        store.clone(),
        Arc::new(Stats::default()),
        live.clone(),
        clock.at(Duration::ZERO),
        0,
    )
    .unwrap();
    Fixture {
        engine,
        store,
        live,
        clock,
    }
}

/// The fixture's engine opened again on its store, as a restart would: it reads what was added
/// to the registry since (bookings imported after the fixture was made).
fn reopened(f: Fixture) -> Fixture {
    Fixture {
        engine: Engine::open(
            f.engine.config.clone(),
            f.engine.site().clone(),
            f.store.clone(),
            Arc::new(Stats::default()),
            f.live.clone(),
            f.clock.at(Duration::ZERO),
            0,
        )
        .unwrap(),
        ..f
    }
}

/// Every effect queued now.
fn effects(e: &mut Engine) -> Vec<Effect> {
    std::iter::from_fn(|| e.poll_effect()).collect()
}

fn publishes(effects: &[Effect]) -> Vec<&crate::desk::Publish> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// Started and committed, the start's effects taken.
fn started() -> Fixture {
    started_with(|_| {})
}

fn started_with(change: impl FnOnce(&mut Config)) -> Fixture {
    let mut f = fixture_with(change);
    let now = f.clock.at(Duration::ZERO);
    f.engine.handle_start(now);
    f.engine.commit(now).unwrap();
    effects(&mut f.engine);
    f
}

fn tap(counter: u64) -> Vec<u8> {
    let mut t = door::Tap {
        v: VERSION,
        door: DoorId::parse("d-cowork-in").unwrap(),
        device: DeviceId::parse("door-cowork").unwrap(),
        counter,
        credential: Credential::Card(CardId::parse("04A1B2C3").unwrap()),
        mac: Default::default(),
    };
    t.sign(&key(1));
    serde_json::to_vec(&t).unwrap()
}

fn decisions_logged(store: &dyn Store) -> usize {
    store
        .audit_after(None, usize::MAX)
        .unwrap()
        .iter()
        .filter(|r| matches!(r.entry.event, AuditEvent::Decision { .. }))
        .count()
}

#[test]
fn a_tap_is_answered_only_once_its_decision_is_in_the_log() {
    let mut f = started();
    let topic =
        Topic::Door(DoorId::parse("d-cowork-in").unwrap(), DoorTopic::Tap).to_string(PREFIX);
    let now = f.clock.at(Duration::from_millis(300));
    assert_eq!(f.engine.handle_message(&topic, &tap(1), false, now), 1);
    // Decided, not yet durable: nothing to send, nothing in the log, nothing shown.
    let (_, mut shown) = f.live.subscribe();
    assert!(effects(&mut f.engine).is_empty());
    assert_eq!(decisions_logged(f.store.as_ref()), 0);
    assert!(shown.try_recv().is_err());
    f.engine.commit(now).unwrap();
    assert_eq!(decisions_logged(f.store.as_ref()), 1);
    let out = effects(&mut f.engine);
    let sent = publishes(&out);
    let answer = sent
        .iter()
        .find(|p| p.topic.ends_with("/door/d-cowork-in/decision"))
        .expect("the decision is published after the commit");
    let d: door::Decision = serde_json::from_slice(&answer.payload).unwrap();
    assert!(d.allow, "{d:?}");
    assert_eq!(d.tap, 1);
    assert!(d.verify(&key(1)), "signed with the node's key");
    // The same tap again (a replay) is refused and decides nothing.
    assert_eq!(f.engine.handle_message(&topic, &tap(1), false, now), 0);
    f.engine.commit(now).unwrap();
    assert_eq!(decisions_logged(f.store.as_ref()), 1);
    // The live view showed the decision once, stamped with the site's time passed in.
    let decisions: Vec<_> = std::iter::from_fn(|| shown.try_recv().ok())
        .filter(|e| e.kind == "decision")
        .collect();
    assert_eq!(decisions.len(), 1);
    assert!(
        decisions[0].data.contains("2026-03-03T08:00:00.300Z"),
        "{}",
        decisions[0].data
    );
}

#[test]
fn a_request_is_answered_after_the_commit() {
    let mut f = started();
    let (tx, rx) = sync_channel(1);
    let now = f.clock.at(Duration::from_millis(500));
    f.engine.handle_request(
        Control::SetMode {
            mode: SiteMode::Lockdown,
            by: Actor::Cli("test".into()),
            reply: tx,
        },
        now,
    );
    assert!(effects(&mut f.engine).is_empty());
    f.engine.commit(now).unwrap();
    let out = effects(&mut f.engine);
    let mode_topic = Topic::Mode.to_string(PREFIX);
    assert!(publishes(&out).iter().any(|p| p.topic == mode_topic));
    assert!(
        rx.try_recv().is_err(),
        "the runtime sends the answer, not the engine"
    );
    for e in out {
        if let Effect::Answer(a) = e {
            a.send();
        }
    }
    assert!(rx.try_recv().unwrap().is_ok());
    assert_eq!(f.live.view().mode, "lockdown");
}

#[test]
fn a_reading_reaches_the_rooms_estimate_and_live_view_at_the_next_tick() {
    let mut f = started();
    let room = f
        .engine
        .site()
        .room_index(RoomId::parse("meeting-1").unwrap())
        .unwrap();
    let r = Reading {
        v: VERSION,
        device: DeviceId::parse("sensor-meeting").unwrap(),
        counter: 1,
        reading: Measurement::Counter { entered: 3, out: 0 },
    };
    let topic = Topic::Reading(DeviceId::parse("sensor-meeting").unwrap()).to_string(PREFIX);
    let now = f.clock.at(Duration::from_millis(200));
    f.engine
        .handle_message(&topic, &serde_json::to_vec(&r).unwrap(), false, now);
    f.engine.commit(now).unwrap();
    effects(&mut f.engine);
    assert_eq!(f.live.view().rooms[room].count, 0, "not before the tick");
    // Not yet: the tick is a second after the start.
    let early = f.clock.at(Duration::from_millis(999));
    f.engine.handle_timeout(early).unwrap();
    f.engine.commit(early).unwrap();
    assert!(effects(&mut f.engine).is_empty());
    let tick = f.clock.at(Duration::from_secs(1));
    f.engine.handle_timeout(tick).unwrap();
    f.engine.commit(tick).unwrap();
    let out = effects(&mut f.engine);
    assert_eq!(f.live.view().rooms[room].count, 3);
    let occupancy = Topic::Occupancy(RoomId::parse("meeting-1").unwrap()).to_string(PREFIX);
    let p = publishes(&out)
        .into_iter()
        .find(|p| p.topic == occupancy)
        .expect("the room's occupancy is published");
    assert!(p.retain);
    let o: kombinat_protocol::room::Occupancy = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(o.count, 3);
    assert_eq!(
        o.at as i64,
        tick.wall.timestamp(),
        "stamped with the time passed in"
    );
}

/// Runs the engine second by second from `from` to `to` (as the runtime would: a timeout, a
/// commit) and returns, per second, the effects other than publishes.
fn run(f: &mut Fixture, from: u64, to: u64) -> Vec<(u64, Vec<&'static str>)> {
    let mut seen = Vec::new();
    for s in from..=to {
        let now = f.clock.at(Duration::from_secs(s));
        f.engine.handle_timeout(now).unwrap();
        f.engine.commit(now).unwrap();
        let mut kinds = Vec::new();
        for e in effects(&mut f.engine) {
            match e {
                Effect::BuildAllowLists(job) => {
                    kinds.push("allow-lists");
                    let lists = job.build();
                    f.engine.handle_allow_lists(lists, now);
                }
                Effect::CheckDisk => {
                    kinds.push("disk");
                    f.engine.handle_disk(Some(u64::MAX), now);
                }
                Effect::ArchiveBookings { .. } => kinds.push("archive"),
                Effect::ReadSpool => kinds.push("spool"),
                Effect::RewriteStoreAtStart => kinds.push("rewrite"),
                Effect::Answer(_) | Effect::Publish(_) => {}
            }
        }
        seen.push((s, kinds));
    }
    seen
}

fn when(seen: &[(u64, Vec<&str>)], kind: &str) -> Vec<u64> {
    seen.iter()
        .filter(|(_, k)| k.contains(&kind))
        .map(|(s, _)| *s)
        .collect()
}

#[test]
fn each_timer_fires_on_time() {
    let mut f = started();
    assert_eq!(
        f.engine.poll_timeout(),
        Some(f.clock.at(Duration::from_secs(1)).at),
        "the first tick, a second after the start"
    );
    let seen = run(&mut f, 1, 3700);
    // The tick reads the command line's spool every second.
    assert_eq!(when(&seen, "spool").len(), 3700);
    // The disk every ten seconds.
    let disk = when(&seen, "disk");
    assert_eq!(&disk[..3], &[1, 11, 21]);
    assert_eq!(disk.len(), 370);
    // Allow-lists at the first tick, then every allowlist_refresh_min (60 min by default).
    assert_eq!(when(&seen, "allow-lists"), vec![1, 3601]);
    // Past bookings hourly.
    assert_eq!(when(&seen, "archive"), vec![1, 3601]);
    // The counters' "as of" mark every ten minutes: the last one stored is from second 3601.
    let marks = f.store.marks().unwrap();
    let as_of = marks
        .iter()
        .filter(|m| m.device.is_none())
        .find_map(|m| m.at);
    assert_eq!(as_of, Some(f.clock.at(Duration::from_secs(3601)).wall));
    // The tick waits for its second, whatever else is due.
    assert_eq!(
        f.engine.poll_timeout(),
        Some(f.clock.at(Duration::from_secs(3701)).at)
    );
}

#[test]
fn allow_lists_go_out_after_their_round_and_again_at_the_tick_after_rights_change() {
    let mut f = started();
    let seen = run(&mut f, 1, 1);
    assert_eq!(when(&seen, "allow-lists"), vec![1]);
    // The round handed back is published a few lists per commit.
    let now = f.clock.at(Duration::from_millis(1100));
    f.engine.commit(now).unwrap();
    let out = effects(&mut f.engine);
    let list =
        Topic::Door(DoorId::parse("d-cowork-in").unwrap(), DoorTopic::AllowList).to_string(PREFIX);
    assert!(
        publishes(&out).iter().any(|p| p.topic == list),
        "the served door's list goes out"
    );
    // A mode change asks for a round at the next tick, not an hour later.
    let (tx, _rx) = sync_channel(1);
    f.engine.handle_request(
        Control::SetMode {
            mode: SiteMode::Lockdown,
            by: Actor::Cli("test".into()),
            reply: tx,
        },
        f.clock.at(Duration::from_millis(1500)),
    );
    assert_eq!(
        f.engine.timers.get(Timer::AllowLists),
        Some(f.clock.at(Duration::from_secs(2)).at)
    );
    let seen = run(&mut f, 2, 3);
    assert_eq!(when(&seen, "allow-lists"), vec![2]);
}

#[test]
fn the_runtime_is_woken_for_the_tick_only_even_when_ticks_come_late() {
    // The runtime calls handle_timeout when poll_timeout says, a little late each time (a busy
    // core). The other timers drift from the tick by that lateness; had poll_timeout named
    // them, the runtime would be woken for nothing (and spin until the tick).
    let mut f = started();
    let mut late = Duration::ZERO;
    for n in 0..700 {
        let due = f.engine.poll_timeout().expect("a tick is always set");
        late += Duration::from_millis(37);
        let now = Now {
            at: due + Duration::from_millis(37),
            wall: f.clock.w0 + chrono::Duration::from_std(due - f.clock.t0 + late).unwrap(),
        };
        f.engine.handle_timeout(now).unwrap();
        f.engine.commit(now).unwrap();
        let out = effects(&mut f.engine);
        assert!(
            out.iter().any(|e| matches!(e, Effect::ReadSpool)),
            "woken at call {n} without a tick"
        );
        for e in out {
            if let Effect::BuildAllowLists(job) = e {
                // Handed back late: the round stays pending over several ticks.
                let _ = job.build();
            }
        }
        assert!(f.engine.poll_timeout().unwrap() > now.at);
    }
}

#[test]
fn an_alarm_found_while_the_last_effects_were_carried_out_is_logged_at_a_stop() {
    let mut f = started();
    let now = f.clock.at(Duration::from_millis(1500));
    // The runtime read the disk for a CheckDisk after the batch's commit; then came the stop.
    f.engine.handle_disk(Some(0), now);
    f.engine.stop(now).unwrap();
    let out = effects(&mut f.engine);
    let status = crate::ha::gateway_status_topic(PREFIX);
    assert!(publishes(&out)
        .iter()
        .any(|p| p.topic == status && p.payload.ends_with(br#""offline"}"#)));
    f.engine.close(now).unwrap();
    let logged = f.store.audit_after(None, usize::MAX).unwrap();
    assert!(logged.iter().any(|r| matches!(
        r.entry.event,
        AuditEvent::Alarm {
            alarm: crate::store::AlarmKind::DiskLow,
            raised: true,
            ..
        }
    )));
}

#[test]
fn no_allow_lists_go_out_while_the_gateway_s_clock_is_not_synchronised() {
    use crate::clock_sync::Synced;
    let mut f = started();
    let now = f.clock.at(Duration::from_millis(500));
    f.engine.handle_request(
        Control::ClockSync(Synced::No(
            "systemd says the clock is not synchronised".into(),
        )),
        now,
    );
    f.engine.commit(now).unwrap();
    effects(&mut f.engine);
    // Not at the first tick, nor at the hourly refresh: the doors keep what they hold.
    let seen = run(&mut f, 1, 3700);
    assert!(when(&seen, "allow-lists").is_empty());
    assert!(f
        .live
        .view()
        .alarms
        .iter()
        .any(|a| a.alarm == "clock_unsynchronised"));
    // Synchronised again: a round at the next tick, and the alarm clears (both in the log).
    let now = f.clock.at(Duration::from_millis(3_700_500));
    f.engine
        .handle_request(Control::ClockSync(Synced::Yes), now);
    f.engine.commit(now).unwrap();
    let seen = run(&mut f, 3701, 3702);
    assert_eq!(when(&seen, "allow-lists"), vec![3701]);
    assert!(f.live.view().alarms.is_empty());
    let raised: Vec<bool> = f
        .store
        .audit_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.entry.event {
            crate::store::AuditEvent::Alarm {
                alarm: crate::store::AlarmKind::ClockUnsynchronised,
                raised,
                ..
            } => Some(raised),
            _ => None,
        })
        .collect();
    assert_eq!(raised, vec![true, false]);
    // A check with nothing to go by (no systemd) changes nothing.
    let now = f.clock.at(Duration::from_millis(3_702_500));
    f.engine
        .handle_request(Control::ClockSync(Synced::Unknown), now);
    f.engine.commit(now).unwrap();
    assert!(f.live.view().alarms.is_empty());
}

#[test]
fn with_a_clock_check_no_allow_lists_go_out_before_its_first_answer() {
    use crate::clock_sync::Synced;
    let mut f = started_with(|c| c.clock_check = crate::clock_sync::ClockCheck::Auto);
    let seen = run(&mut f, 1, 3);
    assert!(when(&seen, "allow-lists").is_empty());
    let now = f.clock.at(Duration::from_millis(3_500));
    f.engine
        .handle_request(Control::ClockSync(Synced::Unknown), now);
    f.engine.commit(now).unwrap();
    let seen = run(&mut f, 4, 5);
    assert_eq!(when(&seen, "allow-lists"), vec![4]);
}

/// The outage schedule and the generator's plan (power feeds): a booking in a grid room inside
/// an outage is reported once to the booking system and logged; a generator room is dark only
/// where the generator does not run; the room's no-show is not judged in the dark; the schedule
/// is kept for the utilisation page.
#[test]
fn a_booking_in_an_outage_is_reported_once_and_not_judged_a_no_show() {
    use crate::domain::{
        Booking, BookingKey, BookingKind, BookingStatus, ExternalId, SourceId, Window,
    };
    use crate::ics::{Expanded, Occurrence};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let site_path = dir.path().join("site.toml");
    let mut text = std::fs::read_to_string(root.join("deploy/site.example.toml")).unwrap();
    text.push_str(
        "\n[[feeds]]\nid = \"yasno-3\"\nkind = \"outages\"\npath = \"/nonexistent/yasno.ics\"\n\n[[feeds]]\nid = \"generator\"\nkind = \"generator\"\npath = \"/nonexistent/generator.ics\"\n",
    );
    std::fs::write(&site_path, text).unwrap();
    let w0 = wall0();
    // The coworking floor (the grid; its door's reader makes it a room whose no-shows are
    // judged) booked 10:00-11:00 UTC, in the outage below, and 14:00-15:00, after it.
    let booking = |id: &str, h: u32| Booking {
        key: BookingKey {
            source: SourceId::parse("test").unwrap(),
            external_id: ExternalId::parse(id).unwrap(),
        },
        room: RoomId::parse("coworking").unwrap(),
        kind: BookingKind::Meeting,
        title: "Stand-up".into(),
        organiser: Some(MemberId::parse("marta").unwrap()),
        attendees: Vec::new(),
        window: Window::Timed {
            start: Utc.with_ymd_and_hms(2026, 3, 3, h, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 3, 3, h + 1, 0, 0).unwrap(),
        },
        status: BookingStatus::Confirmed,
    };
    let f = fixture_on(&site_path, |c| {
        c.webhook = Some(crate::webhook::WebhookConfig {
            url: "http://127.0.0.1:9/hook".into(),
            secret: "0123456789abcdef".into(),
        });
    });
    {
        let site = Arc::new(crate::site_file::load(&site_path).unwrap());
        let mut g = Registry::open(site, f.store.clone(), w0).unwrap();
        g.import_bookings(
            vec![booking("dark", 10), booking("lit", 14)],
            "test",
            Actor::Cli("test".into()),
            w0,
        )
        .unwrap();
    }
    // The engine reads the bookings from its registry: opened again on the same store.
    let mut f = reopened(f);
    let occurrence = |h: u32, hours: u32| Occurrence {
        key: format!("out-{h}"),
        start: Utc.with_ymd_and_hms(2026, 3, 3, h, 0, 0).unwrap(),
        end: Utc.with_ymd_and_hms(2026, 3, 3, h + hours, 0, 0).unwrap(),
        all_day: false,
        title: "Відключення".into(),
        cancelled: false,
        organiser: None,
        attendees: Vec::new(),
    };
    let read = |occurrences| {
        Ok(Some(crate::poller::FeedExpanded {
            expanded: Expanded {
                occurrences,
                problems: Vec::new(),
                truncated: false,
            },
            from: w0 - chrono::Duration::days(1),
            until: w0 + chrono::Duration::days(60),
        }))
    };
    // The grid is cut 09:00-12:00; the coworking floor is not touched at 14:00. Read twice,
    // unchanged: reported once.
    let now = f.clock.at(Duration::from_secs(1));
    for _ in 0..2 {
        f.engine.handle_request(
            Control::Feed {
                feed: 0,
                fetched: read(vec![occurrence(9, 3)]),
            },
            now,
        );
        f.engine.commit(now).unwrap();
    }
    let outbox = f.store.outbox(100).unwrap();
    let dark: Vec<_> = outbox
        .iter()
        .filter(|e| e.kind == "booking_unpowered")
        .collect();
    assert_eq!(dark.len(), 1, "{outbox:?}");
    let body: serde_json::Value = serde_json::from_str(&dark[0].body).unwrap();
    assert_eq!(body["external_id"], "dark");
    assert_eq!(body["room"], "coworking");
    let log: Vec<String> = f
        .store
        .audit_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.entry.event {
            AuditEvent::Change { summary } => Some(summary),
            _ => None,
        })
        .collect();
    assert!(
        log.iter()
            .any(|l| l.starts_with("booking test/dark in coworking falls in a power outage")),
        "{log:#?}"
    );
    assert!(log
        .iter()
        .any(|l| l.starts_with("power schedule yasno-3 read: 1 window(s)")));
    // Kept for the utilisation page: a grid room is dark 3 h that day, a backed one never.
    let kept: super::PowerSchedules =
        serde_json::from_slice(&f.store.state(super::POWER_SCHEDULES).unwrap().unwrap()).unwrap();
    let day = (w0.timestamp(), w0.timestamp() + 86_400);
    assert_eq!(
        kept.plan
            .dark_secs(crate::domain::RoomSupply::Grid, day.0 - 3_600, day.1),
        3 * 3_600
    );
    assert_eq!(
        kept.plan
            .dark_secs(crate::domain::RoomSupply::Backed, day.0 - 3_600, day.1),
        0
    );
    // The generator runs 09:00-10:30: a generator room is dark only 10:30-12:00.
    f.engine.handle_request(
        Control::Feed {
            feed: 1,
            fetched: Ok(Some(crate::poller::FeedExpanded {
                expanded: Expanded {
                    occurrences: vec![Occurrence {
                        end: Utc.with_ymd_and_hms(2026, 3, 3, 10, 30, 0).unwrap(),
                        ..occurrence(9, 1)
                    }],
                    problems: Vec::new(),
                    truncated: false,
                },
                from: w0 - chrono::Duration::days(1),
                until: w0 + chrono::Duration::days(60),
            })),
        },
        now,
    );
    f.engine.commit(now).unwrap();
    let kept: super::PowerSchedules =
        serde_json::from_slice(&f.store.state(super::POWER_SCHEDULES).unwrap().unwrap()).unwrap();
    assert_eq!(
        kept.plan
            .dark_secs(crate::domain::RoomSupply::Generator, day.0 - 3_600, day.1),
        90 * 60
    );
    // A booking made after the schedule was read (through the REST API), in the dark hours:
    // reported at the next look (every five minutes), with the schedule unchanged.
    let (tx, rx) = sync_channel(1);
    let item: std::collections::BTreeMap<String, String> = [
        ("external_id", "booked-later"),
        ("room", "coworking"),
        ("kind", "meeting"),
        ("organiser", "marta"),
        ("start", "2026-03-03T11:00:00Z"),
        ("end", "2026-03-03T11:30:00Z"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let now = f.clock.at(Duration::from_secs(2));
    f.engine.handle_request(
        Control::ApiBookings {
            source: SourceId::parse("test").unwrap(),
            items: vec![item],
            actor: Actor::Cli("test".into()),
            reply: tx,
        },
        now,
    );
    f.engine.commit(now).unwrap();
    for e in effects(&mut f.engine) {
        if let Effect::Answer(a) = e {
            a.send();
        }
    }
    assert!(rx.try_recv().is_ok(), "the booking was answered");
    // To 14:30: nobody came to either booking. The one in the dark is not a no-show; the one
    // after the outage is.
    let dark_now = |f: &Fixture, room: &str| {
        f.live
            .view()
            .rooms
            .iter()
            .find(|r| r.room == room)
            .map(|r| r.dark)
    };
    for s in (2..=23_400).step_by(10) {
        let now = f.clock.at(Duration::from_secs(s));
        f.engine.handle_timeout(now).unwrap();
        f.engine.commit(now).unwrap();
        // The plan shows the coworking floor dark from 09:00 to 12:00, the shelter never.
        if s == 2 || s == 7_200 || s == 14_410 {
            assert_eq!(dark_now(&f, "coworking"), Some(s == 7_200), "at {s} s");
            assert_eq!(dark_now(&f, "shelter"), Some(false));
        }
    }
    let no_shows: Vec<String> = f
        .store
        .audit_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.entry.event {
            AuditEvent::NoShow { booking, .. } => Some(booking.external_id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(no_shows, ["lit"]);
    let dark: Vec<String> = f
        .store
        .outbox(100)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "booking_unpowered")
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.body).unwrap()["external_id"].to_string()
        })
        .collect();
    assert_eq!(dark, ["\"dark\"", "\"booked-later\""]);
}

/// Meeting room 1 (12 places: 58 ppm a person by design) with ten people inside when the gateway
/// starts, its air ventilated 1.4 times as designed (417 ppm over outdoor air, which alone
/// reads 7.1 people); a meeting naming the ten in progress then if `booked`. Returns the room as
/// the live view shows it after forty minutes of the sensor node's readings (its counter saw no
/// one cross).
fn meeting_started_full(booked: bool) -> crate::live::RoomNow {
    use crate::domain::{Booking, BookingKey, BookingKind, BookingStatus, ExternalId, SourceId};
    let f = fixture_with(|_| {});
    let w0 = wall0();
    let room_id = RoomId::parse("meeting-1").unwrap();
    {
        let site = f.engine.site().clone();
        let mut g = Registry::open(site, f.store.clone(), w0).unwrap();
        let who = Actor::Cli("test".into());
        let mut attendees = Vec::new();
        for i in 1..=9 {
            let id = MemberId::parse(&format!("guest-{i}")).unwrap();
            g.add_member(Member::new(id, format!("Guest {i}")), who.clone(), w0)
                .unwrap();
            attendees.push(id);
        }
        if booked {
            let meeting = Booking {
                key: BookingKey {
                    source: SourceId::parse("test").unwrap(),
                    external_id: ExternalId::parse("planning").unwrap(),
                },
                room: room_id,
                kind: BookingKind::Meeting,
                title: "Planning".into(),
                organiser: Some(MemberId::parse("marta").unwrap()),
                attendees,
                window: crate::domain::Window::Timed {
                    start: w0 - chrono::Duration::minutes(30),
                    end: w0 + chrono::Duration::minutes(90),
                },
                status: BookingStatus::Confirmed,
            };
            g.import_bookings(vec![meeting], "test", who, w0).unwrap();
        }
    }
    // The engine reads the bookings from its registry: opened again on the same store.
    let mut f = reopened(f);
    let start = f.clock.at(Duration::ZERO);
    f.engine.handle_start(start);
    f.engine.commit(start).unwrap();
    effects(&mut f.engine);
    let device = DeviceId::parse("sensor-meeting").unwrap();
    let topic = Topic::Reading(device).to_string(PREFIX);
    let mut counter = 0;
    for s in 1..=2400u64 {
        let now = f.clock.at(Duration::from_secs(s));
        let reading = match s {
            1 => Some(Measurement::Counter { entered: 0, out: 0 }),
            s if s % 60 == 0 => Some(Measurement::Co2 { ppm: 420 + 417 }),
            _ => None,
        };
        if let Some(reading) = reading {
            counter += 1;
            let r = Reading {
                v: VERSION,
                device,
                counter,
                reading,
            };
            f.engine
                .handle_message(&topic, &serde_json::to_vec(&r).unwrap(), false, now);
        }
        f.engine.handle_timeout(now).unwrap();
        f.engine.commit(now).unwrap();
        effects(&mut f.engine);
    }
    let room = f.engine.site().room_index(room_id).unwrap();
    f.live.view().rooms[room].clone()
}

#[test]
fn a_meeting_in_progress_when_the_gateway_starts_counts_beside_the_air() {
    // The air alone: 7.1 people. With the meeting's ten named: their geometric mean, 8.5.
    assert_eq!(meeting_started_full(false).count, 7);
    let both = meeting_started_full(true);
    assert_eq!(both.count, 8);
    // A count made up from the air and a booking never closes the door for a full room.
    assert_eq!(both.basis, "co2");
    assert!(both.confidence < crate::access::CAPACITY_CONFIDENCE);
}
