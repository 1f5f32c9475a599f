//! [`OutageLog`]: a backend's (or a loop's) failures logged once per state change, with
//! counts, instead of once per failure.
//!
//! During an outage every request and every client callback fails the same way; a line each
//! buries the one line that matters (thousands a second). This logs the first failure as a
//! warning, counts the rest, says once a minute that it is still failing (with the count), and
//! says when it works again (with the count and how long it was down).

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::{info, warn};

/// How often a backend that stays down is reported again.
const STILL_DOWN_EVERY: Duration = Duration::from_secs(60);

/// A failing backend counts as recovered once it has answered for this long without failing:
/// during an outage some calls still succeed (an empty poll, a cached answer), and a line for
/// each such flap would be the flood again.
const RECOVERED_AFTER: Duration = Duration::from_secs(1);

/// One backend's (or background loop's) failures, logged per state change.
///
/// ```
/// use nexussale_core::OutageLog;
///
/// let redis = OutageLog::new("redis");
/// assert!(redis.failure(&"connection refused")); // logged: redis is down
/// assert!(!redis.failure(&"connection refused")); // counted, not logged
/// assert_eq!(redis.failures(), 2);
/// redis.success(); // answering again: back once it has answered for a second
/// assert!(redis.is_down());
/// ```
#[derive(Debug)]
pub struct OutageLog {
    name: &'static str,
    /// Read on every success (the hot path), so a healthy backend costs one relaxed load.
    down: AtomicBool,
    state: Mutex<Outage>,
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    failures: u64,
    reported_at: Instant,
    reported_failures: u64,
    /// The first success since the last failure, while down.
    answering_since: Option<Instant>,
}

impl OutageLog {
    /// A log for `name` (a backend, `"kafka"`, or a loop, `"order worker"`), which starts
    /// healthy.
    pub fn new(name: &'static str) -> Self {
        let now = Instant::now();
        Self {
            name,
            down: AtomicBool::new(false),
            state: Mutex::new(Outage {
                since: now,
                failures: 0,
                reported_at: now,
                reported_failures: 0,
                answering_since: None,
            }),
        }
    }

    /// Records a failure. The first one of an outage is logged as a warning with `error`; later
    /// ones are counted, and reported together once a minute while the outage lasts. Returns
    /// whether this call wrote a line.
    pub fn failure(&self, error: &dyn Display) -> bool {
        let mut outage = self.state.lock();
        let now = Instant::now();
        if !self.down.swap(true, Ordering::Relaxed) {
            *outage = Outage {
                since: now,
                failures: 1,
                reported_at: now,
                reported_failures: 1,
                answering_since: None,
            };
            warn!(component = self.name, error = %error, "{} failing; further failures are counted until it recovers", self.name);
            return true;
        }
        outage.failures += 1;
        outage.answering_since = None;
        if now.duration_since(outage.reported_at) < STILL_DOWN_EVERY {
            return false;
        }
        let failures = outage.failures - outage.reported_failures;
        let down_for_s = now.duration_since(outage.since).as_secs();
        outage.reported_at = now;
        outage.reported_failures = outage.failures;
        warn!(component = self.name, failures, down_for_s, error = %error, "{} still failing: {failures} failures in the last minute", self.name);
        true
    }

    /// Records a success: if the backend was down and has now answered for a second without
    /// failing, says once that it is back, with the number of failures and how long the outage
    /// lasted.
    pub fn success(&self) {
        if !self.down.load(Ordering::Relaxed) {
            return;
        }
        let mut outage = self.state.lock();
        let now = Instant::now();
        match outage.answering_since {
            None => {
                outage.answering_since = Some(now);
                return;
            }
            Some(since) if now.duration_since(since) < RECOVERED_AFTER => return,
            Some(_) => {}
        }
        if !self.down.swap(false, Ordering::Relaxed) {
            return;
        }
        let down_for_ms = outage.since.elapsed().as_millis() as u64;
        info!(
            component = self.name,
            failures = outage.failures,
            down_for_ms,
            "{} recovered after {} failures",
            self.name,
            outage.failures
        );
    }

    /// Backdates the current run of successes, as if a second had passed (tests).
    #[cfg(test)]
    pub(crate) fn settle(&self) {
        let mut outage = self.state.lock();
        if let Some(since) = outage.answering_since {
            outage.answering_since = since.checked_sub(RECOVERED_AFTER).or(Some(since));
        }
    }

    /// Whether the last thing recorded was a failure.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Failures recorded in the current (or, once recovered, the last) outage.
    pub fn failures(&self) -> u64 {
        self.state.lock().failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_state_change() {
        let log = OutageLog::new("kafka");
        log.success();
        assert!(!log.is_down());
        assert!(log.failure(&"all brokers down"));
        for _ in 0..1000 {
            assert!(!log.failure(&"all brokers down"));
        }
        assert_eq!(log.failures(), 1001);
        // One answer in the middle of an outage is not a recovery...
        log.success();
        assert!(log.is_down());
        log.failure(&"all brokers down");
        log.success();
        log.settle();
        assert!(log.is_down(), "a failure restarts the wait");
        // ...answering for a second without failing is.
        log.success();
        log.settle();
        log.success();
        assert!(!log.is_down());
        // A new outage is logged again, and counted from one.
        assert!(log.failure(&"all brokers down"));
        assert_eq!(log.failures(), 1);
    }

    #[test]
    fn a_long_outage_is_reported_again_with_its_count() {
        let log = OutageLog::new("redis");
        assert!(log.failure(&"refused"));
        {
            let mut outage = log.state.lock();
            outage.reported_at = Instant::now()
                .checked_sub(STILL_DOWN_EVERY)
                .unwrap_or(outage.reported_at);
        }
        assert!(log.failure(&"refused"));
        assert!(!log.failure(&"refused"));
        assert_eq!(log.failures(), 3);
    }
}
