//! [`RedisWaitingRoomStore`]: waiting rooms in Redis, shared by every front end of a sale.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{prefix}:{{sku}:0}:room` | hash | `seq`, `joined`, `admitted`, `lapsed`, `used`, `settled`, `closed`, `opens` (µs) |
//! | `{prefix}:{{sku}:0}:room:line` | sorted set | waiting ticket → place (a random score below 2^40 for a join before the opening, 2^40 + a sequence after) |
//! | `{prefix}:{{sku}:0}:room:tickets` | hash | ticket → `w\|user`, `a\|nonce\|expiry\|user` or `u\|nonce\|expiry\|user` |
//! | `{prefix}:{{sku}:0}:room:passes` | sorted set | ticket of each pass out → its expiry (µs) |
//! | `{prefix}:{{sku}:0}:room:users` | hash | user → ticket |
//! | `{prefix}:rooms` | set | every sku with a room (for `purge`) |
//! | `{prefix}:pass-key` | string | the pass-signing key |
//!
//! A room's keys share the hash tag of the sale's shard 0, so each step is one script on one
//! node, also in a Redis Cluster.

use std::fmt;
use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use percent_encoding::utf8_percent_encode;
use redis::{AsyncCommands, Script, Value};

use nexussale_core::{
    Admission, AdmitRequest, PassGrant, PassUse, Result, RoomStatus, Sale, Sku, Standing, Ticket,
    TicketId, UserId, WaitingRoomStore,
};

use crate::connection::Connection;
use crate::error::StoreError;
use crate::keys::TAG_UNSAFE;

type Outcome<T> = std::result::Result<T, StoreError>;

fn script(body: &str) -> Script {
    Script::new(&format!(
        "#!lua\n{}{body}",
        include_str!("lua/room/common.lua")
    ))
}

static JOIN: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/room/join.lua")));
static TICKET: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/room/ticket.lua")));
static ADMIT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/room/admit.lua")));
static USE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/room/use.lua")));
static GIVE_BACK: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/room/give_back.lua")));
static STATUS: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/room/status.lua")));

/// Joins before the opening draw a score in `0..2^40`; the rest queue from 2^40 up.
const DRAW_SCORES: u64 = 1 << 40;

/// A [`WaitingRoomStore`] in Redis, on the connection of a
/// [`RedisStockStore`](crate::RedisStockStore) ([`RedisStockStore::waiting_rooms`](crate::RedisStockStore::waiting_rooms)):
/// every process serving a sale shares its line, its passes and its counts.
#[derive(Clone)]
pub struct RedisWaitingRoomStore {
    conn: Connection,
    prefix: String,
}

/// A room script with the room's four keys (join adds the users').
fn on_room<'a>(script: &'a Script, keys: &RoomKeys) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    invocation
        .key(&keys.room)
        .key(&keys.line)
        .key(&keys.tickets)
        .key(&keys.passes);
    invocation
}

struct RoomKeys {
    room: String,
    line: String,
    tickets: String,
    passes: String,
    users: String,
}

impl RedisWaitingRoomStore {
    pub(crate) fn new(conn: Connection, prefix: String) -> Self {
        Self { conn, prefix }
    }

    fn keys(&self, sku: &Sku) -> RoomKeys {
        let sku = utf8_percent_encode(sku.as_str(), TAG_UNSAFE);
        let base = format!("{}:{{{sku}:0}}:room", self.prefix);
        RoomKeys {
            line: format!("{base}:line"),
            tickets: format!("{base}:tickets"),
            passes: format!("{base}:passes"),
            users: format!("{base}:users"),
            room: base,
        }
    }

    fn rooms_key(&self) -> String {
        format!("{}:rooms", self.prefix)
    }

    /// Deletes every room under this store's prefix, and the signing key; answers how many
    /// rooms there were. For tests and benchmarks (feature `testkit`).
    #[cfg(feature = "testkit")]
    pub async fn purge(&self) -> Result<usize> {
        Ok(self.purge_rooms().await?)
    }

    #[cfg(feature = "testkit")]
    async fn purge_rooms(&self) -> Outcome<usize> {
        let mut conn = self.conn.clone();
        let skus: Vec<String> = conn.smembers(self.rooms_key()).await?;
        for sku in &skus {
            let Ok(sku) = Sku::new(sku) else { continue };
            let keys = self.keys(&sku);
            for key in [keys.room, keys.line, keys.tickets, keys.passes, keys.users] {
                let _: () = conn.unlink(key).await?;
            }
        }
        let _: () = conn.unlink(self.rooms_key()).await?;
        let _: () = conn.unlink(format!("{}:pass-key", self.prefix)).await?;
        Ok(skus.len())
    }

    async fn join_room(&self, sale: &Sale, user: &UserId, now: DateTime<Utc>) -> Outcome<Ticket> {
        let keys = self.keys(&sale.sku);
        let early = sale.starts_at.is_some_and(|opens| now < opens);
        let opens = sale
            .starts_at
            .map(|at| at.timestamp_micros().to_string())
            .unwrap_or_default();
        let mut conn = self.conn.clone();
        let (new, id, reply): (i64, String, Value) = on_room(&JOIN, &keys)
            .key(&keys.users)
            .arg(user.as_str())
            .arg(TicketId::random().to_string())
            .arg(if early { "1" } else { "0" })
            .arg(fastrand::u64(..DRAW_SCORES).to_string())
            .arg(opens)
            .invoke_async(&mut conn)
            .await?;
        if new == 1 {
            let _: () = conn.sadd(self.rooms_key(), sale.sku.as_str()).await?;
        }
        let id: TicketId = id
            .parse()
            .map_err(|_| StoreError::corrupt(format!("a ticket id `{id}`")))?;
        parse_ticket(&sale.sku, id, reply, now)?
            .ok_or_else(|| StoreError::corrupt("a joined ticket is missing".to_owned()))
    }

    async fn read_ticket(
        &self,
        sku: &Sku,
        id: &TicketId,
        now: DateTime<Utc>,
    ) -> Outcome<Option<Ticket>> {
        let keys = self.keys(sku);
        let reply: Value = on_room(&TICKET, &keys)
            .arg(id.to_string())
            .invoke_async(&mut self.conn.clone())
            .await?;
        parse_ticket(sku, *id, reply, now)
    }

    async fn admit_room(&self, sale: &Sale, request: &AdmitRequest) -> Outcome<Admission> {
        let room = sale
            .waiting_room
            .as_ref()
            .ok_or_else(|| StoreError::corrupt(format!("sale {} has no waiting room", sale.sku)))?;
        let keys = self.keys(&sale.sku);
        let ttl = i64::try_from(room.pass_ttl.as_micros()).unwrap_or(i64::MAX);
        let (admitted, lapsed, outstanding, waiting): (u64, u64, u64, u64) = on_room(&ADMIT, &keys)
            .arg(request.now.timestamp_micros())
            .arg(request.available)
            .arg(request.settled_before)
            .arg(request.max)
            .arg(ttl)
            .arg(room.overbook.thousandths())
            .arg(sale.per_user_limit.max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(Admission {
            admitted,
            lapsed,
            outstanding,
            waiting,
        })
    }

    async fn use_room_pass(
        &self,
        sku: &Sku,
        id: &TicketId,
        nonce: u64,
        now: DateTime<Utc>,
    ) -> Outcome<PassUse> {
        let keys = self.keys(sku);
        let answer: String = on_room(&USE, &keys)
            .arg(id.to_string())
            .arg(nonce.to_string())
            .arg(now.timestamp_micros())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match answer.as_str() {
            "ok" => PassUse::Used,
            "used" => PassUse::AlreadyUsed,
            "expired" => PassUse::Expired,
            _ => PassUse::NotAdmitted,
        })
    }

    async fn give_back_pass(&self, sku: &Sku, id: &TicketId, nonce: u64) -> Outcome<bool> {
        let keys = self.keys(sku);
        let given: i64 = on_room(&GIVE_BACK, &keys)
            .arg(id.to_string())
            .arg(nonce.to_string())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(given == 1)
    }

    async fn room_status(&self, sku: &Sku) -> Outcome<RoomStatus> {
        let keys = self.keys(sku);
        let counts: Vec<u64> = on_room(&STATUS, &keys)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let [
            joined,
            admitted,
            lapsed,
            used,
            settled,
            closed,
            waiting,
            outstanding,
        ] = counts[..]
        else {
            return Err(StoreError::corrupt(format!(
                "a room's status has {} counts",
                counts.len()
            )));
        };
        Ok(RoomStatus {
            waiting,
            outstanding,
            admitted,
            lapsed,
            used,
            settled,
            joined,
            closed: closed == 1,
        })
    }

    async fn key(&self, candidate: &[u8]) -> Outcome<Vec<u8>> {
        let key = format!("{}:pass-key", self.prefix);
        // SET NX GET: the stored key, or nothing when this one was stored.
        let earlier: Option<Vec<u8>> = redis::cmd("SET")
            .arg(&key)
            .arg(candidate)
            .arg("NX")
            .arg("GET")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(earlier.unwrap_or_else(|| candidate.to_vec()))
    }
}

/// A ticket from `ticket.lua`'s reply `{value, rank or -1, closed, admitted, opens}`.
fn parse_ticket(
    sku: &Sku,
    id: TicketId,
    reply: Value,
    now: DateTime<Utc>,
) -> Outcome<Option<Ticket>> {
    let corrupt = |what: &str| StoreError::corrupt(format!("waiting-room ticket: {what}"));
    let Value::Array(parts) = reply else {
        return Ok(None);
    };
    let (value, rank, closed, admitted, opens): (String, i64, String, u64, String) =
        redis::from_redis_value(Value::Array(parts)).map_err(|_| corrupt("a malformed reply"))?;
    Ok(Some(ticket(
        sku,
        id,
        &value,
        rank,
        closed == "1",
        admitted,
        &opens,
        now,
    )?))
}

#[allow(clippy::too_many_arguments)] // one ticket.lua reply, taken apart
fn ticket(
    sku: &Sku,
    id: TicketId,
    value: &str,
    rank: i64,
    closed: bool,
    room_admitted: u64,
    opens: &str,
    now: DateTime<Utc>,
) -> Outcome<Ticket> {
    let corrupt = || StoreError::corrupt(format!("waiting-room ticket `{value}`"));
    let (kind, rest) = value.split_once('|').ok_or_else(corrupt)?;
    let (standing, user) = match kind {
        "w" => {
            let drawn = opens
                .parse::<i64>()
                .map_or(true, |opens| now.timestamp_micros() >= opens);
            let standing = if closed {
                Standing::SoldOut
            } else {
                Standing::Waiting {
                    ahead: (drawn && rank >= 0).then_some(rank as u64),
                }
            };
            (standing, rest)
        }
        "a" | "u" => {
            let mut parts = rest.splitn(3, '|');
            let nonce: u64 = parts
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(corrupt)?;
            let expires: i64 = parts
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(corrupt)?;
            let user = parts.next().ok_or_else(corrupt)?;
            let expires_at = DateTime::from_timestamp_micros(expires).ok_or_else(corrupt)?;
            let standing = if kind == "a" {
                Standing::Admitted(PassGrant { nonce, expires_at })
            } else {
                Standing::Used
            };
            (standing, user)
        }
        _ => return Err(corrupt()),
    };
    Ok(Ticket {
        id,
        sku: sku.clone(),
        user: UserId::new(user).map_err(|_| corrupt())?,
        standing,
        room_admitted,
    })
}

impl fmt::Debug for RedisWaitingRoomStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisWaitingRoomStore")
            .field("connection", &self.conn)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Every method converts this crate's error to the core's here.
#[async_trait]
impl WaitingRoomStore for RedisWaitingRoomStore {
    async fn join(&self, sale: &Sale, user: &UserId, now: DateTime<Utc>) -> Result<Ticket> {
        Ok(self.join_room(sale, user, now).await?)
    }

    async fn ticket(&self, sku: &Sku, id: &TicketId, now: DateTime<Utc>) -> Result<Option<Ticket>> {
        Ok(self.read_ticket(sku, id, now).await?)
    }

    async fn admit(&self, sale: &Sale, request: &AdmitRequest) -> Result<Admission> {
        Ok(self.admit_room(sale, request).await?)
    }

    async fn use_pass(
        &self,
        sku: &Sku,
        id: &TicketId,
        nonce: u64,
        now: DateTime<Utc>,
    ) -> Result<PassUse> {
        Ok(self.use_room_pass(sku, id, nonce, now).await?)
    }

    async fn give_back(&self, sku: &Sku, id: &TicketId, nonce: u64) -> Result<bool> {
        Ok(self.give_back_pass(sku, id, nonce).await?)
    }

    async fn settle(&self, sku: &Sku) -> Result<()> {
        let keys = self.keys(sku);
        let _: i64 = self
            .conn
            .clone()
            .hincr(&keys.room, "settled", 1)
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }

    async fn close(&self, sku: &Sku) -> Result<bool> {
        let keys = self.keys(sku);
        let set: bool = self
            .conn
            .clone()
            .hset_nx(&keys.room, "closed", 1)
            .await
            .map_err(StoreError::from)?;
        Ok(set)
    }

    async fn status(&self, sku: &Sku) -> Result<RoomStatus> {
        Ok(self.room_status(sku).await?)
    }

    async fn pass_key(&self, candidate: &[u8]) -> Result<Vec<u8>> {
        Ok(self.key(candidate).await?)
    }
}
