//! How a reservation is stored (`lua/records.lua`): a state letter, then
//! `expires,quantity,created`, `\n` user, `\n` idempotency key (or nothing), and `\n` remark
//! when it has one. Each instant is µs since the epoch, with `.ns` when it has nanoseconds
//! beyond (so it reads back exactly); a user or a key holds no control character, so newlines
//! separate them, and the remark, which may hold newlines, comes last.
//!
//! The scripts change the state by rewriting the first letter and read the expiry, the quantity,
//! the user and the key when they move units or forget a reservation. Every reservation is
//! written once per purchase and read once per release, so the record is short text built by
//! hand: it fits the compact encoding of a bucket (`hash-max-listpack-value`, 64 bytes by
//! default) for users and keys of usual lengths.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use nexussale_core::{
    IdempotencyKey, OrderId, ReleaseReason, Reservation, ReservationState, Sku, UserId,
};

use crate::error::StoreError;

pub(crate) fn state_letter(state: ReservationState) -> char {
    match state {
        ReservationState::Reserved => 'r',
        ReservationState::Confirmed => 'c',
        ReservationState::Released(reason) => release_letter(reason),
    }
}

pub(crate) fn release_letter(reason: ReleaseReason) -> char {
    match reason {
        ReleaseReason::Cancelled => 'x',
        ReleaseReason::Expired => 'e',
        ReleaseReason::Aborted => 'a',
    }
}

pub(crate) fn state_of(letter: &str) -> Result<ReservationState, StoreError> {
    Ok(match letter {
        "r" => ReservationState::Reserved,
        "c" => ReservationState::Confirmed,
        "x" => ReservationState::Released(ReleaseReason::Cancelled),
        "e" => ReservationState::Released(ReleaseReason::Expired),
        "a" => ReservationState::Released(ReleaseReason::Aborted),
        other => {
            return Err(StoreError::corrupt(format!(
                "unknown state letter `{other}`"
            )));
        }
    })
}

fn push_instant(out: &mut String, at: DateTime<Utc>) {
    let _ = write!(out, "{}", at.timestamp_micros());
    let nanos = at.timestamp_subsec_nanos() % 1_000;
    if nanos != 0 {
        let _ = write!(out, ".{nanos}");
    }
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    let (micros, nanos) = text.split_once('.').unwrap_or((text, "0"));
    let nanos: i64 = nanos.parse().ok().filter(|n| (0..1_000).contains(n))?;
    DateTime::from_timestamp_micros(micros.parse().ok()?)?
        .checked_add_signed(chrono::Duration::nanoseconds(nanos))
}

/// A reservation's record without its state letter.
pub(crate) fn encode_body(
    user: &UserId,
    quantity: u32,
    key: Option<&IdempotencyKey>,
    remark: Option<&str>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> String {
    let mut out = String::with_capacity(48 + user.as_str().len());
    push_instant(&mut out, expires_at);
    let _ = write!(out, ",{quantity},");
    push_instant(&mut out, created_at);
    out.push('\n');
    out.push_str(user.as_str());
    out.push('\n');
    if let Some(key) = key {
        out.push_str(key.as_str());
    }
    if let Some(remark) = remark {
        out.push('\n');
        out.push_str(remark);
    }
    out
}

/// Reads a stored record (state letter + the text `encode_body` wrote) back.
pub(crate) fn decode(
    sku: &Sku,
    order_id: OrderId,
    record: &str,
) -> Result<Reservation, StoreError> {
    let Some(letter) = record.get(..1) else {
        return Err(StoreError::corrupt(format!(
            "empty record for order {order_id}"
        )));
    };
    let state = state_of(letter)?;
    let corrupt = || StoreError::corrupt(format!("record of order {order_id}: `{record}`"));
    let mut lines = record[1..].splitn(4, '\n');
    let (Some(head), Some(user), Some(key)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(corrupt());
    };
    let remark = lines.next().map(str::to_owned);
    let mut head = head.split(',');
    let (Some(expires), Some(quantity), Some(created), None) =
        (head.next(), head.next(), head.next(), head.next())
    else {
        return Err(corrupt());
    };
    Ok(Reservation {
        order_id,
        sku: sku.clone(),
        user: UserId::new(user).map_err(|_| corrupt())?,
        quantity: quantity.parse().map_err(|_| corrupt())?,
        idempotency_key: match key {
            "" => None,
            key => Some(IdempotencyKey::new(key).map_err(|_| corrupt())?),
        },
        remark,
        created_at: instant(created).ok_or_else(corrupt)?,
        expires_at: instant(expires).ok_or_else(corrupt)?,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_state_at_full_precision() {
        let sku = Sku::new("ps5").unwrap();
        let now = Utc::now();
        let body = encode_body(
            &UserId::new("ann \"quoted\" ✓").unwrap(),
            3,
            Some(&IdempotencyKey::new("k-1").unwrap()),
            Some("gift {wrap}"),
            now,
            now + chrono::Duration::seconds(90),
        );
        for state in [
            ReservationState::Reserved,
            ReservationState::Confirmed,
            ReservationState::Released(ReleaseReason::Cancelled),
            ReservationState::Released(ReleaseReason::Expired),
            ReservationState::Released(ReleaseReason::Aborted),
        ] {
            let id = OrderId::new();
            let record = format!("{}{body}", state_letter(state));
            let back = decode(&sku, id, &record).unwrap();
            assert_eq!(back.state, state);
            assert_eq!(
                (back.order_id, back.quantity, back.created_at),
                (id, 3, now)
            );
            assert_eq!(back.remark.as_deref(), Some("gift {wrap}"));
        }
        // Instants at either end of the calendar and before the epoch read back exactly; no
        // key, no remark, and an empty remark, stay apart.
        let user = UserId::new("x").unwrap();
        for (created, expires) in [
            (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC),
            (
                DateTime::from_timestamp(-5, 7).unwrap(),
                DateTime::from_timestamp(0, 999_999_999).unwrap(),
            ),
        ] {
            for remark in [None, Some(""), Some("two\nlines")] {
                let body = encode_body(&user, 1, None, remark, created, expires);
                let back = decode(&sku, OrderId::new(), &format!("r{body}")).unwrap();
                assert_eq!((back.created_at, back.expires_at), (created, expires));
                assert_eq!(
                    (back.remark.as_deref(), back.idempotency_key),
                    (remark, None)
                );
            }
        }
        for garbage in [
            "",
            "z1,1,1\nx\n",
            "r1,1\nx\n",
            "r1,1,1\nx",
            "r1,x,1\nx\n",
            "r1.1000,1,1\nx\n",
        ] {
            assert!(
                decode(&sku, OrderId::new(), garbage).is_err(),
                "{garbage:?}"
            );
        }
    }
}
