//! Live stock feeds (`GET /v1/sales/{sku}/events`): one reader per sale with listeners, however
//! many listen.
//!
//! The first listener of a sale starts its feed: a task that reads the sale's view every tick
//! and, when it changed, publishes it as one server-sent event frame in a `watch` channel. Every
//! listener of the sale holds a receiver of that channel, so a thousand listeners cost one
//! backend read a tick, and a slow listener skips to the latest frame instead of queueing old
//! ones. The feed stops when its last listener leaves, its sale disappears, or the server shuts
//! down; its listeners' streams then end.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::debug;

use nexussale_core::{CancellationToken, Error, FlashSale, SaleView, Sku};

use crate::routes::SaleBody;

/// How often a feed reads its sale: at most two frames a second reach a listener (each frame
/// is a write to every listener's connection; docs/BENCHMARKS.md, "Live stock listeners").
pub const DEFAULT_FEED_TICK: Duration = Duration::from_millis(500);

/// A comment line sent when nothing changed for this long, so that proxies and load balancers
/// do not close an idle stream (many close after 60 s).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The live feeds of this process.
#[derive(Clone)]
pub(crate) struct Feeds {
    inner: Arc<Inner>,
}

struct Inner {
    engine: FlashSale,
    tick: Duration,
    /// A receiver per running feed, to subscribe new listeners from.
    running: Mutex<HashMap<Sku, watch::Receiver<Bytes>>>,
    /// Cancelled when the server shuts down: every feed stops, every stream ends.
    closing: CancellationToken,
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field("tick", &self.inner.tick)
            .field("running", &self.inner.running.lock().len())
            .finish()
    }
}

impl Feeds {
    pub(crate) fn new(engine: FlashSale, tick: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                tick: tick.max(Duration::from_millis(10)),
                running: Mutex::new(HashMap::new()),
                closing: CancellationToken::new(),
            }),
        }
    }

    /// Cancelled at shutdown: other streams (a ticket's) end with it too.
    pub(crate) fn closing(&self) -> CancellationToken {
        self.inner.closing.clone()
    }

    /// How often a feed reads: no stream sends two frames closer than this.
    pub(crate) fn tick(&self) -> Duration {
        self.inner.tick
    }

    /// Ends every feed and every listener's stream (server shutdown).
    pub(crate) fn close(&self) {
        self.inner.closing.cancel();
    }

    /// A receiver of the sale's frames, its current one marked unseen. Starting a sale's feed
    /// reads the sale once, which also answers an unknown sale.
    pub(crate) async fn subscribe(&self, sku: &Sku) -> Result<watch::Receiver<Bytes>, Error> {
        if let Some(running) = self.inner.running.lock().get(sku) {
            return Ok(unseen(running));
        }
        let first = frame(&self.inner.engine.sale(sku).await?);
        let mut running = self.inner.running.lock();
        // Another listener may have started it meanwhile.
        if let Some(running) = running.get(sku) {
            return Ok(unseen(running));
        }
        let (sender, receiver) = watch::channel(first);
        running.insert(sku.clone(), receiver.clone());
        tokio::spawn(run(Arc::clone(&self.inner), sku.clone(), sender));
        Ok(unseen(&receiver))
    }

    /// The stream of one listener: the current frame at once, then each change, with a
    /// keep-alive comment when idle; it ends with its feed.
    pub(crate) fn stream(receiver: watch::Receiver<Bytes>) -> impl futures::Stream<Item = Bytes> {
        let listener = Listener::new(receiver);
        futures::stream::unfold(listener, |mut listener| async move {
            let frame = listener.next().await?;
            Some((frame, listener))
        })
    }
}

fn unseen(receiver: &watch::Receiver<Bytes>) -> watch::Receiver<Bytes> {
    let mut receiver = receiver.clone();
    receiver.mark_changed();
    receiver
}

/// One listener's end of a feed; counted in `nexussale_sse_listeners` while it lives.
struct Listener {
    receiver: watch::Receiver<Bytes>,
    /// When to send a keep-alive: one timer, moved on after each frame (not one a frame).
    idle: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// The stream's first bytes: how long a client waits before reconnecting.
    retry: Option<Bytes>,
}

impl Listener {
    fn new(receiver: watch::Receiver<Bytes>) -> Self {
        metrics::gauge!("nexussale_sse_listeners").increment(1);
        Self {
            receiver,
            idle: Box::pin(tokio::time::sleep(KEEP_ALIVE)),
            retry: Some(Bytes::from_static(b"retry: 2000\n\n")),
        }
    }

    async fn next(&mut self) -> Option<Bytes> {
        if let Some(retry) = self.retry.take() {
            return Some(retry);
        }
        let frame = tokio::select! {
            changed = self.receiver.changed() => {
                changed.ok()?;
                self.receiver.borrow_and_update().clone()
            }
            () = self.idle.as_mut() => Bytes::from_static(b": keep-alive\n\n"),
        };
        self.idle
            .as_mut()
            .reset(tokio::time::Instant::now() + KEEP_ALIVE);
        Some(frame)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        metrics::gauge!("nexussale_sse_listeners").decrement(1);
    }
}

/// One sale's feed: reads the sale each tick while anyone listens, publishes what changed.
/// `own` is a receiver of its channel, to tell its entry in `running` from a later feed's.
async fn run(inner: Arc<Inner>, sku: Sku, sender: watch::Sender<Bytes>) {
    let own = sender.subscribe();
    metrics::gauge!("nexussale_sse_feeds").increment(1);
    loop {
        tokio::select! {
            () = inner.closing.cancelled() => break,
            () = tokio::time::sleep(inner.tick) => {}
        }
        // The map's receiver and `own` are the two left when every listener has gone. Checked
        // and the feed forgotten under the lock that subscribing takes: no listener joins a
        // feed that is stopping.
        {
            let mut running = inner.running.lock();
            if sender.receiver_count() <= 2 {
                forget(&mut running, &sku, &own);
                break;
            }
        }
        match inner.engine.sale(&sku).await {
            Ok(view) => {
                let next = frame(&view);
                sender.send_if_modified(|current| {
                    let changed = *current != next;
                    if changed {
                        *current = next;
                    }
                    changed
                });
            }
            Err(Error::UnknownSale(_)) => break,
            // A backend that stumbles: listeners keep the last frame until it answers again.
            Err(err) => debug!(sku = %sku, error = %err, "a sale feed could not read its sale"),
        }
    }
    forget(&mut inner.running.lock(), &sku, &own);
    metrics::gauge!("nexussale_sse_feeds").decrement(1);
    // Dropping the sender ends every listener's stream.
}

/// Removes the sale's feed from `running` if it is the one `own` receives from (not a later one).
fn forget(
    running: &mut HashMap<Sku, watch::Receiver<Bytes>>,
    sku: &Sku,
    own: &watch::Receiver<Bytes>,
) {
    if running
        .get(sku)
        .is_some_and(|entry| entry.same_channel(own))
    {
        running.remove(sku);
    }
}

/// One `stock` event whose data is the sale as `GET /v1/sales/{sku}` answers it.
fn frame(view: &SaleView) -> Bytes {
    let data =
        serde_json::to_string(&SaleBody::from(view.clone())).unwrap_or_else(|_| String::from("{}"));
    Bytes::from(format!("event: stock\ndata: {data}\n\n"))
}
