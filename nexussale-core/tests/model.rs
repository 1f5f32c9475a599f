//! Property tests: the engine on the in-memory backends against a simple model, over any
//! interleaving of purchase, pay, cancel, clock advance, expiry sweep and worker steps.
//!
//! After every step: `available + reserved + sold == stock`, and the counts equal the model's.
//! Every outcome is the one the model predicts (accepted, duplicate, sold out, limit exceeded,
//! conflict, not found). Once the worker drains: exactly one persisted order per accepted
//! purchase, in the model's status, and the store reconciles with the repository.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
use nexussale_core::{
    Clock, Error, FlashSale, IdempotencyKey, ManualClock, OrderId, OrderQuery, OrderStatus,
    PurchaseOutcome, PurchaseRequest, Sale, Sku, UserId,
};
use proptest::prelude::*;

const TTL_SECS: u64 = 60;

#[derive(Debug, Clone)]
enum Step {
    Purchase {
        user: u8,
        quantity: u32,
        key: Option<u8>,
    },
    Pay(usize),
    Cancel(usize),
    Advance(u64),
    Sweep,
    Work,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..6, 1u32..4, proptest::option::of(0u8..3))
            .prop_map(|(user, quantity, key)| Step::Purchase { user, quantity, key }),
        2 => any::<usize>().prop_map(Step::Pay),
        2 => any::<usize>().prop_map(Step::Cancel),
        1 => (1u64..90).prop_map(Step::Advance),
        1 => Just(Step::Sweep),
        2 => Just(Step::Work),
    ]
}

#[derive(Debug)]
struct ModelOrder {
    id: OrderId,
    user: u8,
    quantity: u32,
    status: OrderStatus,
    expires_at: DateTime<Utc>,
    persisted: bool,
}

#[derive(Debug)]
struct Model {
    stock: u64,
    limit: u32,
    orders: Vec<ModelOrder>,
    keys: HashMap<(u8, u8), usize>,
}

impl Model {
    fn live(status: OrderStatus) -> bool {
        matches!(status, OrderStatus::Pending | OrderStatus::Paid)
    }
    fn held(&self, user: u8) -> u32 {
        self.orders
            .iter()
            .filter(|o| o.user == user && Self::live(o.status))
            .map(|o| o.quantity)
            .sum()
    }
    fn units(&self, status: OrderStatus) -> u64 {
        self.orders
            .iter()
            .filter(|o| o.status == status)
            .map(|o| u64::from(o.quantity))
            .sum()
    }
    fn available(&self) -> u64 {
        self.stock - self.units(OrderStatus::Pending) - self.units(OrderStatus::Paid)
    }
}

async fn run(stock: u64, limit: u32, steps: Vec<Step>) {
    let clock = ManualClock::new(Utc::now());
    let engine = FlashSale::builder(
        Arc::new(MemoryStockStore::new()),
        Arc::new(MemoryOrderQueue::new()),
        Arc::new(MemoryOrderRepository::new()),
    )
    .clock(Arc::new(clock.clone()))
    .build();
    let sku = Sku::new("model").unwrap();
    engine
        .create_sale(
            Sale::new(sku.clone(), stock)
                .with_per_user_limit(limit)
                .with_reservation_ttl(Duration::from_secs(TTL_SECS)),
        )
        .await
        .unwrap();
    let mut model = Model {
        stock,
        limit,
        orders: Vec::new(),
        keys: HashMap::new(),
    };

    for step in steps {
        match step {
            Step::Purchase {
                user,
                quantity,
                key,
            } => {
                let mut request =
                    PurchaseRequest::new(sku.clone(), UserId::new(format!("user-{user}")).unwrap())
                        .with_quantity(quantity);
                if let Some(key) = key {
                    request = request
                        .with_idempotency_key(IdempotencyKey::new(format!("key-{key}")).unwrap());
                }
                let outcome = engine.purchase(request).await;
                let earlier = key.and_then(|key| model.keys.get(&(user, key)).copied());
                // A key reused with another quantity is refused, not answered with the earlier
                // order.
                if let Some(index) = earlier
                    && model.orders[index].quantity != quantity
                {
                    assert!(
                        matches!(outcome, Err(Error::IdempotencyKeyReused { order }) if order == model.orders[index].id),
                        "{outcome:?}"
                    );
                    continue;
                }
                match (earlier, outcome.unwrap()) {
                    (Some(index), PurchaseOutcome::Duplicate(receipt)) => {
                        assert_eq!(receipt.order.id, model.orders[index].id);
                    }
                    (Some(_), other) => panic!("expected the earlier order, got {other:?}"),
                    (None, PurchaseOutcome::LimitExceeded { .. }) => {
                        assert!(
                            quantity > model.limit || model.held(user) + quantity > model.limit
                        );
                    }
                    (None, PurchaseOutcome::SoldOut) => {
                        assert!(
                            model.available() < u64::from(quantity),
                            "refused with {} available",
                            model.available()
                        );
                    }
                    (None, PurchaseOutcome::Accepted(receipt)) => {
                        assert!(model.held(user) + quantity <= model.limit);
                        assert!(model.available() >= u64::from(quantity));
                        model.orders.push(ModelOrder {
                            id: receipt.order.id,
                            user,
                            quantity,
                            status: OrderStatus::Pending,
                            expires_at: receipt.order.expires_at,
                            persisted: false,
                        });
                        assert_eq!(receipt.remaining, Some(model.available()));
                        if let Some(key) = key {
                            model.keys.insert((user, key), model.orders.len() - 1);
                        }
                    }
                    (None, other) => panic!("unexpected {other:?}"),
                }
            }
            Step::Pay(pick) | Step::Cancel(pick) if model.orders.is_empty() => {
                let _ = pick;
            }
            Step::Pay(pick) | Step::Cancel(pick) => {
                let index = pick % model.orders.len();
                let order = &mut model.orders[index];
                let (to, result) = match step {
                    Step::Pay(_) => (OrderStatus::Paid, engine.pay(order.id).await),
                    _ => (OrderStatus::Cancelled, engine.cancel(order.id).await),
                };
                let late = order.expires_at <= clock.now();
                // An order accepted and not persisted yet is paid or cancelled like any other
                // (the engine reads its reservation), and is then recorded settled.
                match (order.status, result) {
                    // A pay at or after the expiry is refused, and the order expires there.
                    (
                        OrderStatus::Pending,
                        Err(Error::Conflict {
                            actual: OrderStatus::Expired,
                            ..
                        }),
                    ) if to == OrderStatus::Paid && late => {
                        order.status = OrderStatus::Expired;
                        order.persisted = true;
                    }
                    (OrderStatus::Pending, Ok(changed)) => {
                        assert!(
                            to != OrderStatus::Paid || !late,
                            "paid at {} after its expiry {}",
                            clock.now(),
                            order.expires_at
                        );
                        assert_eq!(changed.status, to);
                        order.status = to;
                        order.persisted = true;
                    }
                    (status, Err(Error::Conflict { actual, .. })) => {
                        assert_eq!(actual, status)
                    }
                    (status, result) => {
                        panic!(
                            "{to} of {status} (persisted {}) gave {result:?}",
                            order.persisted
                        )
                    }
                }
            }
            Step::Advance(secs) => clock.advance(Duration::from_secs(secs)),
            Step::Sweep => {
                let now = clock.now();
                let report = engine.sweep_expired().await.unwrap();
                let mut expected = 0;
                for order in model.orders.iter_mut() {
                    if order.status == OrderStatus::Pending && order.expires_at <= now {
                        order.status = OrderStatus::Expired;
                        // The sweeper records the expiry even before the worker persists.
                        order.persisted = true;
                        expected += 1;
                    }
                }
                assert_eq!(report.released, expected);
            }
            Step::Work => {
                engine.drain().await.unwrap();
                for order in model.orders.iter_mut() {
                    order.persisted = true;
                }
            }
        }
        let snapshot = engine.sale(&sku).await.unwrap().snapshot;
        assert_eq!(
            snapshot.available + snapshot.reserved + snapshot.sold,
            stock,
            "{snapshot:?}"
        );
        assert_eq!(
            (snapshot.available, snapshot.reserved, snapshot.sold),
            (
                model.available(),
                model.units(OrderStatus::Pending),
                model.units(OrderStatus::Paid)
            )
        );
        for user in 0..6 {
            assert!(model.held(user) <= limit);
        }
    }

    engine.drain().await.unwrap();
    let page = engine
        .orders(&OrderQuery {
            sku: Some(sku.clone()),
            limit: Some(1000),
            ..OrderQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.orders.len(),
        model.orders.len(),
        "one persisted order per accepted purchase"
    );
    for order in &model.orders {
        assert_eq!(engine.order(order.id).await.unwrap().status, order.status);
    }
    let report = engine.reconcile(&sku, false).await.unwrap();
    assert!(report.in_sync(), "{report:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_model(stock in 1u64..12, limit in 1u32..4, steps in proptest::collection::vec(step(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(stock, limit, steps));
    }
}
