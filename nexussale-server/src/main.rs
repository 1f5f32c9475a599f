//! `nexussale-server`: see `nexussale-server --help` and the README.

use clap::Parser;
use nexussale_server::{BufferedLog, Config, PlainFormat, plain_fields, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Lines written in bursts (at most 50 ms late); what is left is written when `_flush` drops.
    let (writer, _flush) = BufferedLog::stdout();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // NEXUSSALE_LOG_FORMAT=json: one JSON object per line, for log collectors.
    if std::env::var("NEXUSSALE_LOG_FORMAT").is_ok_and(|format| format == "json") {
        logs.json().with_current_span(true).init();
    } else if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        logs.with_ansi(true).init();
    } else {
        // Collected logs: the default format's text, written for a fraction of its cost.
        logs.with_ansi(false)
            .fmt_fields(plain_fields())
            .event_format(PlainFormat)
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
