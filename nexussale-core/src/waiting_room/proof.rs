//! Proof of work at joining: a cost per join that a browser pays once and a script joining
//! under ten thousand names pays ten thousand times.

use sha2::{Digest, Sha256};

use crate::ident::UserId;

/// The longest nonce accepted, in bytes.
pub const MAX_NONCE_LEN: usize = 64;

/// Whether SHA-256 of `challenge:user:nonce` (UTF-8, colons between) starts with `bits` zero bits.
///
/// A browser finds a nonce by counting up:
///
/// ```js
/// async function proofOfWork(challenge, user, bits) {
///   for (let nonce = 0; ; nonce++) {
///     const data = new TextEncoder().encode(`${challenge}:${user}:${nonce}`);
///     const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
///     let zeros = 0;
///     for (const byte of hash) {
///       if (byte === 0) { zeros += 8; continue; }
///       zeros += Math.clz32(byte) - 24;
///       break;
///     }
///     if (zeros >= bits) return String(nonce);
///   }
/// }
/// ```
///
/// ```
/// use nexussale_core::{UserId, proof_of_work_holds};
/// let user = UserId::new("ann")?;
/// let nonce = (0u64..).map(|n| n.to_string())
///     .find(|n| proof_of_work_holds("c0ffee", &user, n, 8))
///     .unwrap();
/// assert!(proof_of_work_holds("c0ffee", &user, &nonce, 8));
/// assert!(proof_of_work_holds("c0ffee", &user, "anything", 0));
/// # Ok::<(), nexussale_core::Error>(())
/// ```
pub fn proof_of_work_holds(challenge: &str, user: &UserId, nonce: &str, bits: u8) -> bool {
    if nonce.len() > MAX_NONCE_LEN {
        return false;
    }
    let hash = Sha256::new()
        .chain_update(challenge.as_bytes())
        .chain_update(b":")
        .chain_update(user.as_str().as_bytes())
        .chain_update(b":")
        .chain_update(nonce.as_bytes())
        .finalize();
    leading_zero_bits(&hash) >= u32::from(bits)
}

fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut zeros = 0;
    for byte in hash {
        if *byte != 0 {
            return zeros + byte.leading_zeros();
        }
        zeros += 8;
    }
    zeros
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_leading_zero_bits() {
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0x00, 0x10]), 11);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }

    #[test]
    fn a_found_nonce_holds_and_others_mostly_do_not() {
        let user = UserId::new("ann").unwrap();
        let nonce = (0u64..)
            .map(|n| n.to_string())
            .find(|n| proof_of_work_holds("c", &user, n, 12))
            .unwrap();
        assert!(proof_of_work_holds("c", &user, &nonce, 12));
        // Bound to the buyer and the challenge (each holds by chance once in 4,096: this
        // nonce, found deterministically, is not such a chance).
        let bob = UserId::new("bob").unwrap();
        assert!(!proof_of_work_holds("c", &bob, &nonce, 12));
        assert!(!proof_of_work_holds("d", &user, &nonce, 12));
        assert!(!proof_of_work_holds("c", &user, &"0".repeat(65), 0));
    }
}
