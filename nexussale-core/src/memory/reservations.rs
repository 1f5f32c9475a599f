//! The reservation records of one sale, sharded by the low bits of the order id.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use super::padded::Padded;
use crate::ident::{IdempotencyKey, Sku, UserId};
use crate::order::OrderId;
use crate::reservation::{Reservation, ReservationState};

/// The most shards a table has (a power of two).
const MAX_SHARDS: usize = 64;

/// Expected records per shard: a table has one shard per this many (a power of two, at least
/// one, at most [`MAX_SHARDS`]), so a sale costs memory in proportion to its stock, not 64 padded
/// locks and maps from its first purchase (a 12-unit sale held ~30 KB; 100,000 of them, 3.8 GB).
const RECORDS_PER_SHARD: usize = 256;

/// Shards for a table expecting `capacity` records (also the sale's per-buyer maps').
pub(super) fn shards_for(capacity: usize) -> usize {
    (capacity / RECORDS_PER_SHARD)
        .next_power_of_two()
        .clamp(1, MAX_SHARDS)
}

/// A stored reservation, kept small: the sku and the id are known from where it is stored, and
/// the rare extras sit behind one pointer.
pub(super) struct Held {
    pub(super) user: UserId,
    pub(super) quantity: u32,
    pub(super) state: ReservationState,
    pub(super) created_at: DateTime<Utc>,
    pub(super) expires_at: DateTime<Utc>,
    extra: Option<Box<Extra>>,
}

struct Extra {
    idempotency_key: Option<IdempotencyKey>,
    remark: Option<String>,
}

impl Held {
    pub(super) fn new(reservation: &Reservation) -> Self {
        let extra =
            (reservation.idempotency_key.is_some() || reservation.remark.is_some()).then(|| {
                Box::new(Extra {
                    idempotency_key: reservation.idempotency_key.clone(),
                    remark: reservation.remark.clone(),
                })
            });
        Self {
            user: reservation.user.clone(),
            quantity: reservation.quantity,
            state: reservation.state,
            created_at: reservation.created_at,
            expires_at: reservation.expires_at,
            extra,
        }
    }

    pub(super) fn idempotency_key(&self) -> Option<&IdempotencyKey> {
        self.extra.as_ref()?.idempotency_key.as_ref()
    }

    pub(super) fn to_reservation(&self, sku: &Sku, order_id: OrderId) -> Reservation {
        let (idempotency_key, remark) = match &self.extra {
            Some(extra) => (extra.idempotency_key.clone(), extra.remark.clone()),
            None => (None, None),
        };
        Reservation {
            order_id,
            sku: sku.clone(),
            user: self.user.clone(),
            quantity: self.quantity,
            idempotency_key,
            remark,
            created_at: self.created_at,
            expires_at: self.expires_at,
            state: self.state,
        }
    }
}

type Shard = HashMap<OrderId, Held, foldhash::fast::RandomState>;

/// Reservation records by order id. The shard is the id's low bits, which
/// [`OrderId::new`] keeps constant per thread: a thread's inserts land in one shard, whose lock
/// and memory stay in that core's cache.
pub(super) struct ReservationTable {
    shards: Box<[Padded<Mutex<Shard>>]>,
}

impl ReservationTable {
    /// A table expecting about `capacity` records.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        let shards = shards_for(capacity);
        // With a thread per core, a few shards take all the inserts (an id's shard is its
        // thread's): size each for a share.
        let per_shard = capacity / shards.min(4);
        Self {
            shards: (0..shards)
                .map(|_| {
                    Padded(Mutex::new(Shard::with_capacity_and_hasher(
                        per_shard,
                        Default::default(),
                    )))
                })
                .collect(),
        }
    }

    fn shard(&self, order_id: OrderId) -> &Mutex<Shard> {
        // The low bits are the creating thread's hint; the count is a power of two.
        &self.shards[order_id.as_uuid().as_u128() as usize & (self.shards.len() - 1)]
    }

    pub(super) fn insert(&self, order_id: OrderId, held: Held) {
        self.shard(order_id).lock().insert(order_id, held);
    }

    pub(super) fn remove(&self, order_id: OrderId) -> Option<Held> {
        self.shard(order_id).lock().remove(&order_id)
    }

    /// `f` on the record, if there is one.
    pub(super) fn with<R>(&self, order_id: OrderId, f: impl FnOnce(&Held) -> R) -> Option<R> {
        self.shard(order_id).lock().get(&order_id).map(f)
    }

    /// `f` on the record, to change it, if there is one; nothing else touches it meanwhile.
    pub(super) fn with_mut<R>(
        &self,
        order_id: OrderId,
        f: impl FnOnce(&mut Held) -> R,
    ) -> Option<R> {
        self.shard(order_id).lock().get_mut(&order_id).map(f)
    }
}
