//! Every route and error code through `nexussale_server::app(...)` on the in-memory backends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use bytes::Bytes;
use common::{call, call_raw, request};
use http::{Method, StatusCode};
use http_body_util::Full;
use nexussale_core::FlashSale;
use std::sync::Arc;

use hyper::service::Service;
use nexussale_server::{App, AppState, MAX_BODY_BYTES, Probe, RateLimiter, app, app_with};
use serde_json::{Value, json};

async fn with_sale(stock: u64, limit: u32) -> (App, FlashSale) {
    let engine = FlashSale::in_memory();
    let app = app(engine.clone());
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/sales",
        Some(json!({"sku": "ps5", "stock": stock, "per_user_limit": limit})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (app, engine)
}

async fn purchase(app: &App, user: &str) -> (StatusCode, Value) {
    call(
        app,
        Method::POST,
        "/v1/sales/ps5/purchase",
        Some(json!({ "user": user })),
    )
    .await
}

#[tokio::test]
async fn health_answers_ok() {
    let app = app(FlashSale::in_memory());
    assert_eq!(
        call(&app, Method::GET, "/health", None).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn sales_are_created_once_and_read_back() {
    let (app, _) = with_sale(100, 2).await;
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/sales",
        Some(json!({"sku": "ps5", "stock": 5})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("sale_exists"))
    );
    let (status, sale) = call(&app, Method::GET, "/v1/sales/ps5", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sale,
        json!({"sku": "ps5", "stock": 100, "available": 100, "reserved": 0, "sold": 0, "per_user_limit": 2,
               "starts_at": null, "ends_at": null, "reservation_ttl_secs": 900, "state": "active"})
    );
    let (status, all) = call(&app, Method::GET, "/v1/sales", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["sales"].as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(all["next"], Value::Null);
    let (status, body) = call(&app, Method::GET, "/v1/sales/xbox", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_sale"))
    );
}

#[tokio::test]
async fn sale_windows_and_ttl_are_accepted_and_shown() {
    let app = app(FlashSale::in_memory());
    let (status, sale) = call(
        &app,
        Method::POST,
        "/v1/sales",
        Some(json!({"sku": "later", "stock": 3, "starts_at": "2999-01-01T00:00:00Z", "reservation_ttl_secs": 60})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sale}");
    assert_eq!(
        (
            sale["state"].as_str(),
            sale["reservation_ttl_secs"].as_u64()
        ),
        (Some("upcoming"), Some(60))
    );
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/sales/later/purchase",
        Some(json!({"user": "ann"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("sale_not_active"))
    );
}

#[tokio::test]
async fn bad_sales_are_refused_with_400() {
    let app = app(FlashSale::in_memory());
    let long = "x".repeat(10_000);
    for body in [
        json!({"sku": "", "stock": 1}),
        json!({"sku": long, "stock": 1}),
        json!({"sku": "a\u{0007}b", "stock": 1}),
        json!({"sku": "a", "stock": 0}),
        json!({"sku": "a", "stock": -1}),
        json!({"sku": "a", "stock": 1e30}),
        json!({"sku": "a", "stock": 1, "per_user_limit": 0}),
        json!({"sku": "a", "stock": 1, "reservation_ttl_secs": 0}),
        json!({"sku": "a", "stock": 1, "starts_at": "yesterday"}),
        json!({"sku": "a", "stock": 1, "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}),
        json!({"stock": 1}),
        json!([]),
    ] {
        let (status, error) = call(&app, Method::POST, "/v1/sales", Some(body.clone())).await;
        assert_eq!(
            (status, error["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn purchases_answer_202_then_sold_out_or_limit_exceeded() {
    let (app, _) = with_sale(2, 1).await;
    let (status, first) = purchase(&app, "ann").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(
        (first["sku"].as_str(), first["user"].as_str()),
        (Some("ps5"), Some("ann"))
    );
    assert_eq!(
        (
            first["quantity"].as_u64(),
            first["status"].as_str(),
            first["remaining"].as_u64()
        ),
        (Some(1), Some("pending"), Some(1))
    );
    assert!(first["order_id"].is_string() && first["expires_at"].is_string());
    let (status, body) = purchase(&app, "ann").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("limit_exceeded"))
    );
    assert_eq!(purchase(&app, "bob").await.0, StatusCode::ACCEPTED);
    let (status, body) = purchase(&app, "cy").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("sold_out"))
    );
    let (_, sale) = call(&app, Method::GET, "/v1/sales/ps5", None).await;
    assert_eq!(
        (
            sale["available"].as_u64(),
            sale["reserved"].as_u64(),
            sale["state"].as_str()
        ),
        (Some(0), Some(2), Some("sold_out"))
    );
}

#[tokio::test]
async fn bad_purchases_get_4xx_and_hold_nothing() {
    let (app, _) = with_sale(10, 3).await;
    let long = "x".repeat(10_000);
    let cases = [
        (
            "/v1/sales/ps5/purchase".to_owned(),
            r#"{"user": ""}"#.to_owned(),
            "invalid_request",
        ),
        (
            "/v1/sales/ps5/purchase".into(),
            json!({"user": long}).to_string(),
            "invalid_request",
        ),
        (
            "/v1/sales/ps5/purchase".into(),
            r#"{"user": "ann", "quantity": 0}"#.into(),
            "invalid_request",
        ),
        (
            "/v1/sales/ps5/purchase".into(),
            r#"{"user": "ann", "quantity": -1}"#.into(),
            "invalid_request",
        ),
        (
            "/v1/sales/ps5/purchase".into(),
            r#"{"user": "ann", "quantity": 1000000000000}"#.into(),
            "invalid_request",
        ),
        (
            "/v1/sales/ps5/purchase".into(),
            r#"{"user": "ann", "quantity": "2"}"#.into(),
            "invalid_request",
        ),
        (
            "/v1/sales/ps5/purchase".into(),
            r#"{"user": "ann""#.into(),
            "invalid_request",
        ),
        (
            "/v1/sales/ps5/purchase".into(),
            "".into(),
            "invalid_request",
        ),
        (
            "/v1/sales/ps5/purchase".into(),
            r#"{"user": null}"#.into(),
            "invalid_request",
        ),
        (
            "/v1/sales/ps5/purchase".into(),
            r#"{"user": "ann", "quantity": 4}"#.into(),
            "limit_exceeded",
        ),
        (
            format!("/v1/sales/{long}/purchase"),
            r#"{"user": "ann"}"#.into(),
            "invalid_request",
        ),
        (
            "/v1/sales/%FF%FE/purchase".into(),
            r#"{"user": "ann"}"#.into(),
            "invalid_request",
        ),
        (
            "/v1/sales/nope/purchase".into(),
            r#"{"user": "ann"}"#.into(),
            "unknown_sale",
        ),
    ];
    for (uri, body, code) in cases {
        let request = request(Method::POST, &uri)
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let (status, error) = call_raw(&app, request).await;
        assert!(status.is_client_error(), "{uri} {body}: {status}");
        assert_eq!(error["error"].as_str(), Some(code), "{uri} {body}: {error}");
    }
    let huge = format!(
        r#"{{"user": "ann", "remark": "{}"}}"#,
        "x".repeat(MAX_BODY_BYTES)
    );
    let request = request(Method::POST, "/v1/sales/ps5/purchase")
        .body(Full::new(Bytes::from(huge)))
        .unwrap();
    let (status, error) = call_raw(&app, request).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    let (_, sale) = call(&app, Method::GET, "/v1/sales/ps5", None).await;
    assert_eq!(
        sale["available"].as_u64(),
        Some(10),
        "a refused purchase held units"
    );
}

#[tokio::test]
async fn the_same_idempotency_key_answers_the_same_order() {
    let (app, _) = with_sale(10, 5).await;
    let keyed = || {
        request(Method::POST, "/v1/sales/ps5/purchase")
            .header("Idempotency-Key", "cart-42")
            .body(Full::new(Bytes::from(r#"{"user": "ann"}"#)))
            .unwrap()
    };
    let (status, first) = call_raw(&app, keyed()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, again) = call_raw(&app, keyed()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(first["order_id"], again["order_id"]);
    let (status, in_body) = call(
        &app,
        Method::POST,
        "/v1/sales/ps5/purchase",
        Some(json!({"user": "ann", "idempotency_key": "cart-42"})),
    )
    .await;
    assert_eq!(
        (status, &in_body["order_id"]),
        (StatusCode::ACCEPTED, &first["order_id"])
    );
    let differing = request(Method::POST, "/v1/sales/ps5/purchase")
        .header("Idempotency-Key", "cart-42")
        .body(Full::new(Bytes::from(
            r#"{"user": "ann", "idempotency_key": "other"}"#,
        )))
        .unwrap();
    assert_eq!(call_raw(&app, differing).await.0, StatusCode::BAD_REQUEST);
    // The same key for another quantity or remark is another request: refused, not answered
    // with the first order as if it were this one.
    for other in [
        json!({"user": "ann", "quantity": 3, "idempotency_key": "cart-42"}),
        json!({"user": "ann", "remark": "gift", "idempotency_key": "cart-42"}),
    ] {
        let (status, body) = call(&app, Method::POST, "/v1/sales/ps5/purchase", Some(other)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"], "conflict", "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("this idempotency key was used with other parameters"),
            "{body}"
        );
    }
    let (_, sale) = call(&app, Method::GET, "/v1/sales/ps5", None).await;
    assert_eq!(sale["reserved"].as_u64(), Some(1));
}

#[tokio::test]
async fn orders_are_listed_paged_paid_and_cancelled() {
    let (app, engine) = with_sale(10, 1).await;
    let mut ids = Vec::new();
    for user in ["ann", "bob", "cy"] {
        let (_, body) = purchase(&app, user).await;
        ids.push(body["order_id"].as_str().unwrap().to_owned());
    }
    engine.drain().await.unwrap();

    let (status, page) = call(&app, Method::GET, "/v1/orders?sku=ps5&limit=2", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["orders"].as_array().unwrap().len(), 2);
    assert_eq!(
        page["orders"][0]["id"].as_str(),
        Some(ids[2].as_str()),
        "newest first"
    );
    let next = page["next"].as_str().unwrap();
    let (_, rest) = call(
        &app,
        Method::GET,
        &format!("/v1/orders?sku=ps5&limit=2&after={next}"),
        None,
    )
    .await;
    assert_eq!(rest["orders"].as_array().unwrap().len(), 1);
    assert!(rest["next"].is_null());
    let (_, by_user) = call(&app, Method::GET, "/v1/orders?user=bob", None).await;
    assert_eq!(by_user["orders"][0]["id"].as_str(), Some(ids[1].as_str()));

    let (status, paid) = call(
        &app,
        Method::POST,
        &format!("/v1/orders/{}/pay", ids[0]),
        None,
    )
    .await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (StatusCode::OK, Some("paid"))
    );
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/v1/orders/{}/cancel", ids[0]),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (status, cancelled) = call(
        &app,
        Method::POST,
        &format!("/v1/orders/{}/cancel", ids[1]),
        None,
    )
    .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (_, by_status) = call(&app, Method::GET, "/v1/orders?sku=ps5&status=paid", None).await;
    assert_eq!(by_status["orders"].as_array().unwrap().len(), 1);
    // A status alone: no index serves it, so it is refused rather than a walk of every order.
    let (status, refused) = call(&app, Method::GET, "/v1/orders?status=paid", None).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, order) = call(&app, Method::GET, &format!("/v1/orders/{}", ids[2]), None).await;
    assert_eq!(
        (status, order["status"].as_str(), order["user"].as_str()),
        (StatusCode::OK, Some("pending"), Some("cy"))
    );
    let (_, sale) = call(&app, Method::GET, "/v1/sales/ps5", None).await;
    assert_eq!(
        (
            sale["available"].as_u64(),
            sale["reserved"].as_u64(),
            sale["sold"].as_u64()
        ),
        (Some(8), Some(1), Some(1))
    );
}

#[tokio::test]
async fn bad_order_requests_get_4xx() {
    let (app, _) = with_sale(10, 1).await;
    let unknown = "0190b8a5-7c3e-7000-8000-000000000000";
    for (method, uri, status, code) in [
        (
            Method::GET,
            format!("/v1/orders/{unknown}"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/orders/not-a-uuid".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            format!("/v1/orders/{unknown}/pay"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/v1/orders/x/cancel".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/orders?limit=0".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/orders?limit=5000".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/orders?limit=-1".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/orders?status=shipped".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/orders?after=zzz".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/orders?user=".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            "/order/nope".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            "/nowhere".to_owned(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            "/v1/sales".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
        ),
        (
            Method::GET,
            "/v1/sales/ps5/purchase".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
        ),
    ] {
        let (got, body) = call(&app, method.clone(), &uri, None).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{method} {uri}: {body}"
        );
    }
}

#[tokio::test]
async fn the_original_api_still_works() {
    let (app, engine) = with_sale(1, 1).await;
    let (status, accepted) = call(
        &app,
        Method::POST,
        "/seckill/add",
        Some(json!({"user": "ann", "goods": "ps5", "remark": "gift"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let (status, body) = call(
        &app,
        Method::POST,
        "/seckill/add",
        Some(json!({"user": "bob", "goods": "ps5"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("sold_out"))
    );
    let (status, body) = call(
        &app,
        Method::POST,
        "/seckill/add",
        Some(json!({"user": "bob", "goods": "nope"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_sale"))
    );
    let (status, body) = call(
        &app,
        Method::POST,
        "/seckill/add",
        Some(json!({"user": "bob"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    engine.drain().await.unwrap();
    let (status, all) = call(&app, Method::GET, "/order/all", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(all[0]["remark"].as_str(), Some("gift"));
    let id = accepted["order_id"].as_str().unwrap();
    let (status, order) = call(&app, Method::GET, &format!("/order/{id}"), None).await;
    assert_eq!(
        (status, order["user"].as_str()),
        (StatusCode::OK, Some("ann"))
    );
}

#[tokio::test]
async fn admin_routes_need_the_token_when_one_is_set() {
    let mut state = AppState::new(FlashSale::in_memory());
    state.identity = nexussale_server::Identity::open().with_admin_token("s3cret");
    let app = app_with(state);
    let sale = || json!({"sku": "ps5", "stock": 3}).to_string();
    let create = |auth: Option<&str>| {
        let mut builder = request(Method::POST, "/v1/sales");
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        builder.body(Full::new(Bytes::from(sale()))).unwrap()
    };
    for refused in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cre"),
        Some("Basic s3cret"),
    ] {
        let (status, body) = call_raw(&app, create(refused)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused:?}");
        assert_eq!(body["error"], "unauthorized");
    }
    let (status, _) = call_raw(&app, create(Some("Bearer s3cret"))).await;
    assert_eq!(status, StatusCode::CREATED);
    // Buying is not an admin route.
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/sales/ps5/purchase",
        Some(json!({"user": "ann"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

fn probe(answer: fn() -> nexussale_core::Result<()>) -> Probe {
    Arc::new(move || Box::pin(async move { answer() }))
}

#[tokio::test]
async fn ready_reports_each_backend() {
    let app = app(FlashSale::in_memory());
    assert_eq!(
        call(&app, Method::GET, "/ready", None).await,
        (StatusCode::OK, json!({"status": "ready", "backends": {}}))
    );

    let mut state = AppState::new(FlashSale::in_memory());
    state.probes = vec![
        ("stock", probe(|| Ok(()))),
        (
            "orders",
            probe(|| {
                Err(nexussale_core::Error::retryable(
                    "mysql",
                    "connection refused",
                ))
            }),
        ),
    ];
    let (status, body) = call(&app_with(state), Method::GET, "/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "unavailable");
    assert_eq!(body["backends"]["stock"], "ok");
    assert!(
        body["backends"]["orders"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{body}"
    );
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_service_goes_on() {
    let mut state = AppState::new(FlashSale::in_memory());
    state.probes = vec![("stock", probe(|| panic!("a bug in a probe")))];
    let app = app_with(state);
    let (status, body) = call(&app, Method::GET, "/ready", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "unavailable");
    assert_eq!(
        call(&app, Method::GET, "/health", None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_flooding_user_gets_429_while_others_are_served() {
    let engine = FlashSale::in_memory();
    engine
        .create_sale(
            nexussale_core::Sale::new("ps5".parse().unwrap(), 100).with_per_user_limit(100),
        )
        .await
        .unwrap();
    let mut state = AppState::new(engine);
    state.user_limit = Some(Arc::new(RateLimiter::new(2.0, 2.0)));
    let app = app_with(state);
    let buy = |user: &'static str| {
        let app = app.clone();
        async move {
            let request = request(Method::POST, "/v1/sales/ps5/purchase")
                .body(Full::new(Bytes::from(json!({ "user": user }).to_string())))
                .unwrap();
            let response = app.call(request).await.unwrap();
            let retry_after = response.headers().get("retry-after").cloned();
            (response.status(), retry_after)
        }
    };
    assert_eq!(buy("flood").await.0, StatusCode::ACCEPTED);
    assert_eq!(buy("flood").await.0, StatusCode::ACCEPTED);
    let (status, retry_after) = buy("flood").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after.unwrap(), "1");
    // The legacy route counts against the same user.
    let (status, body) = call(
        &app,
        Method::POST,
        "/seckill/add",
        Some(json!({"user": "flood", "goods": "ps5"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    assert_eq!(buy("calm").await.0, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_flooding_client_address_gets_429_while_others_are_served() {
    let engine = FlashSale::in_memory();
    engine
        .create_sale(nexussale_core::Sale::new("ps5".parse().unwrap(), 100))
        .await
        .unwrap();
    let mut state = AppState::new(engine);
    state.ip_limit = Some(Arc::new(RateLimiter::new(1.0, 3.0)));
    let app = app_with(state);
    let bot = app.for_peer("203.0.113.7".parse().unwrap());
    let person = app.for_peer("198.51.100.1".parse().unwrap());
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(
            call(
                &bot,
                Method::POST,
                "/v1/sales/ps5/purchase",
                Some(json!({ "user": format!("bot-{i}") })),
            )
            .await
            .0,
        );
    }
    assert_eq!(
        statuses,
        [
            StatusCode::ACCEPTED,
            StatusCode::ACCEPTED,
            StatusCode::ACCEPTED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let (status, _) = call(
        &person,
        Method::POST,
        "/v1/sales/ps5/purchase",
        Some(json!({"user": "person"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Reading is not limited.
    assert_eq!(
        call(&bot, Method::GET, "/v1/sales/ps5", None).await.0,
        StatusCode::OK
    );
}

/// `GET /metrics`: answered 200 in Prometheus text; its body.
async fn scrape(app: &App) -> String {
    let response = app
        .call(
            request(Method::GET, "/metrics")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    text
}

#[tokio::test]
async fn metrics_show_purchases_by_outcome_and_stock() {
    let (app, _) = with_sale(1, 1).await;
    assert_eq!(purchase(&app, "ann").await.0, StatusCode::ACCEPTED);
    assert_eq!(purchase(&app, "bob").await.0, StatusCode::CONFLICT);
    let text = scrape(&app).await;
    for expected in [
        "nexussale_purchases_total{outcome=\"accepted\"}",
        "nexussale_purchases_total{outcome=\"sold_out\"}",
        "nexussale_purchase_duration_seconds_bucket",
        "nexussale_units_available{sku=\"ps5\"} 0",
    ] {
        assert!(text.contains(expected), "no {expected} in:\n{text}");
    }
}

/// A scrape does not wait on a stock store that is slow to read every sale (100,000 sales on
/// Redis took longer than the request timeout, so every scrape failed): it answers with the
/// other metrics, and a later scrape has the units once the reading finished.
#[tokio::test]
async fn a_scrape_does_not_wait_on_a_slow_stock_read() {
    use nexussale_core::layers::{Faulty, Method as StoreMethod};
    use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
    let store = Arc::new(Faulty::faulty(MemoryStockStore::new()));
    let engine = FlashSale::new(
        store.clone(),
        Arc::new(MemoryOrderQueue::new()),
        Arc::new(MemoryOrderRepository::new()),
    );
    let mut state = AppState::new(engine);
    state.request_timeout = Some(std::time::Duration::from_secs(5));
    let app = app_with(state);
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/sales",
        Some(json!({"sku": "slow-stock", "stock": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    store
        .hook()
        .slow(StoreMethod::Snapshot, std::time::Duration::from_secs(8));
    let first = scrape(&app).await;
    assert!(first.contains("nexussale_build_info"), "{first}");
    assert!(!first.contains("sku=\"slow-stock\""), "{first}");
    // The reading under way finishes (8 s); a scrape after it shows the sale.
    store.hook().heal();
    tokio::time::sleep(std::time::Duration::from_secs(9)).await;
    let later = scrape(&app).await;
    assert!(
        later.contains("nexussale_units_available{sku=\"slow-stock\"} 3"),
        "{later}"
    );
}

/// One rule for empty path segments, wherever they stand: refused, so `//v1/sales` is not served
/// as `/v1/sales` while `/v1//sales` is not (a proxy's path-prefix rule could be sidestepped).
#[tokio::test]
async fn empty_path_segments_are_refused_wherever_they_are() {
    let (app, _) = with_sale(10, 1).await;
    for path in ["//v1/sales", "/v1//sales", "/v1/sales//ps5", "//health"] {
        let (status, body) = call(&app, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"], "invalid_request", "{path}: {body}");
    }
    let (status, _) = call(&app, Method::GET, "/v1/sales", None).await;
    assert_eq!(status, StatusCode::OK);
    // A trailing slash is the route's business: the Swagger UI page lives at `/api-docs/`.
    let response = app
        .clone()
        .call(
            request(Method::GET, "/api-docs/")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// A sale's window is stored exactly or refused: instants outside 1970–9999, finer than a
/// microsecond, or on a leap second answer 400 naming the field (one answered 500, others were
/// stored as something else); a window past 2038 is kept to the microsecond.
#[tokio::test]
async fn sale_windows_are_stored_exactly_or_refused() {
    let (app, _) = with_sale(10, 1).await;
    for (n, (field, value)) in [
        ("ends_at", "-0001-01-01T00:00:00Z"),
        ("ends_at", "1969-12-31T23:59:59Z"),
        ("starts_at", "+10000-01-01T00:00:00Z"),
        ("starts_at", "2040-01-01T00:00:00.123456789Z"),
        ("starts_at", "2016-12-31T23:59:60Z"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"sku": format!("bad-{n}"), "stock": 5, field: value});
        let (status, answer) = call(&app, Method::POST, "/v1/sales", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field} {value}: {answer}");
        assert_eq!(answer["error"], "invalid_request", "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(field),
            "{field} {value}: {answer}"
        );
    }
    let window = json!({"sku": "far", "stock": 5,
        "starts_at": "2040-01-01T00:00:00.123456Z", "ends_at": "9999-12-31T23:59:59.999999Z"});
    let (status, created) = call(&app, Method::POST, "/v1/sales", Some(window)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, read) = call(&app, Method::GET, "/v1/sales/far", None).await;
    assert_eq!(read["starts_at"], "2040-01-01T00:00:00.123456Z", "{read}");
    assert_eq!(read["ends_at"], "9999-12-31T23:59:59.999999Z", "{read}");
    assert_eq!(read["state"], "upcoming", "{read}");
}

/// The second wave's HTTP semantics: `Location` on 201 and 202, `HEAD` wherever `GET` is, `Allow`
/// on 405, and an order polled right after its 202 (not persisted yet) found, not 404.
#[tokio::test]
async fn answers_carry_location_allow_and_head_and_a_fresh_order_is_found() {
    // No worker runs here: the order is accepted and never persisted.
    let engine = FlashSale::in_memory();
    let app = app(engine.clone());
    let response = app
        .call(common::json_request(
            Method::POST,
            "/v1/sales",
            Some(json!({ "sku": "tv 4k/€", "stock": 3 })),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["location"],
        "/v1/sales/tv%204k%2F%E2%82%AC"
    );
    let response = app
        .call(common::json_request(
            Method::POST,
            "/v1/sales/tv%204k%2F%E2%82%AC/purchase",
            Some(json!({ "user": "ann" })),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/v1/orders/"), "{location}");
    let (status, order) = call(&app, Method::GET, &location, None).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(
        (&order["status"], &order["user"]),
        (&json!("pending"), &json!("ann"))
    );
    // It can be paid before the worker persists it; the pay records it.
    let (status, paid) = call(&app, Method::POST, &format!("{location}/pay"), None).await;
    assert_eq!(
        (status, &paid["status"]),
        (StatusCode::OK, &json!("paid")),
        "{paid}"
    );
    assert_eq!(
        engine
            .repository()
            .get(order["id"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap()
            .map(|o| o.status),
        Some(nexussale_core::OrderStatus::Paid)
    );

    let bodiless = |method: Method, uri: &str| {
        let request = common::request(method, uri)
            .body(Full::<Bytes>::default())
            .unwrap();
        let app = app.clone();
        async move { app.call(request).await.unwrap() }
    };
    let get = bodiless(Method::GET, "/v1/sales").await;
    let head = bodiless(Method::HEAD, "/v1/sales").await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-type"],
        get.headers()["content-type"]
    );
    let length = http_body_util::BodyExt::collect(get.into_body())
        .await
        .unwrap()
        .to_bytes()
        .len();
    assert_eq!(
        head.headers()["content-length"],
        length.to_string().as_str()
    );
    assert!(
        http_body_util::BodyExt::collect(head.into_body())
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );

    for (method, uri, allow) in [
        (Method::DELETE, "/v1/sales", "GET, HEAD, POST"),
        (Method::GET, "/v1/sales/ps5/purchase", "POST"),
        (
            Method::PUT,
            "/v1/orders/0190b8a5-7c3e-7000-8000-000000000000",
            "GET, HEAD",
        ),
    ] {
        let response = bodiless(method.clone(), uri).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert_eq!(response.headers()["allow"], allow, "{method} {uri}");
    }
}

#[tokio::test]
async fn sales_are_listed_a_page_at_a_time_in_sku_order() {
    let engine = FlashSale::in_memory();
    for sku in ["d", "b", "a", "e", "c"] {
        engine
            .create_sale(nexussale_core::Sale::new(sku.parse().unwrap(), 1))
            .await
            .unwrap();
    }
    // `c` sells out.
    let ann = nexussale_core::UserId::new("ann").unwrap();
    engine
        .purchase(nexussale_core::PurchaseRequest::new(
            "c".parse().unwrap(),
            ann,
        ))
        .await
        .unwrap();
    let app = app(engine);
    let mut seen = Vec::new();
    let mut uri = "/v1/sales?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = call(&app, Method::GET, &uri, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        for sale in page["sales"].as_array().unwrap() {
            seen.push(sale["sku"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => uri = format!("/v1/sales?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);
    // A state filter: the one sold out.
    let (_, sold_out) = call(&app, Method::GET, "/v1/sales?state=sold_out", None).await;
    assert_eq!(sold_out["sales"].as_array().unwrap().len(), 1, "{sold_out}");
    assert_eq!(sold_out["sales"][0]["sku"], "c");
    for bad in [
        "?limit=0",
        "?limit=1001",
        "?limit=x",
        "?state=lost",
        "?after=",
    ] {
        let (status, body) = call(&app, Method::GET, &format!("/v1/sales{bad}"), None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{bad}: {body}"
        );
    }
}

#[tokio::test]
async fn sales_past_the_cap_are_refused_with_409() {
    let mut config = nexussale_core::EngineConfig::default();
    config.max_sales = Some(2);
    let engine = FlashSale::builder(
        std::sync::Arc::new(nexussale_core::memory::MemoryStockStore::new()),
        std::sync::Arc::new(nexussale_core::memory::MemoryOrderQueue::new()),
        std::sync::Arc::new(nexussale_core::memory::MemoryOrderRepository::new()),
    )
    .config(config)
    .build();
    let app = app(engine.clone());
    for sku in ["one", "two"] {
        let (status, body) = call(
            &app,
            Method::POST,
            "/v1/sales",
            Some(json!({"sku": sku, "stock": 1})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/sales",
        Some(json!({"sku": "three", "stock": 1})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("too_many_sales")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("--max-sales"));
    let (status, _) = call(&app, Method::GET, "/v1/sales/three", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(engine.stock().sale_count().await.unwrap(), 2);
}
