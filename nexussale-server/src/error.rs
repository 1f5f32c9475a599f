//! The one place where errors become HTTP answers: `{"error": "<code>", "message": "<sentence>"}`.

use http::StatusCode;
use nexussale_core::Error;
use serde::Serialize;

use crate::body::{Response, json};

/// An error answer: a status, a contract error code and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// One of the contract's error codes.
    pub code: &'static str,
    /// A human sentence.
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

/// The contract's error codes: the values `error` may take in an error answer.
pub const ERROR_CODES: [&str; 15] = [
    "invalid_request",
    "payload_too_large",
    "unknown_sale",
    "sale_exists",
    "too_many_sales",
    "sold_out",
    "limit_exceeded",
    "sale_not_active",
    "not_found",
    "conflict",
    "rate_limited",
    "unauthorized",
    "forbidden",
    "not_admitted",
    "unavailable",
];

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody<'a> {
    /// What went wrong, as a stable code a client can branch on.
    #[schema(schema_with = error_code_schema)]
    error: &'a str,
    /// What went wrong, for a human.
    message: &'a str,
}

fn error_code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(ERROR_CODES))
        .build()
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(
            ERROR_CODES.contains(&code),
            "{code} is not a contract error code"
        );
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 with a business refusal code (`sold_out`, `limit_exceeded`, `sale_not_active`).
    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// The answer to send.
    pub fn into_response(self) -> Response {
        let mut response = json(
            self.status,
            &ErrorBody {
                error: self.code,
                message: &self.message,
            },
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::InvalidInput { .. } => Self::invalid(message),
            Error::UnknownSale(_) => Self::new(StatusCode::NOT_FOUND, "unknown_sale", message),
            Error::SaleExists(_) => Self::new(StatusCode::CONFLICT, "sale_exists", message),
            Error::TooManySales { .. } => {
                Self::new(StatusCode::CONFLICT, "too_many_sales", message)
            }
            Error::OrderNotFound(_) | Error::NoWaitingRoom(_) => Self::not_found(message),
            Error::Conflict { .. } | Error::IdempotencyKeyReused { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            // Logged once per outage by the engine's `Watched` backends, not per request.
            Error::Backend {
                retryable: true, ..
            }
            | Error::StockRegressed(_) => {
                tracing::debug!(error = %message, "backend unavailable");
                Self {
                    retry_after: Some(1),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "a backend is unavailable; retry shortly",
                    )
                }
            }
            _ => {
                tracing::error!(error = %message, "backend failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "unavailable",
                    "a backend failed; the request was not completed",
                )
            }
        }
    }
}
