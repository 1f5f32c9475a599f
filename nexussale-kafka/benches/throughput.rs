//! Events per second through `KafkaOrderQueue` on librdkafka's mock cluster (3 brokers, topics
//! of 12 partitions replicated 3 times), unbatched against batched, in one run.
//!
//! ```text
//! cargo bench -p nexussale-kafka --bench throughput
//! ```
//!
//! - publish, unbatched: `linger.ms` 0, one publish at a time (each waits for its acknowledgement);
//! - publish, batched: the default `linger.ms` 1, 2,000 publishes in flight;
//! - consume, unbatched: `receive(1)` and an acknowledgement (a synchronous commit) per event;
//! - consume, batched: `receive(500)` and one acknowledgement per batch.
//!
//! Environment: `NEXUSSALE_BENCH_EVENTS` (events per batched measurement, default 100,000; the
//! unbatched ones use a fiftieth), `NEXUSSALE_BENCH_ROUNDS` (default 3; the median is reported).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a failure ends it

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use nexussale_core::testkit::bench::{env_or, median};
use nexussale_core::testkit::fixtures;
use nexussale_core::{OrderEvent, OrderQueue, Sku};
use nexussale_kafka::testkit::MockHost;
use nexussale_kafka::{KafkaConfig, KafkaOrderQueue};

fn events(count: usize) -> Vec<OrderEvent> {
    let skus: Vec<Sku> = (0..64)
        .map(|i| Sku::new(format!("sku-{i}")).unwrap())
        .collect();
    fixtures::placements(&skus, count)
}

async fn publish(queue: &Arc<KafkaOrderQueue>, events: &[OrderEvent], in_flight: usize) -> f64 {
    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    for event in events {
        if pending.len() >= in_flight {
            let sent: nexussale_core::Result<()> = pending.next().await.unwrap();
            sent.unwrap();
        }
        let queue = Arc::clone(queue);
        pending.push(async move { queue.publish(event).await });
    }
    while let Some(sent) = pending.next().await {
        sent.unwrap();
    }
    events.len() as f64 / start.elapsed().as_secs_f64()
}

async fn consume(queue: &KafkaOrderQueue, count: usize, batch: usize) -> f64 {
    // The group join is not consumption: start the clock at the first event.
    let mut start = None;
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen < count {
        assert!(Instant::now() < deadline, "consumed only {seen} of {count}");
        let deliveries = queue
            .receive(batch, Duration::from_millis(500))
            .await
            .unwrap();
        if deliveries.is_empty() {
            continue;
        }
        start.get_or_insert_with(Instant::now);
        seen += deliveries.len();
        let tags: Vec<_> = deliveries.iter().map(|d| d.tag).collect();
        queue.ack(&tags).await.unwrap();
    }
    count as f64 / start.map_or(f64::INFINITY, |s| s.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let batched = env_or(
        "NEXUSSALE_BENCH_EVENTS",
        if quick { 2_000 } else { 100_000 },
    );
    let unbatched = (batched / 50).max(100);
    let rounds = env_or("NEXUSSALE_BENCH_ROUNDS", if quick { 1 } else { 3 });
    let host = MockHost::start();

    let mut rates: [Vec<f64>; 4] = Default::default();
    for round in 0..rounds {
        let order: [usize; 4] = if round % 2 == 0 {
            [0, 1, 2, 3]
        } else {
            [3, 2, 1, 0]
        };
        for which in order {
            // A topic and a group of its own per measurement. The mock keeps only the last
            // ~15,000 messages of a partition: 12 partitions hold the 100,000 events consumed.
            let config: KafkaConfig = host.config(12);
            let rate = match which {
                0 => {
                    let queue = Arc::new(
                        KafkaOrderQueue::connect(config.linger(Duration::ZERO))
                            .await
                            .unwrap(),
                    );
                    publish(&queue, &events(unbatched), 1).await
                }
                1 => {
                    let queue = Arc::new(KafkaOrderQueue::connect(config).await.unwrap());
                    publish(&queue, &events(batched), 2_000).await
                }
                _ => {
                    let count = if which == 2 { unbatched } else { batched };
                    let queue = Arc::new(KafkaOrderQueue::connect(config).await.unwrap());
                    publish(&queue, &events(count), 2_000).await;
                    consume(&queue, count, if which == 2 { 1 } else { 500 }).await
                }
            };
            eprintln!("round {round}, measurement {which}: {rate:.0}/s");
            rates[which].push(rate);
        }
    }
    let [pub1, pub_n, con1, con_n] = rates.map(median);
    println!(
        "mock cluster, 3 brokers, 12 partitions x3 replicas; batched {batched} events, unbatched {unbatched}, median of {rounds}"
    );
    println!("| | unbatched /s | batched /s | batched ÷ unbatched |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| publish | {pub1:.0} | {pub_n:.0} | {:.1} |", pub_n / pub1);
    println!(
        "| consume + commit | {con1:.0} | {con_n:.0} | {:.1} |",
        con_n / con1
    );
}
