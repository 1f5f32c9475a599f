//! `/v1/orders`: read, pay, cancel.

use http::StatusCode;
use nexussale_core::{OrderId, OrderQuery};

use crate::body::{Response, json};
use crate::error::ApiError;
use crate::state::AppState;

fn order_id(id: &str) -> Result<OrderId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::invalid("the order id must be a UUID"))
}

pub(super) async fn get(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let order = state.engine.order(order_id(id)?).await?;
    Ok(json(StatusCode::OK, &order))
}

pub(super) async fn pay(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let order = state.engine.pay(order_id(id)?).await?;
    Ok(json(StatusCode::OK, &order))
}

pub(super) async fn cancel(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let order = state.engine.cancel(order_id(id)?).await?;
    Ok(json(StatusCode::OK, &order))
}

/// `GET /v1/orders?user=&sku=&status=&limit=&after=`.
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
