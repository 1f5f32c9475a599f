//! Reading orders, and the buyer's transitions: pay and cancel.

use std::sync::atomic::{AtomicBool, Ordering};
use tracing::{debug, warn};

use super::FlashSale;
use crate::error::{Error, Result};
use crate::order::{Order, OrderEvent, OrderId, OrderStatus};
use crate::repository::{OrderPage, OrderQuery, TransitionOutcome};
use crate::reservation::{
    ConfirmOutcome, ReleaseOutcome, ReleaseReason, Reservation, ReservationState,
};

impl FlashSale {
    /// One order: the repository's, or, for an order accepted and not persisted yet (the worker
    /// lags a purchase by a batch), the stock store's reservation of it, so a buyer polling
    /// right after the purchase is never told there is no such order.
    pub async fn order(&self, id: OrderId) -> Result<Order> {
        if let Some(order) = self.inner.repository.get(id).await? {
            return Ok(order);
        }
        self.reserved_order(id)
            .await?
            .ok_or(Error::OrderNotFound(id))
    }

    /// The order the stock store holds a reservation for. The id's tag names its sale: only the
    /// known sales with that tag are asked (one, almost always; a made-up id costs at most a
    /// lookup or two). A purchase whose publish failed (aborted) never had an order.
    async fn reserved_order(&self, id: OrderId) -> Result<Option<Order>> {
        let tag = id.tag();
        for entry in self
            .inner
            .sales
            .values()
            .iter()
            .filter(|entry| entry.tag == tag)
        {
            let found = self.inner.stock.reservation(entry.sku(), id).await;
            match self.unless_lost(entry.sku(), found)? {
                Some(reservation)
                    if reservation.state != ReservationState::Released(ReleaseReason::Aborted) =>
                {
                    return Ok(Some(reservation.into_order()));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// One page of persisted orders, newest first.
    pub async fn orders(&self, query: &OrderQuery) -> Result<OrderPage> {
        self.inner.repository.list(query).await
    }

    async fn pending_order(&self, id: OrderId) -> Result<Order> {
        let order = self.order(id).await?;
        if order.status != OrderStatus::Pending {
            return Err(conflict(id, order.status));
        }
        Ok(order)
    }

    /// Pays a pending order: its units become sold. The stock store decides races: a reservation
    /// that lapsed or was cancelled cannot be paid, a paid one cannot be cancelled. Answered once
    /// the payment cannot be lost: recorded in the repository, or, when the repository cannot
    /// take it now, queued as an [`OrderEvent::Paid`] the worker records later (a store rebuild
    /// waits for it). Safe to retry.
    pub async fn pay(&self, id: OrderId) -> Result<Order> {
        let order = self.pending_order(id).await?;
        let confirmed = self.inner.stock.confirm(&order.sku, id, self.now()).await;
        match self.unless_lost(&order.sku, confirmed)? {
            ConfirmOutcome::Confirmed => {
                self.touch(&order.sku);
                crate::meter::settled(OrderStatus::Paid);
            }
            ConfirmOutcome::AlreadyConfirmed => {}
            ConfirmOutcome::Released(reason) => {
                let status = released_status(reason);
                self.settle(&order, status).await?;
                return Err(conflict(id, status));
            }
            ConfirmOutcome::Expired => return Err(conflict(id, self.expire_now(&order).await?)),
            ConfirmOutcome::NotFound => return Err(missing_reservation(&order)),
        }
        self.settle(&order, OrderStatus::Paid).await
    }

    /// A pay came after the reservation's expiry: releases it as expired now (the sweeper would
    /// shortly; the store's release is exactly once, so racing it is safe) and answers the
    /// order's final status.
    async fn expire_now(&self, order: &Order) -> Result<OrderStatus> {
        let released = self
            .inner
            .stock
            .release(&order.sku, order.id, ReleaseReason::Expired)
            .await;
        let status = match self.unless_lost(&order.sku, released)? {
            ReleaseOutcome::Released { .. } => {
                self.units_returned(&order.sku);
                crate::meter::settled(OrderStatus::Expired);
                OrderStatus::Expired
            }
            ReleaseOutcome::AlreadyReleased(reason) => released_status(reason),
            // Only a pay with a clock behind ours could have confirmed it meanwhile.
            ReleaseOutcome::Confirmed => OrderStatus::Paid,
            ReleaseOutcome::NotFound => return Err(missing_reservation(order)),
        };
        Ok(self.settle(order, status).await?.status)
    }

    /// Cancels a pending order: its units go back on sale. Answered once the cancel cannot be
    /// lost. Safe to retry.
    pub async fn cancel(&self, id: OrderId) -> Result<Order> {
        let order = self.pending_order(id).await?;
        let released = self
            .inner
            .stock
            .release(&order.sku, id, ReleaseReason::Cancelled)
            .await;
        match self.unless_lost(&order.sku, released)? {
            ReleaseOutcome::Released { .. } => {
                self.units_returned(&order.sku);
                crate::meter::settled(OrderStatus::Cancelled);
            }
            ReleaseOutcome::AlreadyReleased(ReleaseReason::Cancelled) => {}
            ReleaseOutcome::AlreadyReleased(reason) => {
                let status = released_status(reason);
                self.settle(&order, status).await?;
                return Err(conflict(id, status));
            }
            // Paid in the store, pending here: a pay whose answer was lost. Record it.
            ReleaseOutcome::Confirmed => {
                self.settle(&order, OrderStatus::Paid).await?;
                return Err(conflict(id, OrderStatus::Paid));
            }
            ReleaseOutcome::NotFound => return Err(missing_reservation(&order)),
        }
        self.settle(&order, OrderStatus::Cancelled).await
    }

    /// Records that the stock store settled `order` in `status`: in the repository, or, when the
    /// repository cannot take the write now (a lock held past its wait timeout, a cut
    /// connection), as an event on the order queue, as durable as a placement: the worker applies
    /// it when the repository is back, and a store rebuild waits for it. Answers the order as
    /// settled; an error only when neither took it (a retry settles again: the store's answer
    /// repeats).
    pub(super) async fn settle(&self, order: &Order, status: OrderStatus) -> Result<Order> {
        let settled = Order {
            status,
            updated_at: self.now(),
            ..order.clone()
        };
        match self.record(&settled).await {
            Ok(Recorded::Done) => Ok(settled),
            Ok(Recorded::Conflict(actual)) => Err(conflict(order.id, actual)),
            Err(err) => self.queue_settled(settled).await.map_err(|_| err),
        }
    }

    /// Queues a settled order for the worker to record.
    async fn queue_settled(&self, settled: Order) -> Result<Order> {
        self.inner
            .queue
            .publish(&OrderEvent::of(settled.clone()))
            .await?;
        debug!(order = %settled.id, status = %settled.status, "transition queued for the worker: the repository did not take it");
        Ok(settled)
    }

    /// Writes a settled order to the repository: pending → its status (compare-and-set), or,
    /// when the order is not persisted yet (the worker lags), inserted settled; the worker's
    /// later insert of the pending order then changes nothing. The repository's own status wins
    /// over nothing: a conflict is answered, not overwritten.
    pub(super) async fn record(&self, settled: &Order) -> Result<Recorded> {
        let repository = &self.inner.repository;
        // Two rounds suffice: if the insert loses a race with the worker, the row now exists.
        for _ in 0..2 {
            match repository
                .transition(
                    settled.id,
                    OrderStatus::Pending,
                    settled.status,
                    settled.updated_at,
                )
                .await?
            {
                TransitionOutcome::Applied => return Ok(Recorded::Done),
                TransitionOutcome::Mismatch(actual) if actual == settled.status => {
                    return Ok(Recorded::Done);
                }
                TransitionOutcome::Mismatch(actual) => return Ok(Recorded::Conflict(actual)),
                TransitionOutcome::NotFound => {
                    if repository.insert(std::slice::from_ref(settled)).await? == 1 {
                        return Ok(Recorded::Done);
                    }
                }
            }
        }
        Err(Error::retryable(
            "repository",
            format!("order {} was neither found nor inserted", settled.id),
        ))
    }

    /// Records the expiry of a reservation the sweeper released (`status`: expired, or what an
    /// earlier release decided). Once the repository has failed
    /// in this sweep (`repository_down`), the rest go straight to the queue: a sweep is not slowed
    /// to one expiry per database timeout, and units keep going back on sale.
    pub(super) async fn record_expiry(
        &self,
        reservation: &Reservation,
        status: OrderStatus,
        repository_down: &AtomicBool,
    ) -> Result<()> {
        let settled = Order {
            status,
            updated_at: self.now(),
            ..reservation.to_order()
        };
        if !repository_down.load(Ordering::Relaxed) {
            match self.record(&settled).await {
                Ok(Recorded::Done) => return Ok(()),
                Ok(Recorded::Conflict(actual)) => {
                    warn!(order = %settled.id, sku = %settled.sku, repository = %actual, "the store expired a reservation the repository settled otherwise; reconcile the sale");
                    return Ok(());
                }
                Err(_) => repository_down.store(true, Ordering::Relaxed),
            }
        }
        self.queue_settled(settled).await.map(drop)
    }
}

/// What the repository says to a settled order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    /// It holds the order in that status now.
    Done,
    /// It holds the order settled otherwise.
    Conflict(OrderStatus),
}

/// The order status a released reservation implies.
pub(super) fn released_status(reason: ReleaseReason) -> OrderStatus {
    match reason {
        ReleaseReason::Cancelled => OrderStatus::Cancelled,
        ReleaseReason::Expired | ReleaseReason::Aborted => OrderStatus::Expired,
    }
}

fn conflict(id: OrderId, actual: OrderStatus) -> Error {
    Error::Conflict {
        id,
        expected: OrderStatus::Pending,
        actual,
    }
}

fn missing_reservation(order: &Order) -> Error {
    Error::permanent(
        "stock",
        format!(
            "the stock store has no reservation for pending order {} of sale {}; reconcile the sale",
            order.id, order.sku
        ),
    )
}
