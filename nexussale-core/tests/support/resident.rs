//! The process's resident set, for the footprint tests (each its own test binary: a test
//! measures the whole process, and memory another test freed would be reused unseen).

/// Resident bytes of this process (Linux, `/proc/self/statm`).
pub(crate) fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Reserves one unit of `sku` for `user` in `store`, on `runtime`; fails the test otherwise.
pub(crate) fn reserve_one(
    runtime: &tokio::runtime::Runtime,
    store: &nexussale_core::memory::MemoryStockStore,
    sku: &nexussale_core::Sku,
    user: &nexussale_core::UserId,
) {
    use nexussale_core::{OrderId, ReserveOutcome, ReserveRequest, StockStore};
    let request = ReserveRequest {
        order_id: OrderId::new(),
        sku: sku.clone(),
        user: user.clone(),
        quantity: 1,
        idempotency_key: None,
        remark: None,
        now: chrono::Utc::now(),
    };
    let outcome = runtime.block_on(store.reserve(&request)).unwrap();
    assert!(
        matches!(outcome, ReserveOutcome::Reserved { .. }),
        "{outcome:?}"
    );
}
