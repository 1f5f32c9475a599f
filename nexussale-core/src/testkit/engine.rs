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

/// The sweeper visits only the sales with reservations due: beside 300 idle sales, a sweep after
/// one sale's reservations lapsed asks the store about that sale alone (one `expire` for the
/// batch), the next sweep at most once more (finding nothing, which takes it out
/// of the index), and from then on nothing but `due_sales`, however many sales there are.
pub async fn sweeper_visits_only_due_sales(stock: DynStockStore) {
    use crate::layers::{Faulty, Method};
    let clock = ManualClock::new(Utc::now());
    let stock = Arc::new(Faulty::faulty(stock));
    let engine = FlashSale::builder(
        Arc::clone(&stock) as DynStockStore,
        Arc::new(crate::memory::MemoryOrderQueue::new()),
        Arc::new(crate::memory::MemoryOrderRepository::new()),
    )
    .clock(Arc::new(clock.clone()))
    .build();
    for _ in 0..300 {
        engine
            .create_sale(Sale::new(unique_sku(), 5))
            .await
            .expect("create an idle sale");
    }
    let sku = unique_sku();
    let sale = Sale::new(sku.clone(), 5).with_reservation_ttl(Duration::from_secs(60));
    engine.create_sale(sale).await.expect("create sale");
    for i in 0..3 {
        let request =
            PurchaseRequest::new(sku.clone(), UserId::new(format!("u{i}")).expect("valid"));
        let outcome = engine.purchase(request).await.expect("purchase");
        assert!(
            matches!(outcome, PurchaseOutcome::Accepted(_)),
            "{outcome:?}"
        );
    }
    engine.drain().await.expect("worker");
    clock.advance(Duration::from_secs(61));

    let calls = |method| stock.hook().calls(method);
    let per_sale = [Method::Expire, Method::Release, Method::Sales];
    let before: Vec<u64> = per_sale.iter().map(|m| calls(*m)).collect();
    let sweep = |expected_released| {
        let engine = engine.clone();
        async move {
            let report = engine.sweep_expired().await.expect("sweep");
            assert_eq!(report.released, expected_released, "{report:?}");
        }
    };
    sweep(3).await;
    let after: Vec<u64> = per_sale.iter().map(|m| calls(*m)).collect();
    let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(
        delta,
        [1, 0, 0],
        "expire, release, sales calls of a sweep with one sale due among 301"
    );
    assert_eq!(
        engine
            .stock()
            .snapshot(&sku)
            .await
            .expect("snapshot")
            .available,
        5
    );
    sweep(0).await;
    // Once more, finding nothing, where the store refiles the sale on that visit (the default
    // `expire`: `expired` keeps a sale due until what it listed is released); not at all where
    // the call that released also refiled.
    let again = calls(Method::Expire) - after[0];
    assert!(again <= 1, "the sale is swept {again} times more");
    for _ in 0..3 {
        let expired = calls(Method::Expire);
        sweep(0).await;
        assert_eq!(
            calls(Method::Expire) - expired,
            0,
            "a sweep with every sale idle asked the store about a sale"
        );
    }
}

/// The waiting-room admission lists the sales only when they may have changed: beside 300 sales
/// without a room, a hundred admission steps (ten seconds) list them once, and a room sale that
/// another process creates is found and admitted within ten steps.
pub async fn admission_lists_sales_only_when_they_change(stock: DynStockStore) {
    use crate::layers::{Faulty, Method};
    use crate::memory::{MemoryOrderQueue, MemoryOrderRepository};
    use crate::waiting_room::WaitingRoom;
    let stock = Arc::new(Faulty::faulty(stock));
    let process = || {
        FlashSale::builder(
            Arc::clone(&stock) as DynStockStore,
            Arc::new(MemoryOrderQueue::new()),
            Arc::new(MemoryOrderRepository::new()),
        )
        .build()
    };
    let engine = process();
    for _ in 0..300 {
        engine
            .create_sale(Sale::new(unique_sku(), 5))
            .await
            .expect("create a sale without a room");
    }
    let listings = || stock.hook().calls(Method::Sales);
    let before = listings();
    for _ in 0..100 {
        assert_eq!(engine.admit().await.expect("admit").rooms, 0);
    }
    assert_eq!(
        listings() - before,
        1,
        "listings of every sale in 100 admission steps with the sales unchanged"
    );
    let room = Sale::new(unique_sku(), 5).with_waiting_room(WaitingRoom::default());
    process()
        .create_sale(room)
        .await
        .expect("another process creates a room sale");
    let mut rooms = 0;
    for _ in 0..10 {
        rooms = rooms.max(engine.admit().await.expect("admit").rooms);
    }
    assert_eq!(rooms, 1, "the new room sale is admitted");
    assert_eq!(listings() - before, 2, "listed once more, for the new sale");
}

/// A waiting-room drop through the whole engine: 3 units, 8 buyers joined before the opening.
/// Before it no place shows; at it admission gives 3 passes in the drawn order; a purchase
/// without a pass, with another buyer's, or with a used one is refused `NotAdmitted` (a keyed
/// retry still answers its order); a cancelled unit admits the next buyer; once the units are
/// paid, the room closes and every waiting ticket reads `sold_out`, and so does a late join.
pub async fn waiting_room_flow(
    stock: DynStockStore,
    queue: DynOrderQueue,
    repository: DynOrderRepository,
    rooms: crate::DynWaitingRoomStore,
) {
    use crate::engine::TicketState;
    use crate::waiting_room::{PassRefusal, WaitingRoom};

    let opens_at = Utc::now() + chrono::Duration::minutes(5);
    let opens_at =
        chrono::DateTime::from_timestamp_micros(opens_at.timestamp_micros()).expect("in range");
    let clock = ManualClock::new(opens_at - chrono::Duration::minutes(1));
    let engine = FlashSale::builder(stock, queue, repository)
        .clock(Arc::new(clock.clone()))
        .waiting_rooms(rooms)
        .build();
    let sku = unique_sku();
    let sale = Sale::new(sku.clone(), 3)
        .with_window(Some(opens_at), None)
        .with_waiting_room(WaitingRoom::default());
    engine.create_sale(sale).await.expect("create sale");
    let user = |n: usize| UserId::new(format!("buyer-{n}")).expect("valid");
    let mut tickets = Vec::new();
    for n in 0..8 {
        let ticket = engine.join(&sku, &user(n), None).await.expect("join");
        assert_eq!(ticket.state, TicketState::Waiting);
        assert_eq!(ticket.position, None, "no place before the draw");
        tickets.push(ticket);
    }
    assert_eq!(
        engine
            .join(&sku, &user(0), None)
            .await
            .expect("join")
            .ticket,
        tickets[0].ticket
    );
    let early = engine
        .purchase(PurchaseRequest::new(sku.clone(), user(0)))
        .await;
    assert!(matches!(
        early.expect("purchase"),
        PurchaseOutcome::NotActive(_)
    ));

    clock.set(opens_at);
    let report = engine.admit().await.expect("admit");
    assert_eq!(report.admitted, 3);
    let mut admitted = Vec::new();
    let mut positions = Vec::new();
    for (n, ticket) in tickets.iter().enumerate() {
        let view = engine
            .ticket(&sku, &ticket.ticket)
            .await
            .expect("ticket")
            .expect("exists");
        match view.state {
            TicketState::Admitted => admitted.push((n, view.pass.expect("a pass"))),
            TicketState::Waiting => positions.push(view.position.expect("drawn")),
            other => panic!("{other:?}"),
        }
    }
    positions.sort_unstable();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    assert_eq!(admitted.len(), 3);

    let waiting = (0..8)
        .find(|n| admitted.iter().all(|(a, _)| a != n))
        .expect("someone waits");
    let no_pass = engine
        .purchase(PurchaseRequest::new(sku.clone(), user(waiting)))
        .await
        .expect("purchase");
    assert_eq!(no_pass, PurchaseOutcome::NotAdmitted(PassRefusal::Missing));
    let (holder, pass) = admitted[0].clone();
    let borrowed = engine
        .purchase(PurchaseRequest::new(sku.clone(), user(waiting)).with_pass(pass.clone()))
        .await
        .expect("purchase");
    assert_eq!(borrowed, PurchaseOutcome::NotAdmitted(PassRefusal::Invalid));

    let key = IdempotencyKey::new("wr-retry").expect("valid");
    let buy = PurchaseRequest::new(sku.clone(), user(holder))
        .with_pass(pass.clone())
        .with_idempotency_key(key.clone());
    let PurchaseOutcome::Accepted(first) = engine.purchase(buy.clone()).await.expect("purchase")
    else {
        panic!("an admitted buyer buys");
    };
    let PurchaseOutcome::Duplicate(again) = engine.purchase(buy).await.expect("purchase") else {
        panic!("a keyed retry answers its order");
    };
    assert_eq!(again.order.id, first.order.id);
    let replay = engine
        .purchase(PurchaseRequest::new(sku.clone(), user(holder)).with_pass(pass))
        .await
        .expect("purchase");
    assert_eq!(replay, PurchaseOutcome::NotAdmitted(PassRefusal::Used));
    let mut orders = vec![first.order.id];
    for (n, pass) in &admitted[1..] {
        let outcome = engine
            .purchase(PurchaseRequest::new(sku.clone(), user(*n)).with_pass(pass.clone()))
            .await
            .expect("purchase");
        let PurchaseOutcome::Accepted(receipt) = outcome else {
            panic!("{outcome:?}");
        };
        orders.push(receipt.order.id);
    }
    engine.drain().await.expect("worker");

    // All sold but reserved: the line waits and sees the reserved units.
    settled(&engine, &sku).await;
    engine.admit().await.expect("admit");
    let view = engine
        .ticket(&sku, &tickets[waiting].ticket)
        .await
        .expect("ticket")
        .expect("exists");
    assert_eq!(view.state, TicketState::Waiting);
    assert_eq!(view.units_reserved, Some(3));

    // A cancel gives a unit back: the next in line is admitted.
    engine.cancel(orders[2]).await.expect("cancel");
    settled(&engine, &sku).await;
    assert_eq!(engine.admit().await.expect("admit").admitted, 1);
    let next = tickets
        .iter()
        .enumerate()
        .filter(|(n, _)| admitted.iter().all(|(a, _)| a != n))
        .map(|(n, t)| (n, t.ticket))
        .collect::<Vec<_>>();
    let mut newly = None;
    for (n, id) in &next {
        let view = engine
            .ticket(&sku, id)
            .await
            .expect("ticket")
            .expect("exists");
        if view.state == TicketState::Admitted {
            newly = Some((*n, view.pass.expect("a pass")));
        }
    }
    let (n, pass) = newly.expect("one admitted");
    let PurchaseOutcome::Accepted(last) = engine
        .purchase(PurchaseRequest::new(sku.clone(), user(n)).with_pass(pass))
        .await
        .expect("purchase")
    else {
        panic!("the returned unit sells");
    };
    engine.drain().await.expect("worker");
    for id in [orders[0], orders[1], last.order.id] {
        engine.pay(id).await.expect("pay");
    }
    settled(&engine, &sku).await;
    let closed = engine.admit().await.expect("admit");
    assert_eq!(closed.closed, 1);
    for (m, id) in &next {
        if *m == n {
            continue;
        }
        let view = engine
            .ticket(&sku, id)
            .await
            .expect("ticket")
            .expect("exists");
        assert_eq!(view.state, TicketState::SoldOut, "buyer {m}");
    }
    let late = engine.join(&sku, &user(99), None).await.expect("join");
    assert_eq!(late.state, TicketState::SoldOut);
    settled(&engine, &sku).await;
    let status = engine.room_status(&sku).await.expect("status");
    assert_eq!((status.used, status.settled, status.admitted), (4, 4, 4));
}

/// Waits until every use of a pass in `sku`'s room is settled: uses are settled in tasks of
/// their own, off the purchase's path, and until then an admission step keeps their units off
/// the ceiling (it admits fewer, never more).
async fn settled(engine: &FlashSale, sku: &crate::Sku) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = engine.room_status(sku).await.expect("status");
        if status.settled == status.used {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "uses not settled within 5 s: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
