//! The drain barrier ([`OrderQueue::mark`](nexussale_core::OrderQueue::mark) and
//! [`drained`](nexussale_core::OrderQueue::drained)) on Kafka: a mark is each partition's high
//! watermark (every event a publish returned for sits below it: `acks=all`), and the barrier is
//! passed once the consumer group's committed offsets reach it. Committed offsets are the
//! group's, so the answer holds whichever process's worker consumed the events.

use std::sync::Arc;
use std::time::Duration;

use nexussale_core::{DeliveryTag, QueueMark};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::context::QuietContext;

/// How long one metadata, watermark or offset request may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Each partition's high watermark: where the next event will be written.
pub(crate) fn mark(producer: &FutureProducer<QuietContext>, topic: &str) -> KafkaResult<QueueMark> {
    let client = producer.client();
    let metadata = client.fetch_metadata(Some(topic), CALL_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let ends = partitions
        .into_iter()
        .map(|partition| {
            let (_, high) = client.fetch_watermarks(topic, partition, CALL_TIMEOUT)?;
            Ok(DeliveryTag {
                partition,
                offset: high,
            })
        })
        .collect::<KafkaResult<Vec<_>>>()?;
    Ok(QueueMark::new(ends))
}

/// Whether the group committed every partition up to the mark. A partition the group never
/// committed counts as read from its first retained event (`auto.offset.reset=earliest`).
pub(crate) fn drained(
    reader: &Arc<BaseConsumer<QuietContext>>,
    topic: &str,
    mark: &QueueMark,
) -> KafkaResult<bool> {
    let owed: Vec<&DeliveryTag> = mark.ends().iter().filter(|end| end.offset > 0).collect();
    if owed.is_empty() {
        return Ok(true);
    }
    let mut asked = TopicPartitionList::new();
    for end in &owed {
        asked.add_partition(topic, end.partition);
    }
    let committed = reader.committed_offsets(asked, CALL_TIMEOUT)?;
    for end in owed {
        let position = match committed
            .find_partition(topic, end.partition)
            .map(|element| element.offset())
        {
            Some(Offset::Offset(offset)) => offset,
            _ => {
                reader
                    .fetch_watermarks(topic, end.partition, CALL_TIMEOUT)?
                    .0
            }
        };
        if position < end.offset {
            return Ok(false);
        }
    }
    Ok(true)
}
