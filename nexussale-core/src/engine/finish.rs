//! [`FinishOnDrop`]: a future that still runs to its end when its caller drops it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Polls `future` in place; if it is dropped before it completes (a caller that stopped
/// waiting: an HTTP client hanging up drops its handler's future), the rest of it runs in a task
/// of its own and its output is discarded.
///
/// Cheaper than spawning every time (one allocation; no task, no hop to another worker thread:
/// a spawn per purchase cost a third of the embedded purchase rate): only the rare dropped one
/// becomes a task.
pub(super) struct FinishOnDrop<F: Future + Send + 'static>
where
    F::Output: Send,
{
    future: Option<Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> FinishOnDrop<F>
where
    F::Output: Send,
{
    pub(super) fn new(future: F) -> Self {
        Self {
            future: Some(Box::pin(future)),
        }
    }
}

impl<F: Future + Send + 'static> Future for FinishOnDrop<F>
where
    F::Output: Send,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let Some(future) = this.future.as_mut() else {
            panic!("FinishOnDrop polled after it completed");
        };
        let output = std::task::ready!(future.as_mut().poll(cx));
        this.future = None;
        Poll::Ready(output)
    }
}

impl<F: Future + Send + 'static> Drop for FinishOnDrop<F>
where
    F::Output: Send,
{
    fn drop(&mut self) {
        let Some(future) = self.future.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            // The boxed future keeps its address: moving the box into the task is sound.
            Ok(runtime) => drop(runtime.spawn(future)),
            Err(_) => tracing::error!(
                "a purchase was dropped outside a Tokio runtime before it finished; its units return at its TTL"
            ),
        }
    }
}

impl<F: Future + Send + 'static> std::fmt::Debug for FinishOnDrop<F>
where
    F::Output: Send,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishOnDrop")
            .field("done", &self.future.is_none())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_dropped_future_still_finishes() {
        let finished = Arc::new(AtomicBool::new(false));
        let work = {
            let finished = Arc::clone(&finished);
            FinishOnDrop::new(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                finished.store(true, Ordering::SeqCst);
            })
        };
        // The caller gives up long before the work is done.
        assert!(
            tokio::time::timeout(Duration::from_millis(5), work)
                .await
                .is_err()
        );
        assert!(!finished.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(finished.load(Ordering::SeqCst));
        // Awaited to the end, it answers in place.
        assert_eq!(FinishOnDrop::new(async { 7 }).await, 7);
    }
}
