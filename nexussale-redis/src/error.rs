//! This crate's errors, and the one place that decides which are worth retrying.

use std::time::Duration;

/// What can go wrong talking to Redis. Converted into [`nexussale_core::Error::Backend`].
/// `Clone`: one failed batch call answers every reservation in it.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum StoreError {
    /// The driver failed: connection, protocol, server error.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// No answer within the command timeout.
    #[error("no answer from redis within {0:?}")]
    Timeout(Duration),
    /// Redis holds something this crate did not write.
    #[error("unexpected data in redis: {0}")]
    Corrupt(String),
    /// The task that batches reservations stopped (its runtime shut down).
    #[error("the reservation batching task has stopped")]
    CoalescerStopped,
    /// Fewer replicas than asked acknowledged a write within the time allowed: it may not
    /// survive a failover, so it is not answered as done.
    #[error("only {acknowledged} of {wanted} replicas acknowledged the write within {within:?}")]
    ReplicasBehind {
        wanted: usize,
        acknowledged: usize,
        within: Duration,
    },
    /// A shard's state may have gone backwards (a failover, a sequence that went back): it
    /// waits to be rebuilt. Reported for the whole sale as [`StoreError::SaleRegressed`].
    #[error("a stock shard may have gone backwards: {0}")]
    Regressed(&'static str),
    /// A shard answered a sequence (`seen`) at or below one this process had seen of it: its
    /// state went backwards, unless a rebuild gave the shard a new life since the call ran
    /// (`mark.lua` tells). Reported for the whole sale as [`StoreError::SaleRegressed`].
    #[error("the sequence of stock shard {stock} went backwards (to {seen})")]
    WentBackwards { stock: String, seen: u64 },
    /// The sale's state in Redis may have gone backwards; every shard is marked so until it is
    /// rebuilt from the orders.
    #[error("the state of sale {0} in redis may have gone backwards")]
    SaleRegressed(nexussale_core::Sku),
    /// Redis holds no such sale (never created, or lost in a flush or restart).
    #[error("no sale {0}")]
    UnknownSale(nexussale_core::Sku),
}

impl StoreError {
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Self::Corrupt(reason.into())
    }

    fn is_retryable(&self) -> bool {
        match self {
            Self::Redis(err) => {
                // Connection trouble, timeouts, cluster redirects exhausted and busy or loading
                // servers may clear; wrong types, bad scripts and bad config will not.
                err.is_io_error()
                    || err.is_timeout()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_cluster_error()
                    // A replica answered: the master moved (a failover), and will be found again.
                    // Or a node without the script (a promoted replica: scripts are not
                    // replicated) answered while the call was redirected to it: the next call
                    // loads it.
                    || matches!(
                        err.kind(),
                        redis::ErrorKind::Server(
                            redis::ServerErrorKind::ReadOnly | redis::ServerErrorKind::NoScript
                        )
                    )
                    || !matches!(err.retry_method(), redis::RetryMethod::NoRetry)
            }
            Self::Timeout(_)
            | Self::CoalescerStopped
            | Self::ReplicasBehind { .. }
            | Self::Regressed(_)
            | Self::WentBackwards { .. }
            | Self::SaleRegressed(_) => true,
            Self::Corrupt(_) | Self::UnknownSale(_) => false,
        }
    }
}

impl From<StoreError> for nexussale_core::Error {
    fn from(err: StoreError) -> Self {
        if let StoreError::UnknownSale(sku) = err {
            Self::UnknownSale(sku)
        } else if let StoreError::SaleRegressed(sku) = err {
            Self::StockRegressed(sku)
        } else if err.is_retryable() {
            Self::retryable("redis", err)
        } else {
            Self::permanent("redis", err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_trouble_is_retryable_and_bad_data_is_not() {
        let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(nexussale_core::Error::from(StoreError::Redis(io)).is_retryable());
        assert!(
            nexussale_core::Error::from(StoreError::Timeout(Duration::from_secs(1))).is_retryable()
        );
        assert!(!nexussale_core::Error::from(StoreError::corrupt("x")).is_retryable());
        let sku = nexussale_core::Sku::new("gone").unwrap();
        assert!(matches!(
            nexussale_core::Error::from(StoreError::UnknownSale(sku.clone())),
            nexussale_core::Error::UnknownSale(unknown) if unknown == sku
        ));
        let config = redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "bad url"));
        assert!(!nexussale_core::Error::from(StoreError::Redis(config)).is_retryable());
    }
}
