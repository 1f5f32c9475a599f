//! [`MemoryOrderQueue`]: an at-least-once queue in process memory.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::padded::Padded;
use crate::error::{Error, Result};
use crate::order::OrderEvent;
use crate::queue::{Delivery, DeliveryTag, OrderQueue, QueueMark};
use crate::trace::TraceParent;

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

/// An event in the channel, with its publish sequence number.
struct Queued {
    seq: u64,
    /// False for an event given back (nacked or overdue): it was received before.
    fresh: bool,
    event: OrderEvent,
    trace: Option<TraceParent>,
}

struct InFlight {
    seq: u64,
    event: OrderEvent,
    trace: Option<TraceParent>,
    deadline: Instant,
}

/// What is owed, for acknowledgement and for [`OrderQueue::drained`]. Touched by receive, ack
/// and nack, never by publish, which stays one channel push.
#[derive(Default)]
struct Books {
    in_flight: HashMap<i64, InFlight>,
    /// Sequence numbers given back and not yet delivered again.
    requeued: BTreeSet<u64>,
    /// Every fresh sequence number below this was received.
    received_below: u64,
    /// Fresh sequence numbers received out of order, above `received_below`.
    received_above: BTreeSet<u64>,
}

impl Books {
    fn received(&mut self, item: &Queued) {
        if !item.fresh {
            self.requeued.remove(&item.seq);
            return;
        }
        // In order, as nearly always: no set touched (a set's first insert allocates a node).
        if item.seq == self.received_below && self.received_above.is_empty() {
            self.received_below += 1;
            return;
        }
        self.received_above.insert(item.seq);
        while self.received_above.remove(&self.received_below) {
            self.received_below += 1;
        }
    }

    /// Takes deliveries out of flight to be sent again.
    fn give_back(&mut self, offsets: impl IntoIterator<Item = i64>) -> Vec<Queued> {
        offsets
            .into_iter()
            .filter_map(|offset| self.in_flight.remove(&offset))
            .map(|delivery| {
                self.requeued.insert(delivery.seq);
                Queued {
                    seq: delivery.seq,
                    fresh: false,
                    event: delivery.event,
                    trace: delivery.trace,
                }
            })
            .collect()
    }

    fn owes_before(&self, end: u64) -> bool {
        self.received_below < end
            || self.requeued.first().is_some_and(|&seq| seq < end)
            || self.in_flight.values().any(|delivery| delivery.seq < end)
    }
}

struct Inner {
    sender: mpsc::UnboundedSender<Queued>,
    receiver: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    books: Mutex<Books>,
    /// Events published and not yet acknowledged (queued or in flight).
    owed: Padded<AtomicUsize>,
    /// The next publish sequence number.
    published: AtomicU64,
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
                books: Mutex::default(),
                owed: Padded(AtomicUsize::new(0)),
                published: AtomicU64::new(0),
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

    fn send(&self, items: impl IntoIterator<Item = Queued>) {
        for item in items {
            // The receiver lives in `inner` as long as the sender: sending cannot fail.
            let _ = self.inner.sender.send(item);
        }
    }

    fn requeue_overdue(&self, now: Instant) {
        let overdue = {
            let mut books = self.inner.books.lock();
            let offsets: Vec<i64> = books
                .in_flight
                .iter()
                .filter(|(_, delivery)| delivery.deadline <= now)
                .map(|(offset, _)| *offset)
                .collect();
            books.give_back(offsets)
        };
        self.send(overdue);
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
        let seq = self.inner.published.fetch_add(1, Ordering::AcqRel);
        self.send([Queued {
            seq,
            fresh: true,
            event: event.clone(),
            trace: crate::trace::current(),
        }]);
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let deadline = Instant::now() + wait;
        self.requeue_overdue(Instant::now());
        let mut items = Vec::new();
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
            items.push(first);
            while items.len() < max {
                match receiver.try_recv() {
                    Ok(item) => items.push(item),
                    Err(_) => break,
                }
            }
        }
        drop(receiver);
        let redeliver_at = Instant::now() + self.inner.redelivery_timeout;
        let mut books = self.inner.books.lock();
        Ok(items
            .into_iter()
            .map(|item| {
                books.received(&item);
                let offset = self.inner.next_offset.fetch_add(1, Ordering::AcqRel);
                books.in_flight.insert(
                    offset,
                    InFlight {
                        seq: item.seq,
                        event: item.event.clone(),
                        trace: item.trace.clone(),
                        deadline: redeliver_at,
                    },
                );
                Delivery::new(
                    item.event,
                    DeliveryTag {
                        partition: 0,
                        offset,
                    },
                )
                .with_trace(item.trace)
            })
            .collect())
    }

    async fn ack(&self, tags: &[DeliveryTag]) -> Result<()> {
        let mut books = self.inner.books.lock();
        let acked = tags
            .iter()
            .filter(|tag| books.in_flight.remove(&tag.offset).is_some())
            .count();
        self.inner.owed.fetch_sub(acked, Ordering::AcqRel);
        Ok(())
    }

    async fn nack(&self, tags: &[DeliveryTag]) -> Result<()> {
        let items = self
            .inner
            .books
            .lock()
            .give_back(tags.iter().map(|tag| tag.offset));
        self.send(items);
        Ok(())
    }

    async fn mark(&self) -> Result<QueueMark> {
        let end = self.inner.published.load(Ordering::Acquire);
        Ok(QueueMark::new(vec![DeliveryTag {
            partition: 0,
            offset: i64::try_from(end).unwrap_or(i64::MAX),
        }]))
    }

    async fn drained(&self, mark: &QueueMark) -> Result<bool> {
        let books = self.inner.books.lock();
        Ok(mark
            .ends()
            .iter()
            .all(|end| !books.owes_before(u64::try_from(end.offset).unwrap_or(0))))
    }
}
