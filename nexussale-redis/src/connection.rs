//! One multiplexed connection: a self-reconnecting [`ConnectionManager`] to one node, the async
//! cluster client (feature `cluster`), or the master that Sentinel names (feature `sentinel`).

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::config::RedisConfig;
use crate::error::StoreError;

#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
    #[cfg(feature = "sentinel")]
    Sentinel(crate::sentinel::MasterFollower),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "Connection::Single",
            #[cfg(feature = "cluster")]
            Self::Cluster(_) => "Connection::Cluster",
            #[cfg(feature = "sentinel")]
            Self::Sentinel(_) => "Connection::Sentinel",
        })
    }
}

impl Connection {
    pub(crate) async fn single(url: &str, config: &RedisConfig) -> Result<Self, StoreError> {
        let client = match certificates(&[url], config)? {
            #[cfg(feature = "tls")]
            Some(certificates) => redis::Client::build_with_tls(url, certificates)?,
            _ => redis::Client::open(url)?,
        };
        let manager = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.command_timeout))
            .set_connection_timeout(Some(config.connect_timeout))
            .set_number_of_retries(3)
            .set_max_delay(std::time::Duration::from_millis(500));
        Ok(Self::Single(
            ConnectionManager::new_with_config(client, manager).await?,
        ))
    }

    #[cfg(feature = "cluster")]
    pub(crate) async fn cluster(nodes: &[&str], config: &RedisConfig) -> Result<Self, StoreError> {
        let builder = redis::cluster::ClusterClientBuilder::new(nodes.iter().copied())
            .response_timeout(config.command_timeout)
            .connection_timeout(config.connect_timeout);
        let client = match certificates(nodes, config)? {
            #[cfg(feature = "tls")]
            Some(certificates) => builder.certs(certificates),
            _ => builder,
        }
        .build()?;
        Ok(Self::Cluster(client.get_async_connection().await?))
    }

    #[cfg(feature = "sentinel")]
    pub(crate) async fn sentinel(
        sentinels: &[&str],
        master: &str,
        config: &RedisConfig,
    ) -> Result<Self, StoreError> {
        let certificates = certificates(sentinels, config)?;
        #[cfg(not(feature = "tls"))]
        let _: Option<()> = certificates;
        let follower = crate::sentinel::MasterFollower::connect(
            sentinels,
            master,
            config,
            #[cfg(feature = "tls")]
            certificates,
        )
        .await?;
        Ok(Self::Sentinel(follower))
    }
}

impl Connection {
    /// Whether scripts may reach keys beyond their shard's slot (the due index): everywhere but
    /// on a Redis Cluster.
    pub(crate) fn reaches_every_key(&self) -> bool {
        match self {
            #[cfg(feature = "cluster")]
            Self::Cluster(_) => false,
            _ => true,
        }
    }

    /// `cmd` (a command without keys, such as `WAIT`) on the node that holds `key`: on a
    /// Cluster the primary serving its slot (the cluster client would otherwise send it to
    /// every primary), elsewhere the one node.
    pub(crate) async fn query_on_node_of<T: redis::FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        key: &str,
    ) -> Result<T, StoreError> {
        match self {
            #[cfg(feature = "cluster")]
            Self::Cluster(conn) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = Route::new(crate::keys::cluster_slot(key), SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let value = conn.route_command(cmd.clone(), routing).await?;
                Ok(redis::from_redis_value(value).map_err(redis::RedisError::from)?)
            }
            _ => Ok(cmd.query_async(self).await?),
        }
    }
}

/// The certificates `config` sets for `urls`, refusing them for a URL without TLS: a CA or a
/// client certificate given for `redis://` would otherwise be ignored, and the connection made
/// in the clear.
#[cfg(feature = "tls")]
fn certificates(
    urls: &[&str],
    config: &RedisConfig,
) -> Result<Option<redis::TlsCertificates>, StoreError> {
    // redis builds rustls without a cryptography provider: ring, unless the process chose one
    // (an error here means it did); only when TLS is used, so that a process that picks its own
    // provider later still can.
    if urls.iter().any(|url| url.starts_with("rediss://")) {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let files = &config.tls;
    if !files.is_set() {
        return Ok(None);
    }
    refuse_plaintext(urls)?;
    Ok(Some(redis::TlsCertificates {
        client_tls: files
            .client
            .as_ref()
            .map(|(certificate, key)| redis::ClientTlsConfig {
                client_cert: certificate.clone(),
                client_key: key.clone(),
            }),
        root_cert: files.root_certificate.clone(),
    }))
}

#[cfg(not(feature = "tls"))]
fn certificates(urls: &[&str], config: &RedisConfig) -> Result<Option<()>, StoreError> {
    if config.tls.is_set() {
        refuse_plaintext(urls)?;
    }
    Ok(None)
}

fn refuse_plaintext(urls: &[&str]) -> Result<(), StoreError> {
    match urls.iter().find(|url| !url.starts_with("rediss://")) {
        Some(_) => Err(StoreError::Redis(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "TLS certificates are set but the URL is not rediss://: refusing to connect without TLS",
        )))),
        None => Ok(()),
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Self::Cluster(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "sentinel")]
            Self::Sentinel(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            #[cfg(feature = "cluster")]
            Self::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
            #[cfg(feature = "sentinel")]
            Self::Sentinel(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            #[cfg(feature = "cluster")]
            Self::Cluster(conn) => conn.get_db(),
            #[cfg(feature = "sentinel")]
            Self::Sentinel(conn) => conn.get_db(),
        }
    }
}
