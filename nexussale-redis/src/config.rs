//! [`RedisConfig`]: how a [`RedisStockStore`](crate::RedisStockStore) lays out and reaches its keys.

use std::collections::HashMap;
use std::time::Duration;

use nexussale_core::Sku;

/// The most stock shards one sale may have.
pub const MAX_SHARDS: usize = 1024;

/// Settings of a [`RedisStockStore`](crate::RedisStockStore). Every field has a default that
/// suits a single Redis node.
///
/// ```
/// use std::time::Duration;
/// use nexussale_redis::RedisConfig;
///
/// let config = RedisConfig::default()
///     .prefix("shop")
///     .stock_shards(4)
///     .command_timeout(Duration::from_millis(500));
/// assert_eq!(config.shards_for(&"ps5".parse()?), 4);
/// # Ok::<(), nexussale_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub(crate) prefix: String,
    pub(crate) stock_shards: usize,
    pub(crate) shards_by_sku: HashMap<Sku, usize>,
    pub(crate) coalesce: bool,
    pub(crate) max_batch: usize,
    pub(crate) batches_in_flight: usize,
    pub(crate) lane_idle: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) tls: TlsFiles,
    pub(crate) replica_acks: usize,
    pub(crate) settled_retention: Duration,
}

/// The PEM files of a `rediss://` connection: who signed the server's certificate (none: the
/// system roots), and the client's certificate and key when the server asks for one.
#[derive(Clone, Default)]
pub(crate) struct TlsFiles {
    pub(crate) root_certificate: Option<Vec<u8>>,
    pub(crate) client: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    pub(crate) fn is_set(&self) -> bool {
        self.root_certificate.is_some() || self.client.is_some()
    }
}

/// Whether each file is set; never their bytes (the client key is a secret).
impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("root_certificate", &self.root_certificate.is_some())
            .field("client_certificate", &self.client.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            prefix: "nexussale".to_owned(),
            stock_shards: 1,
            shards_by_sku: HashMap::new(),
            coalesce: true,
            max_batch: 128,
            batches_in_flight: 2,
            lane_idle: Duration::from_secs(60),
            command_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            tls: TlsFiles::default(),
            replica_acks: 0,
            settled_retention: nexussale_core::DEFAULT_SETTLED_RETENTION,
        }
    }
}

impl RedisConfig {
    /// The first part of every key (default `nexussale`): several stores, or several test runs,
    /// share one Redis without seeing each other's sales.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many stock shards a sale this store creates gets (default 1; at most [`MAX_SHARDS`]).
    /// Each shard is its own hash slot, so on Redis Cluster one hot sale spreads over nodes. A
    /// sale keeps the shard count it was created with.
    pub fn stock_shards(mut self, shards: usize) -> Self {
        self.stock_shards = shards.clamp(1, MAX_SHARDS);
        self
    }

    /// The shard count for one sku, overriding [`stock_shards`](Self::stock_shards).
    pub fn sku_shards(mut self, sku: Sku, shards: usize) -> Self {
        self.shards_by_sku.insert(sku, shards.clamp(1, MAX_SHARDS));
        self
    }

    /// Whether concurrent reservations go to Redis together, as one script call that handles
    /// each sale's in arrival order (default on). While one call is in flight the next requests
    /// queue, so a burst costs Redis a few large calls instead of many small ones. On one Redis
    /// the reservations of every sale share the calls; on a Cluster, those of one stock shard.
    pub fn coalesce(mut self, on: bool) -> Self {
        self.coalesce = on;
        self
    }

    /// Connections the store opens: one, or with [`replica_acks`](Self::replica_acks) one per
    /// coalesced call in flight, because `WAIT` holds its connection until the replicas answer,
    /// and a call behind it on the same connection would wait too.
    pub(crate) fn connections(&self) -> usize {
        match self.replica_acks {
            0 => 1,
            _ if !self.coalesce => 1,
            _ => self.calls_in_flight(),
        }
    }

    /// Coalesced calls in flight per lane: with replica acknowledgement each takes a
    /// replication round trip longer, so twice as many keep Redis as busy.
    pub(crate) fn calls_in_flight(&self) -> usize {
        match self.replica_acks {
            0 => self.batches_in_flight,
            _ => self.batches_in_flight * 2,
        }
    }

    /// The most reservations in one coalesced call (default 128, at most 1,024: the script
    /// unpacks a batch's fields as one command's arguments, and Lua caps those).
    pub fn max_batch(mut self, max: usize) -> Self {
        self.max_batch = max.clamp(1, 1024);
        self
    }

    /// Coalesced calls in flight at once per lane (default 2): one executes while the next
    /// crosses the network. One Redis has one lane; a Cluster one per stock shard. With [`replica_acks`](Self::replica_acks), twice as many, each
    /// on a connection of its own.
    pub fn batches_in_flight(mut self, calls: usize) -> Self {
        self.batches_in_flight = calls.max(1);
        self
    }

    /// How long a coalescing lane (a task and its queue, made on the first reservation it takes)
    /// lives without a reservation before it ends (default 60 s; at least 1 ms): on a Cluster,
    /// where each stock shard has a lane, memory follows the sales being bought from, not every
    /// sale ever bought from.
    pub fn coalesce_lane_idle(mut self, idle: Duration) -> Self {
        self.lane_idle = idle.max(Duration::from_millis(1));
        self
    }

    /// How long a command may take before it fails as retryable (default 2 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How long connecting may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Answer a reservation, a confirmation or a release only once `replicas` replicas of the
    /// primary have it (`WAIT`, one per coalesced batch; default 0: as soon as the primary has
    /// it). A failover then cannot take back what was answered, unless every acknowledging
    /// replica fails too. `WAIT` may take half the command timeout; short of `replicas` the call
    /// fails as retryable, and the reservations it made are released (`Aborted`) at once.
    /// On a Cluster, `WAIT` goes to every primary (the cluster client routes it so and keeps the
    /// lowest count); each counts the replicas that have what this client wrote to it.
    pub fn replica_acks(mut self, replicas: usize) -> Self {
        self.replica_acks = replicas;
        self
    }

    /// How long a settled (confirmed or released) reservation and the idempotency key that made
    /// it stay in Redis after the reservation's expiry (default
    /// [`DEFAULT_SETTLED_RETENTION`](nexussale_core::DEFAULT_SETTLED_RETENTION), a day): the
    /// key's lifetime. The sweeper's visits forget them after it, so a sale's records do not
    /// outlive it by more than that.
    pub fn settled_retention(mut self, retention: Duration) -> Self {
        self.settled_retention = retention;
        self
    }

    pub(crate) fn retention_us(&self) -> i64 {
        i64::try_from(self.settled_retention.as_micros()).unwrap_or(i64::MAX)
    }

    /// The replica acknowledgement each write waits for.
    pub(crate) fn acks(&self) -> crate::replicas::ReplicaAcks {
        crate::replicas::ReplicaAcks {
            replicas: self.replica_acks,
            timeout: self.command_timeout / 2,
        }
    }

    /// The CA (PEM) that signed the server's certificate, for `rediss://` URLs: the server is
    /// trusted only if it chains to it (without it: the system's roots). Feature `tls`. With a
    /// `redis://` URL the connection is refused rather than made without TLS.
    #[cfg(feature = "tls")]
    pub fn root_certificate(mut self, pem: Vec<u8>) -> Self {
        self.tls.root_certificate = Some(pem);
        self
    }

    /// The client's certificate and key (PEM), for servers that require them
    /// (`tls-auth-clients yes`). Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn client_certificate(mut self, certificate_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        self.tls.client = Some((certificate_pem, key_pem));
        self
    }

    /// The key prefix.
    pub fn prefix_str(&self) -> &str {
        &self.prefix
    }

    /// The shard count a new sale gets unless its sku is configured otherwise.
    pub fn stock_shard_count(&self) -> usize {
        self.stock_shards
    }

    /// The shard count a new sale of `sku` gets.
    pub fn shards_for(&self, sku: &Sku) -> usize {
        self.shards_by_sku
            .get(sku)
            .copied()
            .unwrap_or(self.stock_shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_calls_get_a_connection_each() {
        let plain = RedisConfig::default();
        assert_eq!((plain.connections(), plain.calls_in_flight()), (1, 2));
        let acked = RedisConfig::default().replica_acks(1);
        assert_eq!((acked.connections(), acked.calls_in_flight()), (4, 4));
        let direct = acked.coalesce(false);
        assert_eq!(direct.connections(), 1);
    }
}
