//! Conformance cases for [`OrderRepository`](crate::OrderRepository) implementations.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;
use futures::future::join_all;

use super::fixtures::now;
use super::{fixtures, unique_sku};
use crate::error::Error;
use crate::ident::{IdempotencyKey, Sku, UserId};
use crate::order::{Order, OrderId, OrderStatus};
use crate::repository::{
    DynOrderRepository, MAX_PAGE_SIZE, OrderQuery, StatusCounts, Tally, TransitionOutcome,
};
use crate::sale::Sale;

/// A fixture order with the text a database must store verbatim (quotes, SQL metacharacters,
/// non-ASCII) and an idempotency key.
fn order(sku: &Sku, user: &str, quantity: u32) -> Order {
    Order {
        quantity,
        remark: Some("kit: ünïcödé ' \" ; -- %".to_owned()),
        idempotency_key: Some(
            IdempotencyKey::new(format!("key-{}", OrderId::new())).expect("valid key"),
        ),
        ..fixtures::order(sku, user)
    }
}

fn orders(sku: &Sku, count: usize) -> Vec<Order> {
    (0..count)
        .map(|n| order(sku, &format!("user-{}", n % 7), 1 + (n % 3) as u32))
        .collect()
}

/// A sale's definition, waiting room included, is stored once and reads back unchanged.
pub async fn saves_a_sale_once(repository: DynOrderRepository) {
    let start = now();
    let sale = Sale::new(unique_sku(), 40)
        .with_per_user_limit(3)
        .with_window(Some(start), Some(start + Duration::hours(2)))
        .with_reservation_ttl(std::time::Duration::from_secs(120));
    assert!(repository.save_sale(&sale).await.unwrap());
    assert!(
        !repository
            .save_sale(&Sale::new(sale.sku.clone(), 1))
            .await
            .unwrap()
    );
    let stored = repository.sales().await.unwrap();
    assert_eq!(
        stored
            .iter()
            .filter(|s| s.sku == sale.sku)
            .collect::<Vec<_>>(),
        [&sale]
    );
    // Looked up by its sku, as stored; another sku is not there.
    assert_eq!(repository.sale(&sale.sku).await.unwrap(), Some(sale));
    assert_eq!(repository.sale(&unique_sku()).await.unwrap(), None);
    // A waiting room is part of the definition: a store rebuilt from it keeps asking for passes.
    let room = crate::WaitingRoom {
        pass_ttl: std::time::Duration::from_secs(45),
        overbook: crate::Overbook::new(1.25).unwrap(),
        proof_of_work_bits: 9,
        ..crate::WaitingRoom::default()
    };
    let queued = Sale::new(unique_sku(), 5).with_waiting_room(room);
    assert!(repository.save_sale(&queued).await.unwrap());
    assert_eq!(repository.sale(&queued.sku).await.unwrap(), Some(queued));
}

/// `sales_after` pages the stored sales in sku order (bytes, as Rust compares them), after the
/// cursor, at most `limit` a page: walking the pages finds each sale once.
pub async fn sales_are_paged_in_sku_order(repository: DynOrderRepository) {
    let prefix = super::unique_name("kit-page-");
    let names = ["b", "A", "z", "b0", "a", "B", "a-1"];
    for name in names {
        let sku = Sku::new(format!("{prefix}{name}")).unwrap();
        assert!(repository.save_sale(&Sale::new(sku, 1)).await.unwrap());
    }
    let mut expected: Vec<String> = names.iter().map(|name| format!("{prefix}{name}")).collect();
    expected.sort();
    let mut seen = Vec::new();
    let mut after = Some(Sku::new(&prefix).unwrap());
    // Other tests' sales may sit between ours: walk until past our prefix.
    'pages: loop {
        let page = repository.sales_after(after.clone(), 2).await.unwrap();
        assert!(page.len() <= 2, "{} sales in a page of 2", page.len());
        for pair in page.windows(2) {
            assert!(pair[0].sku < pair[1].sku, "out of order: {pair:?}");
        }
        if let (Some(after), Some(first)) = (&after, page.first()) {
            assert!(&first.sku > after, "{} is not after {after}", first.sku);
        }
        let Some(last) = page.last() else { break };
        for sale in &page {
            if !sale.sku.as_str().starts_with(&prefix) {
                break 'pages;
            }
            seen.push(sale.sku.as_str().to_owned());
        }
        after = Some(last.sku.clone());
    }
    assert_eq!(seen, expected);
    let first = repository.sales_after(None, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    let everything = repository.sales().await.unwrap();
    assert_eq!(
        Some(&first[0].sku),
        everything.iter().map(|sale| &sale.sku).min()
    );
}

/// Ending a stored sale moves its end earlier, never later, and closes an upcoming sale before
/// it opens; the ended definition reads back. An unknown sale answers `None`.
pub async fn end_sale_moves_the_end_earlier_only(repository: DynOrderRepository) {
    let start = now();
    let hour = Duration::hours(1);
    let sale = Sale::new(unique_sku(), 40).with_window(Some(start), Some(start + hour * 2));
    assert!(repository.save_sale(&sale).await.unwrap());
    let ended = sale.clone().ended(start + hour);
    assert_eq!(
        repository.end_sale(&sale.sku, start + hour).await.unwrap(),
        Some(ended.clone())
    );
    assert_eq!(
        repository
            .end_sale(&sale.sku, start + hour * 3)
            .await
            .unwrap(),
        Some(ended.clone())
    );
    assert_eq!(
        repository.sale(&sale.sku).await.unwrap(),
        Some(ended.clone())
    );
    assert!(repository.sales().await.unwrap().contains(&ended));

    let open = Sale::new(unique_sku(), 1);
    assert!(repository.save_sale(&open).await.unwrap());
    assert_eq!(
        repository.end_sale(&open.sku, start).await.unwrap(),
        Some(open.clone().with_window(None, Some(start)))
    );

    let upcoming = Sale::new(unique_sku(), 3).with_window(Some(start + hour), None);
    assert!(repository.save_sale(&upcoming).await.unwrap());
    let closed = repository.end_sale(&upcoming.sku, start).await.unwrap();
    assert_eq!(
        closed.map(|sale| (sale.starts_at, sale.ends_at)),
        Some((Some(start), Some(start)))
    );
    assert_eq!(
        repository.end_sale(&unique_sku(), start).await.unwrap(),
        None
    );
}

/// A sale's timeline: its first and last orders, when its orders first held the units asked
/// about, and orders and units per bucket of time (empty ones included); other sales' orders
/// and statuses do not count. A sale without orders has an empty timeline.
pub async fn timeline_spreads_a_sales_orders_over_time(repository: DynOrderRepository) {
    let (sku, other) = (unique_sku(), unique_sku());
    let start = now();
    let placed = |ms: i64, quantity: u32, status: OrderStatus| Order {
        created_at: start + Duration::milliseconds(ms),
        status,
        ..order(&sku, &format!("user-{ms}"), quantity)
    };
    let orders = vec![
        placed(0, 1, OrderStatus::Pending),
        placed(500, 2, OrderStatus::Paid),
        placed(1_200, 1, OrderStatus::Cancelled),
        placed(3_900, 3, OrderStatus::Expired),
        order(&other, "elsewhere", 5),
    ];
    repository.insert(&orders).await.unwrap();
    let second = std::time::Duration::from_secs(1);
    let timeline = repository.timeline(&sku, second, 4).await.unwrap();
    assert_eq!(timeline.first, Some(start));
    assert_eq!(timeline.last, Some(start + Duration::milliseconds(3_900)));
    assert_eq!(
        timeline.reached,
        Some(start + Duration::milliseconds(1_200))
    );
    let tally = |orders, units| Tally { orders, units };
    assert_eq!(
        timeline.buckets,
        [tally(2, 3), tally(1, 1), tally(0, 0), tally(1, 3)]
    );
    let never = repository.timeline(&sku, second * 10, 8).await.unwrap();
    assert_eq!((never.reached, never.buckets), (None, vec![tally(4, 7)]));
    assert_eq!(
        repository.timeline(&unique_sku(), second, 1).await.unwrap(),
        crate::repository::Timeline::default()
    );
}

/// Refusals add up by reason, also when added concurrently; a sale not stored keeps none.
pub async fn refusals_add_up_by_reason(repository: DynOrderRepository) {
    let sale = Sale::new(unique_sku(), 10);
    assert!(repository.save_sale(&sale).await.unwrap());
    join_all((0..10).map(|n| {
        let repository = Arc::clone(&repository);
        let sku = sale.sku.clone();
        async move {
            let counts: &[(&'static str, u64)] = if n % 2 == 0 {
                &[("sold_out", 3), ("rate_limited", 1)]
            } else {
                &[("sold_out", 1)]
            };
            repository.add_refusals(&sku, counts).await.unwrap();
        }
    }))
    .await;
    let refusals = repository.refusals(&sale.sku).await.unwrap();
    assert_eq!(
        refusals.into_iter().collect::<Vec<_>>(),
        [("rate_limited".to_owned(), 5), ("sold_out".to_owned(), 20)]
    );
    let ghost = unique_sku();
    repository
        .add_refusals(&ghost, &[("sold_out", 1)])
        .await
        .unwrap();
    assert!(repository.refusals(&ghost).await.unwrap().is_empty());
}

/// Inserting a batch stores each order; inserting it again changes nothing, whatever the
/// statuses given the second time.
pub async fn insert_is_idempotent(repository: DynOrderRepository) {
    let sku = unique_sku();
    let batch = orders(&sku, 25);
    assert_eq!(repository.insert(&batch).await.unwrap(), 25);
    let mut again = batch.clone();
    again[0].status = OrderStatus::Paid;
    again.push(order(&sku, "late", 1));
    assert_eq!(
        repository.insert(&again).await.unwrap(),
        1,
        "only the new order is inserted"
    );
    assert_eq!(
        repository.get(batch[0].id).await.unwrap().as_ref(),
        Some(&batch[0])
    );
    assert_eq!(repository.insert(&[]).await.unwrap(), 0);
    assert_eq!(repository.get(OrderId::new()).await.unwrap(), None);
    let counts = repository.counts(&sku).await.unwrap();
    assert_eq!(counts.pending.orders, 26);
}

/// The same batch inserted by eight tasks at once yields each order once.
pub async fn concurrent_inserts_store_each_order_once(repository: DynOrderRepository) {
    let sku = unique_sku();
    let batch = Arc::new(orders(&sku, 200));
    let tasks = (0..8).map(|_| {
        let repository = Arc::clone(&repository);
        let batch = Arc::clone(&batch);
        tokio::spawn(async move { repository.insert(&batch).await })
    });
    let mut inserted = 0;
    for outcome in join_all(tasks).await {
        inserted += outcome.expect("task").expect("insert");
    }
    assert_eq!(inserted, 200, "each order inserted by exactly one task");
    let page = repository
        .list(&OrderQuery {
            sku: Some(sku.clone()),
            limit: Some(MAX_PAGE_SIZE),
            ..OrderQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.orders.len(), 200);
    assert_eq!(repository.counts(&sku).await.unwrap().pending.orders, 200);
}

async fn walk(
    repository: &DynOrderRepository,
    mut query: OrderQuery,
    during: Option<&[Order]>,
) -> Vec<OrderId> {
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let page = repository.list(&query).await.unwrap();
        assert!(page.orders.len() <= query.limit.unwrap_or(u32::MAX) as usize);
        ids.extend(page.orders.iter().map(|o| o.id));
        pages += 1;
        if pages == 2
            && let Some(newer) = during
        {
            repository.insert(newer).await.unwrap();
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => return ids,
        }
    }
}

/// `order_cuts`, where a repository answers any: ids of the sale's own orders, newest first,
/// that cut it into runs of at most its orders ÷ parts (rounded up), fewer runs than parts
/// only when it has fewer orders; none for a sale without orders.
pub async fn order_cuts_cut_a_sale_into_even_runs(repository: DynOrderRepository) {
    let sku = unique_sku();
    let mut all = orders(&sku, 1_001);
    all.extend(orders(&unique_sku(), 50));
    repository.insert(&all).await.unwrap();
    assert_eq!(repository.order_cuts(&unique_sku(), 4).await.unwrap(), []);
    let cuts = repository.order_cuts(&sku, 4).await.unwrap();
    if cuts.is_empty() {
        return; // the default: one run
    }
    let mut ids: Vec<OrderId> = all.iter().filter(|o| o.sku == sku).map(|o| o.id).collect();
    ids.sort_by(|a, b| b.cmp(a));
    let mut starts = Vec::new();
    for cut in &cuts {
        let at = ids.iter().position(|id| id == cut);
        starts.push(at.unwrap_or_else(|| panic!("cut {cut} is not an order of the sale")));
    }
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "cuts not newest first: {starts:?}"
    );
    let mut ends: Vec<usize> = starts.iter().map(|start| start + 1).collect();
    ends.push(ids.len());
    let runs: Vec<usize> = std::iter::once(0)
        .chain(ends.iter().copied())
        .zip(ends.iter().copied())
        .map(|(from, to)| to - from)
        .collect();
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert!(runs.iter().all(|&run| run <= 251), "uneven runs {runs:?}");
}

/// Following `next` cursors visits every matching order once, newest first, for every filter,
/// even while newer orders are inserted mid-walk.
pub async fn pagination_has_no_gap_or_repeat(repository: DynOrderRepository) {
    let sku = unique_sku();
    let other = unique_sku();
    let mut all = orders(&sku, 120);
    all.extend(orders(&other, 30));
    repository.insert(&all).await.unwrap();
    let paid: Vec<OrderId> = all
        .iter()
        .filter(|o| o.sku == sku)
        .step_by(4)
        .map(|o| o.id)
        .collect();
    for id in &paid {
        let outcome = repository
            .transition(*id, OrderStatus::Pending, OrderStatus::Paid, now())
            .await
            .unwrap();
        assert_eq!(outcome, TransitionOutcome::Applied);
    }
    let newer = orders(&sku, 5);
    let expect = |filter: &dyn Fn(&Order) -> bool| {
        let mut ids: Vec<OrderId> = all.iter().filter(|o| filter(o)).map(|o| o.id).collect();
        ids.sort_by(|a, b| b.cmp(a));
        ids
    };
    let by_sku = OrderQuery {
        sku: Some(sku.clone()),
        limit: Some(7),
        ..OrderQuery::default()
    };
    assert_eq!(
        walk(&repository, by_sku, Some(&newer)).await,
        expect(&|o| o.sku == sku)
    );

    let user = UserId::new("user-3").unwrap();
    let by_user_and_sku = OrderQuery {
        user: Some(user.clone()),
        sku: Some(sku.clone()),
        limit: Some(3),
        ..OrderQuery::default()
    };
    let mut want = expect(&|o| o.sku == sku && o.user == user);
    want.extend(newer.iter().filter(|o| o.user == user).map(|o| o.id));
    want.sort_by(|a, b| b.cmp(a));
    assert_eq!(walk(&repository, by_user_and_sku, None).await, want);

    let by_status = OrderQuery {
        sku: Some(sku.clone()),
        status: Some(OrderStatus::Paid),
        limit: Some(4),
        ..OrderQuery::default()
    };
    let mut want = paid.clone();
    want.sort_by(|a, b| b.cmp(a));
    assert_eq!(walk(&repository, by_status, None).await, want);

    let by_other = OrderQuery {
        sku: Some(other.clone()),
        limit: Some(MAX_PAGE_SIZE),
        ..OrderQuery::default()
    };
    assert_eq!(
        walk(&repository, by_other, None).await,
        expect(&|o| o.sku == other)
    );

    // Unfiltered listing (shared with other cases' orders) is newest first, without repeats.
    let first = repository
        .list(&OrderQuery {
            limit: Some(1000),
            ..OrderQuery::default()
        })
        .await
        .unwrap();
    let ids: Vec<OrderId> = first.orders.iter().map(|o| o.id).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "not newest first");
    let unique: HashSet<&OrderId> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
}

/// A page is 1..=1000 orders; anything else is refused as invalid.
pub async fn page_size_is_capped(repository: DynOrderRepository) {
    for limit in [0, MAX_PAGE_SIZE + 1, u32::MAX] {
        let query = OrderQuery {
            limit: Some(limit),
            ..OrderQuery::default()
        };
        let err = repository.list(&query).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { field: "limit", .. }),
            "{err:?}"
        );
    }
    // A status alone has no index to walk: refused, not a scan of every order.
    let by_status_alone = OrderQuery {
        status: Some(OrderStatus::Paid),
        ..OrderQuery::default()
    };
    let err = repository.list(&by_status_alone).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "status",
                ..
            }
        ),
        "{err:?}"
    );
}

/// A transition racing the order's insert (a payment before the worker persisted the order)
/// answers `Applied` or `NotFound`, never a mismatch with the very status it asked for: 200
/// orders, each inserted pending while it is moved pending → paid.
pub async fn transition_racing_the_insert_never_mismatches_its_own_from(
    repository: DynOrderRepository,
) {
    let sku = unique_sku();
    let at = now() + Duration::seconds(5);
    let tasks = (0..200).map(|n| {
        let repository = Arc::clone(&repository);
        let order = order(&sku, &format!("racer-{n}"), 1);
        tokio::spawn(async move {
            let insert = repository.insert(std::slice::from_ref(&order));
            let transition =
                repository.transition(order.id, OrderStatus::Pending, OrderStatus::Paid, at);
            let (inserted, transitioned) = futures::join!(insert, transition);
            inserted.expect("insert");
            transitioned.expect("transition")
        })
    });
    for outcome in join_all(tasks).await {
        match outcome.expect("task") {
            TransitionOutcome::Applied | TransitionOutcome::NotFound => {}
            TransitionOutcome::Mismatch(actual) => {
                assert_ne!(
                    actual,
                    OrderStatus::Pending,
                    "a mismatch with its own `from`"
                );
            }
        }
    }
}

/// Of twenty concurrent pending → paid transitions of one order, exactly one applies.
pub async fn transition_is_compare_and_set(repository: DynOrderRepository) {
    let sku = unique_sku();
    let order = order(&sku, "ann", 1);
    repository
        .insert(std::slice::from_ref(&order))
        .await
        .unwrap();
    let at = now() + Duration::seconds(5);
    let tasks = (0..20).map(|i| {
        let repository = Arc::clone(&repository);
        let to = if i % 2 == 0 {
            OrderStatus::Paid
        } else {
            OrderStatus::Cancelled
        };
        tokio::spawn(async move {
            (
                to,
                repository
                    .transition(order.id, OrderStatus::Pending, to, at)
                    .await,
            )
        })
    });
    let mut winner = None;
    let mut losers = Vec::new();
    for outcome in join_all(tasks).await {
        let (to, outcome) = outcome.expect("task");
        match outcome.expect("transition") {
            TransitionOutcome::Applied => {
                assert!(winner.replace(to).is_none(), "two transitions applied");
            }
            TransitionOutcome::Mismatch(actual) => losers.push(actual),
            TransitionOutcome::NotFound => panic!("order vanished"),
        }
    }
    let winner = winner.expect("one transition applies");
    assert!(losers.iter().all(|actual| *actual == winner));
    let stored = repository.get(order.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.updated_at), (winner, at));
    assert_eq!(
        repository
            .transition(OrderId::new(), OrderStatus::Pending, OrderStatus::Paid, at)
            .await
            .unwrap(),
        TransitionOutcome::NotFound
    );
}

/// A batch of transitions answers each order as `transition` would, in order, and one that
/// races a single transition of the same order: exactly one of the two applies.
pub async fn transition_many_answers_each_order(repository: DynOrderRepository) {
    let sku = unique_sku();
    let batch = orders(&sku, 3);
    repository.insert(&batch).await.unwrap();
    let at = now() + Duration::seconds(5);
    repository
        .transition(batch[1].id, OrderStatus::Pending, OrderStatus::Paid, at)
        .await
        .unwrap();
    let ids = [batch[0].id, batch[1].id, OrderId::new(), batch[2].id];
    let outcomes = repository
        .transition_many(&ids, OrderStatus::Pending, OrderStatus::Expired, at)
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            TransitionOutcome::Applied,
            TransitionOutcome::Mismatch(OrderStatus::Paid),
            TransitionOutcome::NotFound,
            TransitionOutcome::Applied,
        ]
    );
    for (order, status) in batch.iter().zip([
        OrderStatus::Expired,
        OrderStatus::Paid,
        OrderStatus::Expired,
    ]) {
        let stored = repository.get(order.id).await.unwrap().unwrap();
        assert_eq!((stored.status, stored.updated_at), (status, at));
    }
    // Again: nothing is pending any more.
    let again = repository
        .transition_many(&ids, OrderStatus::Pending, OrderStatus::Expired, at)
        .await
        .unwrap();
    assert_eq!(
        again,
        [
            TransitionOutcome::Mismatch(OrderStatus::Expired),
            TransitionOutcome::Mismatch(OrderStatus::Paid),
            TransitionOutcome::NotFound,
            TransitionOutcome::Mismatch(OrderStatus::Expired),
        ]
    );
    assert!(
        repository
            .transition_many(&[], OrderStatus::Pending, OrderStatus::Expired, at)
            .await
            .unwrap()
            .is_empty()
    );

    // Racing single payments of the same orders: each order settles one way, once.
    let racing = orders(&sku, 50);
    repository.insert(&racing).await.unwrap();
    let ids: Vec<OrderId> = racing.iter().map(|order| order.id).collect();
    let payments = racing.iter().map(|order| {
        let repository = Arc::clone(&repository);
        let id = order.id;
        tokio::spawn(async move {
            repository
                .transition(id, OrderStatus::Pending, OrderStatus::Paid, at)
                .await
        })
    });
    let batch_call = {
        let repository = Arc::clone(&repository);
        tokio::spawn(async move {
            repository
                .transition_many(&ids, OrderStatus::Pending, OrderStatus::Expired, at)
                .await
        })
    };
    let (paid, expired) = futures::join!(join_all(payments), batch_call);
    let expired = expired.expect("task").expect("transition_many");
    for ((order, paid), expired) in racing.iter().zip(paid).zip(expired) {
        let paid = paid.expect("task").expect("transition");
        let stored = repository.get(order.id).await.unwrap().unwrap().status;
        match (paid, expired) {
            (TransitionOutcome::Applied, TransitionOutcome::Mismatch(OrderStatus::Paid)) => {
                assert_eq!(stored, OrderStatus::Paid);
            }
            (TransitionOutcome::Mismatch(OrderStatus::Expired), TransitionOutcome::Applied) => {
                assert_eq!(stored, OrderStatus::Expired);
            }
            other => panic!("order {}: {other:?}", order.id),
        }
    }
}

/// Counts per status follow inserts and transitions, in orders and in units.
pub async fn counts_follow_statuses(repository: DynOrderRepository) {
    let sku = unique_sku();
    let batch = vec![
        order(&sku, "a", 2),
        order(&sku, "b", 1),
        order(&sku, "c", 3),
        order(&sku, "d", 1),
    ];
    repository.insert(&batch).await.unwrap();
    repository.insert(&orders(&unique_sku(), 3)).await.unwrap();
    let at = now();
    repository
        .transition(batch[0].id, OrderStatus::Pending, OrderStatus::Paid, at)
        .await
        .unwrap();
    repository
        .transition(
            batch[1].id,
            OrderStatus::Pending,
            OrderStatus::Cancelled,
            at,
        )
        .await
        .unwrap();
    repository
        .transition(batch[2].id, OrderStatus::Pending, OrderStatus::Expired, at)
        .await
        .unwrap();
    let tally = |orders, units| Tally { orders, units };
    assert_eq!(
        repository.counts(&sku).await.unwrap(),
        StatusCounts {
            pending: tally(1, 1),
            paid: tally(1, 2),
            cancelled: tally(1, 1),
            expired: tally(1, 3)
        }
    );
    assert_eq!(
        repository.counts(&unique_sku()).await.unwrap(),
        StatusCounts::default()
    );
}

/// Every sale window the API accepts comes back from the repository exactly as it was saved
/// (the engine rebuilds a lost store from these definitions).
pub async fn repository_keeps_sale_windows_exactly(repository: DynOrderRepository) {
    for (starts_at, ends_at) in super::edge_windows() {
        let sale = Sale::new(unique_sku(), 5).with_window(starts_at, ends_at);
        sale.validate().expect("the edges are valid");
        assert!(repository.save_sale(&sale).await.unwrap());
        let read = repository
            .sale(&sale.sku)
            .await
            .unwrap()
            .expect("the sale reads back");
        assert_eq!(
            (read.starts_at, read.ends_at),
            (starts_at, ends_at),
            "the window of {}",
            sale.sku
        );
        assert_eq!(read, sale);
    }
}
