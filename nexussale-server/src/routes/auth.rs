//! Admin routes: `Authorization: Bearer <token>` when the server has an admin token.

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};

use crate::error::ApiError;
use crate::state::AppState;

/// Refuses the request (401 `unauthorized`) unless it carries the admin token, or the server has
/// none.
pub(super) fn admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.admin_token else {
        return Ok(());
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(unauthorized("the bearer token is not the admin token")),
        None => Err(unauthorized(
            "this route needs `Authorization: Bearer <admin token>`",
        )),
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// Whether `a == b`, in a time that depends on their lengths only, not on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut differ = a.len() ^ b.len();
    for (i, byte) in a.iter().enumerate() {
        // Compare against `b` cyclically so a length mismatch costs the same loop.
        let other = b.get(i % b.len().max(1)).copied().unwrap_or(0);
        differ |= usize::from(byte ^ other);
    }
    differ == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret-and-more"));
        assert!(!constant_time_eq(b"s3cret-and-more", b"s3cret"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
