//! `nexussale-bench` (the binary) against a server in this process: a clean burst passes its
//! audit, a server that loses orders fails it (exit 1), soak mode keeps the stock up by
//! cancelling, and the audit finishes or says why.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::process::Command;

use common::{bench, in_memory, serve, serve_as};
use nexussale_core::{Sale, Sku};
use nexussale_redis::{RedisConfig, RedisStockStore};
use nexussale_server::{BackendConfig, BuyerTokens, Identity};
use serde_json::Value;

#[test]
fn a_clean_burst_passes_the_audit() {
    let server = in_memory(true);
    let address = &server.address;
    let (code, summary) = bench(
        address,
        &[
            "--sku",
            "burst",
            "--stock",
            "300",
            "--users",
            "1000",
            "--concurrency",
            "32",
            "--baseline",
            "500",
        ],
    );
    assert_eq!(code, 0, "{summary}");
    for (field, expected) in [
        ("attempts", 1000),
        ("accepted", 300),
        ("sold_out", 700),
        ("rejected_other", 0),
        ("errors", 0),
        ("persisted", 300),
        ("oversold", 0),
        ("duplicates", 0),
        ("lost", 0),
    ] {
        assert_eq!(summary[field], expected, "{field}: {summary}");
    }
    for field in [
        "rps",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "elapsed_s",
        "health_rps",
        "ratio",
    ] {
        assert!(summary[field].as_f64().unwrap() > 0.0, "{field}: {summary}");
    }
    assert!(
        summary["sold_out_phase_rps"].as_f64().unwrap() > 0.0,
        "{summary}"
    );

    // The sale exists now: creating it again is refused with a hint, and --no-create buys from
    // it (everything sold out).
    let output = Command::new(env!("CARGO_BIN_EXE_nexussale-bench"))
        .args([
            "--url",
            &format!("http://{address}"),
            "--sku",
            "burst",
            "--users",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--no-create"));
    let (code, summary) = bench(address, &["--sku", "burst", "--users", "50", "--no-create"]);
    // The same user names bought in the first run: a refusal is sold out, or (once the sold-out
    // pause lapses and the store is asked) the buyer's limit.
    let refused =
        summary["sold_out"].as_u64().unwrap() + summary["rejected_other"].as_u64().unwrap();
    assert_eq!(
        (code, &summary["accepted"], refused),
        (0, &Value::from(0), 50),
        "{summary}"
    );
    drop(server);
}

#[test]
fn lost_orders_fail_the_audit() {
    // No worker: purchases are accepted into the in-process queue and never persisted.
    let server = in_memory(false);
    let address = &server.address;
    let (code, summary) = bench(
        address,
        &[
            "--sku",
            "lost",
            "--stock",
            "20",
            "--users",
            "40",
            "--concurrency",
            "8",
            "--wait-persisted",
            "1",
        ],
    );
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["accepted"], 20);
    assert_eq!(summary["persisted"], 0);
    assert_eq!(summary["lost"], 20);
    drop(server);
}

#[test]
fn a_soak_keeps_the_stock_up_and_samples_memory() {
    let server = in_memory(true);
    let address = &server.address;
    // The server runs in this process.
    let pid = std::process::id().to_string();
    let (code, summary) = bench(
        address,
        &[
            "--sku",
            "soak",
            "--stock",
            "100",
            "--duration",
            "2",
            "--rate",
            "200",
            "--concurrency",
            "16",
            "--server-pid",
            &pid,
        ],
    );
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["attempts"], 400, "{summary}");
    // 400 buyers, 100 units: only cancelling accepted orders lets more than 100 buy.
    assert!(summary["accepted"].as_u64().unwrap() > 100, "{summary}");
    assert_eq!(summary["cancelled"], summary["accepted"], "{summary}");
    assert_eq!(summary["lost"], 0, "{summary}");
    assert!(
        summary["server_rss_max_mb"].as_f64().unwrap() > 1.0,
        "{summary}"
    );
    drop(server);
}

/// With authentication on, `--jwt-secret` gives every buyer a token of its own and
/// `--admin-token` creates the sale, audits it and (soak) cancels; without buyer tokens nothing
/// is bought.
#[test]
fn bursts_and_soaks_run_with_authentication_on() {
    let identity = Identity::open()
        .with_admin_token("bench-admin")
        .with_buyer_tokens(BuyerTokens::hs256(b"bench-jwt").unwrap());
    let server = serve_as(BackendConfig::default(), Vec::new(), true, identity);
    let address = &server.address;
    let auth = ["--admin-token", "bench-admin", "--jwt-secret", "bench-jwt"];
    let burst = [
        "--sku",
        "authed",
        "--stock",
        "50",
        "--users",
        "200",
        "--concurrency",
        "16",
    ];
    let (code, summary) = bench(address, &[&auth[..], &burst[..]].concat());
    assert_eq!(code, 0, "{summary}");
    for (field, expected) in [
        ("accepted", 50),
        ("sold_out", 150),
        ("persisted", 50),
        ("lost", 0),
        ("errors", 0),
    ] {
        assert_eq!(summary[field], expected, "{field}: {summary}");
    }
    // Buyers without tokens buy nothing (401), and the audit says the sale is untouched.
    let anonymous = [
        "--admin-token",
        "bench-admin",
        "--sku",
        "anon",
        "--stock",
        "50",
        "--users",
        "20",
        "--concurrency",
        "4",
    ];
    let (_, summary) = bench(address, &anonymous);
    assert_eq!(summary["accepted"], 0, "{summary}");
    assert_eq!(summary["oversold"], 0, "{summary}");
    let soak = [
        "--sku",
        "authed-soak",
        "--stock",
        "20",
        "--duration",
        "1",
        "--rate",
        "100",
        "--concurrency",
        "8",
    ];
    let (code, summary) = bench(address, &[&auth[..], &soak[..]].concat());
    assert_eq!(code, 0, "{summary}");
    assert!(summary["accepted"].as_u64().unwrap() > 20, "{summary}");
    assert_eq!(summary["cancelled"], summary["accepted"], "{summary}");
}

/// When the audit cannot finish, the last stdout line is still one JSON object: the load's
/// figures, the audit's as null, and an `error` saying why.
#[test]
fn an_audit_that_cannot_finish_still_prints_its_json_line() {
    let server = in_memory(true);
    let address = &server.address;
    let (code, summary) = bench(
        address,
        &[
            "--no-create",
            "--sku",
            "no-such-sale",
            "--users",
            "50",
            "--concurrency",
            "4",
        ],
    );
    assert_ne!(code, 0, "{summary}");
    assert_eq!(summary["attempts"], 50, "{summary}");
    assert_eq!(summary["rejected_other"], 50, "{summary}");
    assert!(summary["lost"].is_null(), "{summary}");
    assert!(
        summary["error"]
            .as_str()
            .is_some_and(|e| e.contains("audit could not finish")),
        "{summary}"
    );
    drop(server);
}

/// The audit meets a sale being rebuilt (its Redis keys deleted just before the run, no buyers,
/// so the audit's first read starts the rebuild and its reads answer 503 for a second or more):
/// it waits the 503s out and finishes, instead of giving up on a run that is otherwise done.
#[test]
fn the_audit_waits_out_a_rebuild() {
    let redis_url = nexussale_core::testkit::services::redis_url();
    let redis_cli = |args: &[&str]| {
        Command::new("redis-cli")
            .args(["-u", &redis_url])
            .args(args)
            .output()
    };
    match redis_cli(&["PING"]) {
        Ok(output) if String::from_utf8_lossy(&output.stdout).trim() == "PONG" => {}
        Ok(output) => {
            let _: Option<()> = nexussale_core::testkit::services::unavailable(
                "redis",
                String::from_utf8_lossy(&output.stderr),
            );
            return;
        }
        Err(err) => {
            let _: Option<()> = nexussale_core::testkit::services::unavailable("redis-cli", err);
            return;
        }
    }
    let prefix = nexussale_core::testkit::unique_name("bench-rebuild-");
    let mut backends = BackendConfig::default();
    backends.redis_url = Some(redis_url.clone());
    backends.redis = RedisConfig::default().prefix(prefix.clone());
    let sale = Sale::new(Sku::new("rebuilt").unwrap(), 10);
    let server = serve(backends.clone(), vec![sale], true);
    let address = &server.address;
    let keys = redis_cli(&["--scan", "--pattern", &format!("{prefix}*")]).unwrap();
    let keys = String::from_utf8(keys.stdout).unwrap();
    let keys: Vec<&str> = keys.lines().filter(|key| !key.is_empty()).collect();
    assert!(!keys.is_empty(), "the sale left no keys under {prefix}");
    let mut del = vec!["DEL"];
    del.extend(&keys);
    redis_cli(&del).unwrap();
    let (code, summary) = bench(
        address,
        &[
            "--no-create",
            "--sku",
            "rebuilt",
            "--users",
            "0",
            "--concurrency",
            "1",
        ],
    );
    assert_eq!(code, 0, "{summary}");
    assert!(summary["error"].is_null(), "{summary}");
    assert_eq!(
        (&summary["persisted"], &summary["lost"]),
        (&Value::from(0), &Value::from(0)),
        "{summary}"
    );
    drop(server);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = RedisStockStore::connect_with(&redis_url, backends.redis)
            .await
            .unwrap();
        assert_eq!(store.purge().await.unwrap(), 1);
    });
}

/// `GET /v1/sales/{sku}/report` after a burst says what the bench's audit saw: as many orders
/// accepted and persisted, as many refused as sold out; on the embedded default and on MySQL.
#[test]
fn the_report_matches_a_bursts_audit() {
    let database = MySqlScratch::new();
    let mut backends = vec![("embedded", BackendConfig::default())];
    match &database {
        Some(database) => {
            let mut mysql = BackendConfig::default();
            mysql.database_url = Some(database.url.clone());
            backends.push(("mysql", mysql));
        }
        None => {
            nexussale_core::testkit::services::unavailable::<()>("mysql", "no database");
        }
    }
    for (name, backends) in backends {
        let server = serve(backends, Vec::new(), true);
        let (code, summary) = bench(
            &server.address,
            &[
                "--sku",
                "reported",
                "--stock",
                "300",
                "--users",
                "1000",
                "--concurrency",
                "32",
            ],
        );
        assert_eq!(code, 0, "{name}: {summary}");
        let report = get_json(&server.address, "/v1/sales/reported/report");
        assert_eq!(
            report["accepted"]["orders"], summary["accepted"],
            "{name}: {report}\n{summary}"
        );
        assert_eq!(report["accepted"]["orders"], summary["persisted"], "{name}");
        assert_eq!(
            report["refused"]["sold_out"], summary["sold_out"],
            "{name}: {report}\n{summary}"
        );
        assert_eq!(report["statuses"]["pending"]["orders"], 300, "{name}");
        assert!(
            report["sold_out_after_secs"].is_number(),
            "{name}: {report}"
        );
        let bucketed: u64 = report["accepted_per_second"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|bucket| bucket["orders"].as_u64().unwrap())
            .sum();
        assert_eq!(bucketed, 300, "{name}: {report}");
        drop(server);
    }
}

/// One `GET` over a plain connection: the body as JSON.
fn get_json(address: &str, path: &str) -> Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    serde_json::from_str(body).unwrap()
}

/// A MySQL database of its own, dropped with this (`None`: MySQL is unavailable).
struct MySqlScratch {
    url: String,
    name: String,
}

impl MySqlScratch {
    fn new() -> Option<Self> {
        use nexussale_mysql::sqlx::{self, Connection};
        let admin_url = nexussale_core::testkit::services::database_url();
        let name = nexussale_core::testkit::unique_name("nexussale_bench_");
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let mut admin = sqlx::MySqlConnection::connect(&admin_url).await.ok()?;
            sqlx::query(&format!("CREATE DATABASE `{name}`"))
                .execute(&mut admin)
                .await
                .unwrap();
            Some(())
        })?;
        let (base, query) = admin_url
            .split_once('?')
            .map_or((admin_url.as_str(), None), |(base, query)| {
                (base, Some(query))
            });
        let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
        let url = match query {
            Some(query) => format!("{root}/{name}?{query}"),
            None => format!("{root}/{name}"),
        };
        Some(Self { url, name })
    }
}

impl Drop for MySqlScratch {
    fn drop(&mut self) {
        use nexussale_mysql::sqlx::{self, Connection};
        let admin_url = nexussale_core::testkit::services::database_url();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    let mut admin = sqlx::MySqlConnection::connect(&admin_url).await.ok()?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                        .execute(&mut admin)
                        .await
                        .ok()
                })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop the scratch database {}", self.name);
        }
    }
}

/// `--listeners`: the streams open before the burst, each gets the stock at once and the
/// changes during the burst, and the burst's audit is as clean as without them.
#[test]
fn listeners_stay_open_through_a_burst() {
    let server = in_memory(true);
    let (code, summary) = bench(
        &server.address,
        &[
            "--sku",
            "listened",
            "--stock",
            "200",
            "--users",
            "2000",
            "--concurrency",
            "16",
            "--listeners",
            "100",
        ],
    );
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["listeners"], 100);
    assert_eq!(summary["accepted"], 200, "{summary}");
    assert!(
        summary["listener_events"].as_u64().unwrap() >= 100,
        "{summary}"
    );
    drop(server);
}

/// A waiting-room drop, embedded and over Redis: everyone joins before the opening, the passes
/// admit exactly the stock (each order paid), no purchase gets in without a pass, the admission
/// order is unrelated to the join order, and every waiter is told `sold_out` — the listeners
/// within a second of the last unit going.
#[test]
fn a_waiting_room_drop_passes_its_audit() {
    let redis = nexussale_core::testkit::services::redis_url();
    let mut backends = vec![BackendConfig::default()];
    let prefix = nexussale_core::testkit::unique_name("bench-wr-");
    let connection = nexussale_redis::redis::Client::open(redis.as_str())
        .and_then(|client| client.get_connection());
    let reachable = match &connection {
        Ok(_) => true,
        // Skips Redis with a printed reason (fails under NEXUSSALE_REQUIRE_SERVICES=1).
        Err(err) => {
            nexussale_core::testkit::services::unavailable::<()>("redis", err);
            false
        }
    };
    if reachable {
        let mut config = BackendConfig::default();
        config.redis_url = Some(redis.clone());
        config.redis = RedisConfig::default().prefix(prefix.clone());
        backends.push(config);
    }
    for config in backends {
        let server = serve(config, Vec::new(), true);
        let (code, summary) = bench(
            &server.address,
            &[
                "--waiting-room",
                "--sku",
                "queued",
                "--stock",
                "150",
                "--users",
                "1500",
                "--concurrency",
                "32",
                "--waiting-room-listeners",
                "100",
                "--opens-in",
                "3",
            ],
        );
        assert_eq!(code, 0, "{summary}");
        for (field, expected) in [
            ("joined_before_opening", 1500),
            ("admitted", 150),
            ("accepted", 150),
            ("paid", 150),
            ("told_sold_out", 1350),
            ("without_pass", 0),
            ("passes_over_ceiling", 0),
            ("errors", 0),
            ("persisted", 150),
            ("oversold", 0),
            ("duplicates", 0),
            ("lost", 0),
        ] {
            assert_eq!(summary[field], expected, "{field}: {summary}");
        }
        assert!(summary["passes_samples"].as_u64().unwrap() > 0, "{summary}");
        // The listeners are the last to have joined: a few may have been admitted.
        assert!(
            summary["listeners_told"].as_u64().unwrap() >= 80,
            "{summary}"
        );
        let rho = summary["admission_rank_correlation"].as_f64().unwrap();
        // 150 admitted of 1,500: under a random draw ρ's deviation is 1/√149 ≈ 0.08.
        assert!(rho.abs() < 0.4, "{summary}");
        assert!(
            summary["sold_out_notice_s"].as_f64().unwrap() < 1.0,
            "{summary}"
        );
        drop(server);
    }
    if let Ok(mut conn) = connection {
        let keys: Vec<String> = nexussale_redis::redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query(&mut conn)
            .unwrap();
        for key in keys {
            let _: () = nexussale_redis::redis::cmd("UNLINK")
                .arg(key)
                .query(&mut conn)
                .unwrap();
        }
    }
}
