//! [`Tansu`]: a standalone Kafka-protocol broker, for the cases the mock cluster cannot show.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use nexussale_core::testkit::servers::{
    ServerCertificate, TlsProxy, files, free_port, make_certificates, temp_dir, wait_for,
};

/// A [tansu](https://crates.io/crates/tansu) 0.6 broker on a free port, keeping its data in
/// memory, in plain text or behind TLS. tansu 0.6.0 cannot serve TLS from its command line (its
/// `--cert` and `--key` sit in one clap group, which makes them exclusive), so a TLS broker is a
/// [`TlsProxy`] in front of a plain one that advertises the proxy's address: clients speak TLS
/// for every request, as to a broker with a TLS listener.
///
/// It runs under a small shell that stops it when the test process's end of a pipe closes: when
/// the host is dropped, and also when the test process dies without dropping it (a static
/// shared by the cases of a test binary is never dropped).
///
/// The binary is `$NEXUSSALE_TANSU`, else `tansu` on the `PATH`, else `~/.cargo/bin/tansu`
/// (`cargo install tansu --version 0.6.0 --features dynostore`; `scripts/deps.sh` does it).
///
/// ```no_run
/// # fn demo() -> Result<(), String> {
/// use nexussale_kafka::KafkaConfig;
/// use nexussale_kafka::testkit::Tansu;
///
/// let broker = Tansu::start()?;
/// let config = KafkaConfig::new(broker.bootstrap());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Tansu {
    /// The shell that runs the broker; it stops it when `stop` closes.
    shell: Child,
    stop: Option<ChildStdin>,
    bootstrap: String,
    /// A TLS broker's front and certificates.
    tls: Option<(TlsProxy, PathBuf)>,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut stop) = self.stop.take() {
            let _ = stop.write_all(b"stop\n");
        }
        let _ = self.shell.wait();
        if let Some((proxy, dir)) = self.tls.take() {
            drop(proxy);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Where the tansu binary is.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NEXUSSALE_TANSU").filter(|path| !path.is_empty()) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|path| path.is_file())
    });
    on_path.unwrap_or_else(|| {
        std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
            .unwrap_or_default()
            .join("bin/tansu")
    })
}

impl Tansu {
    /// Starts a plain-text broker and waits until it accepts connections. The error says what
    /// failed (no tansu binary, no answer), for the test to skip or fail on.
    pub fn start() -> Result<Self, String> {
        Self::start_with(None)
    }

    /// Starts a broker reached over TLS only, presenting `certificate` (signed by
    /// [`ca`](Self::ca)). Clients need `security.protocol=SSL` and `ssl.ca.location`.
    pub fn start_tls(certificate: ServerCertificate) -> Result<Self, String> {
        Self::start_with(Some(certificate))
    }

    fn start_with(certificate: Option<ServerCertificate>) -> Result<Self, String> {
        let binary = binary();
        if !binary.is_file() {
            return Err(format!(
                "no tansu at {} (cargo install tansu --version 0.6.0 --features dynostore, or set NEXUSSALE_TANSU)",
                binary.display()
            ));
        }
        let port = free_port()?;
        let listener = format!("tcp://127.0.0.1:{port}");
        let tls = match certificate {
            Some(certificate) => {
                let dir = temp_dir("tansu-tls")?;
                make_certificates(&dir, certificate)?;
                let proxy = TlsProxy::start(&dir, format!("127.0.0.1:{port}"))?;
                Some((proxy, dir))
            }
            None => None,
        };
        let advertised = match &tls {
            Some((proxy, _)) => format!("tcp://127.0.0.1:{}", proxy.port()),
            None => listener.clone(),
        };
        // `$0` is the binary, the rest its arguments; once stdin ends, the broker is stopped.
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" "$@" & broker=$!; read _; kill $broker; wait $broker"#)
            .arg(&binary)
            .args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &advertised])
            .args(["--storage-engine", "memory://tansu/"])
            .args(["--cluster-id", &format!("nexussale-test-{port}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("sh (to run tansu): {err}"))?;
        let stop = shell.stdin.take();
        let broker = Self {
            shell,
            stop,
            bootstrap: advertised.replace("tcp://", ""),
            tls,
        };
        wait_for("tansu accepting connections", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        Ok(broker)
    }

    /// `127.0.0.1:PORT`, what `bootstrap.servers` takes.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The PEM file of the CA that signed a TLS broker's certificate.
    pub fn ca(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|(_, dir)| dir.join(files::CA))
    }

    /// The PEM file of a CA that signed nothing a TLS broker presents.
    pub fn other_ca(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|(_, dir)| dir.join(files::OTHER_CA))
    }
}
