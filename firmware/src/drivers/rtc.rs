//! The node's real-time clock: a DS3231 on I2C, through the `ds323x` driver (embedded-hal 1.0).
//!
//! A node that boots during a power cut has no network time; with a DS3231 and its coin cell it
//! still knows the time, and its offline decisions keep their hours. The DS3231 says whether its
//! oscillator stopped since it was last set (the coin cell ran out, or it was never set): then
//! its time is not trusted and the node counts its clock as unset. The node sets the RTC from the
//! system clock once that is synchronised (NTP), which also clears the flag.

use ds323x::interface::I2cInterface;
use ds323x::{ic, DateTimeAccess, Datelike, Ds323x, NaiveDate, NaiveDateTime};
use embedded_hal::i2c::I2c;

/// Times before this (2024-01-01) are a clock that was never set, whatever its flag says.
pub const EARLIEST: u64 = 1_704_067_200;

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// Why the RTC could not be read or set.
#[derive(Debug)]
pub enum RtcError<E> {
    /// The I2C bus failed (no RTC fitted, a loose wire).
    Bus(ds323x::Error<E>),
    /// A time the DS3231 cannot hold (before 2000 or after 2100).
    OutOfRange,
}

impl<E> From<ds323x::Error<E>> for RtcError<E> {
    fn from(e: ds323x::Error<E>) -> Self {
        RtcError::Bus(e)
    }
}

/// A DS3231 on an I2C bus.
pub struct Rtc<I2C> {
    dev: Ds323x<I2cInterface<I2C>, ic::DS3231>,
}

impl<I2C: I2c> Rtc<I2C> {
    /// The DS3231 at its fixed address (0x68).
    pub fn new(i2c: I2C) -> Self {
        Rtc {
            dev: Ds323x::new_ds3231(i2c),
        }
    }

    /// Unix seconds, or `None` when the time cannot be trusted: the oscillator stopped since the
    /// clock was last set, or it reads before [`EARLIEST`].
    pub fn unix(&mut self) -> Result<Option<u64>, RtcError<I2C::Error>> {
        if self.dev.has_been_stopped()? {
            return Ok(None);
        }
        let t = self.dev.datetime()?;
        let secs = t.and_utc().timestamp();
        Ok(u64::try_from(secs).ok().filter(|s| *s >= EARLIEST))
    }

    /// Sets the clock to `unix` seconds (UTC) and marks its time as good again.
    pub fn set_unix(&mut self, unix: u64) -> Result<(), RtcError<I2C::Error>> {
        let t = from_unix(unix).ok_or(RtcError::OutOfRange)?;
        if !(2000..2100).contains(&t.year()) {
            return Err(RtcError::OutOfRange);
        }
        self.dev.set_datetime(&t)?;
        self.dev.clear_has_been_stopped_flag()?;
        Ok(())
    }

    /// The I2C bus back.
    pub fn release(self) -> I2C {
        self.dev.destroy_ds3231()
    }
}

/// Unix seconds as a UTC date and time.
fn from_unix(unix: u64) -> Option<NaiveDateTime> {
    let secs = i64::try_from(unix).ok()?;
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400) as u32;
    let date =
        NaiveDate::from_num_days_from_ce_opt(i32::try_from(days + EPOCH_DAYS_FROM_CE).ok()?)?;
    date.and_hms_opt(rest / 3_600, rest / 60 % 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I};

    const ADDR: u8 = 0x68;
    const STATUS: u8 = 0x0F;

    /// 2026-12-05 12:34:56 UTC, a Saturday, as the DS3231's registers hold it (BCD, 24-hour).
    const REGS: [u8; 7] = [0x56, 0x34, 0x12, 0x07, 0x05, 0x12, 0x26];
    const UNIX: u64 = 1_796_474_096;

    #[test]
    fn a_running_clock_gives_its_time_in_unix_seconds() {
        let bus = I2cMock::new(&[
            I::write_read(ADDR, vec![STATUS], vec![0x08]),
            I::write_read(ADDR, vec![0x00], REGS.to_vec()),
        ]);
        let mut rtc = Rtc::new(bus);
        assert_eq!(rtc.unix().unwrap(), Some(UNIX));
        rtc.release().done();
    }

    #[test]
    fn a_clock_whose_oscillator_stopped_is_not_trusted() {
        // OSF set: the coin cell ran out, or the clock was never set.
        let bus = I2cMock::new(&[I::write_read(ADDR, vec![STATUS], vec![0x88])]);
        let mut rtc = Rtc::new(bus);
        assert_eq!(rtc.unix().unwrap(), None);
        rtc.release().done();
        // Running, but at the factory's 2000-01-01: never set.
        let bus = I2cMock::new(&[
            I::write_read(ADDR, vec![STATUS], vec![0x08]),
            I::write_read(ADDR, vec![0x00], vec![0, 0, 0, 0x07, 0x01, 0x01, 0x00]),
        ]);
        let mut rtc = Rtc::new(bus);
        assert_eq!(rtc.unix().unwrap(), None);
        rtc.release().done();
    }

    #[test]
    fn setting_the_clock_writes_the_time_and_clears_the_stopped_flag() {
        let mut regs = vec![0x00];
        regs.extend_from_slice(&REGS);
        let bus = I2cMock::new(&[
            I::write(ADDR, regs),
            // The flag cleared; the alarm flags written as 1, which leaves them as they are.
            I::write(ADDR, vec![STATUS, 0x0B]),
        ]);
        let mut rtc = Rtc::new(bus);
        rtc.set_unix(UNIX).unwrap();
        rtc.release().done();
    }

    #[test]
    fn a_missing_rtc_is_an_error_not_a_time() {
        let bus =
            I2cMock::new(
                &[I::write_read(ADDR, vec![STATUS], vec![0]).with_error(ErrorKind::Other)],
            );
        let mut rtc = Rtc::new(bus);
        assert!(matches!(rtc.unix(), Err(RtcError::Bus(_))));
        rtc.release().done();
        let mut rtc = Rtc::new(I2cMock::new(&[]));
        assert!(matches!(rtc.set_unix(1_000), Err(RtcError::OutOfRange)));
        rtc.release().done();
    }
}
