//! [`SaleCache`]: per-sale state read on every purchase, written only when a sale comes or goes.
//! The engine keeps its cached definitions in one, the memory store its live sales.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::sale::Sku;

/// The map a [`SaleCache`] swaps (foldhash: the lookup is on every purchase).
pub(crate) type SaleMap<V> = HashMap<Sku, Arc<V>, foldhash::fast::RandomState>;

/// Values by sku, copy-on-write behind an `ArcSwap`: readers take no lock and write no shared
/// counter; a writer copies the map under a mutex (sales are few and rarely created).
pub(crate) struct SaleCache<V> {
    map: ArcSwap<SaleMap<V>>,
    writer: Mutex<()>,
}

impl<V> Default for SaleCache<V> {
    fn default() -> Self {
        Self {
            map: ArcSwap::default(),
            writer: Mutex::new(()),
        }
    }
}

impl<V> SaleCache<V> {
    /// Runs `read` on the sale's value in place (no reference count touched).
    pub(crate) fn read<R>(&self, sku: &Sku, read: impl FnOnce(&V) -> R) -> Option<R> {
        self.map.load().get(sku).map(|value| read(value))
    }

    /// The sale's value.
    pub(crate) fn get(&self, sku: &Sku) -> Option<Arc<V>> {
        self.map.load().get(sku).map(Arc::clone)
    }

    /// Whether the sale is held.
    pub(crate) fn contains(&self, sku: &Sku) -> bool {
        self.map.load().contains_key(sku)
    }

    /// How many sales are held.
    pub(crate) fn len(&self) -> usize {
        self.map.load().len()
    }

    /// Every value, in no particular order.
    pub(crate) fn values(&self) -> Vec<Arc<V>> {
        self.map.load().values().map(Arc::clone).collect()
    }

    /// Replaces the map with `change` applied to a copy of it; answers what `change` did.
    pub(crate) fn update<R>(&self, change: impl FnOnce(&mut SaleMap<V>) -> R) -> R {
        let _writer = self.writer.lock();
        let mut map = SaleMap::clone(&self.map.load());
        let outcome = change(&mut map);
        self.map.store(Arc::new(map));
        outcome
    }

    /// The sale's value, made and inserted by `make` when absent (the first writer wins).
    pub(crate) fn get_or_insert_with(&self, sku: &Sku, make: impl FnOnce() -> V) -> Arc<V> {
        if let Some(value) = self.get(sku) {
            return value;
        }
        self.update(|map| Arc::clone(map.entry(sku.clone()).or_insert_with(|| Arc::new(make()))))
    }

    /// Drops the sale; answers its value.
    pub(crate) fn remove(&self, sku: &Sku) -> Option<Arc<V>> {
        if !self.contains(sku) {
            return None;
        }
        self.update(|map| map.remove(sku))
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
        cache.update(|map| map.insert(Sku::new("xbox").unwrap(), Arc::new(7)));
        let mut values: Vec<u32> = cache.values().iter().map(|n| **n).collect();
        values.sort_unstable();
        assert_eq!(values, [1, 7]);
        assert_eq!(cache.remove(&sku).as_deref(), Some(&1));
        assert_eq!(cache.remove(&sku), None);
        assert!(!cache.contains(&sku));
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
