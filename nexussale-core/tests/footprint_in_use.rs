//! What a small sale in use costs in memory: its tables are sized for its stock.
//! Its own test binary, so no other test's allocations land in the measure; Linux.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

#[path = "support/resident.rs"]
mod support;

use nexussale_core::memory::MemoryStockStore;
use nexussale_core::{Sale, Sku, StockStore};
use support::{reserve_one, resident};

/// 20,000 small sales (stock 12) with one reservation each: at most 8 KB each (~3 KB
/// measured). A sale's tables
/// are sharded for its stock; before, each took 64 padded shards of reservations, 16 of expiries
/// and DashMap's default (four per core) for its buyers from its first purchase, ~30 KB on this
/// machine's 2 cores (100,000 such sales: 3.8 GB).
#[test]
fn a_small_sale_in_use_costs_what_its_stock_needs() {
    let buyer = nexussale_core::UserId::new("buyer").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = MemoryStockStore::new();
    let sales: Vec<Sale> = (0..20_000)
        .map(|n| Sale::new(Sku::new(format!("small-{n:05}")).unwrap(), 12))
        .collect();
    for sale in &sales {
        assert!(runtime.block_on(store.create_sale(sale)).unwrap());
    }
    let before = resident();
    for sale in &sales {
        reserve_one(&runtime, &store, &sale.sku, &buyer);
    }
    let per_sale = resident().saturating_sub(before) / sales.len() as u64;
    println!("a small sale in use holds about {per_sale} bytes more than idle");
    assert!(
        per_sale <= 8_192,
        "a small sale in use holds about {per_sale} bytes more than idle"
    );
}
