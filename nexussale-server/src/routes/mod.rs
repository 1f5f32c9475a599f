//! The handlers, one module per resource, and the small router that picks them.

mod audit;
mod console;
mod dashboard;
mod docs;
mod events;
mod health;
mod legacy;
mod limit;
mod orders;
mod queue;
mod sales;
mod table;

pub use docs::openapi;
pub(crate) use sales::{PURCHASE_OUTCOMES, SaleBody};

use std::borrow::Cow;
use std::cell::Cell;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use hyper::body::Body;
use percent_encoding::percent_decode_str;

use crate::body::{Response, ResponseBody};
use crate::error::ApiError;
use crate::identity::{self, Credential};
use crate::state::AppState;
use table::{Handler, Lookup};

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
fn segments(path: &str) -> Result<Vec<Cow<'_, str>>, ApiError> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let mut parts = path.split('/').peekable();
    let mut segments = Vec::with_capacity(8);
    while let Some(part) = parts.next() {
        if part.is_empty() && parts.peek().is_some() {
            return Err(ApiError::invalid(
                "the path has an empty segment (`//`); send it with single slashes",
            ));
        }
        // Borrowed unless the segment has something to decode: no copy on the usual path.
        segments.push(
            percent_decode_str(part).decode_utf8().map_err(|_| {
                ApiError::invalid("the path is not valid UTF-8 once percent-decoded")
            })?,
        );
    }
    Ok(segments)
}

/// A listing's `limit` query parameter as a number (the engine checks its range).
fn page_limit(value: &str) -> Result<u32, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::invalid("limit must be a whole number from 1 to 1000"))
}

tokio::task_local! {
    /// The route template the router matched, for the access log: a slot in the request's
    /// future rather than a response extension, which would cost allocations per request.
    static MATCHED: Cell<&'static str>;
}

/// Runs `answer` (a request through the stack) with a slot for the route template the router
/// matches, which the layers read with [`matched`] once the router answered.
pub(crate) async fn recording_route<F: Future>(answer: F) -> F::Output {
    MATCHED.scope(Cell::new("-"), answer).await
}

/// The route template the router matched for the request being served (`-`: none, or not yet).
pub(crate) fn matched() -> &'static str {
    MATCHED.try_with(Cell::get).unwrap_or("-")
}

async fn dispatch<B>(state: &AppState, request: Request<B>) -> Result<Response, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    // The path outlives the request, which a handler takes (a clone shares its bytes).
    let uri = request.uri().clone();
    let segments = segments(uri.path())?;
    let segments: Vec<&str> = segments.iter().map(|segment| &**segment).collect();
    let (route, params) = match table::lookup(request.method(), &segments) {
        Lookup::Found(route, params) => (route, params),
        Lookup::WrongMethod(allow) => {
            let mut response = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                format!("{} is not allowed on this route", request.method()),
            )
            .into_response();
            if let Ok(allow) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            return Ok(response);
        }
        Lookup::NotFound => return Err(ApiError::not_found("no such route")),
    };
    let head = request.method() == Method::HEAD;
    let credential = request
        .extensions()
        .get::<Credential>()
        .unwrap_or(&Credential::Anonymous);
    let answer = match identity::authorize(&state.identity, route.access, credential) {
        Ok(scope) => handle(state, route.handler, params, scope, request).await,
        Err(err) => Err(err),
    };
    let mut response = answer.unwrap_or_else(ApiError::into_response);
    // Outside `recording_route` (the router called on its own) there is no slot.
    let _ = MATCHED.try_with(|matched| matched.set(route.template));
    if head {
        response = without_body(response);
    }
    Ok(response)
}

/// Runs the route's handler for a caller let through with `scope`.
async fn handle<B>(
    state: &AppState,
    handler: Handler,
    params: table::Params<'_>,
    scope: identity::Scope,
    request: Request<B>,
) -> Result<Response, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match handler {
        Handler::Health => Ok(health::health()),
        Handler::Ready => Ok(health::ready(state).await),
        Handler::Metrics => Ok(health::metrics(state).await),
        Handler::ListSales => sales::list(state, request.uri().query()).await,
        Handler::CreateSale => {
            let who = audit::who(&request);
            audit::admin_action("create_sale", None, who, async {
                sales::create(state, request.into_body()).await
            })
            .await
        }
        Handler::GetSale => sales::get(state, params.first()).await,
        Handler::SaleEvents => events::sale(state, params.first()).await,
        Handler::Purchase => {
            sales::counted(state, Some(params.first()), async {
                limit::client(state, &request)?;
                let (parts, body) = request.into_parts();
                sales::purchase(state, &scope, params.first(), &parts.headers, body).await
            })
            .await
        }
        Handler::Reconcile => {
            let who = audit::who(&request);
            audit::admin_action("reconcile", Some(params.first()), who, async {
                console::reconcile(state, params.first(), request.into_body()).await
            })
            .await
        }
        Handler::EndSale => {
            let who = audit::who(&request);
            audit::admin_action("end_sale", Some(params.first()), who, async {
                console::end(state, params.first()).await
            })
            .await
        }
        Handler::Report => console::report(state, params.first(), request.uri().query()).await,
        Handler::Join => {
            limit::client(state, &request)?;
            queue::join(state, &scope, params.first(), request.into_body()).await
        }
        Handler::GetTicket => queue::get(state, &scope, params.first(), params.second()).await,
        Handler::TicketEvents => {
            queue::events(state, &scope, params.first(), params.second()).await
        }
        Handler::ListOrders => orders::list(state, &scope, request.uri().query()).await,
        Handler::GetOrder => orders::get(state, &scope, params.first()).await,
        Handler::LegacyOne => legacy::one(state, &scope, params.first()).await,
        Handler::Pay => orders::pay(state, params.first()).await,
        Handler::Cancel => orders::cancel(state, &scope, params.first()).await,
        Handler::LegacyAdd => {
            sales::counted(state, None, async {
                limit::client(state, &request)?;
                legacy::add(state, &scope, request.into_body()).await
            })
            .await
        }
        Handler::LegacyAll => legacy::all(state).await,
        Handler::Dashboard => Ok(dashboard::page(state)),
        Handler::DashboardAsset => dashboard::asset(params.first()),
        Handler::SwaggerUi => docs::swagger_ui(None),
        Handler::Document => Ok(docs::document()),
        Handler::SwaggerAsset => docs::swagger_ui(Some(params.first())),
    }
}

/// A `HEAD` answer: the `GET` answer's status and headers, its length, no body.
fn without_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    if let Some(length) = body.size_hint().exact() {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Response::from_parts(parts, ResponseBody::empty())
}
