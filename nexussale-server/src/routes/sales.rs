//! `/v1/sales`: create, read, and buy.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use hyper::body::Body;
use nexussale_core::{
    DEFAULT_RESERVATION_TTL, IdempotencyKey, OrderId, OrderStatus, PurchaseOutcome,
    PurchaseRequest, Receipt, Sale, SaleView, Sku, UserId,
};
use serde::{Deserialize, Serialize};

use crate::body::{Response, json, read_json};
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /v1/sales` body.
#[derive(Debug, Deserialize)]
struct CreateSale {
    sku: String,
    stock: u64,
    per_user_limit: Option<u32>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    reservation_ttl_secs: Option<u64>,
}

/// A sale as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct SaleBody {
    sku: Sku,
    stock: u64,
    available: u64,
    reserved: u64,
    sold: u64,
    per_user_limit: u32,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    reservation_ttl_secs: u64,
    state: &'static str,
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
            sku: view.sale.sku,
        }
    }
}

pub(super) async fn create<B>(state: &AppState, body: B) -> Result<Response, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let request: CreateSale = read_json(body).await?;
    let ttl = request
        .reservation_ttl_secs
        .map_or(DEFAULT_RESERVATION_TTL, Duration::from_secs);
    let sale = Sale::new(Sku::new(&request.sku)?, request.stock)
        .with_per_user_limit(request.per_user_limit.unwrap_or(1))
        .with_window(request.starts_at, request.ends_at)
        .with_reservation_ttl(ttl);
    let view = state.engine.create_sale(sale).await?;
    Ok(json(StatusCode::CREATED, &SaleBody::from(view)))
}

pub(super) async fn list(state: &AppState) -> Result<Response, ApiError> {
    let sales: Vec<SaleBody> = state
        .engine
        .sales()
        .await?
        .into_iter()
        .map(SaleBody::from)
        .collect();
    Ok(json(StatusCode::OK, &sales))
}

pub(super) async fn get(state: &AppState, sku: &str) -> Result<Response, ApiError> {
    let view = state.engine.sale(&Sku::new(sku)?).await?;
    Ok(json(StatusCode::OK, &SaleBody::from(view)))
}

/// `POST /v1/sales/{sku}/purchase` body.
#[derive(Debug, Deserialize)]
struct Purchase {
    user: String,
    #[serde(default = "one")]
    quantity: u32,
    idempotency_key: Option<String>,
    remark: Option<String>,
}

fn one() -> u32 {
    1
}

/// The 202 answer to a purchase.
#[derive(Debug, Serialize)]
struct Accepted {
    order_id: OrderId,
    sku: Sku,
    user: UserId,
    quantity: u32,
    status: OrderStatus,
    expires_at: DateTime<Utc>,
    remaining: Option<u64>,
}

pub(super) async fn purchase<B>(
    state: &AppState,
    sku: &str,
    headers: &HeaderMap,
    body: B,
) -> Result<Response, ApiError>
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
    let request = PurchaseRequest {
        sku,
        user: UserId::new(&body.user)?,
        quantity: body.quantity,
        idempotency_key: key,
        remark: body.remark,
    };
    buy(state, request).await
}

/// Runs a purchase and answers it as the contract says (also used by `POST /seckill/add`).
pub(crate) async fn buy(state: &AppState, request: PurchaseRequest) -> Result<Response, ApiError> {
    let start = std::time::Instant::now();
    let answer = purchase_answer(state, request).await;
    let outcome = match &answer {
        Ok((_, outcome)) => *outcome,
        Err(err) if err.status.is_server_error() => "failed",
        Err(err) => match err.code {
            code @ ("sold_out" | "limit_exceeded") => code,
            "sale_not_active" => "not_active",
            _ => "rejected",
        },
    };
    metrics::counter!("nexussale_purchases_total", "outcome" => outcome).increment(1);
    metrics::histogram!("nexussale_purchase_duration_seconds").record(start.elapsed());
    answer.map(|(response, _)| response)
}

/// The answer to a purchase, with its outcome for the metrics.
async fn purchase_answer(
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
    }
}

fn accepted(receipt: Receipt) -> Response {
    let order = receipt.order;
    json(
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
    )
}
