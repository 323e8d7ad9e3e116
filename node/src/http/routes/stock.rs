//! `/v1/stock`: stock on hand and movements.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::Node;
use crate::auth::Principal;
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::http::idempotent::idempotent_write;
use crate::inventory::{self, MovementRequest, StockLevel};

/// A recorded movement.
#[derive(Debug, Serialize, ToSchema)]
pub struct MovementCreated {
    /// Fact id.
    pub id: String,
    /// Stock on hand after the movement.
    pub stock: StockLevel,
}

/// Stock on hand of a SKU (sum of its movements).
#[utoipa::path(get, path = "/v1/stock/{sku}", params(("sku" = String, Path, description = "SKU")),
    responses((status = 200, body = StockLevel), (status = 422, body = Problem)))]
pub async fn get(State(node): State<Node>, Path(sku): Path<String>) -> Result<Json<StockLevel>, ApiError> {
    Ok(Json(node.db().read(move |c| inventory::on_hand(c, &sku)).await?))
}

/// Records a stock movement (receipt, adjustment, count, write-off, transfer). Send an
/// `Idempotency-Key` so a retry never records the movement twice.
#[utoipa::path(post, path = "/v1/stock/movements", request_body = MovementRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry key, 1-255 visible ASCII")),
    responses((status = 201, body = MovementCreated), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(node): State<Node>,
    p: Principal,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = bytes?;
    let req: MovementRequest = body::json(&headers, &bytes)?;
    let ident = node.identity().clone();
    let user = p.user_id.clone();
    idempotent_write(
        &node,
        &user,
        &headers,
        bytes,
        "POST /v1/stock/movements",
        move |ctx| {
            let fact = inventory::record_movement(ctx, &ident, &p, &req)?;
            let stock = inventory::on_hand(ctx.conn, &req.sku)?;
            Ok(MovementCreated {
                id: fact.id.to_string(),
                stock,
            })
        },
    )
    .await
}
