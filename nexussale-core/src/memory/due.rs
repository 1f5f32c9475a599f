//! [`DueIndex`]: which sales of a memory store hold reservations coming due, by next expiry, so
//! that the sweeper visits those and no idle sale.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use crate::ident::Sku;

/// Not filed: [`Filed`] holds this while the sale has no entry.
const NOT_FILED: i64 = i64::MAX;

/// The instant, in µs since the epoch, a sale is filed under; kept on the sale so a reservation
/// reads one atomic instead of the index's lock. It only ever errs low: the entry may be earlier
/// than the sale's earliest expiry (a confirmed or released reservation), never later.
#[derive(Debug)]
pub(super) struct Filed(AtomicI64);

impl Default for Filed {
    fn default() -> Self {
        Self(AtomicI64::new(NOT_FILED))
    }
}

/// Sales by the earliest expiry they may hold. Written when a sale's earliest expiry moves
/// earlier (a sale's first reservation, a shorter window) and when the sweeper refiles a sale it
/// swept; the purchase path otherwise only reads its sale's [`Filed`].
#[derive(Debug, Default)]
pub(super) struct DueIndex {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_time: BTreeSet<(i64, Sku)>,
    by_sku: HashMap<Sku, i64>,
}

impl Entries {
    fn remove(&mut self, sku: &Sku) {
        if let Some(at) = self.by_sku.remove(sku) {
            self.by_time.remove(&(at, sku.clone()));
        }
    }

    fn insert(&mut self, sku: &Sku, at: i64) {
        self.by_sku.insert(sku.clone(), at);
        self.by_time.insert((at, sku.clone()));
    }
}

impl DueIndex {
    /// A reservation of `sku` expiring `at` was made (after it was written where
    /// [`refile`](Self::refile)'s `next` looks): files the sale under `at` if that is earlier.
    pub(super) fn note(&self, sku: &Sku, filed: &Filed, at: DateTime<Utc>) {
        let at = at.timestamp_micros();
        // SeqCst pairs with `refile`'s store: either refile's read of the sale saw this
        // reservation, or this load sees refile's `NOT_FILED` and files it.
        if at >= filed.0.load(Ordering::SeqCst) {
            return;
        }
        let mut entries = self.inner.lock();
        match entries.by_sku.get(sku) {
            Some(&current) if current <= at => {}
            _ => {
                entries.remove(sku);
                entries.insert(sku, at);
            }
        }
        filed.0.fetch_min(at, Ordering::SeqCst);
    }

    /// Files `sku` again under `next()`, its earliest expiry now (or nowhere, when it holds no
    /// reservation): called by the sweeper once it left nothing due in the sale.
    pub(super) fn refile(
        &self,
        sku: &Sku,
        filed: &Filed,
        next: impl FnOnce() -> Option<DateTime<Utc>>,
    ) {
        let mut entries = self.inner.lock();
        entries.remove(sku);
        filed.0.store(NOT_FILED, Ordering::SeqCst);
        if let Some(at) = next() {
            let at = at.timestamp_micros();
            entries.insert(sku, at);
            filed.0.fetch_min(at, Ordering::SeqCst);
        }
    }

    /// Drops every entry.
    pub(super) fn clear(&self) {
        *self.inner.lock() = Entries::default();
    }

    /// Up to `limit` sales filed at or before `now`, soonest first.
    pub(super) fn due(&self, now: DateTime<Utc>, limit: usize) -> Vec<Sku> {
        let now = now.timestamp_micros();
        self.inner
            .lock()
            .by_time
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, sku)| sku.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn files_the_earliest_and_refiles_when_swept() {
        let index = DueIndex::default();
        let (a, b) = (Sku::new("a").unwrap(), Sku::new("b").unwrap());
        let (filed_a, filed_b) = (Filed::default(), Filed::default());
        let t0 = Utc::now();
        let at = |secs| t0 + TimeDelta::seconds(secs);
        index.note(&a, &filed_a, at(10));
        index.note(&a, &filed_a, at(20));
        index.note(&b, &filed_b, at(5));
        assert!(index.due(at(4), 10).is_empty());
        assert_eq!(index.due(at(10), 10), [b.clone(), a.clone()]);
        assert_eq!(index.due(at(10), 1), vec![b.clone()]);
        index.refile(&b, &filed_b, || None);
        index.refile(&a, &filed_a, || Some(at(20)));
        assert!(index.due(at(19), 10).is_empty());
        assert_eq!(index.due(at(20), 10), vec![a.clone()]);
        // A later reservation moves nothing; an earlier one files the sale earlier.
        index.note(&a, &filed_a, at(30));
        assert!(index.due(at(19), 10).is_empty());
        index.note(&a, &filed_a, at(15));
        assert_eq!(index.due(at(15), 10), vec![a.clone()]);
        index.refile(&a, &filed_a, || None);
        assert!(index.due(at(100), 10).is_empty());
    }
}
