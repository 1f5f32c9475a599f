//! The one error type of the core crate, shared by every backend.

use crate::order::{OrderId, OrderStatus};
use crate::sale::Sku;

/// A boxed error from a backend driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in NexusSale.
///
/// Business answers to a purchase (sold out, limit exceeded, not active) are *not* errors: they are
/// variants of [`PurchaseOutcome`](crate::PurchaseOutcome) and
/// [`ReserveOutcome`](crate::ReserveOutcome). Errors are refused input, missing things, and backends
/// that failed; [`Error::is_retryable`] tells a caller whether trying again may succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value failed validation (empty, too long, out of range, ...).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field that was refused (`sku`, `user`, `quantity`, ...).
        field: &'static str,
        /// Why, as a human sentence fragment.
        reason: String,
    },
    /// No sale exists for this sku.
    #[error("no sale exists for sku {0}")]
    UnknownSale(Sku),
    /// A sale with this sku already exists.
    #[error("a sale already exists for sku {0}")]
    SaleExists(Sku),
    /// Creating the sale would pass the cap on sales held at once
    /// ([`EngineConfig::max_sales`](crate::EngineConfig::max_sales)).
    #[error(
        "{max} sales exist, the most this deployment holds at once; end and remove one, or raise --max-sales"
    )]
    TooManySales {
        /// The cap.
        max: u64,
    },
    /// The sale has no waiting room (its queue routes do not exist).
    #[error("sale {0} has no waiting room")]
    NoWaitingRoom(Sku),
    /// No order exists with this id.
    #[error("no order exists with id {0}")]
    OrderNotFound(OrderId),
    /// The order is not in a state that allows the requested transition.
    #[error("order {id} is {actual}, not {expected}")]
    Conflict {
        /// The order.
        id: OrderId,
        /// The status the transition needs.
        expected: OrderStatus,
        /// The status the order has.
        actual: OrderStatus,
    },
    /// An idempotency key was used before, by the same buyer on the same sale, for a request
    /// with other parameters (quantity or remark): refused, as payment APIs do, rather than
    /// answering the earlier order as if it were this one.
    #[error("this idempotency key was used with other parameters (by order {order})")]
    IdempotencyKeyReused {
        /// The order the key belongs to.
        order: OrderId,
    },
    /// The stock store's state of this sale may have gone backwards: a failover promoted a
    /// replica that lacked the last writes, or a sequence the store keeps went back. The store
    /// changes nothing of the sale until it is rebuilt from the orders
    /// ([`StockStore::restore`](crate::StockStore::restore)); the engine does that by itself,
    /// so the error is retryable.
    #[error(
        "the stock store's state of sale {0} may have gone backwards; it waits to be rebuilt from the orders"
    )]
    StockRegressed(Sku),
    /// A backend failed. `retryable` says whether the same call may succeed later (connection lost,
    /// timeout, queue full) or not (bad configuration, corrupt data).
    #[error("{backend} backend failed: {source}")]
    Backend {
        /// Which backend: `memory`, `redis`, `kafka`, `mysql`, ...
        backend: &'static str,
        /// Whether trying again may succeed.
        retryable: bool,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// An [`Error::InvalidInput`] for `field`.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// An [`Error::Backend`] that may succeed when tried again.
    pub fn retryable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            backend,
            retryable: true,
            source: source.into(),
        }
    }

    /// An [`Error::Backend`] that will not succeed when tried again.
    pub fn permanent(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            backend,
            retryable: false,
            source: source.into(),
        }
    }

    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Backend {
                retryable: true,
                ..
            } | Self::StockRegressed(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_retryable_backend_errors_are_retryable() {
        assert!(Error::retryable("memory", "queue full").is_retryable());
        assert!(!Error::permanent("memory", "corrupt").is_retryable());
        assert!(!Error::invalid("sku", "empty").is_retryable());
        assert_eq!(
            Error::invalid("sku", "must not be empty").to_string(),
            "invalid sku: must not be empty"
        );
    }
}
