//! One multiplexed connection: a self-reconnecting [`ConnectionManager`] to one node, or the
//! async cluster client (feature `cluster`).

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::config::RedisConfig;
use crate::error::StoreError;

#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "Connection::Single",
            #[cfg(feature = "cluster")]
            Self::Cluster(_) => "Connection::Cluster",
        })
    }
}

impl Connection {
    pub(crate) async fn single(url: &str, config: &RedisConfig) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
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
        let client = redis::cluster::ClusterClientBuilder::new(nodes.iter().copied())
            .response_timeout(config.command_timeout)
            .connection_timeout(config.connect_timeout)
            .build()?;
        Ok(Self::Cluster(client.get_async_connection().await?))
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Self::Cluster(conn) => conn.req_packed_command(cmd),
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
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            #[cfg(feature = "cluster")]
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}
