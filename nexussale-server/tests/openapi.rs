//! The OpenAPI document and Swagger UI: the document lists exactly the contract's routes, every
//! answer the server gives matches the document (status and body schema), and Swagger UI is
//! served whole from the binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::Service;
use nexussale_core::FlashSale;
use nexussale_server::{App, AppState, Probe, RateLimiter, app, app_with};
use serde_json::{Value, json};

/// The routes of shared/CONTRACT.md.
const CONTRACT_ROUTES: [(&str, &str); 24] = [
    ("post", "/v1/sales"),
    ("get", "/v1/sales"),
    ("get", "/v1/sales/{sku}"),
    ("post", "/v1/sales/{sku}/purchase"),
    ("post", "/v1/sales/{sku}/reconcile"),
    ("post", "/v1/sales/{sku}/end"),
    ("get", "/v1/sales/{sku}/events"),
    ("get", "/v1/sales/{sku}/report"),
    ("post", "/v1/sales/{sku}/queue"),
    ("get", "/v1/sales/{sku}/queue/{ticket}"),
    ("get", "/v1/sales/{sku}/queue/{ticket}/events"),
    ("get", "/dashboard"),
    ("get", "/v1/orders/{id}"),
    ("get", "/v1/orders"),
    ("post", "/v1/orders/{id}/pay"),
    ("post", "/v1/orders/{id}/cancel"),
    ("post", "/seckill/add"),
    ("get", "/order/all"),
    ("get", "/order/{id}"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/api-docs"),
    ("get", "/api-docs/openapi.json"),
];

/// The document the server serves.
async fn served_document(app: &App) -> Value {
    let (status, bytes, content_type) = raw(app, Method::GET, "/api-docs/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    serde_json::from_slice(&bytes).unwrap()
}

async fn raw(
    app: &App,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Bytes, String) {
    let request = common::json_request(method, uri, body);
    send(app, request).await
}

async fn send(app: &App, request: Request<Full<Bytes>>) -> (StatusCode, Bytes, String) {
    let response = app.call(request).await.unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = response.status();
    let mut body = response.into_body();
    if content_type != "text/event-stream" {
        return (
            status,
            body.collect().await.unwrap().to_bytes(),
            content_type,
        );
    }
    // A stream never ends by itself: read it up to its first event.
    let mut bytes = Vec::new();
    while !String::from_utf8_lossy(&bytes).contains("\ndata: ") || !bytes.ends_with(b"\n\n") {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
            .await
            .expect("no event within 5 s")
            .expect("the stream ended")
            .unwrap();
        bytes.extend_from_slice(&frame.into_data().unwrap());
    }
    (status, Bytes::from(bytes), content_type)
}

/// Checks one answer against the document: its status is documented for the operation, and its
/// body matches the documented schema (JSON Schema 2020-12, as OpenAPI 3.1 has it).
struct Checker {
    document: Value,
    /// (method, path template, status) seen, to show the scenarios reach what they mean to.
    seen: BTreeSet<(String, String, u16)>,
    /// The bearer token every call sends.
    bearer: Option<String>,
}

impl Checker {
    fn check(&mut self, method: &str, template: &str, status: StatusCode, body: &[u8], ct: &str) {
        let operation = &self.document["paths"][template][method];
        assert!(
            operation.is_object(),
            "{method} {template} is not documented"
        );
        let answer = &operation["responses"][status.as_str()];
        assert!(
            answer.is_object(),
            "{method} {template} answered {status}, which the document does not list: {}",
            String::from_utf8_lossy(body)
        );
        self.seen
            .insert((method.to_owned(), template.to_owned(), status.as_u16()));
        let Some(content) = answer["content"].as_object() else {
            assert!(
                body.is_empty(),
                "{method} {template} {status}: body not documented"
            );
            return;
        };
        let media = content
            .get(ct)
            .unwrap_or_else(|| panic!("{method} {template} {status}: {ct} not documented"));
        let (schema, instances) =
            match ct {
                "application/json" => (
                    media["schema"].clone(),
                    vec![serde_json::from_slice::<Value>(body).unwrap()],
                ),
                // Each event's data is the resource as its `GET` answers it: the sale, or the
                // ticket.
                "text/event-stream" => (
                    self.document["paths"][template.trim_end_matches("/events")]["get"]
                        ["responses"]["200"]["content"]["application/json"]["schema"]
                        .clone(),
                    String::from_utf8_lossy(body)
                        .lines()
                        .filter_map(|line| line.strip_prefix("data: "))
                        .map(|data| serde_json::from_str(data).unwrap())
                        .collect(),
                ),
                _ => return,
            };
        let mut schema = schema;
        schema["components"] = self.document["components"].clone();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|err| panic!("{method} {template}: bad schema: {err}"));
        assert!(
            !instances.is_empty(),
            "{method} {template} {status}: nothing to check"
        );
        for instance in instances {
            let errors: Vec<String> = validator
                .iter_errors(&instance)
                .map(|err| format!("{err} at {}", err.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {template} {status}: the body does not match the document: {errors:?}\n{instance}"
            );
        }
    }

    /// Whether repeating a purchase soon meets the user rate limit (429).
    async fn limited(&mut self, app: &App, template: &str, uri: &str, body: Value) -> bool {
        for _ in 0..10 {
            let (status, _) = self
                .call(app, Method::POST, template, uri, Some(body.clone()))
                .await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                return true;
            }
        }
        false
    }

    /// Sends a request to `uri` (an instance of `template`), checks the answer, returns it.
    async fn call(
        &mut self,
        app: &App,
        method: Method,
        template: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = common::json_request(method.clone(), uri, body);
        if let Some(token) = &self.bearer {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let (status, bytes, ct) = send(app, request).await;
        self.check(
            &method.as_str().to_lowercase(),
            template,
            status,
            &bytes,
            &ct,
        );
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }
}

/// Every (method, path template) the document lists.
fn operations(document: &Value) -> Vec<(String, String)> {
    document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn the_document_lists_exactly_the_contract_routes() {
    let document = served_document(&app(FlashSale::in_memory())).await;
    assert_eq!(document["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = operations(&document).into_iter().collect();
    let contract: BTreeSet<(String, String)> = CONTRACT_ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(documented, contract);
    // Every error answer points at the one error schema, whose codes are the contract's.
    let codes: Vec<&str> =
        document["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|code| code.as_str().unwrap())
            .collect();
    assert_eq!(codes, nexussale_server::ERROR_CODES);
    assert_eq!(
        document["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    assert_eq!(
        document["paths"]["/v1/sales"]["post"]["security"],
        json!([{"admin_token": []}])
    );
    // Operation ids are unique (OpenAPI requires it; Swagger UI's links use them).
    let ids: Vec<String> = operations(&document)
        .iter()
        .map(|(method, path)| {
            document["paths"][path][method]["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"))
                .to_owned()
        })
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    // The library hands out the same document it serves.
    assert_eq!(
        serde_json::to_value(nexussale_server::openapi()).unwrap(),
        document
    );
}

/// Every documented operation is routed: none answers 404 "no such route" or 405.
#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = app(FlashSale::in_memory());
    let document = served_document(&app).await;
    let mut checker = Checker {
        document: document.clone(),
        seen: BTreeSet::new(),
        bearer: None,
    };
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let uri = path
                .replace("{sku}", "ps5")
                .replace("{id}", "0191f3a0-0000-7000-8000-000000000000");
            let method: Method = method.to_uppercase().parse().unwrap();
            let (status, body) = checker.call(&app, method, path, &uri, None).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
            assert_ne!(body["message"], "no such route", "{path}");
        }
    }
}

fn probe(answer: fn() -> nexussale_core::Result<()>) -> Probe {
    Arc::new(move || Box::pin(async move { answer() }))
}

/// A walk through every route and most of its answers; each answer is checked against the
/// document, and the walk must reach every documented 2xx and business error.
#[tokio::test]
async fn every_answer_matches_the_document() {
    let engine = FlashSale::in_memory();
    let mut state = AppState::new(engine.clone());
    state.identity = nexussale_server::Identity::open()
        .with_admin_token("s3cret")
        .with_payment_token("p4y")
        .with_buyer_tokens(nexussale_server::BuyerTokens::hs256(b"jwt-k3y").unwrap());
    state.user_limit = Some(Arc::new(RateLimiter::new(1.0, 3.0)));
    let app = app_with(state);
    let document = served_document(&app).await;
    let mut c = Checker {
        document,
        seen: BTreeSet::new(),
        bearer: Some("s3cret".into()),
    };

    // Sales.
    let create = |token: &str, body: Value| {
        common::request(Method::POST, "/v1/sales")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };
    for (token, body, expected) in [
        ("s3cret", json!({"sku": "ps5", "stock": 2}), 201),
        (
            "s3cret",
            json!({"sku": "later", "stock": 5, "per_user_limit": 2,
                   "starts_at": "2999-01-01T00:00:00Z", "reservation_ttl_secs": 60}),
            201,
        ),
        ("s3cret", json!({"sku": "ps5", "stock": 2}), 409),
        ("wrong", json!({"sku": "xbox", "stock": 2}), 401),
        ("s3cret", json!({"sku": "", "stock": 2}), 400),
        (
            "s3cret",
            json!({"sku": "x".repeat(70_000), "stock": 2}),
            413,
        ),
    ] {
        let (status, bytes, ct) = send(&app, create(token, body)).await;
        assert_eq!(status.as_u16(), expected);
        c.check("post", "/v1/sales", status, &bytes, &ct);
    }
    for query in ["?state=active&limit=1", "?limit=0", "?state=lost"] {
        c.call(
            &app,
            Method::GET,
            "/v1/sales",
            &format!("/v1/sales{query}"),
            None,
        )
        .await;
    }
    c.call(&app, Method::GET, "/v1/sales", "/v1/sales", None)
        .await;
    let too_long = "x".repeat(129);
    for sku in ["ps5", "later", "nope", too_long.as_str()] {
        let uri = format!("/v1/sales/{sku}");
        c.call(&app, Method::GET, "/v1/sales/{sku}", &uri, None)
            .await;
    }

    // Purchases: accepted (with and without a key, then its retry), sold out, not active,
    // unknown, invalid, too large, rate limited.
    let purchase = "/v1/sales/{sku}/purchase";
    let (status, first) = c
        .call(
            &app,
            Method::POST,
            purchase,
            "/v1/sales/ps5/purchase",
            Some(json!({"user": "ann", "idempotency_key": "k1", "remark": "gift"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, again) = c
        .call(
            &app,
            Method::POST,
            purchase,
            "/v1/sales/ps5/purchase",
            Some(json!({"user": "ann", "idempotency_key": "k1", "remark": "gift"})),
        )
        .await;
    assert_eq!(
        (status, &again["order_id"]),
        (StatusCode::ACCEPTED, &first["order_id"])
    );
    for (uri, body, expected) in [
        ("/v1/sales/ps5/purchase", json!({"user": "bob"}), 202),
        ("/v1/sales/ps5/purchase", json!({"user": "cat"}), 409),
        ("/v1/sales/later/purchase", json!({"user": "cat"}), 409),
        ("/v1/sales/nope/purchase", json!({"user": "cat"}), 404),
        ("/v1/sales/ps5/purchase", json!({"user": 7}), 400),
        (
            "/v1/sales/ps5/purchase",
            json!({"user": "x".repeat(70_000)}),
            413,
        ),
    ] {
        let (status, body) = c.call(&app, Method::POST, purchase, uri, Some(body)).await;
        assert_eq!(status.as_u16(), expected, "{uri}: {body}");
    }
    let body = json!({"user": "dan"});
    assert!(
        c.limited(&app, purchase, "/v1/sales/ps5/purchase", body)
            .await
    );

    // The original API.
    for (body, expected) in [
        (
            json!({"user": "eve", "goods": "later", "remark": "hi"}),
            409,
        ),
        (json!({"user": "eve", "goods": "nope"}), 404),
        (json!({"user": "eve"}), 400),
        (json!({"user": "eve", "goods": "x".repeat(70_000)}), 413),
    ] {
        let (status, _) = c
            .call(
                &app,
                Method::POST,
                "/seckill/add",
                "/seckill/add",
                Some(body),
            )
            .await;
        assert_eq!(status.as_u16(), expected);
    }
    // A sale that still has stock, for a 202 through the original API.
    let (status, _, _) = send(&app, create("s3cret", json!({"sku": "tv", "stock": 9}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = c
        .call(
            &app,
            Method::POST,
            "/seckill/add",
            "/seckill/add",
            Some(json!({"user": "eve", "goods": "tv"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let body = json!({"user": "eve", "goods": "tv"});
    assert!(c.limited(&app, "/seckill/add", "/seckill/add", body).await);

    // Orders: read, list, pay, cancel, and their refusals, once the worker has persisted them.
    engine.drain().await.unwrap();

    // The console's reconcile: a dry run, a repair, an unknown sale, a bad body, a big one.
    let reconcile = "/v1/sales/{sku}/reconcile";
    for (uri, body, expected) in [
        ("/v1/sales/ps5/reconcile", None, 200),
        (
            "/v1/sales/ps5/reconcile",
            Some(json!({"repair": true})),
            200,
        ),
        ("/v1/sales/nope/reconcile", None, 404),
        ("/v1/sales/ps5/reconcile", Some(json!({"repair": 1})), 400),
        (
            "/v1/sales/ps5/reconcile",
            Some(json!({"repair": "x".repeat(70_000)})),
            413,
        ),
    ] {
        let (status, body) = c.call(&app, Method::POST, reconcile, uri, body).await;
        assert_eq!(status.as_u16(), expected, "{uri}: {body}");
    }
    let id = first["order_id"].as_str().unwrap().to_owned();
    let order_uri = format!("/v1/orders/{id}");
    c.call(&app, Method::GET, "/v1/orders/{id}", &order_uri, None)
        .await;
    c.call(
        &app,
        Method::GET,
        "/order/{id}",
        &format!("/order/{id}"),
        None,
    )
    .await;
    for template in ["/v1/orders/{id}", "/order/{id}"] {
        let prefix = template.trim_end_matches("{id}");
        for bad in ["not-a-uuid", "0191f3a0-0000-7000-8000-000000000000"] {
            c.call(&app, Method::GET, template, &format!("{prefix}{bad}"), None)
                .await;
        }
    }
    c.call(&app, Method::GET, "/order/all", "/order/all", None)
        .await;
    for query in [
        "",
        "?user=ann&sku=ps5&status=pending&limit=1",
        "?limit=0",
        "?status=lost",
    ] {
        c.call(
            &app,
            Method::GET,
            "/v1/orders",
            &format!("/v1/orders{query}"),
            None,
        )
        .await;
    }
    let (_, page) = c
        .call(&app, Method::GET, "/v1/orders", "/v1/orders?limit=1", None)
        .await;
    assert!(page["next"].is_string(), "{page}");
    let pay = "/v1/orders/{id}/pay";
    let cancel = "/v1/orders/{id}/cancel";
    let (status, _) = c
        .call(&app, Method::POST, pay, &format!("{order_uri}/pay"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c
        .call(&app, Method::POST, pay, &format!("{order_uri}/pay"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = c
        .call(
            &app,
            Method::POST,
            cancel,
            &format!("{order_uri}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    for template in [pay, cancel] {
        let action = template.rsplit('/').next().unwrap();
        for bad in ["nope", "0191f3a0-0000-7000-8000-000000000000"] {
            c.call(
                &app,
                Method::POST,
                template,
                &format!("/v1/orders/{bad}/{action}"),
                None,
            )
            .await;
        }
    }
    let (_, orders) = c
        .call(&app, Method::GET, "/v1/orders", "/v1/orders?user=bob", None)
        .await;
    let bob = orders["orders"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = c
        .call(
            &app,
            Method::POST,
            cancel,
            &format!("/v1/orders/{bob}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The live stock: a stream whose events are the sale; an unknown sale; a bad sku.
    let events = "/v1/sales/{sku}/events";
    for (uri, expected) in [
        ("/v1/sales/ps5/events".to_owned(), 200),
        ("/v1/sales/nope/events".to_owned(), 404),
        (format!("/v1/sales/{}/events", "x".repeat(200)), 400),
    ] {
        let (status, _) = c.call(&app, Method::GET, events, &uri, None).await;
        assert_eq!(status.as_u16(), expected, "{uri}");
    }

    // The console's report, as JSON and as CSV; an unknown sale; a bad format.
    let report = "/v1/sales/{sku}/report";
    for (uri, expected) in [
        ("/v1/sales/ps5/report", 200),
        ("/v1/sales/ps5/report?format=csv", 200),
        ("/v1/sales/nope/report", 404),
        ("/v1/sales/ps5/report?format=pdf", 400),
    ] {
        let (status, body) = c.call(&app, Method::GET, report, uri, None).await;
        assert_eq!(status.as_u16(), expected, "{uri}: {body}");
    }

    // The waiting room: join (as the admin: any buyer), read and follow a ticket; a sale without
    // a room, an unknown ticket, a bad sku, a bad body, a body too large.
    let (status, _, _) = send(
        &app,
        create(
            "s3cret",
            json!({"sku": "queued", "stock": 3, "waiting_room": {"pass_ttl_secs": 60}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let join = "/v1/sales/{sku}/queue";
    let long_sku = format!("/v1/sales/{}/queue", "x".repeat(200));
    let mut ticket = String::new();
    for (uri, body, expected) in [
        ("/v1/sales/queued/queue", json!({"user": "ann"}), 200),
        ("/v1/sales/ps5/queue", json!({"user": "ann"}), 404),
        ("/v1/sales/queued/queue", json!({"user": 7}), 400),
        (long_sku.as_str(), json!({"user": "ann"}), 400),
        (
            "/v1/sales/queued/queue",
            json!({"user": "x".repeat(70_000)}),
            413,
        ),
    ] {
        let (status, body) = c.call(&app, Method::POST, join, uri, Some(body)).await;
        assert_eq!(status.as_u16(), expected, "{uri}: {body}");
        if status == StatusCode::OK {
            ticket = body["ticket"].as_str().unwrap().to_owned();
        }
    }
    for (template, suffix) in [
        ("/v1/sales/{sku}/queue/{ticket}", ""),
        ("/v1/sales/{sku}/queue/{ticket}/events", "/events"),
    ] {
        for (uri, expected) in [
            (format!("/v1/sales/queued/queue/{ticket}{suffix}"), 200),
            (
                format!("/v1/sales/queued/queue/{}{suffix}", "0".repeat(32)),
                404,
            ),
            (
                format!("/v1/sales/{}/queue/{ticket}{suffix}", "x".repeat(200)),
                400,
            ),
        ] {
            let (status, _) = c.call(&app, Method::GET, template, &uri, None).await;
            assert_eq!(status.as_u16(), expected, "{uri}");
        }
    }

    // The console's page.
    let (status, _) = c
        .call(&app, Method::GET, "/dashboard", "/dashboard", None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // The console's end: the sale, now ended (purchases refused); an unknown sale.
    let end = "/v1/sales/{sku}/end";
    let (status, ended) = c
        .call(&app, Method::POST, end, "/v1/sales/ps5/end", None)
        .await;
    assert_eq!(
        (status, ended["state"].as_str()),
        (StatusCode::OK, Some("ended")),
        "{ended}"
    );
    let (status, _) = c
        .call(&app, Method::POST, end, "/v1/sales/nope/end", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let too_long = format!("/v1/sales/{}/end", "x".repeat(200));
    let (status, _) = c.call(&app, Method::POST, end, &too_long, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Operations.
    c.call(&app, Method::GET, "/health", "/health", None).await;
    c.call(&app, Method::GET, "/ready", "/ready", None).await;
    c.call(&app, Method::GET, "/metrics", "/metrics", None)
        .await;
    let mut failing = AppState::new(FlashSale::in_memory());
    failing.probes = vec![(
        "orders",
        probe(|| Err(nexussale_core::Error::retryable("mysql", "refused"))),
    )];
    c.call(&app_with(failing), Method::GET, "/ready", "/ready", None)
        .await;

    // Identity: a credential that does not hold is refused everywhere; a buyer cannot act as an
    // admin, pay, buy for another, or list another's orders.
    c.bearer = Some("not-a-token".into());
    for (method, path) in &operations(&c.document) {
        let uri = path
            .replace("{sku}", "ps5")
            .replace("{id}", &id)
            .replace("{ticket}", &"0".repeat(32));
        let method: Method = method.to_uppercase().parse().unwrap();
        let (status, _) = c.call(&app, method, path, &uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    c.bearer = Some(common::buyer_token(b"jwt-k3y", "ann", None));
    let forbidden = [
        (
            Method::POST,
            "/v1/sales",
            "/v1/sales".to_owned(),
            Some(json!({"sku": "x", "stock": 1})),
        ),
        (Method::POST, pay, format!("{order_uri}/pay"), None),
        (
            Method::POST,
            "/v1/sales/{sku}/purchase",
            "/v1/sales/ps5/purchase".to_owned(),
            Some(json!({"user": "bob"})),
        ),
        (
            Method::POST,
            "/seckill/add",
            "/seckill/add".to_owned(),
            Some(json!({"user": "bob", "goods": "ps5"})),
        ),
        (
            Method::GET,
            "/v1/orders",
            "/v1/orders?user=bob".to_owned(),
            None,
        ),
        (Method::GET, "/order/all", "/order/all".to_owned(), None),
        (
            Method::POST,
            "/v1/sales/{sku}/reconcile",
            "/v1/sales/ps5/reconcile".to_owned(),
            None,
        ),
        (
            Method::POST,
            "/v1/sales/{sku}/end",
            "/v1/sales/ps5/end".to_owned(),
            None,
        ),
        (
            Method::GET,
            "/v1/sales/{sku}/report",
            "/v1/sales/ps5/report".to_owned(),
            None,
        ),
    ];
    for (method, template, uri, body) in forbidden {
        let (status, _) = c.call(&app, method, template, &uri, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{template}");
    }
    // A buyer joins as itself only; the payment service is no buyer: it holds no ticket.
    let (status, _) = c
        .call(
            &app,
            Method::POST,
            join,
            "/v1/sales/queued/queue",
            Some(json!({"user": "bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    c.bearer = Some("p4y".into());
    for (template, suffix) in [
        ("/v1/sales/{sku}/queue/{ticket}", ""),
        ("/v1/sales/{sku}/queue/{ticket}/events", "/events"),
    ] {
        let uri = format!("/v1/sales/queued/queue/{ticket}{suffix}");
        let (status, _) = c.call(&app, Method::GET, template, &uri, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{template}");
    }
    // Another buyer's ticket is no ticket of theirs.
    c.bearer = Some(common::buyer_token(b"jwt-k3y", "bob", None));
    let uri = format!("/v1/sales/queued/queue/{ticket}");
    let (status, _) = c
        .call(
            &app,
            Method::GET,
            "/v1/sales/{sku}/queue/{ticket}",
            &uri,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Everything the document promises as a success or a business answer was reached.
    let mut missing = Vec::new();
    for (path, item) in c.document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for status in operation["responses"].as_object().unwrap().keys() {
                let code: u16 = status.parse().unwrap();
                let generic = code >= 500 || (path.starts_with("/api-docs"));
                if !generic && !c.seen.contains(&(method.clone(), path.clone(), code)) {
                    missing.push(format!("{method} {path} {code}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "never reached: {missing:?}");
}

/// Swagger UI renders offline: the redirect, the page, and every asset the page links to come
/// from the server itself, and the page loads our document.
#[tokio::test]
async fn swagger_ui_is_served_whole_from_the_binary() {
    let app = app(FlashSale::in_memory());
    let response = app
        .call(common::json_request(Method::GET, "/api-docs", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(response.headers()["location"], "/api-docs/");

    let (status, page, ct) = raw(&app, Method::GET, "/api-docs/", None).await;
    assert_eq!((status, ct.as_str()), (StatusCode::OK, "text/html"));
    let page = String::from_utf8(page.to_vec()).unwrap();
    assert!(page.contains(r#"<div id="swagger-ui">"#), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let mut assets = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        for piece in page.split(attribute).skip(1) {
            let link = piece.split('"').next().unwrap();
            assets.push(link.trim_start_matches("./").to_owned());
        }
    }
    for needed in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        assert!(
            assets.iter().any(|asset| asset == needed),
            "{needed} not linked"
        );
    }
    for asset in &assets {
        let (status, bytes, ct) = raw(&app, Method::GET, &format!("/api-docs/{asset}"), None).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert!(!bytes.is_empty() && !ct.is_empty(), "{asset}");
    }
    let (_, initializer, _) =
        raw(&app, Method::GET, "/api-docs/swagger-initializer.js", None).await;
    let initializer = String::from_utf8(initializer.to_vec()).unwrap();
    assert!(
        initializer.contains(r#""url": "/api-docs/openapi.json""#),
        "{initializer}"
    );
    assert!(
        initializer.contains(r#""validatorUrl": "none""#),
        "{initializer}"
    );

    let (status, _, ct) = raw(&app, Method::GET, "/api-docs/missing.js", None).await;
    assert_eq!(
        (status, ct.as_str()),
        (StatusCode::NOT_FOUND, "application/json")
    );
    let (status, _, _) = raw(&app, Method::POST, "/api-docs/openapi.json", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

/// The checker itself: a body the document does not allow fails it.
#[tokio::test]
#[should_panic(expected = "does not match the document")]
async fn the_checker_refuses_a_body_the_document_does_not_allow() {
    let document = served_document(&app(FlashSale::in_memory())).await;
    let mut c = Checker {
        document,
        seen: BTreeSet::new(),
        bearer: None,
    };
    let order = br#"{"id": "not-a-uuid", "sku": "ps5", "user": "ann", "quantity": 1,
        "status": "lost", "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T00:00:00Z"}"#;
    c.check(
        "get",
        "/v1/orders/{id}",
        StatusCode::OK,
        order,
        "application/json",
    );
}

/// What Swagger UI shows a reader: each error answer's example carries a code that answer can
/// give (not the schema's first code everywhere), headers have their type, bodies are realistic.
#[test]
fn swagger_examples_show_what_each_answer_really_is() {
    let document = serde_json::to_value(nexussale_server::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let Some(content) = response.pointer("/content/application~1json") else {
                    continue;
                };
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let description = response["description"].as_str().unwrap();
                let mut codes: Vec<&str> = content["examples"]
                    .as_object()
                    .map(|examples| {
                        examples
                            .values()
                            .map(|example| example["value"]["error"].as_str().unwrap())
                            .collect()
                    })
                    .unwrap_or_default();
                codes.extend(content["example"]["error"].as_str());
                assert!(!codes.is_empty(), "{method} {path} {status}: no example");
                for code in codes {
                    assert!(
                        description.contains(&format!("`{code}`")),
                        "{method} {path} {status}: example {code} for {description:?}"
                    );
                }
                checked += 1;
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                assert!(
                    parameter["schema"].get("oneOf").is_none(),
                    "{method} {path}: parameter {} may be null: {}",
                    parameter["name"],
                    parameter["schema"]
                );
            }
        }
    }
    assert!(checked > 30, "only {checked} error answers");
    for (path, field, value) in [
        ("/v1/sales/{sku}/purchase", "user", "ann"),
        ("/seckill/add", "user", "ann"),
        ("/v1/sales", "sku", "switch"),
    ] {
        let body = &document["paths"][path]["post"]["requestBody"]["content"]["application/json"];
        assert_eq!(body["example"][field], value, "{path}: {body}");
    }
}
