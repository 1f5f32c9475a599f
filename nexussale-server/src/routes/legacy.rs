//! The original service's API, kept for its clients: `POST /seckill/add`, `GET /order/all`
//! (`GET /order/{id}` shares the `/v1/orders/{id}` handler).

use bytes::Bytes;
use http::StatusCode;
use hyper::body::Body;
use nexussale_core::{MAX_PAGE_SIZE, OrderQuery, PurchaseRequest, Sku, UserId};
use serde::Deserialize;

use super::sales::buy;
use crate::body::{Response, json, read_json};
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /seckill/add` body: one unit of sale `goods` for `user`.
#[derive(Debug, Deserialize)]
struct Add {
    user: String,
    goods: String,
    remark: Option<String>,
}

pub(super) async fn add<B>(state: &AppState, body: B) -> Result<Response, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let add: Add = read_json(body).await?;
    let mut request = PurchaseRequest::new(Sku::new(&add.goods)?, UserId::new(&add.user)?);
    request.remark = add.remark;
    buy(state, request).await
}

/// The newest orders, at most 1000, as a JSON array.
pub(super) async fn all(state: &AppState) -> Result<Response, ApiError> {
    let query = OrderQuery {
        limit: Some(MAX_PAGE_SIZE),
        ..OrderQuery::default()
    };
    let page = state.engine.orders(&query).await?;
    Ok(json(StatusCode::OK, &page.orders))
}
