//! A Kafka-protocol broker for trying the stack without Kafka: librdkafka's in-process mock
//! cluster (3 brokers), with the given topic and its dead-letter topic created. Prints the
//! bootstrap servers on its first line, then runs until stdin closes or it is killed.
//!
//! ```text
//! cargo run -p nexussale-examples --example mock_kafka -- nexussale.orders
//! ```

use std::io::BufRead;

use nexussale_kafka::testkit::MockHost;

fn main() {
    let topic = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nexussale.orders".to_owned());
    let host = MockHost::start();
    host.create_topic(&topic, 12);
    host.create_topic(&format!("{topic}.dlq"), 1);
    println!("{}", host.bootstrap());
    // Until whoever started it closes our stdin (or kills us).
    for _ in std::io::stdin().lock().lines() {}
}
