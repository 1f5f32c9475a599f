//! [`OrderRepository`]: the system of record for orders and sale definitions.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ident::{Sku, UserId};
use crate::order::{Order, OrderId, OrderStatus};
use crate::sale::Sale;

/// A shared, type-erased [`OrderRepository`].
pub type DynOrderRepository = Arc<dyn OrderRepository>;

/// The page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest page a listing returns.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which orders to list, newest first, one page at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderQuery {
    /// Only this buyer's orders.
    pub user: Option<UserId>,
    /// Only this sale's orders.
    pub sku: Option<Sku>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only orders older than this one: the `next` cursor of the previous page.
    pub after: Option<OrderId>,
    /// Page size, 1..=[`MAX_PAGE_SIZE`]; `None` means [`DEFAULT_PAGE_SIZE`].
    pub limit: Option<u32>,
}

/// A listing's page size: `limit` checked (1..=[`MAX_PAGE_SIZE`]), or [`DEFAULT_PAGE_SIZE`].
pub(crate) fn page_size(limit: Option<u32>) -> Result<usize> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE as usize),
        Some(limit @ 1..=MAX_PAGE_SIZE) => Ok(limit as usize),
        Some(_) => Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        )),
    }
}

impl OrderQuery {
    /// The page size to use: the asked size, checked, or the default; once the filters are ones
    /// an index serves ([`check_filters`](Self::check_filters)). Every repository's `list`
    /// starts with it.
    pub fn page_size(&self) -> Result<usize> {
        self.check_filters()?;
        page_size(self.limit)
    }

    /// Refuses a `status` filter without `sku` or `user`: no index serves it (a repository would
    /// walk every order it holds to fill a page of a rare status), while a buyer's orders, a
    /// sale's orders in a status and the newest orders of all are each one index range.
    pub fn check_filters(&self) -> Result<()> {
        match (&self.status, &self.sku, &self.user) {
            (Some(_), None, None) => Err(Error::invalid(
                "status",
                "filters orders only together with sku or user (allowed: user, sku, sku and status, user and status, or none)",
            )),
            _ => Ok(()),
        }
    }

    /// Whether `order` passes the query's filters (not its cursor).
    pub fn matches(&self, order: &Order) -> bool {
        self.user.as_ref().is_none_or(|user| *user == order.user)
            && self.sku.as_ref().is_none_or(|sku| *sku == order.sku)
            && self.status.is_none_or(|status| status == order.status)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderPage {
    /// The orders, newest (highest id) first.
    pub orders: Vec<Order>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<OrderId>,
}

/// The answer to [`OrderRepository::transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// The status changed.
    Applied,
    /// The order is in another status: nothing changed.
    Mismatch(OrderStatus),
    /// No such order.
    NotFound,
}

/// Orders and units of one status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Number of orders.
    pub orders: u64,
    /// Sum of their quantities.
    pub units: u64,
}

/// How a sale's orders spread over time: what its report is made of
/// ([`OrderRepository::timeline`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// When its first order was placed (`created_at`); `None`: no order.
    pub first: Option<DateTime<Utc>>,
    /// When its last order was placed.
    pub last: Option<DateTime<Utc>>,
    /// When the orders placed so far first held the units asked about, in all statuses (for a
    /// sale's stock: when it sold out, units coming back later aside); `None`: never.
    pub reached: Option<DateTime<Utc>>,
    /// Orders and units placed in each bucket of time from `first` on (bucket `i` covers
    /// `first + i × bucket` up to the next), the empty ones included, up to the one of `last`.
    pub buckets: Vec<Tally>,
}

/// The most buckets a [`Timeline`] may be asked for: a caller widens its buckets to stay under.
pub const MAX_TIMELINE_BUCKETS: u64 = 10_000;

impl Timeline {
    /// The timeline of orders placed at the given instants with the given quantities, in any
    /// order: for a repository that reads them from an index of its own.
    ///
    /// ```
    /// use std::time::Duration;
    /// use chrono::{TimeZone, Utc};
    /// use nexussale_core::{Tally, Timeline};
    /// let at = |ms| Utc.timestamp_millis_opt(ms).unwrap();
    /// let timeline = Timeline::of(vec![(at(2_500), 2), (at(0), 1), (at(900), 1)], Duration::from_secs(1), 3);
    /// assert_eq!(timeline.first, Some(at(0)));
    /// assert_eq!(timeline.reached, Some(at(2_500)));
    /// let orders: Vec<u64> = timeline.buckets.iter().map(|tally| tally.orders).collect();
    /// assert_eq!(orders, [2, 0, 1]);
    /// ```
    pub fn of(mut placed: Vec<(DateTime<Utc>, u32)>, bucket: Duration, units: u64) -> Self {
        placed.sort_unstable();
        let (Some(&(first, _)), Some(&(last, _))) = (placed.first(), placed.last()) else {
            return Self::default();
        };
        let width = bucket_micros(bucket);
        let mut buckets = vec![Tally::default(); (bucket_of(first, last, width) + 1) as usize];
        let (mut held, mut reached) = (0u64, None);
        for (at, quantity) in placed {
            let tally = &mut buckets[bucket_of(first, at, width) as usize];
            tally.orders += 1;
            tally.units += u64::from(quantity);
            held += u64::from(quantity);
            if reached.is_none() && held >= units {
                reached = Some(at);
            }
        }
        Self {
            first: Some(first),
            last: Some(last),
            reached,
            buckets,
        }
    }
}

/// A bucket's width in µs: at least one.
pub(crate) fn bucket_micros(bucket: Duration) -> i64 {
    i64::try_from(bucket.as_micros()).unwrap_or(i64::MAX).max(1)
}

/// The bucket `at` falls in, counted from `first`.
fn bucket_of(first: DateTime<Utc>, at: DateTime<Utc>, width: i64) -> i64 {
    (at - first).num_microseconds().unwrap_or(i64::MAX).max(0) / width
}

/// Orders of one sale, per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Pending orders: units the stock store should hold as reserved.
    pub pending: Tally,
    /// Paid orders: units the stock store should count as sold.
    pub paid: Tally,
    /// Cancelled orders.
    pub cancelled: Tally,
    /// Expired orders.
    pub expired: Tally,
}

impl StatusCounts {
    /// The tally of one status.
    pub fn get(&self, status: OrderStatus) -> Tally {
        match status {
            OrderStatus::Pending => self.pending,
            OrderStatus::Paid => self.paid,
            OrderStatus::Cancelled => self.cancelled,
            OrderStatus::Expired => self.expired,
        }
    }

    /// The tally of one status, to change.
    pub fn get_mut(&mut self, status: OrderStatus) -> &mut Tally {
        match status {
            OrderStatus::Pending => &mut self.pending,
            OrderStatus::Paid => &mut self.paid,
            OrderStatus::Cancelled => &mut self.cancelled,
            OrderStatus::Expired => &mut self.expired,
        }
    }
}

/// Persists orders and sale definitions.
///
/// # Contract
///
/// - **Idempotent insert.** [`insert`](Self::insert) stores each order whose id is new and leaves an
///   existing id untouched, whatever the stored or the given status; the same batch inserted twice,
///   or by two tasks at once, yields each order once. It answers how many orders were new. A batch
///   is all or nothing.
/// - **Compare-and-set.** [`transition`](Self::transition) changes an order's status only if it is
///   `from`, atomically, and says whether it did: a `Mismatch` names a status other than `from`
///   (an order inserted while the transition looked answers `Applied` or `NotFound`).
///   [`transition_many`](Self::transition_many) answers each of its orders the same way; after
///   an error some may have changed (called again, those answer `Mismatch(to)`).
/// - **Stable pagination.** [`list`](Self::list) returns orders by id, newest first; following
///   `next` cursors visits every matching order exactly once, with no gap or repeat, even while
///   orders are inserted.
/// - **Ending.** [`end_sale`](Self::end_sale) stores the definition [`Sale::ended`] at `at` (an
///   end only moves earlier): [`sale`](Self::sale) and [`sales`](Self::sales) answer it from then
///   on, so a stock store rebuilt from the repository keeps the sale ended.
/// - **Timeline.** [`timeline`](Self::timeline) reads one sale's orders through an index on the
///   sale and the creation instant, never the whole table.
/// - **Refusals.** [`add_refusals`](Self::add_refusals) adds to a sale's counts of refused
///   purchases by reason (concurrent additions all count) and ignores a sale it does not store;
///   [`refusals`](Self::refusals) answers the totals.
/// - **Durability.** `Ok` means the write is committed.
///
/// # Example
///
/// ```
/// # use nexussale_core::{memory::MemoryOrderRepository, OrderQuery, OrderRepository};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> nexussale_core::Result<()> {
/// let repository = MemoryOrderRepository::new();
/// let page = repository.list(&OrderQuery::default()).await?;
/// assert!(page.orders.is_empty() && page.next.is_none());
/// # Ok(()) }
/// ```
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait OrderRepository: Send + Sync + Debug + 'static {
    /// Stores a sale's definition. `Ok(false)` when one with this sku exists already (left
    /// unchanged).
    async fn save_sale(&self, sale: &Sale) -> Result<bool>;

    /// One stored sale definition, or `None`. (A lookup by key: the engine calls it for a sku
    /// its stock store does not know, and must not scan every sale to answer.)
    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>>;

    /// Every stored sale definition.
    async fn sales(&self) -> Result<Vec<Sale>>;

    /// Up to `limit` stored sale definitions in sku order, after `after` when given: one page
    /// of `GET /v1/sales`, read by key range (MySQL: the primary key), never the whole table.
    ///
    /// The default reads [`sales`](Self::sales) and cuts the page out of it.
    async fn sales_after(&self, after: Option<Sku>, limit: usize) -> Result<Vec<Sale>> {
        let mut sales = self.sales().await?;
        sales.retain(|sale| after.as_ref().is_none_or(|after| &sale.sku > after));
        sales.sort_by(|a, b| a.sku.cmp(&b.sku));
        sales.truncate(limit);
        Ok(sales)
    }

    /// Ends the stored sale at `at` unless it ended earlier (see the contract); answers the
    /// definition stored now, `None` when there is none.
    async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Result<Option<Sale>>;

    /// Stores the orders whose ids are new; answers how many were (see the contract).
    async fn insert(&self, orders: &[Order]) -> Result<u64>;

    /// One order.
    async fn get(&self, id: OrderId) -> Result<Option<Order>>;

    /// One page of the orders `query` selects.
    async fn list(&self, query: &OrderQuery) -> Result<OrderPage>;

    /// Up to `parts - 1` ids that cut the sale's orders into `parts` runs of about as many
    /// orders each, newest first: a rebuild lists the runs at once, each from its upper cut
    /// (a [`list`](Self::list) cursor, `after`) down to its lower, so a repository that answers
    /// them serves a big sale's listing on several connections instead of one. Any ids are
    /// safe (the runs cover every order whatever the cuts); even ones save time.
    ///
    /// The default answers none: the sale is listed in one run.
    async fn order_cuts(&self, sku: &Sku, parts: usize) -> Result<Vec<OrderId>> {
        let _ = (sku, parts);
        Ok(Vec::new())
    }

    /// Sets the status to `to` if it is `from`; `at` becomes `updated_at`.
    async fn transition(
        &self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
    ) -> Result<TransitionOutcome>;

    /// [`transition`](Self::transition) for each of `ids`: one answer per id, in order. The
    /// expiry sweeper records a batch of lapsed reservations with it; MySQL does a batch in one
    /// transaction instead of a commit per order.
    ///
    /// The default calls `transition` for each, one after another.
    async fn transition_many(
        &self,
        ids: &[OrderId],
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
    ) -> Result<Vec<TransitionOutcome>> {
        let mut outcomes = Vec::with_capacity(ids.len());
        for &id in ids {
            outcomes.push(self.transition(id, from, to, at).await?);
        }
        Ok(outcomes)
    }

    /// The sale's orders and units per status.
    async fn counts(&self, sku: &Sku) -> Result<StatusCounts>;

    /// How the sale's orders spread over time, in buckets of `bucket` (at least a microsecond;
    /// the caller keeps their number under [`MAX_TIMELINE_BUCKETS`]), and when they first held
    /// `units` units in all (see the contract).
    async fn timeline(&self, sku: &Sku, bucket: Duration, units: u64) -> Result<Timeline>;

    /// Adds `counts` (reason, purchases refused) to the sale's refusals, if the sale is stored.
    async fn add_refusals(&self, sku: &Sku, counts: &[(&'static str, u64)]) -> Result<()>;

    /// The sale's purchases refused, by reason (reasons never refused are absent).
    async fn refusals(&self, sku: &Sku) -> Result<BTreeMap<String, u64>>;
}

macro_rules! forward_order_repository {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<T: OrderRepository + ?Sized> OrderRepository for $ty {
            async fn save_sale(&self, sale: &Sale) -> Result<bool> {
                (**self).save_sale(sale).await
            }
            async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
                (**self).sale(sku).await
            }
            async fn sales(&self) -> Result<Vec<Sale>> {
                (**self).sales().await
            }
            async fn sales_after(&self, after: Option<Sku>, limit: usize) -> Result<Vec<Sale>> {
                (**self).sales_after(after, limit).await
            }
            async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Result<Option<Sale>> {
                (**self).end_sale(sku, at).await
            }
            async fn insert(&self, orders: &[Order]) -> Result<u64> {
                (**self).insert(orders).await
            }
            async fn get(&self, id: OrderId) -> Result<Option<Order>> {
                (**self).get(id).await
            }
            async fn list(&self, query: &OrderQuery) -> Result<OrderPage> {
                (**self).list(query).await
            }
            async fn order_cuts(&self, sku: &Sku, parts: usize) -> Result<Vec<OrderId>> {
                (**self).order_cuts(sku, parts).await
            }
            async fn transition(
                &self,
                id: OrderId,
                from: OrderStatus,
                to: OrderStatus,
                at: DateTime<Utc>,
            ) -> Result<TransitionOutcome> {
                (**self).transition(id, from, to, at).await
            }
            async fn transition_many(
                &self,
                ids: &[OrderId],
                from: OrderStatus,
                to: OrderStatus,
                at: DateTime<Utc>,
            ) -> Result<Vec<TransitionOutcome>> {
                (**self).transition_many(ids, from, to, at).await
            }
            async fn counts(&self, sku: &Sku) -> Result<StatusCounts> {
                (**self).counts(sku).await
            }
            async fn timeline(&self, sku: &Sku, bucket: Duration, units: u64) -> Result<Timeline> {
                (**self).timeline(sku, bucket, units).await
            }
            async fn add_refusals(&self, sku: &Sku, counts: &[(&'static str, u64)]) -> Result<()> {
                (**self).add_refusals(sku, counts).await
            }
            async fn refusals(&self, sku: &Sku) -> Result<BTreeMap<String, u64>> {
                (**self).refusals(sku).await
            }
        }
    )*};
}

forward_order_repository!(Arc<T>, Box<T>);
