//! Purchases refused by this process, per sale and reason, added to the repository every few
//! seconds: the sale report's refusals then count every server's, and survive restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use nexussale_core::{CancellationToken, FlashSale, Sku};
use tracing::{debug, warn};

/// How often refusals are written to the repository.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Sales counted at once at most: refusals of skus past it (a flood of made-up ones) are not
/// counted until the next write frees the table.
const MAX_SALES: usize = 10_000;

/// The reasons counted: the purchase outcomes that refuse (`nexussale_purchases_total`'s
/// labels but `accepted`, `duplicate` and `unknown_sale`, which is no sale's).
pub(crate) const REASONS: [&str; 9] = [
    "sold_out",
    "limit_exceeded",
    "not_active",
    "rate_limited",
    "invalid",
    "forbidden",
    "conflict",
    "unavailable",
    "failed",
];

/// Counts not yet written.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    pending: DashMap<Sku, [AtomicU64; REASONS.len()], foldhash::fast::RandomState>,
}

impl Refusals {
    /// Counts one purchase of `sku` answered `outcome`, if it is a refusal.
    pub(crate) fn count(&self, sku: &str, outcome: &str) {
        let Some(reason) = REASONS.iter().position(|reason| *reason == outcome) else {
            return;
        };
        let Ok(sku) = Sku::new(sku) else { return };
        // The read lock of one shard and an atomic add: the path of every refused purchase.
        if let Some(counts) = self.pending.get(&sku) {
            counts[reason].fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.pending.len() >= MAX_SALES {
            debug!(%sku, "refusal not counted: too many sales pending");
            return;
        }
        // Added under the entry's guard, as above: a flush that drops idle entries cannot drop
        // it between.
        self.pending.entry(sku).or_default().value()[reason].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds what was counted to the repository. A sale whose write fails keeps its counts for
    /// the next flush.
    pub(crate) async fn flush(&self, engine: &FlashSale) {
        let mut taken: Vec<(Sku, Vec<(&'static str, u64)>)> = Vec::new();
        for entry in &self.pending {
            let counts: Vec<(&'static str, u64)> = REASONS
                .iter()
                .zip(entry.value().iter())
                .map(|(reason, count)| (*reason, count.swap(0, Ordering::Relaxed)))
                .filter(|(_, count)| *count > 0)
                .collect();
            if !counts.is_empty() {
                taken.push((entry.key().clone(), counts));
            }
        }
        // Entries nothing was counted in since the swap go (a count holds its entry's guard
        // while it adds, so none is lost); the table stays as small as the sales refused.
        self.pending
            .retain(|_, counts| counts.iter().any(|count| count.load(Ordering::Relaxed) > 0));
        for (sku, counts) in taken {
            if let Err(err) = engine.record_refusals(&sku, &counts).await {
                warn!(%sku, error = %err, "could not record refused purchases; trying again later");
                let back = self.pending.entry(sku).or_default();
                for (reason, count) in counts {
                    if let Some(index) = REASONS.iter().position(|known| *known == reason) {
                        back.value()[index].fetch_add(count, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Flushes every [`FLUSH_EVERY`] until `stop`, then once more.
    pub(crate) async fn run(self: Arc<Self>, engine: FlashSale, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(FLUSH_EVERY) => self.flush(&engine).await,
            }
        }
        self.flush(&engine).await;
    }
}
