//! The request's span and its access-log line.

use std::time::Instant;

use http::Request;
use tower::ServiceExt;
use tracing::Instrument;

use super::request_id::Id;
use super::{Answer, Around, Inner};
use crate::routes::MatchedRoute;

/// Where access-log lines go: `RUST_LOG=nexussale_server::access=off` silences them alone.
pub(crate) const TARGET: &str = "nexussale_server::access";

/// The request's span, and its access-log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AccessLog {
    /// Whether to write the line (`--access-log`); the span is there either way.
    pub(crate) enabled: bool,
}

impl Around for AccessLog {
    fn around<S, B>(&self, inner: S, request: Request<B>) -> Answer
    where
        S: Inner<B>,
        B: Send + 'static,
    {
        let started = Instant::now();
        let method = request.method().clone();
        let id = request.extensions().get::<Id>();
        let id = id.and_then(|id| id.0.to_str().ok()).unwrap_or_default();
        // Info level: with the default filter every line the request logs names its id. (Its
        // cost, and the line's, are measured in docs/BENCHMARKS.md.)
        let span = tracing::info_span!("request", request_id = %id);
        let enabled = self.enabled;
        Box::pin(
            async move {
                let response = inner.oneshot(request).await?;
                if enabled {
                    let route = response
                        .extensions()
                        .get::<MatchedRoute>()
                        .map_or("-", |route| route.0);
                    tracing::info!(
                        target: TARGET,
                        method = %method,
                        route,
                        status = response.status().as_u16(),
                        latency_ms = started.elapsed().as_secs_f64() * 1e3,
                        "request"
                    );
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}
