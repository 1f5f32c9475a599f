//! What every handler shares.

use nexussale_core::FlashSale;

/// The state behind the HTTP service.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine.
    pub engine: FlashSale,
}
