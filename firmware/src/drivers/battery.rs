//! The backup battery's voltage: an INA219 on I2C (the gauge on most Raspberry Pi UPS HATs, or
//! one wired across the battery), through the `ina219` driver (embedded-hal 1.0). Only its bus
//! voltage is read: that is the battery's terminal voltage, which the gateway turns into time
//! left at the rate it falls.

use embedded_hal::i2c::I2c;
use ina219::address::Address;
use ina219::calibration::UnCalibrated;
use ina219::errors::BusVoltageReadError;
use ina219::SyncIna219;

/// An INA219 watching the battery.
pub struct BatteryGauge<I2C> {
    dev: SyncIna219<I2C, UnCalibrated>,
}

/// Why the gauge could not be used.
#[derive(Debug)]
pub enum GaugeError<E> {
    /// Not an INA219 address (0x40 to 0x4F).
    Address(u8),
    /// The bus failed, or the reading was out of the INA219's range.
    Read(BusVoltageReadError<E>),
}

impl<I2C: I2c> BatteryGauge<I2C> {
    /// The INA219 at `address` (0x40 on most UPS HATs), taken as it is (power-on defaults: a
    /// 32 V bus range, converting continuously).
    pub fn new(i2c: I2C, address: u8) -> Result<Self, GaugeError<I2C::Error>> {
        let address = Address::from_byte(address).map_err(|_| GaugeError::Address(address))?;
        Ok(BatteryGauge {
            dev: SyncIna219::new_unchecked(i2c, address, UnCalibrated),
        })
    }

    /// The battery's voltage in millivolts.
    pub fn millivolts(&mut self) -> Result<u32, GaugeError<I2C::Error>> {
        self.dev
            .bus_voltage()
            .map(|v| u32::from(v.voltage_mv()))
            .map_err(GaugeError::Read)
    }

    /// The I2C bus back.
    pub fn release(self) -> I2C {
        self.dev.destroy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I};

    /// The bus voltage register: bits 15..3 in steps of 4 mV.
    fn reg(mv: u16) -> Vec<u8> {
        ((mv / 4) << 3 | 0b10).to_be_bytes().to_vec()
    }

    #[test]
    fn the_battery_reads_in_millivolts() {
        let bus = I2cMock::new(&[
            I::write_read(0x40, vec![0x02], reg(12_180)),
            I::write_read(0x40, vec![0x02], reg(11_496)),
        ]);
        let mut g = BatteryGauge::new(bus, 0x40).unwrap();
        assert_eq!(g.millivolts().unwrap(), 12_180);
        assert_eq!(g.millivolts().unwrap(), 11_496);
        g.release().done();
    }

    #[test]
    fn a_wrong_address_or_a_failing_bus_is_an_error() {
        let mut none = I2cMock::new(&[]);
        assert!(matches!(
            BatteryGauge::new(none.clone(), 0x68),
            Err(GaugeError::Address(0x68))
        ));
        none.done();
        let bus = I2cMock::new(&[I::write_read(0x41, vec![0x02], vec![0, 0])
            .with_error(embedded_hal::i2c::ErrorKind::Other)]);
        let mut g = BatteryGauge::new(bus, 0x41).unwrap();
        assert!(matches!(g.millivolts(), Err(GaugeError::Read(_))));
        g.release().done();
    }
}
