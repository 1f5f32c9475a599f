//! The OpenAPI document of every route (`GET /api-docs/openapi.json`) and Swagger UI
//! (`GET /api-docs`), whose assets are compiled into the binary: nothing is fetched at run time.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::table::{Handler, ROUTES};
use super::{console, dashboard, events, health, legacy, orders, queue, sales};
use crate::body::{MAX_BODY_BYTES, Response, ResponseBody};
use crate::error::{ApiError, ERROR_CODES, ErrorBody};
use crate::identity::Access;

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
        events::sale,
        sales::purchase,
        console::reconcile,
        console::end,
        console::report,
        queue::join,
        queue::get,
        queue::events,
        dashboard::page,
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
        (name = "waiting room", description = "Join a sale's line, follow a ticket, get the pass to buy with."),
        (name = "orders", description = "Read, pay and cancel orders."),
        (name = "console", description = "The operator's view of a sale and actions on it (admin)."),
        (name = "original", description = "The original service's routes, kept for its clients."),
        (name = "operations", description = "Liveness, readiness, metrics and this document."),
    )
)]
struct ApiDoc;

/// Adds what many operations share: the bearer schemes and each route's (from the route
/// table's access), and the answers any operation may give (a credential that does not hold, a
/// body it cannot read, a backend that fails), so each route lists only its own.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, format, description) in SCHEMES {
            let mut scheme = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description));
            if let Some(format) = format {
                scheme = scheme.bearer_format(format);
            }
            components.add_security_scheme(name, SecurityScheme::Http(scheme.build()));
        }
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
        for (path, item) in doc.paths.paths.iter_mut() {
            let operations = [
                (Method::GET, item.get.as_mut()),
                (Method::POST, item.post.as_mut()),
                (Method::PUT, item.put.as_mut()),
                (Method::DELETE, item.delete.as_mut()),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else {
                    continue;
                };
                let route = ROUTES
                    .iter()
                    .find(|route| route.method == method && route.template == path);
                let access = route.map_or(Access::Anyone, |route| route.access);
                // Unique, as OpenAPI requires (utoipa names an operation after its function,
                // and `sales::list` and `orders::list` would both be `list`).
                if let Some(route) = route {
                    operation.operation_id = Some(operation_id(route.handler));
                }
                secure(operation, access);
                let responses = &mut operation.responses.responses;
                // A credential that does not hold is refused on every route.
                responses.entry("401".into()).or_insert_with(|| {
                    error(match access {
                        Access::Anyone => "`unauthorized`: an `Authorization` header was sent and does not hold (a route open to anyone needs none).",
                        _ => "`unauthorized`: the credential this route needs is missing or does not hold (with no credential configured on the server, every route is open).",
                    })
                    .into()
                });
                let forbidden = match access {
                    Access::Anyone | Access::Owner => None,
                    Access::Admin => Some("`forbidden`: the caller is not an admin."),
                    Access::Payment => {
                        Some("`forbidden`: only the payment service or an admin may pay.")
                    }
                    Access::Buyer => Some(
                        "`forbidden`: a buyer buys only as itself (the body's `user`, when sent, must be the token's `sub`).",
                    ),
                    Access::Orders => Some(
                        "`forbidden`: a buyer lists only its own orders (a `user` filter naming another), or the caller is no buyer.",
                    ),
                };
                if let Some(forbidden) = forbidden {
                    responses
                        .entry("403".into())
                        .or_insert_with(|| error(forbidden).into());
                }
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

/// The bearer schemes: the admin token, the payment token, a buyer's JSON Web Token.
const SCHEMES: [(&str, Option<&str>, &str); 3] = [
    (
        "admin_token",
        None,
        "The admin role: --admin-token (or a buyer_token whose `scope` holds `nexussale:admin`).",
    ),
    (
        "payment_token",
        None,
        "The payment service: --payment-token (or a buyer_token whose `scope` holds `nexussale:pay`).",
    ),
    (
        "buyer_token",
        Some("JWT"),
        "A buyer's JSON Web Token (HS256, RS256 or ES256, as the server is configured); its `sub` is the buyer.",
    ),
];

/// `ListSales` → `list_sales`.
fn operation_id(handler: Handler) -> String {
    let mut id = String::new();
    for (index, c) in format!("{handler:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            id.push('_');
        }
        id.push(c.to_ascii_lowercase());
    }
    id
}

/// The schemes that satisfy `access` (any one of them).
fn secure(operation: &mut utoipa::openapi::path::Operation, access: Access) {
    let schemes: &[&str] = match access {
        Access::Anyone => return,
        Access::Admin => &["admin_token"],
        Access::Payment => &["payment_token", "admin_token"],
        Access::Buyer | Access::Owner | Access::Orders => &["buyer_token", "admin_token"],
    };
    operation.security = Some(
        schemes
            .iter()
            .map(|scheme| SecurityRequirement::new(*scheme, Vec::<String>::new()))
            .collect(),
    );
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
        "too_many_sales" => {
            "100000 sales exist, the most this deployment holds at once; end and remove one, or raise --max-sales"
        }
        "sold_out" => "sale ps5 is sold out",
        "limit_exceeded" => "sale ps5 allows at most 1 unit(s) per user",
        "sale_not_active" => "sale ps5 is upcoming, not active",
        "not_found" => "no order exists with id 0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b",
        "conflict" => "order 0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b is paid, not pending",
        "rate_limited" => "too many purchase requests from this user; try again shortly",
        "unauthorized" => "this route needs `Authorization: Bearer <admin token>`",
        "forbidden" => "a buyer buys only as itself: `user` must be the token's subject",
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
        let mut response = http::Response::new(ResponseBody::empty());
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
    let mut response = http::Response::new(ResponseBody::full(bytes));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
