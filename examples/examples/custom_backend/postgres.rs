//! `PgOrderRepository`: an `OrderRepository` over PostgreSQL with sqlx.
//!
//! Each rule of the `OrderRepository` contract maps to one SQL idea:
//! - idempotent, all-or-nothing insert: one `INSERT … SELECT FROM UNNEST(…) ON CONFLICT (id) DO
//!   NOTHING` (one statement is atomic; its row count is the number of new orders);
//! - compare-and-set: `UPDATE … WHERE id = $1 AND status = $2`;
//! - stable pages: keyset pagination on the primary key (`id < cursor ORDER BY id DESC`): UUID v7
//!   ids sort by creation and compare byte by byte in PostgreSQL as in Rust;
//! - durability: autocommit — `Ok` comes after the commit.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nexussale_core::{
    Error, Order, OrderId, OrderPage, OrderQuery, OrderRepository, OrderStatus, Result, Sale, Sku,
    StatusCounts, Tally, Timeline, TransitionOutcome,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, postgres::PgDatabaseError};
use uuid::Uuid;

/// The schema. `IF NOT EXISTS` makes it safe to run at every start.
const SCHEMA: &str = r"
CREATE TABLE IF NOT EXISTS sales (
    sku                TEXT        PRIMARY KEY,
    stock              BIGINT      NOT NULL,
    per_user_limit     INTEGER     NOT NULL,
    starts_at          TIMESTAMPTZ,
    ends_at            TIMESTAMPTZ,
    reservation_ttl_ns BIGINT      NOT NULL
);
-- The sale's waiting room as JSON (NULL: none); added to tables made before it existed.
ALTER TABLE sales ADD COLUMN IF NOT EXISTS waiting_room TEXT;
CREATE TABLE IF NOT EXISTS orders (
    id              UUID        PRIMARY KEY,
    sku             TEXT        NOT NULL,
    user_id         TEXT        NOT NULL,
    quantity        INTEGER     NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'paid', 'cancelled', 'expired')),
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    remark          TEXT,
    idempotency_key TEXT
);
CREATE INDEX IF NOT EXISTS orders_by_sku ON orders (sku, id);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, id);
CREATE INDEX IF NOT EXISTS orders_by_sku_status ON orders (sku, status) INCLUDE (quantity);
CREATE INDEX IF NOT EXISTS orders_by_sku_created ON orders (sku, created_at) INCLUDE (quantity);
CREATE TABLE IF NOT EXISTS sale_refusals (
    sku     TEXT   NOT NULL,
    reason  TEXT   NOT NULL,
    refused BIGINT NOT NULL,
    PRIMARY KEY (sku, reason)
);
";

/// Orders and sales in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgOrderRepository {
    pool: PgPool,
}

/// The one place that decides which database errors are worth retrying.
fn backend(err: sqlx::Error) -> Error {
    let retryable = match &err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        // Serialization failure, deadlock, too many connections, shutting down.
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<PgDatabaseError>()
            .is_some_and(|pg| matches!(pg.code(), "40001" | "40P01" | "53300" | "57P01")),
        _ => false,
    };
    if retryable {
        Error::retryable("postgres", err)
    } else {
        Error::permanent("postgres", err)
    }
}

/// Data this repository did not write.
fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::permanent("postgres", format!("unexpected data in postgres: {what}"))
}

impl PgOrderRepository {
    /// Connects to `url` (e.g. `postgres://postgres@127.0.0.1:5432/test`).
    pub async fn connect(url: &str) -> Result<Self> {
        let options: PgConnectOptions = url.parse().map_err(backend)?;
        Self::connect_with(options).await
    }

    /// Connects with `options` (e.g. a `search_path` of its own).
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(backend)?;
        Ok(Self { pool })
    }

    /// Creates the tables and indexes that are missing.
    pub async fn migrate(&self) -> Result<()> {
        let mut transaction = self.pool.begin().await.map_err(backend)?;
        // Concurrent `CREATE … IF NOT EXISTS` can still collide: take turns.
        sqlx::query("SELECT pg_advisory_xact_lock(7142026)")
            .execute(&mut *transaction)
            .await
            .map_err(backend)?;
        sqlx::raw_sql(SCHEMA)
            .execute(&mut *transaction)
            .await
            .map_err(backend)?;
        transaction.commit().await.map_err(backend)
    }

    /// The pool, to close or to share.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn order_from(row: &PgRow) -> Result<Order> {
    let text = |column: &str| row.try_get::<String, _>(column).map_err(backend);
    let status: String = text("status")?;
    Ok(Order {
        id: OrderId::from(row.try_get::<Uuid, _>("id").map_err(backend)?),
        sku: text("sku")?.parse()?,
        user: text("user_id")?.parse()?,
        quantity: u32::try_from(row.try_get::<i32, _>("quantity").map_err(backend)?)
            .map_err(corrupt)?,
        status: status.parse()?,
        created_at: row.try_get("created_at").map_err(backend)?,
        updated_at: row.try_get("updated_at").map_err(backend)?,
        expires_at: row.try_get("expires_at").map_err(backend)?,
        remark: row.try_get("remark").map_err(backend)?,
        idempotency_key: row
            .try_get::<Option<String>, _>("idempotency_key")
            .map_err(backend)?
            .map(|key| key.parse())
            .transpose()?,
    })
}

fn sale_from(row: &PgRow) -> Result<Sale> {
    let sku: String = row.try_get("sku").map_err(backend)?;
    let stock: i64 = row.try_get("stock").map_err(backend)?;
    let limit: i32 = row.try_get("per_user_limit").map_err(backend)?;
    let ttl: i64 = row.try_get("reservation_ttl_ns").map_err(backend)?;
    let room: Option<String> = row.try_get("waiting_room").map_err(backend)?;
    let sale = Sale::new(sku.parse()?, u64::try_from(stock).map_err(corrupt)?)
        .with_per_user_limit(u32::try_from(limit).map_err(corrupt)?)
        .with_window(
            row.try_get("starts_at").map_err(backend)?,
            row.try_get("ends_at").map_err(backend)?,
        )
        .with_reservation_ttl(Duration::from_nanos(u64::try_from(ttl).map_err(corrupt)?));
    Ok(match room {
        Some(json) => sale.with_waiting_room(serde_json::from_str(&json).map_err(corrupt)?),
        None => sale,
    })
}

const ORDER_COLUMNS: &str = "id, sku, user_id, quantity, status, created_at, updated_at, \
                             expires_at, remark, idempotency_key";

#[async_trait]
impl OrderRepository for PgOrderRepository {
    async fn save_sale(&self, sale: &Sale) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO sales (sku, stock, per_user_limit, starts_at, ends_at, reservation_ttl_ns,
             waiting_room) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sku) DO NOTHING",
        )
        .bind(sale.sku.as_str())
        .bind(i64::try_from(sale.stock).map_err(corrupt)?)
        .bind(i32::try_from(sale.per_user_limit).map_err(corrupt)?)
        .bind(sale.starts_at)
        .bind(sale.ends_at)
        .bind(i64::try_from(sale.reservation_ttl.as_nanos()).map_err(corrupt)?)
        .bind(
            sale.waiting_room
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(corrupt)?,
        )
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn sales(&self) -> Result<Vec<Sale>> {
        let rows = sqlx::query("SELECT * FROM sales ORDER BY sku")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(sale_from).collect()
    }

    async fn sale(&self, sku: &Sku) -> Result<Option<Sale>> {
        let row = sqlx::query("SELECT * FROM sales WHERE sku = $1")
            .bind(sku.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(sale_from).transpose()
    }

    async fn end_sale(&self, sku: &Sku, at: DateTime<Utc>) -> Result<Option<Sale>> {
        // `Sale::ended` in one statement (LEAST ignores NULL: an open end becomes `at`).
        let row = sqlx::query(
            "UPDATE sales SET ends_at = LEAST(ends_at, $2), \
             starts_at = CASE WHEN starts_at > $2 THEN $2 ELSE starts_at END \
             WHERE sku = $1 RETURNING *",
        )
        .bind(sku.as_str())
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(sale_from).transpose()
    }

    async fn insert(&self, orders: &[Order]) -> Result<u64> {
        if orders.is_empty() {
            return Ok(0);
        }
        // One array per column: the whole batch is one statement, so it is all or nothing. Rows
        // go in id order, so two batches that share orders lock them in the same order and
        // cannot deadlock.
        let mut sorted: Vec<&Order> = orders.iter().collect();
        sorted.sort_unstable_by_key(|order| order.id);
        let mut columns = Columns::default();
        for order in sorted {
            columns.push(order)?;
        }
        let inserted = sqlx::query(
            "INSERT INTO orders (id, sku, user_id, quantity, status, created_at, updated_at,
                                 expires_at, remark, idempotency_key)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[],
                                  $6::timestamptz[], $7::timestamptz[], $8::timestamptz[],
                                  $9::text[], $10::text[])
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(columns.id)
        .bind(columns.sku)
        .bind(columns.user)
        .bind(columns.quantity)
        .bind(columns.status)
        .bind(columns.created_at)
        .bind(columns.updated_at)
        .bind(columns.expires_at)
        .bind(columns.remark)
        .bind(columns.idempotency_key)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(inserted.rows_affected())
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>> {
        let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(order_from).transpose()
    }

    async fn list(&self, query: &OrderQuery) -> Result<OrderPage> {
        let size = query.page_size()?;
        // One row more than the page: whether there is a next page, without a count.
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders
             WHERE ($1::text IS NULL OR user_id = $1)
               AND ($2::text IS NULL OR sku = $2)
               AND ($3::text IS NULL OR status = $3)
               AND ($4::uuid IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5"
        ))
        .bind(query.user.as_ref().map(|user| user.as_str()))
        .bind(query.sku.as_ref().map(|sku| sku.as_str()))
        .bind(query.status.map(OrderStatus::as_str))
        .bind(query.after.map(|id| id.as_uuid()))
        .bind(size as i64 + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut orders = rows.iter().map(order_from).collect::<Result<Vec<_>>>()?;
        let next = if orders.len() > size {
            orders.truncate(size);
            orders.last().map(|order| order.id)
        } else {
            None
        };
        Ok(OrderPage { orders, next })
    }

    async fn transition(
        &self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
    ) -> Result<TransitionOutcome> {
        loop {
            let changed = sqlx::query(
                "UPDATE orders SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2",
            )
            .bind(id.as_uuid())
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
            if changed.rows_affected() == 1 {
                return Ok(TransitionOutcome::Applied);
            }
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
                    .bind(id.as_uuid())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
            let status: OrderStatus = match status {
                Some(status) => status.parse()?,
                None => return Ok(TransitionOutcome::NotFound),
            };
            // Found as `from`: inserted between the two statements (a payment racing the
            // worker's insert); the update runs again.
            if status != from {
                return Ok(TransitionOutcome::Mismatch(status));
            }
        }
    }

    async fn counts(&self, sku: &Sku) -> Result<StatusCounts> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS orders, COALESCE(SUM(quantity), 0)::bigint AS units
             FROM orders WHERE sku = $1 GROUP BY status",
        )
        .bind(sku.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut counts = StatusCounts::default();
        for row in rows {
            let status: String = row.try_get("status").map_err(backend)?;
            let orders: i64 = row.try_get("orders").map_err(backend)?;
            let units: i64 = row.try_get("units").map_err(backend)?;
            *counts.get_mut(status.parse()?) = Tally {
                orders: u64::try_from(orders).map_err(corrupt)?,
                units: u64::try_from(units).map_err(corrupt)?,
            };
        }
        Ok(counts)
    }

    async fn timeline(&self, sku: &Sku, bucket: Duration, units: u64) -> Result<Timeline> {
        // One index-only range read of the sale; the core buckets it (a repository could as
        // well group in SQL, as the MySQL one does).
        let rows = sqlx::query("SELECT created_at, quantity FROM orders WHERE sku = $1")
            .bind(sku.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let placed = rows
            .iter()
            .map(|row| {
                let quantity: i32 = row.try_get("quantity").map_err(backend)?;
                Ok((
                    row.try_get("created_at").map_err(backend)?,
                    u32::try_from(quantity).map_err(corrupt)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Timeline::of(placed, bucket, units))
    }

    async fn add_refusals(&self, sku: &Sku, counts: &[(&'static str, u64)]) -> Result<()> {
        let (reasons, refused): (Vec<&str>, Vec<i64>) = counts
            .iter()
            .map(|(reason, n)| (*reason, i64::try_from(*n).unwrap_or(i64::MAX)))
            .unzip();
        // Through `sales`: a sale that is not stored gets no row.
        sqlx::query(
            "INSERT INTO sale_refusals (sku, reason, refused)
             SELECT s.sku, r.reason, r.refused FROM sales s, UNNEST($2::text[], $3::bigint[]) AS r(reason, refused)
             WHERE s.sku = $1
             ON CONFLICT (sku, reason) DO UPDATE SET refused = sale_refusals.refused + EXCLUDED.refused",
        )
        .bind(sku.as_str())
        .bind(reasons)
        .bind(refused)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn refusals(&self, sku: &Sku) -> Result<BTreeMap<String, u64>> {
        let rows = sqlx::query("SELECT reason, refused FROM sale_refusals WHERE sku = $1")
            .bind(sku.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let refused: i64 = row.try_get("refused").map_err(backend)?;
                Ok((
                    row.try_get("reason").map_err(backend)?,
                    u64::try_from(refused).map_err(corrupt)?,
                ))
            })
            .collect()
    }
}

/// A batch of orders as one array per column, for `UNNEST`.
#[derive(Default)]
struct Columns {
    id: Vec<Uuid>,
    sku: Vec<String>,
    user: Vec<String>,
    quantity: Vec<i32>,
    status: Vec<&'static str>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    expires_at: Vec<DateTime<Utc>>,
    remark: Vec<Option<String>>,
    idempotency_key: Vec<Option<String>>,
}

impl Columns {
    fn push(&mut self, order: &Order) -> Result<()> {
        self.id.push(order.id.as_uuid());
        self.sku.push(order.sku.to_string());
        self.user.push(order.user.to_string());
        self.quantity
            .push(i32::try_from(order.quantity).map_err(corrupt)?);
        self.status.push(order.status.as_str());
        self.created_at.push(order.created_at);
        self.updated_at.push(order.updated_at);
        self.expires_at.push(order.expires_at);
        self.remark.push(order.remark.clone());
        self.idempotency_key
            .push(order.idempotency_key.as_ref().map(ToString::to_string));
        Ok(())
    }
}
