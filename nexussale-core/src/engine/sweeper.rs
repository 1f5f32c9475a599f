//! The expiry sweeper: returns the units of reservations whose TTL has passed.

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::FlashSale;
use super::worker::Backoff;
use crate::error::Result;
use crate::outage::OutageLog;
use crate::reservation::{ReleaseOutcome, ReleaseReason};

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
    pub async fn sweep_expired(&self) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let now = self.now();
        let batch = self.inner.config.sweep_batch.max(1);
        let mut repository_down = false;
        for sale in self.inner.stock.sales().await? {
            loop {
                let expired = self.inner.stock.expired(&sale.sku, now, batch).await?;
                let full_batch = expired.len() == batch;
                for reservation in expired {
                    let outcome = self
                        .inner
                        .stock
                        .release(&sale.sku, reservation.order_id, ReleaseReason::Expired)
                        .await?;
                    if let ReleaseOutcome::Released { quantity } = outcome {
                        report.released += 1;
                        report.units += u64::from(quantity);
                        self.units_returned(&sale.sku);
                        self.record_expiry(&reservation, &mut repository_down)
                            .await?;
                    }
                }
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
