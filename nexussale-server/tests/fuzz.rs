//! Hostile input, generated: sequences of requests to every route with arbitrary JSON (right
//! fields with wrong values, wrong fields, deep nesting, huge numbers, unicode, SQL and Redis
//! metacharacters, broken UTF-8, truncated documents), arbitrary path segments, query strings and
//! headers. Every answer must be below 500, and every refusal the contract's JSON error; after
//! each sequence the live sale still adds up (no unit lost or sold twice).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::Service;
use nexussale_core::{FlashSale, Sku};
use nexussale_server::{App, AppState, app_with};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Text a hostile client sends: any unicode, control characters, SQL, Redis key patterns and
/// hash tags, path tricks, and very long strings.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        2 => prop::sample::select(vec![
            "",
            " ",
            "ps5",
            "'; DROP TABLE orders; --",
            "\" OR 1=1 --",
            "\\",
            "%",
            "%00",
            "\0",
            "a\nb",
            "{ps5}",
            "*",
            "ps5:*",
            "../../etc/passwd",
            "/v1/sales",
            "?a=b&c=d#e",
            "🎮🎮🎮",
            "\u{202e}gnp.exe",
            "名前",
            "NaN",
            "null",
            "-1",
            "18446744073709551616",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z0-9]{120,140}",
        1 => ".{0,300}",
    ]
}

/// Any JSON number, including ones no field accepts.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        (0u64..5).prop_map(Value::from),
        Just(json!(u32::MAX as u64 + 1)),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        hostile_text().prop_map(Value::String),
        Just(json!("2026-11-24T10:00:00Z")),
        Just(json!("not a time")),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(hostile_text(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// An object with some of the fields the routes read, each with an arbitrary value, and maybe
/// a stray field.
fn near_miss_object() -> impl Strategy<Value = Value> {
    const FIELDS: &[&str] = &[
        "sku",
        "stock",
        "per_user_limit",
        "starts_at",
        "ends_at",
        "reservation_ttl_secs",
        "user",
        "quantity",
        "idempotency_key",
        "goods",
        "remark",
    ];
    (
        prop::collection::vec((prop::sample::select(FIELDS), any_json()), 0..8),
        prop::option::of((hostile_text(), scalar())),
    )
        .prop_map(|(fields, stray)| {
            let mut object = Map::new();
            for (name, value) in fields {
                object.insert(name.to_owned(), value);
            }
            if let Some((name, value)) = stray {
                object.insert(name, value);
            }
            Value::Object(object)
        })
}

/// A body: arbitrary JSON, a near miss, a valid purchase, or bytes that are not JSON at all.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => near_miss_object().prop_map(|v| v.to_string().into_bytes()),
        2 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => hostile_text().prop_map(|user| json!({ "user": user }).to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => near_miss_object().prop_flat_map(|v| {
            let text = v.to_string();
            (0..=text.len()).prop_map(move |cut| text.as_bytes()[..cut].to_vec())
        }),
        1 => Just(b"[".repeat(10_000)),
    ]
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => hostile_text().prop_map(|text| utf8_percent_encode(&text, NON_ALPHANUMERIC).to_string()),
        1 => Just("live".to_owned()),
        1 => Just("00000000-0000-0000-0000-000000000000".to_owned()),
        1 => Just("%ZZ".to_owned()),
        1 => Just("%FF%FE".to_owned()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(&["user", "sku", "status", "limit", "after", "x", ""][..]),
            hostile_text(),
        ),
        0..4,
    )
    .prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(key, value)| format!("{key}={}", utf8_percent_encode(&value, NON_ALPHANUMERIC)))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// One request: a route of the contract (or near one), a method, a body and headers.
#[derive(Debug, Clone)]
struct Hostile {
    method: Method,
    path: String,
    body: Vec<u8>,
    content_type: Option<String>,
    idempotency_key: Option<String>,
    authorization: Option<String>,
}

/// A request: mostly anything; often a purchase on the live sale, or a payment or cancel of the
/// last order it accepted (`{last}` in the path), so the books have something to keep.
fn request() -> impl Strategy<Value = Hostile> {
    prop_oneof![
        3 => any_request(),
        2 => (hostile_text(), 0u32..5, prop::option::of(hostile_text())).prop_map(|(user, quantity, key)| {
            let mut body = json!({ "user": user, "quantity": quantity });
            if let Some(key) = key {
                body["idempotency_key"] = json!(key);
            }
            Hostile::post("/v1/sales/live/purchase", body.to_string().into_bytes())
        }),
        1 => prop::sample::select(vec!["pay", "cancel"])
            .prop_map(|action| Hostile::post(&format!("/v1/orders/{{last}}/{action}"), Vec::new())),
    ]
}

impl Hostile {
    fn post(path: &str, body: Vec<u8>) -> Self {
        Self {
            method: Method::POST,
            path: path.to_owned(),
            body,
            content_type: Some("application/json".to_owned()),
            idempotency_key: None,
            authorization: None,
        }
    }
}

fn any_request() -> impl Strategy<Value = Hostile> {
    let path = (segment(), query()).prop_flat_map(|(seg, q)| {
        prop::sample::select(vec![
            "/v1/sales".to_owned(),
            format!("/v1/sales/{seg}"),
            format!("/v1/sales/{seg}/purchase"),
            "/v1/sales/live/purchase".to_owned(),
            format!("/v1/orders?{q}"),
            format!("/v1/orders/{seg}"),
            format!("/v1/orders/{seg}/pay"),
            format!("/v1/orders/{seg}/cancel"),
            "/seckill/add".to_owned(),
            "/order/all".to_owned(),
            format!("/order/{seg}"),
            "/health".to_owned(),
            "/ready".to_owned(),
            "/metrics".to_owned(),
            format!("/{seg}"),
        ])
    });
    (
        prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::DELETE]),
        path,
        body(),
        prop::option::of(prop::sample::select(vec![
            "application/json".to_owned(),
            "text/plain".to_owned(),
            "application/json; charset=latin1".to_owned(),
            "multipart/form-data; boundary=x".to_owned(),
        ])),
        prop::option::of("[ -~]{0,200}"),
        prop_oneof![
            Just(None),
            Just(Some("Bearer t0ken".to_owned())),
            "[ -~]{0,80}".prop_map(Some),
        ],
    )
        .prop_map(
            |(method, path, body, content_type, idempotency_key, authorization)| Hostile {
                method,
                path,
                body,
                content_type,
                idempotency_key,
                authorization,
            },
        )
}

/// Sends one hostile request (`{last}` in its path: the last accepted order); fails the case on
/// a 5xx or an answer outside the contract. Answers the status and the body.
async fn send(
    app: &App,
    hostile: &Hostile,
    last: &str,
) -> Result<(StatusCode, Value), TestCaseError> {
    let path = hostile.path.replace("{last}", last);
    let mut builder = Request::builder().method(hostile.method.clone()).uri(&path);
    if let Some(content_type) = &hostile.content_type {
        builder = builder.header("content-type", content_type);
    }
    if let Some(key) = &hostile.idempotency_key {
        builder = builder.header("idempotency-key", key);
    }
    if let Some(authorization) = &hostile.authorization {
        builder = builder.header("authorization", authorization);
    }
    // A path that is not even a URI never reaches a server: hyper refuses it on the wire.
    let Ok(request) = builder.body(Full::new(Bytes::from(hostile.body.clone()))) else {
        return Ok((StatusCode::BAD_REQUEST, Value::Null));
    };
    let response = app.call(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap_or("").to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    prop_assert!(
        status.as_u16() < 500,
        "{status} for {hostile:?}: {}",
        String::from_utf8_lossy(&bytes)
    );
    if !status.is_success() {
        prop_assert_eq!(content_type.as_deref(), Some("application/json"));
        let error: Value = serde_json::from_slice(&bytes)
            .map_err(|err| TestCaseError::fail(format!("{status}: not JSON ({err})")))?;
        prop_assert!(
            error["error"].is_string() && error["message"].is_string(),
            "not a contract error: {error}"
        );
        prop_assert!(
            nexussale_server::ERROR_CODES.contains(&error["error"].as_str().unwrap()),
            "unknown error code: {error}"
        );
    }
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 192,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_requests_never_get_a_5xx_and_never_break_the_books(
        requests in prop::collection::vec(request(), 1..24)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let engine = FlashSale::in_memory();
            let mut state = AppState::new(engine.clone());
            state.identity = nexussale_server::Identity::open().with_admin_token("t0ken");
            let app = app_with(state);
            let live = Request::post("/v1/sales")
                .header("authorization", "Bearer t0ken")
                .body(Full::new(Bytes::from(r#"{"sku":"live","stock":40,"per_user_limit":3}"#)))
                .unwrap();
            prop_assert_eq!(app.call(live).await.unwrap().status(), StatusCode::CREATED);
            let mut last = "00000000-0000-0000-0000-000000000000".to_owned();
            for hostile in &requests {
                let (status, body) = send(&app, hostile, &last).await?;
                if status == StatusCode::ACCEPTED {
                    if let Some(id) = body["order_id"].as_str() {
                        last = id.to_owned();
                    }
                    // Payments need the order persisted.
                    engine.drain().await.unwrap();
                }
            }
            // Whatever was bought, paid or cancelled, the live sale's units add up, and its
            // orders (once persisted) are exactly what the store holds.
            engine.drain().await.unwrap();
            let sku: Sku = "live".parse().unwrap();
            let report = engine.reconcile(&sku, false).await.unwrap();
            let store = report.store.unwrap();
            prop_assert_eq!(store.available + store.reserved + store.sold, 40);
            prop_assert!(report.in_sync(), "{:?}", report);
            Ok(())
        })?;
    }
}
