//! Inventory: stock movements and stock on hand.
//!
//! Stock on hand is never a stored counter: it is the sum of movement rows (receipts,
//! adjustments, write-offs, and the lines of sales and refunds), so concurrent offline
//! sales and a stock count never overwrite each other. It may go negative (an oversell),
//! which is a reconciliation case, not an error.

use caja_shared::facts::{Fact, FactBody, MovementReason, StockMovement};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::decimal::{self, check_quantity};
use crate::identity::Identity;
use crate::store::StoreError;
use crate::store::{Ctx, facts as ledger, projection};

/// Why a stock operation was refused. The HTTP layer maps each variant to a problem.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A field of the request is invalid (422 `invalid-input`).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, e.g. `lines[0].quantity`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The SKU is not in the catalog (422 `unknown-sku`).
    #[error("unknown SKU {0:?}: it is not in this store's catalog")]
    UnknownSku(String),
    /// Storage failed (500; boxed: storage errors are large and rare).
    #[error(transparent)]
    Store(Box<StoreError>),
}

impl InventoryError {
    /// Shorthand for [`InventoryError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        InventoryError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for InventoryError {
    fn from(e: StoreError) -> Self {
        InventoryError::Store(Box::new(e))
    }
}

impl From<rusqlite::Error> for InventoryError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e).into()
    }
}

impl From<caja_shared::docs::DocError> for InventoryError {
    fn from(e: caja_shared::docs::DocError) -> Self {
        StoreError::Schema(e).into()
    }
}

/// `POST /v1/stock/movements` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MovementRequest {
    /// The product.
    pub sku: String,
    /// Signed quantity: positive adds stock, negative removes it; at most 3 decimals.
    #[serde(deserialize_with = "decimal::de")]
    #[schema(value_type = String, example = "24")]
    pub quantity: Decimal,
    /// `receipt`, `adjustment`, `count`, `write_off`, `transfer_out` or `transfer_in`.
    #[schema(value_type = String, example = "receipt")]
    pub reason: MovementReason,
    /// Free text (delivery note, "damaged").
    #[serde(default)]
    pub note: Option<String>,
    /// When it happened; default now.
    #[serde(default, deserialize_with = "crate::timestamp::de_opt")]
    pub occurred_at: Option<DateTime<Utc>>,
}

/// Stock on hand of one SKU at this store.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StockLevel {
    /// The SKU.
    pub sku: String,
    /// Sum of all movements (decimal string; may be negative).
    pub on_hand: String,
    /// Number of movements summed.
    pub movements: u64,
    /// Whether the product tracks stock at all.
    pub stock_tracked: bool,
}

/// Records a stock movement in the caller's writer job.
///
/// # Errors
/// [`InventoryError::Invalid`] for a zero or too precise quantity or a long note,
/// [`InventoryError::UnknownSku`].
pub fn record_movement(
    ctx: &mut Ctx<'_>,
    ident: &Identity,
    by: &Principal,
    req: &MovementRequest,
) -> Result<Fact, InventoryError> {
    check_quantity(req.quantity, true).map_err(|r| InventoryError::invalid("quantity", r))?;
    let direction = match req.reason {
        MovementReason::Receipt | MovementReason::TransferIn => Some(true),
        MovementReason::WriteOff | MovementReason::TransferOut => Some(false),
        MovementReason::Adjustment | MovementReason::Count => None,
    };
    if let Some(positive) = direction
        && positive == req.quantity.is_sign_negative()
    {
        return Err(InventoryError::invalid(
            "quantity",
            format!(
                "a {:?} movement must be {}, got {}",
                req.reason,
                if positive {
                    "positive (stock comes in)"
                } else {
                    "negative (stock goes out)"
                },
                req.quantity
            ),
        ));
    }
    let occurred_at =
        crate::sales::occurred_at(req.occurred_at).map_err(|r| InventoryError::invalid("occurred_at", r))?;
    if req.note.as_ref().is_some_and(|n| n.len() > 500) {
        return Err(InventoryError::invalid("note", "at most 500 bytes"));
    }
    let p = projection::product(ctx.conn, &req.sku)?
        .ok_or_else(|| InventoryError::UnknownSku(req.sku.clone()))?;
    let terminal = by.terminal.clone().unwrap_or_else(|| ident.terminal.clone());
    let body = FactBody::StockMovement(StockMovement {
        sku: p.sku,
        quantity: req.quantity,
        reason: req.reason,
        note: req.note.clone(),
    });
    let fact = ledger::envelope(ctx, ident, terminal, occurred_at, &by.author(), body);
    ledger::record(ctx, &fact)?;
    Ok(fact)
}

/// Stock on hand of a SKU.
///
/// # Errors
/// [`InventoryError::UnknownSku`], [`InventoryError::Store`].
pub fn on_hand(conn: &Connection, sku: &str) -> Result<StockLevel, InventoryError> {
    let p = projection::product(conn, sku)?.ok_or_else(|| InventoryError::UnknownSku(sku.to_string()))?;
    let (sum, n): (i64, i64) = conn
        .prepare_cached("SELECT COALESCE(SUM(qty_milli), 0), COUNT(*) FROM stock_moves WHERE sku = ?1")?
        .query_row(params![sku], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(StockLevel {
        sku: p.sku,
        on_hand: projection::milli_to_decimal(sum).to_string(),
        movements: n as u64,
        stock_tracked: p.stock_tracked,
    })
}
