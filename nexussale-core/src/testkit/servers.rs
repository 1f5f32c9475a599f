//! What the backend crates' test servers share (feature `testkit-tools`): a free port, a
//! directory of one's own, waiting for a process to be ready, and TLS certificates made for a
//! test (a CA, another CA that signed nothing, a server certificate valid, expired or for another
//! host). Each crate's `testkit` starts its own servers with them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a started server may take to be ready.
pub const READY_WITHIN: Duration = Duration::from_secs(20);

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|err| format!("no free port: {err}"))
}

/// Polls `ready` every 50 ms until it holds, for [`READY_WITHIN`] at most; the error says
/// `what` was awaited.
pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    while !ready() {
        if Instant::now() > deadline {
            return Err(format!("{what} within {READY_WITHIN:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A new temporary directory, named after `kind`, this process and a counter.
pub fn temp_dir(kind: &str) -> Result<PathBuf, String> {
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "nexussale-{kind}-{}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos())
    ));
    std::fs::create_dir_all(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    Ok(dir)
}

/// The certificate a test server presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerCertificate {
    /// Signed by the test's CA (`ca.pem`), for `127.0.0.1` and `localhost`, valid now.
    Valid,
    /// Signed by the same CA, for those names, but expired in 2020.
    Expired,
    /// Signed by the same CA, valid now, but for `server.example.org` only.
    WrongHost,
}

/// The files [`make_certificates`] writes, by name, in its directory.
pub mod files {
    /// The CA that signed the server's certificate.
    pub const CA: &str = "ca.pem";
    /// A CA that signed nothing here.
    pub const OTHER_CA: &str = "other-ca.pem";
    /// The server's certificate.
    pub const CERTIFICATE: &str = "server.pem";
    /// The server's private key.
    pub const KEY: &str = "server.key";
    /// A client's certificate, signed by [`CA`], for servers that ask for one.
    pub const CLIENT_CERTIFICATE: &str = "client.pem";
    /// That client's private key.
    pub const CLIENT_KEY: &str = "client.key";
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

/// Writes the [`files`] into `dir`: a CA, another CA, the server's certificate of the kind asked
/// for (signed by the first CA) with its key, and a client's certificate and key (signed by the
/// first CA too).
pub fn make_certificates(dir: &Path, certificate: ServerCertificate) -> Result<(), String> {
    let made = |err: rcgen::Error| format!("certificates: {err}");
    let (ca, issuer) = certificate_authority("nexussale test CA").map_err(made)?;
    let (other_ca, _) = certificate_authority("another CA").map_err(made)?;
    let names = match certificate {
        ServerCertificate::WrongHost => vec!["server.example.org".to_owned()],
        _ => vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
    };
    let mut params = rcgen::CertificateParams::new(names).map_err(made)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "nexussale test server");
    if certificate == ServerCertificate::Expired {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let key = rcgen::KeyPair::generate().map_err(made)?;
    let server = params.signed_by(&key, &issuer).map_err(made)?;
    let mut client = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(made)?;
    client
        .distinguished_name
        .push(rcgen::DnType::CommonName, "nexussale test client");
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = rcgen::KeyPair::generate().map_err(made)?;
    let client = client.signed_by(&client_key, &issuer).map_err(made)?;
    for (name, text) in [
        (files::CA, ca),
        (files::OTHER_CA, other_ca),
        (files::CERTIFICATE, server.pem()),
        (files::KEY, key.serialize_pem()),
        (files::CLIENT_CERTIFICATE, client.pem()),
        (files::CLIENT_KEY, client_key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), text).map_err(|err| format!("{name}: {err}"))?;
    }
    Ok(())
}

/// A TLS front for a plain TCP server: accepts TLS on a free port of its own with the
/// certificate and key in `dir` (see [`make_certificates`]) and forwards each connection's bytes
/// to `upstream`, for servers that cannot speak TLS themselves. Runs on a thread of its own
/// (with its own runtime), so a synchronous test can use it; stops when dropped.
#[derive(Debug)]
pub struct TlsProxy {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl TlsProxy {
    /// Listens on a free port of 127.0.0.1, presenting `dir`'s [`files::CERTIFICATE`] and
    /// [`files::KEY`], and forwards to `upstream` (`host:port`).
    pub fn start(dir: &Path, upstream: String) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        fn failed(what: &str) -> impl Fn(&dyn std::fmt::Display) -> String + '_ {
            move |err| format!("{what}: {err}")
        }
        let certificates = CertificateDer::pem_file_iter(dir.join(files::CERTIFICATE))
            .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
            .map_err(|err| failed("the proxy's certificate")(&err))?;
        let key = PrivateKeyDer::from_pem_file(dir.join(files::KEY))
            .map_err(|err| failed("the proxy's key")(&err))?;
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|err| failed("TLS versions")(&err))?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(|err| failed("the proxy's certificate")(&err))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|err| failed("the proxy's port")(&err))?;
        let port = listener
            .local_addr()
            .map_err(|err| failed("the proxy's port")(&err))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|err| failed("the proxy's port")(&err))?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| failed("the proxy's runtime")(&err))?;
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let serve = async {
                    while let Ok((client, _)) = listener.accept().await {
                        let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                        tokio::spawn(async move {
                            let Ok(mut client) = acceptor.accept(client).await else {
                                return;
                            };
                            let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await
                            else {
                                return;
                            };
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        });
                    }
                };
                tokio::select! {
                    () = serve => {}
                    _ = stopped => {}
                }
            });
        });
        Ok(Self {
            port,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The port it accepts TLS on.
    pub fn port(&self) -> u16 {
        self.port
    }
}
