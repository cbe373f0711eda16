//! Drivers for the readers and sensors, each owning its peripheral (`new` takes it, `release`
//! gives it back) and generic over embedded-hal 1.0:
//!
//! - [`mfrc522`]: a 13.56 MHz card reader over SPI, through the `mfrc522` crate;
//! - [`scd4x`]: the Sensirion SCD40/SCD41 CO2 sensor over I2C, through the `scd4x` crate;
//! - [`rtc`]: the DS3231 real-time clock over I2C, through the `ds323x` crate;
//! - [`battery`]: the backup battery's voltage from an INA219 over I2C, through the `ina219` crate.
//!
//! The Wiegand decoder is in [`crate::wiegand`]: it works on edge timestamps, not on a bus.

pub mod battery;
pub mod mfrc522;
pub mod rtc;
pub mod scd4x;
