//! Soak mode (`--duration`): a steady purchase rate for a long time, with every accepted order
//! cancelled once persisted so the stock never runs out, and the server's memory sampled each
//! second so a leak shows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use nexussale_core::CancellationToken;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::args::Args;
use crate::http::{Connection, Target};
use crate::load::{self, Kind, Pacing};
use crate::tokens::Minter;
use crate::{BenchError, audit, rss};

/// How many cancels are in flight at once.
const CANCEL_WORKERS: usize = 32;
/// How long an order that is not persisted yet waits before its cancel is tried again.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// What the cancel workers did.
#[derive(Debug, Default)]
struct Cancels {
    cancelled: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

type Work = (String, Instant);

/// Cancels each accepted order once the worker has persisted it (404 until then: tried again
/// later, without holding a worker), returning its units to the sale. Runs until aborted.
fn spawn_cancellers(
    target: &Target,
    mut accepted: mpsc::UnboundedReceiver<Bytes>,
    cancels: Arc<Cancels>,
) -> Vec<JoinHandle<()>> {
    let (work, queue) = mpsc::unbounded_channel::<Work>();
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    let feeder = {
        let work = work.clone();
        tokio::spawn(async move {
            while let Some(body) = accepted.recv().await {
                let id = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|value| value["order_id"].as_str().map(str::to_owned));
                if let Some(id) = id {
                    // The workers outlive the feeder: the channel stays open.
                    let _ = work.send((id, Instant::now()));
                }
            }
        })
    };
    let mut handles = vec![feeder];
    for _ in 0..CANCEL_WORKERS {
        let (queue, work, cancels) = (queue.clone(), work.clone(), cancels.clone());
        let mut connection = Connection::new(target.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().await.recv().await;
                let Some((id, due)) = next else { return };
                tokio::time::sleep_until(due.into()).await;
                let path = format!("/v1/orders/{id}/cancel");
                let request = connection.target().admin_request(Method::POST, &path, None);
                let failure = match connection.send(request).await {
                    Ok((StatusCode::OK, _)) => {
                        cancels.cancelled.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Ok((StatusCode::NOT_FOUND, _)) => {
                        let _ = work.send((id, Instant::now() + RETRY_AFTER));
                        continue;
                    }
                    Ok((status, body)) => {
                        format!("POST {path}: {status} {}", String::from_utf8_lossy(&body))
                    }
                    Err(err) => format!("POST {path}: {err}"),
                };
                cancels.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = cancels
                    .first_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                first.get_or_insert(failure);
            }
        }));
    }
    handles
}

/// Runs the soak; whether the audit passed.
pub(crate) async fn run(args: &Args) -> Result<bool, BenchError> {
    let target = Target::parse(&args.url, crate::args::Secret::text(&args.admin_token))?;
    let seconds = args.duration.unwrap_or_default();
    let mut control = Connection::new(target.clone());
    crate::create_sale(&mut control, args, &args.sku, args.stock).await?;
    let pid = crate::server_pid(args, &target);
    let rss_mb = move || pid.and_then(rss::rss_kib).map(|kib| kib as f64 / 1024.0);
    let rss_start = rss_mb();

    let (successes, accepted) = mpsc::unbounded_channel();
    let cancels = Arc::new(Cancels::default());
    let cancellers = spawn_cancellers(&target, accepted, cancels.clone());

    // One line a second on stderr: what was cancelled so far and the server's memory.
    let stop_report = CancellationToken::new();
    let report = {
        let (stop, cancels) = (stop_report.clone(), cancels.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            let mut max = rss_mb();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while stop.run_until_cancelled(tick.tick()).await.is_some() {
                let now = rss_mb();
                max = match (max, now) {
                    (Some(max), Some(now)) => Some(max.max(now)),
                    (max, now) => max.or(now),
                };
                eprintln!(
                    "soak t={:>4}s cancelled={:>8} server_rss_mb={}",
                    start.elapsed().as_secs(),
                    cancels.cancelled.load(Ordering::Relaxed),
                    now.map_or("?".to_owned(), |mb| format!("{mb:.1}")),
                );
            }
            max
        })
    };

    // Distinct users across runs against the same sale.
    let nonce = fastrand::u32(..);
    let path = crate::purchase_path(&args.sku);
    let buyers = target.clone();
    let minter = Minter::new(crate::args::Secret::text(&args.jwt_secret))?;
    let run = load::fire(
        &target,
        args.rate * seconds,
        args.concurrency,
        "soak",
        move |job| {
            let user = format!("soak-{nonce:08x}-{job}");
            // Signed as it goes: a soak measures memory over time, not the bench's own speed.
            let token = minter.token(&user).ok().flatten();
            let body = format!(r#"{{"user":"{user}"}}"#);
            buyers.request(Method::POST, &path, Some(body), token.as_deref())
        },
        load::purchase_kind,
        Pacing {
            rate: Some(args.rate as f64),
            successes: Some(successes),
        },
    )
    .await?;

    // Let the cancels finish (each waits for its order to be persisted), then stop waiting.
    let accepted_count = run.count(Kind::Success);
    let deadline = Instant::now() + args.wait_persisted();
    while cancels.cancelled.load(Ordering::Relaxed) + cancels.failed.load(Ordering::Relaxed)
        < accepted_count
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for handle in cancellers {
        handle.abort();
    }
    stop_report.cancel();
    let rss_max = report.await?;
    let rss_end = rss_mb();

    let accepted = run.accepted_ids();
    let orders = audit::orders(&mut control, &args.sku).await?;
    let sale = audit::sale(&mut control, &args.sku).await?;
    let findings = audit::audit(&sale, &accepted, &orders);
    let failed = cancels.failed.load(Ordering::Relaxed);
    let errors = run.count(Kind::Error) + failed;
    if let Some(first) = cancels
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        eprintln!("{failed} cancels failed; the first: {first}");
    }
    let summary = serde_json::json!({
        "attempts": run.answers.len(),
        "accepted": run.count(Kind::Success),
        "sold_out": run.count(Kind::SoldOut),
        "rejected_other": run.count(Kind::Rejected),
        "errors": errors,
        "persisted": findings.persisted,
        "oversold": findings.oversold,
        "duplicates": findings.duplicates,
        "lost": findings.lost,
        "rps": crate::round(run.rps(), 1),
        "p50_ms": crate::round(run.percentile_ms(0.5), 3),
        "p99_ms": crate::round(run.percentile_ms(0.99), 3),
        "p999_ms": crate::round(run.percentile_ms(0.999), 3),
        "elapsed_s": crate::round(run.elapsed.as_secs_f64(), 3),
        "cancelled": cancels.cancelled.load(Ordering::Relaxed),
        "server_rss_start_mb": rss_start.map(|mb| crate::round(mb, 1)),
        "server_rss_max_mb": rss_max.map(|mb| crate::round(mb, 1)),
        "server_rss_end_mb": rss_end.map(|mb| crate::round(mb, 1)),
    });
    run.report(&findings);
    println!("{summary}");
    Ok(findings.clean() && errors == 0)
}
