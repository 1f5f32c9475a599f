//! [`Teardown`]: a backend that cleans up after the test that made it, whichever way the test
//! ends.

use std::fmt;
use std::future::Future;

use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::layers::{Hook, Hooked};

type Cleanup = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), String>> + Send>;

/// A [`Hook`] that changes no call and runs an async cleanup (delete the test's keys, drop its
/// database) when the backend holding it is dropped: when the test ends, also when it fails,
/// since a panicking test still drops what it holds. This is the kit's teardown hook: a
/// backend's `setup` for `stock_store_tests!` and the other macros hands out its backend
/// wrapped in one, so the backend needs no wrapper of its own.
///
/// `Drop` cannot await, so the cleanup runs on a thread of its own with a runtime of its own
/// (a test's runtime may be shutting down); a failed cleanup is printed, not raised, since it
/// must not hide the test's own result.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// use nexussale_core::layers::Hooked;
/// use nexussale_core::memory::MemoryStockStore;
/// use nexussale_core::testkit::Teardown;
/// use nexussale_core::DynStockStore;
///
/// let cleaned = Arc::new(AtomicBool::new(false));
/// let flag = Arc::clone(&cleaned);
/// let store: DynStockStore = Arc::new(Hooked::new(
///     MemoryStockStore::new(),
///     Teardown::new("the test's sales", move || async move {
///         flag.store(true, Ordering::SeqCst); // a real backend deletes what the test made
///         Ok::<_, std::convert::Infallible>(())
///     }),
/// ));
/// drop(store);
/// assert!(cleaned.load(Ordering::SeqCst));
/// ```
pub struct Teardown {
    what: String,
    cleanup: Mutex<Option<Cleanup>>,
}

/// A backend that runs a [`Teardown`] when dropped.
pub type TornDown<T> = Hooked<T, Teardown>;

impl Teardown {
    /// Runs `cleanup` on drop; `what` names what it removes, for the message when it fails.
    pub fn new<F, Fut, E>(what: impl Into<String>, cleanup: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        let cleanup: Cleanup = Box::new(move || {
            Box::pin(async move { cleanup().await.map_err(|err| err.to_string()) })
        });
        Self {
            what: what.into(),
            cleanup: Mutex::new(Some(cleanup)),
        }
    }
}

impl fmt::Debug for Teardown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Teardown")
            .field("what", &self.what)
            .finish()
    }
}

impl Hook for Teardown {}

impl Drop for Teardown {
    fn drop(&mut self) {
        let Some(cleanup) = self.cleanup.get_mut().take() else {
            return;
        };
        let ran = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?
                .block_on(cleanup())
        })
        .join();
        match ran {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("could not remove {}: {err}", self.what),
            Err(_) => eprintln!("could not remove {}: the cleanup panicked", self.what),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::AssertUnwindSafe;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::memory::MemoryStockStore;

    fn counted(runs: &Arc<AtomicUsize>) -> TornDown<MemoryStockStore> {
        let runs = Arc::clone(runs);
        Hooked::new(
            MemoryStockStore::new(),
            Teardown::new("a count", move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<(), String>(())
            }),
        )
    }

    /// Once per backend, inside a runtime or not, and when a failing test unwinds past it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cleanup_runs_once_on_drop_even_when_the_test_panics() {
        let runs = Arc::new(AtomicUsize::new(0));
        drop(counted(&runs));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let store = counted(&runs);
        let failed = std::panic::catch_unwind(AssertUnwindSafe(move || {
            let _store = store;
            panic!("a failing test");
        }));
        assert!(failed.is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let outside = std::thread::spawn({
            let runs = Arc::clone(&runs);
            move || drop(counted(&runs))
        });
        outside.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
