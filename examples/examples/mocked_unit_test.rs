//! Unit-testing your own code that calls the engine, with the backends mocked
//! (`nexussale-core`'s feature `mock`: `MockStockStore`, `MockOrderQueue`, `MockOrderRepository`).
//!
//! The code under test is `checkout`, a handler of a shop: it turns the engine's answer into what
//! the shop shows. Its tests need no Redis, Kafka or MySQL: each mock answers what the case
//! needs, and says whether the engine called it as it should.
//!
//! ```text
//! cargo test -p nexussale-examples --example mocked_unit_test
//! cargo run -p nexussale-examples --example mocked_unit_test
//! ```

use nexussale_core::{FlashSale, PurchaseOutcome, PurchaseRequest, Sku, UserId};

/// What the shop shows a buyer.
#[derive(Debug, PartialEq, Eq)]
pub enum Checkout {
    /// "Reserved for you: pay within the time shown."
    Reserved {
        /// The order to pay.
        order_id: String,
    },
    /// "Sold out."
    SoldOut,
    /// "You already have the most you may buy."
    AtLimit(u32),
    /// "Something went wrong: try again in a moment." (nothing was reserved)
    TryAgain,
    /// "That is not something you can buy now."
    Unavailable,
}

/// The shop's handler: one unit of `sku` for `user`.
pub async fn checkout(engine: &FlashSale, sku: &str, user: &str) -> Checkout {
    let (Ok(sku), Ok(user)) = (Sku::new(sku), UserId::new(user)) else {
        return Checkout::Unavailable;
    };
    match engine.purchase(PurchaseRequest::new(sku, user)).await {
        Ok(PurchaseOutcome::Accepted(receipt) | PurchaseOutcome::Duplicate(receipt)) => {
            Checkout::Reserved {
                order_id: receipt.order.id.to_string(),
            }
        }
        Ok(PurchaseOutcome::SoldOut) => Checkout::SoldOut,
        Ok(PurchaseOutcome::LimitExceeded { limit }) => Checkout::AtLimit(limit),
        Ok(_) => Checkout::Unavailable,
        Err(err) if err.is_retryable() => Checkout::TryAgain,
        Err(_) => Checkout::Unavailable,
    }
}

fn main() {
    println!("run the tests: cargo test -p nexussale-examples --example mocked_unit_test");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

    use std::sync::Arc;

    use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
    use nexussale_core::{
        Error, MockOrderQueue, MockOrderRepository, MockStockStore, ReleaseOutcome, ReleaseReason,
        ReserveOutcome, Sale, StockStore,
    };

    use super::*;

    fn ps5() -> Sale {
        Sale::new(Sku::new("ps5").unwrap(), 10)
    }

    /// A stock store that knows the sale and answers every reservation with `outcome`.
    fn stock_answering(outcome: ReserveOutcome) -> MockStockStore {
        let mut stock = MockStockStore::new();
        stock.expect_sale().returning(|_| Ok(Some(ps5())));
        stock
            .expect_reserve()
            .times(1)
            .returning(move |_| Ok(outcome.clone()));
        stock
    }

    /// The engine over `stock`, with a queue and a repository that must never be used.
    fn engine_without_queue(stock: MockStockStore) -> FlashSale {
        let mut queue = MockOrderQueue::new();
        queue.expect_publish().never();
        let mut orders = MockOrderRepository::new();
        orders.expect_insert().never();
        FlashSale::new(Arc::new(stock), Arc::new(queue), Arc::new(orders))
    }

    #[tokio::test]
    async fn sold_out_is_shown_and_nothing_is_queued() {
        let engine =
            engine_without_queue(stock_answering(ReserveOutcome::SoldOut { available: 0 }));
        assert_eq!(checkout(&engine, "ps5", "ann").await, Checkout::SoldOut);
    }

    #[tokio::test]
    async fn the_limit_is_shown_and_nothing_is_queued() {
        let engine = engine_without_queue(stock_answering(ReserveOutcome::LimitExceeded {
            limit: 2,
            held: 2,
        }));
        assert_eq!(checkout(&engine, "ps5", "ann").await, Checkout::AtLimit(2));
    }

    /// The queue is down: the engine gives the reserved units back (released as aborted) before
    /// it answers, and the shop asks the buyer to try again.
    #[tokio::test]
    async fn a_failing_queue_returns_the_units_and_asks_to_retry() {
        let stock = Arc::new(MemoryStockStore::new());
        stock.create_sale(&ps5()).await.unwrap();
        let mut queue = MockOrderQueue::new();
        queue
            .expect_publish()
            .times(1)
            .returning(|_| Err(Error::retryable("kafka", "no broker answers")));
        let engine = FlashSale::new(
            stock.clone(),
            Arc::new(queue),
            Arc::new(MemoryOrderRepository::new()),
        );
        assert_eq!(checkout(&engine, "ps5", "ann").await, Checkout::TryAgain);
        // The compensation: the units are back.
        assert_eq!(
            stock.snapshot(&ps5().sku).await.unwrap().available,
            10,
            "the reservation was released"
        );
    }

    /// The same compensation, seen from a mocked stock store: the engine releases the very
    /// reservation it made, as aborted.
    #[tokio::test]
    async fn the_compensation_releases_the_reservation_it_made() {
        let mut stock = MockStockStore::new();
        stock.expect_sale().returning(|_| Ok(Some(ps5())));
        stock.expect_reserve().times(1).returning(|request| {
            Ok(ReserveOutcome::Reserved {
                reservation: request.reservation(&ps5()),
                remaining: 9,
            })
        });
        stock
            .expect_release()
            .withf(|_, _, reason| *reason == ReleaseReason::Aborted)
            .times(1)
            .returning(|_, _, _| Ok(ReleaseOutcome::Released { quantity: 1 }));
        let mut queue = MockOrderQueue::new();
        queue
            .expect_publish()
            .times(1)
            .returning(|_| Err(Error::retryable("kafka", "no broker answers")));
        let engine = FlashSale::new(
            Arc::new(stock),
            Arc::new(queue),
            Arc::new(MemoryOrderRepository::new()),
        );
        assert_eq!(checkout(&engine, "ps5", "ann").await, Checkout::TryAgain);
    }

    #[tokio::test]
    async fn a_purchase_through_real_in_memory_backends_is_reserved() {
        let engine = FlashSale::new(
            Arc::new(MemoryStockStore::new()),
            Arc::new(MemoryOrderQueue::new()),
            Arc::new(MemoryOrderRepository::new()),
        );
        engine.create_sale(ps5()).await.unwrap();
        assert!(matches!(
            checkout(&engine, "ps5", "ann").await,
            Checkout::Reserved { .. }
        ));
        assert_eq!(
            checkout(&engine, "no such sku!", "ann").await,
            Checkout::Unavailable
        );
    }
}
