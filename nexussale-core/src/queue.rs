//! [`OrderQueue`]: carries order events from the purchase path to the order worker.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::order::OrderEvent;
use crate::trace::TraceParent;

/// A shared, type-erased [`OrderQueue`].
pub type DynOrderQueue = Arc<dyn OrderQueue>;

/// Identifies one delivery for acknowledgement: a partition and an offset within it (a queue
/// without partitions uses partition 0 and a sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryTag {
    /// The partition the event came from.
    pub partition: i32,
    /// Its position there.
    pub offset: i64,
}

/// One event handed to a consumer, to acknowledge once processed. Built with
/// [`Delivery::new`] (more fields may come).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The event.
    pub event: OrderEvent,
    /// What to pass to [`OrderQueue::ack`] or [`OrderQueue::nack`].
    pub tag: DeliveryTag,
    /// The trace context it was published in ([`trace::current`](crate::trace::current) at
    /// publish time), where the queue carries one: the worker continues that trace.
    pub trace: Option<TraceParent>,
}

impl Delivery {
    /// `event`, acknowledged with `tag`, carrying no trace context.
    pub fn new(event: OrderEvent, tag: DeliveryTag) -> Self {
        Self {
            event,
            tag,
            trace: None,
        }
    }

    /// This delivery carrying `trace`, the context its event was published in.
    pub fn with_trace(mut self, trace: Option<TraceParent>) -> Self {
        self.trace = trace;
        self
    }
}

/// A point in a queue's history, taken by [`OrderQueue::mark`]: for each partition, the
/// position the next event published there will take. What a position means is the backend's
/// own (a Kafka offset, a publish sequence number); only the backend that took a mark reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueMark {
    ends: Vec<DeliveryTag>,
}

impl QueueMark {
    /// A mark at these ends, one per partition.
    pub fn new(ends: Vec<DeliveryTag>) -> Self {
        Self { ends }
    }

    /// The ends, one per partition.
    pub fn ends(&self) -> &[DeliveryTag] {
        &self.ends
    }
}

/// A durable, at-least-once queue of [`OrderEvent`]s.
///
/// # Contract
///
/// - **Durable publish.** [`publish`](Self::publish) returns `Ok` only once the event is as durable
///   as the queue can make it (acknowledged by the broker's in-sync replicas, for Kafka). When it
///   cannot, it returns an error and the caller must treat the event as not queued. A full queue
///   answers a retryable error rather than growing without bound.
/// - **At-least-once delivery.** [`receive`](Self::receive) hands out events in batches. An event
///   stays owed until it is acknowledged: what is [`nack`](Self::nack)ed, or held by a consumer that
///   goes away, is delivered again. Consumers must therefore process idempotently.
/// - **Trace context.** A queue that can carry it keeps [`trace::current`](crate::trace::current)
///   of the publishing call with the event and hands it back in [`Delivery::trace`] (optional:
///   `None` only loses the link between a purchase's trace and its worker's).
/// - **Order.** Events of one sku are delivered in publish order, except for redeliveries.
/// - Concurrent consumers of one queue (or of one consumer group) each receive different events.
/// - **Drain barrier.** [`drained`](Self::drained) answers `true` only once every event whose
///   publish returned before [`mark`](Self::mark) was called has been acknowledged, by any
///   consumer of the queue (another process's, for a shared broker); events published after the
///   mark do not hold it back. A store rebuild relies on it: it restores live stock only from a
///   repository that holds every transition accepted before the loss.
///
/// # Example
///
/// ```
/// # use nexussale_core::{memory::MemoryOrderQueue, OrderQueue};
/// # use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> nexussale_core::Result<()> {
/// let queue = MemoryOrderQueue::new();
/// // Nothing published: `receive` waits up to 10 ms and returns an empty batch.
/// let batch = queue.receive(100, Duration::from_millis(10)).await?;
/// assert!(batch.is_empty());
/// // Nothing was published before the mark, so nothing is owed.
/// let mark = queue.mark().await?;
/// assert!(queue.drained(&mark).await?);
/// # Ok(()) }
/// ```
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait OrderQueue: Send + Sync + Debug + 'static {
    /// Queues `event` durably (see the contract).
    async fn publish(&self, event: &OrderEvent) -> Result<()>;

    /// Up to `max` events; waits up to `wait` for the first one, then returns what is ready. An
    /// empty batch means nothing arrived in time.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>>;

    /// Marks deliveries processed: they will not be delivered again.
    async fn ack(&self, tags: &[DeliveryTag]) -> Result<()>;

    /// Gives deliveries back unprocessed: they will be delivered again.
    async fn nack(&self, tags: &[DeliveryTag]) -> Result<()>;

    /// The queue's current end, for [`drained`](Self::drained).
    async fn mark(&self) -> Result<QueueMark>;

    /// Whether every event published before `mark` was taken has been acknowledged (see the
    /// contract).
    async fn drained(&self, mark: &QueueMark) -> Result<bool>;
}

macro_rules! forward_order_queue {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<T: OrderQueue + ?Sized> OrderQueue for $ty {
            // On the purchase path: the inner call's boxed future is handed on as it is, as
            // the `StockStore` forwarding does for `reserve`.
            fn publish<'life0, 'life1, 'async_trait>(
                &'life0 self,
                event: &'life1 OrderEvent,
            ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                (**self).publish(event)
            }
            async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
                (**self).receive(max, wait).await
            }
            async fn ack(&self, tags: &[DeliveryTag]) -> Result<()> {
                (**self).ack(tags).await
            }
            async fn nack(&self, tags: &[DeliveryTag]) -> Result<()> {
                (**self).nack(tags).await
            }
            async fn mark(&self) -> Result<QueueMark> {
                (**self).mark().await
            }
            async fn drained(&self, mark: &QueueMark) -> Result<bool> {
                (**self).drained(mark).await
            }
        }
    )*};
}

forward_order_queue!(Arc<T>, Box<T>);
