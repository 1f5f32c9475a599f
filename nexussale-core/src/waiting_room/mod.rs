//! Waiting rooms: a sale's line of buyers, admitted as its units allow.
//!
//! A sale with a [`WaitingRoom`] takes purchases only with a pass: buyers join the line
//! ([`FlashSale::join`](crate::FlashSale::join)), those who joined before the opening in a
//! random order drawn then, later ones behind them; the engine's admission step
//! ([`FlashSale::admit`](crate::FlashSale::admit)) hands out passes as units allow and closes the
//! line the moment nothing is left to sell. The state lives in a [`WaitingRoomStore`] (memory
//! or Redis), shared by every front end of the sale.

mod config;
mod pass;
mod proof;
mod store;
mod ticket;

pub use config::{
    DEFAULT_PASS_TTL, MAX_OVERBOOK, MAX_PASS_TTL, MAX_PROOF_OF_WORK_BITS, Overbook, WaitingRoom,
};
pub use pass::{MIN_PASS_KEY_LEN, PassRefusal, PassSigner, VerifiedPass};
pub use proof::{MAX_NONCE_LEN, proof_of_work_holds};
#[cfg(any(test, feature = "mock"))]
pub use store::MockWaitingRoomStore;
pub use store::{
    Admission, AdmitRequest, DynWaitingRoomStore, PassUse, RoomStatus, WaitingRoomStore,
};
pub use ticket::{PassGrant, Standing, Ticket, TicketId};
