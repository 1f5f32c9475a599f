#![doc = include_str!("../README.md")]

mod codec;
mod config;
mod consumer;
mod context;
mod drain;
mod error;
mod queue;
#[cfg(feature = "testkit")]
pub mod testkit;
mod topics;

pub use config::KafkaConfig;
pub use queue::KafkaOrderQueue;

/// The client this crate is built on, so users need not pick a second version of it.
pub use rdkafka;
