//! Embedding NexusSale in a service: backends chosen at run time from the environment
//! (`NEXUSSALE_REDIS_URL`, `NEXUSSALE_KAFKA_BROKERS`, `NEXUSSALE_DATABASE_URL`; each unset one
//! stays in process), a sale, a burst of buyers, the worker persisting their orders.
//!
//! ```text
//! cargo run -p nexussale-examples --example embed
//! NEXUSSALE_REDIS_URL=redis://127.0.0.1:6379 cargo run -p nexussale-examples --example embed
//! ```

use std::env::var;

use nexussale_core::{
    CancellationToken, OrderQuery, PurchaseOutcome, PurchaseRequest, Sale, Sku, UserId,
};
use nexussale_kafka::KafkaConfig;
use nexussale_redis::RedisConfig;
use nexussale_server::{BackendConfig, Backends};

#[tokio::main]
async fn main() -> nexussale_core::Result<()> {
    // The server's own factory: each backend named in the environment is connected (Redis
    // pinged, Kafka's topics created, MySQL migrated), the others stay in process.
    let mut config = BackendConfig::default();
    config.redis_url = var("NEXUSSALE_REDIS_URL").ok();
    // A prefix of its own, so the example never meets another program's sales.
    config.redis = RedisConfig::default().prefix("embed-example");
    config.kafka = var("NEXUSSALE_KAFKA_BROKERS").ok().map(KafkaConfig::new);
    config.database_url = var("NEXUSSALE_DATABASE_URL").ok();
    let engine = Backends::connect(&config).await?.engine();

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
