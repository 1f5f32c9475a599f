//! Reading orders, and the buyer's transitions: pay and cancel.

use super::FlashSale;
use crate::error::{Error, Result};
use crate::order::{Order, OrderId, OrderStatus};
use crate::repository::{OrderPage, OrderQuery, TransitionOutcome};
use crate::reservation::{ConfirmOutcome, ReleaseOutcome, ReleaseReason, Reservation};

impl FlashSale {
    /// One persisted order.
    pub async fn order(&self, id: OrderId) -> Result<Order> {
        self.inner
            .repository
            .get(id)
            .await?
            .ok_or(Error::OrderNotFound(id))
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
    /// that lapsed or was cancelled cannot be paid, a paid one cannot be cancelled. Safe to retry.
    pub async fn pay(&self, id: OrderId) -> Result<Order> {
        let order = self.pending_order(id).await?;
        let confirmed = self.inner.stock.confirm(&order.sku, id, self.now()).await;
        match self.unless_lost(&order.sku, confirmed)? {
            ConfirmOutcome::Confirmed | ConfirmOutcome::AlreadyConfirmed => {}
            ConfirmOutcome::Released(reason) => {
                let status = released_status(reason);
                self.record_release(&order, status).await?;
                return Err(conflict(id, status));
            }
            ConfirmOutcome::Expired => return Err(conflict(id, self.expire_now(&order).await?)),
            ConfirmOutcome::NotFound => return Err(missing_reservation(&order)),
        }
        self.finish_transition(order, OrderStatus::Paid).await
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
                OrderStatus::Expired
            }
            ReleaseOutcome::AlreadyReleased(reason) => released_status(reason),
            // Only a pay with a clock behind ours could have confirmed it meanwhile.
            ReleaseOutcome::Confirmed => return Ok(OrderStatus::Paid),
            ReleaseOutcome::NotFound => return Err(missing_reservation(order)),
        };
        self.record_release(order, status).await?;
        Ok(status)
    }

    /// Cancels a pending order: its units go back on sale. Safe to retry.
    pub async fn cancel(&self, id: OrderId) -> Result<Order> {
        let order = self.pending_order(id).await?;
        let released = self
            .inner
            .stock
            .release(&order.sku, id, ReleaseReason::Cancelled)
            .await;
        match self.unless_lost(&order.sku, released)? {
            ReleaseOutcome::Released { .. } => self.units_returned(&order.sku),
            ReleaseOutcome::AlreadyReleased(ReleaseReason::Cancelled) => {}
            ReleaseOutcome::AlreadyReleased(reason) => {
                let status = released_status(reason);
                self.record_release(&order, status).await?;
                return Err(conflict(id, status));
            }
            ReleaseOutcome::Confirmed => return Err(conflict(id, OrderStatus::Paid)),
            ReleaseOutcome::NotFound => return Err(missing_reservation(&order)),
        }
        self.finish_transition(order, OrderStatus::Cancelled).await
    }

    /// Moves a pending order to `to` in the repository, after the stock store agreed.
    async fn finish_transition(&self, mut order: Order, to: OrderStatus) -> Result<Order> {
        let now = self.now();
        match self
            .inner
            .repository
            .transition(order.id, OrderStatus::Pending, to, now)
            .await?
        {
            TransitionOutcome::Applied => {
                order.status = to;
                order.updated_at = now;
                Ok(order)
            }
            TransitionOutcome::Mismatch(actual) if actual == to => self.order(order.id).await,
            TransitionOutcome::Mismatch(actual) => Err(conflict(order.id, actual)),
            TransitionOutcome::NotFound => Err(Error::OrderNotFound(order.id)),
        }
    }

    /// Records in the repository that the stock store released an order's units. When the order
    /// is not persisted yet (the worker lags), it is inserted in its final status; the worker's
    /// later insert of the pending order then changes nothing.
    pub(super) async fn record_release(&self, order: &Order, status: OrderStatus) -> Result<()> {
        let repository = &self.inner.repository;
        let now = self.now();
        // Two rounds suffice: if the insert loses a race with the worker, the row now exists.
        for _ in 0..2 {
            match repository
                .transition(order.id, OrderStatus::Pending, status, now)
                .await?
            {
                TransitionOutcome::Applied | TransitionOutcome::Mismatch(_) => return Ok(()),
                TransitionOutcome::NotFound => {
                    let mut settled = order.clone();
                    settled.status = status;
                    settled.updated_at = now;
                    if repository.insert(&[settled]).await? == 1 {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// [`record_release`](Self::record_release) for a reservation the sweeper released.
    pub(super) async fn record_expiry(&self, reservation: &Reservation) -> Result<()> {
        self.record_release(&reservation.to_order(), OrderStatus::Expired)
            .await
    }
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
