//! The OpenAPI document of every route (`GET /api-docs/openapi.json`) and Swagger UI
//! (`GET /api-docs`), whose assets are compiled into the binary: nothing is fetched at run time.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{health, legacy, orders, sales};
use crate::body::{MAX_BODY_BYTES, Response};
use crate::error::{ApiError, ErrorBody};

/// The Swagger UI page; its assets sit beside it, where its relative links resolve.
const UI_PAGE: &str = "/api-docs/";
/// Where the document lives.
const DOCUMENT_PATH: &str = "/api-docs/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "NexusSale",
        description = "A flash-sale engine over HTTP: limited stock, one start instant, never oversold. \
            Every error answer is `{\"error\": \"<code>\", \"message\": \"<sentence>\"}`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        sales::create,
        sales::list,
        sales::get,
        sales::purchase,
        orders::list,
        orders::get,
        orders::pay,
        orders::cancel,
        legacy::add,
        legacy::all,
        legacy::one,
        health::health,
        health::ready,
        health::metrics,
        swagger_ui,
        document,
    ),
    components(schemas(ErrorBody)),
    modifiers(&CommonAnswers),
    tags(
        (name = "sales", description = "Create sales, read their stock, buy."),
        (name = "orders", description = "Read, pay and cancel orders."),
        (name = "original", description = "The original service's routes, kept for its clients."),
        (name = "operations", description = "Liveness, readiness, metrics and this document."),
    )
)]
struct ApiDoc;

/// Adds what many operations share: the admin bearer scheme, and the answers any operation
/// may give (a body it cannot read, a backend that fails), so each route lists only its own.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Required on admin routes when the server runs with --admin-token.",
                    ))
                    .build(),
            ),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Error")))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                if operation.request_body.is_some() {
                    responses.entry("400".into()).or_insert_with(|| {
                        error("`invalid_request`: the body is not valid JSON for this route, or a field is invalid.").into()
                    });
                    responses.entry("413".into()).or_insert_with(|| {
                        error(&format!(
                            "`payload_too_large`: the body exceeds {MAX_BODY_BYTES} bytes."
                        ))
                        .into()
                    });
                }
                // A path or query parameter can be invalid too (an over-long sku, a malformed
                // order id, a bad page size).
                let has_parameters = operation
                    .parameters
                    .as_ref()
                    .is_some_and(|parameters| !parameters.is_empty());
                if has_parameters {
                    responses.entry("400".into()).or_insert_with(|| {
                        error("`invalid_request`: a path or query parameter is invalid.").into()
                    });
                }
                responses.entry("500".into()).or_insert_with(|| {
                    error("`unavailable`: a backend failed; the request was not completed.").into()
                });
                responses.entry("503".into()).or_insert_with(|| {
                    error("`unavailable`: a backend is unavailable or the request timed out; retry after `Retry-After` seconds.").into()
                });
            }
        }
    }
}

/// The OpenAPI document of every route this server answers.
pub fn openapi() -> Document {
    ApiDoc::openapi()
}

/// The document as served, built once.
static DOCUMENT_JSON: LazyLock<Bytes> = LazyLock::new(|| {
    // Our own document always serializes; an empty object would still be valid JSON.
    Bytes::from(openapi().to_json().unwrap_or_else(|_| "{}".to_owned()))
});

static UI_CONFIG: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> =
    // No validator: its badge would fetch from validator.swagger.io.
    LazyLock::new(|| {
        Arc::new(utoipa_swagger_ui::Config::from(DOCUMENT_PATH).validator_url("none"))
    });

/// The OpenAPI document (OpenAPI 3.1) of every route.
#[utoipa::path(
    get,
    path = "/api-docs/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document.", content_type = "application/json", body = Object))
)]
pub(super) fn document() -> Response {
    with_type(DOCUMENT_JSON.clone(), "application/json")
}

/// Swagger UI: `/api-docs` redirects to `/api-docs/`, which serves the page; its assets are
/// under `/api-docs/`.
#[utoipa::path(
    get,
    path = "/api-docs",
    tag = "operations",
    responses(
        (status = 308, description = "To `/api-docs/`, the Swagger UI page.",
            headers(("Location" = String, description = "/api-docs/"))),
    )
)]
pub(super) fn swagger_ui(tail: Option<&str>) -> Result<Response, ApiError> {
    let Some(tail) = tail else {
        let mut response = http::Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
        response
            .headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static(UI_PAGE));
        return Ok(response);
    };
    match utoipa_swagger_ui::serve(tail, UI_CONFIG.clone()) {
        Ok(Some(file)) => {
            let mut response = with_type(Bytes::from(file.bytes.into_owned()), "text/plain");
            if let Ok(value) = HeaderValue::from_str(&file.content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            Ok(response)
        }
        Ok(None) => Err(ApiError::not_found("no such Swagger UI asset")),
        Err(err) => {
            tracing::error!(error = %err, "Swagger UI asset failed");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unavailable",
                "the Swagger UI asset could not be prepared",
            ))
        }
    }
}

fn with_type(bytes: Bytes, content_type: &'static str) -> Response {
    let mut response = http::Response::new(Full::new(bytes));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
