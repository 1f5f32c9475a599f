//! [`Faults`]: failures injected on purpose, for tests that prove what survives them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::hooked::{Answer, Call, Hook, Hooked, Method};
use crate::error::{Error, Result};

/// A backend with [`Faults`] injected into its calls.
pub type Faulty<T> = Hooked<T, Faults>;

impl<T> Hooked<T, Faults> {
    /// `inner`, with no fault planned yet.
    pub fn faulty(inner: T) -> Self {
        Hooked::new(inner, Faults::default())
    }
}

/// A [`Hook`] that fails calls as planned: refused before they reach the backend (it was
/// unreachable), or answered with an error after the backend took them (the reply was lost);
/// or slows them down.
/// Every injected error is [`Error::Backend`], retryable, from backend `"injected"`.
///
/// ```
/// use nexussale_core::layers::{Faulty, Method};
/// use nexussale_core::memory::MemoryOrderQueue;
/// use nexussale_core::{Order, OrderEvent, OrderQueue};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> nexussale_core::Result<()> {
/// let queue = Faulty::faulty(MemoryOrderQueue::new());
/// queue.hook().refuse(Method::Publish); // the broker is down
/// # let event = nexussale_core::testkit::fixtures::placed(nexussale_core::testkit::fixtures::order(&nexussale_core::Sku::new("ps5")?, "ann"));
/// assert!(queue.publish(&event).await.unwrap_err().is_retryable());
/// queue.hook().heal();
/// queue.publish(&event).await?;
/// assert_eq!(queue.hook().calls(Method::Publish), 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    delays: HashMap<Method, Duration>,
    calls: HashMap<Method, u64>,
}

#[derive(Debug)]
struct Rule {
    method: Method,
    /// Refused before the backend, or answered with an error after it.
    lose_reply: bool,
    /// Calls to let through before this rule fails any.
    skip: u64,
    /// Calls still to fail; `None`: every one, until [`Faults::heal`].
    remaining: Option<u64>,
}

impl Faults {
    /// Every call of `method` fails before it reaches the backend, until [`heal`](Self::heal).
    pub fn refuse(&self, method: Method) {
        self.plan(method, false, 0, None);
    }

    /// The next `count` calls of `method` fail before they reach the backend.
    pub fn refuse_next(&self, method: Method, count: u64) {
        self.plan(method, false, 0, Some(count));
    }

    /// The `n`th call of `method` from now (1: the next) fails before it reaches the backend.
    pub fn refuse_nth(&self, method: Method, n: u64) {
        self.plan(method, false, n.saturating_sub(1), Some(1));
    }

    /// The next `count` calls of `method` reach the backend and take effect, and then answer an
    /// error: their replies are lost.
    pub fn lose_replies(&self, method: Method, count: u64) {
        self.plan(method, true, 0, Some(count));
    }

    /// Every call of `method` waits `by` before it reaches the backend, until
    /// [`heal`](Self::heal): a slow network, a window for a client to hang up in.
    pub fn slow(&self, method: Method, by: Duration) {
        self.state.lock().delays.insert(method, by);
    }

    /// Cancels every planned fault and delay.
    pub fn heal(&self) {
        let mut state = self.state.lock();
        state.rules.clear();
        state.delays.clear();
    }

    /// How many calls of `method` were made, failed ones included.
    pub fn calls(&self, method: Method) -> u64 {
        self.state.lock().calls.get(&method).copied().unwrap_or(0)
    }

    fn plan(&self, method: Method, lose_reply: bool, skip: u64, remaining: Option<u64>) {
        // Zero calls to fail is no fault (a rule of zero would count below zero).
        if remaining == Some(0) {
            return;
        }
        self.state.lock().rules.push(Rule {
            method,
            lose_reply,
            skip,
            remaining,
        });
    }

    /// Whether a planned fault of this phase takes this call (and counts it against its rule).
    fn take(&self, method: Method, lose_reply: bool) -> Option<Error> {
        let mut state = self.state.lock();
        if !lose_reply {
            *state.calls.entry(method).or_default() += 1;
        }
        let rules = &mut state.rules;
        let at = rules
            .iter_mut()
            .position(|rule| rule.method == method && rule.lose_reply == lose_reply)?;
        let rule = &mut rules[at];
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        if let Some(remaining) = &mut rule.remaining {
            *remaining -= 1;
            if *remaining == 0 {
                rules.remove(at);
            }
        }
        let what = if lose_reply {
            "the reply was lost"
        } else {
            "the backend is unreachable"
        };
        Some(Error::retryable(
            "injected",
            format!("{method:?}: injected fault: {what}"),
        ))
    }
}

impl Hook for Faults {
    fn before(&self, call: Call) -> Result<()> {
        match self.take(call.method, false) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn delay(&self, call: Call) -> Option<Duration> {
        self.state.lock().delays.get(&call.method).copied()
    }

    fn after(&self, call: Call, _: Instant, _: Answer<'_>) -> Option<Error> {
        self.take(call.method, true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::memory::MemoryStockStore;
    use crate::sale::{Sale, Sku};
    use crate::stock::StockStore;

    #[tokio::test]
    async fn faults_fail_the_calls_planned_and_no_others() {
        let store = Faulty::faulty(MemoryStockStore::new());
        let sku = Sku::new("ps5").unwrap();
        let sale = Sale::new(sku.clone(), 1);

        store.hook().refuse_nth(Method::CreateSale, 2);
        store.create_sale(&sale).await.unwrap();
        assert!(store.create_sale(&sale).await.unwrap_err().is_retryable());
        assert!(!store.create_sale(&sale).await.unwrap(), "exists");

        // A lost reply took effect: the sale is there although the call failed.
        let other = Sale::new(Sku::new("xbox").unwrap(), 1);
        store.hook().lose_replies(Method::CreateSale, 1);
        assert!(store.create_sale(&other).await.is_err());
        assert!(store.sale(&other.sku).await.unwrap().is_some());

        store.hook().refuse(Method::Sale);
        for _ in 0..3 {
            assert!(store.sale(&sku).await.is_err());
        }
        store.snapshot(&sku).await.unwrap();
        store.hook().heal();
        assert!(store.sale(&sku).await.unwrap().is_some());
        // Zero calls to fail fail none.
        store.hook().refuse_next(Method::Snapshot, 0);
        store.snapshot(&sku).await.unwrap();
        assert_eq!(store.hook().calls(Method::CreateSale), 4);
        assert_eq!(store.hook().calls(Method::Sale), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slowed_method_waits_and_the_others_do_not() {
        let store = Faulty::faulty(MemoryStockStore::new());
        let sku = Sku::new("ps5").unwrap();
        store.hook().slow(Method::Snapshot, Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        store.sale(&sku).await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(store.snapshot(&sku).await.is_err()); // no such sale, after the wait
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        store.hook().heal();
        let healed = tokio::time::Instant::now();
        let _ = store.snapshot(&sku).await;
        assert_eq!(healed.elapsed(), Duration::ZERO);
    }
}
