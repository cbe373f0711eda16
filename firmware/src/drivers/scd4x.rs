//! A Sensirion SCD40/SCD41 CO2 sensor (CO2, temperature, humidity) over I2C, through the
//! `scd4x` crate: started in periodic mode (a reading every 5 s), polled for new data.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use scd4x::Scd4x;

/// A reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Co2Sample {
    /// CO2 in parts per million.
    pub ppm: u16,
    /// Degrees Celsius.
    pub celsius: f32,
    /// Relative humidity, percent.
    pub humidity: f32,
}

/// Why the sensor failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Co2Error<E> {
    /// The I2C bus failed.
    Bus(E),
    /// A checksum did not match: the reading is dropped.
    Crc,
    /// The sensor refused a command.
    Sensor,
}

fn lift<E>(e: scd4x::Error<E>) -> Co2Error<E> {
    match e {
        scd4x::Error::I2c(e) => Co2Error::Bus(e),
        scd4x::Error::Crc => Co2Error::Crc,
        _ => Co2Error::Sensor,
    }
}

/// The sensor, measuring.
pub struct Co2Sensor<I, D> {
    chip: Scd4x<I, D>,
}

impl<I: I2c, D: DelayNs> Co2Sensor<I, D> {
    /// Takes the bus and starts periodic measurement. The sensor is stopped first (and given
    /// its 500 ms): after a restart of the program it is still measuring and would refuse to
    /// start; a sensor that was idle takes the stop as well.
    pub fn start(i2c: I, delay: D) -> Result<Self, Co2Error<I::Error>> {
        let mut chip = Scd4x::new(i2c, delay);
        chip.stop_periodic_measurement().map_err(lift)?;
        chip.start_periodic_measurement().map_err(lift)?;
        Ok(Co2Sensor { chip })
    }

    /// A new reading, if the sensor has one.
    pub fn poll(&mut self) -> Result<Option<Co2Sample>, Co2Error<I::Error>> {
        if !self.chip.data_ready_status().map_err(lift)? {
            return Ok(None);
        }
        let d = self.chip.measurement().map_err(lift)?;
        Ok(Some(Co2Sample {
            ppm: d.co2,
            celsius: d.temperature,
            humidity: d.humidity,
        }))
    }

    /// Gives the bus back (the sensor keeps measuring; it stops when powered down).
    pub fn release(self) -> I {
        self.chip.destroy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I};
    use std::vec;

    const ADDR: u8 = 0x62;

    #[test]
    fn a_reading_is_taken_when_ready() {
        let bus = I2cMock::new(&[
            I::write(ADDR, vec![0x3F, 0x86]), // stop (a restart finds it measuring)
            I::write(ADDR, vec![0x21, 0xB1]), // start periodic measurement
            I::write(ADDR, vec![0xE4, 0xB8]), // data ready?
            I::read(ADDR, vec![0x00, 0x00, 0x81]), // not yet
            I::write(ADDR, vec![0xE4, 0xB8]),
            I::read(ADDR, vec![0x80, 0x06, 0x04]), // ready
            I::write(ADDR, vec![0xEC, 0x05]),      // read measurement
            I::read(
                ADDR,
                vec![0x03, 0x2C, 0x57, 0x62, 0xBE, 0xAD, 0x73, 0x32, 0x30],
            ),
        ]);
        let mut s = Co2Sensor::start(bus, NoopDelay).unwrap();
        assert_eq!(s.poll(), Ok(None));
        let r = s.poll().unwrap().unwrap();
        assert_eq!(r.ppm, 812);
        assert!((r.celsius - 22.5).abs() < 0.01, "{}", r.celsius);
        assert!((r.humidity - 45.0).abs() < 0.01, "{}", r.humidity);
        s.release().done();
    }

    #[test]
    fn a_reading_with_a_bad_checksum_is_dropped() {
        let bus = I2cMock::new(&[
            I::write(ADDR, vec![0x3F, 0x86]),
            I::write(ADDR, vec![0x21, 0xB1]),
            I::write(ADDR, vec![0xE4, 0xB8]),
            I::read(ADDR, vec![0x80, 0x06, 0x04]),
            I::write(ADDR, vec![0xEC, 0x05]),
            I::read(
                ADDR,
                vec![0x03, 0x2C, 0x00, 0x62, 0xBE, 0xAD, 0x73, 0x32, 0x30],
            ),
        ]);
        let mut s = Co2Sensor::start(bus, NoopDelay).unwrap();
        assert_eq!(s.poll(), Err(Co2Error::Crc));
        s.release().done();
    }

    #[test]
    fn a_bus_error_is_reported() {
        let bus = I2cMock::new(&[I::write(ADDR, vec![0x3F, 0x86]).with_error(ErrorKind::Other)]);
        let mut bus2 = bus.clone();
        assert!(matches!(
            Co2Sensor::start(bus, NoopDelay),
            Err(Co2Error::Bus(ErrorKind::Other))
        ));
        bus2.done();
    }
}
