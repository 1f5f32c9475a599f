//! A panicking handler answers 500 in the contract's JSON.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use http::{Request, StatusCode};

use super::Around;
use crate::body::Response;
use crate::error::ApiError;

/// Turns a panic below into a 500 answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CatchPanic;

impl Around for CatchPanic {
    fn around<B, N, F>(self, request: Request<B>, next: N) -> impl Future<Output = Response> + Send
    where
        B: Send + 'static,
        N: FnOnce(Request<B>) -> F + Send + 'static,
        F: Future<Output = Response> + Send,
    {
        // `next` is called inside the caught future: a panic before its first await is caught too.
        AssertUnwindSafe(async move { next(request).await })
            .catch_unwind()
            .map(|answer| {
                answer.unwrap_or_else(|_| {
                    tracing::error!("a request handler panicked");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "unavailable",
                        "the server failed on this request",
                    )
                    .into_response()
                })
            })
    }
}
