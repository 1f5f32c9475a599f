//! [`FlashSale`]: the reservation algorithm that composes the three backends.

mod admission;
mod finish;
mod orders;
mod purchase;
mod rebuild;
mod reconcile;
mod report;
mod sales;
mod sweeper;
mod unknown;
mod worker;
mod yielding;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;

use dashmap::DashMap;

use crate::clock::{Clock, SystemClock};
use crate::ident::Sku;
use crate::layers::Watched;
use crate::memory::MemoryWaitingRoomStore;
use crate::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
use crate::queue::DynOrderQueue;
use crate::repository::DynOrderRepository;
use crate::reservation::Reservation;
use crate::sale_cache::SaleCache;
use crate::stock::DynStockStore;
use crate::waiting_room::{DynWaitingRoomStore, PassSigner};

pub use admission::{AdmissionReport, TicketState, TicketUpdates, TicketView};
pub use purchase::{PurchaseOutcome, PurchaseRequest, Receipt};
pub use reconcile::ReconcileReport;
pub use report::{MAX_REPORT_BUCKETS, SaleReport};
pub use sales::{SalePage, SaleQuery, SaleView};
pub use sweeper::SweepReport;

use sales::SaleEntry;
use unknown::UnknownSkus;
use yielding::PurchasesFirst;

/// Tuning of the engine; [`Default`] suits most deployments.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Once a sale is seen sold out, purchases are refused without asking the stock store for this
    /// long; then one purchase asks again. Units released by this process end the pause at once.
    pub sold_out_recheck: Duration,
    /// Events the order worker takes per batch.
    pub worker_batch: usize,
    /// How long the worker waits for a batch to start; also bounds how long it takes to notice a
    /// shutdown.
    pub worker_wait: Duration,
    /// The longest pause between the worker's retries after a failure.
    pub worker_max_backoff: Duration,
    /// Reservations the sweeper releases per call to the stock store.
    pub sweep_batch: usize,
    /// How often the sweeper runs.
    pub sweep_interval: Duration,
    /// While a drop is under way (500 purchases a second or more reach the stock store), the
    /// share of the time the sweeper's store calls may fill: they take turns, and
    /// each rests after for the rest of its share. A lapse of many reservations then leaves the
    /// cores to a live drop (its units come back more slowly meanwhile). Only this engine's
    /// purchases count: a sweeper in a process that takes none does not yield. `1.0`: no
    /// yielding; below 0.01 counts as 0.01.
    pub sweep_share_while_buying: f64,
    /// When the stock store has lost a sale, its rebuild first waits this long (purchases that
    /// reserved before the loss finish publishing), then until the order worker has recorded
    /// every event queued by then ([`OrderQueue::drained`](crate::OrderQueue::drained)).
    pub store_rebuild_settle: Duration,
    /// How often [`FlashSale::run_admission`] admits buyers from waiting rooms (and notices a
    /// sale sold out, closing its room).
    pub admission_interval: Duration,
    /// The most tickets one admission step admits per sale.
    pub admission_batch: u64,
    /// The most sales the stock store may hold: a creation past it is refused
    /// ([`Error::TooManySales`](crate::Error::TooManySales)), checked against the store's count
    /// before creating (concurrent creations may pass it by a few). `None`: no cap.
    pub max_sales: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            sold_out_recheck: Duration::from_millis(100),
            worker_batch: 500,
            worker_wait: Duration::from_millis(100),
            worker_max_backoff: Duration::from_secs(5),
            sweep_batch: 500,
            sweep_interval: Duration::from_secs(1),
            sweep_share_while_buying: 0.25,
            store_rebuild_settle: Duration::from_secs(1),
            admission_interval: admission::DEFAULT_ADMISSION_INTERVAL,
            admission_batch: 1_000,
            max_sales: None,
        }
    }
}

/// The flash-sale engine: purchase, pay, cancel, the order worker, the expiry sweeper and
/// reconciliation, over any [`StockStore`](crate::StockStore),
/// [`OrderQueue`](crate::OrderQueue) and [`OrderRepository`](crate::OrderRepository).
///
/// Cheap to clone: clones share the backends and the sale cache.
///
/// # The purchase path
///
/// validate → (sold-out fast path) → reserve atomically in the stock store → publish the order
/// event durably → answer. If the publish fails, the reservation is released (aborted) and the
/// caller gets a retryable error: no unit is ever held without its event. The order worker then
/// persists events in batches, idempotently, and acknowledges them only once persisted.
#[derive(Clone)]
pub struct FlashSale {
    inner: Arc<Inner>,
}

struct Inner {
    stock: DynStockStore,
    queue: DynOrderQueue,
    repository: DynOrderRepository,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    /// Sale definitions (fixed once created, but for an early end) and their sold-out flags.
    /// Read on every purchase, written once per sale: copy-on-write, so readers take no lock.
    sales: SaleCache<SaleEntry>,
    unknown: UnknownSkus,
    /// Whether purchases are being taken: the sweeper yields to them.
    purchases_first: PurchasesFirst,
    /// Reservations the sweeper failed to release or record: tried again first next sweep.
    owed_expiries: Mutex<Vec<Reservation>>,
    /// Store calls of the sweeper that failed (their replies may be lost): made again next sweep.
    owed_calls: Mutex<Vec<(Sku, crate::expiry::ExpiryCall)>>,
    /// This engine's name as a holder of the store's rebuild lock: unique per engine.
    id: String,
    /// Waiting rooms.
    rooms: DynWaitingRoomStore,
    /// The pass-signing key when configured; else the store's.
    pass_secret: Option<Vec<u8>>,
    signer: tokio::sync::OnceCell<PassSigner>,
    /// Sales with a waiting room this engine admits for.
    room_sales: Mutex<HashSet<Sku>>,
    room_watch: DashMap<Sku, admission::RoomWatch>,
    admission_steps: AtomicU64,
    /// The count of sales at the last admission listing (`u64::MAX`: none yet).
    listed_sales: AtomicU64,
}

impl FlashSale {
    /// An engine over the given backends, with the system clock and the default configuration
    /// ([`builder`](Self::builder) chooses them).
    ///
    /// Each backend is [`Watched`]: its failures are logged once per outage, with counts, not
    /// once per request.
    pub fn new(stock: DynStockStore, queue: DynOrderQueue, repository: DynOrderRepository) -> Self {
        Self::builder(stock, queue, repository).build()
    }

    /// Builds an engine over the given backends with another clock or configuration.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
    /// use nexussale_core::{EngineConfig, FlashSale, ManualClock};
    ///
    /// let mut config = EngineConfig::default();
    /// config.worker_batch = 100;
    /// let engine = FlashSale::builder(
    ///     Arc::new(MemoryStockStore::new()),
    ///     Arc::new(MemoryOrderQueue::new()),
    ///     Arc::new(MemoryOrderRepository::new()),
    /// )
    /// .clock(Arc::new(ManualClock::new(chrono::Utc::now())))
    /// .config(config)
    /// .build();
    /// assert_eq!(engine.config().worker_batch, 100);
    /// ```
    pub fn builder(
        stock: DynStockStore,
        queue: DynOrderQueue,
        repository: DynOrderRepository,
    ) -> FlashSaleBuilder {
        FlashSaleBuilder {
            stock,
            queue,
            repository,
            clock: Arc::new(SystemClock),
            config: EngineConfig::default(),
            rooms: Arc::new(MemoryWaitingRoomStore::new()),
            pass_secret: None,
        }
    }

    /// An engine over fresh in-memory backends.
    pub fn in_memory() -> Self {
        Self::new(
            Arc::new(MemoryStockStore::new()),
            Arc::new(MemoryOrderQueue::new()),
            Arc::new(MemoryOrderRepository::new()),
        )
    }

    /// The stock store.
    pub fn stock(&self) -> &DynStockStore {
        &self.inner.stock
    }

    /// The order queue.
    pub fn queue(&self) -> &DynOrderQueue {
        &self.inner.queue
    }

    /// The order repository.
    pub fn repository(&self) -> &DynOrderRepository {
        &self.inner.repository
    }

    /// The waiting-room store.
    pub fn waiting_rooms(&self) -> &DynWaitingRoomStore {
        &self.inner.rooms
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }
}

/// Chooses an engine's clock and configuration before it is built ([`FlashSale::builder`]):
/// an engine's settings are fixed once built, so no clone can drift from the others.
pub struct FlashSaleBuilder {
    stock: DynStockStore,
    queue: DynOrderQueue,
    repository: DynOrderRepository,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    rooms: DynWaitingRoomStore,
    pass_secret: Option<Vec<u8>>,
}

impl FlashSaleBuilder {
    /// Keeps waiting rooms in `store` (default: in this process's memory). Front ends that
    /// serve one sale share one store, such as Redis.
    pub fn waiting_rooms(mut self, store: DynWaitingRoomStore) -> Self {
        self.rooms = store;
        self
    }

    /// Signs admission passes with `secret` (at least
    /// [`MIN_PASS_KEY_LEN`](crate::MIN_PASS_KEY_LEN) bytes) instead of the key the waiting-room
    /// store holds.
    pub fn pass_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.pass_secret = Some(secret.into());
        self
    }

    /// Uses `clock` for every instant (tests move time with [`ManualClock`](crate::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `config`.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// The engine.
    pub fn build(self) -> FlashSale {
        FlashSale {
            inner: Arc::new(Inner {
                stock: Arc::new(Watched::watch("stock store", self.stock)),
                queue: Arc::new(Watched::watch("order queue", self.queue)),
                repository: Arc::new(Watched::watch("order repository", self.repository)),
                clock: self.clock,
                config: self.config,
                sales: SaleCache::default(),
                unknown: UnknownSkus::default(),
                purchases_first: PurchasesFirst::new(),
                owed_expiries: Mutex::default(),
                owed_calls: Mutex::default(),
                id: uuid::Uuid::now_v7().to_string(),
                rooms: Arc::new(Watched::watch("waiting-room store", self.rooms)),
                pass_secret: self.pass_secret,
                signer: tokio::sync::OnceCell::new(),
                room_sales: Mutex::default(),
                room_watch: DashMap::default(),
                admission_steps: AtomicU64::new(0),
                listed_sales: AtomicU64::new(u64::MAX),
            }),
        }
    }
}

impl fmt::Debug for FlashSaleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashSaleBuilder")
            .field("stock", &self.stock)
            .field("queue", &self.queue)
            .field("repository", &self.repository)
            .field("config", &self.config)
            .field("waiting_rooms", &self.rooms)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for FlashSale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashSale")
            .field("stock", &self.inner.stock)
            .field("queue", &self.inner.queue)
            .field("repository", &self.inner.repository)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
