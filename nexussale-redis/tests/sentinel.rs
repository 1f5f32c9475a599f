//! The store on the master Redis Sentinel names: a primary, a replica and three sentinels started
//! by the test on free ports (`testkit::RedisSentinel`), stopped when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use nexussale_core::testkit::fixtures::now;
use nexussale_core::testkit::services::unavailable;
use nexussale_core::testkit::{self, stock::Remaining};
use nexussale_core::{
    DynStockStore, OrderId, ReleaseReason, ReserveOutcome, ReserveRequest, Sale, StockStore, UserId,
};
use nexussale_redis::testkit::RedisSentinel;
use nexussale_redis::{RedisConfig, RedisStockStore};

fn start(master: &str) -> Option<RedisSentinel> {
    match RedisSentinel::start(master) {
        Ok(redis) => Some(redis),
        Err(reason) => unavailable("redis sentinel (redis-server, redis-cli)", reason),
    }
}

async fn connect(redis: &RedisSentinel) -> RedisStockStore {
    let prefix = testkit::unique_name("sentinel-");
    connect_with(redis, RedisConfig::default().prefix(prefix)).await
}

async fn connect_with(redis: &RedisSentinel, config: RedisConfig) -> RedisStockStore {
    let urls = redis.urls();
    let sentinels: Vec<&str> = urls.iter().map(String::as_str).collect();
    let config = config
        .command_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500));
    RedisStockStore::connect_sentinel(&sentinels, redis.master_name(), config)
        .await
        .unwrap()
}

fn request(sale: &Sale, user: &str) -> ReserveRequest {
    ReserveRequest {
        order_id: OrderId::new(),
        sku: sale.sku.clone(),
        user: UserId::new(user).unwrap(),
        quantity: 1,
        idempotency_key: None,
        remark: None,
        now: now(),
    }
}

/// Every stock case of the kit passes on the master the sentinels name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kit_passes_on_the_sentinels_master() {
    let Some(redis) = start("kit") else { return };
    let store: DynStockStore = Arc::new(connect(&redis).await);
    testkit::stock::run_all(store, Remaining::Bounded).await;
}

/// The primary killed: reservations fail as retryable (never as permanent, never hanging) until
/// the sentinels promote the replica, then succeed again on the same store, which finds the new
/// master by itself; the sale, replicated before the kill, is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_the_master_through_a_failover() {
    let Some(mut redis) = start("failover") else {
        return;
    };
    let store = connect(&redis).await;
    let sale = Sale::new(testkit::unique_sku(), 100);
    store.create_sale(&sale).await.unwrap();
    let before = store.reserve(&request(&sale, "before")).await.unwrap();
    assert!(
        matches!(before, ReserveOutcome::Reserved { .. }),
        "{before:?}"
    );
    // The replica has what the primary acknowledged (WAIT): what a failover may lose is
    // another test's business.
    let old = redis.primary_port().unwrap();
    assert_eq!(redis.cli(old, &["WAIT", "1", "5000"]).trim(), "1");

    let old = redis.kill_primary().unwrap();
    let failed = store.reserve(&request(&sale, "during")).await.unwrap_err();
    assert!(failed.is_retryable(), "{failed}");

    let new = redis.wait_for_failover(old).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        match store.reserve(&request(&sale, "after")).await {
            Ok(outcome) => break outcome,
            Err(err) => {
                assert!(err.is_retryable(), "{err}");
                assert!(
                    Instant::now() < deadline,
                    "the store still fails 10 s after the sentinels named {new}: {err}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(
        matches!(after, ReserveOutcome::Reserved { .. }),
        "{after:?}"
    );
    let snapshot = store.snapshot(&sale.sku).await.unwrap();
    assert_eq!(snapshot.reserved, 2, "{snapshot:?}");
    // What the store wrote after the failover is on the new master.
    assert!(!redis.cli(new, &["DBSIZE"]).trim().starts_with('0'));
}

/// With `replica_acks(1)` a write is answered only once the replica has it. The replica stopped
/// (SIGSTOP): reservations and releases fail as retryable within the command timeout (never a
/// hang), while a store without acknowledgement goes on reserving; the replica resumed, they
/// succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_the_replica_when_asked_to() {
    let Some(redis) = start("acks") else { return };
    let config = RedisConfig::default().prefix(testkit::unique_name("acks-"));
    let acked = connect_with(&redis, config.clone().replica_acks(1)).await;
    let unacked = connect_with(&redis, config).await;
    let sale = Sale::new(testkit::unique_sku(), 100);
    acked.create_sale(&sale).await.unwrap();
    let first = acked.reserve(&request(&sale, "first")).await.unwrap();
    let ReserveOutcome::Reserved { reservation, .. } = first else {
        panic!("{first:?}");
    };

    redis.pause_replica().unwrap();
    let started = Instant::now();
    let refused = acked.reserve(&request(&sale, "paused")).await.unwrap_err();
    assert!(refused.is_retryable(), "{refused}");
    assert!(
        refused.to_string().contains("replicas acknowledged"),
        "{refused}"
    );
    // The refused reservation was released at once, not left to its expiry.
    let snapshot = acked.snapshot(&sale.sku).await.unwrap();
    assert_eq!(
        (snapshot.reserved, snapshot.available),
        (1, 99),
        "{snapshot:?}"
    );
    let release = acked
        .release(&sale.sku, reservation.order_id, ReleaseReason::Cancelled)
        .await
        .unwrap_err();
    assert!(release.is_retryable(), "{release}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let without = unacked.reserve(&request(&sale, "unacked")).await.unwrap();
    assert!(
        matches!(without, ReserveOutcome::Reserved { .. }),
        "{without:?}"
    );

    redis.resume_replica().unwrap();
    let after = acked.reserve(&request(&sale, "after")).await.unwrap();
    assert!(
        matches!(after, ReserveOutcome::Reserved { .. }),
        "{after:?}"
    );
}
