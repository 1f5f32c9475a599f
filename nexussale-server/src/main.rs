//! `nexussale-server`: see `nexussale-server --help` and the README.

use clap::Parser;
use nexussale_server::{Config, init_logs, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Lines written in bursts (at most 50 ms late); what is left is written when `_flush` drops.
    let _flush = init_logs();
    match run(Config::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}
