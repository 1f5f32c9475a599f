//! What every handler shares.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use nexussale_core::FlashSale;

/// Checks that one backend answers, for `GET /ready`.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, nexussale_core::Result<()>> + Send + Sync>;

/// The state behind the HTTP service.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: FlashSale,
    /// The bearer token admin routes require; `None` leaves them open.
    pub admin_token: Option<String>,
    /// How long one request may take before it is answered 503 `unavailable` (a backend that
    /// hangs never holds a client longer); `None`: no limit.
    pub request_timeout: Option<Duration>,
    /// One probe per backend (`stock`, `queue`, `orders`), asked by `GET /ready`. A backend
    /// without a probe (in process) is always ready.
    pub probes: Vec<(&'static str, Probe)>,
}

impl AppState {
    /// State for `engine`: admin routes open, no probes.
    pub fn new(engine: FlashSale) -> Self {
        Self {
            engine,
            admin_token: None,
            request_timeout: None,
            probes: Vec::new(),
        }
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("engine", &self.engine)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("request_timeout", &self.request_timeout)
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
