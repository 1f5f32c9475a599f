//! `GET /health` (the process runs), `GET /ready` (every backend answers) and `GET /metrics`.

use std::time::Duration;

use futures::future::join_all;
use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::body::{Response, json};
use crate::state::AppState;

/// How long one backend may take to answer its probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn health() -> Response {
    json(StatusCode::OK, &json!({ "status": "ok" }))
}

pub(super) async fn ready(state: &AppState) -> Response {
    let answers = join_all(state.probes.iter().map(|(name, probe)| async move {
        let answer = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(err)) => format!("failing: {err}"),
            Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
        };
        (*name, answer)
    }))
    .await;
    let ready = answers.iter().all(|(_, answer)| answer == "ok");
    let backends: Map<String, Value> = answers
        .into_iter()
        .map(|(name, answer)| (name.to_owned(), Value::String(answer)))
        .collect();
    if ready {
        json(
            StatusCode::OK,
            &json!({ "status": "ready", "backends": backends }),
        )
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({
                "error": "unavailable",
                "message": "a backend does not answer",
                "backends": backends,
            }),
        )
    }
}

/// Prometheus text: what the recorder holds, with each sale's available units read now.
pub(super) async fn metrics(state: &AppState) -> Response {
    let Some(handle) = crate::telemetry::handle() else {
        return crate::error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "another metrics recorder is installed in this process",
        )
        .into_response();
    };
    if let Ok(sales) = state.engine.sales().await {
        for view in sales {
            metrics::gauge!("nexussale_units_available", "sku" => view.sale.sku.as_str().to_owned())
                .set(view.snapshot.available as f64);
        }
    }
    let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
        handle.render(),
    )));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
