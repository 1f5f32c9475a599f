#![doc = include_str!("../README.md")]

mod coalesce;
mod config;
mod connection;
mod error;
mod keys;
mod record;
mod replicas;
mod sale_info;
mod scripts;
#[cfg(feature = "sentinel")]
mod sentinel;
mod stock;
#[cfg(feature = "testkit")]
pub mod testkit;
mod transfer;
mod waiting_room;

pub use config::{MAX_SHARDS, RedisConfig};
pub use stock::RedisStockStore;
pub use waiting_room::RedisWaitingRoomStore;

/// The driver this crate is built on, so users need not pick a second version of it.
pub use redis;
