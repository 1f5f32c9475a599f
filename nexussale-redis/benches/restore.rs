//! Orders restored per second by `RedisStockStore::restore` (a sale rebuilt from its orders),
//! against the floor of the same records written by plain pipelined `HSET`s, one key per
//! millisecond's bucket as the store files them, interleaved in one run; with Redis's CPU
//! microseconds per order for each (`INFO cpu`, so the Redis must be this bench's alone).
//!
//! ```text
//! cargo bench -p nexussale-redis --bench restore
//! ```
//!
//! Two sales: one order a millisecond (`scripts/scale.sh orders`' big sale: every bucket holds
//! one record) and twenty (a flash sale's burst). The orders are as the scale harness loads
//! them: 5 % pending, 10 % cancelled, 10 % expired, the rest paid; two orders a buyer, far apart.
//!
//! Environment: `NEXUSSALE_REDIS_URL` (default `redis://127.0.0.1:6379`), `NEXUSSALE_BENCH_OPS`
//! (orders a restore, default 100,000), `NEXUSSALE_BENCH_ROUNDS` (default 3; medians).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a failure ends it

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use nexussale_core::testkit::bench::{env_or, median};
use nexussale_core::testkit::services::redis_url;
use nexussale_core::testkit::{unique_name, unique_sku};
use nexussale_core::{Order, OrderId, OrderStatus, Sale, StockStore, UserId};
use nexussale_redis::redis::{self, aio::MultiplexedConnection};
use nexussale_redis::{RedisConfig, RedisStockStore};

/// `count` orders of `sale`, `per_ms` a millisecond from `start`.
fn orders(sale: &Sale, count: usize, per_ms: usize, start: DateTime<Utc>) -> Vec<Order> {
    (0..count)
        .map(|i| {
            let created = start + Duration::milliseconds((i / per_ms) as i64);
            let status = match i % 20 {
                0 => OrderStatus::Pending,
                1 | 2 => OrderStatus::Cancelled,
                3 | 4 => OrderStatus::Expired,
                _ => OrderStatus::Paid,
            };
            Order {
                id: OrderId::at(created),
                sku: sale.sku.clone(),
                user: UserId::new(format!("user-{}", i % (count / 2).max(1))).unwrap(),
                quantity: 1,
                status,
                created_at: created,
                updated_at: created,
                expires_at: created + Duration::minutes(15),
                remark: None,
                idempotency_key: None,
            }
        })
        .collect()
}

/// Redis's CPU seconds so far (user and system).
async fn redis_cpu(conn: &mut MultiplexedConnection) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| *name == "used_cpu_user" || *name == "used_cpu_sys")
        .map(|(_, value)| value.trim().parse::<f64>().unwrap())
        .sum()
}

/// (orders a second, Redis CPU µs an order) of `run`, which writes `count` orders.
async fn measure<F: Future<Output = ()>>(
    conn: &mut MultiplexedConnection,
    count: usize,
    run: F,
) -> (f64, f64) {
    let cpu = redis_cpu(conn).await;
    let start = Instant::now();
    run.await;
    let took = start.elapsed().as_secs_f64();
    let used = redis_cpu(conn).await - cpu;
    (count as f64 / took, used * 1e6 / count as f64)
}

/// The floor: each order's record written with `HSET` into its millisecond's key, pipelined in
/// chunks of 500 (the store's restore chunk), nothing else; the keys deleted after.
async fn floor(conn: &mut MultiplexedConnection, orders: &[Order]) -> (f64, f64) {
    let prefix = unique_name("restore-floor-");
    let record = "c1,1700000000000000,1700000900000000\nuser-0000000\n";
    let writer = conn.clone();
    let result = measure(conn, orders.len(), async {
        for chunk in orders.chunks(500) {
            let mut pipe = redis::pipe();
            for order in chunk {
                let key = format!("{prefix}:{}", order.created_at.timestamp_millis());
                pipe.hset(key, order.id.as_uuid().as_bytes(), record)
                    .ignore();
            }
            let () = pipe.query_async(&mut writer.clone()).await.unwrap();
        }
    })
    .await;
    let mut keys: Vec<String> = orders
        .iter()
        .map(|order| format!("{prefix}:{}", order.created_at.timestamp_millis()))
        .collect();
    keys.dedup();
    for chunk in keys.chunks(1000) {
        let _: i64 = redis::cmd("UNLINK")
            .arg(chunk)
            .query_async(conn)
            .await
            .unwrap();
    }
    result
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let count: usize = env_or("NEXUSSALE_BENCH_OPS", 100_000);
    let rounds: usize = env_or("NEXUSSALE_BENCH_ROUNDS", 3);
    let url = redis_url();
    let config = RedisConfig::default().prefix(unique_name("restore-bench-"));
    let store = RedisStockStore::connect_with(&url, config).await.unwrap();
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    println!("restore of {count} orders, {rounds} rounds (medians)");
    println!(
        "| orders a ms | restore, orders/s | floor (HSET), orders/s | restore ÷ floor | Redis CPU µs/order: restore | floor |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for per_ms in [1, 20] {
        let (mut rates, mut floors, mut ratios, mut cpus, mut floor_cpus) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            let sale = Sale::new(unique_sku(), count as u64 * 2).with_per_user_limit(4);
            let orders = orders(&sale, count, per_ms, Utc::now() - Duration::hours(1));
            let (rate, cpu) = measure(&mut conn, count, async {
                store.restore(&sale, &orders).await.unwrap();
            })
            .await;
            store.purge().await.unwrap();
            let (floor_rate, floor_cpu) = floor(&mut conn, &orders).await;
            rates.push(rate);
            floors.push(floor_rate);
            ratios.push(rate / floor_rate);
            cpus.push(cpu);
            floor_cpus.push(floor_cpu);
        }
        println!(
            "| {per_ms} | {:.0} | {:.0} | {:.3} | {:.2} | {:.2} |",
            median(rates),
            median(floors),
            median(ratios),
            median(cpus),
            median(floor_cpus)
        );
    }
}
