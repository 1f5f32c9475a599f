//! Sample orders and events for tests and benches, written once for every crate.
//!
//! Each builds the common case; a test that needs another field says so with struct update
//! syntax, which names exactly what differs:
//!
//! ```
//! use nexussale_core::testkit::fixtures;
//! use nexussale_core::{Order, OrderStatus, Sku};
//!
//! # fn main() -> nexussale_core::Result<()> {
//! let sku = Sku::new("ps5")?;
//! let paid = Order { status: OrderStatus::Paid, quantity: 2, ..fixtures::order(&sku, "ann") };
//! assert_eq!(paid.user.as_str(), "ann");
//! let events = fixtures::placements(&[sku], 3);
//! assert_eq!(events.len(), 3);
//! # Ok(()) }
//! ```

use chrono::{DateTime, SubsecRound, Utc};

use crate::ident::{Sku, UserId};
use crate::order::{Order, OrderEvent, OrderId, OrderStatus};
use crate::reservation::ReserveRequest;
use crate::sale::DEFAULT_RESERVATION_TTL;

/// Now, to the microsecond: what every backend stores (MySQL's `DATETIME(6)`), so an order read
/// back equals the one written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A reservation request for one unit of `sku` by `user` (a valid user id), with a fresh order
/// id, [`now`]; no key, no remark.
pub fn reserve_request(sku: &Sku, user: &str) -> ReserveRequest {
    ReserveRequest {
        order_id: OrderId::new(),
        sku: sku.clone(),
        user: UserId::new(user).expect("fixture user ids are valid"),
        quantity: 1,
        idempotency_key: None,
        remark: None,
        now: now(),
    }
}

/// A pending order of one unit of `sku` by `user` (a valid user id), created [`now`], expiring
/// after the default reservation TTL; no remark, no idempotency key.
pub fn order(sku: &Sku, user: &str) -> Order {
    let now = now();
    Order {
        id: OrderId::new(),
        sku: sku.clone(),
        user: UserId::new(user).expect("fixture user ids are valid"),
        quantity: 1,
        status: OrderStatus::Pending,
        created_at: now,
        updated_at: now,
        expires_at: now + DEFAULT_RESERVATION_TTL,
        remark: None,
        idempotency_key: None,
    }
}

/// `count` [`order`]s of `sku`, by `user-0`, `user-1`, ….
pub fn orders(sku: &Sku, count: usize) -> Vec<Order> {
    (0..count)
        .map(|n| order(sku, &format!("user-{n}")))
        .collect()
}

/// The event that places `order`.
pub fn placed(order: Order) -> OrderEvent {
    OrderEvent::Placed { order }
}

/// `count` placements: order `n` by `user-n`, of `skus[n % skus.len()]`.
///
/// # Panics
///
/// When `skus` is empty.
pub fn placements(skus: &[Sku], count: usize) -> Vec<OrderEvent> {
    assert!(!skus.is_empty(), "placements over no sku");
    (0..count)
        .map(|n| placed(order(&skus[n % skus.len()], &format!("user-{n}"))))
        .collect()
}
