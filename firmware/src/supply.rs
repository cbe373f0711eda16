//! What a node says of its supply and its dry-contact alert input, shared by the door node and
//! the sensor node: a signed [`Power`] at start, whenever mains comes or goes, when the battery
//! moved [`BATTERY_STEP_MV`] while on battery, and with each heartbeat; a signed [`AlertInput`]
//! at start, on every change and with each heartbeat. Both use the node's own counter.

use kombinat_protocol::auth::{DeviceKey, Signed};
use kombinat_protocol::device::{AlertInput, Power};
use kombinat_protocol::door::VERSION;
use kombinat_protocol::DeviceId;

use crate::net::{Network, Up};

/// The node's supply and its dry-contact alert input, read where they are wired (a GPIO for
/// mains, an ADC or UPS HAT for the battery, a GPIO for the siren relay or key switch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Supply {
    /// Mains present, if wired (`None`: the node reports no power).
    pub mains: Option<bool>,
    /// The backup battery in millivolts, if measured.
    pub battery_mv: Option<u32>,
    /// The alert contact, if wired: true while it says alert.
    pub alert: Option<bool>,
}

/// The battery moving this much since the last report is reported at once while on battery.
pub const BATTERY_STEP_MV: u32 = 100;

/// What was last reported, and when.
#[derive(Debug, Clone, Copy, Default)]
pub struct SupplyReporter {
    supply_sent: Option<(Supply, u64)>,
    alert_sent: Option<(bool, u64)>,
}

impl SupplyReporter {
    /// Reports `s` as read at `now` (the node's milliseconds) if it is due, signing with `key`
    /// and the counters `next_counter` hands out; how many messages could not be sent.
    #[allow(clippy::too_many_arguments)]
    pub fn report<N: Network>(
        &mut self,
        s: Supply,
        now: u64,
        heartbeat_ms: u32,
        device: DeviceId,
        key: &DeviceKey,
        mut next_counter: impl FnMut() -> u64,
        net: &mut N,
    ) -> u32 {
        if !net.connected() {
            return 0;
        }
        let mut failed = 0;
        let beat = u64::from(heartbeat_ms);
        // With every heartbeat on mains too: a report lost while the gateway was down is made
        // good within a heartbeat.
        let due = s.mains.is_some()
            && match self.supply_sent {
                None => true,
                Some((last, at)) => {
                    last.mains != s.mains
                        || now.saturating_sub(at) >= beat
                        || (s.mains == Some(false)
                            && last
                                .battery_mv
                                .zip(s.battery_mv)
                                .is_some_and(|(a, b)| a.abs_diff(b) >= BATTERY_STEP_MV))
                }
            };
        if due {
            let mut p = Power {
                v: VERSION,
                device,
                counter: next_counter(),
                mains: s.mains.unwrap_or(true),
                battery_mv: s.battery_mv,
                mac: Default::default(),
            };
            p.sign(key);
            match net.send(Up::Power(&p)) {
                Ok(()) => self.supply_sent = Some((s, now)),
                Err(_) => failed += 1,
            }
        }
        if let Some(active) = s.alert {
            let due = self
                .alert_sent
                .is_none_or(|(last, at)| last != active || now.saturating_sub(at) >= beat);
            if due {
                let mut a = AlertInput {
                    v: VERSION,
                    device,
                    counter: next_counter(),
                    active,
                    mac: Default::default(),
                };
                a.sign(key);
                match net.send(Up::Alert(&a)) {
                    Ok(()) => self.alert_sent = Some((active, now)),
                    Err(_) => failed += 1,
                }
            }
        }
        failed
    }
}
