//! The core conformance kit against the real MySQL / MariaDB (`NEXUSSALE_DATABASE_URL`), each test
//! in a database of its own; plus what only a database has to prove.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::Arc;

use nexussale_core::layers::Hooked;
use nexussale_core::testkit::services::{database_url, unavailable};
use nexussale_core::testkit::{Teardown, TornDown, fixtures, unique_name, unique_sku};
use nexussale_core::{
    DynOrderRepository, Order, OrderId, OrderQuery, OrderRepository, OrderStatus, Sale,
};
use nexussale_mysql::sqlx::{self, Connection};
use nexussale_mysql::{MySqlConfig, MySqlOrderRepository};

/// A repository on a database of its own, dropped when the test drops the repository.
type Scoped = TornDown<MySqlOrderRepository>;

/// `mysql://…/test` with the database replaced by `database`.
fn url_for(database: &str) -> String {
    let url = database_url();
    let (base, query) = url
        .split_once('?')
        .map_or((url.as_str(), None), |(b, q)| (b, Some(q)));
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    match query {
        Some(query) => format!("{root}/{database}?{query}"),
        None => format!("{root}/{database}"),
    }
}

async fn connect() -> Option<Scoped> {
    let database = unique_name("nexussale_test_");
    let mut admin = match sqlx::MySqlConnection::connect(&database_url()).await {
        Ok(admin) => admin,
        Err(err) => return unavailable("mysql", format!("{}: {err}", database_url())),
    };
    sqlx::query(&format!("CREATE DATABASE `{database}`"))
        .execute(&mut admin)
        .await
        .unwrap();
    let repository = MySqlOrderRepository::connect_with(
        &url_for(&database),
        MySqlConfig::default().max_connections(8),
    )
    .await
    .unwrap();
    repository.migrate().await.unwrap();
    let pool = repository.pool().clone();
    let what = format!("the test database {database}");
    let drop_database = move || async move {
        pool.close().await;
        let mut admin = sqlx::MySqlConnection::connect(&database_url()).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS `{database}`"))
            .execute(&mut admin)
            .await
            .map(drop)
    };
    Some(Hooked::new(repository, Teardown::new(what, drop_database)))
}

async fn setup() -> Option<DynOrderRepository> {
    Some(Arc::new(connect().await?))
}

nexussale_core::order_repository_tests!(setup);

/// The same 500-order batch persisted twice at once, from two tasks on two connections: each
/// order is stored once, and between them the two calls report exactly 500 new orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_batch_persisted_twice_concurrently_is_stored_once() {
    let Some(repository) = connect().await else {
        return;
    };
    let repository = Arc::new(repository);
    let sku = unique_sku();
    let batch: Vec<Order> = (0..500)
        .map(|i| fixtures::order(&sku, &format!("u{i}")))
        .collect();
    for round in 0..3 {
        let batch: Vec<Order> = if round == 0 {
            batch.clone()
        } else {
            // Later rounds: half old, half new, in another order.
            let mut mixed: Vec<Order> = batch.iter().rev().take(250).cloned().collect();
            mixed.extend((0..250).map(|i| fixtures::order(&sku, &format!("r{round}-{i}"))));
            mixed
        };
        let (a, b) = tokio::join!(
            tokio::spawn({
                let (repository, batch) = (Arc::clone(&repository), batch.clone());
                async move { repository.insert(&batch).await.unwrap() }
            }),
            tokio::spawn({
                let (repository, batch) = (Arc::clone(&repository), batch.clone());
                async move { repository.insert(&batch).await.unwrap() }
            })
        );
        let expected = if round == 0 { 500 } else { 250 };
        assert_eq!(a.unwrap() + b.unwrap(), expected, "round {round}");
    }
    let counts = repository.counts(&sku).await.unwrap();
    assert_eq!(
        (counts.pending.orders, counts.pending.units),
        (1_000, 1_000)
    );
}

/// A batch larger than one statement holds is still all or nothing, and still exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_many_statements_is_exactly_once() {
    let Some(repository) = connect().await else {
        return;
    };
    let sku = unique_sku();
    let batch: Vec<Order> = (0..2_500)
        .map(|i| fixtures::order(&sku, &format!("u{i}")))
        .collect();
    assert_eq!(repository.insert(&batch).await.unwrap(), 2_500);
    assert_eq!(repository.insert(&batch).await.unwrap(), 0);
    // An order whose remark does not fit its column (the core's validation was bypassed) fails
    // the whole batch, in its last statement: nothing of it is kept, nothing is cut short.
    let mut bad = vec![fixtures::order(&sku, "first")];
    let mut long = fixtures::order(&sku, "second");
    long.remark = Some("x".repeat(600));
    bad.extend((0..1_500).map(|i| fixtures::order(&sku, &format!("v{i}"))));
    bad.push(long);
    assert!(repository.insert(&bad).await.is_err());
    assert!(repository.get(bad[0].id).await.unwrap().is_none());
    assert_eq!(repository.counts(&sku).await.unwrap().pending.orders, 2_500);
}

/// The schema is stored by migrations that run again harmlessly (every server start runs them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_again_harmlessly() {
    let Some(repository) = connect().await else {
        return;
    };
    repository.inner().migrate().await.unwrap();
    repository.inner().ping().await.unwrap();
    assert!(
        repository
            .save_sale(&Sale::new(unique_sku(), 5))
            .await
            .unwrap()
    );
}

/// Servers starting together on a new database all migrate it: they take turns, and the schema
/// ends up applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_take_turns() {
    // Every file under migrations/, each applied once.
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "sql"))
        })
        .count() as i64;
    assert!(migrations >= 3);
    let database = unique_name("nexussale_test_");
    let mut admin = match sqlx::MySqlConnection::connect(&database_url()).await {
        Ok(admin) => admin,
        Err(err) => return unavailable::<()>("mysql", err).unwrap_or(()),
    };
    sqlx::query(&format!("CREATE DATABASE `{database}`"))
        .execute(&mut admin)
        .await
        .unwrap();
    let starts = (0..4).map(|_| {
        let url = url_for(&database);
        tokio::spawn(async move {
            let repository = MySqlOrderRepository::connect(&url).await?;
            repository.migrate().await?;
            repository.save_sale(&Sale::new(unique_sku(), 1)).await
        })
    });
    for started in futures::future::join_all(starts).await {
        assert!(started.unwrap().unwrap());
    }
    let (applied,): (i64,) = sqlx::query_as(&format!(
        "SELECT COUNT(*) FROM `{database}`._sqlx_migrations WHERE success"
    ))
    .fetch_one(&mut admin)
    .await
    .unwrap();
    // Each migration once, however many processes started together.
    assert_eq!(applied, migrations);
    sqlx::query(&format!("DROP DATABASE `{database}`"))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// The whole engine over the MySQL repository (in-memory stock and queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purchase_flow_over_mysql() {
    let Some(repository) = connect().await else {
        return;
    };
    nexussale_core::testkit::engine::purchase_flow(
        Arc::new(nexussale_core::memory::MemoryStockStore::new()),
        Arc::new(nexussale_core::memory::MemoryOrderQueue::new()),
        Arc::new(repository),
    )
    .await;
}

/// The report's queries read one sale's range of `orders_by_sku_created` and nothing else (no
/// scan of the table, no lookup of its rows), with 2,000 orders of other sales around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_reads_one_sales_range_of_an_index() {
    let Some(repository) = connect().await else {
        return;
    };
    let sku = unique_sku();
    let mut orders: Vec<Order> = (0..2_000)
        .map(|n| fixtures::order(&unique_sku(), &format!("user-{n}")))
        .collect();
    orders.extend((0..50).map(|n| fixtures::order(&sku, &format!("buyer-{n}"))));
    for chunk in orders.chunks(500) {
        repository.insert(chunk).await.unwrap();
    }
    sqlx::query("ANALYZE TABLE orders")
        .execute(repository.inner().pool())
        .await
        .unwrap();
    let plans = repository.inner().report_plans(&sku).await.unwrap();
    for (query, rows) in &plans {
        // MIN and MAX over an index's range are read from its two ends: nothing to scan.
        if rows
            .iter()
            .all(|row| row.extra.contains("Select tables optimized away"))
        {
            continue;
        }
        let orders_rows: Vec<_> = rows.iter().filter(|row| row.table == "orders").collect();
        assert!(!orders_rows.is_empty(), "{query}: {rows:?}");
        for row in orders_rows {
            assert_eq!(row.key, "orders_by_sku_created", "{query}: {rows:?}");
            assert_ne!(row.access, "ALL", "{query} scans the table: {rows:?}");
            assert_ne!(
                row.access, "index",
                "{query} reads the whole index: {rows:?}"
            );
            assert!(
                row.extra.contains("Using index"),
                "{query} reads the table's rows: {rows:?}"
            );
        }
    }
    // What EXPLAIN showed, for the record (`cargo test … -- --nocapture`).
    for (query, rows) in plans {
        println!("{query}: {rows:?}");
    }
}

/// A page deep in a large sale reads about one page of index entries, wherever its cursor is:
/// MariaDB 10.11 otherwise picked a plan that walked every order newer than the cursor, which
/// made listing a sale of 10^6 orders quadratic (0.8 s a page half-way through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_page_reads_one_pages_worth_of_the_index() {
    let Some(repository) = connect().await else {
        return;
    };
    let sku = unique_sku();
    let orders = fixtures::orders(&sku, 20_000);
    for chunk in orders.chunks(1_000) {
        repository.insert(chunk).await.unwrap();
    }
    sqlx::query("ANALYZE TABLE orders")
        .execute(repository.inner().pool())
        .await
        .unwrap();
    let mut ids: Vec<OrderId> = orders.iter().map(|order| order.id).collect();
    ids.sort_unstable();
    // Half-way: 10,000 orders are newer than the cursor.
    let after = ids[10_000];
    let page = 1_000;
    for (what, query) in [
        (
            "the sale's",
            OrderQuery {
                sku: Some(sku.clone()),
                after: Some(after),
                limit: Some(page),
                ..OrderQuery::default()
            },
        ),
        (
            "the sale's pending",
            OrderQuery {
                sku: Some(sku.clone()),
                status: Some(OrderStatus::Pending),
                after: Some(after),
                limit: Some(page),
                ..OrderQuery::default()
            },
        ),
    ] {
        let listed = repository.list(&query).await.unwrap();
        assert_eq!(listed.orders.len(), page as usize, "{what}");
        assert!(listed.orders.iter().all(|order| order.id < after), "{what}");
        let read = repository.inner().list_rows_read(&query).await.unwrap();
        assert!(
            read <= 2 * u64::from(page),
            "{what} page after 10,000 newer orders read {read} index entries for {page}"
        );
    }
}

/// A report reads its sale's orders about once, wherever the sale sold out: the instant the
/// orders first held the stock is read within the one bucket where the running sum crosses it.
/// Before, a window over the whole sale read every order again, twice a report (a sale of 10^6
/// orders: past the 10 s request limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_reads_its_sales_orders_about_once() {
    let Some(repository) = connect().await else {
        return;
    };
    let sku = unique_sku();
    let start = chrono::Utc::now() - chrono::Duration::days(1);
    let orders: Vec<Order> = fixtures::orders(&sku, 20_000)
        .into_iter()
        .enumerate()
        .map(|(n, mut order)| {
            // One a second, so a minute's bucket holds 60.
            order.created_at = start + chrono::Duration::seconds(n as i64);
            order
        })
        .collect();
    for chunk in orders.chunks(1_000) {
        repository.insert(chunk).await.unwrap();
    }
    let held: u64 = orders[..10_000]
        .iter()
        .map(|order| u64::from(order.quantity))
        .sum();
    let minute = std::time::Duration::from_secs(60);
    let timeline = repository.timeline(&sku, minute, held).await.unwrap();
    assert_eq!(
        timeline.reached.map(|at| at.timestamp_micros()),
        Some(orders[9_999].created_at.timestamp_micros())
    );
    assert_eq!(timeline.buckets.len(), 334);
    let read = repository
        .inner()
        .timeline_rows_read(&sku, minute, held)
        .await
        .unwrap();
    assert!(
        read <= 22_000,
        "a timeline of 20,000 orders read {read} index entries"
    );
}
