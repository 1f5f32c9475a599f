//! `GET /health` (the process runs), `GET /ready` (every backend answers) and `GET /metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::body::{Response, ResponseBody, json};
use crate::error::ErrorBody;
use crate::state::AppState;

/// How long one backend may take to answer its probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /health` answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// `GET /ready` answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` when every backend answered (200); absent on 503.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    /// `unavailable` when a backend did not answer (503); absent on 200.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    /// What failed, on 503.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    /// Each backend's answer: `ok` or what went wrong.
    backends: BTreeMap<&'static str, String>,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses((status = 200, description = "The process runs.", body = Health))
)]
pub(super) fn health() -> Response {
    json(StatusCode::OK, &Health { status: "ok" })
}

/// Readiness: probes every backend.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Every backend answers.", body = Readiness),
        (status = 503, description = "A backend does not answer (`error` is `unavailable`).", body = Readiness),
    )
)]
pub(super) async fn ready(state: &AppState) -> Response {
    let answers = probe_all(state).await;
    let ready = answers.iter().all(|(_, answer)| answer == "ok");
    let backends = answers.into_iter().collect();
    if ready {
        let body = Readiness {
            status: Some("ready"),
            error: None,
            message: None,
            backends,
        };
        json(StatusCode::OK, &body)
    } else {
        let body = Readiness {
            status: None,
            error: Some("unavailable"),
            message: Some("a backend does not answer"),
            backends,
        };
        json(StatusCode::SERVICE_UNAVAILABLE, &body)
    }
}

/// Each backend's probe answer: `ok`, or what went wrong.
async fn probe_all(state: &AppState) -> Vec<(&'static str, String)> {
    join_all(state.probes.iter().map(|(name, probe)| async move {
        let answer = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(err)) => format!("failing: {err}"),
            Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
        };
        (*name, answer)
    }))
    .await
}

/// Prometheus text: what the recorder holds, with each sale's units (read now, or, when reading
/// every sale takes longer than a moment, as last read), each backend's readiness and the
/// process's resources read now.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4.", content_type = "text/plain; version=0.0.4", body = String),
        (status = 503, description = "`unavailable`: another metrics recorder owns this process.", body = ErrorBody),
    )
)]
pub(super) async fn metrics(state: &AppState) -> Response {
    let Some(handle) = crate::telemetry::handle() else {
        return crate::error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "another metrics recorder is installed in this process",
        )
        .into_response();
    };
    let ((), probes) = futures::join!(state.units.refresh(&state.engine), probe_all(state));
    crate::telemetry::backends_up(probes.iter().map(|(name, answer)| (*name, answer == "ok")));
    crate::telemetry::process();
    let mut response = http::Response::new(ResponseBody::full(handle.render()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
