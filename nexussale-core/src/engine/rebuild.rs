//! A stock store that lost a sale (Redis emptied or restarted without persistence) is rebuilt
//! from the repository before the sale sells again.
//!
//! Starting the sale afresh would sell every unit a second time, and answering "unknown sale"
//! would turn buyers away from a sale that exists. So the first call that meets the loss marks
//! the sale as rebuilding (purchases, payments and cancels get a retryable error, which the
//! server answers with 503 and `Retry-After`) and starts one rebuild: it waits until the
//! repository's counts stop moving (orders accepted before the loss may still be in the queue),
//! then restores the store from the orders, unless the store has the sale again by then
//! (another process rebuilt it first).

use std::sync::atomic::Ordering;

use tracing::{error, info, warn};

use super::FlashSale;
use super::worker::Backoff;
use crate::error::{Error, Result};
use crate::sale::Sku;

impl FlashSale {
    /// Passes `result` through, unless it says the stock store does not know a sale this engine
    /// knows: then the store lost it, a rebuild starts (once), and the answer is a retryable
    /// error.
    pub(super) fn unless_lost<T>(&self, sku: &Sku, result: Result<T>) -> Result<T> {
        match result {
            Err(Error::UnknownSale(_)) if self.inner.sales.load().contains_key(sku) => {
                Err(self.store_lost(sku))
            }
            other => other,
        }
    }

    /// Marks the sale as rebuilding and starts its rebuild unless one runs; answers the error
    /// callers get meanwhile.
    pub(super) fn store_lost(&self, sku: &Sku) -> Error {
        if let Some(entry) = self.inner.sales.load().get(sku)
            && !entry.rebuilding.swap(true, Ordering::AcqRel)
        {
            warn!(sku = %sku, "the stock store lost the sale; rebuilding it from the orders");
            let (engine, sku) = (self.clone(), sku.clone());
            tokio::spawn(async move { engine.rebuild(sku).await });
        }
        rebuilding(sku)
    }

    /// Rebuilds until it succeeds, backing off between failures; a sale that turns out not to
    /// exist anywhere is forgotten.
    async fn rebuild(&self, sku: Sku) {
        let mut backoff = Backoff::new(self.inner.config.worker_max_backoff);
        loop {
            match self.rebuild_once(&sku).await {
                Ok(restored) => {
                    info!(sku = %sku, restored, "sale stock rebuilt; purchases resume");
                    break;
                }
                Err(err) if err.is_retryable() => {
                    let pause = backoff.next();
                    warn!(sku = %sku, error = %err, retry_in_ms = pause.as_millis() as u64, "sale rebuild failed; retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(err) => {
                    error!(sku = %sku, error = %err, "sale cannot be rebuilt; forgetting it");
                    self.forget(&sku);
                    return;
                }
            }
        }
        if let Some(entry) = self.inner.sales.load().get(&sku) {
            entry.units_returned();
            entry.rebuilding.store(false, Ordering::Release);
        }
    }

    /// One attempt; answers whether this call restored the store (false: it had the sale again).
    async fn rebuild_once(&self, sku: &Sku) -> Result<bool> {
        let settle = self.inner.config.store_rebuild_settle;
        let mut counts = self.inner.repository.counts(sku).await?;
        loop {
            tokio::time::sleep(settle).await;
            let now = self.inner.repository.counts(sku).await?;
            if now == counts {
                break;
            }
            counts = now;
        }
        if self.inner.stock.sale(sku).await?.is_some() {
            return Ok(false);
        }
        let report = self.reconcile(sku, true).await?;
        Ok(report.repaired)
    }
}

/// What a call meets while its sale is rebuilt.
pub(super) fn rebuilding(sku: &Sku) -> Error {
    Error::retryable(
        "stock",
        format!("the stock store lost sale {sku}; it is being rebuilt from the orders"),
    )
}
