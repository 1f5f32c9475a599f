//! A sale whose state in Redis went backwards — here its keys put back as they were earlier
//! (`DUMP` … `RESTORE REPLACE`), as a primary restarted from an older snapshot would hold them —
//! is noticed by the sequence the scripts advance, refused in every process until it is
//! rebuilt from the orders, and rebuilt once by the engines that share it. On the real Redis
//! (`NEXUSSALE_REDIS_URL`); each test under a prefix of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nexussale_core::layers::{Answer, Call, Hook, Hooked, Method};
use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository};
use nexussale_core::testkit::fixtures::{now, reserve_request};
use nexussale_core::testkit::services::{redis_url, unavailable};
use nexussale_core::testkit::{unique_name, unique_sku};
use nexussale_core::{
    CancellationToken, EngineConfig, Error, FlashSale, OrderQuery, OrderRepository,
    PurchaseOutcome, PurchaseRequest, ReserveOutcome, Sale, Sku, StockStore, UserId,
};
use nexussale_redis::{RedisConfig, RedisStockStore};
use redis::AsyncCommands;

async fn connect(prefix: &str, shards: usize) -> Option<RedisStockStore> {
    let config = RedisConfig::default().prefix(prefix).stock_shards(shards);
    match RedisStockStore::connect_with(&redis_url(), config).await {
        Ok(store) if store.ping().await.is_ok() => Some(store),
        Ok(_) => unavailable("redis", redis_url()),
        Err(err) => unavailable("redis", format!("{}: {err}", redis_url())),
    }
}

async fn raw() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// Every key of the sale's shards (the patterns that find them, and each as `DUMP` has it).
struct Dumped {
    patterns: Vec<String>,
    keys: Vec<(String, Vec<u8>)>,
}

async fn dump(prefix: &str, sku: &Sku, shards: usize) -> Dumped {
    let mut conn = raw().await;
    let patterns: Vec<String> = (0..shards)
        .map(|shard| format!("{prefix}:{{{sku}:{shard}}}:*"))
        .collect();
    let mut keys = Vec::new();
    for pattern in &patterns {
        let names: Vec<String> = conn.keys(pattern).await.unwrap();
        for key in names {
            let value: Vec<u8> = redis::cmd("DUMP")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.push((key, value));
        }
    }
    Dumped { patterns, keys }
}

/// Puts the keys back as `dump` found them (those made since go): the sale's state goes back
/// in time.
async fn put_back(dumped: &Dumped) {
    let mut conn = raw().await;
    for pattern in &dumped.patterns {
        let now: Vec<String> = conn.keys(pattern).await.unwrap();
        if !now.is_empty() {
            let _: () = conn.del(now).await.unwrap();
        }
    }
    for (key, value) in &dumped.keys {
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(value)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

async fn purge(prefix: &str) {
    let mut conn = raw().await;
    let keys: Vec<String> = conn.keys(format!("{prefix}:*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = conn.del(keys).await.unwrap();
    }
}

/// The state of a sale over two stock shards goes back; the store that saw it further along
/// refuses the sale (either shard), and so does a store that never saw it (the mark is in
/// Redis), for reads of the counts too, until a restore from the orders; then both sell again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_whose_state_went_back_is_refused_until_restored() {
    let prefix = unique_name("regressed-");
    let Some(store) = connect(&prefix, 2).await else {
        return;
    };
    let sale = Sale::new(unique_sku(), 100);
    store.create_sale(&sale).await.unwrap();
    let mut kept = Vec::new();
    for user in ["ann", "bob"] {
        match store
            .reserve(&reserve_request(&sale.sku, user))
            .await
            .unwrap()
        {
            ReserveOutcome::Reserved { reservation, .. } => kept.push(reservation.to_order()),
            other => panic!("{other:?}"),
        }
    }
    let earlier = dump(&prefix, &sale.sku, 2).await;
    // Both shards move on (eight buyers land on both), then go back.
    for n in 0..8 {
        let outcome = store
            .reserve(&reserve_request(&sale.sku, &format!("later-{n}")))
            .await;
        assert!(matches!(outcome, Ok(ReserveOutcome::Reserved { .. })));
    }
    put_back(&earlier).await;

    let refused = store.reserve(&reserve_request(&sale.sku, "later-0")).await;
    assert!(
        matches!(&refused, Err(Error::StockRegressed(sku)) if *sku == sale.sku),
        "{refused:?}"
    );
    let other = connect(&prefix, 2).await.unwrap();
    for user in ["later-1", "later-2", "later-3", "later-4"] {
        let refused = other.reserve(&reserve_request(&sale.sku, user)).await;
        assert!(
            matches!(refused, Err(Error::StockRegressed(_))),
            "{refused:?}"
        );
    }
    assert!(matches!(
        other.snapshot(&sale.sku).await,
        Err(Error::StockRegressed(_))
    ));
    assert!(matches!(
        store.confirm(&sale.sku, kept[0].id, now()).await,
        Err(Error::StockRegressed(_))
    ));

    store.restore(&sale, &kept).await.unwrap();
    for (n, store) in [&store, &other].into_iter().enumerate() {
        let outcome = store
            .reserve(&reserve_request(&sale.sku, &format!("after-{n}")))
            .await;
        assert!(
            matches!(outcome, Ok(ReserveOutcome::Reserved { .. })),
            "{outcome:?}"
        );
    }
    assert_eq!(other.snapshot(&sale.sku).await.unwrap().reserved, 4);
    purge(&prefix).await;
}

/// Counts the restores that reached the store, and makes each take 300 ms on the way there:
/// a second engine that decided to restore while the first one's restore is on its way would
/// restore too, unless the rebuild lock holds it back.
#[derive(Debug, Default)]
struct Restores(AtomicU64);

impl Hook for Restores {
    fn delay(&self, call: Call) -> Option<Duration> {
        (call.method == Method::Restore).then_some(Duration::from_millis(300))
    }

    fn after(&self, call: Call, _: Instant, answer: Answer<'_>) -> Option<Error> {
        if call.method == Method::Restore && answer.error().is_none() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        None
    }
}

/// Two engines (two processes' worth: each its own store connection) share a sale in Redis and
/// one order queue and repository. The sale's state goes back, losing three reservations the
/// first engine accepted; that engine's next purchase notices (the sequence is below what it
/// saw). Then both engines refuse purchases (retryably) until one of them has rebuilt the sale —
/// exactly one restore — from the orders, the lost three included; then they sell the rest, and
/// not one unit more than the stock.
///
/// (A process notices only a regression below what it saw itself: had the second engine
/// written first, it would have advanced the sequence past the loss unnoticed. The replication
/// id, checked by every script, is what catches failovers and restarts.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_rebuild_a_regressed_sale_once_and_never_oversell() {
    let prefix = unique_name("rebuild-");
    let (Some(first), Some(second)) = (connect(&prefix, 1).await, connect(&prefix, 1).await) else {
        return;
    };
    let restores = Arc::new(Restores::default());
    let queue = Arc::new(MemoryOrderQueue::new());
    let repository = Arc::new(MemoryOrderRepository::new());
    let mut settings = EngineConfig::default();
    settings.store_rebuild_settle = Duration::from_millis(100);
    let engine = |store: RedisStockStore| {
        FlashSale::builder(
            Arc::new(Hooked::new(store, Arc::clone(&restores))),
            queue.clone(),
            repository.clone(),
        )
        .config(settings.clone())
        .build()
    };
    let engines = [engine(first), engine(second)];
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn({
        let (engine, shutdown) = (engines[0].clone(), shutdown.clone());
        async move { engine.run_worker(shutdown).await }
    });

    let stock = 20;
    let sale = Sale::new(unique_sku(), stock);
    engines[0].create_sale(sale.clone()).await.unwrap();
    let buy = |n: usize, user: String| {
        let engine = engines[n % 2].clone();
        let sku = sale.sku.clone();
        async move {
            engine
                .purchase(PurchaseRequest::new(sku, UserId::new(user).unwrap()))
                .await
        }
    };
    let mut accepted = 0;
    for n in 0..10 {
        let outcome = buy(n, format!("early-{n}")).await.unwrap();
        assert!(
            matches!(outcome, PurchaseOutcome::Accepted(_)),
            "{outcome:?}"
        );
        accepted += 1;
    }
    let earlier = dump(&prefix, &sale.sku, 1).await;
    for n in 0..3 {
        let outcome = buy(0, format!("lost-{n}")).await.unwrap();
        assert!(
            matches!(outcome, PurchaseOutcome::Accepted(_)),
            "{outcome:?}"
        );
        accepted += 1;
    }
    put_back(&earlier).await;

    // Both engines meet the regression; purchases are refused, retryably, until rebuilt.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut refused = 0;
    for n in 0.. {
        match buy(n, format!("buyer-{n}")).await {
            Ok(PurchaseOutcome::Accepted(_)) => accepted += 1,
            Ok(PurchaseOutcome::SoldOut) => break,
            Ok(other) => panic!("{other:?}"),
            Err(err) => {
                assert!(err.is_retryable(), "{err}");
                refused += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert!(Instant::now() < deadline, "not sold out within 20 s");
    }
    assert!(
        refused >= 2,
        "the regression went unnoticed ({refused} refused)"
    );
    assert_eq!(
        accepted, stock,
        "accepted purchases against a stock of {stock}"
    );
    assert_eq!(restores.0.load(Ordering::Relaxed), 1, "restores");

    // Every accepted order is recorded once; the store agrees with the orders.
    while !queue.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let orders = repository
        .list(&OrderQuery {
            sku: Some(sale.sku.clone()),
            ..OrderQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(orders.orders.len() as u64, stock);
    let report = engines[1].reconcile(&sale.sku, false).await.unwrap();
    assert!(report.in_sync(), "{report:?}");
    shutdown.cancel();
    worker.await.unwrap();
    purge(&prefix).await;
}

/// A shard an earlier version wrote (reservations in one `res` hash, `expiry` and `settled`
/// sorted sets; no `layout` in its stock hash) is refused as regressed, so the engine rebuilds
/// it from the orders; the rebuild writes the present layout and removes the old keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_in_an_earlier_layout_is_rebuilt_not_misread() {
    let prefix = unique_name("layout-");
    let Some(store) = connect(&prefix, 1).await else {
        return;
    };
    let sale = Sale::new(unique_sku(), 5);
    store.create_sale(&sale).await.unwrap();
    let kept = match store
        .reserve(&reserve_request(&sale.sku, "ann"))
        .await
        .unwrap()
    {
        ReserveOutcome::Reserved { reservation, .. } => reservation.to_order(),
        other => panic!("{other:?}"),
    };
    // As the earlier version left a shard: no `layout`, its reservation in the old keys.
    let base = format!("{prefix}:{{{}:0}}", sale.sku);
    let mut conn = raw().await;
    let _: () = conn.hdel(format!("{base}:stock"), "layout").await.unwrap();
    let old = ["res", "expiry", "settled"].map(|name| format!("{base}:{name}"));
    let _: () = conn
        .hset(
            &old[0],
            kept.id.to_string(),
            r#"r{"u":"ann","q":1,"c":0,"e":0}"#,
        )
        .await
        .unwrap();
    let _: () = conn.zadd(&old[1], kept.id.to_string(), 0).await.unwrap();
    let _: () = conn.zadd(&old[2], "gone", 0).await.unwrap();

    let refused = store.reserve(&reserve_request(&sale.sku, "bob")).await;
    assert!(
        matches!(&refused, Err(Error::StockRegressed(sku)) if *sku == sale.sku),
        "{refused:?}"
    );
    store
        .restore(&sale, std::slice::from_ref(&kept))
        .await
        .unwrap();
    let left: i64 = conn.exists(&old[..]).await.unwrap();
    assert_eq!(left, 0, "the rebuild removes the earlier layout's keys");
    let layout: String = conn.hget(format!("{base}:stock"), "layout").await.unwrap();
    assert_eq!(layout, "2");
    let back = store
        .reservation(&sale.sku, kept.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (back.user.as_str(), back.created_at),
        ("ann", kept.created_at)
    );
    let outcome = store.reserve(&reserve_request(&sale.sku, "bob")).await;
    assert!(
        matches!(outcome, Ok(ReserveOutcome::Reserved { .. })),
        "{outcome:?}"
    );
    assert_eq!(store.snapshot(&sale.sku).await.unwrap().reserved, 2);
    purge(&prefix).await;
}
