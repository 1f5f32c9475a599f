//! The expiry sweeper: returns the units of reservations whose TTL has passed.

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::FlashSale;
use super::orders::released_status;
use super::worker::Backoff;
use crate::error::Result;
use crate::order::OrderStatus;
use crate::outage::OutageLog;
use crate::reservation::{ReleaseOutcome, ReleaseReason, Reservation};

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Reservations this sweep released.
    pub released: u64,
    /// Units they returned.
    pub units: u64,
}

impl FlashSale {
    /// Releases every reservation, of every sale, whose TTL has passed, exactly once, and marks
    /// its order expired. Concurrent sweepers (several processes) are safe: the stock store lets
    /// only one release each reservation.
    ///
    /// A release or its record that fails (a reply lost with its connection may still have been
    /// applied) is tried again at the start of the next sweep: the store no longer lists a
    /// reservation it released, so nothing else would record that order's expiry.
    pub async fn sweep_expired(&self) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let now = self.now();
        let batch = self.inner.config.sweep_batch.max(1);
        let mut repository_down = false;
        let owed = std::mem::take(&mut *self.inner.owed_expiries.lock());
        self.expire_all(owed, true, &mut report, &mut repository_down)
            .await?;
        for sale in self.inner.stock.sales().await? {
            loop {
                let expired = self.inner.stock.expired(&sale.sku, now, batch).await?;
                let full_batch = expired.len() == batch;
                self.expire_all(expired, false, &mut report, &mut repository_down)
                    .await?;
                // Each round leaves nothing it saw held, so the next one sees new reservations.
                if !full_batch {
                    break;
                }
            }
        }
        if report.released > 0 {
            info!(
                released = report.released,
                units = report.units,
                "expired reservations released"
            );
        }
        Ok(report)
    }

    /// Expires each reservation in turn; on the first failure, it and the rest are owed to the
    /// next sweep.
    async fn expire_all(
        &self,
        reservations: Vec<Reservation>,
        retried: bool,
        report: &mut SweepReport,
        repository_down: &mut bool,
    ) -> Result<()> {
        let mut reservations = reservations.into_iter();
        while let Some(reservation) = reservations.next() {
            if let Err(err) = self
                .expire(&reservation, retried, report, repository_down)
                .await
            {
                let mut owed = self.inner.owed_expiries.lock();
                owed.push(reservation);
                owed.extend(reservations);
                return Err(err);
            }
        }
        Ok(())
    }

    async fn expire(
        &self,
        reservation: &Reservation,
        retried: bool,
        report: &mut SweepReport,
        repository_down: &mut bool,
    ) -> Result<()> {
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
                report.released += 1;
                report.units += u64::from(quantity);
                self.units_returned(&reservation.sku);
                self.record_expiry(reservation, OrderStatus::Expired, repository_down)
                    .await
            }
            // Released by an earlier try of this sweeper (whose answer was lost, or whose record
            // failed): record it now. Released by another sweeper: that one records it.
            ReleaseOutcome::AlreadyReleased(reason) if retried => {
                self.record_expiry(reservation, released_status(reason), repository_down)
                    .await
            }
            _ => Ok(()),
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
