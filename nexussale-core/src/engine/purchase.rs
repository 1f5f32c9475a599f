//! The purchase path.

use tracing::{Instrument, debug, error};

use super::FlashSale;
use super::finish::FinishOnDrop;
use crate::error::{Error, Result};
use crate::ident::{IdempotencyKey, Sku, UserId};
use crate::order::{Order, OrderEvent, OrderId, validate_remark};
use crate::reservation::{
    ReleaseReason, Reservation, ReservationState, ReserveOutcome, ReserveRequest,
};
use crate::sale::SaleState;
use crate::waiting_room::PassRefusal;

/// A buyer's purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseRequest {
    /// The sale.
    pub sku: Sku,
    /// The buyer.
    pub user: UserId,
    /// Units, at least 1 and at most the sale's per-user limit.
    pub quantity: u32,
    /// Makes the purchase safe to retry: the same key (same sale, same user) answers with the
    /// same order.
    pub idempotency_key: Option<IdempotencyKey>,
    /// Free text kept on the order.
    pub remark: Option<String>,
    /// The admission pass, for a sale with a waiting room (which refuses a purchase without a
    /// valid one as [`PurchaseOutcome::NotAdmitted`]).
    pub pass: Option<String>,
}

impl PurchaseRequest {
    /// A purchase of one unit, without key or remark.
    pub fn new(sku: Sku, user: UserId) -> Self {
        Self {
            sku,
            user,
            quantity: 1,
            idempotency_key: None,
            remark: None,
            pass: None,
        }
    }

    /// Sets the quantity.
    pub fn with_quantity(mut self, quantity: u32) -> Self {
        self.quantity = quantity;
        self
    }

    /// Sets the admission pass.
    pub fn with_pass(mut self, pass: impl Into<String>) -> Self {
        self.pass = Some(pass.into());
        self
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }
}

/// An accepted purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The order (pending until paid).
    pub order: Order,
    /// Units still available right after this purchase; `None` when the answer repeats an
    /// earlier purchase.
    pub remaining: Option<u64>,
}

/// The answer to a purchase. Every variant but `Accepted` and `Duplicate` is a refusal that held
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseOutcome {
    /// Units reserved and the order event durably queued.
    Accepted(Receipt),
    /// The idempotency key was used before: this is the earlier order.
    Duplicate(Receipt),
    /// Not enough units available.
    SoldOut,
    /// The buyer would exceed the sale's per-user limit.
    LimitExceeded {
        /// The sale's per-user limit.
        limit: u32,
    },
    /// The sale is upcoming or ended.
    NotActive(SaleState),
    /// The sale has a waiting room and the purchase came without a pass this buyer may use.
    NotAdmitted(PassRefusal),
}

impl FlashSale {
    /// Buys units of a sale (see [the purchase path](FlashSale#the-purchase-path)).
    ///
    /// `Err` is refused input ([`Error::InvalidInput`]), an unknown sale, or a backend failure.
    /// After a backend failure the call can be retried, and with the same idempotency key it
    /// never buys twice. A failed publish returns its units at once; a reservation whose answer
    /// was lost (a store timeout after the store acted) is either picked up by the retry with its
    /// key, or returned by the sweeper at its TTL.
    ///
    /// Once it reaches the stock store, the purchase runs to its end even if this future is
    /// dropped (an HTTP client that hangs up): the rest of it then runs in a task of its own, and
    /// no unit is left reserved without its order event.
    #[tracing::instrument(level = "trace", name = "purchase", skip_all, fields(otel.name = "purchase", sku = %request.sku, quantity = request.quantity))]
    pub async fn purchase(&self, request: PurchaseRequest) -> Result<PurchaseOutcome> {
        if request.quantity == 0 {
            return Err(Error::invalid("quantity", "must be at least 1"));
        }
        if let Some(remark) = &request.remark {
            validate_remark(remark)?;
        }
        let now = self.now();
        let now_ms = now.timestamp_millis();
        let sale = self.sale_check(&request.sku, now, now_ms).await?;
        if sale.rebuilding {
            return Err(super::rebuild::rebuilding(&request.sku));
        }
        // What this process can answer without the stock store.
        let limit = sale.per_user_limit;
        let refusal = match sale.window {
            _ if request.quantity > limit => Some(PurchaseOutcome::LimitExceeded { limit }),
            SaleState::Active | SaleState::SoldOut if sale.sold_out => {
                Some(PurchaseOutcome::SoldOut)
            }
            SaleState::Active | SaleState::SoldOut => None,
            state => Some(PurchaseOutcome::NotActive(state)),
        };
        // A waiting-room sale takes a purchase only with a pass, used here once.
        let mut pass = None;
        let refusal = match refusal {
            None if sale.waiting_room => {
                match self
                    .use_pass(&request.sku, &request.user, request.pass.as_deref(), now)
                    .await?
                {
                    Ok(verified) => {
                        pass = Some(verified);
                        None
                    }
                    Err(refused) => Some(PurchaseOutcome::NotAdmitted(refused)),
                }
            }
            refusal => refusal,
        };
        if let Some(refusal) = refusal {
            let Some(key) = &request.idempotency_key else {
                return Ok(refusal);
            };
            // A keyed request may be the retry of an accepted one: one cheap lookup of its key
            // tells, instead of a reservation attempt (a flood of keyed requests on a sold-out
            // sale would otherwise cost the store a reservation script each).
            let earlier = self
                .inner
                .stock
                .reservation_by_key(&request.sku, &request.user, key)
                .await;
            return match self.unless_lost(&request.sku, earlier)? {
                Some(reservation) => {
                    self.existing(reservation, request.quantity, &request.remark)
                        .await
                }
                None => Ok(refusal),
            };
        }
        let reserve = ReserveRequest {
            order_id: OrderId::with_tag(now_ms, sale.tag),
            sku: request.sku,
            user: request.user,
            quantity: request.quantity,
            idempotency_key: request.idempotency_key,
            remark: request.remark,
            now,
        };
        // From here on the purchase runs to its end whatever the caller does. A caller that stops
        // waiting (an HTTP client hanging up drops its handler's future) would otherwise leave
        // units reserved with no order event between the reserve and the publish, held from
        // everyone until the TTL — during a drop, stock nobody can buy.
        let engine = self.clone();
        // In the purchase's span, also once it runs in a task of its own.
        let rest = async move {
            let sku = reserve.sku.clone();
            let outcome = engine.reserve_and_publish(reserve, now_ms).await;
            if let Some(pass) = pass {
                engine.after_pass(&sku, &pass, outcome.is_err()).await;
            }
            outcome
        };
        FinishOnDrop::new(rest.in_current_span()).await
    }

    /// Reserves, then publishes the order event (or returns the units), and answers.
    async fn reserve_and_publish(
        &self,
        reserve: ReserveRequest,
        now_ms: i64,
    ) -> Result<PurchaseOutcome> {
        self.inner.purchases_first.purchase();
        let reserved = self.inner.stock.reserve(&reserve).await;
        match self.unless_lost(&reserve.sku, reserved)? {
            ReserveOutcome::Reserved {
                reservation,
                remaining,
            } => {
                if remaining == 0 {
                    self.sold_out(&reserve.sku, now_ms);
                }
                let event = OrderEvent::Placed {
                    order: reservation.into_order(),
                };
                self.publish_or_abort(&event).await?;
                Ok(PurchaseOutcome::Accepted(Receipt {
                    order: event.into_order(),
                    remaining: Some(remaining),
                }))
            }
            ReserveOutcome::Existing { reservation } => {
                self.existing(reservation, reserve.quantity, &reserve.remark)
                    .await
            }
            ReserveOutcome::SoldOut { available } => {
                if available == 0 {
                    self.sold_out(&reserve.sku, now_ms);
                }
                Ok(PurchaseOutcome::SoldOut)
            }
            ReserveOutcome::LimitExceeded { limit, .. } => {
                Ok(PurchaseOutcome::LimitExceeded { limit })
            }
            ReserveOutcome::NotActive { state } => {
                // Checked here first: this process's copy of the sale is behind the store's.
                self.refresh_end(&reserve.sku).await;
                Ok(PurchaseOutcome::NotActive(state))
            }
        }
    }

    /// The answer to a purchase whose idempotency key made `reservation` before: that order, if
    /// the request is the same one (quantity and remark), else refused.
    async fn existing(
        &self,
        reservation: Reservation,
        quantity: u32,
        remark: &Option<String>,
    ) -> Result<PurchaseOutcome> {
        if reservation.quantity != quantity || reservation.remark != *remark {
            return Err(Error::IdempotencyKeyReused {
                order: reservation.order_id,
            });
        }
        let order = reservation.to_order();
        if reservation.state == ReservationState::Reserved {
            // The first attempt may have died between reserve and publish: publish again.
            // The worker persists idempotently, so a second event costs nothing.
            self.inner
                .queue
                .publish(&OrderEvent::Placed {
                    order: order.clone(),
                })
                .await?;
        }
        Ok(PurchaseOutcome::Duplicate(Receipt {
            order,
            remaining: None,
        }))
    }

    /// Publishes the order's event; if that fails, returns its units so that no unit is ever
    /// held without its event, and answers the publish error.
    async fn publish_or_abort(&self, event: &OrderEvent) -> Result<()> {
        let Err(publish_error) = self.inner.queue.publish(event).await else {
            return Ok(());
        };
        let order = event.order();
        // The queue's outage is logged once by its `Watched` wrapper, not per purchase.
        debug!(order = %order.id, sku = %order.sku, error = %publish_error, "order event not queued; releasing its units");
        match self
            .inner
            .stock
            .release(&order.sku, order.id, ReleaseReason::Aborted)
            .await
        {
            Ok(_) => self.units_returned(&order.sku),
            // The reservation stays held until its TTL; the sweeper then returns the units.
            Err(release_error) => {
                error!(order = %order.id, sku = %order.sku, error = %release_error, "could not release an unqueued reservation; the sweeper will after its TTL")
            }
        }
        Err(publish_error)
    }
}
