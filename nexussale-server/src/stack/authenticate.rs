//! Authentication: the request's `Authorization` header checked once, its [`Credential`] in the
//! request's extensions for the router (which checks it against the route's access).

use std::future::Future;
use std::sync::Arc;

use http::Request;

use super::Around;
use crate::body::Response;
use crate::identity::Identity;

/// Verifies the caller's credential (never refusing here: a route open to anyone needs none).
#[derive(Debug, Clone)]
pub(crate) struct Authenticate {
    pub(crate) identity: Arc<Identity>,
}

impl Around for Authenticate {
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
        let credential = self.identity.authenticate(request.headers());
        request.extensions_mut().insert(credential);
        next(request)
    }
}
