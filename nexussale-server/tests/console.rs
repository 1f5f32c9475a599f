//! The operator's view of a sale and actions on it: reconcile (dry run, then repair), end, the
//! report; each action written to the audit log with who did it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use common::{call, client, send, send_as, start_server_with_env, stop};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::service::Service;
use nexussale_core::FlashSale;
use nexussale_server::{AppState, Identity, app, app_with};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "adm-s3cret";

/// A JSON request carrying the admin token.
fn admin(
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut request = common::json_request(method, uri, body);
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    request
}

/// A dry run shows the drift of an order not yet persisted and changes nothing; a repair
/// rebuilds the stock from the orders; a sale nobody knows is 404; a body with anything but
/// `repair` is 400.
#[tokio::test]
async fn reconcile_reports_the_drift_and_repairs_only_when_asked() {
    let engine = FlashSale::in_memory();
    let app = app(engine.clone());
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/sales",
        Some(json!({"sku": "books", "stock": 10})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for user in ["ann", "bob"] {
        let (status, _) = call(
            &app,
            Method::POST,
            "/v1/sales/books/purchase",
            Some(json!({ "user": user })),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    assert_eq!(engine.drain().await.unwrap(), 2);
    // The books balance: an empty body is a dry run.
    let (status, report) = call(&app, Method::POST, "/v1/sales/books/reconcile", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report,
        json!({
            "sku": "books", "in_sync": true, "repaired": false,
            "store": {"stock": 10, "available": 8, "reserved": 2, "sold": 0},
            "repository": {
                "pending": {"orders": 2, "units": 2}, "paid": {"orders": 0, "units": 0},
                "cancelled": {"orders": 0, "units": 0}, "expired": {"orders": 0, "units": 0},
            },
            "reserved_drift": 0, "sold_drift": 0,
        })
    );
    // A reservation whose order is still in the queue: the store holds one unit more.
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/sales/books/purchase",
        Some(json!({"user": "cy"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for _ in 0..2 {
        let (status, report) = call(
            &app,
            Method::POST,
            "/v1/sales/books/reconcile",
            Some(json!({"repair": false})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(report["in_sync"], false, "{report}");
        assert_eq!(report["reserved_drift"], 1);
        assert_eq!(
            report["store"]["reserved"], 3,
            "a dry run changed the store"
        );
        assert_eq!(report["repaired"], false);
    }
    // The repair rebuilds the store from the two persisted orders.
    let (status, report) = call(
        &app,
        Method::POST,
        "/v1/sales/books/reconcile",
        Some(json!({"repair": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["repaired"], true, "{report}");
    assert_eq!(report["in_sync"], true);
    assert_eq!(report["store"]["reserved"], 2);
    assert_eq!(report["store"]["available"], 8);

    let (status, body) = call(&app, Method::POST, "/v1/sales/nope/reconcile", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_sale"))
    );
    for bad in [json!({"repair": "yes"}), json!({"fix": true}), json!([1])] {
        let (status, body) = call(
            &app,
            Method::POST,
            "/v1/sales/books/reconcile",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

/// Reconcile is an admin action: no credential is 401, a buyer's is 403, and neither changes
/// anything.
#[tokio::test]
async fn reconcile_needs_the_admin() {
    let secret = b"a-secret-of-at-least-32-bytes-long!!";
    let mut state = AppState::new(FlashSale::in_memory());
    state.identity = Identity::open()
        .with_admin_token(ADMIN_TOKEN)
        .with_buyer_tokens(nexussale_server::BuyerTokens::hs256(secret).unwrap());
    let app = app_with(state);
    let (status, _) = common::call_raw(
        &app,
        admin(
            Method::POST,
            "/v1/sales",
            Some(json!({"sku": "kept", "stock": 3})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(&app, Method::POST, "/v1/sales/kept/reconcile", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut request = common::json_request(
        Method::POST,
        "/v1/sales/kept/reconcile",
        Some(json!({"repair": true})),
    );
    let buyer = common::buyer_token(secret, "ann", None);
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {buyer}").parse().unwrap());
    let (status, _) = common::call_raw(&app, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, report) =
        common::call_raw(&app, admin(Method::POST, "/v1/sales/kept/reconcile", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["repaired"], false);
}

/// Ending a sale: purchases from then on are 409 `sale_not_active` and the sale reads `ended`;
/// an order made before is paid as usual; ending again answers the same sale; an unknown sale
/// is 404; only the admin may (401 without a credential, and nothing changes).
#[tokio::test]
async fn end_closes_the_sale_now_and_keeps_what_was_sold() {
    let mut state = AppState::new(FlashSale::in_memory());
    state.identity = Identity::open().with_admin_token(ADMIN_TOKEN);
    let engine = state.engine.clone();
    let app = app_with(state);
    let (status, _) = common::call_raw(
        &app,
        admin(
            Method::POST,
            "/v1/sales",
            Some(json!({"sku": "drop", "stock": 5})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let buy = |user: &str| {
        common::json_request(
            Method::POST,
            "/v1/sales/drop/purchase",
            Some(json!({ "user": user })),
        )
    };
    let (status, receipt) = common::call_raw(&app, buy("ann")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");

    let (status, _) = call(&app, Method::POST, "/v1/sales/drop/end", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = common::call_raw(&app, buy("bob")).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "a refused end changed the sale"
    );

    let (status, ended) =
        common::call_raw(&app, admin(Method::POST, "/v1/sales/drop/end", None)).await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(ended["state"], "ended");
    assert_eq!(ended["available"], 3, "{ended}");
    assert!(ended["ends_at"].is_string(), "{ended}");
    let (status, refused) = common::call_raw(&app, buy("cy")).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (StatusCode::CONFLICT, Some("sale_not_active")),
        "{refused}"
    );
    let (_, read) = call(&app, Method::GET, "/v1/sales/drop", None).await;
    assert_eq!(read["state"], "ended");
    let (status, again) =
        common::call_raw(&app, admin(Method::POST, "/v1/sales/drop/end", None)).await;
    assert_eq!(
        (status, &again["ends_at"]),
        (StatusCode::OK, &ended["ends_at"])
    );

    // The order made before the end is paid as usual.
    engine.drain().await.unwrap();
    let id = receipt["order_id"].as_str().unwrap();
    engine.pay(id.parse().unwrap()).await.unwrap();

    let (status, body) =
        common::call_raw(&app, admin(Method::POST, "/v1/sales/nope/end", None)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_sale"))
    );
}

/// Each admin action is one audit line naming who (the admin token by role, never its value; a
/// JWT by subject), what, which sale and the answer's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_are_audited_with_who_did_them() {
    let secret = "a-secret-of-at-least-32-bytes-long!!";
    let (server, address, log) = start_server_with_env(
        &["--admin-token", "adm-s3cret", "--jwt-secret", secret],
        &[("NEXUSSALE_LOG_FORMAT", "json")],
    );
    let base = format!("http://{address}");
    let http = client();
    let operator = common::buyer_token(secret.as_bytes(), "ops-jane", Some("nexussale:admin"));
    let (status, _) = send_as(
        &http,
        Method::POST,
        &format!("{base}/v1/sales"),
        Some("adm-s3cret"),
        &[],
        Some(json!({"sku": "audited sku", "stock": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = send_as(
        &http,
        Method::POST,
        &format!("{base}/v1/sales/audited%20sku/reconcile"),
        Some(&operator),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send_as(
        &http,
        Method::POST,
        &format!("{base}/v1/sales/gone/reconcile"),
        Some("adm-s3cret"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send_as(
        &http,
        Method::POST,
        &format!("{base}/v1/sales/audited%20sku/end"),
        Some(&operator),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Refused before the handler: not an action, not audited.
    let (status, _) = send(
        &http,
        Method::POST,
        &format!("{base}/v1/sales/gone/reconcile"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    stop(server);
    let log = log.lock().clone();
    assert!(!log.contains("adm-s3cret"), "the admin token is in the log");
    let audit: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "nexussale::audit")
        .map(|line| {
            let fields = &line["fields"];
            json!([
                fields["who"],
                fields["action"],
                fields["sku"],
                fields["status"],
                fields["error"]
            ])
        })
        .collect();
    assert_eq!(
        audit,
        vec![
            json!(["admin-token", "create_sale", "audited sku", 201, ""]),
            json!(["jwt:ops-jane", "reconcile", "audited sku", 200, ""]),
            json!(["admin-token", "reconcile", "gone", 404, "unknown_sale"]),
            json!(["jwt:ops-jane", "end_sale", "audited sku", 200, ""]),
        ],
        "{log}"
    );
}

/// The report counts what was accepted (whatever became of it), when the sale sold out, the
/// refusals by reason, the orders by status and the conversion; as JSON and as CSV; admin only.
#[tokio::test]
async fn the_report_tells_how_a_sale_sold() {
    let mut state = AppState::new(FlashSale::in_memory());
    state.identity = Identity::open().with_admin_token(ADMIN_TOKEN);
    let engine = state.engine.clone();
    let app = app_with(state);
    let (status, _) = common::call_raw(
        &app,
        admin(
            Method::POST,
            "/v1/sales",
            Some(json!({"sku": "reported", "stock": 3})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut orders = Vec::new();
    for user in ["ann", "bob", "cy", "dan", "eve"] {
        let (status, body) = call(
            &app,
            Method::POST,
            "/v1/sales/reported/purchase",
            Some(json!({ "user": user })),
        )
        .await;
        match orders.len() {
            0..=2 => {
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                orders.push(body["order_id"].as_str().unwrap().to_owned());
            }
            _ => assert_eq!(body["error"], "sold_out", "{body}"),
        }
    }
    engine.drain().await.unwrap();
    engine.pay(orders[0].parse().unwrap()).await.unwrap();
    engine.cancel(orders[1].parse().unwrap()).await.unwrap();
    engine.drain().await.unwrap();

    let (status, report) =
        common::call_raw(&app, admin(Method::GET, "/v1/sales/reported/report", None)).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["accepted"], json!({"orders": 3, "units": 3}));
    assert_eq!(report["statuses"]["paid"], json!({"orders": 1, "units": 1}));
    assert_eq!(report["statuses"]["cancelled"]["orders"], 1);
    assert_eq!(report["statuses"]["pending"]["orders"], 1);
    assert_eq!(report["refused"]["sold_out"], 2, "{report}");
    assert_eq!(report["refused"]["rate_limited"], 0);
    assert!((report["conversion"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert!(
        report["sold_out_after_secs"].as_f64().unwrap() >= 0.0,
        "{report}"
    );
    assert_eq!(report["opened_at"], report["first_purchase"]);
    assert!(report["last_purchase"].is_string());
    let per_second = &report["accepted_per_second"];
    assert_eq!(per_second["bucket_secs"], 1);
    let placed: u64 = per_second["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bucket| bucket["orders"].as_u64().unwrap())
        .sum();
    assert_eq!(placed, 3);

    let response = app
        .call(admin(
            Method::GET,
            "/v1/sales/reported/report?format=csv",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let csv = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "section,key,value");
    for row in [
        "summary,sku,reported",
        "accepted,orders,3",
        "status,paid_orders,1",
        "refused,sold_out,2",
    ] {
        assert!(rows.contains(&row), "{row} missing from\n{csv}");
    }

    for (uri, expected) in [
        (
            "/v1/sales/reported/report?format=xml",
            StatusCode::BAD_REQUEST,
        ),
        ("/v1/sales/nope/report", StatusCode::NOT_FOUND),
    ] {
        let (status, _) = common::call_raw(&app, admin(Method::GET, uri, None)).await;
        assert_eq!(status, expected, "{uri}");
    }
    let (status, _) = call(&app, Method::GET, "/v1/sales/reported/report", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
