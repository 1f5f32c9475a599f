//! [`Meter`]: the hook that measures the engine's queue and repository for `/metrics` (publish
//! latency, worker lag, orders persisted) without touching the engine.

use std::time::Instant;

use chrono::Utc;
use nexussale_core::layers::{Answer, Call, Hook, Method};
use nexussale_core::{Delivery, Error, OrderEvent};

/// Records, from the calls it sees: publish latency, the worker's lag behind each placed order it
/// receives, and the orders the repository newly stored. The metric names are the server's
/// (docs/OPERATIONS.md), which is why this hook lives here and not in the core.
#[derive(Debug, Default)]
pub(crate) struct Meter;

impl Hook for Meter {
    fn after(&self, call: Call, started: Instant, answer: Answer<'_>) -> Option<Error> {
        match call.method {
            Method::Publish => {
                metrics::histogram!("nexussale_publish_duration_seconds").record(started.elapsed());
            }
            Method::Receive => {
                let now = Utc::now();
                for delivery in answer.value::<Vec<Delivery>>().into_iter().flatten() {
                    if let OrderEvent::Placed { order } = &delivery.event {
                        let lag = (now - order.created_at).to_std().unwrap_or_default();
                        metrics::histogram!("nexussale_worker_lag_seconds").record(lag);
                    }
                }
            }
            Method::Insert => {
                if let Some(new) = answer.value::<u64>() {
                    metrics::counter!("nexussale_orders_persisted_total").increment(*new);
                }
            }
            _ => {}
        }
        None
    }
}
