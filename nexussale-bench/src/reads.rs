//! Reads mode (`--reads`): reads of orders that exist, the way a shop's front end and its support
//! desk read them, to time the order lookups on a large orders table (scripts/scale.sh orders).

use std::sync::Arc;

use http::Method;
use serde::Serialize;

use crate::BenchError;
use crate::args::Args;
use crate::http::Target;
use crate::load::{self, Kind, Pacing, Run};

/// One order to read: its id and its buyer.
#[derive(Debug, Clone)]
struct Known {
    id: String,
    user: String,
}

/// One kind of read's figures.
#[derive(Debug, Serialize)]
struct Figures {
    reads: u64,
    errors: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

impl Figures {
    fn of(run: &Run) -> Self {
        let round = |ms: f64| crate::round(ms, 3);
        Self {
            reads: run.answers.len() as u64,
            errors: run.count(Kind::Error) + run.count(Kind::Rejected),
            rps: crate::round(run.rps(), 1),
            p50_ms: round(run.percentile_ms(0.5)),
            p99_ms: round(run.percentile_ms(0.99)),
            p999_ms: round(run.percentile_ms(0.999)),
        }
    }
}

/// The reads mode's summary (its last stdout line).
#[derive(Debug, Serialize)]
struct Summary {
    /// `GET /v1/orders/{id}`.
    by_id: Figures,
    /// `GET /v1/orders?user=…`: the buyer's first page.
    by_user: Figures,
}

/// Reads `--reads` orders by id, then as many buyers' first pages, `--concurrency` at a time,
/// the orders drawn at random from `--orders-file` (one `<id> <user>` a line). Answers whether
/// every read succeeded.
pub(crate) async fn run(args: &Args, reads: u64) -> Result<bool, BenchError> {
    let path = args.orders_file.as_ref().ok_or_else(|| {
        BenchError::Usage("--reads needs --orders-file (one `<id> <user>` a line)".into())
    })?;
    let text = std::fs::read_to_string(path)
        .map_err(|err| BenchError::Usage(format!("cannot read {}: {err}", path.display())))?;
    let known: Vec<Known> = text
        .lines()
        .filter_map(|line| {
            let (id, user) = line.trim().split_once(char::is_whitespace)?;
            Some(Known {
                id: id.to_owned(),
                user: user.trim().to_owned(),
            })
        })
        .collect();
    if known.is_empty() {
        return Err(BenchError::Usage(format!(
            "{} names no order (one `<id> <user>` a line)",
            path.display()
        )));
    }
    let target = Target::parse(&args.url, crate::args::Secret::text(&args.admin_token))?;
    // Drawn before the runs, so the load generator does no more than send during them.
    let draws: Vec<&Known> = (0..reads)
        .map(|_| &known[fastrand::usize(..known.len())])
        .collect();
    let by_id = draws
        .iter()
        .map(|order| format!("/v1/orders/{}", order.id))
        .collect();
    let by_user = draws
        .iter()
        .map(|order| {
            let user = percent_encoding::utf8_percent_encode(
                &order.user,
                percent_encoding::NON_ALPHANUMERIC,
            );
            format!("/v1/orders?user={user}")
        })
        .collect();
    let by_id = read_all(&target, args.concurrency, "order by id", by_id).await?;
    let by_user = read_all(&target, args.concurrency, "orders of a user", by_user).await?;
    for error in by_id.sample_errors.iter().chain(&by_user.sample_errors) {
        eprintln!("error: {error}");
    }
    let summary = Summary {
        by_id: Figures::of(&by_id),
        by_user: Figures::of(&by_user),
    };
    let clean = summary.by_id.errors == 0 && summary.by_user.errors == 0;
    println!(
        "{}",
        serde_json::to_string(&summary).map_err(|err| BenchError::Usage(err.to_string()))?
    );
    Ok(clean)
}

/// `GET`s every one of `paths` with the admin token, `concurrency` at a time.
async fn read_all(
    target: &Target,
    concurrency: usize,
    label: &str,
    paths: Vec<String>,
) -> Result<Run, BenchError> {
    let (sender, paths) = (target.clone(), Arc::new(paths));
    load::fire(
        target,
        paths.len() as u64,
        concurrency,
        label,
        move |job| sender.admin_request(Method::GET, &paths[job as usize], None),
        read_kind,
        Pacing::default(),
    )
    .await
}

/// A read of an order that exists succeeds; a 404 means the file named one that does not.
fn read_kind(status: http::StatusCode, _body: &bytes::Bytes) -> Kind {
    if status.is_success() {
        Kind::Success
    } else if status.is_client_error() {
        Kind::Rejected
    } else {
        Kind::Error
    }
}
