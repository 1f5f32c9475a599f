//! How a reservation is stored: a state letter, then the fixed part as compact JSON:
//! `{"u": user, "q": quantity, "c": created, "e": expires[, "k": key][, "m": remark]}`, the
//! instants in nanoseconds since the epoch.
//!
//! The scripts change the state by rewriting the first letter and read `u` and `q` from the JSON
//! (`cjson`) when they move units. Every reservation is written once per purchase, so the record
//! is built by hand: short, and without formatting dates.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use nexussale_core::{
    IdempotencyKey, OrderId, ReleaseReason, Reservation, ReservationState, Sku, UserId,
};

use crate::error::StoreError;

/// The part of a reservation that never changes, as read back.
#[derive(Debug, Deserialize)]
struct Body {
    u: UserId,
    q: u32,
    #[serde(default)]
    k: Option<IdempotencyKey>,
    #[serde(default)]
    m: Option<String>,
    c: Instant,
    e: Instant,
}

/// Nanoseconds since the epoch, or RFC 3339 text for the instants nanoseconds cannot hold
/// (before 1677 or after 2262).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Instant {
    Nanos(i64),
    Text(DateTime<Utc>),
}

impl Instant {
    fn into_utc(self) -> DateTime<Utc> {
        match self {
            Self::Nanos(nanos) => DateTime::from_timestamp_nanos(nanos),
            Self::Text(at) => at,
        }
    }
}

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

fn push_json_str(out: &mut String, text: &str) {
    // Serializing a str cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

fn push_instant(out: &mut String, at: DateTime<Utc>) {
    match at.timestamp_nanos_opt() {
        Some(nanos) => {
            let _ = write!(out, "{nanos}");
        }
        None => push_json_str(out, &at.to_rfc3339()),
    }
}

/// The JSON of a reservation's fixed part (without the state letter).
pub(crate) fn encode_body(
    user: &UserId,
    quantity: u32,
    key: Option<&IdempotencyKey>,
    remark: Option<&str>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> String {
    let mut out = String::with_capacity(64 + user.as_str().len());
    out.push_str("{\"u\":");
    push_json_str(&mut out, user.as_str());
    let _ = write!(out, ",\"q\":{quantity},\"c\":");
    push_instant(&mut out, created_at);
    out.push_str(",\"e\":");
    push_instant(&mut out, expires_at);
    if let Some(key) = key {
        out.push_str(",\"k\":");
        push_json_str(&mut out, key.as_str());
    }
    if let Some(remark) = remark {
        out.push_str(",\"m\":");
        push_json_str(&mut out, remark);
    }
    out.push('}');
    out
}

/// Reads a stored record (state letter + JSON) back.
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
    let body: Body = serde_json::from_str(&record[1..])
        .map_err(|err| StoreError::corrupt(format!("record of order {order_id}: {err}")))?;
    Ok(Reservation {
        order_id,
        sku: sku.clone(),
        user: body.u,
        quantity: body.q,
        idempotency_key: body.k,
        remark: body.m,
        created_at: body.c.into_utc(),
        expires_at: body.e.into_utc(),
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
        // Instants nanoseconds cannot hold are kept as text.
        let far = DateTime::<Utc>::MAX_UTC;
        let body = encode_body(&UserId::new("x").unwrap(), 1, None, None, far, far);
        let back = decode(&sku, OrderId::new(), &format!("r{body}")).unwrap();
        assert_eq!((back.created_at, back.expires_at), (far, far));
        assert!(decode(&sku, OrderId::new(), "").is_err());
        assert!(decode(&sku, OrderId::new(), "z{}").is_err());
        assert!(decode(&sku, OrderId::new(), "r{not json").is_err());
    }
}
