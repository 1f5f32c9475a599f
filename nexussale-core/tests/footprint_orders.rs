//! What a buyer costs the memory repository beyond their orders: the same orders held once by
//! as many buyers as orders and once by one buyer; the difference is the per-buyer index.
//! Its own test binary, so no other test's allocations land in the measure; Linux.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

#[path = "support/resident.rs"]
#[allow(dead_code)] // reserve_one: for the stock store's tests
mod support;

use nexussale_core::memory::MemoryOrderRepository;
use nexussale_core::testkit::fixtures::order;
use nexussale_core::{Order, OrderRepository, Sku};
use support::resident;

const ORDERS: usize = 200_000;

/// Resident bytes `orders` add to a new repository (inserted in batches, as the worker does).
fn held_by(runtime: &tokio::runtime::Runtime, orders: &[Order]) -> (MemoryOrderRepository, u64) {
    let repository = MemoryOrderRepository::new();
    let before = resident();
    for batch in orders.chunks(500) {
        runtime.block_on(repository.insert(batch)).unwrap();
    }
    (repository, resident().saturating_sub(before))
}

/// Issue 22's target is at most 600 bytes a buyer with one order beyond the order itself, for
/// the embedded backends together: the stock store's share is bounded in `footprint_buyers`
/// (300), the repository's per-buyer index here (100: ~40 measured; ~240 when each buyer had a
/// set of their own).
#[test]
fn a_buyer_costs_the_repository_little_beyond_their_orders() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sku = Sku::new("big").unwrap();
    let one_buyer: Vec<Order> = (0..ORDERS).map(|_| order(&sku, "user-0")).collect();
    let many_buyers: Vec<Order> = (0..ORDERS)
        .map(|n| order(&sku, &format!("user-{n}")))
        .collect();
    // The one-buyer repository first: what it frees on the way is not reused unseen by the
    // measure that matters (both stay alive until the end).
    let (_one, one_bytes) = held_by(&runtime, &one_buyer);
    let (_many, many_bytes) = held_by(&runtime, &many_buyers);
    let per_order = one_bytes / ORDERS as u64;
    let per_buyer = many_bytes.saturating_sub(one_bytes) / ORDERS as u64;
    println!(
        "an order holds about {per_order} bytes in the repository; a buyer with one order about {per_buyer} more"
    );
    assert!(
        per_buyer <= 100,
        "a buyer with one order holds about {per_buyer} bytes in the repository beyond the order"
    );
}
