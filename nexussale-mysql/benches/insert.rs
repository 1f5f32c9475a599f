//! Orders persisted per second through `MySqlOrderRepository::insert`: one order per call
//! (autocommit) against batches of 500, and, in the same run, the `mysql` command-line client
//! loading the same batches as a SQL file of 500-row `INSERT`s.
//!
//! ```text
//! cargo bench -p nexussale-mysql --bench insert
//! ```
//!
//! Environment: `NEXUSSALE_DATABASE_URL` (default `mysql://root@127.0.0.1:3306/test`; its host,
//! port and user go to the `mysql` client too), `NEXUSSALE_BENCH_ORDERS` (orders per batched
//! measurement, default 50,000; the single-order measurement writes a tenth), and
//! `NEXUSSALE_BENCH_ROUNDS` (default 3; the median is reported). Each measurement starts from an
//! empty table, in a database the bench creates and drops.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a failure ends it

use std::fmt::Write;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::Utc;
use nexussale_core::testkit::bench::{env_or, median};
use nexussale_core::testkit::services::database_url;
use nexussale_core::testkit::{fixtures, unique_name};
use nexussale_core::{Order, OrderRepository, Sku};
use nexussale_mysql::sqlx::{self, Connection};
use nexussale_mysql::{MySqlConfig, MySqlOrderRepository};

const BATCH: usize = 500;

fn orders(count: usize) -> Vec<Order> {
    fixtures::orders(&Sku::new("bench").unwrap(), count)
}

/// The statement `insert` sends for a batch, with the values written out.
fn sql_file(orders: &[Order]) -> String {
    let at = |t: chrono::DateTime<Utc>| t.format("'%Y-%m-%d %H:%M:%S%.6f'").to_string();
    let mut sql = String::new();
    for batch in orders.chunks(BATCH) {
        sql.push_str(
            "INSERT INTO orders (id, sku, user_id, quantity, status, created_at, updated_at, \
             expires_at, remark, idempotency_key) VALUES ",
        );
        for (i, order) in batch.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(
                sql,
                "{sep}(X'{}','{}','{}',{},'{}',{},{},{},NULL,NULL)",
                order.id.as_uuid().simple(),
                order.sku.as_str(),
                order.user.as_str(),
                order.quantity,
                order.status.as_str(),
                at(order.created_at),
                at(order.updated_at),
                at(order.expires_at),
            )
            .unwrap();
        }
        sql.push_str(" ON DUPLICATE KEY UPDATE redeliveries = redeliveries + 1;\n");
    }
    sql
}

/// Host, port and user of a `mysql://user[:password]@host[:port]/db` URL.
fn client_args(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['/', '?']).next().unwrap_or(rest);
    let (userinfo, host) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let (host, port) = host.rsplit_once(':').unwrap_or((host, "3306"));
    let mut args = vec![
        format!("-h{host}"),
        format!("-P{port}"),
        format!("-u{user}"),
    ];
    if !password.is_empty() {
        args.push(format!("-p{password}"));
    }
    args
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let batched_orders = env_or("NEXUSSALE_BENCH_ORDERS", if quick { 2_000 } else { 50_000 });
    let single_orders = batched_orders / 10;
    let rounds = env_or("NEXUSSALE_BENCH_ROUNDS", if quick { 1 } else { 3 });

    let url = database_url();
    let database = unique_name("nexussale_bench_");
    let mut admin = sqlx::MySqlConnection::connect(&url).await.expect("mysql");
    sqlx::query(&format!("CREATE DATABASE `{database}`"))
        .execute(&mut admin)
        .await
        .unwrap();
    let root = url.split('?').next().unwrap_or(&url);
    let root = root.rsplit_once('/').map_or(root, |(root, _)| root);
    let repository = MySqlOrderRepository::connect_with(
        &format!("{root}/{database}"),
        MySqlConfig::default().max_connections(2),
    )
    .await
    .unwrap();
    repository.migrate().await.unwrap();
    let empty = || async {
        sqlx::query("TRUNCATE TABLE orders")
            .execute(repository.pool())
            .await
            .unwrap();
    };
    let stored = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders")
            .fetch_one(repository.pool())
            .await
            .unwrap();
        n as usize
    };

    let (mut single, mut batched, mut client) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let order: [u8; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for which in order {
            empty().await;
            match which {
                0 => {
                    let orders = orders(single_orders);
                    let start = Instant::now();
                    for order in &orders {
                        repository
                            .insert(std::slice::from_ref(order))
                            .await
                            .unwrap();
                    }
                    single.push(orders.len() as f64 / start.elapsed().as_secs_f64());
                }
                1 => {
                    let orders = orders(batched_orders);
                    let start = Instant::now();
                    for batch in orders.chunks(BATCH) {
                        repository.insert(batch).await.unwrap();
                    }
                    batched.push(orders.len() as f64 / start.elapsed().as_secs_f64());
                }
                _ => {
                    let sql = sql_file(&orders(batched_orders));
                    let start = Instant::now();
                    let mut mysql = Command::new("mysql")
                        .args(client_args(&url))
                        .arg(&database)
                        .stdin(Stdio::piped())
                        .spawn()
                        .expect("the mysql client on PATH");
                    mysql
                        .stdin
                        .take()
                        .unwrap()
                        .write_all(sql.as_bytes())
                        .unwrap();
                    assert!(mysql.wait().unwrap().success(), "mysql client failed");
                    client.push(batched_orders as f64 / start.elapsed().as_secs_f64());
                }
            }
            let expected = if which == 0 {
                single_orders
            } else {
                batched_orders
            };
            assert_eq!(stored().await, expected, "every order stored");
        }
    }
    let (single, batched, client) = (median(single), median(batched), median(client));
    println!(
        "mysql: {url}; {batched_orders} orders per batched measurement, {single_orders} single, median of {rounds}"
    );
    println!(
        "| single-order inserts /s | batches of {BATCH} /s | mysql client, {BATCH}-row INSERTs /s | batched ÷ single | batched ÷ mysql client |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {single:.0} | {batched:.0} | {client:.0} | {:.1} | {:.2} |",
        batched / single,
        batched / client
    );
    repository.pool().close().await;
    sqlx::query(&format!("DROP DATABASE `{database}`"))
        .execute(&mut admin)
        .await
        .unwrap();
}
