//! The order worker: queue → repository, at least once, idempotently.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, warn};

use super::FlashSale;
use super::orders::Recorded;
use crate::error::Result;
use crate::order::{Order, OrderEvent, OrderStatus};
use crate::outage::OutageLog;
use crate::queue::{Delivery, DeliveryTag};
use crate::trace;

impl FlashSale {
    /// Takes one batch off the queue, persists its placements in one idempotent insert and
    /// applies its transitions (compare-and-set from pending, so a repeat changes nothing), then
    /// acknowledges it. Answers how many events the batch held (0: nothing arrived within
    /// [`worker_wait`](super::EngineConfig::worker_wait)).
    ///
    /// If a write fails, the batch is given back (nacked) for redelivery and the error returned:
    /// nothing is acknowledged that is not persisted.
    pub async fn process_batch(&self) -> Result<usize> {
        self.process_batch_within(self.inner.config.worker_wait)
            .await
    }

    async fn process_batch_within(&self, wait: Duration) -> Result<usize> {
        let deliveries = self
            .inner
            .queue
            .receive(self.inner.config.worker_batch, wait)
            .await?;
        if deliveries.is_empty() {
            return Ok(0);
        }
        // The batch continues its purchase's trace, or links to each when it joins several.
        let parents: Vec<&trace::TraceParent> = deliveries
            .iter()
            .filter_map(|delivery| delivery.trace.as_ref())
            .collect();
        let span = trace::root(parents.iter().copied(), || {
            tracing::trace_span!(
                "worker batch",
                otel.name = "worker batch",
                events = deliveries.len()
            )
        });
        if let [one] = deliveries.as_slice()
            && let Some(parent) = &one.trace
        {
            trace::follow(&span, parent);
        } else if !span.is_disabled() {
            for linked in parents {
                trace::link(&span, linked);
            }
        }
        self.process_deliveries(deliveries).instrument(span).await
    }

    async fn process_deliveries(&self, deliveries: Vec<Delivery>) -> Result<usize> {
        let tags: Vec<DeliveryTag> = deliveries.iter().map(|delivery| delivery.tag).collect();
        // Each order's insert in its purchase's trace (only when spans are recorded).
        let recorded = !tracing::Span::current().is_disabled();
        let mut inserts = Vec::new();
        let mut placed: Vec<Order> = Vec::with_capacity(deliveries.len());
        let mut settled = Vec::new();
        for delivery in deliveries {
            if recorded
                && let (OrderEvent::Placed { order }, Some(parent)) =
                    (&delivery.event, &delivery.trace)
            {
                let span = tracing::trace_span!("insert order", otel.name = "insert order", order = %order.id, sku = %order.sku);
                trace::follow(&span, parent);
                inserts.push(span);
            }
            let status = match &delivery.event {
                OrderEvent::Placed { .. } => OrderStatus::Pending,
                OrderEvent::Paid { .. } => OrderStatus::Paid,
                OrderEvent::Cancelled { .. } => OrderStatus::Cancelled,
                OrderEvent::Expired { .. } => OrderStatus::Expired,
            };
            let mut order = delivery.event.into_order();
            order.status = status;
            match status {
                OrderStatus::Pending => placed.push(order),
                _ => settled.push(order),
            }
        }
        let persisted = self.persist(&placed, &settled).await;
        drop(inserts);
        if let Err(err) = persisted {
            if let Err(nack_error) = self.inner.queue.nack(&tags).await {
                warn!(error = %nack_error, "could not give a failed batch back; it comes back after the queue's redelivery timeout");
            }
            return Err(err);
        }
        self.inner.queue.ack(&tags).await?;
        debug!(events = tags.len(), "order batch persisted");
        Ok(tags.len())
    }

    /// Placements first: a transition's order was placed before it (or is inserted settled).
    async fn persist(&self, placed: &[Order], settled: &[Order]) -> Result<()> {
        let mut insert = None;
        if !placed.is_empty() {
            let started = std::time::Instant::now();
            self.inner.repository.insert(placed).await?;
            insert = Some(started.elapsed());
        }
        crate::meter::batch(placed.len() + settled.len(), insert);
        for order in settled {
            if let Recorded::Conflict(actual) = self.record(order).await? {
                // The stock store settles each reservation once: a repository that disagrees
                // was changed behind the engine's back. Redelivering would not change that.
                error!(order = %order.id, sku = %order.sku, repository = %actual, store = %order.status, "the repository settled the order otherwise than the stock store; reconcile the sale");
            }
        }
        Ok(())
    }

    /// Processes batches until the queue has nothing ready (it does not wait for more); answers
    /// how many events were processed. For tests and shutdown: the order worker proper is
    /// [`run_worker`](Self::run_worker).
    pub async fn drain(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            match self.process_batch_within(Duration::ZERO).await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    /// Runs the order worker until `shutdown` is cancelled. A batch in progress is always
    /// finished (persisted and acknowledged) before it returns. Failures are logged (once per
    /// outage, see [`OutageLog`]) and retried
    /// with exponential backoff up to
    /// [`worker_max_backoff`](super::EngineConfig::worker_max_backoff).
    pub async fn run_worker(&self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.inner.config.worker_max_backoff);
        // One line when the worker starts failing and one when it recovers, not one a retry.
        let outage = OutageLog::new("order worker");
        while !shutdown.is_cancelled() {
            match self.process_batch().await {
                Ok(_) => {
                    backoff.reset();
                    outage.success();
                }
                Err(err) => {
                    let pause = backoff.next();
                    outage.failure(&format_args!("{err} (retrying with backoff)"));
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }
}

/// Exponential backoff from 10 ms, doubling, capped, each pause drawn from its upper half
/// ("equal jitter"): N workers that failed together on one database outage do not all retry in
/// the same instant.
#[derive(Debug)]
pub(super) struct Backoff {
    current: Duration,
    max: Duration,
}

impl Backoff {
    const START: Duration = Duration::from_millis(10);

    pub(super) fn new(max: Duration) -> Self {
        Self {
            current: Self::START,
            max,
        }
    }

    pub(super) fn next(&mut self) -> Duration {
        let ceiling = self.current.min(self.max);
        self.current = (self.current * 2).min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }

    pub(super) fn reset(&mut self) {
        self.current = Self::START;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(35));
        let ms = Duration::from_millis;
        for ceiling in [10, 20, 35, 35] {
            let pause = backoff.next();
            assert!(
                pause >= ms(ceiling) / 2 && pause <= ms(ceiling),
                "{pause:?} for {ceiling}"
            );
        }
        backoff.reset();
        assert!(backoff.next() <= ms(10));
    }

    #[test]
    fn backoff_pauses_are_spread_so_workers_do_not_retry_in_lockstep() {
        let pauses: std::collections::HashSet<Duration> = (0..50)
            .map(|_| Backoff::new(Duration::from_secs(5)).next())
            .collect();
        assert!(
            pauses.len() > 10,
            "{} distinct first pauses of 50",
            pauses.len()
        );
    }
}
