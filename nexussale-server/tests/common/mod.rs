//! Helpers shared by the server's tests: in-process requests, and a keep-alive HTTP client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::Service;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use nexussale_server::App;
use serde_json::Value;

/// One request through the service in process: status and parsed JSON body.
pub(crate) async fn call(
    app: &App,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_raw(app, json_request(method, uri, body)).await
}

/// A request with `body` (or none) as JSON.
pub(crate) fn json_request(method: Method, uri: &str, body: Option<Value>) -> Request<Full<Bytes>> {
    let bytes = body.map(|body| body.to_string()).unwrap_or_default();
    request(method, uri)
        .body(Full::new(Bytes::from(bytes)))
        .unwrap()
}

/// A request builder with JSON content type.
pub(crate) fn request(method: Method, uri: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
}

/// Sends a built request through the service.
pub(crate) async fn call_raw(app: &App, request: Request<Full<Bytes>>) -> (StatusCode, Value) {
    let response = app.call(request).await.unwrap();
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value: Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|err| panic!("not JSON ({err}): {bytes:?}"));
    if !status.is_success() {
        assert!(
            value["error"].is_string() && value["message"].is_string(),
            "not a contract error: {value}"
        );
    }
    (status, value)
}

/// A pooled keep-alive client.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(512)
        .build_http()
}

/// One request over the network: status and parsed JSON body.
pub(crate) async fn send(
    client: &HttpClient,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = json_request(method, url, body);
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}
