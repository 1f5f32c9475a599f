//! The HTTP service as a tower stack: each cross-cutting concern is one layer, written once, in
//! the order a request meets them:
//!
//! Each concern is an [`Around`] (what runs before and after the services below it); one
//! [`Layered`] service and one [`AroundLayer`] carry them all, so the tower plumbing is written
//! once.
//!
//! 1. [`RequestIds`]: `x-request-id` taken (≤ 128 visible ASCII characters) or generated,
//!    echoed on the answer.
//! 2. [`AccessLog`]: the request's span (its id on every log line) and, unless
//!    `--access-log off`, one info line per request: method, route template, status, latency.
//!    No header is ever logged, so neither `authorization` nor cookies can be.
//! 3. [`CatchPanic`]: a panicking handler answers 500 in the contract's JSON; neither the
//!    connection's task nor the server goes down.
//! 4. [`Deadline`]: a request past `--request-timeout-secs` answers 503 `unavailable` with
//!    `Retry-After`.
//! 5. [`Router`]: the route table's handlers.
//!
//! tower-http's catch-panic and timeout layers answer with bodies of their own type, and without
//! the contract's JSON; these keep every answer a [`Response`].

mod access_log;
mod deadline;
mod panic;
mod request_id;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::Request;
use hyper::body::Body;
use tower::ServiceBuilder;

pub(crate) use access_log::AccessLog;
pub(crate) use deadline::Deadline;
pub(crate) use panic::CatchPanic;
pub(crate) use request_id::RequestIds;

use crate::body::{Response, TimedBody};
use crate::routes;
use crate::state::AppState;

/// What every layer answers.
pub(crate) type Answer = BoxFuture<'static, Result<Response, Infallible>>;

/// What a layer wraps: the rest of the stack.
pub(crate) trait Inner<B>:
    tower::Service<Request<B>, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S, B> Inner<B> for S where
    S: tower::Service<Request<B>, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static
{
}

/// One concern of the stack: what runs around the services below it. Every service of the
/// stack is always ready, so `inner` is called at once (`oneshot`).
pub(crate) trait Around: Copy + Send + 'static {
    fn around<S, B>(&self, inner: S, request: Request<B>) -> Answer
    where
        S: Inner<B>,
        B: Send + 'static;
}

/// The tower [`Layer`](tower::Layer) of an [`Around`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct AroundLayer<A>(pub(crate) A);

impl<A: Around, S> tower::Layer<S> for AroundLayer<A> {
    type Service = Layered<A, S>;
    fn layer(&self, inner: S) -> Layered<A, S> {
        Layered {
            around: self.0,
            inner,
        }
    }
}

/// An [`Around`] over the services below it.
#[derive(Debug, Clone)]
pub(crate) struct Layered<A, S> {
    around: A,
    inner: S,
}

impl<A, S, B> tower::Service<Request<B>> for Layered<A, S>
where
    A: Around,
    S: Inner<B>,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Answer {
        self.around.around(self.inner.clone(), request)
    }
}

/// The whole stack over the router.
pub(crate) type Stack =
    Layered<RequestIds, Layered<AccessLog, Layered<CatchPanic, Layered<Deadline, Router>>>>;

/// Builds the stack over `state`.
pub(crate) fn stack(state: Arc<AppState>) -> Stack {
    ServiceBuilder::new()
        .layer(AroundLayer(RequestIds))
        .layer(AroundLayer(AccessLog {
            enabled: state.access_log,
        }))
        .layer(AroundLayer(CatchPanic))
        .layer(AroundLayer(Deadline {
            limit: state.request_timeout,
        }))
        .service(Router { state })
}

/// The innermost service: the route table's handlers over the shared state.
#[derive(Debug, Clone)]
pub(crate) struct Router {
    state: Arc<AppState>,
}

impl<B> tower::Service<Request<TimedBody<B>>> for Router
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<TimedBody<B>>) -> Answer {
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let mut response = routes::route(&state, request).await;
            // A body too slow to arrive: close the connection, so the client holds no slot
            // any longer.
            if response.status() == http::StatusCode::REQUEST_TIMEOUT {
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok(response)
        })
    }
}
