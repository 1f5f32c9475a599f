//! [`RedisStockStore`]: live stock in Redis, one atomic script call per reservation.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use futures::future::try_join_all;
use redis::{AsyncCommands, Value};

use nexussale_core::{
    ConfirmOutcome, IdempotencyKey, Order, OrderId, OrderStatus, ReleaseOutcome, ReleaseReason,
    Reservation, ReservationState, ReserveOutcome, ReserveRequest, Result, Sale, Sku,
    StockSnapshot, StockStore, UserId,
};

use crate::coalesce::Coalescer;
use crate::config::{MAX_SHARDS, RedisConfig};
use crate::connection::Connection;
use crate::error::StoreError;
use crate::keys::{ShardKeys, home_shard, key_field, sales_key};
use crate::record;
use crate::scripts::{self, Reply, ReserveArgs, int, items, text};

/// Orders written per `restore.lua` call.
const RESTORE_CHUNK: usize = 500;
/// Rounds of moving units from other shards before a sharded sale answers sold out.
const MAX_TRANSFER_ROUNDS: usize = 16;

/// A [`StockStore`] in Redis (a single node, or Redis Cluster with feature `cluster`).
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
    /// Sale definitions and shard keys; definitions never change, so this only ever misses.
    sales: DashMap<Sku, Arc<SaleInfo>>,
    coalescer: Option<Coalescer>,
}

/// A sale as this store needs it on every call.
#[derive(Debug)]
struct SaleInfo {
    sale: Sale,
    shards: Vec<ShardKeys>,
}

impl SaleInfo {
    fn new(prefix: &str, sale: Sale, shards: usize) -> Self {
        let shards = (0..shards.clamp(1, MAX_SHARDS))
            .map(|shard| ShardKeys::new(prefix, &sale.sku, shard))
            .collect();
        Self { sale, shards }
    }

    fn home(&self, user: &str) -> usize {
        home_shard(user, self.shards.len())
    }

    /// The units each shard starts with: an even split, the remainder on the first shards.
    fn portion(&self, total: u64, shard: usize) -> u64 {
        let n = self.shards.len() as u64;
        total / n + u64::from((shard as u64) < total % n)
    }
}

fn micros(instant: Option<DateTime<Utc>>) -> String {
    instant
        .map(|at| at.timestamp_micros().to_string())
        .unwrap_or_default()
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
        let conn = Connection::single(url, &config).await?;
        Ok(Self::from_connection(conn, config))
    }

    /// Connects to a Redis Cluster through any of its `nodes` (feature `cluster`).
    #[cfg(feature = "cluster")]
    pub async fn connect_cluster(nodes: &[&str], config: RedisConfig) -> Result<Self> {
        let conn = Connection::cluster(nodes, &config).await?;
        Ok(Self::from_connection(conn, config))
    }

    fn from_connection(conn: Connection, config: RedisConfig) -> Self {
        let coalescer = config.coalesce.then(|| {
            Coalescer::new(
                conn.clone(),
                config.max_batch,
                config.batches_in_flight,
                config.command_timeout,
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

    /// The configuration this store runs with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// Whether Redis answers (`PING`), for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }

    /// Deletes (`UNLINK`, freed in the background) every sale under this store's prefix, with all its reservations; answers how many
    /// sales there were. For tests and demos: a live sale loses its stock.
    pub async fn purge(&self) -> Result<usize> {
        let mut conn = self.conn();
        let set = sales_key(&self.inner.config.prefix);
        let skus: Vec<String> = conn.smembers(&set).await.map_err(StoreError::from)?;
        for sku in &skus {
            let Ok(sku) = Sku::new(sku) else { continue };
            let shards = match self.load(&sku).await? {
                Some(info) => info.shards.len(),
                None => 1,
            };
            for shard in 0..shards {
                let keys = ShardKeys::new(&self.inner.config.prefix, &sku, shard);
                let _: i64 = conn
                    .unlink(&keys.all()[..])
                    .await
                    .map_err(StoreError::from)?;
            }
            self.inner.sales.remove(&sku);
        }
        let _: i64 = conn.unlink(&set).await.map_err(StoreError::from)?;
        Ok(skus.len())
    }

    fn conn(&self) -> Connection {
        self.inner.conn.clone()
    }

    fn prefix(&self) -> &str {
        &self.inner.config.prefix
    }

    /// The sale's definition as Redis holds it, refreshing the cache.
    async fn load(&self, sku: &Sku) -> Result<Option<Arc<SaleInfo>>> {
        let keys = ShardKeys::new(self.prefix(), sku, 0);
        let (def, shards): (Option<String>, Option<usize>) = self
            .conn()
            .hmget(&keys.stock, &["def", "shards"])
            .await
            .map_err(StoreError::from)?;
        let Some(def) = def else {
            self.inner.sales.remove(sku);
            return Ok(None);
        };
        let sale: Sale = serde_json::from_str(&def)
            .map_err(|err| StoreError::corrupt(format!("definition of sale {sku}: {err}")))?;
        let info = Arc::new(SaleInfo::new(self.prefix(), sale, shards.unwrap_or(1)));
        self.inner.sales.insert(sku.clone(), Arc::clone(&info));
        Ok(Some(info))
    }

    /// The sale from the cache, or from Redis on a miss.
    async fn info(&self, sku: &Sku) -> Result<Arc<SaleInfo>> {
        if let Some(info) = self.inner.sales.get(sku) {
            return Ok(Arc::clone(&info));
        }
        self.load(sku)
            .await?
            .ok_or_else(|| nexussale_core::Error::UnknownSale(sku.clone()))
    }

    /// `answer` for a reservation no shard holds, unless the whole sale is gone from Redis
    /// (flushed, restarted): then the sale is unknown, as it would be to a fresh store.
    async fn not_found<T>(&self, sku: &Sku, answer: T) -> Result<T> {
        match self.load(sku).await? {
            Some(_) => Ok(answer),
            None => Err(self.lost(sku)),
        }
    }

    /// The store lost the sale (flushed, restarted): forget the cached definition too.
    fn lost(&self, sku: &Sku) -> nexussale_core::Error {
        self.inner.sales.remove(sku);
        nexussale_core::Error::UnknownSale(sku.clone())
    }

    async fn create_shard(&self, info: &SaleInfo, shard: usize, def: &str) -> Result<bool> {
        let sale = &info.sale;
        let created: i64 = scripts::CREATE
            .key(&info.shards[shard].stock)
            .arg(info.portion(sale.stock, shard))
            .arg(sale.per_user_limit)
            .arg(micros(sale.starts_at))
            .arg(micros(sale.ends_at))
            .arg(info.shards.len())
            .arg(def)
            .invoke_async(&mut self.conn())
            .await
            .map_err(StoreError::from)?;
        Ok(created == 1)
    }

    /// One reservation on one shard, coalesced with its neighbours when that is on.
    async fn reserve_on(&self, keys: &ShardKeys, args: ReserveArgs) -> Result<Reply> {
        let reply = match &self.inner.coalescer {
            Some(coalescer) => coalescer.reserve(keys, args).await?,
            None => {
                let mut replies = scripts::reserve(self.conn(), keys, 0, &[&args]).await?;
                replies
                    .pop()
                    .ok_or_else(|| StoreError::corrupt("no reply to a reservation"))?
            }
        };
        Ok(reply)
    }

    /// The home shard of a sharded sale ran out: move units from the other shards to it and try
    /// again there, until it succeeds or every other shard is empty with nothing on its way.
    async fn reserve_with_transfers(
        &self,
        info: &SaleInfo,
        home: usize,
        args: &ReserveArgs,
        mut available: u64,
    ) -> Result<Reply> {
        let n = info.shards.len();
        let wanted = u64::from(args.quantity);
        for round in 0..MAX_TRANSFER_ROUNDS {
            let (mut gathered, mut in_transit) = (0u64, 0u64);
            let mut sources = Vec::new();
            for shard in (1..n).map(|step| (home + step) % n) {
                if gathered + available >= wanted {
                    break;
                }
                let (taken, transit): (u64, u64) = scripts::WITHDRAW
                    .key(&info.shards[shard].stock)
                    .arg(wanted - gathered - available)
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(StoreError::from)?;
                gathered += taken;
                in_transit += transit.saturating_sub(taken);
                if taken > 0 {
                    sources.push((shard, taken));
                }
            }
            if gathered == 0 {
                // Units can also be leaving the home shard for another buyer's home.
                let home_transit: Option<u64> = self
                    .conn()
                    .hget(&info.shards[home].stock, "transit")
                    .await
                    .map_err(StoreError::from)?;
                if in_transit + home_transit.unwrap_or(0) == 0 {
                    return Ok(Reply::SoldOut { available });
                }
                // Units are on their way from a shard to another: look again once they land.
                tokio::time::sleep(std::time::Duration::from_millis(1 << round.min(4))).await;
                continue;
            }
            // The deposit and the reservation are one script call: the units cannot go astray.
            let replies =
                scripts::reserve(self.conn(), &info.shards[home], gathered, &[args]).await;
            for (shard, taken) in sources {
                let _: i64 = scripts::SETTLE
                    .key(&info.shards[shard].stock)
                    .arg(taken)
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(StoreError::from)?;
            }
            match replies?.pop() {
                Some(Reply::SoldOut { available: now }) => available = now,
                Some(reply) => return Ok(reply),
                None => return Err(StoreError::corrupt("no reply to a reservation").into()),
            }
        }
        Ok(Reply::SoldOut { available })
    }

    /// The units available on every shard but `home`, each read once.
    async fn available_elsewhere(&self, info: &SaleInfo, home: usize) -> Result<u64> {
        let counts = try_join_all(
            info.shards
                .iter()
                .enumerate()
                .filter(|(shard, _)| *shard != home)
                .map(|(_, keys)| {
                    let mut conn = self.conn();
                    async move {
                        // Units on their way to another shard are still for sale.
                        let (available, transit): (Option<u64>, Option<u64>) =
                            conn.hmget(&keys.stock, &["available", "transit"]).await?;
                        Ok::<_, StoreError>(available.unwrap_or(0) + transit.unwrap_or(0))
                    }
                }),
        )
        .await?;
        Ok(counts.into_iter().sum())
    }

    /// Runs `call` on the shard that holds `order_id`: the only one, of a sharded sale, whose
    /// answer is not "not found".
    async fn on_owning_shard<T, F, Fut>(&self, info: &SaleInfo, not_found: T, call: F) -> Result<T>
    where
        T: PartialEq,
        F: Fn(ShardKeys, Connection) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let answers = try_join_all(
            info.shards
                .iter()
                .map(|keys| call(keys.clone(), self.conn())),
        )
        .await?;
        Ok(answers
            .into_iter()
            .find(|answer| *answer != not_found)
            .unwrap_or(not_found))
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

fn outcome(
    reply: Reply,
    request: &ReserveRequest,
    info: &SaleInfo,
    store: &RedisStockStore,
) -> Result<ReserveOutcome> {
    Ok(match reply {
        Reply::Reserved { remaining } => ReserveOutcome::Reserved {
            reservation: request.reservation(&info.sale),
            remaining,
        },
        Reply::SoldOut { available } => ReserveOutcome::SoldOut { available },
        Reply::LimitExceeded { limit, held } => ReserveOutcome::LimitExceeded { limit, held },
        Reply::NotActive(state) => ReserveOutcome::NotActive { state },
        Reply::Existing { order_id, record } => {
            let order_id: OrderId = order_id
                .parse()
                .map_err(|_| StoreError::corrupt(format!("order id `{order_id}`")))?;
            ReserveOutcome::Existing {
                reservation: record::decode(&request.sku, order_id, &record)?,
            }
        }
        Reply::NoSale => return Err(store.lost(&request.sku)),
    })
}

#[async_trait]
impl StockStore for RedisStockStore {
    async fn create_sale(&self, sale: &Sale) -> Result<bool> {
        let fresh = SaleInfo::new(
            self.prefix(),
            sale.clone(),
            self.inner.config.shards_for(&sale.sku),
        );
        let def = serde_json::to_string(sale)
            .map_err(|err| StoreError::corrupt(format!("sale definition: {err}")))?;
        let created = self.create_shard(&fresh, 0, &def).await?;
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
            self.create_shard(&info, shard, "").await?;
        }
        let _: i64 = self
            .conn()
            .sadd(sales_key(self.prefix()), sale.sku.as_str())
            .await
            .map_err(StoreError::from)?;
        self.inner.sales.insert(sale.sku.clone(), info);
        Ok(created)
    }

    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
        Ok(self.load(sku).await?.map(|info| info.sale.clone()))
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        let skus: Vec<String> = self
            .conn()
            .smembers(sales_key(self.prefix()))
            .await
            .map_err(StoreError::from)?;
        let mut sales = Vec::with_capacity(skus.len());
        for sku in skus {
            let sku = Sku::new(&sku).map_err(|err| {
                StoreError::corrupt(format!("sku `{sku}` in the sales set: {err}"))
            })?;
            if let Some(info) = self.load(&sku).await? {
                sales.push(info.sale.clone());
            }
        }
        sales.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(sales)
    }

    async fn reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome> {
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
            order_id: request.order_id.to_string(),
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
        let reply = match (self.reserve_on(&info.shards[home], args).await?, retry) {
            (Reply::SoldOut { available }, Some(args)) => {
                self.reserve_with_transfers(&info, home, &args, available)
                    .await?
            }
            (reply, _) => reply,
        };
        let reply = match reply {
            // The home shard's last unit: the sale is sold out only if every shard is.
            Reply::Reserved { remaining: 0 } if info.shards.len() > 1 => Reply::Reserved {
                remaining: self.available_elsewhere(&info, home).await?,
            },
            reply => reply,
        };
        outcome(reply, request, &info, self)
    }

    async fn reservation(&self, sku: &Sku, order_id: OrderId) -> Result<Option<Reservation>> {
        let info = self.info(sku).await?;
        let id = order_id.to_string();
        let record = self
            .on_owning_shard(&info, None, |keys, mut conn| {
                let id = id.clone();
                async move {
                    let record: Option<String> =
                        conn.hget(&keys.res, &id).await.map_err(StoreError::from)?;
                    Ok(record)
                }
            })
            .await?;
        match record {
            Some(record) => Ok(Some(record::decode(sku, order_id, &record)?)),
            None => self.not_found(sku, None).await,
        }
    }

    async fn reservation_by_key(
        &self,
        sku: &Sku,
        user: &UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<Reservation>> {
        let info = self.info(sku).await?;
        // A user's keys and reservations live on the user's home shard.
        let keys = &info.shards[info.home(user.as_str())];
        let mut conn = self.conn();
        let order_id: Option<String> = conn
            .hget(&keys.keys, key_field(user.as_str(), key.as_str()))
            .await
            .map_err(StoreError::from)?;
        let Some(order_id) = order_id else {
            return Ok(None);
        };
        let order_id: OrderId = order_id
            .parse()
            .map_err(|_| StoreError::corrupt(format!("order id `{order_id}` of a key")))?;
        let record: Option<String> = conn
            .hget(&keys.res, order_id.to_string())
            .await
            .map_err(StoreError::from)?;
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
    ) -> Result<ConfirmOutcome> {
        let info = self.info(sku).await?;
        let id = order_id.to_string();
        let outcome = self
            .on_owning_shard(&info, ConfirmOutcome::NotFound, |keys, mut conn| {
                let id = id.clone();
                async move {
                    let reply: Value = scripts::CONFIRM
                        .key(&keys.stock)
                        .key(&keys.res)
                        .key(&keys.expiry)
                        .arg(&id)
                        .arg(now.timestamp_micros())
                        .invoke_async(&mut conn)
                        .await
                        .map_err(StoreError::from)?;
                    let reply = items(reply)?;
                    Ok(match reply.first().map(int).transpose()? {
                        Some(0) => ConfirmOutcome::Confirmed,
                        Some(1) => ConfirmOutcome::AlreadyConfirmed,
                        Some(4) => ConfirmOutcome::Expired,
                        Some(2) => match reply.get(1).map(text).transpose()?.as_deref() {
                            Some(letter) => match record::state_of(letter)? {
                                ReservationState::Released(reason) => {
                                    ConfirmOutcome::Released(reason)
                                }
                                state => {
                                    return Err(StoreError::corrupt(format!(
                                        "confirm refused in state {state:?}"
                                    ))
                                    .into());
                                }
                            },
                            None => return Err(StoreError::corrupt("confirm reply").into()),
                        },
                        _ => ConfirmOutcome::NotFound,
                    })
                }
            })
            .await?;
        match outcome {
            ConfirmOutcome::NotFound => self.not_found(sku, outcome).await,
            outcome => Ok(outcome),
        }
    }

    async fn release(
        &self,
        sku: &Sku,
        order_id: OrderId,
        reason: ReleaseReason,
    ) -> Result<ReleaseOutcome> {
        let info = self.info(sku).await?;
        let id = order_id.to_string();
        let letter = record::release_letter(reason).to_string();
        let outcome = self
            .on_owning_shard(&info, ReleaseOutcome::NotFound, |keys, mut conn| {
                let (id, letter) = (id.clone(), letter.clone());
                async move {
                    let reply: Value = scripts::RELEASE
                        .key(&keys.stock)
                        .key(&keys.held)
                        .key(&keys.res)
                        .key(&keys.expiry)
                        .arg(&id)
                        .arg(&letter)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(StoreError::from)?;
                    let reply = items(reply)?;
                    let field = |i: usize| {
                        reply
                            .get(i)
                            .ok_or_else(|| StoreError::corrupt(format!("release reply {reply:?}")))
                    };
                    Ok(match int(field(0)?)? {
                        0 => ReleaseOutcome::Released {
                            quantity: u32::try_from(int(field(1)?)?)
                                .map_err(|_| StoreError::corrupt("released quantity"))?,
                        },
                        1 => match record::state_of(&text(field(1)?)?)? {
                            ReservationState::Released(earlier) => {
                                ReleaseOutcome::AlreadyReleased(earlier)
                            }
                            state => {
                                return Err(StoreError::corrupt(format!(
                                    "release refused in state {state:?}"
                                ))
                                .into());
                            }
                        },
                        2 => ReleaseOutcome::Confirmed,
                        _ => ReleaseOutcome::NotFound,
                    })
                }
            })
            .await?;
        match outcome {
            ReleaseOutcome::NotFound => self.not_found(sku, outcome).await,
            outcome => Ok(outcome),
        }
    }

    async fn expired(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Reservation>> {
        let info = self.info(sku).await?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now_us = now.timestamp_micros();
        let per_shard = try_join_all(info.shards.iter().map(|keys| {
            let mut conn = self.conn();
            async move {
                let flat: Value = scripts::EXPIRED
                    .key(&keys.res)
                    .key(&keys.expiry)
                    .arg(now_us)
                    .arg(limit)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(StoreError::from)?;
                let flat = items(flat)?;
                let mut found = Vec::with_capacity(flat.len() / 2);
                for pair in flat.chunks(2) {
                    let [id, record] = pair else {
                        return Err(StoreError::corrupt("odd expired reply"));
                    };
                    let id = text(id)?;
                    let order_id: OrderId = id
                        .parse()
                        .map_err(|_| StoreError::corrupt(format!("order id `{id}`")))?;
                    found.push(record::decode(sku, order_id, &text(record)?)?);
                }
                Ok::<_, StoreError>(found)
            }
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

    async fn snapshot(&self, sku: &Sku) -> Result<StockSnapshot> {
        let info = self.info(sku).await?;
        let counts = try_join_all(info.shards.iter().map(|keys| {
            let mut conn = self.conn();
            async move {
                let counts: (Option<u64>, Option<u64>, Option<u64>) = conn
                    .hmget(&keys.stock, &["available", "reserved", "sold"])
                    .await
                    .map_err(StoreError::from)?;
                Ok::<_, StoreError>(counts)
            }
        }))
        .await?;
        let mut snapshot = StockSnapshot {
            stock: info.sale.stock,
            available: 0,
            reserved: 0,
            sold: 0,
        };
        for (shard, counts) in counts.into_iter().enumerate() {
            match counts {
                (Some(available), Some(reserved), Some(sold)) => {
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

    async fn restore(&self, sale: &Sale, orders: &[Order]) -> Result<()> {
        let shards = match self.load(&sale.sku).await? {
            Some(existing) => existing.shards.len(),
            None => self.inner.config.shards_for(&sale.sku),
        };
        let info = SaleInfo::new(self.prefix(), sale.clone(), shards);
        let def = serde_json::to_string(sale)
            .map_err(|err| StoreError::corrupt(format!("sale definition: {err}")))?;

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

        for (shard, orders) in by_shard.iter().enumerate() {
            let keys = &info.shards[shard];
            // A shard without orders still gets its first (wiping) call.
            let chunks: Vec<&[&Order]> = match orders.is_empty() {
                true => vec![&[]],
                false => orders.chunks(RESTORE_CHUNK).collect(),
            };
            for (i, chunk) in chunks.into_iter().enumerate() {
                let is_first = i == 0;
                let mut call = scripts::RESTORE.prepare_invoke();
                call.key(&keys.stock)
                    .key(&keys.held)
                    .key(&keys.keys)
                    .key(&keys.res)
                    .key(&keys.expiry)
                    .arg(u8::from(is_first))
                    .arg(info.portion(available, shard))
                    .arg(reserved[shard])
                    .arg(sold[shard])
                    .arg(sale.per_user_limit)
                    .arg(micros(sale.starts_at))
                    .arg(micros(sale.ends_at))
                    .arg(shards)
                    .arg(if shard == 0 { def.as_str() } else { "" });
                for order in chunk {
                    let state = ReservationState::of_order(order.status);
                    call.arg(order.id.to_string())
                        .arg(record::state_letter(state).to_string())
                        .arg(order.user.as_str())
                        .arg(order.quantity)
                        .arg(
                            order
                                .idempotency_key
                                .as_ref()
                                .map(|key| key_field(order.user.as_str(), key.as_str()))
                                .unwrap_or_default(),
                        )
                        .arg(record::encode_body(
                            &order.user,
                            order.quantity,
                            order.idempotency_key.as_ref(),
                            order.remark.as_deref(),
                            order.created_at,
                            order.expires_at,
                        ))
                        .arg(order.expires_at.timestamp_micros());
                }
                let _: i64 = call
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(StoreError::from)?;
            }
        }
        let _: i64 = self
            .conn()
            .sadd(sales_key(self.prefix()), sale.sku.as_str())
            .await
            .map_err(StoreError::from)?;
        self.inner.sales.insert(sale.sku.clone(), Arc::new(info));
        Ok(())
    }
}
