//! Room occupancy: what the sensors say about who is in a room.
//!
//! [`detector`]: the presence detector (light and CO2) and the head count from workplace
//! lights, both small enough to explain in one sentence and cheap enough for a Pi, calibrated
//! on the public UCI occupancy data ([`uci`] reads those files). [`estimator`]: per room a head
//! count fused from counters, entries, motion and CO2. [`history`]: five-minute buckets and the
//! queries on them. [`noshow`]: bookings whose room stayed empty. All sans-IO, time passed in.

pub mod detector;
pub mod estimator;
pub mod history;
pub mod noshow;
pub mod uci;
