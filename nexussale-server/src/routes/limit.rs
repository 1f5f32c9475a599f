//! Rate limits on the purchase routes: per client address before the body is read, per user
//! once it is.

use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use nexussale_core::UserId;

use crate::ClientIp;
use crate::error::ApiError;
use crate::state::AppState;

fn limited(what: &str, wait: Duration) -> ApiError {
    let mut err = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many purchase requests from this {what}; try again shortly"),
    );
    err.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
    err
}

/// The client address's limit (when the server has one and knows the address).
pub(super) fn client<B>(state: &AppState, request: &Request<B>) -> Result<(), ApiError> {
    let (Some(limiter), Some(ClientIp(ip))) =
        (&state.ip_limit, request.extensions().get::<ClientIp>())
    else {
        return Ok(());
    };
    limiter
        .check(ip, Instant::now())
        .map_err(|wait| limited("address", wait))
}

/// The buyer's limit (when the server has one).
pub(super) fn user(state: &AppState, user: &UserId) -> Result<(), ApiError> {
    let Some(limiter) = &state.user_limit else {
        return Ok(());
    };
    limiter
        .check(user, Instant::now())
        .map_err(|wait| limited("user", wait))
}
