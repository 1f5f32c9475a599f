//! [`Watched`]: a backend whose failures are logged once per outage.

use std::time::Instant;

use super::hooked::{Answer, Call, Hook, Hooked};
use crate::error::Error;
use crate::outage::OutageLog;

/// A [`StockStore`](crate::StockStore), [`OrderQueue`](crate::OrderQueue) or
/// [`OrderRepository`](crate::OrderRepository) whose backend failures ([`Error::Backend`]) go to
/// one [`OutageLog`]: during an outage that fails every purchase, the log shows one warning when
/// it starts, a count once a minute, and one line when the backend answers again, instead of a
/// line per request. Any answer from the backend, business refusals included, counts as a
/// success.
///
/// ```
/// use nexussale_core::layers::Watched;
/// use nexussale_core::memory::MemoryStockStore;
/// use nexussale_core::DynStockStore;
/// use std::sync::Arc;
///
/// let stock: DynStockStore = Arc::new(Watched::watch("stock store", MemoryStockStore::new()));
/// # let _ = stock;
/// ```
pub type Watched<T> = Hooked<T, OutageLog>;

impl<T> Hooked<T, OutageLog> {
    /// `inner`, its failures logged under `name` (`"stock store"`, `"order queue"`, …).
    pub fn watch(name: &'static str, inner: T) -> Self {
        Hooked::new(inner, OutageLog::new(name))
    }
}

impl Hook for OutageLog {
    fn after(&self, _: Call, _: Instant, answer: Answer<'_>) -> Option<Error> {
        match answer.error() {
            Some(err @ Error::Backend { .. }) => {
                self.failure(err);
            }
            _ => self.success(),
        }
        None
    }

    /// The engine's own span of each backend call (`TRACE`, for a trace exporter), inside the
    /// span of what made it (a purchase, a worker batch): the background loops' polls (the
    /// worker waiting for events, the sweeper listing sales) would be a trace each, all noise.
    fn span(&self, call: Call) -> tracing::Span {
        if !tracing::level_enabled!(tracing::Level::TRACE) || tracing::Span::current().is_none() {
            return tracing::Span::none();
        }
        tracing::trace_span!(
            "backend call",
            otel.name = %format_args!("{} {}", call.backend.as_str(), call.method.as_str()),
            otel.kind = "client",
            backend = call.backend.as_str(),
            method = call.method.as_str(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::stock::{MockStockStore, StockStore};

    #[tokio::test]
    async fn backend_failures_make_one_outage_and_any_answer_ends_it() {
        let mut store = MockStockStore::new();
        let mut calls = 0;
        store.expect_sales().times(5).returning(move || {
            calls += 1;
            match calls {
                1..=3 => Err(Error::retryable("redis", "connection refused")),
                4 => Err(Error::invalid("sku", "empty")),
                _ => Ok(Vec::new()),
            }
        });
        let store = Watched::watch("stock store", store);
        for _ in 0..3 {
            assert!(store.sales().await.is_err());
        }
        assert!(store.hook().is_down());
        assert_eq!(store.hook().failures(), 3);
        // A refusal is an answer: the backend is reachable again (once that lasts).
        assert!(store.sales().await.is_err());
        store.hook().settle();
        store.sales().await.unwrap();
        assert!(!store.hook().is_down());
    }
}
