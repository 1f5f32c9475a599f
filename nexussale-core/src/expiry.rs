//! What one [`StockStore::expire`](crate::StockStore::expire) call is and answers.

use parking_lot::Mutex;
use uuid::Uuid;

use crate::reservation::Reservation;

/// One call of [`StockStore::expire`](crate::StockStore::expire), named so that it can be made
/// again: a caller whose call failed (a reply lost with its connection may have been applied)
/// makes it again with the same `ExpiryCall`, and gets what the first try released.
///
/// A store that releases in one step keeps its answer under [`token`](Self::token) for a while
/// (the Redis store: ten minutes); the default `expire` remembers here what it listed and
/// releases those again.
#[derive(Debug)]
pub struct ExpiryCall {
    token: Uuid,
    listed: Mutex<Option<Listed>>,
}

/// What the default `expire` listed on a call's first try.
#[derive(Debug, Clone)]
struct Listed {
    reservations: Vec<Reservation>,
    full: bool,
}

impl ExpiryCall {
    /// A new call, never tried.
    pub fn new() -> Self {
        Self {
            token: Uuid::now_v7(),
            listed: Mutex::new(None),
        }
    }

    /// The call's name: unique (a UUID v7), the same on every try.
    pub fn token(&self) -> Uuid {
        self.token
    }

    /// What an earlier try listed (the default `expire`'s memory).
    pub(crate) fn listed(&self) -> Option<(Vec<Reservation>, bool)> {
        self.listed
            .lock()
            .as_ref()
            .map(|listed| (listed.reservations.clone(), listed.full))
    }

    /// Remembers what this try listed, for the next.
    pub(crate) fn remember(&self, reservations: &[Reservation], full: bool) {
        *self.listed.lock() = Some(Listed {
            reservations: reservations.to_vec(),
            full,
        });
    }
}

impl Default for ExpiryCall {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`StockStore::expire`](crate::StockStore::expire) released.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiredBatch {
    /// The reservations this call released as expired (on a retry: those its first try
    /// released), as they were before: their orders are to be recorded `expired`.
    pub released: Vec<Reservation>,
    /// Whether the call stopped on its bound: more may be due, call again.
    pub full: bool,
}

impl ExpiredBatch {
    /// The units the batch returned.
    pub fn units(&self) -> u64 {
        self.released.iter().map(|r| u64::from(r.quantity)).sum()
    }
}
