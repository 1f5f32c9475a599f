//! Redis servers a test starts for itself (feature `testkit`): a Redis of its own (to count what
//! a store sends it), a Redis Cluster, a Redis that speaks only TLS with certificates made for
//! it, a primary and replica under Sentinel, each on
//! free ports, stopped and cleaned up when dropped, also when the test fails. Needs `redis-server` and `redis-cli` on the `PATH`. Stable
//! enough for other crates' tests; not a production API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use nexussale_core::testkit::servers::{files, make_certificates, temp_dir, wait_for};

mod sentinel;

pub use nexussale_core::testkit::servers::ServerCertificate;
pub use sentinel::RedisSentinel;

/// A Redis Cluster of primaries, with or without replicas, in a temporary directory.
///
/// ```no_run
/// # fn demo() -> Result<(), String> {
/// let cluster = nexussale_redis::testkit::RedisCluster::start(3)?;
/// let seeds = cluster.urls().join(","); // what `--redis-url` takes with `--redis-cluster`
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    /// By port; `None` once killed.
    nodes: Vec<Option<Child>>,
    ports: Vec<u16>,
    dir: PathBuf,
    tls: bool,
    /// `cluster-node-timeout` in ms: how long a node may be silent before it counts as failed.
    node_timeout: u32,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            let _ = node.kill();
            let _ = node.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_port_pair() -> Result<u16, String> {
    for _ in 0..1000 {
        let port = nexussale_core::testkit::servers::free_port()?;
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port pair for a cluster node".into())
}

impl RedisCluster {
    /// Starts `primaries` nodes (3 or more, as `redis-cli --cluster create` wants), joins them
    /// and waits until every node reports `cluster_state:ok`. The error says what failed (no
    /// `redis-server`, a node that did not answer), for the test to skip or fail on.
    pub fn start(primaries: usize) -> Result<Self, String> {
        Self::start_with(primaries, 0, false)
    }

    /// `primaries` primaries with one replica each, every replica in sync before this answers.
    pub fn start_with_replicas(primaries: usize) -> Result<Self, String> {
        Self::start_with(primaries, 1, false)
    }

    /// The same, every node speaking only TLS, to clients and on the cluster bus, with a
    /// certificate signed by [`ca`](Self::ca) (`rediss://` [`urls`](Self::urls)).
    pub fn start_tls(primaries: usize) -> Result<Self, String> {
        Self::start_with(primaries, 0, true)
    }

    fn start_with(primaries: usize, replicas: usize, tls: bool) -> Result<Self, String> {
        let dir = temp_dir("cluster")?;
        let mut cluster = Self {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir,
            tls,
            // With replicas: fail over within seconds, yet not on a loaded machine's hiccup;
            // without, never mark a node failed.
            node_timeout: if replicas > 0 { 5000 } else { 15000 },
        };
        if tls {
            make_certificates(&cluster.dir, ServerCertificate::Valid)?;
        }
        for _ in 0..primaries * (1 + replicas) {
            let port = free_port_pair()?;
            let node = cluster.spawn_node(port)?;
            cluster.nodes.push(Some(node));
            cluster.ports.push(port);
        }
        for &port in &cluster.ports {
            wait_for("a node answering PING", || {
                cluster
                    .cli(port, &["PING"])
                    .is_ok_and(|out| out.contains("PONG"))
            })?;
        }
        let created = Command::new("redis-cli")
            .args(cluster.tls_args())
            .arg("--cluster")
            .arg("create")
            .args(cluster.addresses())
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("redis-cli --cluster create: {err}"))?;
        if !created.status.success() {
            return Err(String::from_utf8_lossy(&created.stdout).into_owned());
        }
        for &port in &cluster.ports {
            wait_for("the cluster to be ok", || {
                cluster
                    .cli(port, &["CLUSTER", "INFO"])
                    .is_ok_and(|out| out.contains("cluster_state:ok"))
            })?;
        }
        // Right after `--cluster create` a replica still says `role:master` until it has
        // been told whom to follow: count the nodes in sync as replicas.
        wait_for("every replica in sync with its primary", || {
            let in_sync = cluster.ports.iter().filter(|&&port| {
                cluster
                    .cli(port, &["INFO", "replication"])
                    .is_ok_and(|out| {
                        out.contains("role:slave") && out.contains("master_link_status:up")
                    })
            });
            let replicas_seen = |port: &u16| {
                cluster
                    .cli(*port, &["CLUSTER", "NODES"])
                    .is_ok_and(|nodes| {
                        let seen = nodes.lines().filter(|line| {
                            line.split(' ')
                                .nth(2)
                                .is_some_and(|flags| flags.split(',').any(|flag| flag == "slave"))
                        });
                        seen.count() == primaries * replicas
                    })
            };
            // And every node's view of the cluster (gossip) knows them as replicas.
            in_sync.count() == primaries * replicas && cluster.ports.iter().all(replicas_seen)
        })?;
        Ok(cluster)
    }

    /// One node on `port` of this cluster (its config file kept in the directory, so a node
    /// started again rejoins as itself).
    fn spawn_node(&self, port: u16) -> Result<Child, String> {
        let mut node = Command::new("redis-server");
        node.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--cluster-node-timeout", &self.node_timeout.to_string()])
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&self.dir);
        if self.tls {
            node.args(["--port", "0", "--tls-port", &port.to_string()])
                .args(["--tls-cluster", "yes", "--tls-auth-clients", "no"])
                .args(tls_file_args(&self.dir));
        } else {
            node.args(["--port", &port.to_string()]);
        }
        node.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("redis-server: {err}"))
    }

    /// The port of a node still running.
    fn live_port(&self) -> Result<u16, String> {
        self.ports
            .iter()
            .zip(&self.nodes)
            .find(|(_, node)| node.is_some())
            .map(|(port, _)| *port)
            .ok_or_else(|| "every node was killed".to_owned())
    }

    /// The port of the primary that serves `key`'s slot now.
    pub fn primary_for(&self, key: &str) -> Result<u16, String> {
        Ok(self.serving(key)?.0)
    }

    /// The port of the replica of the primary that holds `key`'s slot.
    pub fn replica_for(&self, key: &str) -> Result<u16, String> {
        self.serving(key)?
            .1
            .ok_or_else(|| format!("the primary serving {key} has no replica"))
    }

    /// SIGKILLs the node on `port`.
    pub fn kill(&mut self, port: u16) -> Result<(), String> {
        let index = self.index(port)?;
        if let Some(mut node) = self.nodes[index].take() {
            node.kill().map_err(|err| format!("kill: {err}"))?;
            let _ = node.wait();
        }
        Ok(())
    }

    /// Waits until a node other than `old` serves `key`'s slot as a primary and the cluster is
    /// ok again; answers its port.
    pub fn wait_for_failover(&self, key: &str, old: u16) -> Result<u16, String> {
        let mut new = None;
        wait_for("a replica promoted in the killed primary's place", || {
            new = self.primary_for(key).ok().filter(|&port| port != old);
            new.is_some_and(|port| {
                self.cli(port, &["CLUSTER", "INFO"])
                    .is_ok_and(|out| out.contains("cluster_state:ok"))
                    && self
                        .cli(port, &["ROLE"])
                        .is_ok_and(|out| out.starts_with("master"))
            })
        })?;
        new.ok_or_else(|| "no new primary".to_owned())
    }

    /// Starts the killed node on `port` again, empty: it rejoins as a replica of the primary
    /// that took its slots; answers once it is in sync.
    pub fn restart(&mut self, port: u16) -> Result<(), String> {
        let index = self.index(port)?;
        let node = self.spawn_node(port)?;
        self.nodes[index] = Some(node);
        wait_for("the restarted node in sync as a replica", || {
            self.cli(port, &["INFO", "replication"]).is_ok_and(|out| {
                out.contains("role:slave") && out.contains("master_link_status:up")
            })
        })
    }

    fn index(&self, port: u16) -> Result<usize, String> {
        self.ports
            .iter()
            .position(|&node| node == port)
            .ok_or_else(|| format!("no node on {port}"))
    }

    /// The primary serving `key`'s slot and its replica, as a live node sees them.
    fn serving(&self, key: &str) -> Result<(u16, Option<u16>), String> {
        let port = self.live_port()?;
        let nodes = self
            .cli(port, &["CLUSTER", "NODES"])
            .map_err(|err| err.to_string())?;
        let slot: u16 = self
            .cli(port, &["CLUSTER", "KEYSLOT", key])
            .map_err(|err| err.to_string())?
            .trim()
            .parse()
            .map_err(|_| "CLUSTER KEYSLOT answered no number".to_owned())?;
        // Lines: id address flags primary-id ping pong epoch link slot-ranges…
        let serves = |ranges: &[&str]| {
            ranges.iter().any(|range| match range.split_once('-') {
                Some((from, to)) => {
                    from.parse().is_ok_and(|from: u16| from <= slot)
                        && to.parse().is_ok_and(|to: u16| slot <= to)
                }
                None => range.parse() == Ok(slot),
            })
        };
        let lines: Vec<Vec<&str>> = nodes
            .lines()
            .map(|line| line.split(' ').collect())
            .collect();
        let port_of = |fields: &Vec<&str>| -> Option<u16> {
            fields[1]
                .split('@')
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        };
        let primary = lines
            .iter()
            .find(|fields| {
                fields.len() > 8
                    && fields[2].contains("master")
                    && !fields[2].contains("fail")
                    && serves(&fields[8..])
            })
            .ok_or_else(|| format!("no primary serves slot {slot}"))?;
        let replica = lines
            .iter()
            .filter(|fields| fields.len() > 3 && fields[3] == primary[0])
            .filter(|fields| !fields[2].contains("fail"))
            .find_map(port_of);
        let primary = port_of(primary).ok_or("a primary without a port")?;
        Ok((primary, replica))
    }

    /// Stops (SIGSTOP, `pause`) or resumes (SIGCONT) the node on `port`.
    pub fn pause(&self, port: u16, pause: bool) -> Result<(), String> {
        let index = self.index(port)?;
        let pid = self.nodes[index]
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| format!("the node on {port} was killed"))?;
        let signal = if pause { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .map_err(|err| format!("kill {signal}: {err}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("kill {signal} failed"))
    }

    /// `redis-cli ARGS…` against the node on `port` (over TLS for a TLS cluster).
    pub fn cli(&self, port: u16, args: &[&str]) -> std::io::Result<String> {
        let output = Command::new("redis-cli")
            .args(self.tls_args())
            .args(["-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn tls_args(&self) -> Vec<std::ffi::OsString> {
        if self.tls {
            vec![
                "--tls".into(),
                "--cacert".into(),
                self.ca().into_os_string(),
            ]
        } else {
            Vec::new()
        }
    }

    /// The PEM file of the CA that signed a TLS cluster's certificates.
    pub fn ca(&self) -> PathBuf {
        self.dir.join(files::CA)
    }

    /// The nodes' ports.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// `redis://127.0.0.1:PORT` of each node.
    pub fn urls(&self) -> Vec<String> {
        self.addresses()
            .into_iter()
            .map(|address| {
                let scheme = if self.tls { "rediss" } else { "redis" };
                format!("{scheme}://{address}")
            })
            .collect()
    }

    fn addresses(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect()
    }
}

/// A plain `redis-server` of the test's own: nothing else sends it commands, so its statistics
/// (`INFO commandstats`) count what the test's store sent.
#[derive(Debug)]
pub struct LocalRedis {
    node: Child,
    port: u16,
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.node.kill();
        let _ = self.node.wait();
    }
}

impl LocalRedis {
    /// Starts one on a free port, nothing on disk.
    pub fn start() -> Result<Self, String> {
        let port = nexussale_core::testkit::servers::free_port()?;
        let node = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("redis-server: {err}"))?;
        let redis = Self { node, port };
        wait_for("a port accepting connections", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// How many times `command` (lower case, as `INFO commandstats` names it: `evalsha`) ran.
    pub fn calls(&self, command: &str) -> Result<u64, String> {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "info", "commandstats"])
            .output()
            .map_err(|err| format!("redis-cli: {err}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let prefix = format!("cmdstat_{command}:calls=");
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|calls| calls.parse().ok())
            .unwrap_or(0))
    }
}

/// A `redis-server` that speaks only TLS (its plain port off), with a CA and a server
/// certificate made for it; clients need no certificate.
#[derive(Debug)]
pub struct TlsRedis {
    node: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.node.kill();
        let _ = self.node.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-server`'s flags for the files `make_certificates` wrote.
fn tls_file_args(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    [
        ("--tls-cert-file", files::CERTIFICATE),
        ("--tls-key-file", files::KEY),
        ("--tls-ca-cert-file", files::CA),
    ]
    .into_iter()
    .flat_map(|(flag, file)| [flag.into(), dir.join(file).into_os_string()])
    .collect()
}

impl TlsRedis {
    /// Starts one with `certificate`. Its CA's certificate is at [`ca`](Self::ca); another CA,
    /// which signed nothing here, at [`other_ca`](Self::other_ca).
    pub fn start(certificate: ServerCertificate) -> Result<Self, String> {
        Self::start_with(certificate, false)
    }

    /// Starts one with a valid certificate that also requires clients to present a certificate
    /// signed by [`ca`](Self::ca) (`tls-auth-clients yes`): [`client_certificate`] and
    /// [`client_key`] are one.
    ///
    /// [`client_certificate`]: Self::client_certificate
    /// [`client_key`]: Self::client_key
    pub fn start_mutual() -> Result<Self, String> {
        Self::start_with(ServerCertificate::Valid, true)
    }

    fn start_with(certificate: ServerCertificate, mutual: bool) -> Result<Self, String> {
        let dir = temp_dir("tls-redis")?;
        make_certificates(&dir, certificate)?;
        let port = nexussale_core::testkit::servers::free_port()?;
        let node = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--tls-auth-clients", if mutual { "yes" } else { "no" }])
            .args(tls_file_args(&dir))
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("redis-server: {err}"))?;
        let redis = Self { node, port, dir };
        wait_for("a TLS port accepting connections", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        Ok(redis)
    }

    /// `rediss://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join(files::CA)
    }

    /// The PEM file of a client certificate signed by [`ca`](Self::ca).
    pub fn client_certificate(&self) -> PathBuf {
        self.dir.join(files::CLIENT_CERTIFICATE)
    }

    /// The PEM file of [`client_certificate`](Self::client_certificate)'s key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join(files::CLIENT_KEY)
    }

    /// The PEM file of a CA that signed nothing this server presents.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.join(files::OTHER_CA)
    }
}
