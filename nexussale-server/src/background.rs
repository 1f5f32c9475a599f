//! The server's background tasks (order worker, expiry sweeper, books check, admission, refusal
//! counts) and how they stop: named, so a shutdown that takes long says what it waits for, and
//! bounded, so one stuck backend call cannot keep the process up for ever.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use tracing::warn;

/// How long the tasks get to end by themselves once cancelled before the abortable ones are
/// aborted. With the 10 s request grace before it, a server stops within about 25 s of SIGTERM.
pub(crate) const GRACE: Duration = Duration::from_secs(15);

/// How often a shutdown names the tasks it still waits for.
const LATE_EVERY: Duration = Duration::from_secs(5);

/// One background task of the process.
#[derive(Debug)]
pub(crate) struct Task {
    name: &'static str,
    handle: JoinHandle<()>,
    abortable: bool,
}

impl Task {
    /// A task whose work survives being aborted at any await, as it survives a crash there: each
    /// of its steps is atomic in the backends and what it left half done is picked up again (by
    /// the next sweep, the redelivered event, the next process).
    pub(crate) fn abortable(name: &'static str, handle: JoinHandle<()>) -> Self {
        Self {
            name,
            handle,
            abortable: true,
        }
    }

    /// A task that must end by itself: the order worker on the in-process queue, whose events die
    /// with the process unless it hands them over.
    pub(crate) fn awaited(name: &'static str, handle: JoinHandle<()>) -> Self {
        Self {
            name,
            handle,
            abortable: false,
        }
    }
}

/// Waits for `tasks` (already told to stop). Every [`LATE_EVERY`] it logs those still running;
/// past `grace` it aborts the abortable ones and goes on waiting for the others.
pub(crate) async fn stop(tasks: Vec<Task>, grace: Duration) {
    let started = Instant::now();
    let mut running: Vec<(&'static str, AbortHandle, bool)> = Vec::with_capacity(tasks.len());
    let mut ending: FuturesUnordered<_> = FuturesUnordered::new();
    for task in tasks {
        running.push((task.name, task.handle.abort_handle(), task.abortable));
        let name = task.name;
        ending.push(async move {
            // A panic or an abort ends the task all the same.
            let _ = task.handle.await;
            name
        });
    }
    let mut late = tokio::time::interval_at(started + LATE_EVERY, LATE_EVERY);
    let mut aborted = false;
    loop {
        tokio::select! {
            ended = ending.next() => match ended {
                Some(name) => running.retain(|(running, _, _)| *running != name),
                None => return,
            },
            _ = late.tick() => {
                let names: Vec<&str> = running.iter().map(|(name, _, _)| *name).collect();
                let waited = started.elapsed().as_secs();
                warn!(waiting_for = ?names, "shutting down: still waiting for {} after {waited} s", names.join(", "));
                if !aborted && started.elapsed() >= grace {
                    aborted = true;
                    for (name, handle, abortable) in &running {
                        if *abortable {
                            warn!(task = name, "shutting down: aborted after {grace:?}; what it left half done is taken up again by the next process");
                            handle.abort();
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn forever() -> JoinHandle<()> {
        tokio::spawn(std::future::pending())
    }

    /// A stop that hangs fails the test (in virtual time) instead of hanging it.
    async fn within_a_minute(stopping: impl Future<Output = ()>) {
        tokio::time::timeout(Duration::from_secs(60), stopping)
            .await
            .expect("the shutdown hung");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_abortable_task_is_aborted_after_the_grace() {
        let started = Instant::now();
        let stuck = forever();
        let probe = stuck.abort_handle();
        within_a_minute(stop(
            vec![
                Task::abortable("books check", stuck),
                Task::abortable("admission", tokio::spawn(async {})),
            ],
            Duration::from_secs(15),
        ))
        .await;
        assert!(probe.is_finished());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(15) && waited <= Duration::from_secs(20),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_awaited_task_is_never_aborted() {
        let finished = Arc::new(AtomicBool::new(false));
        let worker = tokio::spawn({
            let finished = Arc::clone(&finished);
            async move {
                // Longer than the grace: handing the queue over takes what it takes.
                tokio::time::sleep(Duration::from_secs(40)).await;
                finished.store(true, Ordering::SeqCst);
            }
        });
        within_a_minute(stop(
            vec![
                Task::awaited("order worker", worker),
                Task::abortable("books check", forever()),
            ],
            Duration::from_secs(15),
        ))
        .await;
        assert!(finished.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn tasks_that_end_are_not_waited_for_longer() {
        let started = Instant::now();
        stop(
            vec![
                Task::abortable("sweeper", tokio::spawn(async {})),
                Task::awaited(
                    "order worker",
                    tokio::spawn(tokio::time::sleep(Duration::from_secs(1))),
                ),
            ],
            Duration::from_secs(15),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
