//! Wrappers that measure the engine's queue and repository for `/metrics` (publish latency,
//! worker lag, orders persisted) without touching the engine.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nexussale_core::{
    Delivery, DeliveryTag, DynOrderQueue, DynOrderRepository, Order, OrderEvent, OrderId,
    OrderPage, OrderQuery, OrderQueue, OrderRepository, OrderStatus, QueueMark, Result, Sale, Sku,
    StatusCounts, TransitionOutcome,
};

/// An [`OrderQueue`] that records publish latency and the worker's lag.
#[derive(Debug)]
pub(crate) struct MeteredQueue(pub(crate) DynOrderQueue);

#[async_trait]
impl OrderQueue for MeteredQueue {
    async fn publish(&self, event: &OrderEvent) -> Result<()> {
        let start = Instant::now();
        let published = self.0.publish(event).await;
        metrics::histogram!("nexussale_publish_duration_seconds").record(start.elapsed());
        published
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let batch = self.0.receive(max, wait).await?;
        let now = Utc::now();
        for delivery in &batch {
            let OrderEvent::Placed { order } = &delivery.event else {
                continue;
            };
            let lag = (now - order.created_at).to_std().unwrap_or_default();
            metrics::histogram!("nexussale_worker_lag_seconds").record(lag);
        }
        Ok(batch)
    }

    async fn ack(&self, tags: &[DeliveryTag]) -> Result<()> {
        self.0.ack(tags).await
    }

    async fn nack(&self, tags: &[DeliveryTag]) -> Result<()> {
        self.0.nack(tags).await
    }

    async fn mark(&self) -> Result<QueueMark> {
        self.0.mark().await
    }

    async fn drained(&self, mark: &QueueMark) -> Result<bool> {
        self.0.drained(mark).await
    }
}

/// An [`OrderRepository`] that counts the orders it stores.
#[derive(Debug)]
pub(crate) struct MeteredRepository(pub(crate) DynOrderRepository);

#[async_trait]
impl OrderRepository for MeteredRepository {
    async fn save_sale(&self, sale: &Sale) -> Result<bool> {
        self.0.save_sale(sale).await
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        self.0.sales().await
    }

    async fn insert(&self, orders: &[Order]) -> Result<u64> {
        let new = self.0.insert(orders).await?;
        metrics::counter!("nexussale_orders_persisted_total").increment(new);
        Ok(new)
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>> {
        self.0.get(id).await
    }

    async fn list(&self, query: &OrderQuery) -> Result<OrderPage> {
        self.0.list(query).await
    }

    async fn transition(
        &self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
    ) -> Result<TransitionOutcome> {
        self.0.transition(id, from, to, at).await
    }

    async fn counts(&self, sku: &Sku) -> Result<StatusCounts> {
        self.0.counts(sku).await
    }
}
