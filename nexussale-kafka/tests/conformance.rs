//! The core conformance kit on librdkafka's mock cluster (3 brokers), and on the cluster at
//! `NEXUSSALE_KAFKA_BROKERS` when it is set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::{Arc, OnceLock};

use nexussale_core::DynOrderQueue;
use nexussale_core::testkit::services::kafka_brokers;
use nexussale_core::testkit::{QueueOpener, unique_name};
use nexussale_kafka::testkit::{MockHost, test_timings};
use nexussale_kafka::{KafkaConfig, KafkaOrderQueue};

/// Every call opens another member of one consumer group on one topic.
fn opener(config: KafkaConfig) -> QueueOpener {
    Arc::new(move || {
        let config = config.clone();
        Box::pin(async move {
            Arc::new(KafkaOrderQueue::connect(config).await.unwrap()) as DynOrderQueue
        })
    })
}

mod mock {
    use super::*;

    /// One mock cluster for the whole file; each case gets a topic and a group of its own.
    fn host() -> &'static MockHost {
        static HOST: OnceLock<MockHost> = OnceLock::new();
        HOST.get_or_init(MockHost::start)
    }

    async fn setup() -> Option<QueueOpener> {
        Some(opener(host().config(4)))
    }

    nexussale_core::order_queue_tests!(setup);
}

mod broker {
    use super::*;

    async fn setup() -> Option<QueueOpener> {
        let Some(brokers) = kafka_brokers() else {
            eprintln!("skipping: NEXUSSALE_KAFKA_BROKERS is not set (the mock cluster ran these)");
            return None;
        };
        let config = test_timings(
            KafkaConfig::new(brokers)
                .topic(unique_name("nexussale-test-orders-"))
                .group_id(unique_name("nexussale-test-"))
                .partitions(4),
        );
        let queue = KafkaOrderQueue::connect(config.clone()).await.unwrap();
        queue.ensure_topics().await.unwrap();
        Some(opener(config))
    }

    nexussale_core::order_queue_tests!(setup);
}
