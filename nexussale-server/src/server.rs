//! Serving: the accept loop with graceful shutdown, and the whole process (`run`).

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
use nexussale_core::{
    CancellationToken, DynOrderQueue, DynOrderRepository, DynStockStore, FlashSale,
};
use nexussale_kafka::{KafkaConfig, KafkaOrderQueue};
use nexussale_mysql::MySqlOrderRepository;
use nexussale_redis::{RedisConfig, RedisStockStore};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::{Config, redact};
use crate::{App, app};

/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` (HTTP/1.1, keep-alive) until `shutdown` is cancelled; then stops
/// accepting, lets in-flight requests finish (up to 10 s), and returns.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), app.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}"),
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The stock store the configuration asks for: Redis when a URL is set, else process memory.
async fn stock_store(config: &Config) -> nexussale_core::Result<DynStockStore> {
    let Some(url) = &config.redis_url else {
        info!("stock: in-memory");
        return Ok(Arc::new(MemoryStockStore::new()));
    };
    let redis = RedisConfig::default()
        .prefix(config.redis_prefix.clone())
        .stock_shards(usize::from(config.redis_shards));
    let store = RedisStockStore::connect_with(url, redis).await?;
    store.ping().await?;
    info!(url = %redact(url), prefix = %config.redis_prefix, shards = config.redis_shards, "stock: redis");
    Ok(Arc::new(store))
}

/// The order queue the configuration asks for: Kafka when brokers are set (topics created
/// when absent), else an in-process queue.
async fn order_queue(config: &Config) -> nexussale_core::Result<DynOrderQueue> {
    let Some(brokers) = &config.kafka_brokers else {
        info!("order queue: in-process");
        return Ok(Arc::new(MemoryOrderQueue::new()));
    };
    let kafka = KafkaConfig::new(brokers.clone())
        .topic(config.kafka_topic.clone())
        .group_id(config.kafka_group.clone());
    let queue = KafkaOrderQueue::connect(kafka).await?;
    if let Err(err) = queue.ensure_topics().await {
        // The topics may exist already, or be created by the cluster's operators.
        warn!(error = %err, "could not create the kafka topics; using them as they are");
    }
    info!(brokers = %brokers, topic = %config.kafka_topic, group = %config.kafka_group, "order queue: kafka");
    Ok(Arc::new(queue))
}

/// The order repository the configuration asks for: MySQL (migrated first) when a URL is set,
/// else process memory.
async fn order_repository(config: &Config) -> nexussale_core::Result<DynOrderRepository> {
    let Some(url) = &config.database_url else {
        info!("orders: in-memory");
        return Ok(Arc::new(MemoryOrderRepository::new()));
    };
    let repository = MySqlOrderRepository::connect(url).await?;
    repository.migrate().await?;
    info!(url = %redact(url), "orders: mysql (schema migrated)");
    Ok(Arc::new(repository))
}

/// The whole server process: backends, start-up sales, the order worker and the expiry
/// sweeper, the HTTP service; until Ctrl-C or SIGTERM, then a graceful stop that persists
/// every accepted order before returning.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stock = stock_store(&config).await?;
    let queue = order_queue(&config).await?;
    let repository = order_repository(&config).await?;
    let engine = FlashSale::new(stock, queue, repository);
    for spec in &config.sales {
        let sale = spec.0.clone();
        let (sku, stock, limit) = (sale.sku.clone(), sale.stock, sale.per_user_limit);
        if engine.ensure_sale(sale).await? {
            info!(%sku, stock, per_user_limit = limit, "sale created");
        } else {
            info!(%sku, "sale exists; left as it is");
        }
    }

    let background = CancellationToken::new();
    let worker = tokio::spawn({
        let (engine, token) = (engine.clone(), background.clone());
        async move { engine.run_worker(token).await }
    });
    let sweeper = tokio::spawn({
        let (engine, token) = (engine.clone(), background.clone());
        async move { engine.run_sweeper(token).await }
    });

    let listener = TcpListener::bind(config.listen).await?;
    info!(address = %listener.local_addr()?, "listening");
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            signal().await;
            info!("shutting down: no new connections, finishing in-flight requests");
            stop.cancel();
        }
    });
    serve(listener, app(engine.clone()), stop).await?;

    background.cancel();
    let _ = tokio::join!(worker, sweeper);
    if config.kafka_brokers.is_none() {
        // The in-process queue dies with the process: persist what it still holds.
        let persisted = engine.drain().await?;
        info!(persisted, "stopped; every accepted order is persisted");
    } else {
        info!("stopped; events not yet persisted wait in kafka for the next worker");
    }
    Ok(())
}
