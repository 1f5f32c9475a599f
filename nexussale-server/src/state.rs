//! What every handler shares.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use std::net::IpAddr;

use nexussale_core::{FlashSale, UserId};

use crate::feeds::Feeds;
use crate::forwarded::TrustedProxies;
use crate::identity::Identity;
use crate::log_writer::BufferedLog;
use crate::ratelimit::RateLimiter;
use crate::refusals::Refusals;
use crate::telemetry::UnitsGauges;

/// Checks that one backend answers, for `GET /ready`.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, nexussale_core::Result<()>> + Send + Sync>;

/// The state behind the HTTP service.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: FlashSale,
    /// Who may do what: the admin and payment tokens, buyer tokens. [`Identity::open`] (the
    /// default) leaves every route open.
    pub identity: Identity,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` name the client (for per-address limits).
    pub proxies: TrustedProxies,
    /// How long one request may take before it is answered 503 `unavailable` (a backend that
    /// hangs never holds a client longer); `None`: no limit.
    pub request_timeout: Option<Duration>,
    /// How long a client may take to send a request's body once its headers are in; past it the
    /// request is answered 408 and the connection closed (a slow body holds no connection slot
    /// for long). `None`: no limit.
    pub body_timeout: Option<Duration>,
    /// Purchases per second each user may make; `None`: no limit.
    pub user_limit: Option<Arc<RateLimiter<UserId>>>,
    /// Requests per second each client address may make on the purchase routes; `None`: no
    /// limit.
    pub ip_limit: Option<Arc<RateLimiter<IpAddr>>>,
    /// Whether each request writes an access-log line (`--access-log`).
    pub access_log: bool,
    /// The process's log writer, when its tracing subscriber writes [`PlainFormat`] lines into
    /// it (the binary's collected logs, see [`init_logs`]): the request's id then travels in a
    /// task-local slot instead of a span, and its access line is written straight into it in
    /// the same text, skipping tracing's per-request span and event. `None` (the default):
    /// both go through tracing, for any subscriber.
    ///
    /// [`PlainFormat`]: crate::PlainFormat
    /// [`init_logs`]: crate::init_logs
    pub log_lines: Option<BufferedLog>,
    /// One probe per backend (`stock`, `queue`, `orders`), asked by `GET /ready`. A backend
    /// without a probe (in process) is always ready.
    pub probes: Vec<(&'static str, Probe)>,
    /// The live stock feeds (`GET /v1/sales/{sku}/events`); see [`feed_tick`](Self::feed_tick).
    pub(crate) feeds: Feeds,
    /// Purchases refused and not yet added to the repository (the sale report's refusals).
    pub(crate) refusals: Arc<Refusals>,
    /// The sales' unit gauges of `GET /metrics`.
    pub(crate) units: UnitsGauges,
}

impl AppState {
    /// State for `engine`: every route open, no probes.
    pub fn new(engine: FlashSale) -> Self {
        Self {
            feeds: Feeds::new(engine.clone(), crate::feeds::DEFAULT_FEED_TICK),
            refusals: Arc::default(),
            units: UnitsGauges::default(),
            engine,
            identity: Identity::open(),
            proxies: TrustedProxies::default(),
            request_timeout: None,
            body_timeout: Some(crate::body::DEFAULT_BODY_TIMEOUT),
            user_limit: None,
            ip_limit: None,
            access_log: true,
            log_lines: None,
            probes: Vec::new(),
        }
    }

    /// How often a sale's live feed reads the sale (default
    /// [`DEFAULT_FEED_TICK`](crate::DEFAULT_FEED_TICK)): at most one event a tick reaches a
    /// listener, and one read a tick serves every listener of the sale.
    pub fn feed_tick(mut self, tick: Duration) -> Self {
        self.feeds = Feeds::new(self.engine.clone(), tick);
        self
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("engine", &self.engine)
            .field("identity", &self.identity)
            .field("proxies", &self.proxies)
            .field("request_timeout", &self.request_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("user_limit", &self.user_limit.is_some())
            .field("ip_limit", &self.ip_limit.is_some())
            .field("access_log", &self.access_log)
            .field("log_lines", &self.log_lines.is_some())
            .field("feeds", &self.feeds)
            .field(
                "probes",
                &self
                    .probes
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
