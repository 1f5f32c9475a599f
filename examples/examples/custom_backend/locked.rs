//! `LockedStockStore`: a `StockStore` whose whole state sits behind one mutex.
//!
//! The simplest store that keeps the contract: every call takes the lock, so each reservation
//! (window, idempotency key, per-user limit, units) is trivially one indivisible step. It is
//! slower than `MemoryStockStore` under contention, but every rule of the contract is a few
//! readable lines here — a starting point for a store over your own system.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nexussale_core::{
    ConfirmOutcome, Error, IdempotencyKey, Order, OrderId, RebuildLeases, ReleaseOutcome,
    ReleaseReason, Reservation, ReservationState, ReserveOutcome, ReserveRequest, Result, Sale,
    SaleState, Sku, StockSnapshot, StockStore, UserId,
};

/// Stock and reservations of every sale, behind one lock.
#[derive(Debug, Default)]
pub struct LockedStockStore {
    books: Mutex<HashMap<Sku, Book>>,
    /// In one process, the rebuild lock is a lease table; a store shared by several processes
    /// keeps it where they all see it.
    leases: RebuildLeases,
}

/// One sale's live state.
#[derive(Debug)]
struct Book {
    sale: Sale,
    available: u64,
    reserved: u64,
    sold: u64,
    /// Units each user holds (reserved or sold; released units stop counting).
    held: HashMap<UserId, u32>,
    /// Every reservation, in whatever state, so confirm and release can answer what happened.
    reservations: HashMap<OrderId, Reservation>,
    /// The reservation each (user, key) made.
    keys: HashMap<(UserId, IdempotencyKey), OrderId>,
    /// Held reservations by expiry: `expired()` reads the front, never scans.
    expiry: BTreeSet<(DateTime<Utc>, OrderId)>,
}

impl Book {
    fn new(sale: Sale) -> Self {
        Self {
            available: sale.stock,
            reserved: 0,
            sold: 0,
            held: HashMap::new(),
            reservations: HashMap::new(),
            keys: HashMap::new(),
            expiry: BTreeSet::new(),
            sale,
        }
    }

    /// The reservation `user`'s `key` made; an aborted one frees its key.
    fn by_key(&self, user: &UserId, key: &IdempotencyKey) -> Option<&Reservation> {
        self.keys
            .get(&(user.clone(), key.clone()))
            .and_then(|id| self.reservations.get(id))
            .filter(|earlier| earlier.state != ReservationState::Released(ReleaseReason::Aborted))
    }

    fn reserve(&mut self, request: &ReserveRequest) -> ReserveOutcome {
        // The key first: a retry gets its reservation back even after the sale sold out or
        // ended.
        if let Some(key) = &request.idempotency_key
            && let Some(earlier) = self.by_key(&request.user, key)
        {
            return ReserveOutcome::Existing {
                reservation: earlier.clone(),
            };
        }
        match self.sale.window_state(request.now) {
            SaleState::Active | SaleState::SoldOut => {}
            state => return ReserveOutcome::NotActive { state },
        }
        let limit = self.sale.per_user_limit;
        let held = self.held.get(&request.user).copied().unwrap_or(0);
        if u64::from(held) + u64::from(request.quantity) > u64::from(limit) {
            return ReserveOutcome::LimitExceeded { limit, held };
        }
        let quantity = u64::from(request.quantity);
        if self.available < quantity {
            return ReserveOutcome::SoldOut {
                available: self.available,
            };
        }
        self.available -= quantity;
        self.reserved += quantity;
        *self.held.entry(request.user.clone()).or_default() += request.quantity;
        let reservation = request.reservation(&self.sale);
        self.hold(reservation.clone());
        ReserveOutcome::Reserved {
            reservation,
            remaining: self.available,
        }
    }

    /// Records a reservation (and its key and expiry while it is held).
    fn hold(&mut self, reservation: Reservation) {
        if let Some(key) = &reservation.idempotency_key {
            self.keys.insert(
                (reservation.user.clone(), key.clone()),
                reservation.order_id,
            );
        }
        if reservation.state == ReservationState::Reserved {
            self.expiry
                .insert((reservation.expires_at, reservation.order_id));
        }
        self.reservations.insert(reservation.order_id, reservation);
    }

    fn confirm(&mut self, order_id: OrderId, now: DateTime<Utc>) -> ConfirmOutcome {
        let Some(reservation) = self.reservations.get_mut(&order_id) else {
            return ConfirmOutcome::NotFound;
        };
        match reservation.state {
            ReservationState::Confirmed => ConfirmOutcome::AlreadyConfirmed,
            ReservationState::Released(reason) => ConfirmOutcome::Released(reason),
            // Past its expiry: refused, under the same lock as the sweeper's release.
            ReservationState::Reserved if reservation.expires_at <= now => ConfirmOutcome::Expired,
            ReservationState::Reserved => {
                reservation.state = ReservationState::Confirmed;
                let quantity = u64::from(reservation.quantity);
                self.reserved -= quantity;
                self.sold += quantity;
                self.expiry.remove(&(reservation.expires_at, order_id));
                ConfirmOutcome::Confirmed
            }
        }
    }

    fn release(&mut self, order_id: OrderId, reason: ReleaseReason) -> ReleaseOutcome {
        let Some(reservation) = self.reservations.get_mut(&order_id) else {
            return ReleaseOutcome::NotFound;
        };
        match reservation.state {
            ReservationState::Confirmed => ReleaseOutcome::Confirmed,
            ReservationState::Released(earlier) => ReleaseOutcome::AlreadyReleased(earlier),
            ReservationState::Reserved => {
                reservation.state = ReservationState::Released(reason);
                let quantity = reservation.quantity;
                self.reserved -= u64::from(quantity);
                self.available += u64::from(quantity);
                if let Some(held) = self.held.get_mut(&reservation.user) {
                    *held = held.saturating_sub(quantity);
                }
                self.expiry.remove(&(reservation.expires_at, order_id));
                ReleaseOutcome::Released { quantity }
            }
        }
    }

    /// The state `orders` imply: pending orders held, paid orders sold, the rest returned.
    fn restored(sale: &Sale, orders: &[Order]) -> Self {
        let mut book = Self::new(sale.clone());
        for order in orders.iter().filter(|order| order.sku == sale.sku) {
            let reservation = Reservation::from_order(order);
            let quantity = u64::from(order.quantity);
            match reservation.state {
                ReservationState::Reserved => book.reserved += quantity,
                ReservationState::Confirmed => book.sold += quantity,
                ReservationState::Released(_) => {}
            }
            if matches!(
                reservation.state,
                ReservationState::Reserved | ReservationState::Confirmed
            ) {
                *book.held.entry(order.user.clone()).or_default() += order.quantity;
            }
            book.hold(reservation);
        }
        book.available = sale.stock.saturating_sub(book.reserved + book.sold);
        book
    }
}

impl LockedStockStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Sku, Book>> {
        // A panic while holding the lock cannot leave a half-made change behind (every change
        // above is made only after its checks pass), so a poisoned lock is still consistent.
        self.books
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the sale's book.
    fn with_book<R>(&self, sku: &Sku, f: impl FnOnce(&mut Book) -> R) -> Result<R> {
        match self.lock().get_mut(sku) {
            Some(book) => Ok(f(book)),
            None => Err(Error::UnknownSale(sku.clone())),
        }
    }
}

#[async_trait]
impl StockStore for LockedStockStore {
    async fn create_sale(&self, sale: &Sale) -> Result<bool> {
        let mut books = self.lock();
        if books.contains_key(&sale.sku) {
            return Ok(false);
        }
        books.insert(sale.sku.clone(), Book::new(sale.clone()));
        Ok(true)
    }

    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
        Ok(self.lock().get(sku).map(|book| book.sale.clone()))
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        Ok(self.lock().values().map(|book| book.sale.clone()).collect())
    }

    async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Result<Option<Sale>> {
        // Under the lock, like every reservation: none is made after the end once it returns.
        Ok(self.lock().get_mut(sku).map(|book| {
            book.sale = book.sale.clone().ended(at);
            book.sale.clone()
        }))
    }

    async fn reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome> {
        self.with_book(&request.sku, |book| book.reserve(request))
    }

    async fn reservation(&self, sku: &Sku, order_id: OrderId) -> Result<Option<Reservation>> {
        self.with_book(sku, |book| book.reservations.get(&order_id).cloned())
    }

    async fn reservation_by_key(
        &self,
        sku: &Sku,
        user: &UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<Reservation>> {
        self.with_book(sku, |book| book.by_key(user, key).cloned())
    }

    async fn confirm(
        &self,
        sku: &Sku,
        order_id: OrderId,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome> {
        self.with_book(sku, |book| book.confirm(order_id, now))
    }

    async fn release(
        &self,
        sku: &Sku,
        order_id: OrderId,
        reason: ReleaseReason,
    ) -> Result<ReleaseOutcome> {
        self.with_book(sku, |book| book.release(order_id, reason))
    }

    async fn expired(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Reservation>> {
        self.with_book(sku, |book| {
            book.expiry
                .iter()
                .take_while(|(expires_at, _)| *expires_at <= now)
                .take(limit)
                .filter_map(|(_, id)| book.reservations.get(id).cloned())
                .collect()
        })
    }

    async fn snapshot(&self, sku: &Sku) -> Result<StockSnapshot> {
        self.with_book(sku, |book| StockSnapshot {
            stock: book.sale.stock,
            available: book.available,
            reserved: book.reserved,
            sold: book.sold,
        })
    }

    async fn restore(&self, sale: &Sale, orders: &[Order]) -> Result<()> {
        self.lock()
            .insert(sale.sku.clone(), Book::restored(sale, orders));
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
