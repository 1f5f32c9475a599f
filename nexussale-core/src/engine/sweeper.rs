//! The expiry sweeper: returns the units of reservations whose TTL has passed.

use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::FlashSale;
use super::worker::Backoff;
use crate::error::Result;
use crate::expiry::{ExpiredBatch, ExpiryCall};
use crate::ident::Sku;
use crate::order::{OrderId, OrderStatus};
use crate::outage::OutageLog;
use crate::repository::TransitionOutcome;
use crate::reservation::Reservation;

/// Orders recorded at once: a networked repository answers them concurrently instead of one
/// round trip after another (a million lapsing at once is not minutes of serial calls).
const CONCURRENT_RECORDS: usize = 64;

/// Released batches of one sale being recorded at once while the next are released.
const BATCHES_RECORDING: usize = 4;

/// Sales swept at once.
const CONCURRENT_SALES: usize = 16;

/// The most sales one sweep visits (soonest due first); the rest wait for the next sweep.
const DUE_SALES_PER_SWEEP: usize = 10_000;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Reservations this sweep released.
    pub released: u64,
    /// Units they returned.
    pub units: u64,
    /// Sales whose sweep failed (the store refused to list or release their reservations); the
    /// other sales were swept all the same, and the failed ones are tried again next sweep.
    pub failed_sales: u64,
}

impl FlashSale {
    /// Releases every reservation, of every sale, whose TTL has passed, exactly once, and marks
    /// its order expired. Concurrent sweepers (several processes) are safe: the stock store lets
    /// only one release each reservation.
    ///
    /// A store call that fails (a reply lost with its connection may still have been applied)
    /// is made again at the start of the next sweep, with the same
    /// [`ExpiryCall`](crate::ExpiryCall), which answers what it released; a record that fails
    /// is retried then too. The store no longer lists a reservation it released, so nothing
    /// else would record that order's expiry.
    ///
    /// One sale that cannot be swept (its keys unreadable, its shard down) does not hold up the
    /// others: it is counted in [`SweepReport::failed_sales`] and logged. The sweep is an error
    /// only when nothing could be swept (the sales could not be listed, or every one failed).
    ///
    /// While a drop is under way it yields to it: its store calls take turns and fill at most
    /// [`sweep_share_while_buying`](super::EngineConfig::sweep_share_while_buying) of the time.
    pub async fn sweep_expired(&self) -> Result<SweepReport> {
        let now = self.now();
        let batch = self.inner.config.sweep_batch.max(1);
        let repository_down = AtomicBool::new(false);
        // Released by earlier sweeps, their records failed: recorded first.
        let owed = std::mem::take(&mut *self.inner.owed_expiries.lock());
        let mut first_error = self
            .record_all(owed, OrderStatus::Expired, &repository_down)
            .await
            .err();
        let (mut report, still_failing) = self.make_owed_calls(now, batch, &repository_down).await;
        // Only the sales the store files as due: an idle sale costs nothing.
        crate::meter::sweeper_call();
        let mut due = self.inner.stock.due_sales(now, DUE_SALES_PER_SWEEP).await?;
        // A sale whose owed call failed again waits for that call: a new one would pile up
        // beside it every sweep while the sale stays broken.
        if !still_failing.is_empty() {
            report.failed_sales += still_failing.len() as u64;
            due.retain(|sku| !still_failing.iter().any(|(failed, _)| failed == sku));
            for (_, err) in still_failing {
                first_error.get_or_insert(err);
            }
        }
        let due_count = due.len() as u64 + report.failed_sales;
        let repository_down = &repository_down;
        // Owned skus: a stream over borrowed ones makes this future not `Send` for every lifetime
        // (the compiler's higher-ranked closure limits), which `tokio::spawn` needs.
        let swept: Vec<(Sku, SweepReport, Result<()>)> = futures::stream::iter(due)
            .map(|sku| async move {
                let (report, swept) = self.sweep_sale(&sku, now, batch, repository_down).await;
                (sku, report, swept)
            })
            .buffer_unordered(CONCURRENT_SALES)
            .collect()
            .await;
        for (sku, swept_report, swept) in swept {
            report.released += swept_report.released;
            report.units += swept_report.units;
            if let Err(err) = swept {
                report.failed_sales += 1;
                // Per sale at debug: the sweeper's outage log says how many, once per outage.
                debug!(sku = %sku, error = %err, "this sale's expired reservations could not be released; the next sweep tries again");
                first_error.get_or_insert(err);
            }
        }
        if report.released > 0 {
            info!(
                released = report.released,
                units = report.units,
                "expired reservations released"
            );
        }
        match first_error {
            Some(err) if report.failed_sales >= due_count => Err(err),
            _ => Ok(report),
        }
    }

    /// Releases `sku`'s expired reservations, a batch (one `expire`) at a time, until the store
    /// says nothing more is due: what it released, and the first failure. Up to
    /// [`BATCHES_RECORDING`] released batches are recorded while the next are released, so
    /// units go back at the stock store's pace, not the repository's; every recording started
    /// is awaited (a dropped one would lose the expiries it had not recorded).
    async fn sweep_sale(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        batch: usize,
        repository_down: &AtomicBool,
    ) -> (SweepReport, Result<()>) {
        let mut report = SweepReport::default();
        let mut recording = FuturesUnordered::new();
        let mut failed = None;
        loop {
            let call = ExpiryCall::new();
            let expired = match self.expire_call(sku, now, batch, call, &mut report).await {
                Ok(expired) => expired,
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            };
            let full_batch = expired.full;
            if !expired.released.is_empty() {
                recording.push(self.record_all(
                    expired.released,
                    OrderStatus::Expired,
                    repository_down,
                ));
            }
            if recording.len() >= BATCHES_RECORDING
                && let Some(Err(err)) = recording.next().await
            {
                // The repository and the queue both refuse: stop releasing what cannot be
                // recorded (what was released is owed to the next sweep).
                failed = Some(err);
                break;
            }
            if !full_batch {
                break;
            }
        }
        while let Some(recorded) = recording.next().await {
            if let Err(err) = recorded {
                failed.get_or_insert(err);
            }
        }
        (report, failed.map_or(Ok(()), Err))
    }

    /// Makes `call` (new, or owed by an earlier sweep), releasing up to `batch` of `sku`'s
    /// expired reservations in one store call: what it released, counted into `report`, and
    /// whether more may be due. When it fails, it is owed to the next sweep, which makes it
    /// again (see [`StockStore::expire`](crate::StockStore::expire)).
    async fn expire_call(
        &self,
        sku: &Sku,
        now: DateTime<Utc>,
        batch: usize,
        call: ExpiryCall,
        report: &mut SweepReport,
    ) -> Result<ExpiredBatch> {
        crate::meter::sweeper_call();
        let expire = self.inner.stock.expire(sku, now, batch, &call);
        let share = self.inner.config.sweep_share_while_buying;
        let expired = match self.inner.purchases_first.sweeper_call(share, expire).await {
            Ok(expired) => expired,
            // It may have been applied with its reply lost: made again, it answers what it
            // released, to be recorded then.
            Err(err) => {
                self.inner.owed_calls.lock().push((sku.clone(), call));
                return Err(err);
            }
        };
        if !expired.released.is_empty() {
            report.released += expired.released.len() as u64;
            report.units += expired.units();
            self.units_returned(sku);
        }
        for _ in &expired.released {
            crate::meter::settled(OrderStatus::Expired);
        }
        Ok(expired)
    }

    /// Records each released reservation's order as `status`: the batch in one repository call
    /// ([`OrderRepository::transition_many`](crate::OrderRepository::transition_many)), then
    /// what it could not settle (an order the worker has not stored yet, a failed call) one by
    /// one, [`CONCURRENT_RECORDS`] at a time; those that fail are owed to the next sweep, and
    /// the first failure is the answer.
    async fn record_all(
        &self,
        released: Vec<Reservation>,
        status: OrderStatus,
        repository_down: &AtomicBool,
    ) -> Result<()> {
        let released = self.record_batch(released, status, repository_down).await;
        let outcomes: Vec<(Reservation, Result<()>)> = futures::stream::iter(released)
            .map(|reservation| async move {
                let recorded = self
                    .record_expiry(&reservation, status, repository_down)
                    .await;
                (reservation, recorded)
            })
            .buffer_unordered(CONCURRENT_RECORDS)
            .collect()
            .await;
        let mut first_error = None;
        let mut failed = Vec::new();
        for (reservation, recorded) in outcomes {
            if let Err(err) = recorded {
                failed.push(reservation);
                first_error.get_or_insert(err);
            }
        }
        self.owe(failed);
        first_error.map_or(Ok(()), Err)
    }

    /// Sets `released`'s orders from pending to `status` in one repository call; answers those
    /// it did not settle, to record one by one: orders not stored yet, or all of them when the
    /// call failed (or the repository already failed this sweep).
    async fn record_batch(
        &self,
        released: Vec<Reservation>,
        status: OrderStatus,
        repository_down: &AtomicBool,
    ) -> Vec<Reservation> {
        if released.is_empty() || repository_down.load(AtomicOrdering::Relaxed) {
            return released;
        }
        let ids: Vec<OrderId> = released.iter().map(|r| r.order_id).collect();
        let answered = self
            .inner
            .repository
            .transition_many(&ids, OrderStatus::Pending, status, self.now())
            .await;
        let outcomes = match answered {
            Ok(outcomes) if outcomes.len() == released.len() => outcomes,
            _ => return released,
        };
        released
            .into_iter()
            .zip(outcomes)
            .filter_map(|(reservation, outcome)| match outcome {
                TransitionOutcome::Applied => None,
                TransitionOutcome::Mismatch(actual) if actual == status => None,
                TransitionOutcome::Mismatch(actual) => {
                    warn!(order = %reservation.order_id, sku = %reservation.sku, repository = %actual, "the store expired a reservation the repository settled otherwise; reconcile the sale");
                    None
                }
                TransitionOutcome::NotFound => Some(reservation),
            })
            .collect()
    }

    /// Reservations this sweeper released whose record failed: the next sweep records them first.
    fn owe(&self, reservations: Vec<Reservation>) {
        if !reservations.is_empty() {
            self.inner.owed_expiries.lock().extend(reservations);
        }
    }

    /// Makes again the store calls earlier sweeps owe (their replies lost or refused), sales at
    /// once, and records what they released: what they released, and the sales whose call
    /// failed again (owed once more), each with its error.
    async fn make_owed_calls(
        &self,
        now: DateTime<Utc>,
        batch: usize,
        repository_down: &AtomicBool,
    ) -> (SweepReport, Vec<(Sku, crate::Error)>) {
        let owed = std::mem::take(&mut *self.inner.owed_calls.lock());
        let made: Vec<(Sku, SweepReport, Result<()>)> = futures::stream::iter(owed)
            .map(|(sku, call)| async move {
                let mut report = SweepReport::default();
                let made = match self.expire_call(&sku, now, batch, call, &mut report).await {
                    Ok(expired) => {
                        self.record_all(expired.released, OrderStatus::Expired, repository_down)
                            .await
                    }
                    Err(err) => Err(err),
                };
                (sku, report, made)
            })
            .buffer_unordered(CONCURRENT_SALES)
            .collect()
            .await;
        let mut report = SweepReport::default();
        let mut failed = Vec::new();
        for (sku, made_report, made) in made {
            report.released += made_report.released;
            report.units += made_report.units;
            if let Err(err) = made {
                debug!(sku = %sku, error = %err, "an expiry call owed by an earlier sweep failed again");
                failed.push((sku, err));
            }
        }
        (report, failed)
    }

    /// Runs the sweeper every [`sweep_interval`](super::EngineConfig::sweep_interval) until
    /// `shutdown` is cancelled.
    pub async fn run_sweeper(&self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.inner.config.worker_max_backoff);
        let mut pause = self.inner.config.sweep_interval;
        let outage = OutageLog::new("expiry sweeper");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = match self.sweep_expired().await {
                // Some sales failed, the rest were swept: no backoff, which would delay them all.
                Ok(report) if report.failed_sales > 0 => {
                    backoff.reset();
                    let failed = report.failed_sales;
                    outage.failure(&format_args!("{failed} sale(s) could not be swept"));
                    self.inner.config.sweep_interval
                }
                Ok(_) => {
                    backoff.reset();
                    outage.success();
                    self.inner.config.sweep_interval
                }
                Err(err) => {
                    let pause = backoff.next().max(self.inner.config.sweep_interval);
                    outage.failure(&format_args!("{err} (retrying with backoff)"));
                    pause
                }
            };
        }
    }
}
