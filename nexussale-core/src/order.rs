//! Orders, their statuses, and the events the order queue carries.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::ident::{IdempotencyKey, Sku, UserId};

/// Where an id's sale tag sits: above the 6 bits of the shard hint.
const TAG_SHIFT: u32 = 6;

/// The longest remark accepted, in bytes.
pub const MAX_REMARK_LEN: usize = 512;

/// An order's id: a UUID v7, so ids sort by creation time (cursor pagination and index locality).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct OrderId(Uuid);

impl OrderId {
    /// A new, time-ordered id: a UUID v7 whose 48-bit millisecond timestamp is followed by a
    /// per-thread counter (12 bits) and 62 random bits, of which the lowest 6 are fixed per
    /// thread, so a store that shards by them keeps one thread's writes in one shard, and the 16
    /// above them are a tag (random here; the sale's, for the engine's ids).
    ///
    /// `Uuid::now_v7` asks the OS for randomness on every call (a system call per purchase); a
    /// per-thread generator seeded once from the OS does the same job without one.
    pub fn new() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as i64);
        Self::at_millis(now)
    }

    /// A new id stamped with `instant` (the engine passes the instant it already read).
    pub fn at(instant: chrono::DateTime<chrono::Utc>) -> Self {
        Self::at_millis(instant.timestamp_millis())
    }

    /// [`at`](Self::at) for an instant in Unix milliseconds.
    pub(crate) fn at_millis(now: i64) -> Self {
        Self::with_tag(now, fastrand::u16(..))
    }

    /// The 16-bit tag of a sale's order ids: FNV-1a of the sku, folded (stable across processes
    /// and versions, unlike the standard hasher).
    pub fn sale_tag(sku: &Sku) -> u16 {
        let hash = sku.as_str().bytes().fold(0x811c_9dc5_u32, |hash, byte| {
            (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
        });
        ((hash >> 16) ^ hash) as u16
    }

    /// The tag this id carries: [`sale_tag`](Self::sale_tag) of its sale's sku, for ids the engine
    /// made (any other id carries a random one).
    pub fn tag(&self) -> u16 {
        (self.0.as_u128() >> TAG_SHIFT) as u16
    }

    /// A new id stamped with `now` (Unix milliseconds) whose 16 tag bits are `tag`: for an
    /// order, its sale's [`sale_tag`](Self::sale_tag), so an order not persisted yet can be found
    /// from its id alone, by asking the stock store only about the sales with that tag.
    pub(crate) fn with_tag(now: i64, tag: u16) -> Self {
        let now = u64::try_from(now).unwrap_or(0);
        use std::cell::Cell;
        thread_local! {
            static LAST: Cell<(u64, u16)> = const { Cell::new((0, 0)) };
            static SHARD_HINT: u8 = fastrand::u8(..64);
        }
        let counter = LAST.with(|last| {
            let (millis, counter) = last.get();
            let counter = if millis == now {
                counter.wrapping_add(1) & 0x0fff
            } else {
                fastrand::u16(..0x0800)
            };
            last.set((now, counter));
            counter
        });
        let mut random = [0u8; 10];
        random[..2].copy_from_slice(&counter.to_be_bytes());
        let tail = (fastrand::u64(..) & !0x3f_ffff)
            | (u64::from(tag) << TAG_SHIFT)
            | u64::from(SHARD_HINT.with(|hint| *hint));
        random[2..].copy_from_slice(&tail.to_be_bytes());
        Self(uuid::Builder::from_unix_timestamp_millis(now, &random).into_uuid())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for OrderId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl FromStr for OrderId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| Error::invalid("order_id", "must be a UUID"))
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where an order stands: `pending` → `paid` | `cancelled` | `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Units reserved, waiting for payment.
    Pending,
    /// Paid: the units are sold.
    Paid,
    /// Cancelled by the buyer: the units went back on sale.
    Cancelled,
    /// Not paid within the reservation TTL: the units went back on sale.
    Expired,
}

impl OrderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [OrderStatus; 4] = [Self::Pending, Self::Paid, Self::Cancelled, Self::Expired];

    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }
}

impl FromStr for OrderStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                Error::invalid("status", "must be one of pending, paid, cancelled, expired")
            })
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a free-text remark: at most [`MAX_REMARK_LEN`] bytes, no control characters but
/// newline and tab.
pub fn validate_remark(remark: &str) -> Result<()> {
    if remark.len() > MAX_REMARK_LEN {
        return Err(Error::invalid(
            "remark",
            format!("must be at most {MAX_REMARK_LEN} bytes"),
        ));
    }
    if remark
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::invalid(
            "remark",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// One accepted purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Order {
    /// The order's id (also its reservation's id).
    pub id: OrderId,
    /// The sale.
    pub sku: Sku,
    /// The buyer.
    pub user: UserId,
    /// Units bought.
    pub quantity: u32,
    /// Where the order stands.
    pub status: OrderStatus,
    /// When the purchase was accepted.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    /// When the status last changed.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
    /// When the reservation lapses unless paid.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub expires_at: DateTime<Utc>,
    /// Free text from the buyer.
    pub remark: Option<String>,
    /// The key that makes the purchase safe to retry.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// What the order queue carries, from the purchase path to the order worker: placements, and
/// the transitions the stock store decided that the repository could not record at once (a
/// transition queued is as durable as a placement, and the worker applies it idempotently).
///
/// A transition carries the whole order in its new status, so a worker that finds no row (the
/// placement not persisted yet) inserts it settled. Adapters encode it (e.g. versioned JSON, see
/// [`OrderEvent::SCHEMA_VERSION`]); the enum is `non_exhaustive` so new kinds of events do not
/// break consumers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum OrderEvent {
    /// A purchase was accepted: persist this (pending) order.
    Placed {
        /// The order.
        order: Order,
    },
    /// The buyer paid: the units are sold.
    Paid {
        /// The order, `paid`.
        order: Order,
    },
    /// The buyer cancelled: the units went back on sale.
    Cancelled {
        /// The order, `cancelled`.
        order: Order,
    },
    /// The reservation lapsed unpaid: the units went back on sale.
    Expired {
        /// The order, `expired`.
        order: Order,
    },
}

impl OrderEvent {
    /// The schema version adapters write next to encoded events.
    pub const SCHEMA_VERSION: u32 = 1;

    /// The event recording that `order` reached its status: `Placed` for a pending order.
    pub fn of(order: Order) -> Self {
        match order.status {
            OrderStatus::Pending => Self::Placed { order },
            OrderStatus::Paid => Self::Paid { order },
            OrderStatus::Cancelled => Self::Cancelled { order },
            OrderStatus::Expired => Self::Expired { order },
        }
    }

    /// The order, as the event left it.
    pub fn order(&self) -> &Order {
        match self {
            Self::Placed { order }
            | Self::Paid { order }
            | Self::Cancelled { order }
            | Self::Expired { order } => order,
        }
    }

    /// The order, taken out.
    pub fn into_order(self) -> Order {
        match self {
            Self::Placed { order }
            | Self::Paid { order }
            | Self::Cancelled { order }
            | Self::Expired { order } => order,
        }
    }

    /// The sku the event belongs to (the partitioning key of a queue).
    pub fn sku(&self) -> &Sku {
        &self.order().sku
    }

    /// The order the event is about.
    pub fn order_id(&self) -> OrderId {
        self.order().id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_sort_by_creation() {
        let a = OrderId::new();
        let b = OrderId::new();
        assert!(a < b);
        assert_eq!(a.as_uuid().get_version_num(), 7);
        let many: std::collections::HashSet<OrderId> =
            (0..10_000).map(|_| OrderId::new()).collect();
        assert_eq!(many.len(), 10_000);
        assert_eq!(a.to_string().parse::<OrderId>().unwrap(), a);
        let sku = Sku::new("ps5").unwrap();
        let tagged = OrderId::with_tag(1_700_000_000_000, OrderId::sale_tag(&sku));
        assert_eq!(tagged.tag(), OrderId::sale_tag(&sku));
        assert_eq!(tagged.as_uuid().get_version_num(), 7);
        assert_ne!(
            OrderId::sale_tag(&sku),
            OrderId::sale_tag(&Sku::new("ps6").unwrap())
        );
        // Stable: the tag is part of ids already handed out.
        assert_eq!(OrderId::sale_tag(&sku), 12555);
        assert!("nope".parse::<OrderId>().is_err());
    }

    #[test]
    fn statuses_round_trip() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>().unwrap(), status);
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert!("shipped".parse::<OrderStatus>().is_err());
    }

    #[test]
    fn remarks_are_bounded() {
        assert!(validate_remark("fragile\nleave at door").is_ok());
        assert!(validate_remark(&"x".repeat(MAX_REMARK_LEN + 1)).is_err());
        assert!(validate_remark("\u{0}").is_err());
    }
}
