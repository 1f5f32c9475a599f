//! `nexussale-bench`: fires a flash-sale burst at a NexusSale server, then audits what the server
//! did with it (oversold, duplicated, lost). See `nexussale-bench --help` and
//! docs/BENCHMARKS.md.

mod args;
mod audit;
mod http;
mod listeners;
mod load;
mod reads;
mod rss;
mod sales;
mod soak;
mod tokens;
mod waiting_room;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ::http::{Method, StatusCode};
use clap::Parser;
use nexussale_core::CancellationToken;
use serde::Serialize;

use args::Args;
use http::{Connection, Target};
use load::{Kind, Pacing};

/// Why the bench could not run (a failed audit is not an error: it is the summary's verdict).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    /// A flag is wrong.
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// HTTP failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The server answered something the bench cannot go on from.
    #[error("{what}: the server answered {status}: {body}")]
    Server {
        what: String,
        status: StatusCode,
        body: String,
    },
    /// A worker task failed.
    #[error("worker: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The one-line JSON summary (shared/CONTRACT.md; fields after `elapsed_s` are additions).
#[derive(Debug, Serialize)]
struct Summary {
    attempts: u64,
    accepted: u64,
    sold_out: u64,
    rejected_other: u64,
    errors: u64,
    /// The audit's figures: null when it could not finish (see `error`).
    persisted: Option<u64>,
    oversold: Option<u64>,
    duplicates: Option<u64>,
    lost: Option<u64>,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    elapsed_s: f64,
    /// `GET /health` per second under the same load (`--baseline`), else null.
    health_rps: Option<f64>,
    /// `rps / health_rps`.
    ratio: Option<f64>,
    /// Attempts per second before the first `sold_out` answer (the whole run if none).
    buy_phase_rps: f64,
    /// Attempts per second from the first `sold_out` answer on; null if the sale never sold out.
    sold_out_phase_rps: Option<f64>,
    /// The server's largest resident memory seen during the burst, if it runs on this machine.
    server_rss_max_mb: Option<f64>,
    /// Live-stock streams open during the burst (`--listeners`), and the `stock` events they
    /// received in all; null without.
    listeners: Option<u64>,
    listener_events: Option<u64>,
    /// Sales the burst was spread over (`--sales`), and the seconds creating them took.
    sales: u64,
    create_s: f64,
    /// Why the audit could not finish; absent when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub(crate) fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = if let Some(reads) = args.reads {
        reads::run(&args, reads).await
    } else if args.duration.is_some() {
        soak::run(&args).await
    } else if args.waiting_room {
        waiting_room::run(&args).await
    } else {
        burst(&args).await
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("nexussale-bench: {err}");
            // The last stdout line is always one JSON object, for the scripts that read it.
            println!("{}", serde_json::json!({ "error": err.to_string() }));
            ExitCode::from(2)
        }
    }
}

/// Creates the sale (`POST /v1/sales`) unless `--no-create`.
pub(crate) async fn create_sale(
    connection: &mut Connection,
    args: &Args,
    sku: &str,
    stock: u64,
) -> Result<(), BenchError> {
    if args.no_create {
        return Ok(());
    }
    let body = serde_json::json!({
        "sku": sku, "stock": stock, "per_user_limit": args.per_user_limit,
    });
    let request =
        connection
            .target()
            .admin_request(Method::POST, "/v1/sales", Some(body.to_string()));
    let (status, body) = connection.send(request).await?;
    if status != StatusCode::CREATED {
        return Err(BenchError::Server {
            what: format!("creating sale {sku} (pass --no-create to buy from an existing sale)"),
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    Ok(())
}

/// The purchase request of one user.
pub(crate) fn purchase_path(sku: &str) -> String {
    format!("{}/purchase", sale_path(sku))
}

/// `/v1/sales/{sku}`, the sku percent-encoded.
pub(crate) fn sale_path(sku: &str) -> String {
    format!(
        "/v1/sales/{}",
        percent_encoding::utf8_percent_encode(sku, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// The server's pid for memory samples: `--server-pid`, else the only local server process.
/// When there is none, says on stderr why the memory figures will be `null` and how to get them.
pub(crate) fn server_pid(args: &Args, target: &Target) -> Option<u32> {
    if let Some(pid) = args.server_pid {
        return Some(pid);
    }
    let found = if target.is_local() {
        rss::find_server()
    } else {
        Err(format!("the server ({}) is not on this machine", args.url))
    };
    found
        .map_err(|why| {
            eprintln!(
                "note: no server memory figures (server_rss_*: null): {why}; pass --server-pid PID of a server on this machine to get them"
            );
        })
        .ok()
}

/// The contract's burst: create, (baseline,) fire, wait for persistence, audit, summarize.
async fn burst(args: &Args) -> Result<bool, BenchError> {
    let target = Target::parse(&args.url, crate::args::Secret::text(&args.admin_token))?;
    let mut control = Connection::new(target.clone());
    let skus = sales::skus(args);
    let creating = std::time::Instant::now();
    let create_s = if skus.len() == 1 {
        create_sale(&mut control, args, &args.sku, args.stock).await?;
        creating.elapsed().as_secs_f64()
    } else {
        sales::create_all(&target, args, &skus).await?
    };
    let create_s = round(create_s, 3);

    let health = if args.baseline > 0 {
        let health = target.clone();
        let run = load::fire(
            &target,
            args.baseline,
            args.concurrency,
            "health",
            move |_| health.request(Method::GET, "/health", None, None),
            load::health_kind,
            Pacing::default(),
        )
        .await?;
        if run.count(Kind::Error) > 0 {
            return Err(BenchError::Usage(format!(
                "the /health baseline had {} errors: {:?}",
                run.count(Kind::Error),
                run.sample_errors
            )));
        }
        Some(run.rps())
    } else {
        None
    };

    // Users in shuffled order, so no server-side locality helps the run.
    let mut users: Vec<u64> = (0..args.users).collect();
    fastrand::shuffle(&mut users);
    // Tokens signed before the burst: the load generator shares the machine, so signing during
    // it would slow the server it measures.
    let minter = tokens::Minter::new(crate::args::Secret::text(&args.jwt_secret))?;
    let tokens: Vec<Option<String>> = (0..args.users)
        .map(|user| minter.token(&format!("user-{user}")))
        .collect::<Result<_, _>>()?;
    let tokens = Arc::new(tokens);
    let users = Arc::new(users);
    let paths: Vec<String> = skus.iter().map(|sku| purchase_path(sku)).collect();
    let stop_sampling = CancellationToken::new();
    let rss = server_pid(args, &target)
        .map(|pid| rss::sample_max(pid, Duration::from_millis(100), stop_sampling.clone()));
    let listeners = match args.listeners {
        0 => None,
        count => Some(listeners::open(&target, &args.sku, count).await?),
    };
    let buyers = target.clone();
    let job_users = users.clone();
    let run = load::fire(
        &target,
        args.users,
        args.concurrency,
        "purchase",
        move |job| {
            let user = job_users[job as usize];
            let body = format!(r#"{{"user":"user-{user}"}}"#);
            let token = tokens[user as usize].as_deref();
            let path = &paths[(user % paths.len() as u64) as usize];
            buyers.request(Method::POST, path, Some(body), token)
        },
        load::purchase_kind,
        Pacing::default(),
    )
    .await?;
    stop_sampling.cancel();
    let listener_events = match listeners {
        Some(listeners) => Some(listeners.close().await),
        None => None,
    };

    let accepted = run.accepted_ids();
    let audited = async {
        if skus.len() > 1 {
            return sales::audit_all(&mut control, &skus, &accepted, args.wait_persisted()).await;
        }
        let orders =
            audit::wait_persisted(&mut control, &args.sku, &accepted, args.wait_persisted())
                .await?;
        let sale = audit::sale(&mut control, &args.sku).await?;
        Ok::<_, BenchError>((audit::audit(&sale, &accepted, &orders), sale))
    }
    .await;

    let first_sold_out = run.answers.iter().position(|a| a.kind == Kind::SoldOut);
    let (buy_phase_rps, sold_out_phase_rps) = match first_sold_out {
        Some(index) => {
            let split = run.answers[index].at;
            let after = run.elapsed.saturating_sub(split).as_secs_f64().max(1e-9);
            (
                index as f64 / split.as_secs_f64().max(1e-9),
                Some((run.answers.len() - index) as f64 / after),
            )
        }
        None => (run.rps(), None),
    };
    let errors = run.count(Kind::Error);
    let (findings, sale, audit_error) = match audited {
        Ok((findings, sale)) => (Some(findings), Some(sale), None),
        Err(err) => (
            None,
            None,
            Some(format!("the audit could not finish: {err}")),
        ),
    };
    let summary = Summary {
        attempts: run.answers.len() as u64,
        accepted: run.count(Kind::Success),
        sold_out: run.count(Kind::SoldOut),
        rejected_other: run.count(Kind::Rejected),
        errors,
        persisted: findings.as_ref().map(|f| f.persisted),
        oversold: findings.as_ref().map(|f| f.oversold),
        duplicates: findings.as_ref().map(|f| f.duplicates),
        lost: findings.as_ref().map(|f| f.lost),
        rps: round(run.rps(), 1),
        p50_ms: round(run.percentile_ms(0.5), 3),
        p99_ms: round(run.percentile_ms(0.99), 3),
        p999_ms: round(run.percentile_ms(0.999), 3),
        elapsed_s: round(run.elapsed.as_secs_f64(), 3),
        health_rps: health.map(|rps| round(rps, 1)),
        ratio: health.map(|health| round(run.rps() / health, 3)),
        buy_phase_rps: round(buy_phase_rps, 1),
        sold_out_phase_rps: sold_out_phase_rps.map(|rps| round(rps, 1)),
        server_rss_max_mb: rss.map(|max| round(max.load(Ordering::Relaxed) as f64 / 1024.0, 1)),
        listeners: (args.listeners > 0).then_some(args.listeners as u64),
        listener_events,
        sales: skus.len() as u64,
        create_s,
        error: audit_error,
    };
    let (Some(findings), Some(sale)) = (findings, sale) else {
        eprintln!(
            "nexussale-bench: {}",
            summary.error.as_deref().unwrap_or_default()
        );
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
        return Ok(false);
    };
    let sold_in = match skus.len() {
        1 => format!("sale {}", args.sku),
        count => format!("{count} sales {}-*, in all", args.sku),
    };
    eprintln!(
        "{sold_in}: stock {}, available {}, reserved {}, sold {}; {} accepted, {} persisted",
        sale.stock, sale.available, sale.reserved, sale.sold, summary.accepted, findings.persisted
    );
    run.report(&findings);
    println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    Ok(findings.clean() && errors == 0)
}
