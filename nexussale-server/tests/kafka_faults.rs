//! Kafka failing under the server (librdkafka's mock cluster): while no broker can make an order
//! event durable, purchases are answered 503 with `Retry-After`, never 202; the units they
//! reserved go straight back; once the brokers return, purchases are accepted again without a
//! restart, and every 202 is persisted exactly once.
//!
//! The queue's own faults (one broker down, produce errors, a consumer dying before it commits,
//! a rebalance, a poison message) are tested in `nexussale-kafka/tests/faults.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::service::Service;
use nexussale_core::memory::{MemoryOrderRepository, MemoryStockStore};
use nexussale_core::{FlashSale, OrderRepository, Sku};
use nexussale_kafka::KafkaOrderQueue;
use nexussale_kafka::testkit::MockHost;
use nexussale_server::{App, app};
use serde_json::{Value, json};

/// Status, `Retry-After` and body of one purchase.
async fn buy(app: &App, user: &str) -> (StatusCode, Option<String>, Value) {
    let request = common::json_request(
        Method::POST,
        "/v1/sales/hot/purchase",
        Some(json!({ "user": user })),
    );
    let response = app.call(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, retry_after, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_broker_means_503_with_retry_after_never_an_undurable_202() {
    let host = MockHost::start();
    let config = host.config(3).delivery_timeout(Duration::from_millis(1500));
    let queue = KafkaOrderQueue::connect(config).await.unwrap();
    let repository = Arc::new(MemoryOrderRepository::new());
    let engine = FlashSale::new(
        Arc::new(MemoryStockStore::new()),
        Arc::new(queue),
        repository.clone(),
    );
    let app = app(engine.clone());
    let (status, _) = common::call(
        &app,
        Method::POST,
        "/v1/sales",
        Some(json!({ "sku": "hot", "stock": 1000 })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let mut accepted = HashSet::new();
    let mut next_user = 0;
    let round = |app: App, users: std::ops::Range<usize>| async move {
        let tasks: Vec<_> = users
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move { buy(&app, &format!("buyer-{i}")).await })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    };

    // Before: accepted.
    for (status, _, body) in round(app.clone(), 0..20).await {
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        accepted.insert(body["order_id"].as_str().unwrap().to_owned());
    }
    next_user += 20;

    // Every broker down: each purchase waits out the delivery timeout, then 503 + Retry-After.
    for broker in 1..=3 {
        host.broker_down(broker);
    }
    let started = Instant::now();
    for (status, retry_after, body) in round(app.clone(), next_user..next_user + 30).await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"], "unavailable");
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    next_user += 30;
    assert!(started.elapsed() < Duration::from_secs(10));
    // The refused purchases hold nothing.
    let view = engine.sale(&"hot".parse().unwrap()).await.unwrap();
    assert_eq!(view.snapshot.reserved, 20, "{view:?}");

    // Brokers back: accepted again, without a restart (the first ones may still meet the
    // reconnect).
    for broker in 1..=3 {
        host.broker_up(broker);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, body) = buy(&app, &format!("buyer-{next_user}")).await;
        next_user += 1;
        if status == StatusCode::ACCEPTED {
            accepted.insert(body["order_id"].as_str().unwrap().to_owned());
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(Instant::now() < deadline, "purchases never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (status, _, body) in round(app.clone(), next_user..next_user + 20).await {
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        accepted.insert(body["order_id"].as_str().unwrap().to_owned());
    }

    // Every 202 is persisted, once; nothing else is.
    let sku: Sku = "hot".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while repository.counts(&sku).await.unwrap().pending.orders < accepted.len() as u64 {
        assert!(Instant::now() < deadline, "accepted orders never persisted");
        engine.process_batch().await.unwrap();
    }
    let page = repository
        .list(&nexussale_core::OrderQuery {
            sku: Some(sku.clone()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    let persisted: HashSet<String> = page.orders.iter().map(|o| o.id.to_string()).collect();
    assert_eq!(persisted, accepted);
    let view = engine.sale(&sku).await.unwrap();
    assert_eq!(view.snapshot.reserved, accepted.len() as u64);
}

/// The server binary with its default timings scaled down (`--request-timeout-secs 3`): with
/// every broker down, the publish gives up before the request does, so the answer is the
/// publish's clean refusal (units returned), not a request cut off while its event might still
/// be delivered later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_gives_up_on_kafka_before_the_request_times_out() {
    let host = MockHost::start();
    let topic = nexussale_core::testkit::unique_name("orders-");
    host.create_topic(&topic, 1);
    host.create_topic(&format!("{topic}.dlq"), 1);
    let (server, address) = common::start_server(&[
        "--kafka-brokers",
        host.bootstrap(),
        "--kafka-topic",
        &topic,
        "--request-timeout-secs",
        "3",
    ]);
    let http = common::client();
    let purchase = format!("http://{address}/v1/sales/ps5/purchase");
    let (status, body) =
        common::send(&http, Method::POST, &purchase, Some(json!({"user": "a"}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for broker in 1..=3 {
        host.broker_down(broker);
    }
    let started = Instant::now();
    let (status, body) =
        common::send(&http, Method::POST, &purchase, Some(json!({"user": "b"}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["message"], "a backend is unavailable; retry shortly",
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let (_, sale) = common::send(
        &http,
        Method::GET,
        &format!("http://{address}/v1/sales/ps5"),
        None,
    )
    .await;
    assert_eq!(sale["reserved"], 1, "{sale}");
    for broker in 1..=3 {
        host.broker_up(broker);
    }
    common::stop(server);
}

/// Every warning and error line the server has logged so far.
fn loud_lines(log: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .cloned()
        .collect()
}

/// An outage is a few log lines, not one per failure: with every broker down, 100 refused
/// purchases and librdkafka's reconnect attempts add at most a handful of warnings (the flood
/// was ~35 lines a second from librdkafka, each twice, plus two per refused purchase); once the
/// brokers are back, one line says so, with the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_logged_once_with_counts_not_per_failure() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let host = MockHost::start();
    let topic = nexussale_core::testkit::unique_name("orders-");
    host.create_topic(&topic, 1);
    host.create_topic(&format!("{topic}.dlq"), 1);
    let child = Command::new(env!("CARGO_BIN_EXE_nexussale-server"))
        .args(["--listen", "127.0.0.1:0", "--sale", "ps5=1000"])
        .args(["--kafka-brokers", host.bootstrap(), "--kafka-topic", &topic])
        .args(["--request-timeout-secs", "3"])
        .env("RUST_LOG", "info")
        .env_remove("NEXUSSALE_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    let pipes: [Box<dyn std::io::Read + Send>; 2] = [
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    let server = common::Server::from(child);
    let log = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    for pipe in pipes {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        });
    }
    let address = loop {
        let found = log.lock().unwrap().iter().find_map(|line| {
            let at = line.find("address=")?;
            Some(
                line[at + "address=".len()..]
                    .split_whitespace()
                    .next()?
                    .to_owned(),
            )
        });
        if let Some(address) = found {
            break address;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let http = common::client();
    let purchase = format!("http://{address}/v1/sales/ps5/purchase");
    let (status, body) = common::send(
        &http,
        Method::POST,
        &purchase,
        Some(json!({"user": "first"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let before = loud_lines(&log).len();

    for broker in 1..=3 {
        host.broker_down(broker);
    }
    let refused = futures::future::join_all((0..100).map(|n| {
        let (http, purchase) = (http.clone(), purchase.clone());
        async move {
            common::send(
                &http,
                Method::POST,
                &purchase,
                Some(json!({"user": format!("u{n}")})),
            )
            .await
            .0
        }
    }))
    .await;
    assert!(
        refused
            .iter()
            .all(|status| *status == StatusCode::SERVICE_UNAVAILABLE),
        "{refused:?}"
    );
    // librdkafka keeps reconnecting meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let outage: Vec<String> = loud_lines(&log).split_off(before);
    assert!(
        !outage.is_empty() && outage.len() <= 6,
        "{} lines for one outage:\n{}",
        outage.len(),
        outage.join("\n")
    );

    for broker in 1..=3 {
        host.broker_up(broker);
    }
    // Buying again for a while: the queue answers, and after a second of answering the log says
    // it recovered, with the count.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    loop {
        n += 1;
        let _ = common::send(
            &http,
            Method::POST,
            &purchase,
            Some(json!({"user": format!("back{n}")})),
        )
        .await;
        let recovered =
            log.lock().unwrap().iter().any(|line| {
                line.contains("order queue recovered after") && line.contains("failures=")
            });
        if recovered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery line:\n{}",
            log.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    common::stop(server);
}
