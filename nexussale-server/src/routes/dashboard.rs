//! The operator console's page (`GET /dashboard`): hand-written HTML, CSS and JavaScript under
//! `src/dashboard/`, compiled into the binary (no CDN, works offline, nothing to build: edit
//! the files and rebuild the server).

use http::{HeaderValue, StatusCode, header};

use crate::body::{Response, ResponseBody};
use crate::error::ApiError;
use crate::state::AppState;

const PAGE: &str = include_str!("../dashboard/index.html");
const SCRIPT: &str = include_str!("../dashboard/app.js");
const STYLE: &str = include_str!("../dashboard/app.css");

/// The page runs only its own files, talks only to this server, and is never framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The operator console: every sale's live stock and books, this server's traffic and the
/// backends' readiness; create, end and reconcile sales. It asks for the admin token when the
/// server has credentials (kept in the tab's session storage, sent as a bearer header).
#[utoipa::path(
    get,
    path = "/dashboard",
    tag = "console",
    responses((status = 200, description = "The console page.", content_type = "text/html; charset=utf-8", body = String)),
)]
pub(super) fn page(state: &AppState) -> Response {
    // Whether to ask for a token before anything else; the page holds no data of its own.
    let admin = if state.identity.is_open() {
        "open"
    } else {
        "required"
    };
    with_type(PAGE.replace("{{ADMIN}}", admin), "text/html; charset=utf-8")
}

/// One of the page's files.
pub(super) fn asset(file: &str) -> Result<Response, ApiError> {
    let (body, content_type) = match file {
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "app.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return Err(ApiError::not_found("no such console file")),
    };
    Ok(with_type(body.to_owned(), content_type))
}

fn with_type(body: String, content_type: &'static str) -> Response {
    let mut response = http::Response::new(ResponseBody::full(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
