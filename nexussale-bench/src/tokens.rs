//! Buyers' tokens: with `--jwt-secret`, each simulated buyer `user-N` signs its purchases with an
//! HS256 token of its own (`sub` = its name), as a front end behind a login would.

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::BenchError;

/// How long a minted token holds: longer than any run.
const VALID_SECS: u64 = 24 * 3600;

/// Signs buyers' tokens, or does nothing (no `--jwt-secret`: buyers send none).
#[derive(Clone)]
pub(crate) struct Minter {
    key: Option<EncodingKey>,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("key", &self.key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Minter {
    pub(crate) fn new(secret: Option<&str>) -> Result<Self, BenchError> {
        let key = secret
            .map(|secret| {
                EncodingKey::from_secret(secret.as_bytes())
                    .map_err(|err| BenchError::Usage(format!("--jwt-secret: {err}")))
            })
            .transpose()?;
        Ok(Self { key })
    }

    /// The token of buyer `sub`, if buyers sign.
    pub(crate) fn token(&self, sub: &str) -> Result<Option<String>, BenchError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let exp = jsonwebtoken::get_current_timestamp() + VALID_SECS;
        let claims = serde_json::json!({ "sub": sub, "exp": exp });
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
            .map(Some)
            .map_err(|err| BenchError::Usage(format!("cannot sign a token for {sub}: {err}")))
    }
}
