//! What every handler shares.

use std::fmt;
use std::sync::Arc;

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
            probes: Vec::new(),
        }
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("engine", &self.engine)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
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
