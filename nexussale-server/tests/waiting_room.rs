//! Waiting rooms over HTTP: joining, the pass, purchases refused without it, proof of work, and
//! a ticket followed live agreeing with polling.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use common::Events;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;

use hyper::service::Service;
use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
use nexussale_core::{EngineConfig, FlashSale, UserId, proof_of_work_holds};
use nexussale_server::{App, AppState, app_with};
use serde_json::{Value, json};

fn app() -> (FlashSale, App) {
    app_admitting(1_000)
}

/// An app whose engine admits at most `batch` tickets a step.
fn app_admitting(batch: u64) -> (FlashSale, App) {
    let mut config = EngineConfig::default();
    config.admission_batch = batch;
    let engine = FlashSale::builder(
        Arc::new(MemoryStockStore::new()),
        Arc::new(MemoryOrderQueue::new()),
        Arc::new(MemoryOrderRepository::new()),
    )
    .config(config)
    .build();
    let app = app_with(AppState::new(engine.clone()).feed_tick(Duration::from_millis(50)));
    (engine, app)
}

async fn create(app: &App, sku: &str, stock: u64, room: Value) -> Value {
    let (status, sale) = common::call(
        app,
        Method::POST,
        "/v1/sales",
        Some(json!({"sku": sku, "stock": stock, "waiting_room": room})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sale}");
    sale
}

async fn join(app: &App, sku: &str, user: &str) -> Value {
    let uri = format!("/v1/sales/{sku}/queue");
    let (status, ticket) = common::call(app, Method::POST, &uri, Some(json!({"user": user}))).await;
    assert_eq!(status, StatusCode::OK, "{ticket}");
    ticket
}

async fn ticket(app: &App, sku: &str, ticket: &Value) -> Value {
    let uri = format!(
        "/v1/sales/{sku}/queue/{}",
        ticket["ticket"].as_str().unwrap()
    );
    let (status, ticket) = common::call(app, Method::GET, &uri, None).await;
    assert_eq!(status, StatusCode::OK, "{ticket}");
    ticket
}

async fn purchase(app: &App, sku: &str, user: &str, pass: Option<&str>) -> (StatusCode, Value) {
    let mut request = common::request(Method::POST, &format!("/v1/sales/{sku}/purchase"));
    if let Some(pass) = pass {
        request = request.header("admission-pass", pass);
    }
    let body = Full::new(Bytes::from(json!({"user": user}).to_string()));
    common::call_raw(app, request.body(body).unwrap()).await
}

/// A drop with a waiting room, end to end: the sale shows its room; a purchase needs the pass
/// admission gave that buyer, once; a sale without a room has no queue.
#[tokio::test]
async fn a_purchase_needs_the_buyers_own_pass_once() {
    let (engine, app) = app();
    let sale = create(&app, "wr-http", 2, json!({"pass_ttl_secs": 30})).await;
    assert_eq!(sale["waiting_room"]["pass_ttl_secs"], 30);
    assert_eq!(sale["waiting_room"]["overbook"], 1.0);
    assert_eq!(
        sale["waiting_room"]["challenge"].as_str().unwrap().len(),
        32
    );

    let ann = join(&app, "wr-http", "ann").await;
    let bob = join(&app, "wr-http", "bob").await;
    let cy = join(&app, "wr-http", "cy").await;
    assert_eq!(join(&app, "wr-http", "ann").await["ticket"], ann["ticket"]);
    assert_eq!(
        (&ann["state"], &ann["position"]),
        (&json!("waiting"), &json!(1))
    );
    assert_eq!(cy["ahead"], 2);

    let (status, refused) = purchase(&app, "wr-http", "ann", None).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_admitted"))
    );

    assert_eq!(engine.admit().await.unwrap().admitted, 2);
    let ann = ticket(&app, "wr-http", &ann).await;
    assert_eq!(ann["state"], "admitted");
    let pass = ann["pass"].as_str().unwrap().to_owned();
    assert!(ann["pass_expires_at"].is_string());
    let cy = ticket(&app, "wr-http", &cy).await;
    assert_eq!(
        (&cy["state"], &cy["position"]),
        (&json!("waiting"), &json!(1))
    );

    // Another buyer's pass, a mangled one, then the buyer's own: once.
    let (status, body) = purchase(&app, "wr-http", "cy", Some(&pass)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_admitted"))
    );
    let (status, _) = purchase(&app, "wr-http", "ann", Some("x.y.z")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, order) = purchase(&app, "wr-http", "ann", Some(&pass)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{order}");
    let (status, body) = purchase(&app, "wr-http", "ann", Some(&pass)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_admitted"))
    );
    let ann = ticket(&app, "wr-http", &ann).await;
    assert_eq!(
        (&ann["state"], &ann["pass_used"], &ann["pass"]),
        (&json!("admitted"), &json!(true), &Value::Null)
    );
    let bob = ticket(&app, "wr-http", &bob).await;
    assert_eq!(bob["state"], "admitted");

    // Not found, and no waiting room.
    let (status, _) = common::call(&app, Method::GET, "/v1/sales/wr-http/queue/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let unknown = format!("/v1/sales/wr-http/queue/{}", "0".repeat(32));
    let (status, _) = common::call(&app, Method::GET, &unknown, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = common::call(
        &app,
        Method::POST,
        "/v1/sales",
        Some(json!({"sku": "plain", "stock": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = common::call(
        &app,
        Method::POST,
        "/v1/sales/plain/queue",
        Some(json!({"user": "ann"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = purchase(&app, "plain", "ann", None).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "a sale without a room needs no pass: {body}"
    );

    // Bad settings are refused.
    for room in [
        json!({"overbook": 0.5}),
        json!({"pass_ttl_secs": 0}),
        json!({"proof_of_work_bits": 99}),
        json!({"challenge": "00"}),
    ] {
        let (status, body) = common::call(
            &app,
            Method::POST,
            "/v1/sales",
            Some(json!({"sku": "bad", "stock": 1, "waiting_room": room})),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{room}"
        );
    }
}

/// With proof of work asked, a join without a nonce, or with a wrong one, is 400; one found
/// for this buyer and the sale's challenge joins.
#[tokio::test]
async fn a_join_proves_its_work_when_asked() {
    let (_, app) = app();
    let sale = create(&app, "wr-pow", 5, json!({"proof_of_work_bits": 10})).await;
    let challenge = sale["waiting_room"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sale["waiting_room"]["proof_of_work_bits"], 10);
    let uri = "/v1/sales/wr-pow/queue";
    let (status, body) = common::call(&app, Method::POST, uri, Some(json!({"user": "ann"}))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let ann = UserId::new("ann").unwrap();
    let nonce = (0u64..)
        .map(|n| n.to_string())
        .find(|n| proof_of_work_holds(&challenge, &ann, n, 10))
        .unwrap();
    let wrong = (0u64..)
        .map(|n| n.to_string())
        .find(|n| !proof_of_work_holds(&challenge, &ann, n, 10))
        .unwrap();
    let (status, _) = common::call(
        &app,
        Method::POST,
        uri,
        Some(json!({"user": "ann", "nonce": wrong})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Another buyer's proof does not carry over.
    let (status, _) = common::call(
        &app,
        Method::POST,
        uri,
        Some(json!({"user": "bob", "nonce": nonce})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, ticket) = common::call(
        &app,
        Method::POST,
        uri,
        Some(json!({"user": "ann", "nonce": nonce})),
    )
    .await;
    assert_eq!(
        (status, &ticket["state"]),
        (StatusCode::OK, &json!("waiting"))
    );
}

/// Runs admission steps until one admits a ticket. (A purchase's use of its pass is settled in
/// a task of its own; until it is, the step keeps that unit off the ceiling and admits no one.)
async fn admit_one(engine: &FlashSale) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine.admit().await.unwrap().admitted == 0 {
        assert!(Instant::now() < deadline, "no ticket admitted within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The sixth in line follows its ticket live while the engine admits one a step:
/// its place counts down to the front, it is admitted with a pass that buys, and each event
/// says what polling says at that moment; once everything is paid, the others read `sold_out`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_followed_live_agrees_with_polling() {
    let (engine, app) = app_admitting(1);
    create(&app, "wr-live", 6, json!({})).await;
    let mut tickets = Vec::new();
    for n in 0..8 {
        tickets.push(join(&app, "wr-live", &format!("b{n}")).await);
    }
    let last = tickets[5].clone();
    let uri = format!(
        "/v1/sales/wr-live/queue/{}/events",
        last["ticket"].as_str().unwrap()
    );
    let response = app
        .call(common::json_request(Method::GET, &uri, None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = Events::new(response.into_body(), "ticket");
    let first = events.next().await.unwrap();
    assert_eq!(
        (&first["state"], &first["position"]),
        (&json!("waiting"), &json!(6))
    );

    // One admitted a step, each buying with its pass.
    let mut seen = vec![6];
    for (n, ahead) in tickets[..5].iter().enumerate() {
        admit_one(&engine).await;
        let event = events.next().await.unwrap();
        let polled = ticket(&app, "wr-live", &last).await;
        assert_eq!(event, polled, "the stream and polling disagree");
        seen.push(event["position"].as_u64().unwrap_or(0));
        let admitted = ticket(&app, "wr-live", ahead).await;
        let pass = admitted["pass"].as_str().unwrap().to_owned();
        let (status, order) = purchase(&app, "wr-live", &format!("b{n}"), Some(&pass)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{order}");
    }
    assert_eq!(seen, [6, 5, 4, 3, 2, 1]);
    admit_one(&engine).await;
    let admitted = events.next().await.unwrap();
    assert_eq!(admitted["state"], "admitted");
    let (status, _) = purchase(&app, "wr-live", "b5", admitted["pass"].as_str()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Listeners hear of changes from the admission step (every 100 ms in a server).
    engine.admit().await.unwrap();
    let used = events.next().await.unwrap();
    assert_eq!(used["pass_used"], true);
    assert_eq!(events.next().await, None, "a used ticket's stream ends");

    // Everything sold and paid: the rest are told sold out.
    engine.drain().await.unwrap();
    let orders = engine
        .orders(&nexussale_core::OrderQuery::default())
        .await
        .unwrap();
    for order in orders.orders {
        engine.pay(order.id).await.unwrap();
    }
    assert_eq!(engine.admit().await.unwrap().closed, 1);
    for late in &tickets[6..] {
        assert_eq!(ticket(&app, "wr-live", late).await["state"], "sold_out");
    }
}
