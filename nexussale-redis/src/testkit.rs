//! Redis servers a test starts for itself (feature `testkit`): a Redis Cluster, a Redis that
//! speaks only TLS with certificates made for it, a primary and replica under Sentinel, each on
//! free ports, stopped and cleaned up when dropped, also when the test fails. Needs `redis-server` and `redis-cli` on the `PATH`. Stable
//! enough for other crates' tests; not a production API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod sentinel;

pub use sentinel::RedisSentinel;

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

/// A temporary directory of its own.
fn temp_dir(kind: &str) -> Result<PathBuf, String> {
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "nexussale-{kind}-{}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos())
    ));
    std::fs::create_dir_all(&dir).map_err(|err| err.to_string())?;
    Ok(dir)
}

impl RedisCluster {
    /// Starts `primaries` nodes (3 or more, as `redis-cli --cluster create` wants), joins them
    /// and waits until every node reports `cluster_state:ok`. The error says what failed (no
    /// `redis-server`, a node that did not answer), for the test to skip or fail on.
    pub fn start(primaries: usize) -> Result<Self, String> {
        Self::start_with(primaries, false)
    }

    /// The same, every node speaking only TLS, to clients and on the cluster bus, with a
    /// certificate signed by [`ca`](Self::ca) (`rediss://` [`urls`](Self::urls)).
    pub fn start_tls(primaries: usize) -> Result<Self, String> {
        Self::start_with(primaries, true)
    }

    fn start_with(primaries: usize, tls: bool) -> Result<Self, String> {
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
        for _ in 0..primaries {
            let port = free_port()?;
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
            .args(["--cluster-replicas", "0", "--cluster-yes"])
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
        Ok(cluster)
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
        self.dir.join("ca.pem")
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

/// The certificate a [`TlsRedis`] presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerCertificate {
    /// Signed by [`TlsRedis::ca`], for `127.0.0.1` and `localhost`, valid now.
    Valid,
    /// Signed by the same CA, for those names, but expired in 2020.
    Expired,
    /// Signed by the same CA, valid now, but for `redis.example.org` only.
    WrongHost,
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

/// A new CA: its certificate (PEM) and the issuer that signs with it.
fn certificate_authority(
    name: &str,
) -> Result<(String, rcgen::Issuer<'static, rcgen::KeyPair>), rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    Ok((certificate.pem(), rcgen::Issuer::new(params, key)))
}

/// Writes `ca.pem`, `other-ca.pem` (a CA that signs nothing here), `server.pem` and
/// `server.key` (the server's, of the kind asked for, signed by `ca.pem`) into `dir`.
fn make_certificates(dir: &std::path::Path, certificate: ServerCertificate) -> Result<(), String> {
    let made = |err: rcgen::Error| format!("certificates: {err}");
    let (ca, issuer) = certificate_authority("nexussale test CA").map_err(made)?;
    let (other_ca, _) = certificate_authority("another CA").map_err(made)?;
    let names = match certificate {
        ServerCertificate::WrongHost => vec!["redis.example.org".to_owned()],
        _ => vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
    };
    let mut params = rcgen::CertificateParams::new(names).map_err(made)?;
    if certificate == ServerCertificate::Expired {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let key = rcgen::KeyPair::generate().map_err(made)?;
    let server = params.signed_by(&key, &issuer).map_err(made)?;
    for (name, text) in [
        ("ca.pem", ca),
        ("other-ca.pem", other_ca),
        ("server.pem", server.pem()),
        ("server.key", key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), text).map_err(|err| format!("{name}: {err}"))?;
    }
    Ok(())
}

/// `redis-server`'s flags for the files [`make_certificates`] wrote.
fn tls_file_args(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    [
        ("--tls-cert-file", "server.pem"),
        ("--tls-key-file", "server.key"),
        ("--tls-ca-cert-file", "ca.pem"),
    ]
    .into_iter()
    .flat_map(|(flag, file)| [flag.into(), dir.join(file).into_os_string()])
    .collect()
}

impl TlsRedis {
    /// Starts one with `certificate`. Its CA's certificate is at [`ca`](Self::ca); another CA,
    /// which signed nothing here, at [`other_ca`](Self::other_ca).
    pub fn start(certificate: ServerCertificate) -> Result<Self, String> {
        let dir = temp_dir("tls-redis")?;
        make_certificates(&dir, certificate)?;
        let port = free_port()?;
        let node = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--tls-auth-clients", "no"])
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
        self.dir.join("ca.pem")
    }

    /// The PEM file of a CA that signed nothing this server presents.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }
}
