//! [`MySqlOrderRepository`]: orders and sale definitions in MySQL 8 or MariaDB 10.11+.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{Connection, MySql, QueryBuilder, Row};
use uuid::Uuid;

use nexussale_core::{
    IdempotencyKey, Order, OrderId, OrderPage, OrderQuery, OrderRepository, OrderStatus, Result,
    Sale, Sku, StatusCounts, Tally, Timeline, TransitionOutcome, UserId,
};

use crate::config::MySqlConfig;
use crate::error::RepoError;

/// The embedded schema migrations (`migrations/`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Orders per `INSERT` statement: 11 placeholders each stays far below MySQL's 65,535.
const ROWS_PER_STATEMENT: usize = 1000;
/// Attempts at a batch insert that InnoDB picked as a deadlock victim (it rolled it back whole).
const DEADLOCK_ATTEMPTS: usize = 3;

const ORDER_COLUMNS: &str = "id, sku, user_id, quantity, status, created_at, updated_at, \
                             expires_at, remark, idempotency_key";

/// An [`OrderRepository`] over a sqlx MySQL pool.
///
/// - `insert` writes a batch as one multi-row `INSERT … ON DUPLICATE KEY UPDATE` (up to 1,000
///   orders per statement; a larger batch is several statements in one transaction), so a batch
///   of 500 is one round trip, atomic, and inserting the same orders again changes no order.
/// - `transition` is `UPDATE … WHERE id = ? AND status = ?`: compare-and-set; `transition_many`
///   locks and reads a batch's rows and updates those in `from`, one transaction per 1,000.
/// - `list` pages by keyset (`id < cursor ORDER BY id DESC`), never `OFFSET`.
/// - `counts` groups one sale's orders by status from an index.
///
/// Every statement binds its values; the only SQL text that varies is which of a fixed set of
/// filters a listing uses.
///
/// ```no_run
/// use nexussale_mysql::MySqlOrderRepository;
///
/// # #[tokio::main] async fn main() -> nexussale_core::Result<()> {
/// let repository = MySqlOrderRepository::connect("mysql://root@127.0.0.1:3306/test").await?;
/// repository.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MySqlOrderRepository {
    pool: MySqlPool,
}

// Text columns are read as bytes: with the binary collation the driver reports them as
// VARBINARY / BINARY, which it will not decode into `String`.
#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    sku: Vec<u8>,
    user_id: Vec<u8>,
    quantity: u32,
    status: Vec<u8>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    remark: Option<Vec<u8>>,
    idempotency_key: Option<Vec<u8>>,
}

/// A text column's bytes as text.
fn text(column: &str, bytes: Vec<u8>) -> std::result::Result<String, RepoError> {
    String::from_utf8(bytes).map_err(|_| RepoError::corrupt(format!("{column} is not UTF-8")))
}

impl OrderRow {
    fn into_order(self) -> std::result::Result<Order, RepoError> {
        let id = self.id;
        let bad = |what: &str, err: nexussale_core::Error| {
            RepoError::corrupt(format!("order {id}: {what}: {err}"))
        };
        Ok(Order {
            id: OrderId::from(self.id),
            sku: Sku::new(text("sku", self.sku)?).map_err(|err| bad("sku", err))?,
            user: UserId::new(text("user_id", self.user_id)?).map_err(|err| bad("user_id", err))?,
            quantity: self.quantity,
            status: status_of(&text("status", self.status)?)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            expires_at: self.expires_at,
            remark: self.remark.map(|r| text("remark", r)).transpose()?,
            idempotency_key: self
                .idempotency_key
                .map(|key| text("idempotency_key", key))
                .transpose()?
                .map(IdempotencyKey::new)
                .transpose()
                .map_err(|err| bad("idempotency_key", err))?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SaleRow {
    sku: Vec<u8>,
    stock: u64,
    per_user_limit: u32,
    starts_at: Option<NaiveDateTime>,
    ends_at: Option<NaiveDateTime>,
    reservation_ttl_ns: u64,
    /// JSON; bytes, as the table's binary collation makes text.
    waiting_room: Option<Vec<u8>>,
}

impl SaleRow {
    fn into_sale(self) -> std::result::Result<Sale, RepoError> {
        let sku = text("sku", self.sku)?;
        let sku =
            Sku::new(&sku).map_err(|err| RepoError::corrupt(format!("sale `{sku}`: {err}")))?;
        let sale = Sale::new(sku, self.stock)
            .with_per_user_limit(self.per_user_limit)
            .with_window(
                self.starts_at.map(|at| at.and_utc()),
                self.ends_at.map(|at| at.and_utc()),
            )
            .with_reservation_ttl(Duration::from_nanos(self.reservation_ttl_ns));
        match self.waiting_room {
            None => Ok(sale),
            Some(json) => serde_json::from_slice(&json)
                .map(|room| sale.with_waiting_room(room))
                .map_err(|err| RepoError::corrupt(format!("a sale's waiting room: {err}"))),
        }
    }
}

fn status_of(text: &str) -> std::result::Result<OrderStatus, RepoError> {
    OrderStatus::ALL
        .into_iter()
        .find(|status| status.as_str() == text)
        .ok_or_else(|| RepoError::corrupt(format!("order status `{text}`")))
}

impl MySqlOrderRepository {
    /// Connects a pool with the default [`MySqlConfig`] to
    /// `mysql://user[:password]@host[:port]/database` (MySQL 8 or MariaDB 10.11+). Add
    /// `?socket=/run/mysqld/mysqld.sock` where root may only log in over the socket.
    ///
    /// TLS (rustls with ring): `?ssl-mode=VERIFY_IDENTITY&ssl-ca=/path/ca.pem` checks the
    /// server's certificate against that CA (without `ssl-ca`, the system's roots) and its name;
    /// `REQUIRED` only encrypts. A certificate that does not hold fails the connect. Without
    /// `ssl-mode` (`PREFERRED`), TLS is used when the server offers it, unverified.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, MySqlConfig::default()).await
    }

    /// Connects a pool with `config`. Fails when the database cannot be reached.
    pub async fn connect_with(url: &str, config: MySqlConfig) -> Result<Self> {
        let options: MySqlConnectOptions = url.parse().map_err(RepoError::from)?;
        let lock_wait_secs = config.lock_wait_timeout.as_secs().max(1);
        let pool = MySqlPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(config.idle_timeout)
            .max_lifetime(config.max_lifetime)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // Whatever the server's default: a value that does not fit its column fails
                    // the statement instead of being cut short.
                    sqlx::query(&format!(
                        "SET SESSION sql_mode = CONCAT_WS(',', @@sql_mode, 'STRICT_ALL_TABLES'), \
                         innodb_lock_wait_timeout = {lock_wait_secs}"
                    ))
                    .execute(conn)
                    .await
                    .map(drop)
                })
            })
            .connect_with(options)
            .await
            .map_err(RepoError::from)?;
        Ok(Self::from_pool(pool))
    }

    /// A repository over an existing pool.
    pub fn from_pool(pool: MySqlPool) -> Self {
        Self { pool }
    }

    /// The pool, for the caller's own queries.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Brings the schema up to date with the embedded migrations. Safe to run again on every
    /// start, and from several processes at once: they take turns under a named lock (MySQL's
    /// DDL is not transactional, so two processes migrating together would each apply the
    /// first migration and leave it half-applied).
    pub async fn migrate(&self) -> Result<()> {
        // A session of its own (out of the pool) holds the lock while the pool migrates.
        let mut conn = self.pool.acquire().await.map_err(RepoError::from)?.detach();
        let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK('nexussale_migrate', 120)")
            .fetch_one(&mut conn)
            .await
            .map_err(RepoError::from)?;
        if locked != Some(1) {
            return Err(RepoError::corrupt("no turn at the migration lock within 120 s").into());
        }
        let migrated = MIGRATOR.run(&self.pool).await;
        // Closing the session releases the lock and lets the next process in.
        let _ = conn.close().await;
        migrated.map_err(RepoError::from)?;
        Ok(())
    }

    /// Whether the database answers, for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(RepoError::from)?;
        Ok(())
    }

    /// Inserts `orders` (sorted by id, without repeats) and answers how many were new.
    async fn insert_sorted(&self, orders: &[&Order]) -> std::result::Result<u64, RepoError> {
        let statements: Vec<&[&Order]> = orders.chunks(ROWS_PER_STATEMENT).collect();
        let mut affected = 0;
        if let [only] = statements.as_slice() {
            // One statement is atomic on its own: no transaction, one round trip.
            affected = insert_statement(only)
                .build()
                .persistent(kept_prepared(only.len()))
                .execute(&self.pool)
                .await?
                .rows_affected();
        } else {
            let mut tx = self.pool.begin().await?;
            for chunk in statements {
                affected += insert_statement(chunk)
                    .build()
                    .persistent(kept_prepared(chunk.len()))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
        }
        // A new row counts 1, a repeated one 2 (its redelivery counter went up).
        let rows = orders.len() as u64;
        (2 * rows)
            .checked_sub(affected)
            .filter(|new| *new <= rows)
            .ok_or_else(|| RepoError::corrupt(format!("{affected} rows affected by {rows} orders")))
    }

    /// One transaction for `ids` (at most [`ROWS_PER_STATEMENT`], distinct): those in `from` set
    /// to `to`. Answers the status each found order had.
    ///
    /// The common case, every order still in `from` (a sweep's expiries), is one `UPDATE … WHERE
    /// id IN (…) AND status = from` that matches them all. Otherwise that is rolled back, and
    /// the rows are locked and read (`SELECT … FOR UPDATE`) to tell each apart, then those in
    /// `from` updated.
    async fn transition_chunk(
        &self,
        ids: &[OrderId],
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
    ) -> std::result::Result<HashMap<OrderId, OrderStatus>, RepoError> {
        let mut tx = self.pool.begin().await?;
        let matched = update_statement(ids.iter().map(OrderId::as_uuid), to, at, Some(from))
            .build()
            .persistent(kept_prepared(ids.len()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if matched == ids.len() as u64 {
            tx.commit().await?;
            return Ok(ids.iter().map(|&id| (id, from)).collect());
        }
        tx.rollback().await?;
        let mut tx = self.pool.begin().await?;
        let mut select = QueryBuilder::<MySql>::new("SELECT id, status FROM orders WHERE id IN (");
        let mut listed = select.separated(", ");
        for id in ids {
            listed.push_bind(id.as_uuid());
        }
        select.push(") FOR UPDATE");
        let rows = select
            .build()
            .persistent(kept_prepared(ids.len()))
            .fetch_all(&mut *tx)
            .await?;
        let mut found = HashMap::with_capacity(rows.len());
        let mut matching = Vec::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row.try_get("id")?;
            let status = status_of(&text("status", row.try_get("status")?)?)?;
            if status == from {
                matching.push(id);
            }
            found.insert(OrderId::from(id), status);
        }
        if !matching.is_empty() {
            let rows = matching.len();
            update_statement(matching.into_iter(), to, at, None)
                .build()
                .persistent(kept_prepared(rows))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(found)
    }
}

/// Whether the insert of `rows` rows stays a prepared statement on its connection. Kept, every
/// batch size became one (up to 100 per connection, ~70 KB each with 500 rows of binds), growing
/// the database's prepared statements toward MySQL's global `max_prepared_stmt_count` (16,382),
/// past which every prepare, so every insert, fails. Not kept, a statement is prepared, run and
/// closed each time, which cost a 500-row batch a third of its rate. So the sizes a busy worker
/// sends (full batches, multiples of 50) and single rows stay prepared, at most 21 per
/// connection, and the odd sizes of a quiet moment do not.
fn kept_prepared(rows: usize) -> bool {
    rows == 1 || rows.is_multiple_of(50)
}

/// One page of `query` (`size` orders and one more, which tells whether another page follows),
/// newest first, after its cursor.
///
/// The index is named: for `sku = ? AND id < ? ORDER BY id DESC`, MariaDB 10.11 chose a `ref`
/// on the sku alone and walked every order newer than the cursor to reach the page (0.8 s a
/// page half-way through a sale of 10^6 orders, so listing it all was quadratic); forced, it
/// reads the `(sku, id)` range from the cursor down.
fn list_statement(query: &OrderQuery, size: usize) -> QueryBuilder<'_, MySql> {
    let index = match (&query.user, &query.sku, query.status) {
        (Some(_), _, _) => " FORCE INDEX (orders_by_user)",
        (None, Some(_), Some(_)) => " FORCE INDEX (orders_by_sku_status)",
        (None, Some(_), None) => " FORCE INDEX (orders_by_sku)",
        // No filter reads the primary key's range; a status alone has no index of its own (the
        // server refuses it).
        (None, None, _) => "",
    };
    let mut select = QueryBuilder::<MySql>::new(format!(
        "SELECT {ORDER_COLUMNS} FROM orders{index} WHERE TRUE"
    ));
    if let Some(user) = &query.user {
        select.push(" AND user_id = ").push_bind(user.as_str());
    }
    if let Some(sku) = &query.sku {
        select.push(" AND sku = ").push_bind(sku.as_str());
    }
    if let Some(status) = query.status {
        select.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(after) = query.after {
        select.push(" AND id < ").push_bind(after.as_uuid());
    }
    select
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(size as u64 + 1);
    select
}

/// `UPDATE orders SET status = to, updated_at = at WHERE id IN (ids)`, and `AND status = from`
/// when given. (The driver counts matched rows, changed or not.) Its text differs with the
/// number of ids, as an insert's does.
fn update_statement<'a>(
    ids: impl Iterator<Item = Uuid>,
    to: OrderStatus,
    at: DateTime<Utc>,
    from: Option<OrderStatus>,
) -> QueryBuilder<'a, MySql> {
    let mut update = QueryBuilder::<MySql>::new("UPDATE orders SET status = ");
    update
        .push_bind(to.as_str())
        .push(", updated_at = ")
        .push_bind(at.naive_utc())
        .push(" WHERE id IN (");
    let mut listed = update.separated(", ");
    for id in ids {
        listed.push_bind(id);
    }
    update.push(")");
    if let Some(from) = from {
        update.push(" AND status = ").push_bind(from.as_str());
    }
    update
}

/// `INSERT … VALUES (…), (…) ON DUPLICATE KEY UPDATE redeliveries = redeliveries + 1`: an
/// existing order keeps everything but its redelivery count.
///
/// Its text differs with every batch size; see [`kept_prepared`] for which sizes stay prepared.
fn insert_statement<'a>(orders: &'a [&'a Order]) -> QueryBuilder<'a, MySql> {
    let mut query = QueryBuilder::new(format!("INSERT INTO orders ({ORDER_COLUMNS}) "));
    query.push_values(orders, |mut row, order| {
        row.push_bind(order.id.as_uuid())
            .push_bind(order.sku.as_str())
            .push_bind(order.user.as_str())
            .push_bind(order.quantity)
            .push_bind(order.status.as_str())
            .push_bind(order.created_at.naive_utc())
            .push_bind(order.updated_at.naive_utc())
            .push_bind(order.expires_at.naive_utc())
            .push_bind(order.remark.as_deref())
            .push_bind(order.idempotency_key.as_ref().map(IdempotencyKey::as_str));
    });
    query.push(" ON DUPLICATE KEY UPDATE redeliveries = redeliveries + 1");
    query
}

#[async_trait]
impl OrderRepository for MySqlOrderRepository {
    async fn save_sale(&self, sale: &Sale) -> Result<bool> {
        let ttl = u64::try_from(sale.reservation_ttl.as_nanos()).map_err(|_| {
            nexussale_core::Error::invalid("reservation_ttl_secs", "is too long to store")
        })?;
        let room =
            match &sale.waiting_room {
                Some(room) => Some(serde_json::to_string(room).map_err(|err| {
                    nexussale_core::Error::invalid("waiting_room", err.to_string())
                })?),
                None => None,
            };
        let inserted = sqlx::query(
            "INSERT INTO sales (sku, stock, per_user_limit, starts_at, ends_at, reservation_ttl_ns, \
             waiting_room) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(sale.sku.as_str())
        .bind(sale.stock)
        .bind(sale.per_user_limit)
        // As DATETIME (UTC), not TIMESTAMP: sqlx sends a `DateTime<Utc>` as TIMESTAMP, whose
        // 1970-2038 range turned a window past 2038 into NULL (an open sale after a restart).
        .bind(sale.starts_at.map(|at| at.naive_utc()))
        .bind(sale.ends_at.map(|at| at.naive_utc()))
        .bind(ttl)
        .bind(room)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => Ok(false),
            Err(err) => Err(RepoError::from(err).into()),
        }
    }

    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
        let row: Option<SaleRow> = sqlx::query_as(
            "SELECT sku, stock, per_user_limit, starts_at, ends_at, reservation_ttl_ns, \
             waiting_room FROM sales WHERE sku = ?",
        )
        .bind(sku.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(RepoError::from)?;
        Ok(row.map(SaleRow::into_sale).transpose()?)
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        self.sales_after(None, usize::MAX).await
    }

    async fn sales_after(&self, after: Option<Sku>, limit: usize) -> Result<Vec<Sale>> {
        // A range of the primary key (utf8mb4_bin: Rust's byte order), never the whole table.
        let rows: Vec<SaleRow> = sqlx::query_as(
            "SELECT sku, stock, per_user_limit, starts_at, ends_at, reservation_ttl_ns, \
             waiting_room FROM sales WHERE sku > ? ORDER BY sku LIMIT ?",
        )
        .bind(after.as_ref().map_or("", Sku::as_str))
        .bind(limit as u64)
        .fetch_all(&self.pool)
        .await
        .map_err(RepoError::from)?;
        Ok(rows
            .into_iter()
            .map(SaleRow::into_sale)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Result<Option<Sale>> {
        // What `Sale::ended` does, in one statement: the row lock makes concurrent ends meet at
        // the earliest.
        let at = at.naive_utc();
        sqlx::query(
            "UPDATE sales SET \
             ends_at = CASE WHEN ends_at IS NULL OR ends_at > ? THEN ? ELSE ends_at END, \
             starts_at = CASE WHEN starts_at > ? THEN ? ELSE starts_at END \
             WHERE sku = ?",
        )
        .bind(at)
        .bind(at)
        .bind(at)
        .bind(at)
        .bind(sku.as_str())
        .execute(&self.pool)
        .await
        .map_err(RepoError::from)?;
        self.sale(sku).await
    }

    async fn insert(&self, orders: &[Order]) -> Result<u64> {
        if orders.is_empty() {
            return Ok(0);
        }
        // One lock order for every writer of the same ids: concurrent batches do not deadlock
        // on each other's rows.
        let mut sorted: Vec<&Order> = orders.iter().collect();
        sorted.sort_by_key(|order| order.id);
        sorted.dedup_by_key(|order| order.id);
        let mut attempt = 1;
        loop {
            match self.insert_sorted(&sorted).await {
                Err(err) if err.is_deadlock() && attempt < DEADLOCK_ATTEMPTS => attempt += 1,
                done => return Ok(done?),
            }
        }
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>> {
        let row: Option<OrderRow> =
            sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(RepoError::from)?;
        Ok(row.map(OrderRow::into_order).transpose()?)
    }

    async fn list(&self, query: &OrderQuery) -> Result<OrderPage> {
        let size = query.page_size()?;
        let rows: Vec<OrderRow> = list_statement(query, size)
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(RepoError::from)?;
        let more = rows.len() > size;
        let orders = rows
            .into_iter()
            .take(size)
            .map(OrderRow::into_order)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let next = more.then(|| orders.last().map(|order| order.id)).flatten();
        Ok(OrderPage { orders, next })
    }

    /// Read from `orders_by_sku` alone (the sale's `(sku, id)` range, no row): a count, then
    /// from each cut the next `run` entries down. At 10^6 orders a few tenths of a second,
    /// against seconds for the listing it cuts.
    async fn order_cuts(&self, sku: &Sku, parts: usize) -> Result<Vec<OrderId>> {
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM orders FORCE INDEX (orders_by_sku) WHERE sku = ?",
        )
        .bind(sku.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(RepoError::from)?;
        let total = u64::try_from(total).unwrap_or(0);
        let run = total.div_ceil(parts.max(1) as u64).max(1);
        let mut cuts: Vec<OrderId> = Vec::new();
        // The oldest of each run but the last: the run's `run`th order from the one before.
        for k in 1..parts as u64 {
            if k * run >= total {
                break;
            }
            let mut query = QueryBuilder::<MySql>::new(
                "SELECT id FROM orders FORCE INDEX (orders_by_sku) WHERE sku = ",
            );
            query.push_bind(sku.as_str());
            if let Some(cut) = cuts.last() {
                query.push(" AND id < ").push_bind(cut.as_uuid());
            }
            query
                .push(" ORDER BY id DESC LIMIT 1 OFFSET ")
                .push_bind(run - 1);
            let cut: Option<Uuid> = query
                .build_query_scalar()
                .fetch_optional(&self.pool)
                .await
                .map_err(RepoError::from)?;
            match cut {
                Some(cut) => cuts.push(OrderId::from(cut)),
                None => break,
            }
        }
        Ok(cuts)
    }

    /// One transaction per 1,000 orders (`SELECT … FOR UPDATE`, then one `UPDATE` of those in
    /// `from`): a sweep's batch of expiries is one commit, not one per order.
    async fn transition_many(
        &self,
        ids: &[OrderId],
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
    ) -> Result<Vec<TransitionOutcome>> {
        let mut outcomes = Vec::with_capacity(ids.len());
        // Distinct ids: the one-statement path counts matched rows against them.
        let mut distinct = ids.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let mut found = HashMap::with_capacity(distinct.len());
        for chunk in distinct.chunks(ROWS_PER_STATEMENT) {
            let mut attempt = 1;
            let chunk_found = loop {
                match self.transition_chunk(chunk, from, to, at).await {
                    Err(err) if err.is_deadlock() && attempt < DEADLOCK_ATTEMPTS => attempt += 1,
                    done => break done?,
                }
            };
            found.extend(chunk_found);
        }
        // A repeated id answers as its first: the one transition it had.
        let mut answered = std::collections::HashSet::with_capacity(found.len());
        for id in ids {
            outcomes.push(match found.get(id) {
                None => TransitionOutcome::NotFound,
                Some(&status) if status == from && answered.insert(*id) => {
                    TransitionOutcome::Applied
                }
                Some(&status) if status == from => TransitionOutcome::Mismatch(to),
                Some(&status) => TransitionOutcome::Mismatch(status),
            });
        }
        Ok(outcomes)
    }

    async fn transition(
        &self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
    ) -> Result<TransitionOutcome> {
        loop {
            let updated = sqlx::query(
                "UPDATE orders SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
            )
            .bind(to.as_str())
            .bind(at.naive_utc())
            .bind(id.as_uuid())
            .bind(from.as_str())
            .execute(&self.pool)
            .await
            .map_err(RepoError::from)?;
            // The driver counts matched rows, so a match is 1 even when `from == to`.
            if updated.rows_affected() == 1 {
                return Ok(TransitionOutcome::Applied);
            }
            let status: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT status FROM orders WHERE id = ?")
                    .bind(id.as_uuid())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(RepoError::from)?;
            let status = match status {
                None => return Ok(TransitionOutcome::NotFound),
                Some(status) => status_of(&text("status", status)?)?,
            };
            // Found as `from`: the order was inserted between the two statements (a payment
            // racing the worker's insert), so the update runs again. A row leaves `from` only
            // by an update that matched it, so this repeats at most once per such insert.
            if status != from {
                return Ok(TransitionOutcome::Mismatch(status));
            }
        }
    }

    async fn counts(&self, sku: &Sku) -> Result<StatusCounts> {
        // SUM is DECIMAL in MySQL: cast it back to an integer.
        let rows: Vec<(Vec<u8>, i64, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*), CAST(COALESCE(SUM(quantity), 0) AS SIGNED) \
             FROM orders WHERE sku = ? GROUP BY status",
        )
        .bind(sku.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(RepoError::from)?;
        let mut counts = StatusCounts::default();
        for (status, orders, units) in rows {
            let count = |n: i64| {
                u64::try_from(n).map_err(|_| RepoError::corrupt(format!("negative count {n}")))
            };
            *counts.get_mut(status_of(&text("status", status)?)?) = Tally {
                orders: count(orders)?,
                units: count(units)?,
            };
        }
        Ok(counts)
    }

    async fn timeline(&self, sku: &Sku, bucket: Duration, units: u64) -> Result<Timeline> {
        let mut conn = self.pool.acquire().await.map_err(RepoError::from)?;
        timeline_on(&mut conn, sku, bucket, units)
            .await
            .map_err(Into::into)
    }

    async fn add_refusals(&self, sku: &Sku, counts: &[(&'static str, u64)]) -> Result<()> {
        let mut transaction = self.pool.begin().await.map_err(RepoError::from)?;
        for (reason, refused) in counts.iter().filter(|(_, refused)| *refused > 0) {
            // Through `sales`: a sale that is not stored gets no row.
            sqlx::query(
                "INSERT INTO sale_refusals (sku, reason, refused) \
                 SELECT sku, ?, ? FROM sales WHERE sku = ? \
                 ON DUPLICATE KEY UPDATE refused = refused + ?",
            )
            .bind(*reason)
            .bind(*refused)
            .bind(sku.as_str())
            .bind(*refused)
            .execute(&mut *transaction)
            .await
            .map_err(RepoError::from)?;
        }
        transaction.commit().await.map_err(RepoError::from)?;
        Ok(())
    }

    async fn refusals(&self, sku: &Sku) -> Result<BTreeMap<String, u64>> {
        let rows: Vec<(Vec<u8>, u64)> =
            sqlx::query_as("SELECT reason, refused FROM sale_refusals WHERE sku = ?")
                .bind(sku.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(RepoError::from)?;
        rows.into_iter()
            .map(|(reason, refused)| Ok((text("reason", reason)?, refused)))
            .collect::<std::result::Result<_, RepoError>>()
            .map_err(Into::into)
    }
}

/// The report's queries, each served by the index `orders_by_sku_created` alone (see
/// [`MySqlOrderRepository::report_plans`]).
const TIMELINE_ENDS: &str = "SELECT MIN(created_at), MAX(created_at) FROM orders WHERE sku = ?";
const TIMELINE_BUCKETS: &str = "SELECT CAST(FLOOR(TIMESTAMPDIFF(MICROSECOND, ?, created_at) / ?) AS SIGNED) AS bucket, \
     COUNT(*), CAST(SUM(quantity) AS SIGNED) FROM orders WHERE sku = ? GROUP BY bucket ORDER BY bucket";
/// [`TIMELINE_BUCKETS`] when one bucket holds the whole span: no bucket to compute per row.
const TIMELINE_ONE_BUCKET: &str =
    "SELECT 0, COUNT(*), CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM orders WHERE sku = ?";
/// The instant the sale's orders first held `units`, read within the one bucket where the
/// running sum crosses it (from `from` to before `to`, `before` units held before it): a window
/// over the whole sale read every order (4 s for 10^6, twice a report, past the 10 s request
/// limit).
const TIMELINE_REACHED: &str = "SELECT created_at FROM (SELECT created_at, \
     ? + SUM(quantity) OVER (ORDER BY created_at, id ROWS UNBOUNDED PRECEDING) AS held \
     FROM orders WHERE sku = ? AND created_at >= ? AND created_at < ?) placed \
     WHERE held >= ? ORDER BY created_at LIMIT 1";

/// [`OrderRepository::timeline`] on one connection (so that [`MySqlOrderRepository::timeline_rows_read`]
/// can count what it read).
async fn timeline_on(
    conn: &mut sqlx::MySqlConnection,
    sku: &Sku,
    bucket: Duration,
    units: u64,
) -> std::result::Result<Timeline, RepoError> {
    let (first, last): (Option<NaiveDateTime>, Option<NaiveDateTime>) =
        sqlx::query_as(TIMELINE_ENDS)
            .bind(sku.as_str())
            .fetch_one(&mut *conn)
            .await?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(Timeline::default());
    };
    let width = i64::try_from(bucket.as_micros()).unwrap_or(i64::MAX).max(1);
    let span = (last - first).num_microseconds().unwrap_or(i64::MAX) / width;
    let rows: Vec<(i64, i64, i64)> = if span == 0 {
        sqlx::query_as(TIMELINE_ONE_BUCKET)
            .bind(sku.as_str())
            .fetch_all(&mut *conn)
            .await?
    } else {
        sqlx::query_as(TIMELINE_BUCKETS)
            .bind(first)
            .bind(width)
            .bind(sku.as_str())
            .fetch_all(&mut *conn)
            .await?
    };
    let count =
        |n: i64| u64::try_from(n).map_err(|_| RepoError::corrupt(format!("negative count {n}")));
    let mut buckets = vec![Tally::default(); usize::try_from(span + 1).unwrap_or(0)];
    for (index, orders, units) in rows {
        let slot = usize::try_from(index)
            .ok()
            .and_then(|index| buckets.get_mut(index))
            .ok_or_else(|| RepoError::corrupt(format!("timeline bucket {index}")))?;
        *slot = Tally {
            orders: count(orders)?,
            units: count(units)?,
        };
    }
    // The bucket where the running sum reaches `units`, and what the buckets before it held.
    let mut before = 0u64;
    let mut crossing = None;
    for (index, tally) in buckets.iter().enumerate() {
        if before + tally.units >= units {
            crossing = Some(index);
            break;
        }
        before += tally.units;
    }
    let reached: Option<NaiveDateTime> = match crossing {
        None => None,
        Some(index) => {
            let index = i64::try_from(index).unwrap_or(i64::MAX);
            let at = |bucket: i64| {
                first
                    .checked_add_signed(chrono::Duration::microseconds(
                        bucket.saturating_mul(width),
                    ))
                    .unwrap_or(NaiveDateTime::MAX)
            };
            // No order is after `last`: the bound stays a date MySQL takes, whatever the width.
            let end = last + chrono::Duration::microseconds(1);
            let (from, to) = (at(index), at(index.saturating_add(1)).min(end));
            sqlx::query_scalar(TIMELINE_REACHED)
                .bind(before)
                .bind(sku.as_str())
                .bind(from)
                .bind(to)
                .bind(units)
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    Ok(Timeline {
        first: Some(first.and_utc()),
        last: Some(last.and_utc()),
        reached: reached.map(|at| at.and_utc()),
        buckets,
    })
}

impl MySqlOrderRepository {
    /// How many index entries the database read to answer [`timeline`](OrderRepository::timeline)
    /// (its session's `Handler_read_next` and `Handler_read_prev`): about the sale's orders
    /// once, however many buckets, wherever the sale sold out.
    pub async fn timeline_rows_read(&self, sku: &Sku, bucket: Duration, units: u64) -> Result<u64> {
        let mut conn = self.pool.acquire().await.map_err(RepoError::from)?;
        let before = handler_reads(&mut conn).await?;
        timeline_on(&mut conn, sku, bucket, units).await?;
        let after = handler_reads(&mut conn).await?;
        Ok(after.saturating_sub(before))
    }

    /// How many index entries the database read to answer `query`'s page (its session's
    /// `Handler_read_next` and `Handler_read_prev`): about one page's worth, wherever the
    /// cursor is, when the page reads an index range from the cursor on.
    pub async fn list_rows_read(&self, query: &OrderQuery) -> Result<u64> {
        let size = query.page_size()?;
        let mut conn = self.pool.acquire().await.map_err(RepoError::from)?;
        let before = handler_reads(&mut conn).await?;
        list_statement(query, size)
            .build()
            .fetch_all(&mut *conn)
            .await
            .map_err(RepoError::from)?;
        let after = handler_reads(&mut conn).await?;
        Ok(after.saturating_sub(before))
    }

    /// How the database runs the queries of a sale's report (its timeline): for each, the
    /// rows of `EXPLAIN` as (table, access type, key, extra). Shows that each reads one sale's
    /// range of an index, never the whole table.
    pub async fn report_plans(&self, sku: &Sku) -> Result<Vec<(String, Vec<ReportPlan>)>> {
        let epoch = chrono::DateTime::UNIX_EPOCH.naive_utc();
        let mut plans = Vec::new();
        let later = epoch + chrono::Duration::days(1);
        for (name, sql) in [
            ("first and last", TIMELINE_ENDS),
            ("one bucket", TIMELINE_ONE_BUCKET),
            ("buckets", TIMELINE_BUCKETS),
            ("sold out at", TIMELINE_REACHED),
        ] {
            let explain = format!("EXPLAIN {sql}");
            let mut query = sqlx::query(&explain);
            query = match sql {
                TIMELINE_BUCKETS => query.bind(epoch).bind(1_000_000i64).bind(sku.as_str()),
                TIMELINE_REACHED => query
                    .bind(0u64)
                    .bind(sku.as_str())
                    .bind(epoch)
                    .bind(later)
                    .bind(1u64),
                _ => query.bind(sku.as_str()),
            };
            let rows = query.fetch_all(&self.pool).await.map_err(RepoError::from)?;
            let column = |row: &sqlx::mysql::MySqlRow, name: &str| -> String {
                row.try_get::<Option<String>, _>(name)
                    .ok()
                    .flatten()
                    .or_else(|| {
                        row.try_get::<Option<Vec<u8>>, _>(name)
                            .ok()
                            .flatten()
                            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    })
                    .unwrap_or_default()
            };
            plans.push((
                name.to_owned(),
                rows.iter()
                    .map(|row| ReportPlan {
                        table: column(row, "table"),
                        access: column(row, "type"),
                        key: column(row, "key"),
                        extra: column(row, "Extra"),
                    })
                    .collect(),
            ));
        }
        Ok(plans)
    }
}

/// The index entries the session read so far (`Handler_read_next` + `Handler_read_prev`).
async fn handler_reads(conn: &mut sqlx::MySqlConnection) -> std::result::Result<u64, RepoError> {
    let rows = sqlx::query("SHOW SESSION STATUS LIKE 'Handler_read%'")
        .fetch_all(&mut *conn)
        .await?;
    let mut total = 0;
    for row in rows {
        let name: String = row.try_get(0)?;
        if name == "Handler_read_next" || name == "Handler_read_prev" {
            let value: String = row.try_get(1)?;
            total += value
                .parse::<u64>()
                .map_err(|_| RepoError::corrupt(format!("{name} is not a count: {value}")))?;
        }
    }
    Ok(total)
}

/// One row of a query's `EXPLAIN` ([`MySqlOrderRepository::report_plans`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPlan {
    /// The table (or derived table) read.
    pub table: String,
    /// How: `ref` / `range` (an index range), `index` (a whole index), `ALL` (every row), ….
    pub access: String,
    /// The index used, if any.
    pub key: String,
    /// MySQL's notes (`Using index`: read from the index alone).
    pub extra: String,
}
