//! [`UnknownSkus`]: skus neither the stock store nor the repository knew, remembered a moment so
//! a flood of purchases for a sale that does not exist costs one repository read a second.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::sale::Sku;

/// How many unknown skus are remembered at most.
const REMEMBERED: usize = 10_000;
/// How long an unknown sku is remembered (milliseconds).
const REMEMBERED_FOR_MS: i64 = 1000;

/// Unknown skus and until when (Unix milliseconds) they are taken as unknown.
#[derive(Default)]
pub(super) struct UnknownSkus(Mutex<HashMap<Sku, i64>>);

impl UnknownSkus {
    /// Whether `sku` was found unknown less than a second before `now_ms`.
    pub(super) fn holds(&self, sku: &Sku, now_ms: i64) -> bool {
        self.0.lock().get(sku).is_some_and(|&until| now_ms < until)
    }

    /// Remembers `sku` as unknown from `now_ms`. Full, it drops what has expired, and everything
    /// when that is not enough: made-up skus cannot grow it without bound.
    pub(super) fn remember(&self, sku: &Sku, now_ms: i64) {
        let mut unknown = self.0.lock();
        if unknown.len() >= REMEMBERED {
            unknown.retain(|_, &mut until| now_ms < until);
            if unknown.len() >= REMEMBERED {
                unknown.clear();
            }
        }
        unknown.insert(sku.clone(), now_ms + REMEMBERED_FOR_MS);
    }

    /// Forgets `sku` (it has just been created).
    pub(super) fn forget(&self, sku: &Sku) {
        self.0.lock().remove(sku);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_sku_is_remembered_for_a_second_and_the_memory_stays_bounded() {
        let unknown = UnknownSkus::default();
        let sku = Sku::new("nope").unwrap();
        unknown.remember(&sku, 0);
        assert!(unknown.holds(&sku, 999));
        assert!(!unknown.holds(&sku, 1000));
        unknown.forget(&sku);
        assert!(!unknown.holds(&sku, 1));
        for n in 0..REMEMBERED + 10 {
            unknown.remember(&Sku::new(format!("made-up-{n}")).unwrap(), 5);
        }
        assert!(unknown.0.lock().len() <= REMEMBERED);
    }
}
