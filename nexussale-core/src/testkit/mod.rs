//! The conformance kit: what every backend must pass (feature `testkit`).
//!
//! Each case is a plain `pub async fn` taking the backend under test, with its own random sku /
//! key space, so cases run in parallel against one shared server. A backend crate runs them all
//! with one macro line per trait, which writes one named `#[tokio::test]` per case (the crate
//! needs `tokio` with `macros` and `rt-multi-thread` as a dev-dependency):
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use nexussale_core::{memory::MemoryStockStore, DynStockStore};
//!
//! // `None` skips the case. A real backend connects here (to
//! // `testkit::services::redis_url()`, say) and, when it cannot, answers
//! // `testkit::services::unavailable("redis", err)`: that prints why and skips, or fails under
//! // NEXUSSALE_REQUIRE_SERVICES=1.
//! async fn setup() -> Option<DynStockStore> {
//!     Some(Arc::new(MemoryStockStore::new()))
//! }
//!
//! nexussale_core::stock_store_tests!(setup);
//! # fn main() {}
//! ```
//!
//! The same goes for `order_queue_tests!` (whose setup returns a [`QueueOpener`]: every call opens
//! another handle on one queue, as another process of one consumer group would) and
//! `order_repository_tests!`. [`engine::purchase_flow`] runs the whole engine over three backends.
//!
//! A backend that leaves state behind (keys, a database) hands out its backend wrapped in a
//! [`Teardown`] hook, which removes it when the case drops the backend, also when the case fails.
//!
//! The in-memory backends run every case in this crate's own tests.
//!
//! # Stability
//!
//! Stable (semver once published): the three macros and the names of the cases they write,
//! [`QueueOpener`], [`fixtures`], [`Teardown`], [`unique_name`] / [`unique_sku`] and
//! [`services`]. A minor version may add cases, or make a case check more of a trait's
//! `# Contract` — a backend that met the contract still passes; one that did not may start to
//! fail, which is the kit's purpose. The case functions' bodies are not API.
//!
//! Not stable, behind feature `testkit-tools` so a backend's tests do not compile them: `proxy`
//! (a TCP proxy that fails on command, for fault tests) and `bench` (this repository's benchmark
//! helpers).

// The kit is test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "testkit-tools")]
pub mod bench;
pub mod engine;
pub mod fixtures;
#[cfg(feature = "testkit-tools")]
pub mod proxy;
pub mod queue;
pub mod repository;
#[cfg(feature = "testkit-tools")]
pub mod servers;
pub mod services;
pub mod stock;
mod teardown;
pub mod waiting_room;

use std::sync::Arc;

use futures::future::BoxFuture;
use rand::Rng;

use crate::ident::Sku;
use crate::queue::DynOrderQueue;

pub use teardown::{Teardown, TornDown};

/// Opens a handle on the queue under test; each handle is another consumer of one group.
pub type QueueOpener = Arc<dyn Fn() -> BoxFuture<'static, DynOrderQueue> + Send + Sync>;

/// `prefix` followed by 12 random hex digits: a name no other test run uses.
pub fn unique_name(prefix: &str) -> String {
    let n: u64 = rand::thread_rng().r#gen();
    format!("{prefix}{:012x}", n & 0xffff_ffff_ffff)
}

/// A sku no other test uses.
pub fn unique_sku() -> Sku {
    // The prefix and 12 hex digits are always a valid sku.
    Sku::new(unique_name("kit-")).expect("generated skus are valid")
}

#[doc(hidden)]
#[macro_export]
macro_rules! __testkit_cases {
    ($module:ident, $setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(backend) = $setup().await else { return };
                $crate::testkit::$module::$case(backend).await;
            }
        )*
    };
}

/// One `#[tokio::test]` per [`stock`] case, each on a backend from `$setup`
/// (`async fn() -> Option<DynStockStore>`).
///
/// A store whose `remaining` counts are only bounds (a sharded one) says so:
/// `stock_store_tests!(setup, remaining = Bounded)` (see [`stock::Remaining`]).
#[macro_export]
macro_rules! stock_store_tests {
    ($setup:path) => {
        $crate::stock_store_tests!($setup, remaining = Exact);
    };
    ($setup:path, remaining = $counting:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn no_oversell_under_contention() {
            let Some(backend) = $setup().await else {
                return;
            };
            $crate::testkit::stock::no_oversell_with(
                backend,
                $crate::testkit::stock::Remaining::$counting,
            )
            .await;
        }
        $crate::__stock_cases!(__testkit_cases!(stock, $setup));
    };
}

/// Awaits `$crate::testkit::$module::$case(Arc::clone(&$store))` for each case, in turn.
#[doc(hidden)]
#[macro_export]
macro_rules! __run_cases {
    ($module:ident, $store:expr; $($case:ident),* $(,)?) => {
        $(
            $crate::testkit::$module::$case(::std::sync::Arc::clone(&$store)).await;
        )*
    };
}

/// Calls `$callback!($args; <every stock case but no_oversell_under_contention>)`: the one list
/// of them, for `stock_store_tests!` and [`stock::run_all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __stock_cases {
    ($callback:ident!($($args:tt)*)) => {
        $crate::$callback!($($args)*;
            creates_a_sale_once,
            unknown_sale_is_an_error,
            per_user_limit_holds_under_concurrency,
            idempotency_key_answers_the_earlier_reservation,
            aborted_reservation_frees_its_key,
            reservation_by_key_finds_what_a_key_made,
            release_is_exactly_once_under_concurrency,
            confirm_is_exactly_once_and_final,
            confirm_after_release_is_refused,
            confirm_after_expiry_is_refused,
            expiry_is_indexed_by_instant,
            expire_releases_due_reservations_once,
            expire_releases_each_reservation_once_under_concurrency,
            due_sales_follow_held_reservations,
            due_index_keeps_reservations_made_during_sweeps,
            release_many_answers_each_in_order,
            sale_window_is_enforced,
            end_sale_refuses_from_then_on,
            restore_rebuilds_from_orders,
            a_large_restore_keeps_every_order,
            rebuild_lock_admits_one_holder,
            conservation_under_mixed_load,
            store_keeps_sale_windows_exactly,
        );
    };
}

/// One `#[tokio::test]` per [`queue`] case, each on a [`QueueOpener`] from `$setup`
/// (`async fn() -> Option<QueueOpener>`).
#[macro_export]
macro_rules! order_queue_tests {
    ($setup:path) => {
        $crate::__testkit_cases!(queue, $setup;
            delivers_every_published_event,
            keeps_publish_order_per_sku,
            redelivers_nacked_events,
            redelivers_after_consumer_loss,
            concurrent_publishers_lose_nothing,
            drained_waits_for_every_event_published_before_the_mark,
        );
    };
}

/// One `#[tokio::test]` per [`repository`] case, each on a backend from `$setup`
/// (`async fn() -> Option<DynOrderRepository>`).
#[macro_export]
macro_rules! order_repository_tests {
    ($setup:path) => {
        $crate::__testkit_cases!(repository, $setup;
            saves_a_sale_once,
            sales_are_paged_in_sku_order,
            end_sale_moves_the_end_earlier_only,
            insert_is_idempotent,
            concurrent_inserts_store_each_order_once,
            pagination_has_no_gap_or_repeat,
            order_cuts_cut_a_sale_into_even_runs,
            page_size_is_capped,
            transition_is_compare_and_set,
            transition_many_answers_each_order,
            transition_racing_the_insert_never_mismatches_its_own_from,
            counts_follow_statuses,
            timeline_spreads_a_sales_orders_over_time,
            refusals_add_up_by_reason,
            repository_keeps_sale_windows_exactly,
        );
    };
}

/// One `#[tokio::test]` per [`waiting_room`] case, each on a backend from `$setup`
/// (`async fn() -> Option<DynWaitingRoomStore>`).
#[macro_export]
macro_rules! waiting_room_store_tests {
    ($setup:path) => {
        $crate::__testkit_cases!(waiting_room, $setup;
            one_ticket_per_buyer,
            the_draw_at_the_opening_is_random,
            passes_never_exceed_the_ceiling_under_concurrency,
            a_pass_is_used_exactly_once,
            a_lapsed_pass_admits_the_next_buyer,
            passes_in_flight_are_kept_off_the_ceiling,
            closing_turns_the_line_sold_out,
            the_pass_key_is_shared,
        );
    };
}

/// A sale window: when purchases open and close (`None`: now, never).
pub type Window = (
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// Sale windows at the edges of what the API accepts ([`Sale::validate`](crate::Sale::validate)):
/// the range's ends, microseconds, instants past 2038 (where a 32-bit TIMESTAMP stops) and an
/// open end. Every backend must hand each back unchanged.
pub fn edge_windows() -> Vec<Window> {
    let at = |text: &str| {
        Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|at| at.with_timezone(&chrono::Utc))
                .unwrap_or_else(|err| panic!("{text}: {err}")),
        )
    };
    vec![
        (
            at("1970-01-01T00:00:00Z"),
            at("9999-12-31T23:59:59.999999Z"),
        ),
        (
            at("2040-01-01T00:00:00.123456Z"),
            at("2040-01-01T00:00:00.123457Z"),
        ),
        (at("2038-01-19T03:14:08Z"), None),
        (None, at("1970-01-01T00:00:00.000001Z")),
        (
            at("2026-12-02T13:45:07.654321+05:30"),
            at("3000-06-30T23:59:59.5Z"),
        ),
    ]
}
