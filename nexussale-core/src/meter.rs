//! What the engine measures, through the `metrics` facade: a program that installs a recorder
//! (the server's Prometheus exporter, or an embedder's own) gets them; without one they cost a
//! no-op call.
//!
//! | metric | kind | what |
//! | --- | --- | --- |
//! | `nexussale_orders_settled_total{status}` | counter | orders this process settled: `paid`, `cancelled`, `expired` |
//! | `nexussale_stock_rebuilds_total{outcome}` | counter | store rebuilds finished: `restored`, `skipped` (another process restored first), `abandoned` (the sale exists nowhere) |
//! | `nexussale_stock_rebuilding{sku}` | gauge | 1 while this process rebuilds the sale's stock, else 0 |
//! | `nexussale_reconcile_drift_units{sku,kind}` | gauge | at the last reconcile: store minus repository, `kind` `reserved` or `sold` (0 when they agree) |
//! | `nexussale_sweeper_store_calls_total` | counter | stock-store calls the expiry sweeper made (`due_sales`, `expire`, `release`): with nothing due, one a sweep whatever the number of sales |
//! | `nexussale_worker_batch_size` | histogram | events per batch the worker took off the queue |
//! | `nexussale_worker_insert_duration_seconds` | histogram | time to persist one batch's placements |

use std::time::Duration;

use crate::engine::ReconcileReport;
use crate::order::OrderStatus;
use crate::sale::Sku;

/// Names the server's exporter gives histogram buckets (the rest are `_seconds`).
pub const WORKER_BATCH_SIZE: &str = "nexussale_worker_batch_size";

/// An order this process settled.
pub(crate) fn settled(status: OrderStatus) {
    let status = match status {
        OrderStatus::Paid => "paid",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Expired => "expired",
        OrderStatus::Pending => return,
    };
    metrics::counter!("nexussale_orders_settled_total", "status" => status).increment(1);
}

/// Whether this process is rebuilding `sku`'s stock.
pub(crate) fn rebuilding(sku: &Sku, on: bool) {
    metrics::gauge!("nexussale_stock_rebuilding", "sku" => sku.as_str().to_owned())
        .set(f64::from(u8::from(on)));
}

/// A rebuild finished: `restored`, `skipped` or `abandoned`.
pub(crate) fn rebuilt(outcome: &'static str) {
    metrics::counter!("nexussale_stock_rebuilds_total", "outcome" => outcome).increment(1);
}

/// The sweeper called the stock store once.
pub(crate) fn sweeper_call() {
    metrics::counter!("nexussale_sweeper_store_calls_total").increment(1);
}

/// What a reconcile found.
pub(crate) fn drift(report: &ReconcileReport) {
    let sku = report.sku.as_str();
    for (kind, drift) in [
        ("reserved", report.reserved_drift),
        ("sold", report.sold_drift),
    ] {
        metrics::gauge!("nexussale_reconcile_drift_units", "sku" => sku.to_owned(), "kind" => kind)
            .set(drift as f64);
    }
}

/// One worker batch: its size, and how long its placements took to persist (`None`: it had
/// none).
pub(crate) fn batch(events: usize, insert: Option<Duration>) {
    metrics::histogram!(WORKER_BATCH_SIZE).record(events as f64);
    if let Some(insert) = insert {
        metrics::histogram!("nexussale_worker_insert_duration_seconds").record(insert);
    }
}

/// Every counter and histogram above at zero, so that a scrape shows them (and a rule's
/// `rate()` has a first sample) before anything happened.
pub fn register_zeroes() {
    for status in ["paid", "cancelled", "expired"] {
        metrics::counter!("nexussale_orders_settled_total", "status" => status).absolute(0);
    }
    metrics::counter!("nexussale_sweeper_store_calls_total").absolute(0);
    for outcome in ["restored", "skipped", "abandoned"] {
        metrics::counter!("nexussale_stock_rebuilds_total", "outcome" => outcome).absolute(0);
    }
}
