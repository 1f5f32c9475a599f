//! The core conformance kit on librdkafka's mock cluster (3 brokers), on a tansu broker the test
//! binary starts (topics created through the admin API), plain and behind TLS, and on the cluster at
//! `NEXUSSALE_KAFKA_BROKERS` when it is set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::{Arc, OnceLock};

use nexussale_core::DynOrderQueue;
use nexussale_core::testkit::services::kafka_brokers;
use nexussale_core::testkit::services::unavailable;
use nexussale_core::testkit::{QueueOpener, unique_name};
use nexussale_kafka::testkit::{MockHost, ServerCertificate, Tansu, test_timings};
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

/// A config on a new topic (created through the admin API) and group of the cluster at `brokers`.
async fn on_broker(config: KafkaConfig) -> QueueOpener {
    let config = test_timings(
        config
            .topic(unique_name("nexussale-test-orders-"))
            .group_id(unique_name("nexussale-test-"))
            .partitions(4),
    );
    let queue = KafkaOrderQueue::connect(config.clone()).await.unwrap();
    queue.ensure_topics().await.unwrap();
    opener(config)
}

/// One broker per test binary and kind, for all its cases; the broker stops when the binary
/// exits.
fn tansu(tls: bool) -> Option<&'static Tansu> {
    static PLAIN: OnceLock<Result<Tansu, String>> = OnceLock::new();
    static TLS: OnceLock<Result<Tansu, String>> = OnceLock::new();
    let broker = if tls {
        TLS.get_or_init(|| Tansu::start_tls(ServerCertificate::Valid))
    } else {
        PLAIN.get_or_init(Tansu::start)
    };
    match broker {
        Ok(broker) => Some(broker),
        Err(reason) => unavailable("tansu", reason),
    }
}

mod tansu {
    use super::*;

    async fn setup() -> Option<QueueOpener> {
        Some(on_broker(KafkaConfig::new(tansu(false)?.bootstrap())).await)
    }

    nexussale_core::order_queue_tests!(setup);
}

/// The same over TLS (`security.protocol=SSL`), the broker's certificate checked against the
/// test's CA.
mod tansu_tls {
    use super::*;

    async fn setup() -> Option<QueueOpener> {
        let broker = tansu(true)?;
        let ca = broker.ca().expect("a TLS broker has a CA");
        let config = KafkaConfig::new(broker.bootstrap())
            .set("security.protocol", "SSL")
            .set("ssl.ca.location", ca.display().to_string());
        Some(on_broker(config).await)
    }

    nexussale_core::order_queue_tests!(setup);
}

mod broker {
    use super::*;

    async fn setup() -> Option<QueueOpener> {
        let Some(brokers) = kafka_brokers() else {
            eprintln!(
                "skipping: NEXUSSALE_KAFKA_BROKERS is not set (the mock cluster and tansu ran these)"
            );
            return None;
        };
        Some(on_broker(KafkaConfig::new(brokers)).await)
    }

    nexussale_core::order_queue_tests!(setup);
}
