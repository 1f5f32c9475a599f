//! This crate's errors, and the one place that decides which are worth retrying.

/// What can go wrong talking to MySQL. Converted into [`nexussale_core::Error::Backend`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum RepoError {
    /// The driver failed: connection, protocol, server error.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// Migrating the schema failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database holds something this crate did not write.
    #[error("unexpected data in mysql: {0}")]
    Corrupt(String),
}

/// MySQL / MariaDB error numbers that may clear when the same statement runs again. (The
/// number, not `DatabaseError::code`: that is the SQLSTATE, `HY000` for most of these.)
const RETRYABLE_NUMBERS: &[u16] = &[
    1205, // ER_LOCK_WAIT_TIMEOUT
    1213, // ER_LOCK_DEADLOCK
    1040, // ER_CON_COUNT_ERROR: too many connections
    1053, // ER_SERVER_SHUTDOWN
    2006, // CR_SERVER_GONE_ERROR
    2013, // CR_SERVER_LOST
    1927, // MariaDB ER_CONNECTION_KILLED
    4031, // MySQL 8 ER_CLIENT_INTERACTION_TIMEOUT
];

impl RepoError {
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Self::Corrupt(reason.into())
    }

    /// A deadlock: InnoDB rolled the statement back, so running it again is safe.
    pub(crate) fn is_deadlock(&self) -> bool {
        self.number() == Some(1213)
    }

    /// The server's error number.
    fn number(&self) -> Option<u16> {
        match self {
            Self::Sql(sqlx::Error::Database(err)) => err
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(sqlx::mysql::MySqlDatabaseError::number),
            _ => None,
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            Self::Sql(err) => match err {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(_) => self
                    .number()
                    .is_some_and(|number| RETRYABLE_NUMBERS.contains(&number)),
                _ => false,
            },
            Self::Migrate(_) | Self::Corrupt(_) => false,
        }
    }
}

impl From<RepoError> for nexussale_core::Error {
    fn from(err: RepoError) -> Self {
        if err.is_retryable() {
            Self::retryable("mysql", err)
        } else {
            Self::permanent("mysql", err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_are_retryable_and_bad_data_is_not() {
        let io = RepoError::Sql(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(nexussale_core::Error::from(io).is_retryable());
        assert!(
            nexussale_core::Error::from(RepoError::Sql(sqlx::Error::PoolTimedOut)).is_retryable()
        );
        assert!(!nexussale_core::Error::from(RepoError::corrupt("x")).is_retryable());
        assert!(
            !nexussale_core::Error::from(RepoError::Sql(sqlx::Error::RowNotFound)).is_retryable()
        );
    }
}
