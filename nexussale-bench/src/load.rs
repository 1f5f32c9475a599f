//! Firing requests: a fixed number of jobs, `concurrency` at a time, each worker on its own
//! keep-alive connection, every latency into an HDR histogram.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, StatusCode};
use http_body_util::Full;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tokio::sync::mpsc;

use crate::BenchError;
use crate::http::{Connection, Target};

/// What one answer was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 2xx (for a purchase: 202 accepted).
    Success,
    /// 409 `sold_out`.
    SoldOut,
    /// Any other 4xx.
    Rejected,
    /// 5xx, or no answer at all.
    Error,
}

/// One answer, as a worker saw it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) kind: Kind,
    /// When it arrived, since the run began.
    pub(crate) at: Duration,
    /// The body of a success, kept for the caller (e.g. the order id of a 202).
    pub(crate) body: Option<Bytes>,
}

/// What a run did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) answers: Vec<Answer>,
    /// Latency of every request, in microseconds.
    pub(crate) latency: Histogram<u64>,
    pub(crate) elapsed: Duration,
    /// When the clock started (every worker connected): `Answer::at` counts from here.
    pub(crate) started: Instant,
    /// The first few failures, to show what went wrong.
    pub(crate) sample_errors: Vec<String>,
}

impl Run {
    pub(crate) fn count(&self, kind: Kind) -> u64 {
        self.answers.iter().filter(|a| a.kind == kind).count() as u64
    }

    /// The order ids of the accepted purchases (`order_id` of each 2xx body).
    pub(crate) fn accepted_ids(&self) -> HashSet<String> {
        self.answers
            .iter()
            .filter_map(|answer| answer.body.as_ref())
            .filter_map(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
            .filter_map(|value| value["order_id"].as_str().map(str::to_owned))
            .collect()
    }

    /// Shows the first failures and, if the audit found anything, what.
    pub(crate) fn report(&self, findings: &crate::audit::Findings) {
        for error in &self.sample_errors {
            eprintln!("error: {error}");
        }
        if !findings.clean() {
            eprintln!(
                "AUDIT FAILED: oversold {}, duplicates {}, lost {}",
                findings.oversold, findings.duplicates, findings.lost
            );
        }
    }

    pub(crate) fn rps(&self) -> f64 {
        self.answers.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency percentile in milliseconds.
    pub(crate) fn percentile_ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1_000.0
    }
}

/// A progress bar on a terminal, nothing otherwise.
pub(crate) fn progress(jobs: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(jobs), ProgressDrawTarget::stderr());
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len} {rate} {eta_known}")
    {
        let style = style
            .progress_chars("=> ")
            // Whole requests a second, not `19,345.7041/s`.
            .with_key("rate", |state: &ProgressState, out: &mut dyn fmt::Write| {
                let _ = write!(out, "{:.0}/s", state.per_sec());
            })
            // No ETA until the rate means something: the first tick's guessed `82m`.
            .with_key(
                "eta_known",
                |state: &ProgressState, out: &mut dyn fmt::Write| {
                    if state.elapsed() >= Duration::from_secs(1) && state.pos() > 0 {
                        let _ = write!(out, "ETA {}s", state.eta().as_secs());
                    }
                },
            );
        bar.set_style(style);
    }
    bar.set_prefix(label.to_owned());
    bar
}

/// How jobs are sent, beyond as fast as `concurrency` allows.
#[derive(Debug, Default)]
pub(crate) struct Pacing {
    /// Jobs per second: job `n` is not sent before `n / rate` seconds into the run.
    pub(crate) rate: Option<f64>,
    /// Where the body of every success goes as it arrives.
    pub(crate) successes: Option<mpsc::UnboundedSender<Bytes>>,
}

/// Sends `jobs` requests, `concurrency` at a time, as `pacing` says; `request(job)` builds the
/// job's request and `classify` tells what its answer was.
pub(crate) async fn fire<R, C>(
    target: &Target,
    jobs: u64,
    concurrency: usize,
    label: &str,
    request: R,
    classify: C,
    pacing: Pacing,
) -> Result<Run, BenchError>
where
    R: Fn(u64) -> Request<Full<Bytes>> + Send + Sync + 'static,
    C: Fn(StatusCode, &Bytes) -> Kind + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let classify = Arc::new(classify);
    let next = Arc::new(AtomicU64::new(0));
    let bar = progress(jobs, label);
    // Every worker connects first; the clock starts once all have (see `Connection::warm`).
    let workers_count = concurrency.max(1);
    let ready = Arc::new(tokio::sync::Barrier::new(workers_count + 1));
    let started: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let workers: Vec<_> = (0..workers_count)
        .map(|_| {
            let (ready, started) = (ready.clone(), started.clone());
            let (request, classify, next, bar) =
                (request.clone(), classify.clone(), next.clone(), bar.clone());
            let (rate, successes) = (pacing.rate, pacing.successes.clone());
            let mut connection = Connection::new(target.clone());
            tokio::spawn(async move {
                connection.warm().await;
                ready.wait().await;
                let start = *started.get_or_init(Instant::now);
                let mut answers = Vec::new();
                let mut errors = Vec::new();
                // 1 µs to 60 s, 3 significant digits: these bounds are valid constants.
                let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                    .map_err(|err| BenchError::Usage(err.to_string()))?;
                loop {
                    let job = next.fetch_add(1, Ordering::Relaxed);
                    if job >= jobs {
                        break;
                    }
                    if let Some(rate) = rate {
                        let due = start + Duration::from_secs_f64(job as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let sent = Instant::now();
                    let answer = connection.send(request(job)).await;
                    latency.saturating_record(sent.elapsed().as_micros() as u64);
                    let at = start.elapsed();
                    let (kind, body) = match answer {
                        Ok((status, body)) => {
                            let kind = classify(status, &body);
                            if kind == Kind::Error && errors.len() < 5 {
                                errors
                                    .push(format!("{status}: {}", String::from_utf8_lossy(&body)));
                            }
                            // A copy: the body may be a view into the connection's whole
                            // read buffer, which would stay alive per answer (a 120,000-purchase
                            // soak peaked at 591 MB with views, 93 MB with copies).
                            let kept =
                                (kind == Kind::Success).then(|| Bytes::copy_from_slice(&body));
                            (kind, kept)
                        }
                        Err(err) => {
                            if errors.len() < 5 {
                                errors.push(err.to_string());
                            }
                            (Kind::Error, None)
                        }
                    };
                    if let (Some(successes), Some(body)) = (&successes, &body) {
                        // The receiver goes away only when the caller stopped caring.
                        let _ = successes.send(body.clone());
                    }
                    answers.push(Answer { kind, at, body });
                    bar.inc(1);
                }
                Ok::<_, BenchError>((answers, latency, errors))
            })
        })
        .collect();
    ready.wait().await;
    let start = *started.get_or_init(Instant::now);
    let mut run = Run {
        answers: Vec::with_capacity(jobs as usize),
        latency: Histogram::new_with_bounds(1, 60_000_000, 3)
            .map_err(|err| BenchError::Usage(err.to_string()))?,
        elapsed: Duration::ZERO,
        started: start,
        sample_errors: Vec::new(),
    };
    for worker in workers {
        let (answers, latency, errors) = worker.await??;
        run.answers.extend(answers);
        run.latency
            .add(latency)
            .map_err(|err| BenchError::Usage(err.to_string()))?;
        run.sample_errors.extend(errors);
    }
    run.elapsed = start.elapsed();
    run.answers.sort_by_key(|answer| answer.at);
    bar.finish_and_clear();
    Ok(run)
}

/// How a purchase answer counts: 2xx accepted, 409 `sold_out`, other 4xx refused, else error.
pub(crate) fn purchase_kind(status: StatusCode, body: &Bytes) -> Kind {
    if status.is_success() {
        Kind::Success
    } else if status == StatusCode::CONFLICT
        && serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|value| value["error"] == "sold_out")
    {
        Kind::SoldOut
    } else if status.is_client_error() {
        Kind::Rejected
    } else {
        Kind::Error
    }
}

/// How a `/health` answer counts.
pub(crate) fn health_kind(status: StatusCode, _body: &Bytes) -> Kind {
    if status == StatusCode::OK {
        Kind::Success
    } else {
        Kind::Error
    }
}
