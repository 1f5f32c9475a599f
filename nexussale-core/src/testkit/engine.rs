//! The whole engine over three backends: the end-to-end conformance case.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;

use super::unique_sku;
use crate::clock::ManualClock;
use crate::engine::{FlashSale, PurchaseOutcome, PurchaseRequest};
use crate::error::Error;
use crate::ident::{IdempotencyKey, UserId};
use crate::order::{OrderId, OrderStatus};
use crate::queue::DynOrderQueue;
use crate::repository::{DynOrderRepository, OrderQuery};
use crate::sale::Sale;
use crate::stock::DynStockStore;

/// 400 concurrent purchases (200 users, each trying twice, limit 1) for 50 units; the worker
/// persists exactly the 50 accepted orders; pay, cancel, a retried idempotent purchase, expiry by
/// the sweeper and reconciliation then keep the store and the repository in agreement.
///
/// The backends must be fresh or shared safely: the case uses its own sku. The queue must not be
/// consumed by anyone else meanwhile.
pub async fn purchase_flow(
    stock: DynStockStore,
    queue: DynOrderQueue,
    repository: DynOrderRepository,
) {
    let clock = ManualClock::new(Utc::now());
    let engine = FlashSale::builder(stock, queue, repository)
        .clock(Arc::new(clock.clone()))
        .build();
    let sku = unique_sku();
    let sale = Sale::new(sku.clone(), 50).with_reservation_ttl(Duration::from_secs(60));
    engine.create_sale(sale.clone()).await.expect("create sale");
    assert!(matches!(
        engine.create_sale(sale).await,
        Err(Error::SaleExists(_))
    ));

    let tasks = (0..400).map(|i| {
        let engine = engine.clone();
        let request = PurchaseRequest::new(
            sku.clone(),
            UserId::new(format!("user-{}", i % 200)).expect("valid"),
        );
        tokio::spawn(async move { engine.purchase(request).await })
    });
    let mut accepted = HashMap::new();
    for outcome in join_all(tasks).await {
        match outcome.expect("task").expect("purchase") {
            PurchaseOutcome::Accepted(receipt) => {
                assert!(
                    accepted
                        .insert(receipt.order.user.clone(), receipt.order.id)
                        .is_none(),
                    "a user bought twice"
                );
            }
            PurchaseOutcome::SoldOut | PurchaseOutcome::LimitExceeded { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted.len(), 50, "exactly the stock is sold");

    // Persist everything queued; the queue may hold other cases' events for this sku: none.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        engine.drain().await.expect("worker");
        let counts = engine.repository().counts(&sku).await.expect("counts");
        if counts.pending.orders == 50 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of 50 orders persisted",
            counts.pending.orders
        );
    }
    let listed = engine
        .orders(&OrderQuery {
            sku: Some(sku.clone()),
            limit: Some(1000),
            ..OrderQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.orders.len(), 50);
    for order in &listed.orders {
        assert_eq!(
            accepted.get(&order.user),
            Some(&order.id),
            "persisted order was not accepted"
        );
    }

    let ids: Vec<OrderId> = listed.orders.iter().map(|o| o.id).collect();
    let paid = engine.pay(ids[0]).await.expect("pay");
    assert_eq!(paid.status, OrderStatus::Paid);
    assert!(matches!(
        engine.cancel(ids[0]).await,
        Err(Error::Conflict {
            actual: OrderStatus::Paid,
            ..
        })
    ));
    let cancelled = engine.cancel(ids[1]).await.expect("cancel");
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert!(matches!(
        engine.pay(ids[1]).await,
        Err(Error::Conflict {
            actual: OrderStatus::Cancelled,
            ..
        })
    ));

    // The cancelled unit is back: a new buyer gets it, retrying with one key buys once.
    let key = IdempotencyKey::new("retry-me").expect("valid");
    let retry = PurchaseRequest::new(sku.clone(), UserId::new("late-buyer").expect("valid"))
        .with_idempotency_key(key);
    let PurchaseOutcome::Accepted(first) = engine.purchase(retry.clone()).await.expect("purchase")
    else {
        panic!("the returned unit should sell");
    };
    let PurchaseOutcome::Duplicate(second) = engine.purchase(retry).await.expect("purchase") else {
        panic!("the same key should answer the same order");
    };
    assert_eq!(first.order.id, second.order.id);
    engine.drain().await.expect("worker");

    // Past the TTL, the sweeper expires every unpaid order exactly once.
    clock.advance(Duration::from_secs(61));
    let swept = engine.sweep_expired().await.expect("sweep");
    assert_eq!(
        swept.released, 49,
        "48 first-wave pending orders + the late buyer's"
    );
    assert_eq!(engine.sweep_expired().await.expect("sweep").released, 0);
    let counts = engine.repository().counts(&sku).await.expect("counts");
    assert_eq!(
        (
            counts.paid.units,
            counts.cancelled.units,
            counts.expired.units,
            counts.pending.units
        ),
        (1, 1, 49, 0)
    );
    let view = engine.sale(&sku).await.expect("sale");
    assert_eq!(
        (
            view.snapshot.available,
            view.snapshot.reserved,
            view.snapshot.sold
        ),
        (49, 0, 1)
    );
    let report = engine.reconcile(&sku, false).await.expect("reconcile");
    assert!(report.in_sync(), "{report:?}");
}
