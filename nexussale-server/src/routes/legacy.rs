//! The original service's API, kept for its clients: `POST /seckill/add`, `GET /order/all` and
//! `GET /order/{id}`.

use bytes::Bytes;
use http::StatusCode;
use hyper::body::Body;
use nexussale_core::{MAX_PAGE_SIZE, Order, OrderId, OrderQuery, PurchaseRequest, Sku, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::sales::{Accepted, buy, buyer};
use crate::body::{Response, json, read_json};
use crate::error::{ApiError, ErrorBody};
use crate::identity::Scope;
use crate::state::AppState;

/// `POST /seckill/add` body: one unit of sale `goods` for `user`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct Add {
    /// The buyer; with buyer authentication, the token's `sub` (the default) and nothing else.
    #[schema(value_type = Option<UserId>)]
    user: Option<String>,
    /// The sale's sku.
    #[schema(value_type = Sku)]
    goods: String,
    /// Free text kept with the order (at most 512 bytes).
    remark: Option<String>,
}

/// The original API's purchase: one unit of sale `goods`, answered like `POST /v1/sales/{sku}/purchase`.
#[utoipa::path(
    post,
    path = "/seckill/add",
    tag = "original",
    request_body(content = Add, example = json!({"user": "ann", "goods": "ps5", "remark": "gift wrap, please"})),
    responses(
        (status = 202, description = "Accepted.", body = Accepted,
            headers(("Location" = String, description = "`/v1/orders/{id}`: where the order is read."))),
        (status = 404, description = "`unknown_sale`: no sale has this sku.", body = ErrorBody),
        (status = 409, description = "`sold_out`, `limit_exceeded` or `sale_not_active`.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: see `Retry-After`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    )
)]
pub(super) async fn add<B>(
    state: &AppState,
    scope: &Scope,
    body: B,
) -> Result<(Response, &'static str), ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let add: Add = read_json(body).await?;
    let user = buyer(scope, add.user.as_deref())?;
    let mut request = PurchaseRequest::new(Sku::new(&add.goods)?, user);
    request.remark = add.remark;
    buy(state, request).await
}

/// The newest orders, at most 1000, as a JSON array.
#[utoipa::path(
    get,
    path = "/order/all",
    tag = "original",
    responses((status = 200, description = "The newest orders first.", body = [Order]))
)]
pub(super) async fn all(state: &AppState) -> Result<Response, ApiError> {
    let query = OrderQuery {
        limit: Some(MAX_PAGE_SIZE),
        ..OrderQuery::default()
    };
    let page = state.engine.orders(&query).await?;
    Ok(json(StatusCode::OK, &page.orders))
}

/// One order, as `GET /v1/orders/{id}` answers it.
#[utoipa::path(
    get,
    path = "/order/{id}",
    tag = "original",
    params(("id" = OrderId, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "The order.", body = Order),
        (status = 400, description = "`invalid_request`: the id is not a UUID.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such order.", body = ErrorBody),
    )
)]
pub(super) async fn one(state: &AppState, scope: &Scope, id: &str) -> Result<Response, ApiError> {
    super::orders::get(state, scope, id).await
}
