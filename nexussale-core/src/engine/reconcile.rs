//! Reconciliation: the stock store against the system of record.

use std::time::Instant;

use tracing::{info, warn};

use super::FlashSale;
use super::orders::released_status;
use crate::error::{Error, Result};
use crate::order::{Order, OrderId, OrderStatus};
use crate::repository::{MAX_PAGE_SIZE, OrderQuery, StatusCounts};
use crate::reservation::{Reservation, ReservationState};
use crate::sale::{Sale, Sku, StockSnapshot};

/// How a sale's live stock compares with its persisted orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// The sale.
    pub sku: Sku,
    /// The stock store's counts; `None` when the store has lost the sale.
    pub store: Option<StockSnapshot>,
    /// The repository's orders per status.
    pub repository: StatusCounts,
    /// Units the store holds as reserved minus units of pending orders.
    pub reserved_drift: i64,
    /// Units the store counts as sold minus units of paid orders.
    pub sold_drift: i64,
    /// Whether this call rebuilt the store from the repository.
    pub repaired: bool,
}

impl ReconcileReport {
    /// Whether the store and the repository agree.
    pub fn in_sync(&self) -> bool {
        self.store.is_some() && self.reserved_drift == 0 && self.sold_drift == 0
    }
}

/// Runs a rebuild's listing is cut into, listed at once: a big sale's listing waits on the
/// repository's round trips and row lookups, one connection at a time, not on a core.
const LISTING_RUNS: usize = 4;

impl FlashSale {
    /// Compares the sale's live stock with its persisted orders. With `repair`, when they disagree:
    /// pending orders the store already settled are recorded as the store has them (confirmed:
    /// paid; released: expired or cancelled), then the store is rebuilt from the orders
    /// ([`StockStore::restore`](crate::StockStore::restore)), so a repair never puts a paid unit
    /// back on sale.
    ///
    /// Events still in the queue are not in the repository yet and show as drift: reconcile a
    /// quiet sale, with the worker drained. Repair while purchases flow would drop their
    /// reservations.
    ///
    /// [`Error::UnknownSale`] when neither the store nor the repository knows the sale.
    pub async fn reconcile(&self, sku: &Sku, repair: bool) -> Result<ReconcileReport> {
        let report = self.compare(sku).await?;
        if !repair || report.in_sync() {
            return Ok(report);
        }
        let sale = self.definition(sku).await?;
        warn!(sku = %sku, reserved_drift = report.reserved_drift, sold_drift = report.sold_drift, store_lost = report.store.is_none(), "rebuilding live stock from the repository");
        let listing = Instant::now();
        let mut orders = self.all_orders(sku).await?;
        let listed_ms = listing.elapsed().as_millis() as u64;
        if report.store.is_some() {
            // What the store settled and the repository did not record (a transition whose
            // write and queueing both failed) is recorded first: restoring would undo it.
            for order in orders
                .iter_mut()
                .filter(|order| order.status == OrderStatus::Pending)
            {
                let status = match self.inner.stock.reservation(sku, order.id).await? {
                    Some(Reservation {
                        state: ReservationState::Released(reason),
                        ..
                    }) => released_status(reason),
                    Some(Reservation {
                        state: ReservationState::Confirmed,
                        ..
                    }) => OrderStatus::Paid,
                    _ => continue,
                };
                match self.settle(order, status).await {
                    Ok(settled) => *order = settled,
                    // The repository settled it otherwise meanwhile: it wins, as above.
                    Err(Error::Conflict { actual, .. }) => order.status = actual,
                    Err(err) => return Err(err),
                }
            }
        }
        let restoring = Instant::now();
        self.inner.stock.restore(&sale, &orders).await?;
        // Where a large sale's rebuild spends its time.
        info!(sku = %sku, orders = orders.len(), listed_ms, restored_ms = restoring.elapsed().as_millis() as u64, "stock restored from the orders");
        self.units_returned(sku);
        let mut report = self.compare(sku).await?;
        report.repaired = true;
        Ok(report)
    }

    async fn compare(&self, sku: &Sku) -> Result<ReconcileReport> {
        let store = match self.inner.stock.snapshot(sku).await {
            Ok(snapshot) => Some(snapshot),
            // A regressed store's counts are not to be trusted: the repair restores it whole.
            Err(Error::UnknownSale(_) | Error::StockRegressed(_)) => None,
            Err(err) => return Err(err),
        };
        if store.is_none() {
            // A sale the store lost is still one the repository knows; else there is none.
            self.definition(sku).await?;
        }
        let repository = self.inner.repository.counts(sku).await?;
        let (reserved, sold) = store.map_or((0, 0), |s| (s.reserved, s.sold));
        let report = ReconcileReport {
            sku: sku.clone(),
            store,
            repository,
            reserved_drift: reserved as i64 - repository.pending.units as i64,
            sold_drift: sold as i64 - repository.paid.units as i64,
            repaired: false,
        };
        crate::meter::drift(&report);
        Ok(report)
    }

    /// The sale's definition: the repository's (durable) copy, else the store's.
    pub(super) async fn definition(&self, sku: &Sku) -> Result<Sale> {
        if let Some(sale) = self.inner.repository.sale(sku).await? {
            return Ok(sale);
        }
        self.inner
            .stock
            .sale(sku)
            .await?
            .ok_or_else(|| Error::UnknownSale(sku.clone()))
    }

    /// Every order of the sale, to restore the store from, listed in
    /// [`LISTING_RUNS`] runs at once where the repository cuts the sale
    /// ([`OrderRepository::order_cuts`](crate::OrderRepository::order_cuts)). Refused when the
    /// repository lists fewer paid units than it counted before the listing (a repository that
    /// forgets orders,
    /// [`MemoryOrderRepository::with_max_orders`](crate::memory::MemoryOrderRepository::with_max_orders)):
    /// restoring from them would put paid units back on sale. Paid is final, so a count taken
    /// first can only be at most what the listing finds.
    async fn all_orders(&self, sku: &Sku) -> Result<Vec<Order>> {
        let counted = self.inner.repository.counts(sku).await?.paid.units;
        let mut cuts = self.inner.repository.order_cuts(sku, LISTING_RUNS).await?;
        // Newest first and each once, whatever the repository answered: then the runs below
        // cover every order exactly once.
        cuts.sort_unstable_by(|a, b| b.cmp(a));
        cuts.dedup();
        let uppers = std::iter::once(None).chain(cuts.iter().copied().map(Some));
        let lowers = cuts.iter().copied().map(Some).chain(std::iter::once(None));
        let runs = uppers
            .zip(lowers)
            .map(|(upper, lower)| self.list_run(sku, upper, lower));
        let orders: Vec<Order> = futures::future::try_join_all(runs)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let listed: u64 = orders
            .iter()
            .filter(|order| order.status == OrderStatus::Paid)
            .map(|order| u64::from(order.quantity))
            .sum();
        if listed < counted {
            return Err(Error::permanent(
                "orders",
                format!(
                    "the repository lists {listed} of the {counted} paid units of sale {sku} it counted (it forgot orders): rebuilding the stock from it would sell paid units again"
                ),
            ));
        }
        Ok(orders)
    }

    /// The sale's orders older than `upper` (all when `None`) and no older than `lower` (to the
    /// oldest when `None`), newest first, in keyset pages.
    async fn list_run(
        &self,
        sku: &Sku,
        upper: Option<OrderId>,
        lower: Option<OrderId>,
    ) -> Result<Vec<Order>> {
        let mut query = OrderQuery {
            sku: Some(sku.clone()),
            after: upper,
            limit: Some(MAX_PAGE_SIZE),
            ..OrderQuery::default()
        };
        let below = |order: &Order| lower.is_some_and(|lower| order.id < lower);
        let mut orders = Vec::new();
        loop {
            let page = self.inner.repository.list(&query).await?;
            let ended = page.orders.last().is_some_and(below);
            orders.extend(page.orders.into_iter().filter(|order| !below(order)));
            match page.next {
                Some(next) if !ended => query.after = Some(next),
                _ => return Ok(orders),
            }
        }
    }
}
