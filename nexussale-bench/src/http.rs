//! One keep-alive HTTP/1.1 connection per worker: no pool to share, so the load generator
//! spends its two cores on requests, not on locks.

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::BenchError;

/// Where the server is.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `host:port`, to connect to and to send as `Host`.
    authority: String,
    /// The path prefix of the base URL, without a trailing slash.
    base_path: String,
    /// The admin token, for creating the sale and the audit (`--admin-token`).
    admin_token: Option<String>,
}

impl Target {
    pub(crate) fn parse(url: &str, admin_token: Option<&str>) -> Result<Self, BenchError> {
        let uri: Uri = url
            .parse()
            .map_err(|err| BenchError::Usage(format!("--url {url}: {err}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(BenchError::Usage(format!(
                "--url {url}: only http:// URLs are supported"
            )));
        }
        let host = uri
            .host()
            .ok_or_else(|| BenchError::Usage(format!("--url {url}: no host")))?;
        let port = uri.port_u16().unwrap_or(80);
        Ok(Self {
            authority: format!("{host}:{port}"),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            admin_token: admin_token.map(str::to_owned),
        })
    }

    /// Whether the server runs on this machine (so its memory can be read from /proc).
    /// `host:port`.
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    pub(crate) fn is_local(&self) -> bool {
        let host = self.authority.rsplit_once(':').map_or("", |(host, _)| host);
        matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "0.0.0.0")
    }

    /// A request to `path` with the admin token (when there is one).
    pub(crate) fn admin_request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Request<Full<Bytes>> {
        self.request(method, path, body, self.admin_token.as_deref())
    }

    /// A request to `path` (which starts with `/`), with `body` as JSON.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        bearer: Option<&str>,
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_path))
            .header(http::header::HOST, &self.authority);
        if body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = bearer {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        // Every part above is valid by construction (the path comes from our own strings).
        builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap_or_default()
    }
}

/// A keep-alive connection that reconnects after a failure.
pub(crate) struct Connection {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    pub(crate) fn new(target: Target) -> Self {
        Self {
            target,
            sender: None,
        }
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, BenchError> {
        let stream = TcpStream::connect(&self.target.authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it; a
            // failure shows on the next request.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends `request`; the status and whole body, or why there is none.
    /// Connects now, if not connected: so that a run's clock does not count connection setup
    /// (a SYN lost under load costs a 1 s retransmission, which one connection of 256 made a
    /// whole 10,000-purchase burst look five times slower). A failure is left for `send` to
    /// meet and report.
    pub(crate) async fn warm(&mut self) {
        if self.sender.is_none()
            && let Ok(sender) = self.connect().await
        {
            self.sender = Some(sender);
        }
    }

    pub(crate) async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), BenchError> {
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(self.connect().await?),
        };
        let answer = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        if answer.is_err() {
            self.sender = None;
        }
        Ok(answer?)
    }
}
