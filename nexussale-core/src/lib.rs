#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
mod engine;
mod error;
mod expiry;
mod ident;
pub mod layers;
mod lease;
pub mod memory;
pub mod meter;
mod order;
mod outage;
mod queue;
mod repository;
mod reservation;
mod sale;
mod sale_cache;
mod stock;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod timestamp;
pub mod trace;
mod waiting_room;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    AdmissionReport, EngineConfig, FlashSale, FlashSaleBuilder, MAX_REPORT_BUCKETS,
    PurchaseOutcome, PurchaseRequest, Receipt, ReconcileReport, SalePage, SaleQuery, SaleReport,
    SaleView, SweepReport, TicketState, TicketUpdates, TicketView,
};
pub use error::{BoxError, Error, Result};
pub use expiry::{ExpiredBatch, ExpiryCall};
pub use ident::{IdempotencyKey, MAX_IDENT_LEN, Sku, UserId};
pub use lease::RebuildLeases;
pub use order::{MAX_REMARK_LEN, Order, OrderEvent, OrderId, OrderStatus, validate_remark};
pub use outage::OutageLog;
pub use queue::{Delivery, DeliveryTag, DynOrderQueue, OrderQueue, QueueMark};
pub use repository::{
    DEFAULT_PAGE_SIZE, DynOrderRepository, MAX_PAGE_SIZE, MAX_TIMELINE_BUCKETS, OrderPage,
    OrderQuery, OrderRepository, StatusCounts, Tally, Timeline, TransitionOutcome,
};
pub use reservation::{
    ConfirmOutcome, ReleaseOutcome, ReleaseReason, Reservation, ReservationState, ReserveOutcome,
    ReserveRequest,
};
pub use sale::{
    DEFAULT_RESERVATION_TTL, MAX_PER_USER_LIMIT, MAX_RESERVATION_TTL, MAX_STOCK, Sale, SaleState,
    StockSnapshot,
};
pub use stock::{DEFAULT_SETTLED_RETENTION, DynStockStore, StockStore};
pub use waiting_room::{
    Admission, AdmitRequest, DEFAULT_PASS_TTL, DynWaitingRoomStore, MAX_NONCE_LEN, MAX_OVERBOOK,
    MAX_PASS_TTL, MAX_PROOF_OF_WORK_BITS, MIN_PASS_KEY_LEN, Overbook, PassGrant, PassRefusal,
    PassSigner, PassUse, RoomStatus, Standing, Ticket, TicketId, VerifiedPass, WaitingRoom,
    WaitingRoomStore, proof_of_work_holds,
};

#[cfg(any(test, feature = "mock"))]
pub use queue::MockOrderQueue;
#[cfg(any(test, feature = "mock"))]
pub use repository::MockOrderRepository;
#[cfg(any(test, feature = "mock"))]
pub use stock::MockStockStore;
#[cfg(any(test, feature = "mock"))]
pub use waiting_room::MockWaitingRoomStore;

/// The tokio-util token the worker and sweeper stop on.
pub use tokio_util::sync::CancellationToken;
