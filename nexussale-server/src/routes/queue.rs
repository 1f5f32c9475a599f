//! `/v1/sales/{sku}/queue`: a sale's waiting room — join, read a ticket, follow it live.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::StatusCode;
use hyper::body::Body;
use nexussale_core::{
    CancellationToken, Sku, TicketId, TicketState, TicketUpdates, TicketView, UserId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::{Response, event_stream, json, read_json_or_default};
use crate::error::{ApiError, ErrorBody};
use crate::identity::Scope;
use crate::state::AppState;

/// `POST /v1/sales/{sku}/queue` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Join {
    /// The buyer; with buyer authentication, the token's `sub` (the default) and nothing else.
    #[schema(value_type = Option<UserId>)]
    user: Option<String>,
    /// The proof of work, when the sale asks for one (`waiting_room.proof_of_work_bits`): text
    /// of at most 64 bytes such that SHA-256 of `<challenge>:<user>:<nonce>` starts with that
    /// many zero bits.
    nonce: Option<String>,
}

/// A buyer's ticket in a sale's waiting room.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Ticket)]
pub(crate) struct TicketBody {
    #[schema(value_type = String, pattern = "^[0-9a-f]{32}$")]
    ticket: TicketId,
    sku: Sku,
    user: UserId,
    /// `waiting`, `admitted` (holding a pass, or having used it), `sold_out`, `ended`.
    #[schema(value_type = String, example = "waiting")]
    state: &'static str,
    /// Place in line (1 = next), once the line is drawn at the opening.
    position: Option<u64>,
    /// Tickets in front.
    ahead: Option<u64>,
    /// Seconds until admitted, at the recent admission rate; `null` while unknown.
    estimated_wait_secs: Option<u64>,
    /// The pass, while admitted: buy with header `Admission-Pass: <pass>`.
    pass: Option<String>,
    /// When the pass lapses (the ticket then queues again at the back).
    #[serde(serialize_with = "nexussale_core::timestamp::serialize_option")]
    pass_expires_at: Option<DateTime<Utc>>,
    /// Whether the pass was used to buy.
    pass_used: bool,
    /// While nothing is available but units are held by unpaid orders (they may come back):
    /// how many.
    units_reserved: Option<u64>,
}

impl From<TicketView> for TicketBody {
    fn from(view: TicketView) -> Self {
        Self {
            ticket: view.ticket,
            sku: view.sku,
            user: view.user,
            state: view.state.as_str(),
            position: view.position,
            ahead: view.ahead,
            estimated_wait_secs: view.estimated_wait_secs,
            pass: view.pass,
            pass_expires_at: view.pass_expires_at,
            pass_used: view.pass_used,
            units_reserved: view.units_reserved,
        }
    }
}

/// Joins a sale's waiting room (or answers the ticket the buyer has: one per buyer per sale).
/// Those who join before the opening are placed in a random order drawn at the opening, later
/// ones behind them in the order they came.
#[utoipa::path(
    post,
    path = "/v1/sales/{sku}/queue",
    tag = "waiting room",
    params(("sku" = Sku, Path, description = "The sale's sku.")),
    request_body(content = Join, example = json!({"user": "alice"})),
    responses(
        (status = 200, description = "The ticket.", body = TicketBody),
        (status = 400, description = "`invalid_request`: a malformed body, or a missing or wrong proof of work.", body = ErrorBody),
        (status = 404, description = "`unknown_sale`: no sale has this sku; `not_found`: the sale has no waiting room.", body = ErrorBody),
    )
)]
pub(super) async fn join<B>(
    state: &AppState,
    scope: &Scope,
    sku: &str,
    body: B,
) -> Result<Response, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let sku = Sku::new(sku)?;
    let join: Join = read_json_or_default(body).await?;
    let user = super::sales::buyer(scope, join.user.as_deref())?;
    let view = state
        .engine
        .join(&sku, &user, join.nonce.as_deref())
        .await?;
    metrics::counter!("nexussale_waiting_room_joins_total").increment(1);
    Ok(json(StatusCode::OK, &TicketBody::from(view)))
}

/// A ticket: where it stands, and its pass once admitted. Polling suits clients that cannot
/// listen to `…/events`.
#[utoipa::path(
    get,
    path = "/v1/sales/{sku}/queue/{ticket}",
    tag = "waiting room",
    params(("sku" = Sku, Path, description = "The sale's sku."),
           ("ticket" = String, Path, description = "The ticket (32 hex digits).")),
    responses(
        (status = 200, description = "The ticket.", body = TicketBody),
        (status = 404, description = "`not_found`: no such ticket (or not the caller's); `unknown_sale`.", body = ErrorBody),
    )
)]
pub(super) async fn get(
    state: &AppState,
    scope: &Scope,
    sku: &str,
    ticket: &str,
) -> Result<Response, ApiError> {
    let (sku, id) = ids(sku, ticket)?;
    match state.engine.ticket(&sku, &id).await? {
        Some(view) if scope.covers(&view.user) => Ok(json(StatusCode::OK, &TicketBody::from(view))),
        _ => Err(no_ticket()),
    }
}

/// A ticket, live: a `text/event-stream` of `ticket` events, each one's `data` the ticket as
/// `GET …/queue/{ticket}` answers it — at once, then at each change, at most two a second. A
/// waiting ticket's place follows from the room's admission count, so thousands of listeners
/// do not each read the store.
#[utoipa::path(
    get,
    path = "/v1/sales/{sku}/queue/{ticket}/events",
    tag = "waiting room",
    params(("sku" = Sku, Path, description = "The sale's sku."),
           ("ticket" = String, Path, description = "The ticket (32 hex digits).")),
    responses(
        (status = 200, description = "The stream: `event: ticket` / `data: <the ticket as JSON>` frames.",
            content_type = "text/event-stream", body = String),
        (status = 404, description = "`not_found`: no such ticket (or not the caller's); `unknown_sale`.", body = ErrorBody),
    )
)]
pub(super) async fn events(
    state: &AppState,
    scope: &Scope,
    sku: &str,
    ticket: &str,
) -> Result<Response, ApiError> {
    let (sku, id) = ids(sku, ticket)?;
    let Some(view) = state.engine.ticket(&sku, &id).await? else {
        return Err(no_ticket());
    };
    if !scope.covers(&view.user) {
        return Err(no_ticket());
    }
    let Some(updates) = state.engine.ticket_updates(&sku, &id).await? else {
        return Err(no_ticket());
    };
    let stream = ticket_stream(updates, state.feeds.closing(), state.feeds.tick());
    Ok(event_stream(stream))
}

fn ids(sku: &str, ticket: &str) -> Result<(Sku, TicketId), ApiError> {
    let sku = Sku::new(sku)?;
    // A malformed ticket is no ticket: 404, as an unknown one.
    let id = ticket.parse().map_err(|_| no_ticket())?;
    Ok((sku, id))
}

fn no_ticket() -> ApiError {
    ApiError::not_found("no such ticket")
}

/// A comment line sent when nothing changed for this long (see `feeds`).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One listener's frames: `retry`, then the ticket at each change, no two closer than `tick`;
/// keep-alive comments when idle; it ends at shutdown or once the ticket can no longer change
/// (sold out, ended, or its pass used).
fn ticket_stream(
    updates: TicketUpdates,
    closing: CancellationToken,
    tick: Duration,
) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    struct Listener {
        updates: TicketUpdates,
        closing: CancellationToken,
        tick: Duration,
        retry: bool,
        done: bool,
        earliest: tokio::time::Instant,
    }
    metrics::gauge!("nexussale_sse_listeners").increment(1);
    let guard = ListenerGauge;
    let listener = Listener {
        updates,
        closing,
        tick,
        retry: true,
        done: false,
        earliest: tokio::time::Instant::now(),
    };
    futures::stream::unfold((listener, guard), |(mut l, guard)| async move {
        if std::mem::take(&mut l.retry) {
            return Some((Bytes::from_static(b"retry: 2000\n\n"), (l, guard)));
        }
        if l.done {
            return None;
        }
        tokio::select! {
            () = l.closing.cancelled() => return None,
            () = tokio::time::sleep_until(l.earliest) => {}
        }
        let idle = tokio::time::sleep(KEEP_ALIVE);
        tokio::pin!(idle);
        loop {
            let next = tokio::select! {
                () = l.closing.cancelled() => return None,
                () = &mut idle => return Some((Bytes::from_static(b": keep-alive\n\n"), (l, guard))),
                next = l.updates.next() => next,
            };
            match next? {
                Ok(view) => {
                    l.done = matches!(view.state, TicketState::SoldOut | TicketState::Ended)
                        || view.pass_used;
                    l.earliest = tokio::time::Instant::now() + l.tick;
                    let data = serde_json::to_vec(&TicketBody::from(view)).unwrap_or_default();
                    let mut frame = Vec::with_capacity(data.len() + 24);
                    frame.extend_from_slice(b"event: ticket\ndata: ");
                    frame.extend_from_slice(&data);
                    frame.extend_from_slice(b"\n\n");
                    return Some((Bytes::from(frame), (l, guard)));
                }
                // A store that stumbles: try again a tick later.
                Err(err) => {
                    tracing::debug!(error = %err, "a ticket stream could not read its ticket");
                    tokio::select! {
                        () = l.closing.cancelled() => return None,
                        () = tokio::time::sleep(l.tick) => {}
                    }
                }
            }
        }
    })
}

/// Counts a ticket listener in `nexussale_sse_listeners` while its stream lives.
struct ListenerGauge;

impl Drop for ListenerGauge {
    fn drop(&mut self) {
        metrics::gauge!("nexussale_sse_listeners").decrement(1);
    }
}
