//! [`RebuildLeases`]: the rebuild lock of a stock store whose state lives in one process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::sale::Sku;

/// Who rebuilds which sale, and until when: what
/// [`StockStore::lock_rebuild`](crate::StockStore::lock_rebuild) and
/// [`unlock_rebuild`](crate::StockStore::unlock_rebuild) need of a store that keeps its state in
/// this process (the memory store, or your own). A store shared by several processes keeps its
/// lock where they all see it instead, as the Redis store does. Clones share the leases.
///
/// ```
/// use std::time::Duration;
/// use nexussale_core::{RebuildLeases, Sku};
///
/// let leases = RebuildLeases::default();
/// let sku = Sku::new("ps5").unwrap();
/// assert!(leases.lock(&sku, "a", Duration::from_secs(30)));
/// assert!(!leases.lock(&sku, "b", Duration::from_secs(30)));
/// assert!(leases.lock(&sku, "a", Duration::from_secs(30))); // renewed
/// leases.unlock(&sku, "a");
/// assert!(leases.lock(&sku, "b", Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, Default)]
pub struct RebuildLeases {
    held: Arc<Mutex<HashMap<Sku, (String, Instant)>>>,
}

impl RebuildLeases {
    /// Takes the lease of `sku` for `holder`, or renews it when `holder` has it: answers
    /// whether `holder` has it now. A lease not renewed within `lease` lapses.
    pub fn lock(&self, sku: &Sku, holder: &str, lease: Duration) -> bool {
        let now = Instant::now();
        let mut held = self.held.lock();
        match held.get(sku) {
            Some((other, until)) if other != holder && *until > now => false,
            _ => {
                held.insert(sku.clone(), (holder.to_owned(), now + lease));
                true
            }
        }
    }

    /// Gives the lease of `sku` back, if `holder` has it.
    pub fn unlock(&self, sku: &Sku, holder: &str) {
        let mut held = self.held.lock();
        if held.get(sku).is_some_and(|(other, _)| other == holder) {
            held.remove(sku);
        }
    }
}
