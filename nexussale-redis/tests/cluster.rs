//! The conformance kit on a real Redis Cluster: three `redis-server` nodes started by the test on
//! free ports (`testkit::RedisCluster`), stopped when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::Arc;

use nexussale_core::testkit::services::unavailable;
use nexussale_core::testkit::{self, stock::Remaining};
use nexussale_core::{DynStockStore, Sale, StockStore};
use nexussale_redis::testkit::RedisCluster;
use nexussale_redis::{RedisConfig, RedisStockStore};

/// Every stock case of the kit, on a cluster, with sales sharded over the three nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kit_passes_on_redis_cluster() {
    let cluster = match RedisCluster::start(3) {
        Ok(cluster) => cluster,
        Err(reason) => {
            unavailable::<()>("redis cluster (redis-server, redis-cli)", reason);
            return;
        }
    };
    let urls = cluster.urls();
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
