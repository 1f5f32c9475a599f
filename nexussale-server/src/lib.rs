//! The NexusSale reference server: the [`FlashSale`] engine over HTTP.
//!
//! [`app`] builds the HTTP service (a hyper [`Service`]), for tests and for embedding;
//! [`serve`] runs it on a listener until shutdown; the `nexussale-server` binary wires both to
//! its command line ([`Config`]). Routes, codes and flags follow `shared/CONTRACT.md`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use nexussale_core::FlashSale;
//! use nexussale_core::CancellationToken;
//!
//! let engine = FlashSale::in_memory();
//! let service = nexussale_server::app(engine);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! nexussale_server::serve(listener, service, CancellationToken::new()).await
//! # }
//! ```

mod body;
mod config;
mod error;
mod metered;
mod ratelimit;
mod routes;
mod server;
mod state;
mod telemetry;
mod wire;

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use http::Request;
use hyper::body::Body;
use hyper::service::Service;
use nexussale_core::FlashSale;

pub use body::{DEFAULT_BODY_TIMEOUT, MAX_BODY_BYTES, Response};
pub use config::{Config, KafkaOption, SaleSpec};
pub use error::{ApiError, ERROR_CODES};
pub use ratelimit::RateLimiter;
pub use routes::openapi;
pub use server::{Limits, run, serve, serve_with};
pub use state::{AppState, Probe};

/// The HTTP service: cheap to clone, one per connection.
#[derive(Debug, Clone)]
pub struct App {
    state: Arc<AppState>,
    peer: Option<IpAddr>,
}

impl App {
    /// The service for one connection from `peer` (the address per-client rate limits count).
    pub fn for_peer(&self, peer: IpAddr) -> Self {
        Self {
            state: Arc::clone(&self.state),
            peer: Some(peer),
        }
    }
}

/// The client's address, as the connection gave it, in each request's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

/// Builds the HTTP service over `engine`, with admin routes open and no readiness probes.
pub fn app(engine: FlashSale) -> App {
    app_with(AppState::new(engine))
}

/// Builds the HTTP service over `state`.
pub fn app_with(state: AppState) -> App {
    // The metrics recorder, before the first request, so that nothing goes unmeasured.
    let _ = telemetry::handle();
    App {
        state: Arc::new(state),
        peer: None,
    }
}

impl<B> Service<Request<B>> for App
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<B>) -> Self::Future {
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ClientIp(peer));
        }
        let state = Arc::clone(&self.state);
        let request = request.map(|body| body::TimedBody::new(body, state.body_timeout));
        // A span per request, at debug level: free unless asked for (RUST_LOG=debug).
        let span = tracing::debug_span!("request", method = %request.method(), path = %request.uri().path());
        Box::pin(tracing::Instrument::instrument(
            async move {
                // A panicking handler answers 500 and takes down neither the connection's task nor
                // the server.
                let handled = AssertUnwindSafe(routes::route(&state, request)).catch_unwind();
                let handled = match state.request_timeout {
                    Some(limit) => match tokio::time::timeout(limit, handled).await {
                        Ok(handled) => handled,
                        Err(_) => {
                            tracing::warn!(?limit, "a request ran out of time");
                            let mut late = ApiError::new(
                                http::StatusCode::SERVICE_UNAVAILABLE,
                                "unavailable",
                                format!("the request took longer than {limit:?}"),
                            );
                            late.retry_after = Some(1);
                            return Ok(late.into_response());
                        }
                    },
                    None => handled.await,
                };
                match handled {
                    // A body too slow to arrive: close the connection, so the client holds no
                    // slot any longer.
                    Ok(mut response) if response.status() == http::StatusCode::REQUEST_TIMEOUT => {
                        response.headers_mut().insert(
                            http::header::CONNECTION,
                            http::HeaderValue::from_static("close"),
                        );
                        Ok(response)
                    }
                    Ok(response) => Ok(response),
                    Err(_) => {
                        tracing::error!("a request handler panicked");
                        Ok(ApiError::new(
                            http::StatusCode::INTERNAL_SERVER_ERROR,
                            "unavailable",
                            "the server failed on this request",
                        )
                        .into_response())
                    }
                }
            },
            span,
        ))
    }
}
