//! [`PurchasesFirst`]: while purchases are being taken, the expiry sweeper works only a share of
//! the time, so a mass lapse does not take the cores a live drop needs.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Purchases are counted in windows this long.
const WINDOW_MS: u64 = 250;

/// Purchases in one window that make the engine busy (500 a second): a trickle of buyers does
/// not slow a lapse, a drop does.
const BUSY_PURCHASES: u64 = 125;

/// Bits of [`PurchasesFirst::counts`] that hold the current window's count.
const COUNT_BITS: u32 = 24;

/// The longest rest after one sweeper call: a call that was slow for another reason (a store
/// failing over) does not stop the sweep for long.
const LONGEST_REST: Duration = Duration::from_secs(1);

/// Whether purchases are being taken, and the sweeper's turns while they are.
pub(super) struct PurchasesFirst {
    origin: Instant,
    /// The current window's number (from `origin`) above [`COUNT_BITS`], the purchases counted
    /// in it below: one `fetch_add` a purchase, approximate when the window turns (a few counts
    /// may be lost then, which only delays "busy" by a purchase or two).
    counts: AtomicU64,
    /// The number, plus one, of the last window that reached [`BUSY_PURCHASES`] (0: none).
    busy_window: AtomicU64,
    /// While busy, one sweeper call holds it, and its rest after: the share is the sweeper's as a
    /// whole, not per sale swept at once.
    turn: tokio::sync::Mutex<()>,
}

impl PurchasesFirst {
    pub(super) fn new() -> Self {
        Self {
            origin: Instant::now(),
            counts: AtomicU64::new(0),
            busy_window: AtomicU64::new(0),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    fn window(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX) / WINDOW_MS
    }

    /// Counts a purchase on its way to the stock store.
    pub(super) fn purchase(&self) {
        let window = self.window();
        let before = self.counts.fetch_add(1, Ordering::Relaxed);
        let counted = match before >> COUNT_BITS {
            current if current == window => (before & ((1 << COUNT_BITS) - 1)) + 1,
            // A window that began since: this purchase is its first.
            older if older < window => {
                self.counts
                    .store(window << COUNT_BITS | 1, Ordering::Relaxed);
                1
            }
            // Counted into a window that began after this purchase read the time.
            _ => return,
        };
        if counted == BUSY_PURCHASES {
            self.busy_window.store(window + 1, Ordering::Relaxed);
        }
    }

    /// Whether this window or the one before counted [`BUSY_PURCHASES`] purchases.
    pub(super) fn busy(&self) -> bool {
        let busy = self.busy_window.load(Ordering::Relaxed);
        busy != 0 && (self.window() + 1).saturating_sub(busy) <= 1
    }

    /// Runs one sweeper call. While busy (and `share` < 1), calls take turns, and each is
    /// followed by a rest so that the sweeper's calls fill at most `share` of the time: one that
    /// took `d` rests `d × (1 − share) / share`. Idle, the call runs at once, beside others.
    pub(super) async fn sweeper_call<T>(&self, share: f64, call: impl Future<Output = T>) -> T {
        if share >= 1.0 || !self.busy() {
            return call.await;
        }
        let _turn = self.turn.lock().await;
        let started = Instant::now();
        let answer = call.await;
        // Purchases may have stopped while this call waited its turn: no rest then.
        if self.busy() {
            let share = share.max(0.01);
            let rest = started.elapsed().mul_f64((1.0 - share) / share);
            tokio::time::sleep(rest.min(LONGEST_REST)).await;
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` purchases spread over `over`.
    async fn purchases(first: &PurchasesFirst, count: u32, over: Duration) {
        for _ in 0..count {
            first.purchase();
            tokio::time::sleep(over / count).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_drop_makes_the_engine_busy_and_a_trickle_does_not() {
        let first = PurchasesFirst::new();
        assert!(!first.busy(), "busy before any purchase");
        // 100 a second for two seconds.
        purchases(&first, 200, Duration::from_secs(2)).await;
        assert!(!first.busy(), "a trickle made the engine busy");
        // 1,000 a second.
        purchases(&first, 200, Duration::from_millis(200)).await;
        assert!(first.busy(), "a drop did not make the engine busy");
        tokio::time::advance(Duration::from_millis(2 * WINDOW_MS)).await;
        assert!(!first.busy(), "still busy after the purchases stopped");
    }

    /// Busy, by 1,000 purchases a second.
    async fn drop_under_way(first: &PurchasesFirst) {
        purchases(
            first,
            BUSY_PURCHASES as u32,
            Duration::from_millis(WINDOW_MS / 2),
        )
        .await;
        assert!(first.busy());
    }

    /// How long one sweeper call of 10 ms took, its rest included.
    async fn call_took(first: &PurchasesFirst, share: f64) -> Duration {
        let started = Instant::now();
        let call = tokio::time::sleep(Duration::from_millis(10));
        first.sweeper_call(share, call).await;
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_while_busy_rests_for_the_rest_of_its_share() {
        let first = PurchasesFirst::new();
        let ms = Duration::from_millis;
        assert_eq!(call_took(&first, 0.25).await, ms(10), "idle: no rest");
        drop_under_way(&first).await;
        // 10 ms of work and 30 of rest: a quarter of the time.
        assert_eq!(call_took(&first, 0.25).await, ms(40));
        assert_eq!(
            call_took(&first, 1.0).await,
            ms(10),
            "a share of 1: no rest"
        );
    }
}
