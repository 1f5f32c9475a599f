//! The conformance kit on a real Redis Cluster: three `redis-server` nodes started by the test on
//! free ports (`testkit::RedisCluster`), stopped when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use nexussale_core::testkit::fixtures::reserve_request;
use nexussale_core::testkit::services::unavailable;
use nexussale_core::testkit::{self, stock::Remaining};
use nexussale_core::{DynStockStore, ReserveOutcome, Sale, StockStore};
use nexussale_redis::testkit::RedisCluster;
use nexussale_redis::{RedisConfig, RedisStockStore};

/// The cluster a test started, and its nodes' URLs; `None` (skip) without `redis-server`.
fn started(cluster: Result<RedisCluster, String>) -> Option<(RedisCluster, Vec<String>)> {
    match cluster {
        Ok(cluster) => {
            let urls = cluster.urls();
            Some((cluster, urls))
        }
        Err(reason) => unavailable("redis cluster (redis-server, redis-cli)", reason),
    }
}

/// Every stock case of the kit, on a cluster, with sales sharded over the three nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kit_passes_on_redis_cluster() {
    let Some((cluster, urls)) = started(RedisCluster::start(3)) else {
        return;
    };
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    let store: DynStockStore = Arc::new(
        // A loaded CI machine with a debug build can take seconds per call when 2,000 race on
        // three local nodes: the timeout guards production, not this.
        RedisStockStore::connect_cluster(
            &nodes,
            RedisConfig::default()
                .stock_shards(6)
                .command_timeout(std::time::Duration::from_secs(15)),
        )
        .await
        .unwrap(),
    );
    testkit::stock::run_all(Arc::clone(&store), Remaining::Bounded).await;

    // The six shards of one sale really are spread over the nodes.
    let sale = Sale::new(testkit::unique_sku(), 60);
    store.create_sale(&sale).await.unwrap();
    let mut nodes_with_keys = 0;
    for &port in cluster.ports() {
        let keys = cluster
            .cli(port, &["--scan", "--pattern", "nexussale:*:stock"])
            .unwrap();
        nodes_with_keys += usize::from(keys.contains(sale.sku.as_str()));
    }
    assert!(
        nodes_with_keys >= 2,
        "the shards of one sale sit on {nodes_with_keys} node(s)"
    );
}

/// `replica_acks(1)` on a cluster of three primaries with a replica each: reservations are
/// answered once the replica of the primary holding the sale has them; with that replica
/// stopped (SIGSTOP) they fail as retryable within the command timeout, and their reservations
/// are released; resumed, the sale sells again. The books balance throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_acknowledgement_waits_for_the_replica_of_the_sales_node() {
    let Some((cluster, urls)) = started(RedisCluster::start_with_replicas(3)) else {
        return;
    };
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    let config = RedisConfig::default()
        .prefix(testkit::unique_name("acks-"))
        .replica_acks(1)
        // WAIT may take half of it: ample for a replica on a loaded machine.
        .command_timeout(Duration::from_secs(4));
    let store = RedisStockStore::connect_cluster(&nodes, config.clone())
        .await
        .unwrap();
    let sale = Sale::new(testkit::unique_sku(), 10);
    store.create_sale(&sale).await.unwrap();
    let reserve = |user: &'static str| {
        let store = store.clone();
        let request = reserve_request(&sale.sku, user);
        async move { store.reserve(&request).await }
    };
    let before = reserve("before").await;
    assert!(
        matches!(before, Ok(ReserveOutcome::Reserved { .. })),
        "{before:?}"
    );

    let stock_key = format!("{}:{{{}:0}}:stock", config.prefix_str(), sale.sku);
    let replica = cluster.replica_for(&stock_key).unwrap();
    cluster.pause(replica, true).unwrap();
    let started = Instant::now();
    let refused = reserve("paused").await;
    let waited = started.elapsed();
    cluster.pause(replica, false).unwrap();
    let err = refused.expect_err("answered without the replica");
    assert!(err.is_retryable(), "{err}");
    assert!(waited < Duration::from_secs(6), "{waited:?}");

    assert!(matches!(
        reserve("after").await,
        Ok(ReserveOutcome::Reserved { .. })
    ));
    let snapshot = store.snapshot(&sale.sku).await.unwrap();
    assert_eq!(
        (snapshot.available, snapshot.reserved),
        (8, 2),
        "{snapshot:?}"
    );
}
