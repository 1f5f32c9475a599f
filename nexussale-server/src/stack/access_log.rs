//! The request's span and its access-log line.

use std::future::Future;
use std::time::Instant;

use http::Request;
use tracing::Instrument;

use super::Around;
use super::request_id::X_REQUEST_ID;
use crate::body::Response;
use crate::routes;

/// Where access-log lines go: `RUST_LOG=nexussale_server::access=off` silences them alone.
pub(crate) const TARGET: &str = "nexussale_server::access";

/// The request's span, and its access-log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AccessLog {
    /// Whether to write the line (`--access-log`); the span is there either way.
    pub(crate) enabled: bool,
}

impl Around for AccessLog {
    fn around<B, N, F>(self, request: Request<B>, next: N) -> impl Future<Output = Response> + Send
    where
        B: Send + 'static,
        N: FnOnce(Request<B>) -> F + Send + 'static,
        F: Future<Output = Response> + Send,
    {
        let started = Instant::now();
        let method = request.method().clone();
        let id = request.headers().get(&X_REQUEST_ID);
        let id = id.and_then(|id| id.to_str().ok()).unwrap_or_default();
        // Info level: with the default filter every line the request logs names its id. (Its
        // cost, and the line's, are measured in docs/BENCHMARKS.md.)
        let span = tracing::info_span!("request", request_id = %id);
        // Off, or filtered out (`RUST_LOG=warn`): not even the route is recorded.
        let enabled = self.enabled && tracing::enabled!(target: TARGET, tracing::Level::INFO);
        async move {
            if !enabled {
                return next(request).await;
            }
            let (response, route) = routes::recording_route(next(request)).await;
            // The route displayed, not debugged (nothing to quote and escape); the latency a
            // whole number of microseconds (a number in JSON, no float to format).
            let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            tracing::info!(
                target: TARGET,
                method = %method,
                route = %route,
                status = response.status().as_u16(),
                latency_us,
                "request"
            );
            response
        }
        .instrument(span)
    }
}
