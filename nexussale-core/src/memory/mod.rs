//! In-memory backends: the embedded default, and the reference behaviour every backend must match.
//!
//! They are real implementations, not fakes: concurrent, bounded, and held to the same
//! [conformance kit](crate#features) as Redis, Kafka and MySQL. What they cannot give is
//! durability beyond the process.

mod due;
mod order_ids;
mod padded;
mod queue;
mod repository;
mod reservations;
mod stock;
mod waiting_room;

pub use queue::{DEFAULT_CAPACITY, DEFAULT_REDELIVERY_TIMEOUT, MemoryOrderQueue};
pub use repository::MemoryOrderRepository;
pub use stock::MemoryStockStore;
pub use waiting_room::MemoryWaitingRoomStore;
