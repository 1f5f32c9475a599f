//! The core conformance kit against the real Redis (`NEXUSSALE_REDIS_URL`), coalesced, uncoalesced
//! and over four stock shards; plus what only a sharded store has to prove.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::Arc;

use chrono::Utc;
use futures::future::join_all;
use nexussale_core::layers::Hooked;
use nexussale_core::testkit::fixtures::reserve_request;
use nexussale_core::testkit::services::{redis_url, unavailable};
use nexussale_core::testkit::{Teardown, TornDown, unique_name, unique_sku};
use nexussale_core::{
    DynStockStore, OrderId, ReleaseReason, ReserveOutcome, Sale, StockSnapshot, StockStore,
};
use nexussale_redis::{RedisConfig, RedisStockStore};

/// A store under a prefix of its own, whose keys are deleted when the test drops it.
type Scoped = TornDown<RedisStockStore>;

async fn connect(config: RedisConfig) -> Option<Scoped> {
    let config = config.prefix(unique_name("nexussale-test-"));
    let store = match RedisStockStore::connect_with(&redis_url(), config).await {
        Ok(store) => store,
        Err(err) => return unavailable("redis", format!("{}: {err}", redis_url())),
    };
    if let Err(err) = store.ping().await {
        return unavailable("redis", format!("{}: {err}", redis_url()));
    }
    let keys = store.clone();
    Some(Hooked::new(
        store,
        Teardown::new("the test's keys", move || async move {
            keys.purge().await.map(drop)
        }),
    ))
}

async fn open(config: RedisConfig) -> Option<DynStockStore> {
    Some(Arc::new(connect(config).await?))
}

mod coalesced {
    async fn setup() -> Option<nexussale_core::DynStockStore> {
        super::open(nexussale_redis::RedisConfig::default()).await
    }
    nexussale_core::stock_store_tests!(setup);
}

mod uncoalesced {
    async fn setup() -> Option<nexussale_core::DynStockStore> {
        super::open(nexussale_redis::RedisConfig::default().coalesce(false)).await
    }
    nexussale_core::stock_store_tests!(setup);
}

mod sharded {
    async fn setup() -> Option<nexussale_core::DynStockStore> {
        super::open(nexussale_redis::RedisConfig::default().stock_shards(4)).await
    }
    nexussale_core::stock_store_tests!(setup, remaining = Bounded);
}

/// A waiting-room store under a prefix of its own, whose rooms are deleted when the test drops
/// it.
async fn rooms() -> Option<nexussale_core::DynWaitingRoomStore> {
    let store = connect(RedisConfig::default()).await?;
    let rooms = store.inner().waiting_rooms();
    let purge = rooms.clone();
    Some(Arc::new(Hooked::new(
        rooms,
        Teardown::new("the test's rooms", move || async move {
            purge.purge().await.map(drop)
        }),
    )))
}

mod waiting_room {
    nexussale_core::waiting_room_store_tests!(super::rooms);
}

/// A waiting-room drop through the whole engine, stock and rooms in Redis (two stock shards).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_room_flow_over_redis() {
    let Some(store) = connect(RedisConfig::default().stock_shards(2)).await else {
        return;
    };
    let rooms = store.inner().waiting_rooms();
    let purge = rooms.clone();
    nexussale_core::testkit::engine::waiting_room_flow(
        Arc::new(store),
        Arc::new(nexussale_core::memory::MemoryOrderQueue::new()),
        Arc::new(nexussale_core::memory::MemoryOrderRepository::new()),
        Arc::new(rooms),
    )
    .await;
    purge.purge().await.unwrap();
}

/// The sweeper asks Redis about due sales only, whatever the number of idle ones (two shards).
#[tokio::test]
async fn sweeper_visits_only_due_sales_over_redis() {
    let Some(store) = connect(RedisConfig::default().stock_shards(2)).await else {
        return;
    };
    nexussale_core::testkit::engine::sweeper_visits_only_due_sales(Arc::new(store)).await;
}

/// The waiting-room admission lists the sales on Redis only when their count changed.
#[tokio::test]
async fn admission_lists_sales_only_when_they_change_over_redis() {
    let Some(store) = connect(RedisConfig::default()).await else {
        return;
    };
    nexussale_core::testkit::engine::admission_lists_sales_only_when_they_change(Arc::new(store))
        .await;
}

/// Settled reservations and their keys leave Redis after the retention, on one shard and on
/// two (each forgets its share of a call's limit).
#[tokio::test]
async fn settled_reservations_are_forgotten_after_their_retention() {
    let retention = std::time::Duration::from_secs(120);
    for shards in [1, 2] {
        let config = RedisConfig::default()
            .stock_shards(shards)
            .settled_retention(retention);
        let Some(store) = connect(config).await else {
            return;
        };
        nexussale_core::testkit::stock::settled_reservations_are_forgotten_after_their_retention(
            Arc::new(store),
            retention,
        )
        .await;
    }
}

/// The whole engine (in-memory queue and repository) over the Redis stock store, sharded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purchase_flow_over_redis() {
    let Some(store) = connect(RedisConfig::default().stock_shards(2)).await else {
        return;
    };
    nexussale_core::testkit::engine::purchase_flow(
        Arc::new(store),
        Arc::new(nexussale_core::memory::MemoryOrderQueue::new()),
        Arc::new(nexussale_core::memory::MemoryOrderRepository::new()),
    )
    .await;
}

/// 5,000 buyers race for 1,000 units spread over 4 shards: exactly 1,000 win, every shard ends
/// empty, and no buyer is told "sold out" while units remain anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sharded_sale_sells_exactly_its_stock() {
    let Some(store) = connect(RedisConfig::default().stock_shards(4)).await else {
        return;
    };
    let store = Arc::new(store);
    let sale = Sale::new(unique_sku(), 1_000);
    assert!(store.create_sale(&sale).await.unwrap());
    let outcomes = join_all((0..5_000).map(|i| {
        let (store, request) = (
            Arc::clone(&store),
            reserve_request(&sale.sku, &format!("buyer-{i}")),
        );
        tokio::spawn(async move { store.reserve(&request).await.unwrap() })
    }))
    .await;
    let mut reserved = 0;
    for outcome in outcomes {
        match outcome.unwrap() {
            ReserveOutcome::Reserved { .. } => reserved += 1,
            ReserveOutcome::SoldOut { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(reserved, 1_000);
    assert_eq!(
        store.snapshot(&sale.sku).await.unwrap(),
        StockSnapshot {
            stock: 1_000,
            available: 0,
            reserved: 1_000,
            sold: 0
        }
    );
}

/// A sale of one unit per shard drained from a single home shard: every unit is found by
/// moving it, and the one buyer past the stock is the only one refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_sale_moves_units_to_an_empty_home_shard() {
    let Some(store) = connect(RedisConfig::default().stock_shards(4)).await else {
        return;
    };
    let sale = Sale::new(unique_sku(), 4).with_per_user_limit(10);
    store.create_sale(&sale).await.unwrap();
    // One user, so one home shard; its own unit goes first, the rest come from the others.
    // With the home shard empty after each, `remaining` counts the units left elsewhere.
    for expected_remaining in [3, 2, 1, 0] {
        match store
            .reserve(&reserve_request(&sale.sku, "solo"))
            .await
            .unwrap()
        {
            ReserveOutcome::Reserved { remaining, .. } => {
                assert_eq!(remaining, expected_remaining)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        store
            .reserve(&reserve_request(&sale.sku, "solo"))
            .await
            .unwrap(),
        ReserveOutcome::SoldOut { available: 0 }
    );
    let snapshot = store.snapshot(&sale.sku).await.unwrap();
    assert_eq!((snapshot.available, snapshot.reserved), (0, 4));
}

/// Another process with the same prefix sees the sale, its shard count and its reservations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_shares_sales_and_shards() {
    let Some(first) = connect(RedisConfig::default().stock_shards(3)).await else {
        return;
    };
    // Same prefix, a different default shard count: the sale keeps the one it was made with.
    let second =
        RedisStockStore::connect_with(&redis_url(), first.inner().config().clone().stock_shards(1))
            .await
            .unwrap();
    let sale = Sale::new(unique_sku(), 9).with_per_user_limit(9);
    first.create_sale(&sale).await.unwrap();
    assert!(!second.create_sale(&sale).await.unwrap());
    assert_eq!(second.sales().await.unwrap(), std::slice::from_ref(&sale));
    let mut made = Vec::new();
    for i in 0..9 {
        match second
            .reserve(&reserve_request(&sale.sku, &format!("u{i}")))
            .await
            .unwrap()
        {
            ReserveOutcome::Reserved { reservation, .. } => made.push(reservation),
            other => panic!("unexpected {other:?}"),
        }
    }
    for reservation in &made {
        assert_eq!(
            first
                .reservation(&sale.sku, reservation.order_id)
                .await
                .unwrap()
                .as_ref(),
            Some(reservation)
        );
    }
    assert_eq!(first.snapshot(&sale.sku).await.unwrap().available, 0);
}

/// A flushed Redis answers "unknown sale" (so the engine reconciles) rather than stale counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_sale_is_unknown_not_stale() {
    let Some(store) = connect(RedisConfig::default()).await else {
        return;
    };
    let sale = Sale::new(unique_sku(), 3);
    store.create_sale(&sale).await.unwrap();
    let mut keyed = reserve_request(&sale.sku, "ann");
    keyed.idempotency_key = Some("k".parse().unwrap());
    store.reserve(&keyed).await.unwrap();
    // Lose the sale as a restart without persistence would, behind the store's back (which
    // still has the definition cached).
    let client = nexussale_redis::redis::Client::open(redis_url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let base = format!("{}:{{{}:0}}", store.inner().config().prefix_str(), sale.sku);
    let buckets: Vec<String> = nexussale_redis::redis::cmd("ZRANGE")
        .arg(format!("{base}:buckets"))
        .arg(0)
        .arg(-1)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(buckets.len(), 1, "one reservation, one bucket");
    let mut keys = ["stock", "held", "keys", "buckets"]
        .map(|k| format!("{base}:{k}"))
        .to_vec();
    keys.push(format!("{base}:r:{}", buckets[0]));
    let deleted: i64 = nexussale_redis::redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(deleted, 5, "the layout the crate docs describe");
    let refused = store.reserve(&reserve_request(&sale.sku, "bob")).await;
    assert!(
        matches!(refused, Err(nexussale_core::Error::UnknownSale(_))),
        "{refused:?}"
    );
    for lost in [
        store.snapshot(&sale.sku).await.map(drop),
        store
            .confirm(&sale.sku, OrderId::new(), Utc::now())
            .await
            .map(drop),
        store
            .release(&sale.sku, OrderId::new(), ReleaseReason::Cancelled)
            .await
            .map(drop),
        store.reservation(&sale.sku, OrderId::new()).await.map(drop),
    ] {
        assert!(
            matches!(lost, Err(nexussale_core::Error::UnknownSale(_))),
            "{lost:?}"
        );
    }
}

/// Two front ends (two engines, each with its own connections) serving one sale through one
/// Redis: a buyer joins at one, the other admits, the pass the first shows buys at the second
/// (one signing key, drawn once and shared through Redis), once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_ends_share_one_line_and_one_pass_key() {
    use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository};
    use nexussale_core::{
        FlashSale, PassRefusal, PurchaseOutcome, PurchaseRequest, TicketState, UserId, WaitingRoom,
    };
    let Some(first) = connect(RedisConfig::default()).await else {
        return;
    };
    let prefix = first.inner().config().prefix_str().to_owned();
    let Ok(second) =
        RedisStockStore::connect_with(&redis_url(), RedisConfig::default().prefix(prefix)).await
    else {
        panic!("a second connection to the same redis");
    };
    let engine = |stock: RedisStockStore| {
        let rooms = stock.waiting_rooms();
        FlashSale::builder(
            Arc::new(stock),
            Arc::new(MemoryOrderQueue::new()),
            Arc::new(MemoryOrderRepository::new()),
        )
        .waiting_rooms(Arc::new(rooms))
        .build()
    };
    let rooms = first.inner().waiting_rooms();
    let (a, b) = (engine(first.inner().clone()), engine(second));
    let sale = Sale::new(unique_sku(), 1).with_waiting_room(WaitingRoom::default());
    a.create_sale(sale.clone()).await.unwrap();
    let ann = UserId::new("ann").unwrap();
    let ticket = a.join(&sale.sku, &ann, None).await.unwrap();
    assert_eq!(
        b.join(&sale.sku, &ann, None).await.unwrap().ticket,
        ticket.ticket
    );
    assert_eq!(b.admit().await.unwrap().admitted, 1);
    let view = a.ticket(&sale.sku, &ticket.ticket).await.unwrap().unwrap();
    assert_eq!(view.state, TicketState::Admitted);
    let pass = view.pass.unwrap();
    let buy = PurchaseRequest::new(sale.sku.clone(), ann.clone()).with_pass(pass.clone());
    assert!(matches!(
        b.purchase(buy.clone()).await.unwrap(),
        PurchaseOutcome::Accepted(_)
    ));
    assert_eq!(
        a.purchase(buy).await.unwrap(),
        PurchaseOutcome::NotAdmitted(PassRefusal::Used)
    );
    rooms.purge().await.unwrap();
    drop(first);
}

/// Purchases spread over many sales go to Redis in a few script calls, not one each (a Redis of
/// the test's own counts them).
#[tokio::test]
async fn reservations_of_many_sales_go_out_together() {
    let redis = match nexussale_redis::testkit::LocalRedis::start() {
        Ok(redis) => redis,
        Err(reason) => return unavailable("redis-server", reason).unwrap_or(()),
    };
    let store = RedisStockStore::connect_with(&redis.url(), RedisConfig::default())
        .await
        .unwrap();
    let sales: Vec<Sale> = (0..200).map(|_| Sale::new(unique_sku(), 5)).collect();
    for sale in &sales {
        assert!(store.create_sale(sale).await.unwrap());
    }
    let scripts = || redis.calls("evalsha").unwrap() + redis.calls("eval").unwrap();
    let before = scripts();
    let buyers = sales.iter().map(|sale| {
        let request = reserve_request(&sale.sku, "u1");
        let store = &store;
        async move { store.reserve(&request).await }
    });
    for reserved in join_all(buyers).await {
        assert!(
            matches!(reserved, Ok(ReserveOutcome::Reserved { .. })),
            "{reserved:?}"
        );
    }
    let calls = scripts() - before;
    eprintln!("{calls} script calls for 200 purchases over 200 sales");
    // One call per purchase when each sale had a lane of its own; now a few batches.
    assert!(
        calls <= 10,
        "{calls} script calls for 200 purchases over 200 sales"
    );
    for sale in &sales {
        let snapshot = store.snapshot(&sale.sku).await.unwrap();
        assert_eq!((snapshot.available, snapshot.reserved), (4, 1));
    }
}

/// The coalescing lane ends once its sales are idle, and the next reservation opens a new one:
/// memory follows the sales being bought from, not every sale ever bought from (a Cluster has
/// a lane per stock shard).
#[tokio::test]
async fn idle_coalescing_lanes_end() {
    let idle = std::time::Duration::from_millis(200);
    let Some(store) = connect(RedisConfig::default().coalesce_lane_idle(idle)).await else {
        return;
    };
    let mut sales = Vec::new();
    for _ in 0..20 {
        let sale = Sale::new(unique_sku(), 5);
        assert!(store.create_sale(&sale).await.unwrap());
        let reserved = store.reserve(&reserve_request(&sale.sku, "u1")).await;
        assert!(
            matches!(reserved, Ok(ReserveOutcome::Reserved { .. })),
            "{reserved:?}"
        );
        sales.push(sale);
    }
    // One Redis: every sale shares one lane.
    assert_eq!(store.inner().coalescing_lanes(), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.inner().coalescing_lanes() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} lanes still open after their sales went idle",
            store.inner().coalescing_lanes()
        );
        tokio::time::sleep(idle).await;
    }
    // Reservations after the lanes ended, and around the next ends, open new lanes and land.
    for round in 0..5 {
        let buyers = (0..20).map(|n| {
            let request = reserve_request(&sales[n % 4].sku, &format!("r{round}-{n}"));
            let store = &store;
            async move { store.reserve(&request).await }
        });
        for reserved in join_all(buyers).await {
            assert!(
                matches!(
                    reserved,
                    Ok(ReserveOutcome::Reserved { .. } | ReserveOutcome::SoldOut { .. })
                ),
                "{reserved:?}"
            );
        }
        tokio::time::sleep(idle - std::time::Duration::from_millis(5)).await;
    }
    for sale in &sales[..4] {
        let snapshot = store.snapshot(&sale.sku).await.unwrap();
        assert_eq!(snapshot.available + snapshot.reserved, 5, "{snapshot:?}");
        assert_eq!(snapshot.reserved, 5, "every unit of a busy sale sold");
    }
}
