//! Reading JSON requests (bounded), writing JSON answers, and the body every answer has.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::body::Frame;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The answer type of every route.
pub type Response = http::Response<ResponseBody>;

/// A 200 `text/event-stream` answer of `events`' frames, never cached, nor buffered by a proxy
/// (nginx buffers a proxied answer unless told not to: the events would arrive in lumps).
pub(crate) fn event_stream(
    events: impl futures::Stream<Item = Bytes> + Send + 'static,
) -> Response {
    let mut response = http::Response::new(ResponseBody::events(events));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    headers.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    response
}

/// The body of an answer: whole (most routes), or a stream of server-sent events
/// (`GET /v1/sales/{sku}/events`, `…/queue/{ticket}/events`).
pub struct ResponseBody {
    kind: Kind,
}

enum Kind {
    Full(Full<Bytes>),
    Events(Pin<Box<dyn futures::Stream<Item = Bytes> + Send>>),
}

impl ResponseBody {
    /// A whole body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(Full::new(bytes.into())),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// A body of the frames `events` yields, until it ends.
    pub(crate) fn events(events: impl futures::Stream<Item = Bytes> + Send + 'static) -> Self {
        Self {
            kind: Kind::Events(Box::pin(events)),
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Full(full) => f.debug_tuple("Full").field(&full.size_hint()).finish(),
            Kind::Events(_) => f.write_str("Events"),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(full) => Pin::new(full).poll_frame(cx),
            Kind::Events(events) => events
                .as_mut()
                .poll_next(cx)
                .map(|frame| frame.map(|bytes| Ok(Frame::data(bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(full) => full.is_end_stream(),
            Kind::Events(_) => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match &self.kind {
            Kind::Full(full) => full.size_hint(),
            Kind::Events(_) => hyper::body::SizeHint::default(),
        }
    }
}

/// The largest request body accepted: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a client may take to send a body, by default (`--body-read-timeout-secs`).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(5);

pin_project_lite::pin_project! {
    /// A request body that fails once its deadline passes: a client sending its body byte by
    /// byte cannot hold a connection for the whole request timeout.
    #[derive(Debug)]
    pub(crate) struct TimedBody<B> {
        #[pin]
        inner: B,
        limit: Option<Duration>,
        // Armed when the body is first read (right after dispatch), so a request whose body
        // nobody reads (every GET) costs no timer.
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<B> TimedBody<B> {
    /// `inner`, failing `limit` after it is first read (`None`: never).
    pub(crate) fn new(inner: B, limit: Option<Duration>) -> Self {
        Self {
            inner,
            limit,
            deadline: None,
        }
    }
}

/// Why a [`TimedBody`] could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The deadline passed before the body was all read.
    #[error("the request body did not arrive in time")]
    TimedOut,
    /// The connection failed.
    #[error(transparent)]
    Read(Box<dyn std::error::Error + Send + Sync>),
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(
                frame.map(|frame| frame.map_err(|err| BodyError::Read(err.into()))),
            );
        }
        if this.deadline.is_none() {
            *this.deadline = this.limit.map(|limit| Box::pin(tokio::time::sleep(limit)));
        }
        match this
            .deadline
            .as_mut()
            .map(|deadline| deadline.as_mut().poll(cx))
        {
            Some(Poll::Ready(())) => Poll::Ready(Some(Err(BodyError::TimedOut))),
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

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
    let mut response = http::Response::new(ResponseBody::full(bytes));
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
    parse_json(&read_bytes(body).await?)
}

/// As [`read_json`], where an empty body means `T::default()` (a body of options only).
pub(crate) async fn read_json_or_default<T, B>(body: B) -> Result<T, ApiError>
where
    T: DeserializeOwned + Default,
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let bytes = read_bytes(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(&bytes)
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::invalid(format!(
            "the request body is not valid JSON for this route: {err}"
        ))
    })
}

/// Reads a body of at most [`MAX_BODY_BYTES`].
async fn read_bytes<B>(body: B) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if matches!(err.downcast_ref::<BodyError>(), Some(BodyError::TimedOut)) => {
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                "the request body did not arrive in time; the connection is closed",
            ))
        }
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
        )),
        Err(err) => Err(ApiError::invalid(format!(
            "the request body could not be read: {err}"
        ))),
    }
}

/// Characters a path segment keeps as they are (RFC 3986 unreserved); the rest are
/// percent-encoded.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Sets `Location` to `location`, a path that needs no encoding.
pub(crate) fn with_location_bytes(mut response: Response, location: &[u8]) -> Response {
    if let Ok(location) = http::HeaderValue::from_bytes(location) {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    response
}

/// Sets `Location` to `prefix` followed by `segment`, percent-encoded.
pub(crate) fn with_location(response: Response, prefix: &str, segment: &str) -> Response {
    // Borrowed when nothing needs encoding (an order id): no formatting machinery.
    let encoded: std::borrow::Cow<'_, str> =
        percent_encoding::utf8_percent_encode(segment, SEGMENT).into();
    let mut location = String::with_capacity(prefix.len() + encoded.len());
    location.push_str(prefix);
    location.push_str(&encoded);
    // Percent-encoding leaves only visible ASCII: the value is always valid.
    with_location_bytes(response, location.as_bytes())
}
