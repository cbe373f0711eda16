//! Wiegand 26- and 34-bit frames, decoded from the edges of the reader's two data lines.
//!
//! A Wiegand reader holds D0 and D1 high and sends each bit as a short low pulse (about 50 µs,
//! every 1–2 ms) on D0 for a 0 or on D1 for a 1. The frame ends when the lines stay quiet. The
//! first bit is even parity over the first half of the data bits, the last bit odd parity over
//! the second half. No maintained crate does this, so here it is: [`WiegandDecoder`] takes edges
//! with their timestamps (from GPIO interrupts) and yields [`Frame`]s; [`encode`] and [`edges`]
//! produce the same signals, for tests and for the simulator's readers.
//!
//! Noise is ignored rather than guessed at: a pulse shorter than [`Timing::min_pulse_us`] or
//! longer than [`Timing::max_pulse_us`], or both lines low at once, adds no bit; a frame whose
//! length or parity is wrong is an error, never a card.

use kombinat_protocol::CardId;

/// A data line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// D0: a pulse is a 0.
    D0,
    /// D1: a pulse is a 1.
    D1,
}

/// The frame formats understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 26 bits: parity, 8-bit facility code, 16-bit card number, parity (H10301).
    W26,
    /// 34 bits: parity, 32 data bits, parity.
    W34,
}

impl Format {
    /// Bits in a frame, parity included.
    pub fn bits(self) -> u8 {
        match self {
            Format::W26 => 26,
            Format::W34 => 34,
        }
    }

    fn data_bits(self) -> u32 {
        u32::from(self.bits()) - 2
    }
}

/// Why a frame is not a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WiegandError {
    /// A number of bits that is neither 26 nor 34.
    Length(u8),
    /// A parity bit does not match.
    Parity,
}

/// A frame that passed its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Which of the formats the bit count and parity matched.
    pub format: Format,
    /// The data bits without parity (24 or 32 bits).
    pub data: u32,
}

impl Frame {
    /// The card as the gateway knows it: the data bits as 3 (26-bit) or 4 (34-bit) bytes of
    /// hex, so facility 18, number 4660 reads `121234`.
    pub fn card(&self) -> CardId {
        let b = self.data.to_be_bytes();
        let bytes = match self.format {
            Format::W26 => &b[1..],
            Format::W34 => &b[..],
        };
        match CardId::from_bytes(bytes) {
            Ok(c) => c,
            // 3 or 4 bytes are always a valid UID length.
            Err(_) => unreachable!("a Wiegand frame is 3 or 4 bytes"),
        }
    }
}

/// Timing limits, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Shorter pulses are glitches.
    pub min_pulse_us: u32,
    /// Longer pulses are a stuck line, not a bit.
    pub max_pulse_us: u32,
    /// Quiet this long ends a frame.
    pub frame_gap_us: u32,
}

impl Default for Timing {
    /// 20 µs to 500 µs pulses (the standard says 50 µs, some readers use 100–200 µs); a frame
    /// ends after 25 ms of quiet (bits come every 0.5–2 ms, frames at most a few per second).
    fn default() -> Self {
        Timing {
            min_pulse_us: 20,
            max_pulse_us: 500,
            frame_gap_us: 25_000,
        }
    }
}

/// Assembles bits from edges and frames from bits.
#[derive(Debug, Clone)]
pub struct WiegandDecoder {
    timing: Timing,
    bits: u64,
    count: u8,
    low_since: [Option<u64>; 2],
    last_edge: u64,
    noise: u32,
}

impl WiegandDecoder {
    /// A decoder with these limits.
    pub fn new(timing: Timing) -> Self {
        WiegandDecoder {
            timing,
            bits: 0,
            count: 0,
            low_since: [None, None],
            last_edge: 0,
            noise: 0,
        }
    }

    /// Pulses ignored as noise so far.
    pub fn noise(&self) -> u32 {
        self.noise
    }

    /// A line went low (`low = true`) or back high at `at_us`.
    pub fn edge(&mut self, line: Line, low: bool, at_us: u64) {
        let (i, other) = match line {
            Line::D0 => (0, 1),
            Line::D1 => (1, 0),
        };
        self.last_edge = at_us;
        if low {
            if self.low_since[other].is_some() {
                // Both lines low: interference, not a bit. Drop both pulses.
                self.low_since[other] = None;
                self.noise += 1;
                return;
            }
            self.low_since[i] = Some(at_us);
            return;
        }
        let Some(start) = self.low_since[i].take() else {
            return;
        };
        let width = at_us.saturating_sub(start);
        if width < u64::from(self.timing.min_pulse_us)
            || width > u64::from(self.timing.max_pulse_us)
        {
            self.noise += 1;
            return;
        }
        if self.count < 64 {
            self.bits = (self.bits << 1) | u64::from(i as u8);
        }
        self.count = self.count.saturating_add(1);
    }

    /// Ends the frame if the lines have been quiet long enough at `now_us`.
    pub fn poll(&mut self, now_us: u64) -> Option<Result<Frame, WiegandError>> {
        if self.count == 0
            || now_us.saturating_sub(self.last_edge) < u64::from(self.timing.frame_gap_us)
        {
            return None;
        }
        let (bits, count) = (self.bits, self.count);
        self.bits = 0;
        self.count = 0;
        self.low_since = [None, None];
        Some(decode(bits, count))
    }
}

fn ones(x: u64) -> u32 {
    x.count_ones()
}

/// Checks a frame of `count` bits (the first received in the highest place) and takes its data.
pub fn decode(bits: u64, count: u8) -> Result<Frame, WiegandError> {
    let format = match count {
        26 => Format::W26,
        34 => Format::W34,
        n => return Err(WiegandError::Length(n)),
    };
    let n = format.data_bits();
    let half = n / 2;
    let data = (bits >> 1) & ((1u64 << n) - 1);
    let first_parity = (bits >> (n + 1)) & 1;
    let last_parity = bits & 1;
    let first_half = data >> half;
    let second_half = data & ((1u64 << half) - 1);
    if (ones(first_half) + first_parity as u32) % 2 != 0
        || (ones(second_half) + last_parity as u32) % 2 != 1
    {
        return Err(WiegandError::Parity);
    }
    Ok(Frame {
        format,
        data: data as u32,
    })
}

/// Encodes `data` (24 or 32 bits used) as a frame: returns its bits (first sent in the highest
/// place) and their number.
pub fn encode(format: Format, data: u32) -> (u64, u8) {
    let n = format.data_bits();
    let half = n / 2;
    let data = u64::from(data) & ((1u64 << n) - 1);
    let even = u64::from(ones(data >> half) % 2 == 1);
    let odd = u64::from(ones(data & ((1u64 << half) - 1)) % 2 == 0);
    ((even << (n + 1)) | (data << 1) | odd, format.bits())
}

/// The edges a reader makes sending `count` bits of `bits`: for each bit a falling and a rising
/// edge on its line, `width_us` apart, one bit every `interval_us`, starting at `start_us`.
pub fn edges(
    bits: u64,
    count: u8,
    start_us: u64,
    width_us: u32,
    interval_us: u32,
) -> impl Iterator<Item = (Line, bool, u64)> {
    (0..count).flat_map(move |k| {
        let bit = (bits >> (count - 1 - k)) & 1;
        let line = if bit == 1 { Line::D1 } else { Line::D0 };
        let at = start_us + u64::from(k) * u64::from(interval_us);
        [(line, true, at), (line, false, at + u64::from(width_us))]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed(d: &mut WiegandDecoder, e: impl IntoIterator<Item = (Line, bool, u64)>) -> u64 {
        let mut last = 0;
        for (line, low, at) in e {
            d.edge(line, low, at);
            assert_eq!(
                d.poll(at),
                None,
                "a frame must not end while bits still come"
            );
            last = at;
        }
        last
    }

    #[test]
    fn a_26_bit_frame_gives_facility_and_number_as_hex() {
        let (bits, n) = encode(Format::W26, (18 << 16) | 4660);
        let mut d = WiegandDecoder::new(Timing::default());
        let end = feed(&mut d, edges(bits, n, 1_000, 50, 2_000));
        assert_eq!(d.poll(end + 24_000), None);
        let f = d.poll(end + 25_000).unwrap().unwrap();
        assert_eq!(f.format, Format::W26);
        assert_eq!(f.card().to_string(), "121234");
        assert_eq!(d.poll(end + 60_000), None, "a frame is given once");
    }

    #[test]
    fn the_known_h10301_example_decodes() {
        // Facility 1, card 1: 0 00000001 0000000000000001 0 — first half has one 1, so the
        // even parity bit is 1; second half has one 1, so the odd parity bit is 0.
        #[allow(clippy::unusual_byte_groupings)]
        let bits = 0b1_00000001_0000000000000001_0u64;
        assert_eq!(
            decode(bits, 26),
            Ok(Frame {
                format: Format::W26,
                data: (1 << 16) | 1
            })
        );
        assert_eq!(encode(Format::W26, (1 << 16) | 1), (bits, 26));
    }

    #[test]
    fn a_wrong_length_is_an_error() {
        let mut d = WiegandDecoder::new(Timing::default());
        let end = feed(&mut d, edges(0b1011, 4, 0, 50, 1_000));
        assert_eq!(d.poll(end + 30_000), Some(Err(WiegandError::Length(4))));
    }

    #[test]
    fn both_lines_low_at_once_adds_no_bit() {
        let (bits, n) = encode(Format::W26, 0x00AB_CDEF);
        let mut d = WiegandDecoder::new(Timing::default());
        let mut e: std::vec::Vec<_> = edges(bits, n, 0, 50, 2_000).collect();
        // A spike on both lines between bits 3 and 4.
        e.insert(8, (Line::D0, true, 7_000));
        e.insert(9, (Line::D1, true, 7_010));
        e.insert(10, (Line::D1, false, 7_060));
        e.insert(11, (Line::D0, false, 7_061));
        let end = feed(&mut d, e);
        assert_eq!(d.poll(end + 30_000).unwrap().unwrap().data, 0x00AB_CDEF);
        assert_eq!(d.noise(), 1);
    }

    proptest! {
        #[test]
        fn random_cards_survive_the_wire(
            w34 in any::<bool>(),
            data in any::<u32>(),
            width in 20u32..=400,
            gap in 500u32..=20_000,
            start in 0u64..1_000_000_000,
        ) {
            let format = if w34 { Format::W34 } else { Format::W26 };
            let data = if w34 { data } else { data & 0x00FF_FFFF };
            let (bits, n) = encode(format, data);
            let mut d = WiegandDecoder::new(Timing::default());
            let end = feed(&mut d, edges(bits, n, start, width, gap + width));
            let f = d.poll(end + 25_000).unwrap().unwrap();
            prop_assert_eq!(f, Frame { format, data });
        }

        #[test]
        fn one_flipped_bit_is_refused(w34 in any::<bool>(), data in any::<u32>(), flip in 0u8..34) {
            let format = if w34 { Format::W34 } else { Format::W26 };
            let (bits, n) = encode(format, data);
            let flip = flip % n;
            prop_assert_eq!(decode(bits ^ (1 << flip), n), Err(WiegandError::Parity));
        }

        #[test]
        fn glitches_are_ignored(
            data in 0u32..0x0100_0000,
            glitches in proptest::collection::vec((0u8..26, any::<bool>(), 1u32..20), 0..10),
        ) {
            let (bits, n) = encode(Format::W26, data);
            let mut e: std::vec::Vec<_> = edges(bits, n, 0, 50, 2_000).collect();
            // Short spikes half-way between bits, on either line.
            for (after, d1, width) in glitches {
                let at = u64::from(after) * 2_000 + 1_000;
                let line = if d1 { Line::D1 } else { Line::D0 };
                let pos = e.iter().position(|x| x.2 > at).unwrap_or(e.len());
                e.insert(pos, (line, false, at + u64::from(width)));
                e.insert(pos, (line, true, at));
            }
            let mut d = WiegandDecoder::new(Timing::default());
            let end = feed(&mut d, e);
            prop_assert_eq!(d.poll(end + 25_000), Some(Ok(Frame { format: Format::W26, data })));
        }
    }
}
