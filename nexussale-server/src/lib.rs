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

mod backends;
mod background;
mod body;
mod config;
mod error;
mod feeds;
mod forwarded;
mod https_client;
mod identity;
mod log_format;
mod log_writer;
mod metered;
mod otel;
mod ratelimit;
mod refusals;
mod routes;
mod server;
mod stack;
mod state;
mod telemetry;
mod wire;

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use hyper::body::Body;
use hyper::service::Service;
use nexussale_core::FlashSale;

pub use backends::{BackendConfig, Backends, RedisTopology, kafka_delivery_timeout};
pub use body::{DEFAULT_BODY_TIMEOUT, MAX_BODY_BYTES, Response, ResponseBody};
pub use config::{Config, KafkaOption, SaleSpec, Switch};
pub use error::{ApiError, ERROR_CODES};
pub use feeds::DEFAULT_FEED_TICK;
pub use forwarded::TrustedProxies;
pub use identity::{BuyerTokens, Caller, Identity, Jwks, JwksError, MAX_TOKEN_LEN};
pub use log_format::{PlainFields, PlainFormat, init_logs, init_logs_with, plain_fields};
pub use log_writer::{BufferedLog, FlushOnDrop, LineWriter};
pub use otel::Traces;
pub use ratelimit::RateLimiter;
pub use routes::openapi;
pub use server::{Limits, run, serve, serve_with};
pub use state::{AppState, Probe};

/// The HTTP service (a hyper [`Service`] over a stack of layers, one per concern: request
/// id, span and access log, panics, authentication, the deadline, the router): cheap to clone, one per connection.
#[derive(Debug, Clone)]
pub struct App {
    stack: stack::Stack,
    state: Arc<AppState>,
    peer: Option<IpAddr>,
}

impl App {
    /// The service for one connection from `peer` (the address per-client rate limits count).
    pub fn for_peer(&self, peer: IpAddr) -> Self {
        Self {
            stack: self.stack.clone(),
            state: Arc::clone(&self.state),
            peer: Some(peer),
        }
    }
}

/// The client's address (the connection's peer, or whom a trusted proxy forwarded for), in
/// each request's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

/// Builds the HTTP service over `engine`, with every route open and no readiness probes.
pub fn app(engine: FlashSale) -> App {
    app_with(AppState::new(engine))
}

/// Builds the HTTP service over `state`.
pub fn app_with(state: AppState) -> App {
    // The metrics recorder, before the first request, so that nothing goes unmeasured.
    let _ = telemetry::handle();
    let state = Arc::new(state);
    App {
        stack: stack::stack(Arc::clone(&state)),
        state,
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
    type Future = stack::Answer;

    fn call(&self, mut request: Request<B>) -> Self::Future {
        if let Some(peer) = self.peer {
            let client = self.state.proxies.client(peer, request.headers());
            request.extensions_mut().insert(ClientIp(client));
        }
        let request = request.map(|body| body::TimedBody::new(body, self.state.body_timeout));
        self.stack.call(request)
    }
}
