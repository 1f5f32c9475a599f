//! The conformance kit against the in-memory backends: directly, and through `Box<dyn …>`
//! inside the `Arc<dyn …>` the kit takes (the forwarding impls).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::Arc;
use std::time::Duration;

use nexussale_core::memory::{
    MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore, MemoryWaitingRoomStore,
};
use nexussale_core::testkit::{self, QueueOpener};
use nexussale_core::{
    DynOrderQueue, DynOrderRepository, DynStockStore, DynWaitingRoomStore, OrderQueue,
    OrderRepository, StockStore, WaitingRoomStore,
};

/// Unacknowledged deliveries come back after this long (the kit's consumer-loss case waits on it).
const REDELIVERY: Duration = Duration::from_secs(1);

fn opener(queue: MemoryOrderQueue, boxed: bool) -> QueueOpener {
    Arc::new(move || {
        let queue = queue.clone();
        Box::pin(async move {
            if boxed {
                Arc::new(Box::new(queue) as Box<dyn OrderQueue>) as DynOrderQueue
            } else {
                Arc::new(queue) as DynOrderQueue
            }
        })
    })
}

mod direct {
    use super::*;

    async fn stock() -> Option<DynStockStore> {
        Some(Arc::new(MemoryStockStore::new()))
    }
    async fn queue() -> Option<QueueOpener> {
        Some(opener(
            MemoryOrderQueue::with_limits(100_000, REDELIVERY),
            false,
        ))
    }
    async fn repository() -> Option<DynOrderRepository> {
        Some(Arc::new(MemoryOrderRepository::new()))
    }

    async fn waiting_room() -> Option<DynWaitingRoomStore> {
        Some(Arc::new(MemoryWaitingRoomStore::new()))
    }

    nexussale_core::stock_store_tests!(stock);
    nexussale_core::order_queue_tests!(queue);
    nexussale_core::order_repository_tests!(repository);
    nexussale_core::waiting_room_store_tests!(waiting_room);

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn purchase_flow() {
        testkit::engine::purchase_flow(
            Arc::new(MemoryStockStore::new()),
            Arc::new(MemoryOrderQueue::new()),
            Arc::new(MemoryOrderRepository::new()),
        )
        .await;
    }

    #[tokio::test]
    async fn sweeper_visits_only_due_sales() {
        testkit::engine::sweeper_visits_only_due_sales(Arc::new(MemoryStockStore::new())).await;
    }

    #[tokio::test]
    async fn admission_lists_sales_only_when_they_change() {
        testkit::engine::admission_lists_sales_only_when_they_change(Arc::new(
            MemoryStockStore::new(),
        ))
        .await;
    }

    #[tokio::test]
    async fn settled_reservations_are_forgotten_after_their_retention() {
        let retention = Duration::from_secs(120);
        testkit::stock::settled_reservations_are_forgotten_after_their_retention(
            Arc::new(MemoryStockStore::new().with_retention(retention)),
            retention,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn waiting_room_flow() {
        testkit::engine::waiting_room_flow(
            Arc::new(MemoryStockStore::new()),
            Arc::new(MemoryOrderQueue::new()),
            Arc::new(MemoryOrderRepository::new()),
            Arc::new(MemoryWaitingRoomStore::new()),
        )
        .await;
    }
}

mod boxed {
    use super::*;

    async fn stock() -> Option<DynStockStore> {
        Some(Arc::new(
            Box::new(MemoryStockStore::new()) as Box<dyn StockStore>
        ))
    }
    async fn queue() -> Option<QueueOpener> {
        Some(opener(
            MemoryOrderQueue::with_limits(100_000, REDELIVERY),
            true,
        ))
    }
    async fn repository() -> Option<DynOrderRepository> {
        Some(Arc::new(
            Box::new(MemoryOrderRepository::new()) as Box<dyn OrderRepository>
        ))
    }

    async fn waiting_room() -> Option<DynWaitingRoomStore> {
        Some(Arc::new(
            Box::new(MemoryWaitingRoomStore::new()) as Box<dyn WaitingRoomStore>
        ))
    }

    nexussale_core::stock_store_tests!(stock);
    nexussale_core::order_queue_tests!(queue);
    nexussale_core::order_repository_tests!(repository);
    nexussale_core::waiting_room_store_tests!(waiting_room);
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<nexussale_core::FlashSale>();
    assert_send_sync::<MemoryStockStore>();
    assert_send_sync::<MemoryOrderQueue>();
    assert_send_sync::<MemoryOrderRepository>();
    assert_send_sync::<DynStockStore>();
    assert_send_sync::<DynOrderQueue>();
    assert_send_sync::<DynOrderRepository>();
    assert_send_sync::<nexussale_core::Error>();
}
