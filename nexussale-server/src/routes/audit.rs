//! The audit trail: one log line per admin action, saying who did what to which sale, when (the
//! line's timestamp) and with what result. Lines go to the `nexussale::audit` target, which
//! `RUST_LOG` can route or keep on its own (`RUST_LOG=info,nexussale::audit=info`).

use http::{Request, header};

use crate::body::Response;
use crate::error::ApiError;
use crate::identity::Credential;

/// Who sent `request`, as its credential proves (see [`Credential::who`]).
pub(super) fn who<B>(request: &Request<B>) -> String {
    request
        .extensions()
        .get::<Credential>()
        .unwrap_or(&Credential::Anonymous)
        .who()
}

/// Runs `answer`, the handler of admin action `action` by `who` on sale `sku` (`None`: the one
/// the answer's `Location` names, for a creation), and writes its audit line.
pub(super) async fn admin_action(
    action: &'static str,
    sku: Option<&str>,
    who: String,
    answer: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, ApiError> {
    let answer = answer.await;
    let (status, error) = match &answer {
        Ok(response) => (response.status(), None),
        Err(err) => (err.status, Some(err.code)),
    };
    let created = answer.as_ref().ok().and_then(|response| {
        let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
        let segment = location.rsplit('/').next()?;
        Some(
            percent_encoding::percent_decode_str(segment)
                .decode_utf8_lossy()
                .into_owned(),
        )
    });
    let sku = sku.map(str::to_owned).or(created).unwrap_or_default();
    tracing::info!(
        target: "nexussale::audit",
        who = %who,
        action,
        sku = %sku,
        status = status.as_u16(),
        error = error.unwrap_or(""),
        "admin action"
    );
    answer
}
