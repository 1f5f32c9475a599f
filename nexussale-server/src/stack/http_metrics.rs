//! HTTP metrics: `nexussale_http_requests_total{method,route,class}` (the route template, never
//! the raw path, so the series stay few) and `nexussale_http_requests_in_flight`.

use std::future::Future;

use futures::FutureExt;
use http::{Method, Request};

use super::Around;
use crate::body::Response;
use crate::routes;

/// Counts each request by route and status class, and those in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpMetrics;

/// One request in flight, until dropped (answered, or its connection gone).
struct InFlight;

impl InFlight {
    fn start() -> Self {
        metrics::gauge!("nexussale_http_requests_in_flight").increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("nexussale_http_requests_in_flight").decrement(1.0);
    }
}

/// The method as a label (static: a label value must outlive the recorder's key).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `2xx`, `4xx`, …
fn class(status: http::StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

impl Around for HttpMetrics {
    fn around<B, N, F>(self, request: Request<B>, next: N) -> impl Future<Output = Response> + Send
    where
        B: Send + 'static,
        N: FnOnce(Request<B>) -> F + Send + 'static,
        F: Future<Output = Response> + Send,
    {
        let method = method_label(request.method());
        let in_flight = InFlight::start();
        next(request).map(move |response| {
            let route = match routes::matched() {
                "-" => "unmatched",
                route => route,
            };
            metrics::counter!(
                "nexussale_http_requests_total",
                "method" => method,
                "route" => route,
                "class" => class(response.status()),
            )
            .increment(1);
            drop(in_flight);
            response
        })
    }
}
