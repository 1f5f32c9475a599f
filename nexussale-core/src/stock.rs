//! [`StockStore`]: where live stock and reservations are held.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::expiry::{ExpiredBatch, ExpiryCall};
use crate::ident::{IdempotencyKey, UserId};
use crate::order::{Order, OrderId};
use crate::reservation::{
    ConfirmOutcome, ReleaseOutcome, ReleaseReason, Reservation, ReserveOutcome, ReserveRequest,
};
use crate::sale::{Sale, Sku, StockSnapshot};

/// How long the embedded and Redis stores keep a settled reservation after its expiry, unless
/// configured (see the [`StockStore`] contract's retention): the lifetime of an idempotency key.
pub const DEFAULT_SETTLED_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// A shared, type-erased [`StockStore`].
pub type DynStockStore = Arc<dyn StockStore>;

/// Holds each sale's live stock, and the reservations made against it.
///
/// # Contract
///
/// Every implementation owes these guarantees; [`testkit`](crate#features) checks them.
///
/// - **Atomic reservation.** [`reserve`](Self::reserve) checks the sale window, the idempotency key,
///   the per-user limit and the available units, and holds the units, as one indivisible step (for a
///   remote store: one round trip). However many reservations race, the units held never exceed the
///   stock, and no user holds more than the limit. Units held by a user count reserved and sold
///   units; released units stop counting.
/// - **Idempotency.** Within one sale and one user, a request carrying an idempotency key that an
///   earlier reservation used answers [`ReserveOutcome::Existing`] with that reservation and holds
///   nothing, unless that reservation was released with [`ReleaseReason::Aborted`]: then the key is
///   free again. The key is checked before anything else, so a retry gets its reservation back
///   even after the sale sold out or ended.
/// - **Exactly once.** [`confirm`](Self::confirm) and [`release`](Self::release) change a
///   reservation at most once; of two concurrent releases of one reservation, one answers
///   [`ReleaseOutcome::Released`] and returns the units, the other answers
///   [`ReleaseOutcome::AlreadyReleased`]. A released reservation cannot be confirmed, a confirmed one
///   cannot be released.
/// - **No late payment.** [`confirm`](Self::confirm) at or after the reservation's expiry
///   answers [`ConfirmOutcome::Expired`] and changes nothing, decided in the same atomic step
///   that reads the reservation: a pay racing the sweeper never wins once the expiry has passed
///   (stores may round the instant to the microsecond).
/// - **Remaining.** [`ReserveOutcome::Reserved`] tells the units left right after the
///   reservation. A store that keeps a sale in one place answers the exact count. A store that
///   spreads one sale over shards may answer a lower bound (its shard's count), but 0 only when
///   it saw every shard empty: the engine treats 0 as "sold out for now".
/// - **Time comes from the caller.** The store never reads a clock: `now` arrives with the
///   request, so expiry is deterministic and testable.
/// - **Conservation.** For every sale, `available + reserved + sold == stock` whenever no call is in
///   flight.
/// - **No silent regression.** A store whose state of a sale may have gone backwards (a failover
///   to a replica that lacked the last writes) answers [`Error::StockRegressed`] from every call
///   that would read or change the sale's stock or reservations ([`reserve`](Self::reserve),
///   [`confirm`](Self::confirm), [`release`](Self::release), [`snapshot`](Self::snapshot)) and
///   changes nothing, until [`restore`](Self::restore) rebuilds it. A store that cannot regress
///   (one process's memory) never answers it.
/// - **Ending.** [`end_sale`](Self::end_sale) stores the definition [`Sale::ended`] at `at`
///   (an end only moves earlier) and from then on [`reserve`](Self::reserve) refuses every
///   request at or after `at` as [`SaleState::Ended`], in every place the store keeps the sale;
///   [`sale`](Self::sale) and [`sales`](Self::sales) answer the ended definition. It holds no
///   unit and releases none: reservations made before go on to be paid or to expire.
/// - **Retention.** A store may forget a settled (confirmed or released) reservation, with the
///   idempotency key that made it, once a retention has passed after the reservation's expiry
///   (the store documents it; the embedded and Redis stores keep [`DEFAULT_SETTLED_RETENTION`]
///   unless configured). It forgets in [`expired`](Self::expired) and [`expire`](Self::expire),
///   at most `limit` per call, and files the sale in [`due_sales`](Self::due_sales) for it, so
///   nothing but the sweeper pays. A
///   held reservation is never forgotten, and forgetting changes no count and no user's hold.
///   Once forgotten, [`reservation`](Self::reservation) and
///   [`reservation_by_key`](Self::reservation_by_key) answer `None`, [`confirm`](Self::confirm)
///   and [`release`](Self::release) answer `NotFound`, and the key makes a new reservation: the
///   retention is the idempotency key's lifetime.
/// - **One rebuild.** [`lock_rebuild`](Self::lock_rebuild) admits one holder per sale at a time,
///   across every process that shares the store, until the holder unlocks or lets its lease
///   lapse; the holder renews by locking again.
///
/// Business answers (sold out, limit exceeded, not active) are `Ok` outcomes. A sale that does not
/// exist is [`Error::UnknownSale`](crate::Error::UnknownSale); a failed backend is
/// [`Error::Backend`](crate::Error::Backend).
///
/// [`Error::StockRegressed`]: crate::Error::StockRegressed
/// [`SaleState::Ended`]: crate::SaleState::Ended
///
/// # Example
///
/// ```
/// use nexussale_core::{memory::MemoryStockStore, OrderId, ReserveOutcome, ReserveRequest, Sale, Sku, StockStore, UserId};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> nexussale_core::Result<()> {
/// let store = MemoryStockStore::new();
/// let sku = Sku::new("ps5")?;
/// store.create_sale(&Sale::new(sku.clone(), 1)).await?;
/// let request = |user: &str| ReserveRequest {
///     order_id: OrderId::new(),
///     sku: sku.clone(),
///     user: UserId::new(user).unwrap(),
///     quantity: 1,
///     idempotency_key: None,
///     remark: None,
///     now: chrono::Utc::now(),
/// };
/// assert!(matches!(store.reserve(&request("ann")).await?, ReserveOutcome::Reserved { remaining: 0, .. }));
/// assert!(matches!(store.reserve(&request("bob")).await?, ReserveOutcome::SoldOut { .. }));
/// # Ok(()) }
/// ```
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait StockStore: Send + Sync + Debug + 'static {
    /// Creates the stock of `sale`: all units available. `Ok(false)` when a sale with this sku
    /// exists already; it is left unchanged.
    async fn create_sale(&self, sale: &Sale) -> Result<bool>;

    /// The definition of a sale, if it exists.
    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>>;

    /// Every sale's definition.
    async fn sales(&self) -> Result<Vec<Sale>>;

    /// How many sales the store holds, without reading them (the cap on sales checks it before
    /// each creation). The default counts [`sales`](Self::sales).
    async fn sale_count(&self) -> Result<u64> {
        Ok(self.sales().await?.len() as u64)
    }

    /// Ends the sale at `at` unless it ended earlier (see the contract); answers the definition
    /// it has now, `None` for a sale the store does not hold.
    async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Result<Option<Sale>>;

    /// Holds `request.quantity` units for `request.order_id`, atomically (see the contract).
    async fn reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome>;

    /// One reservation, in whatever state it is.
    async fn reservation(&self, sku: &Sku, order_id: OrderId) -> Result<Option<Reservation>>;

    /// The reservation `user`'s idempotency `key` made on this sale, in whatever state it is,
    /// unless it was released as [`ReleaseReason::Aborted`] (which frees the key): what
    /// [`reserve`](Self::reserve) would answer as [`ReserveOutcome::Existing`] for that key. One
    /// cheap lookup: the engine asks it instead of reserving when a keyed purchase meets a sale
    /// it knows is sold out or closed.
    async fn reservation_by_key(
        &self,
        sku: &Sku,
        user: &UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<Reservation>>;

    /// Moves a reservation's units from reserved to sold, if `now` is before its expiry.
    /// Idempotent; refused once released or expired.
    async fn confirm(
        &self,
        sku: &Sku,
        order_id: OrderId,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome>;

    /// Returns a reservation's units, exactly once. Refused once confirmed.
    async fn release(
        &self,
        sku: &Sku,
        order_id: OrderId,
        reason: ReleaseReason,
    ) -> Result<ReleaseOutcome>;

    /// Up to `limit` reservations of the sale still held whose expiry is at or before `now`,
    /// soonest expiry first. Found through an index on expiry, never by scanning every reservation.
    ///
    /// A store with a retention also forgets here up to `limit` settled reservations whose
    /// retention has passed at `now` (see the contract).
    ///
    /// When it finds fewer than `limit`, it also files the sale in the index of
    /// [`due_sales`](Self::due_sales) under the earliest expiry the sale holds now (those it
    /// answers included: until they are released the sale stays due) or the earliest instant a
    /// settled reservation is to be forgotten, or takes it out when it holds neither.
    async fn expired(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Reservation>>;

    /// Sales that may hold a reservation whose expiry is at or before `now`, soonest due first,
    /// at most `limit`: what the expiry sweeper visits instead of every sale.
    ///
    /// A store keeps an index of each sale's next expiry (a sorted set, a heap) beside its
    /// reservations. Every sale holding a reservation due at `now` is answered (up to `limit`);
    /// a sale that never held one never is, so idle sales cost the sweeper nothing. The index may
    /// lag behind confirms and releases: a sale answered without anything due is answered again
    /// only until [`expired`](Self::expired) finds nothing due in it (the index catches up there).
    ///
    /// The default lists every sale, which is correct but makes the sweeper visit each of them
    /// every sweep: a store that can keep the index should.
    async fn due_sales(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Sku>> {
        let _ = (now, limit);
        Ok(self
            .sales()
            .await?
            .into_iter()
            .map(|sale| sale.sku)
            .collect())
    }

    /// Releases each of `order_ids` (reservations of the sale) for `reason`, as
    /// [`release`](Self::release) would one at a time: one answer per id, in order. A remote
    /// store does a batch in one round trip (per shard); the sweeper releases what
    /// [`expired`](Self::expired) found this way.
    ///
    /// The default calls [`release`](Self::release) for each in turn.
    async fn release_many(
        &self,
        sku: &Sku,
        order_ids: &[OrderId],
        reason: ReleaseReason,
    ) -> Result<Vec<ReleaseOutcome>> {
        let mut outcomes = Vec::with_capacity(order_ids.len());
        for &order_id in order_ids {
            outcomes.push(self.release(sku, order_id, reason).await?);
        }
        Ok(outcomes)
    }

    /// Releases, as [`ReleaseReason::Expired`], up to `limit` of the sale's held reservations
    /// whose expiry is at or before `now`, soonest first: what the sweeper calls, instead of
    /// [`expired`](Self::expired) then [`release_many`](Self::release_many) (a remote store
    /// reads each reservation once, in one round trip per shard). Each release is exactly once,
    /// as [`release`](Self::release)'s; what [`expired`](Self::expired) forgets and files, this
    /// forgets and files too. A store that spreads a sale over shards may release up to `limit`
    /// from each.
    ///
    /// **Again after a failure.** `call` names the call: made again with the same `call` after
    /// it failed, it answers what its first try released when that try was applied (its reply
    /// lost), and releases afresh when it was not, so no released order goes unrecorded. It may
    /// then also answer reservations another sweeper expired meanwhile: recording an expiry
    /// twice changes nothing.
    ///
    /// The default lists with [`expired`](Self::expired), remembering the listing in `call`,
    /// and releases it with [`release_many`](Self::release_many); a retry releases the same
    /// listing again and answers those found released as expired.
    async fn expire(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
        call: &ExpiryCall,
    ) -> Result<ExpiredBatch> {
        let (listed, full, retry) = match call.listed() {
            Some((listed, full)) => (listed, full, true),
            None => {
                let listed = self.expired(sku, now, limit).await?;
                let full = listed.len() >= limit;
                call.remember(&listed, full);
                (listed, full, false)
            }
        };
        if listed.is_empty() {
            return Ok(ExpiredBatch::default());
        }
        let ids: Vec<OrderId> = listed.iter().map(|r| r.order_id).collect();
        let outcomes = self.release_many(sku, &ids, ReleaseReason::Expired).await?;
        if outcomes.len() != ids.len() {
            return Err(crate::Error::permanent(
                "stock",
                format!(
                    "the stock store answered a batch of {} releases with {}",
                    ids.len(),
                    outcomes.len()
                ),
            ));
        }
        let released = listed
            .into_iter()
            .zip(outcomes)
            .filter_map(|(reservation, outcome)| match outcome {
                ReleaseOutcome::Released { .. } => Some(reservation),
                // Released by this call's first try, whose answer was lost.
                ReleaseOutcome::AlreadyReleased(ReleaseReason::Expired) if retry => {
                    Some(reservation)
                }
                // Paid, cancelled or expired by another sweeper meanwhile: theirs to record.
                _ => None,
            })
            .collect();
        Ok(ExpiredBatch { released, full })
    }

    /// The sale's stock counts.
    async fn snapshot(&self, sku: &Sku) -> Result<StockSnapshot>;

    /// Replaces the sale's live state with the one `orders` imply (used by reconciliation when the
    /// store lost or corrupted its state): pending orders become held reservations, paid orders
    /// sold units, the rest nothing; the sale is created when absent.
    async fn restore(&self, sale: &Sale, orders: &[Order]) -> Result<()>;

    /// Takes the lock on rebuilding `sku` for `holder`, or renews it when `holder` has it, for
    /// `lease` from now: answers whether `holder` has it. The engine takes it before it rebuilds
    /// a lost or regressed sale, so that of several processes one restores and the others find
    /// the sale rebuilt ([`RebuildLeases`](crate::RebuildLeases) is a ready lock for a store in
    /// one process).
    async fn lock_rebuild(&self, sku: &Sku, holder: &str, lease: Duration) -> Result<bool>;

    /// Gives the lock on rebuilding `sku` back, if `holder` has it.
    async fn unlock_rebuild(&self, sku: &Sku, holder: &str) -> Result<()>;
}

macro_rules! forward_stock_store {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<T: StockStore + ?Sized> StockStore for $ty {
            async fn create_sale(&self, sale: &Sale) -> Result<bool> {
                (**self).create_sale(sale).await
            }
            async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
                (**self).sale(sku).await
            }
            async fn sales(&self) -> Result<Vec<Sale>> {
                (**self).sales().await
            }
            async fn sale_count(&self) -> Result<u64> {
                (**self).sale_count().await
            }
            async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Result<Option<Sale>> {
                (**self).end_sale(sku, at).await
            }
            // On the purchase path: the inner call's boxed future is handed on as it is (an
            // `async fn` here would box it again and move the outcome through one more state
            // machine, ~250 instructions a purchase). The colder methods keep the short form.
            fn reserve<'life0, 'life1, 'async_trait>(
                &'life0 self,
                request: &'life1 ReserveRequest,
            ) -> Pin<Box<dyn Future<Output = Result<ReserveOutcome>> + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                (**self).reserve(request)
            }
            async fn reservation(&self, sku: &Sku, order_id: OrderId) -> Result<Option<Reservation>> {
                (**self).reservation(sku, order_id).await
            }
            async fn reservation_by_key(&self, sku: &Sku, user: &UserId, key: &IdempotencyKey) -> Result<Option<Reservation>> {
                (**self).reservation_by_key(sku, user, key).await
            }
            async fn confirm(&self, sku: &Sku, order_id: OrderId, now: DateTime<Utc>) -> Result<ConfirmOutcome> {
                (**self).confirm(sku, order_id, now).await
            }
            async fn release(&self, sku: &Sku, order_id: OrderId, reason: ReleaseReason) -> Result<ReleaseOutcome> {
                (**self).release(sku, order_id, reason).await
            }
            async fn expired(&self, sku: &Sku, now: DateTime<Utc>, limit: usize) -> Result<Vec<Reservation>> {
                (**self).expired(sku, now, limit).await
            }
            async fn due_sales(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Sku>> {
                (**self).due_sales(now, limit).await
            }
            async fn release_many(&self, sku: &Sku, order_ids: &[OrderId], reason: ReleaseReason) -> Result<Vec<ReleaseOutcome>> {
                (**self).release_many(sku, order_ids, reason).await
            }
            async fn expire(&self, sku: &Sku, now: DateTime<Utc>, limit: usize, call: &ExpiryCall) -> Result<ExpiredBatch> {
                (**self).expire(sku, now, limit, call).await
            }
            async fn snapshot(&self, sku: &Sku) -> Result<StockSnapshot> {
                (**self).snapshot(sku).await
            }
            async fn restore(&self, sale: &Sale, orders: &[Order]) -> Result<()> {
                (**self).restore(sale, orders).await
            }
            async fn lock_rebuild(&self, sku: &Sku, holder: &str, lease: Duration) -> Result<bool> {
                (**self).lock_rebuild(sku, holder, lease).await
            }
            async fn unlock_rebuild(&self, sku: &Sku, holder: &str) -> Result<()> {
                (**self).unlock_rebuild(sku, holder).await
            }
        }
    )*};
}

forward_stock_store!(Arc<T>, Box<T>);
