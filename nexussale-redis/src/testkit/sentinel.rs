//! [`RedisSentinel`]: a primary, a replica and three sentinels watching them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use nexussale_core::testkit::servers::{free_port, temp_dir, wait_for};

/// A primary, one replica of it and three sentinels (quorum 2) that fail over to the replica
/// about a second after the primary stops answering. Every process is stopped and the directory
/// removed when dropped.
///
/// ```no_run
/// # fn demo() -> Result<(), String> {
/// use nexussale_redis::testkit::RedisSentinel;
///
/// let mut redis = RedisSentinel::start("shop")?;
/// let sentinels = redis.urls().join(","); // what `--redis-url` takes with `--redis-sentinel shop`
/// let old = redis.kill_primary()?;
/// let new = redis.wait_for_failover(old)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisSentinel {
    master: String,
    /// The data nodes by port; `None` once killed.
    nodes: Vec<(u16, Option<Child>)>,
    sentinels: Vec<(u16, Child)>,
    dir: PathBuf,
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        let children = self
            .nodes
            .iter_mut()
            .filter_map(|(_, child)| child.as_mut())
            .chain(self.sentinels.iter_mut().map(|(_, child)| child));
        for child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(command: &mut Command, what: &str) -> Result<Child, String> {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("{what}: {err}"))
}

fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

impl RedisSentinel {
    /// Starts them and waits until the replica is in sync and every sentinel knows the replica
    /// and the two other sentinels (before that, a failover could not happen).
    pub fn start(master: &str) -> Result<Self, String> {
        let mut redis = Self {
            master: master.to_owned(),
            nodes: Vec::new(),
            sentinels: Vec::new(),
            dir: temp_dir("sentinel")?,
        };
        let primary = free_port()?;
        for replica_of in [None, Some(primary)] {
            let port = if replica_of.is_some() {
                free_port()?
            } else {
                primary
            };
            let child = redis.spawn_node(port, replica_of)?;
            redis.nodes.push((port, Some(child)));
        }
        let replica = redis.nodes[1].0;
        wait_for("the replica in sync with the primary", || {
            cli(replica, &["INFO", "replication"]).contains("master_link_status:up")
        })?;
        for _ in 0..3 {
            let port = free_port()?;
            let config = redis.dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &config,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {master} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {master} 1000\n\
                     sentinel failover-timeout {master} 3000\n\
                     sentinel parallel-syncs {master} 1\n",
                    dir = redis.dir.display(),
                ),
            )
            .map_err(|err| format!("{}: {err}", config.display()))?;
            let child = spawn(
                Command::new("redis-server").arg(&config).arg("--sentinel"),
                "redis-server --sentinel",
            )?;
            redis.sentinels.push((port, child));
        }
        for &(port, _) in &redis.sentinels {
            wait_for(
                "a sentinel that knows the replica and the other sentinels",
                || {
                    let state = cli(port, &["SENTINEL", "MASTER", master]);
                    let field = |name: &str| {
                        let mut lines = state.lines();
                        lines.find(|line| line.trim() == name)?;
                        lines.next().map(|value| value.trim().to_owned())
                    };
                    field("num-slaves").as_deref() == Some("1")
                        && field("num-other-sentinels").as_deref() == Some("2")
                },
            )?;
        }
        Ok(redis)
    }

    /// A data node on `port`, a replica of `replica_of` when given. Full syncs start at once
    /// (no diskless-sync delay), so a restarted node is a replica again within a second.
    fn spawn_node(&self, port: u16, replica_of: Option<u16>) -> Result<Child, String> {
        let mut node = Command::new("redis-server");
        node.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--dbfilename", &format!("dump-{port}.rdb")])
            .arg("--dir")
            .arg(&self.dir);
        if let Some(primary) = replica_of {
            node.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        spawn(&mut node, "redis-server")
    }

    /// Starts the node [`kill_primary`](Self::kill_primary) killed again, empty, as a replica
    /// of the master now, and waits until it is in sync and every sentinel counts it as a
    /// healthy replica (then the next failover can promote it); answers its port.
    pub fn restart_killed(&mut self) -> Result<u16, String> {
        let primary = self.primary_port()?;
        let port = self
            .nodes
            .iter()
            .find(|(_, child)| child.is_none())
            .map(|(port, _)| *port)
            .ok_or("no node was killed")?;
        let child = self.spawn_node(port, Some(primary))?;
        if let Some(node) = self.nodes.iter_mut().find(|(node, _)| *node == port) {
            node.1 = Some(child);
        }
        wait_for("the restarted node in sync with the master", || {
            cli(port, &["INFO", "replication"]).contains("master_link_status:up")
        })?;
        for &(sentinel, _) in &self.sentinels {
            wait_for(
                "a sentinel that counts the restarted node as a replica",
                || {
                    let replicas = cli(sentinel, &["SENTINEL", "REPLICAS", &self.master]);
                    let mut lines = replicas.lines().map(str::trim);
                    let mut healthy = false;
                    while let Some(line) = lines.next() {
                        if line == "flags" {
                            healthy = lines.next() == Some("slave");
                            if !healthy {
                                return false;
                            }
                        }
                    }
                    healthy
                },
            )?;
        }
        Ok(port)
    }

    /// The port of the running replica.
    pub fn replica_port(&self) -> Result<u16, String> {
        let primary = self.primary_port()?;
        self.nodes
            .iter()
            .find(|(port, child)| *port != primary && child.is_some())
            .map(|(port, _)| *port)
            .ok_or_else(|| "no replica is running".to_owned())
    }

    /// The master's name the sentinels watch.
    pub fn master_name(&self) -> &str {
        &self.master
    }

    /// `redis://127.0.0.1:PORT` of each sentinel.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|(port, _)| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// The port of the node the sentinels name as master now.
    pub fn primary_port(&self) -> Result<u16, String> {
        let &(sentinel, _) = self.sentinels.first().ok_or("no sentinel is running")?;
        let answer = cli(
            sentinel,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &self.master],
        );
        answer
            .lines()
            .nth(1)
            .and_then(|port| port.trim().parse().ok())
            .ok_or_else(|| format!("the sentinel named no master: {answer:?}"))
    }

    /// `redis-cli -p PORT ARGS…`, against a data node or a sentinel.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        cli(port, args)
    }

    /// Stops the replica's process (SIGSTOP), so that it acknowledges nothing until
    /// [`resume_replica`](Self::resume_replica); answers its port. The sentinels may count it as
    /// down meanwhile.
    pub fn pause_replica(&self) -> Result<u16, String> {
        self.signal_replica("-STOP")
    }

    /// Lets a paused replica go on (SIGCONT); answers its port.
    pub fn resume_replica(&self) -> Result<u16, String> {
        self.signal_replica("-CONT")
    }

    fn signal_replica(&self, signal: &str) -> Result<u16, String> {
        let primary = self.primary_port()?;
        let (port, child) = self
            .nodes
            .iter()
            .find(|(port, child)| *port != primary && child.is_some())
            .ok_or("no replica is running")?;
        let pid = child.as_ref().map(Child::id).unwrap_or_default();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .map_err(|err| format!("kill {signal}: {err}"))?;
        if !status.success() {
            return Err(format!("kill {signal} {pid} failed"));
        }
        Ok(*port)
    }

    /// SIGKILLs the node that is master now; answers its port.
    pub fn kill_primary(&mut self) -> Result<u16, String> {
        let port = self.primary_port()?;
        let (_, child) = self
            .nodes
            .iter_mut()
            .find(|(node, _)| *node == port)
            .ok_or_else(|| format!("the master on {port} is not one of this test's nodes"))?;
        if let Some(mut child) = child.take() {
            child.kill().map_err(|err| format!("kill: {err}"))?;
            let _ = child.wait();
        }
        Ok(port)
    }

    /// Waits until the sentinels name a master other than `old` and that node says it is one;
    /// answers its port.
    pub fn wait_for_failover(&self, old: u16) -> Result<u16, String> {
        let mut new = None;
        wait_for("a failover to the replica", || {
            new = self.primary_port().ok().filter(|&port| port != old);
            new.is_some_and(|port| cli(port, &["ROLE"]).starts_with("master"))
        })?;
        new.ok_or_else(|| "no new master".to_owned())
    }
}
