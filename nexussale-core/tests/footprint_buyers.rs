//! What a buyer of a big sale costs the memory stock store.
//! Its own test binary, so no other test's allocations land in the measure; Linux.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

#[path = "support/resident.rs"]
mod support;

use nexussale_core::memory::MemoryStockStore;
use nexussale_core::{Sale, Sku, StockStore};
use support::{reserve_one, resident};

/// What the stock store keeps per buyer of a big sale: 200,000 distinct buyers with one
/// reservation each. Issue 22's target is at most 600 bytes a buyer with one order beyond the
/// order itself, for the embedded backends together: 300 here, 100 for the repository's
/// per-buyer index (`footprint_orders`).
#[test]
fn a_buyer_costs_the_stock_store_a_few_hundred_bytes() {
    use nexussale_core::UserId;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = MemoryStockStore::new();
    let buyers = 200_000;
    let sale = Sale::new(Sku::new("big").unwrap(), buyers);
    assert!(runtime.block_on(store.create_sale(&sale)).unwrap());
    let users: Vec<UserId> = (0..buyers)
        .map(|n| UserId::new(format!("user-{n}")).unwrap())
        .collect();
    let before = resident();
    for user in &users {
        reserve_one(&runtime, &store, &sale.sku, user);
    }
    let per_buyer = resident().saturating_sub(before) / buyers;
    println!("a buyer with one reservation holds about {per_buyer} bytes in the stock store");
    assert!(
        per_buyer <= 300,
        "a buyer with one reservation holds about {per_buyer} bytes in the stock store"
    );
}
