//! [`BuyerTokens`]: JSON Web Tokens verified by the server itself (`jsonwebtoken`), with a small
//! cache so that a buyer's token is verified once, not on every request.

use std::fmt;
use std::sync::Arc;

use dashmap::DashMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use nexussale_core::UserId;
use serde::Deserialize;

use super::Caller;
use super::jwks::{Jwks, JwksError};

/// The longest bearer token verified; a longer one is refused unread (401).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Seconds of clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// The algorithms a configured key may have (each key accepts only its own).
const ALGORITHMS: [Algorithm; 10] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Verified tokens kept; past it the expired ones go, then, if still full, all of them.
const CACHE_CAPACITY: usize = 100_000;

/// How buyers' tokens are checked: the key (an HS256 secret, an RS256/ES256 public key, or a
/// JWKS), and the `iss` / `aud` they must carry when configured.
///
/// The algorithm comes from the key, never from the token's header: a token whose header names
/// another algorithm (`none`, HS256 over an RSA key, …) is refused. `exp` is required, `nbf`
/// enforced when present, both with a 30-second leeway; `sub`, the buyer, is required.
/// A token's `scope` (space-separated) may grant `nexussale:admin` and `nexussale:pay`.
#[derive(Clone)]
pub struct BuyerTokens {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
    validations: Arc<[(Algorithm, Validation)]>,
    cache: Arc<DashMap<Box<str>, Verified>>,
}

#[derive(Clone)]
enum Keys {
    One(DecodingKey, Algorithm),
    Set(Jwks),
}

/// A verified token's caller, good until `exp` (plus the leeway) while the keys are the ones
/// that verified it.
#[derive(Debug, Clone)]
struct Verified {
    caller: Caller,
    exp: u64,
    keys: u64,
}

/// The claims read from a token (the rest are ignored).
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    scope: Option<String>,
}

impl BuyerTokens {
    /// HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8]) -> Result<Self, JwksError> {
        if secret.is_empty() {
            return Err(JwksError::Key("the JWT secret is empty".into()));
        }
        let key =
            DecodingKey::from_secret(secret).map_err(|err| JwksError::Key(err.to_string()))?;
        Ok(Self::new(Keys::One(key, Algorithm::HS256)))
    }

    /// Tokens signed by the private half of a PEM public key: RS256 for an RSA key, ES256 for a
    /// P-256 one.
    pub fn public_key_pem(pem: &[u8]) -> Result<Self, JwksError> {
        let keys = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            Keys::One(key, Algorithm::RS256)
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            Keys::One(key, Algorithm::ES256)
        } else {
            return Err(JwksError::Key(
                "the public key is neither an RSA nor an EC (P-256) key in PEM".into(),
            ));
        };
        Ok(Self::new(keys))
    }

    /// Tokens signed by one of a JWKS's keys, picked by the token's `kid`.
    pub fn jwks(jwks: Jwks) -> Self {
        Self::new(Keys::Set(jwks))
    }

    /// The JWKS, when that is the key.
    pub(crate) fn jwks_source(&self) -> Option<&Jwks> {
        match &self.keys {
            Keys::Set(jwks) => Some(jwks),
            Keys::One(..) => None,
        }
    }

    fn new(keys: Keys) -> Self {
        Self {
            keys,
            issuer: None,
            audience: None,
            validations: Self::validations(None, None),
            cache: Arc::new(DashMap::new()),
        }
    }

    /// Tokens must carry `iss` = `issuer`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self.validations = Self::validations(self.issuer.as_deref(), self.audience.as_deref());
        self
    }

    /// Tokens must carry `audience` in `aud`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self.validations = Self::validations(self.issuer.as_deref(), self.audience.as_deref());
        self
    }

    /// The caller `token` proves, or why it proves nothing (a sentence for the 401, never the
    /// token).
    pub(crate) fn verify(&self, token: &str) -> Result<Caller, &'static str> {
        if token.len() > MAX_TOKEN_LEN {
            return Err("the bearer token is too long");
        }
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(hit) = self.cache.get(token) {
            if now <= hit.exp.saturating_add(LEEWAY_SECS) && hit.keys == self.keys.generation() {
                return Ok(hit.caller.clone());
            }
            drop(hit);
            self.cache.remove(token);
        }
        // Read before the key is picked: a refresh in between makes this entry stale, not wrong.
        let generation = self.keys.generation();
        let claims = match &self.keys {
            // One key: its algorithm is the only one accepted; the header needs no reading here.
            Keys::One(key, algorithm) => self.decode(token, key, *algorithm)?,
            Keys::Set(jwks) => {
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|_| "the bearer token is not a JSON Web Token")?;
                let (key, algorithm) = jwks
                    .key(header.kid.as_deref())
                    .ok_or("the token's key id (`kid`) names no key this server knows")?;
                self.decode(token, &key, algorithm)?
            }
        };
        let buyer = UserId::new(&claims.sub).map_err(|_| "the token's `sub` is not a user id")?;
        let scopes = claims.scope.as_deref().unwrap_or_default();
        let has = |wanted: &str| scopes.split(' ').any(|scope| scope == wanted);
        let caller = Caller {
            buyer: Some(buyer),
            admin: has("nexussale:admin"),
            payment: has("nexussale:pay"),
        };
        self.remember(token, &caller, claims.exp, generation, now);
        Ok(caller)
    }

    /// The claims of `token`, verified with `key` for `algorithm` (the only one accepted).
    fn decode(
        &self,
        token: &str,
        key: &DecodingKey,
        algorithm: Algorithm,
    ) -> Result<Claims, &'static str> {
        let validation = self
            .validations
            .iter()
            .find(|(named, _)| *named == algorithm)
            .map(|(_, validation)| validation)
            .ok_or("the token's algorithm is not the one this server accepts")?;
        jsonwebtoken::decode::<Claims>(token, key, validation)
            .map(|data| data.claims)
            .map_err(|err| refusal(err.kind()))
    }

    /// One `Validation` per algorithm a key may have, built once (not per token).
    fn validations(issuer: Option<&str>, audience: Option<&str>) -> Arc<[(Algorithm, Validation)]> {
        ALGORITHMS
            .iter()
            .map(|&algorithm| {
                let mut validation = Validation::new(algorithm);
                validation.leeway = LEEWAY_SECS;
                validation.validate_nbf = true;
                validation.set_required_spec_claims(&["exp", "sub"]);
                if let Some(issuer) = issuer {
                    validation.set_issuer(&[issuer]);
                }
                match audience {
                    Some(audience) => validation.set_audience(&[audience]),
                    None => validation.validate_aud = false,
                }
                (algorithm, validation)
            })
            .collect()
    }

    fn remember(&self, token: &str, caller: &Caller, exp: u64, keys: u64, now: u64) {
        if self.cache.len() >= CACHE_CAPACITY {
            self.cache
                .retain(|_, verified| now <= verified.exp.saturating_add(LEEWAY_SECS));
            if self.cache.len() >= CACHE_CAPACITY {
                self.cache.clear();
            }
        }
        self.cache.insert(
            token.into(),
            Verified {
                caller: caller.clone(),
                exp,
                keys,
            },
        );
    }
}

impl Keys {
    /// Which keys these are: a JWKS refreshed with other keys counts up, so tokens verified under
    /// the old ones are verified again.
    fn generation(&self) -> u64 {
        match self {
            Self::One(..) => 0,
            Self::Set(jwks) => jwks.generation(),
        }
    }
}

fn refusal(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)",
        ErrorKind::InvalidIssuer => "the token's issuer (`iss`) is not the one this server accepts",
        ErrorKind::InvalidAudience => "the token's audience (`aud`) does not name this server",
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not the one this server accepts",
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        ErrorKind::MissingRequiredClaim(_) => "the token lacks `exp` or `sub`",
        _ => "the bearer token is not a valid JSON Web Token",
    }
}

impl fmt::Debug for BuyerTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = match &self.keys {
            Keys::One(_, algorithm) => format!("{algorithm:?} key"),
            Keys::Set(jwks) => format!("{jwks:?}"),
        };
        f.debug_struct("BuyerTokens")
            .field("keys", &keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("cached", &self.cache.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(exp: u64) -> String {
        let claims = serde_json::json!({"sub": "ann", "exp": exp, "scope": "openid nexussale:pay"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"k3y").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_token_is_verified_once_and_its_cache_entry_still_expires() {
        let tokens = BuyerTokens::hs256(b"k3y").unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let good = token(now + 600);
        let caller = tokens.verify(&good).unwrap();
        assert_eq!(caller.buyer.as_ref().map(UserId::as_str), Some("ann"));
        assert!(caller.payment && !caller.admin);
        assert_eq!(tokens.cache.len(), 1);
        assert_eq!(tokens.verify(&good), Ok(caller.clone()));
        assert_eq!(tokens.cache.len(), 1);

        // A token cached while it held, now past `exp` and the leeway: refused, not served.
        let stale = token(now - LEEWAY_SECS - 5);
        tokens.remember(&stale, &caller, now - LEEWAY_SECS - 5, 0, now);
        assert_eq!(tokens.verify(&stale), Err("the token has expired"));
        assert!(tokens.cache.get(stale.as_str()).is_none());
        // Inside the leeway it holds.
        assert!(tokens.verify(&token(now - 5)).is_ok());
        assert!(BuyerTokens::hs256(b"").is_err());
    }
}
