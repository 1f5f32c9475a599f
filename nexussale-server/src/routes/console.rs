//! The operator's actions on a sale (admin): reconcile its stock with its orders, end it now.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode, header};
use hyper::body::Body;
use nexussale_core::{ReconcileReport, SaleReport, Sku, StatusCounts, StockSnapshot, Tally};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::sales::SaleBody;
use crate::body::{Response, ResponseBody, json, read_json_or_default};
use crate::error::{ApiError, ErrorBody};
use crate::refusals::REASONS;
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

/// Orders accepted in one bucket of a sale's report.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BucketBody {
    /// When the bucket starts (it lasts `bucket_secs`).
    #[serde(serialize_with = "nexussale_core::timestamp::serialize")]
    start: DateTime<Utc>,
    orders: u64,
    units: u64,
    /// Orders accepted per second in the bucket.
    per_second: f64,
}

/// Orders accepted over the sale, bucket by bucket from the first purchase.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PerSecondBody {
    /// The buckets' width, in seconds: 1 for a sale that sold within 10 minutes, wider for a
    /// longer one (at most 600 buckets).
    bucket_secs: u64,
    buckets: Vec<BucketBody>,
}

/// How a sale sold, from the repository (every server's orders; survives restarts).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SaleReport)]
pub(crate) struct ReportBody {
    #[schema(value_type = Sku)]
    sku: Sku,
    stock: u64,
    /// When purchases opened: the sale's start, else its first order.
    #[serde(serialize_with = "nexussale_core::timestamp::serialize_option")]
    opened_at: Option<DateTime<Utc>>,
    /// When purchases closed (an end made early included); `null`: never.
    #[serde(serialize_with = "nexussale_core::timestamp::serialize_option")]
    ends_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "nexussale_core::timestamp::serialize_option")]
    first_purchase: Option<DateTime<Utc>>,
    #[serde(serialize_with = "nexussale_core::timestamp::serialize_option")]
    last_purchase: Option<DateTime<Utc>>,
    /// From the opening to the order that took the last unit; `null`: it never sold out.
    sold_out_after_secs: Option<f64>,
    /// Every order accepted (whatever its status now).
    accepted: TallyBody,
    accepted_per_second: PerSecondBody,
    /// Purchases refused, by reason (every reason listed; servers add theirs every 5 s).
    refused: BTreeMap<&'static str, u64>,
    /// Orders and units by status now.
    statuses: StatusCountsBody,
    /// Paid orders ÷ accepted orders; `null` without orders.
    conversion: Option<f64>,
}

impl From<SaleReport> for ReportBody {
    fn from(report: SaleReport) -> Self {
        let width = report.bucket.as_secs_f64();
        let buckets = report
            .accepted_per_bucket
            .iter()
            .enumerate()
            .filter_map(|(index, tally)| {
                let offset = report.bucket.checked_mul(u32::try_from(index).ok()?)?;
                Some(BucketBody {
                    start: report.first_purchase? + offset,
                    orders: tally.orders,
                    units: tally.units,
                    per_second: tally.orders as f64 / width,
                })
            })
            .collect();
        let mut refused: BTreeMap<&'static str, u64> =
            REASONS.iter().map(|reason| (*reason, 0)).collect();
        for (reason, count) in &report.refusals {
            if let Some(known) = REASONS.iter().find(|known| **known == reason.as_str()) {
                refused.insert(known, *count);
            }
        }
        Self {
            sku: report.sale.sku.clone(),
            stock: report.sale.stock,
            opened_at: report.opened_at,
            ends_at: report.sale.ends_at,
            first_purchase: report.first_purchase,
            last_purchase: report.last_purchase,
            sold_out_after_secs: report.sold_out_after.map(|after| after.as_secs_f64()),
            accepted: report.accepted.into(),
            accepted_per_second: PerSecondBody {
                bucket_secs: report.bucket.as_secs(),
                buckets,
            },
            refused,
            statuses: report.statuses.into(),
            conversion: report.conversion,
        }
    }
}

impl ReportBody {
    /// The report as CSV rows `section,key,value`: `summary` (one metric a row), `accepted`,
    /// `status` (`<status>_orders`, `<status>_units`), `refused` (one reason a row) and
    /// `per_second` (one bucket a row: its start, orders per second).
    fn csv(&self) -> String {
        let instant = |at: Option<DateTime<Utc>>| at.map(rfc3339).unwrap_or_default();
        let number = |value: Option<f64>| value.map(|n| n.to_string()).unwrap_or_default();
        let mut rows: Vec<(&str, String, String)> = vec![
            ("summary", "sku".into(), self.sku.to_string()),
            ("summary", "stock".into(), self.stock.to_string()),
            ("summary", "opened_at".into(), instant(self.opened_at)),
            ("summary", "ends_at".into(), instant(self.ends_at)),
            (
                "summary",
                "first_purchase".into(),
                instant(self.first_purchase),
            ),
            (
                "summary",
                "last_purchase".into(),
                instant(self.last_purchase),
            ),
            (
                "summary",
                "sold_out_after_secs".into(),
                number(self.sold_out_after_secs),
            ),
            ("summary", "conversion".into(), number(self.conversion)),
            (
                "accepted",
                "orders".into(),
                self.accepted.orders.to_string(),
            ),
            ("accepted", "units".into(), self.accepted.units.to_string()),
        ];
        for (status, tally) in [
            ("pending", &self.statuses.pending),
            ("paid", &self.statuses.paid),
            ("cancelled", &self.statuses.cancelled),
            ("expired", &self.statuses.expired),
        ] {
            rows.push((
                "status",
                format!("{status}_orders"),
                tally.orders.to_string(),
            ));
            rows.push(("status", format!("{status}_units"), tally.units.to_string()));
        }
        for (reason, count) in &self.refused {
            rows.push(("refused", (*reason).to_owned(), count.to_string()));
        }
        for bucket in &self.accepted_per_second.buckets {
            rows.push((
                "per_second",
                rfc3339(bucket.start),
                bucket.per_second.to_string(),
            ));
        }
        let mut csv = String::from("section,key,value\r\n");
        for (section, key, value) in rows {
            csv.push_str(&format!("{section},{},{}\r\n", field(&key), field(&value)));
        }
        csv
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break; a leading
/// `=`, `+`, `-` or `@` (a spreadsheet formula) is quoted behind a `'`.
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The sale's report (admin): opened, first and last purchase, time to sell out, orders accepted
/// per second over the sale, refusals by reason, orders by status, conversion. Read from the
/// repository: every server's orders, surviving restarts. `?format=csv` answers it as CSV
/// (`section,key,value` rows).
#[utoipa::path(
    get,
    path = "/v1/sales/{sku}/report",
    tag = "console",
    params(
        ("sku" = Sku, Path, description = "The sale."),
        ("format" = Option<String>, Query, description = "`json` (the default) or `csv`."),
    ),
    responses(
        (status = 200, description = "The report.", content(
            (ReportBody = "application/json"),
            (String = "text/csv; charset=utf-8", example = "section,key,value\r\nsummary,sku,ps5\r\nsummary,stock,100\r\n"),
        )),
        (status = 404, description = "`unknown_sale`: no sale has this sku.", body = ErrorBody),
    )
)]
pub(super) async fn report(
    state: &AppState,
    sku: &str,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let sku = Sku::new(sku)?;
    let mut csv = false;
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name == "format" {
            csv = match value.as_ref() {
                "csv" => true,
                "json" => false,
                _ => return Err(ApiError::invalid("format must be `json` or `csv`")),
            };
        }
    }
    // What this server refused so far counts too, not only what it wrote before.
    state.refusals.flush(&state.engine).await;
    let body = ReportBody::from(state.engine.report(&sku).await?);
    if !csv {
        return Ok(json(StatusCode::OK, &body));
    }
    let mut response = http::Response::new(ResponseBody::full(body.csv()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let name: String = sku
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(disposition) =
        HeaderValue::from_str(&format!("attachment; filename=\"{name}-report.csv\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
