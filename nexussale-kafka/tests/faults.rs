//! Fault injection on librdkafka's mock cluster: each test has a cluster of its own, so the faults
//! of one never reach another.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use nexussale_core::testkit::{fixtures, unique_sku};
use nexussale_core::{Delivery, OrderEvent, OrderId, OrderQueue, Sku};
use nexussale_kafka::rdkafka::ClientConfig;
use nexussale_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use nexussale_kafka::rdkafka::message::{Headers, Message};
use nexussale_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use nexussale_kafka::rdkafka::types::RDKafkaRespErr;
use nexussale_kafka::testkit::MockHost;
use nexussale_kafka::{KafkaConfig, KafkaOrderQueue};
use tokio::time::Instant;

fn event(sku: &Sku, n: usize) -> OrderEvent {
    fixtures::placed(fixtures::order(sku, &format!("user-{n}")))
}

fn events(count: usize) -> Vec<OrderEvent> {
    let skus: Vec<Sku> = (0..4).map(|_| unique_sku()).collect();
    (0..count).map(|n| event(&skus[n % 4], n)).collect()
}

async fn publish_all(queue: &Arc<KafkaOrderQueue>, events: &[OrderEvent]) {
    let sends = events.iter().cloned().map(|event| {
        let queue = Arc::clone(queue);
        tokio::spawn(async move { queue.publish(&event).await })
    });
    for sent in join_all(sends).await {
        sent.unwrap().expect("publish");
    }
}

/// Receives and acknowledges until `wanted` ids were all seen or 60 s pass; answers how many
/// times each id arrived.
async fn consume_all(
    queue: &KafkaOrderQueue,
    wanted: &HashSet<OrderId>,
) -> HashMap<OrderId, usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: HashMap<OrderId, usize> = HashMap::new();
    while !wanted.iter().all(|id| seen.contains_key(id)) {
        assert!(
            Instant::now() < deadline,
            "only {} of {} arrived",
            seen.len(),
            wanted.len()
        );
        let batch = queue
            .receive(500, Duration::from_millis(200))
            .await
            .unwrap();
        ack(queue, &batch).await;
        for delivery in batch {
            *seen.entry(delivery.event.order_id()).or_default() += 1;
        }
    }
    seen
}

async fn ack(queue: &KafkaOrderQueue, batch: &[Delivery]) {
    if !batch.is_empty() {
        let tags: Vec<_> = batch.iter().map(|d| d.tag).collect();
        queue.ack(&tags).await.unwrap();
    }
}

fn ids(events: &[OrderEvent]) -> HashSet<OrderId> {
    events.iter().map(OrderEvent::order_id).collect()
}

/// Produce requests that fail with retriable broker errors are retried by the idempotent
/// producer: every publish succeeds, and every event is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_produce_errors_are_retried_without_duplicates() {
    let host = MockHost::start();
    let config = host.config(3);
    let queue = Arc::new(KafkaOrderQueue::connect(config.clone()).await.unwrap());
    host.fail_produces(vec![
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
    ]);
    let events = events(300);
    publish_all(&queue, &events).await;
    let seen = consume_all(&queue, &ids(&events)).await;
    assert_eq!(seen.len(), 300);
    assert!(
        seen.values().all(|&n| n == 1),
        "an event was stored twice: {:?}",
        seen.values().filter(|&&n| n > 1).count()
    );
}

/// With a broker down, publishes wait for it (within the delivery timeout) and all succeed once
/// it is back; with every broker down past the delivery timeout, publish fails as retryable
/// (the engine answers 503) and succeeds again once they are back, by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_down_during_publish() {
    let host = MockHost::start();
    let config = host.config(3).delivery_timeout(Duration::from_secs(20));
    let queue = Arc::new(KafkaOrderQueue::connect(config.clone()).await.unwrap());
    // Warm up: metadata and connections.
    publish_all(&queue, &events(3)).await;

    host.broker_down(1);
    let events = events(200);
    let publishing = tokio::spawn({
        let (queue, events) = (Arc::clone(&queue), events.clone());
        async move { publish_all(&queue, &events).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    host.broker_up(1);
    publishing.await.unwrap();
    let seen = consume_all(&queue, &ids(&events)).await;
    assert!(seen.values().all(|&n| n == 1), "an event was stored twice");

    // Every broker down, a short delivery timeout: the publish fails, and says to retry.
    let impatient = KafkaOrderQueue::connect(config.delivery_timeout(Duration::from_secs(1)))
        .await
        .unwrap();
    for broker in 1..=3 {
        host.broker_down(broker);
    }
    let lost = event(&unique_sku(), 0);
    let failed = impatient.publish(&lost).await;
    assert!(
        matches!(&failed, Err(err) if err.is_retryable()),
        "publish with no broker: {failed:?}"
    );
    for broker in 1..=3 {
        host.broker_up(broker);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while impatient.publish(&lost).await.is_err() {
        assert!(Instant::now() < deadline, "publish never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The worker's order: persist, then acknowledge. Set to `true` to see the test fail: a worker
/// that acknowledges first and dies before persisting loses what it held.
const ACK_BEFORE_PERSIST: bool = false;

/// A consumer persists part of a batch and dies before acknowledging it: the next member of the
/// group gets the whole batch again, and every event ends up persisted (once, by an idempotent
/// repository).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_that_dies_before_committing_loses_nothing() {
    let host = MockHost::start();
    let config = host.config(2);
    let publisher = Arc::new(KafkaOrderQueue::connect(config.clone()).await.unwrap());
    let events = events(200);
    publish_all(&publisher, &events).await;
    let wanted = ids(&events);
    let mut persisted: HashSet<OrderId> = HashSet::new();

    let doomed = KafkaOrderQueue::connect(config.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let batch = loop {
        let batch = doomed
            .receive(500, Duration::from_millis(200))
            .await
            .unwrap();
        if !batch.is_empty() {
            break batch;
        }
        assert!(Instant::now() < deadline, "nothing arrived");
    };
    if ACK_BEFORE_PERSIST {
        ack(&doomed, &batch).await;
    }
    // It persists half of the batch, then dies: no acknowledgement.
    persisted.extend(
        batch
            .iter()
            .take(batch.len() / 2)
            .map(|d| d.event.order_id()),
    );
    drop(doomed);

    let survivor = KafkaOrderQueue::connect(config).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !wanted.is_subset(&persisted) {
        assert!(
            Instant::now() < deadline,
            "{} of {} events were never persisted",
            wanted.difference(&persisted).count(),
            wanted.len()
        );
        let batch = survivor
            .receive(500, Duration::from_millis(200))
            .await
            .unwrap();
        persisted.extend(batch.iter().map(|d| d.event.order_id()));
        ack(&survivor, &batch).await;
    }
}

/// A second member joins the group while the first is consuming a stream: the partitions are
/// shared out again mid-stream, and every event is processed by one of them; none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebalance_mid_stream_loses_nothing() {
    let host = MockHost::start();
    let config = host.config(4);
    let publisher = Arc::new(KafkaOrderQueue::connect(config.clone()).await.unwrap());
    // What was published so far, and whether publishing is over.
    let published = Arc::new(parking_lot::Mutex::new(HashSet::<OrderId>::new()));
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let processed = Arc::new(parking_lot::Mutex::new(HashMap::<OrderId, usize>::new()));

    let member = |name: &'static str| {
        let (config, published, finished, processed) = (
            config.clone(),
            Arc::clone(&published),
            Arc::clone(&finished),
            Arc::clone(&processed),
        );
        let mine = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&mine);
        let task = tokio::spawn(async move {
            let queue = KafkaOrderQueue::connect(config).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let done = finished.load(std::sync::atomic::Ordering::SeqCst)
                    && published
                        .lock()
                        .iter()
                        .all(|id| processed.lock().contains_key(id));
                if done {
                    return;
                }
                assert!(Instant::now() < deadline, "{name}: events still missing");
                let batch = queue
                    .receive(100, Duration::from_millis(100))
                    .await
                    .unwrap();
                counted.fetch_add(batch.len(), std::sync::atomic::Ordering::SeqCst);
                {
                    let mut processed = processed.lock();
                    for delivery in &batch {
                        *processed.entry(delivery.event.order_id()).or_default() += 1;
                    }
                }
                ack(&queue, &batch).await;
            }
        });
        (task, mine)
    };
    let (first, first_count) = member("first");
    // The stream flows to the first member; the second joins mid-stream, and the stream goes on
    // until the rebalance gave the second member events of its own (then 500 more).
    let publish_wave = |size: usize| {
        let (publisher, published) = (Arc::clone(&publisher), Arc::clone(&published));
        async move {
            let wave = events(size);
            published.lock().extend(ids(&wave));
            publish_all(&publisher, &wave).await;
        }
    };
    publish_wave(500).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (second, second_count) = member("second");
    let deadline = Instant::now() + Duration::from_secs(60);
    while second_count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the second member never got a partition"
        );
        publish_wave(100).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    publish_wave(500).await;
    finished.store(true, std::sync::atomic::Ordering::SeqCst);
    first.await.unwrap();
    second.await.unwrap();

    let published = published.lock();
    let processed = processed.lock();
    assert!(
        published.iter().all(|id| processed.contains_key(id)),
        "an event was lost"
    );
    let repeats = processed.values().filter(|&&n| n > 1).count();
    eprintln!(
        "published {}, first {}, second {}, delivered again after the rebalance: {repeats}",
        published.len(),
        first_count.load(std::sync::atomic::Ordering::SeqCst),
        second_count.load(std::sync::atomic::Ordering::SeqCst),
    );
}

/// An undecodable message goes to the dead-letter topic with the reason in its headers, and the
/// events after it are consumed as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_message_goes_to_the_dead_letter_topic() {
    let host = MockHost::start();
    let config = host.config(1);
    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", host.bootstrap())
        .create()
        .unwrap();
    raw.send(
        FutureRecord::to(config.topic_name())
            .key("ps5")
            .payload("{not an event"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let queue = Arc::new(KafkaOrderQueue::connect(config.clone()).await.unwrap());
    let events = events(10);
    publish_all(&queue, &events).await;
    let seen = consume_all(&queue, &ids(&events)).await;
    assert_eq!(seen.len(), 10);

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", host.bootstrap())
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    reader
        .subscribe(&[&config.dead_letter_topic_name()])
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let dead = loop {
        if let Some(message) = reader.poll(Duration::from_millis(200)) {
            break message.unwrap().detach();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing in the dead-letter topic"
        );
    };
    assert_eq!(dead.payload(), Some(&b"{not an event"[..]));
    let headers = dead.headers().unwrap();
    let reason = headers
        .iter()
        .find(|h| h.key == "nexussale-error")
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap();
    assert!(reason.contains("not an order event"), "{reason}");
    // Nothing else is owed: the poison message was acknowledged with the rest.
    assert!(
        queue
            .receive(10, Duration::from_millis(500))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Start-up creates topics only when the cluster lacks them: where they exist (the mock has no
/// admin API at all), `ensure_topics` succeeds without asking for any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_topics_leaves_existing_topics_alone() {
    let host = MockHost::start();
    let queue = KafkaOrderQueue::connect(host.config(2)).await.unwrap();
    let start = Instant::now();
    queue.ensure_topics().await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_queue_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<KafkaOrderQueue>();
    assert_send_sync::<KafkaConfig>();
}

/// One hot sale is one partition (events are keyed by sku). librdkafka's mock keeps at most
/// 5 MB per partition and drops the oldest beyond it: uncompressed, ~15,000 of our events. The
/// producer compresses batches (LZ4), so a backlog of 40,000 events of one sale, published
/// before any is consumed, still arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_sale_backlog_arrives_whole() {
    let host = MockHost::start();
    let queue = Arc::new(KafkaOrderQueue::connect(host.config(3)).await.unwrap());
    let sku = unique_sku();
    let events: Vec<OrderEvent> = (0..40_000).map(|n| event(&sku, n)).collect();
    for chunk in events.chunks(5_000) {
        publish_all(&queue, chunk).await;
    }
    let seen = consume_all(&queue, &ids(&events)).await;
    assert_eq!(seen.len(), 40_000);
}
