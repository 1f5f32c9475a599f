//! Reservations: units held for one order, and the answers a [`StockStore`](crate::StockStore)
//! gives about them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ident::{IdempotencyKey, Sku, UserId};
use crate::order::{Order, OrderId, OrderStatus};
use crate::sale::SaleState;

/// A request to hold units of one sale for one order. Built by the engine, which has validated
/// every field and chosen the order id and the instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRequest {
    /// The id the order will carry if the reservation is made.
    pub order_id: OrderId,
    /// The sale.
    pub sku: Sku,
    /// The buyer.
    pub user: UserId,
    /// Units wanted, at least 1.
    pub quantity: u32,
    /// Within one sale and one user, the same key answers with the same reservation.
    pub idempotency_key: Option<IdempotencyKey>,
    /// Free text kept with the reservation so the order can be rebuilt from it.
    pub remark: Option<String>,
    /// The instant of the request: the sale window is checked and the expiry computed from it.
    pub now: DateTime<Utc>,
}

impl ReserveRequest {
    /// The reservation this request makes when `sale` accepts it: held, expiring one TTL after
    /// the request's instant.
    pub fn reservation(&self, sale: &crate::sale::Sale) -> Reservation {
        Reservation {
            order_id: self.order_id,
            sku: self.sku.clone(),
            user: self.user.clone(),
            quantity: self.quantity,
            idempotency_key: self.idempotency_key.clone(),
            remark: self.remark.clone(),
            created_at: self.now,
            expires_at: sale.expiry_from(self.now),
            state: ReservationState::Reserved,
        }
    }
}

/// Why a reservation's units went back on sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The buyer cancelled.
    Cancelled,
    /// Not paid within the TTL.
    Expired,
    /// The purchase could not be completed (its event could not be queued). An aborted reservation
    /// frees its idempotency key: the same key may reserve again.
    Aborted,
}

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Holding its units.
    Reserved,
    /// Paid: its units are sold.
    Confirmed,
    /// Its units went back on sale.
    Released(ReleaseReason),
}

impl ReservationState {
    /// The state a reservation has when its order has `status` (what
    /// [`StockStore::restore`](crate::StockStore::restore) rebuilds).
    pub fn of_order(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Pending => Self::Reserved,
            OrderStatus::Paid => Self::Confirmed,
            OrderStatus::Cancelled => Self::Released(ReleaseReason::Cancelled),
            OrderStatus::Expired => Self::Released(ReleaseReason::Expired),
        }
    }
}

/// Units held for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The order's id.
    pub order_id: OrderId,
    /// The sale.
    pub sku: Sku,
    /// The buyer.
    pub user: UserId,
    /// Units held.
    pub quantity: u32,
    /// The key the reservation was made with.
    pub idempotency_key: Option<IdempotencyKey>,
    /// Free text from the buyer.
    pub remark: Option<String>,
    /// When it was made.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    /// When it lapses unless confirmed.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub expires_at: DateTime<Utc>,
    /// Where it stands.
    pub state: ReservationState,
}

impl Reservation {
    /// The reservation `order` stands for, in the state its status implies (what
    /// [`StockStore::restore`](crate::StockStore::restore) rebuilds from each order).
    pub fn from_order(order: &Order) -> Self {
        Self {
            order_id: order.id,
            sku: order.sku.clone(),
            user: order.user.clone(),
            quantity: order.quantity,
            idempotency_key: order.idempotency_key.clone(),
            remark: order.remark.clone(),
            created_at: order.created_at,
            expires_at: order.expires_at,
            state: ReservationState::of_order(order.status),
        }
    }

    /// The order this reservation stands for, with the status its state implies.
    pub fn to_order(&self) -> Order {
        self.clone().into_order()
    }

    /// [`to_order`](Self::to_order), without copying.
    pub fn into_order(self) -> Order {
        let status = match self.state {
            ReservationState::Reserved => OrderStatus::Pending,
            ReservationState::Confirmed => OrderStatus::Paid,
            ReservationState::Released(ReleaseReason::Cancelled) => OrderStatus::Cancelled,
            ReservationState::Released(_) => OrderStatus::Expired,
        };
        Order {
            id: self.order_id,
            sku: self.sku,
            user: self.user,
            quantity: self.quantity,
            status,
            created_at: self.created_at,
            updated_at: self.created_at,
            expires_at: self.expires_at,
            remark: self.remark,
            idempotency_key: self.idempotency_key,
        }
    }
}

/// The answer to [`StockStore::reserve`](crate::StockStore::reserve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// The units are held.
    Reserved {
        /// The new reservation.
        reservation: Reservation,
        /// Units still available after this one.
        remaining: u64,
    },
    /// Fewer units are available than asked for.
    SoldOut {
        /// Units available when the request was refused.
        available: u64,
    },
    /// The user would hold more than the sale's per-user limit.
    LimitExceeded {
        /// The sale's per-user limit.
        limit: u32,
        /// Units the user holds already (reserved or sold).
        held: u32,
    },
    /// The sale is not accepting purchases at the request's instant.
    NotActive {
        /// [`SaleState::Upcoming`] or [`SaleState::Ended`].
        state: SaleState,
    },
    /// A reservation with this idempotency key exists already (in any state but aborted): nothing
    /// new was held.
    Existing {
        /// The earlier reservation.
        reservation: Reservation,
    },
}

/// The answer to [`StockStore::confirm`](crate::StockStore::confirm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// The units moved from reserved to sold.
    Confirmed,
    /// It was confirmed before: nothing changed.
    AlreadyConfirmed,
    /// Refused: the reservation was released, its units are back on sale.
    Released(ReleaseReason),
    /// Refused: the reservation's expiry has passed (it is still held until it is released as
    /// expired). A payment after the expiry must not win over the sweeper.
    Expired,
    /// No such reservation.
    NotFound,
}

/// The answer to [`StockStore::release`](crate::StockStore::release).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The units went back on sale, by this call.
    Released {
        /// Units returned.
        quantity: u32,
    },
    /// It was released before (by another call): nothing changed.
    AlreadyReleased(ReleaseReason),
    /// Refused: the reservation is confirmed, its units are sold.
    Confirmed,
    /// No such reservation.
    NotFound,
}
