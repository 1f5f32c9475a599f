//! `GET /metrics`: Prometheus text, through the `metrics` facade.
//!
//! | metric | kind | what |
//! | --- | --- | --- |
//! | `nexussale_purchases_total{outcome}` | counter | purchases by outcome: `accepted`, `duplicate`, `sold_out`, `limit_exceeded`, `not_active`, `rejected` (4xx), `failed` (5xx) |
//! | `nexussale_purchase_duration_seconds` | histogram | time to answer a purchase |
//! | `nexussale_publish_duration_seconds` | histogram | time for the queue to take an order event durably |
//! | `nexussale_worker_lag_seconds` | histogram | from a purchase to its event reaching the worker |
//! | `nexussale_orders_persisted_total` | counter | orders the worker stored (new ones only) |
//! | `nexussale_units_available{sku}`, `_reserved`, `_sold`, `nexussale_units_stock{sku}` | gauge | each sale's units by state, and its stock, read for each scrape (a scrape waits for the reading up to 2 s, else shows the last values read: 100,000 sales on Redis take longer) |
//! | `nexussale_backend_up{backend}` | gauge | 1 when the backend answered its readiness probe at the scrape, else 0 |
//! | `nexussale_build_info{version}` | gauge | always 1 |
//! | `nexussale_http_requests_total{method,route,class}` | counter | requests by route template and status class (`2xx` …) |
//! | `nexussale_http_requests_in_flight` | gauge | requests being served |
//! | `nexussale_dead_letters_total` | counter | undecodable order events sent to the dead-letter topic (Kafka) |
//! | `nexussale_kafka_events_produced_total`, `nexussale_kafka_produce_requests_total` | counter | order events the Kafka producer sent and the produce requests that carried them (librdkafka's statistics, each second): their ratio is the events per request, how well the producer batches |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_start_time_seconds` | | the process, read at each scrape (Linux) |
//!
//! The engine's own (expiries, cancels, payments, rebuilds, reconcile drift, the worker's
//! batches) are listed in [`nexussale_core::meter`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use nexussale_core::FlashSale;

/// Latency buckets, in seconds: 100 µs to 5 min (a worker falling minutes behind must show as
/// minutes, not as "over 10 s").
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Events per worker batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// How often histogram samples are folded into their buckets when nobody scrapes `/metrics`.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process's recorder, installed on first use (the `metrics` facade has one per process).
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(nexussale_core::meter::WORKER_BATCH_SIZE.into()),
                    BATCH_BUCKETS,
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder (an embedding program's) wins; this server then shows nothing.
            metrics::set_global_recorder(recorder).ok()?;
            register_zeroes();
            // Histograms keep every sample until drained, and only a scrape or an upkeep drains
            // them: without this, a server nobody scrapes grew by ~50 bytes per purchase.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            Some(handle)
        })
        .as_ref()
}

/// The series a dashboard or an alert rule reads, at zero before anything happened (a rule's
/// `rate()` needs a first sample, and a panel shows 0 rather than "no data").
fn register_zeroes() {
    nexussale_core::meter::register_zeroes();
    metrics::gauge!("nexussale_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for outcome in crate::routes::PURCHASE_OUTCOMES {
        metrics::counter!("nexussale_purchases_total", "outcome" => outcome).absolute(0);
    }
    metrics::counter!("nexussale_orders_persisted_total").absolute(0);
    metrics::counter!("nexussale_dead_letters_total").absolute(0);
    metrics::gauge!("nexussale_http_requests_in_flight").set(0.0);
}

/// How long a scrape waits for the sales' unit gauges to be read.
const UNITS_WAIT: Duration = Duration::from_secs(2);

/// The sales' unit gauges, read for the scrapes: one reading at a time, in a task of its own,
/// which a scrape waits for at most [`UNITS_WAIT`]. With many sales a reading outlasts that
/// (100,000 sales on Redis took over 10 s, past the request timeout, so every scrape failed):
/// the scrape then shows the values the last reading set, and a later scrape finds this one
/// done and starts the next.
#[derive(Clone, Default)]
pub(crate) struct UnitsGauges {
    reading: Arc<parking_lot::Mutex<Option<Shared<BoxFuture<'static, ()>>>>>,
}

impl std::fmt::Debug for UnitsGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitsGauges").finish_non_exhaustive()
    }
}

impl UnitsGauges {
    /// Reads every sale's units into the gauges (or joins the reading under way), waiting at
    /// most [`UNITS_WAIT`] for it.
    pub(crate) async fn refresh(&self, engine: &FlashSale) {
        let reading = {
            let mut slot = self.reading.lock();
            match &*slot {
                Some(reading) if reading.peek().is_none() => reading.clone(),
                _ => {
                    let engine = engine.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(sales) = engine.sales().await {
                            units(&sales);
                        }
                    });
                    let reading = async move {
                        let _ = task.await;
                    }
                    .boxed()
                    .shared();
                    *slot = Some(reading.clone());
                    reading
                }
            }
        };
        let _ = tokio::time::timeout(UNITS_WAIT, reading).await;
    }
}

/// Sets each sale's unit gauges from `sales`.
fn units(sales: &[nexussale_core::SaleView]) {
    for view in sales {
        let sku = view.sale.sku.as_str();
        let snapshot = &view.snapshot;
        for (name, value) in [
            ("nexussale_units_available", snapshot.available),
            ("nexussale_units_reserved", snapshot.reserved),
            ("nexussale_units_sold", snapshot.sold),
            ("nexussale_units_stock", view.sale.stock),
        ] {
            metrics::gauge!(name, "sku" => sku.to_owned()).set(value as f64);
        }
    }
}

/// Sets each backend's `nexussale_backend_up` from its readiness probe's answer.
pub(crate) fn backends_up<'a>(answers: impl IntoIterator<Item = (&'a str, bool)>) {
    for (backend, up) in answers {
        metrics::gauge!("nexussale_backend_up", "backend" => backend.to_owned())
            .set(f64::from(u8::from(up)));
    }
}

/// The process's CPU, memory and file descriptors, read from `/proc` (Linux; elsewhere none).
pub(crate) fn process() {
    #[cfg(target_os = "linux")]
    if let Some(process) = linux::read() {
        // A gauge: the facade's counters are whole numbers, and CPU time is not.
        metrics::gauge!("process_cpu_seconds_total").set(process.cpu_seconds);
        metrics::gauge!("process_resident_memory_bytes").set(process.rss_bytes as f64);
        metrics::gauge!("process_virtual_memory_bytes").set(process.virtual_bytes as f64);
        metrics::gauge!("process_open_fds").set(process.open_fds as f64);
        if let Some(max) = process.max_fds {
            metrics::gauge!("process_max_fds").set(max as f64);
        }
        if let Some(start) = process.start_time {
            metrics::gauge!("process_start_time_seconds").set(start);
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    /// Userspace's clock tick: 100 Hz on every Linux architecture (`USER_HZ`).
    const TICKS_PER_SECOND: f64 = 100.0;
    const PAGE: u64 = 4096;

    pub(super) struct Process {
        pub(super) cpu_seconds: f64,
        pub(super) rss_bytes: u64,
        pub(super) virtual_bytes: u64,
        pub(super) open_fds: usize,
        pub(super) max_fds: Option<u64>,
        pub(super) start_time: Option<f64>,
    }

    pub(super) fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may hold spaces: the fields start after its closing parenthesis.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // Numbered from the state (field 3 of proc(5)).
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        let ticks = field(14)? + field(15)?;
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("btime "))
                .and_then(|secs| secs.trim().parse::<u64>().ok())
        });
        Some(Process {
            cpu_seconds: ticks as f64 / TICKS_PER_SECOND,
            rss_bytes: rss_pages * PAGE,
            virtual_bytes: field(23)?,
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count),
            max_fds: std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|limits| {
                    limits
                        .lines()
                        .find(|line| line.starts_with("Max open files"))
                        .and_then(|line| line.split_whitespace().nth(3)?.parse().ok())
                }),
            start_time: boot
                .zip(field(22))
                .map(|(boot, start)| boot as f64 + start as f64 / TICKS_PER_SECOND),
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The upkeep runs from the recorder's start: histograms do not pile up samples in a server
    /// nobody scrapes.
    #[test]
    fn histograms_are_drained_without_a_scrape() {
        assert!(super::handle().is_some());
        let threads = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        };
        // A new thread names itself once it runs: give it a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !threads().iter().any(|name| name == "metrics-upkeep") {
            assert!(std::time::Instant::now() < deadline, "{:?}", threads());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
