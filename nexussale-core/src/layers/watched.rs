//! [`Watched`]: a backend whose failures are logged once per outage.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::ident::{IdempotencyKey, UserId};
use crate::order::{Order, OrderEvent, OrderId, OrderStatus};
use crate::outage::OutageLog;
use crate::queue::{Delivery, DeliveryTag, OrderQueue, QueueMark};
use crate::repository::{OrderPage, OrderQuery, OrderRepository, StatusCounts, TransitionOutcome};
use crate::reservation::{
    ConfirmOutcome, ReleaseOutcome, ReleaseReason, Reservation, ReserveOutcome, ReserveRequest,
};
use crate::sale::{Sale, Sku, StockSnapshot};
use crate::stock::StockStore;

/// A [`StockStore`], [`OrderQueue`] or [`OrderRepository`] whose backend failures
/// ([`Error::Backend`]) go to one [`OutageLog`]: during an outage that fails every purchase, the
/// log shows one warning when it starts, a count once a minute, and one line when the backend
/// answers again, instead of a line per request. Any answer from the backend, business refusals
/// included, counts as a success.
///
/// ```
/// use nexussale_core::layers::Watched;
/// use nexussale_core::memory::MemoryStockStore;
/// use nexussale_core::DynStockStore;
/// use std::sync::Arc;
///
/// let stock: DynStockStore = Arc::new(Watched::new("stock store", MemoryStockStore::new()));
/// # let _ = stock;
/// ```
#[derive(Debug)]
pub struct Watched<T> {
    log: OutageLog,
    inner: T,
}

impl<T> Watched<T> {
    /// `inner`, its failures logged under `name` (`"stock store"`, `"order queue"`, …).
    pub fn new(name: &'static str, inner: T) -> Self {
        Self {
            log: OutageLog::new(name),
            inner,
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The outage log.
    pub fn log(&self) -> &OutageLog {
        &self.log
    }

    fn watch<R>(&self, result: Result<R>) -> Result<R> {
        match &result {
            Err(err @ Error::Backend { .. }) => {
                self.log.failure(err);
            }
            _ => self.log.success(),
        }
        result
    }
}

#[async_trait]
impl<T: StockStore> StockStore for Watched<T> {
    async fn create_sale(&self, sale: &Sale) -> Result<bool> {
        self.watch(self.inner.create_sale(sale).await)
    }

    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
        self.watch(self.inner.sale(sku).await)
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        self.watch(self.inner.sales().await)
    }

    async fn reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome> {
        self.watch(self.inner.reserve(request).await)
    }

    async fn reservation(&self, sku: &Sku, order_id: OrderId) -> Result<Option<Reservation>> {
        self.watch(self.inner.reservation(sku, order_id).await)
    }

    async fn reservation_by_key(
        &self,
        sku: &Sku,
        user: &UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<Reservation>> {
        self.watch(self.inner.reservation_by_key(sku, user, key).await)
    }

    async fn confirm(
        &self,
        sku: &Sku,
        order_id: OrderId,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome> {
        self.watch(self.inner.confirm(sku, order_id, now).await)
    }

    async fn release(
        &self,
        sku: &Sku,
        order_id: OrderId,
        reason: ReleaseReason,
    ) -> Result<ReleaseOutcome> {
        self.watch(self.inner.release(sku, order_id, reason).await)
    }

    async fn expired(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Reservation>> {
        self.watch(self.inner.expired(sku, now, limit).await)
    }

    async fn snapshot(&self, sku: &Sku) -> Result<StockSnapshot> {
        self.watch(self.inner.snapshot(sku).await)
    }

    async fn restore(&self, sale: &Sale, orders: &[Order]) -> Result<()> {
        self.watch(self.inner.restore(sale, orders).await)
    }
}

#[async_trait]
impl<T: OrderQueue> OrderQueue for Watched<T> {
    async fn publish(&self, event: &OrderEvent) -> Result<()> {
        self.watch(self.inner.publish(event).await)
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        self.watch(self.inner.receive(max, wait).await)
    }

    async fn ack(&self, tags: &[DeliveryTag]) -> Result<()> {
        self.watch(self.inner.ack(tags).await)
    }

    async fn nack(&self, tags: &[DeliveryTag]) -> Result<()> {
        self.watch(self.inner.nack(tags).await)
    }

    async fn mark(&self) -> Result<QueueMark> {
        self.watch(self.inner.mark().await)
    }

    async fn drained(&self, mark: &QueueMark) -> Result<bool> {
        self.watch(self.inner.drained(mark).await)
    }
}

#[async_trait]
impl<T: OrderRepository> OrderRepository for Watched<T> {
    async fn save_sale(&self, sale: &Sale) -> Result<bool> {
        self.watch(self.inner.save_sale(sale).await)
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        self.watch(self.inner.sales().await)
    }

    async fn insert(&self, orders: &[Order]) -> Result<u64> {
        self.watch(self.inner.insert(orders).await)
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>> {
        self.watch(self.inner.get(id).await)
    }

    async fn list(&self, query: &OrderQuery) -> Result<OrderPage> {
        self.watch(self.inner.list(query).await)
    }

    async fn transition(
        &self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
    ) -> Result<TransitionOutcome> {
        self.watch(self.inner.transition(id, from, to, at).await)
    }

    async fn counts(&self, sku: &Sku) -> Result<StatusCounts> {
        self.watch(self.inner.counts(sku).await)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::stock::MockStockStore;

    #[tokio::test]
    async fn backend_failures_make_one_outage_and_any_answer_ends_it() {
        let mut store = MockStockStore::new();
        let mut calls = 0;
        store.expect_sales().times(5).returning(move || {
            calls += 1;
            match calls {
                1..=3 => Err(Error::retryable("redis", "connection refused")),
                4 => Err(Error::invalid("sku", "empty")),
                _ => Ok(Vec::new()),
            }
        });
        let store = Watched::new("stock store", store);
        for _ in 0..3 {
            assert!(store.sales().await.is_err());
        }
        assert!(store.log().is_down());
        assert_eq!(store.log().failures(), 3);
        // A refusal is an answer: the backend is reachable again (once that lasts).
        assert!(store.sales().await.is_err());
        store.log().settle();
        store.sales().await.unwrap();
        assert!(!store.log().is_down());
    }
}
