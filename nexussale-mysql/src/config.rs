//! [`MySqlConfig`]: the connection pool's settings.

use std::time::Duration;

/// Pool settings of a [`MySqlOrderRepository`](crate::MySqlOrderRepository).
///
/// ```
/// use std::time::Duration;
/// use nexussale_mysql::MySqlConfig;
///
/// let config = MySqlConfig::default()
///     .max_connections(32)
///     .acquire_timeout(Duration::from_secs(2));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct MySqlConfig {
    pub(crate) max_connections: u32,
    pub(crate) min_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) lock_wait_timeout: Duration,
}

impl Default for MySqlConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            lock_wait_timeout: Duration::from_secs(5),
        }
    }
}

impl MySqlConfig {
    /// The most connections the pool opens (default 16).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Connections the pool keeps open even when idle (default 0).
    pub fn min_connections(mut self, min: u32) -> Self {
        self.min_connections = min;
        self
    }

    /// How long a call waits for a free connection before it fails as retryable (default 5 s).
    /// It also bounds connecting, so an unreachable database fails calls rather than hangs them.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// How long a connection may sit idle before it is closed (default 10 minutes).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a connection lives before it is replaced (default 30 minutes).
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// How long a statement waits for a row lock another session holds before it fails as
    /// retryable (InnoDB's `innodb_lock_wait_timeout`, whole seconds, at least 1; default 5 s,
    /// where InnoDB's own is 50 s: the order worker's batch is better retried than held).
    pub fn lock_wait_timeout(mut self, timeout: Duration) -> Self {
        self.lock_wait_timeout = timeout;
        self
    }
}
