//! A MariaDB a test starts for itself (feature `testkit`): a second `mariadbd` on a free port,
//! its own data directory, a certificate made for it, and `require_secure_transport=ON`, so
//! that only TLS clients get in. Stopped and removed when dropped, also when the test fails.
//! Needs `mariadb-install-db` and `mariadbd` on the `PATH` (or in `/usr/sbin`). Stable enough
//! for other crates' tests; not a production API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nexussale_core::testkit::servers::{files, free_port, make_certificates, temp_dir, wait_for};

pub use nexussale_core::testkit::servers::ServerCertificate;

/// A MariaDB that accepts only TLS connections (over TCP; its Unix socket, which MariaDB counts
/// as secure, is for the test's own setup), with root and no password, and a database `test`.
///
/// ```no_run
/// # fn demo() -> Result<(), String> {
/// use nexussale_mysql::testkit::{ServerCertificate, TlsMariaDb};
///
/// let mariadb = TlsMariaDb::start(ServerCertificate::Valid)?;
/// let url = mariadb.url("test", "VERIFY_IDENTITY"); // ssl-ca is its CA
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TlsMariaDb {
    server: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for TlsMariaDb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `program`, from the `PATH` or from `/usr/sbin` (where Debian puts `mariadbd`, outside a
/// normal user's `PATH`).
fn program(name: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from(name)
    }
}

impl TlsMariaDb {
    /// Makes a data directory, starts `mariadbd` on it presenting `certificate` (signed by
    /// [`ca`](Self::ca)) and creates the database `test`. The error says what failed, for the
    /// test to skip or fail on.
    pub fn start(certificate: ServerCertificate) -> Result<Self, String> {
        let dir = temp_dir("mariadb-tls")?;
        make_certificates(&dir, certificate)?;
        let data = dir.join("data");
        // Its own temporary directory: mariadbd deletes every `#sql…` file in its tmpdir at
        // start, which breaks another instance starting or installing in the same /tmp.
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|err| format!("{}: {err}", tmp.display()))?;
        let installed = Command::new(program("mariadb-install-db"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(["--user", &user()])
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("mariadb-install-db: {err}"))?;
        if !installed.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!(
                "mariadb-install-db: {}",
                String::from_utf8_lossy(&installed.stderr)
            ));
        }
        let port = free_port()?;
        let path = |name: &str| dir.join(name).display().to_string();
        let server = Command::new(program("mariadbd"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", path("mariadb.sock")))
            .arg(format!("--pid-file={}", path("mariadb.pid")))
            .arg(format!("--log-error={}", path("error.log")))
            .arg(format!("--ssl-cert={}", path(files::CERTIFICATE)))
            .arg(format!("--ssl-key={}", path(files::KEY)))
            .arg(format!("--ssl-ca={}", path(files::CA)))
            .args(["--require-secure-transport=ON", "--skip-log-bin"])
            .args(["--innodb-buffer-pool-size=32M", "--user", &user()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("mariadbd: {err}"))?;
        let mariadb = Self { server, port, dir };
        wait_for("mariadbd ready for connections", || {
            std::fs::read_to_string(mariadb.dir.join("error.log"))
                .is_ok_and(|log| log.contains("ready for connections"))
        })?;
        mariadb.sql("CREATE DATABASE test")?;
        Ok(mariadb)
    }

    /// Runs `statement` as root through the Unix socket (no TLS needed there).
    pub fn sql(&self, statement: &str) -> Result<String, String> {
        let output = Command::new("mariadb")
            .arg(format!(
                "--socket={}",
                self.dir.join("mariadb.sock").display()
            ))
            .args(["-uroot", "-N", "-e", statement])
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("mariadb: {err}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// `mysql://root@127.0.0.1:PORT/DATABASE?ssl-mode=MODE&ssl-ca=…` with this server's CA.
    pub fn url(&self, database: &str, ssl_mode: &str) -> String {
        self.url_trusting(database, ssl_mode, &self.ca())
    }

    /// The same URL, trusting the CA in the file `ca` instead.
    pub fn url_trusting(&self, database: &str, ssl_mode: &str, ca: &Path) -> String {
        format!(
            "mysql://root@127.0.0.1:{}/{database}?ssl-mode={ssl_mode}&ssl-ca={}",
            self.port,
            ca.display()
        )
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join(files::CA)
    }

    /// The PEM file of a CA that signed nothing this server presents.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.join(files::OTHER_CA)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Who `mariadbd` runs as: the current user (it refuses to run as root unless told so).
fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|user| !user.is_empty())
        .unwrap_or_else(|| "root".to_owned())
}
