//! Who is calling, and what each route lets them do.
//!
//! [`Identity`] holds the server's credentials: the admin token, the payment service's token and
//! the buyer tokens' verifier ([`BuyerTokens`], JSON Web Tokens). The stack's authentication
//! layer turns a request's `Authorization: Bearer …` into a [`Credential`] once; the router then
//! checks it against the route's [`Access`] in the route table, and handlers that own data (an
//! order belongs to its buyer) narrow what they show by the resulting [`Scope`].
//!
//! The engine knows nothing of this: it takes a user id, and an embedding service may check
//! ownership with an identity system of its own (`examples/embed.rs`).

mod access;
mod jwks;
mod tokens;

pub(crate) use access::{Access, Scope, authorize, forbidden};
pub(crate) use jwks::REFRESH_EVERY;
pub use jwks::{Jwks, JwksError};
pub use tokens::{BuyerTokens, MAX_TOKEN_LEN};

use std::fmt;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use nexussale_core::UserId;
use subtle::ConstantTimeEq;

/// A verified caller: what its credential proves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The buyer a JSON Web Token names (its `sub`); `None` for the static tokens.
    pub buyer: Option<UserId>,
    /// The admin role: the admin token, or a JWT scope `nexussale:admin`.
    pub admin: bool,
    /// The payment role: the payment token, or a JWT scope `nexussale:pay`.
    pub payment: bool,
}

/// What a request's `Authorization` header proved, in its extensions for the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// No `Authorization` header.
    Anonymous,
    /// A credential that holds.
    Verified(Caller),
    /// A credential that does not: why, for the 401's message (never the token itself).
    Refused(&'static str),
}

impl Credential {
    /// Who the caller is, for an audit line: a JSON Web Token's subject, the admin or payment
    /// token (named by role, never shown), or nobody on a server without credentials.
    pub(crate) fn who(&self) -> String {
        match self {
            Self::Verified(Caller {
                buyer: Some(subject),
                ..
            }) => format!("jwt:{subject}"),
            Self::Verified(Caller { admin: true, .. }) => "admin-token".to_owned(),
            Self::Verified(Caller { payment: true, .. }) => "payment-token".to_owned(),
            Self::Verified(_) | Self::Anonymous | Self::Refused(_) => "anonymous".to_owned(),
        }
    }
}

/// The server's credentials. With none ([`Identity::open`], the default) every route is open.
///
/// ```
/// use nexussale_core::FlashSale;
/// use nexussale_server::{AppState, BuyerTokens, Identity, app_with};
///
/// # fn main() -> Result<(), nexussale_server::JwksError> {
/// let mut state = AppState::new(FlashSale::in_memory());
/// state.identity = Identity::open()
///     .with_admin_token("an-admin-token")
///     .with_payment_token("the-payment-service-token")
///     // Buyers send `Authorization: Bearer <HS256 JWT>`; its `sub` is the buyer.
///     .with_buyer_tokens(BuyerTokens::hs256(b"the-jwt-key")?.with_issuer("https://id.example"));
/// assert!(!state.identity.is_open() && state.identity.authenticates_buyers());
/// let service = app_with(state);
/// # drop(service);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Identity {
    admin_token: Option<String>,
    payment_token: Option<String>,
    buyers: Option<BuyerTokens>,
}

impl Identity {
    /// No credential: every route open to anyone, as a server on a developer's machine.
    pub fn open() -> Self {
        Self::default()
    }

    /// The bearer token of the admin role.
    pub fn with_admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// The bearer token of the payment service (the payment role).
    pub fn with_payment_token(mut self, token: impl Into<String>) -> Self {
        self.payment_token = Some(token.into());
        self
    }

    /// Buyer authentication: buyers prove who they are with tokens `buyers` verifies.
    pub fn with_buyer_tokens(mut self, buyers: BuyerTokens) -> Self {
        self.buyers = Some(buyers);
        self
    }

    /// Whether no credential is configured (every route open).
    pub fn is_open(&self) -> bool {
        self.admin_token.is_none() && self.payment_token.is_none() && self.buyers.is_none()
    }

    /// Whether buyers must authenticate (a JWT key is configured).
    pub fn authenticates_buyers(&self) -> bool {
        self.buyers.is_some()
    }

    /// The JWKS buyers' tokens are checked against, if that is the key.
    pub fn jwks(&self) -> Option<&Jwks> {
        self.buyers.as_ref().and_then(BuyerTokens::jwks_source)
    }

    /// What `headers` prove. Only the `Authorization` header counts: a token in the query string
    /// (which proxies and access logs keep) is never read.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Credential {
        if self.is_open() {
            return Credential::Anonymous;
        }
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Credential::Anonymous;
        };
        let Some(token) = value.to_str().ok().and_then(bearer) else {
            return Credential::Refused(
                "the Authorization header must be `Bearer <token>`, in visible ASCII",
            );
        };
        // Constant time in where the tokens differ (`subtle`): a wrong guess says nothing of how
        // close it was.
        let is = |expected: &Option<String>| {
            expected
                .as_ref()
                .is_some_and(|expected| bool::from(token.as_bytes().ct_eq(expected.as_bytes())))
        };
        let (admin, payment) = (is(&self.admin_token), is(&self.payment_token));
        if admin || payment {
            return Credential::Verified(Caller {
                buyer: None,
                admin,
                payment,
            });
        }
        match &self.buyers {
            Some(buyers) => match buyers.verify(token) {
                Ok(caller) => Credential::Verified(caller),
                Err(why) => Credential::Refused(why),
            },
            None => Credential::Refused("the bearer token is not one this server accepts"),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |token: &Option<String>| token.as_ref().map(|_| "<set>");
        f.debug_struct("Identity")
            .field("admin_token", &set(&self.admin_token))
            .field("payment_token", &set(&self.payment_token))
            .field("buyers", &self.buyers)
            .finish()
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` count too.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER  s3cret ",
            " Bearer s3cret",
        ] {
            assert_eq!(bearer(value), Some("s3cret"), "{value:?}");
        }
        for value in ["Basic s3cret", "Bearer", "Bearer ", "Bearers3cret"] {
            assert_eq!(bearer(value), None, "{value:?}");
        }
    }

    #[test]
    fn static_tokens_give_their_role_and_nothing_else() {
        let identity = Identity::open()
            .with_admin_token("adm-s3cret")
            .with_payment_token("pay-s3cret");
        let admin = Caller {
            admin: true,
            ..Caller::default()
        };
        let payment = Caller {
            payment: true,
            ..Caller::default()
        };
        assert_eq!(
            identity.authenticate(&with("Bearer adm-s3cret")),
            Credential::Verified(admin)
        );
        assert_eq!(
            identity.authenticate(&with("Bearer pay-s3cret")),
            Credential::Verified(payment)
        );
        for wrong in [
            "Bearer adm-s3cre",
            "Bearer adm-s3cretx",
            "Basic adm-s3cret",
            "adm-s3cret",
        ] {
            assert!(
                matches!(identity.authenticate(&with(wrong)), Credential::Refused(_)),
                "{wrong}"
            );
        }
        assert_eq!(
            identity.authenticate(&HeaderMap::new()),
            Credential::Anonymous
        );
        // Open: a header proves nothing and refuses nothing.
        assert_eq!(
            Identity::open().authenticate(&with("Bearer adm-s3cret")),
            Credential::Anonymous
        );
        assert!(!format!("{identity:?}").contains("s3cret"));
    }
}
