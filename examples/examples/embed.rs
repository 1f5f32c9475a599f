//! Embedding NexusSale in a service: backends chosen at run time from the environment
//! (`NEXUSSALE_REDIS_URL`, `NEXUSSALE_KAFKA_BROKERS`, `NEXUSSALE_DATABASE_URL`; each unset one
//! stays in process), a sale, a burst of buyers, the worker persisting their orders.
//!
//! ```text
//! cargo run -p nexussale-examples --example embed
//! NEXUSSALE_REDIS_URL=redis://127.0.0.1:6379 cargo run -p nexussale-examples --example embed
//! ```

use std::env::var;
use std::sync::Arc;

use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
use nexussale_core::{
    CancellationToken, DynOrderQueue, DynOrderRepository, DynStockStore, FlashSale, OrderQuery,
    PurchaseOutcome, PurchaseRequest, Sale, Sku, UserId,
};
use nexussale_kafka::{KafkaConfig, KafkaOrderQueue};
use nexussale_mysql::MySqlOrderRepository;
use nexussale_redis::{RedisConfig, RedisStockStore};

#[tokio::main]
async fn main() -> nexussale_core::Result<()> {
    let stock: DynStockStore = match var("NEXUSSALE_REDIS_URL") {
        // A prefix of its own, so the example never meets another program's sales.
        Ok(url) => Arc::new(
            RedisStockStore::connect_with(&url, RedisConfig::default().prefix("embed-example"))
                .await?,
        ),
        Err(_) => Arc::new(MemoryStockStore::new()),
    };
    let queue: DynOrderQueue = match var("NEXUSSALE_KAFKA_BROKERS") {
        Ok(brokers) => Arc::new(KafkaOrderQueue::connect(KafkaConfig::new(brokers)).await?),
        Err(_) => Arc::new(MemoryOrderQueue::new()),
    };
    let orders: DynOrderRepository = match var("NEXUSSALE_DATABASE_URL") {
        Ok(url) => {
            let repository = MySqlOrderRepository::connect(&url).await?;
            repository.migrate().await?;
            Arc::new(repository)
        }
        Err(_) => Arc::new(MemoryOrderRepository::new()),
    };
    let engine = FlashSale::new(stock, queue, orders);

    // A sale of 10 units, one per buyer; it is created once, kept on later runs.
    let sku = Sku::new("embed-demo")?;
    engine.ensure_sale(Sale::new(sku.clone(), 10)).await?;

    // The order worker persists accepted purchases in the background.
    let stop = CancellationToken::new();
    let worker = tokio::spawn({
        let (engine, stop) = (engine.clone(), stop.clone());
        async move { engine.run_worker(stop).await }
    });

    // 25 buyers at once for 10 units.
    let buyers = (0..25).map(|i| {
        let (engine, sku) = (engine.clone(), sku.clone());
        tokio::spawn(async move {
            let user = UserId::new(format!("buyer-{i}"))?;
            engine.purchase(PurchaseRequest::new(sku, user)).await
        })
    });
    let mut accepted = 0;
    for buyer in buyers {
        let outcome = buyer
            .await
            .map_err(|err| nexussale_core::Error::permanent("example", err.to_string()))?;
        match outcome? {
            PurchaseOutcome::Accepted(_) => accepted += 1,
            PurchaseOutcome::SoldOut | PurchaseOutcome::LimitExceeded { .. } => {}
            other => println!("refused: {other:?}"),
        }
    }
    let view = engine.sale(&sku).await?;
    println!(
        "accepted {accepted}; available {}, reserved {}",
        view.snapshot.available, view.snapshot.reserved
    );

    // Give the worker a moment, then read the persisted orders back.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let query = OrderQuery {
        sku: Some(sku),
        ..OrderQuery::default()
    };
    println!(
        "persisted orders: {}",
        engine.orders(&query).await?.orders.len()
    );
    stop.cancel();
    let _ = worker.await;
    Ok(())
}
