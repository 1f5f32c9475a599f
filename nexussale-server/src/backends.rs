//! The engine's three backends, built from where they live: each one not configured stays in the
//! process. The server's command line ([`Config::backends`]) and embedding services
//! (`examples/embed.rs`) build them here alike.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nexussale_core::memory::{
    MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore, MemoryWaitingRoomStore,
};
use nexussale_core::{
    DynOrderQueue, DynOrderRepository, DynStockStore, DynWaitingRoomStore, Error, FlashSale, Result,
};
use nexussale_kafka::{KafkaConfig, KafkaOrderQueue};
use nexussale_mysql::MySqlOrderRepository;
use nexussale_redis::{RedisConfig, RedisStockStore};
use tracing::{info, warn};

use crate::config::{Config, redact};
use crate::state::Probe;

/// Where each backend lives. [`Default`] keeps all three in the process; set the ones you move
/// out (more fields may come).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct BackendConfig {
    /// The Redis stock store's URL; `None` keeps stock in process memory.
    pub redis_url: Option<String>,
    /// The Redis store's settings (prefix, shards), used when `redis_url` is set.
    pub redis: RedisConfig,
    /// How `redis_url` reaches Redis.
    pub redis_topology: RedisTopology,
    /// The CA (PEM file) that signed the Redis server's certificate (`rediss://`); `None`: the
    /// system's roots.
    pub redis_ca: Option<std::path::PathBuf>,
    /// The client certificate and its key (PEM files) for a Redis that requires one.
    pub redis_client_certificate: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The Kafka order queue; `None` keeps the queue in process.
    pub kafka: Option<KafkaConfig>,
    /// The MySQL order repository's URL (migrated at connect); `None` keeps orders in memory.
    pub database_url: Option<String>,
    /// How long the in-memory stock store keeps settled reservations (see
    /// [`MemoryStockStore::with_retention`]); `None`: its default. Redis takes its own from
    /// `redis`.
    pub settled_retention: Option<Duration>,
    /// The most orders the in-memory repository keeps (see
    /// [`MemoryOrderRepository::with_max_orders`]); `None`: every one.
    pub max_orders_in_memory: Option<usize>,
}

/// How the server reaches Redis (more ways may come).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisTopology {
    /// One node (or a proxy in front of several): `redis_url` is its URL.
    #[default]
    Single,
    /// A Redis Cluster: `redis_url` is a comma-separated list of seed nodes, any of which
    /// leads the client to the rest.
    Cluster,
    /// Redis Sentinel: `redis_url` is a comma-separated list of sentinels, which name the
    /// current master of `master`; followed through failovers.
    Sentinel {
        /// The name the sentinels monitor (`sentinel monitor NAME …`).
        master: String,
    },
}

/// URLs shown without their passwords; Kafka's properties by name only.
impl std::fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendConfig")
            .field("redis_url", &self.redis_url.as_deref().map(redact))
            .field("redis", &self.redis)
            .field("redis_topology", &self.redis_topology)
            .field("redis_ca", &self.redis_ca)
            .field("redis_client_certificate", &self.redis_client_certificate)
            .field("kafka", &self.kafka)
            .field("database_url", &self.database_url.as_deref().map(redact))
            .field("settled_retention", &self.settled_retention)
            .field("max_orders_in_memory", &self.max_orders_in_memory)
            .finish()
    }
}

/// The three backends, connected, with a readiness probe for each one outside the process.
#[non_exhaustive]
pub struct Backends {
    /// The stock store.
    pub stock: DynStockStore,
    /// The order queue.
    pub queue: DynOrderQueue,
    /// The order repository.
    pub repository: DynOrderRepository,
    /// The waiting rooms: beside the stock in Redis (shared by every front end), else in
    /// process memory.
    pub waiting_rooms: DynWaitingRoomStore,
    /// `("stock" | "queue" | "orders", probe)` for the backends outside the process, as
    /// [`AppState::probes`](crate::AppState::probes) takes them.
    pub probes: Vec<(&'static str, Probe)>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let probed: Vec<_> = self.probes.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Backends")
            .field("stock", &self.stock)
            .field("queue", &self.queue)
            .field("repository", &self.repository)
            .field("waiting_rooms", &self.waiting_rooms)
            .field("probes", &probed)
            .finish()
    }
}

impl Backends {
    /// Connects what `config` names (Redis pinged, Kafka's topics created when absent, MySQL
    /// migrated); a connection that fails names its address, without the password.
    ///
    /// ```no_run
    /// # async fn demo() -> nexussale_core::Result<()> {
    /// use nexussale_server::{BackendConfig, Backends};
    ///
    /// let mut config = BackendConfig::default();
    /// config.redis_url = Some("redis://127.0.0.1:6379".into());
    /// let engine = Backends::connect(&config).await?.engine();
    /// # Ok(()) }
    /// ```
    pub async fn connect(config: &BackendConfig) -> Result<Self> {
        let ((stock, stock_probe), waiting_rooms) = stock_store(config).await?;
        let (queue, queue_probe) = order_queue(config).await?;
        let (repository, orders_probe) = order_repository(config).await?;
        let probes = [
            ("stock", stock_probe),
            ("queue", queue_probe),
            ("orders", orders_probe),
        ]
        .into_iter()
        .filter_map(|(name, probe)| Some((name, probe?)))
        .collect();
        Ok(Self {
            stock,
            queue,
            repository,
            waiting_rooms,
            probes,
        })
    }

    /// An engine over the four.
    pub fn engine(&self) -> FlashSale {
        FlashSale::builder(
            Arc::clone(&self.stock),
            Arc::clone(&self.queue),
            Arc::clone(&self.repository),
        )
        .waiting_rooms(Arc::clone(&self.waiting_rooms))
        .build()
    }
}

impl Config {
    /// Where the command line puts the backends. Kafka gives up delivering an event before the
    /// request that published it does ([`kafka_delivery_timeout`]).
    pub fn backends(&self) -> BackendConfig {
        let request = Duration::from_secs(self.request_timeout_secs);
        let kafka = self.kafka_brokers.as_ref().map(|brokers| {
            let kafka = KafkaConfig::new(brokers.clone())
                .topic(self.kafka_topic.clone())
                .group_id(self.kafka_group.clone())
                .partitions(self.kafka_partitions)
                .delivery_timeout(kafka_delivery_timeout(request));
            let kafka = match self.kafka_replication {
                Some(replication) => kafka.replication(replication),
                None => kafka,
            };
            self.kafka_options.iter().fold(kafka, |kafka, option| {
                kafka.set(option.key.clone(), option.value.clone())
            })
        });
        let retention = Duration::from_secs(self.settled_retention_secs);
        BackendConfig {
            redis_url: self.redis_url.clone(),
            redis: RedisConfig::default()
                .prefix(self.redis_prefix.clone())
                .stock_shards(usize::from(self.redis_shards))
                .replica_acks(usize::from(self.redis_replica_acks))
                .settled_retention(retention),
            settled_retention: Some(retention),
            max_orders_in_memory: (self.max_orders_in_memory > 0)
                .then_some(self.max_orders_in_memory),
            redis_ca: self.redis_ca.clone(),
            redis_client_certificate: self
                .redis_client_cert
                .clone()
                .zip(self.redis_client_key.clone()),
            redis_topology: match (&self.redis_sentinel, self.redis_cluster) {
                (Some(master), _) => RedisTopology::Sentinel {
                    master: master.clone(),
                },
                (None, true) => RedisTopology::Cluster,
                (None, false) => RedisTopology::Single,
            },
            kafka,
            database_url: self.database_url.clone(),
        }
    }
}

/// How long Kafka may try to deliver an event, for requests that may take `request`. A publish
/// must give up before the request does: then the purchase is refused cleanly (503, units
/// returned) instead of being cut off while the event may still be delivered. librdkafka notices
/// a timed-out message up to a second late (it scans once a second), so the margin is 1.5 s, at
/// most half the request's time; and never more than 10 s.
pub fn kafka_delivery_timeout(request: Duration) -> Duration {
    let request = request.max(Duration::from_secs(1));
    request
        .saturating_sub(Duration::from_millis(1500))
        .max(request / 2)
        .min(Duration::from_secs(10))
}

/// A backend and, when it lives outside the process, its readiness probe.
type Built<T> = (T, Option<Probe>);

fn probe<T, F, Fut>(backend: &Arc<T>, check: F) -> Option<Probe>
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let backend = Arc::clone(backend);
    Some(Arc::new(move || Box::pin(check(Arc::clone(&backend)))))
}

/// Names the address a start-up connection failed on (the URL without its password): the
/// driver's own error often does not.
fn failed_at(backend: &'static str, url: &str) -> impl Fn(Error) -> Error {
    let url = redact(url);
    move |err| Error::permanent(backend, format!("{url}: {err}"))
}

/// The stock store, and the waiting-room store beside it.
async fn stock_store(
    config: &BackendConfig,
) -> Result<(Built<DynStockStore>, DynWaitingRoomStore)> {
    let Some(url) = &config.redis_url else {
        info!("stock: in-memory");
        let rooms = Arc::new(MemoryWaitingRoomStore::new());
        let store = match config.settled_retention {
            Some(retention) => MemoryStockStore::new().with_retention(retention),
            None => MemoryStockStore::new(),
        };
        return Ok(((Arc::new(store), None), rooms));
    };
    let failed = failed_at("redis", url);
    let mut redis = config.redis.clone();
    if let Some(ca) = &config.redis_ca {
        redis = redis.root_certificate(read_pem("--redis-ca", ca)?);
    }
    if let Some((certificate, key)) = &config.redis_client_certificate {
        redis = redis.client_certificate(
            read_pem("--redis-client-cert", certificate)?,
            read_pem("--redis-client-key", key)?,
        );
    }
    let store = match &config.redis_topology {
        RedisTopology::Single => RedisStockStore::connect_with(url, redis.clone()).await,
        RedisTopology::Cluster => {
            let seeds = url_list(url, "a cluster's seed list")?;
            RedisStockStore::connect_cluster(&seeds, redis.clone()).await
        }
        RedisTopology::Sentinel { master } => {
            let sentinels = url_list(url, "the sentinel list")?;
            RedisStockStore::connect_sentinel(&sentinels, master, redis.clone()).await
        }
    };
    let store = Arc::new(store.map_err(&failed)?);
    store.ping().await.map_err(&failed)?;
    info!(url = %redact(url), topology = ?config.redis_topology, prefix = %redis.prefix_str(), shards = redis.stock_shard_count(), "stock: redis");
    let ready = probe(&store, |store| async move { store.ping().await });
    let rooms = Arc::new(store.waiting_rooms());
    Ok(((store, ready), rooms))
}

/// A PEM file a Redis TLS flag names; the error names the flag and the file.
fn read_pem(flag: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|err| Error::permanent("redis", format!("{flag} {}: {err}", path.display())))
}

/// The URLs of a comma-separated list (`redis://a:7000,redis://b:7000`: a cluster's seeds, the
/// sentinels), none empty; `list` names it in the error.
fn url_list<'a>(urls: &'a str, list: &str) -> Result<Vec<&'a str>> {
    let entries: Vec<&str> = urls.split(',').map(str::trim).collect();
    if entries.iter().any(|entry| entry.is_empty()) {
        return Err(Error::permanent(
            "redis",
            format!(
                "{}: {list} has an empty entry (expected redis://host:port,redis://host:port,…)",
                redact(urls)
            ),
        ));
    }
    Ok(entries)
}

async fn order_queue(config: &BackendConfig) -> Result<Built<DynOrderQueue>> {
    let Some(kafka) = &config.kafka else {
        info!("order queue: in-process");
        return Ok((Arc::new(MemoryOrderQueue::new()), None));
    };
    let brokers = kafka.bootstrap_servers();
    let queue = Arc::new(
        KafkaOrderQueue::connect(kafka.clone())
            .await
            .map_err(failed_at("kafka", brokers))?,
    );
    match queue.ensure_topics().await {
        Ok(()) => {}
        // A certificate that does not hold, credentials the brokers refuse, a topic this server
        // may not create: waiting mends none of them.
        Err(err) if !err.is_retryable() => return Err(failed_at("kafka", brokers)(err)),
        // The brokers are unreachable for now: start, and let readiness say so.
        Err(err) => {
            warn!(error = %err, "could not create the kafka topics; using them as they are")
        }
    }
    info!(brokers = %brokers, topic = %kafka.topic_name(), group = %kafka.group_name(), "order queue: kafka");
    let ready = probe(&queue, |queue| async move { queue.ping().await });
    Ok((queue, ready))
}

async fn order_repository(config: &BackendConfig) -> Result<Built<DynOrderRepository>> {
    let Some(url) = &config.database_url else {
        let repository = match config.max_orders_in_memory {
            Some(max) => {
                info!(
                    max_orders = max,
                    "orders: in-memory, oldest settled forgotten past the bound"
                );
                MemoryOrderRepository::new().with_max_orders(max)
            }
            None => {
                info!("orders: in-memory, every order kept (bound it with --max-orders-in-memory)");
                MemoryOrderRepository::new()
            }
        };
        return Ok((Arc::new(repository), None));
    };
    let failed = failed_at("mysql", url);
    let repository = Arc::new(MySqlOrderRepository::connect(url).await.map_err(&failed)?);
    repository.migrate().await.map_err(&failed)?;
    info!(url = %redact(url), "orders: mysql (schema migrated)");
    let ready = probe(
        &repository,
        |repository| async move { repository.ping().await },
    );
    Ok((repository, ready))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kafka_delivery_gives_up_before_its_request() {
        let secs = Duration::from_secs;
        let ms = Duration::from_millis;
        for (request, delivery) in [
            (secs(10), ms(8500)),
            (secs(3), ms(1500)),
            (secs(2), secs(1)),
            (secs(1), ms(500)),
            (Duration::ZERO, ms(500)),
            (secs(60), secs(10)),
        ] {
            assert_eq!(kafka_delivery_timeout(request), delivery, "{request:?}");
            assert!(delivery < request.max(secs(1)));
        }
    }

    #[test]
    fn the_command_line_puts_kafka_delivery_under_the_request_timeout() {
        use clap::Parser;
        let config = Config::try_parse_from([
            "nexussale-server",
            "--kafka-brokers",
            "kafka:9092",
            "--request-timeout-secs",
            "3",
        ])
        .unwrap();
        let shown = format!("{:?}", config.backends().kafka.unwrap());
        assert!(shown.contains("delivery_timeout: 1.5s"), "{shown}");
    }

    #[tokio::test]
    async fn nothing_configured_stays_in_the_process_with_nothing_to_probe() {
        let backends = Backends::connect(&BackendConfig::default()).await.unwrap();
        assert!(backends.probes.is_empty());
        let engine = backends.engine();
        let sku = nexussale_core::Sku::new("in-process").unwrap();
        assert!(
            engine
                .ensure_sale(nexussale_core::Sale::new(sku, 1))
                .await
                .unwrap()
        );
    }

    #[test]
    fn debug_shows_no_password() {
        let config = BackendConfig {
            redis_url: Some("redis://:hunter2@redis:6379".into()),
            database_url: Some("mysql://root:s3cret@db/shop".into()),
            kafka: Some(KafkaConfig::new("k:9092").set("sasl.password", "pw-kafka")),
            ..BackendConfig::default()
        };
        let shown = format!("{config:?}");
        for secret in ["hunter2", "s3cret", "pw-kafka"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("redis:6379") && shown.contains("db/shop"),
            "{shown}"
        );
    }
}
