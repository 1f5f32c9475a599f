#![doc = include_str!("../README.md")]

mod config;
mod error;
mod repository;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use config::MySqlConfig;
pub use repository::{MySqlOrderRepository, ReportPlan};

/// The driver this crate is built on, so users need not pick a second version of it.
pub use sqlx;
