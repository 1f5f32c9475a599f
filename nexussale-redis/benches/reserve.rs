//! Reservations per second through `RedisStockStore`, coalesced and not, against
//! `redis-benchmark` running the same `reserve.lua` by `EVALSHA` on the same keys, at the same
//! concurrency, interleaved in one run.
//!
//! ```text
//! cargo bench -p nexussale-redis --bench reserve
//! ```
//!
//! Environment: `NEXUSSALE_REDIS_URL` (default `redis://127.0.0.1:6379`; host and port are handed to
//! redis-benchmark too), `NEXUSSALE_BENCH_OPS` (reservations per measurement, default 100,000; a
//! tenth of that at concurrency 1), `NEXUSSALE_BENCH_ROUNDS` (default 3; the median is reported),
//! `NEXUSSALE_BENCH_CONCURRENCY` (default `1,64,256`), `NEXUSSALE_BENCH_ONLY` (`baseline`,
//! `direct`, `coalesced` or `pipelined`: run that one alone, for profiling; ratios then read 0;
//! `acks`: only the second table).
//!
//! A second table measures replica acknowledgement: coalesced reservations on a primary with one
//! replica (both started by the bench on free ports, `redis-server` on PATH) with
//! `replica_acks = 1` ÷ without, interleaved.
//!
//! The client runs on one thread, as redis-benchmark does; Redis has the other core.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a failure ends it

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::Utc;
use nexussale_core::testkit::bench::{env_or, median};
use nexussale_core::testkit::services::redis_url;
use nexussale_core::testkit::unique_name;
use nexussale_core::{OrderId, ReserveOutcome, ReserveRequest, Sale, Sku, StockStore, UserId};
use nexussale_redis::redis::Script;
use nexussale_redis::testkit::RedisSentinel;
use nexussale_redis::{RedisConfig, RedisStockStore};

/// Host and port of a `redis://host:port[/db]` URL.
fn host_port(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.to_owned()),
        None => (authority.to_owned(), "6379".to_owned()),
    }
}

/// `ops` reservations by distinct users through `store`, `concurrency` at a time.
async fn ours(store: &RedisStockStore, sku: &Sku, ops: u64, concurrency: u64) -> f64 {
    let next = Arc::new(AtomicU64::new(0));
    let run = unique_name("r");
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (store, sku, next, run) =
                (store.clone(), sku.clone(), Arc::clone(&next), run.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops {
                        break;
                    }
                    let request = ReserveRequest {
                        order_id: OrderId::new(),
                        sku: sku.clone(),
                        user: UserId::new(format!("{run}-{i}")).unwrap(),
                        quantity: 1,
                        idempotency_key: None,
                        remark: None,
                        now: Utc::now(),
                    };
                    let outcome = store.reserve(&request).await.unwrap();
                    assert!(
                        matches!(outcome, ReserveOutcome::Reserved { .. }),
                        "{outcome:?}"
                    );
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

/// `redis-benchmark` sending the same script on the same keys, `pipeline` calls per round trip
/// per connection (1: unpipelined): a random user and order id per call, a representative record.
fn baseline(url: &str, prefix: &str, sku: &Sku, ops: u64, concurrency: u64, pipeline: u32) -> f64 {
    let (host, port) = host_port(url);
    // The script as the store loads it (src/scripts.rs): `#!lua`, the guard, the script.
    let script = format!(
        "#!lua\n{}{}{}",
        include_str!("../src/lua/guard.lua"),
        include_str!("../src/lua/records.lua"),
        include_str!("../src/lua/reserve.lua")
    );
    let sha = Script::new(&script).get_hash().to_owned();
    let base = format!("{prefix}:{{{sku}:0}}");
    let now = Utc::now();
    // The record the store writes (see src/record.rs), for a typical user.
    let micros = now.timestamp_micros();
    let body = format!("{micros}.123,1,{micros}.456\nr2f5e0c1a9b7d-12345\n");
    let nonce = unique_name("b");
    let reservations = || -> u64 {
        let out = Command::new("redis-cli")
            .args(["-h", &host, "-p", &port, "HGET", &format!("{base}:stock")])
            .arg("reserved")
            .output()
            .expect("redis-cli on PATH");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let before = reservations();
    let output = Command::new("redis-benchmark")
        .args(["-h", &host, "-p", &port, "-c", &concurrency.to_string()])
        .args(["-n", &ops.to_string(), "-r", "100000000000", "--csv"])
        .args(["-P", &pipeline.to_string()])
        .args(["EVALSHA", &sha, "5"])
        .args(["stock", "held", "keys", "r:", "buckets"].map(|k| format!("{base}:{k}")))
        .args(["0", "1", &now.timestamp_micros().to_string()])
        // redis-benchmark's random numbers can repeat from one run to the next: a nonce per run
        // keeps its users and order ids new to the sale.
        .args([&format!("{nonce}-u__rand_int__"), "1", ""])
        // An id's first 6 bytes name its bucket (src/lua/records.lua): "o0" and four random
        // digits spread the calls over 10,000 buckets, about as many reservations a bucket
        // as a burst of 10 a millisecond makes.
        .args([&format!("o__rand_int__{nonce}"), &body])
        .arg(now.timestamp_micros().to_string())
        .output()
        .expect("redis-benchmark (Debian package redis-tools) on PATH");
    let text = String::from_utf8_lossy(&output.stdout);
    // CSV: a header, then "<command>","<requests per second>" and six latencies; the command
    // holds commas of its own, so count from the end.
    let rate = text
        .lines()
        .filter(|line| line.starts_with("\"EVALSHA"))
        .filter_map(|line| line.rsplit(',').nth(6))
        .find_map(|rps| rps.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no rate in redis-benchmark output: {text}"));
    // redis-benchmark does not report error replies: check that its calls really reserved.
    let made = reservations() - before;
    assert!(
        made * 100 >= ops * 99,
        "redis-benchmark made {made} reservations of {ops}: {text}"
    );
    rate
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too, with less work.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let url = redis_url();
    let ops = env_or("NEXUSSALE_BENCH_OPS", if quick { 2_000 } else { 100_000 });
    let rounds = env_or("NEXUSSALE_BENCH_ROUNDS", if quick { 1 } else { 3 });
    let levels: Vec<u64> = std::env::var("NEXUSSALE_BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "1,64,256".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let only = std::env::var("NEXUSSALE_BENCH_ONLY").ok();
    let prefix = unique_name("nexussale-bench-");
    if only.as_deref() != Some("acks") {
        against_redis_benchmark(&url, &prefix, ops, rounds, &levels, only.as_deref()).await;
    }
    if only.is_none() || only.as_deref() == Some("acks") {
        replica_acks(ops, rounds, &levels).await;
    }
}

/// The store against redis-benchmark on `url`: the first table.
async fn against_redis_benchmark(
    url: &str,
    prefix: &str,
    ops: u64,
    rounds: usize,
    levels: &[u64],
    only: Option<&str>,
) {
    let config = RedisConfig::default().prefix(prefix);
    let coalesced = RedisStockStore::connect_with(url, config.clone())
        .await
        .expect("redis");
    let direct = RedisStockStore::connect_with(url, config.coalesce(false))
        .await
        .expect("redis");
    // Each measurement gets a sale of its own, as a real one would: its hashes grow from empty
    // (a sale that already holds millions of reservations would measure cache misses instead).
    // It never sells out: every call does the whole reservation.
    let mut sales = 0;
    let mut fresh_sale = async || {
        coalesced.purge().await.unwrap();
        // UNLINK frees in the background: let it finish before the next measurement.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        sales += 1;
        let sale = Sale::new(
            Sku::new(format!("bench-{sales}")).unwrap(),
            nexussale_core::MAX_STOCK,
        );
        coalesced.create_sale(&sale).await.unwrap();
        // Loads the script, before redis-benchmark calls it by hash.
        ours(&direct, &sale.sku, 10, 1).await;
        sale
    };

    println!("redis: {url}; {ops} reservations per measurement, median of {rounds}");
    println!(
        "| concurrency | redis-benchmark EVALSHA /s | RedisStockStore /s | ratio | coalesced /s | ratio | redis-benchmark -P 16 /s | ratio |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &concurrency in levels {
        let ops = if concurrency == 1 { ops / 10 } else { ops };
        let mut rates: [Vec<f64>; 4] = Default::default();
        for round in 0..rounds {
            // Alternate the order so drift on a shared machine hits all of them alike.
            let order: [usize; 4] = if round % 2 == 0 {
                [0, 1, 2, 3]
            } else {
                [3, 2, 1, 0]
            };
            for which in order {
                let name = ["baseline", "direct", "coalesced", "pipelined"][which];
                if only.is_some_and(|only| only != name) {
                    continue;
                }
                let sale = fresh_sale().await;
                let rate = match which {
                    0 => baseline(url, prefix, &sale.sku, ops, concurrency, 1),
                    1 => ours(&direct, &sale.sku, ops, concurrency).await,
                    2 => ours(&coalesced, &sale.sku, ops, concurrency).await,
                    _ => baseline(url, prefix, &sale.sku, ops, concurrency, 16),
                };
                rates[which].push(rate);
            }
        }
        let [base, plain, batched, pipelined] = rates.map(median);
        let base = if base > 0.0 { base } else { f64::INFINITY };
        println!(
            "| {concurrency} | {base:.0} | {plain:.0} | {:.2} | {batched:.0} | {:.2} | {pipelined:.0} | {:.2} |",
            plain / base,
            batched / base,
            pipelined / base,
        );
    }
    coalesced.purge().await.unwrap();
}

/// Coalesced reservations on a primary with one replica (started here, on free ports), with
/// `replica_acks = 1` against without, interleaved in one run: the second table.
async fn replica_acks(ops: u64, rounds: usize, levels: &[u64]) {
    let redis = match RedisSentinel::start("bench") {
        Ok(redis) => redis,
        Err(reason) => {
            println!("replica acknowledgement: skipped, no primary and replica ({reason})");
            return;
        }
    };
    let url = format!("redis://127.0.0.1:{}", redis.primary_port().unwrap());
    let config = RedisConfig::default().prefix(unique_name("nexussale-bench-acks-"));
    let unacked = RedisStockStore::connect_with(&url, config.clone())
        .await
        .expect("the primary");
    let acked = RedisStockStore::connect_with(&url, config.replica_acks(1))
        .await
        .expect("the primary");
    println!();
    println!(
        "primary {url} with one replica; {ops} coalesced reservations per measurement, median of {rounds}"
    );
    println!("| concurrency | replica_acks 0 /s | replica_acks 1 /s | ratio |");
    println!("| ---: | ---: | ---: | ---: |");
    let mut sales = 0;
    for &concurrency in levels {
        let ops = if concurrency == 1 { ops / 10 } else { ops };
        let mut rates: [Vec<f64>; 2] = Default::default();
        for round in 0..rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                unacked.purge().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                sales += 1;
                let sale = Sale::new(
                    Sku::new(format!("acks-{sales}")).unwrap(),
                    nexussale_core::MAX_STOCK,
                );
                unacked.create_sale(&sale).await.unwrap();
                let store = [&unacked, &acked][which];
                rates[which].push(ours(store, &sale.sku, ops, concurrency).await);
            }
        }
        let [without, with] = rates.map(median);
        println!(
            "| {concurrency} | {without:.0} | {with:.0} | {:.2} |",
            with / without
        );
    }
    unacked.purge().await.unwrap();
}
