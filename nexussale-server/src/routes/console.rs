//! The operator's actions on a sale (admin): reconcile its stock with its orders, end it now.

use bytes::Bytes;
use http::StatusCode;
use hyper::body::Body;
use nexussale_core::{ReconcileReport, Sku, StatusCounts, StockSnapshot, Tally};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::sales::SaleBody;
use crate::body::{Response, json, read_json_or_default};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// `POST /v1/sales/{sku}/reconcile` body; an empty body is a dry run.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReconcileRequest {
    /// Rebuild the live stock from the orders when they disagree; default false (a dry run).
    #[serde(default)]
    repair: bool,
}

/// Units and orders of one status.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Tally)]
pub(crate) struct TallyBody {
    orders: u64,
    units: u64,
}

impl From<Tally> for TallyBody {
    fn from(tally: Tally) -> Self {
        Self {
            orders: tally.orders,
            units: tally.units,
        }
    }
}

/// The repository's orders of a sale, per status.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StatusCounts)]
pub(crate) struct StatusCountsBody {
    pending: TallyBody,
    paid: TallyBody,
    cancelled: TallyBody,
    expired: TallyBody,
}

impl From<StatusCounts> for StatusCountsBody {
    fn from(counts: StatusCounts) -> Self {
        Self {
            pending: counts.pending.into(),
            paid: counts.paid.into(),
            cancelled: counts.cancelled.into(),
            expired: counts.expired.into(),
        }
    }
}

/// The stock store's counts of a sale.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StockCounts)]
pub(crate) struct StockBody {
    stock: u64,
    available: u64,
    reserved: u64,
    sold: u64,
}

impl From<StockSnapshot> for StockBody {
    fn from(snapshot: StockSnapshot) -> Self {
        Self {
            stock: snapshot.stock,
            available: snapshot.available,
            reserved: snapshot.reserved,
            sold: snapshot.sold,
        }
    }
}

/// How a sale's live stock compares with its persisted orders.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ReconcileReport)]
pub(crate) struct ReconcileBody {
    #[schema(value_type = Sku)]
    sku: Sku,
    /// Whether the store and the repository agree (after the repair, if one ran).
    in_sync: bool,
    /// The stock store's counts; `null` when the store has lost the sale.
    store: Option<StockBody>,
    /// The repository's orders per status.
    repository: StatusCountsBody,
    /// Units the store holds as reserved minus units of pending orders.
    reserved_drift: i64,
    /// Units the store counts as sold minus units of paid orders.
    sold_drift: i64,
    /// Whether this call rebuilt the store from the repository.
    repaired: bool,
}

impl From<ReconcileReport> for ReconcileBody {
    fn from(report: ReconcileReport) -> Self {
        Self {
            in_sync: report.in_sync(),
            store: report.store.map(StockBody::from),
            repository: report.repository.into(),
            reserved_drift: report.reserved_drift,
            sold_drift: report.sold_drift,
            repaired: report.repaired,
            sku: report.sku,
        }
    }
}

/// Compares the sale's live stock with its persisted orders (admin); with `repair`, rebuilds
/// the stock from the orders when they disagree. Orders still in the queue show as drift:
/// reconcile a quiet sale, and repair only once its purchases have stopped.
#[utoipa::path(
    post,
    path = "/v1/sales/{sku}/reconcile",
    tag = "console",
    params(("sku" = Sku, Path, description = "The sale.")),
    request_body(content = Option<ReconcileRequest>, example = json!({"repair": false})),
    responses(
        (status = 200, description = "The comparison (and the repair's outcome).", body = ReconcileBody),
        (status = 404, description = "`unknown_sale`: no sale has this sku.", body = ErrorBody),
    )
)]
pub(super) async fn reconcile<B>(state: &AppState, sku: &str, body: B) -> Result<Response, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let sku = Sku::new(sku)?;
    let request: ReconcileRequest = read_json_or_default(body).await?;
    let report = state.engine.reconcile(&sku, request.repair).await?;
    Ok(json(StatusCode::OK, &ReconcileBody::from(report)))
}

/// Ends the sale now (admin): from this instant purchases are refused with 409
/// `sale_not_active`, on every server sharing the stock store. Orders made before stay, to be
/// paid or to expire. An upcoming sale never opens. Ending an ended sale changes nothing.
#[utoipa::path(
    post,
    path = "/v1/sales/{sku}/end",
    tag = "console",
    params(("sku" = Sku, Path, description = "The sale.")),
    responses(
        (status = 200, description = "The sale, now `ended`.", body = SaleBody),
        (status = 404, description = "`unknown_sale`: no sale has this sku.", body = ErrorBody),
    )
)]
pub(super) async fn end(state: &AppState, sku: &str) -> Result<Response, ApiError> {
    let view = state.engine.end_sale(&Sku::new(sku)?).await?;
    Ok(json(StatusCode::OK, &SaleBody::from(view)))
}
