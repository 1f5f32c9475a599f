//! [`RedisStockStore`]: live stock in Redis, one atomic script call per reservation.
//!
//! The work is done by [`Inner`] in this crate's own error type; the trait impl converts it at
//! the boundary, once per method. Script calls and their replies are typed in `scripts.rs`, the
//! shard-transfer protocol is `transfer.rs`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use futures::TryStreamExt;
use futures::future::{join_all, try_join_all};
use redis::AsyncCommands;

use nexussale_core::{
    ConfirmOutcome, ExpiredBatch, ExpiryCall, IdempotencyKey, Order, OrderId, OrderStatus,
    ReleaseOutcome, ReleaseReason, Reservation, ReservationState, ReserveOutcome, ReserveRequest,
    Result, Sale, Sku, StockSnapshot, StockStore, UserId,
};

use crate::coalesce::Coalescer;
use crate::config::RedisConfig;
use crate::connection::Connection;
use crate::error::StoreError;
use crate::keys::{ShardKeys, due_key, due_sku, id_bytes, key_field, rebuild_lock_key, sales_key};
use crate::record;
use crate::replicas;
use crate::sale_info::SaleInfo;
use crate::scripts::{self, Reply, ReserveArgs, RestoredShard, Window};
use crate::transfer;

/// Orders written per `restore.lua` call.
const RESTORE_CHUNK: usize = 500;
/// `restore.lua` calls one shard's restore has in flight after its first.
const RESTORES_IN_FLIGHT: usize = 4;

/// The most `expired.lua` calls one shard's listing makes, each reading a bounded number of
/// records: a listing behind many buckets of settled reservations reaches past them.
const EXPIRED_CALLS: usize = 8;

type Outcome<T> = std::result::Result<T, StoreError>;

/// A [`StockStore`] in Redis: a single node, Redis Cluster (feature `cluster`) or the master
/// Redis Sentinel names (feature `sentinel`).
///
/// Every reservation is one `EVALSHA` of `reserve.lua`, which checks the idempotency key, the sale
/// window, the per-user limit and the available units, then writes the reservation, its expiry
/// and the counts, all or nothing. Concurrent reservations of a sale are coalesced into one call
/// (see [`RedisConfig::coalesce`]). The crate docs describe the key layout and sharding.
///
/// Cloning is cheap: clones share the connection, the sale cache and the batching lanes.
///
/// ```no_run
/// use nexussale_core::{FlashSale, Sale, Sku, memory::{MemoryOrderQueue, MemoryOrderRepository}};
/// use nexussale_redis::RedisStockStore;
/// use std::sync::Arc;
///
/// # #[tokio::main] async fn main() -> nexussale_core::Result<()> {
/// let stock = RedisStockStore::connect("redis://127.0.0.1:6379").await?;
/// let engine = FlashSale::new(
///     Arc::new(stock),
///     Arc::new(MemoryOrderQueue::new()),
///     Arc::new(MemoryOrderRepository::new()),
/// );
/// engine.ensure_sale(Sale::new(Sku::new("ps5")?, 100)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStockStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Connection,
    config: RedisConfig,
    /// Sale definitions and shard keys. A definition changes only by an end, which `load` picks
    /// up (`end_sale` and every read of the definition call it); shard keys never change.
    sales: DashMap<Sku, Arc<SaleInfo>>,
    coalescer: Option<Coalescer>,
}

impl RedisStockStore {
    /// Connects to one Redis node (`redis://[user:password@]host:port[/db]`, or `rediss://`
    /// where the driver was built with TLS) with the default [`RedisConfig`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, RedisConfig::default()).await
    }

    /// Connects to one Redis node with `config`. The connection multiplexes every call and
    /// reconnects by itself.
    pub async fn connect_with(url: &str, config: RedisConfig) -> Result<Self> {
        let mut conns = Vec::new();
        for _ in 0..config.connections() {
            conns.push(Connection::single(url, &config).await?);
        }
        Ok(Self::from_connections(conns, config))
    }

    /// Connects to a Redis Cluster through any of its `nodes` (feature `cluster`).
    #[cfg(feature = "cluster")]
    pub async fn connect_cluster(nodes: &[&str], config: RedisConfig) -> Result<Self> {
        let conn = Connection::cluster(nodes, &config).await?;
        Ok(Self::from_connections(vec![conn], config))
    }

    /// Connects to the master that the Sentinels at `sentinels` name for `master`, and follows
    /// it through failovers (feature `sentinel`): when the master stops answering, or answers as
    /// a replica, the next call asks the sentinels again. While no master is reachable, calls
    /// fail as retryable. The first URL's user, password and database are used for the sentinels
    /// and the master; `rediss://` sentinels mean TLS to the master too.
    ///
    /// ```no_run
    /// # async fn demo() -> nexussale_core::Result<()> {
    /// use nexussale_redis::{RedisConfig, RedisStockStore};
    ///
    /// let sentinels = ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"];
    /// let stock = RedisStockStore::connect_sentinel(&sentinels, "shop", RedisConfig::default()).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sentinel")]
    pub async fn connect_sentinel(
        sentinels: &[&str],
        master: &str,
        config: RedisConfig,
    ) -> Result<Self> {
        let mut conns = Vec::new();
        for _ in 0..config.connections() {
            conns.push(Connection::sentinel(sentinels, master, &config).await?);
        }
        Ok(Self::from_connections(conns, config))
    }

    /// `conns`: at least one; the coalescer spreads its calls over all of them (see
    /// `RedisConfig::connections`), everything else uses the first.
    fn from_connections(conns: Vec<Connection>, config: RedisConfig) -> Self {
        let conn = conns[0].clone();
        let coalescer = config.coalesce.then(|| {
            Coalescer::new(
                conns,
                config.max_batch,
                config.calls_in_flight(),
                config.command_timeout,
                config.lane_idle,
                config.acks(),
            )
        });
        Self {
            inner: Arc::new(Inner {
                conn,
                config,
                sales: DashMap::new(),
                coalescer,
            }),
        }
    }

    /// Coalescing lanes open now (0 without coalescing): one when anything was bought within
    /// [`RedisConfig::coalesce_lane_idle`]; on a Cluster, one per stock shard bought from
    /// within it.
    pub fn coalescing_lanes(&self) -> usize {
        self.inner.coalescer.as_ref().map_or(0, Coalescer::lanes)
    }

    /// The configuration this store runs with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The waiting rooms of this store's sales, in the same Redis, on the same connection and
    /// under the same prefix: each room's keys beside its sale's first shard.
    pub fn waiting_rooms(&self) -> crate::RedisWaitingRoomStore {
        crate::RedisWaitingRoomStore::new(self.inner.conn(), self.inner.config.prefix.clone())
    }

    /// Whether Redis answers (`PING`), for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.inner.ping().await?)
    }

    /// Deletes (`UNLINK`, freed in the background) every sale under this store's prefix, with
    /// all its reservations; answers how many sales there were. For tests and benchmarks
    /// (feature `testkit`): a live sale loses its stock.
    #[cfg(feature = "testkit")]
    pub async fn purge(&self) -> Result<usize> {
        Ok(self.inner.purge().await?)
    }
}

impl fmt::Debug for RedisStockStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStockStore")
            .field("connection", &self.inner.conn)
            .field("config", &self.inner.config)
            .field("cached_sales", &self.inner.sales.len())
            .finish()
    }
}

/// Every method converts this crate's error to the core's here, and nowhere else.
#[async_trait]
impl StockStore for RedisStockStore {
    async fn create_sale(&self, sale: &Sale) -> Result<bool> {
        Ok(self.inner.create_sale(sale).await?)
    }

    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
        Ok(self.inner.load(sku).await?.map(|info| info.sale.clone()))
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        Ok(self.inner.sales().await?)
    }

    async fn sale_count(&self) -> Result<u64> {
        Ok(self.inner.sale_count().await?)
    }

    async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Result<Option<Sale>> {
        let ended = self.inner.end_sale(sku, at).await;
        Ok(self.inner.unless_regressed(sku, ended).await?)
    }

    async fn reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome> {
        let reserved = self.inner.reserve(request).await;
        Ok(self.inner.unless_regressed(&request.sku, reserved).await?)
    }

    async fn reservation(&self, sku: &Sku, order_id: OrderId) -> Result<Option<Reservation>> {
        Ok(self.inner.reservation(sku, order_id).await?)
    }

    async fn reservation_by_key(
        &self,
        sku: &Sku,
        user: &UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<Reservation>> {
        Ok(self.inner.reservation_by_key(sku, user, key).await?)
    }

    async fn confirm(
        &self,
        sku: &Sku,
        order_id: OrderId,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome> {
        let confirmed = self.inner.confirm(sku, order_id, now).await;
        Ok(self.inner.unless_regressed(sku, confirmed).await?)
    }

    async fn release(
        &self,
        sku: &Sku,
        order_id: OrderId,
        reason: ReleaseReason,
    ) -> Result<ReleaseOutcome> {
        let released = self.inner.release(sku, order_id, reason).await;
        Ok(self.inner.unless_regressed(sku, released).await?)
    }

    async fn expired(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Reservation>> {
        Ok(self.inner.expired(sku, now, limit).await?)
    }

    async fn due_sales(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Sku>> {
        Ok(self.inner.due_sales(now, limit).await?)
    }

    async fn expire(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
        call: &ExpiryCall,
    ) -> Result<ExpiredBatch> {
        let expired = self.inner.expire(sku, now, limit, call).await;
        Ok(self.inner.unless_regressed(sku, expired).await?)
    }

    async fn release_many(
        &self,
        sku: &Sku,
        order_ids: &[OrderId],
        reason: ReleaseReason,
    ) -> Result<Vec<ReleaseOutcome>> {
        let released = self.inner.release_many(sku, order_ids, reason).await;
        Ok(self.inner.unless_regressed(sku, released).await?)
    }

    async fn snapshot(&self, sku: &Sku) -> Result<StockSnapshot> {
        let snapshot = self.inner.snapshot(sku).await;
        Ok(self.inner.unless_regressed(sku, snapshot).await?)
    }

    async fn restore(&self, sale: &Sale, orders: &[Order]) -> Result<()> {
        Ok(self.inner.restore(sale, orders).await?)
    }

    async fn lock_rebuild(&self, sku: &Sku, holder: &str, lease: Duration) -> Result<bool> {
        let key = rebuild_lock_key(self.inner.prefix(), sku);
        Ok(scripts::lock(self.inner.conn(), &key, holder, lease).await?)
    }

    async fn unlock_rebuild(&self, sku: &Sku, holder: &str) -> Result<()> {
        let key = rebuild_lock_key(self.inner.prefix(), sku);
        Ok(scripts::unlock(self.inner.conn(), &key, holder).await?)
    }
}

/// The units each user's orders hold (pending or paid), one entry a user.
fn holds<'a>(orders: &[&'a Order]) -> Vec<(&'a str, u64)> {
    let mut held: HashMap<&str, u64> = HashMap::new();
    for order in orders {
        if matches!(order.status, OrderStatus::Pending | OrderStatus::Paid) {
            *held.entry(order.user.as_str()).or_default() += u64::from(order.quantity);
        }
    }
    held.into_iter().collect()
}

/// The `i`th restore call's share of `all` (empty past its end).
fn piece<T>(all: &[T], i: usize) -> &[T] {
    all.chunks(RESTORE_CHUNK).nth(i).unwrap_or(&[])
}

fn definition(sale: &Sale) -> Outcome<String> {
    serde_json::to_string(sale)
        .map_err(|err| StoreError::corrupt(format!("sale definition: {err}")))
}

impl Inner {
    fn conn(&self) -> Connection {
        self.conn.clone()
    }

    fn prefix(&self) -> &str {
        &self.config.prefix
    }

    async fn ping(&self) -> Outcome<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }

    #[cfg(feature = "testkit")]
    async fn purge(&self) -> Outcome<usize> {
        let mut conn = self.conn();
        let set = sales_key(self.prefix());
        let skus: Vec<String> = conn.smembers(&set).await?;
        for sku in &skus {
            let Ok(sku) = Sku::new(sku) else { continue };
            let shards = match self.load(&sku).await? {
                Some(info) => info.shards.len(),
                None => 1,
            };
            for shard in 0..shards {
                let keys = ShardKeys::new(self.prefix(), &sku, shard);
                let buckets: Vec<String> = conn.zrange(&keys.buckets, 0, -1).await?;
                let mut all: Vec<String> = buckets
                    .iter()
                    .map(|bucket| format!("{}{bucket}", keys.res))
                    .collect();
                all.extend(keys.fixed().map(str::to_owned));
                all.extend(keys.legacy.split(' ').map(str::to_owned));
                let _: i64 = conn.unlink(&all[..]).await?;
            }
            self.sales.remove(&sku);
        }
        let _: i64 = conn.unlink(&[set, due_key(self.prefix())][..]).await?;
        Ok(skus.len())
    }

    /// Passes `result` through, unless a shard of the sale said it regressed: then every shard
    /// is marked, so that every process refuses the sale until it is rebuilt, and the whole
    /// sale is reported regressed.
    ///
    /// A sequence that went backwards is checked first: when the shard was rebuilt after the
    /// call that saw it ran, nothing is marked (another process met the regression and rebuilt
    /// the sale meanwhile) and the caller retries.
    async fn unless_regressed<T>(&self, sku: &Sku, result: Outcome<T>) -> Outcome<T> {
        let why = match result {
            Err(StoreError::Regressed(why)) => why,
            Err(StoreError::WentBackwards { stock, seen }) => {
                const WHY: &str = "its sequence went backwards";
                match scripts::mark(self.conn(), &stock, WHY, Some(seen)).await {
                    Ok(false) => return Err(StoreError::WentBackwards { stock, seen }),
                    Ok(true) => {}
                    Err(err) => {
                        tracing::warn!(sku = %sku, error = %err, "could not mark a regressed shard")
                    }
                }
                WHY
            }
            _ => return result,
        };
        tracing::warn!(sku = %sku, why, "the sale's state in redis may have gone backwards; it waits to be rebuilt from the orders");
        if let Some(info) = self.sales.get(sku).map(|info| Arc::clone(&info)) {
            let marked = try_join_all(
                info.shards
                    .iter()
                    .map(|keys| scripts::mark(self.conn(), &keys.stock, why, None)),
            )
            .await;
            if let Err(err) = marked {
                // The shard that regressed keeps answering so, and is marked again next call.
                tracing::warn!(sku = %sku, error = %err, "could not mark every shard of a regressed sale");
            }
        }
        Err(StoreError::SaleRegressed(sku.clone()))
    }

    /// The sale's definition as Redis holds it, refreshing the cache (a cached sale keeps its
    /// shards' highest sequences seen, also when its definition changed by an end).
    async fn load(&self, sku: &Sku) -> Outcome<Option<Arc<SaleInfo>>> {
        let keys = ShardKeys::new(self.prefix(), sku, 0);
        let (def, shards): (Option<String>, Option<usize>) =
            self.conn().hmget(&keys.stock, &["def", "shards"]).await?;
        let Some(def) = def else {
            self.sales.remove(sku);
            return Ok(None);
        };
        let sale: Sale = serde_json::from_str(&def)
            .map_err(|err| StoreError::corrupt(format!("definition of sale {sku}: {err}")))?;
        let shards = shards.unwrap_or(1);
        let cached = self
            .sales
            .get(sku)
            .filter(|cached| cached.shards.len() == shards)
            .map(|cached| Arc::clone(&cached));
        let info = match cached {
            Some(cached) if cached.sale == sale => return Ok(Some(cached)),
            Some(cached) => Arc::new(SaleInfo {
                sale,
                shards: cached.shards.clone(),
            }),
            None => Arc::new(SaleInfo::new(self.prefix(), sale, shards)),
        };
        self.sales.insert(sku.clone(), Arc::clone(&info));
        Ok(Some(info))
    }

    /// The sale from the cache, or from Redis on a miss.
    async fn info(&self, sku: &Sku) -> Outcome<Arc<SaleInfo>> {
        if let Some(info) = self.sales.get(sku) {
            return Ok(Arc::clone(&info));
        }
        self.load(sku)
            .await?
            .ok_or_else(|| StoreError::UnknownSale(sku.clone()))
    }

    /// `answer` for a reservation no shard holds, unless the whole sale is gone from Redis
    /// (flushed, restarted): then the sale is unknown, as it would be to a fresh store.
    async fn not_found<T>(&self, sku: &Sku, answer: T) -> Outcome<T> {
        match self.load(sku).await? {
            Some(_) => Ok(answer),
            None => Err(self.lost(sku)),
        }
    }

    /// The store lost the sale (flushed, restarted): forget the cached definition too.
    fn lost(&self, sku: &Sku) -> StoreError {
        self.sales.remove(sku);
        StoreError::UnknownSale(sku.clone())
    }

    async fn create_sale(&self, sale: &Sale) -> Outcome<bool> {
        let fresh = SaleInfo::new(
            self.prefix(),
            sale.clone(),
            self.config.shards_for(&sale.sku),
        );
        let def = definition(sale)?;
        let created = scripts::create(
            self.conn(),
            &fresh.shards[0],
            &fresh.setup(0, sale.stock, &def),
        )
        .await?;
        // Shard 0 holds the definition and decides; the others are created after it, and again
        // by any later call, so a creator that died half-way is completed by the next one.
        let info = match created {
            true => Arc::new(fresh),
            false => self
                .load(&sale.sku)
                .await?
                .ok_or_else(|| self.lost(&sale.sku))?,
        };
        for shard in 1..info.shards.len() {
            let setup = info.setup(shard, info.sale.stock, "");
            scripts::create(self.conn(), &info.shards[shard], &setup).await?;
        }
        let _: i64 = self
            .conn()
            .sadd(sales_key(self.prefix()), sale.sku.as_str())
            .await?;
        self.sales.insert(sale.sku.clone(), info);
        Ok(created)
    }

    /// Ends every shard (see `end.lua`), shard 0 last: once its definition reads ended, every
    /// shard refuses. A call that fails half-way is completed by the next (an end is idempotent).
    async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Outcome<Option<Sale>> {
        let Some(info) = self.load(sku).await? else {
            return Ok(None);
        };
        try_join_all(
            info.shards[1..]
                .iter()
                .map(|keys| scripts::end(self.conn(), keys, at, "")),
        )
        .await?;
        let def = definition(&info.sale.clone().ended(at))?;
        if !scripts::end(self.conn(), &info.shards[0], at, &def).await? {
            self.sales.remove(sku);
            return Ok(None);
        }
        Ok(self.load(sku).await?.map(|info| info.sale.clone()))
    }

    async fn sale_count(&self) -> Outcome<u64> {
        Ok(self.conn().scard(sales_key(self.prefix())).await?)
    }

    /// Every sku of the sales set.
    async fn skus(&self) -> Outcome<Vec<Sku>> {
        let skus: Vec<String> = self.conn().smembers(sales_key(self.prefix())).await?;
        skus.iter()
            .map(|sku| {
                Sku::new(sku).map_err(|err| {
                    StoreError::corrupt(format!("sku `{sku}` in the sales set: {err}"))
                })
            })
            .collect()
    }

    async fn sales(&self) -> Outcome<Vec<Sale>> {
        let skus = self.skus().await?;
        let mut sales = Vec::with_capacity(skus.len());
        for sku in skus {
            if let Some(info) = self.load(&sku).await? {
                sales.push(info.sale.clone());
            }
        }
        sales.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(sales)
    }

    /// One reservation on `info`'s shard `shard`, coalesced with others when that is on.
    async fn reserve_on(
        &self,
        info: &Arc<SaleInfo>,
        shard: usize,
        args: ReserveArgs,
    ) -> Outcome<Reply> {
        match &self.coalescer {
            Some(coalescer) => coalescer.reserve(info, shard, args).await,
            None => replicas::reserve(
                &self.conn,
                &info.shards[shard],
                0,
                &[&args],
                self.config.acks(),
            )
            .await?
            .pop()
            .ok_or_else(|| StoreError::corrupt("no reply to a reservation")),
        }
    }

    async fn reserve(&self, request: &ReserveRequest) -> Outcome<ReserveOutcome> {
        let info = self.info(&request.sku).await?;
        let expires_at = info.sale.expiry_from(request.now);
        let args = ReserveArgs {
            now_us: request.now.timestamp_micros(),
            user: request.user.as_str().to_owned(),
            quantity: request.quantity,
            key_field: request
                .idempotency_key
                .as_ref()
                .map(|key| key_field(request.user.as_str(), key.as_str()))
                .unwrap_or_default(),
            order_id: request.order_id,
            body: record::encode_body(
                &request.user,
                request.quantity,
                request.idempotency_key.as_ref(),
                request.remark.as_deref(),
                request.now,
                expires_at,
            ),
            expires_us: expires_at.timestamp_micros(),
        };
        let home = info.home(request.user.as_str());
        // Only a sharded sale may need the arguments again, for a transfer.
        let retry = (info.shards.len() > 1).then(|| args.clone());
        let reply = match (self.reserve_on(&info, home, args).await?, retry) {
            (Reply::SoldOut { available }, Some(args)) => {
                transfer::reserve_with_transfers(
                    &self.conn,
                    &info,
                    home,
                    &args,
                    available,
                    self.config.acks(),
                )
                .await?
            }
            (reply, _) => reply,
        };
        let reply = match reply {
            // The home shard's last unit: the sale is sold out only if every shard is.
            Reply::Reserved { remaining: 0 } if info.shards.len() > 1 => Reply::Reserved {
                remaining: transfer::available_elsewhere(&self.conn, &info, home).await?,
            },
            reply => reply,
        };
        Ok(match reply {
            Reply::Reserved { remaining } => ReserveOutcome::Reserved {
                reservation: request.reservation(&info.sale),
                remaining,
            },
            Reply::SoldOut { available } => ReserveOutcome::SoldOut { available },
            Reply::LimitExceeded { limit, held } => ReserveOutcome::LimitExceeded { limit, held },
            Reply::NotActive(state) => ReserveOutcome::NotActive { state },
            Reply::Existing { order_id, record } => ReserveOutcome::Existing {
                reservation: record::decode(&request.sku, order_id, &record)?,
            },
            Reply::NoSale => return Err(self.lost(&request.sku)),
        })
    }

    /// Runs `call` on the shard that holds `order_id`: the only one, of a sharded sale, whose
    /// answer is not "not found"; `not_found` when none holds it.
    async fn on_owning_shard<T, F, Fut>(&self, sku: &Sku, not_found: T, call: F) -> Outcome<T>
    where
        T: PartialEq,
        F: Fn(ShardKeys, Connection) -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        let info = self.info(sku).await?;
        let answers = try_join_all(
            info.shards
                .iter()
                .map(|keys| call(keys.clone(), self.conn())),
        )
        .await?;
        match answers.into_iter().find(|answer| *answer != not_found) {
            Some(answer) => Ok(answer),
            None => self.not_found(sku, not_found).await,
        }
    }

    async fn reservation(&self, sku: &Sku, order_id: OrderId) -> Outcome<Option<Reservation>> {
        let id = id_bytes(order_id);
        let record = self
            .on_owning_shard(sku, None, |keys, mut conn| async move {
                Ok(conn
                    .hget::<_, _, Option<String>>(keys.bucket(order_id), &id[..])
                    .await?)
            })
            .await?;
        record
            .map(|record| record::decode(sku, order_id, &record))
            .transpose()
    }

    async fn reservation_by_key(
        &self,
        sku: &Sku,
        user: &UserId,
        key: &IdempotencyKey,
    ) -> Outcome<Option<Reservation>> {
        let info = self.info(sku).await?;
        // A user's keys and reservations live on the user's home shard.
        let keys = &info.shards[info.home(user.as_str())];
        let mut conn = self.conn();
        let order_id: redis::Value = conn
            .hget(&keys.keys, key_field(user.as_str(), key.as_str()))
            .await?;
        if order_id == redis::Value::Nil {
            return Ok(None);
        }
        let order_id = scripts::order_id(&order_id)?;
        let record: Option<String> = conn
            .hget(keys.bucket(order_id), &id_bytes(order_id)[..])
            .await?;
        let Some(record) = record else {
            return Ok(None);
        };
        let reservation = record::decode(sku, order_id, &record)?;
        // An aborted reservation freed its key.
        Ok(
            (reservation.state != ReservationState::Released(ReleaseReason::Aborted))
                .then_some(reservation),
        )
    }

    async fn confirm(
        &self,
        sku: &Sku,
        order_id: OrderId,
        now: DateTime<Utc>,
    ) -> Outcome<ConfirmOutcome> {
        let acks = self.config.acks();
        self.on_owning_shard(sku, ConfirmOutcome::NotFound, |keys, mut conn| async move {
            let outcome = scripts::confirm(conn.clone(), &keys, order_id, now).await?;
            if outcome == ConfirmOutcome::Confirmed {
                acks.wait(&mut conn, &keys.stock).await?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn release(
        &self,
        sku: &Sku,
        order_id: OrderId,
        reason: ReleaseReason,
    ) -> Outcome<ReleaseOutcome> {
        self.release_many(sku, &[order_id], reason)
            .await?
            .pop()
            .ok_or_else(|| StoreError::corrupt("no answer to a release"))
    }

    /// Each shard gets the whole batch in one call (a reservation's shard is its user's, which
    /// an id does not tell) and answers for the ones it holds.
    async fn release_many(
        &self,
        sku: &Sku,
        order_ids: &[OrderId],
        reason: ReleaseReason,
    ) -> Outcome<Vec<ReleaseOutcome>> {
        let info = self.info(sku).await?;
        let acks = self.config.acks();
        let per_shard = try_join_all(info.shards.iter().map(|keys| {
            let mut conn = self.conn();
            async move {
                let outcomes = scripts::release(conn.clone(), keys, order_ids, reason).await?;
                if outcomes
                    .iter()
                    .any(|outcome| matches!(outcome, ReleaseOutcome::Released { .. }))
                {
                    acks.wait(&mut conn, &keys.stock).await?;
                }
                Ok::<_, StoreError>(outcomes)
            }
        }))
        .await?;
        let mut outcomes = vec![ReleaseOutcome::NotFound; order_ids.len()];
        for shard in per_shard {
            for (outcome, answer) in outcomes.iter_mut().zip(shard) {
                if answer != ReleaseOutcome::NotFound {
                    *outcome = answer;
                }
            }
        }
        // No shard holds any of them: the sale may be gone from Redis altogether.
        if outcomes
            .iter()
            .all(|outcome| *outcome == ReleaseOutcome::NotFound)
        {
            return self.not_found(sku, outcomes).await;
        }
        Ok(outcomes)
    }

    /// The skus the due index files at or before `now` (on a Redis Cluster, which keeps no
    /// index, every sale).
    async fn due_sales(&self, now: DateTime<Utc>, limit: usize) -> Outcome<Vec<Sku>> {
        let mut conn = self.conn();
        if !conn.reaches_every_key() {
            return self.skus().await;
        }
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(due_key(self.prefix()))
            .arg("-inf")
            .arg(now.timestamp_micros())
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        let mut seen = std::collections::HashSet::with_capacity(members.len());
        let mut skus = Vec::with_capacity(members.len());
        for member in &members {
            let sku = due_sku(member)
                .and_then(|sku| Sku::new(sku).ok())
                .ok_or_else(|| StoreError::corrupt(format!("`{member}` in the due index")))?;
            // A sale's shards file separately: visit it once, in the order it first came due.
            if seen.insert(sku.clone()) {
                skus.push(sku);
            }
        }
        Ok(skus)
    }

    async fn expired(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Outcome<Vec<Reservation>> {
        let info = self.info(sku).await?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let window = self.window(limit, info.shards.len());
        let per_shard = try_join_all(info.shards.iter().map(|keys| async move {
            // A call that stopped on its read budget refiled what it read (buckets whose
            // reservations were all settled move past `now`): the next one reaches further and
            // answers the soonest again, the ones before still held among them.
            let mut found = Vec::new();
            for _ in 0..EXPIRED_CALLS {
                let more;
                (found, more) = scripts::expired(self.conn(), keys, sku, now, window).await?;
                if !more || found.len() >= limit {
                    break;
                }
            }
            Ok::<_, StoreError>(found)
        }))
        .await?;
        // The index scores whole microseconds; the exact instant decides.
        let mut due: Vec<Reservation> = per_shard
            .into_iter()
            .flatten()
            .filter(|r| r.state == ReservationState::Reserved && r.expires_at <= now)
            .collect();
        due.sort_by_key(|r| (r.expires_at, r.order_id.as_uuid()));
        due.truncate(limit);
        Ok(due)
    }

    /// What each of `shards` may do in one call that answers up to `limit`: each forgets its
    /// share, so that a call forgets about `limit` in all.
    fn window(&self, limit: usize, shards: usize) -> Window {
        Window {
            limit,
            forget: limit.div_ceil(shards),
            retention_us: self.config.retention_us(),
        }
    }

    /// Each shard releases its own due reservations (a reservation's shard is its buyer's) in
    /// one `expire.lua` call, up to `limit` each; the shards' answers, kept for the same call
    /// made again, are deleted once every shard has answered.
    async fn expire(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
        call: &ExpiryCall,
    ) -> Outcome<ExpiredBatch> {
        let info = self.info(sku).await?;
        if limit == 0 {
            return Ok(ExpiredBatch::default());
        }
        let window = self.window(limit, info.shards.len());
        let acks = self.config.acks();
        let token = call.token();
        let per_shard = try_join_all(info.shards.iter().map(|keys| {
            let mut conn = self.conn();
            async move {
                let (released, more) =
                    scripts::expire(conn.clone(), keys, sku, now, window, token).await?;
                if !released.is_empty() {
                    acks.wait(&mut conn, &keys.stock).await?;
                }
                Ok::<_, StoreError>((keys, released, more))
            }
        }))
        .await?;
        let mut batch = ExpiredBatch::default();
        let mut answered = Vec::new();
        for (keys, released, more) in per_shard {
            batch.full |= more;
            if !released.is_empty() {
                answered.push(keys.answer(token));
            }
            batch.released.extend(released);
        }
        // Only now: a shard's answer deleted before another shard failed would be missing when
        // the sweeper makes the call again. One that cannot be deleted lapses.
        join_all(answered.iter().map(|answer| {
            let mut conn = self.conn();
            async move {
                if let Err(err) = redis::cmd("DEL")
                    .arg(answer)
                    .query_async::<()>(&mut conn)
                    .await
                {
                    tracing::debug!(key = %answer, error = %err, "an expiry call's answer is left to lapse");
                }
            }
        }))
        .await;
        Ok(batch)
    }

    async fn snapshot(&self, sku: &Sku) -> Outcome<StockSnapshot> {
        let info = self.info(sku).await?;
        let counts = try_join_all(
            info.shards
                .iter()
                .map(|keys| scripts::snapshot(self.conn(), keys)),
        )
        .await?;
        let mut snapshot = StockSnapshot {
            stock: info.sale.stock,
            available: 0,
            reserved: 0,
            sold: 0,
        };
        for (shard, counts) in counts.into_iter().enumerate() {
            match counts {
                Some((available, reserved, sold)) => {
                    snapshot.available += available;
                    snapshot.reserved += reserved;
                    snapshot.sold += sold;
                }
                // Shard 0 holds the definition: without it the sale is gone.
                _ if shard == 0 => return Err(self.lost(sku)),
                // A shard its creator never wrote holds no units yet.
                _ => {}
            }
        }
        Ok(snapshot)
    }

    async fn restore(&self, sale: &Sale, orders: &[Order]) -> Outcome<()> {
        let shards = match self.load(&sale.sku).await? {
            Some(existing) => existing.shards.len(),
            None => self.config.shards_for(&sale.sku),
        };
        let info = SaleInfo::new(self.prefix(), sale.clone(), shards);
        let def = definition(sale)?;

        // Each order goes back to its user's home shard, with the counts it implies there.
        let mut by_shard: Vec<Vec<&Order>> = vec![Vec::new(); shards];
        let (mut reserved, mut sold) = (vec![0u64; shards], vec![0u64; shards]);
        for order in orders.iter().filter(|order| order.sku == sale.sku) {
            let shard = info.home(order.user.as_str());
            match order.status {
                OrderStatus::Pending => reserved[shard] += u64::from(order.quantity),
                OrderStatus::Paid => sold[shard] += u64::from(order.quantity),
                OrderStatus::Cancelled | OrderStatus::Expired => {}
            }
            by_shard[shard].push(order);
        }
        let held: u64 = reserved.iter().chain(&sold).sum();
        let available = sale.stock.saturating_sub(held);

        let retention_us = self.config.retention_us();
        let now_us = Utc::now().timestamp_micros();
        let restore_shard = |shard: usize| {
            let (info, def) = (&info, &def);
            let orders = &by_shard[shard];
            let (reserved, sold) = (reserved[shard], sold[shard]);
            async move {
                let restored = RestoredShard {
                    setup: info.setup(shard, available, def),
                    reserved,
                    sold,
                };
                let keys = &info.shards[shard];
                let holds = holds(orders);
                // A settled record whose retention has passed is what the sweeper forgets on
                // its next visit (walk.lua): not written at all (a rebuild of a sale settled a
                // day ago is then its holds and counts, not a million records to delete again).
                let records: Vec<&Order> = orders
                    .iter()
                    .copied()
                    .filter(|order| {
                        order.status == OrderStatus::Pending
                            || order
                                .expires_at
                                .timestamp_micros()
                                .saturating_add(retention_us)
                                > now_us
                    })
                    .collect();
                // The first call wipes the shard (also one without orders); the next ones only
                // add orders and holds, so they go out several at once, in any order.
                let calls = records
                    .len()
                    .max(holds.len())
                    .div_ceil(RESTORE_CHUNK)
                    .max(1);
                let call = |i: usize| {
                    let (orders, holds) = (piece(&records, i), piece(&holds, i));
                    scripts::restore(
                        self.conn(),
                        keys,
                        retention_us,
                        &restored,
                        i == 0,
                        orders,
                        holds,
                    )
                };
                call(0).await?;
                futures::stream::iter((1..calls).map(Ok))
                    .try_for_each_concurrent(RESTORES_IN_FLIGHT, call)
                    .await
            }
        };
        try_join_all((0..shards).map(restore_shard)).await?;
        let _: i64 = self
            .conn()
            .sadd(sales_key(self.prefix()), sale.sku.as_str())
            .await?;
        self.sales.insert(sale.sku.clone(), Arc::new(info));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed expectation is a failed test

    use nexussale_core::testkit::services::{redis_url, unavailable};
    use nexussale_core::testkit::unique_name;
    use nexussale_core::{Sale, StockStore};

    use super::*;

    /// A store on the real Redis under a prefix of its own (`name` and a unique tail); `None`
    /// (skip) without Redis.
    async fn store(name: &str) -> Option<RedisStockStore> {
        let config = RedisConfig::default().prefix(unique_name(name));
        match RedisStockStore::connect_with(&redis_url(), config).await {
            Ok(store) => Some(store),
            Err(err) => unavailable("redis", err),
        }
    }

    /// A restore leaves out the settled records whose retention has passed (the sweeper would
    /// forget them on its next visit) and keeps everything else: the pending ones however old,
    /// the recent settled ones, and every order's units in the counts and its buyer's hold.
    #[tokio::test]
    async fn a_restore_leaves_out_records_past_their_retention() {
        let Some(store) = store("restore-retention-").await else {
            return;
        };
        let sale = Sale::new(nexussale_core::testkit::unique_sku(), 10).with_per_user_limit(2);
        let long_ago = Utc::now() - chrono::Duration::days(2);
        let order = |user: &str, status: OrderStatus, expires_at: DateTime<Utc>| Order {
            status,
            expires_at,
            idempotency_key: Some(IdempotencyKey::new(format!("key-{user}")).unwrap()),
            ..nexussale_core::testkit::fixtures::order(&sale.sku, user)
        };
        let old_paid = order("ann", OrderStatus::Paid, long_ago);
        let old_cancelled = order("bob", OrderStatus::Cancelled, long_ago);
        let old_pending = order("cy", OrderStatus::Pending, long_ago);
        let recent_paid = order("dee", OrderStatus::Paid, Utc::now());
        let orders = [
            old_paid.clone(),
            old_cancelled.clone(),
            old_pending.clone(),
            recent_paid.clone(),
        ];
        store.restore(&sale, &orders).await.unwrap();
        for (order, kept) in [
            (&old_paid, false),
            (&old_cancelled, false),
            (&old_pending, true),
            (&recent_paid, true),
        ] {
            let found = store.reservation(&sale.sku, order.id).await.unwrap();
            assert_eq!(found.is_some(), kept, "{} {:?}", order.user, order.status);
        }
        let snapshot = store.snapshot(&sale.sku).await.unwrap();
        assert_eq!(
            (snapshot.available, snapshot.reserved, snapshot.sold),
            (7, 1, 2)
        );
        // Ann's paid unit still counts against her limit.
        let over = ReserveRequest {
            quantity: 2,
            ..nexussale_core::testkit::fixtures::reserve_request(&sale.sku, "ann")
        };
        assert_eq!(
            store.reserve(&over).await.unwrap(),
            ReserveOutcome::LimitExceeded { limit: 2, held: 1 }
        );
    }

    /// `expire.lua` applied, its reply lost: the sweeper makes the same call again and gets
    /// what the first try released (their orders are recorded then), nothing more released;
    /// the kept answer lapses on its own and is deleted once it arrives.
    #[tokio::test]
    async fn an_expire_call_made_again_answers_what_its_lost_reply_held() {
        let Some(store) = store("expire-again-").await else {
            return;
        };
        let sale = Sale::new(nexussale_core::testkit::unique_sku(), 5).with_per_user_limit(5);
        assert!(store.create_sale(&sale).await.unwrap());
        let now = Utc::now();
        for _ in 0..3 {
            let request = ReserveRequest {
                order_id: OrderId::new(),
                sku: sale.sku.clone(),
                user: UserId::new("ann").unwrap(),
                quantity: 1,
                idempotency_key: None,
                remark: None,
                now,
            };
            let reserved = store.reserve(&request).await.unwrap();
            assert!(
                matches!(reserved, ReserveOutcome::Reserved { .. }),
                "{reserved:?}"
            );
        }
        let due = now + chrono::Duration::hours(1);
        let info = store.inner.info(&sale.sku).await.unwrap();
        let keys = &info.shards[0];
        let window = Window {
            limit: 2,
            forget: 2,
            retention_us: store.inner.config.retention_us(),
        };
        let call = ExpiryCall::new();
        let ids = |released: &[Reservation]| {
            let mut ids: Vec<OrderId> = released.iter().map(|r| r.order_id).collect();
            ids.sort_by_key(|id| id.as_uuid());
            ids
        };
        // The first try, whose reply the sweeper never sees.
        let (lost, more) = scripts::expire(
            store.inner.conn(),
            keys,
            &sale.sku,
            due,
            window,
            call.token(),
        )
        .await
        .unwrap();
        assert_eq!((lost.len(), more), (2, true));
        let mut conn = store.inner.conn();
        let kept_ms: i64 = conn.pttl(keys.answer(call.token())).await.unwrap();
        assert!(
            kept_ms > 0 && kept_ms <= 600_000,
            "the kept answer lapses on its own: {kept_ms} ms"
        );

        let again = store.expire(&sale.sku, due, 2, &call).await.unwrap();
        assert_eq!(ids(&again.released), ids(&lost), "the same call made again");
        assert!(again.full);
        assert_eq!(store.snapshot(&sale.sku).await.unwrap().available, 4);
        let kept: bool = conn.exists(keys.answer(call.token())).await.unwrap();
        assert!(!kept, "an answer that arrived is deleted");

        let rest = store
            .expire(&sale.sku, due, 2, &ExpiryCall::new())
            .await
            .unwrap();
        assert_eq!(rest.released.len(), 1);
        assert!(!ids(&lost).contains(&rest.released[0].order_id));
        assert_eq!(store.snapshot(&sale.sku).await.unwrap().available, 5);
    }

    /// A snapshot reads the shard's writer too: a shard last written by another primary (a
    /// failover since, which may have lost its last writes) is regressed for a snapshot that is
    /// the first call after it, and marked so for every later call, until it is restored.
    #[tokio::test]
    async fn a_snapshot_after_a_failover_is_regressed() {
        let Some(store) = store("read-failover-").await else {
            return;
        };
        let sale = Sale::new(nexussale_core::testkit::unique_sku(), 5);
        assert!(store.create_sale(&sale).await.unwrap());
        assert!(store.snapshot(&sale.sku).await.is_ok());
        let info = store.inner.info(&sale.sku).await.unwrap();
        let stock = info.shards[0].stock.clone();
        let mut conn = store.inner.conn();
        // As a promoted replica holds it: written by the primary that died.
        let _: () = conn
            .hset(&stock, "node", "0123456789abcdef0123456789abcdef01234567")
            .await
            .unwrap();

        let read = store.snapshot(&sale.sku).await;
        assert!(
            matches!(read, Err(nexussale_core::Error::StockRegressed(_))),
            "{read:?}"
        );
        let regressed: Option<String> = conn.hget(&stock, "regressed").await.unwrap();
        assert!(
            regressed.is_some(),
            "the read marked the shard for every process"
        );
        store.restore(&sale, &[]).await.unwrap();
        assert_eq!(store.snapshot(&sale.sku).await.unwrap().available, 5);
        store.purge().await.unwrap();
    }

    /// A process that met a regression after another rebuilt the sale does not send the rebuilt
    /// sale back to be rebuilt again: its mark, which names the sequence it saw, is refused.
    #[tokio::test]
    async fn a_late_regression_does_not_mark_a_rebuilt_sale() {
        let Some(store) = store("late-mark-").await else {
            return;
        };
        let sale = Sale::new(nexussale_core::testkit::unique_sku(), 5);
        assert!(store.create_sale(&sale).await.unwrap());
        let info = store.inner.info(&sale.sku).await.unwrap();
        let stock = info.shards[0].stock.clone();
        let mut conn = store.inner.conn();
        let seq = |conn: &mut Connection| {
            let mut conn = conn.clone();
            let stock = stock.clone();
            async move {
                let seq: u64 = conn.hget(&stock, "seq").await.unwrap();
                seq
            }
        };
        // What a call that ran before the rebuild answered.
        let before_rebuild = seq(&mut conn).await;
        store.restore(&sale, &[]).await.unwrap();
        let late: Result<(), _> = store
            .inner
            .unless_regressed(
                &sale.sku,
                Err(StoreError::WentBackwards {
                    stock: stock.clone(),
                    seen: before_rebuild,
                }),
            )
            .await;
        assert!(
            matches!(late, Err(StoreError::WentBackwards { .. })),
            "{late:?}"
        );
        let regressed: Option<String> = conn.hget(&stock, "regressed").await.unwrap();
        assert_eq!(regressed, None, "the rebuilt shard was marked again");
        assert!(store.snapshot(&sale.sku).await.is_ok());

        // Seen in the shard's present life: marked, and the whole sale reported regressed.
        let now = seq(&mut conn).await;
        let current: Result<(), _> = store
            .inner
            .unless_regressed(
                &sale.sku,
                Err(StoreError::WentBackwards {
                    stock: stock.clone(),
                    seen: now,
                }),
            )
            .await;
        assert!(
            matches!(current, Err(StoreError::SaleRegressed(_))),
            "{current:?}"
        );
        let regressed: Option<String> = conn.hget(&stock, "regressed").await.unwrap();
        assert!(regressed.is_some());
        store.purge().await.unwrap();
    }
}
