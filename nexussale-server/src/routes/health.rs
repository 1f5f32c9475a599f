//! `GET /health`: the process runs.

use http::StatusCode;
use serde_json::json;

use crate::body::{Response, json};

pub(super) fn health() -> Response {
    json(StatusCode::OK, &json!({ "status": "ok" }))
}
