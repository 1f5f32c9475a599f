//! [`WaitingRoom`]: a sale's waiting-room settings, part of its definition.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How long a pass stays valid when the sale does not say: 120 s.
pub const DEFAULT_PASS_TTL: Duration = Duration::from_secs(120);
/// The longest pass TTL: one hour.
pub const MAX_PASS_TTL: Duration = Duration::from_secs(3600);
/// The largest overbooking factor.
pub const MAX_OVERBOOK: f64 = 10.0;
/// The most proof-of-work bits a join may be asked for (2^24 hashes: seconds in a browser).
pub const MAX_PROOF_OF_WORK_BITS: u8 = 24;

/// A sale's waiting room: buyers join a line, are admitted as units allow, and buy with the
/// pass admission gives them ([`WaitingRoomStore`](crate::WaitingRoomStore) holds the line).
///
/// ```
/// use nexussale_core::{Sale, Sku, WaitingRoom};
/// let sale = Sale::new(Sku::new("ps5")?, 100).with_waiting_room(WaitingRoom::default());
/// sale.validate()?;
/// assert_eq!(sale.waiting_room.unwrap().pass_ttl.as_secs(), 120);
/// # Ok::<(), nexussale_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitingRoom {
    /// How long an admitted buyer's pass stays valid; unused, it lapses and the next buyer is
    /// admitted. 1 s ..= [`MAX_PASS_TTL`].
    #[serde(
        rename = "pass_ttl_secs",
        with = "crate::sale::ttl_secs",
        default = "default_pass_ttl"
    )]
    pub pass_ttl: Duration,
    /// Passes outstanding may reach the units available times this factor (1.0 ..=
    /// [`MAX_OVERBOOK`]): above 1, more buyers are admitted than units remain, betting that some
    /// never buy.
    #[serde(default)]
    pub overbook: Overbook,
    /// A join must carry a nonce whose SHA-256 with the sale's challenge and the buyer has this
    /// many leading zero bits (0 = no proof asked), 0 ..= [`MAX_PROOF_OF_WORK_BITS`].
    #[serde(default)]
    pub proof_of_work_bits: u8,
    /// The sale's proof-of-work challenge: random, drawn when the definition is made, so no
    /// proof can be computed before the sale exists.
    #[serde(default = "random_challenge")]
    pub challenge: String,
}

impl Default for WaitingRoom {
    fn default() -> Self {
        Self {
            pass_ttl: DEFAULT_PASS_TTL,
            overbook: Overbook::default(),
            proof_of_work_bits: 0,
            challenge: random_challenge(),
        }
    }
}

impl WaitingRoom {
    /// Checks the ranges the fields must keep.
    pub fn validate(&self) -> Result<()> {
        if self.pass_ttl < Duration::from_secs(1) || self.pass_ttl > MAX_PASS_TTL {
            return Err(Error::invalid(
                "waiting_room.pass_ttl_secs",
                format!("must be between 1 and {}", MAX_PASS_TTL.as_secs()),
            ));
        }
        if self.proof_of_work_bits > MAX_PROOF_OF_WORK_BITS {
            return Err(Error::invalid(
                "waiting_room.proof_of_work_bits",
                format!("must be between 0 and {MAX_PROOF_OF_WORK_BITS}"),
            ));
        }
        if self.challenge.len() != 32 || !self.challenge.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(
                "waiting_room.challenge",
                "must be 32 hexadecimal digits",
            ));
        }
        Ok(())
    }

    /// The most passes that may be outstanding when `available` units are left and each pass
    /// may buy up to `per_user_limit` units: `floor(available × overbook ÷ per_user_limit)`.
    pub fn pass_ceiling(&self, available: u64, per_user_limit: u32) -> u64 {
        let scaled = u128::from(available) * u128::from(self.overbook.thousandths());
        let ceiling = scaled / (1000 * u128::from(per_user_limit.max(1)));
        u64::try_from(ceiling).unwrap_or(u64::MAX)
    }
}

fn default_pass_ttl() -> Duration {
    DEFAULT_PASS_TTL
}

fn random_challenge() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// An overbooking factor, kept in thousandths so that sales compare exactly and every backend
/// computes the same ceiling; written as a number (`1.25`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Overbook(u32);

impl Overbook {
    /// No overbooking: 1.0.
    pub const NONE: Self = Self(1000);

    /// `factor`, rounded to thousandths: between 1.0 and [`MAX_OVERBOOK`].
    pub fn new(factor: f64) -> Result<Self> {
        if !(1.0..=MAX_OVERBOOK).contains(&factor) {
            return Err(Error::invalid(
                "waiting_room.overbook",
                format!("must be between 1.0 and {MAX_OVERBOOK}"),
            ));
        }
        // In range, so the product fits a u32 comfortably.
        Ok(Self((factor * 1000.0).round() as u32))
    }

    /// The factor in thousandths (1.0 = 1000).
    pub fn thousandths(self) -> u32 {
        self.0
    }

    /// The factor.
    pub fn factor(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl Default for Overbook {
    fn default() -> Self {
        Self::NONE
    }
}

impl Serialize for Overbook {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_f64(self.factor())
    }
}

impl<'de> Deserialize<'de> for Overbook {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let factor = f64::deserialize(d)?;
        Self::new(factor).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_default_and_round_trip() {
        let room: WaitingRoom = serde_json::from_str("{}").unwrap();
        assert_eq!(room.pass_ttl, DEFAULT_PASS_TTL);
        assert_eq!(room.overbook, Overbook::NONE);
        room.validate().unwrap();
        let json = serde_json::to_value(&room).unwrap();
        assert_eq!(json["pass_ttl_secs"], 120);
        assert_eq!(json["overbook"], 1.0);
        let back: WaitingRoom = serde_json::from_value(json).unwrap();
        assert_eq!(back, room);
        assert_ne!(WaitingRoom::default().challenge, room.challenge);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(serde_json::from_str::<WaitingRoom>(r#"{"overbook": 0.5}"#).is_err());
        assert!(serde_json::from_str::<WaitingRoom>(r#"{"overbook": 11}"#).is_err());
        assert!(serde_json::from_str::<WaitingRoom>(r#"{"color": 1}"#).is_err());
        let room = |f: fn(&mut WaitingRoom)| {
            let mut room = WaitingRoom::default();
            f(&mut room);
            room.validate()
        };
        assert!(room(|r| r.pass_ttl = Duration::ZERO).is_err());
        assert!(room(|r| r.pass_ttl = MAX_PASS_TTL + Duration::from_secs(1)).is_err());
        assert!(room(|r| r.proof_of_work_bits = MAX_PROOF_OF_WORK_BITS + 1).is_err());
        assert!(room(|r| r.challenge = "x".into()).is_err());
    }

    #[test]
    fn the_ceiling_rounds_down_and_counts_a_pass_as_a_full_allowance() {
        let mut room = WaitingRoom::default();
        assert_eq!(room.pass_ceiling(10, 1), 10);
        assert_eq!(room.pass_ceiling(10, 3), 3);
        room.overbook = Overbook::new(1.25).unwrap();
        assert_eq!(room.pass_ceiling(10, 1), 12);
        assert_eq!(room.pass_ceiling(0, 1), 0);
        assert_eq!(room.pass_ceiling(u64::MAX, 1), u64::MAX);
    }
}
