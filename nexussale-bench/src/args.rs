//! The command line, as shared/CONTRACT.md fixes it (plus additive flags).

use std::time::Duration;

use clap::Parser;

/// Fires a flash-sale burst at a NexusSale server, then audits what it did with it.
///
/// Creates the sale (unless --no-create), fires --users purchase attempts, one per user
/// `user-0`…`user-(U-1)` in shuffled order, --concurrency at a time over keep-alive connections;
/// waits until every accepted order is persisted (or --wait-persisted passes) and checks the
/// outcome against the server's orders. The last line on stdout is one JSON object; the exit
/// status is 1 when anything was oversold, duplicated or lost, or a request failed.
#[derive(Debug, Clone, Parser)]
#[command(name = "nexussale-bench", version)]
pub(crate) struct Args {
    /// The server's base URL (http only).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub(crate) url: String,
    /// The sale to buy from.
    #[arg(long, default_value = "bench")]
    pub(crate) sku: String,
    /// Units on sale (when the bench creates it); with --sales, units of each sale.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) stock: u64,
    /// Spread the burst over this many sales, `{sku}-0`…`{sku}-(N-1)` (created concurrently
    /// before the burst): buyer `user-u` buys from sale `u mod N`, and the audit checks each.
    #[arg(long, default_value_t = 1)]
    pub(crate) sales: u64,
    /// Purchase attempts: one per distinct user.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) users: u64,
    /// Requests in flight at once (one keep-alive connection each).
    #[arg(long, default_value_t = 256)]
    pub(crate) concurrency: usize,
    /// Units one user may buy (when the bench creates the sale).
    #[arg(long, default_value_t = 1)]
    pub(crate) per_user_limit: u32,
    /// The admin token, for creating the sale and reading its orders for the audit.
    #[arg(long, env = "NEXUSSALE_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<Secret>,
    /// The server's HS256 JWT key: each buyer `user-N` purchases with a token of its own
    /// (`sub` = `user-N`), signed before the burst.
    #[arg(long, env = "NEXUSSALE_JWT_SECRET", hide_env_values = true)]
    pub(crate) jwt_secret: Option<Secret>,
    /// Buy from an existing sale instead of creating it.
    #[arg(long)]
    pub(crate) no_create: bool,
    /// Seconds to wait for every accepted order to be persisted.
    #[arg(long, default_value_t = 60)]
    pub(crate) wait_persisted: u64,
    /// Before the burst, send this many `GET /health` at the same concurrency: the summary's
    /// `health_rps` and `ratio` (purchase rps / health rps) compare the two in one run.
    #[arg(long, default_value_t = 0)]
    pub(crate) baseline: u64,
    /// Before the burst, open this many live-stock streams of the sale
    /// (`GET /v1/sales/{sku}/events`), one connection each, read until the burst ends: the
    /// summary's `listener_events` counts what they received.
    #[arg(long, default_value_t = 0)]
    pub(crate) listeners: usize,
    /// Waiting-room mode: the sale gets a waiting room opening once every buyer has joined
    /// (--opens-in); buyers poll their tickets, buy with their passes, the bench pays each
    /// order; the summary adds the waiting room's audit (docs/BENCHMARKS.md).
    #[arg(long)]
    pub(crate) waiting_room: bool,
    /// Waiting-room mode: buyers who listen to their tickets' events (the sold-out notice is
    /// timed on them) rather than only polling.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) waiting_room_listeners: usize,
    /// Waiting-room mode: seconds from creating the sale to its opening (default: 3 + one per
    /// 4,000 buyers).
    #[arg(long)]
    pub(crate) opens_in: Option<u64>,
    /// Waiting-room mode: the passes' TTL in seconds.
    #[arg(long, default_value_t = 120)]
    pub(crate) pass_ttl: u64,
    /// Soak mode: instead of one burst, buy at --rate purchases per second for this many
    /// seconds, cancelling accepted orders once persisted so the stock never runs out, and
    /// sample the server's memory (RSS) every second.
    #[arg(long)]
    pub(crate) duration: Option<u64>,
    /// Soak mode: purchases per second.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) rate: u64,
    /// Reads mode: instead of buying, read this many orders by id (`GET /v1/orders/{id}`), then
    /// as many buyers' first pages (`GET /v1/orders?user=…`), --concurrency at a time, each drawn
    /// at random from --orders-file; the summary gives each kind's rate and percentiles.
    #[arg(long, requires = "orders_file")]
    pub(crate) reads: Option<u64>,
    /// Reads mode: orders that exist, one `<id> <user>` a line.
    #[arg(long)]
    pub(crate) orders_file: Option<std::path::PathBuf>,
    /// The server's process id, for RSS samples (default: the only local `nexussale-server`
    /// process, if the URL is on this machine).
    #[arg(long)]
    pub(crate) server_pid: Option<u32>,
}

/// A token or key from the command line: `Debug` shows that it is set, never what it is.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<set>")
    }
}

impl Secret {
    /// `secret.as_deref()` for an optional one.
    pub(crate) fn text(secret: &Option<Self>) -> Option<&str> {
        secret.as_ref().map(|secret| secret.0.as_str())
    }
}

impl Args {
    pub(crate) fn wait_persisted(&self) -> Duration {
        Duration::from_secs(self.wait_persisted)
    }
}
