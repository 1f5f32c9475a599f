//! The store on the master Redis Sentinel names: a primary, a replica and three sentinels started
//! by the test on free ports (`testkit::RedisSentinel`), stopped when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use nexussale_core::testkit::fixtures::reserve_request;
use nexussale_core::testkit::services::unavailable;
use nexussale_core::testkit::{self, stock::Remaining};
use nexussale_core::{DynStockStore, Error, ReleaseReason, ReserveOutcome, Sale, Sku, StockStore};
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

/// Reserves one unit for `user`, which must succeed.
async fn reserved(store: &RedisStockStore, sku: &Sku, user: &str) {
    let outcome = store.reserve(&reserve_request(sku, user)).await.unwrap();
    assert!(
        matches!(outcome, ReserveOutcome::Reserved { .. }),
        "{user}: {outcome:?}"
    );
}

/// Every stock case of the kit passes on the master the sentinels name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kit_passes_on_the_sentinels_master() {
    let Some(redis) = start("kit") else { return };
    let store: DynStockStore = Arc::new(connect(&redis).await);
    testkit::stock::run_all(store, Remaining::Bounded).await;
}

/// The primary killed: reservations fail as retryable (never as permanent, never hanging) until
/// the sentinels promote the replica; then the same store, which finds the new master by
/// itself, sees that the sale was last written by another primary: the sale is regressed
/// (its state may lack the dead primary's last writes) for reservations, snapshots and
/// releases, in every process, until it is restored from the orders; then it sells again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_the_master_through_a_failover_and_holds_the_sale_until_rebuilt() {
    let Some(mut redis) = start("failover") else {
        return;
    };
    let config = RedisConfig::default().prefix(testkit::unique_name("failover-"));
    let store = connect_with(&redis, config.clone()).await;
    let sale = Sale::new(testkit::unique_sku(), 100);
    store.create_sale(&sale).await.unwrap();
    let first = reserve_request(&sale.sku, "before");
    let before = store.reserve(&first).await.unwrap();
    let ReserveOutcome::Reserved { reservation, .. } = before else {
        panic!("{before:?}")
    };
    let old = redis.primary_port().unwrap();
    assert_eq!(redis.cli(old, &["WAIT", "1", "5000"]).trim(), "1");

    let old = redis.kill_primary().unwrap();
    let failed = store
        .reserve(&reserve_request(&sale.sku, "during"))
        .await
        .unwrap_err();
    assert!(failed.is_retryable(), "{failed}");

    let new = redis.wait_for_failover(old).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let regressed = loop {
        match store.reserve(&reserve_request(&sale.sku, "after")).await {
            Ok(outcome) => panic!("sold on the promoted replica before a rebuild: {outcome:?}"),
            Err(Error::StockRegressed(sku)) => break sku,
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
    assert_eq!(regressed, sale.sku);
    // Another process, which never saw the old primary, is refused too: the mark is in Redis.
    let other = connect_with(&redis, config).await;
    assert!(matches!(
        other.snapshot(&sale.sku).await,
        Err(Error::StockRegressed(_))
    ));
    assert!(matches!(
        other
            .release(&sale.sku, reservation.order_id, ReleaseReason::Cancelled)
            .await,
        Err(Error::StockRegressed(_))
    ));

    let order = reservation.to_order();
    store.restore(&sale, &[order]).await.unwrap();
    reserved(&store, &sale.sku, "after").await;
    let snapshot = other.snapshot(&sale.sku).await.unwrap();
    assert_eq!(snapshot.reserved, 2, "{snapshot:?}");
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
    let first = acked
        .reserve(&reserve_request(&sale.sku, "first"))
        .await
        .unwrap();
    let ReserveOutcome::Reserved { reservation, .. } = first else {
        panic!("{first:?}");
    };

    redis.pause_replica().unwrap();
    let started = Instant::now();
    let refused = acked
        .reserve(&reserve_request(&sale.sku, "paused"))
        .await
        .unwrap_err();
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
    reserved(&unacked, &sale.sku, "unacked").await;

    redis.resume_replica().unwrap();
    reserved(&acked, &sale.sku, "after").await;
}
