//! `nexussale-server`: see `nexussale-server --help` and the README.

use clap::Parser;
use nexussale_server::{Config, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    // NEXUSSALE_LOG_FORMAT=json: one JSON object per line, for log collectors.
    if std::env::var("NEXUSSALE_LOG_FORMAT").is_ok_and(|format| format == "json") {
        logs.json().with_current_span(true).init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init();
    }
    match run(Config::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}
