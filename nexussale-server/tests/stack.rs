//! The layers every request passes through: its id (taken or generated, echoed), its span and
//! access-log line (route template, never a header), in process with a log capture.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::Service;
use nexussale_core::FlashSale;
use nexussale_server::{App, AppState, app_with};
use serde_json::{Value, json};

/// Log lines, as the server's plain format writes them.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

async fn send(
    app: &App,
    request: http::request::Builder,
    body: Option<Value>,
) -> (http::response::Parts, Value) {
    let bytes = body.map(|body| body.to_string()).unwrap_or_default();
    let response = app
        .call(request.body(Full::new(Bytes::from(bytes))).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn with_log(access_log: bool) -> (App, Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let mut state = AppState::new(FlashSale::in_memory());
    state.identity = nexussale_server::Identity::open().with_admin_token("s3cret-token");
    state.access_log = access_log;
    (app_with(state), capture, guard)
}

#[tokio::test(flavor = "current_thread")]
async fn every_request_has_an_id_and_one_access_line_with_its_route_and_no_header() {
    let (app, capture, _guard) = with_log(true);
    let (parts, _) = send(
        &app,
        Request::builder()
            .method(Method::POST)
            .uri("/v1/sales")
            .header("authorization", "Bearer s3cret-token")
            .header("x-request-id", "trace-me-1"),
        Some(json!({ "sku": "ps5", "stock": 5 })),
    )
    .await;
    assert_eq!(parts.status, StatusCode::CREATED);
    assert_eq!(parts.headers["x-request-id"], "trace-me-1");
    let (parts, order) = send(
        &app,
        Request::builder()
            .method(Method::POST)
            .uri("/v1/sales/ps5/purchase")
            .header("cookie", "session=c00kie-value")
            .header("x-request-id", "x".repeat(129)),
        Some(json!({ "user": "ann" })),
    )
    .await;
    assert_eq!(parts.status, StatusCode::ACCEPTED, "{order}");
    // Too long to be taken: a new one.
    let generated = parts.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 32, "{generated}");
    let (parts, _) = send(&app, Request::builder().uri("/nowhere"), None).await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert!(parts.headers.contains_key("x-request-id"));

    let log = capture.text();
    let access: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("nexussale_server::access"))
        .collect();
    assert_eq!(access.len(), 3, "{log}");
    for (line, wanted) in access.iter().zip([
        [
            "request_id=trace-me-1",
            "method=POST",
            "route=/v1/sales ",
            "status=201",
        ],
        [
            &format!("request_id={generated}"),
            "method=POST",
            "route=/v1/sales/{sku}/purchase ",
            "status=202",
        ],
        ["request_id=", "method=GET", "route=- ", "status=404"],
    ]) {
        for part in wanted {
            assert!(line.contains(part), "{part} not in {line}");
        }
        assert!(line.contains("latency_us="), "{line}");
    }
    for secret in ["s3cret-token", "c00kie-value", "/v1/sales/ps5/purchase"] {
        assert!(!log.contains(secret), "{secret} logged: {log}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_access_log_can_be_turned_off() {
    let (app, capture, _guard) = with_log(false);
    let (parts, _) = send(&app, Request::builder().uri("/health"), None).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert!(parts.headers.contains_key("x-request-id"));
    assert!(
        !capture.text().contains("nexussale_server::access"),
        "{}",
        capture.text()
    );
}
