//! Raspberry Pi glue (feature `rpi`): rppal's GPIO, SPI and I2C under the embedded-hal 1.0
//! traits the core is written against. rppal is used here and nowhere else; its author retired
//! it in 2025, and linux-embedded-hal could take its place without touching the core.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use embedded_hal::spi::{ErrorType, Operation, SpiDevice};
use rppal::gpio::{Event, Gpio, InputPin, Trigger};
use rppal::spi::{Bus, Mode, Segment, SlaveSelect, Spi};

use crate::wiegand::{Line, Timing, WiegandDecoder, WiegandError};

/// rppal's SPI as an embedded-hal `SpiDevice`, each transaction one ioctl with chip select held
/// throughout. (rppal's own `SimpleHalSpiDevice` sends zeros for transfer-in-place buffers,
/// which every MFRC522 register read uses.)
pub struct RpiSpiDevice(pub Spi);

impl RpiSpiDevice {
    /// Opens SPI `bus`/`cs` at `clock_hz`, mode 0.
    pub fn open(bus: u8, cs: u8, clock_hz: u32) -> rppal::spi::Result<Self> {
        let bus = match bus {
            0 => Bus::Spi0,
            1 => Bus::Spi1,
            _ => Bus::Spi2,
        };
        let cs = match cs {
            0 => SlaveSelect::Ss0,
            1 => SlaveSelect::Ss1,
            _ => SlaveSelect::Ss2,
        };
        Ok(RpiSpiDevice(Spi::new(bus, cs, clock_hz, Mode::Mode0)?))
    }
}

impl ErrorType for RpiSpiDevice {
    type Error = rppal::spi::Error;
}

impl SpiDevice<u8> for RpiSpiDevice {
    fn transaction(&mut self, ops: &mut [Operation<'_, u8>]) -> Result<(), Self::Error> {
        let copies: Vec<Vec<u8>> = ops
            .iter()
            .map(|op| match op {
                Operation::TransferInPlace(b) => b.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        let (speed, bits) = (self.0.clock_speed()?, self.0.bits_per_word()?);
        let segments: Vec<Segment> = ops
            .iter_mut()
            .zip(copies.iter())
            .map(|(op, copy)| match op {
                Operation::Read(b) => Segment::with_read(b),
                Operation::Write(b) => Segment::with_write(b),
                Operation::Transfer(r, w) => Segment::new(r, w),
                Operation::TransferInPlace(b) => Segment::new(b, copy.as_slice()),
                Operation::DelayNs(ns) => Segment::with_settings(
                    None,
                    None,
                    speed,
                    u16::try_from(*ns / 1_000).unwrap_or(u16::MAX),
                    bits,
                    false,
                ),
            })
            .collect();
        self.0.transfer_segments(&segments)
    }
}

/// A Wiegand reader on two GPIO inputs, its edges timestamped by the kernel.
pub struct WiegandInput {
    _d0: InputPin,
    _d1: InputPin,
    rx: mpsc::Receiver<(Line, bool, u64)>,
    decoder: WiegandDecoder,
    held: Vec<(Line, bool, u64)>,
    last: Option<(u64, Instant)>,
}

/// Edges are held this long before the decoder sees them: D0 and D1 are watched by two
/// threads, so their edges may arrive out of order, and are put back in time order first.
const REORDER_US: u64 = 5_000;

impl WiegandInput {
    /// Watches both edges of D0 and D1 (pulled up).
    pub fn open(gpio: &Gpio, d0: u8, d1: u8) -> rppal::gpio::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let watch = |pin: u8, line: Line| -> rppal::gpio::Result<InputPin> {
            let mut p = gpio.get(pin)?.into_input_pullup();
            let tx = tx.clone();
            p.set_async_interrupt(Trigger::Both, None, move |e: Event| {
                let low = e.trigger == Trigger::FallingEdge;
                let _ = tx.send((line, low, e.timestamp.as_micros() as u64));
            })?;
            Ok(p)
        };
        Ok(WiegandInput {
            _d0: watch(d0, Line::D0)?,
            _d1: watch(d1, Line::D1)?,
            rx,
            decoder: WiegandDecoder::new(Timing::default()),
            held: Vec::new(),
            last: None,
        })
    }

    /// Takes the edges that came and returns a frame once the lines have gone quiet.
    pub fn poll(&mut self) -> Option<Result<crate::wiegand::Frame, WiegandError>> {
        while let Ok(e) = self.rx.try_recv() {
            if self.last.is_none_or(|(at, _)| e.2 >= at) {
                self.last = Some((e.2, Instant::now()));
            }
            self.held.push(e);
        }
        let (at, seen) = self.last?;
        // The kernel's clock and ours differ; time is measured since the newest edge came.
        let now = at + u64::try_from(seen.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.held.sort_by_key(|e| e.2);
        let ripe = self.held.partition_point(|e| e.2 + REORDER_US <= now);
        for (line, low, at) in self.held.drain(..ripe) {
            self.decoder.edge(line, low, at);
        }
        let frame = self.decoder.poll(now);
        if frame.is_some() {
            self.last = None;
        }
        frame
    }
}

/// How often the nodes' loops run.
pub const TICK: Duration = Duration::from_millis(10);

/// Logs to stderr for journald (which adds the time): `RUST_LOG` picks what, `info` by default.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .with_ansi(false)
        .init();
}

/// Resolves on SIGTERM (systemd stopping the unit) or Ctrl-C.
pub async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
