//! Redis servers a test starts for itself (feature `testkit`): a Redis Cluster, a Redis that
//! speaks only TLS with certificates made for it, a primary and replica under Sentinel, each on
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
    nodes: Vec<Child>,
    ports: Vec<u16>,
    dir: PathBuf,
    tls: bool,
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
        };
        if tls {
            make_certificates(&cluster.dir, ServerCertificate::Valid)?;
        }
        for _ in 0..primaries * (1 + replicas) {
            let port = free_port_pair()?;
            let mut node = Command::new("redis-server");
            node.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .arg("--dir")
                .arg(&cluster.dir);
            if tls {
                node.args(["--port", "0", "--tls-port", &port.to_string()])
                    .args(["--tls-cluster", "yes", "--tls-auth-clients", "no"])
                    .args(tls_file_args(&cluster.dir));
            } else {
                node.args(["--port", &port.to_string()]);
            }
            let node = node
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|err| format!("redis-server: {err}"))?;
            cluster.nodes.push(node);
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
        for &port in &cluster.ports {
            wait_for("every replica in sync with its primary", || {
                cluster
                    .cli(port, &["INFO", "replication"])
                    .is_ok_and(|out| {
                        out.contains("role:master") || out.contains("master_link_status:up")
                    })
            })?;
        }
        Ok(cluster)
    }

    /// The port of the replica of the primary that holds `key`'s slot.
    pub fn replica_for(&self, key: &str) -> Result<u16, String> {
        let port = *self.ports.first().ok_or("no node")?;
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
        let primary = lines
            .iter()
            .find(|fields| fields.len() > 8 && fields[2].contains("master") && serves(&fields[8..]))
            .map(|fields| fields[0])
            .ok_or_else(|| format!("no primary serves slot {slot}"))?;
        lines
            .iter()
            .find(|fields| fields.len() > 3 && fields[3] == primary)
            .and_then(|fields| fields[1].split('@').next())
            .and_then(|address| address.rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .ok_or_else(|| format!("the primary of slot {slot} has no replica"))
    }

    /// Stops (SIGSTOP, `pause`) or resumes (SIGCONT) the node on `port`.
    pub fn pause(&self, port: u16, pause: bool) -> Result<(), String> {
        let index = self
            .ports
            .iter()
            .position(|&node| node == port)
            .ok_or_else(|| format!("no node on {port}"))?;
        let signal = if pause { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &self.nodes[index].id().to_string()])
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
