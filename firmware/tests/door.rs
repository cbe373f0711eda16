//! The door node's state machine on a virtual clock: online decisions, timeouts and the
//! allow-list, the offline log, refused messages, the exit button, alarms, lock kinds, the pins;
//! and a property test that the strike is never released beyond what was granted.

use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as P};
use kombinat_firmware::door::{
    DoorConfig, DoorController, DoorPins, Inputs, LockKind, Outputs, Polarity, Refusal,
};
use kombinat_firmware::net::{Network, Up};
use kombinat_firmware::Time;
use kombinat_protocol::auth::{verify_parts, DeviceKey, Mac, Signed};
use kombinat_protocol::door::{
    offline_log_fields, Action, AllowEntry, AllowListHead, Command, Decision, DoorState,
    OfflineAck, OfflineEntry, Tap, OFFLINE_LOG_KIND, VERSION,
};
use kombinat_protocol::{CardId, Credential, DeviceId, DoorId, Pin, Reason};
use proptest::prelude::*;

const UNIX: u64 = 1_795_690_000;

#[derive(Debug, Clone, PartialEq)]
enum Sent {
    Tap(Tap),
    State(DoorState),
    Log(u64, Vec<OfflineEntry>, Mac),
    Power(kombinat_protocol::device::Power),
    Alert(kombinat_protocol::device::AlertInput),
}

#[derive(Default)]
struct Wire {
    down: bool,
    sent: Vec<Sent>,
}

impl Network for Wire {
    type Error = ();
    fn connected(&self) -> bool {
        !self.down
    }
    fn send(&mut self, msg: Up<'_>) -> Result<(), ()> {
        if self.down {
            return Err(());
        }
        self.sent.push(match msg {
            Up::Tap(t) => Sent::Tap(t.clone()),
            Up::State(s) => Sent::State(s.clone()),
            Up::OfflineLog(l) => Sent::Log(l.counter, l.entries.to_vec(), l.mac),
            Up::Reading(_) => panic!("a door node sends no readings"),
            Up::Power(p) => Sent::Power(*p),
            Up::Alert(a) => Sent::Alert(*a),
        });
        Ok(())
    }
}

impl Wire {
    fn taps(&self) -> Vec<&Tap> {
        self.sent
            .iter()
            .filter_map(|s| match s {
                Sent::Tap(t) => Some(t),
                _ => None,
            })
            .collect()
    }
    fn last_state(&self) -> Option<&DoorState> {
        self.sent.iter().rev().find_map(|s| match s {
            Sent::State(t) => Some(t),
            _ => None,
        })
    }
    fn logs(&self) -> Vec<(u64, Vec<OfflineEntry>, Mac)> {
        self.sent
            .iter()
            .filter_map(|s| match s {
                Sent::Log(c, e, m) => Some((*c, e.clone(), *m)),
                _ => None,
            })
            .collect()
    }
}

fn key() -> DeviceKey {
    DeviceKey::from_bytes([7; 32])
}
fn door() -> DoorId {
    DoorId::parse("d-cowork-in").unwrap()
}
fn device() -> DeviceId {
    DeviceId::parse("door-cowork").unwrap()
}
fn card(s: &str) -> CardId {
    CardId::parse(s).unwrap()
}

type Node = DoorController<64, 8>;

struct Rig {
    node: Node,
    wire: Wire,
    ms: u64,
    gw: u64,
    inputs: Inputs,
    out: Outputs,
    /// The node's clock is unset: it passes 0 as the time.
    clock_unset: bool,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(|_| {})
    }
    fn with(f: impl FnOnce(&mut DoorConfig)) -> Rig {
        let mut cfg = DoorConfig::new(door(), device(), key());
        f(&mut cfg);
        let mut r = Rig {
            node: Node::new(cfg),
            wire: Wire::default(),
            ms: 1_000,
            gw: 100,
            inputs: Inputs::default(),
            out: Outputs::default(),
            clock_unset: false,
        };
        r.tick();
        r
    }
    fn t(&self) -> Time {
        Time {
            ms: self.ms,
            unix: if self.clock_unset {
                0
            } else {
                UNIX + self.ms / 1000
            },
        }
    }
    fn tick(&mut self) -> Outputs {
        let t = self.t();
        self.out = self.node.tick(self.inputs, t, &mut self.wire);
        self.out
    }
    /// Moves the clock on in 10 ms ticks.
    fn wait(&mut self, ms: u64) -> Outputs {
        let end = self.ms + ms;
        while self.ms < end {
            self.ms = (self.ms + 10).min(end);
            self.tick();
        }
        self.out
    }
    fn tap(&mut self, c: &str) {
        let t = self.t();
        self.node
            .credential(Credential::Card(card(c)), t, &mut self.wire);
        self.tick();
    }
    fn decision(&mut self, tap: u64, allow: bool, unlock_ms: u32) -> Decision {
        self.gw += 1;
        let mut d = Decision {
            v: VERSION,
            door: door(),
            device: device(),
            counter: self.gw,
            tap,
            allow,
            reason: if allow {
                Reason::Staff
            } else {
                Reason::NoRight
            },
            unlock_ms,
            mac: Mac::default(),
        };
        d.sign(&key());
        d
    }
    fn answer(&mut self, d: &Decision) -> Result<(), Refusal> {
        let t = self.t();
        let r = self.node.decision(d, t);
        self.tick();
        r
    }
    /// A command the gateway signs next.
    fn signed_command(&mut self, action: Action) -> Command {
        self.gw += 1;
        let mut c = Command {
            v: VERSION,
            door: door(),
            device: device(),
            counter: self.gw,
            action,
            mac: Mac::default(),
        };
        c.sign(&key());
        c
    }
    fn command(&mut self, action: Action) -> Result<(), Refusal> {
        let c = self.signed_command(action);
        let t = self.t();
        let r = self.node.command(&c, t);
        self.tick();
        r
    }
    fn list(&mut self, cards: &[AllowEntry]) -> Result<(), Refusal> {
        self.gw += 1;
        let head = AllowListHead {
            v: VERSION,
            door: door(),
            device: device(),
            counter: self.gw,
            valid_from: UNIX - 3_600,
            valid_until: UNIX + 3_600,
        };
        let mac = kombinat_protocol::auth::mac_of(&key(), AllowListHead::KIND, |m| {
            head.mac_input(m, cards)
        });
        self.node.allow_list(&head, cards, &mac)
    }
    fn last_tap(&self) -> u64 {
        self.wire.taps().last().unwrap().counter
    }
}

fn entry(c: &str, from: u64, until: u64) -> AllowEntry {
    AllowEntry {
        card: card(c),
        from,
        until,
    }
}

#[test]
fn a_granted_tap_releases_the_strike_for_the_granted_time() {
    let mut r = Rig::new();
    r.tap("04A1B2C3");
    let tap = r.wire.taps()[0].clone();
    assert!(tap.verify(&key()), "the tap is signed with the node's key");
    assert_eq!(tap.credential, Credential::Card(card("04A1B2C3")));
    assert!(r.node.waiting());
    assert!(
        !r.out.strike && r.out.green && r.out.red,
        "amber while waiting"
    );

    let d = r.decision(tap.counter, true, 3_000);
    r.answer(&d).unwrap();
    assert!(r.out.strike && r.out.green && r.out.buzzer);
    assert!(
        !r.wire.last_state().unwrap().locked,
        "the gateway hears the door is released"
    );
    assert!(r.wait(2_990).strike);
    assert!(!r.wait(10).strike, "relocked when the grant ends");
    assert!(r.wire.last_state().unwrap().locked);
    assert_eq!(r.node.last_outcome().unwrap().reason, Reason::Staff);
}

#[test]
fn a_denied_tap_keeps_the_door_shut_and_shows_red() {
    let mut r = Rig::new();
    r.tap("04A1B2C3");
    let d = r.decision(r.last_tap(), false, 0);
    r.answer(&d).unwrap();
    assert!(!r.out.strike && r.out.red && !r.out.green && r.out.buzzer);
    for _ in 0..200 {
        assert!(!r.wait(10).strike);
    }
    assert!(!r.out.red, "the red light goes out after a second");
}

#[test]
fn a_decision_that_does_not_come_in_time_is_taken_from_the_allow_list_and_logged() {
    let mut r = Rig::new();
    r.list(&[entry("04A1B2C3", UNIX - 60, UNIX + 600)]).unwrap();
    r.tap("04A1B2C3");
    let tap = r.last_tap();
    assert!(!r.wait(790).strike, "still waiting for the gateway");
    assert!(r.wait(10).strike, "decided alone at 800 ms");
    let o = r.node.last_outcome().unwrap();
    assert!(o.offline && o.allow && o.reason == Reason::OfflineListed && o.tap == tap);
    assert!(r.wait(2_990).strike);
    assert!(!r.wait(10).strike, "released for the offline time");

    // The late answer is refused: the node no longer waits for it.
    let late = r.decision(tap, true, 3_000);
    assert_eq!(r.answer(&late), Err(Refusal::NotWaiting));
    assert!(!r.out.strike);

    // The log went up, signed, and goes again until acknowledged.
    let logs = r.wire.logs();
    assert_eq!(logs.len(), 1);
    let (counter, entries, mac) = &logs[0];
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].tap, entries[0].allow), (tap, true));
    assert!(verify_parts(
        &key(),
        OFFLINE_LOG_KIND,
        |m| offline_log_fields(m, VERSION, door(), device(), *counter, entries),
        mac
    ));
    r.wait(5_000);
    assert_eq!(r.wire.logs().len(), 2, "sent again while unacknowledged");
    r.gw += 1;
    let mut ack = OfflineAck {
        v: VERSION,
        door: door(),
        device: device(),
        counter: r.gw,
        up_to: tap,
        mac: Mac::default(),
    };
    ack.sign(&key());
    r.node.offline_ack(&ack).unwrap();
    assert!(r.node.offline_log().is_empty());
    r.wait(20_000);
    assert_eq!(r.wire.logs().len(), 2, "nothing more to send");
}

#[test]
fn offline_a_card_not_listed_or_out_of_its_window_is_refused() {
    let mut r = Rig::new();
    r.wire.down = true;
    r.list(&[
        entry("04A1B2C3", UNIX + 600, UNIX + 1200),
        entry("0BADCAFE", UNIX - 60, UNIX + 600),
    ])
    .unwrap();
    r.tap("04A1B2C3");
    assert!(
        r.wire.taps().is_empty(),
        "no tap goes out on a link known to be down"
    );
    let o = r.node.last_outcome().unwrap();
    assert_eq!((o.allow, o.reason), (false, Reason::OfflineNotListed));
    assert!(!r.out.strike);
    r.wait(2_000);
    r.tap("11223344");
    assert_eq!(
        r.node.last_outcome().unwrap().reason,
        Reason::OfflineNotListed
    );
    r.wait(2_000);
    r.tap("0BADCAFE");
    assert_eq!(r.node.last_outcome().unwrap().reason, Reason::OfflineListed);
    assert!(
        r.out.strike,
        "decided at once: no 800 ms wait when the link is down"
    );
    r.wait(4_000);
    let t = r.t();
    r.node
        .credential(Credential::Pin(Pin::parse("1234").unwrap()), t, &mut r.wire);
    assert_eq!(
        r.node.last_outcome().unwrap().reason,
        Reason::OfflineNotListed
    );
    assert_eq!(r.node.offline_log().len(), 3, "PINs are not logged offline");

    // The log goes up when the link is back.
    r.wire.down = false;
    r.wait(20);
    assert_eq!(r.wire.logs()[0].1.len(), 3);
}

#[test]
fn the_supply_and_the_alert_contact_are_reported_signed_on_change_and_with_the_heartbeat() {
    use kombinat_firmware::door::Supply;
    let mut r = Rig::new();
    let sent = |r: &Rig| -> (Vec<(bool, Option<u32>)>, Vec<bool>) {
        let mut p = Vec::new();
        let mut a = Vec::new();
        for s in &r.wire.sent {
            match s {
                Sent::Power(x) => {
                    assert!(x.verify(&key()), "signed with the node's key");
                    p.push((x.mains, x.battery_mv));
                }
                Sent::Alert(x) => {
                    assert!(x.verify(&key()));
                    a.push(x.active);
                }
                _ => {}
            }
        }
        (p, a)
    };
    let supply = |r: &mut Rig, mains, mv, alert| {
        let t = r.t();
        r.node.supply(
            Supply {
                mains: Some(mains),
                battery_mv: mv,
                alert,
            },
            t,
            &mut r.wire,
        );
    };
    // At start: both, once.
    supply(&mut r, true, Some(13_600), Some(false));
    supply(&mut r, true, Some(13_580), Some(false));
    assert_eq!(sent(&r), (vec![(true, Some(13_600))], vec![false]));
    // On mains the battery's drift is not news; mains lost is.
    r.ms += 10_000;
    supply(&mut r, false, Some(12_700), Some(false));
    // On battery: a step of 100 mV, and the heartbeat.
    r.ms += 1_000;
    supply(&mut r, false, Some(12_650), Some(false));
    r.ms += 1_000;
    supply(&mut r, false, Some(12_590), Some(false));
    r.ms += 30_000;
    supply(&mut r, false, Some(12_580), Some(false));
    // The siren relay closes.
    supply(&mut r, false, Some(12_580), Some(true));
    let (p, a) = sent(&r);
    assert_eq!(
        p,
        [
            (true, Some(13_600)),
            (false, Some(12_700)),
            (false, Some(12_590)),
            (false, Some(12_580))
        ]
    );
    assert_eq!(
        a,
        [false, false, true],
        "the alert with the heartbeat and on change"
    );
    // Counters keep rising across the node's signed messages.
    let counters: Vec<u64> = r
        .wire
        .sent
        .iter()
        .filter_map(|s| match s {
            Sent::Power(x) => Some(x.counter),
            Sent::Alert(x) => Some(x.counter),
            Sent::State(x) => Some(x.counter),
            _ => None,
        })
        .collect();
    assert!(counters.windows(2).all(|w| w[0] < w[1]), "{counters:?}");
}

#[test]
fn with_its_clock_unset_a_node_grants_offline_only_what_holds_at_any_hour() {
    let mut r = Rig::new();
    // Staff at any hour (from 0); a member's window; the same member at any hour on a second
    // card would be a separate entry.
    r.list(&[
        entry("04A1B2C3", 0, UNIX + 3_600),
        entry("04D4E5F6", UNIX - 60, UNIX + 3_600),
    ])
    .unwrap();
    r.clock_unset = true;
    r.wire.down = true;
    r.tap("04A1B2C3");
    let o = r.node.last_outcome().unwrap();
    assert!(o.allow && o.offline && o.reason == Reason::OfflineAnyHour);
    assert!(r.out.strike);
    r.wait(4_000);
    r.tap("04D4E5F6");
    let o = r.node.last_outcome().unwrap();
    assert!(!o.allow && o.reason == Reason::OfflineClockUnset, "{o:?}");
    assert!(!r.out.strike);
    r.wait(2_000);
    r.tap("04FFFFFF");
    assert_eq!(
        r.node.last_outcome().unwrap().reason,
        Reason::OfflineNotListed
    );
    // The log says 0 for the time: the gateway logs the entries at their arrival.
    assert!(r.node.offline_log().iter().all(|e| e.at == 0));
    assert_eq!(r.node.offline_log().len(), 3);
    // With the clock set again, the member's window holds as before.
    r.clock_unset = false;
    r.wait(2_000);
    r.tap("04D4E5F6");
    assert_eq!(r.node.last_outcome().unwrap().reason, Reason::OfflineListed);
    // A list that ran out before the latest time the node knew is refused with the clock unset
    // again (a reboot): the node's time is at least that.
    r.wait(2 * 3_600_000);
    r.clock_unset = true;
    r.wait(2_000);
    r.tap("04A1B2C3");
    assert_eq!(
        r.node.last_outcome().unwrap().reason,
        Reason::OfflineListExpired
    );
}

#[test]
fn without_a_valid_list_offline_taps_are_refused_as_expired() {
    let mut r = Rig::new();
    r.wire.down = true;
    r.tap("04A1B2C3");
    assert_eq!(
        r.node.last_outcome().unwrap().reason,
        Reason::OfflineListExpired
    );
    r.wait(2_000);
    r.list(&[entry("04A1B2C3", 0, u64::MAX)]).unwrap();
    r.ms += 4 * 3_600_000; // the list ran out
    r.tap("04A1B2C3");
    assert_eq!(
        r.node.last_outcome().unwrap().reason,
        Reason::OfflineListExpired
    );
    assert!(!r.out.strike);
}

#[test]
fn a_decision_with_a_bad_mac_a_replayed_counter_or_for_another_door_is_ignored() {
    let mut r = Rig::new();
    r.tap("04A1B2C3");
    let tap = r.last_tap();
    let mut forged = r.decision(tap, true, 3_000);
    forged.unlock_ms = 60_000; // changed after signing
    assert_eq!(r.answer(&forged), Err(Refusal::BadMac));
    let mut other = r.decision(tap, true, 3_000);
    other.door = DoorId::parse("d-lobby").unwrap();
    other.sign(&key());
    assert_eq!(r.answer(&other), Err(Refusal::NotMine));
    let mut wrong_key = r.decision(tap, true, 3_000);
    wrong_key.sign(&DeviceKey::from_bytes([8; 32]));
    assert_eq!(r.answer(&wrong_key), Err(Refusal::BadMac));
    assert!(!r.out.strike && r.node.waiting());

    let good = r.decision(tap, false, 0);
    r.answer(&good).unwrap();
    r.wait(2_000);
    // The same tap again, and an old decision replayed: refused by the counter.
    r.tap("04A1B2C3");
    let mut replay = good.clone();
    replay.tap = r.last_tap();
    replay.sign(&key());
    assert_eq!(r.answer(&replay), Err(Refusal::Replayed));
    assert!(!r.out.strike);
    assert_eq!(r.node.stats().refused, 4);
}

#[test]
fn a_command_overtaken_by_a_later_decision_still_counts_and_a_replay_on_any_topic_does_not() {
    let mut r = Rig::new();
    r.tap("04A1B2C3");
    let tap = r.last_tap();
    // The gateway signs the shelter release (its counter n) and then the decision on the tap
    // (n + 1); the broker hands the decision over first (another topic).
    let release = r.signed_command(Action::Release);
    let d = r.decision(tap, true, 3_000);
    r.answer(&d).unwrap();
    let t = r.t();
    r.node.command(&release, t).unwrap();
    assert!(r.node.released(), "the release is the newest command");
    // Each again is a replay on its own topic.
    let t = r.t();
    assert_eq!(r.node.command(&release, t), Err(Refusal::Replayed));
    assert_eq!(r.answer(&d), Err(Refusal::Replayed));
    // What the node keeps over a reboot is the newest of all.
    assert_eq!(r.node.gateway_counter(), d.counter);
}

#[test]
fn a_card_held_to_the_reader_is_one_tap() {
    let mut r = Rig::new();
    for _ in 0..10 {
        r.tap("04A1B2C3");
        r.wait(100);
    }
    assert_eq!(r.wire.taps().len(), 1);
}

#[test]
fn the_exit_button_releases_the_door_and_opening_it_raises_no_alarm() {
    let mut r = Rig::new();
    r.inputs.exit_pressed = true;
    assert!(r.tick().strike);
    r.inputs.exit_pressed = false;
    r.wait(500);
    r.inputs.contact_open = true;
    r.wait(1_000);
    let s = r.wire.last_state().unwrap();
    assert!(!s.forced && !s.held_open);
    assert_eq!(s.contact, kombinat_protocol::door::Contact::Open);
    r.inputs.contact_open = false;
    assert!(
        r.wait(50).strike,
        "a contact is believed once it holds for 50 ms"
    );
    assert!(
        !r.wait(10).strike,
        "relocked as soon as the door shuts after the passage"
    );
}

#[test]
fn a_door_opened_while_locked_raises_forced_until_it_shuts() {
    let mut r = Rig::new();
    r.inputs.contact_open = true;
    r.wait(60);
    let s = r.wire.last_state().unwrap();
    assert!(s.forced && s.locked);
    assert!(s.verify(&key()));
    r.inputs.contact_open = false;
    r.wait(60);
    assert!(!r.wire.last_state().unwrap().forced);
}

#[test]
fn an_opened_housing_raises_tamper_until_it_is_shut() {
    let mut r = Rig::new();
    r.inputs.tamper = true;
    r.wait(10);
    let s = r.wire.last_state().unwrap();
    assert!(s.tamper && s.locked && !s.forced);
    r.inputs.tamper = false;
    r.wait(10);
    assert!(!r.wire.last_state().unwrap().tamper);
}

#[test]
fn an_offline_node_blinks_red_and_raises_no_tap() {
    let mut r = Rig::new();
    r.wire.down = true;
    let lit: Vec<bool> = (0..200).map(|_| r.wait(10).red).collect();
    assert!(
        lit.iter().any(|x| *x) && lit.iter().filter(|x| **x).count() < 20,
        "a short blink every two seconds"
    );
    assert!(!r.out.strike && !r.out.green);
    r.wire.down = false;
    let lit: Vec<bool> = (0..200).map(|_| r.wait(10).red).collect();
    assert!(lit.iter().all(|x| !*x), "dark when online and idle");
}

#[test]
fn a_bouncing_contact_neither_relocks_a_grant_nor_raises_forced() {
    let mut r = Rig::new();
    r.tap("04A1B2C3");
    let d = r.decision(r.last_tap(), true, 5_000);
    r.answer(&d).unwrap();
    r.inputs.contact_open = true;
    r.wait(100);
    for _ in 0..5 {
        r.inputs.contact_open = !r.inputs.contact_open;
        r.wait(20);
    }
    r.inputs.contact_open = true;
    r.wait(100);
    assert!(r.out.strike, "the bounce did not end the release");
    r.inputs.contact_open = false;
    r.wait(20);
    r.inputs.contact_open = true;
    r.wait(100);
    assert!(!r.wire.last_state().unwrap().forced);
}

#[test]
fn after_a_reboot_an_older_list_is_refused_and_a_release_is_kept() {
    let mut r = Rig::with(|c| {
        c.list_counter_after = 150;
        c.released = true;
    });
    assert!(r.out.strike, "still released after the reboot");
    assert_eq!(
        r.list(&[entry("01", 0, 10)]),
        Err(Refusal::Older),
        "counter 101 < 150"
    );
    r.gw = 149;
    r.list(&[entry("01", 0, 10)]).unwrap();
    assert_eq!(r.node.list_counter(), 150);
    r.command(Action::Normal).unwrap();
    assert!(!r.out.strike && !r.node.released());
}

#[test]
fn a_card_read_while_another_tap_waits_may_be_presented_again_at_once() {
    let mut r = Rig::new();
    r.tap("04A1B2C3");
    r.tap("0BADCAFE");
    assert_eq!(r.wire.taps().len(), 1);
    let d = r.decision(r.last_tap(), false, 0);
    r.answer(&d).unwrap();
    r.tap("0BADCAFE");
    assert_eq!(r.wire.taps().len(), 2, "not taken for a repeat");
}

#[test]
fn a_door_left_open_raises_held_open_after_its_limit() {
    let mut r = Rig::with(|c| c.held_open_ms = 10_000);
    r.tap("04A1B2C3");
    let d = r.decision(r.last_tap(), true, 3_000);
    r.answer(&d).unwrap();
    r.inputs.contact_open = true;
    r.tick();
    r.wait(50);
    r.wait(9_990);
    let s = r.wire.last_state().unwrap();
    assert!(!s.held_open && !s.forced);
    r.wait(10);
    assert!(r.wire.last_state().unwrap().held_open);
    assert!(!r.out.strike, "the grant ended meanwhile");
    r.inputs.contact_open = false;
    r.wait(60);
    assert!(!r.wire.last_state().unwrap().held_open);
}

#[test]
fn a_fail_safe_lock_is_powered_to_hold_and_unpowered_to_release() {
    let mut r = Rig::with(|c| c.lock = LockKind::FailSafe);
    assert!(r.out.strike, "a maglock is held by power");
    r.tap("04A1B2C3");
    let d = r.decision(r.last_tap(), true, 2_000);
    r.answer(&d).unwrap();
    assert!(!r.out.strike);
    assert!(r.wait(2_000).strike);
}

#[test]
fn commands_release_lock_and_restore() {
    let mut r = Rig::new();
    r.command(Action::Unlock { ms: 5_000 }).unwrap();
    assert!(r.out.strike);
    r.command(Action::Lock).unwrap();
    assert!(!r.out.strike);
    r.command(Action::Release).unwrap();
    r.inputs.contact_open = true;
    r.wait(120_000);
    assert!(r.out.strike, "released until told otherwise");
    assert!(
        !r.wire.last_state().unwrap().held_open,
        "a released door may stand open"
    );
    r.command(Action::Normal).unwrap();
    assert!(!r.out.strike);
}

#[test]
fn a_state_heartbeat_goes_out_every_thirty_seconds() {
    let mut r = Rig::new();
    let count = |w: &Wire| {
        w.sent
            .iter()
            .filter(|s| matches!(s, Sent::State(_)))
            .count()
    };
    assert_eq!(count(&r.wire), 1);
    r.wait(30_000);
    assert_eq!(count(&r.wire), 2);
    let states: Vec<u64> = r
        .wire
        .sent
        .iter()
        .filter_map(|s| match s {
            Sent::State(s) => Some(s.counter),
            _ => None,
        })
        .collect();
    assert!(states[1] > states[0], "every message has a new counter");
}

#[test]
fn an_allow_list_is_refused_when_forged_unsorted_too_long_or_older() {
    let mut r = Rig::new();
    let ok = [entry("01", 0, 10), entry("02", 0, 10)];
    r.list(&ok).unwrap();
    assert_eq!(
        r.list(&[entry("02", 0, 10), entry("01", 0, 10)]),
        Err(Refusal::Malformed)
    );
    let many: Vec<AllowEntry> = (0..65u8)
        .map(|i| entry(&format!("{i:02X}"), 0, 10))
        .collect();
    assert_eq!(r.list(&many), Err(Refusal::TooLong));
    let head = AllowListHead {
        v: VERSION,
        door: door(),
        device: device(),
        counter: 1,
        valid_from: 0,
        valid_until: 10,
    };
    let mac =
        kombinat_protocol::auth::mac_of(&key(), AllowListHead::KIND, |m| head.mac_input(m, &ok));
    assert_eq!(r.node.allow_list(&head, &ok, &mac), Err(Refusal::Older));
    let mut forged = head;
    forged.counter = 1_000;
    assert_eq!(r.node.allow_list(&forged, &ok, &mac), Err(Refusal::BadMac));
    assert_eq!(
        r.node.held_list().unwrap().1,
        &ok[..],
        "the good list stays"
    );
}

#[test]
fn a_full_offline_log_drops_its_oldest_entries() {
    let mut r = Rig::new();
    r.wire.down = true;
    for i in 0..10u8 {
        r.tap(&format!("AA{i:02X}"));
        r.wait(2_000);
    }
    assert_eq!(r.node.offline_log().len(), 8);
    assert_eq!(r.node.stats().log_dropped, 2);
    assert_eq!(r.node.offline_log()[0].card, card("AA02"));
}

#[test]
fn the_pins_follow_the_outputs_and_are_written_only_on_change() {
    let out = |pin: &[P]| PinMock::new(pin);
    let strike = out(&[P::set(State::Low), P::set(State::High), P::set(State::Low)]);
    let green = out(&[P::set(State::Low), P::set(State::High)]);
    let red = out(&[P::set(State::Low)]);
    let buzzer = out(&[P::set(State::Low)]);
    // Contact high = open, exit low = pressed, tamper high = open (the defaults).
    let contact = out(&[P::get(State::High), P::get(State::Low)]);
    let exit = out(&[P::get(State::Low), P::get(State::High)]);
    let tamper = out(&[P::get(State::Low), P::get(State::High)]);
    let mut pins = DoorPins::new(
        strike,
        green,
        red,
        buzzer,
        contact,
        exit,
        tamper,
        Polarity::default(),
    );
    assert_eq!(
        pins.read().unwrap(),
        Inputs {
            contact_open: true,
            exit_pressed: true,
            tamper: false
        }
    );
    assert_eq!(
        pins.read().unwrap(),
        Inputs {
            contact_open: false,
            exit_pressed: false,
            tamper: true
        }
    );
    pins.apply(&Outputs::default()).unwrap();
    pins.apply(&Outputs::default()).unwrap();
    let open = Outputs {
        strike: true,
        green: true,
        ..Outputs::default()
    };
    pins.apply(&open).unwrap();
    pins.apply(&Outputs {
        green: true,
        ..Outputs::default()
    })
    .unwrap();
    let (mut s, mut g, mut r, mut b, mut c, mut x, mut t) = pins.release();
    for p in [&mut s, &mut g, &mut r, &mut b, &mut c, &mut x, &mut t] {
        p.done();
    }
}

#[derive(Debug, Clone)]
enum Step {
    Wait(u16),
    Tap(u8),
    Answer { allow: bool, ms: u16, forge: bool },
    Exit,
    Contact(bool),
    Unlock { ms: u16, forge: bool },
    Link(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u16..3_000).prop_map(Step::Wait),
        2 => (0u8..3).prop_map(Step::Tap),
        2 => (any::<bool>(), 0u16..10_000, any::<bool>())
            .prop_map(|(allow, ms, forge)| Step::Answer { allow, ms, forge }),
        1 => Just(Step::Exit),
        1 => any::<bool>().prop_map(Step::Contact),
        1 => (0u16..10_000, any::<bool>()).prop_map(|(ms, forge)| Step::Unlock { ms, forge }),
        1 => any::<bool>().prop_map(Step::Link),
    ]
}

/// An offline decision for the listed card is a grant of the offline time, from when it is taken.
fn offline_grant(r: &Rig, seen: &mut Option<u64>, granted_until: &mut u64) {
    if let Some(o) = r.node.last_outcome() {
        if *seen != Some(o.tap) {
            *seen = Some(o.tap);
            if o.offline && o.allow {
                *granted_until = (*granted_until).max(r.ms + 3_000);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever happens, the strike is released only within a window some grant opened: a
    /// signed decision or command, an exit press, or an offline decision for a listed card.
    #[test]
    fn the_strike_is_never_released_beyond_what_was_granted(
        steps in proptest::collection::vec(step(), 1..80),
        lock_fail_safe in any::<bool>(),
    ) {
        let mut r = Rig::with(|c| {
            if lock_fail_safe {
                c.lock = LockKind::FailSafe;
            }
        });
        let released = |r: &Rig| r.out.strike != lock_fail_safe;
        r.list(&[entry("01", 0, u64::MAX)]).unwrap();
        let mut granted_until = 0u64;
        let mut seen = None;
        for s in steps {
            match s {
                Step::Wait(ms) => {
                    let end = r.ms + u64::from(ms);
                    while r.ms < end {
                        r.ms = (r.ms + 10).min(end);
                        r.tick();
                        offline_grant(&r, &mut seen, &mut granted_until);
                        prop_assert!(!released(&r) || r.ms < granted_until,
                            "released at {} after the grant ended at {}", r.ms, granted_until);
                    }
                }
                Step::Tap(c) => {
                    r.tap(&format!("{c:02X}"));
                    offline_grant(&r, &mut seen, &mut granted_until);
                }
                Step::Answer { allow, ms, forge } => {
                    let tap = r.wire.taps().last().map_or(0, |t| t.counter);
                    let mut d = r.decision(tap, allow, u32::from(ms));
                    if forge {
                        d.allow = true;
                        d.unlock_ms = 60_000;
                    }
                    if allow && !forge && r.node.waiting() {
                        granted_until = granted_until.max(r.ms + u64::from(ms));
                    }
                    let _ = r.answer(&d);
                }
                Step::Exit => {
                    r.inputs.exit_pressed = true;
                    granted_until = granted_until.max(r.ms + 5_000);
                    r.tick();
                    r.inputs.exit_pressed = false;
                }
                Step::Contact(open) => {
                    r.inputs.contact_open = open;
                    r.tick();
                }
                Step::Unlock { ms, forge } => {
                    if forge {
                        r.gw += 1;
                        let mut c = Command {
                            v: VERSION, door: door(), device: device(), counter: r.gw,
                            action: Action::Unlock { ms: 1 }, mac: Mac::default(),
                        };
                        c.sign(&key());
                        // Signed for 1 ms, sent for longer: never the signed value (a
                        // "forgery" of 1 ms would carry a good MAC).
                        c.action = Action::Unlock { ms: u32::from(ms) + 2 };
                        let t = r.t();
                        prop_assert_eq!(r.node.command(&c, t), Err(Refusal::BadMac));
                        r.tick();
                    } else {
                        granted_until = granted_until.max(r.ms + u64::from(ms));
                        r.command(Action::Unlock { ms: u32::from(ms) }).unwrap();
                    }
                }
                Step::Link(up) => r.wire.down = !up,
            }
            // Each tick above happened at the current time; check it too.
            r.tick();
            prop_assert!(!released(&r) || r.ms < granted_until,
                "released at {} after the grant ended at {}", r.ms, granted_until);
        }
    }
}
