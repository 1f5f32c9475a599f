//! Creating and reading sales, and the engine's cache of their definitions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use tracing::debug;

use super::FlashSale;
use crate::error::{Error, Result};
use crate::repository::page_size;
use crate::sale::{EarlyEnd, Sale, SaleState, Sku, StockSnapshot};
use crate::waiting_room::RoomStatus;

/// Sales whose stock [`FlashSale::sales`] and [`FlashSale::sales_page`] read at once.
const SNAPSHOTS_IN_FLIGHT: usize = 32;

/// What [`FlashSale::sale_check`] answers.
pub(super) struct SaleCheck {
    pub(super) per_user_limit: u32,
    /// The tag of the sale's order ids (computed once, in its cache entry).
    pub(super) tag: u16,
    /// The sale's window at the instant asked about.
    pub(super) window: SaleState,
    /// Whether the sale is in its sold-out pause.
    pub(super) sold_out: bool,
    /// Whether the stock store lost the sale and it is being rebuilt.
    pub(super) rebuilding: bool,
    /// Whether purchases need a waiting-room pass.
    pub(super) waiting_room: bool,
}

/// A cached sale definition and its sold-out flag.
pub(super) struct SaleEntry {
    /// The definition as created; [`definition`](Self::definition) adds an early end.
    sale: Sale,
    early_end: EarlyEnd,
    /// The tag its order ids carry ([`OrderId::sale_tag`](crate::OrderId::sale_tag)).
    pub(super) tag: u16,
    /// Until this instant (Unix milliseconds), purchases are answered sold out without asking the
    /// stock store; 0 when the sale is not known to be sold out.
    sold_out_until: AtomicI64,
    /// Set while the sale's stock is rebuilt from the repository (see `rebuild`).
    pub(super) rebuilding: AtomicBool,
    /// Set when units of the sale may have moved through this process (a purchase of the open
    /// sale, a payment, units returned) since
    /// [`FlashSale::touched_sales`] last looked: what the books check visits.
    touched: AtomicBool,
}

impl SaleEntry {
    fn new(sale: Sale) -> Self {
        Self {
            tag: crate::order::OrderId::sale_tag(&sale.sku),
            sale,
            early_end: EarlyEnd::default(),
            sold_out_until: AtomicI64::new(0),
            rebuilding: AtomicBool::new(false),
            touched: AtomicBool::new(false),
        }
    }

    /// Marks the sale touched; a load first, so that a hot sale's purchases only read the flag
    /// once it is set (a store on each would bounce its cache line between cores).
    fn touch(&self) {
        if !self.touched.load(Ordering::Relaxed) {
            self.touched.store(true, Ordering::Relaxed);
        }
    }

    /// The definition, ended early if it was.
    pub(super) fn definition(&self) -> Sale {
        self.early_end.apply(&self.sale)
    }

    /// Takes the early end of `sale` (the store's or the repository's definition), if it has
    /// one before this entry's.
    fn learn_end(&self, sale: &Sale) {
        if let Some(end) = sale.ends_at
            && self.sale.ends_at.is_none_or(|created| end < created)
        {
            self.early_end.end(end);
        }
    }

    pub(super) fn sku(&self) -> &Sku {
        &self.sale.sku
    }

    fn is_sold_out(&self, now_ms: i64) -> bool {
        now_ms < self.sold_out_until.load(Ordering::Acquire)
    }

    fn mark_sold_out(&self, now_ms: i64, recheck: std::time::Duration) {
        let until = now_ms.saturating_add(recheck.as_millis() as i64);
        self.sold_out_until.store(until, Ordering::Release);
    }

    pub(super) fn units_returned(&self) {
        self.sold_out_until.store(0, Ordering::Release);
    }
}

/// A sale with its live stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleView {
    /// The definition.
    pub sale: Sale,
    /// The stock counts.
    pub snapshot: StockSnapshot,
    /// Where the sale stands now.
    pub state: SaleState,
    /// The counts of its waiting room, read right after the stock (so the passes outstanding
    /// never exceed what the rule allows for the units shown); `None` without one.
    pub room: Option<RoomStatus>,
}

/// Which sales [`FlashSale::sales_page`] lists: in sku order, a page at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaleQuery {
    /// Only sales in this state.
    pub state: Option<SaleState>,
    /// Only sales after this sku: the `next` cursor of the previous page.
    pub after: Option<Sku>,
    /// Page size, 1..=[`MAX_PAGE_SIZE`](crate::MAX_PAGE_SIZE); `None` means
    /// [`DEFAULT_PAGE_SIZE`](crate::DEFAULT_PAGE_SIZE).
    pub limit: Option<u32>,
}

/// One page of sales.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalePage {
    /// The sales, in sku order.
    pub sales: Vec<SaleView>,
    /// The cursor of the next page (`after`), `None` on the last.
    pub next: Option<Sku>,
}

impl FlashSale {
    /// One page of sales in sku order, their stock counted now: only the page's sales are
    /// counted (a store round trip each), however many sales there are.
    pub async fn sales_page(&self, query: &SaleQuery) -> Result<SalePage> {
        let limit = page_size(query.limit)?;
        // One more than the page: whether a next page exists, without counting it.
        let mut sales = self
            .inner
            .repository
            .sales_after(query.after.clone(), limit + 1)
            .await?;
        let more = sales.len() > limit;
        sales.truncate(limit);
        // The cursor is the last sale looked at: with a filter, a page may hold fewer (even
        // none) and still have a next one.
        let next = more
            .then(|| sales.last().map(|sale| sale.sku.clone()))
            .flatten();
        let wanted = query.state;
        // Owned sales: a stream over borrowed ones makes the request's future not `Send` for
        // every lifetime (the compiler's higher-ranked closure limits).
        let views = sales.into_iter().map(|sale| async move {
            match self.read_view(&sale).await {
                Ok(view) => Ok(wanted
                    .is_none_or(|state| state == view.state)
                    .then_some(view)),
                // Stored but not (or no longer) in the stock store: being created or rebuilt.
                Err(Error::UnknownSale(_) | Error::StockRegressed(_)) => Ok(None),
                Err(err) => Err(err),
            }
        });
        let page: Vec<SaleView> = futures::stream::iter(views)
            .buffered(SNAPSHOTS_IN_FLIGHT)
            .try_filter_map(|view| async move { Ok(view) })
            .try_collect()
            .await?;
        Ok(SalePage { sales: page, next })
    }

    /// Creates a sale: its definition in the repository (durable), then its stock.
    /// [`Error::SaleExists`] when the stock store already had the sale, or when the repository
    /// had it and the store did not: then the store lost it, and it is rebuilt from the orders
    /// (in the background; purchases meanwhile get a retryable error) rather than started afresh.
    pub async fn create_sale(&self, sale: Sale) -> Result<SaleView> {
        sale.validate()?;
        if let Some(max) = self.inner.config.max_sales
            && self.inner.stock.sale_count().await? >= max
        {
            return Err(Error::TooManySales { max });
        }
        if !self.inner.repository.save_sale(&sale).await? {
            if self.inner.stock.sale(&sale.sku).await?.is_none() {
                let stored = self.definition(&sale.sku).await?;
                self.lost(stored);
            }
            return Err(Error::SaleExists(sale.sku));
        }
        if !self.inner.stock.create_sale(&sale).await? {
            return Err(Error::SaleExists(sale.sku));
        }
        let snapshot = self.inner.stock.snapshot(&sale.sku).await?;
        let entry = self.cache(sale);
        Ok(self.view(&entry.definition(), snapshot))
    }

    /// Creates the sale unless one with its sku exists; answers whether it did.
    pub async fn ensure_sale(&self, sale: Sale) -> Result<bool> {
        match self.create_sale(sale).await {
            Ok(_) => Ok(true),
            Err(Error::SaleExists(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// One sale with its stock. The definition is the stock store's, so an end made through
    /// another process shows at once.
    pub async fn sale(&self, sku: &Sku) -> Result<SaleView> {
        let entry = self.sale_entry(sku).await?;
        let stored = self.inner.stock.sale(sku).await;
        if let Some(stored) = self.unless_lost(sku, stored)? {
            entry.learn_end(&stored);
        }
        let snapshot = self.inner.stock.snapshot(sku).await;
        let snapshot = self.unless_lost(sku, snapshot)?;
        let sale = entry.definition();
        let mut view = self.view(&sale, snapshot);
        view.room = self.room_of(&sale).await?;
        Ok(view)
    }

    /// The counts of `sale`'s waiting room, if it has one.
    async fn room_of(&self, sale: &Sale) -> Result<Option<RoomStatus>> {
        match sale.waiting_room {
            Some(_) => Ok(Some(self.inner.rooms.status(&sale.sku).await?)),
            None => Ok(None),
        }
    }

    /// Ends the sale now: purchases from this instant on are refused as
    /// [`SaleState::Ended`](crate::SaleState::Ended), in every process sharing the stock store.
    /// Reservations made before stay: they are paid or expire as usual. The end is written to
    /// the repository first (durable: a stock store rebuilt from it keeps the sale ended), then
    /// to the store. Ending an ended sale changes nothing (an end never moves later).
    pub async fn end_sale(&self, sku: &Sku) -> Result<SaleView> {
        let now = self.now();
        // Stores keep instants to the microsecond.
        let at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let durable = self.inner.repository.end_sale(sku, at).await?;
        let ended = self.inner.stock.end_sale(sku, at).await;
        let ended = match (self.unless_lost(sku, ended)?, durable) {
            (Some(sale), _) => sale,
            // The repository has the sale and the store lost it: the rebuild restores it ended.
            (None, Some(sale)) => {
                return Err(self.lost(sale));
            }
            (None, None) => return Err(Error::UnknownSale(sku.clone())),
        };
        let entry = self.cache(ended.clone());
        entry.learn_end(&ended);
        let snapshot = self.inner.stock.snapshot(sku).await;
        let snapshot = self.unless_lost(sku, snapshot)?;
        Ok(self.view(&entry.definition(), snapshot))
    }

    /// The stock store refused a purchase as not active while this process's copy of the
    /// definition said active: the sale was ended through another process. Learn its end, so
    /// later purchases are answered here.
    pub(super) async fn refresh_end(&self, sku: &Sku) {
        let Some(entry) = self.inner.sales.get(sku) else {
            return;
        };
        match self.inner.stock.sale(sku).await {
            Ok(Some(stored)) => entry.learn_end(&stored),
            Ok(None) => {}
            Err(err) => {
                debug!(sku = %sku, error = %err, "could not read an ended sale's definition")
            }
        }
    }

    /// Every sale with its stock, by sku: 32 sales read at once (on Redis, one
    /// round trip after another was 26 ms for 100 sales). Reads every sale: a page of them is
    /// [`sales_page`](Self::sales_page).
    pub async fn sales(&self) -> Result<Vec<SaleView>> {
        let sales = self.inner.stock.sales().await?;
        let views = sales
            .into_iter()
            .map(|sale| async move { self.read_view(&sale).await });
        futures::stream::iter(views)
            .buffered(SNAPSHOTS_IN_FLIGHT)
            .try_collect()
            .await
    }

    /// The sale with its stock and room, read now.
    async fn read_view(&self, sale: &Sale) -> Result<SaleView> {
        let snapshot = match self.inner.stock.snapshot(&sale.sku).await {
            // Rebuilt as when read alone: after a failover, a listing (or the metrics' read of
            // every sale) is what heals a sale nobody buys from or reads alone.
            Err(Error::StockRegressed(sku)) => {
                self.lost(sale.clone());
                return Err(Error::StockRegressed(sku));
            }
            snapshot => snapshot?,
        };
        let mut view = self.view(sale, snapshot);
        view.room = self.room_of(sale).await?;
        Ok(view)
    }

    fn view(&self, sale: &Sale, snapshot: StockSnapshot) -> SaleView {
        SaleView {
            state: sale.state(self.now(), &snapshot),
            sale: sale.clone(),
            snapshot,
            room: None,
        }
    }

    /// Caches `sale`, which the stock store lost or holds regressed, and starts its rebuild
    /// unless one runs; answers the error callers get meanwhile.
    fn lost(&self, sale: Sale) -> Error {
        let sku = sale.sku.clone();
        self.cache(sale);
        self.store_lost(&sku)
    }

    fn cache(&self, sale: Sale) -> Arc<SaleEntry> {
        let sku = sale.sku.clone();
        let entry = self
            .inner
            .sales
            .get_or_insert_with(&sku, || SaleEntry::new(sale));
        self.inner.unknown.forget(&sku);
        entry
    }

    /// The cached definition, loaded from the stock store on first use.
    pub(super) async fn sale_entry(&self, sku: &Sku) -> Result<Arc<SaleEntry>> {
        if let Some(entry) = self.inner.sales.get(sku) {
            return Ok(entry);
        }
        if let Some(sale) = self.inner.stock.sale(sku).await? {
            return Ok(self.cache(sale));
        }
        Err(self.not_in_store(sku).await?)
    }

    /// The error for a sale the stock store does not hold: unknown, or — when the repository
    /// has it — lost by the store, which starts its rebuild (the error is then retryable).
    async fn not_in_store(&self, sku: &Sku) -> Result<Error> {
        let now_ms = self.now().timestamp_millis();
        if self.inner.unknown.holds(sku, now_ms) {
            return Ok(Error::UnknownSale(sku.clone()));
        }
        Ok(match self.inner.repository.sale(sku).await? {
            Some(sale) => self.lost(sale),
            None => {
                self.inner.unknown.remember(sku, now_ms);
                Error::UnknownSale(sku.clone())
            }
        })
    }

    /// What the purchase path needs of the cached sale at `now` (`now_ms` in Unix
    /// milliseconds): read in place, so the path copies nothing and bumps no shared counter.
    pub(super) async fn sale_check(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        now_ms: i64,
    ) -> Result<SaleCheck> {
        let check = |entry: &SaleEntry| {
            let check = SaleCheck {
                per_user_limit: entry.sale.per_user_limit,
                tag: entry.tag,
                window: entry.early_end.window_state(&entry.sale, now),
                sold_out: entry.is_sold_out(now_ms),
                rebuilding: entry.rebuilding.load(Ordering::Acquire),
                waiting_room: entry.sale.waiting_room.is_some(),
            };
            // A purchase that will ask the store may move units: marked here, on the entry the
            // path reads anyway, rather than by a second lookup once reserved.
            if check.window == SaleState::Active && !check.sold_out {
                entry.touch();
            }
            check
        };
        if let Some(check) = self.inner.sales.read(sku, check) {
            return Ok(check);
        }
        Ok(check(&*self.sale_entry(sku).await?))
    }

    /// Drops a sale from the cache (it exists nowhere any more).
    pub(super) fn forget(&self, sku: &Sku) {
        self.inner.sales.remove(sku);
    }

    /// Starts the sold-out pause of a sale.
    pub(super) fn sold_out(&self, sku: &Sku, now_ms: i64) {
        let recheck = self.inner.config.sold_out_recheck;
        self.inner
            .sales
            .read(sku, |entry| entry.mark_sold_out(now_ms, recheck));
    }

    /// Ends the sold-out pause of a sale after units came back.
    pub(super) fn units_returned(&self, sku: &Sku) {
        self.inner.sales.read(sku, |entry| {
            entry.units_returned();
            entry.touch();
        });
    }

    /// Notes that units of the sale moved (see [`touched_sales`](Self::touched_sales)).
    pub(super) fn touch(&self, sku: &Sku) {
        self.inner.sales.read(sku, SaleEntry::touch);
    }

    /// The sales whose units may have moved through this process (a purchase while the sale was
    /// open and not sold out, a payment, a cancel, an expiry) since the previous call, which clears their mark: what a periodic books check needs to
    /// look at, however many idle sales there are. Sales bought from in other processes are
    /// theirs to check.
    pub fn touched_sales(&self) -> Vec<Sku> {
        let mut touched = Vec::new();
        self.inner.sales.for_each(|sku, entry| {
            if entry.touched.swap(false, Ordering::Relaxed) {
                touched.push(sku.clone());
            }
        });
        touched
    }
}
