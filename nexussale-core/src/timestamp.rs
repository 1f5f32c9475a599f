//! Timestamps in JSON, as chrono writes them (`2026-12-03T14:37:08.448854436Z`: RFC 3339, UTC,
//! the fraction in 0, 3, 6 or 9 digits), without chrono's cost: it formats through `Display`, a
//! character at a time, and a purchase's answer, an order page and every order event carry
//! timestamps. Use with serde's `serialize_with`; reading stays chrono's.
//!
//! ```
//! use chrono::{DateTime, TimeZone, Utc};
//!
//! #[derive(serde::Serialize)]
//! struct Seen {
//!     #[serde(serialize_with = "nexussale_core::timestamp::serialize")]
//!     at: DateTime<Utc>,
//! }
//!
//! let at = Utc.with_ymd_and_hms(2026, 12, 3, 14, 37, 8).unwrap();
//! let text = serde_json::to_string(&Seen { at }).unwrap();
//! assert_eq!(text, r#"{"at":"2026-12-03T14:37:08Z"}"#);
//! assert_eq!(text, serde_json::to_string(&serde_json::json!({ "at": at })).unwrap());
//! ```

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// Serializes `at` exactly as chrono's `Serialize` does.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buffer = [0u8; 30];
    match write(at, &mut buffer) {
        Some(text) => serializer.serialize_str(text),
        // Years before 0 or after 9999, leap seconds: chrono's own way.
        None => at.serialize(serializer),
    }
}

/// [`serialize`] for an optional timestamp (`null` when absent).
pub fn serialize_option<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// `value` in `width` decimal digits (leading zeros) at `buffer[at..]`.
fn put(buffer: &mut [u8; 30], at: usize, value: u32, width: usize) {
    let mut value = value;
    for slot in buffer[at..at + width].iter_mut().rev() {
        // `value % 10` is a digit: the cast keeps it whole.
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff[fff[fff]]]Z` into `buffer`, or `None` where chrono writes
/// something else (a year outside 0..=9999, a leap second).
fn write<'b>(at: &DateTime<Utc>, buffer: &'b mut [u8; 30]) -> Option<&'b str> {
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    put(buffer, 0, year, 4);
    buffer[4] = b'-';
    put(buffer, 5, at.month(), 2);
    buffer[7] = b'-';
    put(buffer, 8, at.day(), 2);
    buffer[10] = b'T';
    put(buffer, 11, at.hour(), 2);
    buffer[13] = b':';
    put(buffer, 14, at.minute(), 2);
    buffer[16] = b':';
    put(buffer, 17, at.second(), 2);
    let end = if nanos == 0 {
        19
    } else {
        let (value, width) = if nanos.is_multiple_of(1_000_000) {
            (nanos / 1_000_000, 3)
        } else if nanos.is_multiple_of(1_000) {
            (nanos / 1_000, 6)
        } else {
            (nanos, 9)
        };
        buffer[19] = b'.';
        put(buffer, 20, value, width);
        20 + width
    };
    buffer[end] = b'Z';
    std::str::from_utf8(&buffer[..=end]).ok()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn ours(at: &DateTime<Utc>) -> String {
        let mut out = Vec::new();
        serialize(at, &mut serde_json::Serializer::new(&mut out)).unwrap();
        String::from_utf8(out).unwrap()
    }

    proptest! {
        #[test]
        fn writes_what_chrono_writes(seconds in -70_000_000_000i64..300_000_000_000, nanos in 0u32..1_000_000_000, shape in 0u8..4) {
            // Whole seconds, milliseconds, microseconds and nanoseconds, each as likely.
            let nanos = match shape {
                0 => 0,
                1 => nanos / 1_000_000 * 1_000_000,
                2 => nanos / 1_000 * 1_000,
                _ => nanos,
            };
            let at = Utc.timestamp_opt(seconds, nanos).unwrap();
            prop_assert_eq!(ours(&at), serde_json::to_string(&at).unwrap());
        }
    }

    #[test]
    fn the_edges_are_chronos_too() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        for at in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::UNIX_EPOCH,
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            leap,
        ] {
            assert_eq!(ours(&at), serde_json::to_string(&at).unwrap(), "{at:?}");
        }
    }
}
