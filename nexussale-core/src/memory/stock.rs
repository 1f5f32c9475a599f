//! [`MemoryStockStore`]: stock in process memory, lock-free on the hot path.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dashmap::mapref::entry::Entry;
use parking_lot::Mutex;

use super::due::{DueIndex, Filed};
use super::padded::Padded;
use super::reservations::{Held, ReservationTable};
use crate::error::{Error, Result};
use crate::ident::{IdempotencyKey, UserId};
use crate::lease::RebuildLeases;
use crate::order::{Order, OrderId};
use crate::reservation::{
    ConfirmOutcome, ReleaseOutcome, ReleaseReason, Reservation, ReservationState, ReserveOutcome,
    ReserveRequest,
};
use crate::sale::{EarlyEnd, Sale, SaleState, Sku, StockSnapshot};
use crate::sale_cache::SaleCache;
use crate::stock::{DEFAULT_SETTLED_RETENTION, StockStore};

/// A [`StockStore`] in process memory: the embedded default and the reference behaviour.
///
/// No global lock: each sale's counters are atomics, and its users, reservations and idempotency
/// keys live in sharded concurrent maps, so concurrent purchases of one hot sale only meet on one
/// compare-and-swap. The expiry index is ordered by instant and sharded by thread, each shard
/// behind its own short lock. Clones share the state.
///
/// A settled reservation is forgotten [`DEFAULT_SETTLED_RETENTION`] after its expiry, unless
/// [`with_retention`](Self::with_retention) says otherwise (see the [`StockStore`] contract).
#[derive(Clone)]
pub struct MemoryStockStore {
    /// Read on every call, written only when a sale is created or restored.
    sales: Arc<SaleCache<SaleSlot>>,
    /// The sales holding reservations, by their next expiry: what the sweeper visits.
    due: Arc<DueIndex>,
    leases: RebuildLeases,
    retention: Duration,
}

impl Default for MemoryStockStore {
    fn default() -> Self {
        Self {
            sales: Arc::default(),
            due: Arc::default(),
            leases: RebuildLeases::default(),
            retention: DEFAULT_SETTLED_RETENTION,
        }
    }
}

/// Concurrent maps keyed by client-chosen text: foldhash is several times faster than SipHash
/// and, seeded per process, still resists hash flooding.
type DashMap<K, V> = dashmap::DashMap<K, V, foldhash::fast::RandomState>;

/// A map of `capacity` entries at first, sharded like the sale's reservation table for `expected`
/// (DashMap's default is four shards per core, each a padded lock: ~32 KB per sale on a 64-core
/// machine, from its first purchase).
fn map<K: Eq + std::hash::Hash, V>(capacity: usize, expected: usize) -> DashMap<K, V> {
    // DashMap wants at least two shards.
    let shards = super::reservations::shards_for(expected).max(2);
    DashMap::with_capacity_and_hasher_and_shard_amount(
        capacity,
        foldhash::fast::RandomState::default(),
        shards,
    )
}

/// Shards of the expiry index (a power of two).
const EXPIRY_SHARDS: usize = 16;

type Due = (DateTime<Utc>, OrderId);

/// Inserts `entry` into a deque kept sorted; entries arrive almost in order, so it is nearly
/// always a push at the back.
fn insert_sorted(deque: &mut VecDeque<Due>, entry: Due) {
    match deque.back() {
        Some(last) if *last > entry => {
            let at = deque.partition_point(|due| *due < entry);
            deque.insert(at, entry);
        }
        _ => deque.push_back(entry),
    }
}

/// Reservations ordered by expiry, sharded by thread so concurrent purchases rarely meet.
///
/// Each shard is a deque kept sorted: expiries arrive almost in order (one TTL per sale, the
/// clock moving forward), so an insert is nearly always a push at the back. Entries are not
/// removed when a reservation is confirmed or released; [`due`](Self::due) drops them when
/// their time comes, after checking the reservation's state.
struct ExpiryIndex {
    shards: Box<[Padded<Mutex<VecDeque<Due>>>]>,
}

impl ExpiryIndex {
    /// An index for about `capacity` reservations: sharded like the reservation table, up to
    /// [`EXPIRY_SHARDS`].
    fn new(capacity: usize) -> Self {
        let shards = super::reservations::shards_for(capacity).min(EXPIRY_SHARDS);
        Self {
            shards: (0..shards)
                .map(|_| Padded(Mutex::new(VecDeque::new())))
                .collect(),
        }
    }

    fn insert(&self, expires_at: DateTime<Utc>, order_id: OrderId) {
        // Each thread keeps to one shard, so a shard's lock and its deque's tail stay in one
        // core's cache instead of moving between cores on every purchase.
        thread_local! {
            static SHARD: usize = fastrand::usize(..EXPIRY_SHARDS);
        }
        // The count is a power of two.
        let shard = &self.shards[SHARD.with(|shard| *shard) & (self.shards.len() - 1)];
        insert_sorted(&mut shard.lock(), (expires_at, order_id));
    }

    /// Up to `limit` entries at or before `now` for which `live` holds, soonest first; entries
    /// for which it does not are dropped on the way.
    fn due(&self, now: DateTime<Utc>, limit: usize, live: impl Fn(OrderId) -> bool) -> Vec<Due> {
        let mut due = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock();
            while shard
                .front()
                .is_some_and(|(at, id)| *at <= now && !live(*id))
            {
                shard.pop_front();
            }
            due.extend(
                shard
                    .iter()
                    .take_while(|(at, _)| *at <= now)
                    .filter(|(_, id)| live(*id))
                    .take(limit)
                    .copied(),
            );
        }
        due.sort_unstable();
        due.truncate(limit);
        due
    }

    /// The earliest expiry of an entry for which `live` holds; entries at the front for which
    /// it does not are dropped on the way.
    fn next(&self, live: impl Fn(OrderId) -> bool) -> Option<DateTime<Utc>> {
        let mut next = None;
        for shard in &self.shards {
            let mut shard = shard.lock();
            while shard.front().is_some_and(|(_, id)| !live(*id)) {
                shard.pop_front();
            }
            if let Some((at, _)) = shard.front() {
                next = Some(next.map_or(*at, |next: DateTime<Utc>| next.min(*at)));
            }
        }
        next
    }
}

impl MemoryStockStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps a settled reservation and its idempotency key for `retention` after the
    /// reservation's expiry (default [`DEFAULT_SETTLED_RETENTION`]).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Forgets every sale, its counts and reservations, as a Redis without persistence does when
    /// it restarts (for tests and demos of a store rebuild). Clones share the loss.
    pub fn clear(&self) {
        self.sales.clear();
        self.due.clear();
    }

    /// Runs `f` on the sale's live state.
    fn with_slot<R>(&self, sku: &Sku, f: impl FnOnce(&SaleSlot) -> R) -> Result<R> {
        self.sales
            .read(sku, f)
            .ok_or_else(|| Error::UnknownSale(sku.clone()))
    }
}

impl fmt::Debug for MemoryStockStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStockStore")
            .field("sales", &self.sales.len())
            .finish()
    }
}

/// The live state of one sale.
struct SaleSlot {
    sale: Sale,
    /// Set by [`StockStore::end_sale`].
    early_end: EarlyEnd,
    /// The one word every purchase of the sale writes.
    counts: Padded<Counts>,
    sold: AtomicU64,
    /// Made by the first call that needs them: an announced sale no one has bought from yet
    /// holds no table (presized for its stock, they are its largest part; boxed, as their
    /// padded locks alone are 10 KB).
    tables: OnceLock<Box<Tables>>,
    /// Where the store's [`DueIndex`] files the sale.
    filed: Filed,
}

/// A sale's per-buyer and per-reservation state.
struct Tables {
    /// Units each user holds (reserved or sold).
    held: DashMap<UserId, u32>,
    reservations: ReservationTable,
    keys: DashMap<(UserId, IdempotencyKey), OrderId>,
    /// Live reservations by expiry.
    expiry: ExpiryIndex,
    /// Settled reservations by the instant they are to be forgotten.
    settled: Mutex<VecDeque<Due>>,
}

impl Tables {
    fn new(stock: u64) -> Self {
        // A sale that sells out holds at least one reservation per unit.
        let capacity = stock.min(PRESIZE_LIMIT) as usize;
        Self {
            held: map(capacity, capacity),
            reservations: ReservationTable::with_capacity(capacity),
            keys: map(0, capacity),
            expiry: ExpiryIndex::new(capacity),
            settled: Mutex::default(),
        }
    }
}

/// The two counters every purchase writes, together on one cache line of their own.
struct Counts {
    available: AtomicU64,
    reserved: AtomicU64,
}

/// Maps start at most this large; they grow past it as needed.
const PRESIZE_LIMIT: u64 = 1 << 14;

// Lock order, to stay deadlock-free across the sharded maps: `keys` before `held` before
// `reservations`; no path holds a guard of one map while it waits on a map before it.
impl SaleSlot {
    fn new(sale: Sale) -> Self {
        Self {
            counts: Padded(Counts {
                available: AtomicU64::new(sale.stock),
                reserved: AtomicU64::new(0),
            }),
            sold: AtomicU64::new(0),
            tables: OnceLock::new(),
            filed: Filed::default(),
            early_end: EarlyEnd::default(),
            sale,
        }
    }

    fn tables(&self) -> &Tables {
        self.tables
            .get_or_init(|| Box::new(Tables::new(self.sale.stock)))
    }

    /// The definition, with its early end if it was ended.
    fn definition(&self) -> Sale {
        self.early_end.apply(&self.sale)
    }

    fn end(&self, at: DateTime<Utc>) -> Sale {
        self.early_end.end(at);
        self.definition()
    }

    /// Takes `quantity` units if that many are available; answers what remains, or what was
    /// available when refused.
    fn take(&self, quantity: u64) -> std::result::Result<u64, u64> {
        let mut available = self.counts.available.load(Ordering::Acquire);
        loop {
            if available < quantity {
                return Err(available);
            }
            match self.counts.available.compare_exchange_weak(
                available,
                available - quantity,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.counts.reserved.fetch_add(quantity, Ordering::AcqRel);
                    return Ok(available - quantity);
                }
                Err(actual) => available = actual,
            }
        }
    }

    fn snapshot(&self) -> StockSnapshot {
        StockSnapshot {
            stock: self.sale.stock,
            available: self.counts.available.load(Ordering::Acquire),
            reserved: self.counts.reserved.load(Ordering::Acquire),
            sold: self.sold.load(Ordering::Acquire),
        }
    }

    fn reserve(&self, request: &ReserveRequest) -> ReserveOutcome {
        // Holding the key's entry makes two requests with one key serialize. The key comes first:
        // a retry gets its order back even once the sale has sold out or ended.
        let key_entry = request.idempotency_key.as_ref().map(|key| {
            self.tables()
                .keys
                .entry((request.user.clone(), key.clone()))
        });
        if let Some(Entry::Occupied(entry)) = &key_entry {
            let earlier = self.tables().reservations.with(*entry.get(), |earlier| {
                (earlier.state != ReservationState::Released(ReleaseReason::Aborted))
                    .then(|| earlier.to_reservation(&self.sale.sku, *entry.get()))
            });
            if let Some(Some(reservation)) = earlier {
                return ReserveOutcome::Existing { reservation };
            }
        }
        match self.early_end.window_state(&self.sale, request.now) {
            SaleState::Active | SaleState::SoldOut => {}
            state => return ReserveOutcome::NotActive { state },
        }
        let limit = self.sale.per_user_limit;
        let taken = {
            let mut held = self.tables().held.entry(request.user.clone()).or_insert(0);
            if u64::from(*held) + u64::from(request.quantity) > u64::from(limit) {
                Err(ReserveOutcome::LimitExceeded { limit, held: *held })
            } else {
                match self.take(u64::from(request.quantity)) {
                    Ok(remaining) => {
                        *held += request.quantity;
                        Ok(remaining)
                    }
                    Err(available) => Err(ReserveOutcome::SoldOut { available }),
                }
            }
        };
        let remaining = match taken {
            Ok(remaining) => remaining,
            Err(refused) => {
                // Refused buyers who hold nothing leave no entry behind (a sold-out sale may
                // meet millions of them).
                self.tables()
                    .held
                    .remove_if(&request.user, |_, held| *held == 0);
                return refused;
            }
        };
        let reservation = request.reservation(&self.sale);
        // The reservation before its expiry entry: a sweep that meets the entry first would find
        // the reservation not held, drop the entry for good (`ExpiryIndex::due`, `next`) and
        // refile the sale without it, and the units would never come back.
        self.tables()
            .reservations
            .insert(reservation.order_id, Held::new(&reservation));
        self.tables()
            .expiry
            .insert(reservation.expires_at, reservation.order_id);
        match key_entry {
            Some(Entry::Occupied(mut entry)) => {
                entry.insert(request.order_id);
            }
            Some(Entry::Vacant(entry)) => {
                entry.insert(request.order_id);
            }
            None => {}
        }
        ReserveOutcome::Reserved {
            reservation,
            remaining,
        }
    }

    fn confirm(
        &self,
        order_id: OrderId,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> ConfirmOutcome {
        let outcome = self
            .tables()
            .reservations
            .with_mut(order_id, |held| match held.state {
                ReservationState::Confirmed => ConfirmOutcome::AlreadyConfirmed,
                ReservationState::Released(reason) => ConfirmOutcome::Released(reason),
                ReservationState::Reserved if held.expires_at <= now => ConfirmOutcome::Expired,
                ReservationState::Reserved => {
                    held.state = ReservationState::Confirmed;
                    let quantity = u64::from(held.quantity);
                    self.sold.fetch_add(quantity, Ordering::AcqRel);
                    self.counts.reserved.fetch_sub(quantity, Ordering::AcqRel);
                    self.settled(held.expires_at, order_id, retention);
                    ConfirmOutcome::Confirmed
                }
            });
        outcome.unwrap_or(ConfirmOutcome::NotFound)
    }

    fn release(
        &self,
        order_id: OrderId,
        reason: ReleaseReason,
        retention: Duration,
    ) -> ReleaseOutcome {
        let released = self
            .tables()
            .reservations
            .with_mut(order_id, |held| match held.state {
                ReservationState::Confirmed => Err(ReleaseOutcome::Confirmed),
                ReservationState::Released(earlier) => {
                    Err(ReleaseOutcome::AlreadyReleased(earlier))
                }
                ReservationState::Reserved => {
                    // The state change under the record's lock is what makes release exactly-once.
                    held.state = ReservationState::Released(reason);
                    self.settled(held.expires_at, order_id, retention);
                    Ok((held.user.clone(), held.quantity))
                }
            });
        let (user, quantity) = match released {
            None => return ReleaseOutcome::NotFound,
            Some(Err(outcome)) => return outcome,
            Some(Ok(released)) => released,
        };
        if let Some(mut held) = self.tables().held.get_mut(&user) {
            *held = held.saturating_sub(quantity);
        }
        self.counts
            .reserved
            .fetch_sub(u64::from(quantity), Ordering::AcqRel);
        self.counts
            .available
            .fetch_add(u64::from(quantity), Ordering::AcqRel);
        ReleaseOutcome::Released { quantity }
    }

    /// Files a reservation settled now to be forgotten `retention` after its expiry: never
    /// before the sweep that found it due (the sale's due entry is at most its expiry), so the
    /// due index needs no new entry for it.
    fn settled(&self, expires_at: DateTime<Utc>, order_id: OrderId, retention: Duration) {
        let forget_at = chrono::TimeDelta::from_std(retention)
            .ok()
            .and_then(|retention| expires_at.checked_add_signed(retention))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        insert_sorted(&mut self.tables().settled.lock(), (forget_at, order_id));
    }

    /// Forgets up to `limit` settled reservations due to be forgotten at `now`, with the
    /// idempotency keys that made them; answers how many.
    fn forget(&self, now: DateTime<Utc>, limit: usize) -> usize {
        let Some(tables) = self.tables.get() else {
            return 0;
        };
        let mut forgotten = 0;
        while forgotten < limit {
            let order_id = {
                let mut settled = tables.settled.lock();
                match settled.front() {
                    Some((at, order_id)) if *at <= now => {
                        let order_id = *order_id;
                        settled.pop_front();
                        order_id
                    }
                    _ => break,
                }
            };
            // One lock at a time (see the lock order above). A reservation the key made since
            // has replaced the key's entry: it stays.
            if let Some(held) = tables.reservations.remove(order_id)
                && let Some(key) = held.idempotency_key()
            {
                tables
                    .keys
                    .remove_if(&(held.user.clone(), key.clone()), |_, made| {
                        *made == order_id
                    });
            }
            forgotten += 1;
        }
        forgotten
    }

    /// Whether the reservation is still held.
    fn live(&self, order_id: OrderId) -> bool {
        self.tables()
            .reservations
            .with(order_id, |held| held.state == ReservationState::Reserved)
            .unwrap_or(false)
    }

    /// When the sale is next due to the sweeper: the earliest expiry of a reservation still
    /// held, or the earliest instant a settled one is to be forgotten.
    fn next_due(&self) -> Option<DateTime<Utc>> {
        let tables = self.tables.get()?;
        let held = tables.expiry.next(|order_id| self.live(order_id));
        let settled = tables.settled.lock().front().map(|(at, _)| *at);
        held.into_iter().chain(settled).min()
    }

    fn expired(&self, now: DateTime<Utc>, limit: usize) -> Vec<Reservation> {
        self.tables()
            .expiry
            .due(now, limit, |order_id| self.live(order_id))
            .into_iter()
            .filter_map(|(_, order_id)| {
                self.tables()
                    .reservations
                    .with(order_id, |held| {
                        (held.state == ReservationState::Reserved)
                            .then(|| held.to_reservation(&self.sale.sku, order_id))
                    })
                    .flatten()
            })
            .collect()
    }

    /// The state `orders` imply for `sale`.
    fn restored(sale: &Sale, orders: &[Order], retention: Duration) -> Self {
        let slot = Self::new(sale.clone());
        let (mut reserved, mut sold) = (0u64, 0u64);
        let mut held: HashMap<UserId, u32> = HashMap::new();
        for order in orders.iter().filter(|order| order.sku == sale.sku) {
            let state = ReservationState::of_order(order.status);
            let quantity = u64::from(order.quantity);
            match state {
                ReservationState::Reserved => {
                    reserved += quantity;
                    slot.tables().expiry.insert(order.expires_at, order.id);
                }
                ReservationState::Confirmed => {
                    sold += quantity;
                    slot.settled(order.expires_at, order.id, retention);
                }
                ReservationState::Released(_) => {
                    slot.settled(order.expires_at, order.id, retention);
                }
            }
            if !matches!(state, ReservationState::Released(_)) {
                *held.entry(order.user.clone()).or_default() += order.quantity;
            }
            if let Some(key) = &order.idempotency_key {
                slot.tables()
                    .keys
                    .insert((order.user.clone(), key.clone()), order.id);
            }
            slot.tables()
                .reservations
                .insert(order.id, Held::new(&Reservation::from_order(order)));
        }
        for (user, units) in held {
            slot.tables().held.insert(user, units);
        }
        slot.counts.reserved.store(reserved, Ordering::Release);
        slot.sold.store(sold, Ordering::Release);
        slot.counts.available.store(
            sale.stock.saturating_sub(reserved + sold),
            Ordering::Release,
        );
        slot
    }
}

#[async_trait]
impl StockStore for MemoryStockStore {
    async fn create_sale(&self, sale: &Sale) -> Result<bool> {
        Ok(self
            .sales
            .insert_new(&sale.sku, || SaleSlot::new(sale.clone())))
    }

    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
        Ok(self.sales.read(sku, SaleSlot::definition))
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        let mut sales: Vec<Sale> = self
            .sales
            .values()
            .iter()
            .map(|slot| slot.definition())
            .collect();
        sales.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(sales)
    }

    async fn sale_count(&self) -> Result<u64> {
        Ok(self.sales.len() as u64)
    }

    async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Result<Option<Sale>> {
        Ok(self.sales.read(sku, |slot| slot.end(at)))
    }

    async fn reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome> {
        self.with_slot(&request.sku, |slot| {
            let outcome = slot.reserve(request);
            if let ReserveOutcome::Reserved { reservation, .. } = &outcome {
                self.due
                    .note(&request.sku, &slot.filed, reservation.expires_at);
            }
            outcome
        })
    }

    async fn reservation(&self, sku: &Sku, order_id: OrderId) -> Result<Option<Reservation>> {
        self.with_slot(sku, |slot| {
            slot.tables().reservations.with(order_id, |held| {
                held.to_reservation(&slot.sale.sku, order_id)
            })
        })
    }

    async fn reservation_by_key(
        &self,
        sku: &Sku,
        user: &UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<Reservation>> {
        self.with_slot(sku, |slot| {
            let order_id = *slot.tables().keys.get(&(user.clone(), key.clone()))?;
            slot.tables()
                .reservations
                .with(order_id, |held| {
                    (held.state != ReservationState::Released(ReleaseReason::Aborted))
                        .then(|| held.to_reservation(&slot.sale.sku, order_id))
                })
                .flatten()
        })
    }

    async fn confirm(
        &self,
        sku: &Sku,
        order_id: OrderId,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome> {
        self.with_slot(sku, |slot| slot.confirm(order_id, now, self.retention))
    }

    async fn release(
        &self,
        sku: &Sku,
        order_id: OrderId,
        reason: ReleaseReason,
    ) -> Result<ReleaseOutcome> {
        self.with_slot(sku, |slot| slot.release(order_id, reason, self.retention))
    }

    async fn expired(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Reservation>> {
        self.with_slot(sku, |slot| {
            let forgotten = slot.forget(now, limit);
            let due = slot.expired(now, limit);
            if due.len() < limit && forgotten < limit {
                // Filed under the earliest held, these included: due until they are released.
                self.due.refile(sku, &slot.filed, || slot.next_due());
            }
            due
        })
    }

    async fn due_sales(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Sku>> {
        Ok(self.due.due(now, limit))
    }

    async fn snapshot(&self, sku: &Sku) -> Result<StockSnapshot> {
        self.with_slot(sku, SaleSlot::snapshot)
    }

    async fn restore(&self, sale: &Sale, orders: &[Order]) -> Result<()> {
        let slot = Arc::new(SaleSlot::restored(sale, orders, self.retention));
        self.sales.insert(&sale.sku, Arc::clone(&slot));
        // Replaces the old slot's entry too.
        self.due.refile(&sale.sku, &slot.filed, || slot.next_due());
        Ok(())
    }

    async fn lock_rebuild(&self, sku: &Sku, holder: &str, lease: Duration) -> Result<bool> {
        Ok(self.leases.lock(sku, holder, lease))
    }

    async fn unlock_rebuild(&self, sku: &Sku, holder: &str) -> Result<()> {
        self.leases.unlock(sku, holder);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_buyers_leave_no_per_user_entry() {
        let sale = Sale::new(Sku::new("tiny").unwrap(), 1);
        let slot = SaleSlot::new(sale.clone());
        let request = |user: &str, quantity| ReserveRequest {
            order_id: OrderId::new(),
            sku: sale.sku.clone(),
            user: UserId::new(user).unwrap(),
            quantity,
            idempotency_key: None,
            remark: None,
            now: Utc::now(),
        };
        assert!(matches!(
            slot.reserve(&request("ann", 1)),
            ReserveOutcome::Reserved { .. }
        ));
        for i in 0..100 {
            let user = format!("late-{i}");
            assert!(matches!(
                slot.reserve(&request(&user, 1)),
                ReserveOutcome::SoldOut { .. }
            ));
            assert!(matches!(
                slot.reserve(&request(&user, 2)),
                ReserveOutcome::LimitExceeded { .. }
            ));
        }
        assert_eq!(
            slot.tables().held.len(),
            1,
            "only the buyer who holds a unit has an entry"
        );
    }
}
