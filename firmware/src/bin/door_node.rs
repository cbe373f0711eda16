//! `door-node`: a Kombinat door node on a Raspberry Pi. Reads cards (MFRC522 on SPI, or a
//! Wiegand reader on two GPIOs), drives the strike, LEDs and buzzer, watches the contact, the
//! exit button and the tamper switch, and talks to the gateway over MQTT. Logs to stderr for
//! journald; stops cleanly on SIGTERM or Ctrl-C with the door locked.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use kombinat_firmware::config::{DoorNodeFile, ReaderConfig, State};
use kombinat_firmware::door::{DoorController, DoorPins, Outputs, Supply};
use kombinat_firmware::drivers::battery::BatteryGauge;
use kombinat_firmware::drivers::mfrc522::CardReader;
use kombinat_firmware::drivers::rtc::Rtc;
use kombinat_firmware::mqtt::{deliver, door_subscriptions, parse_door, Clock, MqttLink};
use kombinat_firmware::rpi::{init_logging, shutdown, RpiSpiDevice, WiegandInput, TICK};
use kombinat_protocol::Credential;
use rppal::gpio::Gpio;

/// Allow-list entries a Pi node holds: as many as fit in the largest message the gateway sends
/// (256 KiB of JSON, about 55 bytes an entry).
const CARDS: usize = kombinat_protocol::door::ALLOW_LIST_MAX;
/// Offline decisions kept until the gateway has them.
const LOG: usize = 4_096;

#[derive(Parser)]
#[command(
    name = "door-node",
    version,
    about = "A Kombinat door node on a Raspberry Pi"
)]
struct Args {
    /// The node's configuration file.
    #[arg(long, default_value = "/etc/kombinat/door-node.toml")]
    config: PathBuf,
}

enum Reader {
    Rfid(CardReader<RpiSpiDevice>),
    Wiegand(Box<WiegandInput>),
}

impl Reader {
    fn poll(&mut self) -> Option<Credential> {
        match self {
            Reader::Rfid(r) => match r.poll() {
                Ok(c) => c.map(Credential::Card),
                Err(e) => {
                    tracing::warn!("card reader: {e:?}");
                    None
                }
            },
            Reader::Wiegand(w) => match w.poll()? {
                Ok(f) => Some(Credential::Card(f.card())),
                Err(e) => {
                    tracing::warn!("Wiegand frame refused: {e:?}");
                    None
                }
            },
        }
    }
}

fn main() -> Result<()> {
    init_logging();
    let args = Args::parse();
    let file = DoorNodeFile::load(&args.config)?;
    let mut state = State::next_boot(&file.node.state_file)
        .with_context(|| format!("state file {}", file.node.state_file.display()))?;
    let cfg = file.door_config(&args.config, &state)?;

    let gpio = Gpio::new().context("GPIO")?;
    let p = file.pins;
    let output = |n: u8| -> Result<rppal::gpio::OutputPin> { Ok(gpio.get(n)?.into_output_low()) };
    let input = |n: u8| -> Result<rppal::gpio::InputPin> { Ok(gpio.get(n)?.into_input_pullup()) };
    let mut pins = Deenergise(DoorPins::new(
        output(p.strike)?,
        output(p.green)?,
        output(p.red)?,
        output(p.buzzer)?,
        input(p.contact)?,
        input(p.exit)?,
        input(p.tamper)?,
        file.polarity,
    ));
    let mut reader = match file.reader {
        ReaderConfig::Mfrc522 { bus, cs, clock_hz } => Reader::Rfid(
            CardReader::new(RpiSpiDevice::open(bus, cs, clock_hz)?)
                .map_err(|e| anyhow::anyhow!("MFRC522: {e:?}"))?,
        ),
        ReaderConfig::Wiegand { d0, d1 } => {
            Reader::Wiegand(Box::new(WiegandInput::open(&gpio, d0, d1)?))
        }
    };

    // The supply and the alert contact, where wired (mains high while present; the contact to
    // ground when closed).
    let mains = p.mains.map(input).transpose()?;
    // The battery's gauge, read every ten seconds (the voltage moves slowly).
    let mut gauge = match file.battery {
        Some(b) => Some(
            BatteryGauge::new(
                rppal::i2c::I2c::with_bus(b.i2c_bus)
                    .with_context(|| format!("I2C bus {}", b.i2c_bus))?,
                b.address,
            )
            .map_err(|e| anyhow::anyhow!("battery gauge: {e:?}"))?,
        ),
        None => None,
    };
    let mut battery_mv: Option<u32> = None;
    let mut gauge_read: Option<std::time::Instant> = None;
    let alert = p.alert.map(input).transpose()?;
    // The time at boot: the system's once synchronised, else the RTC's, else none (offline
    // decisions then grant only what holds at any hour).
    let mut rtc = match file.clock.rtc_i2c_bus {
        Some(bus) => Some(Rtc::new(
            rppal::i2c::I2c::with_bus(bus).with_context(|| format!("I2C bus {bus}"))?,
        )),
        None => None,
    };
    let rtc_unix = match rtc.as_mut().map(|r| r.unix()) {
        Some(Ok(Some(u))) => Some(u),
        Some(Ok(None)) => {
            tracing::warn!("the real-time clock's time is not valid (stopped or never set)");
            None
        }
        Some(Err(e)) => {
            tracing::error!("the real-time clock cannot be read: {e:?}");
            None
        }
        None => None,
    };
    let clock = Clock::new(file.clock.synced_flag.clone(), rtc_unix);
    if !clock.set() {
        tracing::warn!("the clock is unset: offline decisions grant only rights that hold at any hour until it is");
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (mut link, mut down) = MqttLink::start(
            &file.mqtt.signed_in_as(cfg.device, &cfg.key),
            cfg.device,
            door_subscriptions(&file.mqtt.prefix, cfg.door),
            parse_door,
        );
        let mut node = Box::new(DoorController::<CARDS, LOG>::new(cfg));
        let mut rtc_set_at: Option<std::time::Instant> = None;
        let mut tick = tokio::time::interval(TICK);
        let mut stop = std::pin::pin!(shutdown());
        tracing::info!(door = %node.config().door, "door node running");
        // Under systemd with WatchdogSec, a control loop that stops turning (a hung bus, a
        // stuck read) is restarted: the watchdog is fed from the loop itself.
        kombinat_firmware::sdnotify::notify("READY=1");
        let feed_every = kombinat_firmware::sdnotify::watchdog_every();
        let mut fed = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => break,
            }
            if feed_every.is_some_and(|e| fed.elapsed() >= e) {
                kombinat_firmware::sdnotify::notify("WATCHDOG=1");
                fed = std::time::Instant::now();
            }
            let t = clock.now();
            while let Ok(m) = down.try_recv() {
                deliver(&mut node, &m, t);
            }
            if let Some(c) = reader.poll() {
                node.credential(c, t, &mut link);
            }
            let inputs = pins.0.read().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let out = node.tick(inputs, t, &mut link);
            if let Some(g) = gauge.as_mut() {
                if gauge_read.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(10)) {
                    gauge_read = Some(std::time::Instant::now());
                    battery_mv = match g.millivolts() {
                        Ok(mv) => Some(mv),
                        Err(e) => {
                            tracing::warn!("battery gauge: {e:?}");
                            None
                        }
                    };
                }
            }
            if mains.is_some() || alert.is_some() {
                let supply = Supply {
                    mains: mains.as_ref().map(|m| m.is_high()),
                    battery_mv,
                    alert: alert.as_ref().map(|a| a.is_low()),
                };
                node.supply(supply, t, &mut link);
            }
            // The RTC follows the synchronised system clock, hourly.
            if let Some(r) = rtc.as_mut() {
                if file.clock.synced_flag.is_some()
                    && clock.system_synced()
                    && rtc_set_at
                        .is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(3600))
                {
                    match r.set_unix(clock.now().unix) {
                        Ok(()) => rtc_set_at = Some(std::time::Instant::now()),
                        Err(e) => tracing::warn!("cannot set the real-time clock: {e:?}"),
                    }
                }
            }
            pins.0.apply(&out).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            // Kept at once: a command accepted just before a power cut must not be accepted
            // again after it, nor an older allow-list, and a release must survive it.
            // The latest time known is kept every ten minutes (the SD card), so that a node
            // rebooted with its clock unset still refuses a list that ran out before then.
            let known_unix = if node.known_unix() >= state.known_unix + 600 {
                node.known_unix()
            } else {
                state.known_unix
            };
            let now = State {
                gateway_counter: node.gateway_counter(),
                list_counter: node.list_counter(),
                released: node.released(),
                known_unix,
                ..state
            };
            if now != state {
                state = now;
                state.save(&file.node.state_file)?;
            }
        }
        link.goodbye(file.mqtt.heartbeat_s).await;
        tracing::info!("door node stopped");
        Ok(())
    })
}

/// The pins, with every output switched off when the program ends, however it ends (a return,
/// an error, a panic): the strike then does what it does without power, so a fail-secure door
/// locks and a fail-safe one (a maglock on an escape route) opens, as it would in a power cut.
struct Deenergise<P: AllOff>(P);

/// Outputs that can be switched off.
trait AllOff {
    fn all_off(&mut self);
}

impl<S, G, R, B, C, X, T> AllOff for DoorPins<S, G, R, B, C, X, T>
where
    S: embedded_hal::digital::OutputPin,
    G: embedded_hal::digital::OutputPin,
    R: embedded_hal::digital::OutputPin,
    B: embedded_hal::digital::OutputPin,
    C: embedded_hal::digital::InputPin,
    X: embedded_hal::digital::InputPin,
    T: embedded_hal::digital::InputPin,
{
    fn all_off(&mut self) {
        if let Err(e) = self.apply(&Outputs::default()) {
            tracing::error!("cannot switch the outputs off: {e:?}");
        }
    }
}

impl<P: AllOff> Drop for Deenergise<P> {
    fn drop(&mut self) {
        self.0.all_off();
    }
}
