//! The answers hyper writes by itself, in the contract's shape.
//!
//! A request hyper cannot parse (a `<` or `"` in the path, a malformed header, a request line
//! or headers too long) never reaches the service: hyper answers 400 / 414 / 431 with an empty
//! body and closes the connection, and offers no hook to change that answer. Every refusal must
//! carry `{"error", "message"}`, so the connection's writes pass through [`JsonParseErrors`],
//! which recognises that automatic answer (the service's own answers always have a body, so an
//! empty 400 / 414 / 431 can only be hyper's) and writes it with a JSON body instead.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An IO whose writes turn hyper's empty parse-error answers into JSON ones.
#[derive(Debug)]
pub(crate) struct JsonParseErrors<T> {
    inner: T,
    /// The rewritten answer still to be written, and the length of the original it stands for.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<T> JsonParseErrors<T> {
    pub(crate) fn new(inner: T) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// The status hyper writes for a request it cannot parse, with the sentence for each.
fn automatic(status: &[u8]) -> Option<&'static str> {
    match status {
        b"400" => Some(
            "the request is not valid HTTP/1.1: a character not allowed in the path (such as a space, <, > or \"; percent-encode it), or a malformed header",
        ),
        b"414" => Some("the request's path and query are too long"),
        b"431" => Some("the request's headers are too large"),
        _ => None,
    }
}

/// hyper's automatic answer rewritten with a JSON body, or `None` if `head` is not one.
fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    let rest = head.strip_prefix(b"HTTP/1.1 ")?;
    let message = automatic(rest.get(..3)?)?;
    let end = head.windows(4).position(|window| window == b"\r\n\r\n")?;
    if end + 4 != head.len() {
        return None;
    }
    let status_line_end = head.windows(2).position(|window| window == b"\r\n")?;
    let headers = &head[status_line_end + 2..end + 2];
    let mut kept = Vec::with_capacity(headers.len());
    let mut empty = false;
    for line in headers.split_inclusive(|&byte| byte == b'\n') {
        if line.eq_ignore_ascii_case(b"content-length: 0\r\n") {
            empty = true;
        } else if !line.is_empty() {
            kept.extend_from_slice(line);
        }
    }
    if !empty {
        return None;
    }
    let body = serde_json::json!({ "error": "invalid_request", "message": message }).to_string();
    let mut answer = Vec::with_capacity(head.len() + body.len() + 64);
    answer.extend_from_slice(&head[..status_line_end + 2]);
    answer.extend_from_slice(b"content-type: application/json\r\n");
    answer.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    answer.extend_from_slice(&kept);
    answer.extend_from_slice(b"\r\n");
    answer.extend_from_slice(body.as_bytes());
    Some(answer)
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonParseErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> JsonParseErrors<T> {
    /// Whether `buf` is hyper's automatic answer, which is then pending in its JSON form. Cheap
    /// for every other write: the first bytes and the status decide.
    fn begin(&mut self, buf: &[u8]) -> bool {
        if !buf.starts_with(b"HTTP/1.1 4") {
            return false;
        }
        match rewrite(buf) {
            Some(answer) => {
                self.pending = Some((answer, 0, buf.len()));
                true
            }
            None => false,
        }
    }

    /// Writes what is pending; ready with the original's length once all of it is out (hyper
    /// hands the same bytes again after a `Pending`, and they are accounted for as a whole).
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((answer, written, original)) = &mut self.pending {
            if *written == answer.len() {
                let original = *original;
                self.pending = None;
                return Poll::Ready(Ok(original));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(0))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_none() && !self.begin(buf) {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        self.poll_pending(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|buf| !buf.is_empty()).map(|buf| &**buf);
        if self.pending.is_none() && !first.is_some_and(|first| self.begin(first)) {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        // Accounted as a write of the first slice: a short write is a valid answer.
        self.poll_pending(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_hypers_empty_parse_error_answers() {
        let head = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 01:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(rewrite(head).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("date: Wed"));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "invalid_request");

        // The service's own answers have bodies, other statuses are left alone, and so is a
        // write that holds more than a head.
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n";
        assert!(rewrite(own).is_none());
        assert!(rewrite(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}").is_none());
        assert!(
            rewrite(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n")
                .is_some()
        );
    }
}
