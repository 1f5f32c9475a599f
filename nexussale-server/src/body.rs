//! Reading JSON requests (bounded) and writing JSON answers.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The answer type of every route.
pub type Response = http::Response<Full<Bytes>>;

/// The largest request body accepted: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON answer.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    // Serializing our own plain data types cannot fail; if it ever did, answer 500 with a body.
    let (status, bytes) = match serde_json::to_vec(value) {
        Ok(bytes) => (status, bytes),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"error":"unavailable","message":"the answer could not be encoded"}"#.to_vec(),
        ),
    };
    let mut response = http::Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Reads a body of at most [`MAX_BODY_BYTES`] and parses it as `T`.
pub(crate) async fn read_json<T, B>(body: B) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
            ));
        }
        Err(err) => {
            return Err(ApiError::invalid(format!(
                "the request body could not be read: {err}"
            )));
        }
    };
    serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::invalid(format!(
            "the request body is not valid JSON for this route: {err}"
        ))
    })
}
