//! The expiry sweeper: returns the units of reservations whose TTL has passed.

use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::FlashSale;
use super::orders::released_status;
use super::worker::Backoff;
use crate::error::Result;
use crate::ident::Sku;
use crate::order::OrderStatus;
use crate::outage::OutageLog;
use crate::reservation::{ReleaseOutcome, ReleaseReason, Reservation};

/// Releases of one batch in flight at once: a networked store answers them concurrently instead
/// of one round trip after another (a million lapsing at once is not minutes of serial calls).
const CONCURRENT_RELEASES: usize = 64;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Reservations this sweep released.
    pub released: u64,
    /// Units they returned.
    pub units: u64,
    /// Sales whose sweep failed (the store refused to list or release their reservations); the
    /// other sales were swept all the same, and the failed ones are tried again next sweep.
    pub failed_sales: u64,
}

impl FlashSale {
    /// Releases every reservation, of every sale, whose TTL has passed, exactly once, and marks
    /// its order expired. Concurrent sweepers (several processes) are safe: the stock store lets
    /// only one release each reservation.
    ///
    /// A release or its record that fails (a reply lost with its connection may still have been
    /// applied) is tried again at the start of the next sweep: the store no longer lists a
    /// reservation it released, so nothing else would record that order's expiry.
    ///
    /// One sale that cannot be swept (its keys unreadable, its shard down) does not hold up the
    /// others: it is counted in [`SweepReport::failed_sales`] and logged. The sweep is an error
    /// only when nothing could be swept (the sales could not be listed, or every one failed).
    pub async fn sweep_expired(&self) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let now = self.now();
        let batch = self.inner.config.sweep_batch.max(1);
        let repository_down = AtomicBool::new(false);
        let owed = std::mem::take(&mut *self.inner.owed_expiries.lock());
        let mut first_error = self
            .expire_all(owed, true, &mut report, &repository_down)
            .await
            .err();
        let sales = self.inner.stock.sales().await?;
        for sale in &sales {
            let swept = self
                .sweep_sale(&sale.sku, now, batch, &mut report, &repository_down)
                .await;
            if let Err(err) = swept {
                report.failed_sales += 1;
                // Per sale at debug: the sweeper's outage log says how many, once per outage.
                debug!(sku = %sale.sku, error = %err, "this sale's expired reservations could not be released; the next sweep tries again");
                first_error.get_or_insert(err);
            }
        }
        if report.released > 0 {
            info!(
                released = report.released,
                units = report.units,
                "expired reservations released"
            );
        }
        match first_error {
            Some(err) if report.failed_sales >= sales.len() as u64 => Err(err),
            _ => Ok(report),
        }
    }

    /// Releases `sku`'s expired reservations, a batch at a time, until a batch comes back short.
    async fn sweep_sale(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        batch: usize,
        report: &mut SweepReport,
        repository_down: &AtomicBool,
    ) -> Result<()> {
        loop {
            let expired = self.inner.stock.expired(sku, now, batch).await?;
            let full_batch = expired.len() == batch;
            self.expire_all(expired, false, report, repository_down)
                .await?;
            // Each round leaves nothing it saw held, so the next one sees new reservations.
            if !full_batch {
                return Ok(());
            }
        }
    }

    /// Expires `reservations`, [`CONCURRENT_RELEASES`] at a time; those that fail are owed to the
    /// next sweep, and the first failure is the answer.
    async fn expire_all(
        &self,
        reservations: Vec<Reservation>,
        retried: bool,
        report: &mut SweepReport,
        repository_down: &AtomicBool,
    ) -> Result<()> {
        let outcomes: Vec<(Reservation, Result<Option<u32>>)> = futures::stream::iter(reservations)
            .map(|reservation| async move {
                let outcome = self.expire(&reservation, retried, repository_down).await;
                (reservation, outcome)
            })
            .buffer_unordered(CONCURRENT_RELEASES)
            .collect()
            .await;
        let mut first_error = None;
        let mut failed = Vec::new();
        for (reservation, outcome) in outcomes {
            match outcome {
                Ok(Some(quantity)) => {
                    report.released += 1;
                    report.units += u64::from(quantity);
                }
                Ok(None) => {}
                Err(err) => {
                    failed.push(reservation);
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) => {
                self.inner.owed_expiries.lock().extend(failed);
                Err(err)
            }
            None => Ok(()),
        }
    }

    /// Releases one reservation and records its order's expiry: the units it returned, if this
    /// call released it.
    async fn expire(
        &self,
        reservation: &Reservation,
        retried: bool,
        repository_down: &AtomicBool,
    ) -> Result<Option<u32>> {
        let outcome = self
            .inner
            .stock
            .release(
                &reservation.sku,
                reservation.order_id,
                ReleaseReason::Expired,
            )
            .await?;
        match outcome {
            ReleaseOutcome::Released { quantity } => {
                self.units_returned(&reservation.sku);
                crate::meter::settled(OrderStatus::Expired);
                self.record_expiry(reservation, OrderStatus::Expired, repository_down)
                    .await?;
                Ok(Some(quantity))
            }
            // Released by an earlier try of this sweeper (whose answer was lost, or whose record
            // failed): record it now. Released by another sweeper: that one records it.
            ReleaseOutcome::AlreadyReleased(reason) if retried => self
                .record_expiry(reservation, released_status(reason), repository_down)
                .await
                .map(|()| None),
            _ => Ok(None),
        }
    }

    /// Runs the sweeper every [`sweep_interval`](super::EngineConfig::sweep_interval) until
    /// `shutdown` is cancelled.
    pub async fn run_sweeper(&self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.inner.config.worker_max_backoff);
        let mut pause = self.inner.config.sweep_interval;
        let outage = OutageLog::new("expiry sweeper");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = match self.sweep_expired().await {
                // Some sales failed, the rest were swept: no backoff, which would delay them all.
                Ok(report) if report.failed_sales > 0 => {
                    backoff.reset();
                    let failed = report.failed_sales;
                    outage.failure(&format_args!("{failed} sale(s) could not be swept"));
                    self.inner.config.sweep_interval
                }
                Ok(_) => {
                    backoff.reset();
                    outage.success();
                    self.inner.config.sweep_interval
                }
                Err(err) => {
                    let pause = backoff.next().max(self.inner.config.sweep_interval);
                    outage.failure(&format_args!("{err} (retrying with backoff)"));
                    pause
                }
            };
        }
    }
}
