//! Waiting rooms in the engine: joining, reading a ticket, the admission step, and the pass a
//! purchase of a waiting-room sale must show.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::FlashSale;
use crate::error::{Error, Result};
use crate::ident::{Sku, UserId};
use crate::outage::OutageLog;
use crate::sale::{Sale, SaleState, StockSnapshot};
use crate::waiting_room::{
    AdmitRequest, PassRefusal, PassSigner, PassUse, RoomStatus, Standing, Ticket, TicketId,
    VerifiedPass, proof_of_work_holds,
};

/// A ticket as a buyer sees it ([`FlashSale::join`], [`FlashSale::ticket`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketView {
    /// The ticket.
    pub ticket: TicketId,
    /// The sale.
    pub sku: Sku,
    /// Its buyer.
    pub user: UserId,
    /// Where it stands.
    pub state: TicketState,
    /// Its place in line, 1 = next (while waiting, once the line is drawn at the opening).
    pub position: Option<u64>,
    /// Tickets in front of it.
    pub ahead: Option<u64>,
    /// How long until it is admitted, at the rate tickets were admitted lately; `None` while
    /// that rate is not known (or is nil).
    pub estimated_wait_secs: Option<u64>,
    /// The pass to buy with (header `Admission-Pass`), while admitted and unused.
    pub pass: Option<String>,
    /// When the pass lapses.
    pub pass_expires_at: Option<DateTime<Utc>>,
    /// Whether its pass was used to buy.
    pub pass_used: bool,
    /// While nothing is available but units are reserved (they come back if unpaid): how many.
    pub units_reserved: Option<u64>,
}

/// Where a ticket stands, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketState {
    /// In line (or before the opening's draw).
    Waiting,
    /// Holds a pass (or used it).
    Admitted,
    /// Nothing is left to sell.
    SoldOut,
    /// The sale ended.
    Ended,
}

impl TicketState {
    /// The state as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Admitted => "admitted",
            Self::SoldOut => "sold_out",
            Self::Ended => "ended",
        }
    }
}

/// What the engine last saw of one room, for the tickets' estimates; its pulse wakes the
/// tickets' listeners when it changes.
#[derive(Debug)]
pub(super) struct RoomWatch {
    snapshot: StockSnapshot,
    admitted: u64,
    at: DateTime<Utc>,
    /// Tickets admitted per second, smoothed.
    rate: f64,
    pulse: watch::Sender<RoomPulse>,
}

/// A room as its last admission step left it: what a ticket's listener needs besides the
/// ticket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct RoomPulse {
    admitted: u64,
    closed: bool,
    window: SaleState,
    snapshot: StockSnapshot,
    /// Passes lapsed so far (a listener holding a pass re-reads when it changes).
    lapsed: u64,
    used: u64,
}

impl Default for RoomPulse {
    fn default() -> Self {
        Self {
            admitted: 0,
            closed: false,
            window: SaleState::Upcoming,
            snapshot: StockSnapshot {
                stock: 0,
                available: 0,
                reserved: 0,
                sold: 0,
            },
            lapsed: 0,
            used: 0,
        }
    }
}

/// A ticket's changes ([`FlashSale::ticket_updates`]): its view now, then each time it changes.
/// Waiting tickets follow their place from the room's admission count, which one admission
/// step a sale reads for every listener: the store is read per ticket only when its turn comes,
/// a pass is given, used or lapses, or the room closes.
#[derive(Debug)]
pub struct TicketUpdates {
    engine: FlashSale,
    sale: Sale,
    id: TicketId,
    pulses: watch::Receiver<RoomPulse>,
    last: Option<TicketView>,
    /// `(ahead, room admissions)` of the last read of a waiting ticket.
    basis: Option<(u64, u64)>,
}

impl TicketUpdates {
    /// The ticket's view now (first call), then at its next change; `None` once the engine
    /// stops admitting for the sale (the stream ends). A read that fails is an error; the
    /// caller may go on calling.
    pub async fn next(&mut self) -> Option<Result<TicketView>> {
        loop {
            if self.last.is_some() {
                self.pulses.changed().await.ok()?;
            }
            let pulse = *self.pulses.borrow_and_update();
            let view = match self.derive(&pulse) {
                Some(view) => view,
                None => match self.read().await {
                    Ok(Some(view)) => view,
                    Ok(None) => return None,
                    Err(err) => return Some(Err(err)),
                },
            };
            if self.last.as_ref() != Some(&view) {
                self.last = Some(view.clone());
                return Some(Ok(view));
            }
        }
    }

    /// The view from the room's pulse alone, when the ticket still waits for sure.
    fn derive(&self, pulse: &RoomPulse) -> Option<TicketView> {
        let (ahead, at) = self.basis?;
        let last = self.last.as_ref()?;
        if pulse.closed || pulse.window != SaleState::Active {
            return None;
        }
        // Every admission takes the front of the line: the ticket moves up one for each, and
        // is admitted itself once more were admitted than stood ahead of it. (A pulse older
        // than the read counts none.)
        let admitted = pulse.admitted.saturating_sub(at);
        let ahead = ahead.checked_sub(admitted)?;
        let mut view = last.clone();
        view.ahead = Some(ahead);
        view.position = Some(ahead + 1);
        view.estimated_wait_secs = self.engine.estimated_wait(&self.sale.sku, ahead);
        view.units_reserved = units_reserved(&pulse.snapshot);
        Some(view)
    }

    async fn read(&mut self) -> Result<Option<TicketView>> {
        let now = self.engine.now();
        let Some(ticket) = self
            .engine
            .inner
            .rooms
            .ticket(&self.sale.sku, &self.id, now)
            .await?
        else {
            return Ok(None);
        };
        let room_admitted = ticket.room_admitted;
        let view = self.engine.ticket_view(&self.sale, ticket, now).await?;
        self.basis = view.ahead.map(|ahead| (ahead, room_admitted));
        Ok(Some(view))
    }
}

fn units_reserved(snapshot: &StockSnapshot) -> Option<u64> {
    (snapshot.available == 0 && snapshot.reserved > 0).then_some(snapshot.reserved)
}

/// What one [`FlashSale::admit`] did over every waiting-room sale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionReport {
    /// Rooms looked at.
    pub rooms: u64,
    /// Tickets admitted.
    pub admitted: u64,
    /// Passes lapsed.
    pub lapsed: u64,
    /// Rooms closed sold out by this step.
    pub closed: u64,
}

/// Looks for new waiting-room sales once in this many steps (joins add theirs at once).
const LIST_EVERY: u64 = 10;

/// Lists every sale once in this many steps even when their count did not change (a sale ended
/// and removed while another was created, in other processes): about ten minutes.
const RELIST_EVERY: u64 = 6_000;

impl FlashSale {
    /// Joins `user` to the waiting room of `sku` (or answers the ticket it has). With a sale
    /// asking for proof of work, `nonce` must prove it ([`proof_of_work_holds`]), else
    /// [`Error::InvalidInput`]; a sale without a waiting room is [`Error::NoWaitingRoom`].
    pub async fn join(&self, sku: &Sku, user: &UserId, nonce: Option<&str>) -> Result<TicketView> {
        let sale = self.room_sale(sku).await?;
        let Some(room) = &sale.waiting_room else {
            return Err(Error::NoWaitingRoom(sku.clone()));
        };
        if room.proof_of_work_bits > 0 {
            let proved = nonce.is_some_and(|nonce| {
                proof_of_work_holds(&room.challenge, user, nonce, room.proof_of_work_bits)
            });
            if !proved {
                return Err(Error::invalid(
                    "nonce",
                    format!(
                        "must prove {} bits of work: SHA-256 of \"{}:<user>:<nonce>\" must start with that many zero bits",
                        room.proof_of_work_bits, room.challenge
                    ),
                ));
            }
        }
        let now = self.now();
        let ticket = self.inner.rooms.join(&sale, user, now).await?;
        self.inner.room_sales.lock().insert(sku.clone());
        self.ticket_view(&sale, ticket, now).await
    }

    /// A ticket of `sku`'s waiting room, if it exists.
    pub async fn ticket(&self, sku: &Sku, id: &TicketId) -> Result<Option<TicketView>> {
        let sale = self.room_sale(sku).await?;
        if sale.waiting_room.is_none() {
            return Err(Error::NoWaitingRoom(sku.clone()));
        }
        let now = self.now();
        match self.inner.rooms.ticket(sku, id, now).await? {
            Some(ticket) => Ok(Some(self.ticket_view(&sale, ticket, now).await?)),
            None => Ok(None),
        }
    }

    /// The changes of one ticket, for a listener ([`TicketUpdates`]); `None` for an unknown
    /// ticket.
    pub async fn ticket_updates(&self, sku: &Sku, id: &TicketId) -> Result<Option<TicketUpdates>> {
        let sale = self.room_sale(sku).await?;
        if sale.waiting_room.is_none() {
            return Err(Error::NoWaitingRoom(sku.clone()));
        }
        if self
            .inner
            .rooms
            .ticket(sku, id, self.now())
            .await?
            .is_none()
        {
            return Ok(None);
        }
        self.inner.room_sales.lock().insert(sku.clone());
        let pulses = self.room_entry(sku).pulse.subscribe();
        Ok(Some(TicketUpdates {
            engine: self.clone(),
            sale,
            id: *id,
            pulses,
            last: None,
            basis: None,
        }))
    }

    fn room_entry(&self, sku: &Sku) -> dashmap::mapref::one::RefMut<'_, Sku, RoomWatch> {
        self.inner
            .room_watch
            .entry(sku.clone())
            .or_insert_with(|| RoomWatch {
                snapshot: RoomPulse::default().snapshot,
                admitted: 0,
                at: self.now(),
                rate: 0.0,
                pulse: watch::Sender::new(RoomPulse::default()),
            })
    }

    /// Adds the waiting-room sales the store lists, when the sales may have changed since the
    /// last listing: their count did (one cheap store call), or the safety relist is due.
    /// Listing every sale each second made an idle server with 100 sales on Redis send 120
    /// commands a second, one per sale.
    async fn learn_rooms(&self, step: u64) -> Result<()> {
        use std::sync::atomic::Ordering;
        let count = self.inner.stock.sale_count().await?;
        if self.inner.listed_sales.load(Ordering::Acquire) == count
            && !step.is_multiple_of(RELIST_EVERY)
        {
            return Ok(());
        }
        let listed: HashSet<Sku> = self
            .inner
            .stock
            .sales()
            .await?
            .into_iter()
            .filter(|sale| sale.waiting_room.is_some())
            .map(|sale| sale.sku)
            .collect();
        self.inner.room_sales.lock().extend(listed);
        // The count read before the listing: a sale created meanwhile changes it again.
        self.inner.listed_sales.store(count, Ordering::Release);
        Ok(())
    }

    /// The counts of `sku`'s waiting room.
    pub async fn room_status(&self, sku: &Sku) -> Result<RoomStatus> {
        self.inner.rooms.status(sku).await
    }

    /// One admission step for every sale with a waiting room that is open: lapses expired
    /// passes, admits as many tickets as the units available allow
    /// ([`WaitingRoomStore::admit`](crate::WaitingRoomStore::admit)), and closes the room
    /// sold out once nothing is available and nothing reserved. Several processes may run it at
    /// once: each step is atomic in the store and counts conservatively.
    pub async fn admit(&self) -> Result<AdmissionReport> {
        let step = self
            .inner
            .admission_steps
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if step.is_multiple_of(LIST_EVERY) {
            self.learn_rooms(step).await?;
        }
        let skus: Vec<Sku> = self.inner.room_sales.lock().iter().cloned().collect();
        let mut report = AdmissionReport::default();
        let mut first_error = None;
        for sku in skus {
            match self.admit_sale(&sku, &mut report).await {
                Ok(()) => {}
                Err(Error::UnknownSale(_)) => {
                    self.inner.room_sales.lock().remove(&sku);
                    self.inner.room_watch.remove(&sku);
                }
                Err(err) => {
                    debug!(sku = %sku, error = %err, "admission step failed for this sale");
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) if report.rooms == 0 => Err(err),
            _ => Ok(report),
        }
    }

    async fn admit_sale(&self, sku: &Sku, report: &mut AdmissionReport) -> Result<()> {
        let sale = self.room_sale(sku).await?;
        if sale.waiting_room.is_none() {
            self.inner.room_sales.lock().remove(sku);
            return Ok(());
        }
        let now = self.now();
        let window = sale.window_state(now);
        if window != SaleState::Active {
            let entry = self.room_entry(sku);
            entry.pulse.send_if_modified(|pulse| {
                let changed = pulse.window != window;
                pulse.window = window;
                changed
            });
            return Ok(());
        }
        // Read before the units: uses settled after this may be counted twice, never missed.
        let settled_before = self.inner.rooms.status(sku).await?.settled;
        // A room admits no buyer while its sale is regressed: the read starts the rebuild, as
        // no purchase will come to.
        let snapshot = self.inner.stock.snapshot(sku).await;
        let snapshot = self.unless_lost(sku, snapshot)?;
        report.rooms += 1;
        if snapshot.available == 0 && snapshot.reserved == 0 {
            if self.inner.rooms.close(sku).await? {
                report.closed += 1;
                metrics::counter!("nexussale_waiting_room_closes_total").increment(1);
            }
        } else {
            let admission = self
                .inner
                .rooms
                .admit(
                    &sale,
                    &AdmitRequest {
                        available: snapshot.available,
                        settled_before,
                        now,
                        max: self.inner.config.admission_batch,
                    },
                )
                .await?;
            report.admitted += admission.admitted;
            report.lapsed += admission.lapsed;
            metrics::counter!("nexussale_waiting_room_admitted_total")
                .increment(admission.admitted);
            metrics::counter!("nexussale_waiting_room_lapsed_total").increment(admission.lapsed);
        }
        let status = self.inner.rooms.status(sku).await?;
        self.watch(sku, snapshot, &status, now);
        let pulse = RoomPulse {
            admitted: status.admitted,
            closed: status.closed,
            window,
            snapshot,
            lapsed: status.lapsed,
            used: status.used,
        };
        self.room_entry(sku).pulse.send_if_modified(|last| {
            let changed = *last != pulse;
            *last = pulse;
            changed
        });
        let labels = [("sku", sku.to_string())];
        metrics::gauge!("nexussale_waiting_room_waiting", &labels).set(status.waiting as f64);
        metrics::gauge!("nexussale_waiting_room_passes_outstanding", &labels)
            .set(status.outstanding as f64);
        let wait = self.estimated_wait(sku, status.waiting).unwrap_or(0);
        metrics::gauge!("nexussale_waiting_room_estimated_wait_seconds", &labels).set(wait as f64);
        Ok(())
    }

    /// Runs [`admit`](Self::admit) every
    /// [`admission_interval`](crate::EngineConfig::admission_interval) until `stop`.
    pub async fn run_admission(&self, stop: CancellationToken) {
        let outage = OutageLog::new("waiting-room admission");
        let mut tick = tokio::time::interval(self.inner.config.admission_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.admit().await {
                Ok(_) => outage.success(),
                Err(err) => {
                    outage.failure(&err);
                }
            }
        }
    }

    fn watch(&self, sku: &Sku, snapshot: StockSnapshot, status: &RoomStatus, now: DateTime<Utc>) {
        let mut entry = self.room_entry(sku);
        let seconds = (now - entry.at).num_milliseconds() as f64 / 1000.0;
        // Smoothed over about five seconds, so one step's burst does not swing the estimate.
        if seconds >= 1.0 {
            let recent = status.admitted.saturating_sub(entry.admitted) as f64 / seconds;
            let weight = (seconds / 5.0).min(1.0);
            entry.rate = entry.rate * (1.0 - weight) + recent * weight;
            entry.admitted = status.admitted;
            entry.at = now;
        }
        entry.snapshot = snapshot;
    }

    fn estimated_wait(&self, sku: &Sku, ahead: u64) -> Option<u64> {
        let rate = self.inner.room_watch.get(sku)?.rate;
        (rate > 0.0).then(|| (ahead as f64 / rate).ceil() as u64)
    }

    async fn ticket_view(
        &self,
        sale: &Sale,
        ticket: Ticket,
        now: DateTime<Utc>,
    ) -> Result<TicketView> {
        let mut view = TicketView {
            ticket: ticket.id,
            sku: ticket.sku,
            user: ticket.user,
            state: TicketState::Waiting,
            position: None,
            ahead: None,
            estimated_wait_secs: None,
            pass: None,
            pass_expires_at: None,
            pass_used: false,
            units_reserved: None,
        };
        let ended = sale.window_state(now) == SaleState::Ended;
        match ticket.standing {
            Standing::Used => {
                view.state = TicketState::Admitted;
                view.pass_used = true;
            }
            _ if ended => view.state = TicketState::Ended,
            Standing::SoldOut => view.state = TicketState::SoldOut,
            Standing::Admitted(grant) if grant.expires_at > now => {
                let signer = self.pass_signer().await?;
                view.state = TicketState::Admitted;
                view.pass = Some(signer.sign(&view.sku, &view.user, view.ticket, &grant));
                view.pass_expires_at = Some(grant.expires_at);
            }
            // A lapsed pass: back in line at the next admission step.
            Standing::Admitted(_) => {}
            Standing::Waiting { ahead } => {
                // Before the opening the places are not drawn yet.
                if let Some(ahead) = ahead.filter(|_| sale.window_state(now) != SaleState::Upcoming)
                {
                    view.ahead = Some(ahead);
                    view.position = Some(ahead + 1);
                    view.estimated_wait_secs = self.estimated_wait(&view.sku, ahead);
                }
                let snapshot = self.inner.room_watch.get(&view.sku).map(|w| w.snapshot);
                view.units_reserved = snapshot.as_ref().and_then(units_reserved);
            }
        }
        Ok(view)
    }

    /// The signer of this engine's passes: the configured secret, else the key the waiting-room
    /// store holds (drawn here and stored when it held none), so every front end agrees.
    pub(super) async fn pass_signer(&self) -> Result<&PassSigner> {
        self.inner
            .signer
            .get_or_try_init(|| async {
                let key = match &self.inner.pass_secret {
                    Some(secret) => secret.clone(),
                    None => {
                        let candidate: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
                        self.inner.rooms.pass_key(&candidate).await?
                    }
                };
                PassSigner::new(&key)
            })
            .await
    }

    /// The definition of a waiting-room sale (with an early end): the cached one.
    async fn room_sale(&self, sku: &Sku) -> Result<Sale> {
        Ok(self.sale_entry(sku).await?.definition())
    }

    /// Checks and uses the pass of a purchase of a waiting-room sale: `Ok(Err(refusal))` when it
    /// may not buy.
    pub(super) async fn use_pass(
        &self,
        sku: &Sku,
        user: &UserId,
        pass: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<VerifiedPass, PassRefusal>> {
        let Some(pass) = pass else {
            return Ok(Err(PassRefusal::Missing));
        };
        let Some(verified) = self.pass_signer().await?.verify(sku, user, pass) else {
            return Ok(Err(PassRefusal::Invalid));
        };
        if verified.grant.expires_at <= now {
            return Ok(Err(PassRefusal::Expired));
        }
        let used = self
            .inner
            .rooms
            .use_pass(sku, &verified.ticket, verified.grant.nonce, now)
            .await?;
        Ok(match used {
            PassUse::Used => Ok(verified),
            PassUse::AlreadyUsed => Err(PassRefusal::Used),
            PassUse::Expired => Err(PassRefusal::Expired),
            PassUse::NotAdmitted => Err(PassRefusal::Invalid),
        })
    }

    /// After the purchase a pass was used for: gives the pass back when the purchase failed
    /// in a backend (`failed`), and settles the use (in a task of its own).
    pub(super) async fn after_pass(&self, sku: &Sku, pass: &VerifiedPass, failed: bool) {
        if failed
            && let Err(err) = self
                .inner
                .rooms
                .give_back(sku, &pass.ticket, pass.grant.nonce)
                .await
        {
            warn!(sku = %sku, error = %err, "a failed purchase's pass could not be given back");
        }
        // Off the purchase's path (its answer need not wait for a counter): until it lands
        // the use keeps its units off the ceiling, so admission is only more careful meanwhile.
        let (rooms, sku) = (std::sync::Arc::clone(&self.inner.rooms), sku.clone());
        tokio::spawn(async move {
            if let Err(err) = rooms.settle(&sku).await {
                // Unsettled, the use keeps one unit off the ceiling: fewer admitted, never more.
                warn!(sku = %sku, error = %err, "a pass use could not be settled");
            }
        });
    }
}

/// The default pause between admission steps.
pub(super) const DEFAULT_ADMISSION_INTERVAL: Duration = Duration::from_millis(100);
