//! The engine's failure paths and shortcuts, with mocks and fakes where a backend must misbehave.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use nexussale_core::layers::{Faulty, Method};
use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
use nexussale_core::{
    DynOrderQueue, DynOrderRepository, DynStockStore, EngineConfig, Error, FlashSale,
    IdempotencyKey, ManualClock, MockOrderQueue, MockOrderRepository, MockStockStore, OrderId,
    OrderQuery, OrderQueue, OrderRepository, OrderStatus, PurchaseOutcome, PurchaseRequest,
    ReserveOutcome, ReserveRequest, Sale, SaleState, Sku, StockStore, UserId,
};

fn sku(name: &str) -> Sku {
    Sku::new(name).unwrap()
}

fn buy(sku: &Sku, user: &str) -> PurchaseRequest {
    PurchaseRequest::new(sku.clone(), UserId::new(user).unwrap())
}

struct Memory {
    stock: Arc<MemoryStockStore>,
    queue: Arc<MemoryOrderQueue>,
    repository: Arc<MemoryOrderRepository>,
}

impl Memory {
    fn new() -> Self {
        Self {
            stock: Arc::new(MemoryStockStore::new()),
            queue: Arc::new(MemoryOrderQueue::new()),
            repository: Arc::new(MemoryOrderRepository::new()),
        }
    }

    fn engine(&self) -> FlashSale {
        self.builder().build()
    }

    fn builder(&self) -> nexussale_core::FlashSaleBuilder {
        FlashSale::builder(
            self.stock.clone(),
            self.queue.clone(),
            self.repository.clone(),
        )
    }
}

#[tokio::test]
async fn failed_publish_returns_the_units_and_the_key_can_retry() {
    let stock = Arc::new(MemoryStockStore::new());
    let queue = Arc::new(Faulty::faulty(MemoryOrderQueue::new()));
    let repository = Arc::new(MemoryOrderRepository::new());
    let engine = FlashSale::new(stock.clone(), queue.clone(), repository.clone());
    let ps5 = sku("ps5");
    engine.create_sale(Sale::new(ps5.clone(), 1)).await.unwrap();

    queue.hook().refuse(Method::Publish);
    let request = buy(&ps5, "ann").with_idempotency_key(IdempotencyKey::new("k1").unwrap());
    let err = engine.purchase(request.clone()).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let snapshot = stock.snapshot(&ps5).await.unwrap();
    assert_eq!(
        (snapshot.available, snapshot.reserved),
        (1, 0),
        "no unit held without its event"
    );

    // The last unit is not shadowed by the failed attempt: another buyer could take it, and the
    // same key retried after recovery buys it.
    queue.hook().heal();
    let PurchaseOutcome::Accepted(receipt) = engine.purchase(request.clone()).await.unwrap() else {
        panic!("retry after recovery should buy");
    };
    assert_eq!(receipt.remaining, Some(0));
    engine.drain().await.unwrap();
    assert_eq!(
        engine.order(receipt.order.id).await.unwrap().status,
        OrderStatus::Pending
    );
    let all = repository.list(&OrderQuery::default()).await.unwrap();
    assert_eq!(all.orders.len(), 1, "the failed attempt left no order");
}

#[tokio::test]
async fn failed_publish_with_a_mocked_queue_releases_as_aborted() {
    let stock = Arc::new(MemoryStockStore::new());
    let mut queue = MockOrderQueue::new();
    queue
        .expect_publish()
        .times(1)
        .returning(|_| Err(Error::permanent("mock", "topic does not exist")));
    let engine = FlashSale::new(
        stock.clone(),
        Arc::new(queue),
        Arc::new(MemoryOrderRepository::new()),
    );
    let ps5 = sku("ps5");
    engine.create_sale(Sale::new(ps5.clone(), 3)).await.unwrap();
    let err = engine.purchase(buy(&ps5, "ann")).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "mock",
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(stock.snapshot(&ps5).await.unwrap().available, 3);
}

#[tokio::test]
async fn sold_out_fast_path_skips_the_store_until_the_recheck() {
    let clock = ManualClock::new(Utc::now());
    let ps5 = sku("ps5");
    let sale = Sale::new(ps5.clone(), 1);
    let mut stock = MockStockStore::new();
    let defined = sale.clone();
    stock
        .expect_sale()
        .returning(move |_| Ok(Some(defined.clone())));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    stock.expect_reserve().returning(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(ReserveOutcome::SoldOut { available: 0 })
    });
    let engine = FlashSale::builder(
        Arc::new(stock),
        Arc::new(MemoryOrderQueue::new()),
        Arc::new(MemoryOrderRepository::new()),
    )
    .clock(Arc::new(clock.clone()))
    .build();
    for i in 0..100 {
        let outcome = engine
            .purchase(buy(&ps5, &format!("user-{i}")))
            .await
            .unwrap();
        assert_eq!(outcome, PurchaseOutcome::SoldOut);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the first purchase asks the store"
    );
    clock.advance(EngineConfig::default().sold_out_recheck);
    engine.purchase(buy(&ps5, "late")).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "after the recheck interval the store is asked again"
    );
}

#[tokio::test]
async fn units_returned_by_cancel_end_the_sold_out_pause() {
    let memory = Memory::new();
    let engine = memory.engine();
    let ps5 = sku("ps5");
    engine.create_sale(Sale::new(ps5.clone(), 1)).await.unwrap();
    let PurchaseOutcome::Accepted(receipt) = engine.purchase(buy(&ps5, "ann")).await.unwrap()
    else {
        panic!("first buyer buys");
    };
    assert_eq!(
        engine.purchase(buy(&ps5, "bob")).await.unwrap(),
        PurchaseOutcome::SoldOut
    );
    engine.drain().await.unwrap();
    engine.cancel(receipt.order.id).await.unwrap();
    assert!(matches!(
        engine.purchase(buy(&ps5, "bob")).await.unwrap(),
        PurchaseOutcome::Accepted(_)
    ));
}

#[tokio::test]
async fn bad_input_is_refused_before_any_backend_call() {
    let engine = Memory::new().engine();
    let ps5 = sku("ps5");
    engine
        .create_sale(Sale::new(ps5.clone(), 10).with_per_user_limit(2))
        .await
        .unwrap();
    let err = engine
        .purchase(buy(&ps5, "ann").with_quantity(0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "quantity",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        engine
            .purchase(buy(&ps5, "ann").with_quantity(3))
            .await
            .unwrap(),
        PurchaseOutcome::LimitExceeded { limit: 2 }
    );
    let mut long_remark = buy(&ps5, "ann");
    long_remark.remark = Some("x".repeat(10_000));
    assert!(matches!(
        engine.purchase(long_remark).await,
        Err(Error::InvalidInput {
            field: "remark",
            ..
        })
    ));
    assert!(matches!(
        engine.purchase(buy(&sku("nope"), "ann")).await,
        Err(Error::UnknownSale(_))
    ));
    assert!(matches!(
        engine.create_sale(Sale::new(sku("zero"), 0)).await,
        Err(Error::InvalidInput { field: "stock", .. })
    ));
    assert_eq!(engine.sale(&ps5).await.unwrap().snapshot.available, 10);
}

#[tokio::test]
async fn purchases_outside_the_window_are_not_active() {
    let clock = ManualClock::new(Utc::now());
    let memory = Memory::new();
    let engine = memory.builder().clock(Arc::new(clock.clone())).build();
    let ps5 = sku("ps5");
    // Whole microseconds: what a sale window may hold.
    let start =
        chrono::SubsecRound::trunc_subsecs(clock_now(&clock), 6) + chrono::Duration::minutes(1);
    let sale = Sale::new(ps5.clone(), 5)
        .with_window(Some(start), Some(start + chrono::Duration::minutes(1)));
    engine.create_sale(sale).await.unwrap();
    assert_eq!(
        engine.purchase(buy(&ps5, "ann")).await.unwrap(),
        PurchaseOutcome::NotActive(SaleState::Upcoming)
    );
    assert_eq!(engine.sale(&ps5).await.unwrap().state, SaleState::Upcoming);
    clock.advance(Duration::from_secs(60));
    assert!(matches!(
        engine.purchase(buy(&ps5, "ann")).await.unwrap(),
        PurchaseOutcome::Accepted(_)
    ));
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        engine.purchase(buy(&ps5, "bob")).await.unwrap(),
        PurchaseOutcome::NotActive(SaleState::Ended)
    );
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<Utc> {
    use nexussale_core::Clock;
    clock.now()
}

#[tokio::test]
async fn a_retry_after_a_crash_between_reserve_and_publish_persists_the_order() {
    let memory = Memory::new();
    let engine = memory.engine();
    let ps5 = sku("ps5");
    engine.create_sale(Sale::new(ps5.clone(), 5)).await.unwrap();
    // The first attempt reserved, then its process died before publishing.
    let key = IdempotencyKey::new("crash").unwrap();
    let lost = OrderId::new();
    let reserved = memory
        .stock
        .reserve(&ReserveRequest {
            order_id: lost,
            sku: ps5.clone(),
            user: UserId::new("ann").unwrap(),
            quantity: 1,
            idempotency_key: Some(key.clone()),
            remark: None,
            now: Utc::now(),
        })
        .await
        .unwrap();
    assert!(matches!(reserved, ReserveOutcome::Reserved { .. }));
    let PurchaseOutcome::Duplicate(receipt) = engine
        .purchase(buy(&ps5, "ann").with_idempotency_key(key))
        .await
        .unwrap()
    else {
        panic!("the retry answers the first attempt's order");
    };
    assert_eq!(receipt.order.id, lost);
    engine.drain().await.unwrap();
    assert_eq!(
        engine.order(lost).await.unwrap().status,
        OrderStatus::Pending
    );
}

#[tokio::test]
async fn the_worker_acknowledges_only_what_is_persisted() {
    let queue = Arc::new(MemoryOrderQueue::new());
    let persisted = Arc::new(std::sync::Mutex::new(Vec::<OrderId>::new()));
    let mut repository = MockOrderRepository::new();
    let mut failures = 2;
    let rows = persisted.clone();
    repository.expect_save_sale().returning(|_| Ok(true));
    repository.expect_insert().returning(move |orders| {
        if failures > 0 {
            failures -= 1;
            return Err(Error::retryable("mock", "lock wait timeout"));
        }
        rows.lock()
            .unwrap()
            .extend(orders.iter().map(|order| order.id));
        Ok(orders.len() as u64)
    });
    let engine = FlashSale::new(
        Arc::new(MemoryStockStore::new()),
        queue.clone(),
        Arc::new(repository),
    );
    let ps5 = sku("ps5");
    engine
        .create_sale(Sale::new(ps5.clone(), 10))
        .await
        .unwrap();
    for i in 0..5 {
        engine
            .purchase(buy(&ps5, &format!("user-{i}")))
            .await
            .unwrap();
    }
    assert!(engine.process_batch().await.is_err());
    assert_eq!(queue.len(), 5, "a failed batch stays owed");
    assert!(engine.process_batch().await.is_err());
    assert_eq!(engine.process_batch().await.unwrap(), 5);
    assert!(queue.is_empty(), "acknowledged once persisted");
    assert_eq!(
        engine.process_batch().await.unwrap(),
        0,
        "nothing comes back"
    );
    assert_eq!(persisted.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn the_worker_stops_on_shutdown_after_its_batch() {
    let memory = Memory::new();
    let engine = memory.engine();
    let ps5 = sku("ps5");
    engine
        .create_sale(Sale::new(ps5.clone(), 100))
        .await
        .unwrap();
    let shutdown = nexussale_core::CancellationToken::new();
    let worker = tokio::spawn({
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        async move { engine.run_worker(shutdown).await }
    });
    for i in 0..50 {
        engine
            .purchase(buy(&ps5, &format!("user-{i}")))
            .await
            .unwrap();
    }
    while !memory.queue.is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        memory.repository.counts(&ps5).await.unwrap().pending.orders,
        50
    );
}

#[tokio::test]
async fn the_sweeper_settles_orders_the_worker_has_not_persisted_yet() {
    let clock = ManualClock::new(Utc::now());
    let memory = Memory::new();
    let engine = memory.builder().clock(Arc::new(clock.clone())).build();
    let ps5 = sku("ps5");
    engine
        .create_sale(Sale::new(ps5.clone(), 3).with_reservation_ttl(Duration::from_secs(10)))
        .await
        .unwrap();
    let PurchaseOutcome::Accepted(receipt) = engine.purchase(buy(&ps5, "ann")).await.unwrap()
    else {
        panic!("buys");
    };
    clock.advance(Duration::from_secs(10));
    assert_eq!(engine.sweep_expired().await.unwrap().released, 1);
    assert_eq!(
        engine.order(receipt.order.id).await.unwrap().status,
        OrderStatus::Expired
    );
    // The worker's late insert of the pending order changes nothing.
    assert_eq!(engine.drain().await.unwrap(), 1);
    assert_eq!(
        engine.order(receipt.order.id).await.unwrap().status,
        OrderStatus::Expired
    );
    let counts = memory.repository.counts(&ps5).await.unwrap();
    assert_eq!((counts.expired.orders, counts.pending.orders), (1, 0));
    assert!(engine.reconcile(&ps5, false).await.unwrap().in_sync());
}

#[tokio::test]
async fn reconcile_rebuilds_a_lost_stock_store_from_the_repository() {
    let memory = Memory::new();
    let engine = memory.engine();
    let ps5 = sku("ps5");
    engine
        .create_sale(Sale::new(ps5.clone(), 20).with_per_user_limit(2))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        let PurchaseOutcome::Accepted(receipt) = engine
            .purchase(buy(&ps5, &format!("user-{i}")))
            .await
            .unwrap()
        else {
            panic!("buys");
        };
        ids.push(receipt.order.id);
    }
    engine.drain().await.unwrap();
    engine.pay(ids[0]).await.unwrap();
    engine.pay(ids[1]).await.unwrap();
    engine.cancel(ids[2]).await.unwrap();
    assert!(engine.reconcile(&ps5, false).await.unwrap().in_sync());

    // Redis lost everything: a fresh store behind the same queue and repository.
    let stock: DynStockStore = Arc::new(MemoryStockStore::new());
    let queue: DynOrderQueue = memory.queue.clone();
    let repository: DynOrderRepository = memory.repository.clone();
    let recovered = FlashSale::new(stock.clone(), queue, repository);
    let report = recovered.reconcile(&ps5, false).await.unwrap();
    assert!(report.store.is_none() && !report.in_sync() && !report.repaired);
    let report = recovered.reconcile(&ps5, true).await.unwrap();
    assert!(report.repaired && report.in_sync(), "{report:?}");
    let snapshot = stock.snapshot(&ps5).await.unwrap();
    assert_eq!(
        (snapshot.available, snapshot.reserved, snapshot.sold),
        (11, 7, 2)
    );
    // Pending orders are live again: they can be paid.
    recovered.pay(ids[3]).await.unwrap();
}

/// A rebuild lists a big sale in runs at once where the repository cuts it
/// (`OrderRepository::order_cuts`), and restores every order exactly once.
#[tokio::test]
async fn a_rebuild_lists_a_big_sale_in_runs_at_once() {
    let counter = Arc::new(InFlight::of(Method::List));
    let repository = Arc::new(nexussale_core::layers::Hooked::new(
        MemoryOrderRepository::new(),
        counter.clone(),
    ));
    let drop = sku("big-drop");
    let sale = Sale::new(drop.clone(), 10_000).with_per_user_limit(4);
    assert!(repository.save_sale(&sale).await.unwrap());
    let statuses = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Expired,
    ];
    let orders: Vec<_> = (0..3_000)
        .map(|i| nexussale_core::Order {
            status: statuses[i % 3],
            ..nexussale_core::testkit::fixtures::order(&drop, &format!("user-{i}"))
        })
        .collect();
    repository.insert(&orders).await.unwrap();
    // The stock store lost the sale: a fresh one.
    let stock = Arc::new(MemoryStockStore::new());
    let engine = FlashSale::new(stock.clone(), Arc::new(MemoryOrderQueue::new()), repository);
    let report = engine.reconcile(&drop, true).await.unwrap();
    assert!(report.repaired && report.in_sync(), "{report:?}");
    let snapshot = stock.snapshot(&drop).await.unwrap();
    assert_eq!(
        (snapshot.available, snapshot.reserved, snapshot.sold),
        (8_000, 1_000, 1_000)
    );
    for order in &orders {
        assert!(
            stock.reservation(&drop, order.id).await.unwrap().is_some(),
            "order {} was not restored",
            order.id
        );
    }
    let most = counter.most.load(Ordering::SeqCst);
    assert!(
        most > 1,
        "the sale was listed one page after another ({most} at most in flight)"
    );
}

/// The sweeper forgets settled reservations a retention after their expiry: the store stops
/// holding them, the orders keep their status, nothing goes back on sale, and the key's
/// lifetime ends there.
#[tokio::test]
async fn the_sweeper_forgets_settled_reservations_after_the_retention() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let stock = Arc::new(MemoryStockStore::new().with_retention(Duration::from_secs(600)));
    let repository = Arc::new(MemoryOrderRepository::new());
    let engine = FlashSale::builder(stock.clone(), Arc::new(MemoryOrderQueue::new()), repository)
        .clock(clock.clone())
        .build();
    let ps5 = sku("ps5");
    engine
        .create_sale(
            Sale::new(ps5.clone(), 3)
                .with_per_user_limit(2)
                .with_reservation_ttl(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let key = IdempotencyKey::new("k1").unwrap();
    let keyed = buy(&ps5, "ann").with_idempotency_key(key.clone());
    let PurchaseOutcome::Accepted(paid) = engine.purchase(keyed.clone()).await.unwrap() else {
        panic!("buys");
    };
    let PurchaseOutcome::Accepted(lapsed) = engine.purchase(buy(&ps5, "bob")).await.unwrap() else {
        panic!("buys");
    };
    engine.drain().await.unwrap();
    engine.pay(paid.order.id).await.unwrap();
    clock.advance(Duration::from_secs(61));
    assert_eq!(engine.sweep_expired().await.unwrap().released, 1);
    clock.advance(Duration::from_secs(598));
    engine.sweep_expired().await.unwrap();
    assert!(
        stock
            .reservation(&ps5, paid.order.id)
            .await
            .unwrap()
            .is_some()
    );
    clock.advance(Duration::from_secs(1));
    engine.sweep_expired().await.unwrap();
    for id in [paid.order.id, lapsed.order.id] {
        assert_eq!(
            stock.reservation(&ps5, id).await.unwrap(),
            None,
            "forgotten"
        );
    }
    assert_eq!(
        engine.order(paid.order.id).await.unwrap().status,
        OrderStatus::Paid
    );
    assert_eq!(
        engine.order(lapsed.order.id).await.unwrap().status,
        OrderStatus::Expired
    );
    let snapshot = stock.snapshot(&ps5).await.unwrap();
    assert_eq!((snapshot.available, snapshot.sold), (2, 1));
    assert!(engine.reconcile(&ps5, false).await.unwrap().in_sync());
    // The key's lifetime is over: the retry is a new order (ann holds one of her two).
    let PurchaseOutcome::Accepted(again) = engine.purchase(keyed).await.unwrap() else {
        panic!("a new order");
    };
    assert_ne!(again.order.id, paid.order.id);
}

/// A repository bounded by `--max-orders-in-memory` forgets old paid orders; a store rebuilt
/// from what is left would sell those units again, so the repair is refused and the lost store
/// stays lost (its sale unavailable) rather than oversold.
#[tokio::test]
async fn a_repository_that_forgot_paid_orders_is_never_restored_from() {
    let repository = Arc::new(MemoryOrderRepository::new().with_max_orders(3));
    let queue = Arc::new(MemoryOrderQueue::new());
    let engine = FlashSale::new(
        Arc::new(MemoryStockStore::new()),
        queue.clone(),
        repository.clone(),
    );
    let ps5 = sku("ps5");
    engine.create_sale(Sale::new(ps5.clone(), 5)).await.unwrap();
    let mut ids = Vec::new();
    for user in ["ann", "bob", "cat", "dan"] {
        let PurchaseOutcome::Accepted(receipt) = engine.purchase(buy(&ps5, user)).await.unwrap()
        else {
            panic!("buys");
        };
        ids.push(receipt.order.id);
    }
    engine.drain().await.unwrap();
    engine.pay(ids[0]).await.unwrap();
    engine.pay(ids[1]).await.unwrap();
    // Four orders, bound three: the oldest settled (ann's) is forgotten, the pending ones kept.
    assert_eq!(repository.get(ids[0]).await.unwrap(), None);
    for id in &ids[1..] {
        assert!(repository.get(*id).await.unwrap().is_some());
    }
    assert_eq!(repository.counts(&ps5).await.unwrap().paid.units, 2);
    assert!(engine.reconcile(&ps5, false).await.unwrap().in_sync());

    let stock = Arc::new(MemoryStockStore::new());
    let recovered = FlashSale::new(stock.clone(), queue, repository);
    let err = recovered.reconcile(&ps5, true).await.unwrap_err();
    assert!(err.to_string().contains("1 of the 2 paid units"), "{err}");
    assert!(
        matches!(stock.snapshot(&ps5).await, Err(Error::UnknownSale(_))),
        "nothing restored"
    );
}

#[tokio::test]
async fn pay_of_a_lapsed_reservation_is_a_conflict_and_settles_the_order() {
    let memory = Memory::new();
    let engine = memory.engine();
    let ps5 = sku("ps5");
    engine.create_sale(Sale::new(ps5.clone(), 2)).await.unwrap();
    let PurchaseOutcome::Accepted(receipt) = engine.purchase(buy(&ps5, "ann")).await.unwrap()
    else {
        panic!("buys");
    };
    engine.drain().await.unwrap();
    // Another process's sweeper released it but died before updating the repository.
    memory
        .stock
        .release(
            &ps5,
            receipt.order.id,
            nexussale_core::ReleaseReason::Expired,
        )
        .await
        .unwrap();
    let err = engine.pay(receipt.order.id).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                actual: OrderStatus::Expired,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        engine.order(receipt.order.id).await.unwrap().status,
        OrderStatus::Expired
    );
    assert!(matches!(
        engine.pay(OrderId::new()).await,
        Err(Error::OrderNotFound(_))
    ));
}

/// The store forgets the sale: every call on it is refused as retryable until the engine has
/// rebuilt it from the repository, after which exactly the units left sell, the buyers keep
/// their limits and their orders can be paid.
#[tokio::test]
async fn a_store_that_lost_a_sale_is_rebuilt_from_the_repository() {
    let stock = Arc::new(Faulty::faulty(MemoryStockStore::new()));
    let queue = Arc::new(MemoryOrderQueue::new());
    let repository = Arc::new(MemoryOrderRepository::new());
    let mut config = EngineConfig::default();
    config.store_rebuild_settle = Duration::from_millis(20);
    let engine = FlashSale::builder(stock.clone(), queue, repository)
        .config(config)
        .build();
    let sale = sku("amnesia");
    engine
        .create_sale(Sale::new(sale.clone(), 5))
        .await
        .unwrap();
    let mut first = None;
    for user in ["ann", "bob", "cat"] {
        let outcome = engine.purchase(buy(&sale, user)).await.unwrap();
        let PurchaseOutcome::Accepted(receipt) = outcome else {
            panic!("{outcome:?}")
        };
        first.get_or_insert(receipt.order.id);
    }
    engine.drain().await.unwrap();

    stock.inner().clear(); // a Redis without persistence restarted
    let refused = engine.purchase(buy(&sale, "dan")).await.unwrap_err();
    assert!(refused.is_retryable(), "{refused:?}");
    // Creating it again does not start it afresh.
    let again = engine.create_sale(Sale::new(sale.clone(), 5)).await;
    assert!(matches!(again, Err(Error::SaleExists(_))), "{again:?}");

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let outcome = loop {
        match engine.purchase(buy(&sale, "dan")).await {
            Ok(outcome) => break outcome,
            Err(err) => assert!(err.is_retryable(), "{err:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "never rebuilt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        matches!(&outcome, PurchaseOutcome::Accepted(r) if r.remaining == Some(1)),
        "{outcome:?}"
    );
    assert_eq!(
        engine.purchase(buy(&sale, "ann")).await.unwrap(),
        PurchaseOutcome::LimitExceeded { limit: 1 }
    );
    engine.pay(first.unwrap()).await.unwrap();
    engine.drain().await.unwrap();
    let report = engine.reconcile(&sale, false).await.unwrap();
    assert!(report.in_sync(), "{report:?}");
    assert_eq!(
        (
            report.repository.paid.units,
            report.repository.pending.units
        ),
        (1, 3)
    );
}

/// Refuses every write of `repository`, as a row held past the lock-wait timeout or a cut
/// connection does, until healed. Reads still answer (InnoDB's consistent reads do not wait on
/// row locks).
fn refuse_writes(repository: &Faulty<MemoryOrderRepository>) {
    repository.hook().refuse(Method::Insert);
    repository.hook().refuse(Method::Transition);
    repository.hook().refuse(Method::TransitionMany);
}

/// Ann's accepted order of a new one-unit sale, not persisted yet.
async fn accepted_order(engine: &FlashSale, name: &str) -> (Sku, nexussale_core::Order) {
    let sale = sku(name);
    engine
        .create_sale(Sale::new(sale.clone(), 1))
        .await
        .unwrap();
    let PurchaseOutcome::Accepted(receipt) = engine.purchase(buy(&sale, "ann")).await.unwrap()
    else {
        panic!("ann buys");
    };
    (sale, receipt.order)
}

/// A persisted pending order of a one-unit sale.
async fn one_order(engine: &FlashSale, name: &str) -> (Sku, OrderId) {
    let (sale, order) = accepted_order(engine, name).await;
    engine.drain().await.unwrap();
    (sale, order.id)
}

#[tokio::test]
async fn a_pay_the_repository_cannot_take_is_queued_and_the_worker_records_it() {
    let repository = Arc::new(Faulty::faulty(MemoryOrderRepository::new()));
    let engine = FlashSale::new(
        Arc::new(MemoryStockStore::new()),
        Arc::new(MemoryOrderQueue::new()),
        repository.clone(),
    );
    let (ps5, id) = one_order(&engine, "ps5").await;
    refuse_writes(&repository);
    let paid = engine.pay(id).await.unwrap();
    assert_eq!(paid.status, OrderStatus::Paid);
    assert_eq!(engine.order(id).await.unwrap().status, OrderStatus::Pending);
    assert!(
        engine.drain().await.is_err(),
        "the worker wrote through a stuck repository"
    );
    repository.hook().heal();
    engine.drain().await.unwrap();
    assert_eq!(engine.order(id).await.unwrap().status, OrderStatus::Paid);
    // The same transition again (a redelivery) changes nothing.
    engine
        .queue()
        .publish(&nexussale_core::OrderEvent::of(paid.clone()))
        .await
        .unwrap();
    assert_eq!(engine.drain().await.unwrap(), 1);
    let counts = engine.repository().counts(&ps5).await.unwrap();
    assert_eq!((counts.paid.orders, counts.pending.orders), (1, 0));
    assert!(matches!(
        engine.cancel(id).await,
        Err(Error::Conflict {
            actual: OrderStatus::Paid,
            ..
        })
    ));
}

#[tokio::test]
async fn a_pay_neither_the_repository_nor_the_queue_takes_is_refused_and_a_retry_settles_it() {
    let repository = Arc::new(Faulty::faulty(MemoryOrderRepository::new()));
    let queue = Arc::new(Faulty::faulty(MemoryOrderQueue::new()));
    let engine = FlashSale::new(
        Arc::new(MemoryStockStore::new()),
        queue.clone(),
        repository.clone(),
    );
    let (ps5, id) = one_order(&engine, "ps5").await;
    refuse_writes(&repository);
    queue.hook().refuse(Method::Publish);
    let err = engine.pay(id).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    // The store confirmed; nothing recorded it. The client's retry does, once either heals.
    queue.hook().heal();
    assert_eq!(engine.pay(id).await.unwrap().status, OrderStatus::Paid);
    repository.hook().heal();
    engine.drain().await.unwrap();
    assert_eq!(engine.order(id).await.unwrap().status, OrderStatus::Paid);
    assert_eq!(engine.stock().snapshot(&ps5).await.unwrap().sold, 1);
}

#[tokio::test]
async fn a_transition_for_an_order_not_persisted_yet_is_inserted_settled() {
    let memory = Memory::new();
    let engine = memory.engine();
    let (_, order) = accepted_order(&engine, "ps5").await;
    // The placement is redelivered after its transition (it was nacked meanwhile).
    let mut cancelled = order.clone();
    cancelled.status = OrderStatus::Cancelled;
    let pending = memory.queue.receive(10, Duration::ZERO).await.unwrap();
    memory
        .queue
        .publish(&nexussale_core::OrderEvent::of(cancelled))
        .await
        .unwrap();
    engine.drain().await.unwrap();
    memory
        .queue
        .nack(&pending.iter().map(|d| d.tag).collect::<Vec<_>>())
        .await
        .unwrap();
    engine.drain().await.unwrap();
    assert_eq!(
        engine.order(order.id).await.unwrap().status,
        OrderStatus::Cancelled
    );
}

#[tokio::test]
async fn reconcile_records_what_the_store_confirmed_and_never_puts_a_paid_unit_back_on_sale() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let memory = Memory::new();
    let engine = memory.builder().clock(clock.clone()).build();
    let (ps5, id) = one_order(&engine, "ps5").await;
    // A pay confirmed in the store whose answer, repository write and event were all lost.
    memory
        .stock
        .confirm(&ps5, id, clock_now(&clock))
        .await
        .unwrap();
    let report = engine.reconcile(&ps5, true).await.unwrap();
    assert!(report.in_sync(), "{report:?}");
    assert_eq!(engine.order(id).await.unwrap().status, OrderStatus::Paid);
    assert_eq!(report.repository.paid.units, 1);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(engine.sweep_expired().await.unwrap().released, 0);
    assert!(matches!(
        engine.purchase(buy(&ps5, "bob")).await.unwrap(),
        PurchaseOutcome::SoldOut
    ));
}

#[tokio::test]
async fn the_sweeper_queues_expiries_the_repository_cannot_take_and_returns_the_units() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let repository = Arc::new(Faulty::faulty(MemoryOrderRepository::new()));
    let engine = FlashSale::builder(
        Arc::new(MemoryStockStore::new()),
        Arc::new(MemoryOrderQueue::new()),
        repository.clone(),
    )
    .clock(clock.clone())
    .build();
    let ps5 = sku("ps5");
    engine.create_sale(Sale::new(ps5.clone(), 3)).await.unwrap();
    for user in ["ann", "bob", "cy"] {
        engine.purchase(buy(&ps5, user)).await.unwrap();
    }
    engine.drain().await.unwrap();
    refuse_writes(&repository);
    clock.advance(Duration::from_secs(3600));
    let swept = engine.sweep_expired().await.unwrap();
    assert_eq!(swept.released, 3);
    assert_eq!(engine.stock().snapshot(&ps5).await.unwrap().available, 3);
    repository.hook().heal();
    engine.drain().await.unwrap();
    let counts = engine.repository().counts(&ps5).await.unwrap();
    assert_eq!((counts.expired.orders, counts.pending.orders), (3, 0));
}

#[tokio::test]
async fn an_expiry_whose_release_reply_was_lost_is_recorded_by_the_next_sweep() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (engine, store) = over_a_faulty_store(Some(clock.clone()));
    let (ps5, id) = one_order(&engine, "ps5").await;
    clock.advance(Duration::from_secs(3600));
    store.hook().lose_replies(Method::Expire, 1);
    assert!(engine.sweep_expired().await.is_err());
    // Released in the store, which lists it no more; pending in the repository.
    assert_eq!(engine.stock().snapshot(&ps5).await.unwrap().available, 1);
    assert_eq!(engine.order(id).await.unwrap().status, OrderStatus::Pending);
    engine.sweep_expired().await.unwrap();
    assert_eq!(engine.order(id).await.unwrap().status, OrderStatus::Expired);
    let report = engine.reconcile(&ps5, false).await.unwrap();
    assert!(report.in_sync(), "{report:?}");
}

#[tokio::test]
async fn one_sale_that_cannot_be_swept_does_not_hold_up_the_others() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (engine, store) = over_a_faulty_store(Some(clock.clone()));
    let (ps5, _) = one_order(&engine, "ps5").await;
    let (tv, _) = one_order(&engine, "tv").await;
    clock.advance(Duration::from_secs(3600));
    // The first sale the sweep asks about cannot be listed; the other is swept all the same.
    store.hook().refuse_nth(Method::Expire, 1);
    let report = engine.sweep_expired().await.unwrap();
    assert_eq!((report.released, report.failed_sales), (1, 1), "{report:?}");
    let back = |sku: &Sku| {
        let engine = engine.clone();
        let sku = sku.clone();
        async move { engine.stock().snapshot(&sku).await.unwrap().available }
    };
    assert_eq!(back(&ps5).await + back(&tv).await, 1);
    // The next sweep gets the one left.
    let report = engine.sweep_expired().await.unwrap();
    assert_eq!((report.released, report.failed_sales), (1, 0), "{report:?}");
    assert_eq!((back(&ps5).await, back(&tv).await), (1, 1));
    // Every sale failing is the sweep failing (the sweeper backs off).
    one_order(&engine, "tablet").await;
    clock.advance(Duration::from_secs(3600));
    store.hook().refuse(Method::Expire);
    assert!(engine.sweep_expired().await.is_err());
}

/// An expiry released but not recorded (the repository and the queue both refusing) is
/// recorded by the next sweep, without going back to the store for it.
#[tokio::test]
async fn an_expiry_that_could_not_be_recorded_is_recorded_by_the_next_sweep() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let store = Arc::new(Faulty::faulty(MemoryStockStore::new()));
    let queue = Arc::new(Faulty::faulty(MemoryOrderQueue::new()));
    let repository = Arc::new(Faulty::faulty(MemoryOrderRepository::new()));
    let engine = FlashSale::builder(store.clone(), queue.clone(), repository.clone())
        .clock(clock.clone())
        .build();
    let (ps5, id) = one_order(&engine, "ps5").await;
    clock.advance(Duration::from_secs(3600));
    refuse_writes(&repository);
    queue.hook().refuse(Method::Publish);
    assert!(engine.sweep_expired().await.is_err());
    assert_eq!(engine.stock().snapshot(&ps5).await.unwrap().available, 1);
    assert_eq!(engine.order(id).await.unwrap().status, OrderStatus::Pending);
    repository.hook().heal();
    queue.hook().heal();
    let store_calls = || store.hook().calls(Method::Expire) + store.hook().calls(Method::Release);
    let before = store_calls();
    let report = engine.sweep_expired().await.unwrap();
    assert_eq!(report.failed_sales, 0, "{report:?}");
    assert_eq!(engine.order(id).await.unwrap().status, OrderStatus::Expired);
    assert!(
        store_calls() - before <= 1,
        "the owed expiry went back to the store: {} calls",
        store_calls() - before
    );
    assert_eq!(engine.stock().snapshot(&ps5).await.unwrap().available, 1);
}

/// A sale whose store calls keep failing costs one call a sweep, the owed one made again: no
/// new call piles up beside it, and it is recorded once the store answers.
#[tokio::test]
async fn a_sale_that_keeps_failing_owes_one_call() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (engine, store) = over_a_faulty_store(Some(clock.clone()));
    let (ps5, id) = one_order(&engine, "ps5").await;
    clock.advance(Duration::from_secs(3600));
    store.hook().lose_replies(Method::Expire, 1);
    assert!(engine.sweep_expired().await.is_err());
    store.hook().refuse(Method::Expire);
    for _ in 0..4 {
        let before = store.hook().calls(Method::Expire);
        assert!(engine.sweep_expired().await.is_err());
        assert_eq!(
            store.hook().calls(Method::Expire) - before,
            1,
            "calls of one sweep of a sale whose call keeps failing"
        );
    }
    store.hook().heal();
    let report = engine.sweep_expired().await.unwrap();
    assert_eq!((report.released, report.failed_sales), (1, 0), "{report:?}");
    assert_eq!(engine.order(id).await.unwrap().status, OrderStatus::Expired);
    assert_eq!(engine.stock().snapshot(&ps5).await.unwrap().available, 1);
}

/// Counts the calls of one method in flight at once.
#[derive(Debug)]
struct InFlight {
    method: Method,
    now: AtomicUsize,
    most: AtomicUsize,
}

impl InFlight {
    fn of(method: Method) -> Self {
        Self {
            method,
            now: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        }
    }
}

impl nexussale_core::layers::Hook for InFlight {
    fn before(&self, call: nexussale_core::layers::Call) -> nexussale_core::Result<()> {
        if call.method == self.method {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
        }
        Ok(())
    }

    fn delay(&self, call: nexussale_core::layers::Call) -> Option<Duration> {
        // Long enough that calls issued together overlap.
        (call.method == self.method).then_some(Duration::from_millis(5))
    }

    fn after(
        &self,
        call: nexussale_core::layers::Call,
        _started: std::time::Instant,
        _answer: nexussale_core::layers::Answer<'_>,
    ) -> Option<Error> {
        if call.method == self.method {
            self.now.fetch_sub(1, Ordering::SeqCst);
        }
        None
    }
}

/// A sale `drop` of `count` units, each bought by its own user and persisted, then the clock
/// past every reservation's expiry.
async fn lapsed_orders(engine: &FlashSale, clock: &ManualClock, count: u64) -> Sku {
    let drop = sku("drop");
    engine
        .create_sale(Sale::new(drop.clone(), count))
        .await
        .unwrap();
    for user in 0..count {
        engine
            .purchase(buy(&drop, &format!("user-{user}")))
            .await
            .unwrap();
    }
    engine.drain().await.unwrap();
    clock.advance(Duration::from_secs(3600));
    drop
}

#[tokio::test]
async fn a_batch_of_expiries_is_one_release_and_one_record() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let store = Arc::new(Faulty::faulty(MemoryStockStore::new()));
    let repository = Arc::new(Faulty::faulty(MemoryOrderRepository::new()));
    let engine = FlashSale::builder(
        store.clone(),
        Arc::new(MemoryOrderQueue::new()),
        repository.clone(),
    )
    .clock(clock.clone())
    .build();
    let drop = lapsed_orders(&engine, &clock, 200).await;
    let report = engine.sweep_expired().await.unwrap();
    assert_eq!(report.released, 200);
    assert_eq!(engine.stock().snapshot(&drop).await.unwrap().available, 200);
    // One batch (the default holds 500): one call to release, one to record, not 200 each.
    assert_eq!(store.hook().calls(Method::Expire), 1);
    assert_eq!(store.hook().calls(Method::Release), 0);
    assert_eq!(repository.hook().calls(Method::TransitionMany), 1);
    assert_eq!(repository.hook().calls(Method::Transition), 0);
    let counts = engine.repository().counts(&drop).await.unwrap();
    assert_eq!((counts.expired.orders, counts.pending.orders), (200, 0));
}

/// A sale with many batches due: the next batches are released while the earlier ones are
/// recorded, so units go back at the stock store's pace, not the repository's.
#[tokio::test]
async fn expiry_batches_are_recorded_while_the_next_are_released() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let counter = Arc::new(InFlight::of(Method::TransitionMany));
    let repository = Arc::new(nexussale_core::layers::Hooked::new(
        MemoryOrderRepository::new(),
        counter.clone(),
    ));
    let mut config = nexussale_core::EngineConfig::default();
    config.sweep_batch = 10;
    let engine = FlashSale::builder(
        Arc::new(MemoryStockStore::new()),
        Arc::new(MemoryOrderQueue::new()),
        repository,
    )
    .clock(clock.clone())
    .config(config)
    .build();
    let drop = lapsed_orders(&engine, &clock, 100).await;
    let report = engine.sweep_expired().await.unwrap();
    assert_eq!(report.released, 100);
    let most = counter.most.load(Ordering::SeqCst);
    assert!(
        most > 1,
        "each batch waited for the one before to be recorded ({most} at most in flight)"
    );
    assert!(
        most <= 4,
        "{most} batches recorded at once: more than the bound"
    );
    let counts = engine.repository().counts(&drop).await.unwrap();
    assert_eq!((counts.expired.orders, counts.pending.orders), (100, 0));
}

/// Three sales of lapsed reservations swept while purchases of a fourth are taken (`busy`) or
/// not: how long the sweep took (tokio's paused time) and the most expiry calls at once.
async fn sweep_three_lapsed_sales(busy: bool) -> (Duration, usize) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let counter = Arc::new(InFlight::of(Method::Expire));
    let store = Arc::new(nexussale_core::layers::Hooked::new(
        MemoryStockStore::new(),
        counter.clone(),
    ));
    let mut config = nexussale_core::EngineConfig::default();
    config.sweep_batch = 10;
    let engine = FlashSale::builder(
        store,
        Arc::new(MemoryOrderQueue::new()),
        Arc::new(MemoryOrderRepository::new()),
    )
    .clock(clock.clone())
    .config(config)
    .build();
    let drops: Vec<Sku> = (0..3).map(|n| sku(&format!("drop-{n}"))).collect();
    for drop in &drops {
        engine
            .create_sale(Sale::new(drop.clone(), 30))
            .await
            .unwrap();
        for user in 0..30 {
            engine
                .purchase(buy(drop, &format!("user-{user}")))
                .await
                .unwrap();
        }
    }
    engine.drain().await.unwrap();
    clock.advance(Duration::from_secs(3600));
    // The purchases above are long past: only the buyers below make the engine busy.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live = sku("live");
    engine
        .create_sale(Sale::new(live.clone(), 10_000))
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let buyers = busy.then(|| {
        let (engine, stop) = (engine.clone(), stop.clone());
        tokio::spawn(async move {
            for user in 0.. {
                let bought = engine.purchase(buy(&live, &format!("buyer-{user}")));
                let bought = bought.await.unwrap();
                assert!(matches!(bought, PurchaseOutcome::Accepted(_)), "{bought:?}");
                tokio::select! {
                    () = stop.cancelled() => return,
                    // 1,000 a second: a drop (a trickle does not slow the sweeper).
                    () = tokio::time::sleep(Duration::from_millis(1)) => {}
                }
            }
        })
    });
    // The drop under way before the sweep (it takes a window's purchases to be seen).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = tokio::time::Instant::now();
    let report = engine.sweep_expired().await.unwrap();
    let took = started.elapsed();
    stop.cancel();
    if let Some(buyers) = buyers {
        buyers.await.unwrap();
    }
    assert_eq!(report.released, 90);
    for drop in &drops {
        assert_eq!(engine.stock().snapshot(drop).await.unwrap().available, 30);
    }
    (took, counter.most.load(Ordering::SeqCst))
}

/// While a drop is under way (1,000 purchases a second), the sweeper's store calls take turns
/// and each rests three times its length (the default share, a quarter): the lapse leaves the
/// cores to the buyers. Idle, the sales are swept at once and nothing rests.
#[tokio::test(start_paused = true)]
async fn the_sweeper_yields_to_purchases() {
    // Each sale: three full batches and the call that finds nothing more; 5 ms a call.
    let (idle_took, idle_most) = sweep_three_lapsed_sales(false).await;
    assert!(
        idle_most > 1,
        "idle, the sales were swept one call at a time"
    );
    assert!(
        idle_took <= Duration::from_millis(40),
        "idle, the sweep rested: {idle_took:?}"
    );
    let (busy_took, busy_most) = sweep_three_lapsed_sales(true).await;
    assert_eq!(busy_most, 1, "while buying, expiry calls overlapped");
    // 12 calls of 5 ms, each with 15 ms of rest.
    assert!(
        busy_took >= Duration::from_millis(240),
        "while buying, the sweeper did not yield: {busy_took:?}"
    );
}

/// Expiries of orders the worker has not stored yet: the batch call does not find them, and
/// each is inserted expired; the worker's later insert of the pending order changes nothing.
#[tokio::test]
async fn expiries_of_orders_not_stored_yet_are_inserted_expired() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let engine = FlashSale::builder(
        Arc::new(MemoryStockStore::new()),
        Arc::new(MemoryOrderQueue::new()),
        Arc::new(MemoryOrderRepository::new()),
    )
    .clock(clock.clone())
    .build();
    let ps5 = sku("ps5");
    engine.create_sale(Sale::new(ps5.clone(), 3)).await.unwrap();
    for user in ["ann", "bob", "cy"] {
        engine.purchase(buy(&ps5, user)).await.unwrap();
    }
    clock.advance(Duration::from_secs(3600));
    assert_eq!(engine.sweep_expired().await.unwrap().released, 3);
    let counts = engine.repository().counts(&ps5).await.unwrap();
    assert_eq!((counts.expired.orders, counts.pending.orders), (3, 0));
    engine.drain().await.unwrap();
    let counts = engine.repository().counts(&ps5).await.unwrap();
    assert_eq!((counts.expired.orders, counts.pending.orders), (3, 0));
}

#[tokio::test]
async fn a_page_of_sales_counts_only_its_own_stock() {
    let (engine, store) = over_a_faulty_store(None);
    for n in 0..50 {
        engine
            .create_sale(Sale::new(sku(&format!("sale-{n:02}")), 1))
            .await
            .unwrap();
    }
    let before = store.hook().calls(Method::Snapshot);
    let query = nexussale_core::SaleQuery {
        limit: Some(5),
        after: Some(sku("sale-09")),
        ..Default::default()
    };
    let page = engine.sales_page(&query).await.unwrap();
    let listed: Vec<&str> = page
        .sales
        .iter()
        .map(|view| view.sale.sku.as_str())
        .collect();
    assert_eq!(
        listed,
        ["sale-10", "sale-11", "sale-12", "sale-13", "sale-14"]
    );
    assert_eq!(page.next, Some(sku("sale-14")));
    // Five sales' stock counted, not fifty, and the definitions read as one range of the
    // repository, not the store's whole list.
    assert_eq!(store.hook().calls(Method::Snapshot) - before, 5);
    assert_eq!(store.hook().calls(Method::Sales), 0);
    // A state filter still pages by the sales looked at: the cursor moves on past sales it
    // left out.
    engine.end_sale(&sku("sale-20")).await.unwrap();
    let ended = nexussale_core::SaleQuery {
        limit: Some(5),
        after: Some(sku("sale-17")),
        state: Some(nexussale_core::SaleState::Ended),
    };
    let page = engine.sales_page(&ended).await.unwrap();
    let listed: Vec<&str> = page.sales.iter().map(|v| v.sale.sku.as_str()).collect();
    assert_eq!(listed, ["sale-20"]);
    assert_eq!(page.next, Some(sku("sale-22")));
}

/// An engine over an in-memory stock store whose faults the test plans (and in-memory queue and
/// repository), on `clock` when given.
fn over_a_faulty_store(
    clock: Option<Arc<ManualClock>>,
) -> (FlashSale, Arc<Faulty<MemoryStockStore>>) {
    let store = Arc::new(Faulty::faulty(MemoryStockStore::new()));
    let mut builder = FlashSale::builder(
        store.clone(),
        Arc::new(MemoryOrderQueue::new()),
        Arc::new(MemoryOrderRepository::new()),
    );
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    (builder.build(), store)
}

#[tokio::test]
async fn an_ended_sale_refuses_purchases_everywhere_and_stays_ended_after_a_rebuild() {
    let stock = Arc::new(Faulty::faulty(MemoryStockStore::new()));
    let queue = Arc::new(MemoryOrderQueue::new());
    let repository = Arc::new(MemoryOrderRepository::new());
    let mut config = EngineConfig::default();
    config.store_rebuild_settle = Duration::from_millis(20);
    let engine = |config: EngineConfig| {
        FlashSale::builder(stock.clone(), queue.clone(), repository.clone())
            .config(config)
            .build()
    };
    // Two front ends over one store, as two servers over one Redis.
    let (here, there) = (engine(config.clone()), engine(config));
    let drop = sku("ended-early");
    here.create_sale(Sale::new(drop.clone(), 10)).await.unwrap();
    let PurchaseOutcome::Accepted(before) = there.purchase(buy(&drop, "ann")).await.unwrap() else {
        panic!("the open sale refused a purchase")
    };

    let view = here.end_sale(&drop).await.unwrap();
    assert_eq!(view.state, SaleState::Ended);
    assert!(view.sale.ends_at.is_some());
    assert_eq!((view.snapshot.available, view.snapshot.reserved), (9, 1));
    for engine in [&here, &there] {
        assert_eq!(
            engine.purchase(buy(&drop, "bob")).await.unwrap(),
            PurchaseOutcome::NotActive(SaleState::Ended)
        );
        assert_eq!(engine.sale(&drop).await.unwrap().state, SaleState::Ended);
    }
    // The order made before the end is paid as usual.
    here.drain().await.unwrap();
    here.pay(before.order.id).await.unwrap();
    here.drain().await.unwrap();
    // Ending again changes nothing.
    assert_eq!(here.end_sale(&drop).await.unwrap().sale, view.sale);

    // A store that loses the sale rebuilds it from the repository's copy: still ended.
    stock.inner().clear();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let rebuilt = loop {
        match here.sale(&drop).await {
            Ok(view) => break view,
            Err(err) => assert!(err.is_retryable(), "{err:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "never rebuilt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(rebuilt.state, SaleState::Ended);
    assert_eq!(
        (rebuilt.snapshot.reserved, rebuilt.snapshot.sold),
        (0, 1),
        "the paid order sold"
    );
    assert_eq!(
        stock
            .inner()
            .sale(&drop)
            .await
            .unwrap()
            .map(|sale| sale.ends_at),
        Some(view.sale.ends_at)
    );
    assert!(matches!(
        here.end_sale(&sku("never-made")).await,
        Err(Error::UnknownSale(_))
    ));
}

/// The books check visits the sales whose units moved since it last looked, not every sale:
/// beside 300 idle sales, a purchase, a payment and a cancel each mark their sale once.
#[tokio::test]
async fn only_sales_whose_units_moved_are_touched() {
    let engine = Memory::new().engine();
    for n in 0..300 {
        engine
            .create_sale(Sale::new(sku(&format!("idle-{n:03}")), 5))
            .await
            .unwrap();
    }
    assert!(engine.touched_sales().is_empty(), "creating is no movement");
    let (busy, first) = accepted_order(&engine, "busy").await;
    assert_eq!(
        engine.touched_sales(),
        std::slice::from_ref(&busy),
        "a purchase"
    );
    assert!(engine.touched_sales().is_empty(), "looking clears the mark");
    engine.drain().await.unwrap();
    engine.pay(first.id).await.unwrap();
    assert_eq!(
        engine.touched_sales(),
        std::slice::from_ref(&busy),
        "a payment"
    );
    let (other, second) = accepted_order(&engine, "other").await;
    engine.drain().await.unwrap();
    assert_eq!(engine.touched_sales(), std::slice::from_ref(&other));
    engine.cancel(second.id).await.unwrap();
    assert_eq!(engine.touched_sales(), [other], "a cancel");
    assert!(engine.touched_sales().is_empty());
}

/// Answers `StockRegressed` to every snapshot while `regressed` is set, as a Redis store does
/// for a sale after a failover until it is restored; counts the restores.
#[derive(Debug, Default)]
struct ReadsRegressed {
    regressed: std::sync::atomic::AtomicBool,
    restores: AtomicUsize,
}

impl nexussale_core::layers::Hook for ReadsRegressed {
    fn after(
        &self,
        call: nexussale_core::layers::Call,
        _: std::time::Instant,
        answer: nexussale_core::layers::Answer<'_>,
    ) -> Option<Error> {
        match call.method {
            Method::Snapshot if self.regressed.load(Ordering::Acquire) => {
                Some(Error::StockRegressed(sku("room-drop")))
            }
            Method::Restore if matches!(answer, nexussale_core::layers::Answer::Ok(_)) => {
                self.regressed.store(false, Ordering::Release);
                self.restores.fetch_add(1, Ordering::AcqRel);
                None
            }
            _ => None,
        }
    }
}

/// A waiting-room sale found regressed by admission (its first read after a failover) is
/// rebuilt: no purchase comes to notice it, since the room admits nobody meanwhile.
#[tokio::test]
async fn admission_that_finds_a_sale_regressed_has_it_rebuilt() {
    let store = Arc::new(nexussale_core::layers::Hooked::new(
        MemoryStockStore::new(),
        ReadsRegressed::default(),
    ));
    let mut config = EngineConfig::default();
    config.store_rebuild_settle = Duration::from_millis(10);
    let engine = FlashSale::builder(
        store.clone(),
        Arc::new(MemoryOrderQueue::new()),
        Arc::new(MemoryOrderRepository::new()),
    )
    .config(config)
    .build();
    let drop = sku("room-drop");
    let sale = Sale::new(drop.clone(), 3).with_waiting_room(nexussale_core::WaitingRoom::default());
    engine.create_sale(sale).await.unwrap();
    engine
        .join(&drop, &UserId::new("ann").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(engine.admit().await.unwrap().rooms, 1);

    store.hook().regressed.store(true, Ordering::Release);
    assert!(
        engine.admit().await.is_err(),
        "admitted on a regressed sale"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.hook().restores.load(Ordering::Acquire) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the regressed sale was not rebuilt"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.hook().restores.load(Ordering::Acquire), 1);
    assert_eq!(engine.admit().await.unwrap().rooms, 1);
}
