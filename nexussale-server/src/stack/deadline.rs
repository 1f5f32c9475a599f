//! A request that runs out of time answers 503 `unavailable` with `Retry-After`: a backend that
//! hangs never holds a client longer than the limit.

use std::time::Duration;

use http::{Request, StatusCode};
use tower::ServiceExt;

use super::{Answer, Around, Inner};
use crate::error::ApiError;

/// Answers 503 once `limit` has passed (`None`: no limit).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub(crate) limit: Option<Duration>,
}

impl Around for Deadline {
    fn around<S, B>(&self, inner: S, request: Request<B>) -> Answer
    where
        S: Inner<B>,
        B: Send + 'static,
    {
        let answer = inner.oneshot(request);
        let Some(limit) = self.limit else {
            return Box::pin(answer);
        };
        Box::pin(async move {
            match tokio::time::timeout(limit, answer).await {
                Ok(answer) => answer,
                Err(_) => {
                    tracing::warn!(?limit, "a request ran out of time");
                    let mut late = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        format!("the request took longer than {limit:?}"),
                    );
                    late.retry_after = Some(1);
                    Ok(late.into_response())
                }
            }
        })
    }
}
