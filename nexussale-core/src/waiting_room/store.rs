//! [`WaitingRoomStore`]: where a sale's waiting line, its passes and their counts are held.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::ticket::{Ticket, TicketId};
use crate::error::Result;
use crate::ident::{Sku, UserId};
use crate::sale::Sale;

/// A shared, type-erased [`WaitingRoomStore`].
pub type DynWaitingRoomStore = Arc<dyn WaitingRoomStore>;

/// Holds the waiting rooms of sales that have one ([`Sale::waiting_room`]): the line, the passes
/// handed out, and the counts admission is decided on.
///
/// # Contract
///
/// Every implementation owes these guarantees; [`testkit`](crate#features) checks them. Each
/// method is one atomic step (for a remote store: one round trip) across every process that
/// shares the store.
///
/// - **One ticket per buyer.** [`join`](Self::join) by a buyer who holds a ticket of the sale
///   answers that ticket, in whatever standing it has.
/// - **A fair draw.** Tickets joined before the sale's `starts_at` are placed in a uniformly
///   random order among themselves, whatever the order they joined in; tickets joined at or after
///   it queue behind all of those, in the order they joined. A lapsed pass's ticket queues again
///   at the back.
/// - **The ceiling.** After [`admit`](Self::admit), the passes outstanding (admitted, neither
///   used nor lapsed) never exceed [`WaitingRoom::pass_ceiling`] of the units the request says
///   are available, less the passes used but not settled before the caller read those units
///   ([`AdmitRequest`]). Admission takes tickets from the front of the line.
/// - **Numbered admissions.** Each admission's [`PassGrant::nonce`](super::PassGrant::nonce) is
///   the room's admission count once it is made: 1, 2, 3, … in the order tickets were admitted.
/// - **Exactly once.** [`use_pass`](Self::use_pass) succeeds at most once per admission, only
///   with that admission's nonce and before its expiry; [`give_back`](Self::give_back) undoes a
///   use whose purchase failed, at most once.
/// - **Lapse.** [`admit`](Self::admit) first sends every pass expired at `now` back to the line
///   (at the back) and counts it lapsed.
/// - **Closing.** After [`close`](Self::close) no ticket is admitted again, every waiting ticket
///   and every later join stands [`Standing::SoldOut`](super::Standing::SoldOut); passes
///   already out stay valid until used or lapsed.
/// - **Time comes from the caller**, as for the [`StockStore`](crate::StockStore).
///
/// A room comes into being with its first join; a sku no one joined has an empty, open room.
///
/// # Example
///
/// ```
/// use nexussale_core::memory::MemoryWaitingRoomStore;
/// use nexussale_core::{AdmitRequest, PassUse, Sale, Sku, Standing, UserId, WaitingRoom, WaitingRoomStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> nexussale_core::Result<()> {
/// let store = MemoryWaitingRoomStore::new();
/// let sale = Sale::new(Sku::new("ps5")?, 1).with_waiting_room(WaitingRoom::default());
/// let now = chrono::Utc::now();
/// let ann = store.join(&sale, &UserId::new("ann")?, now).await?;
/// let bob = store.join(&sale, &UserId::new("bob")?, now).await?;
/// // One unit available: one pass.
/// let admission = store.admit(&sale, &AdmitRequest { available: 1, settled_before: 0, now, max: 100 }).await?;
/// assert_eq!(admission.admitted, 1);
/// let Some(ticket) = store.ticket(&sale.sku, &ann.id, now).await? else { unreachable!() };
/// let Standing::Admitted(pass) = ticket.standing else { panic!("ann is first") };
/// assert_eq!(store.use_pass(&sale.sku, &ann.id, pass.nonce, now).await?, PassUse::Used);
/// assert_eq!(store.use_pass(&sale.sku, &ann.id, pass.nonce, now).await?, PassUse::AlreadyUsed);
/// assert!(matches!(store.ticket(&sale.sku, &bob.id, now).await?.unwrap().standing, Standing::Waiting { ahead: Some(0) }));
/// # Ok(()) }
/// ```
///
/// [`Sale::waiting_room`]: crate::Sale::waiting_room
/// [`WaitingRoom::pass_ceiling`]: crate::WaitingRoom::pass_ceiling
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait WaitingRoomStore: Send + Sync + Debug + 'static {
    /// `user`'s ticket for `sale`: a new one in line, or the one it has.
    async fn join(&self, sale: &Sale, user: &UserId, now: DateTime<Utc>) -> Result<Ticket>;

    /// A ticket, if it exists.
    async fn ticket(&self, sku: &Sku, id: &TicketId, now: DateTime<Utc>) -> Result<Option<Ticket>>;

    /// Lapses the passes expired at `request.now`, then admits tickets from the front of the line
    /// up to the ceiling (see the contract), at most `request.max`.
    async fn admit(&self, sale: &Sale, request: &AdmitRequest) -> Result<Admission>;

    /// Uses the pass `nonce` of ticket `id` for one purchase (see the contract).
    async fn use_pass(
        &self,
        sku: &Sku,
        id: &TicketId,
        nonce: u64,
        now: DateTime<Utc>,
    ) -> Result<PassUse>;

    /// The purchase a used pass was for failed before it held anything (a backend error): the
    /// pass is valid again, with its expiry unchanged. `false` when it was not in use.
    async fn give_back(&self, sku: &Sku, id: &TicketId, nonce: u64) -> Result<bool>;

    /// The purchase of a used pass has finished (whatever its answer): its units, if it took any,
    /// are out of what the stock store reports as available.
    async fn settle(&self, sku: &Sku) -> Result<()>;

    /// Closes the room: the sale has nothing left to sell. `false` when it was closed already.
    async fn close(&self, sku: &Sku) -> Result<bool>;

    /// The room's counts.
    async fn status(&self, sku: &Sku) -> Result<RoomStatus>;

    /// The key passes are signed with, shared by every process of the store: the one stored, or
    /// `candidate` when none was (it is stored then).
    async fn pass_key(&self, candidate: &[u8]) -> Result<Vec<u8>>;
}

/// What [`WaitingRoomStore::admit`] is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmitRequest {
    /// Units the stock store reported available.
    pub available: u64,
    /// [`RoomStatus::settled`] read *before* those units: every pass used since and not settled
    /// by then may have taken units the report still counts, so the store takes them off.
    pub settled_before: u64,
    /// The instant passes lapse at and new ones count from.
    pub now: DateTime<Utc>,
    /// The most tickets to admit in this step.
    pub max: u64,
}

/// What one [`WaitingRoomStore::admit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Admission {
    /// Tickets admitted.
    pub admitted: u64,
    /// Passes lapsed and sent back to the line.
    pub lapsed: u64,
    /// Passes outstanding after it.
    pub outstanding: u64,
    /// Tickets waiting after it.
    pub waiting: u64,
}

/// A room's counts ([`WaitingRoomStore::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoomStatus {
    /// Tickets in line.
    pub waiting: u64,
    /// Passes admitted and neither used nor lapsed (some may be past their expiry until the next
    /// admit).
    pub outstanding: u64,
    /// Tickets ever admitted.
    pub admitted: u64,
    /// Passes ever lapsed.
    pub lapsed: u64,
    /// Passes ever used (less those given back).
    pub used: u64,
    /// Used passes whose purchase finished.
    pub settled: u64,
    /// Tickets ever issued.
    pub joined: u64,
    /// Whether the room closed sold out.
    pub closed: bool,
}

/// The answer to [`WaitingRoomStore::use_pass`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassUse {
    /// The pass is used: buy now.
    Used,
    /// The pass was used before.
    AlreadyUsed,
    /// The ticket holds no such pass (waiting, another admission's nonce, unknown ticket).
    NotAdmitted,
    /// The pass is past its expiry.
    Expired,
}

macro_rules! forward_waiting_room_store {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<T: WaitingRoomStore + ?Sized> WaitingRoomStore for $ty {
            async fn join(&self, sale: &Sale, user: &UserId, now: DateTime<Utc>) -> Result<Ticket> {
                (**self).join(sale, user, now).await
            }
            async fn ticket(&self, sku: &Sku, id: &TicketId, now: DateTime<Utc>) -> Result<Option<Ticket>> {
                (**self).ticket(sku, id, now).await
            }
            async fn admit(&self, sale: &Sale, request: &AdmitRequest) -> Result<Admission> {
                (**self).admit(sale, request).await
            }
            async fn use_pass(&self, sku: &Sku, id: &TicketId, nonce: u64, now: DateTime<Utc>) -> Result<PassUse> {
                (**self).use_pass(sku, id, nonce, now).await
            }
            async fn give_back(&self, sku: &Sku, id: &TicketId, nonce: u64) -> Result<bool> {
                (**self).give_back(sku, id, nonce).await
            }
            async fn settle(&self, sku: &Sku) -> Result<()> {
                (**self).settle(sku).await
            }
            async fn close(&self, sku: &Sku) -> Result<bool> {
                (**self).close(sku).await
            }
            async fn status(&self, sku: &Sku) -> Result<RoomStatus> {
                (**self).status(sku).await
            }
            async fn pass_key(&self, candidate: &[u8]) -> Result<Vec<u8>> {
                (**self).pass_key(candidate).await
            }
        }
    )*};
}

forward_waiting_room_store!(Arc<T>, Box<T>);
