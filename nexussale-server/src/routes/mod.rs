//! The handlers, one module per resource, and the small router that picks them.

mod auth;
mod docs;
mod health;
mod legacy;
mod limit;
mod orders;
mod sales;

pub use docs::openapi;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use hyper::body::Body;
use percent_encoding::percent_decode_str;

use crate::body::Response;
use crate::error::ApiError;
use crate::state::AppState;

/// Answers one request. Never panics on input: every refusal is an [`ApiError`].
pub(crate) async fn route<B>(state: &AppState, request: Request<B>) -> Response
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match dispatch(state, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// The path's percent-decoded segments. One rule for empty segments wherever they stand: a
/// path with `//` is refused (400), so `//v1/sales` and `/v1//sales` are treated alike and a
/// proxy's path-prefix rule cannot be sidestepped. Only a trailing `/` may leave an empty last
/// segment, which a route reads as it means (`/api-docs/` is the Swagger UI page).
fn segments(path: &str) -> Result<Vec<String>, ApiError> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    if parts[..parts.len().saturating_sub(1)]
        .iter()
        .any(|part| part.is_empty())
    {
        return Err(ApiError::invalid(
            "the path has an empty segment (`//`); send it with single slashes",
        ));
    }
    parts
        .into_iter()
        .map(|segment| {
            percent_decode_str(segment)
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| ApiError::invalid("the path is not valid UTF-8 once percent-decoded"))
        })
        .collect()
}

async fn dispatch<B>(state: &AppState, request: Request<B>) -> Result<Response, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let method = request.method().clone();
    let segments = segments(request.uri().path())?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["health"]) => Ok(health::health()),
        (&Method::GET, ["ready"]) => Ok(health::ready(state).await),
        (&Method::GET, ["metrics"]) => Ok(health::metrics(state).await),
        (&Method::GET, ["v1", "sales"]) => sales::list(state).await,
        (&Method::POST, ["v1", "sales"]) => {
            auth::admin(state, request.headers())?;
            sales::create(state, request.into_body()).await
        }
        (&Method::GET, ["v1", "sales", sku]) => sales::get(state, sku).await,
        (&Method::POST, ["v1", "sales", sku, "purchase"]) => {
            limit::client(state, &request)?;
            let (parts, body) = request.into_parts();
            sales::purchase(state, sku, &parts.headers, body).await
        }
        (&Method::GET, ["v1", "orders"]) => orders::list(state, request.uri().query()).await,
        (&Method::GET, ["v1", "orders", id]) => orders::get(state, id).await,
        (&Method::POST, ["v1", "orders", id, "pay"]) => orders::pay(state, id).await,
        (&Method::POST, ["v1", "orders", id, "cancel"]) => orders::cancel(state, id).await,
        (&Method::POST, ["seckill", "add"]) => {
            limit::client(state, &request)?;
            legacy::add(state, request.into_body()).await
        }
        (&Method::GET, ["order", "all"]) => legacy::all(state).await,
        (&Method::GET, ["order", id]) => legacy::one(state, id).await,
        (&Method::GET, ["api-docs"]) => docs::swagger_ui(None),
        (&Method::GET, ["api-docs", "openapi.json"]) => Ok(docs::document()),
        (&Method::GET, ["api-docs", tail]) => docs::swagger_ui(Some(tail)),
        (_, path) if is_known(path) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            format!("{method} is not allowed on this route"),
        )),
        _ => Err(ApiError::not_found("no such route")),
    }
}

/// Whether some method serves `path` (for 405 rather than 404).
fn is_known(path: &[&str]) -> bool {
    matches!(
        path,
        ["health"]
            | ["ready"]
            | ["metrics"]
            | ["v1", "sales"]
            | ["v1", "sales", _]
            | ["v1", "sales", _, "purchase"]
            | ["v1", "orders"]
            | ["v1", "orders", _]
            | ["v1", "orders", _, "pay" | "cancel"]
            | ["seckill", "add"]
            | ["order", _]
            | ["api-docs"]
            | ["api-docs", _]
    )
}
