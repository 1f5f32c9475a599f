//! Admin routes: `Authorization: Bearer <token>` when the server has an admin token.

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// Refuses the request (401 `unauthorized`) unless it carries the admin token, or the server has
/// none.
pub(super) fn admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.admin_token else {
        return Ok(());
    };
    match bearer(headers) {
        // Constant time in where the tokens differ (`subtle`): a wrong guess says nothing of how
        // close it was.
        Some(given) if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        Some(_) => Err(unauthorized("the bearer token is not the admin token")),
        None => Err(unauthorized(
            "this route needs `Authorization: Bearer <admin token>`",
        )),
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` count too.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER  s3cret ",
            " Bearer s3cret",
        ] {
            assert_eq!(bearer(&with(value)), Some("s3cret"), "{value:?}");
        }
        for value in ["Basic s3cret", "Bearer", "Bearer ", "Bearers3cret"] {
            assert_eq!(bearer(&with(value)), None, "{value:?}");
        }
    }
}
