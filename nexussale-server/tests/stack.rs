//! The layers every request passes through: its id (taken or generated, echoed), its span and
//! access-log line (route template, never a header), in process with a log capture.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::Service;
use nexussale_core::layers::{Faulty, Method as Call};
use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
use nexussale_core::{FlashSale, Sale, Sku};
use nexussale_server::{
    App, AppState, BufferedLog, FlushOnDrop, PlainFormat, app_with, plain_fields,
};
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

/// How the server's per-request log is written.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Through tracing: a span and an event, in any subscriber (the library's default).
    Tracing,
    /// The binary's collected logs: `PlainFormat` into a `BufferedLog`, which the stack also
    /// writes its access lines into (`AppState::log_lines`).
    Lines,
}

/// The app, the capture of its log, and what must live as long as the test.
struct Logged {
    app: App,
    capture: Capture,
    flush: Option<FlushOnDrop>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logged {
    /// Everything logged so far (the buffered writer flushed first).
    fn text(&mut self) -> String {
        drop(self.flush.take());
        self.capture.text()
    }
}

fn with_log(access_log: bool, mode: Mode) -> Logged {
    with_log_over(FlashSale::in_memory(), access_log, mode, None)
}

fn with_log_over(
    engine: FlashSale,
    access_log: bool,
    mode: Mode,
    request_timeout: Option<Duration>,
) -> Logged {
    let capture = Capture::default();
    let mut state = AppState::new(engine);
    state.request_timeout = request_timeout;
    state.identity = nexussale_server::Identity::open().with_admin_token("s3cret-token");
    state.access_log = access_log;
    let builder = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false);
    let (guard, flush) = match mode {
        Mode::Tracing => {
            let writer = capture.clone();
            let subscriber = builder.with_writer(move || writer.clone()).finish();
            (tracing::subscriber::set_default(subscriber), None)
        }
        Mode::Lines => {
            let (lines, flush) = BufferedLog::to(capture.clone());
            let subscriber = builder
                .with_writer(lines.clone())
                .fmt_fields(plain_fields())
                .event_format(PlainFormat)
                .finish();
            state.log_lines = Some(lines);
            (tracing::subscriber::set_default(subscriber), Some(flush))
        }
    };
    Logged {
        app: app_with(state),
        capture,
        flush,
        _guard: guard,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_request_has_an_id_and_one_access_line_with_its_route_and_no_header() {
    for mode in [Mode::Tracing, Mode::Lines] {
        one_access_line_per_request(mode).await;
    }
}

async fn one_access_line_per_request(mode: Mode) {
    let mut logged = with_log(true, mode);
    let app = logged.app.clone();
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

    let log = logged.text();
    let access: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("nexussale_server::access"))
        .collect();
    assert_eq!(access.len(), 3, "{mode:?}: {log}");
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
    for mode in [Mode::Tracing, Mode::Lines] {
        let mut logged = with_log(false, mode);
        let (parts, _) = send(&logged.app, Request::builder().uri("/health"), None).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert!(parts.headers.contains_key("x-request-id"));
        let log = logged.text();
        assert!(!log.contains("nexussale_server::access"), "{mode:?}: {log}");
    }
}

/// A line logged while a request is served (here the deadline's warning) names the request's
/// id, as the contract asks, however the log is written.
#[tokio::test(flavor = "current_thread")]
async fn lines_logged_inside_a_request_carry_its_id() {
    for mode in [Mode::Tracing, Mode::Lines] {
        let slow_publish = Faulty::faulty(MemoryOrderQueue::new());
        slow_publish
            .hook()
            .slow(Call::Publish, Duration::from_millis(500));
        let engine = FlashSale::new(
            Arc::new(MemoryStockStore::new()),
            Arc::new(slow_publish),
            Arc::new(MemoryOrderRepository::new()),
        );
        engine
            .create_sale(Sale::new(Sku::new("slow").unwrap(), 5))
            .await
            .unwrap();
        let mut logged = with_log_over(engine, true, mode, Some(Duration::from_millis(20)));
        let (parts, body) = send(
            &logged.app,
            Request::builder()
                .method(Method::POST)
                .uri("/v1/sales/slow/purchase")
                .header("x-request-id", "late-1"),
            Some(json!({ "user": "ann" })),
        )
        .await;
        assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let log = logged.text();
        let warning = log
            .lines()
            .find(|line| line.contains("ran out of time"))
            .unwrap_or_else(|| panic!("{mode:?}: no warning in {log}"));
        assert!(
            warning.contains(" WARN request{request_id=late-1}: nexussale_server::"),
            "{mode:?}: {warning}"
        );
    }
}
