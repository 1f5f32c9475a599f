//! Redis servers a test starts for itself (feature `testkit`): a Redis Cluster of its own on free
//! ports, stopped and cleaned up when dropped, also when the test fails. Needs `redis-server`
//! and `redis-cli` on the `PATH`. Stable enough for other crates' tests; not a production API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started node may take to answer, or a cluster to agree.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A Redis Cluster of primaries without replicas, in a temporary directory.
///
/// ```no_run
/// # fn demo() -> Result<(), String> {
/// let cluster = nexussale_redis::testkit::RedisCluster::start(3)?;
/// let seeds = cluster.urls().join(","); // what `--redis-url` takes with `--redis-cluster`
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    dir: PathBuf,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_port() -> Result<u16, String> {
    for _ in 0..1000 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|err| format!("no free port: {err}"))?
            .port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port pair for a cluster node".into())
}

/// `redis-cli -p PORT ARGS…`'s output.
pub fn cli(port: u16, args: &[&str]) -> std::io::Result<String> {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    while !ready() {
        if Instant::now() > deadline {
            return Err(format!("{what} within {READY_WITHIN:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

impl RedisCluster {
    /// Starts `primaries` nodes (3 or more, as `redis-cli --cluster create` wants), joins them
    /// and waits until every node reports `cluster_state:ok`. The error says what failed (no
    /// `redis-server`, a node that did not answer), for the test to skip or fail on.
    pub fn start(primaries: usize) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "nexussale-cluster-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos())
        ));
        std::fs::create_dir_all(&dir).map_err(|err| err.to_string())?;
        let mut cluster = Self {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        for _ in 0..primaries {
            let port = free_port()?;
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
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(cluster.addresses())
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

    /// The nodes' ports.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// `redis://127.0.0.1:PORT` of each node.
    pub fn urls(&self) -> Vec<String> {
        self.addresses()
            .into_iter()
            .map(|address| format!("redis://{address}"))
            .collect()
    }

    fn addresses(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect()
    }
}
