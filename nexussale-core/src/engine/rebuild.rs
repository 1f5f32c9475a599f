//! A stock store that lost a sale (Redis emptied or restarted without persistence) is rebuilt
//! from the repository before the sale sells again.
//!
//! Starting the sale afresh would sell every unit a second time, and answering "unknown sale"
//! would turn buyers away from a sale that exists. So the first call that meets the loss marks
//! the sale as rebuilding (purchases, payments and cancels get a retryable error, which the
//! server answers with 503 and `Retry-After`) and starts one rebuild: it waits until the order
//! worker has recorded every event queued before the loss (the queue's drain barrier,
//! [`OrderQueue::drained`](crate::OrderQueue::drained): placements, and pays and cancels the
//! repository could not take at once), then restores the store from the orders, unless the
//! store has the sale again by then (another process rebuilt it first).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::FlashSale;
use super::worker::Backoff;
use crate::error::{Error, Result};
use crate::sale::Sku;

impl FlashSale {
    /// Passes `result` through, unless it says the stock store does not know a sale this engine
    /// knows (the store lost it) or that its state of the sale went backwards (regressed): then
    /// a rebuild starts (once), and the answer is a retryable error.
    pub(super) fn unless_lost<T>(&self, sku: &Sku, result: Result<T>) -> Result<T> {
        match result {
            Err(Error::UnknownSale(_) | Error::StockRegressed(_))
                if self.inner.sales.contains(sku) =>
            {
                Err(self.store_lost(sku))
            }
            other => other,
        }
    }

    /// Marks the sale as rebuilding and starts its rebuild unless one runs; answers the error
    /// callers get meanwhile.
    pub(super) fn store_lost(&self, sku: &Sku) -> Error {
        if let Some(entry) = self.inner.sales.get(sku)
            && !entry.rebuilding.swap(true, Ordering::AcqRel)
        {
            warn!(sku = %sku, "the stock store lost the sale or its state went backwards; rebuilding it from the orders");
            crate::meter::rebuilding(sku, true);
            let (engine, sku) = (self.clone(), sku.clone());
            tokio::spawn(async move { engine.rebuild(sku).await });
        }
        rebuilding(sku)
    }

    /// Rebuilds until it succeeds, backing off between failures; a sale that turns out not to
    /// exist anywhere is forgotten.
    async fn rebuild(&self, sku: Sku) {
        let mut backoff = Backoff::new(self.inner.config.worker_max_backoff);
        let started = Instant::now();
        loop {
            match self.rebuild_once(&sku).await {
                Ok(restored) => {
                    let took_ms = started.elapsed().as_millis() as u64;
                    info!(sku = %sku, restored, took_ms, "sale stock rebuilt; purchases resume");
                    crate::meter::rebuilt(if restored { "restored" } else { "skipped" });
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
                    crate::meter::rebuilt("abandoned");
                    crate::meter::rebuilding(&sku, false);
                    return;
                }
            }
        }
        if let Some(entry) = self.inner.sales.get(&sku) {
            entry.units_returned();
            entry.rebuilding.store(false, Ordering::Release);
        }
        crate::meter::rebuilding(&sku, false);
    }

    /// One attempt; answers whether this call restored the store (false: the store had the
    /// sale, live, again: another process rebuilt it).
    ///
    /// Under the store's rebuild lock, so that of several processes that met the loss one
    /// restores: a second restore after the first would wipe the reservations made since,
    /// whose orders the repository may not have yet.
    async fn rebuild_once(&self, sku: &Sku) -> Result<bool> {
        let stock = &self.inner.stock;
        let holder = self.inner.id.as_str();
        while !stock.lock_rebuild(sku, holder, REBUILD_LEASE).await? {
            if self.needs_rebuild(sku).await? == Some(false) {
                return Ok(false);
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
        // The lease is renewed while the rebuild runs (a large sale restores in many calls).
        let renewing = self.renew_rebuild_lease(sku.clone());
        let rebuilt = self.rebuild_locked(sku).await;
        renewing.abort();
        if let Err(err) = stock.unlock_rebuild(sku, holder).await {
            warn!(sku = %sku, error = %err, "could not give the rebuild lock back; it lapses by itself");
        }
        rebuilt
    }

    async fn rebuild_locked(&self, sku: &Sku) -> Result<bool> {
        if self.needs_rebuild(sku).await? == Some(false) {
            return Ok(false);
        }
        // Purchases that reserved before the loss may still be publishing: they land first.
        // Then every event queued so far (placements, and pays and cancels the repository could
        // not take at once) must be recorded: restoring from a repository that lacks a queued
        // pay would put a paid unit back on sale.
        tokio::time::sleep(self.inner.config.store_rebuild_settle).await;
        let mark = self.inner.queue.mark().await?;
        let started = Instant::now();
        let mut warn_after = DRAIN_WARNING;
        while !self.inner.queue.drained(&mark).await? {
            if started.elapsed() >= warn_after {
                warn!(sku = %sku, waited_s = started.elapsed().as_secs(), "sale rebuild waits for the order worker to record the events queued before the loss");
                warn_after *= 2;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
        if self.needs_rebuild(sku).await? == Some(false) {
            return Ok(false);
        }
        let report = self.reconcile(sku, true).await?;
        Ok(report.repaired)
    }

    /// Whether the store still lacks the sale or holds it regressed (`Some(true)`), holds it
    /// live (`Some(false)`), or cannot say now (`None`: it failed retryably).
    async fn needs_rebuild(&self, sku: &Sku) -> Result<Option<bool>> {
        match self.inner.stock.snapshot(sku).await {
            Ok(_) => Ok(Some(false)),
            Err(Error::UnknownSale(_) | Error::StockRegressed(_)) => Ok(Some(true)),
            Err(err) if err.is_retryable() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Renews this engine's rebuild lock of `sku` every third of its lease until aborted.
    fn renew_rebuild_lease(&self, sku: Sku) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REBUILD_LEASE / 3).await;
                let holder = engine.inner.id.as_str();
                if let Err(err) = engine
                    .inner
                    .stock
                    .lock_rebuild(&sku, holder, REBUILD_LEASE)
                    .await
                {
                    warn!(sku = %sku, error = %err, "could not renew the rebuild lock");
                }
            }
        })
    }
}

/// How long the rebuild lock outlives a holder that stopped renewing it (crashed).
const REBUILD_LEASE: Duration = Duration::from_secs(15);
/// How often a rebuild asks whether the queue drained.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// When a rebuild still waiting on the queue first says so (then after twice as long, …).
const DRAIN_WARNING: Duration = Duration::from_secs(10);

/// What a call meets while its sale is rebuilt.
pub(super) fn rebuilding(sku: &Sku) -> Error {
    Error::retryable(
        "stock",
        format!("the stock store lost sale {sku}; it is being rebuilt from the orders"),
    )
}
