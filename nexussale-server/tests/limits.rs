//! The server's limits over real sockets: slow headers, connections past the limit, requests that
//! run out of time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::call_raw;
use http::{Method, StatusCode};
use hyper::service::Service;
use nexussale_core::{CancellationToken, FlashSale};
use nexussale_server::{AppState, Limits, Probe, app, app_with, serve_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start(limits: Limits) -> (String, CancellationToken) {
    start_app(app(FlashSale::in_memory()), limits).await
}

async fn start_app(app: nexussale_server::App, limits: Limits) -> (String, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let stop = CancellationToken::new();
    tokio::spawn(serve_with(listener, app, stop.clone(), limits));
    (address, stop)
}

/// A sale of plenty, its bodies given `body_timeout` to arrive.
async fn shop(body_timeout: Duration) -> nexussale_server::App {
    let engine = FlashSale::in_memory();
    engine
        .create_sale(nexussale_core::Sale::new("ps5".parse().unwrap(), 1_000_000))
        .await
        .unwrap();
    let mut state = AppState::new(engine);
    state.body_timeout = Some(body_timeout);
    app_with(state)
}

/// Headers of a purchase announcing 1,000 bytes of body, and only its first byte.
const SLOW_BODY: &[u8] = b"POST /v1/sales/ps5/purchase HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{";

/// Reads until the peer closes; answers what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_client_too_slow_with_its_headers_is_cut_off() {
    let mut limits = Limits::default();
    limits.max_connections = 10;
    limits.header_read_timeout = Duration::from_millis(300);
    let (address, _stop) = start(limits).await;
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut slow))
        .await
        .expect("the connection was not closed");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_slot() {
    let mut limits = Limits::default();
    limits.max_connections = 2;
    limits.header_read_timeout = Duration::from_secs(1);
    let (address, _stop) = start(limits).await;
    // Two connections that never send a request hold both slots...
    let _idle = [
        TcpStream::connect(&address).await.unwrap(),
        TcpStream::connect(&address).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so a third is not served until the header timeout frees one.
    let mut third = TcpStream::connect(&address).await.unwrap();
    third
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut first = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.read(&mut first))
            .await
            .is_err(),
        "served past the connection limit"
    );
    let answer = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut third))
        .await
        .unwrap();
    assert!(answer.contains("200 OK"), "{answer}");
    assert!(start.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn a_request_that_runs_out_of_time_gets_503_with_retry_after() {
    let mut state = AppState::new(FlashSale::in_memory());
    state.request_timeout = Some(Duration::from_millis(200));
    let hang: Probe = Arc::new(|| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        })
    });
    state.probes = vec![("stock", hang)];
    let app = app_with(state);
    let started = Instant::now();
    let response = app
        .call(common::json_request(Method::GET, "/ready", None))
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = call_raw(&app, common::json_request(Method::GET, "/ready", None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "unavailable");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Requests hyper refuses before the service sees them still get the contract's JSON body.
#[tokio::test]
async fn requests_hyper_cannot_parse_get_a_json_refusal() {
    let (address, _stop) = start(Limits::default()).await;
    let long_path = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
    let cases: [(&[u8], &str); 3] = [
        // What `curl -XPOST 'localhost:3000/v1/orders/<id>/pay'` sends.
        (
            b"POST /v1/orders/<id>/pay HTTP/1.1\r\nhost: x\r\n\r\n",
            "400",
        ),
        (b"GET /health HTTP/1.1\r\nbad header\r\n\r\n", "400"),
        (long_path.as_bytes(), "414"),
    ];
    for (request, status) in cases {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(request).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut stream))
            .await
            .expect("the connection was not closed");
        let (head, body) = answer.split_once("\r\n\r\n").expect(&answer);
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{answer}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).expect(body);
        assert_eq!(body["error"], "invalid_request", "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // The service's own refusals are untouched: one keep-alive connection, two answers.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"GET /v1/orders/nope HTTP/1.1\r\nhost: x\r\n\r\nGET /v1/orders/nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut stream).await;
    assert_eq!(
        answer.matches("HTTP/1.1 400 Bad Request").count(),
        2,
        "{answer}"
    );
    assert_eq!(
        answer.matches("the order id must be a UUID").count(),
        2,
        "{answer}"
    );
}

#[tokio::test]
async fn a_body_too_slow_to_arrive_is_answered_408_and_closed() {
    let (address, _stop) =
        start_app(shop(Duration::from_millis(300)).await, Limits::default()).await;
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(SLOW_BODY).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut slow))
        .await
        .expect("the connection was not closed");
    let (head, body) = answer.split_once("\r\n\r\n").expect(&answer);
    assert!(head.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_str(body).expect(body);
    assert_eq!(body["error"], "invalid_request", "{body}");
}

/// Hundreds of slow bodies from one address take at most its cap of the server's connections:
/// another client is still served at once, instead of waiting in the backlog until the slow ones
/// time out (3 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_from_one_address_do_not_starve_the_others() {
    let mut limits = Limits::default();
    limits.max_connections = 100;
    limits.max_connections_per_ip = Some(20);
    let (address, _stop) = start_app(shop(Duration::from_secs(3)).await, limits).await;
    let target: std::net::SocketAddr = address.parse().unwrap();
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut stream = TcpStream::connect(target).await.unwrap();
        // Some are closed before they send: that is the cap at work.
        let _ = stream.write_all(SLOW_BODY).await;
        slow.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Another address (the loopback net is all ours), with a health check and a purchase.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let started = Instant::now();
    let mut other = tokio::time::timeout(Duration::from_secs(1), socket.connect(target))
        .await
        .expect("no connection for another address")
        .unwrap();
    other
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let body = r#"{"user":"patient"}"#;
    other
        .write_all(format!("POST /v1/sales/ps5/purchase HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
        .await
        .unwrap();
    let answers = tokio::time::timeout(Duration::from_secs(1), read_to_close(&mut other))
        .await
        .expect("another address was not served while one address sent slow bodies");
    assert!(answers.starts_with("HTTP/1.1 200 OK"), "{answers}");
    assert!(answers.contains("HTTP/1.1 202 Accepted"), "{answers}");
    // Well under the slow bodies' 3 s: the other address never waited for them.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(slow);
}
