//! Projections: query tables derived from documents.
//!
//! [`project_fact`] and [`upsert_product`] are the only writers of these tables, used both
//! for local writes and for changes that arrive by sync, so both paths agree.

use caja_shared::docs::{DocId, Product};
use caja_shared::facts::takings_by_tender;
use caja_shared::facts::{Fact, FactBody};
use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;

use super::StoreError;

/// Converts a quantity to integer thousandths for exact sums in SQL (`1.5` -> `1500`).
/// Quantities with more than 3 decimals are refused at the API, so this is exact.
pub fn qty_milli(q: Decimal) -> i64 {
    let m = q * Decimal::from(1000);
    i64::try_from(m.trunc()).unwrap_or(if q.is_sign_negative() { i64::MIN } else { i64::MAX })
}

/// Converts integer thousandths back to a decimal (`1500` -> `1.5`).
pub fn milli_to_decimal(m: i64) -> Decimal {
    Decimal::new(m, 3).normalize()
}

/// Writes one fact's projection rows. A fact already projected is left alone, so applying
/// the same fact twice (local write then sync echo) is harmless.
///
/// `local` says whether this node recorded it; `acked` whether the server has it.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn project_fact(
    conn: &Connection,
    doc: &DocId,
    fact: &Fact,
    local: bool,
    acked: bool,
) -> Result<(), StoreError> {
    let id = fact.id.to_string();
    let (kind, receipt, original, total, tax) = match &fact.body {
        FactBody::Sale(s) => (
            "sale",
            Some(s.receipt_no.clone()),
            None,
            s.total_minor,
            s.tax_minor,
        ),
        FactBody::Refund(r) => (
            "refund",
            Some(r.receipt_no.clone()),
            r.original_sale.map(|o| o.to_string()),
            r.total_minor,
            r.lines.iter().map(|l| l.tax_minor).sum(),
        ),
        FactBody::StockMovement(_) => ("stock_movement", None, None, 0, 0),
        FactBody::Security(_) => ("security", None, None, 0, 0),
        // A card tender's later event: linked to its sale, no money of its own.
        FactBody::Payment(p) => ("payment", None, Some(p.sale.to_string()), 0, 0),
    };
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO facts (fact_id, doc_id, kind, business_date, occurred_at, hlc_wall, hlc_counter,
               receipt_no, original_sale, total_minor, tax_minor, local, acked, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?
        .execute(params![
            id,
            doc.to_string(),
            kind,
            fact.business_date.to_string(),
            fact.occurred_at.to_rfc3339(),
            fact.hlc.wall_ms as i64,
            fact.hlc.counter as i64,
            receipt,
            original,
            total,
            tax,
            local,
            acked,
            fact.encode(),
        ])?;
    if inserted == 0 {
        return Ok(());
    }
    super::audit::record_fact(conn, fact)?;
    let mut tender =
        conn.prepare_cached("INSERT INTO fact_tenders (fact_id, name, amount_minor) VALUES (?1, ?2, ?3)")?;
    let mut stock =
        conn.prepare_cached("INSERT INTO stock_moves (fact_id, sku, qty_milli) VALUES (?1, ?2, ?3)")?;
    match &fact.body {
        FactBody::Sale(s) => {
            // Change comes out of the cash tenders (net of change, under their own report
            // names), so takings by tender add up to the total; the sync server's reports
            // use the same rule.
            for (name, amount) in takings_by_tender(&s.tenders, s.change_minor) {
                tender.execute(params![id, name, amount])?;
            }
            for l in s.lines.iter().filter(|l| l.stock_tracked) {
                stock.execute(params![id, l.sku, -qty_milli(l.quantity)])?;
            }
        }
        FactBody::Refund(r) => {
            for t in &r.tenders {
                tender.execute(params![id, t.report_name(), t.amount_minor])?;
            }
            if r.restock {
                for l in r.lines.iter().filter(|l| l.stock_tracked) {
                    stock.execute(params![id, l.sku, qty_milli(l.quantity)])?;
                }
            }
        }
        FactBody::StockMovement(m) => {
            stock.execute(params![id, m.sku, qty_milli(m.quantity)])?;
        }
        FactBody::Security(_) => {}
        FactBody::Payment(e) => super::payments::apply_event(conn, fact, e)?,
    }
    super::payments::project_tenders(conn, fact)?;
    Ok(())
}

/// Creates or replaces a product's row (and its full-text index entry).
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn upsert_product(conn: &Connection, p: &Product) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO products (sku, name, unit_price, tax_rate, barcode, category, stock_tracked)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (sku) DO UPDATE SET name = excluded.name, unit_price = excluded.unit_price,
           tax_rate = excluded.tax_rate, barcode = excluded.barcode, category = excluded.category,
           stock_tracked = excluded.stock_tracked",
    )?
    .execute(params![
        p.sku,
        p.name,
        p.unit_price.to_string(),
        p.tax_rate.to_string(),
        p.barcode,
        p.category,
        p.stock_tracked
    ])?;
    Ok(())
}

/// Reads a product row.
///
/// # Errors
/// [`StoreError::Sqlite`]; a stored price that does not parse reads as an error too.
pub fn product(conn: &Connection, sku: &str) -> Result<Option<Product>, StoreError> {
    conn.prepare_cached(
        "SELECT sku, name, unit_price, tax_rate, barcode, category, stock_tracked FROM products WHERE sku = ?1",
    )?
    .query_row(params![sku], row_to_product)
    .optional()
    .map_err(StoreError::from)
}

/// Maps a `products` row (columns in table order) to a [`Product`].
///
/// # Errors
/// A conversion error when a stored decimal does not parse.
pub fn row_to_product(r: &rusqlite::Row<'_>) -> rusqlite::Result<Product> {
    let dec = |i: usize| -> rusqlite::Result<Decimal> {
        let s: String = r.get(i)?;
        s.parse::<Decimal>().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    Ok(Product {
        sku: r.get(0)?,
        name: r.get(1)?,
        unit_price: dec(2)?,
        tax_rate: dec(3)?,
        barcode: r.get(4)?,
        category: r.get(5)?,
        stock_tracked: r.get(6)?,
    })
}

/// Marks every fact of a document as acknowledged by the server.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn ack_doc(conn: &Connection, doc: &DocId) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached("UPDATE facts SET acked = 1 WHERE doc_id = ?1 AND acked = 0")?
        .execute(params![doc.to_string()])?)
}
