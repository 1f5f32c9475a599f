//! Admission passes: signed, bound to a sale, a buyer, a ticket's admission and an expiry.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ticket::{PassGrant, TicketId};
use crate::ident::{Sku, UserId};

/// The shortest signing key accepted, in bytes.
pub const MIN_PASS_KEY_LEN: usize = 16;

/// Signs and checks admission passes with one HMAC-SHA256 key.
///
/// A pass reads `<ticket>.<nonce>.<expiry>.<signature>` (hex): the signature covers the sale
/// and the buyer too, so a pass shown by another buyer or for another sale does not verify.
/// The expiry travels to the microsecond, as stores keep it. Verifying proves who was
/// admitted and until when; that the pass is used once is the
/// [`WaitingRoomStore`](crate::WaitingRoomStore)'s part.
///
/// ```
/// use nexussale_core::{PassGrant, PassSigner, Sku, TicketId, UserId};
/// let signer = PassSigner::new(b"a key of sixteen bytes or more")?;
/// let (sku, ann, bob) = (Sku::new("ps5")?, UserId::new("ann")?, UserId::new("bob")?);
/// let expires_at = chrono::DateTime::from_timestamp_micros(1_800_000_000_000_000).unwrap();
/// let grant = PassGrant { nonce: 7, expires_at };
/// let pass = signer.sign(&sku, &ann, TicketId::random(), &grant);
/// assert_eq!(signer.verify(&sku, &ann, &pass).map(|p| p.grant), Some(grant));
/// assert!(signer.verify(&sku, &bob, &pass).is_none());
/// # Ok::<(), nexussale_core::Error>(())
/// ```
#[derive(Clone)]
pub struct PassSigner {
    mac: Hmac<Sha256>,
}

/// Why a purchase of a waiting-room sale was refused for its pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PassRefusal {
    /// No pass came with it.
    Missing,
    /// The pass is not one this sale gave this buyer (forged, another buyer's, or replaced by a
    /// later admission).
    Invalid,
    /// The pass lapsed.
    Expired,
    /// The pass bought once already.
    Used,
}

impl PassRefusal {
    /// Why, as a sentence for the buyer.
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => {
                "this sale has a waiting room: join its queue and buy with the pass admission gives (header Admission-Pass)"
            }
            Self::Invalid => "this pass was not issued to this buyer for this sale",
            Self::Expired => "this pass has lapsed; the ticket is back in line",
            Self::Used => "this pass was used already; a pass buys once",
        }
    }
}

/// A pass whose signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedPass {
    /// The ticket admitted.
    pub ticket: TicketId,
    /// Its admission.
    pub grant: PassGrant,
}

impl PassSigner {
    /// A signer with `key` (at least [`MIN_PASS_KEY_LEN`] bytes).
    pub fn new(key: &[u8]) -> crate::Result<Self> {
        if key.len() < MIN_PASS_KEY_LEN {
            return Err(crate::Error::invalid(
                "waiting_room_secret",
                format!("must be at least {MIN_PASS_KEY_LEN} bytes"),
            ));
        }
        let mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|_| crate::Error::invalid("waiting_room_secret", "is not a usable key"))?;
        Ok(Self { mac })
    }

    /// The pass for `ticket`'s admission `grant`, on `sku`, for `user`.
    pub fn sign(&self, sku: &Sku, user: &UserId, ticket: TicketId, grant: &PassGrant) -> String {
        let head = format!(
            "{ticket}.{:016x}.{:x}",
            grant.nonce,
            grant.expires_at.timestamp_micros()
        );
        let signature = self.signature(sku, user, &head).finalize().into_bytes();
        format!("{head}.{}", hex(&signature))
    }

    /// The pass `text` if it was signed with this key for `sku` and `user`. Its expiry is not
    /// checked here.
    pub fn verify(&self, sku: &Sku, user: &UserId, text: &str) -> Option<VerifiedPass> {
        let (head, signature) = text.rsplit_once('.')?;
        let mut parts = head.splitn(3, '.');
        let ticket: TicketId = parts.next()?.parse().ok()?;
        let nonce = parts.next().filter(|n| n.len() == 16)?;
        let nonce = u64::from_str_radix(nonce, 16).ok()?;
        let expires = i64::from_str_radix(parts.next()?, 16).ok()?;
        let expires_at = DateTime::<Utc>::from_timestamp_micros(expires)?;
        let signature = unhex(signature)?;
        // `verify_slice` compares in constant time.
        self.signature(sku, user, head)
            .verify_slice(&signature)
            .ok()?;
        Some(VerifiedPass {
            ticket,
            grant: PassGrant { nonce, expires_at },
        })
    }

    fn signature(&self, sku: &Sku, user: &UserId, head: &str) -> Hmac<Sha256> {
        // Identifiers hold no control characters, so newlines separate the fields unambiguously.
        let mut mac = self.mac.clone();
        mac.update(b"nexussale-pass-v1\n");
        mac.update(sku.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(user.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(head.as_bytes());
        mac
    }
}

impl fmt::Debug for PassSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassSigner").finish_non_exhaustive()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> PassGrant {
        PassGrant {
            nonce: 0xdead_beef,
            expires_at: DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap(),
        }
    }

    #[test]
    fn a_pass_verifies_for_its_sale_and_buyer_only() {
        let signer = PassSigner::new(&[7; 32]).unwrap();
        let (ps5, xbox) = (Sku::new("ps5").unwrap(), Sku::new("xbox").unwrap());
        let (ann, bob) = (UserId::new("ann").unwrap(), UserId::new("bob").unwrap());
        let ticket = TicketId::random();
        let pass = signer.sign(&ps5, &ann, ticket, &grant());
        assert_eq!(
            signer.verify(&ps5, &ann, &pass),
            Some(VerifiedPass {
                ticket,
                grant: grant()
            })
        );
        assert_eq!(signer.verify(&ps5, &bob, &pass), None);
        assert_eq!(signer.verify(&xbox, &ann, &pass), None);
        let other = PassSigner::new(&[8; 32]).unwrap();
        assert_eq!(other.verify(&ps5, &ann, &pass), None);
    }

    #[test]
    fn a_changed_or_mangled_pass_does_not_verify() {
        let signer = PassSigner::new(&[7; 32]).unwrap();
        let (sku, user) = (Sku::new("ps5").unwrap(), UserId::new("ann").unwrap());
        let pass = signer.sign(&sku, &user, TicketId::random(), &grant());
        let later = PassGrant {
            expires_at: grant().expires_at + chrono::Duration::hours(1),
            ..grant()
        };
        let (head, signature) = pass.rsplit_once('.').unwrap();
        let (ticket, _) = head.split_once('.').unwrap();
        let forged = format!(
            "{ticket}.{:016x}.{:x}.{signature}",
            later.nonce,
            later.expires_at.timestamp_micros()
        );
        assert_eq!(signer.verify(&sku, &user, &forged), None);
        for bad in [
            "",
            ".",
            "a.b.c.d",
            &pass[1..],
            &format!("{pass}0"),
            "é.é.é.é",
        ] {
            assert_eq!(signer.verify(&sku, &user, bad), None, "{bad}");
        }
        assert!(PassSigner::new(b"short").is_err());
        assert!(!format!("{signer:?}").contains('7'));
    }
}
