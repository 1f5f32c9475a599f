//! [`Jwks`]: a JSON Web Key Set, from a file or a URL, refreshed in the background; keys picked
//! by `kid`.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use nexussale_core::CancellationToken;
use parking_lot::Mutex;

/// How often a JWKS from a URL is fetched again.
pub(crate) const REFRESH_EVERY: Duration = Duration::from_secs(300);

/// A token naming an unknown `kid` fetches the set again at most this often (a new key is picked
/// up within seconds; garbage `kid`s cannot make the server hammer the identity provider).
const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(30);

/// The largest JWKS document read.
const MAX_DOCUMENT: usize = 1024 * 1024;

/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a key or key set cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// A key is malformed or of an unsupported kind.
    #[error("{0}")]
    Key(String),
    /// A key file or the set could not be read or fetched.
    #[error("cannot read {source_name}: {reason}")]
    Fetch {
        /// The file or URL.
        source_name: String,
        /// What went wrong.
        reason: String,
    },
    /// The document is not a JWKS with a usable key.
    #[error("the JWKS is not usable: {0}")]
    Parse(String),
}

type Keys = HashMap<String, (DecodingKey, Algorithm)>;

/// A set's usable keys, and their JWKs as text (to tell whether a refresh changed anything).
struct Parsed {
    keys: Keys,
    fingerprint: Vec<String>,
}

/// A JSON Web Key Set. Cheap to clone: clones share the keys and their refreshes.
#[derive(Clone)]
pub struct Jwks {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    keys: ArcSwap<Keys>,
    fingerprint: Mutex<Vec<String>>,
    /// Counts key changes, so that what was verified under old keys is verified again.
    generation: AtomicU64,
    /// When an unknown `kid` last made the set be fetched again.
    refetched: Mutex<Option<Instant>>,
    /// The URL's client, built at the first fetch.
    client: tokio::sync::OnceCell<HttpsClient>,
}

#[derive(Debug, Clone)]
enum Source {
    Inline,
    File(PathBuf),
    Url(http::Uri),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline => f.write_str("given inline"),
            Self::File(path) => write!(f, "{}", path.display()),
            // A URL may carry credentials (`https://user:password@…`): never shown.
            Self::Url(url) => f.write_str(&crate::config::redact(&url.to_string())),
        }
    }
}

impl Jwks {
    /// A set from a JWKS document (`{"keys": [...]}`); never refreshed.
    pub fn from_json(document: &[u8]) -> Result<Self, JwksError> {
        Ok(Self::with(
            Source::Inline,
            parse(document)?,
            tokio::sync::OnceCell::new(),
        ))
    }

    /// The set at `file_or_url`: an `http://` or `https://` URL is fetched (and, with
    /// [`Jwks::refresh_in_background`], fetched again), anything else is read as a file.
    pub async fn load(file_or_url: &str) -> Result<Self, JwksError> {
        let source = if file_or_url.starts_with("http://") || file_or_url.starts_with("https://") {
            Source::Url(file_or_url.parse().map_err(|err: http::uri::InvalidUri| {
                JwksError::Fetch {
                    source_name: file_or_url.to_owned(),
                    reason: err.to_string(),
                }
            })?)
        } else {
            Source::File(PathBuf::from(file_or_url))
        };
        let client = tokio::sync::OnceCell::new();
        let keys = parse(&read(&source, &client).await?)?;
        Ok(Self::with(source, keys, client))
    }

    fn with(source: Source, parsed: Parsed, client: tokio::sync::OnceCell<HttpsClient>) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                keys: ArcSwap::from_pointee(parsed.keys),
                fingerprint: Mutex::new(parsed.fingerprint),
                generation: AtomicU64::new(0),
                refetched: Mutex::new(None),
                client,
            }),
        }
    }

    /// Reads the set again from its file or URL; a set that cannot be read or has no usable key
    /// leaves the current keys in place. Answers whether the keys changed.
    pub async fn refresh(&self) -> Result<bool, JwksError> {
        if matches!(self.inner.source, Source::Inline) {
            return Ok(false);
        }
        let parsed = parse(&read(&self.inner.source, &self.inner.client).await?)?;
        let mut fingerprint = self.inner.fingerprint.lock();
        if *fingerprint == parsed.fingerprint {
            return Ok(false);
        }
        *fingerprint = parsed.fingerprint;
        self.inner.keys.store(Arc::new(parsed.keys));
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    /// Fetches the set from its URL every `period` until `stop`; a failed fetch is logged and
    /// the keys kept. A file or inline set is left alone.
    pub fn refresh_in_background(&self, period: Duration, stop: CancellationToken) {
        if !matches!(self.inner.source, Source::Url(_)) {
            return;
        }
        let jwks = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.tick().await;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => jwks.refresh_logged().await,
                }
            }
        });
    }

    async fn refresh_logged(&self) {
        match self.refresh().await {
            Ok(true) => {
                tracing::info!(source = %self.inner.source, keys = self.inner.keys.load().len(), "JWKS keys changed")
            }
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %err, "JWKS refresh failed; the current keys stay in use");
            }
        }
    }

    /// The key a token's `kid` names; without a `kid`, the key of a one-key set. An unknown
    /// `kid` starts a fetch of the set (at most every 30 s) for the next request.
    pub(crate) fn key(&self, kid: Option<&str>) -> Option<(DecodingKey, Algorithm)> {
        let keys = self.inner.keys.load();
        let found = match kid {
            Some(kid) => keys.get(kid),
            None if keys.len() == 1 => keys.values().next(),
            None => None,
        };
        if let Some(found) = found {
            return Some(found.clone());
        }
        if matches!(self.inner.source, Source::Url(_)) && self.may_refetch() {
            let jwks = self.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { jwks.refresh_logged().await });
            }
        }
        None
    }

    fn may_refetch(&self) -> bool {
        let mut last = self.inner.refetched.lock();
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < UNKNOWN_KID_REFETCH) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Counts key changes.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.inner.keys.load();
        let mut kids: Vec<&String> = keys.keys().collect();
        kids.sort();
        f.debug_struct("Jwks")
            .field("source", &self.inner.source.to_string())
            .field("kids", &kids)
            .finish()
    }
}

async fn read(
    source: &Source,
    client: &tokio::sync::OnceCell<HttpsClient>,
) -> Result<Vec<u8>, JwksError> {
    let failed = |reason: String| JwksError::Fetch {
        source_name: source.to_string(),
        reason,
    };
    match source {
        Source::Inline => Err(failed("an inline set has nothing to read".into())),
        Source::File(path) => tokio::fs::read(path)
            .await
            .map_err(|err| failed(err.to_string())),
        Source::Url(url) => tokio::time::timeout(FETCH_TIMEOUT, fetch(url, client))
            .await
            .map_err(|_| failed(format!("no answer within {FETCH_TIMEOUT:?}")))?
            .map_err(failed),
    }
}

type HttpsClient =
    hyper_util::client::legacy::Client<crate::https_client::HttpsConnector, Empty<Bytes>>;

/// A set's HTTP client, built at its first fetch and kept: the system's trusted roots are read
/// from disk once, not on every refresh (one per set, not per process: its pooled connections
/// belong to the runtime that made them).
async fn client(cell: &tokio::sync::OnceCell<HttpsClient>) -> Result<&HttpsClient, String> {
    cell.get_or_try_init(|| async { crate::https_client::build() })
        .await
}

/// GETs `url` (http or https, the system's trusted roots).
async fn fetch(
    url: &http::Uri,
    cell: &tokio::sync::OnceCell<HttpsClient>,
) -> Result<Vec<u8>, String> {
    let request = http::Request::get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|err| err.to_string())?;
    let response = client(cell)
        .await?
        .request(request)
        .await
        .map_err(|err| format!("{err:?}"))?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_DOCUMENT)
        .collect()
        .await
        .map_err(|err| err.to_string())?;
    Ok(body.to_bytes().to_vec())
}

/// The usable keys of a JWKS document: signature keys (not `use: enc`) of an asymmetric
/// algorithm, by `kid`. A key this server cannot use is skipped with a warning; a set with no
/// usable key is an error.
fn parse(document: &[u8]) -> Result<Parsed, JwksError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(document)
        .map_err(|err| JwksError::Parse(format!("not a JWKS document ({err})")))?;
    let many = document.keys.len() > 1;
    let mut keys = Keys::new();
    let mut fingerprint = Vec::new();
    for (index, value) in document.keys.into_iter().enumerate() {
        let text = value.to_string();
        match usable(value, many) {
            Ok((kid, key, algorithm)) => {
                keys.insert(kid, (key, algorithm));
                fingerprint.push(text);
            }
            Err(why) => tracing::warn!(index, reason = %why, "JWKS key skipped"),
        }
    }
    if keys.is_empty() {
        return Err(JwksError::Parse("no usable signature key".into()));
    }
    fingerprint.sort();
    Ok(Parsed { keys, fingerprint })
}

fn usable(
    value: serde_json::Value,
    many: bool,
) -> Result<(String, DecodingKey, Algorithm), String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|err| format!("not a JWK ({err})"))?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("an encryption key".into());
    }
    let kid = match (&jwk.common.key_id, many) {
        (Some(kid), _) => kid.clone(),
        (None, false) => String::new(),
        (None, true) => return Err("no `kid` in a set of several keys".into()),
    };
    let inferred = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        _ => None,
    };
    let algorithm = match jwk.common.key_algorithm {
        Some(named) => Algorithm::from_str(&named.to_string())
            .map_err(|_| format!("algorithm {named} is not a signature algorithm"))?,
        None => inferred.ok_or("neither an RSA, a P-256/P-384 nor an Ed25519 key")?,
    };
    // A secret in a public set would let anyone holding the set sign tokens.
    if matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err("a symmetric (HMAC) key".into());
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|err| err.to_string())?;
    if key.family() != algorithm.family() {
        return Err(format!("a {:?} key named for {algorithm:?}", key.family()));
    }
    Ok((kid, key, algorithm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_a_server_cannot_use_are_skipped_and_a_url_shows_no_password() {
        // A symmetric key, an encryption key and a kid-less key among several: none usable.
        let unusable = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0", "alg": "HS256"},
            {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]});
        assert!(matches!(
            Jwks::from_json(unusable.to_string().as_bytes()),
            Err(JwksError::Parse(_))
        ));
        let one = serde_json::json!({"keys": [
            {"kty": "EC", "kid": "sig", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]});
        let jwks = Jwks::from_json(one.to_string().as_bytes()).unwrap();
        assert_eq!(
            jwks.key(Some("sig")).map(|(_, alg)| alg),
            Some(Algorithm::ES256)
        );
        assert!(jwks.key(Some("other")).is_none());
        assert!(Jwks::from_json(b"not json").is_err());
        let url = Source::Url("https://reader:TOPSECRET@id.example/jwks".parse().unwrap());
        assert!(!url.to_string().contains("TOPSECRET"), "{url}");
    }
}
