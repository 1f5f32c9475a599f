//! The HTTP service as a stack of layers: each cross-cutting concern is one layer, written once.
//! Each concern is an [`Around`]: what runs before and after the rest of the stack, handed to it
//! as a continuation. [`Stack`] composes them statically, so a request costs two allocations (the
//! answer, and the router's future inside it) and two reference counts (the state, the
//! credentials), however many layers there are. (As tower layers, each boxed its future and cloned the service below: five
//! allocations and six atomic increments on one shared count per request; docs/BENCHMARKS.md
//! has the instruction counts.) In the order a request meets them:
//!
//! 1. [`RequestIds`]: `x-request-id` taken (≤ 128 visible ASCII characters) or generated,
//!    echoed on the answer.
//! 2. [`AccessLog`]: the request's id on every log line (a span, or a task-local slot the
//!    binary's plain format writes) and, unless `--access-log off`, one info line per request:
//!    method, route template, status, latency.
//!    No header is ever logged, so neither `authorization` nor cookies can be.
//! 3. [`HttpMetrics`]: requests by method, route template and status class; requests in
//!    flight.
//! 4. [`HttpSpans`]: with traces exported, the request's span (a child of the caller's
//!    `traceparent`), named by its route template, with its status.
//! 5. [`CatchPanic`]: a panicking handler answers 500 in the contract's JSON; neither the
//!    connection's task nor the server goes down.
//! 6. [`Authenticate`]: the `Authorization` header verified once (admin, payment or buyer
//!    token); the router checks the result against the route's access in the route table.
//! 7. [`Deadline`]: a request past `--request-timeout-secs` answers 503 `unavailable` with
//!    `Retry-After`.
//! 8. `router`: the route table's handlers.
//!
//! The route template the router matched is recorded for the whole stack
//! ([`routes::matched`]), so the layers above the router name it.
//!
//! tower-http's catch-panic and timeout layers answer with bodies of their own type, and without
//! the contract's JSON; these keep every answer a [`Response`]. Adding a concern is one `Around`
//! and one line in [`Stack::call`].

mod access_log;
mod authenticate;
mod deadline;
mod http_metrics;
mod panic;
pub(crate) mod request_id;
mod spans;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::Request;
use hyper::body::Body;

pub(crate) use access_log::{AccessLog, TARGET as ACCESS_TARGET};
pub(crate) use authenticate::Authenticate;
pub(crate) use deadline::Deadline;
pub(crate) use http_metrics::HttpMetrics;
pub(crate) use panic::CatchPanic;
pub(crate) use request_id::RequestIds;
pub(crate) use spans::HttpSpans;

use crate::body::{Response, TimedBody};
use crate::routes;
use crate::state::AppState;

/// What the stack answers.
pub(crate) type Answer = BoxFuture<'static, Result<Response, Infallible>>;

/// One concern of the stack: what runs around `next`, the rest of the stack.
pub(crate) trait Around: Clone + Send + Sync + 'static {
    fn around<B, N, F>(self, request: Request<B>, next: N) -> impl Future<Output = Response> + Send
    where
        B: Send + 'static,
        N: FnOnce(Request<B>) -> F + Send + 'static,
        F: Future<Output = Response> + Send;
}

/// The whole stack over the route table.
#[derive(Debug, Clone)]
pub(crate) struct Stack {
    ids: RequestIds,
    log: AccessLog,
    meter: HttpMetrics,
    spans: HttpSpans,
    panics: CatchPanic,
    auth: Authenticate,
    deadline: Deadline,
    state: Arc<AppState>,
}

/// Builds the stack over `state`.
pub(crate) fn stack(state: Arc<AppState>) -> Stack {
    Stack {
        ids: RequestIds,
        log: AccessLog {
            enabled: state.access_log,
            lines: state.log_lines.clone(),
        },
        meter: HttpMetrics,
        spans: HttpSpans,
        panics: CatchPanic,
        auth: Authenticate {
            identity: Arc::new(state.identity.clone()),
        },
        deadline: Deadline {
            limit: state.request_timeout,
        },
        state,
    }
}

impl Stack {
    /// Answers `request` through every layer, outermost first.
    pub(crate) fn call<B>(&self, request: Request<TimedBody<B>>) -> Answer
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let Self {
            ids,
            meter,
            spans,
            panics,
            deadline,
            ..
        } = *self;
        let log = self.log.clone();
        let auth = self.auth.clone();
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let answer = ids.around(request, move |request| {
                log.around(request, move |request| {
                    meter.around(request, move |request| {
                        spans.around(request, move |request| {
                            panics.around(request, move |request| {
                                auth.around(request, move |request| {
                                    // Boxed: the route table's future is kilobytes, and each
                                    // layer would otherwise copy it as it wraps it (most of a
                                    // request's instructions).
                                    deadline.around(request, move |request| {
                                        Box::pin(router(state, request))
                                    })
                                })
                            })
                        })
                    })
                })
            });
            Ok(routes::recording_route(answer).await)
        })
    }
}

/// The innermost step: the route table's handlers over the shared state.
async fn router<B>(state: Arc<AppState>, request: Request<TimedBody<B>>) -> Response
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut response = routes::route(&state, request).await;
    // A body too slow to arrive: close the connection, so the client holds no slot any longer.
    if response.status() == http::StatusCode::REQUEST_TIMEOUT {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    response
}
