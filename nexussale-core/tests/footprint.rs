//! What an idle sale costs in memory: the process's resident set grows by what 20,000 sales that
//! no one has bought from yet hold (a shop keeps hundreds of drops announced; each must cost
//! about its definition, not kilobytes of empty tables). Its own test binary, so no other test's
//! allocations land in the measure; Linux (`/proc/self/statm`).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use nexussale_core::memory::MemoryStockStore;
use nexussale_core::{Sale, Sku, StockStore};

/// Resident bytes of this process.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// 20,000 idle sales (stock 1,000 each) in the memory store: at most 2 KB each (~0.7 KB
/// measured). Before their tables were made on first use, each held ~345 KB (presized for its
/// stock); with the tables made lazily but inline, ~11 KB (their padded locks).
#[test]
fn an_idle_sale_costs_its_definition_not_its_tables() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = MemoryStockStore::new();
    let sales: Vec<Sale> = (0..20_000)
        .map(|n| Sale::new(Sku::new(format!("idle-{n:05}")).unwrap(), 1_000))
        .collect();
    let before = resident();
    for sale in &sales {
        assert!(runtime.block_on(store.create_sale(sale)).unwrap());
    }
    let per_sale = resident().saturating_sub(before) / sales.len() as u64;
    println!("an idle sale holds about {per_sale} bytes");
    assert!(
        per_sale <= 2_048,
        "an idle sale holds about {per_sale} bytes"
    );
}
