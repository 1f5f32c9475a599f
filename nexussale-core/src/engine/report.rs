//! A sale's report: how it sold, read from the repository, so it survives restarts and counts
//! every front end's orders.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::FlashSale;
use crate::error::Result;
use crate::repository::{MAX_TIMELINE_BUCKETS, StatusCounts, Tally};
use crate::sale::{Sale, Sku};

/// The most buckets a report shows: its bucket widens (1 s, 2 s, 5 s, … 1 day) to stay under.
pub const MAX_REPORT_BUCKETS: u64 = 600;

/// How a sale sold ([`FlashSale::report`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SaleReport {
    /// The sale's definition (ended early, if it was).
    pub sale: Sale,
    /// When purchases opened: the sale's start, else its first order.
    pub opened_at: Option<DateTime<Utc>>,
    /// When its first order was placed.
    pub first_purchase: Option<DateTime<Utc>>,
    /// When its last order was placed.
    pub last_purchase: Option<DateTime<Utc>>,
    /// From the opening to the order that took the last unit (every order counted, also those
    /// cancelled or expired since: the instant stock first ran out); `None`: it never sold out.
    pub sold_out_after: Option<Duration>,
    /// Every order accepted.
    pub accepted: Tally,
    /// The width of [`accepted_per_bucket`](Self::accepted_per_bucket)'s buckets.
    pub bucket: Duration,
    /// Orders accepted per bucket from the first purchase on, empty buckets included.
    pub accepted_per_bucket: Vec<Tally>,
    /// Purchases refused, by reason, as the servers recorded them.
    pub refusals: BTreeMap<String, u64>,
    /// Orders and units per status now.
    pub statuses: StatusCounts,
    /// Paid orders ÷ accepted orders; `None` without orders.
    pub conversion: Option<f64>,
}

impl FlashSale {
    /// The sale's report, from the repository: [`Error::UnknownSale`](crate::Error::UnknownSale)
    /// for a sale it does not know.
    pub async fn report(&self, sku: &Sku) -> Result<SaleReport> {
        let sale = self.definition(sku).await?;
        let repository = &self.inner.repository;
        // One bucket first, for the ends (units never held: no sold-out instant to look for);
        // then buckets sized to the span.
        let whole = repository.timeline(sku, WHOLE, u64::MAX).await?;
        let bucket = match (whole.first, whole.last) {
            (Some(first), Some(last)) => bucket_for((last - first).to_std().unwrap_or_default()),
            _ => BUCKETS[0],
        };
        let timeline = match whole.first {
            Some(_) => repository.timeline(sku, bucket, sale.stock).await?,
            None => whole,
        };
        let (statuses, refusals) =
            futures::try_join!(repository.counts(sku), repository.refusals(sku))?;
        let accepted = crate::order::OrderStatus::ALL
            .into_iter()
            .map(|status| statuses.get(status))
            .fold(Tally::default(), |sum, tally| Tally {
                orders: sum.orders + tally.orders,
                units: sum.units + tally.units,
            });
        let opened_at = sale.starts_at.or(timeline.first);
        Ok(SaleReport {
            opened_at,
            first_purchase: timeline.first,
            last_purchase: timeline.last,
            sold_out_after: timeline
                .reached
                .zip(opened_at)
                .map(|(reached, opened)| (reached - opened).to_std().unwrap_or_default()),
            accepted,
            bucket,
            accepted_per_bucket: timeline.buckets,
            refusals,
            conversion: (accepted.orders > 0)
                .then(|| statuses.paid.orders as f64 / accepted.orders as f64),
            statuses,
            sale,
        })
    }

    /// Adds purchases refused to the sale's counts in the repository (a server adds what it
    /// refused every few seconds); a sale the repository does not store is ignored.
    pub async fn record_refusals(&self, sku: &Sku, counts: &[(&'static str, u64)]) -> Result<()> {
        self.inner.repository.add_refusals(sku, counts).await
    }
}

/// A bucket wider than any sale: the whole timeline in one.
const WHOLE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The widths a report's buckets may have, narrowest first.
const BUCKETS: [Duration; 16] = {
    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    [
        secs(1),
        secs(2),
        secs(5),
        secs(10),
        secs(15),
        secs(30),
        secs(60),
        secs(120),
        secs(300),
        secs(600),
        secs(900),
        secs(1800),
        secs(3600),
        secs(2 * 3600),
        secs(6 * 3600),
        secs(24 * 3600),
    ]
};

/// The narrowest width that shows `span` in at most [`MAX_REPORT_BUCKETS`] buckets; for a
/// longer span, the width that keeps under [`MAX_TIMELINE_BUCKETS`].
fn bucket_for(span: Duration) -> Duration {
    let fits = |width: Duration| span.as_secs() / width.as_secs() < MAX_REPORT_BUCKETS;
    BUCKETS
        .into_iter()
        .find(|width| fits(*width))
        .unwrap_or_else(|| Duration::from_secs(span.as_secs() / (MAX_TIMELINE_BUCKETS - 1) + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_widen_to_keep_a_report_short() {
        let secs = Duration::from_secs;
        assert_eq!(bucket_for(secs(0)), secs(1));
        assert_eq!(bucket_for(secs(599)), secs(1));
        assert_eq!(bucket_for(secs(600)), secs(2));
        assert_eq!(bucket_for(secs(3_000)), secs(10));
        assert_eq!(bucket_for(secs(86_400)), secs(300));
        let year = secs(365 * 86_400);
        let width = bucket_for(year);
        assert!(
            year.as_secs() / width.as_secs() < MAX_TIMELINE_BUCKETS,
            "{width:?}"
        );
    }
}
