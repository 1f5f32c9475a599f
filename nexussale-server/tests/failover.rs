//! The server on Redis Sentinel (`--redis-sentinel`), its primary killed in the middle of a
//! burst: a primary, a replica and three sentinels started by the test (`testkit::RedisSentinel`)
//! on free ports, stopped when it ends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{HttpClient, Server, client, json_request, start_server};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use nexussale_core::testkit::services::unavailable;
use nexussale_core::testkit::unique_name;
use nexussale_redis::testkit::RedisSentinel;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// One purchase's answer: when it came, its status, its `Retry-After`, its error code.
struct Answer {
    at: Instant,
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

/// A primary, a replica and three sentinels watching `master`, and a server on them with
/// `extra` flags (and a key prefix of its own); `None` (skip) without `redis-server`.
fn on_sentinel(master: &str, extra: &[&str]) -> Option<(RedisSentinel, Server, String)> {
    let redis = match RedisSentinel::start(master) {
        Ok(redis) => redis,
        Err(reason) => return unavailable("redis sentinel (redis-server, redis-cli)", reason),
    };
    let sentinels = redis.urls().join(",");
    let prefix = unique_name("failover-");
    let mut flags = vec![
        "--redis-url",
        &sentinels,
        "--redis-sentinel",
        redis.master_name(),
        "--redis-prefix",
        &prefix,
    ];
    flags.extend_from_slice(extra);
    let (server, address) = start_server(&flags);
    Some((redis, server, address))
}

/// One purchase by `user`, answered within 10 s.
async fn purchase(client: &HttpClient, url: &str, user: &str) -> Answer {
    let request = json_request(Method::POST, url, Some(json!({ "user": user })));
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .expect("a purchase hung for 10 s")
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        at: Instant::now(),
        status,
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap(),
    }
}

/// Purchases keep coming from 16 buyers at once while the primary is killed: before the kill
/// they are accepted; while no master is reachable they get 503 `unavailable` with
/// `Retry-After`, never another error and never a hang; once the sentinels have promoted the
/// replica, the same server process (no restart) accepts them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_wait_out_a_sentinel_failover_and_are_served_again() {
    let Some((mut redis, server, address)) = on_sentinel("shop", &["--sale", "drop=1000000"])
    else {
        return;
    };
    let url = format!("http://{address}/v1/sales/drop/purchase");
    let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let buyers: Vec<_> = (0..16)
        .map(|buyer| {
            let (client, url) = (client(), url.clone());
            let (answers, done) = (Arc::clone(&answers), Arc::clone(&done));
            tokio::spawn(async move {
                let mut n = 0;
                while !done.load(Ordering::Relaxed) {
                    n += 1;
                    let answer = purchase(&client, &url, &format!("buyer-{buyer}-{n}")).await;
                    answers.lock().push(answer);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    let old = redis.kill_primary().unwrap();
    let (redis, new) = tokio::task::spawn_blocking(move || {
        let new = redis.wait_for_failover(old);
        (redis, new)
    })
    .await
    .unwrap();
    let new = new.unwrap();
    let promoted_at = Instant::now();
    // Served again: wait for accepted purchases after the promotion, 10 s at most.
    let deadline = promoted_at + Duration::from_secs(10);
    while Instant::now() < deadline
        && answers
            .lock()
            .iter()
            .filter(|answer| answer.at > promoted_at && answer.status == StatusCode::ACCEPTED)
            .count()
            < 50
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done.store(true, Ordering::Relaxed);
    for buyer in buyers {
        buyer.await.unwrap();
    }

    let answers = answers.lock();
    let accepted = |from: Instant, to: Instant| {
        answers
            .iter()
            .filter(|answer| answer.at > from && answer.at < to)
            .filter(|answer| answer.status == StatusCode::ACCEPTED)
            .count()
    };
    let start = killed_at - Duration::from_secs(60);
    let end = Instant::now();
    assert!(
        accepted(start, killed_at) > 0,
        "nothing sold before the kill"
    );
    assert!(
        accepted(promoted_at, end) >= 50,
        "the server did not sell again after the sentinels named {new}"
    );
    let mut unavailable = 0;
    for answer in answers.iter() {
        match answer.status {
            StatusCode::ACCEPTED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer.body["error"], "unavailable", "{}", answer.body);
                assert!(answer.retry_after.is_some(), "a 503 without Retry-After");
                assert!(answer.at > killed_at, "refused before the kill");
                unavailable += 1;
            }
            other => panic!("{other} during a failover: {}", answer.body),
        }
    }
    assert!(unavailable > 0, "no purchase met the failover");
    drop((server, redis));
}

/// `--redis-replica-acks 1`: with the replica stopped (SIGSTOP), a purchase is answered 503
/// `unavailable` with `Retry-After` within the request's time, never 202, since a failover could
/// take its reservation back; with the replica resumed, purchases are accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replica_acks_a_purchase_waits_for_the_replica() {
    let Some((redis, server, address)) = on_sentinel("acked", &["--redis-replica-acks", "1"])
    else {
        return;
    };
    let url = format!("http://{address}/v1/sales/ps5/purchase");
    let client = client();
    let before = purchase(&client, &url, "before").await;
    assert_eq!(before.status, StatusCode::ACCEPTED, "{}", before.body);

    redis.pause_replica().unwrap();
    let started = Instant::now();
    let paused = purchase(&client, &url, "paused").await;
    redis.resume_replica().unwrap();
    assert_eq!(
        paused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        paused.body
    );
    assert_eq!(paused.body["error"], "unavailable", "{}", paused.body);
    assert!(paused.retry_after.is_some(), "a 503 without Retry-After");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let after = purchase(&client, &url, "after").await;
    assert_eq!(after.status, StatusCode::ACCEPTED, "{}", after.body);
    drop((server, redis));
}
