//! The `kombinat` binary: parse the command line, set up logging, run, report errors as sentences.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = kombinat::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // rumqttd's router logs every client's orderly disconnect as an error
            // ("no-connection id … is already gone"); that one target is silenced by default.
            EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                EnvFilter::new("warn,kombinat=info,rumqttd::router::routing=off")
            }),
        )
        .with_writer(std::io::stderr)
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
