//! Unicode, SQL and Redis metacharacters in every text field, through the server into Redis keys
//! and MySQL rows and back: each value is stored and read back byte for byte, never interpreted
//! (no injection, no key-pattern match, no hash-tag surprise), and values that differ only in case
//! or accents stay different buyers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::sync::Arc;

use common::call;
use http::{Method, StatusCode};
use nexussale_core::FlashSale;
use nexussale_core::memory::MemoryOrderQueue;
use nexussale_core::testkit::services::{redis_url, unavailable};
use nexussale_core::testkit::unique_name;
use nexussale_redis::{RedisConfig, RedisStockStore};
use nexussale_server::app;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;

const HOSTILE: &[&str] = &[
    "'; DROP TABLE orders; --",
    "Robert'); DELETE FROM sales; --",
    "\" OR \"1\"=\"1",
    "\\'\\\\%_",
    "`backtick` $1 ?",
    "{hash-tag}",
    "*:*",
    "ps5:stock",
    "🎮 ps5 名前",
    "\u{202e}txt.exe",
    "a/b?c#d%2F..%00",
    "ünïcödé",
    "UNICODE",
    "unicode",
];

fn pct(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metacharacters_in_every_field_round_trip_through_redis_and_mysql() {
    let url = redis_url();
    let prefix = unique_name("nexussale-hostile-");
    let stock =
        match RedisStockStore::connect_with(&url, RedisConfig::default().prefix(&*prefix)).await {
            Ok(store) if store.ping().await.is_ok() => store,
            _ => return unavailable::<()>("redis", &url).unwrap_or(()),
        };
    let Some((repository, database)) = common::fresh_repository().await else {
        return;
    };
    let store = Arc::new(stock);
    let engine = FlashSale::new(
        store.clone(),
        Arc::new(MemoryOrderQueue::new()),
        Arc::new(repository.clone()),
    );
    let app = app(engine.clone());

    for (i, text) in HOSTILE.iter().enumerate() {
        let sku = *text;
        let (status, body) = call(
            &app,
            Method::POST,
            "/v1/sales",
            Some(json!({ "sku": sku, "stock": 2 })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{sku:?}: {body}");
        let (status, body) =
            call(&app, Method::GET, &format!("/v1/sales/{}", pct(sku)), None).await;
        assert_eq!(
            (status, body["sku"].as_str()),
            (StatusCode::OK, Some(sku)),
            "{body}"
        );

        // Every hostile text as the buyer and the key, on every sale; twice, which must be one
        // order.
        let purchase = format!("/v1/sales/{}/purchase", pct(sku));
        let order = json!({ "user": text, "idempotency_key": text });
        let (status, first) = call(&app, Method::POST, &purchase, Some(order.clone())).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{text:?}: {first}");
        let (status, again) = call(&app, Method::POST, &purchase, Some(order)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{text:?}: {again}");
        assert_eq!(first["order_id"], again["order_id"]);
        // The original API, with the text as remark too.
        let (status, legacy) = call(
            &app,
            Method::POST,
            "/seckill/add",
            Some(json!({ "user": format!("{text}#{i}"), "goods": sku, "remark": text })),
        )
        .await;
        assert!(status.is_success(), "{text:?}: {legacy}");
    }
    engine.drain().await.unwrap();

    for text in HOSTILE {
        // Exactly this buyer's order: byte-for-byte comparison, so "unicode", "UNICODE" and
        // "ünïcödé" are three buyers.
        let uri = format!("/v1/orders?user={}", pct(text));
        let (status, page) = call(&app, Method::GET, &uri, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let orders = page["orders"].as_array().unwrap();
        assert_eq!(orders.len(), 1, "{text:?}: {page}");
        assert_eq!(orders[0]["user"].as_str(), Some(*text));
        assert_eq!(orders[0]["sku"].as_str(), Some(*text));
        let id = orders[0]["id"].as_str().unwrap();
        let (status, order) = call(&app, Method::GET, &format!("/v1/orders/{id}"), None).await;
        assert_eq!(
            (status, order["user"].as_str()),
            (StatusCode::OK, Some(*text))
        );
        // Each sale: its two orders and nothing else's.
        let uri = format!("/v1/orders?sku={}", pct(text));
        let (_, page) = call(&app, Method::GET, &uri, None).await;
        assert_eq!(
            page["orders"].as_array().unwrap().len(),
            2,
            "{text:?}: {page}"
        );
        let (_, sale) = call(&app, Method::GET, &format!("/v1/sales/{}", pct(text)), None).await;
        assert_eq!(
            (&sale["available"], &sale["reserved"]),
            (&json!(0), &json!(2))
        );
    }
    // Nothing was dropped or deleted along the way.
    let tables: Vec<(String,)> = nexussale_mysql::sqlx::query_as(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{database}' \
         ORDER BY table_name"
    ))
    .fetch_all(repository.pool())
    .await
    .unwrap();
    let tables: Vec<&str> = tables.iter().map(|(name,)| name.as_str()).collect();
    assert!(
        tables.contains(&"orders") && tables.contains(&"sales"),
        "{tables:?}"
    );
    let (sales,): (i64,) =
        nexussale_mysql::sqlx::query_as(&format!("SELECT COUNT(*) FROM `{database}`.sales"))
            .fetch_one(repository.pool())
            .await
            .unwrap();
    assert_eq!(sales, HOSTILE.len() as i64);

    common::drop_database(repository.pool(), &database).await;
    assert_eq!(store.purge().await.unwrap(), HOSTILE.len());
}
