//! [`Ticket`]: a buyer's place in a sale's waiting room, as the store keeps it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ident::{Sku, UserId};

/// A ticket's id: 128 random bits, written as 32 lowercase hex digits. Unguessable, though the
/// API still shows a ticket to its buyer only.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TicketId(u128);

impl TicketId {
    /// A new random id.
    pub fn random() -> Self {
        Self(fastrand::u128(..))
    }
}

impl FromStr for TicketId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        if text.len() != 32 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Error::invalid(
                "ticket",
                "must be 32 lowercase hexadecimal digits",
            ));
        }
        u128::from_str_radix(text, 16)
            .map(Self)
            .map_err(|_| Error::invalid("ticket", "must be 32 lowercase hexadecimal digits"))
    }
}

impl TryFrom<String> for TicketId {
    type Error = Error;
    fn try_from(text: String) -> Result<Self> {
        text.parse()
    }
}

impl From<TicketId> for String {
    fn from(id: TicketId) -> String {
        id.to_string()
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A ticket as the [`WaitingRoomStore`](crate::WaitingRoomStore) keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The ticket.
    pub id: TicketId,
    /// The sale.
    pub sku: Sku,
    /// The buyer it belongs to.
    pub user: UserId,
    /// Where it stands.
    pub standing: Standing,
    /// [`RoomStatus::admitted`](crate::RoomStatus::admitted) as the ticket was read (in the same
    /// atomic step): a waiting ticket's `ahead` falls by one for each admission since, so a
    /// listener follows its place from the room's count alone.
    pub room_admitted: u64,
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// In line. `ahead`: tickets in front of it, once the sale has opened and the line is drawn;
    /// `None` before (a place drawn at the opening is not known yet).
    Waiting {
        /// Tickets in front of this one.
        ahead: Option<u64>,
    },
    /// Admitted: it holds a pass until `expires_at` (a pass past its expiry has lapsed, and the
    /// ticket goes back in line at the next [`admit`](crate::WaitingRoomStore::admit)).
    Admitted(PassGrant),
    /// Its pass bought (or tried to buy) once; done.
    Used,
    /// The room closed sold out while it waited (or before it joined).
    SoldOut,
}

/// The pass an admitted ticket holds: what a signed pass names, beside the ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassGrant {
    /// The admission's number in its room (1 for the first ticket admitted, …): unique, so a
    /// lapsed pass's successor is another pass, and it tells the order of admission.
    pub nonce: u64,
    /// When it lapses (to the microsecond).
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_digits_both_ways() {
        let id = TicketId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<TicketId>().unwrap(), id);
        assert_eq!("0".repeat(32).parse::<TicketId>().unwrap(), TicketId(0));
        for bad in ["", "abc", &"g".repeat(32), &"A".repeat(32), &"0".repeat(33)] {
            assert!(bad.parse::<TicketId>().is_err(), "{bad}");
        }
    }
}
