//! Following a master through Sentinel failovers (feature `sentinel`): one multiplexed
//! connection to the node the sentinels name as master, dropped when it fails or turns out to be
//! a replica, and found again through the sentinels by the next command.
//!
//! redis's own `SentinelClient` resolves the master once per connection and never again, so a
//! failover would leave every command failing until the process restarts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisError, RedisFuture, ServerErrorKind, Value,
};

use crate::config::RedisConfig;
use crate::error::StoreError;

/// After a failed search for the master, commands fail at once (retryable) for this long rather
/// than each asking the sentinels again: a failover takes seconds, and a burst of purchases must
/// not queue behind it.
const SEARCH_AGAIN_AFTER: Duration = Duration::from_millis(250);

/// A connection to whichever node the sentinels name as master of one name. Clones share it.
#[derive(Clone)]
pub(crate) struct MasterFollower {
    shared: Arc<Shared>,
}

struct Shared {
    master: String,
    db: i64,
    current: std::sync::Mutex<Current>,
    /// Held while searching for the master, so that one command searches and the others wait
    /// for its answer.
    search: tokio::sync::Mutex<Search>,
    connection: AsyncConnectionConfig,
    /// Asking the sentinels and connecting to the master they name: bounded, since redis's
    /// sentinel connections have no timeout of their own.
    search_within: Duration,
}

/// The master connection in use, if any, and how many have been made: a failure seen on an
/// older connection must not drop a newer one.
struct Current {
    conn: Option<MultiplexedConnection>,
    generation: u64,
}

struct Search {
    sentinels: SentinelClient,
    /// The last search failed: until then, answer its error without searching.
    failed: Option<(Instant, RedisError)>,
}

impl std::fmt::Debug for MasterFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterFollower")
            .field("master", &self.shared.master)
            .finish_non_exhaustive()
    }
}

impl MasterFollower {
    /// Asks the sentinels at `urls` for `master` and connects to it. The first URL's user,
    /// password and database are used for the sentinels and for the master; TLS to the master
    /// when the sentinels are `rediss://`, with `certificates` for both.
    pub(crate) async fn connect(
        urls: &[&str],
        master: &str,
        config: &RedisConfig,
        #[cfg(feature = "tls")] certificates: Option<redis::TlsCertificates>,
    ) -> Result<Self, StoreError> {
        let infos = urls
            .iter()
            .map(|url| url.into_connection_info())
            .collect::<Result<Vec<_>, _>>()?;
        let first = infos.first().ok_or_else(|| {
            RedisError::from((ErrorKind::InvalidClientConfig, "no sentinel URL given"))
        })?;
        let settings = first.redis_settings();
        let mut builder = SentinelClientBuilder::new(
            infos.iter().map(|info| info.addr().clone()),
            master,
            SentinelServerType::Master,
        )?
        .set_client_to_redis_db(settings.db());
        if let Some(user) = settings.username() {
            builder = builder
                .set_client_to_redis_username(user)
                .set_client_to_sentinel_username(user);
        }
        if let Some(password) = settings.password() {
            builder = builder
                .set_client_to_redis_password(password)
                .set_client_to_sentinel_password(password);
        }
        if matches!(first.addr(), ConnectionAddr::TcpTls { .. }) {
            builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
        }
        #[cfg(feature = "tls")]
        if let Some(certificates) = certificates {
            builder = builder
                .set_client_to_redis_certificates(certificates.clone())
                .set_client_to_sentinel_certificates(certificates);
        }
        let follower = Self {
            shared: Arc::new(Shared {
                master: master.to_owned(),
                db: settings.db(),
                current: std::sync::Mutex::new(Current {
                    conn: None,
                    generation: 0,
                }),
                search: tokio::sync::Mutex::new(Search {
                    sentinels: builder.build()?,
                    failed: None,
                }),
                connection: AsyncConnectionConfig::new()
                    .set_response_timeout(Some(config.command_timeout))
                    .set_connection_timeout(Some(config.connect_timeout)),
                search_within: config.connect_timeout * 2,
            }),
        };
        follower.master().await?;
        Ok(follower)
    }

    /// The master's connection: the current one, or a new one found through the sentinels.
    async fn master(&self) -> Result<(MultiplexedConnection, u64), RedisError> {
        if let Some(current) = self.shared.current() {
            return Ok(current);
        }
        let mut search = self.shared.search.lock().await;
        // Another command may have found it while this one waited.
        if let Some(current) = self.shared.current() {
            return Ok(current);
        }
        if let Some((until, err)) = &search.failed
            && Instant::now() < *until
        {
            return Err(err.clone());
        }
        let found = tokio::time::timeout(self.shared.search_within, async {
            let client = search.sentinels.async_get_client().await?;
            client
                .get_multiplexed_async_connection_with_config(&self.shared.connection)
                .await
        })
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the sentinels did not name a reachable master in time",
            )))
        });
        match found {
            Ok(conn) => {
                search.failed = None;
                let mut current = self.shared.lock_current();
                current.generation += 1;
                current.conn = Some(conn.clone());
                Ok((conn, current.generation))
            }
            Err(err) => {
                tracing::warn!(master = %self.shared.master, error = %err, "redis: no master reachable through the sentinels");
                let err = no_master(&self.shared.master, &err);
                search.failed = Some((Instant::now() + SEARCH_AGAIN_AFTER, err.clone()));
                Err(err)
            }
        }
    }

    /// Sends one call to the master; a failure that says the master is gone or moved drops the
    /// connection, so that the next call looks for the master again.
    async fn call<T>(
        &self,
        send: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let (mut conn, generation) = self.master().await?;
        let answer = send(&mut conn).await;
        if let Err(err) = &answer
            && master_lost(err)
        {
            let mut current = self.shared.lock_current();
            if current.generation == generation && current.conn.take().is_some() {
                tracing::warn!(master = %self.shared.master, error = %err, "redis: lost the master; asking the sentinels again");
            }
        }
        answer
    }
}

impl Shared {
    fn lock_current(&self) -> std::sync::MutexGuard<'_, Current> {
        // Nothing panics while holding it; a poisoned lock still holds a usable value.
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn current(&self) -> Option<(MultiplexedConnection, u64)> {
        let current = self.lock_current();
        current.conn.clone().map(|conn| (conn, current.generation))
    }
}

/// Whether `err` means the connection no longer reaches a master: it broke or timed out, or the
/// node became a replica (a failover demoted it).
fn master_lost(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_unrecoverable_error()
        || matches!(
            err.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

/// The error a command gets while no master is reachable: an I/O error, so that it counts as
/// retryable (a failover ends), naming the master and why.
fn no_master(master: &str, cause: &RedisError) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        format!("no reachable master {master:?} through the sentinels: {cause}"),
    ))
}

impl ConnectionLike for MasterFollower {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.call(async move |conn| conn.req_packed_command(cmd).await))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.call(async move |conn| conn.req_packed_commands(cmd, offset, count).await))
    }

    fn get_db(&self) -> i64 {
        self.shared.db
    }
}
