//! The request's id on every log line, and its access-log line.

use std::future::Future;
use std::time::Instant;

use http::Request;
use tracing::Instrument;

use super::Around;
use super::request_id::{self, X_REQUEST_ID};
use crate::body::Response;
use crate::log_format::{AccessLine, write_access_line};
use crate::log_writer::BufferedLog;
use crate::routes;

/// Where access-log lines go: `RUST_LOG=nexussale_server::access=off` silences them alone.
pub(crate) const TARGET: &str = "nexussale_server::access";

/// The request's id on every line it logs, and its access-log line.
///
/// Through tracing (the default, for any subscriber): a `request` span with the id, and an
/// info event. Straight into [`BufferedLog`] (`lines`, the binary's plain format): the id in a
/// task-local slot that `PlainFormat` writes, and the line written without an event; the same
/// text for a fraction of the cost (docs/BENCHMARKS.md).
#[derive(Debug, Clone)]
pub(crate) struct AccessLog {
    /// Whether to write the line (`--access-log`); the id is on the request's lines either way.
    pub(crate) enabled: bool,
    /// The process's log writer, when its subscriber writes `PlainFormat` lines into it.
    pub(crate) lines: Option<BufferedLog>,
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
        let id = request.headers().get(&X_REQUEST_ID).cloned();
        // Off, or filtered out (`RUST_LOG=warn`): not even the route is recorded.
        let enabled = self.enabled && tracing::enabled!(target: TARGET, tracing::Level::INFO);
        let lines = self.lines;
        // Boxed: the rest of the stack's future, held here beside the span or the id's slot,
        // would make this one kilobytes large, and every layer above copies what it wraps.
        let answer = Box::pin(served(enabled, next, request));
        // The request's span names its trace when one is recorded (JSON lines show it).
        let trace_fields = crate::otel::enabled();
        async move {
            let id = id.unwrap_or_else(|| http::HeaderValue::from_static(""));
            let latency_us = || u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            match lines {
                Some(lines) => {
                    let (response, route) = request_id::scope(id.clone(), answer).await;
                    if let Some(route) = route {
                        let line = AccessLine {
                            request_id: request_id::text(&id),
                            method: method.as_str(),
                            route,
                            status: response.status().as_u16(),
                            latency_us: latency_us(),
                        };
                        write_access_line(&lines, &line);
                    }
                    response
                }
                None => {
                    let text = request_id::text(&id);
                    // Info level: with the default filter every line the request logs names
                    // its id.
                    let span = if trace_fields {
                        tracing::info_span!("request", request_id = %text, trace_id = tracing::field::Empty, span_id = tracing::field::Empty)
                    } else {
                        tracing::info_span!("request", request_id = %text)
                    };
                    let (response, route) = answer.instrument(span.clone()).await;
                    if let Some(route) = route {
                        let _entered = span.enter();
                        // The route displayed, not debugged (nothing to quote); the latency a
                        // whole number of microseconds (a number in JSON, no float).
                        tracing::info!(
                            target: TARGET,
                            method = %method,
                            route = %route,
                            status = response.status().as_u16(),
                            latency_us = latency_us(),
                            "request"
                        );
                    }
                    response
                }
            }
        }
    }
}

/// The rest of the stack's answer, and the route it matched when the line is `enabled`.
async fn served<B, N, F>(
    enabled: bool,
    next: N,
    request: Request<B>,
) -> (Response, Option<&'static str>)
where
    N: FnOnce(Request<B>) -> F,
    F: Future<Output = Response>,
{
    let response = next(request).await;
    (response, enabled.then(routes::matched))
}
