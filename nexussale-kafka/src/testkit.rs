//! Kafka for tests (feature `testkit`): librdkafka's in-process mock cluster, three brokers on
//! loopback ports, on a thread of their own (the cluster is `!Send`), with fault injection; and
//! [`Tansu`], a standalone broker process, plain or behind TLS.
//!
//! ```
//! use nexussale_kafka::testkit::MockHost;
//!
//! let host = MockHost::start();
//! let config = host.config(4); // a new topic with 4 partitions, and a group of its own
//! host.broker_down(1);
//! host.broker_up(1);
//! # let _ = config;
//! ```
// Test support: a broken mock cluster is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::time::Duration;

use nexussale_core::testkit::unique_name;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::KafkaConfig;

mod tansu;

pub use nexussale_core::testkit::servers::ServerCertificate;
pub use tansu::Tansu;

#[derive(Debug)]
enum Command {
    CreateTopic(String, i32, i32, mpsc::Sender<()>),
    BrokerDown(i32, mpsc::Sender<()>),
    BrokerUp(i32, mpsc::Sender<()>),
    ProduceErrors(Vec<RDKafkaRespErr>, mpsc::Sender<()>),
}

/// A 3-broker mock cluster; it stops when the host is dropped.
#[derive(Debug)]
pub struct MockHost {
    commands: mpsc::Sender<Command>,
    bootstrap: String,
}

impl MockHost {
    /// Starts the cluster. Panics if librdkafka cannot.
    pub fn start() -> Self {
        let (commands, inbox) = mpsc::channel::<Command>();
        let (ready, bootstrap) = mpsc::channel();
        std::thread::spawn(move || {
            let cluster = MockCluster::new(3).expect("mock cluster");
            ready.send(cluster.bootstrap_servers()).unwrap();
            // Runs until every sender (the host) is gone.
            for command in inbox {
                match command {
                    Command::CreateTopic(name, partitions, replication, done) => {
                        cluster
                            .create_topic(&name, partitions, replication)
                            .unwrap();
                        let _ = done.send(());
                    }
                    Command::BrokerDown(id, done) => {
                        cluster.broker_down(id).unwrap();
                        let _ = done.send(());
                    }
                    Command::BrokerUp(id, done) => {
                        cluster.broker_up(id).unwrap();
                        let _ = done.send(());
                    }
                    Command::ProduceErrors(errors, done) => {
                        cluster.request_errors(RDKafkaApiKey::Produce, &errors);
                        let _ = done.send(());
                    }
                }
            }
        });
        Self {
            commands,
            bootstrap: bootstrap.recv().unwrap(),
        }
    }

    fn call(&self, command: impl FnOnce(mpsc::Sender<()>) -> Command) {
        let (done, wait) = mpsc::channel();
        self.commands.send(command(done)).unwrap();
        wait.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    /// The brokers' `host:port` list.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic (the mock has no admin API), replicated on all three brokers.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.create_topic_replicated(name, partitions, 3);
    }

    /// Creates a topic with `replication` copies of each partition (1 to 3).
    pub fn create_topic_replicated(&self, name: &str, partitions: i32, replication: i32) {
        self.call(|done| Command::CreateTopic(name.to_owned(), partitions, replication, done));
    }

    /// Takes broker `id` (1 to 3) down: its connections drop and it refuses new ones.
    pub fn broker_down(&self, id: i32) {
        self.call(|done| Command::BrokerDown(id, done));
    }

    /// Brings broker `id` back.
    pub fn broker_up(&self, id: i32) {
        self.call(|done| Command::BrokerUp(id, done));
    }

    /// The next produce requests fail with `errors`, one each, in order.
    pub fn fail_produces(&self, errors: Vec<RDKafkaRespErr>) {
        self.call(|done| Command::ProduceErrors(errors, done));
    }

    /// A config on a new topic (and its dead-letter topic) of this cluster, with a group of its
    /// own and test-friendly timings.
    pub fn config(&self, partitions: i32) -> KafkaConfig {
        let topic = unique_name("orders-");
        self.create_topic(&topic, partitions);
        self.create_topic(&format!("{topic}.dlq"), 1);
        test_timings(KafkaConfig::new(self.bootstrap.clone()).topic(topic))
            .group_id(unique_name("group-"))
    }
}

/// Short waits, so tests on the mock (or a local broker) do not sit out production timeouts.
pub fn test_timings(config: KafkaConfig) -> KafkaConfig {
    config
        .set("fetch.wait.max.ms", "10")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "100")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "1000")
}
