//! `/v1/orders`: read, pay, cancel.

use http::StatusCode;
use nexussale_core::{Order, OrderId, OrderPage, OrderQuery, OrderStatus, Sku, UserId};

use crate::body::{Response, json};
use crate::error::{ApiError, ErrorBody};
use crate::identity::{Scope, forbidden};
use crate::state::AppState;

fn order_id(id: &str) -> Result<OrderId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::invalid("the order id must be a UUID"))
}

/// One order: as persisted, or, right after its purchase (before the worker persists it), as the
/// stock store holds it (`pending`).
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    tag = "orders",
    params(("id" = OrderId, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "The order.", body = Order),
        (status = 400, description = "`invalid_request`: the id is not a UUID.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such order.", body = ErrorBody),
    )
)]
pub(super) async fn get(state: &AppState, scope: &Scope, id: &str) -> Result<Response, ApiError> {
    let order = owned(state, scope, order_id(id)?).await?;
    Ok(json(StatusCode::OK, &order))
}

/// The order, if `scope` covers its buyer; another buyer's order answers exactly as a missing
/// one does, so ids cannot be probed.
async fn owned(state: &AppState, scope: &Scope, id: OrderId) -> Result<Order, ApiError> {
    let order = state.engine.order(id).await?;
    if scope.covers(&order.user) {
        Ok(order)
    } else {
        Err(nexussale_core::Error::OrderNotFound(id).into())
    }
}

/// Pays a pending order: its units are sold.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/pay",
    tag = "orders",
    params(("id" = OrderId, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "The order, now paid.", body = Order),
        (status = 400, description = "`invalid_request`: the id is not a UUID.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such order.", body = ErrorBody),
        (status = 409, description = "`conflict`: the order is not pending.", body = ErrorBody),
    )
)]
pub(super) async fn pay(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let order = state.engine.pay(order_id(id)?).await?;
    Ok(json(StatusCode::OK, &order))
}

/// Cancels a pending order: its units go back on sale.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/cancel",
    tag = "orders",
    params(("id" = OrderId, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "The order, now cancelled.", body = Order),
        (status = 400, description = "`invalid_request`: the id is not a UUID.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such order.", body = ErrorBody),
        (status = 409, description = "`conflict`: the order is not pending.", body = ErrorBody),
    )
)]
pub(super) async fn cancel(
    state: &AppState,
    scope: &Scope,
    id: &str,
) -> Result<Response, ApiError> {
    let id = order_id(id)?;
    // Whose it is never changes: checked first, it holds for the cancel too.
    owned(state, scope, id).await?;
    let order = state.engine.cancel(id).await?;
    Ok(json(StatusCode::OK, &order))
}

/// Persisted orders, newest first, a page at a time: filter by buyer, sale or status.
#[utoipa::path(
    get,
    path = "/v1/orders",
    tag = "orders",
    params(
        ("user" = Option<UserId>, Query, description = "Only this buyer's orders."),
        ("sku" = Option<Sku>, Query, description = "Only this sale's orders."),
        ("status" = Option<OrderStatus>, Query, description = "Only orders in this status; together with `sku` or `user` (no index serves a status alone)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size; default 100."),
        ("after" = Option<OrderId>, Query, description = "The `next` cursor of the previous page."),
    ),
    responses(
        (status = 200, description = "One page, newest first.", body = OrderPage),
        (status = 400, description = "`invalid_request`: a filter is malformed, or `status` comes without `sku` or `user`.", body = ErrorBody),
    )
)]
pub(super) async fn list(
    state: &AppState,
    scope: &Scope,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let mut filter = OrderQuery::default();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "user" => filter.user = Some(value.parse()?),
            "sku" => filter.sku = Some(value.parse()?),
            "status" => filter.status = Some(value.parse()?),
            "limit" => filter.limit = Some(super::page_limit(&value)?),
            "after" => filter.after = Some(order_id(&value)?),
            _ => {}
        }
    }
    if let Scope::Buyer(buyer) = scope {
        match &filter.user {
            Some(user) if user != buyer => {
                return Err(forbidden("a buyer may list only its own orders"));
            }
            _ => filter.user = Some(buyer.clone()),
        }
    }
    let page = state.engine.orders(&filter).await?;
    Ok(json(StatusCode::OK, &page))
}
