//! A request that runs out of time answers 503 `unavailable` with `Retry-After`: a backend that
//! hangs never holds a client longer than the limit.

use std::future::Future;
use std::time::Duration;

use http::{Request, StatusCode};

use super::Around;
use crate::body::Response;
use crate::error::ApiError;

/// Answers 503 once `limit` has passed (`None`: no limit).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub(crate) limit: Option<Duration>,
}

impl Around for Deadline {
    fn around<B, N, F>(self, request: Request<B>, next: N) -> impl Future<Output = Response> + Send
    where
        B: Send + 'static,
        N: FnOnce(Request<B>) -> F + Send + 'static,
        F: Future<Output = Response> + Send,
    {
        let limit = self.limit;
        async move {
            let answer = next(request);
            let Some(limit) = limit else {
                return answer.await;
            };
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
                    late.into_response()
                }
            }
        }
    }
}
