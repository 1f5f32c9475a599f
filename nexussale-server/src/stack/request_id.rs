//! `x-request-id`: the caller's, when it is one (1–128 visible ASCII characters), else a new
//! one; in the request's headers for the layers and handlers below, and on the answer.

use std::future::Future;

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderValue, Request};

use super::Around;
use crate::body::Response;

/// The header.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id taken from a caller.
const MAX_LEN: usize = 128;

fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_LEN).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// 128 random bits in hex: unique enough to find one request's lines, cheap (no system call).
fn generate() -> HeaderValue {
    let id = format!("{:032x}", fastrand::u128(..));
    // The string's buffer becomes the value's: one allocation.
    HeaderValue::from_maybe_shared(Bytes::from(id))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Takes or makes the request's id and echoes it on the answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestIds;

impl Around for RequestIds {
    fn around<B, N, F>(
        self,
        mut request: Request<B>,
        next: N,
    ) -> impl Future<Output = Response> + Send
    where
        B: Send + 'static,
        N: FnOnce(Request<B>) -> F + Send + 'static,
        F: Future<Output = Response> + Send,
    {
        let id = match request.headers().get(&X_REQUEST_ID) {
            Some(value) if acceptable(value) => value.clone(),
            _ => generate(),
        };
        // The layers and handlers below read it from the request's headers.
        request
            .headers_mut()
            .insert(X_REQUEST_ID.clone(), id.clone());
        let answer = next(request);
        async move {
            let mut response = answer.await;
            response.headers_mut().insert(X_REQUEST_ID.clone(), id);
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_ascii_up_to_128_is_taken() {
        for ok in ["a", "0190b8a5-7c3e", &"x".repeat(128), "~!#$%&'*+-.^_`|"] {
            assert!(acceptable(&HeaderValue::from_str(ok).unwrap()), "{ok}");
        }
        for refused in ["", "has space", &"x".repeat(129), "tab\there"] {
            assert!(
                !acceptable(&HeaderValue::from_str(refused).unwrap()),
                "{refused:?}"
            );
        }
        assert!(!acceptable(
            &HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()
        ));
        assert_eq!(generate().len(), 32);
        assert_ne!(generate(), generate());
    }
}
