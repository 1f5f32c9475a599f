//! The one outbound HTTP client the server builds (identity providers' key sets, the OTLP
//! collector): hyper over rustls, http or https, the system's trusted roots.

use hyper_util::client::legacy::{Client, connect::HttpConnector};

/// hyper's connector with TLS when the URL asks for it.
pub(crate) type HttpsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A client sending bodies of type `B` (read the trusted roots once: build one and keep it).
pub(crate) fn build<B>() -> Result<Client<HttpsConnector, B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|err| format!("cannot load the system's trusted roots: {err}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(hyper_util::rt::TokioExecutor::new()).build(https))
}
