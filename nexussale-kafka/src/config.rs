//! [`KafkaConfig`]: brokers, topics, the consumer group and the producer's batching.

use std::collections::BTreeMap;
use std::time::Duration;

/// Settings of a [`KafkaOrderQueue`](crate::KafkaOrderQueue).
///
/// ```
/// use std::time::Duration;
/// use nexussale_kafka::KafkaConfig;
///
/// let config = KafkaConfig::new("kafka-1:9092,kafka-2:9092")
///     .topic("shop.orders")
///     .group_id("shop-order-worker")
///     .partitions(24)
///     .replication(3)
///     .set("security.protocol", "ssl");
/// assert_eq!(config.dead_letter_topic_name(), "shop.orders.dlq");
/// ```
#[derive(Clone)]
pub struct KafkaConfig {
    pub(crate) brokers: String,
    pub(crate) topic: String,
    pub(crate) dead_letter_topic: Option<String>,
    pub(crate) group_id: String,
    pub(crate) partitions: i32,
    /// `None`: 3, or the broker count when fewer.
    pub(crate) replication: Option<i32>,
    pub(crate) linger: Duration,
    pub(crate) batch_bytes: usize,
    pub(crate) max_queued: usize,
    pub(crate) queue_timeout: Duration,
    pub(crate) delivery_timeout: Duration,
    pub(crate) extra: BTreeMap<String, String>,
}

/// Every field but the values of the librdkafka properties set with [`KafkaConfig::set`]: those
/// may be secrets (`sasl.password`, `ssl.key.password`), so only their names are shown.
impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("group_id", &self.group_id)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("linger", &self.linger)
            .field("batch_bytes", &self.batch_bytes)
            .field("max_queued", &self.max_queued)
            .field("queue_timeout", &self.queue_timeout)
            .field("delivery_timeout", &self.delivery_timeout)
            .field(
                "extra",
                &self
                    .extra
                    .keys()
                    .map(|key| format!("{key}=***"))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl KafkaConfig {
    /// Settings for the cluster at `brokers` (`host:port`, comma-separated), with defaults for
    /// everything else.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: "nexussale.orders".to_owned(),
            dead_letter_topic: None,
            group_id: "nexussale-order-worker".to_owned(),
            partitions: 12,
            replication: None,
            linger: Duration::from_millis(1),
            batch_bytes: 1 << 20,
            max_queued: 100_000,
            queue_timeout: Duration::from_secs(1),
            delivery_timeout: Duration::from_secs(10),
            extra: BTreeMap::new(),
        }
    }

    /// The order events' topic (default `nexussale.orders`).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// Where undecodable messages go, with the reason in their headers (default: the topic's
    /// name followed by `.dlq`).
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic = Some(topic.into());
        self
    }

    /// The consumer group of the order workers (default `nexussale-order-worker`): workers of one
    /// group share the partitions.
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = group.into();
        self
    }

    /// Partitions of the topics created at start-up (default 12): the most workers that consume
    /// at once.
    pub fn partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// Replication factor of the topics created at start-up (default: 3, or the number of
    /// brokers when fewer). Created topics get `min.insync.replicas` one below it (at least 1).
    pub fn replication(mut self, replication: i32) -> Self {
        self.replication = Some(replication.max(1));
        self
    }

    /// How long the producer waits to fill a batch (`linger.ms`, default 1 ms). In a flash sale
    /// hundreds of purchases wait on their publish at once, so even 1 ms fills large batches;
    /// every purchase waits out the linger, so a longer one costs throughput at a fixed
    /// concurrency (5 ms: −15 % purchases/s on the full stack, docs/BENCHMARKS.md). 0 sends every
    /// event in a request of its own.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The largest batch per partition (`batch.size`, default 1 MiB). Batches are compressed
    /// with LZ4 (`set("compression.type", …)` to change it).
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes.max(1);
        self
    }

    /// Events waiting for the broker at most (`queue.buffering.max.messages`, default 100,000).
    /// When as many are in flight, `publish` waits up to the queue timeout for room, then fails
    /// as retryable: backpressure instead of an unbounded queue.
    pub fn max_queued(mut self, events: usize) -> Self {
        self.max_queued = events.max(1);
        self
    }

    /// How long `publish` waits for room in a full producer queue (default 1 s).
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = timeout;
        self
    }

    /// How long `publish` waits for the brokers to acknowledge an event, retries included
    /// (`delivery.timeout.ms`, default 10 s), before it fails as retryable.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Any other librdkafka property (`security.protocol`, `sasl.mechanisms`, ...), for both the
    /// producer and the consumer. It wins over the settings above.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The bootstrap brokers (`host:port`, comma-separated).
    pub fn bootstrap_servers(&self) -> &str {
        &self.brokers
    }

    /// The consumer group the worker reads in.
    pub fn group_name(&self) -> &str {
        &self.group_id
    }

    /// The order events' topic.
    pub fn topic_name(&self) -> &str {
        &self.topic
    }

    /// The dead-letter topic.
    pub fn dead_letter_topic_name(&self) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}.dlq", self.topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_names_of_extra_properties_never_their_values() {
        let config = KafkaConfig::new("kafka:9093")
            .set("sasl.password", "s3cret-pw")
            .set("ssl.key.password", "an0ther");
        let shown = format!("{config:?}");
        assert!(shown.contains("sasl.password=***"), "{shown}");
        assert!(
            !shown.contains("s3cret-pw") && !shown.contains("an0ther"),
            "{shown}"
        );
        assert!(shown.contains("kafka:9093"), "{shown}");
    }
}
