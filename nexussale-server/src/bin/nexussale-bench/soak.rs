//! Soak mode (`--duration`): a steady purchase rate for a long time, with every accepted order
//! cancelled once persisted so the stock never runs out, and the server's memory sampled each
//! second so a leak shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use nexussale_core::CancellationToken;
use tokio::sync::mpsc;

use crate::args::Args;
use crate::http::{Connection, Target};
use crate::load::{self, Kind, Pacing};
use crate::{BenchError, audit, rss};

/// Cancels each accepted order once the worker has persisted it (404 until then), returning its
/// units to the sale. Answers how many it cancelled.
async fn cancel_all(
    target: Target,
    mut accepted: mpsc::UnboundedReceiver<Bytes>,
    cancelled: Arc<AtomicU64>,
    give_up: CancellationToken,
) -> Result<(), BenchError> {
    let mut connection = Connection::new(target);
    while let Some(body) = accepted.recv().await {
        let Some(id) = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value["order_id"].as_str().map(str::to_owned))
        else {
            continue;
        };
        let path = format!("/v1/orders/{id}/cancel");
        loop {
            let request = connection.target().request(Method::POST, &path, None, None);
            let (status, body) = connection.send(request).await?;
            match status {
                StatusCode::OK => break,
                StatusCode::NOT_FOUND if !give_up.is_cancelled() => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => {
                    return Err(BenchError::Server {
                        what: format!("POST {path}"),
                        status,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                }
            }
        }
        cancelled.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Runs the soak; whether the audit passed.
pub(crate) async fn run(args: &Args) -> Result<bool, BenchError> {
    let target = Target::parse(&args.url)?;
    let seconds = args.duration.unwrap_or_default();
    let mut control = Connection::new(target.clone());
    crate::create_sale(&mut control, args, &args.sku, args.stock).await?;
    let pid = crate::server_pid(args, &target);
    let rss_mb = move || pid.and_then(rss::rss_kib).map(|kib| kib as f64 / 1024.0);
    let rss_start = rss_mb();

    let (successes, accepted) = mpsc::unbounded_channel();
    let cancelled = Arc::new(AtomicU64::new(0));
    let give_up = CancellationToken::new();
    let canceller = tokio::spawn(cancel_all(
        target.clone(),
        accepted,
        cancelled.clone(),
        give_up.clone(),
    ));

    // One line a second on stderr: what was cancelled so far and the server's memory.
    let stop_report = CancellationToken::new();
    let report = {
        let (stop, cancelled) = (stop_report.clone(), cancelled.clone());
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
                    cancelled.load(Ordering::Relaxed),
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
    let run = load::fire(
        &target,
        args.rate * seconds,
        args.concurrency,
        "soak",
        move |job| {
            let body = format!(r#"{{"user":"soak-{nonce:08x}-{job}"}}"#);
            buyers.request(Method::POST, &path, Some(body), None)
        },
        load::purchase_kind,
        Pacing {
            rate: Some(args.rate as f64),
            successes: Some(successes),
        },
    )
    .await?;

    // Let the cancels finish (each waits for its order to be persisted), then stop waiting.
    let wait = tokio::time::sleep(args.wait_persisted());
    tokio::pin!(wait);
    let mut canceller = canceller;
    let finished = tokio::select! {
        done = &mut canceller => Some(done),
        () = &mut wait => None,
    };
    let canceller_result = match finished {
        Some(done) => done?,
        None => {
            give_up.cancel();
            canceller.await?
        }
    };
    stop_report.cancel();
    let rss_max = report.await?;
    let rss_end = rss_mb();

    let accepted = run.accepted_ids();
    let orders = audit::orders(&mut control, &args.sku).await?;
    let sale = audit::sale(&mut control, &args.sku).await?;
    let findings = audit::audit(&sale, &accepted, &orders);
    let errors = run.count(Kind::Error) + u64::from(canceller_result.is_err());
    if let Err(err) = &canceller_result {
        eprintln!("cancelling failed: {err}");
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
        "cancelled": cancelled.load(Ordering::Relaxed),
        "server_rss_start_mb": rss_start.map(|mb| crate::round(mb, 1)),
        "server_rss_max_mb": rss_max.map(|mb| crate::round(mb, 1)),
        "server_rss_end_mb": rss_end.map(|mb| crate::round(mb, 1)),
    });
    run.report(&findings);
    println!("{summary}");
    Ok(findings.clean() && errors == 0)
}
