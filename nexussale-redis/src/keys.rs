//! The key layout. Every key of one stock shard shares one hash tag, so a script that touches
//! them all runs on one Redis Cluster node.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{prefix}:sales` | set | every sku with a sale |
//! | `{prefix}:{{sku}:{n}}:stock` | hash | `available`, `reserved`, `sold`, `transit`, `limit`, `start`, `end` (µs since the epoch, or empty), `shards`, `layout` (2: the key layout it was written in), `node` (the replication id of the primary that writes it), `seq` (advanced by every script that writes it), `born` (its first `seq`, at creation or its last rebuild), `regressed` (while it waits for a rebuild); shard 0 also `def`, the sale's definition as JSON |
//! | `{prefix}:{{sku}:0}:rebuild` | string | the process rebuilding the sale, with a lease (PX) |
//! | `{prefix}:{{sku}:{n}}:held` | hash | user → units the user holds (reserved or sold) |
//! | `{prefix}:{{sku}:{n}}:keys` | hash | user `\n` idempotency key → order id (16 bytes) |
//! | `{prefix}:{{sku}:{n}}:r:{ms}` | hash | a bucket: order id (16 bytes) → state letter + the reservation's record (`lua/records.lua`), for the orders whose id holds millisecond `ms` (a UUID v7's first 48 bits): the reservations of one millisecond share one small hash, which Redis keeps compact (a listpack) |
//! | `{prefix}:{{sku}:{n}}:buckets` | sorted set | each bucket's `ms`, scored no later than the first instant the sweeper has work in it: its earliest held expiry, or the earliest instant it is to forget a settled reservation (its expiry plus the retention), in µs |
//! | `{prefix}:due` | sorted set | each shard (`n:sku`) that may hold reservations, scored by the earliest expiry it may hold or the earliest instant it is to forget a settled one (µs): what the sweeper visits. Not kept on a Redis Cluster (its scripts cannot reach another slot) |
//!
//! `n` is the stock shard, `0..shards`. In the sku, `%`, `{` and `}` are percent-encoded, so a sku
//! cannot end the hash tag early or collide with another sku.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use nexussale_core::{OrderId, Sku};

pub(crate) const TAG_UNSAFE: &AsciiSet = &CONTROLS.add(b'%').add(b'{').add(b'}');

/// The keys of one stock shard of one sale, and the highest sequence (`guard.lua`) this process
/// has seen the shard answer; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct ShardKeys {
    pub(crate) stock: String,
    pub(crate) held: String,
    pub(crate) keys: String,
    /// The prefix of the shard's buckets (`…:r:`), followed by a bucket's `ms`.
    pub(crate) res: String,
    pub(crate) buckets: String,
    /// The keys the layout before buckets kept reservations in, space-separated: a rebuild
    /// wipes them.
    pub(crate) legacy: String,
    /// The due index (`{prefix}:due`), and this shard's member in it.
    pub(crate) due: String,
    pub(crate) due_member: String,
    /// The prefix of the answers `expire.lua` keeps (`…:x:`), followed by a call's token.
    answers: String,
    seen: Arc<AtomicU64>,
}

impl PartialEq for ShardKeys {
    fn eq(&self, other: &Self) -> bool {
        self.stock == other.stock
    }
}

impl Eq for ShardKeys {}

impl ShardKeys {
    pub(crate) fn new(prefix: &str, sku: &Sku, shard: usize) -> Self {
        let due_member = due_member(sku, shard);
        let sku = utf8_percent_encode(sku.as_str(), TAG_UNSAFE);
        let base = format!("{prefix}:{{{sku}:{shard}}}");
        Self {
            due: due_key(prefix),
            due_member,
            stock: format!("{base}:stock"),
            held: format!("{base}:held"),
            keys: format!("{base}:keys"),
            res: format!("{base}:r:"),
            buckets: format!("{base}:buckets"),
            legacy: format!("{base}:res {base}:expiry {base}:settled"),
            answers: format!("{base}:x:"),
            seen: Arc::default(),
        }
    }

    /// Where `expire.lua` keeps the answer of the call named `token` (in the shard's slot).
    pub(crate) fn answer(&self, token: uuid::Uuid) -> String {
        format!("{}{}", self.answers, token.simple())
    }

    /// The highest sequence the shard answered this process so far.
    pub(crate) fn highest_seen(&self) -> u64 {
        self.seen.load(Ordering::Acquire)
    }

    /// The shard answered `seq`.
    pub(crate) fn seen(&self, seq: u64) {
        self.seen.fetch_max(seq, Ordering::AcqRel);
    }

    /// The bucket that holds `order_id`'s reservation (`lua/records.lua`).
    pub(crate) fn bucket(&self, order_id: OrderId) -> String {
        format!("{}{}", self.res, bucket_of(order_id))
    }

    /// Every key but the buckets, for deletion.
    #[cfg(feature = "testkit")]
    pub(crate) fn fixed(&self) -> [&str; 4] {
        [&self.stock, &self.held, &self.keys, &self.buckets]
    }
}

/// An order id as the scripts store it: its 16 bytes.
pub(crate) fn id_bytes(order_id: OrderId) -> [u8; 16] {
    *order_id.as_uuid().as_bytes()
}

/// The bucket of an order id: the millisecond in its first 48 bits, as `lua/records.lua`'s
/// `bucket_of` writes it.
pub(crate) fn bucket_of(order_id: OrderId) -> u64 {
    id_bytes(order_id)[..6]
        .iter()
        .fold(0, |ms, &byte| ms << 8 | u64::from(byte))
}

/// The lock one process takes to rebuild a sale (`lock.lua`): beside shard 0, in its slot.
pub(crate) fn rebuild_lock_key(prefix: &str, sku: &Sku) -> String {
    let sku = utf8_percent_encode(sku.as_str(), TAG_UNSAFE);
    format!("{prefix}:{{{sku}:0}}:rebuild")
}

/// The Redis Cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the text between the
/// first `{` and the next `}`, when not empty) or of the whole key, modulo 16384.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) fn cluster_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = key
        .find('{')
        .and_then(|open| {
            let close = open + 1 + key[open + 1..].find('}')?;
            (close > open + 1).then(|| &bytes[open + 1..close])
        })
        .unwrap_or(bytes);
    let crc = tagged.iter().fold(0u16, |crc, &byte| {
        (0..8).fold(crc ^ (u16::from(byte) << 8), |crc, _| {
            if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            }
        })
    });
    crc % 16384
}

/// The due index: see the table above.
pub(crate) fn due_key(prefix: &str) -> String {
    format!("{prefix}:due")
}

/// A shard's member of the due index: `n:sku`.
fn due_member(sku: &Sku, shard: usize) -> String {
    format!("{shard}:{sku}")
}

/// The sku of a due index member.
pub(crate) fn due_sku(member: &str) -> Option<&str> {
    member
        .split_once(':')
        .filter(|(shard, _)| shard.bytes().all(|b| b.is_ascii_digit()))
        .map(|(_, sku)| sku)
}

/// The set of every sku with a sale.
pub(crate) fn sales_key(prefix: &str) -> String {
    format!("{prefix}:sales")
}

/// The shard that holds `user`'s reservations, limits and idempotency keys: a fixed hash
/// (FNV-1a), so every process agrees.
pub(crate) fn home_shard(user: &str, shards: usize) -> usize {
    let hash = user.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % shards.max(1) as u64) as usize
}

/// The field of the `keys` hash for one user's idempotency key. Neither may hold a control
/// character, so the newline cannot be forged.
pub(crate) fn key_field(user: &str, key: &str) -> String {
    format!("{user}\n{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot-deciding part of a key, as Redis Cluster finds it.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        &key[open + 1..close]
    }

    /// A bucket is the millisecond an engine's order id was made in, so one millisecond's
    /// reservations share one.
    #[test]
    fn an_order_ids_bucket_is_its_millisecond() {
        let before = chrono::Utc::now().timestamp_millis();
        let id = OrderId::new();
        let after = chrono::Utc::now().timestamp_millis();
        let ms = i64::try_from(bucket_of(id)).unwrap();
        assert!(
            (before..=after).contains(&ms),
            "{before} <= {ms} <= {after}"
        );
        let keys = ShardKeys::new("ns", &Sku::new("ps5").unwrap(), 2);
        assert_eq!(keys.bucket(id), format!("ns:{{ps5:2}}:r:{ms}"));
    }

    #[test]
    fn one_shard_shares_one_tag_and_shards_differ() {
        let sku = Sku::new("we{ir}d%sku").unwrap();
        let zero = ShardKeys::new("ns", &sku, 0);
        let bucket = zero.bucket(OrderId::new());
        let mut all = zero.fixed().to_vec();
        all.push(&bucket);
        all.extend(zero.legacy.split(' '));
        let tags: Vec<_> = all.iter().map(|key| hash_tag(key)).collect();
        assert!(
            tags.iter().all(|tag| *tag == "we%7Bir%7Dd%25sku:0"),
            "{tags:?}"
        );
        assert_ne!(
            hash_tag(&ShardKeys::new("ns", &sku, 1).stock),
            hash_tag(&zero.stock)
        );
        // Distinct skus never share keys, whatever they contain.
        let other = Sku::new("we%7Bir%7Dd%25sku").unwrap();
        assert_ne!(ShardKeys::new("ns", &other, 0), zero);
    }

    #[test]
    fn due_members_give_their_sku_back() {
        let sku = Sku::new("we:ir{d}").unwrap();
        let keys = ShardKeys::new("ns", &sku, 12);
        assert_eq!(keys.due_member, "12:we:ir{d}");
        assert_eq!(due_sku(&keys.due_member), Some("we:ir{d}"));
        assert_eq!(due_sku("x:ps5"), None);
        assert_eq!(keys.due, "ns:due");
    }

    #[test]
    fn cluster_slots_are_redis_own() {
        // As `CLUSTER KEYSLOT` answers them.
        assert_eq!(cluster_slot("foo"), 12182);
        assert_eq!(cluster_slot("bar"), 5061);
        assert_eq!(cluster_slot("{foo}.anything"), 12182);
        assert_ne!(cluster_slot("{}foo"), cluster_slot("foo"));
    }

    #[test]
    fn home_shard_is_stable_and_spread() {
        assert_eq!(home_shard("ann", 1), 0);
        assert_eq!(home_shard("ann", 4), home_shard("ann", 4));
        let mut seen = [0usize; 4];
        for i in 0..4000 {
            seen[home_shard(&format!("user-{i}"), 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }
}
