//! kill -9 of the server in the middle of a burst, on the full stack (Redis stock, Kafka events on
//! librdkafka's mock cluster, MySQL orders), then a restart: every purchase answered 202 before
//! the crash is persisted, a retry with the same idempotency key answers the same order (and a
//! purchase whose answer the crash swallowed is settled by its retry), and once the reservation
//! TTL has passed and the sweeper has run, the counts add up: available + reserved + sold =
//! stock, with reserved back to 0.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Stack, client, send, start_server, stop};
use http::{Method, StatusCode};
use nexussale_core::testkit::services::redis_url;
use nexussale_mysql::sqlx;
use nexussale_redis::{RedisConfig, RedisStockStore};
use parking_lot::Mutex;
use serde_json::json;

const STOCK: u64 = 100_000;
const TTL_SECS: u64 = 10;

/// What a buyer was told before the crash: an order, or nothing (the answer was lost).
type Outcomes = Arc<Mutex<HashMap<String, Option<String>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_burst_then_restart_loses_nothing_and_the_counts_add_up() {
    let Some(mut services) = Stack::start("crash", 4).await else {
        return;
    };
    let store = RedisStockStore::connect_with(
        &redis_url(),
        RedisConfig::default().prefix(services.prefix.clone()),
    )
    .await
    .unwrap();
    // The dead process's consumer leaves the group after this, not librdkafka's 45 s.
    let stack = services.args(&[
        "--kafka-option",
        "session.timeout.ms=6000",
        "--kafka-option",
        "heartbeat.interval.ms=500",
    ]);

    let (mut doomed, address) = start_server(&stack);
    let base = format!("http://{address}");
    let http = client();
    let (status, body) = send(
        &http,
        Method::POST,
        &format!("{base}/v1/sales"),
        Some(json!({ "sku": "crash", "stock": STOCK, "reservation_ttl_secs": TTL_SECS })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // 32 buyers' loops, each buyer once with their name as the idempotency key, until the
    // server dies under them.
    let outcomes: Outcomes = Arc::default();
    let buyers: Vec<_> = (0..32)
        .map(|worker| {
            let (http, base, outcomes) = (http.clone(), base.clone(), Arc::clone(&outcomes));
            tokio::spawn(async move {
                for n in 0..100 {
                    let user = format!("buyer-{worker}-{n}");
                    outcomes.lock().insert(user.clone(), None);
                    let request = common::json_request(
                        Method::POST,
                        &format!("{base}/v1/sales/crash/purchase"),
                        Some(json!({ "user": user, "idempotency_key": user })),
                    );
                    // The server gone, the answer is lost: an error, or no answer in time.
                    let Ok(Some((status, body))) = common::answer(&http, request).await else {
                        return;
                    };
                    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                    let id = body["order_id"].as_str().unwrap().to_owned();
                    outcomes.lock().insert(user, Some(id));
                }
            })
        })
        .collect();
    // Mid-burst: once a few hundred purchases were answered (the first ones wait for the
    // producer's first connection to the brokers).
    let deadline = Instant::now() + Duration::from_secs(20);
    while outcomes.lock().values().filter(|id| id.is_some()).count() < 300 {
        assert!(Instant::now() < deadline, "no burst within 20 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    doomed.kill(); // SIGKILL: no drain, no goodbye
    for buyer in buyers {
        buyer.await.unwrap();
    }
    let outcomes = outcomes.lock().clone();
    let answered: HashMap<&String, &String> = outcomes
        .iter()
        .filter_map(|(user, id)| id.as_ref().map(|id| (user, id)))
        .collect();
    eprintln!(
        "{} purchases answered 202 before the kill, {} lost their answer",
        answered.len(),
        outcomes.len() - answered.len()
    );
    assert!(
        !answered.is_empty(),
        "the server died before accepting anything"
    );

    // A new process over the same backends.
    let (server, address) = start_server(&stack);
    let base = format!("http://{address}");
    let purchase = format!("{base}/v1/sales/crash/purchase");
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    let retries: Vec<_> = outcomes
        .iter()
        .map(|(user, before)| {
            let (http, purchase, permits) = (http.clone(), purchase.clone(), Arc::clone(&permits));
            let (user, before) = (user.clone(), before.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire().await.unwrap();
                let body = json!({ "user": user, "idempotency_key": user });
                let (status, body) = send(&http, Method::POST, &purchase, Some(body)).await;
                assert_eq!(status, StatusCode::ACCEPTED, "{user}: {body}");
                let id = body["order_id"].as_str().unwrap().to_owned();
                if let Some(before) = before {
                    assert_eq!(id, before, "{user}'s retry answered another order");
                }
                (user, id)
            })
        })
        .collect();
    let mut orders: HashMap<String, String> = HashMap::new();
    for retry in retries {
        let (user, id) = retry.await.unwrap();
        orders.insert(user, id);
    }

    // Ten orders are paid (once the new worker has persisted them; one that lapsed is a
    // conflict, and the next is tried).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut paid: u64 = 0;
    let mut to_pay = orders.values();
    let mut id = to_pay.next().unwrap();
    while paid < 10 {
        let uri = format!("{base}/v1/orders/{id}/pay");
        let (status, body) = send(&http, Method::POST, &uri, None).await;
        match status {
            StatusCode::OK | StatusCode::CONFLICT => {
                paid += u64::from(status == StatusCode::OK);
                id = to_pay.next().expect("too few orders left to pay");
            }
            // Not persisted yet: the new worker is still taking over the partitions.
            StatusCode::NOT_FOUND => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("pay {id}: {other} {body}"),
        }
        assert!(
            Instant::now() < deadline,
            "orders not persisted within 30 s"
        );
    }

    // After the TTL and the sweeper: nothing reserved, the books balance, one order per buyer.
    let settled = Instant::now() + Duration::from_secs(TTL_SECS + 20);
    let sale = loop {
        let (_, sale) = send(&http, Method::GET, &format!("{base}/v1/sales/crash"), None).await;
        if sale["reserved"] == 0 {
            break sale;
        }
        assert!(
            Instant::now() < settled,
            "reservations never settled: {sale}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sale["sold"], paid);
    assert_eq!(sale["available"], STOCK - paid);
    let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(&format!(
        "SELECT user_id, CAST(status AS BINARY) FROM `{}`.orders WHERE sku = 'crash'",
        services.database
    ))
    .fetch_all(&mut services.admin)
    .await
    .unwrap();
    let rows: Vec<(String, String)> = rows
        .into_iter()
        .map(|(user, status)| {
            (
                String::from_utf8(user).unwrap(),
                String::from_utf8(status).unwrap(),
            )
        })
        .collect();
    let users: HashSet<&str> = rows.iter().map(|(user, _)| user.as_str()).collect();
    assert_eq!(users.len(), rows.len(), "a buyer has two orders");
    assert_eq!(
        users.len(),
        orders.len(),
        "orders persisted ≠ buyers answered"
    );
    let paid_rows = rows.iter().filter(|(_, status)| status == "paid").count();
    assert_eq!(paid_rows as u64, paid);
    assert!(
        rows.iter()
            .all(|(_, status)| status == "paid" || status == "expired")
    );

    stop(server);
    services.drop_database().await;
    assert_eq!(store.purge().await.unwrap(), 2);
}
