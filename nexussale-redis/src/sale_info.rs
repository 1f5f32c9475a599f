//! [`SaleInfo`]: a sale as the store needs it on every call — its definition and its shards'
//! keys — and how its units and buyers spread over the shards.

use nexussale_core::Sale;

use crate::config::MAX_SHARDS;
use crate::keys::{ShardKeys, home_shard};
use crate::scripts::ShardSetup;

#[derive(Debug)]
pub(crate) struct SaleInfo {
    pub(crate) sale: Sale,
    pub(crate) shards: Vec<ShardKeys>,
}

impl SaleInfo {
    pub(crate) fn new(prefix: &str, sale: Sale, shards: usize) -> Self {
        let shards = (0..shards.clamp(1, MAX_SHARDS))
            .map(|shard| ShardKeys::new(prefix, &sale.sku, shard))
            .collect();
        Self { sale, shards }
    }

    /// The shard holding `user`'s reservations and idempotency keys.
    pub(crate) fn home(&self, user: &str) -> usize {
        home_shard(user, self.shards.len())
    }

    /// The units each shard starts with: an even split, the remainder on the first shards.
    pub(crate) fn portion(&self, total: u64, shard: usize) -> u64 {
        let n = self.shards.len() as u64;
        total / n + u64::from((shard as u64) < total % n)
    }

    /// What `shard` is set up with when the sale has `available` units in all; shard 0 holds
    /// the `definition`.
    pub(crate) fn setup<'a>(
        &self,
        shard: usize,
        available: u64,
        definition: &'a str,
    ) -> ShardSetup<'a> {
        ShardSetup {
            available: self.portion(available, shard),
            per_user_limit: self.sale.per_user_limit,
            starts_at: self.sale.starts_at,
            ends_at: self.sale.ends_at,
            shards: self.shards.len(),
            definition: if shard == 0 { definition } else { "" },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexussale_core::Sku;

    #[test]
    fn units_split_evenly_and_only_shard_zero_holds_the_definition() {
        let info = SaleInfo::new("p", Sale::new(Sku::new("ps5").unwrap(), 10), 4);
        let portions: Vec<u64> = (0..4).map(|shard| info.portion(10, shard)).collect();
        assert_eq!(portions, [3, 3, 2, 2]);
        assert_eq!(info.setup(0, 10, "{def}").definition, "{def}");
        assert_eq!(info.setup(1, 10, "{def}").definition, "");
        assert_eq!(info.setup(3, 10, "{def}").shards, 4);
    }
}
