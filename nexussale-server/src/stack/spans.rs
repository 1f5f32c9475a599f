//! The request's span for a trace exporter: `HTTP request`, named `METHOD /route/{template}`
//! once routed, with its status; a child of the caller's span when the request carries a W3C
//! `traceparent`. Built only when a subscriber records `TRACE` spans with an `otel.name` (the
//! binary with `--otlp-endpoint`): otherwise it costs a level check.

use std::future::Future;

use http::{HeaderName, Request};
use nexussale_core::trace::{self, TraceParent};
use tracing::Instrument;
use tracing::field::Empty;

use super::Around;
use super::request_id::X_REQUEST_ID;
use crate::body::Response;
use crate::routes;

/// The header a caller's trace context arrives in.
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Runs each request in its `HTTP request` span.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpSpans;

impl Around for HttpSpans {
    fn around<B, N, F>(self, request: Request<B>, next: N) -> impl Future<Output = Response> + Send
    where
        B: Send + 'static,
        N: FnOnce(Request<B>) -> F + Send + 'static,
        F: Future<Output = Response> + Send,
    {
        let method = request.method().clone();
        let parent = crate::otel::enabled()
            .then(|| {
                request
                    .headers()
                    .get(&TRACEPARENT)
                    .and_then(|value| value.to_str().ok())
                    .and_then(TraceParent::parse)
            })
            .flatten();
        // `otel.name` declared (the exporter's filter looks for it); the name itself is set
        // once routed. Sampled here, as the trace starts: a request left out builds no span.
        let span = trace::root(parent.as_ref(), || {
            tracing::trace_span!(
                "HTTP request",
                otel.name = Empty,
                otel.kind = "server",
                otel.status_code = Empty,
                http.request.method = %method,
                http.route = Empty,
                http.response.status_code = Empty,
                request_id = Empty,
            )
        });
        async move {
            if span.is_disabled() {
                return next(request).await;
            }
            if let Some(id) = request.headers().get(&X_REQUEST_ID) {
                span.record("request_id", super::request_id::text(id));
            }
            if let Some(parent) = &parent {
                trace::follow(&span, parent);
            }
            // The request's log lines (its `request` span, in the JSON format) name the trace.
            if let Some(context) = span.in_scope(trace::current) {
                let lines = tracing::Span::current();
                lines.record("trace_id", context.trace_id());
                lines.record("span_id", context.span_id());
            }
            let response = Box::pin(next(request)).instrument(span.clone()).await;
            let route = routes::matched();
            let status = response.status();
            crate::otel::rename(&span, format!("{method} {route}"));
            span.record("http.route", route);
            span.record("http.response.status_code", status.as_u16());
            if status.is_server_error() {
                span.record("otel.status_code", "error");
            }
            response
        }
    }
}
