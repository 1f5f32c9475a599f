//! `nexussale-server`: see `nexussale-server --help` and the README.

use clap::Parser;
use nexussale_server::{Config, init_logs_with, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    // Lines written in bursts (at most 50 ms late); what is left is written when `_flush` drops,
    // after the spans still queued are sent (`_traces`, dropped first).
    let (_flush, _traces) = match init_logs_with(config.otlp_endpoint.as_deref()) {
        Ok(installed) => installed,
        Err(err) => {
            eprintln!("nexussale-server: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}
