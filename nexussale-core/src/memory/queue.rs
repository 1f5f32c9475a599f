//! [`MemoryOrderQueue`]: an at-least-once queue in process memory.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::padded::Padded;
use crate::error::{Error, Result};
use crate::order::OrderEvent;
use crate::queue::{Delivery, DeliveryTag, OrderQueue};

/// Events held at most, unless configured otherwise.
pub const DEFAULT_CAPACITY: usize = 1_000_000;
/// How long a delivery may stay unacknowledged before it is handed out again.
pub const DEFAULT_REDELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// An [`OrderQueue`] in process memory: the embedded default.
///
/// Publishing is one push onto an unbounded lock-free channel, guarded by a capacity counter so the
/// queue never holds more than its capacity (a full queue answers a retryable error). Consumers
/// share one receiver. A delivery not acknowledged within the redelivery timeout, or nacked, is
/// delivered again. "Durable" here means "held by this process": events die with it. Clones share
/// the queue.
#[derive(Clone)]
pub struct MemoryOrderQueue {
    inner: Arc<Inner>,
}

struct InFlight {
    event: OrderEvent,
    deadline: Instant,
}

struct Inner {
    sender: mpsc::UnboundedSender<OrderEvent>,
    receiver: tokio::sync::Mutex<mpsc::UnboundedReceiver<OrderEvent>>,
    in_flight: Mutex<HashMap<i64, InFlight>>,
    /// Events published and not yet acknowledged (queued or in flight).
    owed: Padded<AtomicUsize>,
    next_offset: AtomicI64,
    capacity: usize,
    redelivery_timeout: Duration,
}

impl MemoryOrderQueue {
    /// A queue with [`DEFAULT_CAPACITY`] and [`DEFAULT_REDELIVERY_TIMEOUT`].
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_CAPACITY, DEFAULT_REDELIVERY_TIMEOUT)
    }

    /// A queue holding at most `capacity` unacknowledged events, handing out again what stays
    /// unacknowledged for `redelivery_timeout`.
    pub fn with_limits(capacity: usize, redelivery_timeout: Duration) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            inner: Arc::new(Inner {
                sender,
                receiver: tokio::sync::Mutex::new(receiver),
                in_flight: Mutex::new(HashMap::new()),
                owed: Padded(AtomicUsize::new(0)),
                next_offset: AtomicI64::new(0),
                capacity,
                redelivery_timeout,
            }),
        }
    }

    /// Events published and not yet acknowledged.
    pub fn len(&self) -> usize {
        self.inner.owed.load(Ordering::Acquire)
    }

    /// Whether every published event was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn requeue(&self, events: impl IntoIterator<Item = OrderEvent>) {
        for event in events {
            // The receiver lives in `inner` as long as the sender: sending cannot fail.
            let _ = self.inner.sender.send(event);
        }
    }

    fn requeue_overdue(&self, now: Instant) {
        let overdue: Vec<OrderEvent> = {
            let mut in_flight = self.inner.in_flight.lock();
            let offsets: Vec<i64> = in_flight
                .iter()
                .filter(|(_, delivery)| delivery.deadline <= now)
                .map(|(offset, _)| *offset)
                .collect();
            offsets
                .into_iter()
                .filter_map(|offset| in_flight.remove(&offset))
                .map(|delivery| delivery.event)
                .collect()
        };
        self.requeue(overdue);
    }
}

impl Default for MemoryOrderQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryOrderQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryOrderQueue")
            .field("owed", &self.len())
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

#[async_trait]
impl OrderQueue for MemoryOrderQueue {
    async fn publish(&self, event: &OrderEvent) -> Result<()> {
        let owed = self.inner.owed.fetch_add(1, Ordering::AcqRel);
        if owed >= self.inner.capacity {
            self.inner.owed.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::retryable(
                "memory",
                format!("order queue is full ({} events)", self.inner.capacity),
            ));
        }
        // The receiver lives in `inner` as long as the sender: sending cannot fail.
        let _ = self.inner.sender.send(event.clone());
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let deadline = Instant::now() + wait;
        self.requeue_overdue(Instant::now());
        let mut events = Vec::new();
        if max == 0 {
            return Ok(Vec::new());
        }
        // Cancel-safe: the lock and `recv` are, and nothing is taken off the channel before the
        // last await point.
        let Ok(mut receiver) = tokio::time::timeout_at(deadline, self.inner.receiver.lock()).await
        else {
            return Ok(Vec::new());
        };
        if let Ok(Some(first)) = tokio::time::timeout_at(deadline, receiver.recv()).await {
            events.push(first);
            while events.len() < max {
                match receiver.try_recv() {
                    Ok(event) => events.push(event),
                    Err(_) => break,
                }
            }
        }
        drop(receiver);
        let redeliver_at = Instant::now() + self.inner.redelivery_timeout;
        let mut in_flight = self.inner.in_flight.lock();
        Ok(events
            .into_iter()
            .map(|event| {
                let offset = self.inner.next_offset.fetch_add(1, Ordering::AcqRel);
                in_flight.insert(
                    offset,
                    InFlight {
                        event: event.clone(),
                        deadline: redeliver_at,
                    },
                );
                Delivery {
                    event,
                    tag: DeliveryTag {
                        partition: 0,
                        offset,
                    },
                }
            })
            .collect())
    }

    async fn ack(&self, tags: &[DeliveryTag]) -> Result<()> {
        let mut in_flight = self.inner.in_flight.lock();
        let acked = tags
            .iter()
            .filter(|tag| in_flight.remove(&tag.offset).is_some())
            .count();
        self.inner.owed.fetch_sub(acked, Ordering::AcqRel);
        Ok(())
    }

    async fn nack(&self, tags: &[DeliveryTag]) -> Result<()> {
        let events: Vec<OrderEvent> = {
            let mut in_flight = self.inner.in_flight.lock();
            tags.iter()
                .filter_map(|tag| in_flight.remove(&tag.offset))
                .map(|delivery| delivery.event)
                .collect()
        };
        self.requeue(events);
        Ok(())
    }
}
