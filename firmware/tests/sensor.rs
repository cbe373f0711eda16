//! The sensor node: PIR hold, beam order, what is sent when, and the input pins.

use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as P};
use kombinat_firmware::drivers::scd4x::Co2Sample;
use kombinat_firmware::net::{Network, Up};
use kombinat_firmware::sensor::{
    BeamCounter, Direction, Fitted, NoPin, Pir, SensorConfig, SensorController, SensorInputs,
    SensorPins,
};
use kombinat_firmware::Time;
use kombinat_protocol::sensor::Measurement;
use kombinat_protocol::DeviceId;
use proptest::prelude::*;

#[derive(Default)]
struct Wire {
    down: bool,
    sent: Vec<(u64, Measurement)>,
    /// Signed power and alert reports: (counter, what), verified with the node's key.
    signed: Vec<(u64, String)>,
}

impl Network for Wire {
    type Error = ();
    fn connected(&self) -> bool {
        !self.down
    }
    fn send(&mut self, msg: Up<'_>) -> Result<(), ()> {
        match msg {
            Up::Reading(r) if !self.down => {
                self.sent.push((r.counter, r.reading));
                Ok(())
            }
            Up::Power(p) if !self.down => {
                use kombinat_protocol::auth::Signed;
                assert!(p.verify(&kombinat_protocol::auth::DeviceKey::from_bytes([7; 32])));
                self.signed.push((p.counter, format!("mains {}", p.mains)));
                Ok(())
            }
            Up::Alert(a) if !self.down => {
                use kombinat_protocol::auth::Signed;
                assert!(a.verify(&kombinat_protocol::auth::DeviceKey::from_bytes([7; 32])));
                self.signed.push((a.counter, format!("alert {}", a.active)));
                Ok(())
            }
            _ => Err(()),
        }
    }
}

fn cross(c: &mut BeamCounter, seq: &[(bool, bool)], t0: u64) -> Vec<Direction> {
    seq.iter()
        .enumerate()
        .filter_map(|(i, &(o, n))| c.update(o, n, t0 + 100 * i as u64))
        .collect()
}

const IN: [(bool, bool); 4] = [(true, false), (true, true), (false, true), (false, false)];
const OUT: [(bool, bool); 4] = [(false, true), (true, true), (true, false), (false, false)];

#[test]
fn a_sensor_node_reports_its_supply_and_alert_contact_signed_after_its_readings() {
    use kombinat_firmware::supply::Supply;
    let key = kombinat_protocol::auth::DeviceKey::from_bytes([7; 32]);
    let (mut n, mut w) = (node(), Wire::default());
    let mut ms = 10_000;
    for b in IN {
        n.tick(
            SensorInputs {
                beams: Some(b),
                ..Default::default()
            },
            at(ms),
            &mut w,
        );
        ms += 50;
    }
    ms += 2_000;
    n.tick(SensorInputs::default(), at(ms), &mut w);
    let s = |mains, alert| Supply {
        mains: Some(mains),
        battery_mv: None,
        alert: Some(alert),
    };
    n.supply(s(true, false), &key, at(ms), &mut w);
    n.supply(s(true, false), &key, at(ms + 1_000), &mut w);
    n.supply(s(false, true), &key, at(ms + 2_000), &mut w);
    let what: Vec<&str> = w.signed.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        what,
        ["mains true", "alert false", "mains false", "alert true"]
    );
    // One counter for readings and reports: each above the last.
    let last_reading = w.sent.last().unwrap().0;
    let counters: Vec<u64> = w.signed.iter().map(|(c, _)| *c).collect();
    assert!(counters[0] > last_reading);
    assert!(counters.windows(2).all(|p| p[0] < p[1]), "{counters:?}");
}

#[test]
fn the_order_of_the_beams_gives_the_direction() {
    let mut c = BeamCounter::new(5_000);
    assert_eq!(cross(&mut c, &IN, 0), vec![Direction::In]);
    assert_eq!(cross(&mut c, &OUT, 1_000), vec![Direction::Out]);
    // A quick walker never covers both beams at once: still a crossing.
    assert_eq!(
        cross(
            &mut c,
            &[(true, false), (false, true), (false, false)],
            2_000
        ),
        vec![Direction::In]
    );
}

#[test]
fn stepping_in_and_turning_back_counts_nothing() {
    let mut c = BeamCounter::new(5_000);
    let back = [(true, false), (true, true), (true, false), (false, false)];
    assert!(cross(&mut c, &back, 0).is_empty());
    assert!(cross(&mut c, &[(true, true), (false, false)], 1_000).is_empty());
}

#[test]
fn a_crossing_that_takes_too_long_counts_nothing() {
    let mut c = BeamCounter::new(5_000);
    assert_eq!(c.update(true, false, 0), None);
    assert_eq!(c.update(true, true, 100), None);
    assert_eq!(c.update(false, true, 200), None);
    assert_eq!(c.update(false, false, 6_000), None);
    assert_eq!(cross(&mut c, &IN, 7_000), vec![Direction::In]);
}

#[test]
fn the_pir_holds_motion_after_the_last_movement() {
    let mut p = Pir::new(60_000);
    assert!(!p.update(false, 0));
    assert!(p.update(true, 1_000));
    assert!(p.update(false, 60_999));
    assert!(!p.update(false, 61_000));
}

fn node() -> SensorController {
    let mut cfg = SensorConfig::new(DeviceId::parse("sensor-cowork").unwrap());
    cfg.pir_hold_ms = 10_000;
    SensorController::new(cfg)
}

fn at(ms: u64) -> Time {
    Time { ms, unix: 0 }
}

#[test]
fn crossings_are_summed_and_sent_within_a_second() {
    let (mut n, mut w) = (node(), Wire::default());
    let mut ms = 10_000;
    for _ in 0..3 {
        for b in IN {
            n.tick(
                SensorInputs {
                    beams: Some(b),
                    ..Default::default()
                },
                at(ms),
                &mut w,
            );
            ms += 50;
        }
    }
    for b in OUT {
        n.tick(
            SensorInputs {
                beams: Some(b),
                ..Default::default()
            },
            at(ms),
            &mut w,
        );
        ms += 50;
    }
    let counters: Vec<_> = w
        .sent
        .iter()
        .filter_map(|(_, m)| match m {
            Measurement::Counter { entered, out } => Some((*entered, *out)),
            _ => None,
        })
        .collect();
    assert_eq!(
        counters,
        vec![(0, 0)],
        "at the start the counter says it is there; the crossings wait for the second"
    );
    n.tick(SensorInputs::default(), at(ms + 1_000), &mut w);
    let total = w.sent.iter().fold((0, 0), |acc, (_, m)| match m {
        Measurement::Counter { entered, out } => (acc.0 + entered, acc.1 + out),
        _ => acc,
    });
    assert_eq!(total, (3, 1));
}

#[test]
fn a_counter_nobody_crosses_says_it_is_there_at_the_start_and_every_refresh() {
    let (mut n, mut w) = (node(), Wire::default());
    let still = SensorInputs {
        beams: Some((false, false)),
        ..Default::default()
    };
    let zeros = |w: &Wire| {
        w.sent
            .iter()
            .filter(|(_, m)| matches!(m, Measurement::Counter { entered: 0, out: 0 }))
            .count()
    };
    let refresh = u64::from(SensorConfig::new(DeviceId::parse("x").unwrap()).motion_refresh_ms);
    n.tick(still, at(1_000), &mut w);
    assert_eq!(zeros(&w), 1, "at the start");
    for k in 1..refresh / 1_000 {
        n.tick(still, at(1_000 + k * 1_000), &mut w);
    }
    assert_eq!(zeros(&w), 1, "not again within the refresh");
    n.tick(still, at(1_000 + refresh), &mut w);
    assert_eq!(zeros(&w), 2, "again after it");
    // A node without beams sends no counter reading at all.
    let (mut n, mut w) = (node(), Wire::default());
    n.tick(SensorInputs::default(), at(1_000), &mut w);
    n.tick(SensorInputs::default(), at(1_000 + refresh), &mut w);
    assert!(!w
        .sent
        .iter()
        .any(|(_, m)| matches!(m, Measurement::Counter { .. })));
}

#[test]
fn crossings_while_offline_are_kept_and_sent_when_the_link_returns() {
    let (mut n, mut w) = (
        node(),
        Wire {
            down: true,
            ..Default::default()
        },
    );
    for (i, b) in IN.iter().chain(IN.iter()).enumerate() {
        n.tick(
            SensorInputs {
                beams: Some(*b),
                ..Default::default()
            },
            at(i as u64 * 50),
            &mut w,
        );
    }
    assert_eq!(n.unsent(), (2, 0));
    w.down = false;
    n.tick(SensorInputs::default(), at(5_000), &mut w);
    assert_eq!(
        w.sent,
        vec![(1, Measurement::Counter { entered: 2, out: 0 })]
    );
    assert_eq!(n.unsent(), (0, 0));
}

#[test]
fn motion_is_sent_on_change_and_climate_at_its_interval() {
    let (mut n, mut w) = (node(), Wire::default());
    let pir = |on| SensorInputs {
        pir: Some(on),
        ..Default::default()
    };
    n.tick(pir(false), at(0), &mut w);
    n.tick(pir(true), at(1_000), &mut w);
    n.tick(pir(false), at(2_000), &mut w);
    n.tick(pir(false), at(11_000), &mut w);
    let motion: Vec<bool> = w
        .sent
        .iter()
        .filter_map(|(_, m)| match m {
            Measurement::Motion { active } => Some(*active),
            _ => None,
        })
        .collect();
    assert_eq!(motion, vec![false, true, false]);
    let sample = Co2Sample {
        ppm: 812,
        celsius: 22.5,
        humidity: 45.0,
    };
    n.tick(
        SensorInputs {
            co2: Some(sample),
            ..Default::default()
        },
        at(12_000),
        &mut w,
    );
    n.tick(
        SensorInputs {
            co2: Some(sample),
            ..Default::default()
        },
        at(30_000),
        &mut w,
    );
    n.tick(SensorInputs::default(), at(72_000), &mut w);
    let co2 = w
        .sent
        .iter()
        .filter(|(_, m)| matches!(m, Measurement::Co2 { ppm: 812 }))
        .count();
    assert_eq!(co2, 2, "once at once, then after 60 s");
    let counters: Vec<u64> = w.sent.iter().map(|(c, _)| *c).collect();
    assert!(
        counters.windows(2).all(|w| w[1] > w[0]),
        "counters rise: {counters:?}"
    );
}

#[test]
fn the_pins_read_broken_beams_as_dark_receivers() {
    let pir = PinMock::new(&[P::get(State::High)]);
    let outer = PinMock::new(&[P::get(State::Low)]);
    let inner = PinMock::new(&[P::get(State::High)]);
    let mut pins = SensorPins::new(Fitted(pir), Fitted(outer), Fitted(inner), true);
    let r = pins.read();
    assert_eq!((r.pir, r.beams), (Some(true), Some((true, false))));
    let (Fitted(mut a), Fitted(mut b), Fitted(mut c)) = pins.release();
    a.done();
    b.done();
    c.done();
    let mut none = SensorPins::new(NoPin, NoPin, NoPin, true);
    assert_eq!(none.read(), SensorInputs::default());
}

proptest! {
    /// People walking through one after another, in random directions and at random speeds,
    /// are counted exactly.
    #[test]
    fn walkers_are_counted_exactly(walkers in proptest::collection::vec((any::<bool>(), 20u64..800), 0..50)) {
        let mut c = BeamCounter::new(5_000);
        let (mut t, mut got, mut want) = (0u64, (0, 0), (0, 0));
        for (going_in, step) in walkers {
            let seq = if going_in { IN } else { OUT };
            if going_in { want.0 += 1 } else { want.1 += 1 }
            for (o, i) in seq {
                t += step;
                match c.update(o, i, t) {
                    Some(Direction::In) => got.0 += 1,
                    Some(Direction::Out) => got.1 += 1,
                    None => {}
                }
            }
            t += 1_000;
        }
        prop_assert_eq!(got, want);
    }
}
