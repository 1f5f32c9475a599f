//! `GET /metrics`: Prometheus text, through the `metrics` facade.
//!
//! | metric | kind | what |
//! | --- | --- | --- |
//! | `nexussale_purchases_total{outcome}` | counter | purchases by outcome: `accepted`, `duplicate`, `sold_out`, `limit_exceeded`, `not_active`, `rejected` (4xx), `failed` (5xx) |
//! | `nexussale_purchase_duration_seconds` | histogram | time to answer a purchase |
//! | `nexussale_publish_duration_seconds` | histogram | time for the queue to take an order event durably |
//! | `nexussale_worker_lag_seconds` | histogram | from a purchase to its event reaching the worker |
//! | `nexussale_orders_persisted_total` | counter | orders the worker stored (new ones only) |
//! | `nexussale_units_available{sku}` | gauge | units still for sale, read at each scrape |

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: 100 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes `/metrics`.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process's recorder, installed on first use (the `metrics` facade has one per process).
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder (an embedding program's) wins; this server then shows nothing.
            metrics::set_global_recorder(recorder).ok()?;
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
