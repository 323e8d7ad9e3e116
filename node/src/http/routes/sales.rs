//! `/v1/sales` and `/v1/refunds`: checkout and refunds, idempotent by `Idempotency-Key`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use caja_shared::ids::FactId;

use crate::app::Node;
use crate::auth::{Actor, Principal};
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::http::idempotent::idempotent_write;
use crate::sales::view::{FactView, view};
use crate::sales::{self, RefundRequest, SaleRequest};

/// Checks out a sale. Send an `Idempotency-Key` so a retry never creates a second sale.
#[utoipa::path(post, path = "/v1/sales", request_body = SaleRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry key, 1-255 visible ASCII")),
    responses((status = 201, body = FactView), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(node): State<Node>,
    p: Principal,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = bytes?;
    let req: SaleRequest = body::json(&headers, &bytes)?;
    let ident = node.identity().clone();
    let user = p.user_id.clone();
    let actor = Actor::from_request(p, &headers)?;
    idempotent_write(&node, &user, &headers, bytes, "POST /v1/sales", move |ctx| {
        let fact = sales::checkout(ctx, &ident, &actor, &req)?;
        view(&fact).ok_or_else(|| ApiError::invalid("sale", "not a sale"))
    })
    .await
}

/// A sale or refund by id.
#[utoipa::path(get, path = "/v1/sales/{id}", params(("id" = String, Path, description = "fact id (UUID)")),
    responses((status = 200, body = FactView), (status = 404, body = Problem), (status = 400, body = Problem)))]
pub async fn get(State(node): State<Node>, Path(id): Path<String>) -> Result<axum::Json<FactView>, ApiError> {
    let id: FactId = id
        .parse()
        .map_err(|_| ApiError::BadParam(format!("{id:?} is not a sale id (UUID)")))?;
    let fact = node.db().read(move |c| sales::fact_by_id(c, &id)).await?;
    fact.as_ref()
        .and_then(view)
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("sale {id}")))
}

/// Records a refund, with the original sale (`original_sale`) or without receipt.
#[utoipa::path(post, path = "/v1/refunds", request_body = RefundRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry key")),
    responses((status = 201, body = FactView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn refund(
    State(node): State<Node>,
    p: Principal,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = bytes?;
    let req: RefundRequest = body::json(&headers, &bytes)?;
    let ident = node.identity().clone();
    let user = p.user_id.clone();
    let actor = Actor::from_request(p, &headers)?;
    idempotent_write(&node, &user, &headers, bytes, "POST /v1/refunds", move |ctx| {
        let fact = sales::refund(ctx, &ident, &actor, &req)?;
        view(&fact).ok_or_else(|| ApiError::invalid("refund", "not a refund"))
    })
    .await
}
