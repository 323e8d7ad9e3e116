//! Store reports from the projections: the daily takings report.

use std::collections::BTreeMap;

use caja_shared::money::{Currency, format_minor};
use chrono::NaiveDate;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::StoreError;

/// `GET /v1/reports/daily` response. Amounts are decimal strings in major units.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DailyReport {
    /// Business day (YYYY-MM-DD).
    pub date: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Number of sales.
    pub sales: u64,
    /// Number of refunds.
    pub refunds: u64,
    /// Sum of sale totals (tax included).
    pub gross: String,
    /// Sum of refund totals (negative or zero).
    pub refunded: String,
    /// `gross + refunded`.
    pub net: String,
    /// Tax in `net`.
    pub tax: String,
    /// Takings by tender name (cash net of change given).
    pub tenders: BTreeMap<String, String>,
    /// Facts of the day not yet acknowledged by the sync server.
    pub pending_sync: u64,
}

/// Builds the daily report of a business day.
///
/// # Errors
/// [`StoreError`].
pub fn daily(conn: &Connection, date: NaiveDate, currency: Currency) -> Result<DailyReport, StoreError> {
    let d = date.to_string();
    let (sales, refunds, gross, refunded, tax, pending): (i64, i64, i64, i64, i64, i64) = conn
        .prepare_cached(
            "SELECT
               COALESCE(SUM(kind = 'sale'), 0), COALESCE(SUM(kind = 'refund'), 0),
               COALESCE(SUM(CASE WHEN kind = 'sale' THEN total_minor END), 0),
               COALESCE(SUM(CASE WHEN kind = 'refund' THEN total_minor END), 0),
               COALESCE(SUM(tax_minor), 0), COALESCE(SUM(acked = 0), 0)
             FROM facts WHERE business_date = ?1",
        )?
        .query_row(params![d], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?;
    let mut tenders = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT t.name, SUM(t.amount_minor) FROM fact_tenders t JOIN facts f ON f.fact_id = t.fact_id
         WHERE f.business_date = ?1 GROUP BY t.name ORDER BY t.name",
    )?;
    for row in stmt.query_map(params![d], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (name, amount) = row?;
        tenders.insert(name, format_minor(amount, currency));
    }
    Ok(DailyReport {
        date: d,
        currency: currency.code().into(),
        sales: sales as u64,
        refunds: refunds as u64,
        gross: format_minor(gross, currency),
        refunded: format_minor(refunded, currency),
        net: format_minor(gross + refunded, currency),
        tax: format_minor(tax, currency),
        tenders,
        pending_sync: pending as u64,
    })
}
