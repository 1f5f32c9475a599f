//! [`MemoryStockStore`]: stock in process memory, lock-free on the hot path.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crossbeam_skiplist::SkipSet;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::error::{Error, Result};
use crate::ident::{IdempotencyKey, UserId};
use crate::order::{Order, OrderId, OrderStatus};
use crate::reservation::{
    ConfirmOutcome, ReleaseOutcome, ReleaseReason, Reservation, ReservationState, ReserveOutcome,
    ReserveRequest,
};
use crate::sale::{Sale, SaleState, Sku, StockSnapshot};
use crate::stock::StockStore;

/// A [`StockStore`] in process memory: the embedded default and the reference behaviour.
///
/// No global lock: each sale's counters are atomics, and its users, reservations and idempotency
/// keys live in sharded concurrent maps, so concurrent purchases of one hot sale only meet on one
/// compare-and-swap. Expiry is a lock-free skip list ordered by instant. Clones share the state.
#[derive(Clone, Default)]
pub struct MemoryStockStore {
    sales: Arc<DashMap<Sku, Arc<SaleSlot>>>,
}

impl MemoryStockStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&self, sku: &Sku) -> Result<Arc<SaleSlot>> {
        self.sales
            .get(sku)
            .map(|slot| Arc::clone(&slot))
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
    available: AtomicU64,
    reserved: AtomicU64,
    sold: AtomicU64,
    /// Units each user holds (reserved or sold).
    held: DashMap<UserId, u32>,
    reservations: DashMap<OrderId, Reservation>,
    keys: DashMap<(UserId, IdempotencyKey), OrderId>,
    /// Live reservations by expiry.
    expiry: SkipSet<(DateTime<Utc>, OrderId)>,
}

// Lock order, to stay deadlock-free across the sharded maps: `keys` before `held` before
// `reservations`; no path holds a guard of one map while it waits on a map before it.
impl SaleSlot {
    fn new(sale: Sale) -> Self {
        Self {
            available: AtomicU64::new(sale.stock),
            reserved: AtomicU64::new(0),
            sold: AtomicU64::new(0),
            held: DashMap::new(),
            reservations: DashMap::new(),
            keys: DashMap::new(),
            expiry: SkipSet::new(),
            sale,
        }
    }

    /// Takes `quantity` units if that many are available; answers what remains, or what was
    /// available when refused.
    fn take(&self, quantity: u64) -> std::result::Result<u64, u64> {
        let mut available = self.available.load(Ordering::Acquire);
        loop {
            if available < quantity {
                return Err(available);
            }
            match self.available.compare_exchange_weak(
                available,
                available - quantity,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.reserved.fetch_add(quantity, Ordering::AcqRel);
                    return Ok(available - quantity);
                }
                Err(actual) => available = actual,
            }
        }
    }

    fn snapshot(&self) -> StockSnapshot {
        StockSnapshot {
            stock: self.sale.stock,
            available: self.available.load(Ordering::Acquire),
            reserved: self.reserved.load(Ordering::Acquire),
            sold: self.sold.load(Ordering::Acquire),
        }
    }

    fn reserve(&self, request: &ReserveRequest) -> ReserveOutcome {
        // Holding the key's entry makes two requests with one key serialize. The key comes first:
        // a retry gets its order back even once the sale has sold out or ended.
        let key_entry = request
            .idempotency_key
            .as_ref()
            .map(|key| self.keys.entry((request.user.clone(), key.clone())));
        if let Some(Entry::Occupied(entry)) = &key_entry {
            if let Some(earlier) = self.reservations.get(entry.get()) {
                if earlier.state != ReservationState::Released(ReleaseReason::Aborted) {
                    return ReserveOutcome::Existing {
                        reservation: earlier.clone(),
                    };
                }
            }
        }
        match self.sale.window_state(request.now) {
            SaleState::Active | SaleState::SoldOut => {}
            state => return ReserveOutcome::NotActive { state },
        }
        let limit = self.sale.per_user_limit;
        let remaining = {
            let mut held = self.held.entry(request.user.clone()).or_insert(0);
            if u64::from(*held) + u64::from(request.quantity) > u64::from(limit) {
                return ReserveOutcome::LimitExceeded { limit, held: *held };
            }
            match self.take(u64::from(request.quantity)) {
                Ok(remaining) => {
                    *held += request.quantity;
                    remaining
                }
                Err(available) => return ReserveOutcome::SoldOut { available },
            }
        };
        let reservation = Reservation {
            order_id: request.order_id,
            sku: request.sku.clone(),
            user: request.user.clone(),
            quantity: request.quantity,
            idempotency_key: request.idempotency_key.clone(),
            remark: request.remark.clone(),
            created_at: request.now,
            expires_at: self.sale.expiry_from(request.now),
            state: ReservationState::Reserved,
        };
        self.expiry
            .insert((reservation.expires_at, reservation.order_id));
        self.reservations
            .insert(reservation.order_id, reservation.clone());
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

    fn confirm(&self, order_id: OrderId) -> ConfirmOutcome {
        let Some(mut reservation) = self.reservations.get_mut(&order_id) else {
            return ConfirmOutcome::NotFound;
        };
        match reservation.state {
            ReservationState::Confirmed => ConfirmOutcome::AlreadyConfirmed,
            ReservationState::Released(reason) => ConfirmOutcome::Released(reason),
            ReservationState::Reserved => {
                reservation.state = ReservationState::Confirmed;
                let quantity = u64::from(reservation.quantity);
                self.expiry.remove(&(reservation.expires_at, order_id));
                self.sold.fetch_add(quantity, Ordering::AcqRel);
                self.reserved.fetch_sub(quantity, Ordering::AcqRel);
                ConfirmOutcome::Confirmed
            }
        }
    }

    fn release(&self, order_id: OrderId, reason: ReleaseReason) -> ReleaseOutcome {
        let (user, quantity) = {
            let Some(mut reservation) = self.reservations.get_mut(&order_id) else {
                return ReleaseOutcome::NotFound;
            };
            match reservation.state {
                ReservationState::Confirmed => return ReleaseOutcome::Confirmed,
                ReservationState::Released(earlier) => {
                    return ReleaseOutcome::AlreadyReleased(earlier);
                }
                ReservationState::Reserved => {}
            }
            // The state change under the entry's lock is what makes release exactly-once.
            reservation.state = ReservationState::Released(reason);
            self.expiry.remove(&(reservation.expires_at, order_id));
            (reservation.user.clone(), reservation.quantity)
        };
        if let Some(mut held) = self.held.get_mut(&user) {
            *held = held.saturating_sub(quantity);
        }
        self.reserved
            .fetch_sub(u64::from(quantity), Ordering::AcqRel);
        self.available
            .fetch_add(u64::from(quantity), Ordering::AcqRel);
        ReleaseOutcome::Released { quantity }
    }

    fn expired(&self, now: DateTime<Utc>, limit: usize) -> Vec<Reservation> {
        self.expiry
            .iter()
            .take_while(|entry| entry.value().0 <= now)
            .filter_map(|entry| {
                let reservation = self.reservations.get(&entry.value().1)?;
                (reservation.state == ReservationState::Reserved).then(|| reservation.clone())
            })
            .take(limit)
            .collect()
    }

    /// The state `orders` imply for `sale`.
    fn restored(sale: &Sale, orders: &[Order]) -> Self {
        let mut slot = Self::new(sale.clone());
        let (mut reserved, mut sold) = (0u64, 0u64);
        let mut held: HashMap<UserId, u32> = HashMap::new();
        for order in orders.iter().filter(|order| order.sku == sale.sku) {
            let state = match order.status {
                OrderStatus::Pending => ReservationState::Reserved,
                OrderStatus::Paid => ReservationState::Confirmed,
                OrderStatus::Cancelled => ReservationState::Released(ReleaseReason::Cancelled),
                OrderStatus::Expired => ReservationState::Released(ReleaseReason::Expired),
            };
            let quantity = u64::from(order.quantity);
            match state {
                ReservationState::Reserved => {
                    reserved += quantity;
                    slot.expiry.insert((order.expires_at, order.id));
                }
                ReservationState::Confirmed => sold += quantity,
                ReservationState::Released(_) => {}
            }
            if !matches!(state, ReservationState::Released(_)) {
                *held.entry(order.user.clone()).or_default() += order.quantity;
            }
            if let Some(key) = &order.idempotency_key {
                slot.keys
                    .insert((order.user.clone(), key.clone()), order.id);
            }
            slot.reservations.insert(
                order.id,
                Reservation {
                    order_id: order.id,
                    sku: order.sku.clone(),
                    user: order.user.clone(),
                    quantity: order.quantity,
                    idempotency_key: order.idempotency_key.clone(),
                    remark: order.remark.clone(),
                    created_at: order.created_at,
                    expires_at: order.expires_at,
                    state,
                },
            );
        }
        slot.held.extend(held);
        slot.reserved.store(reserved, Ordering::Release);
        slot.sold.store(sold, Ordering::Release);
        slot.available.store(
            sale.stock.saturating_sub(reserved + sold),
            Ordering::Release,
        );
        slot
    }
}

#[async_trait]
impl StockStore for MemoryStockStore {
    async fn create_sale(&self, sale: &Sale) -> Result<bool> {
        match self.sales.entry(sale.sku.clone()) {
            Entry::Occupied(_) => Ok(false),
            Entry::Vacant(entry) => {
                entry.insert(Arc::new(SaleSlot::new(sale.clone())));
                Ok(true)
            }
        }
    }

    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
        Ok(self.sales.get(sku).map(|slot| slot.sale.clone()))
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        let mut sales: Vec<Sale> = self.sales.iter().map(|slot| slot.sale.clone()).collect();
        sales.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(sales)
    }

    async fn reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome> {
        Ok(self.slot(&request.sku)?.reserve(request))
    }

    async fn reservation(&self, sku: &Sku, order_id: OrderId) -> Result<Option<Reservation>> {
        Ok(self
            .slot(sku)?
            .reservations
            .get(&order_id)
            .map(|reservation| reservation.clone()))
    }

    async fn confirm(&self, sku: &Sku, order_id: OrderId) -> Result<ConfirmOutcome> {
        Ok(self.slot(sku)?.confirm(order_id))
    }

    async fn release(
        &self,
        sku: &Sku,
        order_id: OrderId,
        reason: ReleaseReason,
    ) -> Result<ReleaseOutcome> {
        Ok(self.slot(sku)?.release(order_id, reason))
    }

    async fn expired(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Reservation>> {
        Ok(self.slot(sku)?.expired(now, limit))
    }

    async fn snapshot(&self, sku: &Sku) -> Result<StockSnapshot> {
        Ok(self.slot(sku)?.snapshot())
    }

    async fn restore(&self, sale: &Sale, orders: &[Order]) -> Result<()> {
        self.sales
            .insert(sale.sku.clone(), Arc::new(SaleSlot::restored(sale, orders)));
        Ok(())
    }
}
