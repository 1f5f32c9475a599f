//! Reservations kept in per-millisecond buckets (`src/lua/records.lua`): what only this layout
//! has to prove beyond the kit. On the real Redis (`NEXUSSALE_REDIS_URL`), each test under a
//! prefix of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use nexussale_core::testkit::services::{redis_url, unavailable};
use nexussale_core::testkit::{unique_name, unique_sku};
use nexussale_core::{OrderId, ReserveOutcome, ReserveRequest, Sale, StockStore, UserId};
use nexussale_redis::{RedisConfig, RedisStockStore};

async fn connect() -> Option<RedisStockStore> {
    let config = RedisConfig::default().prefix(unique_name("buckets-"));
    match RedisStockStore::connect_with(&redis_url(), config).await {
        Ok(store) if store.ping().await.is_ok() => Some(store),
        Ok(_) => unavailable("redis", redis_url()),
        Err(err) => unavailable("redis", format!("{}: {err}", redis_url())),
    }
}

/// An order id in bucket `ms` (its first 48 bits), unique otherwise.
fn id_in(ms: u64) -> OrderId {
    let mut bytes = *OrderId::new().as_uuid().as_bytes();
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    OrderId::from(uuid::Uuid::from_bytes(bytes))
}

async fn reserve(
    store: &RedisStockStore,
    sale: &Sale,
    user: String,
    id: OrderId,
    now: DateTime<Utc>,
) {
    let request = ReserveRequest {
        order_id: id,
        sku: sale.sku.clone(),
        user: UserId::new(user).unwrap(),
        quantity: 1,
        idempotency_key: None,
        remark: None,
        now,
    };
    let outcome = store.reserve(&request).await.unwrap();
    assert!(
        matches!(outcome, ReserveOutcome::Reserved { .. }),
        "{outcome:?}"
    );
}

/// A bucket is scored by its soonest expiry but may hold much later ones: a listing that has
/// `limit` reservations from the first buckets still reads on while a bucket further on may
/// hold one sooner than those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_answers_the_soonest_across_buckets() {
    let Some(store) = connect().await else {
        return;
    };
    let sale = Sale::new(unique_sku(), 100).with_reservation_ttl(Duration::from_secs(60));
    store.create_sale(&sale).await.unwrap();
    let t0 = Utc::now();
    let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
    // Bucket i holds one reservation made at i s and one at 1000 - i s.
    let mut soon = Vec::new();
    for i in 1..=40 {
        let (early, late) = (id_in(1_000 + i), id_in(1_000 + i));
        reserve(&store, &sale, format!("a-{i}"), early, at(i as i64)).await;
        reserve(&store, &sale, format!("b-{i}"), late, at(1_000 - i as i64)).await;
        soon.push(early);
    }
    let ids = |found: Vec<nexussale_core::Reservation>| {
        found.into_iter().map(|r| r.order_id).collect::<Vec<_>>()
    };
    let found = store.expired(&sale.sku, at(2_000), 40).await.unwrap();
    assert_eq!(ids(found), soon, "the 40 soonest, in order");
    let all = store.expired(&sale.sku, at(2_000), 100).await.unwrap();
    assert_eq!(all.len(), 80);
    assert!(all.windows(2).all(|w| w[0].expires_at <= w[1].expires_at));
    store.purge().await.unwrap();
}

/// Buckets whose reservations were all paid stay scored at their old expiry until the sweeper
/// reads them: a listing behind more of them than one call reads still reaches the held
/// reservations after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_reaches_past_buckets_of_paid_reservations() {
    let Some(store) = connect().await else {
        return;
    };
    let sale = Sale::new(unique_sku(), 6_000).with_reservation_ttl(Duration::from_secs(60));
    store.create_sale(&sale).await.unwrap();
    let t0 = Utc::now();
    let ids: Vec<OrderId> = (1..=6_000).map(id_in).collect();
    for (chunk, ids) in ids.chunks(500).enumerate() {
        join_all(
            ids.iter()
                .enumerate()
                .map(|(n, id)| reserve(&store, &sale, format!("u-{chunk}-{n}"), *id, t0)),
        )
        .await;
    }
    // All paid but the last ten, each alone in its bucket.
    let (paid, held) = ids.split_at(5_990);
    for chunk in paid.chunks(500) {
        join_all(chunk.iter().map(|id| async {
            store.confirm(&sale.sku, *id, t0).await.unwrap();
        }))
        .await;
    }
    let after = t0 + chrono::Duration::seconds(61);
    let found = store.expired(&sale.sku, after, 100).await.unwrap();
    let mut found: Vec<OrderId> = found.into_iter().map(|r| r.order_id).collect();
    found.sort_by_key(|id| id.as_uuid());
    assert_eq!(found, held, "the held ones behind 5,990 paid");
    store.purge().await.unwrap();
}
