//! An MFRC522 card reader: polls the field for a card and reads its UID.
//!
//! Each [`CardReader::poll`] sends REQA; a card that answers is selected (its UID read) and
//! halted, so a card left on the reader is read once, not on every poll, until it is taken away
//! and presented again (a halted card answers only WUPA, which this reader never sends).

use embedded_hal::spi::SpiDevice;
use kombinat_protocol::CardId;
use mfrc522::comm::blocking::spi::{DummyDelay, SpiInterface};
use mfrc522::{Error, Initialized, Mfrc522};

/// Why the reader failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderError<E> {
    /// The SPI bus failed.
    Bus(E),
    /// The chip did not come up (no version answer, or a chip that is not an MFRC522).
    NotFound(u8),
    /// The chip reported an error that is not about the card in the field.
    Chip,
}

/// An MFRC522 on an SPI device (chip select handled by the device).
pub struct CardReader<SPI: SpiDevice> {
    chip: Mfrc522<SpiInterface<SPI, DummyDelay>, Initialized>,
}

impl<SPI: SpiDevice> CardReader<SPI> {
    /// Resets and sets up the chip, and checks it answers with an MFRC522 version (0x91, 0x92,
    /// or 0x88 for the FM17522 clone).
    pub fn new(spi: SPI) -> Result<Self, ReaderError<SPI::Error>> {
        let mut chip = Mfrc522::new(SpiInterface::new(spi)).init().map_err(lift)?;
        match chip.version().map_err(lift)? {
            0x91 | 0x92 | 0x88 => Ok(CardReader { chip }),
            v => Err(ReaderError::NotFound(v)),
        }
    }

    /// Gives the SPI device back.
    pub fn release(self) -> SPI {
        self.chip.release().release()
    }

    /// Looks for a new card: `Ok(None)` when no card answers (or two collide, or the answer was
    /// garbled: the next poll tries again).
    pub fn poll(&mut self) -> Result<Option<CardId>, ReaderError<SPI::Error>> {
        let atqa = match self.chip.reqa() {
            Ok(a) => a,
            Err(e) => return quiet(e),
        };
        let uid = match self.chip.select(&atqa) {
            Ok(u) => u,
            Err(e) => return quiet(e),
        };
        let card = CardId::from_bytes(uid.as_bytes()).ok();
        self.chip.hlta().map_err(lift)?;
        Ok(card)
    }
}

fn lift<E>(e: Error<E>) -> ReaderError<E> {
    match e {
        Error::Comm(e) => ReaderError::Bus(e),
        _ => ReaderError::Chip,
    }
}

fn quiet<E, T>(e: Error<E>) -> Result<Option<T>, ReaderError<E>> {
    match e {
        Error::Comm(e) => Err(ReaderError::Bus(e)),
        Error::Overheating => Err(ReaderError::Chip),
        // No card, a collision, a bad frame: the field was empty or noisy this time.
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::spi::{Mock as SpiMock, Transaction as T};
    use std::vec;
    use std::vec::Vec;

    type Tx = T<u8>;

    fn wr(reg: u8, val: u8) -> Vec<Tx> {
        vec![
            T::transaction_start(),
            T::write_vec(vec![reg << 1, val]),
            T::transaction_end(),
        ]
    }

    fn rd(reg: u8, val: u8) -> Vec<Tx> {
        vec![
            T::transaction_start(),
            T::transfer_in_place(vec![(reg << 1) | 0x80, 0x00], vec![0x00, val]),
            T::transaction_end(),
        ]
    }

    fn wr_fifo(bytes: &[u8]) -> Vec<Tx> {
        vec![
            T::transaction_start(),
            T::write_vec(vec![0x12]),
            T::write_vec(bytes.to_vec()),
            T::transaction_end(),
        ]
    }

    fn rd_fifo(data: &[u8]) -> Vec<Tx> {
        let mut tx = vec![0x92u8; data.len()];
        if let Some(l) = tx.last_mut() {
            *l = 0x00;
        }
        vec![
            T::transaction_start(),
            T::write_vec(vec![0x92]),
            T::transfer_in_place(tx, data.to_vec()),
            T::transaction_end(),
        ]
    }

    fn init(version: u8) -> Vec<Tx> {
        [
            wr(0x01, 0x0F), // soft reset
            rd(0x01, 0x00), // reset done
            wr(0x12, 0x00),
            wr(0x13, 0x00),
            wr(0x24, 0x26),
            wr(0x2A, 0x80),
            wr(0x2B, 0xA9),
            wr(0x2C, 0x03),
            wr(0x2D, 0xE8),
            wr(0x15, 0x40),
            wr(0x11, 0x3D),
            rd(0x14, 0x80), // antenna on: read-modify-write
            wr(0x14, 0x83),
            rd(0x37, version),
        ]
        .concat()
    }

    fn transceive(tx: &[u8], framing: u8) -> Vec<Tx> {
        [
            wr(0x01, 0x00),
            wr(0x04, 0x7F),
            wr(0x0A, 0x80),
            wr_fifo(tx),
            wr(0x01, 0x0C),
            wr(0x0D, framing),
        ]
        .concat()
    }

    fn answer(data: &[u8]) -> Vec<Tx> {
        [
            rd(0x04, 0x30),
            rd(0x06, 0x00),
            rd(0x0A, data.len() as u8),
            rd_fifo(data),
            rd(0x0C, 0x00),
        ]
        .concat()
    }

    fn no_answer() -> Vec<Tx> {
        rd(0x04, 0x01) // the chip's timer ran out
    }

    fn crc(data: &[u8], res: [u8; 2]) -> Vec<Tx> {
        [
            wr(0x01, 0x00),
            wr(0x05, 0x04),
            wr(0x0A, 0x80),
            wr_fifo(data),
            wr(0x01, 0x03),
            rd(0x05, 0x04),
            wr(0x01, 0x00),
            rd(0x22, res[0]),
            rd(0x21, res[1]),
        ]
        .concat()
    }

    #[test]
    fn an_empty_field_reads_nothing() {
        let spi = SpiMock::new(&[init(0x92), transceive(&[0x26], 0x87), no_answer()].concat());
        let mut r = CardReader::new(spi).unwrap();
        assert_eq!(r.poll(), Ok(None));
        r.release().done();
    }

    #[test]
    fn a_chip_that_is_not_an_mfrc522_is_refused() {
        let mut spi = SpiMock::new(&init(0x00));
        assert!(matches!(
            CardReader::new(spi.clone()),
            Err(ReaderError::NotFound(0x00))
        ));
        spi.done();
    }

    #[test]
    fn a_card_is_selected_read_and_halted() {
        let uid = [0x04, 0xA1, 0xB2, 0xC3];
        let bcc = 0x04 ^ 0xA1 ^ 0xB2 ^ 0xC3;
        let select = [0x93, 0x70, 0x04, 0xA1, 0xB2, 0xC3, bcc];
        let mut select_crc = select.to_vec();
        select_crc.extend([0x9B, 0x05]);
        let spi = SpiMock::new(
            &[
                init(0x92),
                transceive(&[0x26], 0x87),
                answer(&[0x04, 0x00]), // ATQA
                rd(0x0E, 0x00),
                wr(0x0E, 0x00),
                transceive(&[0x93, 0x20], 0x80),
                answer(&[uid[0], uid[1], uid[2], uid[3], bcc]),
                crc(&select, [0x9B, 0x05]),
                transceive(&select_crc, 0x80),
                answer(&[0x08, 0xB6, 0xDD]), // SAK: complete, with its CRC
                crc(&[0x08], [0xB6, 0xDD]),
                crc(&[0x50, 0x00], [0x57, 0xCD]),
                transceive(&[0x50, 0x00, 0x57, 0xCD], 0x80),
                no_answer(), // HLTA is answered by silence
            ]
            .concat(),
        );
        let mut r = CardReader::new(spi).unwrap();
        assert_eq!(r.poll(), Ok(Some(CardId::parse("04A1B2C3").unwrap())));
        r.release().done();
    }
}
