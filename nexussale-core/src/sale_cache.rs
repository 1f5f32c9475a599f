//! [`SaleCache`]: per-sale state read on every purchase, written only when a sale comes or goes.
//! The engine keeps its cached definitions in one, the memory store its live sales.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::sale::Sku;

/// The map a [`SaleCache`] bucket swaps (foldhash: the lookup is on every purchase).
pub(crate) type SaleMap<V> = HashMap<Sku, Arc<V>, foldhash::fast::RandomState>;

/// Buckets of a [`SaleCache`] (a power of two): a write copies one bucket, a 256th of the sales.
const BUCKETS: usize = 256;

/// Values by sku, copy-on-write behind `ArcSwap`s: readers take no lock and write no shared
/// counter; a writer copies the one bucket the sku falls in, under a mutex, so creating a sale
/// costs a 256th of the sales held (at 100,000 sales a few hundred entries), not all of them.
pub(crate) struct SaleCache<V> {
    buckets: Box<[ArcSwap<SaleMap<V>>]>,
    writer: Mutex<()>,
}

impl<V> Default for SaleCache<V> {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| ArcSwap::default()).collect(),
            writer: Mutex::new(()),
        }
    }
}

/// FNV-1a of the sku: fixed (the bucket only spreads writes), cheap on a short string.
fn bucket_of(sku: &Sku) -> usize {
    let hash = sku
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash as usize) & (BUCKETS - 1)
}

impl<V> SaleCache<V> {
    fn bucket(&self, sku: &Sku) -> &ArcSwap<SaleMap<V>> {
        &self.buckets[bucket_of(sku)]
    }

    /// Runs `read` on the sale's value in place (no reference count touched).
    pub(crate) fn read<R>(&self, sku: &Sku, read: impl FnOnce(&V) -> R) -> Option<R> {
        self.bucket(sku).load().get(sku).map(|value| read(value))
    }

    /// The sale's value.
    pub(crate) fn get(&self, sku: &Sku) -> Option<Arc<V>> {
        self.bucket(sku).load().get(sku).map(Arc::clone)
    }

    /// Whether the sale is held.
    pub(crate) fn contains(&self, sku: &Sku) -> bool {
        self.bucket(sku).load().contains_key(sku)
    }

    /// How many sales are held.
    pub(crate) fn len(&self) -> usize {
        self.buckets.iter().map(|bucket| bucket.load().len()).sum()
    }

    /// Every value, in no particular order.
    pub(crate) fn values(&self) -> Vec<Arc<V>> {
        self.buckets
            .iter()
            .flat_map(|bucket| bucket.load().values().map(Arc::clone).collect::<Vec<_>>())
            .collect()
    }

    /// `visit` on every sale and its value, in no particular order, without copying either.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(&Sku, &V)) {
        for bucket in self.buckets.iter() {
            for (sku, value) in bucket.load().iter() {
                visit(sku, value);
            }
        }
    }

    /// Replaces the sku's bucket with `change` applied to a copy of it; answers what `change`
    /// did. `change` must touch `sku` only.
    fn change<R>(&self, sku: &Sku, change: impl FnOnce(&mut SaleMap<V>) -> R) -> R {
        let _writer = self.writer.lock();
        let bucket = self.bucket(sku);
        let mut map = SaleMap::clone(&bucket.load());
        let outcome = change(&mut map);
        bucket.store(Arc::new(map));
        outcome
    }

    /// Inserts `make()` unless the sale is held; answers whether it inserted.
    pub(crate) fn insert_new(&self, sku: &Sku, make: impl FnOnce() -> V) -> bool {
        if self.contains(sku) {
            return false;
        }
        self.change(sku, |map| match map.entry(sku.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(Arc::new(make()));
                true
            }
        })
    }

    /// Holds `value` for the sale, replacing what it held.
    pub(crate) fn insert(&self, sku: &Sku, value: Arc<V>) {
        self.change(sku, |map| map.insert(sku.clone(), value));
    }

    /// Drops every sale.
    pub(crate) fn clear(&self) {
        let _writer = self.writer.lock();
        for bucket in self.buckets.iter() {
            bucket.store(Arc::default());
        }
    }

    /// The sale's value, made and inserted by `make` when absent (the first writer wins).
    pub(crate) fn get_or_insert_with(&self, sku: &Sku, make: impl FnOnce() -> V) -> Arc<V> {
        if let Some(value) = self.get(sku) {
            return value;
        }
        self.change(sku, |map| {
            Arc::clone(map.entry(sku.clone()).or_insert_with(|| Arc::new(make())))
        })
    }

    /// Drops the sale; answers its value.
    pub(crate) fn remove(&self, sku: &Sku) -> Option<Arc<V>> {
        if !self.contains(sku) {
            return None;
        }
        self.change(sku, |map| map.remove(sku))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_writer_wins_and_readers_see_every_change() {
        let cache = SaleCache::<u32>::default();
        let sku = Sku::new("ps5").unwrap();
        assert_eq!(cache.read(&sku, |n| *n), None);
        assert_eq!(*cache.get_or_insert_with(&sku, || 1), 1);
        assert_eq!(*cache.get_or_insert_with(&sku, || 2), 1);
        assert_eq!(cache.read(&sku, |n| n + 1), Some(2));
        assert_eq!(cache.len(), 1);
        cache.insert(&Sku::new("xbox").unwrap(), Arc::new(7));
        assert!(!cache.insert_new(&Sku::new("xbox").unwrap(), || 8));
        assert!(cache.insert_new(&Sku::new("wii").unwrap(), || 9));
        let mut values: Vec<u32> = cache.values().iter().map(|n| **n).collect();
        values.sort_unstable();
        assert_eq!(values, [1, 7, 9]);
        assert_eq!(cache.remove(&sku).as_deref(), Some(&1));
        assert_eq!(cache.remove(&sku), None);
        assert!(!cache.contains(&sku));
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn concurrent_first_uses_share_one_value() {
        let cache = Arc::new(SaleCache::<usize>::default());
        let sku = Sku::new("hot").unwrap();
        let made: Vec<Arc<usize>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (cache, sku) = (&cache, &sku);
                    scope.spawn(move || cache.get_or_insert_with(sku, || i))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(made.windows(2).all(|pair| Arc::ptr_eq(&pair[0], &pair[1])));
    }
}
