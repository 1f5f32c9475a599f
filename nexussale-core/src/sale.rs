//! Sales: the definition of one flash sale, its state, and a snapshot of its stock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub(crate) use crate::ident::Sku;
use crate::waiting_room::WaitingRoom;

/// The most units one sale may hold.
pub const MAX_STOCK: u64 = 1_000_000_000;
/// The largest per-user limit.
pub const MAX_PER_USER_LIMIT: u32 = 1_000_000;
/// The reservation TTL when none is given: 15 minutes.
pub const DEFAULT_RESERVATION_TTL: Duration = Duration::from_secs(900);
/// The longest reservation TTL: 7 days.
pub const MAX_RESERVATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The definition of a flash sale. Fixed once created, except that it may end early
/// ([`Sale::ended`]).
///
/// ```
/// use nexussale_core::{Sale, Sku};
/// let sale = Sale::new(Sku::new("ps5")?, 100).with_per_user_limit(2);
/// sale.validate()?;
/// # Ok::<(), nexussale_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sale {
    /// The sku that names the sale.
    pub sku: Sku,
    /// Units on sale, 1..=[`MAX_STOCK`].
    pub stock: u64,
    /// Units one user may hold at once (reserved or sold), 1..=[`MAX_PER_USER_LIMIT`].
    pub per_user_limit: u32,
    /// Purchases are refused before this instant.
    #[serde(serialize_with = "crate::timestamp::serialize_option")]
    pub starts_at: Option<DateTime<Utc>>,
    /// Purchases are refused from this instant on.
    #[serde(serialize_with = "crate::timestamp::serialize_option")]
    pub ends_at: Option<DateTime<Utc>>,
    /// How long a reservation holds its units before the sweeper returns them unless paid.
    #[serde(with = "ttl_secs", rename = "reservation_ttl_secs")]
    pub reservation_ttl: Duration,
    /// The sale's waiting room, if it has one: purchases then need a pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<WaitingRoom>,
}

impl Sale {
    /// A sale of `stock` units, open now and forever, one unit per user, the default TTL.
    pub fn new(sku: Sku, stock: u64) -> Self {
        Self {
            sku,
            stock,
            per_user_limit: 1,
            starts_at: None,
            ends_at: None,
            reservation_ttl: DEFAULT_RESERVATION_TTL,
            waiting_room: None,
        }
    }

    /// Sets the per-user limit.
    pub fn with_per_user_limit(mut self, limit: u32) -> Self {
        self.per_user_limit = limit;
        self
    }

    /// Sets the window in which purchases are accepted.
    pub fn with_window(
        mut self,
        starts_at: Option<DateTime<Utc>>,
        ends_at: Option<DateTime<Utc>>,
    ) -> Self {
        self.starts_at = starts_at;
        self.ends_at = ends_at;
        self
    }

    /// Gives the sale a waiting room.
    pub fn with_waiting_room(mut self, room: WaitingRoom) -> Self {
        self.waiting_room = Some(room);
        self
    }

    /// Sets the reservation TTL.
    pub fn with_reservation_ttl(mut self, ttl: Duration) -> Self {
        self.reservation_ttl = ttl;
        self
    }

    /// The sale ended at `at`: its end moves there when that is earlier (an end never moves
    /// later), and the start of a sale that had not opened by `at` moves there too, so it never
    /// opens (a window `[at, at)` is empty). What [`StockStore::end_sale`] and
    /// [`OrderRepository::end_sale`] store.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use nexussale_core::{Sale, SaleState, Sku};
    /// let now = Utc::now();
    /// let upcoming = Sale::new(Sku::new("ps5")?, 10).with_window(Some(now + Duration::hours(1)), None);
    /// let ended = upcoming.ended(now);
    /// assert_eq!((ended.starts_at, ended.ends_at), (Some(now), Some(now)));
    /// assert_eq!(ended.window_state(now), SaleState::Ended);
    /// # Ok::<(), nexussale_core::Error>(())
    /// ```
    ///
    /// [`StockStore::end_sale`]: crate::StockStore::end_sale
    /// [`OrderRepository::end_sale`]: crate::OrderRepository::end_sale
    #[must_use]
    pub fn ended(mut self, at: DateTime<Utc>) -> Self {
        self.ends_at = Some(self.ends_at.map_or(at, |end| end.min(at)));
        if let Some(start) = self.starts_at
            && start > at
        {
            self.starts_at = Some(at);
        }
        self
    }

    /// Checks the ranges the fields must keep.
    pub fn validate(&self) -> Result<()> {
        if self.stock == 0 || self.stock > MAX_STOCK {
            return Err(Error::invalid(
                "stock",
                format!("must be between 1 and {MAX_STOCK}"),
            ));
        }
        if self.per_user_limit == 0 || self.per_user_limit > MAX_PER_USER_LIMIT {
            return Err(Error::invalid(
                "per_user_limit",
                format!("must be between 1 and {MAX_PER_USER_LIMIT}"),
            ));
        }
        validate_instant("starts_at", self.starts_at)?;
        validate_instant("ends_at", self.ends_at)?;
        if let (Some(start), Some(end)) = (self.starts_at, self.ends_at)
            && end <= start
        {
            return Err(Error::invalid("ends_at", "must be after starts_at"));
        }
        if self.reservation_ttl < Duration::from_secs(1)
            || self.reservation_ttl > MAX_RESERVATION_TTL
        {
            return Err(Error::invalid(
                "reservation_ttl_secs",
                format!("must be between 1 and {}", MAX_RESERVATION_TTL.as_secs()),
            ));
        }
        if let Some(room) = &self.waiting_room {
            room.validate()?;
        }
        Ok(())
    }

    /// The earliest instant a sale's window may hold: 1970-01-01T00:00:00Z.
    pub const EARLIEST_INSTANT: DateTime<Utc> = DateTime::UNIX_EPOCH;

    /// The latest instant a sale's window may hold: 9999-12-31T23:59:59.999999Z (MySQL's
    /// DATETIME ends there).
    pub fn latest_instant() -> DateTime<Utc> {
        // 9999-12-31T23:59:59.999999Z, in microseconds since the epoch: always in chrono's range.
        DateTime::from_timestamp_micros(253_402_300_799_999_999).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Where the sale's window stands at `now`, ignoring stock.
    pub fn window_state(&self, now: DateTime<Utc>) -> SaleState {
        match (self.starts_at, self.ends_at) {
            (Some(start), _) if now < start => SaleState::Upcoming,
            (_, Some(end)) if now >= end => SaleState::Ended,
            _ => SaleState::Active,
        }
    }

    /// The sale's state at `now` given its stock.
    pub fn state(&self, now: DateTime<Utc>, snapshot: &StockSnapshot) -> SaleState {
        match self.window_state(now) {
            SaleState::Active if snapshot.available == 0 => SaleState::SoldOut,
            state => state,
        }
    }

    /// When a reservation made at `now` expires.
    pub fn expiry_from(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        // validate() bounds the TTL to 7 days, so the sum stays far inside i64.
        let ttl = self.reservation_ttl;
        let nanos = now.timestamp_subsec_nanos() + ttl.subsec_nanos();
        let secs = now.timestamp() + ttl.as_secs() as i64 + i64::from(nanos / 1_000_000_000);
        crate::clock::utc_from_unix(secs, nanos % 1_000_000_000)
    }
}

/// Where a sale stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    /// Before `starts_at`.
    Upcoming,
    /// Accepting purchases.
    Active,
    /// Within its window, no unit available (units may come back when reservations lapse).
    SoldOut,
    /// At or after `ends_at`.
    Ended,
}

impl SaleState {
    /// The state as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upcoming => "upcoming",
            Self::Active => "active",
            Self::SoldOut => "sold_out",
            Self::Ended => "ended",
        }
    }
}

impl std::str::FromStr for SaleState {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        [Self::Upcoming, Self::Active, Self::SoldOut, Self::Ended]
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                crate::Error::invalid("state", "must be one of upcoming, active, sold_out, ended")
            })
    }
}

impl std::fmt::Display for SaleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stock of one sale at one instant. `available + reserved + sold == stock` whenever no
/// operation is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockSnapshot {
    /// Units on sale in total.
    pub stock: u64,
    /// Units anyone may still reserve.
    pub available: u64,
    /// Units held by live reservations (pending orders).
    pub reserved: u64,
    /// Units of confirmed (paid) reservations.
    pub sold: u64,
}

pub(crate) mod ttl_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(ttl: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(ttl.as_secs())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// A window instant every backend stores exactly: from 1970 to 9999, in whole microseconds, not
/// a leap second. Anything else is refused rather than stored as something else (a 32-bit
/// TIMESTAMP turned 2040 into NULL: an open sale after a restart; nanoseconds were cut, making a
/// short window empty).
/// An early end beside a definition that is otherwise fixed: read on every purchase without a
/// lock, moved only earlier ([`Sale::ended`]).
#[derive(Debug)]
pub(crate) struct EarlyEnd {
    /// µs since the epoch; `i64::MAX` while the sale was not ended early.
    at: AtomicI64,
}

impl Default for EarlyEnd {
    fn default() -> Self {
        Self {
            at: AtomicI64::new(i64::MAX),
        }
    }
}

impl EarlyEnd {
    /// Ends at `at` unless it ended earlier.
    pub(crate) fn end(&self, at: DateTime<Utc>) {
        self.at.fetch_min(at.timestamp_micros(), Ordering::AcqRel);
    }

    /// `sale` with this end.
    pub(crate) fn apply(&self, sale: &Sale) -> Sale {
        match self.at.load(Ordering::Acquire) {
            i64::MAX => sale.clone(),
            micros => sale
                .clone()
                .ended(DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)),
        }
    }

    /// [`Sale::window_state`] of `sale` with this end.
    pub(crate) fn window_state(&self, sale: &Sale, now: DateTime<Utc>) -> SaleState {
        if now.timestamp_micros() >= self.at.load(Ordering::Acquire) {
            return SaleState::Ended;
        }
        sale.window_state(now)
    }
}

fn validate_instant(field: &'static str, at: Option<DateTime<Utc>>) -> Result<()> {
    let Some(at) = at else { return Ok(()) };
    let nanos = at.timestamp_subsec_nanos();
    if nanos >= 1_000_000_000 {
        return Err(Error::invalid(
            field,
            "is a leap second (:60), which cannot be stored; use :59.999999",
        ));
    }
    if nanos % 1_000 != 0 {
        return Err(Error::invalid(field, "has more than microsecond precision"));
    }
    if at < Sale::EARLIEST_INSTANT || at > Sale::latest_instant() {
        return Err(Error::invalid(
            field,
            "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku() -> Sku {
        Sku::new("ps5").unwrap()
    }

    #[test]
    fn window_instants_are_refused_unless_stored_exactly() {
        let at = |text: &str| {
            Some(
                DateTime::parse_from_rfc3339(text)
                    .unwrap()
                    .with_timezone(&Utc),
            )
        };
        let window = |start, end| Sale::new(sku(), 1).with_window(start, end).validate();
        for bad in [
            "1969-12-31T23:59:59.999999Z",
            "10000-01-01T00:00:00Z",
            "2030-01-01T00:00:00.000000001Z",
            "2016-12-31T23:59:60Z",
        ] {
            let Ok(parsed) = DateTime::parse_from_rfc3339(bad) else {
                continue; // chrono refuses it itself
            };
            let parsed = Some(parsed.with_timezone(&Utc));
            assert!(
                matches!(
                    window(parsed, None),
                    Err(Error::InvalidInput {
                        field: "starts_at",
                        ..
                    })
                ),
                "{bad}"
            );
            assert!(
                matches!(
                    window(None, parsed),
                    Err(Error::InvalidInput {
                        field: "ends_at",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert!(
            window(
                at("1970-01-01T00:00:00Z"),
                at("9999-12-31T23:59:59.999999Z")
            )
            .is_ok()
        );
        assert!(window(at("2040-01-01T00:00:00.000001Z"), None).is_ok());
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|day| day.and_hms_micro_opt(23, 59, 59, 1_500_000))
            .map(|at| at.and_utc());
        assert!(matches!(
            window(leap, None),
            Err(Error::InvalidInput {
                field: "starts_at",
                ..
            })
        ));
    }

    #[test]
    fn validate_refuses_bad_ranges() {
        assert!(Sale::new(sku(), 0).validate().is_err());
        assert!(Sale::new(sku(), MAX_STOCK + 1).validate().is_err());
        assert!(
            Sale::new(sku(), 1)
                .with_per_user_limit(0)
                .validate()
                .is_err()
        );
        assert!(
            Sale::new(sku(), 1)
                .with_reservation_ttl(Duration::ZERO)
                .validate()
                .is_err()
        );
        let now = Utc::now();
        assert!(
            Sale::new(sku(), 1)
                .with_window(Some(now), Some(now))
                .validate()
                .is_err()
        );
        assert!(Sale::new(sku(), 1).validate().is_ok());
    }

    #[test]
    fn state_follows_window_and_stock() {
        let now = Utc::now();
        let hour = chrono::Duration::hours(1);
        let sale = Sale::new(sku(), 10).with_window(Some(now), Some(now + hour));
        let full = StockSnapshot {
            stock: 10,
            available: 10,
            reserved: 0,
            sold: 0,
        };
        let empty = StockSnapshot {
            available: 0,
            sold: 10,
            ..full
        };
        assert_eq!(sale.state(now - hour, &full), SaleState::Upcoming);
        assert_eq!(sale.state(now, &full), SaleState::Active);
        assert_eq!(sale.state(now, &empty), SaleState::SoldOut);
        assert_eq!(sale.state(now + hour, &full), SaleState::Ended);
    }

    #[test]
    fn expiry_is_now_plus_ttl() {
        let now = Utc::now();
        for ttl in [
            Duration::from_secs(1),
            Duration::from_millis(1500),
            DEFAULT_RESERVATION_TTL,
            MAX_RESERVATION_TTL,
        ] {
            let sale = Sale::new(sku(), 1).with_reservation_ttl(ttl);
            assert_eq!(
                sale.expiry_from(now),
                now + chrono::Duration::from_std(ttl).unwrap()
            );
        }
    }

    #[test]
    fn serializes_ttl_in_seconds() {
        let json = serde_json::to_value(Sale::new(sku(), 3)).unwrap();
        assert_eq!(json["reservation_ttl_secs"], 900);
        let back: Sale = serde_json::from_value(json).unwrap();
        assert_eq!(back, Sale::new(sku(), 3));
    }
}
