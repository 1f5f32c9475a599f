//! The order worker against a failing MySQL: connections cut, the database unreachable for
//! seconds, traffic stalled, a row lock held past the lock wait timeout. The repository is
//! reached through [`FaultProxy`], a TCP proxy the test drives; purchases keep being accepted
//! into the in-process queue meanwhile. The worker retries with backoff, and once the database
//! is back every accepted order is persisted, exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexussale_core::memory::{MemoryOrderQueue, MemoryStockStore};
use nexussale_core::testkit::proxy::FaultProxy;
use nexussale_core::testkit::services::{database_url, unavailable};
use nexussale_core::testkit::unique_name;
use nexussale_core::{
    CancellationToken, EngineConfig, FlashSale, OrderRepository, PurchaseOutcome, PurchaseRequest,
    Sale, Sku, UserId,
};
use nexussale_mysql::sqlx::{self, Connection, MySqlConnection};
use nexussale_mysql::{MySqlConfig, MySqlOrderRepository};

/// `host:port` and the part after the database of a `mysql://user@host:port/db?opts` URL.
fn upstream(url: &str) -> Option<(String, String, String)> {
    let (scheme_user, rest) = url.split_once('@')?;
    let (host, database) = rest.split_once('/')?;
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:3306")
    };
    let options = database.split_once('?').map(|(_, o)| format!("?{o}"));
    Some((scheme_user.to_owned(), host, options.unwrap_or_default()))
}

struct Bench {
    engine: FlashSale,
    /// The database, not through the proxy: what is persisted, whatever the proxy does.
    direct: MySqlOrderRepository,
    sku: Sku,
    accepted: Vec<String>,
    next_user: u64,
}

impl Bench {
    /// `n` purchases by new buyers; every one is accepted (the queue is in process).
    async fn buy(&mut self, n: u64) {
        for _ in 0..n {
            let user = UserId::new(format!("buyer-{}", self.next_user)).unwrap();
            self.next_user += 1;
            let request = PurchaseRequest::new(self.sku.clone(), user);
            match self.engine.purchase(request).await.unwrap() {
                PurchaseOutcome::Accepted(receipt) => {
                    self.accepted.push(receipt.order.id.to_string());
                }
                other => panic!("{other:?}"),
            }
        }
    }

    async fn persisted(&self) -> u64 {
        self.direct.counts(&self.sku).await.unwrap().pending.orders
    }

    /// Waits until every accepted order is persisted.
    async fn caught_up(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let persisted = self.persisted().await;
            if persisted == self.accepted.len() as u64 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {persisted} of {} persisted after 30 s",
                self.accepted.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_rides_out_a_failing_database_and_persists_everything_once() {
    let admin_url = database_url();
    let mut admin = match MySqlConnection::connect(&admin_url).await {
        Ok(admin) => admin,
        Err(err) => return unavailable::<()>("mysql", err).unwrap_or(()),
    };
    let Some((user, host, options)) = upstream(&admin_url) else {
        // A socket URL has no TCP address to put a proxy in front of.
        return unavailable::<()>("mysql over TCP", &admin_url).unwrap_or(());
    };
    let database = unique_name("nexussale_faults_");
    sqlx::query(&format!("CREATE DATABASE `{database}`"))
        .execute(&mut admin)
        .await
        .unwrap();
    let proxy = FaultProxy::start(&host).await.unwrap();
    let config = MySqlConfig::default()
        .acquire_timeout(Duration::from_secs(1))
        .lock_wait_timeout(Duration::from_secs(1));
    let url = format!("{user}@{}/{database}{options}", proxy.address());
    let repository = MySqlOrderRepository::connect_with(&url, config)
        .await
        .unwrap();
    repository.migrate().await.unwrap();

    let mut tuning = EngineConfig::default();
    tuning.worker_max_backoff = Duration::from_millis(200);
    let engine = FlashSale::builder(
        Arc::new(MemoryStockStore::new()),
        Arc::new(MemoryOrderQueue::new()),
        Arc::new(repository.clone()),
    )
    .config(tuning)
    .build();
    let sku: Sku = "faults".parse().unwrap();
    engine
        .create_sale(Sale::new(sku.clone(), 100_000))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let worker = tokio::spawn({
        let (engine, stop) = (engine.clone(), stop.clone());
        async move { engine.run_worker(stop).await }
    });
    let direct_url = format!("{}/{database}", admin_url.rsplit_once('/').unwrap().0);
    let mut bench = Bench {
        engine: engine.clone(),
        direct: MySqlOrderRepository::connect(&direct_url).await.unwrap(),
        sku: sku.clone(),
        accepted: Vec::new(),
        next_user: 0,
    };
    bench.buy(100).await;
    bench.caught_up("healthy").await;

    // Unreachable for 2 s: every connection cut, new ones refused.
    proxy.set_down(true);
    bench.buy(200).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        bench.persisted().await,
        100,
        "persisted with the database down"
    );
    proxy.set_down(false);
    bench.caught_up("after the outage").await;

    // Connections dropped again and again under the worker's feet.
    for _ in 0..10 {
        bench.buy(20).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    bench.caught_up("after the cuts").await;

    // Stalled for 2 s: connections open, nothing moves.
    proxy.set_stalled(true);
    bench.buy(200).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set_stalled(false);
    bench.caught_up("after the stall").await;

    // Another session holds every row and the gap after them: inserts wait out the 1 s lock
    // wait timeout and fail as retryable, until the lock goes.
    let mut locker = MySqlConnection::connect(&admin_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query(&format!("SELECT id FROM `{database}`.orders FOR UPDATE"))
        .fetch_all(&mut locker)
        .await
        .unwrap();
    let before = bench.accepted.len();
    bench.buy(100).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let blocked = bench
        .direct
        .get(bench.accepted[before].parse().unwrap())
        .await
        .unwrap();
    assert!(blocked.is_none(), "an insert went past the lock");
    let order = {
        let user = UserId::new("locked-out").unwrap();
        match engine
            .purchase(PurchaseRequest::new(sku.clone(), user))
            .await
            .unwrap()
        {
            PurchaseOutcome::Accepted(receipt) => receipt.order,
            other => panic!("{other:?}"),
        }
    };
    bench.accepted.push(order.id.to_string());
    let started = Instant::now();
    let insert = repository.insert(std::slice::from_ref(&order)).await;
    assert!(
        matches!(&insert, Err(err) if err.is_retryable()),
        "insert under a held lock: {insert:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    bench.caught_up("after the lock").await;

    // Exactly the accepted orders, each once.
    let rows: Vec<(uuid::Uuid,)> = sqlx::query_as(&format!("SELECT id FROM `{database}`.orders"))
        .fetch_all(&mut admin)
        .await
        .unwrap();
    let persisted: HashSet<String> = rows.into_iter().map(|(id,)| id.to_string()).collect();
    let accepted: HashSet<String> = bench.accepted.iter().cloned().collect();
    assert_eq!(persisted.len(), accepted.len());
    assert_eq!(persisted, accepted);
    assert!(proxy.accepted() > 2, "the pool never reconnected");

    stop.cancel();
    worker.await.unwrap();
    sqlx::query(&format!("DROP DATABASE `{database}`"))
        .execute(&mut admin)
        .await
        .unwrap();
}
