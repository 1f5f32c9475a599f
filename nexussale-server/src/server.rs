//! Serving: the accept loop with graceful shutdown, and the whole process (`run`).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use nexussale_core::layers::Hooked;
use nexussale_core::{CancellationToken, FlashSale, Sku};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::backends::Backends;
use crate::background;
use crate::config::Config;
use crate::forwarded::TrustedProxies;
use crate::metered::Meter;
use crate::ratelimit::RateLimiter;
use crate::state::AppState;
use crate::wire::JsonParseErrors;
use crate::{App, app_with};

/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What one server process lets its clients take. Start from [`Limits::default`] and set the
/// fields you change (more may come).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Limits {
    /// Connections served at once; past it, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers before its connection is closed
    /// (slow-header clients hold no connection slot for long).
    pub header_read_timeout: Duration,
    /// Connections one client address may hold at once; past it, its new ones are closed as
    /// soon as they are accepted, so one address cannot take every slot. `None`: no cap.
    pub max_connections_per_ip: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(5),
            max_connections_per_ip: None,
        }
    }
}

/// Connections open per client address, for [`Limits::max_connections_per_ip`].
#[derive(Debug, Default)]
struct PerAddress {
    open: parking_lot::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

/// One connection counted against its address; uncounted when dropped.
#[derive(Debug)]
struct AddressSlot {
    counts: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// A slot for `ip`, unless it already holds `cap` connections.
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<AddressSlot> {
        let mut open = self.open.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` (HTTP/1.1, keep-alive) with the default [`Limits`] until
/// `shutdown` is cancelled; then stops accepting, lets in-flight requests finish (up to 10 s), and
/// returns.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, app, shutdown, Limits::default()).await
}

/// [`serve`] with `limits`.
pub async fn serve_with(
    listener: TcpListener,
    app: App,
    shutdown: CancellationToken,
    limits: Limits,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(PerAddress::default());
    loop {
        // A free slot first: at the limit, connections wait in the kernel's backlog.
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let address_slot = match limits.max_connections_per_ip {
            Some(cap) => match per_address.take(peer.ip(), cap) {
                Some(slot) => Some(slot),
                None => {
                    // Over its address's cap: closed unread (dropping the stream), its global
                    // slot freed at once.
                    tracing::debug!(%peer, cap, "connection refused: its address holds its cap");
                    continue;
                }
            },
            None => None,
        };
        let _ = stream.set_nodelay(true);
        let connection = http1::Builder::new()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(
                TokioIo::new(JsonParseErrors::new(stream)),
                app.for_peer(peer.ip()),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(slot);
            drop(address_slot);
        });
    }
    drop(listener);
    // Live feeds never end by themselves: end them, so their connections close now.
    app.state.feeds.close();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}"),
    }
    Ok(())
}

/// Every `every_secs` (0: never), compares the stock store with the repository (a reconcile dry
/// run) for each sale whose units moved through this process since the previous round, and for
/// each that did not balance then (a worker behind at that moment): that sets
/// `nexussale_reconcile_drift_units`, which the alert on books that do not balance reads. Idle
/// sales cost nothing: reading every sale each minute was a reconcile per sale (100,000 sales,
/// 100,000 of them a minute).
async fn check_books(engine: FlashSale, every_secs: u64, shutdown: CancellationToken) {
    if every_secs == 0 {
        return;
    }
    let every = Duration::from_secs(every_secs);
    let mut unbalanced: HashSet<Sku> = HashSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        // Read only: a round cut short by shutdown leaves nothing half done.
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = books_round(&engine, &mut unbalanced) => {}
        }
    }
}

/// One round of [`check_books`]: reconciles the sales touched since the last round and those in
/// `unbalanced`, which it leaves holding the ones that did not balance (or could not be read).
async fn books_round(engine: &FlashSale, unbalanced: &mut HashSet<Sku>) {
    let mut due: HashSet<Sku> = std::mem::take(unbalanced);
    due.extend(engine.touched_sales());
    let checked: Vec<(Sku, bool)> = futures::stream::iter(due)
        .map(|sku| async move {
            let balanced = match engine.reconcile(&sku, false).await {
                Ok(report) => report.in_sync(),
                Err(err) => {
                    tracing::debug!(sku = %sku, error = %err, "books check failed; tried again next round");
                    false
                }
            };
            (sku, balanced)
        })
        .buffer_unordered(BOOKS_CHECKED_AT_ONCE)
        .collect()
        .await;
    unbalanced.extend(
        checked
            .into_iter()
            .filter(|(_, balanced)| !balanced)
            .map(|(sku, _)| sku),
    );
}

/// Reconciles of one books-check round in flight at once.
const BOOKS_CHECKED_AT_ONCE: usize = 8;

/// Resolves on Ctrl-C or SIGTERM.
async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The whole server process: backends, start-up sales, the order worker and the expiry
/// sweeper (unless `--no-worker`), the HTTP service; until Ctrl-C or SIGTERM, then a graceful
/// stop that leaves every accepted order persisted or durably queued.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let identity = config.identity().await?;
    if identity.is_open() {
        if !config.listen.ip().is_loopback() && !config.insecure_open {
            return Err(format!(
                "refusing to serve {} with no credential configured (every route would be open to \
                 anyone who can reach it): set --admin-token, --payment-token and a JWT key \
                 (--jwt-secret, --jwt-public-key or --jwks), or pass --insecure-open",
                config.listen
            )
            .into());
        }
        warn!(
            "no credential configured: every route (creating sales, paying and cancelling any order) is open to anyone who can reach the server"
        );
    } else if !identity.authenticates_buyers() {
        warn!(
            "no JWT key (--jwt-secret, --jwt-public-key or --jwks): purchases are open and buy for whichever user the body names"
        );
    }
    let backends = Backends::connect(&config.backends()).await?;
    let mut engine_config = nexussale_core::EngineConfig::default();
    engine_config.max_sales = (config.max_sales > 0).then_some(config.max_sales);
    let mut engine = FlashSale::builder(
        backends.stock,
        Arc::new(Hooked::new(backends.queue, Meter)),
        Arc::new(Hooked::new(backends.repository, Meter)),
    )
    .waiting_rooms(backends.waiting_rooms)
    .config(engine_config);
    if let Some(secret) = &config.waiting_room_secret {
        // Refused here, at start, rather than at the first admission.
        nexussale_core::PassSigner::new(secret.as_bytes())?;
        engine = engine.pass_secret(secret.as_bytes());
    }
    let engine = engine.build();
    for spec in &config.sales {
        let sale = spec.0.clone();
        let (sku, stock, limit) = (sale.sku.clone(), sale.stock, sale.per_user_limit);
        if engine.ensure_sale(sale).await? {
            info!(%sku, stock, per_user_limit = limit, "sale created");
        } else {
            info!(%sku, "sale exists; left as it is");
        }
    }
    let state = AppState {
        identity: identity.clone(),
        proxies: TrustedProxies::new(config.trusted_proxies.iter().copied()),
        request_timeout: Some(Duration::from_secs(config.request_timeout_secs)),
        body_timeout: Some(Duration::from_secs(config.body_read_timeout_secs)),
        user_limit: config
            .rate_limit_user
            .map(|rate| Arc::new(RateLimiter::new(rate, rate.max(1.0)))),
        ip_limit: config
            .rate_limit_ip
            .map(|rate| Arc::new(RateLimiter::new(rate, rate.max(1.0)))),
        access_log: config.access_log.is_on() && crate::log_format::access_lines_pass(),
        log_lines: crate::log_format::plain_lines(),
        probes: backends.probes,
        ..AppState::new(engine.clone())
    };

    let background = CancellationToken::new();
    if let Some(jwks) = identity.jwks() {
        jwks.refresh_in_background(crate::identity::REFRESH_EVERY, background.clone());
    }
    // Without Kafka the worker hands the in-process queue over at the end: it is never aborted.
    let in_process_queue = config.kafka_brokers.is_none();
    let mut tasks = Vec::new();
    if config.no_worker {
        info!("no worker in this process (--no-worker): other processes persist the orders");
    } else {
        let worker = tokio::spawn({
            let (engine, token) = (engine.clone(), background.clone());
            async move { engine.run_worker(token).await }
        });
        tasks.push(if in_process_queue {
            background::Task::awaited("order worker", worker)
        } else {
            background::Task::abortable("order worker", worker)
        });
        tasks.push(background::Task::abortable(
            "expiry sweeper",
            tokio::spawn({
                let (engine, token) = (engine.clone(), background.clone());
                async move { engine.run_sweeper(token).await }
            }),
        ));
        tasks.push(background::Task::abortable(
            "books check",
            tokio::spawn(check_books(
                engine.clone(),
                config.reconcile_every_secs,
                background.clone(),
            )),
        ));
    }
    // Its last write counts what was refused until the end; lost only if it outlasts the grace.
    tasks.push(background::Task::abortable(
        "refusal counts",
        tokio::spawn(Arc::clone(&state.refusals).run(engine.clone(), background.clone())),
    ));
    // Every front end admits: each step is atomic in the store and counts conservatively.
    tasks.push(background::Task::abortable(
        "waiting-room admission",
        tokio::spawn({
            let (engine, token) = (engine.clone(), background.clone());
            async move { engine.run_admission(token).await }
        }),
    ));

    let listener = TcpListener::bind(config.listen).await?;
    info!(address = %listener.local_addr()?, "listening");
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            signal().await;
            info!("shutting down: no new connections, finishing in-flight requests");
            stop.cancel();
        }
    });
    let limits = Limits {
        max_connections: config.max_connections,
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        max_connections_per_ip: config.max_connections_per_ip,
    };
    serve_with(listener, app_with(state), stop, limits).await?;

    background.cancel();
    background::stop(tasks, background::GRACE).await;
    if config.kafka_brokers.is_some() {
        info!("stopped; events not yet persisted wait in kafka for the next worker");
    } else {
        // The in-process queue dies with the process (and no other process can reach it, even
        // with --no-worker): persist what it still holds.
        let drained = engine.drain().await?;
        info!(
            drained,
            "stopped; every accepted order is persisted ({drained} still queued at shutdown were persisted just now)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use metrics_exporter_prometheus::PrometheusBuilder;
    use nexussale_core::memory::{MemoryOrderQueue, MemoryOrderRepository, MemoryStockStore};
    use nexussale_core::{PurchaseOutcome, PurchaseRequest, Sale, UserId};

    use super::*;

    /// A sale whose books did not balance at one round (its order still in the queue) is checked
    /// again at the next though nothing moved since, so its drift gauge comes back to 0 once the
    /// worker caught up, instead of raising the alert for ever; idle sales are never checked.
    #[test]
    fn an_unbalanced_sale_is_checked_until_it_balances() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let drift = |sku: &str| {
            let text = handle.render();
            text.lines()
                .find(|line| {
                    line.starts_with("nexussale_reconcile_drift_units")
                        && line.contains(&format!("sku=\"{sku}\""))
                        && line.contains("kind=\"reserved\"")
                })
                .map(|line| line.rsplit(' ').next().unwrap_or_default().to_owned())
        };
        let engine = FlashSale::new(
            Arc::new(MemoryStockStore::new()),
            Arc::new(MemoryOrderQueue::new()),
            Arc::new(MemoryOrderRepository::new()),
        );
        let mut unbalanced = HashSet::new();
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                for sku in ["idle", "busy"] {
                    let sale = Sale::new(Sku::new(sku).unwrap(), 5);
                    engine.create_sale(sale).await.unwrap();
                }
                let buy =
                    PurchaseRequest::new(Sku::new("busy").unwrap(), UserId::new("u").unwrap());
                let outcome = engine.purchase(buy).await.unwrap();
                assert!(matches!(outcome, PurchaseOutcome::Accepted(_)));
                books_round(&engine, &mut unbalanced).await;
            })
        });
        assert_eq!(drift("busy").as_deref(), Some("1"), "{}", handle.render());
        assert_eq!(drift("idle"), None, "an idle sale is not checked");
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                engine.drain().await.unwrap();
                books_round(&engine, &mut unbalanced).await;
            })
        });
        assert_eq!(drift("busy").as_deref(), Some("0"), "{}", handle.render());
        assert!(unbalanced.is_empty());
    }
}
