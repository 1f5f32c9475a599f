//! Live stock by server-sent events: what shop fronts show as "N left" without polling, and
//! what the dashboard draws.

use nexussale_core::Sku;

use crate::body::{Response, event_stream};
use crate::error::{ApiError, ErrorBody};
use crate::feeds::Feeds;
use crate::state::AppState;

/// The sale's stock, live (public: stock counts are public): a `text/event-stream` of `stock`
/// events, each one's `data` the sale as `GET /v1/sales/{sku}` answers it — the current view at
/// once, then each change, at most a few a second (changes in between are coalesced); a
/// `: keep-alive` comment when idle. One read of the sale a tick serves every listener. The
/// stream ends when the server shuts down (an `EventSource` reconnects by itself, after the
/// `retry` the stream starts with).
#[utoipa::path(
    get,
    path = "/v1/sales/{sku}/events",
    tag = "sales",
    params(("sku" = Sku, Path, description = "The sale's sku.")),
    responses(
        (status = 200, description = "The stream: `event: stock` / `data: <the sale as JSON>` frames.",
            content_type = "text/event-stream", body = String,
            example = "retry: 2000\n\nevent: stock\ndata: {\"sku\":\"ps5\",\"stock\":100,\"available\":97,\"reserved\":2,\"sold\":1,\"state\":\"active\",\"per_user_limit\":1,\"starts_at\":null,\"ends_at\":null,\"reservation_ttl_secs\":900}\n\n"),
        (status = 404, description = "`unknown_sale`: no sale has this sku.", body = ErrorBody),
    )
)]
pub(super) async fn sale(state: &AppState, sku: &str) -> Result<Response, ApiError> {
    let receiver = state.feeds.subscribe(&Sku::new(sku)?).await?;
    Ok(event_stream(Feeds::stream(receiver)))
}
