//! Room occupancy: what the sensors say about who is in a room.
//!
//! So far: [`detector`], the presence detector (light and CO2) and the head count from
//! workplace lights, both small enough to explain in one sentence and cheap enough for a Pi,
//! calibrated on the public UCI occupancy data ([`uci`] reads those files). The estimator that
//! fuses counters, entries, motion and CO2 per room, its publishing, history and no-shows follow.

pub mod detector;
pub mod estimator;
pub mod uci;
