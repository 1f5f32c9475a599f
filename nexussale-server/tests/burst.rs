//! The README's server, as a real process: a burst of 2,000 concurrent purchases (1,000 users,
//! each trying twice) for 100 units, then the orders it persisted, then a graceful SIGTERM; on the
//! embedded default, with its stock in Redis, and on the full stack (Redis, Kafka, MySQL).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{client, drop_database, fresh_database, send, start_server, stop};
use http::{Method, StatusCode};
use nexussale_core::StockStore;
use nexussale_core::testkit::services::{redis_url, unavailable};
use nexussale_core::testkit::unique_name;
use nexussale_kafka::testkit::{MockHost, Tansu};
use nexussale_mysql::sqlx;
use nexussale_mysql::testkit::TlsMariaDb;
use nexussale_redis::testkit::{RedisCluster, ServerCertificate, TlsRedis};
use nexussale_redis::{RedisConfig, RedisStockStore};
use serde_json::json;
use tokio::sync::Semaphore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_sells_exactly_the_stock_and_persists_every_order() {
    burst_then_sigterm(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_redis_stock_sells_exactly_the_stock() {
    let url = redis_url();
    let prefix = unique_name("nexussale-server-test-");
    let config = RedisConfig::default().prefix(prefix.clone());
    let store = match RedisStockStore::connect_with(&url, config).await {
        Ok(store) if store.ping().await.is_ok() => store,
        _ => return unavailable::<()>("redis", &url).unwrap_or(()),
    };
    burst_then_sigterm(&[
        "--redis-url",
        &url,
        "--redis-prefix",
        &prefix,
        "--redis-shards",
        "2",
    ])
    .await;
    // The sale lives on in Redis after the server: sold out, every unit held.
    let snapshot = store.snapshot(&"ps5".parse().unwrap()).await.unwrap();
    assert_eq!((snapshot.available, snapshot.reserved), (0, 100));
    assert_eq!(store.purge().await.unwrap(), 1);
}

/// The stock in a Redis Cluster the test starts (three primaries), one sale's six shards spread
/// over its nodes (`--redis-cluster`, the seeds in `--redis-url`): the same burst sells exactly
/// the stock, and the shards settle to nothing available and every unit held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_a_redis_cluster_sells_exactly_the_stock() {
    burst_on_cluster(RedisCluster::start(3)).await;
}

/// The same with every node reached over TLS (`rediss://` seeds, `--redis-ca`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_a_redis_cluster_over_tls_sells_exactly_the_stock() {
    burst_on_cluster(RedisCluster::start_tls(3)).await;
}

async fn burst_on_cluster(cluster: Result<RedisCluster, String>) {
    let cluster = match cluster {
        Ok(cluster) => cluster,
        Err(reason) => {
            return unavailable::<()>("redis cluster (redis-server, redis-cli)", reason)
                .unwrap_or(());
        }
    };
    let urls = cluster.urls();
    let prefix = unique_name("nexussale-server-test-");
    let ca = cluster.ca().display().to_string();
    let seeds = urls.join(",");
    let mut flags = vec![
        "--redis-cluster",
        "--redis-url",
        &seeds,
        "--redis-prefix",
        &prefix,
        "--redis-shards",
        "6",
    ];
    let mut config = RedisConfig::default()
        .prefix(prefix.clone())
        .stock_shards(6);
    if urls[0].starts_with("rediss://") {
        flags.extend(["--redis-ca", &ca]);
        config = config.root_certificate(std::fs::read(cluster.ca()).unwrap());
    }
    burst_then_sigterm(&flags).await;
    let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
    let store = RedisStockStore::connect_cluster(&seeds, config)
        .await
        .unwrap();
    let snapshot = store.snapshot(&"ps5".parse().unwrap()).await.unwrap();
    assert_eq!((snapshot.available, snapshot.reserved), (0, 100));
    let holding = cluster
        .ports()
        .iter()
        .filter(|&&port| {
            cluster
                .cli(port, &["--scan", "--pattern", &format!("{prefix}:*")])
                .unwrap()
                .contains("ps5")
        })
        .count();
    assert!(holding >= 2, "the sale's shards sit on {holding} node(s)");
}

/// The stock in a Redis that speaks only TLS (`rediss://`, its CA given with `--redis-ca`): the
/// same burst sells exactly the stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_redis_over_tls_sells_exactly_the_stock() {
    let redis = match TlsRedis::start(ServerCertificate::Valid) {
        Ok(redis) => redis,
        Err(reason) => return unavailable::<()>("redis-server with TLS", reason).unwrap_or(()),
    };
    let ca = redis.ca().display().to_string();
    burst_then_sigterm(&["--redis-url", &redis.url(), "--redis-ca", &ca]).await;
    let config = RedisConfig::default().root_certificate(std::fs::read(redis.ca()).unwrap());
    let store = RedisStockStore::connect_with(&redis.url(), config)
        .await
        .unwrap();
    let snapshot = store.snapshot(&"ps5".parse().unwrap()).await.unwrap();
    assert_eq!((snapshot.available, snapshot.reserved), (0, 100));
}

/// The orders in a MariaDB that accepts only TLS (`ssl-mode=VERIFY_IDENTITY`, its CA in
/// `ssl-ca`): the same burst persists every order exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_mysql_over_tls_persists_every_order() {
    let mariadb = match TlsMariaDb::start(ServerCertificate::Valid) {
        Ok(mariadb) => mariadb,
        Err(reason) => {
            return unavailable::<()>("a second mariadbd with TLS", reason).unwrap_or(());
        }
    };
    burst_then_sigterm(&["--database-url", &mariadb.url("test", "VERIFY_IDENTITY")]).await;
    let stored = mariadb
        .sql("SELECT COUNT(*), COUNT(DISTINCT user_id) FROM test.orders WHERE sku = 'ps5'")
        .unwrap();
    assert_eq!(
        stored.split_whitespace().collect::<Vec<_>>(),
        ["100", "100"]
    );
}

/// The full stack: Redis stock, a Kafka queue (librdkafka's mock cluster, reached by the servers
/// over TCP), MySQL orders; a front end with `--no-worker` and a separate worker process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_the_full_stack_persists_every_order_in_mysql() {
    let kafka = MockHost::start();
    let topic = unique_name("orders-");
    // The mock has no admin API: the topics exist before the servers start.
    kafka.create_topic(&topic, 4);
    kafka.create_topic(&format!("{topic}.dlq"), 1);
    full_stack_burst(&[
        "--kafka-brokers",
        kafka.bootstrap(),
        "--kafka-topic",
        &topic,
    ])
    .await;
}

/// The same on a standalone Kafka-protocol broker (tansu), on which the servers create their
/// topics themselves; in plain text and over TLS (`security.protocol=SSL`, the broker's
/// certificate checked against the test's CA).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_the_full_stack_over_a_kafka_broker_persists_every_order() {
    for tls in [false, true] {
        let broker = if tls {
            Tansu::start_tls(ServerCertificate::Valid)
        } else {
            Tansu::start()
        };
        let broker = match broker {
            Ok(broker) => broker,
            Err(reason) => return unavailable::<()>("tansu", reason).unwrap_or(()),
        };
        let topic = unique_name("orders-");
        let ca = broker
            .ca()
            .map(|ca| format!("ssl.ca.location={}", ca.display()));
        let mut kafka = vec![
            "--kafka-brokers",
            broker.bootstrap(),
            "--kafka-topic",
            &topic,
            "--kafka-partitions",
            "4",
        ];
        if let Some(ca) = &ca {
            kafka.extend([
                "--kafka-option",
                "security.protocol=SSL",
                "--kafka-option",
                ca,
            ]);
        }
        full_stack_burst(&kafka).await;
    }
}

/// Redis stock, the Kafka queue `kafka` names, MySQL orders: a worker process, and a front end
/// that takes the burst's purchases with `--no-worker`, so every order reaches MySQL through
/// Kafka and the other process. Afterwards MySQL holds exactly the 100 orders, one per buyer.
async fn full_stack_burst(kafka: &[&str]) {
    let url = redis_url();
    let prefix = unique_name("nexussale-server-test-");
    let stock =
        match RedisStockStore::connect_with(&url, RedisConfig::default().prefix(prefix.clone()))
            .await
        {
            Ok(store) if store.ping().await.is_ok() => store,
            _ => return unavailable::<()>("redis", &url).unwrap_or(()),
        };
    let Some((mut admin, database, db_url)) = fresh_database().await else {
        return;
    };
    let mut stack = vec![
        "--redis-url",
        &url,
        "--redis-prefix",
        &prefix,
        "--database-url",
        &db_url,
    ];
    stack.extend_from_slice(kafka);
    let (worker, _) = start_server(&stack);
    let front_end: Vec<&str> = stack.iter().copied().chain(["--no-worker"]).collect();
    burst_then_sigterm(&front_end).await;
    stop(worker);

    let (orders, buyers): (i64, i64) = sqlx::query_as(&format!(
        "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM `{database}`.orders WHERE sku = 'ps5'"
    ))
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!((orders, buyers), (100, 100));
    drop_database(&mut admin, &database).await;
    assert_eq!(stock.purge().await.unwrap(), 1);
}

/// SIGTERM in the middle of a burst: the server stops accepting, finishes what is in flight,
/// drains its in-process queue into MySQL and exits 0; every purchase it answered 202 is in the
/// database afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_burst_loses_no_accepted_order() {
    let Some((mut admin, database, db_url)) = fresh_database().await else {
        return;
    };
    let (server, address) = start_server(&["--database-url", &db_url, "--sale", "big=1000000"]);
    let url = format!("http://{address}/v1/sales/big/purchase");
    let client = client();
    let permits = Arc::new(Semaphore::new(64));
    let unanswered = Arc::new(AtomicUsize::new(0));
    let burst = (0..20_000).map(|i| {
        let (client, url, permits) = (client.clone(), url.clone(), Arc::clone(&permits));
        let unanswered = Arc::clone(&unanswered);
        tokio::spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let body = json!({ "user": format!("user-{i}") }).to_string();
            let request = http::Request::post(&url)
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap();
            // Once the server stops, requests fail: those were never accepted. One the client
            // never hears back on was not seen accepted either.
            let Ok(answer) = common::answer(&client, request).await else {
                unanswered.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            let (status, body) = answer?;
            if status != StatusCode::ACCEPTED {
                return None;
            }
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            Some(body["order_id"].as_str().unwrap().to_owned())
        })
    });
    let burst: Vec<_> = burst.collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stopping = std::thread::spawn(move || stop(server));
    let mut accepted = HashSet::new();
    for task in futures::future::join_all(burst).await {
        if let Some(id) = task.unwrap() {
            accepted.insert(id);
        }
    }
    stopping.join().unwrap();
    assert!(!accepted.is_empty(), "nothing was accepted before the stop");

    let persisted: Vec<(String,)> = sqlx::query_as(&format!(
        "SELECT LOWER(CONCAT_WS('-', HEX(SUBSTR(id, 1, 4)), HEX(SUBSTR(id, 5, 2)), \
         HEX(SUBSTR(id, 7, 2)), HEX(SUBSTR(id, 9, 2)), HEX(SUBSTR(id, 11, 6)))) \
         FROM `{database}`.orders"
    ))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let persisted: HashSet<String> = persisted.into_iter().map(|(id,)| id).collect();
    let lost: Vec<_> = accepted.difference(&persisted).collect();
    assert!(
        lost.is_empty(),
        "{} of {} accepted orders lost: {lost:?}",
        lost.len(),
        accepted.len()
    );
    eprintln!(
        "{} purchases accepted before the stop, all persisted ({} got no answer within {:?})",
        accepted.len(),
        unanswered.load(Ordering::Relaxed),
        common::ANSWER_WITHIN
    );
    drop_database(&mut admin, &database).await;
}

async fn burst_then_sigterm(extra: &[&str]) {
    let (server, address) = start_server(extra);
    let base = format!("http://{address}");
    let client = client();
    let (status, _) = send(&client, Method::GET, &format!("{base}/health"), None).await;
    assert_eq!(status, StatusCode::OK);

    let permits = Arc::new(Semaphore::new(256));
    let tasks = (0..2000).map(|i| {
        let (client, url, permits) = (
            client.clone(),
            format!("{base}/v1/sales/ps5/purchase"),
            permits.clone(),
        );
        tokio::spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            send(
                &client,
                Method::POST,
                &url,
                Some(json!({ "user": format!("user-{}", i % 1000) })),
            )
            .await
        })
    });
    let mut accepted = HashSet::new();
    let mut refused = 0;
    for task in futures::future::join_all(tasks).await {
        let (status, body) = task.unwrap();
        match status {
            StatusCode::ACCEPTED => assert!(
                accepted.insert(body["user"].as_str().unwrap().to_owned()),
                "user bought twice"
            ),
            StatusCode::CONFLICT => {
                let code = body["error"].as_str().unwrap();
                assert!(code == "sold_out" || code == "limit_exceeded", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((accepted.len(), refused), (100, 1900));

    // The worker persists in the background: wait for it, briefly.
    let orders_url = format!("{base}/v1/orders?sku=ps5&limit=1000");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let orders = loop {
        let (status, page) = send(&client, Method::GET, &orders_url, None).await;
        assert_eq!(status, StatusCode::OK);
        let orders = page["orders"].as_array().unwrap().clone();
        if orders.len() >= 100 || tokio::time::Instant::now() > deadline {
            break orders;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(orders.len(), 100);
    let users: HashSet<String> = orders
        .iter()
        .map(|o| o["user"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        users, accepted,
        "the persisted orders are exactly the accepted purchases"
    );
    // The server measured what it did.
    let metrics = client
        .request(
            http::Request::get(format!("{base}/metrics"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let metrics = http_body_util::BodyExt::collect(metrics.into_body())
        .await
        .unwrap()
        .to_bytes();
    let metrics = String::from_utf8_lossy(&metrics);
    for expected in [
        "nexussale_purchases_total{outcome=\"accepted\"} 100",
        "nexussale_publish_duration_seconds_count 100",
        "nexussale_units_available{sku=\"ps5\"} 0",
    ] {
        assert!(metrics.contains(expected), "no {expected} in:\n{metrics}");
    }
    let (_, sale) = send(&client, Method::GET, &format!("{base}/v1/sales/ps5"), None).await;
    assert_eq!(
        (sale["available"].as_u64(), sale["reserved"].as_u64()),
        (Some(0), Some(100))
    );

    stop(server);
}
