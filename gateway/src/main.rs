//! The `kombinat` binary: parse the command line, set up logging, run, report errors as sentences.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = kombinat::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // rumqttd logs every client's orderly disconnect as an error ("router-drop",
            // "no-connection id … is already gone"), so it is quiet by default; the gateway
            // checks the broker's bind and liveness itself. `RUST_LOG=rumqttd=info` shows it.
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("warn,kombinat=info,rumqttd=off")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: a log file or the journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut out = std::io::stdout().lock();
    match kombinat::cli::run(cli, &mut out, chrono::Utc::now()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
