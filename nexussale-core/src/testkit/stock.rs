//! Conformance cases for [`StockStore`] implementations.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;

use super::{fixtures, unique_sku};
use crate::error::Error;
use crate::expiry::ExpiryCall;
use crate::ident::{IdempotencyKey, Sku, UserId};
use crate::order::{Order, OrderId, OrderStatus};
use crate::reservation::{
    ConfirmOutcome, ReleaseOutcome, ReleaseReason, Reservation, ReservationState, ReserveOutcome,
    ReserveRequest,
};
use crate::sale::{Sale, SaleState, StockSnapshot};
use crate::stock::{DynStockStore, StockStore};

fn user(name: impl std::fmt::Display) -> UserId {
    UserId::new(format!("user-{name}")).expect("test user names are valid")
}

fn request(sku: &Sku, user: UserId, now: DateTime<Utc>) -> ReserveRequest {
    ReserveRequest {
        order_id: OrderId::new(),
        sku: sku.clone(),
        user,
        quantity: 1,
        idempotency_key: None,
        remark: None,
        now,
    }
}

async fn new_sale(store: &dyn StockStore, stock: u64, limit: u32) -> Sale {
    let sale = Sale::new(unique_sku(), stock).with_per_user_limit(limit);
    assert!(store.create_sale(&sale).await.expect("create_sale"));
    sale
}

async fn reserved(store: &dyn StockStore, request: &ReserveRequest) -> Reservation {
    match store.reserve(request).await.expect("reserve") {
        ReserveOutcome::Reserved { reservation, .. } => reservation,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

fn snapshot(stock: u64, available: u64, reserved: u64, sold: u64) -> StockSnapshot {
    StockSnapshot {
        stock,
        available,
        reserved,
        sold,
    }
}

/// Creating a sale twice creates it once; its definition (waiting room included) and full stock
/// read back.
pub async fn creates_a_sale_once(store: DynStockStore) {
    let count_before = store.sale_count().await.unwrap();
    let sale = Sale::new(unique_sku(), 7)
        .with_per_user_limit(2)
        .with_reservation_ttl(Duration::from_secs(60));
    assert!(store.create_sale(&sale).await.unwrap());
    let changed = Sale::new(sale.sku.clone(), 99);
    assert!(
        !store.create_sale(&changed).await.unwrap(),
        "second create must answer false"
    );
    assert_eq!(store.sale(&sale.sku).await.unwrap(), Some(sale.clone()));
    assert!(store.sales().await.unwrap().contains(&sale));
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(7, 7, 0, 0)
    );
    assert_eq!(store.sale(&unique_sku()).await.unwrap(), None);
    // A waiting room is part of the definition.
    let room = crate::WaitingRoom {
        proof_of_work_bits: 9,
        ..crate::WaitingRoom::default()
    };
    let queued = Sale::new(unique_sku(), 5).with_waiting_room(room);
    assert!(store.create_sale(&queued).await.unwrap());
    assert_eq!(store.sale(&queued.sku).await.unwrap(), Some(queued));
    // Counted once each, the refused second creation not at all.
    assert_eq!(store.sale_count().await.unwrap() - count_before, 2);
}

/// Reserving, reading and snapshotting a sale that does not exist is `Error::UnknownSale`.
pub async fn unknown_sale_is_an_error(store: DynStockStore) {
    let sku = unique_sku();
    let err = store
        .reserve(&request(&sku, user(1), Utc::now()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownSale(ref s) if *s == sku),
        "{err:?}"
    );
    assert!(matches!(
        store.snapshot(&sku).await,
        Err(Error::UnknownSale(_))
    ));
}

/// Every case, one after another on `store` (each on a sale of its own): for a backend whose
/// setup is costly, such as a cluster a test starts, where `stock_store_tests!`'s one test per
/// case would repeat it.
pub async fn run_all(store: DynStockStore, counting: Remaining) {
    crate::__stock_cases!(__run_cases!(stock, store));
    no_oversell_with(store, counting).await;
}

/// How a store counts the `remaining` units of [`ReserveOutcome::Reserved`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remaining {
    /// The sale's units left right after this reservation: concurrent reservations answer
    /// distinct counts.
    Exact,
    /// A store that spreads a sale over shards knows its own shard's count at once, not the
    /// others': `remaining` is a lower bound of the sale's units left, below the stock, and 0 only
    /// when no shard had a unit left (see the [`StockStore`] contract).
    Bounded,
}

/// 2,000 concurrent reservations by distinct users for 100 units: exactly 100 succeed, each
/// answering a distinct remaining count, and the rest are sold out.
pub async fn no_oversell_under_contention(store: DynStockStore) {
    no_oversell_with(store, Remaining::Exact).await;
}

/// [`no_oversell_under_contention`] for a store whose `remaining` is [`Remaining::Bounded`].
pub async fn no_oversell_with(store: DynStockStore, counting: Remaining) {
    let sale = new_sale(&*store, 100, 1).await;
    let now = Utc::now();
    let tasks = (0..2000).map(|i| {
        let store = Arc::clone(&store);
        let request = request(&sale.sku, user(i), now);
        tokio::spawn(async move { store.reserve(&request).await })
    });
    let mut remaining = HashSet::new();
    let (mut reserved, mut sold_out) = (0, 0);
    for outcome in join_all(tasks).await {
        match outcome.expect("task").expect("reserve") {
            ReserveOutcome::Reserved { remaining: r, .. } => {
                reserved += 1;
                assert!(
                    r < 100,
                    "remaining {r} of a stock of 100 after a reservation"
                );
                assert!(
                    remaining.insert(r) || counting == Remaining::Bounded,
                    "remaining {r} twice"
                );
            }
            ReserveOutcome::SoldOut { .. } => sold_out += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(reserved, 100, "exactly the stock is reserved");
    if counting == Remaining::Exact {
        assert_eq!(remaining, (0..100).collect::<HashSet<u64>>());
    }
    assert_eq!(sold_out, 1900);
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(100, 0, 100, 0)
    );
}

/// One user racing 50 reservations against a limit of 3 gets exactly 3 units; a request that
/// would cross the limit is refused with what the user holds.
pub async fn per_user_limit_holds_under_concurrency(store: DynStockStore) {
    let sale = new_sale(&*store, 1000, 3).await;
    let now = Utc::now();
    let buyer = user("greedy");
    let tasks = (0..50).map(|_| {
        let store = Arc::clone(&store);
        let request = request(&sale.sku, buyer.clone(), now);
        tokio::spawn(async move { store.reserve(&request).await })
    });
    let outcomes: Vec<ReserveOutcome> = join_all(tasks)
        .await
        .into_iter()
        .map(|outcome| outcome.expect("task").expect("reserve"))
        .collect();
    let won = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, ReserveOutcome::Reserved { .. }))
        .count();
    assert_eq!(won, 3);
    assert!(outcomes.iter().all(|outcome| matches!(
        outcome,
        ReserveOutcome::Reserved { .. } | ReserveOutcome::LimitExceeded { limit: 3, held: 3 }
    )));
    let other = user("modest");
    let mut two = request(&sale.sku, other.clone(), now);
    two.quantity = 2;
    reserved(&*store, &two).await;
    let mut two_more = request(&sale.sku, other, now);
    two_more.quantity = 2;
    assert_eq!(
        store.reserve(&two_more).await.unwrap(),
        ReserveOutcome::LimitExceeded { limit: 3, held: 2 }
    );
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(1000, 995, 5, 0)
    );
}

/// Twenty concurrent requests with one key make one reservation; the others answer it. The key
/// belongs to the user: another user's equal key is another reservation.
pub async fn idempotency_key_answers_the_earlier_reservation(store: DynStockStore) {
    let sale = new_sale(&*store, 10, 5).await;
    let now = Utc::now();
    let key = IdempotencyKey::new("checkout-1").unwrap();
    let tasks = (0..20).map(|_| {
        let store = Arc::clone(&store);
        let mut request = request(&sale.sku, user("ann"), now);
        request.idempotency_key = Some(key.clone());
        tokio::spawn(async move { store.reserve(&request).await })
    });
    let mut made = Vec::new();
    let mut answered = Vec::new();
    for outcome in join_all(tasks).await {
        match outcome.expect("task").expect("reserve") {
            ReserveOutcome::Reserved { reservation, .. } => made.push(reservation),
            ReserveOutcome::Existing { reservation } => answered.push(reservation),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(made.len(), 1, "one reservation per key");
    assert_eq!(answered.len(), 19);
    assert!(
        answered
            .iter()
            .all(|r| r.order_id == made[0].order_id && r.idempotency_key == Some(key.clone()))
    );
    let mut other_user = request(&sale.sku, user("bob"), now);
    other_user.idempotency_key = Some(key.clone());
    let bob = reserved(&*store, &other_user).await;
    assert_ne!(bob.order_id, made[0].order_id);
    // Released (not aborted) reservations keep answering for their key.
    store
        .release(&sale.sku, bob.order_id, ReleaseReason::Cancelled)
        .await
        .unwrap();
    other_user.order_id = OrderId::new();
    match store.reserve(&other_user).await.unwrap() {
        ReserveOutcome::Existing { reservation } => {
            assert_eq!(reservation.order_id, bob.order_id);
            assert_eq!(
                reservation.state,
                ReservationState::Released(ReleaseReason::Cancelled)
            );
        }
        other => panic!("expected the cancelled reservation, got {other:?}"),
    }
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(10, 9, 1, 0)
    );
}

/// A reservation released as aborted frees its idempotency key: the same key reserves anew.
pub async fn aborted_reservation_frees_its_key(store: DynStockStore) {
    let sale = new_sale(&*store, 1, 1).await;
    let mut first = request(&sale.sku, user("ann"), Utc::now());
    first.idempotency_key = Some(IdempotencyKey::new("k").unwrap());
    let aborted = reserved(&*store, &first).await;
    assert_eq!(
        store
            .release(&sale.sku, aborted.order_id, ReleaseReason::Aborted)
            .await
            .unwrap(),
        ReleaseOutcome::Released { quantity: 1 }
    );
    let mut retry = first.clone();
    retry.order_id = OrderId::new();
    let again = reserved(&*store, &retry).await;
    assert_eq!(again.order_id, retry.order_id);
    retry.order_id = OrderId::new();
    assert!(matches!(
        store.reserve(&retry).await.unwrap(),
        ReserveOutcome::Existing { reservation } if reservation.order_id == again.order_id
    ));
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(1, 0, 1, 0)
    );
}

/// `reservation_by_key` finds what a key made — for that user only, in any state, but not once
/// aborted — and what `reserve` would answer as `Existing` for it, on a sale sold out too.
pub async fn reservation_by_key_finds_what_a_key_made(store: DynStockStore) {
    let sale = new_sale(&*store, 2, 2).await;
    let key = IdempotencyKey::new("cart-7").unwrap();
    let (ann, bob) = (user("ann"), user("bob"));
    assert_eq!(by_key(&*store, &sale.sku, &ann, &key).await, None);
    let mut keyed = request(&sale.sku, ann.clone(), Utc::now());
    keyed.idempotency_key = Some(key.clone());
    keyed.quantity = 2;
    let made = reserved(&*store, &keyed).await;
    let found = by_key(&*store, &sale.sku, &ann, &key).await;
    assert_eq!(found.as_ref().map(|r| r.order_id), Some(made.order_id));
    assert_eq!(found.as_ref().map(|r| r.quantity), Some(2));
    assert_eq!(found.map(|r| r.state), Some(ReservationState::Reserved));
    // Keys are per user; another key of the same user finds nothing.
    assert_eq!(by_key(&*store, &sale.sku, &bob, &key).await, None);
    let other = IdempotencyKey::new("cart-8").unwrap();
    assert_eq!(by_key(&*store, &sale.sku, &ann, &other).await, None);
    // Sold out now, and still found; once paid, found paid.
    store
        .confirm(&sale.sku, made.order_id, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        by_key(&*store, &sale.sku, &ann, &key)
            .await
            .map(|r| r.state),
        Some(ReservationState::Confirmed)
    );
    // An aborted reservation freed its key.
    let sale = new_sale(&*store, 1, 1).await;
    let mut keyed = request(&sale.sku, ann.clone(), Utc::now());
    keyed.idempotency_key = Some(key.clone());
    let aborted = reserved(&*store, &keyed).await;
    store
        .release(&sale.sku, aborted.order_id, ReleaseReason::Aborted)
        .await
        .unwrap();
    assert_eq!(by_key(&*store, &sale.sku, &ann, &key).await, None);
    assert!(matches!(
        store.reservation_by_key(&unique_sku(), &ann, &key).await,
        Err(Error::UnknownSale(_))
    ));
}

/// What `user`'s `key` made on the sale, by [`StockStore::reservation_by_key`].
async fn by_key(
    store: &dyn StockStore,
    sku: &Sku,
    user: &UserId,
    key: &IdempotencyKey,
) -> Option<Reservation> {
    store.reservation_by_key(sku, user, key).await.unwrap()
}

/// Fifty concurrent releases of one reservation return its units once.
pub async fn release_is_exactly_once_under_concurrency(store: DynStockStore) {
    let sale = new_sale(&*store, 5, 2).await;
    let mut two = request(&sale.sku, user("ann"), Utc::now());
    two.quantity = 2;
    let reservation = reserved(&*store, &two).await;
    let tasks = (0..50).map(|i| {
        let store = Arc::clone(&store);
        let sku = sale.sku.clone();
        let reason = if i % 2 == 0 {
            ReleaseReason::Cancelled
        } else {
            ReleaseReason::Expired
        };
        tokio::spawn(async move { store.release(&sku, reservation.order_id, reason).await })
    });
    let outcomes: Vec<ReleaseOutcome> = join_all(tasks)
        .await
        .into_iter()
        .map(|outcome| outcome.expect("task").expect("release"))
        .collect();
    let released = outcomes
        .iter()
        .filter(|outcome| **outcome == ReleaseOutcome::Released { quantity: 2 })
        .count();
    assert_eq!(released, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|outcome| matches!(
        outcome,
        ReleaseOutcome::Released { .. } | ReleaseOutcome::AlreadyReleased(_)
    )));
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(5, 5, 0, 0)
    );
    // Released units stop counting against the user's limit.
    two.order_id = OrderId::new();
    reserved(&*store, &two).await;
    assert_eq!(
        store
            .release(&sale.sku, OrderId::new(), ReleaseReason::Cancelled)
            .await
            .unwrap(),
        ReleaseOutcome::NotFound
    );
}

/// Confirm moves units to sold once; a confirmed reservation cannot be released.
pub async fn confirm_is_exactly_once_and_final(store: DynStockStore) {
    let sale = new_sale(&*store, 3, 1).await;
    let reservation = reserved(&*store, &request(&sale.sku, user("ann"), Utc::now())).await;
    let tasks = (0..20).map(|_| {
        let store = Arc::clone(&store);
        let sku = sale.sku.clone();
        tokio::spawn(async move { store.confirm(&sku, reservation.order_id, Utc::now()).await })
    });
    let outcomes: Vec<ConfirmOutcome> = join_all(tasks)
        .await
        .into_iter()
        .map(|outcome| outcome.expect("task").expect("confirm"))
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == ConfirmOutcome::Confirmed)
            .count(),
        1
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == ConfirmOutcome::AlreadyConfirmed)
            .count(),
        19
    );
    assert_eq!(
        store
            .release(&sale.sku, reservation.order_id, ReleaseReason::Cancelled)
            .await
            .unwrap(),
        ReleaseOutcome::Confirmed
    );
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(3, 2, 0, 1)
    );
    let read = store
        .reservation(&sale.sku, reservation.order_id)
        .await
        .unwrap();
    assert_eq!(read.map(|r| r.state), Some(ReservationState::Confirmed));
    assert_eq!(
        store
            .confirm(&sale.sku, OrderId::new(), Utc::now())
            .await
            .unwrap(),
        ConfirmOutcome::NotFound
    );
    // Sold units still count against the user's limit.
    assert!(matches!(
        store
            .reserve(&request(&sale.sku, user("ann"), Utc::now()))
            .await
            .unwrap(),
        ReserveOutcome::LimitExceeded { limit: 1, held: 1 }
    ));
}

/// A released reservation cannot be confirmed.
pub async fn confirm_after_release_is_refused(store: DynStockStore) {
    let sale = new_sale(&*store, 2, 1).await;
    let reservation = reserved(&*store, &request(&sale.sku, user("ann"), Utc::now())).await;
    store
        .release(&sale.sku, reservation.order_id, ReleaseReason::Expired)
        .await
        .unwrap();
    assert_eq!(
        store
            .confirm(&sale.sku, reservation.order_id, Utc::now())
            .await
            .unwrap(),
        ConfirmOutcome::Released(ReleaseReason::Expired)
    );
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(2, 2, 0, 0)
    );
}

/// A confirm at or after the reservation's expiry is refused ([`ConfirmOutcome::Expired`]),
/// atomically with the store's own reading of the reservation: pays racing the sweeper around
/// the expiry instant never confirm a late one, and every unit ends sold or back on sale once.
pub async fn confirm_after_expiry_is_refused(store: DynStockStore) {
    let sale = Sale::new(unique_sku(), 40)
        .with_per_user_limit(1)
        .with_reservation_ttl(Duration::from_secs(1));
    store.create_sale(&sale).await.unwrap();
    let t0 = Utc::now();
    let ms = |n: i64| chrono::Duration::milliseconds(n);
    // One exactly at the edge: the expiry instant itself is too late.
    let edge = reserved(&*store, &request(&sale.sku, user("edge"), t0)).await;
    assert_eq!(
        store
            .confirm(&sale.sku, edge.order_id, edge.expires_at - ms(1))
            .await
            .unwrap(),
        ConfirmOutcome::Confirmed
    );
    let late = reserved(&*store, &request(&sale.sku, user("late"), t0)).await;
    assert_eq!(
        store
            .confirm(&sale.sku, late.order_id, late.expires_at)
            .await
            .unwrap(),
        ConfirmOutcome::Expired
    );
    let read = store.reservation(&sale.sku, late.order_id).await.unwrap();
    assert_eq!(read.map(|r| r.state), Some(ReservationState::Reserved));

    // Pays from 30 ms before to 30 ms after each expiry, racing a sweeper releasing what is due.
    let requests: Vec<ReserveRequest> = (0..30)
        .map(|n| request(&sale.sku, user(n), t0 + ms(n)))
        .collect();
    let held: Vec<Reservation> =
        join_all(requests.iter().map(|request| reserved(&*store, request))).await;
    let pays = held.iter().enumerate().map(|(n, reservation)| {
        let (store, sku, id) = (Arc::clone(&store), sale.sku.clone(), reservation.order_id);
        let at = reservation.expires_at + ms(n as i64 * 2 - 30);
        tokio::spawn(async move { (at, store.confirm(&sku, id, at).await.unwrap()) })
    });
    let sweeper = {
        let (store, sku) = (Arc::clone(&store), sale.sku.clone());
        let horizon = t0 + ms(1_000 + 30);
        tokio::spawn(async move {
            for due in store.expired(&sku, horizon, 100).await.unwrap() {
                if due.order_id != late.order_id {
                    store
                        .release(&sku, due.order_id, ReleaseReason::Expired)
                        .await
                        .unwrap();
                }
            }
        })
    };
    let outcomes: Vec<_> = join_all(pays)
        .await
        .into_iter()
        .map(|o| o.unwrap())
        .collect();
    sweeper.await.unwrap();
    let mut confirmed = 1; // the edge case's
    for ((at, outcome), reservation) in outcomes.iter().zip(&held) {
        match outcome {
            ConfirmOutcome::Confirmed => {
                assert!(
                    *at < reservation.expires_at,
                    "a pay at {at} after {} won",
                    reservation.expires_at
                );
                confirmed += 1;
            }
            // Late, or the sweeper (whose horizon is past every expiry) came first.
            ConfirmOutcome::Expired => assert!(*at >= reservation.expires_at),
            ConfirmOutcome::Released(ReleaseReason::Expired) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let counts = store.snapshot(&sale.sku).await.unwrap();
    assert_eq!(counts.sold, confirmed);
    // What is not sold is back on sale, but for `late`, still held until released.
    assert_eq!(counts.reserved, 1);
    assert_eq!(
        counts.available + counts.reserved + counts.sold,
        counts.stock
    );
}

/// `expired` answers the held reservations whose expiry has passed, soonest first, up to the
/// limit; confirmed and released ones never.
pub async fn expiry_is_indexed_by_instant(store: DynStockStore) {
    let sale = Sale::new(unique_sku(), 10)
        .with_per_user_limit(10)
        .with_reservation_ttl(Duration::from_secs(60));
    store.create_sale(&sale).await.unwrap();
    let t0 = Utc::now();
    let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
    // Made out of order on purpose: the index orders by expiry, not by arrival.
    let late = reserved(&*store, &request(&sale.sku, user(3), at(20))).await;
    let early = reserved(&*store, &request(&sale.sku, user(1), at(0))).await;
    let middle = reserved(&*store, &request(&sale.sku, user(2), at(10))).await;
    let paid = reserved(&*store, &request(&sale.sku, user(4), at(0))).await;
    let cancelled = reserved(&*store, &request(&sale.sku, user(5), at(0))).await;
    store
        .confirm(&sale.sku, paid.order_id, Utc::now())
        .await
        .unwrap();
    store
        .release(&sale.sku, cancelled.order_id, ReleaseReason::Cancelled)
        .await
        .unwrap();
    assert_eq!(early.expires_at, at(60));

    let ids = |found: Vec<Reservation>| found.into_iter().map(|r| r.order_id).collect::<Vec<_>>();
    assert!(
        store
            .expired(&sale.sku, at(59), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(store.expired(&sale.sku, at(60), 100).await.unwrap()),
        [early.order_id]
    );
    assert_eq!(
        ids(store.expired(&sale.sku, at(75), 100).await.unwrap()),
        [early.order_id, middle.order_id]
    );
    assert_eq!(
        ids(store.expired(&sale.sku, at(500), 1).await.unwrap()),
        [early.order_id]
    );
    store
        .release(&sale.sku, early.order_id, ReleaseReason::Expired)
        .await
        .unwrap();
    assert_eq!(
        ids(store.expired(&sale.sku, at(500), 100).await.unwrap()),
        [middle.order_id, late.order_id]
    );
}

/// `expire` releases the held reservations due by `now` as expired, soonest first, at most
/// `limit`: their units come back, and a later call finds nothing more; reservations not yet
/// due, paid or cancelled stay as they are.
pub async fn expire_releases_due_reservations_once(store: DynStockStore) {
    let sale = Sale::new(unique_sku(), 10)
        .with_per_user_limit(10)
        .with_reservation_ttl(Duration::from_secs(60));
    store.create_sale(&sale).await.unwrap();
    let t0 = Utc::now();
    let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
    // One buyer: a store that shards by buyer keeps them in one shard, so `limit` binds.
    let one = || user("ann");
    let late = reserved(&*store, &request(&sale.sku, one(), at(20))).await;
    let early = reserved(&*store, &request(&sale.sku, one(), at(0))).await;
    let middle = reserved(&*store, &request(&sale.sku, one(), at(10))).await;
    let paid = reserved(&*store, &request(&sale.sku, one(), at(0))).await;
    let cancelled = reserved(&*store, &request(&sale.sku, one(), at(0))).await;
    store
        .confirm(&sale.sku, paid.order_id, at(1))
        .await
        .unwrap();
    store
        .release(&sale.sku, cancelled.order_id, ReleaseReason::Cancelled)
        .await
        .unwrap();
    let expire = |now, limit| {
        let (store, sku) = (Arc::clone(&store), sale.sku.clone());
        async move {
            let batch = store
                .expire(&sku, now, limit, &ExpiryCall::new())
                .await
                .expect("expire");
            let ids: Vec<OrderId> = batch.released.iter().map(|r| r.order_id).collect();
            (ids, batch.full, batch.units())
        }
    };
    assert_eq!(expire(at(59), 100).await, (vec![], false, 0));
    assert_eq!(expire(at(75), 1).await, (vec![early.order_id], true, 1));
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(10, 7, 2, 1)
    );
    assert_eq!(expire(at(75), 100).await, (vec![middle.order_id], false, 1));
    assert_eq!(expire(at(75), 100).await, (vec![], false, 0));
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(10, 8, 1, 1)
    );
    for (id, state) in [
        (
            early.order_id,
            ReservationState::Released(ReleaseReason::Expired),
        ),
        (
            middle.order_id,
            ReservationState::Released(ReleaseReason::Expired),
        ),
        (late.order_id, ReservationState::Reserved),
        (paid.order_id, ReservationState::Confirmed),
        (
            cancelled.order_id,
            ReservationState::Released(ReleaseReason::Cancelled),
        ),
    ] {
        let found = store.reservation(&sale.sku, id).await.unwrap();
        assert_eq!(found.map(|r| r.state), Some(state), "{id}");
    }
    assert_eq!(
        store
            .release(&sale.sku, early.order_id, ReleaseReason::Expired)
            .await
            .unwrap(),
        ReleaseOutcome::AlreadyReleased(ReleaseReason::Expired)
    );
    assert_eq!(expire(at(200), 100).await, (vec![late.order_id], false, 1));
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(10, 9, 0, 1)
    );
}

/// Concurrent `expire` calls (four sweepers, each call its own [`ExpiryCall`]) release each
/// due reservation once, and every one of them.
pub async fn expire_releases_each_reservation_once_under_concurrency(store: DynStockStore) {
    let sale = Sale::new(unique_sku(), 60)
        .with_per_user_limit(60)
        .with_reservation_ttl(Duration::from_secs(60));
    store.create_sale(&sale).await.unwrap();
    let t0 = Utc::now();
    let due = t0 + chrono::Duration::seconds(60);
    let mut made = HashSet::new();
    for i in 0..40 {
        made.insert(
            reserved(&*store, &request(&sale.sku, user(i), t0))
                .await
                .order_id,
        );
    }
    let sweepers = (0..4).map(|_| {
        let (store, sku) = (Arc::clone(&store), sale.sku.clone());
        tokio::spawn(async move {
            let mut released = Vec::new();
            loop {
                let batch = store
                    .expire(&sku, due, 7, &ExpiryCall::new())
                    .await
                    .expect("expire");
                let empty = batch.released.is_empty();
                released.extend(batch.released.into_iter().map(|r| r.order_id));
                if empty && !batch.full {
                    return released;
                }
            }
        })
    });
    let mut released = Vec::new();
    for sweeper in join_all(sweepers).await {
        released.extend(sweeper.expect("task"));
    }
    let unique: HashSet<OrderId> = released.iter().copied().collect();
    assert_eq!(unique.len(), released.len(), "a reservation released twice");
    assert_eq!(unique, made);
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(60, 60, 0, 0)
    );
}

/// `due_sales` files a sale under the earliest expiry it holds: a sale is answered once a
/// reservation of it is due, never while nothing of it is, never when it never held one; once
/// `expired` finds nothing due in it (its due reservations released) it drops out, and a new
/// reservation files it again. A store without the index (the trait's default) answers every
/// sale, and then must answer each of these.
pub async fn due_sales_follow_held_reservations(store: DynStockStore) {
    let ttl = Duration::from_secs(60);
    let t0 = Utc::now();
    let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
    let mut sales = Vec::new();
    for _ in 0..4 {
        let sale = Sale::new(unique_sku(), 10)
            .with_per_user_limit(10)
            .with_reservation_ttl(ttl);
        assert!(store.create_sale(&sale).await.unwrap());
        sales.push(sale.sku);
    }
    let [idle, first, second, paid] = &sales[..] else {
        unreachable!("four sales")
    };
    let due = |now| {
        let store = Arc::clone(&store);
        async move { store.due_sales(now, 10_000).await.expect("due_sales") }
    };
    let early = reserved(&*store, &request(first, user(1), at(0))).await;
    let late = reserved(&*store, &request(second, user(2), at(100))).await;
    let bought = reserved(&*store, &request(paid, user(3), at(0))).await;

    let listed = due(at(59)).await;
    if listed.contains(idle) {
        // No index: every sale, every time.
        for sku in &sales {
            assert!(listed.contains(sku), "{sku} missing from {listed:?}");
        }
        return;
    }
    for sku in &sales {
        assert!(!listed.contains(sku), "{sku} is not due yet: {listed:?}");
    }
    let listed = due(at(60)).await;
    assert!(
        listed.contains(first) && listed.contains(paid),
        "{listed:?}"
    );
    assert!(
        !listed.contains(second) && !listed.contains(idle),
        "{listed:?}"
    );
    let listed = due(at(500)).await;
    let place = |sku: &Sku| listed.iter().position(|listed| listed == sku);
    assert!(
        place(first) < place(second) && place(second).is_some(),
        "{listed:?}"
    );
    assert!(!listed.contains(idle), "{listed:?}");
    assert!(store.due_sales(at(500), 1).await.unwrap().len() <= 1);

    // Found but not released yet: still due (a sweeper that died holding them leaves them due).
    assert_eq!(store.expired(first, at(500), 10).await.unwrap().len(), 1);
    assert!(due(at(500)).await.contains(first));
    // Released (by the batch call), then found nothing: out.
    assert_eq!(
        store
            .release_many(first, &[early.order_id], ReleaseReason::Expired)
            .await
            .unwrap(),
        [ReleaseOutcome::Released { quantity: 1 }]
    );
    assert!(store.expired(first, at(500), 10).await.unwrap().is_empty());
    assert!(!due(at(500)).await.contains(first));
    // Paid: the index may still answer it, until `expired` finds nothing.
    store.confirm(paid, bought.order_id, at(1)).await.unwrap();
    assert!(store.expired(paid, at(500), 10).await.unwrap().is_empty());
    assert!(!due(at(500)).await.contains(paid));
    // Found nothing due yet: filed under its expiry, still answered once that comes.
    assert!(store.expired(second, at(120), 10).await.unwrap().is_empty());
    assert!(!due(at(159)).await.contains(second));
    assert!(due(at(160)).await.contains(second));
    assert_eq!(late.expires_at, at(160));
    // A new reservation files a sale again.
    reserved(&*store, &request(first, user(4), at(300))).await;
    assert!(!due(at(359)).await.contains(first));
    assert!(due(at(360)).await.contains(first));
    assert!(!due(at(10_000)).await.contains(idle));
}

/// A reservation made while a sweeper refiles its sale is never left out of the index: in each
/// of 200 rounds one reservation races one `expired` (which refiles the sale), and afterwards the
/// sale, holding a due reservation, is answered; then it is swept empty for the next round.
pub async fn due_index_keeps_reservations_made_during_sweeps(store: DynStockStore) {
    let sale = Sale::new(unique_sku(), 1_000)
        .with_per_user_limit(1_000)
        .with_reservation_ttl(Duration::from_secs(60));
    assert!(store.create_sale(&sale).await.unwrap());
    let sku = &sale.sku;
    let t0 = Utc::now();
    let horizon = t0 + chrono::Duration::seconds(3_600);
    for round in 0..200 {
        let buyer = {
            let (store, request) = (Arc::clone(&store), request(sku, user(round), t0));
            tokio::spawn(async move { reserved(&*store, &request).await })
        };
        let sweeper = {
            let (store, sku) = (Arc::clone(&store), sku.clone());
            tokio::spawn(async move { store.expired(&sku, horizon, 10).await.unwrap() })
        };
        let made = buyer.await.expect("buyer");
        sweeper.await.expect("sweeper");
        let listed = store.due_sales(horizon, 10_000).await.unwrap();
        assert!(
            listed.contains(sku),
            "round {round}: a due reservation is held and the sale is not answered: {listed:?}"
        );
        store
            .release_many(sku, &[made.order_id], ReleaseReason::Expired)
            .await
            .unwrap();
        assert!(store.expired(sku, horizon, 10).await.unwrap().is_empty());
    }
}

/// A store with a retention forgets a settled reservation and its idempotency key once the
/// retention has passed after the reservation's expiry, in the sweeper's
/// [`expired`](StockStore::expired) call and files the sale as due for it; counts and holds stay,
/// a held reservation is never forgotten (see the contract's retention). For a store built with
/// `retention` (not part of [`run_all`]: the store must be made with it).
pub async fn settled_reservations_are_forgotten_after_their_retention(
    store: DynStockStore,
    retention: Duration,
) {
    let ttl = Duration::from_secs(60);
    let retention_s = i64::try_from(retention.as_secs()).expect("a test retention");
    let t0 = Utc::now();
    let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
    let sale = Sale::new(unique_sku(), 10)
        .with_per_user_limit(2)
        .with_reservation_ttl(ttl);
    assert!(store.create_sale(&sale).await.unwrap());
    let idle = new_sale(&*store, 1, 1).await.sku;
    let sku = &sale.sku;
    let key = IdempotencyKey::new("retained-key").unwrap();
    let keyed = |now| ReserveRequest {
        idempotency_key: Some(key.clone()),
        quantity: 2,
        ..request(sku, user("payer"), now)
    };
    let paid = reserved(&*store, &keyed(at(0))).await;
    let cancelled = reserved(&*store, &request(sku, user("canceller"), at(0))).await;
    let lapsed = reserved(&*store, &request(sku, user("laggard"), at(0))).await;
    let held = reserved(&*store, &request(sku, user("holder"), at(30))).await;
    assert_eq!(
        store.confirm(sku, paid.order_id, at(1)).await.unwrap(),
        ConfirmOutcome::Confirmed
    );
    store
        .release(sku, cancelled.order_id, ReleaseReason::Cancelled)
        .await
        .unwrap();
    let found = store.expired(sku, at(61), 10).await.unwrap();
    assert_eq!(
        found.iter().map(|r| r.order_id).collect::<Vec<_>>(),
        [lapsed.order_id]
    );
    store
        .release_many(sku, &[lapsed.order_id], ReleaseReason::Expired)
        .await
        .unwrap();
    assert_eq!(store.snapshot(sku).await.unwrap(), snapshot(10, 7, 1, 2));

    // Within the retention: all still answered, the key still finds its reservation.
    let last_kept = at(60 + retention_s - 1);
    assert_eq!(store.expired(sku, last_kept, 10).await.unwrap().len(), 1);
    for id in [paid.order_id, cancelled.order_id, lapsed.order_id] {
        assert!(
            store.reservation(sku, id).await.unwrap().is_some(),
            "{id} kept"
        );
    }
    assert!(matches!(
        store.reserve(&keyed(last_kept)).await.unwrap(),
        ReserveOutcome::Existing { reservation } if reservation.order_id == paid.order_id
    ));
    // Swept once the holder's expiry passed and it was released: due again for the settled ones
    // only when their retention ends (an index that errs early may answer sooner).
    store
        .release(sku, held.order_id, ReleaseReason::Expired)
        .await
        .unwrap();
    assert!(store.expired(sku, last_kept, 10).await.unwrap().is_empty());
    let forget_at = at(60 + retention_s);
    let due = store.due_sales(forget_at, 10_000).await.unwrap();
    // A store without an index lists every sale.
    let indexed = !due.contains(&idle);
    assert!(
        due.contains(sku),
        "due when its settled reservations are to be forgotten"
    );
    if indexed {
        let due = store
            .due_sales(at(60 + retention_s - 1), 10_000)
            .await
            .unwrap();
        assert!(!due.contains(sku), "not due before: {due:?}");
    }

    // Past it: forgotten, a page at a time; nothing held is lost, no count moves.
    assert!(store.expired(sku, forget_at, 2).await.unwrap().is_empty());
    let left = [paid.order_id, cancelled.order_id, lapsed.order_id];
    let mut kept = 0;
    for id in left {
        kept += usize::from(store.reservation(sku, id).await.unwrap().is_some());
    }
    // A sharded store bounds each shard's share (`limit` ÷ shards, rounded up).
    assert!(kept >= 1, "a call of limit 2 forgot all three");
    assert!(store.expired(sku, forget_at, 10).await.unwrap().is_empty());
    for id in left {
        assert_eq!(
            store.reservation(sku, id).await.unwrap(),
            None,
            "{id} forgotten"
        );
    }
    assert_eq!(
        store.confirm(sku, paid.order_id, forget_at).await.unwrap(),
        ConfirmOutcome::NotFound
    );
    assert_eq!(
        store
            .reservation_by_key(sku, &user("payer"), &key)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .reservation(sku, held.order_id)
            .await
            .unwrap()
            .is_some(),
        "released within its retention"
    );
    assert_eq!(store.snapshot(sku).await.unwrap(), snapshot(10, 8, 0, 2));
    // The payer still holds the limit: the key makes a new reservation, the limit refuses it.
    assert!(matches!(
        store.reserve(&keyed(forget_at)).await.unwrap(),
        ReserveOutcome::LimitExceeded { limit: 2, held: 2 }
    ));
    let again = ReserveRequest {
        quantity: 1,
        ..request(sku, user("canceller"), forget_at)
    };
    reserved(&*store, &again).await;
    // Nothing is left to forget or release before the holder's retention ends.
    if indexed {
        let due = store.due_sales(forget_at, 10_000).await.unwrap();
        assert!(!due.contains(sku), "{due:?}");
        let due = store.due_sales(at(90 + retention_s), 10_000).await.unwrap();
        assert!(due.contains(sku), "{due:?}");
    }
}

/// `release_many` answers each id as `release` would, in order; concurrent batches over the same
/// ids release each once.
pub async fn release_many_answers_each_in_order(store: DynStockStore) {
    let sale = new_sale(&*store, 50, 50).await;
    let now = Utc::now();
    let mut two = request(&sale.sku, user("ann"), now);
    two.quantity = 2;
    let held = reserved(&*store, &two).await;
    let paid = reserved(&*store, &request(&sale.sku, user("bob"), now)).await;
    let cancelled = reserved(&*store, &request(&sale.sku, user("cy"), now)).await;
    store.confirm(&sale.sku, paid.order_id, now).await.unwrap();
    store
        .release(&sale.sku, cancelled.order_id, ReleaseReason::Cancelled)
        .await
        .unwrap();
    let ids = [
        held.order_id,
        paid.order_id,
        cancelled.order_id,
        OrderId::new(),
        held.order_id,
    ];
    assert_eq!(
        store
            .release_many(&sale.sku, &ids, ReleaseReason::Expired)
            .await
            .unwrap(),
        [
            ReleaseOutcome::Released { quantity: 2 },
            ReleaseOutcome::Confirmed,
            ReleaseOutcome::AlreadyReleased(ReleaseReason::Cancelled),
            ReleaseOutcome::NotFound,
            ReleaseOutcome::AlreadyReleased(ReleaseReason::Expired),
        ]
    );
    assert!(
        store
            .release_many(&sale.sku, &[], ReleaseReason::Expired)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(50, 49, 0, 1)
    );

    // Two sweepers with the same batch: each reservation's units come back once.
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.push(
            reserved(&*store, &request(&sale.sku, user(i), now))
                .await
                .order_id,
        );
    }
    let batch = Arc::new(batch);
    let racing = (0..2).map(|_| {
        let (store, sku, batch) = (Arc::clone(&store), sale.sku.clone(), Arc::clone(&batch));
        tokio::spawn(async move {
            store
                .release_many(&sku, &batch, ReleaseReason::Expired)
                .await
                .unwrap()
        })
    });
    let mut released = 0;
    for outcomes in join_all(racing).await {
        let outcomes = outcomes.expect("task");
        assert_eq!(outcomes.len(), 20);
        released += outcomes
            .iter()
            .filter(|outcome| **outcome == ReleaseOutcome::Released { quantity: 1 })
            .count();
    }
    assert_eq!(released, 20);
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(50, 49, 0, 1)
    );
}

/// Reservations before `starts_at` or from `ends_at` on are refused as not active; an earlier
/// reservation's key still answers it.
pub async fn sale_window_is_enforced(store: DynStockStore) {
    let now = Utc::now();
    let hour = chrono::Duration::hours(1);
    let sale = Sale::new(unique_sku(), 5).with_window(Some(now + hour), Some(now + hour * 2));
    store.create_sale(&sale).await.unwrap();
    let at = |instant| request(&sale.sku, user("ann"), instant);
    assert_eq!(
        store.reserve(&at(now)).await.unwrap(),
        ReserveOutcome::NotActive {
            state: SaleState::Upcoming
        }
    );
    assert_eq!(
        store.reserve(&at(now + hour * 2)).await.unwrap(),
        ReserveOutcome::NotActive {
            state: SaleState::Ended
        }
    );
    let mut keyed = at(now + hour);
    keyed.idempotency_key = Some(IdempotencyKey::new("in-window").unwrap());
    let made = reserved(&*store, &keyed).await;
    // A retry with the key gets its reservation back after the sale ended.
    keyed.order_id = OrderId::new();
    keyed.now = now + hour * 3;
    assert!(matches!(
        store.reserve(&keyed).await.unwrap(),
        ReserveOutcome::Existing { reservation } if reservation.order_id == made.order_id
    ));
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(5, 4, 1, 0)
    );
}

/// Ending a sale refuses every reservation from that instant on (for every buyer, wherever the
/// store keeps them) and none before it; it keeps the reservations made, moves the end only
/// earlier, and closes an upcoming sale before it opens. A retry's key still answers.
pub async fn end_sale_refuses_from_then_on(store: DynStockStore) {
    let now = fixtures::now();
    let second = chrono::Duration::seconds(1);
    let sale = new_sale(&*store, 50, 1).await;
    let mut keyed = request(&sale.sku, user("early"), now);
    keyed.idempotency_key = Some(IdempotencyKey::new("before-the-end").unwrap());
    let made = reserved(&*store, &keyed).await;
    let end = now + second * 10;
    let ended = store.end_sale(&sale.sku, end).await.unwrap();
    assert_eq!(ended, Some(sale.clone().ended(end)));
    assert_eq!(store.sale(&sale.sku).await.unwrap(), ended);
    assert!(
        store
            .sales()
            .await
            .unwrap()
            .contains(&sale.clone().ended(end))
    );
    // Before the end, reservations go on; from it on, every buyer is refused.
    reserved(
        &*store,
        &request(&sale.sku, user("just-in-time"), end - second),
    )
    .await;
    for buyer in 0..20 {
        assert_eq!(
            store
                .reserve(&request(&sale.sku, user(buyer), end))
                .await
                .unwrap(),
            ReserveOutcome::NotActive {
                state: SaleState::Ended
            },
            "buyer {buyer} at the end"
        );
    }
    keyed.order_id = OrderId::new();
    keyed.now = end + second;
    assert!(matches!(
        store.reserve(&keyed).await.unwrap(),
        ReserveOutcome::Existing { reservation } if reservation.order_id == made.order_id
    ));
    // An end never moves later; it moves earlier.
    let later = store.end_sale(&sale.sku, end + second * 60).await.unwrap();
    assert_eq!(later, Some(sale.clone().ended(end)));
    let earlier = store.end_sale(&sale.sku, end - second * 5).await.unwrap();
    assert_eq!(earlier, Some(sale.clone().ended(end - second * 5)));
    // The reservations made stay held.
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(50, 48, 2, 0)
    );
    assert_eq!(store.end_sale(&unique_sku(), end).await.unwrap(), None);

    let hour = chrono::Duration::hours(1);
    let upcoming = Sale::new(unique_sku(), 5).with_window(Some(now + hour), Some(now + hour * 2));
    store.create_sale(&upcoming).await.unwrap();
    let closed = store.end_sale(&upcoming.sku, now).await.unwrap();
    assert_eq!(
        closed.as_ref().map(|sale| (sale.starts_at, sale.ends_at)),
        Some((Some(now), Some(now)))
    );
    assert_eq!(
        store
            .reserve(&request(&upcoming.sku, user("ann"), now + hour))
            .await
            .unwrap(),
        ReserveOutcome::NotActive {
            state: SaleState::Ended
        }
    );
}

fn order(
    sale: &Sale,
    user: UserId,
    quantity: u32,
    status: OrderStatus,
    key: Option<&str>,
) -> Order {
    let order = fixtures::order(&sale.sku, user.as_str());
    Order {
        quantity,
        status,
        expires_at: sale.expiry_from(order.created_at),
        idempotency_key: key.map(|key| IdempotencyKey::new(key).unwrap()),
        ..order
    }
}

/// The rebuild lock admits one holder per sale: another is refused until the holder unlocks or
/// its lease lapses; the holder renews it; sales are locked apart; an unlock by another holder
/// changes nothing.
pub async fn rebuild_lock_admits_one_holder(store: DynStockStore) {
    let (sku, other) = (unique_sku(), unique_sku());
    let lease = Duration::from_secs(30);
    assert!(store.lock_rebuild(&sku, "a", lease).await.unwrap());
    assert!(!store.lock_rebuild(&sku, "b", lease).await.unwrap());
    assert!(
        store.lock_rebuild(&sku, "a", lease).await.unwrap(),
        "the holder renews"
    );
    assert!(store.lock_rebuild(&other, "b", lease).await.unwrap());
    store.unlock_rebuild(&sku, "b").await.unwrap();
    assert!(
        !store.lock_rebuild(&sku, "b", lease).await.unwrap(),
        "b could unlock a's lock"
    );
    store.unlock_rebuild(&sku, "a").await.unwrap();
    assert!(store.lock_rebuild(&sku, "b", lease).await.unwrap());

    // A lease the holder does not renew lapses.
    let short = Duration::from_millis(300);
    assert!(store.lock_rebuild(&other, "b", short).await.unwrap());
    assert!(!store.lock_rebuild(&other, "c", lease).await.unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        store.lock_rebuild(&other, "c", lease).await.unwrap(),
        "the lease did not lapse"
    );
    store.unlock_rebuild(&sku, "b").await.unwrap();
    store.unlock_rebuild(&other, "c").await.unwrap();
}

/// `restore` rebuilds counts, reservations, per-user holdings and idempotency keys from orders,
/// replacing what the store had (or creating the sale when it had none).
pub async fn restore_rebuilds_from_orders(store: DynStockStore) {
    let sale = Sale::new(unique_sku(), 10).with_per_user_limit(2);
    let pending = order(&sale, user("ann"), 2, OrderStatus::Pending, Some("k1"));
    let paid = order(&sale, user("bob"), 1, OrderStatus::Paid, None);
    let cancelled = order(&sale, user("cy"), 2, OrderStatus::Cancelled, None);
    let expired = order(&sale, user("bob"), 1, OrderStatus::Expired, None);
    let orders = [pending.clone(), paid.clone(), cancelled, expired];
    // Restoring a sale the store lost creates it.
    store.restore(&sale, &orders).await.unwrap();
    assert_eq!(store.sale(&sale.sku).await.unwrap(), Some(sale.clone()));
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(10, 7, 2, 1)
    );
    // Restoring over live state replaces it.
    reserved(&*store, &request(&sale.sku, user("dee"), Utc::now())).await;
    store.restore(&sale, &orders).await.unwrap();
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(10, 7, 2, 1)
    );

    let now = Utc::now();
    assert!(matches!(
        store
            .reserve(&request(&sale.sku, user("ann"), now))
            .await
            .unwrap(),
        ReserveOutcome::LimitExceeded { limit: 2, held: 2 }
    ));
    reserved(&*store, &request(&sale.sku, user("bob"), now)).await;
    reserved(&*store, &request(&sale.sku, user("cy"), now)).await;
    let mut retry = request(&sale.sku, user("ann"), now);
    retry.idempotency_key = pending.idempotency_key.clone();
    assert!(matches!(
        store.reserve(&retry).await.unwrap(),
        ReserveOutcome::Existing { reservation } if reservation.order_id == pending.id
    ));
    assert_eq!(
        store.confirm(&sale.sku, paid.id, Utc::now()).await.unwrap(),
        ConfirmOutcome::AlreadyConfirmed
    );
    let expiring = store
        .expired(&sale.sku, pending.expires_at, 10)
        .await
        .unwrap();
    assert_eq!(
        expiring.iter().map(|r| r.order_id).collect::<Vec<_>>(),
        [pending.id]
    );
    assert_eq!(
        store
            .release(&sale.sku, pending.id, ReleaseReason::Expired)
            .await
            .unwrap(),
        ReleaseOutcome::Released { quantity: 2 }
    );
}

/// A restore of thousands of orders (many calls for a store that writes them in chunks) keeps
/// every one: the counts, each reservation, each buyer's holding (summed over orders that fall
/// in different chunks), each idempotency key, and the sale's first expiry, held by the last
/// order restored, filed for the sweeper.
pub async fn a_large_restore_keeps_every_order(store: DynStockStore) {
    const ORDERS: usize = 2_600;
    // A buyer's orders lie 1,000 apart, so a store writing 500 at a time meets each in another call.
    const BUYERS: usize = 1_000;
    const LIMIT: u32 = 4;
    let sale = Sale::new(unique_sku(), 5_000).with_per_user_limit(LIMIT);
    let start = Utc::now() + chrono::Duration::minutes(10);
    let statuses = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Expired,
    ];
    let orders: Vec<Order> = (0..ORDERS)
        .map(|i| {
            let key = (i % 7 == 0).then(|| format!("key-{i}"));
            Order {
                // Later orders lapse first: the earliest expiry is the last one restored.
                expires_at: start + chrono::Duration::seconds((ORDERS - i) as i64),
                ..order(&sale, user(i % BUYERS), 1, statuses[i % 3], key.as_deref())
            }
        })
        .collect();
    store.restore(&sale, &orders).await.unwrap();
    let pending = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Pending)
        .count() as u64;
    let paid = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Paid)
        .count() as u64;
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        snapshot(5_000, 5_000 - pending - paid, pending, paid)
    );
    for order in &orders {
        let found = store.reservation(&sale.sku, order.id).await.unwrap();
        assert!(found.is_some(), "order {} of {ORDERS} lost", order.id);
    }
    let now = Utc::now();
    for buyer in (0..BUYERS).step_by(37) {
        let held = orders
            .iter()
            .filter(|o| o.user == user(buyer))
            .filter(|o| matches!(o.status, OrderStatus::Pending | OrderStatus::Paid))
            .count() as u32;
        let mut over = request(&sale.sku, user(buyer), now);
        over.quantity = LIMIT - held + 1;
        assert_eq!(
            store.reserve(&over).await.unwrap(),
            ReserveOutcome::LimitExceeded { limit: LIMIT, held },
            "buyer {buyer} holds {held}"
        );
    }
    for kept in orders
        .iter()
        .filter(|o| o.status == OrderStatus::Pending && o.idempotency_key.is_some())
        .step_by(5)
    {
        let mut retry = request(&sale.sku, kept.user.clone(), now);
        retry.idempotency_key = kept.idempotency_key.clone();
        assert!(
            matches!(
                store.reserve(&retry).await.unwrap(),
                ReserveOutcome::Existing { reservation } if reservation.order_id == kept.id
            ),
            "the key of order {} was lost",
            kept.id
        );
    }
    let first = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Pending)
        .min_by_key(|o| o.expires_at)
        .unwrap();
    let due = store.due_sales(first.expires_at, 1_000).await.unwrap();
    assert!(due.contains(&sale.sku), "the first expiry is not filed");
    let expiring = store
        .expired(&sale.sku, first.expires_at, 10)
        .await
        .unwrap();
    assert_eq!(
        expiring.iter().map(|r| r.order_id).collect::<Vec<_>>(),
        [first.id]
    );
}

/// Concurrent reserves, confirms and releases keep `available + reserved + sold == stock`, and
/// every unit is accounted for by the outcomes.
pub async fn conservation_under_mixed_load(store: DynStockStore) {
    let sale = new_sale(&*store, 300, 1).await;
    let now = Utc::now();
    let tasks = (0..600).map(|i| {
        let store = Arc::clone(&store);
        let request = request(&sale.sku, user(i), now);
        tokio::spawn(async move {
            let ReserveOutcome::Reserved { reservation, .. } = store.reserve(&request).await?
            else {
                return Ok::<_, Error>((0, 0));
            };
            match i % 3 {
                0 => {
                    assert_eq!(
                        store
                            .confirm(&request.sku, reservation.order_id, Utc::now())
                            .await?,
                        ConfirmOutcome::Confirmed
                    );
                    Ok((0, 1))
                }
                1 => {
                    let outcome = store
                        .release(&request.sku, reservation.order_id, ReleaseReason::Cancelled)
                        .await?;
                    assert_eq!(outcome, ReleaseOutcome::Released { quantity: 1 });
                    Ok((0, 0))
                }
                _ => Ok((1, 0)),
            }
        })
    });
    let (mut held, mut sold) = (0, 0);
    for outcome in join_all(tasks).await {
        let (h, s) = outcome.expect("task").expect("store call");
        held += h;
        sold += s;
    }
    let counts = store.snapshot(&sale.sku).await.unwrap();
    assert_eq!(
        counts.available + counts.reserved + counts.sold,
        300,
        "{counts:?}"
    );
    assert_eq!((counts.reserved, counts.sold), (held, sold));
}

/// Every sale window the API accepts comes back from the store exactly as it was created, and
/// is enforced at its edges.
pub async fn store_keeps_sale_windows_exactly(store: DynStockStore) {
    for (starts_at, ends_at) in super::edge_windows() {
        let sale = Sale::new(unique_sku(), 5).with_window(starts_at, ends_at);
        sale.validate().expect("the edges are valid");
        assert!(store.create_sale(&sale).await.unwrap());
        let read = store
            .sale(&sale.sku)
            .await
            .unwrap()
            .expect("the sale reads back");
        assert_eq!(
            (read.starts_at, read.ends_at),
            (starts_at, ends_at),
            "{}",
            sale.sku
        );
        assert_eq!(read, sale);
        if let Some(start) = starts_at {
            let early = start - chrono::Duration::microseconds(1);
            refused_at(&*store, &sale.sku, early, SaleState::Upcoming).await;
        }
        if let Some(end) = ends_at {
            refused_at(&*store, &sale.sku, end, SaleState::Ended).await;
        }
    }
}

/// A reservation at `now` is refused as not active, in `state`.
async fn refused_at(store: &dyn StockStore, sku: &Sku, now: DateTime<Utc>, state: SaleState) {
    let outcome = store
        .reserve(&request(sku, user("edge"), now))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ReserveOutcome::NotActive { state },
        "{sku} at {now}"
    );
}
