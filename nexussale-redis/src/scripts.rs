//! The Lua scripts (under `lua/`), loaded once per server by `EVALSHA` (reloaded on `NOSCRIPT`),
//! and the replies they give.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::{Script, Value};

use nexussale_core::{
    ConfirmOutcome, Order, OrderId, ReleaseOutcome, ReleaseReason, Reservation, ReservationState,
    SaleState, Sku,
};

use crate::connection::Connection;
use crate::error::StoreError;
use crate::keys::{ShardKeys, id_bytes, key_field};
use crate::record;

/// A script that writes: the `#!lua` line declares it so (Redis 7), which makes a Cluster
/// replica answer `MOVED` to its primary instead of running it and failing on the first write
/// (`READONLY`), so the cluster client finds a promoted replica by itself.
fn writing(body: &str) -> Script {
    Script::new(&format!("#!lua\n{body}"))
}

/// A script that writes a stock shard, after `guard.lua` (its `guard()` and `origin()`).
fn guarded(body: &str) -> Script {
    writing(&format!("{}{body}", include_str!("lua/guard.lua")))
}

/// A script that only reads a stock shard, after `guard.lua` (for its `primary()`): declared so,
/// it may run where writes are refused (a replica, a full memory).
fn reading(body: &str) -> Script {
    Script::new(&format!(
        "#!lua flags=no-writes\n{}{body}",
        include_str!("lua/guard.lua")
    ))
}

pub(crate) static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    guarded(concat!(
        include_str!("lua/records.lua"),
        include_str!("lua/reserve.lua")
    ))
});
pub(crate) static CONFIRM: LazyLock<Script> = LazyLock::new(|| {
    guarded(concat!(
        include_str!("lua/records.lua"),
        include_str!("lua/confirm.lua")
    ))
});
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    guarded(concat!(
        include_str!("lua/records.lua"),
        include_str!("lua/release.lua")
    ))
});
pub(crate) static WITHDRAW: LazyLock<Script> =
    LazyLock::new(|| guarded(include_str!("lua/withdraw.lua")));
pub(crate) static SETTLE: LazyLock<Script> =
    LazyLock::new(|| guarded(include_str!("lua/settle.lua")));
pub(crate) static CREATE: LazyLock<Script> =
    LazyLock::new(|| guarded(include_str!("lua/create.lua")));
pub(crate) static END: LazyLock<Script> = LazyLock::new(|| guarded(include_str!("lua/end.lua")));
pub(crate) static EXPIRED: LazyLock<Script> = LazyLock::new(|| {
    writing(concat!(
        include_str!("lua/records.lua"),
        include_str!("lua/walk.lua"),
        include_str!("lua/expired.lua")
    ))
});
pub(crate) static EXPIRE: LazyLock<Script> = LazyLock::new(|| {
    guarded(concat!(
        include_str!("lua/records.lua"),
        include_str!("lua/walk.lua"),
        include_str!("lua/expire.lua")
    ))
});
pub(crate) static RESTORE: LazyLock<Script> = LazyLock::new(|| {
    guarded(concat!(
        include_str!("lua/records.lua"),
        include_str!("lua/restore.lua")
    ))
});
pub(crate) static SNAPSHOT: LazyLock<Script> =
    LazyLock::new(|| reading(include_str!("lua/snapshot.lua")));
pub(crate) static MARK: LazyLock<Script> = LazyLock::new(|| writing(include_str!("lua/mark.lua")));
pub(crate) static LOCK: LazyLock<Script> = LazyLock::new(|| writing(include_str!("lua/lock.lua")));
pub(crate) static UNLOCK: LazyLock<Script> =
    LazyLock::new(|| writing(include_str!("lua/unlock.lua")));

/// The reply of a guarded script without its leading sequence (`guard.lua`), once the sequence
/// says the shard did not go backwards: it is above `before`, the highest this process had seen
/// of the shard when it sent the call (any call answered before this one was sent ran before
/// it, and each call advances the sequence). The shard is regressed otherwise.
fn sequenced(keys: &ShardKeys, before: u64, reply: Value) -> Result<Vec<Value>, StoreError> {
    let mut reply = items(reply)?;
    if reply.is_empty() {
        return Err(StoreError::corrupt("a script answered nothing"));
    }
    let seq = int(&reply.remove(0))?;
    match u64::try_from(seq) {
        Err(_) => Err(StoreError::Regressed(
            "a failover since its last write, or an earlier key layout",
        )),
        // No such shard: the script answers that itself.
        Ok(0) => Ok(reply),
        Ok(seq) if seq <= before => Err(StoreError::WentBackwards {
            stock: keys.stock.clone(),
            seen: seq,
        }),
        Ok(seq) => {
            keys.seen(seq);
            Ok(reply)
        }
    }
}

/// One request's arguments to `reserve.lua`, encoded once.
#[derive(Debug, Clone)]
pub(crate) struct ReserveArgs {
    pub(crate) now_us: i64,
    pub(crate) user: String,
    pub(crate) quantity: u32,
    /// The `keys` hash field, or empty.
    pub(crate) key_field: String,
    pub(crate) order_id: OrderId,
    pub(crate) body: String,
    pub(crate) expires_us: i64,
}

/// One shard's part of a `reserve.lua` call: its requests, in order, after adding `deposit`
/// units (moved from its sale's other shards).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardBatch<'a> {
    pub(crate) keys: &'a ShardKeys,
    pub(crate) deposit: u64,
    pub(crate) requests: &'a [&'a ReserveArgs],
}

/// Runs `reserve.lua` once for every shard of `batches` (all reachable by one script: a single
/// Redis, or one hash slot of a Cluster): the call's failure, else each shard's replies or its
/// own failure (a regressed shard fails alone).
pub(crate) async fn reserve_batches(
    mut conn: Connection,
    batches: &[ShardBatch<'_>],
) -> Result<Vec<Result<Vec<Reply>, StoreError>>, StoreError> {
    let before: Vec<u64> = batches
        .iter()
        .map(|batch| batch.keys.highest_seen())
        .collect();
    let mut call = RESERVE.prepare_invoke();
    for batch in batches {
        let keys = batch.keys;
        call.key(&keys.stock)
            .key(&keys.held)
            .key(&keys.keys)
            .key(&keys.res)
            .key(&keys.buckets);
    }
    if let (true, Some(first)) = (conn.reaches_every_key(), batches.first()) {
        call.key(&first.keys.due);
    }
    call.arg(batches.len());
    for batch in batches {
        call.arg(batch.deposit).arg(batch.requests.len());
        for request in batch.requests {
            call.arg(request.now_us)
                .arg(&request.user)
                .arg(request.quantity)
                .arg(&request.key_field)
                .arg(&id_bytes(request.order_id)[..])
                .arg(&request.body)
                .arg(request.expires_us);
        }
        call.arg(&batch.keys.due_member);
    }
    let answers = items(call.invoke_async::<Value>(&mut conn).await?)?;
    if answers.len() != batches.len() {
        return Err(StoreError::corrupt(format!(
            "reserve answered {} shards of {}",
            answers.len(),
            batches.len()
        )));
    }
    Ok(answers
        .into_iter()
        .zip(batches.iter().zip(before))
        .map(|(answer, (batch, before))| {
            let flat = sequenced(batch.keys, before, answer)?;
            let mut fields = flat.iter();
            let replies = (0..batch.requests.len())
                .map(|_| Reply::next(&mut fields))
                .collect::<Result<Vec<_>, _>>()?;
            if fields.next().is_some() {
                return Err(StoreError::corrupt(format!(
                    "more replies than {} reservations",
                    batch.requests.len()
                )));
            }
            Ok(replies)
        })
        .collect())
}

/// One request's answer from `reserve.lua`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Reserved { remaining: u64 },
    SoldOut { available: u64 },
    LimitExceeded { limit: u32, held: u32 },
    NotActive(SaleState),
    Existing { order_id: OrderId, record: String },
    NoSale,
}

/// Whether any reply of a reservation call changed what Redis holds.
pub(crate) fn wrote(replies: &[Reply]) -> bool {
    replies
        .iter()
        .any(|reply| matches!(reply, Reply::Reserved { .. }))
}

fn unexpected(what: &str, value: &Value) -> StoreError {
    StoreError::corrupt(format!("{what}: unexpected reply {value:?}"))
}

pub(crate) fn int(value: &Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| unexpected("integer", value)),
        other => Err(unexpected("integer", other)),
    }
}

pub(crate) fn text(value: &Value) -> Result<String, StoreError> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes.clone()).map_err(|_| unexpected("text", value))
        }
        Value::SimpleString(text) => Ok(text.clone()),
        other => Err(unexpected("text", other)),
    }
}

pub(crate) fn items(value: Value) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(unexpected("array", &other)),
    }
}

fn count<T: TryFrom<i64>>(value: &Value) -> Result<T, StoreError> {
    let n = int(value)?;
    T::try_from(n).map_err(|_| unexpected("count", value))
}

impl Reply {
    /// Reads one request's answer off the flat reply of `reserve.lua`.
    pub(crate) fn next<'a>(
        fields: &mut impl Iterator<Item = &'a Value>,
    ) -> Result<Self, StoreError> {
        let mut field = || {
            fields
                .next()
                .ok_or_else(|| StoreError::corrupt("reserve reply too short"))
        };
        Ok(match int(field()?)? {
            0 => Self::Reserved {
                remaining: count(field()?)?,
            },
            1 => Self::SoldOut {
                available: count(field()?)?,
            },
            2 => Self::LimitExceeded {
                limit: count(field()?)?,
                held: count(field()?)?,
            },
            3 => Self::NotActive(match text(field()?)?.as_str() {
                "upcoming" => SaleState::Upcoming,
                _ => SaleState::Ended,
            }),
            4 => Self::Existing {
                order_id: order_id(field()?)?,
                record: text(field()?)?,
            },
            5 => Self::NoSale,
            code => return Err(StoreError::corrupt(format!("reserve reply code {code}"))),
        })
    }
}

/// What `create.lua` and `restore.lua` write into a shard's stock hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardSetup<'a> {
    pub(crate) available: u64,
    pub(crate) per_user_limit: u32,
    pub(crate) starts_at: Option<DateTime<Utc>>,
    pub(crate) ends_at: Option<DateTime<Utc>>,
    pub(crate) shards: usize,
    /// The sale's definition (JSON) on shard 0, empty on the others.
    pub(crate) definition: &'a str,
}

fn micros(instant: Option<DateTime<Utc>>) -> String {
    instant
        .map(|at| at.timestamp_micros().to_string())
        .unwrap_or_default()
}

/// `create.lua`: creates the shard unless it exists; answers whether it did.
pub(crate) async fn create(
    mut conn: Connection,
    keys: &ShardKeys,
    setup: &ShardSetup<'_>,
) -> Result<bool, StoreError> {
    let created: i64 = CREATE
        .key(&keys.stock)
        .arg(setup.available)
        .arg(setup.per_user_limit)
        .arg(micros(setup.starts_at))
        .arg(micros(setup.ends_at))
        .arg(setup.shards)
        .arg(setup.definition)
        .invoke_async(&mut conn)
        .await?;
    Ok(created == 1)
}

/// `end.lua` on one shard: it refuses reservations from `at` on; shard 0 also stores the
/// `definition` ended there (empty on the others). Answers whether the shard exists.
pub(crate) async fn end(
    mut conn: Connection,
    keys: &ShardKeys,
    at: DateTime<Utc>,
    definition: &str,
) -> Result<bool, StoreError> {
    let before = keys.highest_seen();
    let reply = END
        .key(&keys.stock)
        .arg(at.timestamp_micros())
        .arg(definition)
        .invoke_async(&mut conn)
        .await?;
    // {sequence, 1}; {0} alone when the shard does not exist.
    Ok(!sequenced(keys, before, reply)?.is_empty())
}

/// One shard as `restore.lua` rebuilds it: its setup and the units its orders hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RestoredShard<'a> {
    pub(crate) setup: ShardSetup<'a>,
    pub(crate) reserved: u64,
    pub(crate) sold: u64,
}

/// `restore.lua` for one chunk of a shard's orders and users' holds; the `first` chunk wipes the
/// shard and writes its counts, the next ones only add orders and holds.
pub(crate) async fn restore(
    mut conn: Connection,
    keys: &ShardKeys,
    retention_us: i64,
    shard: &RestoredShard<'_>,
    first: bool,
    orders: &[&Order],
    holds: &[(&str, u64)],
) -> Result<(), StoreError> {
    let setup = &shard.setup;
    let mut call = RESTORE.prepare_invoke();
    call.key(&keys.stock)
        .key(&keys.held)
        .key(&keys.keys)
        .key(&keys.res)
        .key(&keys.buckets);
    if conn.reaches_every_key() {
        call.key(&keys.due);
    }
    call.arg(u8::from(first))
        .arg(setup.available)
        .arg(shard.reserved)
        .arg(shard.sold)
        .arg(setup.per_user_limit)
        .arg(micros(setup.starts_at))
        .arg(micros(setup.ends_at))
        .arg(setup.shards)
        .arg(setup.definition)
        .arg(&keys.due_member)
        .arg(retention_us)
        .arg(&keys.legacy)
        .arg(orders.len());
    for order in orders {
        let state = ReservationState::of_order(order.status);
        let key = order.idempotency_key.as_ref();
        call.arg(&id_bytes(order.id)[..])
            .arg(record::state_letter(state).to_string())
            .arg(
                key.map(|key| key_field(order.user.as_str(), key.as_str()))
                    .unwrap_or_default(),
            )
            .arg(record::encode_body(
                &order.user,
                order.quantity,
                key,
                order.remark.as_deref(),
                order.created_at,
                order.expires_at,
            ))
            .arg(order.expires_at.timestamp_micros());
    }
    for (user, units) in holds {
        call.arg(*user).arg(*units);
    }
    let _: i64 = call.invoke_async(&mut conn).await?;
    Ok(())
}

/// `withdraw.lua`: takes up to `wanted` units (or half the shard's) for a transfer; answers
/// `(units taken, units in transit from the shard now)`.
pub(crate) async fn withdraw(
    mut conn: Connection,
    keys: &ShardKeys,
    wanted: u64,
) -> Result<(u64, u64), StoreError> {
    let before = keys.highest_seen();
    let reply = WITHDRAW
        .key(&keys.stock)
        .arg(wanted)
        .invoke_async(&mut conn)
        .await?;
    match sequenced(keys, before, reply)?.as_slice() {
        [taken, transit] => Ok((count(taken)?, count(transit)?)),
        other => Err(StoreError::corrupt(format!("withdraw reply {other:?}"))),
    }
}

/// `settle.lua`: the `taken` units withdrawn from the shard have been deposited elsewhere.
pub(crate) async fn settle(
    mut conn: Connection,
    keys: &ShardKeys,
    taken: u64,
) -> Result<(), StoreError> {
    let before = keys.highest_seen();
    let reply = SETTLE
        .key(&keys.stock)
        .arg(taken)
        .invoke_async(&mut conn)
        .await?;
    sequenced(keys, before, reply)?;
    Ok(())
}

/// `confirm.lua` on one shard; `NotFound` when the shard does not hold the order.
pub(crate) async fn confirm(
    mut conn: Connection,
    keys: &ShardKeys,
    order_id: OrderId,
    now: DateTime<Utc>,
) -> Result<ConfirmOutcome, StoreError> {
    let before = keys.highest_seen();
    let reply: Value = CONFIRM
        .key(&keys.stock)
        .key(&keys.res)
        .arg(&id_bytes(order_id)[..])
        .arg(now.timestamp_micros())
        .invoke_async(&mut conn)
        .await?;
    confirm_reply(&sequenced(keys, before, reply)?)
}

fn confirm_reply(reply: &[Value]) -> Result<ConfirmOutcome, StoreError> {
    Ok(match reply.first().map(int).transpose()? {
        Some(0) => ConfirmOutcome::Confirmed,
        Some(1) => ConfirmOutcome::AlreadyConfirmed,
        Some(2) => ConfirmOutcome::Released(released_as(reply.get(1), "confirm")?),
        Some(4) => ConfirmOutcome::Expired,
        _ => ConfirmOutcome::NotFound,
    })
}

/// `release.lua` on one shard for `order_ids`, in one call: one answer per id, `NotFound` for
/// an order the shard does not hold.
pub(crate) async fn release(
    mut conn: Connection,
    keys: &ShardKeys,
    order_ids: &[OrderId],
    reason: ReleaseReason,
) -> Result<Vec<ReleaseOutcome>, StoreError> {
    let before = keys.highest_seen();
    let mut call = RELEASE.prepare_invoke();
    call.key(&keys.stock)
        .key(&keys.held)
        .key(&keys.res)
        .arg(record::release_letter(reason).to_string());
    for id in order_ids {
        call.arg(&id_bytes(*id)[..]);
    }
    let reply = sequenced(keys, before, call.invoke_async::<Value>(&mut conn).await?)?;
    if reply.len() != order_ids.len() * 2 {
        return Err(StoreError::corrupt(format!(
            "{} values answered {} releases",
            reply.len(),
            order_ids.len()
        )));
    }
    reply.chunks(2).map(release_reply).collect()
}

/// One release's two values from `release.lua`.
fn release_reply(reply: &[Value]) -> Result<ReleaseOutcome, StoreError> {
    let [code, value] = reply else {
        return Err(StoreError::corrupt(
            "a release answered without its two values",
        ));
    };
    Ok(match int(code)? {
        0 => ReleaseOutcome::Released {
            quantity: count(value)?,
        },
        1 => ReleaseOutcome::AlreadyReleased(released_as(Some(value), "release")?),
        2 => ReleaseOutcome::Confirmed,
        _ => ReleaseOutcome::NotFound,
    })
}

/// The reason of a reservation a script found released, from its state letter.
fn released_as(letter: Option<&Value>, script: &str) -> Result<ReleaseReason, StoreError> {
    let letter =
        letter.ok_or_else(|| StoreError::corrupt(format!("{script} reply without a state")))?;
    match record::state_of(&text(letter)?)? {
        ReservationState::Released(reason) => Ok(reason),
        state => Err(StoreError::corrupt(format!(
            "{script} refused in state {state:?}"
        ))),
    }
}

/// The most records one `expired.lua` call reads (its bounded work), beside those it answers.
const EXPIRED_READ_BUDGET: usize = 4_096;

/// `expired.lua` on one shard: up to `limit` reservations of `sku` whose expiry is due, soonest
/// first, after forgetting up to `forget` settled ones whose retention has passed, and whether
/// it stopped on its read budget with more buckets due (the next call goes on: the buckets it
/// read are refiled).
pub(crate) async fn expired(
    mut conn: Connection,
    keys: &ShardKeys,
    sku: &Sku,
    now: DateTime<Utc>,
    window: Window,
) -> Result<(Vec<Reservation>, bool), StoreError> {
    let mut call = EXPIRED.prepare_invoke();
    call.key(&keys.res).key(&keys.buckets).key(&keys.keys);
    walk_args(&mut call, &conn, keys, now, window);
    let mut flat = items(call.invoke_async::<Value>(&mut conn).await?)?.into_iter();
    let more = int(&flat
        .next()
        .ok_or_else(|| StoreError::corrupt("empty expired reply"))?)?
        == 1;
    Ok((reservations(sku, flat.collect(), "expired")?, more))
}

/// What `expired.lua` and `expire.lua` both take after their own keys, for their walk over the
/// shard's buckets (walk.lua): the due index (absent on a Redis Cluster, where a script cannot
/// reach its slot), then now, the limit, the shard's member of the index, the most to forget,
/// the retention and the read budget.
fn walk_args(
    call: &mut redis::ScriptInvocation<'_>,
    conn: &Connection,
    keys: &ShardKeys,
    now: DateTime<Utc>,
    window: Window,
) {
    if conn.reaches_every_key() {
        call.key(&keys.due);
    }
    call.arg(now.timestamp_micros())
        .arg(window.limit)
        .arg(&keys.due_member)
        .arg(window.forget)
        .arg(window.retention_us)
        .arg(EXPIRED_READ_BUDGET + window.limit);
}

/// The reservations a script answers as a flat list: order id, record, …
fn reservations(sku: &Sku, flat: Vec<Value>, script: &str) -> Result<Vec<Reservation>, StoreError> {
    let mut found = Vec::with_capacity(flat.len() / 2);
    for pair in flat.chunks(2) {
        let [id, record] = pair else {
            return Err(StoreError::corrupt(format!("odd {script} reply")));
        };
        found.push(record::decode(sku, order_id(id)?, &text(record)?)?);
    }
    Ok(found)
}

/// How long `expire.lua` keeps a call's answer for the same call made again (its reply lost):
/// the sweeper makes it again at its next sweep, or after backing off while Redis is out of
/// reach. Deleted as soon as the answer arrives.
pub(crate) const EXPIRE_ANSWER_KEPT: std::time::Duration = std::time::Duration::from_secs(600);

/// `expire.lua` on one shard: releases as expired up to `window.limit` of `sku`'s reservations
/// due by `now`, soonest first (after forgetting up to `window.forget` settled ones), and says
/// whether more may be due. The call named `token` made again answers what it released.
pub(crate) async fn expire(
    mut conn: Connection,
    keys: &ShardKeys,
    sku: &Sku,
    now: DateTime<Utc>,
    window: Window,
    token: uuid::Uuid,
) -> Result<(Vec<Reservation>, bool), StoreError> {
    let before = keys.highest_seen();
    let mut call = EXPIRE.prepare_invoke();
    call.key(&keys.stock)
        .key(&keys.held)
        .key(&keys.res)
        .key(&keys.buckets)
        .key(&keys.keys)
        .key(keys.answer(token));
    walk_args(&mut call, &conn, keys, now, window);
    call.arg(EXPIRE_ANSWER_KEPT.as_millis().to_string());
    let reply = sequenced(keys, before, call.invoke_async::<Value>(&mut conn).await?)?;
    let mut flat = reply.into_iter();
    // No such shard.
    let Some(more) = flat.next() else {
        return Ok((Vec::new(), false));
    };
    let more = int(&more)? == 1;
    Ok((reservations(sku, flat.collect(), "expire")?, more))
}

/// What one `expired.lua` call may do: answer `limit` reservations, forget `forget`, each
/// settled one `retention_us` after its expiry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) limit: usize,
    pub(crate) forget: usize,
    pub(crate) retention_us: i64,
}

/// `snapshot.lua`: the shard's `(available, reserved, sold)`, `None` when it does not exist;
/// regressed when marked so or last written by another primary (a failover since).
pub(crate) async fn snapshot(
    mut conn: Connection,
    keys: &ShardKeys,
) -> Result<Option<(u64, u64, u64)>, StoreError> {
    let reply = items(SNAPSHOT.key(&keys.stock).invoke_async(&mut conn).await?)?;
    let count =
        |value: &Value| u64::try_from(int(value)?).map_err(|_| unexpected("a stock count", value));
    match reply.as_slice() {
        [] => Ok(None),
        [regressed] if int(regressed)? == -1 => Err(StoreError::Regressed(
            "a failover since its last write, or marked to be rebuilt",
        )),
        [available, reserved, sold] => {
            Ok(Some((count(available)?, count(reserved)?, count(sold)?)))
        }
        _ => Err(StoreError::corrupt(format!(
            "snapshot answered {} values",
            reply.len()
        ))),
    }
}

/// `mark.lua`: marks the shard at `stock` (its stock hash) regressed (`why`), if it exists; with
/// `seen`, the sequence a call of it answered, unless a rebuild gave it a new life since that
/// call ran. Answers whether it marked it.
pub(crate) async fn mark(
    mut conn: Connection,
    stock: &str,
    why: &str,
    seen: Option<u64>,
) -> Result<bool, StoreError> {
    let marked: i64 = MARK
        .key(stock)
        .arg(why)
        .arg(seen.map(|seq| seq.to_string()).unwrap_or_default())
        .invoke_async(&mut conn)
        .await?;
    Ok(marked == 1)
}

/// `lock.lua`: takes or renews the rebuild lock at `key` for `holder`; answers whether it has it.
pub(crate) async fn lock(
    mut conn: Connection,
    key: &str,
    holder: &str,
    lease: std::time::Duration,
) -> Result<bool, StoreError> {
    let millis = lease.as_millis().clamp(1, u128::from(u32::MAX));
    let held: i64 = LOCK
        .key(key)
        .arg(holder)
        .arg(millis.to_string())
        .invoke_async(&mut conn)
        .await?;
    Ok(held == 1)
}

/// `unlock.lua`: gives the rebuild lock at `key` back, if `holder` has it.
pub(crate) async fn unlock(
    mut conn: Connection,
    key: &str,
    holder: &str,
) -> Result<(), StoreError> {
    let _: i64 = UNLOCK.key(key).arg(holder).invoke_async(&mut conn).await?;
    Ok(())
}

/// An order id as the scripts answer it: its 16 bytes.
pub(crate) fn order_id(value: &Value) -> Result<OrderId, StoreError> {
    match value {
        Value::BulkString(bytes) => uuid::Uuid::from_slice(bytes)
            .map(OrderId::from)
            .map_err(|_| unexpected("order id", value)),
        other => Err(unexpected("order id", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(items: Vec<Value>) -> Result<Reply, StoreError> {
        let mut fields = items.iter();
        let reply = Reply::next(&mut fields)?;
        assert!(fields.next().is_none(), "one reply uses every field");
        Ok(reply)
    }

    #[test]
    fn parses_every_reply_and_refuses_garbage() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(
            parse(vec![Value::Int(0), Value::Int(7)]).unwrap(),
            Reply::Reserved { remaining: 7 }
        );
        assert_eq!(
            parse(vec![Value::Int(2), Value::Int(3), Value::Int(2)]).unwrap(),
            Reply::LimitExceeded { limit: 3, held: 2 }
        );
        assert_eq!(
            parse(vec![Value::Int(3), bulk("upcoming")]).unwrap(),
            Reply::NotActive(SaleState::Upcoming)
        );
        let id = OrderId::new();
        assert_eq!(
            parse(vec![
                Value::Int(4),
                Value::BulkString(id_bytes(id).to_vec()),
                bulk("r{}")
            ])
            .unwrap(),
            Reply::Existing {
                order_id: id,
                record: "r{}".into()
            }
        );
        // An id is its 16 bytes, never its text.
        assert!(parse(vec![Value::Int(4), bulk(&id.to_string()), bulk("r{}")]).is_err());
        assert!(parse(vec![Value::Int(1), Value::Int(-1)]).is_err());
        assert!(parse(vec![Value::Int(9)]).is_err());
        assert!(parse(vec![]).is_err());
    }

    #[test]
    fn parses_confirm_and_release_replies_and_refuses_garbage() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(
            confirm_reply(&[Value::Int(0)]).unwrap(),
            ConfirmOutcome::Confirmed
        );
        assert_eq!(
            confirm_reply(&[Value::Int(1)]).unwrap(),
            ConfirmOutcome::AlreadyConfirmed
        );
        assert_eq!(
            confirm_reply(&[Value::Int(4)]).unwrap(),
            ConfirmOutcome::Expired
        );
        assert_eq!(
            confirm_reply(&[Value::Int(3)]).unwrap(),
            ConfirmOutcome::NotFound
        );
        let cancelled = record::release_letter(ReleaseReason::Cancelled).to_string();
        assert_eq!(
            confirm_reply(&[Value::Int(2), bulk(&cancelled)]).unwrap(),
            ConfirmOutcome::Released(ReleaseReason::Cancelled)
        );
        assert_eq!(
            release_reply(&[Value::Int(0), Value::Int(3)]).unwrap(),
            ReleaseOutcome::Released { quantity: 3 }
        );
        assert_eq!(
            release_reply(&[Value::Int(1), bulk(&cancelled)]).unwrap(),
            ReleaseOutcome::AlreadyReleased(ReleaseReason::Cancelled)
        );
        assert_eq!(
            release_reply(&[Value::Int(2), Value::Int(0)]).unwrap(),
            ReleaseOutcome::Confirmed
        );
        assert_eq!(
            release_reply(&[Value::Int(3), Value::Int(0)]).unwrap(),
            ReleaseOutcome::NotFound
        );
        // A released state the script would never answer, a missing field, a bad quantity.
        let reserved = record::state_letter(ReservationState::Reserved).to_string();
        assert!(confirm_reply(&[Value::Int(2), bulk(&reserved)]).is_err());
        assert!(confirm_reply(&[Value::Int(2)]).is_err());
        assert!(release_reply(&[Value::Int(0)]).is_err());
        assert!(release_reply(&[Value::Int(0), Value::Int(-1)]).is_err());
        assert!(release_reply(&[]).is_err());
    }
}
