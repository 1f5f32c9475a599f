//! The conformance kit on a real Redis Cluster: three `redis-server` nodes started by the test on
//! free ports, joined with `redis-cli --cluster create`, stopped when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexussale_core::testkit::services::unavailable;
use nexussale_core::testkit::{self, stock::Remaining, unique_name};
use nexussale_core::{DynStockStore, Sale, StockStore};
use nexussale_redis::{RedisConfig, RedisStockStore};

/// Three primaries, no replicas, in a temporary directory.
struct Cluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that is free, with its cluster bus port (+10000) free too.
fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn cli(port: u16, args: &[&str]) -> std::io::Result<String> {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        if Instant::now() > deadline {
            return Err(format!("{what} within 20 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

impl Cluster {
    fn start() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(unique_name("nexussale-cluster-"));
        std::fs::create_dir_all(&dir).map_err(|err| err.to_string())?;
        let mut cluster = Self {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        for _ in 0..3 {
            let port = free_port();
            let node = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .arg("--dir")
                .arg(&cluster.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|err| format!("redis-server: {err}"))?;
            cluster.nodes.push(node);
            cluster.ports.push(port);
        }
        for &port in &cluster.ports {
            wait_for("a node answering PING", || {
                cli(port, &["PING"]).is_ok_and(|out| out.contains("PONG"))
            })?;
        }
        let addresses: Vec<String> = cluster
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("redis-cli --cluster create: {err}"))?;
        if !created.status.success() {
            return Err(String::from_utf8_lossy(&created.stdout).into_owned());
        }
        for &port in &cluster.ports {
            wait_for("the cluster to be ok", || {
                cli(port, &["CLUSTER", "INFO"]).is_ok_and(|out| out.contains("cluster_state:ok"))
            })?;
        }
        Ok(cluster)
    }

    fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }
}

/// Every stock case of the kit, on a cluster, with sales sharded over the three nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kit_passes_on_redis_cluster() {
    let cluster = match Cluster::start() {
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
    for &port in &cluster.ports {
        let keys = cli(port, &["--scan", "--pattern", "nexussale:*:stock"]).unwrap();
        nodes_with_keys += usize::from(keys.contains(sale.sku.as_str()));
    }
    assert!(
        nodes_with_keys >= 2,
        "the shards of one sale sit on {nodes_with_keys} node(s)"
    );
}
