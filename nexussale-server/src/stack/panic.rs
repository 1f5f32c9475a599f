//! A panicking handler answers 500 in the contract's JSON.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use http::{Request, StatusCode};
use tower::ServiceExt;

use super::{Answer, Around, Inner};
use crate::error::ApiError;

/// Turns a panic below into a 500 answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CatchPanic;

impl Around for CatchPanic {
    fn around<S, B>(&self, inner: S, request: Request<B>) -> Answer
    where
        S: Inner<B>,
        B: Send + 'static,
    {
        Box::pin(async move {
            match AssertUnwindSafe(inner.oneshot(request))
                .catch_unwind()
                .await
            {
                Ok(answer) => answer,
                Err(_) => {
                    tracing::error!("a request handler panicked");
                    Ok(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "unavailable",
                        "the server failed on this request",
                    )
                    .into_response())
                }
            }
        })
    }
}
