//! Conformance cases for [`OrderQueue`](crate::OrderQueue) implementations.
//!
//! Each case takes a [`QueueOpener`] on a fresh, empty queue (a new topic, for Kafka).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use super::{QueueOpener, fixtures, unique_sku};
use crate::ident::Sku;
use crate::order::{Order, OrderEvent, OrderId, OrderStatus};
use crate::queue::{Delivery, DynOrderQueue};

/// How long a case waits for events that are owed (a consumer-group rebalance takes seconds).
const PATIENCE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// Event `n`: placements, with every kind of transition among them.
fn event(sku: &Sku, n: u32) -> OrderEvent {
    OrderEvent::of(Order {
        status: match n % 8 {
            1 => OrderStatus::Paid,
            3 => OrderStatus::Cancelled,
            5 => OrderStatus::Expired,
            _ => OrderStatus::Pending,
        },
        remark: Some(format!("event {n}")),
        ..fixtures::order(sku, &format!("user-{n}"))
    })
}

async fn publish_all(queue: &DynOrderQueue, events: &[OrderEvent]) {
    for event in events {
        queue.publish(event).await.expect("publish");
    }
}

/// Receives until every id in `wanted` was seen (acknowledging each batch when `ack`), or
/// `PATIENCE` passes. Answers the deliveries in arrival order.
async fn receive_until(
    queue: &DynOrderQueue,
    wanted: &HashSet<OrderId>,
    ack: bool,
) -> Vec<Delivery> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = HashSet::new();
    let mut deliveries = Vec::new();
    while !wanted.is_subset(&seen) {
        assert!(
            Instant::now() < deadline,
            "only {} of {} events arrived within {PATIENCE:?}",
            wanted.intersection(&seen).count(),
            wanted.len()
        );
        let batch = queue.receive(100, POLL).await.expect("receive");
        if ack && !batch.is_empty() {
            let tags: Vec<_> = batch.iter().map(|d| d.tag).collect();
            queue.ack(&tags).await.expect("ack");
        }
        for delivery in batch {
            seen.insert(delivery.event.order_id());
            deliveries.push(delivery);
        }
    }
    deliveries
}

async fn assert_drained(queue: &DynOrderQueue) {
    let rest = queue
        .receive(100, Duration::from_millis(500))
        .await
        .expect("receive");
    assert!(rest.is_empty(), "acknowledged events came back: {rest:?}");
}

fn ids(events: &[OrderEvent]) -> HashSet<OrderId> {
    events.iter().map(OrderEvent::order_id).collect()
}

/// Everything published is received, intact; acknowledged events do not come back.
pub async fn delivers_every_published_event(open: QueueOpener) {
    let queue = open().await;
    let sku = unique_sku();
    let events: Vec<OrderEvent> = (0..100).map(|n| event(&sku, n)).collect();
    publish_all(&queue, &events).await;
    let deliveries = receive_until(&queue, &ids(&events), true).await;
    let by_id: HashMap<OrderId, &OrderEvent> = events.iter().map(|e| (e.order_id(), e)).collect();
    for delivery in &deliveries {
        assert_eq!(
            Some(&&delivery.event),
            by_id.get(&delivery.event.order_id()),
            "event changed in transit"
        );
    }
    assert_drained(&queue).await;
}

/// Events of one sku arrive in publish order.
pub async fn keeps_publish_order_per_sku(open: QueueOpener) {
    let queue = open().await;
    let sku = unique_sku();
    let events: Vec<OrderEvent> = (0..50).map(|n| event(&sku, n)).collect();
    publish_all(&queue, &events).await;
    let deliveries = receive_until(&queue, &ids(&events), true).await;
    let received: Vec<OrderId> = deliveries.iter().map(|d| d.event.order_id()).collect();
    let published: Vec<OrderId> = events.iter().map(OrderEvent::order_id).collect();
    assert_eq!(received, published);
}

/// What is nacked is delivered again; what is acked is not.
pub async fn redelivers_nacked_events(open: QueueOpener) {
    let queue = open().await;
    let sku = unique_sku();
    let events: Vec<OrderEvent> = (0..20).map(|n| event(&sku, n)).collect();
    publish_all(&queue, &events).await;
    let deliveries = receive_until(&queue, &ids(&events), false).await;
    let (acked, nacked): (Vec<&Delivery>, Vec<&Delivery>) =
        deliveries.iter().partition(|delivery| {
            events[..10]
                .iter()
                .any(|e| e.order_id() == delivery.event.order_id())
        });
    queue
        .ack(&acked.iter().map(|d| d.tag).collect::<Vec<_>>())
        .await
        .unwrap();
    queue
        .nack(&nacked.iter().map(|d| d.tag).collect::<Vec<_>>())
        .await
        .unwrap();
    let again = receive_until(&queue, &ids(&events[10..]), true).await;
    let first_half = ids(&events[..10]);
    assert!(
        again
            .iter()
            .all(|d| !first_half.contains(&d.event.order_id())),
        "an acknowledged event came back"
    );
    assert_drained(&queue).await;
}

/// Events a consumer received but never acknowledged reach another consumer once the first is
/// gone.
pub async fn redelivers_after_consumer_loss(open: QueueOpener) {
    let first = open().await;
    let sku = unique_sku();
    let events: Vec<OrderEvent> = (0..30).map(|n| event(&sku, n)).collect();
    publish_all(&first, &events).await;
    receive_until(&first, &ids(&events), false).await;
    drop(first);
    let second = open().await;
    receive_until(&second, &ids(&events), true).await;
    assert_drained(&second).await;
}

/// 1,000 concurrent publishes from many tasks: each event received, none twice once acked.
pub async fn concurrent_publishers_lose_nothing(open: QueueOpener) {
    let queue = open().await;
    let skus: Vec<Sku> = (0..4).map(|_| unique_sku()).collect();
    let events: Vec<OrderEvent> = (0..1000).map(|n| event(&skus[n as usize % 4], n)).collect();
    let tasks = events.iter().cloned().map(|event| {
        let queue = Arc::clone(&queue);
        tokio::spawn(async move { queue.publish(&event).await })
    });
    for published in join_all(tasks).await {
        published.expect("task").expect("publish");
    }
    let deliveries = receive_until(&queue, &ids(&events), true).await;
    let mut seen = HashSet::new();
    let duplicates = deliveries
        .iter()
        .filter(|d| !seen.insert(d.event.order_id()))
        .count();
    assert_eq!(duplicates, 0, "acknowledged events came back");
    assert_drained(&queue).await;
}

/// The drain barrier: a mark is passed only once every event published before it was
/// acknowledged, whichever consumer took it; events published after it do not hold it back.
pub async fn drained_waits_for_every_event_published_before_the_mark(open: QueueOpener) {
    let publisher = open().await;
    let consumer = open().await;
    let sku = unique_sku();
    let before: Vec<OrderEvent> = (0..10).map(|n| event(&sku, n)).collect();
    let after: Vec<OrderEvent> = (10..15).map(|n| event(&sku, n)).collect();
    publish_all(&publisher, &before).await;
    let mark = publisher.mark().await.expect("mark");
    let not_yet = |why: &'static str| {
        let (publisher, mark) = (Arc::clone(&publisher), mark.clone());
        async move {
            assert!(
                !publisher.drained(&mark).await.expect("drained"),
                "drained while {why}"
            );
        }
    };
    not_yet("nothing was received").await;
    publish_all(&publisher, &after).await;
    let mut all = before.clone();
    all.extend(after.iter().cloned());
    let deliveries = receive_until(&consumer, &ids(&all), false).await;
    let tags_of = |events: &[OrderEvent]| -> Vec<_> {
        let wanted = ids(events);
        deliveries
            .iter()
            .filter(|d| wanted.contains(&d.event.order_id()))
            .map(|d| d.tag)
            .collect()
    };
    not_yet("every event was received and none acknowledged").await;
    consumer.ack(&tags_of(&after)).await.expect("ack");
    not_yet("only events published after the mark were acknowledged").await;
    // The last event before the mark is the one that must still hold it.
    let (last, rest) = before.split_last().expect("events");
    consumer
        .nack(&tags_of(std::slice::from_ref(last)))
        .await
        .expect("nack");
    consumer.ack(&tags_of(rest)).await.expect("ack");
    not_yet("the last event published before the mark was given back").await;
    receive_until(&consumer, &ids(std::slice::from_ref(last)), true).await;
    let deadline = Instant::now() + PATIENCE;
    while !publisher.drained(&mark).await.expect("drained") {
        assert!(
            Instant::now() < deadline,
            "not drained {PATIENCE:?} after every event was acknowledged"
        );
        tokio::time::sleep(POLL).await;
    }
    // A mark taken now owes nothing either.
    let now = publisher.mark().await.expect("mark");
    assert!(publisher.drained(&now).await.expect("drained"));
}
