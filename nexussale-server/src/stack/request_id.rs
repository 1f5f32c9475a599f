//! `x-request-id`: the caller's, when it is one (1–128 visible ASCII characters), else a new
//! one; in the request's headers for the layers and handlers below, and on the answer.

use std::future::Future;

use bytes::Bytes;
use futures::FutureExt;
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = fastrand::u128(..);
    let mut id = [0u8; 32];
    for digit in id.iter_mut().rev() {
        *digit = HEX[(bits & 0xf) as usize];
        bits >>= 4;
    }
    // One allocation, shared by the request's header, the answer's and the log's (a vector's
    // bytes would allocate again when first cloned).
    HeaderValue::from_maybe_shared(Bytes::from_owner(id))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

tokio::task_local! {
    /// The id of the request being served, where no `request` span carries it (the binary's
    /// own access lines, `AppState::log_lines`): `PlainFormat` writes it on every line.
    static CURRENT: HeaderValue;
}

/// Runs `answer` with `id` as the current request's id for [`with_current`].
pub(crate) async fn scope<F: Future>(id: HeaderValue, answer: F) -> F::Output {
    CURRENT.scope(id, answer).await
}

/// `f` of the current request's id, when a request set one with [`scope`].
pub(crate) fn with_current<R>(f: impl FnOnce(&str) -> R) -> Option<R> {
    CURRENT.try_with(|id| f(text(id))).ok()
}

/// An id as text: taken ids are visible ASCII and generated ones hex, so nothing is lost.
pub(crate) fn text(id: &HeaderValue) -> &str {
    std::str::from_utf8(id.as_bytes()).unwrap_or("-")
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
        // A map, not an async block: one that awaits a future it captured holds it twice.
        next(request).map(move |mut response| {
            response.headers_mut().insert(X_REQUEST_ID.clone(), id);
            response
        })
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
