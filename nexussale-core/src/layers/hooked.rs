//! [`Hooked`]: the one wrapper that forwards every backend trait method, and the [`Hook`] that
//! says what it adds.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::expiry::{ExpiredBatch, ExpiryCall};
use crate::ident::{IdempotencyKey, UserId};
use crate::order::{Order, OrderEvent, OrderId, OrderStatus};
use crate::queue::{Delivery, DeliveryTag, OrderQueue, QueueMark};
use crate::repository::{
    OrderPage, OrderQuery, OrderRepository, StatusCounts, Timeline, TransitionOutcome,
};
use crate::reservation::{
    ConfirmOutcome, ReleaseOutcome, ReleaseReason, Reservation, ReserveOutcome, ReserveRequest,
};
use crate::sale::{Sale, Sku, StockSnapshot};
use crate::stock::StockStore;
use crate::waiting_room::{
    Admission, AdmitRequest, PassUse, RoomStatus, Ticket, TicketId, WaitingRoomStore,
};

/// Which backend trait a [`Call`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// [`StockStore`].
    Stock,
    /// [`OrderQueue`].
    Queue,
    /// [`OrderRepository`].
    Repository,
    /// [`WaitingRoomStore`].
    WaitingRoom,
}

/// A backend trait method, by name (`sales` is on the stock store and the repository both: the
/// [`Call`]'s [`Backend`] tells them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each is the trait method of its name
pub enum Method {
    CreateSale,
    Sale,
    Sales,
    SaleCount,
    EndSale,
    Reserve,
    Reservation,
    ReservationByKey,
    Confirm,
    Release,
    Expired,
    DueSales,
    ReleaseMany,
    Expire,
    Snapshot,
    Restore,
    LockRebuild,
    UnlockRebuild,
    Publish,
    Receive,
    Ack,
    Nack,
    Mark,
    Drained,
    SaveSale,
    SalesAfter,
    Insert,
    Get,
    List,
    OrderCuts,
    Transition,
    TransitionMany,
    Counts,
    Timeline,
    AddRefusals,
    Refusals,
    Join,
    Ticket,
    Admit,
    UsePass,
    GiveBack,
    Settle,
    Close,
    Status,
    PassKey,
}

/// One call through a [`Hooked`] backend, as its [`Hook`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Call {
    /// The trait.
    pub backend: Backend,
    /// The method.
    pub method: Method,
}

impl Backend {
    /// `stock`, `queue`, `repository` or `waiting_room`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Stock => "stock",
            Backend::Queue => "queue",
            Backend::Repository => "repository",
            Backend::WaitingRoom => "waiting_room",
        }
    }
}

impl Method {
    /// The trait method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::CreateSale => "create_sale",
            Method::Sale => "sale",
            Method::Sales => "sales",
            Method::SaleCount => "sale_count",
            Method::EndSale => "end_sale",
            Method::Reserve => "reserve",
            Method::Reservation => "reservation",
            Method::ReservationByKey => "reservation_by_key",
            Method::Confirm => "confirm",
            Method::Release => "release",
            Method::Expired => "expired",
            Method::DueSales => "due_sales",
            Method::ReleaseMany => "release_many",
            Method::Expire => "expire",
            Method::Snapshot => "snapshot",
            Method::Restore => "restore",
            Method::LockRebuild => "lock_rebuild",
            Method::UnlockRebuild => "unlock_rebuild",
            Method::Publish => "publish",
            Method::Receive => "receive",
            Method::Ack => "ack",
            Method::Nack => "nack",
            Method::Mark => "mark",
            Method::Drained => "drained",
            Method::SaveSale => "save_sale",
            Method::SalesAfter => "sales_after",
            Method::Insert => "insert",
            Method::Get => "get",
            Method::List => "list",
            Method::OrderCuts => "order_cuts",
            Method::Transition => "transition",
            Method::TransitionMany => "transition_many",
            Method::Counts => "counts",
            Method::Timeline => "timeline",
            Method::AddRefusals => "add_refusals",
            Method::Refusals => "refusals",
            Method::Join => "join",
            Method::Ticket => "ticket",
            Method::Admit => "admit",
            Method::UsePass => "use_pass",
            Method::GiveBack => "give_back",
            Method::Settle => "settle",
            Method::Close => "close",
            Method::Status => "status",
            Method::PassKey => "pass_key",
        }
    }
}

/// The backend's answer to a [`Call`], as its [`Hook`] sees it.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    /// The call succeeded with this value (the method's `Ok` type: see [`Answer::value`]).
    Ok(&'a dyn Any),
    /// The call failed.
    Err(&'a Error),
}

impl<'a> Answer<'a> {
    /// The successful value, if the call succeeded and its `Ok` type is `T` (`u64` for
    /// [`Method::Insert`], `Vec<Delivery>` for [`Method::Receive`], …).
    pub fn value<T: Any>(&self) -> Option<&'a T> {
        match self {
            Answer::Ok(value) => value.downcast_ref(),
            Answer::Err(_) => None,
        }
    }

    /// The error, if the call failed.
    pub fn error(&self) -> Option<&'a Error> {
        match self {
            Answer::Ok(_) => None,
            Answer::Err(err) => Some(err),
        }
    }
}

/// What a [`Hooked`] backend adds around each call: the one place a decorator's behaviour is
/// written, while [`Hooked`] forwards every trait method (of all three backend traits) once.
///
/// # Contract
///
/// - [`before`](Hook::before) runs first; an error it returns is the call's answer and the
///   backend never sees the call.
/// - Then the call waits [`delay`](Hook::delay), if any (a slow network), and reaches the
///   backend.
/// - [`after`](Hook::after) runs with the backend's answer; an error it returns replaces that
///   answer (the call took effect but its reply was lost, as a cut connection does). It is not
///   called when `before` refused the call.
/// - Both are synchronous and run on the caller's task: keep them short (a counter, a clock read,
///   a log line).
/// - [`span`](Hook::span), if not disabled, is the span the call runs in (from `before` to
///   `after`).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Instant;
///
/// use nexussale_core::layers::{Answer, Call, Hook, Hooked, Method};
/// use nexussale_core::memory::MemoryStockStore;
/// use nexussale_core::{DynStockStore, Sale, Sku, StockStore};
///
/// /// Counts the sales created through the store.
/// #[derive(Debug, Default)]
/// struct Created(AtomicU64);
///
/// impl Hook for Created {
///     fn after(&self, call: Call, _: Instant, answer: Answer<'_>) -> Option<nexussale_core::Error> {
///         if call.method == Method::CreateSale && answer.value::<bool>() == Some(&true) {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///         None
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> nexussale_core::Result<()> {
/// let store = Arc::new(Hooked::new(MemoryStockStore::new(), Created::default()));
/// let dynamic: DynStockStore = store.clone();
/// let sale = Sale::new(Sku::new("ps5")?, 1);
/// assert!(dynamic.create_sale(&sale).await?);
/// assert!(!dynamic.create_sale(&sale).await?); // exists already
/// assert_eq!(store.hook().0.load(Ordering::Relaxed), 1);
/// # Ok(()) }
/// ```
pub trait Hook: Send + Sync + Debug + 'static {
    /// Runs before the call reaches the backend.
    fn before(&self, call: Call) -> Result<()> {
        let _ = call;
        Ok(())
    }

    /// How long the call waits before it reaches the backend; `None` (the default): no wait.
    fn delay(&self, call: Call) -> Option<Duration> {
        let _ = call;
        None
    }

    /// Runs once the backend answered; `started` is when the call passed
    /// [`before`](Hook::before), so a [`delay`](Hook::delay) counts as the backend's time.
    fn after(&self, call: Call, started: Instant, answer: Answer<'_>) -> Option<Error> {
        let _ = (call, started, answer);
        None
    }

    /// The span the call runs in; [`Span::none`](tracing::Span::none) (the default): none.
    fn span(&self, call: Call) -> tracing::Span {
        let _ = call;
        tracing::Span::none()
    }
}

impl<H: Hook + ?Sized> Hook for Arc<H> {
    fn before(&self, call: Call) -> Result<()> {
        (**self).before(call)
    }

    fn delay(&self, call: Call) -> Option<Duration> {
        (**self).delay(call)
    }

    fn after(&self, call: Call, started: Instant, answer: Answer<'_>) -> Option<Error> {
        (**self).after(call, started, answer)
    }

    fn span(&self, call: Call) -> tracing::Span {
        (**self).span(call)
    }
}

/// A backend (`T`: a [`StockStore`], [`OrderQueue`] or [`OrderRepository`]) with a [`Hook`]
/// around each of its calls. It implements whichever of the three traits `T` does.
#[derive(Debug)]
pub struct Hooked<T, H> {
    inner: T,
    hook: H,
}

impl<T, H: Hook> Hooked<T, H> {
    /// `inner`, each call through `hook`.
    pub fn new(inner: T, hook: H) -> Self {
        Self { inner, hook }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }

    // Takes only the hook, so the future is `Send` whatever `T` is.
    async fn call<R: Any>(
        hook: &H,
        backend: Backend,
        method: Method,
        call: impl Future<Output = Result<R>> + Send,
    ) -> Result<R> {
        let call_of = Call { backend, method };
        let span = hook.span(call_of);
        if span.is_disabled() {
            return Self::call_in(hook, call_of, call).await;
        }
        Self::call_in(hook, call_of, call).instrument(span).await
    }

    async fn call_in<R: Any>(
        hook: &H,
        call_of: Call,
        call: impl Future<Output = Result<R>> + Send,
    ) -> Result<R> {
        hook.before(call_of)?;
        let started = Instant::now();
        if let Some(delay) = hook.delay(call_of) {
            tokio::time::sleep(delay).await;
        }
        let answer = call.await;
        let seen = match &answer {
            Ok(value) => Answer::Ok(value),
            Err(err) => Answer::Err(err),
        };
        match hook.after(call_of, started, seen) {
            Some(replaced) => Err(replaced),
            None => answer,
        }
    }
}

#[async_trait]
impl<T: StockStore, H: Hook> StockStore for Hooked<T, H> {
    async fn create_sale(&self, sale: &Sale) -> Result<bool> {
        let call = self.inner.create_sale(sale);
        Self::call(&self.hook, Backend::Stock, Method::CreateSale, call).await
    }

    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
        let call = self.inner.sale(sku);
        Self::call(&self.hook, Backend::Stock, Method::Sale, call).await
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        let call = self.inner.sales();
        Self::call(&self.hook, Backend::Stock, Method::Sales, call).await
    }

    async fn sale_count(&self) -> Result<u64> {
        let call = self.inner.sale_count();
        Self::call(&self.hook, Backend::Stock, Method::SaleCount, call).await
    }

    async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Result<Option<Sale>> {
        let call = self.inner.end_sale(sku, at);
        Self::call(&self.hook, Backend::Stock, Method::EndSale, call).await
    }

    async fn reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome> {
        let call = self.inner.reserve(request);
        Self::call(&self.hook, Backend::Stock, Method::Reserve, call).await
    }

    async fn reservation(&self, sku: &Sku, order_id: OrderId) -> Result<Option<Reservation>> {
        let call = self.inner.reservation(sku, order_id);
        Self::call(&self.hook, Backend::Stock, Method::Reservation, call).await
    }

    async fn reservation_by_key(
        &self,
        sku: &Sku,
        user: &UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<Reservation>> {
        let call = self.inner.reservation_by_key(sku, user, key);
        Self::call(&self.hook, Backend::Stock, Method::ReservationByKey, call).await
    }

    async fn confirm(
        &self,
        sku: &Sku,
        order_id: OrderId,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome> {
        let call = self.inner.confirm(sku, order_id, now);
        Self::call(&self.hook, Backend::Stock, Method::Confirm, call).await
    }

    async fn release(
        &self,
        sku: &Sku,
        order_id: OrderId,
        reason: ReleaseReason,
    ) -> Result<ReleaseOutcome> {
        let call = self.inner.release(sku, order_id, reason);
        Self::call(&self.hook, Backend::Stock, Method::Release, call).await
    }

    async fn expired(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Reservation>> {
        let call = self.inner.expired(sku, now, limit);
        Self::call(&self.hook, Backend::Stock, Method::Expired, call).await
    }

    async fn due_sales(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Sku>> {
        let call = self.inner.due_sales(now, limit);
        Self::call(&self.hook, Backend::Stock, Method::DueSales, call).await
    }

    async fn release_many(
        &self,
        sku: &Sku,
        order_ids: &[OrderId],
        reason: ReleaseReason,
    ) -> Result<Vec<ReleaseOutcome>> {
        let call = self.inner.release_many(sku, order_ids, reason);
        Self::call(&self.hook, Backend::Stock, Method::ReleaseMany, call).await
    }

    async fn expire(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
        expiry: &ExpiryCall,
    ) -> Result<ExpiredBatch> {
        let call = self.inner.expire(sku, now, limit, expiry);
        Self::call(&self.hook, Backend::Stock, Method::Expire, call).await
    }

    async fn snapshot(&self, sku: &Sku) -> Result<StockSnapshot> {
        let call = self.inner.snapshot(sku);
        Self::call(&self.hook, Backend::Stock, Method::Snapshot, call).await
    }

    async fn restore(&self, sale: &Sale, orders: &[Order]) -> Result<()> {
        let call = self.inner.restore(sale, orders);
        Self::call(&self.hook, Backend::Stock, Method::Restore, call).await
    }

    async fn lock_rebuild(&self, sku: &Sku, holder: &str, lease: Duration) -> Result<bool> {
        let call = self.inner.lock_rebuild(sku, holder, lease);
        Self::call(&self.hook, Backend::Stock, Method::LockRebuild, call).await
    }

    async fn unlock_rebuild(&self, sku: &Sku, holder: &str) -> Result<()> {
        let call = self.inner.unlock_rebuild(sku, holder);
        Self::call(&self.hook, Backend::Stock, Method::UnlockRebuild, call).await
    }
}

#[async_trait]
impl<T: OrderQueue, H: Hook> OrderQueue for Hooked<T, H> {
    async fn publish(&self, event: &OrderEvent) -> Result<()> {
        let call = self.inner.publish(event);
        Self::call(&self.hook, Backend::Queue, Method::Publish, call).await
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let call = self.inner.receive(max, wait);
        Self::call(&self.hook, Backend::Queue, Method::Receive, call).await
    }

    async fn ack(&self, tags: &[DeliveryTag]) -> Result<()> {
        let call = self.inner.ack(tags);
        Self::call(&self.hook, Backend::Queue, Method::Ack, call).await
    }

    async fn nack(&self, tags: &[DeliveryTag]) -> Result<()> {
        let call = self.inner.nack(tags);
        Self::call(&self.hook, Backend::Queue, Method::Nack, call).await
    }

    async fn mark(&self) -> Result<QueueMark> {
        let call = self.inner.mark();
        Self::call(&self.hook, Backend::Queue, Method::Mark, call).await
    }

    async fn drained(&self, mark: &QueueMark) -> Result<bool> {
        let call = self.inner.drained(mark);
        Self::call(&self.hook, Backend::Queue, Method::Drained, call).await
    }
}

#[async_trait]
impl<T: OrderRepository, H: Hook> OrderRepository for Hooked<T, H> {
    async fn save_sale(&self, sale: &Sale) -> Result<bool> {
        let call = self.inner.save_sale(sale);
        Self::call(&self.hook, Backend::Repository, Method::SaveSale, call).await
    }

    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
        let call = self.inner.sale(sku);
        Self::call(&self.hook, Backend::Repository, Method::Sale, call).await
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        let call = self.inner.sales();
        Self::call(&self.hook, Backend::Repository, Method::Sales, call).await
    }

    async fn sales_after(&self, after: Option<Sku>, limit: usize) -> Result<Vec<Sale>> {
        let call = self.inner.sales_after(after, limit);
        Self::call(&self.hook, Backend::Repository, Method::SalesAfter, call).await
    }

    async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Result<Option<Sale>> {
        let call = self.inner.end_sale(sku, at);
        Self::call(&self.hook, Backend::Repository, Method::EndSale, call).await
    }

    async fn insert(&self, orders: &[Order]) -> Result<u64> {
        let call = self.inner.insert(orders);
        Self::call(&self.hook, Backend::Repository, Method::Insert, call).await
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>> {
        let call = self.inner.get(id);
        Self::call(&self.hook, Backend::Repository, Method::Get, call).await
    }

    async fn list(&self, query: &OrderQuery) -> Result<OrderPage> {
        let call = self.inner.list(query);
        Self::call(&self.hook, Backend::Repository, Method::List, call).await
    }

    async fn order_cuts(&self, sku: &Sku, parts: usize) -> Result<Vec<OrderId>> {
        let call = self.inner.order_cuts(sku, parts);
        Self::call(&self.hook, Backend::Repository, Method::OrderCuts, call).await
    }

    async fn transition(
        &self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
    ) -> Result<TransitionOutcome> {
        let call = self.inner.transition(id, from, to, at);
        Self::call(&self.hook, Backend::Repository, Method::Transition, call).await
    }

    async fn transition_many(
        &self,
        ids: &[OrderId],
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
    ) -> Result<Vec<TransitionOutcome>> {
        let call = self.inner.transition_many(ids, from, to, at);
        Self::call(
            &self.hook,
            Backend::Repository,
            Method::TransitionMany,
            call,
        )
        .await
    }

    async fn counts(&self, sku: &Sku) -> Result<StatusCounts> {
        let call = self.inner.counts(sku);
        Self::call(&self.hook, Backend::Repository, Method::Counts, call).await
    }

    async fn timeline(&self, sku: &Sku, bucket: Duration, units: u64) -> Result<Timeline> {
        let call = self.inner.timeline(sku, bucket, units);
        Self::call(&self.hook, Backend::Repository, Method::Timeline, call).await
    }

    async fn add_refusals(&self, sku: &Sku, counts: &[(&'static str, u64)]) -> Result<()> {
        let call = self.inner.add_refusals(sku, counts);
        Self::call(&self.hook, Backend::Repository, Method::AddRefusals, call).await
    }

    async fn refusals(&self, sku: &Sku) -> Result<BTreeMap<String, u64>> {
        let call = self.inner.refusals(sku);
        Self::call(&self.hook, Backend::Repository, Method::Refusals, call).await
    }
}

#[async_trait]
impl<T: WaitingRoomStore, H: Hook> WaitingRoomStore for Hooked<T, H> {
    async fn join(&self, sale: &Sale, user: &UserId, now: DateTime<Utc>) -> Result<Ticket> {
        let call = self.inner.join(sale, user, now);
        Self::call(&self.hook, Backend::WaitingRoom, Method::Join, call).await
    }

    async fn ticket(&self, sku: &Sku, id: &TicketId, now: DateTime<Utc>) -> Result<Option<Ticket>> {
        let call = self.inner.ticket(sku, id, now);
        Self::call(&self.hook, Backend::WaitingRoom, Method::Ticket, call).await
    }

    async fn admit(&self, sale: &Sale, request: &AdmitRequest) -> Result<Admission> {
        let call = self.inner.admit(sale, request);
        Self::call(&self.hook, Backend::WaitingRoom, Method::Admit, call).await
    }

    async fn use_pass(
        &self,
        sku: &Sku,
        id: &TicketId,
        nonce: u64,
        now: DateTime<Utc>,
    ) -> Result<PassUse> {
        let call = self.inner.use_pass(sku, id, nonce, now);
        Self::call(&self.hook, Backend::WaitingRoom, Method::UsePass, call).await
    }

    async fn give_back(&self, sku: &Sku, id: &TicketId, nonce: u64) -> Result<bool> {
        let call = self.inner.give_back(sku, id, nonce);
        Self::call(&self.hook, Backend::WaitingRoom, Method::GiveBack, call).await
    }

    async fn settle(&self, sku: &Sku) -> Result<()> {
        let call = self.inner.settle(sku);
        Self::call(&self.hook, Backend::WaitingRoom, Method::Settle, call).await
    }

    async fn close(&self, sku: &Sku) -> Result<bool> {
        let call = self.inner.close(sku);
        Self::call(&self.hook, Backend::WaitingRoom, Method::Close, call).await
    }

    async fn status(&self, sku: &Sku) -> Result<RoomStatus> {
        let call = self.inner.status(sku);
        Self::call(&self.hook, Backend::WaitingRoom, Method::Status, call).await
    }

    async fn pass_key(&self, candidate: &[u8]) -> Result<Vec<u8>> {
        let call = self.inner.pass_key(candidate);
        Self::call(&self.hook, Backend::WaitingRoom, Method::PassKey, call).await
    }
}
