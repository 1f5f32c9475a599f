//! [`KafkaOrderQueue`]: the order events on a Kafka topic.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use std::sync::Arc;

use nexussale_core::{Delivery, DeliveryTag, OrderEvent, OrderQueue, OutageLog, QueueMark, Result};

use crate::codec;
use crate::config::KafkaConfig;
use crate::consumer::GroupConsumer;
use crate::context::QuietContext;
use crate::drain;
use crate::error::QueueError;
use crate::topics::{self, ClusterView};

/// An [`OrderQueue`] on a Kafka topic.
///
/// - **Publish** goes through an idempotent producer (`enable.idempotence`, `acks=all`) keyed by
///   sku, so one sale's events keep their order in one partition and a retried send is never
///   written twice; it returns once the brokers acknowledged the event. The producer's queue is
///   bounded ([`KafkaConfig::max_queued`]): when full, `publish` fails as retryable.
/// - **Receive** joins the consumer group on first use (a process that only publishes never
///   joins). An offset is committed only once every event before it was acknowledged, so an
///   event is committed only after the worker persisted it; what is nacked is delivered again
///   (the consumer seeks back), and so is what a member held when it left or lost its partitions.
/// - An event that cannot be decoded goes to the dead-letter topic, with the reason in its
///   headers, and consumption goes on (counted in `nexussale_dead_letters_total`).
/// - The publishing call's trace context ([`nexussale_core::trace::current`]) travels in the
///   `traceparent` header and comes back in [`Delivery::trace`].
///
/// ```no_run
/// use nexussale_kafka::{KafkaConfig, KafkaOrderQueue};
///
/// # #[tokio::main] async fn main() -> nexussale_core::Result<()> {
/// let queue = KafkaOrderQueue::connect(KafkaConfig::new("127.0.0.1:9092")).await?;
/// queue.ensure_topics().await?;
/// # Ok(()) }
/// ```
pub struct KafkaOrderQueue {
    config: KafkaConfig,
    producer: FutureProducer<QuietContext>,
    consumer: OnceCell<GroupConsumer>,
    /// A client of the group that never joins it: it only reads the group's committed offsets.
    offsets: OnceCell<Arc<BaseConsumer<QuietContext>>>,
    /// The producer's: its outage log is shared by the consumer's callbacks and the calls
    /// below, and it is cloned for the admin and offsets clients.
    context: QuietContext,
}

impl std::fmt::Debug for KafkaOrderQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOrderQueue")
            .field("config", &self.config)
            .field("consuming", &self.consumer.initialized())
            .finish()
    }
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

impl KafkaOrderQueue {
    /// A queue on `config`'s cluster. Creates the producer (connections open in the background);
    /// the consumer joins the group on the first `receive`.
    pub async fn connect(config: KafkaConfig) -> Result<Self> {
        let context = QuietContext::new(Arc::new(OutageLog::new("kafka")));
        let producer: FutureProducer<QuietContext> = config
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", millis(config.linger))
            .set("batch.size", config.batch_bytes.to_string())
            .set(
                "queue.buffering.max.messages",
                config.max_queued.to_string(),
            )
            .set("delivery.timeout.ms", millis(config.delivery_timeout))
            // A sale's events are near-identical JSON: LZ4 shrinks a batch several times over
            // (less network and broker disk) for little CPU, and librdkafka carries it built in.
            .set("compression.type", "lz4")
            .set(
                "statistics.interval.ms",
                millis(crate::context::STATISTICS_EVERY),
            )
            .with_extra(&config)
            .create_with_context(context.clone())
            .map_err(QueueError::from)?;
        Ok(Self {
            config,
            producer,
            consumer: OnceCell::new(),
            offsets: OnceCell::new(),
            context,
        })
    }

    /// Creates the topic and the dead-letter topic, unless the cluster's metadata lists them
    /// already: the configured partitions (the dead-letter topic: 1), the configured replication
    /// (default: 3, or the broker count when fewer) and `min.insync.replicas` one below it (at
    /// least 1), so that with `acks=all` an accepted order is on two brokers whenever the topic
    /// has three replicas. An existing topic with one replica on a cluster of several brokers
    /// gets a warning: it is not changed. Brokers that cannot create topics (librdkafka's mock
    /// cluster has no admin API) answer an error: create the topics there by other means.
    ///
    /// The first call that needs the brokers: when their TLS or SASL handshake fails (a
    /// certificate that does not hold, a wrong password), the error says why and is permanent.
    pub async fn ensure_topics(&self) -> Result<()> {
        let dead_letters = self.config.dead_letter_topic_name();
        let cluster = {
            let producer = self.producer.clone();
            tokio::task::spawn_blocking(move || {
                producer
                    .client()
                    .fetch_metadata(None, Duration::from_secs(10))
                    .map(|metadata| ClusterView::of(&metadata))
            })
            .await
            .map_err(|err| QueueError::Interrupted(err.to_string()))?
            .map_err(|err| match self.context.handshake_refused() {
                Some(reason) => QueueError::Handshake(reason),
                None => QueueError::from(err),
            })?
        };
        for topic in cluster.single_copy(&[&self.config.topic, &dead_letters]) {
            warn!(
                %topic,
                brokers = cluster.brokers,
                "kafka topic has a replication factor of 1 on a cluster of several brokers: one broker's disk holds every accepted order (raise it with kafka-reassign-partitions)"
            );
        }
        if cluster.has(&self.config.topic) && cluster.has(&dead_letters) {
            return Ok(());
        }
        let admin: AdminClient<QuietContext> = self
            .config
            .client()
            .with_extra(&self.config)
            .create_with_context(self.context.clone())
            .map_err(QueueError::from)?;
        let replication = cluster.replication(self.config.replication);
        let min_insync = topics::min_insync_replicas(replication).to_string();
        let topics = [
            (&self.config.topic, self.config.partitions),
            (&dead_letters, 1),
        ];
        let topics: Vec<NewTopic<'_>> = topics
            .into_iter()
            .filter(|(topic, _)| !cluster.has(topic))
            .map(|(topic, partitions)| {
                NewTopic::new(topic, partitions, TopicReplication::Fixed(replication))
                    .set("min.insync.replicas", &min_insync)
            })
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(10)))
            .request_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics(&topics, &options)
            .await
            .map_err(QueueError::from)?;
        for result in results {
            match result {
                Ok(topic) => {
                    info!(%topic, replication, min_insync_replicas = %min_insync, "kafka topic created");
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(QueueError::Kafka(KafkaError::AdminOp(code)).into_topic(&topic));
                }
            }
        }
        Ok(())
    }

    /// Whether the brokers answer (metadata of the topic within 2 s), for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        let (producer, topic) = (self.producer.clone(), self.config.topic.clone());
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(2))
                .map(drop)
        })
        .await
        .map_err(|err| QueueError::Interrupted(err.to_string()))?
        .map_err(QueueError::from)?;
        self.context.outage.success();
        Ok(())
    }

    /// The configuration this queue runs with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    async fn consumer(&self) -> Result<&GroupConsumer> {
        let consumer = self
            .consumer
            .get_or_try_init(|| async {
                let config = self
                    .config
                    .client()
                    .set("group.id", &self.config.group_id)
                    .set("enable.auto.commit", "false")
                    .set("enable.auto.offset.store", "false")
                    .set("auto.offset.reset", "earliest")
                    .set("fetch.wait.max.ms", "50")
                    .with_extra(&self.config)
                    .clone();
                GroupConsumer::new(
                    config,
                    &self.config.topic,
                    self.config.dead_letter_topic_name(),
                    self.producer.clone(),
                    Arc::clone(&self.context.outage),
                )
            })
            .await?;
        Ok(consumer)
    }
}

impl KafkaOrderQueue {
    async fn offsets_reader(&self) -> Result<Arc<BaseConsumer<QuietContext>>> {
        let reader = self
            .offsets
            .get_or_try_init(|| async {
                let reader: BaseConsumer<QuietContext> = self
                    .config
                    .client()
                    .set("group.id", &self.config.group_id)
                    .set("enable.auto.commit", "false")
                    .with_extra(&self.config)
                    .create_with_context(self.context.clone())
                    .map_err(QueueError::from)?;
                Ok::<_, nexussale_core::Error>(Arc::new(reader))
            })
            .await?;
        Ok(Arc::clone(reader))
    }
}

impl QueueError {
    fn into_topic(self, topic: &str) -> nexussale_core::Error {
        nexussale_core::Error::permanent("kafka", format!("creating topic {topic}: {self}"))
    }
}

impl KafkaConfig {
    fn client(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &self.brokers)
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "1000");
        client
    }
}

trait WithExtra {
    fn with_extra(&mut self, config: &KafkaConfig) -> &mut Self;
}

impl WithExtra for ClientConfig {
    fn with_extra(&mut self, config: &KafkaConfig) -> &mut Self {
        for (key, value) in &config.extra {
            self.set(key, value);
        }
        self
    }
}

#[async_trait]
impl OrderQueue for KafkaOrderQueue {
    async fn publish(&self, event: &OrderEvent) -> Result<()> {
        let payload = codec::encode(event).map_err(QueueError::from)?;
        let mut record = FutureRecord::to(&self.config.topic)
            .key(event.sku().as_str())
            .payload(&payload);
        // The purchase's trace, for the worker that persists it (W3C trace context over Kafka).
        if let Some(trace) = nexussale_core::trace::current() {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: codec::TRACEPARENT,
                value: Some(trace.as_str()),
            }));
        }
        self.producer
            .send(record, self.config.queue_timeout)
            .await
            .map_err(|(err, _)| QueueError::Kafka(err))?;
        self.context.outage.success();
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let batch = self.consumer().await?.receive(max, wait).await?;
        if !batch.is_empty() {
            self.context.outage.success();
        }
        Ok(batch)
    }

    async fn ack(&self, tags: &[DeliveryTag]) -> Result<()> {
        self.consumer().await?.ack(tags).await?;
        self.context.outage.success();
        Ok(())
    }

    async fn nack(&self, tags: &[DeliveryTag]) -> Result<()> {
        Ok(self.consumer().await?.nack(tags).await?)
    }

    async fn mark(&self) -> Result<QueueMark> {
        let (producer, topic) = (self.producer.clone(), self.config.topic.clone());
        let mark = tokio::task::spawn_blocking(move || drain::mark(&producer, &topic))
            .await
            .map_err(|err| QueueError::Interrupted(err.to_string()))?
            .map_err(QueueError::from)?;
        Ok(mark)
    }

    async fn drained(&self, mark: &QueueMark) -> Result<bool> {
        let reader = self.offsets_reader().await?;
        let (topic, mark) = (self.config.topic.clone(), mark.clone());
        let drained = tokio::task::spawn_blocking(move || drain::drained(&reader, &topic, &mark))
            .await
            .map_err(|err| QueueError::Interrupted(err.to_string()))?
            .map_err(QueueError::from)?;
        Ok(drained)
    }
}
