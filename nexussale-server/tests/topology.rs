//! How the server reaches its backends (CONTRACT "Topology"): start-up errors that name the
//! backend and never fall back to something else.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use nexussale_core::testkit::services::{redis_url, unavailable};
use nexussale_mysql::testkit::{ServerCertificate as MySqlCertificate, TlsMariaDb};
use nexussale_redis::RedisStockStore;
use nexussale_redis::testkit::{ServerCertificate, TlsRedis};

/// The server's output when it exits by itself.
fn refused(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_nexussale-server"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started: {said}");
    said
}

/// `--redis-cluster` pointed at a Redis that is not a cluster refuses to start, naming Redis and
/// the address (without its password), instead of using the node as a single Redis.
#[tokio::test]
async fn a_cluster_flag_on_a_plain_redis_refuses_to_start() {
    let url = redis_url();
    match RedisStockStore::connect(&url).await {
        Ok(store) if store.ping().await.is_ok() => {}
        _ => return unavailable::<()>("redis", &url).unwrap_or(()),
    }
    let said = refused(&["--redis-cluster", "--redis-url", &url]);
    assert!(said.contains("redis") && said.contains(&url), "{said}");
}

/// `--redis-sentinel` pointed at a Redis that is not a sentinel refuses to start, naming Redis,
/// the address and the master; so does a sentinel list with an empty entry, and the flag beside
/// `--redis-cluster`.
#[tokio::test]
async fn a_sentinel_flag_without_sentinels_refuses_to_start() {
    let said = refused(&[
        "--redis-sentinel",
        "shop",
        "--redis-url",
        "redis://127.0.0.1:1,",
    ]);
    assert!(said.contains("sentinel list has an empty entry"), "{said}");
    let said = refused(&[
        "--redis-sentinel",
        "shop",
        "--redis-cluster",
        "--redis-url",
        "redis://127.0.0.1:1",
    ]);
    assert!(said.contains("cannot be used with"), "{said}");
    let url = redis_url();
    match RedisStockStore::connect(&url).await {
        Ok(store) if store.ping().await.is_ok() => {}
        _ => return unavailable::<()>("redis", &url).unwrap_or(()),
    }
    let said = refused(&["--redis-sentinel", "shop", "--redis-url", &url]);
    assert!(
        said.contains("redis") && said.contains(&url) && said.contains("\"shop\""),
        "{said}"
    );
}

/// A seed list with an empty entry is refused before anything connects.
#[test]
fn an_empty_cluster_seed_is_refused() {
    let said = refused(&[
        "--redis-cluster",
        "--redis-url",
        "redis://127.0.0.1:1,,redis://u:pw-9@127.0.0.1:2",
    ]);
    assert!(said.contains("seed list has an empty entry"), "{said}");
    assert!(!said.contains("pw-9"), "{said}");
}

/// `--redis-cluster` needs `--redis-url`; its environment twin takes `1`.
#[test]
fn the_cluster_flag_needs_a_url() {
    let said = refused(&["--redis-cluster"]);
    assert!(said.contains("--redis-url"), "{said}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_nexussale-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "redis://127.0.0.1:1,,x",
        ])
        .env("NEXUSSALE_REDIS_CLUSTER", "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("seed list has an empty entry"), "{said}");
}

/// A Redis whose certificate does not hold (signed by another CA, expired, for another host)
/// refuses to start, naming Redis and its address; so does `--redis-ca` with a `redis://` URL,
/// rather than connecting without TLS.
#[test]
fn a_redis_certificate_that_does_not_hold_refuses_to_start() {
    for (certificate, wrong_ca) in [
        (ServerCertificate::Valid, true),
        (ServerCertificate::Expired, false),
        (ServerCertificate::WrongHost, false),
    ] {
        let redis = match TlsRedis::start(certificate) {
            Ok(redis) => redis,
            Err(reason) => return unavailable::<()>("redis-server with TLS", reason).unwrap_or(()),
        };
        let ca = if wrong_ca {
            redis.other_ca()
        } else {
            redis.ca()
        };
        let ca = ca.display().to_string();
        let said = refused(&["--redis-url", &redis.url(), "--redis-ca", &ca]);
        assert!(
            said.contains("redis") && said.contains(&redis.url()) && said.contains("certificate"),
            "{certificate:?}: {said}"
        );
        if certificate == ServerCertificate::Valid {
            let plain = redis.url().replace("rediss://", "redis://");
            let said = refused(&["--redis-url", &plain, "--redis-ca", &ca]);
            assert!(said.contains("not rediss://"), "{said}");
        }
    }
}

/// A MariaDB whose certificate does not chain to the URL's `ssl-ca` refuses to start, naming
/// MySQL, its address and the certificate; the password in the URL is not shown.
#[test]
fn a_mysql_certificate_that_does_not_hold_refuses_to_start() {
    let mariadb = match TlsMariaDb::start(MySqlCertificate::Valid) {
        Ok(mariadb) => mariadb,
        Err(reason) => {
            return unavailable::<()>("a second mariadbd with TLS", reason).unwrap_or(());
        }
    };
    let url = mariadb
        .url_trusting("test", "VERIFY_IDENTITY", &mariadb.other_ca())
        .replace("root@", "root:pw-7@");
    let said = refused(&["--database-url", &url]);
    let address = format!("127.0.0.1:{}", mariadb.port());
    assert!(
        said.contains("mysql") && said.contains(&address) && said.contains("certificate"),
        "{said}"
    );
    assert!(!said.contains("pw-7"), "{said}");
}

/// An unreadable `--redis-ca` is a start-up error that names the flag.
#[test]
fn a_missing_redis_ca_file_refuses_to_start() {
    let said = refused(&[
        "--redis-url",
        "rediss://127.0.0.1:1",
        "--redis-ca",
        "/nonexistent/ca.pem",
    ]);
    assert!(said.contains("--redis-ca /nonexistent/ca.pem"), "{said}");
}
