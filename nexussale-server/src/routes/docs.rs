//! The OpenAPI document of every route (`GET /api-docs/openapi.json`) and Swagger UI
//! (`GET /api-docs`), whose assets are compiled into the binary: nothing is fetched at run time.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{health, legacy, orders, sales};
use crate::body::{MAX_BODY_BYTES, Response};
use crate::error::{ApiError, ERROR_CODES, ErrorBody};

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
                for response in responses.values_mut() {
                    if let RefOr::T(response) = response {
                        add_error_examples(response);
                    }
                }
                for parameter in operation.parameters.iter_mut().flatten() {
                    optional_header_not_null(parameter);
                }
            }
        }
    }
}

/// A realistic sentence for each error code, for the examples Swagger UI shows.
fn example_message(code: &str) -> &'static str {
    match code {
        "invalid_request" => {
            "the request body is not valid JSON for this route: missing field `user`"
        }
        "payload_too_large" => "the request body exceeds 65536 bytes",
        "unknown_sale" => "no sale exists for sku ps5",
        "sale_exists" => "a sale already exists for sku ps5",
        "sold_out" => "sale ps5 is sold out",
        "limit_exceeded" => "sale ps5 allows at most 1 unit(s) per user",
        "sale_not_active" => "sale ps5 is upcoming, not active",
        "not_found" => "no order exists with id 0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b",
        "conflict" => "order 0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b is paid, not pending",
        "rate_limited" => "too many purchase requests from this user; try again shortly",
        "unauthorized" => "this route needs `Authorization: Bearer <admin token>`",
        _ => "a backend is unavailable; retry shortly",
    }
}

/// Gives an error answer the example of its own code (the codes its description names in
/// backticks), instead of the schema's first enum value for every status.
fn add_error_examples(response: &mut utoipa::openapi::Response) {
    let codes: Vec<&'static str> = response
        .description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|word| ERROR_CODES.iter().copied().find(|code| *code == word))
        .collect();
    let Some(content) = response.content.get_mut("application/json") else {
        return;
    };
    let example =
        |code: &str| serde_json::json!({ "error": code, "message": example_message(code) });
    match codes.as_slice() {
        [] => {}
        [code] => content.example = Some(example(code)),
        codes => {
            for code in codes {
                let named = ExampleBuilder::new()
                    .summary(*code)
                    .value(Some(example(code)))
                    .build();
                content.examples.insert((*code).to_owned(), named.into());
            }
        }
    }
}

/// utoipa writes an optional header's schema as "this type or null", which Swagger UI shows as
/// `null`; a header that is absent is simply not sent, so its schema is the type alone.
fn optional_header_not_null(parameter: &mut Parameter) {
    if parameter.parameter_in != ParameterIn::Header {
        return;
    }
    let Some(RefOr::T(Schema::OneOf(one_of))) = &parameter.schema else {
        return;
    };
    let is_null = |item: &RefOr<Schema>| {
        matches!(item, RefOr::T(Schema::Object(object))
            if object.schema_type == SchemaType::Type(Type::Null))
    };
    let mut rest = one_of.items.iter().filter(|item| !is_null(item));
    if let (Some(only), None) = (rest.next(), rest.next()) {
        parameter.schema = Some(only.clone());
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
