//! Where the engine reads the time, so tests can move it.

use std::fmt::Debug;
use std::sync::Arc;

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use parking_lot::Mutex;

/// A source of the current instant.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => utc_from_unix(since.as_secs() as i64, since.subsec_nanos()),
            Err(_) => Utc::now(),
        }
    }
}

/// The days from 0001-01-01 (chrono's day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAY: i64 = 719_163;

/// The instant `secs` seconds and `nanos` nanoseconds after the Unix epoch.
///
/// Same as `DateTime::from_timestamp`, but the calendar date of the last call is cached per
/// thread: turning a day count into a date is most of chrono's cost, and every purchase asks for
/// "now" and "now + TTL", nearly always on a day it has seen.
pub(crate) fn utc_from_unix(secs: i64, nanos: u32) -> DateTime<Utc> {
    thread_local! {
        static LAST_DAY: Cell<Option<(i64, NaiveDate)>> = const { Cell::new(None) };
    }
    let day = secs.div_euclid(86_400);
    let date = LAST_DAY.with(|last| match last.get() {
        Some((cached, date)) if cached == day => Some(date),
        _ => {
            let date = i32::try_from(day + UNIX_EPOCH_DAY)
                .ok()
                .and_then(NaiveDate::from_num_days_from_ce_opt)?;
            last.set(Some((day, date)));
            Some(date)
        }
    });
    let time = NaiveTime::from_num_seconds_from_midnight_opt(secs.rem_euclid(86_400) as u32, nanos);
    match (date, time) {
        (Some(date), Some(time)) => date.and_time(time).and_utc(),
        // Out of chrono's range: saturate as chrono's own arithmetic would refuse to.
        _ => DateTime::from_timestamp(secs, nanos).unwrap_or(if secs < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        }),
    }
}

/// A clock that moves only when told to, for tests. Clones share the instant.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut now = self.now.lock();
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock() = now;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_from_unix_matches_chrono() {
        for secs in [
            0,
            1,
            86_399,
            86_400,
            1_700_000_000,
            1_800_000_123,
            -1,
            -86_401,
            253_402_300_799,
        ] {
            for nanos in [0, 1, 999_999_999] {
                assert_eq!(
                    utc_from_unix(secs, nanos),
                    DateTime::from_timestamp(secs, nanos).unwrap(),
                    "{secs}.{nanos}"
                );
            }
        }
        let now = SystemClock.now();
        assert!((now - Utc::now()).num_seconds().abs() < 5);
    }
}
