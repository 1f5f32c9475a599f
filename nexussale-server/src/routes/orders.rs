//! `/v1/orders`: read, pay, cancel.

use http::StatusCode;
use nexussale_core::{Order, OrderId, OrderPage, OrderQuery, OrderStatus, Sku, UserId};

use crate::body::{Response, json};
use crate::error::{ApiError, ErrorBody};
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
pub(super) async fn get(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let order = state.engine.order(order_id(id)?).await?;
    Ok(json(StatusCode::OK, &order))
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
pub(super) async fn cancel(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let order = state.engine.cancel(order_id(id)?).await?;
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
        ("status" = Option<OrderStatus>, Query, description = "Only orders in this status."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size; default 100."),
        ("after" = Option<OrderId>, Query, description = "The `next` cursor of the previous page."),
    ),
    responses(
        (status = 200, description = "One page, newest first.", body = OrderPage),
        (status = 400, description = "`invalid_request`: a filter is malformed.", body = ErrorBody),
    )
)]
pub(super) async fn list(state: &AppState, query: Option<&str>) -> Result<Response, ApiError> {
    let mut filter = OrderQuery::default();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "user" => filter.user = Some(value.parse()?),
            "sku" => filter.sku = Some(value.parse()?),
            "status" => filter.status = Some(value.parse()?),
            "limit" => {
                filter.limit = Some(value.parse().map_err(|_| {
                    ApiError::invalid("limit must be a whole number from 1 to 1000")
                })?);
            }
            "after" => filter.after = Some(order_id(&value)?),
            _ => {}
        }
    }
    let page = state.engine.orders(&filter).await?;
    Ok(json(StatusCode::OK, &page))
}
