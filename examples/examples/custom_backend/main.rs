//! Writing your own backend: an `OrderRepository` over PostgreSQL (`postgres.rs`) and a
//! `StockStore` behind one mutex (`locked.rs`), both passing the core conformance kit (the tests
//! at the bottom of this file), then running a flash sale in the engine.
//!
//! ```text
//! cargo run -p nexussale-examples --example custom_backend     # the sale
//! cargo test -p nexussale-examples --example custom_backend    # the conformance kit
//! ```
//!
//! PostgreSQL comes from `NEXUSSALE_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). The walkthrough is docs/CUSTOM_BACKEND.md.

mod locked;
mod postgres;

use std::sync::Arc;

use nexussale_core::memory::MemoryOrderQueue;
use nexussale_core::{
    FlashSale, OrderQuery, OrderRepository, PurchaseOutcome, PurchaseRequest, Sale, Sku, UserId,
};

pub use locked::LockedStockStore;
pub use postgres::PgOrderRepository;

/// Where PostgreSQL is.
fn postgres_url() -> String {
    std::env::var("NEXUSSALE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

#[tokio::main]
async fn main() -> nexussale_core::Result<()> {
    let repository = PgOrderRepository::connect(&postgres_url()).await?;
    repository.migrate().await?;
    // The engine takes any implementation of the three traits.
    let engine = FlashSale::new(
        Arc::new(LockedStockStore::new()),
        Arc::new(MemoryOrderQueue::new()),
        Arc::new(repository.clone()),
    );

    // A sale of its own on every run, its rows deleted again at the end whatever happened:
    // runs leave no orders or sales behind (the tables stay, empty).
    let sku = Sku::new(format!("custom-{}", nexussale_core::OrderId::new()))?;
    let sold = sell(&engine, &repository, &sku).await;
    let removed = sqlx::query("DELETE FROM orders WHERE sku = $1")
        .bind(sku.as_str())
        .execute(repository.pool())
        .await
        .and(
            sqlx::query("DELETE FROM sales WHERE sku = $1")
                .bind(sku.as_str())
                .execute(repository.pool())
                .await,
        );
    sold?;
    removed.map_err(|err| nexussale_core::Error::permanent("example", err.to_string()))?;
    Ok(())
}

/// Sells a sale of 20 units to 60 buyers at once, and checks PostgreSQL holds exactly 20 orders.
async fn sell(
    engine: &FlashSale,
    repository: &PgOrderRepository,
    sku: &Sku,
) -> nexussale_core::Result<()> {
    engine.create_sale(Sale::new(sku.clone(), 20)).await?;

    // 60 buyers at once for 20 units.
    let buyers = (0..60).map(|i| {
        let (engine, sku) = (engine.clone(), sku.clone());
        tokio::spawn(async move {
            let user = UserId::new(format!("buyer-{i}"))?;
            engine.purchase(PurchaseRequest::new(sku, user)).await
        })
    });
    let (mut accepted, mut sold_out) = (0, 0);
    for buyer in buyers {
        let outcome = buyer
            .await
            .map_err(|err| nexussale_core::Error::permanent("example", err.to_string()))?;
        match outcome? {
            PurchaseOutcome::Accepted(_) => accepted += 1,
            PurchaseOutcome::SoldOut => sold_out += 1,
            other => println!("refused: {other:?}"),
        }
    }
    // The worker moves the queued orders into PostgreSQL.
    engine.drain().await?;
    let counts = repository.counts(sku).await?;
    let query = OrderQuery {
        sku: Some(sku.clone()),
        ..OrderQuery::default()
    };
    let newest = engine.orders(&query).await?;
    println!(
        "sale {sku}: {accepted} accepted, {sold_out} sold out; PostgreSQL holds {} pending orders \
         ({} units); newest by {}",
        counts.pending.orders,
        counts.pending.units,
        newest
            .orders
            .first()
            .map_or("nobody", |order| order.user.as_str()),
    );
    if accepted != 20 || counts.pending.orders != 20 {
        return Err(nexussale_core::Error::permanent(
            "example",
            "the sale did not sell exactly its 20 units into PostgreSQL",
        ));
    }
    Ok(())
}

/// The conformance kit: the same cases every backend of this repository passes.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use nexussale_core::testkit::services::unavailable;
    use nexussale_core::testkit::unique_name;
    use nexussale_core::{DynOrderRepository, DynStockStore};
    use sqlx::postgres::PgConnectOptions;

    use super::{LockedStockStore, PgOrderRepository, postgres_url};

    async fn stock_store() -> Option<DynStockStore> {
        Some(Arc::new(LockedStockStore::new()))
    }

    nexussale_core::stock_store_tests!(stock_store);

    /// A repository in a schema of its own, `kit_<unix seconds>_<unique>`, so tests run in
    /// parallel. A test cannot clean up after itself (the kit owns the repository to the end),
    /// so each setup drops the schemas of runs more than an hour old.
    async fn order_repository() -> Option<DynOrderRepository> {
        let base: PgConnectOptions = postgres_url().parse().unwrap();
        let admin = match PgOrderRepository::connect_with(base.clone()).await {
            Ok(admin) => admin,
            Err(err) => return unavailable("postgres", format!("{}: {err}", postgres_url())),
        };
        let now = chrono::Utc::now().timestamp();
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'kit\\_%\\_%'",
        )
        .fetch_all(admin.pool())
        .await
        .unwrap();
        for schema in stale {
            let created = schema.split('_').nth(1).and_then(|t| t.parse::<i64>().ok());
            if created.is_some_and(|created| now - created > 3600) {
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(admin.pool())
                    .await
                    .unwrap();
            }
        }
        let schema = unique_name(&format!("kit_{now}_"));
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(admin.pool())
            .await
            .unwrap();
        admin.pool().close().await;
        let repository =
            PgOrderRepository::connect_with(base.options([("search_path", schema.as_str())]))
                .await
                .unwrap();
        repository.migrate().await.unwrap();
        Some(Arc::new(repository))
    }

    nexussale_core::order_repository_tests!(order_repository);

    /// The whole engine on both: a burst, the worker, pay, cancel, expiry and reconciliation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_engine_runs_on_both_backends() {
        let Some(repository) = order_repository().await else {
            return;
        };
        let queue = Arc::new(nexussale_core::memory::MemoryOrderQueue::new());
        nexussale_core::testkit::engine::purchase_flow(
            Arc::new(LockedStockStore::new()),
            queue,
            repository,
        )
        .await;
    }
}
