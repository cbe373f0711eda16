//! `sensor-node`: a Kombinat sensor node on a Raspberry Pi: a PIR, a two-beam people counter
//! and an SCD4x CO2 sensor (each optional), reporting to the gateway over MQTT.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use kombinat_firmware::config::{SensorNodeFile, State};
use kombinat_firmware::drivers::scd4x::Co2Sensor;
use kombinat_firmware::mqtt::{parse_nothing, Clock, MqttLink};
use kombinat_firmware::rpi::{init_logging, shutdown, TICK};
use kombinat_firmware::sensor::{Fitted, MaybeInput, NoPin, SensorController, SensorPins};
use rppal::gpio::{Gpio, InputPin};

#[derive(Parser)]
#[command(
    name = "sensor-node",
    version,
    about = "A Kombinat sensor node on a Raspberry Pi"
)]
struct Args {
    /// The node's configuration file.
    #[arg(long, default_value = "/etc/kombinat/sensor-node.toml")]
    config: PathBuf,
}

/// A pin that may not be fitted.
enum Opt {
    Pin(Fitted<InputPin>),
    None(NoPin),
}

impl MaybeInput for Opt {
    fn level(&mut self) -> Option<bool> {
        match self {
            Opt::Pin(p) => p.level(),
            Opt::None(n) => n.level(),
        }
    }
}

fn main() -> Result<()> {
    init_logging();
    let args = Args::parse();
    let file = SensorNodeFile::load(&args.config)?;
    let state = State::next_boot(&file.node.state_file)
        .with_context(|| format!("state file {}", file.node.state_file.display()))?;
    let cfg = file.sensor_config(&args.config, &state)?;
    let key = file.key(&args.config)?;

    let gpio = Gpio::new().context("GPIO")?;
    let pin = |n: Option<u8>| -> Result<Opt> {
        Ok(match n {
            Some(n) => Opt::Pin(Fitted(gpio.get(n)?.into_input_pulldown())),
            None => Opt::None(NoPin),
        })
    };
    let p = file.pins;
    let mut pins = SensorPins::new(
        pin(p.pir)?,
        pin(p.beam_outer)?,
        pin(p.beam_inner)?,
        p.beam_whole_high,
    );
    // The supply and the alert contact, where wired (mains high while present; the contact to
    // ground when closed).
    let mains = p
        .mains
        .map(|n| gpio.get(n).map(|g| g.into_input_pullup()))
        .transpose()?;
    let alert = p
        .alert
        .map(|n| gpio.get(n).map(|g| g.into_input_pullup()))
        .transpose()?;
    let mut co2 = if file.scd4x {
        let bus = rppal::i2c::I2c::new().context("I2C")?;
        Some(
            Co2Sensor::start(bus, rppal::hal::Delay::new())
                .map_err(|e| anyhow::anyhow!("SCD4x: {e:?}"))?,
        )
    } else {
        None
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (mut link, _none) = MqttLink::start(&file.mqtt, cfg.device, Vec::new(), parse_nothing);
        let mut node = SensorController::new(cfg);
        let clock = Clock::default();
        let mut tick = tokio::time::interval(TICK * 2);
        let mut co2_polled = Instant::now();
        let mut stop = std::pin::pin!(shutdown());
        tracing::info!(device = %cfg.device, "sensor node running");
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => break,
            }
            let mut inputs = pins.read();
            if let Some(s) = co2.as_mut() {
                if co2_polled.elapsed() >= Duration::from_secs(1) {
                    co2_polled = Instant::now();
                    match s.poll() {
                        Ok(sample) => inputs.co2 = sample,
                        Err(e) => tracing::warn!("SCD4x: {e:?}"),
                    }
                }
            }
            let t = clock.now();
            node.tick(inputs, t, &mut link);
            if let Some(key) = &key {
                if mains.is_some() || alert.is_some() {
                    let supply = kombinat_firmware::supply::Supply {
                        mains: mains.as_ref().map(|m| m.is_high()),
                        battery_mv: None,
                        alert: alert.as_ref().map(|a| a.is_low()),
                    };
                    node.supply(supply, key, t, &mut link);
                }
            }
        }
        link.goodbye(file.mqtt.heartbeat_s).await;
        Ok(())
    })
}
