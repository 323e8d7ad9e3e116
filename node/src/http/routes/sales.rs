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
use crate::sales::view::{FactView, view, with_card_states};
use crate::sales::{self, RefundRequest, SaleRequest};
use crate::store::payments;

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
    // Tokenized cards go to the provider first, on this task (never on the writer), unless
    // the link to head office is switched off; a retry with the same Idempotency-Key
    // derives the same tender ids, so the provider charges once.
    let link = node.link();
    let provider = node
        .payment_provider()
        .filter(|_| !link.configured() || link.enabled())
        .filter(|_| req.tenders.iter().any(|t| t.card_token.is_some()))
        .cloned();
    let online = match &provider {
        Some(p) => {
            let seed = crate::http::body::idempotency_key(&headers)?.map(|k| format!("{user}/{k}"));
            sales::online::charge(p, &req, ident.currency, seed.as_deref()).await?
        }
        None => Vec::new(),
    };
    let taken = online.clone();
    let res = idempotent_write(&node, &user, &headers, bytes, "POST /v1/sales", move |ctx| {
        let fact = sales::checkout_with(ctx, &ident, &actor, &req, &online)?;
        view(&fact).ok_or_else(|| ApiError::invalid("sale", "not a sale"))
    })
    .await;
    if res.is_err()
        && let Some(p) = &provider
    {
        sales::online::release(p, &taken).await;
    }
    res
}

/// A sale or refund by id.
#[utoipa::path(get, path = "/v1/sales/{id}", params(("id" = String, Path, description = "fact id (UUID)")),
    responses((status = 200, body = FactView), (status = 404, body = Problem), (status = 400, body = Problem)))]
pub async fn get(State(node): State<Node>, Path(id): Path<String>) -> Result<axum::Json<FactView>, ApiError> {
    let id: FactId = id
        .parse()
        .map_err(|_| ApiError::BadParam(format!("{id:?} is not a sale id (UUID)")))?;
    let (fact, cards) = node
        .db()
        .read(move |c| -> Result<_, sales::SaleError> {
            Ok((
                sales::fact_by_id(c, &id)?,
                payments::rows_of_sale(c, &id.to_string())?,
            ))
        })
        .await?;
    let mut v = fact
        .as_ref()
        .and_then(view)
        .ok_or_else(|| ApiError::NotFound(format!("sale {id}")))?;
    with_card_states(&mut v, &cards);
    Ok(axum::Json(v))
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
