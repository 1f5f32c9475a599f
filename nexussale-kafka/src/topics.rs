//! How the queue's topics are created and checked: replication from the cluster's size when not
//! configured, `min.insync.replicas` one below it, and a warning for an existing topic that keeps
//! one copy of each order on a cluster that could keep more.

use rdkafka::metadata::Metadata;

/// The replication factor when none is configured: 3, or the broker count when fewer.
const DEFAULT_REPLICATION: usize = 3;

/// What the cluster's metadata says, reduced to what topic creation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterView {
    pub(crate) brokers: usize,
    /// Each topic the cluster lists without error, with its fewest replicas over its partitions.
    pub(crate) topics: Vec<(String, usize)>,
}

impl ClusterView {
    pub(crate) fn of(metadata: &Metadata) -> Self {
        Self {
            brokers: metadata.brokers().len(),
            topics: metadata
                .topics()
                .iter()
                .filter(|topic| topic.error().is_none())
                .map(|topic| {
                    let replicas = topic
                        .partitions()
                        .iter()
                        .map(|partition| partition.replicas().len())
                        .min()
                        .unwrap_or(0);
                    (topic.name().to_owned(), replicas)
                })
                .collect(),
        }
    }

    pub(crate) fn has(&self, topic: &str) -> bool {
        self.topics.iter().any(|(name, _)| name == topic)
    }

    /// The replication factor of created topics: `configured`, or 3, or the broker count when
    /// fewer (a single-broker development cluster still works).
    pub(crate) fn replication(&self, configured: Option<i32>) -> i32 {
        configured.unwrap_or_else(|| {
            let brokers = self.brokers.clamp(1, DEFAULT_REPLICATION);
            i32::try_from(brokers).unwrap_or(1)
        })
    }

    /// Those of `ours` that exist with a single copy of each partition on a cluster of several
    /// brokers: one broker's disk then holds every accepted order.
    pub(crate) fn single_copy<'a>(&self, ours: &[&'a str]) -> Vec<&'a str> {
        if self.brokers < 2 {
            return Vec::new();
        }
        ours.iter()
            .copied()
            .filter(|topic| {
                self.topics
                    .iter()
                    .any(|(name, replicas)| name == topic && *replicas == 1)
            })
            .collect()
    }
}

/// `min.insync.replicas` for a topic of `replication`: one copy may be down and publishing goes
/// on, yet an acknowledged event is on at least two brokers whenever there are two.
pub(crate) fn min_insync_replicas(replication: i32) -> i32 {
    (replication - 1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(brokers: usize, topics: &[(&str, usize)]) -> ClusterView {
        ClusterView {
            brokers,
            topics: topics
                .iter()
                .map(|(name, replicas)| ((*name).to_owned(), *replicas))
                .collect(),
        }
    }

    #[test]
    fn replication_follows_the_cluster_unless_configured() {
        assert_eq!(view(1, &[]).replication(None), 1);
        assert_eq!(view(2, &[]).replication(None), 2);
        assert_eq!(view(3, &[]).replication(None), 3);
        assert_eq!(view(7, &[]).replication(None), 3);
        assert_eq!(view(7, &[]).replication(Some(5)), 5);
        assert_eq!(view(0, &[]).replication(None), 1);
    }

    #[test]
    fn min_insync_is_one_below_replication_and_at_least_one() {
        assert_eq!(min_insync_replicas(1), 1);
        assert_eq!(min_insync_replicas(2), 1);
        assert_eq!(min_insync_replicas(3), 2);
        assert_eq!(min_insync_replicas(5), 4);
    }

    #[test]
    fn single_copy_topics_are_named_only_on_several_brokers() {
        let topics = [("orders", 1), ("orders.dlq", 3), ("other", 1)];
        assert_eq!(
            view(3, &topics).single_copy(&["orders", "orders.dlq"]),
            ["orders"]
        );
        assert!(
            view(1, &topics)
                .single_copy(&["orders", "orders.dlq"])
                .is_empty()
        );
    }
}
