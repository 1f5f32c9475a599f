//! `/v1/sales`: create, read, and buy.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use hyper::body::Body;
use nexussale_core::{
    DEFAULT_RESERVATION_TTL, IdempotencyKey, OrderId, OrderStatus, Overbook, PurchaseOutcome,
    PurchaseRequest, Receipt, RoomStatus, Sale, SaleQuery, SaleState, SaleView, Sku, UserId,
    WaitingRoom,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::{Response, json, read_json, with_location, with_location_bytes};
use crate::error::{ApiError, ErrorBody};
use crate::identity::{Scope, forbidden};
use crate::state::AppState;

/// `POST /v1/sales` body.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CreateSale {
    #[schema(value_type = Sku)]
    sku: String,
    /// Units on sale.
    stock: u64,
    /// Units one user may buy; default 1.
    #[schema(minimum = 1)]
    per_user_limit: Option<u32>,
    /// When purchases open; default: now. From 1970-01-01T00:00:00Z to
    /// 9999-12-31T23:59:59.999999Z, in whole microseconds, not a leap second: anything else is
    /// refused (400), never stored as something else.
    starts_at: Option<DateTime<Utc>>,
    /// When purchases close; default: never. The same range and precision as `starts_at`.
    ends_at: Option<DateTime<Utc>>,
    /// How long an unpaid order holds its units; default 900.
    #[schema(minimum = 1)]
    reservation_ttl_secs: Option<u64>,
    /// A waiting room (`{}` for the defaults); absent: none. Purchases then need a pass.
    waiting_room: Option<WaitingRoomSettings>,
}

/// A sale's waiting room, as it is asked for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitingRoomSettings {
    /// How long a pass stays valid; default 120, at most 3600.
    #[schema(minimum = 1, maximum = 3600)]
    pass_ttl_secs: Option<u64>,
    /// Passes outstanding may reach the units available times this; default 1.0, up to 10.
    #[schema(minimum = 1.0, maximum = 10.0)]
    overbook: Option<f64>,
    /// Leading zero bits a join's proof of work must have; default 0 (none), at most 24.
    #[schema(minimum = 0, maximum = 24)]
    proof_of_work_bits: Option<u8>,
}

impl WaitingRoomSettings {
    fn room(&self) -> Result<WaitingRoom, ApiError> {
        let mut room = WaitingRoom::default();
        if let Some(secs) = self.pass_ttl_secs {
            room.pass_ttl = Duration::from_secs(secs);
        }
        if let Some(factor) = self.overbook {
            room.overbook = Overbook::new(factor)?;
        }
        if let Some(bits) = self.proof_of_work_bits {
            room.proof_of_work_bits = bits;
        }
        Ok(room)
    }
}

/// A sale's waiting room, as the sale shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WaitingRoom)]
pub(crate) struct WaitingRoomBody {
    /// How long a pass stays valid.
    pass_ttl_secs: u64,
    /// Passes outstanding may reach the units available times this.
    overbook: f64,
    /// Leading zero bits a join's proof of work must have (0: none asked).
    proof_of_work_bits: u8,
    /// The proof-of-work challenge: a join's `nonce` makes SHA-256 of
    /// `<challenge>:<user>:<nonce>` start with `proof_of_work_bits` zero bits.
    challenge: String,
    /// Tickets in line now.
    waiting: u64,
    /// Passes admitted and not yet used or lapsed, read right after the stock counts: never
    /// more than `available × overbook ÷ per_user_limit`.
    passes_outstanding: u64,
    /// Tickets admitted so far.
    admitted: u64,
    /// Whether the line closed sold out.
    closed: bool,
}

impl WaitingRoomBody {
    fn new(room: WaitingRoom, status: RoomStatus) -> Self {
        Self {
            pass_ttl_secs: room.pass_ttl.as_secs(),
            overbook: room.overbook.factor(),
            proof_of_work_bits: room.proof_of_work_bits,
            challenge: room.challenge,
            waiting: status.waiting,
            passes_outstanding: status.outstanding,
            admitted: status.admitted,
            closed: status.closed,
        }
    }
}

/// A sale as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Sale)]
pub(crate) struct SaleBody {
    sku: Sku,
    /// Units on sale in total.
    stock: u64,
    /// Units anyone may still reserve.
    available: u64,
    /// Units held by pending orders.
    reserved: u64,
    /// Units of paid orders.
    sold: u64,
    /// Units one user may buy.
    per_user_limit: u32,
    /// When purchases open.
    #[serde(serialize_with = "nexussale_core::timestamp::serialize_option")]
    starts_at: Option<DateTime<Utc>>,
    /// When purchases close.
    #[serde(serialize_with = "nexussale_core::timestamp::serialize_option")]
    ends_at: Option<DateTime<Utc>>,
    /// How long an unpaid order holds its units.
    reservation_ttl_secs: u64,
    #[schema(value_type = SaleState)]
    state: &'static str,
    /// Its waiting room; absent: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting_room: Option<WaitingRoomBody>,
}

impl From<SaleView> for SaleBody {
    fn from(view: SaleView) -> Self {
        Self {
            stock: view.sale.stock,
            available: view.snapshot.available,
            reserved: view.snapshot.reserved,
            sold: view.snapshot.sold,
            per_user_limit: view.sale.per_user_limit,
            starts_at: view.sale.starts_at,
            ends_at: view.sale.ends_at,
            reservation_ttl_secs: view.sale.reservation_ttl.as_secs(),
            state: view.state.as_str(),
            waiting_room: view
                .sale
                .waiting_room
                .map(|room| WaitingRoomBody::new(room, view.room.unwrap_or_default())),
            sku: view.sale.sku,
        }
    }
}

/// Creates a sale (admin).
#[utoipa::path(
    post,
    path = "/v1/sales",
    tag = "sales",
    request_body(content = CreateSale,
        example = json!({"sku": "switch", "stock": 20, "per_user_limit": 2, "reservation_ttl_secs": 900})),
    responses(
        (status = 201, description = "The sale, created.", body = SaleBody,
            headers(("Location" = String, description = "`/v1/sales/{sku}`: where the sale is read."))),
        (status = 409, description = "`sale_exists`: a sale with this sku exists; `too_many_sales`: `--max-sales` sales exist already.", body = ErrorBody),
    )
)]
pub(super) async fn create<B>(state: &AppState, body: B) -> Result<Response, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let request: CreateSale = read_json(body).await?;
    let ttl = request
        .reservation_ttl_secs
        .map_or(DEFAULT_RESERVATION_TTL, Duration::from_secs);
    let mut sale = Sale::new(Sku::new(&request.sku)?, request.stock)
        .with_per_user_limit(request.per_user_limit.unwrap_or(1))
        .with_window(request.starts_at, request.ends_at)
        .with_reservation_ttl(ttl);
    if let Some(settings) = &request.waiting_room {
        sale = sale.with_waiting_room(settings.room()?);
    }
    let view = state.engine.create_sale(sale).await?;
    let sku = view.sale.sku.clone();
    Ok(with_location(
        json(StatusCode::CREATED, &SaleBody::from(view)),
        "/v1/sales/",
        sku.as_str(),
    ))
}

/// `GET /v1/sales` answer: one page of sales.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SalePage)]
pub(crate) struct SalePageBody {
    /// The sales, in sku order.
    sales: Vec<SaleBody>,
    /// The `after` of the next page; `null` on the last.
    #[schema(value_type = Option<Sku>)]
    next: Option<Sku>,
}

/// Sales in sku order, a page at a time, with their stock counted now; filter by state.
#[utoipa::path(
    get,
    path = "/v1/sales",
    tag = "sales",
    params(
        ("state" = Option<SaleState>, Query, description = "Only sales in this state."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size; default 100."),
        ("after" = Option<Sku>, Query, description = "The `next` cursor of the previous page."),
    ),
    responses(
        (status = 200, description = "One page, in sku order.", body = SalePageBody),
        (status = 400, description = "`invalid_request`: a filter is malformed.", body = ErrorBody),
    )
)]
pub(super) async fn list(state: &AppState, query: Option<&str>) -> Result<Response, ApiError> {
    let mut filter = SaleQuery::default();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "state" => filter.state = Some(value.parse()?),
            "after" => filter.after = Some(Sku::new(value.as_ref())?),
            "limit" => filter.limit = Some(super::page_limit(&value)?),
            _ => {}
        }
    }
    let page = state.engine.sales_page(&filter).await?;
    let body = SalePageBody {
        sales: page.sales.into_iter().map(SaleBody::from).collect(),
        next: page.next,
    };
    Ok(json(StatusCode::OK, &body))
}

/// One sale, with its stock counted now.
#[utoipa::path(
    get,
    path = "/v1/sales/{sku}",
    tag = "sales",
    params(("sku" = Sku, Path, description = "The sale's sku.")),
    responses(
        (status = 200, description = "The sale.", body = SaleBody),
        (status = 404, description = "`unknown_sale`: no sale has this sku.", body = ErrorBody),
    )
)]
pub(super) async fn get(state: &AppState, sku: &str) -> Result<Response, ApiError> {
    let view = state.engine.sale(&Sku::new(sku)?).await?;
    Ok(json(StatusCode::OK, &SaleBody::from(view)))
}

/// `POST /v1/sales/{sku}/purchase` body.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct Purchase {
    /// The buyer; with buyer authentication, the token's `sub` (the default) and nothing else.
    #[schema(value_type = Option<UserId>)]
    user: Option<String>,
    /// Units to buy; default 1.
    #[serde(default = "one")]
    #[schema(minimum = 1, default = 1)]
    quantity: u32,
    /// Makes the purchase safe to retry (or send the `Idempotency-Key` header).
    #[schema(value_type = Option<IdempotencyKey>)]
    idempotency_key: Option<String>,
    /// Free text kept with the order (at most 512 bytes).
    remark: Option<String>,
}

fn one() -> u32 {
    1
}

/// The 202 answer to a purchase: the units are reserved and the order event is durably queued.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Accepted {
    order_id: OrderId,
    sku: Sku,
    user: UserId,
    /// Units bought.
    quantity: u32,
    status: OrderStatus,
    /// When the reservation lapses unless paid.
    #[serde(serialize_with = "nexussale_core::timestamp::serialize")]
    expires_at: DateTime<Utc>,
    /// Units still available, when the stock store knows (a sharded store answers a lower
    /// bound).
    remaining: Option<u64>,
}

/// Buys units of a sale: reserves them and queues the order, answering once both are done.
#[utoipa::path(
    post,
    path = "/v1/sales/{sku}/purchase",
    tag = "sales",
    request_body(content = Purchase, example = json!({"user": "ann", "quantity": 1})),
    params(
        ("sku" = Sku, Path, description = "The sale's sku."),
        ("Idempotency-Key" = Option<IdempotencyKey>, Header,
            description = "Same as the body's `idempotency_key`; if both are sent they must be equal."),
    ),
    responses(
        (status = 202, description = "Accepted: the same idempotency key answers the same order.", body = Accepted,
            headers(("Location" = String, description = "`/v1/orders/{id}`: where the order is read."))),
        (status = 404, description = "`unknown_sale`: no sale has this sku.", body = ErrorBody),
        (status = 409, description = "`sold_out`, `limit_exceeded` or `sale_not_active`; `conflict`: the idempotency key was used before with another quantity or remark.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many purchases from this user or address; see `Retry-After`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    )
)]
pub(super) async fn purchase<B>(
    state: &AppState,
    scope: &Scope,
    sku: &str,
    headers: &HeaderMap,
    body: B,
) -> Result<(Response, &'static str), ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let sku = Sku::new(sku)?;
    let body: Purchase = read_json(body).await?;
    let header_key = match headers.get("idempotency-key") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::invalid("the Idempotency-Key header must be visible ASCII"))?
                .to_owned(),
        ),
        None => None,
    };
    let key = match (header_key, body.idempotency_key) {
        (Some(header), Some(field)) if header != field => {
            return Err(ApiError::invalid(
                "the Idempotency-Key header and the idempotency_key field differ",
            ));
        }
        (Some(key), _) | (None, Some(key)) => Some(IdempotencyKey::new(key)?),
        (None, None) => None,
    };
    let pass = match headers.get("admission-pass") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::invalid("the Admission-Pass header must be visible ASCII"))?
                .to_owned(),
        ),
        None => None,
    };
    let request = PurchaseRequest {
        sku,
        user: buyer(scope, body.user.as_deref())?,
        quantity: body.quantity,
        idempotency_key: key,
        remark: body.remark,
        pass,
    };
    buy(state, request).await
}

/// Who buys: the body's `user`, which a buyer's token must name (and names when it is left
/// out).
pub(super) fn buyer(scope: &Scope, user: Option<&str>) -> Result<UserId, ApiError> {
    match (scope, user) {
        (Scope::Buyer(buyer), None) => Ok(buyer.clone()),
        (Scope::Buyer(buyer), Some(user)) if buyer.as_str() == user => Ok(buyer.clone()),
        (Scope::Nobody, _) => Err(forbidden("only a buyer, with its own token, may buy")),
        (Scope::Buyer(_), Some(_)) => Err(forbidden(
            "a buyer buys only as itself: `user` must be the token's subject",
        )),
        (Scope::All, Some(user)) => Ok(UserId::new(user)?),
        (Scope::All, None) => Err(ApiError::invalid("the body needs `user`, the buyer")),
    }
}

/// The purchase outcomes `nexussale_purchases_total` counts: the accepted ones, then the
/// refusals by their exact reason.
pub(crate) const PURCHASE_OUTCOMES: [&str; 13] = [
    "accepted",
    "duplicate",
    "sold_out",
    "limit_exceeded",
    "not_active",
    "not_admitted",
    "rate_limited",
    "unknown_sale",
    "invalid",
    "forbidden",
    "conflict",
    "unavailable",
    "failed",
];

/// Answers a purchase request (`answer`: its handler, from the rate limits on) and counts it by
/// outcome, with its latency; a refusal of a purchase of `sku` also for the sale's report.
pub(super) async fn counted(
    state: &AppState,
    sku: Option<&str>,
    answer: impl Future<Output = Result<(Response, &'static str), ApiError>>,
) -> Result<Response, ApiError> {
    let start = std::time::Instant::now();
    let answer = answer.await;
    let outcome = match &answer {
        Ok((_, outcome)) => *outcome,
        Err(err) => outcome(err),
    };
    metrics::counter!("nexussale_purchases_total", "outcome" => outcome).increment(1);
    if let Some(sku) = sku {
        state.refusals.count(sku, outcome);
    }
    metrics::histogram!("nexussale_purchase_duration_seconds").record(start.elapsed());
    answer.map(|(response, _)| response)
}

/// The outcome a refused purchase is counted under.
fn outcome(err: &ApiError) -> &'static str {
    match err.code {
        "unavailable" => "unavailable",
        _ if err.status.is_server_error() => "failed",
        "sale_not_active" => "not_active",
        "invalid_request" | "payload_too_large" => "invalid",
        code @ ("sold_out" | "limit_exceeded" | "rate_limited" | "unknown_sale" | "forbidden"
        | "conflict" | "not_admitted") => code,
        _ => "invalid",
    }
}

/// Runs a purchase and answers it as the contract says, with its outcome for the metrics (also
/// used by `POST /seckill/add`).
pub(crate) async fn buy(
    state: &AppState,
    request: PurchaseRequest,
) -> Result<(Response, &'static str), ApiError> {
    super::limit::user(state, &request.user)?;
    let sku = request.sku.clone();
    match state.engine.purchase(request).await? {
        PurchaseOutcome::Accepted(receipt) => Ok((accepted(receipt), "accepted")),
        PurchaseOutcome::Duplicate(mut receipt) => {
            receipt.remaining = Some(state.engine.sale(&sku).await?.snapshot.available);
            Ok((accepted(receipt), "duplicate"))
        }
        PurchaseOutcome::SoldOut => Err(ApiError::refused(
            "sold_out",
            format!("sale {sku} is sold out"),
        )),
        PurchaseOutcome::LimitExceeded { limit } => Err(ApiError::refused(
            "limit_exceeded",
            format!("sale {sku} allows at most {limit} unit(s) per user"),
        )),
        PurchaseOutcome::NotActive(sale_state) => Err(ApiError::refused(
            "sale_not_active",
            format!("sale {sku} is {sale_state}, not active"),
        )),
        PurchaseOutcome::NotAdmitted(refusal) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_admitted",
            refusal.message(),
        )),
    }
}

fn accepted(receipt: Receipt) -> Response {
    let order = receipt.order;
    // An order id is hex and hyphens: nothing to percent-encode, no `Display` to go through.
    let mut location = [0u8; 11 + 36];
    location[..11].copy_from_slice(b"/v1/orders/");
    order
        .id
        .as_uuid()
        .as_hyphenated()
        .encode_lower(&mut location[11..]);
    let response = json(
        StatusCode::ACCEPTED,
        &Accepted {
            order_id: order.id,
            sku: order.sku,
            user: order.user,
            quantity: order.quantity,
            status: order.status,
            expires_at: order.expires_at,
            remaining: receipt.remaining,
        },
    );
    with_location_bytes(response, &location)
}
