//! The Lua scripts (under `lua/`), loaded once per server by `EVALSHA` (reloaded on `NOSCRIPT`),
//! and the replies they give.

use std::sync::LazyLock;

use redis::{Script, Value};

use nexussale_core::SaleState;

use crate::connection::Connection;
use crate::error::StoreError;
use crate::keys::ShardKeys;

pub(crate) static RESERVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/reserve.lua")));
pub(crate) static CONFIRM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/confirm.lua")));
pub(crate) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/release.lua")));
pub(crate) static WITHDRAW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/withdraw.lua")));
pub(crate) static SETTLE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/settle.lua")));
pub(crate) static CREATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/create.lua")));
pub(crate) static EXPIRED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/expired.lua")));
pub(crate) static RESTORE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/restore.lua")));

/// One request's arguments to `reserve.lua`, encoded once.
#[derive(Debug, Clone)]
pub(crate) struct ReserveArgs {
    pub(crate) now_us: i64,
    pub(crate) user: String,
    pub(crate) quantity: u32,
    /// The `keys` hash field, or empty.
    pub(crate) key_field: String,
    pub(crate) order_id: String,
    pub(crate) body: String,
    pub(crate) expires_us: i64,
}

/// Runs `reserve.lua` on one shard for `requests`, in order, after adding `deposit` units.
pub(crate) async fn reserve(
    mut conn: Connection,
    keys: &ShardKeys,
    deposit: u64,
    requests: &[&ReserveArgs],
) -> Result<Vec<Reply>, StoreError> {
    let mut call = RESERVE.prepare_invoke();
    call.key(&keys.stock)
        .key(&keys.held)
        .key(&keys.keys)
        .key(&keys.res)
        .key(&keys.expiry)
        .arg(deposit)
        .arg(requests.len());
    for request in requests {
        call.arg(request.now_us)
            .arg(&request.user)
            .arg(request.quantity)
            .arg(&request.key_field)
            .arg(&request.order_id)
            .arg(&request.body)
            .arg(request.expires_us);
    }
    let flat = items(call.invoke_async::<Value>(&mut conn).await?)?;
    let mut fields = flat.iter();
    let replies = (0..requests.len())
        .map(|_| Reply::next(&mut fields))
        .collect::<Result<Vec<_>, _>>()?;
    if fields.next().is_some() {
        return Err(StoreError::corrupt(format!(
            "more replies than {} reservations",
            requests.len()
        )));
    }
    Ok(replies)
}

/// One request's answer from `reserve.lua`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Reserved { remaining: u64 },
    SoldOut { available: u64 },
    LimitExceeded { limit: u32, held: u32 },
    NotActive(SaleState),
    Existing { order_id: String, record: String },
    NoSale,
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
                order_id: text(field()?)?,
                record: text(field()?)?,
            },
            5 => Self::NoSale,
            code => return Err(StoreError::corrupt(format!("reserve reply code {code}"))),
        })
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
        assert_eq!(
            parse(vec![Value::Int(4), bulk("id"), bulk("r{}")]).unwrap(),
            Reply::Existing {
                order_id: "id".into(),
                record: "r{}".into()
            }
        );
        assert!(parse(vec![Value::Int(1), Value::Int(-1)]).is_err());
        assert!(parse(vec![Value::Int(9)]).is_err());
        assert!(parse(vec![]).is_err());
    }
}
