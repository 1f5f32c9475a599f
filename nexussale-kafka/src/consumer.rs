//! The consuming side: a consumer-group member that commits an offset only once every event
//! before it was acknowledged (so only after the repository write), and redelivers what is
//! nacked by seeking back.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use nexussale_core::{Delivery, DeliveryTag, OutageLog};
use rdkafka::config::RDKafkaLogLevel;

use crate::codec;
use crate::context::{self, QuietContext};
use crate::error::QueueError;

/// How long a blocking consumer call (commit, seek) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where one partition's deliveries stand.
#[derive(Debug, Default)]
struct PartitionState {
    /// Delivered, not yet acknowledged.
    outstanding: BTreeSet<i64>,
    /// Acknowledged, above the committed offset (a lower one is still outstanding).
    acked: BTreeSet<i64>,
    /// Given back, not yet delivered again: nothing at or above them may be committed.
    nacked: BTreeSet<i64>,
    /// The offset committed last (the next to read after a restart).
    committed: i64,
}

impl PartitionState {
    /// The offset to commit: everything below it is acknowledged.
    fn committable(&self) -> Option<i64> {
        let owed = match (self.outstanding.first(), self.nacked.first()) {
            (Some(&a), Some(&b)) => Some(a.min(b)),
            (a, b) => a.or(b).copied(),
        };
        let end = match owed.as_ref() {
            Some(&low) => self.acked.range(..low).next_back().map(|&o| o + 1),
            None => self.acked.last().map(|&o| o + 1),
        }?;
        (end > self.committed).then_some(end)
    }

    fn committed_to(&mut self, offset: i64) {
        self.committed = self.committed.max(offset);
        self.acked = self.acked.split_off(&offset);
    }
}

/// Delivery bookkeeping, shared with the rebalance callbacks.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    partitions: Mutex<HashMap<i32, PartitionState>>,
}

/// Commits what is acknowledged on partitions being taken away, and forgets them: their
/// unacknowledged events go to the partitions' next owner.
#[derive(Debug)]
pub(crate) struct GroupContext {
    tracker: Arc<Tracker>,
    topic: String,
    outage: Arc<OutageLog>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        context::log(&self.outage, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        context::report(&self.outage, &error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            let mut partitions = self.tracker.partitions.lock();
            let mut commit = TopicPartitionList::new();
            for element in revoked.elements() {
                if let Some(state) = partitions.remove(&element.partition())
                    && let Some(offset) = state.committable()
                {
                    let _ = commit.add_partition_offset(
                        &self.topic,
                        element.partition(),
                        Offset::Offset(offset),
                    );
                }
            }
            if commit.count() > 0
                && let Err(err) = consumer.commit(&commit, CommitMode::Sync)
            {
                warn!(error = %err, "commit before a rebalance failed; those events will be delivered again");
            }
            info!(partitions = revoked.count(), "kafka partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                info!(partitions = assigned.count(), "kafka partitions assigned")
            }
            Rebalance::Error(err) => warn!(error = %err, "kafka rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Polls up to `max` messages, waiting up to `wait` for the first and not at all for the rest.
///
/// An error after some messages arrived ends the batch with them (logged): those messages are
/// this member's to deliver, and dropping them would leave their offsets uncommitted until a
/// restart or a rebalance. An error before any message is the caller's.
fn collect<M>(
    max: usize,
    wait: Duration,
    mut poll: impl FnMut(Duration) -> Option<Result<M, KafkaError>>,
) -> Result<Vec<M>, KafkaError> {
    let deadline = Instant::now() + wait;
    let mut messages = Vec::new();
    while messages.len() < max {
        let left = if messages.is_empty() {
            deadline.saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        };
        match poll(left) {
            Some(Ok(message)) => messages.push(message),
            Some(Err(err)) if messages.is_empty() => return Err(err),
            Some(Err(err)) => {
                warn!(error = %err, collected = messages.len(), "consumer error mid-batch; delivering what arrived before it");
                break;
            }
            None if messages.is_empty() && Instant::now() < deadline => continue,
            None => break,
        }
    }
    Ok(messages)
}

/// One member of the consumer group.
pub(crate) struct GroupConsumer {
    consumer: Arc<BaseConsumer<GroupContext>>,
    tracker: Arc<Tracker>,
    topic: String,
    dead_letters: String,
    producer: FutureProducer<QuietContext>,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl GroupConsumer {
    pub(crate) fn new(
        config: rdkafka::ClientConfig,
        topic: &str,
        dead_letters: String,
        producer: FutureProducer<QuietContext>,
        outage: Arc<OutageLog>,
    ) -> Result<Self, QueueError> {
        let tracker = Arc::new(Tracker::default());
        let context = GroupContext {
            tracker: Arc::clone(&tracker),
            topic: topic.to_owned(),
            outage,
        };
        let consumer: BaseConsumer<GroupContext> = config.create_with_context(context)?;
        consumer.subscribe(&[topic])?;
        Ok(Self {
            consumer: Arc::new(consumer),
            tracker,
            topic: topic.to_owned(),
            dead_letters,
            producer,
        })
    }

    /// Runs `call` on the blocking pool: librdkafka's consumer calls block.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&BaseConsumer<GroupContext>) -> T + Send + 'static,
    ) -> Result<T, QueueError> {
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || call(&consumer))
            .await
            .map_err(|err| QueueError::Interrupted(err.to_string()))
    }

    pub(crate) async fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let max = max.max(1);
        // Polling also serves the group's rebalance callbacks.
        let messages = self
            .blocking(move |consumer| {
                collect(max, wait, |left| {
                    consumer
                        .poll(left)
                        .map(|polled| polled.map(|message| message.detach()))
                })
            })
            .await??;

        let mut deliveries = Vec::with_capacity(messages.len());
        let mut poisoned = Vec::new();
        {
            let mut partitions = self.tracker.partitions.lock();
            for message in &messages {
                let state = partitions.entry(message.partition()).or_default();
                let offset = message.offset();
                // After a seek back, events acknowledged meanwhile or still being processed come
                // again: they are not handed out twice.
                if state.acked.contains(&offset)
                    || state.outstanding.contains(&offset)
                    || offset < state.committed
                {
                    continue;
                }
                state.nacked.remove(&offset);
                match codec::decode(message.payload()) {
                    Ok(event) => {
                        state.outstanding.insert(offset);
                        let tag = DeliveryTag {
                            partition: message.partition(),
                            offset,
                        };
                        deliveries
                            .push(Delivery::new(event, tag).with_trace(codec::trace(message)));
                    }
                    Err(reason) => {
                        state.outstanding.insert(offset);
                        poisoned.push((message, reason));
                    }
                }
            }
        }
        for (message, reason) in poisoned {
            self.dead_letter(message, &reason).await?;
            self.ack(&[DeliveryTag {
                partition: message.partition(),
                offset: message.offset(),
            }])
            .await?;
        }
        Ok(deliveries)
    }

    /// Copies an undecodable message to the dead-letter topic, with why and where from in its
    /// headers; processing goes on without it.
    async fn dead_letter(&self, message: &OwnedMessage, reason: &str) -> Result<(), QueueError> {
        warn!(partition = message.partition(), offset = message.offset(), %reason, "undecodable order event sent to the dead-letter topic");
        metrics::counter!("nexussale_dead_letters_total").increment(1);
        let (partition, offset) = (
            message.partition().to_string(),
            message.offset().to_string(),
        );
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "nexussale-error",
                value: Some(reason),
            })
            .insert(Header {
                key: "nexussale-source-topic",
                value: Some(self.topic.as_str()),
            })
            .insert(Header {
                key: "nexussale-source-partition",
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: "nexussale-source-offset",
                value: Some(offset.as_str()),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.dead_letters).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        self.producer
            .send(record, CALL_TIMEOUT)
            .await
            .map_err(|(err, _)| QueueError::Kafka(err))?;
        Ok(())
    }

    pub(crate) async fn ack(&self, tags: &[DeliveryTag]) -> Result<(), QueueError> {
        let commit = {
            let mut partitions = self.tracker.partitions.lock();
            let mut commit = Vec::new();
            for tag in tags {
                // A partition taken away meanwhile belongs to another member now: its events
                // come again there, and this acknowledgement has nothing left to do.
                let Some(state) = partitions.get_mut(&tag.partition) else {
                    continue;
                };
                if state.outstanding.remove(&tag.offset) {
                    state.acked.insert(tag.offset);
                }
            }
            for (&partition, state) in partitions.iter() {
                if let Some(offset) = state.committable() {
                    commit.push((partition, offset));
                }
            }
            commit
        };
        if commit.is_empty() {
            return Ok(());
        }
        let topic = self.topic.clone();
        let list = commit.clone();
        let committed = self
            .blocking(move |consumer| {
                let mut offsets = TopicPartitionList::new();
                for (partition, offset) in list {
                    offsets.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
                }
                consumer.commit(&offsets, CommitMode::Sync)
            })
            .await?;
        match committed {
            Ok(()) => {}
            // The group is being rebalanced, or this member lost its partitions: whoever owns
            // them next starts at the last commit and delivers these events again (at least
            // once), or this member commits them with its next acknowledgement.
            Err(err) if is_rebalance(&err) => {
                debug!(error = %err, "commit skipped during a rebalance");
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        }
        let mut partitions = self.tracker.partitions.lock();
        for (partition, offset) in commit {
            if let Some(state) = partitions.get_mut(&partition) {
                state.committed_to(offset);
            }
        }
        Ok(())
    }

    pub(crate) async fn nack(&self, tags: &[DeliveryTag]) -> Result<(), QueueError> {
        let mut rewind: HashMap<i32, i64> = HashMap::new();
        {
            let mut partitions = self.tracker.partitions.lock();
            for tag in tags {
                let Some(state) = partitions.get_mut(&tag.partition) else {
                    continue;
                };
                if state.outstanding.remove(&tag.offset) {
                    state.nacked.insert(tag.offset);
                    let to = rewind.entry(tag.partition).or_insert(tag.offset);
                    *to = (*to).min(tag.offset);
                }
            }
        }
        if rewind.is_empty() {
            return Ok(());
        }
        let topic = self.topic.clone();
        let sought = self
            .blocking(move |consumer| {
                for (partition, offset) in rewind {
                    consumer.seek(&topic, partition, Offset::Offset(offset), CALL_TIMEOUT)?;
                }
                Ok::<_, KafkaError>(())
            })
            .await?;
        if let Err(err) = sought {
            // The events stay owed (nothing at or above them is committed): they come back
            // after the next rebalance or restart, if not sooner.
            warn!(error = %err, "could not seek back to nacked events");
        }
        Ok(())
    }
}

/// Commit errors that only mean the group is changing hands.
fn is_rebalance(err: &KafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::AssignmentLost
                | RDKafkaErrorCode::FencedInstanceId
        )
    )
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        // Leave the group now rather than at the session timeout, so the partitions' next owner
        // starts at once. Commits were synchronous: nothing acknowledged is left to write.
        self.consumer.unsubscribe();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport() -> KafkaError {
        KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure)
    }

    #[test]
    fn an_error_mid_batch_keeps_what_arrived_before_it() {
        let mut script = vec![
            Some(Ok(1)),
            Some(Ok(2)),
            Some(Err(transport())),
            Some(Ok(3)),
        ]
        .into_iter();
        let got = collect(10, Duration::from_millis(50), |_| script.next().flatten());
        assert_eq!(got.ok(), Some(vec![1, 2]));
        // The message after the error is still there for the next batch.
        assert!(matches!(script.next(), Some(Some(Ok(3)))));
    }

    #[test]
    fn an_error_before_any_message_is_returned() {
        let mut script = vec![Some(Err(transport())), Some(Ok(1))].into_iter();
        let got: Result<Vec<i32>, _> =
            collect(10, Duration::from_millis(50), |_| script.next().flatten());
        assert!(got.is_err());
    }

    #[test]
    fn a_batch_stops_at_max_and_when_nothing_more_is_ready() {
        let mut next = 0;
        let full = collect(3, Duration::from_millis(50), |_| {
            next += 1;
            Some(Ok(next))
        });
        assert_eq!(full.ok(), Some(vec![1, 2, 3]));
        let mut script = vec![Some(Ok(7)), None, Some(Ok(8))].into_iter();
        let partial = collect(3, Duration::from_millis(50), |_| script.next().flatten());
        assert_eq!(partial.ok(), Some(vec![7]));
    }

    #[test]
    fn commits_only_the_acknowledged_prefix() {
        let mut state = PartitionState::default();
        state.outstanding.extend([0, 1, 2, 3]);
        assert_eq!(state.committable(), None);
        // 1 and 3 done, 0 still out: nothing can be committed.
        for offset in [1, 3] {
            state.outstanding.remove(&offset);
            state.acked.insert(offset);
        }
        assert_eq!(state.committable(), None);
        state.outstanding.remove(&0);
        state.acked.insert(0);
        // 0 and 1 done, 2 out: commit up to 2 (the next to read).
        assert_eq!(state.committable(), Some(2));
        state.committed_to(2);
        assert_eq!(state.acked, BTreeSet::from([3]));
        state.outstanding.remove(&2);
        state.acked.insert(2);
        assert_eq!(state.committable(), Some(4));
        // A nacked event holds back every commit at or above it until it is delivered again.
        state.committed_to(4);
        state.outstanding.extend([4, 5]);
        state.outstanding.remove(&4);
        state.nacked.insert(4);
        state.outstanding.remove(&5);
        state.acked.insert(5);
        assert_eq!(state.committable(), None);
    }
}
