//! Redis failing under the server: emptied (FLUSHALL), restarted without its data, connections
//! killed mid-burst. Each test runs a `redis-server` of its own on a free port, so that flushing,
//! killing and restarting it touches no other test.
//!
//! The invariants, every time: no unit sold twice (accepted ≤ stock, one order per buyer), every
//! 202 persisted, no request held past its timeout, and once the dust settles the stock store
//! and the repository agree.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::call;
use http::{Method, StatusCode};
use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository};
use nexussale_core::testkit::services::unavailable;
use nexussale_core::testkit::unique_name;
use nexussale_core::{
    CancellationToken, DynOrderRepository, EngineConfig, FlashSale, OrderRepository, Sku,
};
use nexussale_mysql::sqlx;
use nexussale_redis::{RedisConfig, RedisStockStore};
use nexussale_server::{App, AppState, app_with};
use serde_json::{Value, json};

/// A `redis-server` of the test's own, without persistence (like the machine's).
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    /// `None` (skip) when there is no `redis-server` to run.
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(unique_name("nexussale-redis-"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Self {
            child: None,
            port,
            dir,
        };
        match redis.spawn() {
            Ok(()) => Some(redis),
            Err(err) => unavailable("redis-server", err),
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("cannot run redis-server: {err}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]).trim() != "PONG" {
            if Instant::now() > deadline {
                return Err("redis-server did not answer within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// SIGKILL: everything it held is gone.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new, empty server on the same port.
    fn restart(&mut self) {
        self.kill();
        self.spawn().unwrap();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The engine over `redis` and `repository`, served in process, with its worker and sweeper
/// running until the token is cancelled; short timings so the test does not wait out
/// production ones.
async fn serve(
    redis: &Redis,
    repository: DynOrderRepository,
) -> (App, FlashSale, CancellationToken) {
    let config = RedisConfig::default()
        .prefix(unique_name("faults-"))
        .command_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500));
    let stock = RedisStockStore::connect_with(&redis.url(), config)
        .await
        .unwrap();
    let mut tuning = EngineConfig::default();
    tuning.store_rebuild_settle = Duration::from_millis(200);
    tuning.worker_max_backoff = Duration::from_millis(200);
    tuning.sweep_interval = Duration::from_millis(200);
    let engine = FlashSale::builder(
        Arc::new(stock),
        Arc::new(MemoryOrderQueue::new()),
        repository,
    )
    .config(tuning)
    .build();
    let stop = CancellationToken::new();
    tokio::spawn({
        let (engine, stop) = (engine.clone(), stop.clone());
        async move { engine.run_worker(stop).await }
    });
    tokio::spawn({
        let (engine, stop) = (engine.clone(), stop.clone());
        async move { engine.run_sweeper(stop).await }
    });
    let mut state = AppState::new(engine.clone());
    state.request_timeout = Some(Duration::from_secs(2));
    (app_with(state), engine, stop)
}

async fn buy(app: &App, sku: &str, user: &str) -> (StatusCode, Value) {
    call(
        app,
        Method::POST,
        &format!("/v1/sales/{sku}/purchase"),
        Some(json!({ "user": user })),
    )
    .await
}

async fn sale(app: &App, sku: &str) -> Value {
    let (status, body) = call(app, Method::GET, &format!("/v1/sales/{sku}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits until `orders` orders are persisted, whatever their status.
async fn persisted(engine: &FlashSale, sku: &str, orders: u64) {
    let sku: Sku = sku.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counts = engine.repository().counts(&sku).await.unwrap();
        let total = counts.pending.orders
            + counts.paid.orders
            + counts.expired.orders
            + counts.cancelled.orders;
        if total >= orders {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {total} of {orders} orders persisted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Buys with `user` until the answer is no longer 503 (the rebuild); answers the first other
/// answer and how many 503s came before it. Each 503 must carry `Retry-After`.
async fn buy_through_rebuild(app: &App, sku: &str, user: &str) -> ((StatusCode, Value), u32) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut refused = 0;
    loop {
        let answer = buy(app, sku, user).await;
        if answer.0 != StatusCode::SERVICE_UNAVAILABLE {
            return (answer, refused);
        }
        assert_eq!(answer.1["error"], "unavailable", "{}", answer.1);
        refused += 1;
        assert!(
            Instant::now() < deadline,
            "still 503 after 15 s: {}",
            answer.1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The store lost the sale (`lose` empties or restarts Redis) after 30 of its 50 units were
/// bought and 10 of those paid: purchases wait (503) until the store is rebuilt from MySQL, then
/// exactly the 20 units left sell, earlier buyers are still at their limit, and the counts match
/// the orders.
async fn lost_store_is_rebuilt(lose: impl FnOnce(&mut Redis)) {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let Some((repository, database)) = common::fresh_repository().await else {
        return;
    };
    let (app, engine, stop) = serve(&redis, Arc::new(repository.clone())).await;
    let sku = "lost";
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/sales",
        Some(json!({ "sku": sku, "stock": 50 })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut orders = Vec::new();
    for i in 0..30 {
        let (status, body) = buy(&app, sku, &format!("early-{i}")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        orders.push(body["order_id"].as_str().unwrap().to_owned());
    }
    persisted(&engine, sku, 30).await;
    for id in &orders[..10] {
        let (status, body) = call(&app, Method::POST, &format!("/v1/orders/{id}/pay"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    lose(&mut redis);

    // The first purchase after the loss meets it: 503, not 404 and not a fresh sale.
    let ((status, body), refused) = buy_through_rebuild(&app, sku, "late-0").await;
    assert!(refused >= 1, "a purchase went through before the rebuild");
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let view = sale(&app, sku).await;
    assert_eq!(
        (&view["sold"], &view["reserved"], &view["available"]),
        (&json!(10), &json!(21), &json!(19)),
        "{view}"
    );
    // Buyers from before the loss are still at their limit.
    let (status, body) = buy(&app, sku, "early-3").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::CONFLICT, &json!("limit_exceeded"))
    );
    // Exactly the units left sell, no more.
    let mut accepted = 1;
    for i in 1..40 {
        let (status, body) = buy(&app, sku, &format!("late-{i}")).await;
        match status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::CONFLICT => assert_eq!(body["error"], "sold_out", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(accepted, 20);
    persisted(&engine, sku, 50).await;
    let report = engine
        .reconcile(&sku.parse().unwrap(), false)
        .await
        .unwrap();
    assert!(report.in_sync(), "{report:?}");
    assert_eq!(
        (
            report.repository.paid.units,
            report.repository.pending.units
        ),
        (10, 40)
    );
    stop.cancel();
    common::drop_database(repository.pool(), &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_emptied_mid_sale_is_rebuilt_from_mysql_before_it_sells_again() {
    lost_store_is_rebuilt(|redis| {
        assert_eq!(redis.cli(&["FLUSHALL"]).trim(), "OK");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_is_rebuilt_from_mysql_before_it_sells_again() {
    lost_store_is_rebuilt(Redis::restart).await;
}

/// A server restarted against an emptied Redis does not start its `--sale` afresh: the sale is
/// in MySQL, so it is rebuilt from the orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_created_again_over_an_emptied_store_is_rebuilt_not_restarted() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let Some((repository, database)) = common::fresh_repository().await else {
        return;
    };
    let (app, engine, stop) = serve(&redis, Arc::new(repository.clone())).await;
    let definition = json!({ "sku": "again", "stock": 5 });
    let (status, _) = call(&app, Method::POST, "/v1/sales", Some(definition.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    for i in 0..3 {
        assert_eq!(
            buy(&app, "again", &format!("u{i}")).await.0,
            StatusCode::ACCEPTED
        );
    }
    persisted(&engine, "again", 3).await;
    stop.cancel();
    redis.cli(&["FLUSHALL"]);

    // A new process: as the server does with `--sale again=5` at start-up.
    let (app, engine, stop) = serve(&redis, Arc::new(repository.clone())).await;
    let (status, body) = call(&app, Method::POST, "/v1/sales", Some(definition)).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::CONFLICT, &json!("sale_exists"))
    );
    let ((status, body), _) = buy_through_rebuild(&app, "again", "u9").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["remaining"], 1);
    persisted(&engine, "again", 4).await;
    stop.cancel();

    // Emptied again, and a process that never heard of the sale is asked for it: it finds the
    // sale in MySQL and rebuilds it too, rather than answering 404.
    redis.cli(&["FLUSHALL"]);
    let (app, _engine, stop) = serve(&redis, Arc::new(repository.clone())).await;
    let ((status, body), refused) = buy_through_rebuild(&app, "again", "u10").await;
    assert!(refused >= 1);
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["remaining"], 0);
    let (status, body) = buy(&app, "again", "u11").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::CONFLICT, &json!("sold_out"))
    );
    // A sale that exists nowhere is still unknown.
    let (status, body) = buy(&app, "never", "u1").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::NOT_FOUND, &json!("unknown_sale"))
    );
    stop.cancel();
    common::drop_database(repository.pool(), &database).await;
}

/// Redis cuts every client connection, again and again, during a burst of 6,000 buyers for
/// 2,000 units: every request is answered within the request timeout (202, 409 or 503, never a hang or
/// a 500), no buyer gets two orders, no unit is sold twice; reservations whose answer was lost
/// with a connection are returned by the sweeper at their TTL, after which the store and the
/// orders agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_mid_burst_hang_nothing_and_sell_nothing_twice() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let repository = Arc::new(MemoryOrderRepository::new());
    let (app, engine, stop) = serve(&redis, repository).await;
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/sales",
        Some(json!({ "sku": "cut", "stock": 2000, "reservation_ttl_secs": 2 })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let killing = Arc::new(AtomicBool::new(true));
    // Every 5 ms, over a connection of its own (spared by SKIPME), Redis drops every other
    // client; answers how many connections it killed.
    let killer = {
        let (killing, port) = (Arc::clone(&killing), redis.port);
        std::thread::spawn(move || {
            let mut admin = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
            let mut kills = 0;
            while killing.load(Ordering::Relaxed) {
                admin
                    .get_mut()
                    .write_all(b"CLIENT KILL TYPE normal SKIPME yes\r\n")
                    .unwrap();
                let mut reply = String::new();
                admin.read_line(&mut reply).unwrap();
                kills += reply.trim_start_matches(':').trim().parse::<u32>().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            kills
        })
    };
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    let tasks: Vec<_> = (0..6000)
        .map(|i| {
            let (app, semaphore) = (app.clone(), Arc::clone(&semaphore));
            tokio::spawn(async move {
                let _permit = semaphore.acquire().await.unwrap();
                let started = Instant::now();
                let answer = buy(&app, "cut", &format!("buyer-{i}")).await;
                (answer, started.elapsed())
            })
        })
        .collect();
    let mut accepted = HashSet::new();
    let mut unavailable = 0;
    for task in tasks {
        let ((status, body), took) = task.await.unwrap();
        assert!(took < Duration::from_secs(3), "a purchase took {took:?}");
        match status {
            StatusCode::ACCEPTED => {
                assert!(accepted.insert(body["user"].as_str().unwrap().to_owned()));
            }
            StatusCode::CONFLICT => assert_eq!(body["error"], "sold_out", "{body}"),
            StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
            other => panic!("{other}: {body}"),
        }
    }
    let burst_end = chrono::Utc::now();
    killing.store(false, Ordering::Relaxed);
    let kills = killer.join().unwrap();
    eprintln!(
        "{} accepted, {unavailable} answered 503, {kills} connections killed",
        accepted.len()
    );
    assert!(kills > 0, "no connection was killed");

    // Every accepted order persisted; at the 2 s TTL the sweeper returns every reservation,
    // those whose answer was lost with a connection included (their orders are recorded
    // expired), after which the store and the orders agree and every unit is back.
    persisted(&engine, "cut", accepted.len() as u64).await;
    let sku: Sku = "cut".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let report = loop {
        // A connection killed last may fail one more call before it is replaced.
        let report = engine.reconcile(&sku, false).await;
        if let Ok(report) = &report
            && report.in_sync()
            && report.store.is_some_and(|store| store.reserved == 0)
        {
            break report.clone();
        }
        assert!(Instant::now() < deadline, "never settled: {report:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(report.store.unwrap().available, 2000);
    let mut users = Vec::new();
    // Units a reservation's expiry (its 2 s TTL) may have given back while the burst still
    // ran, which later buyers of the burst could rightly buy again: those of orders expired by
    // the burst's end. (By the expiry instant, not `updated_at`: on a loaded machine the sweeper
    // records a release it made during the burst after the burst's end.)
    let mut freed_during_burst = 0;
    let mut after = String::new();
    loop {
        let uri = format!("/v1/orders?sku=cut&limit=1000{after}");
        let (status, page) = call(&app, Method::GET, &uri, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for order in page["orders"].as_array().unwrap() {
            users.push(order["user"].as_str().unwrap().to_owned());
            let expires: chrono::DateTime<chrono::Utc> =
                serde_json::from_value(order["expires_at"].clone()).unwrap();
            if order["status"] == "expired" && expires <= burst_end {
                freed_during_burst += 1;
            }
        }
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    let distinct: HashSet<&str> = users.iter().map(String::as_str).collect();
    assert_eq!(distinct.len(), users.len(), "a buyer has two orders");
    // No unit sold twice: beyond the stock, only units an expiry gave back.
    assert!(
        accepted.len() <= 2000 + freed_during_burst,
        "{} accepted of 2000 units, {freed_during_burst} freed by expiry during the burst",
        accepted.len()
    );
    let missing: Vec<_> = accepted
        .iter()
        .filter(|user| !distinct.contains(user.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "accepted but not persisted: {missing:?}"
    );
    stop.cancel();
}

/// Every command the server has run, those inside scripts included (`INFO commandstats`).
fn commands_run(redis: &Redis) -> u64 {
    redis
        .cli(&["INFO", "commandstats"])
        .lines()
        .filter_map(|line| {
            line.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Keyed purchases on a sold-out sale cost one cheap lookup each (the key's `HGET`), not a
/// reservation script each (four commands: a flood of random keys was a cheap way to load
/// Redis). A key that did buy still gets its order back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_purchases_on_a_sold_out_sale_cost_one_lookup_each() {
    let Some(redis) = Redis::start() else { return };
    let (app, _engine, stop) = serve(&redis, Arc::new(MemoryOrderRepository::new())).await;
    let created = json!({"sku": "gone", "stock": 1});
    let (status, body) = call(&app, Method::POST, "/v1/sales", Some(created)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let keyed = |user: &str, key: &str| json!({"user": user, "idempotency_key": key});
    let (status, first) = call(
        &app,
        Method::POST,
        "/v1/sales/gone/purchase",
        Some(keyed("ann", "cart-1")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, body) = buy(&app, "gone", "bob").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::CONFLICT, &json!("sold_out"))
    );

    let before = commands_run(&redis);
    let requests = 2_000;
    for n in 0..requests {
        let body = keyed(&format!("buyer-{n}"), &format!("key-{n}"));
        let (status, answer) =
            call(&app, Method::POST, "/v1/sales/gone/purchase", Some(body)).await;
        assert_eq!(
            (status, &answer["error"]),
            (StatusCode::CONFLICT, &json!("sold_out")),
            "{answer}"
        );
    }
    // The INFO call itself counts one.
    let per_request = (commands_run(&redis) - before - 1) as f64 / f64::from(requests);
    assert!(
        per_request <= 1.2,
        "{per_request:.2} Redis commands per keyed request"
    );

    // The retry of the purchase that did buy is still answered with its order.
    let (status, again) = call(
        &app,
        Method::POST,
        "/v1/sales/gone/purchase",
        Some(keyed("ann", "cart-1")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["order_id"], first["order_id"]);
    stop.cancel();
}

/// What keeps the repository from taking a pay.
#[derive(Debug, Clone, Copy)]
enum Interruption {
    /// Another session holds the order's row past the repository's lock-wait timeout.
    RowLock,
    /// The connection to MariaDB is cut while the pay's write waits, and stays down.
    ConnectionCut,
}

/// `host:port` of a `mysql://user@host:port/db` URL.
fn mysql_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// Finding 1 of the third reliability pass. A one-unit sale with a 2 s TTL; alice's order is
/// persisted; her pay is confirmed by Redis while MariaDB cannot take the write (`interruption`);
/// Redis is then lost, and the reservation's expiry passes before MariaDB is back. The pay must
/// be answered 200 only because it can no longer be lost: with no client retry, the order ends
/// `paid` in MariaDB, the rebuilt store counts the unit sold, and bob cannot buy it.
async fn a_pay_the_database_could_not_take_survives_a_redis_loss(interruption: Interruption) {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let Some((mut admin, database, url)) = common::fresh_database().await else {
        return;
    };
    let proxy = nexussale_core::testkit::proxy::FaultProxy::start(&mysql_address(&url))
        .await
        .unwrap();
    let proxied = url.replace(&mysql_address(&url), &proxy.address().to_string());
    let repository = nexussale_mysql::MySqlOrderRepository::connect_with(
        &proxied,
        nexussale_mysql::MySqlConfig::default()
            .lock_wait_timeout(Duration::from_secs(1))
            .acquire_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    repository.migrate().await.unwrap();
    let (app, engine, stop) = serve(&redis, Arc::new(repository)).await;
    let sku = "paid-once";
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/sales",
        Some(json!({ "sku": sku, "stock": 1, "reservation_ttl_secs": 2 })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, order) = buy(&app, sku, "alice").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{order}");
    let id = order["order_id"].as_str().unwrap().to_owned();
    persisted(&engine, sku, 1).await;

    // A session of its own holds alice's row (and, for the cut, until the cut is made).
    sqlx::query(&format!("USE `{database}`"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut admin).await.unwrap();
    sqlx::query("SELECT id FROM orders FOR UPDATE")
        .execute(&mut admin)
        .await
        .unwrap();
    let pay = tokio::spawn({
        let (app, id) = (app.clone(), id.clone());
        async move { call(&app, Method::POST, &format!("/v1/orders/{id}/pay"), None).await }
    });
    if let Interruption::ConnectionCut = interruption {
        // The pay's UPDATE is waiting on the lock now: cut it, keep MariaDB unreachable, and
        // let the lock go, so that only the cut stands in the way.
        tokio::time::sleep(Duration::from_millis(400)).await;
        proxy.set_down(true);
        sqlx::query("ROLLBACK").execute(&mut admin).await.unwrap();
    }
    let (status, body) = pay.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{interruption:?}: {body}");
    assert_eq!(body["status"], "paid", "{body}");
    // Alice's is the database's only order.
    async fn stored(admin: &mut sqlx::MySqlConnection) -> String {
        sqlx::query_scalar("SELECT CAST(status AS CHAR) FROM orders")
            .fetch_one(admin)
            .await
            .unwrap()
    }

    // Redis is lost; once it answers again (empty), a purchase meets the loss and starts the
    // rebuild; the reservation's expiry passes while MariaDB still cannot take the pay.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.stock().sale(&sku.parse().unwrap()).await.is_err() {
        assert!(Instant::now() < deadline, "the store did not reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = buy(&app, sku, "bob").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a purchase went through before the rebuild: {body}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let Interruption::RowLock = interruption {
        assert_eq!(
            stored(&mut admin).await,
            "pending",
            "the pay reached MariaDB"
        );
        sqlx::query("ROLLBACK").execute(&mut admin).await.unwrap();
    }
    proxy.set_down(false);

    let ((status, body), _) = buy_through_rebuild(&app, sku, "bob").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::CONFLICT, &json!("sold_out")),
        "{interruption:?}: alice's paid unit was sold again: {body}"
    );
    assert_eq!(stored(&mut admin).await, "paid");
    let view = sale(&app, sku).await;
    assert_eq!(
        (&view["sold"], &view["reserved"], &view["available"]),
        (&json!(1), &json!(0), &json!(0)),
        "{view}"
    );
    // The sweeper, run since, has not expired it either.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored(&mut admin).await, "paid");
    let report = engine
        .reconcile(&sku.parse().unwrap(), false)
        .await
        .unwrap();
    assert!(report.in_sync(), "{report:?}");
    stop.cancel();
    common::drop_database(&mut admin, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pay_blocked_by_a_row_lock_is_not_lost_when_redis_is() {
    a_pay_the_database_could_not_take_survives_a_redis_loss(Interruption::RowLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pay_cut_off_from_the_database_is_not_lost_when_redis_is() {
    a_pay_the_database_could_not_take_survives_a_redis_loss(Interruption::ConnectionCut).await;
}
