//! How the server reaches its backends (CONTRACT "Topology"): start-up errors that name the
//! backend and never fall back to something else.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::time::{Duration, Instant};

use common::{Server, start_server_logged, stop};
use nexussale_core::testkit::services::{redis_url, unavailable};
use nexussale_kafka::testkit::{MockHost, Tansu};
use nexussale_mysql::testkit::TlsMariaDb;
use nexussale_redis::RedisStockStore;
use nexussale_redis::testkit::{ServerCertificate, TlsRedis};

/// The server's output when it exits by itself with an error; fails the test if it is still
/// running after 30 s (it started) or exits successfully.
fn refused(args: &[&str]) -> String {
    let path = std::env::temp_dir().join(nexussale_core::testkit::unique_name("refused-"));
    let out = std::fs::File::create(&path).unwrap();
    let mut server = Server::from(
        std::process::Command::new(env!("CARGO_BIN_EXE_nexussale-server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = server.try_wait() {
            break Some(exit);
        }
        if Instant::now() > deadline {
            server.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let said = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    match exit {
        Some(exit) => assert!(!exit.success(), "exited 0: {said}"),
        None => panic!("still running after 30 s: {said}"),
    }
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
    let mariadb = match TlsMariaDb::start(ServerCertificate::Valid) {
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

/// An existing topic with one replica on a cluster of three brokers is named in a start-up
/// warning (the server still starts: it does not change existing topics); a topic with three
/// replicas is not.
#[test]
fn a_single_copy_topic_on_several_brokers_is_a_warning() {
    let kafka = MockHost::start();
    let topic = nexussale_core::testkit::unique_name("orders-");
    kafka.create_topic_replicated(&topic, 2, 1);
    kafka.create_topic_replicated(&format!("{topic}.dlq"), 1, 3);
    let (server, _, log) = start_server_logged(&[
        "--kafka-brokers",
        kafka.bootstrap(),
        "--kafka-topic",
        &topic,
    ]);
    stop(server);
    let log = log.lock().clone();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("replication factor of 1"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].contains(&format!("topic={topic} ")),
        "{log}"
    );
}

/// Kafka over TLS (`security.protocol=SSL`, `ssl.ca.location`) to a broker whose certificate
/// does not hold (signed by another CA, expired, for another host): the server refuses to start,
/// naming Kafka, the broker and the failed verification (librdkafka says "certificate verify
/// failed" whatever the fault; OpenSSL's detail is not in its message). The three cases run at
/// once: each waits out the 10 s metadata request.
#[test]
fn a_kafka_certificate_that_does_not_hold_refuses_to_start() {
    let case = |certificate: ServerCertificate, wrong_ca: bool| {
        let endpoint = match Tansu::start_tls(certificate) {
            Ok(endpoint) => endpoint,
            Err(reason) => return unavailable::<()>("tansu", reason).unwrap_or(()),
        };
        let broker = endpoint.bootstrap().to_owned();
        let ca = if wrong_ca {
            endpoint.other_ca()
        } else {
            endpoint.ca()
        }
        .expect("a TLS broker has CAs");
        let said = refused(&[
            "--kafka-brokers",
            &broker,
            "--kafka-option",
            "security.protocol=SSL",
            "--kafka-option",
            &format!("ssl.ca.location={}", ca.display()),
        ]);
        let error = said
            .lines()
            .find(|line| line.contains("server failed"))
            .unwrap_or_else(|| panic!("{certificate:?}: no start-up error in {said}"));
        assert!(
            error.contains("kafka")
                && error.contains(&broker)
                && error.contains("TLS or SASL handshake")
                && error.contains("certificate verify failed"),
            "{certificate:?}: {error}"
        );
    };
    std::thread::scope(|scope| {
        scope.spawn(|| case(ServerCertificate::Valid, true));
        scope.spawn(|| case(ServerCertificate::Expired, false));
        scope.spawn(|| case(ServerCertificate::WrongHost, false));
    });
}

/// A Redis that requires client certificates (`tls-auth-clients yes`): the server refuses to
/// start without `--redis-client-cert`/`--redis-client-key`, naming Redis, and starts and sells
/// with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_requiring_client_certificates_gets_one() {
    let redis = match TlsRedis::start_mutual() {
        Ok(redis) => redis,
        Err(reason) => return unavailable::<()>("redis-server with TLS", reason).unwrap_or(()),
    };
    let ca = redis.ca().display().to_string();
    let said = refused(&["--redis-url", &redis.url(), "--redis-ca", &ca]);
    assert!(
        said.contains("redis") && said.contains(&redis.url()),
        "{said}"
    );
    let (certificate, key) = (
        redis.client_certificate().display().to_string(),
        redis.client_key().display().to_string(),
    );
    let (server, address) = common::start_server(&[
        "--redis-url",
        &redis.url(),
        "--redis-ca",
        &ca,
        "--redis-client-cert",
        &certificate,
        "--redis-client-key",
        &key,
    ]);
    let (status, body) = common::send(
        &common::client(),
        http::Method::POST,
        &format!("http://{address}/v1/sales/ps5/purchase"),
        Some(serde_json::json!({ "user": "ann" })),
    )
    .await;
    assert_eq!(status, http::StatusCode::ACCEPTED, "{body}");
    stop(server);
    // The key without its certificate is refused by the command line.
    let said = refused(&["--redis-url", &redis.url(), "--redis-client-key", &key]);
    assert!(said.contains("--redis-client-cert"), "{said}");
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
