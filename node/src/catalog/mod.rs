//! Catalog at the node: products written locally or replicated from head office,
//! full-text search (SQLite FTS5) and barcode lookup (GS1 check digit).

use caja_shared::barcode::normalize_gtin;
use caja_shared::docs::{self, DocId, Product, ProductInput};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::StoreError;
use crate::store::{Ctx, projection};

/// Why a catalog operation failed. The HTTP layer maps each variant to a problem.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A field of the request is invalid (422 `invalid-input`).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, e.g. `lines[0].quantity`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No such resource (404).
    #[error("{0} not found")]
    NotFound(String),
    /// Storage failed (500; boxed: storage errors are large and rare).
    #[error(transparent)]
    Store(Box<StoreError>),
}

impl CatalogError {
    /// Shorthand for [`CatalogError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CatalogError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for CatalogError {
    fn from(e: StoreError) -> Self {
        CatalogError::Store(Box::new(e))
    }
}

impl From<rusqlite::Error> for CatalogError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e).into()
    }
}

impl From<caja_shared::docs::DocError> for CatalogError {
    fn from(e: caja_shared::docs::DocError) -> Self {
        StoreError::Schema(e).into()
    }
}

/// Most products returned by one search.
pub const MAX_SEARCH: usize = 200;

/// Validates client input into a catalog product by the chain's rules
/// ([`ProductInput::validated`], shared with head office).
///
/// # Errors
/// [`CatalogError::Invalid`] naming the field.
pub fn validate(sku: &str, input: ProductInput) -> Result<Product, CatalogError> {
    input
        .validated(sku)
        .map_err(|e| CatalogError::invalid(e.field, e.reason))
}

/// Writes products to the catalog document and the projection in the caller's job.
///
/// # Errors
/// [`CatalogError::Invalid`] (field `barcode`) when a barcode would belong to two products
/// (in `products`, or another product already has it and keeps it): a scan must find the
/// one product the code was printed for. [`CatalogError::Store`].
pub fn put(ctx: &mut Ctx<'_>, products: &[Product]) -> Result<(), CatalogError> {
    check_barcodes(ctx.conn, products)?;
    let am = ctx.doc(&DocId::Catalog)?;
    let before = am.get_heads();
    docs::put_products(am, products)?;
    ctx.persist(&DocId::Catalog, &before)?;
    for p in products {
        projection::upsert_product(ctx.conn, p)?;
    }
    Ok(())
}

/// Refuses a write that would give one barcode to two products.
fn check_barcodes(conn: &Connection, products: &[Product]) -> Result<(), CatalogError> {
    use std::collections::HashMap;
    let written: HashMap<&str, Option<&str>> = products
        .iter()
        .map(|p| (p.sku.as_str(), p.barcode.as_deref()))
        .collect();
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for p in products {
        let Some(code) = p.barcode.as_deref() else {
            continue;
        };
        if let Some(other) = seen.insert(code, &p.sku)
            && other != p.sku
        {
            return Err(CatalogError::invalid(
                "barcode",
                format!("{code} is given to both {other} and {}", p.sku),
            ));
        }
        let mut stmt = conn
            .prepare_cached("SELECT sku FROM products WHERE barcode = ?1 AND sku <> ?2")
            .map_err(crate::store::StoreError::from)?;
        let owners = stmt
            .query_map(params![code, p.sku], |r| r.get::<_, String>(0))
            .map_err(crate::store::StoreError::from)?;
        for owner in owners {
            let owner = owner.map_err(crate::store::StoreError::from)?;
            // Unless this same write moves the code off that product.
            if written.get(owner.as_str()).is_none_or(|b| *b == Some(code)) {
                return Err(CatalogError::invalid(
                    "barcode",
                    format!("{code} is already the barcode of {owner}"),
                ));
            }
        }
    }
    Ok(())
}

/// Result of a CSV import.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    /// Products written.
    pub written: usize,
}

/// Parses a CSV catalog (header `sku,name,unit_price[,tax_rate,barcode,category,stock_tracked]`).
/// All or nothing: any bad row refuses the whole file, listing up to 20 problems with
/// their line numbers.
///
/// # Errors
/// [`CatalogError::Invalid`] with field `csv` for bytes that are not UTF-8 (with the line),
/// a missing column, or bad rows.
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<Product>, CatalogError> {
    if let Err(e) = std::str::from_utf8(bytes) {
        let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
        return Err(CatalogError::invalid(
            "csv",
            format!(
                "not UTF-8: invalid byte at line {line}, byte offset {}",
                e.valid_up_to()
            ),
        ));
    }
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = rdr
        .headers()
        .map_err(|e| CatalogError::invalid("csv", e.to_string()))?
        .clone();
    const COLUMNS: [&str; 7] = [
        "sku",
        "name",
        "unit_price",
        "tax_rate",
        "barcode",
        "category",
        "stock_tracked",
    ];
    // A mistyped column (`vat` for `tax_rate`) must not import with its values dropped.
    if let Some(unknown) = headers
        .iter()
        .find(|h| !COLUMNS.iter().any(|c| h.eq_ignore_ascii_case(c)))
    {
        return Err(CatalogError::invalid(
            "csv",
            format!(
                "unknown column {unknown:?}: the columns are {}",
                COLUMNS.join(", ")
            ),
        ));
    }
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(sku_i), Some(name_i), Some(price_i)) = (col("sku"), col("name"), col("unit_price")) else {
        return Err(CatalogError::invalid(
            "csv",
            "header must have the columns sku, name, unit_price",
        ));
    };
    let (tax_i, bar_i, cat_i, st_i) = (
        col("tax_rate"),
        col("barcode"),
        col("category"),
        col("stock_tracked"),
    );
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut lines_of: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.len() > headers.len() {
            problems.push(format!(
                "line {line}: {} fields, the header has {}",
                rec.len(),
                headers.len()
            ));
            continue;
        }
        let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).filter(|s| !s.is_empty());
        let row = (|| -> Result<Product, CatalogError> {
            let input = ProductInput {
                name: get(Some(name_i)).unwrap_or_default().to_string(),
                unit_price: get(Some(price_i))
                    .ok_or_else(|| CatalogError::invalid("unit_price", "missing"))?
                    .to_string(),
                tax_rate: get(tax_i).map(str::to_string),
                barcode: get(bar_i).map(str::to_string),
                category: get(cat_i).map(str::to_string),
                stock_tracked: match get(st_i).map(str::to_ascii_lowercase).as_deref() {
                    None => None,
                    Some("true" | "1" | "yes") => Some(true),
                    Some("false" | "0" | "no") => Some(false),
                    Some(o) => {
                        return Err(CatalogError::invalid(
                            "stock_tracked",
                            format!("{o:?} is not true/false"),
                        ));
                    }
                },
            };
            validate(get(Some(sku_i)).unwrap_or_default(), input)
        })();
        match row {
            Ok(p) => match lines_of.insert(p.sku.clone(), line) {
                Some(first) => {
                    problems.push(format!("line {line}: SKU {} is already on line {first}", p.sku))
                }
                None => out.push(p),
            },
            Err(e) => problems.push(format!("line {line}: {e}")),
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(20);
        return Err(CatalogError::invalid(
            "csv",
            format!("{n} bad row(s), nothing imported: {}", problems.join("; ")),
        ));
    }
    if out.is_empty() {
        return Err(CatalogError::invalid("csv", "no rows"));
    }
    Ok(out)
}

/// Full-text search over SKU, name and category; every word must match as a prefix.
/// An empty query lists products by SKU.
///
/// # Errors
/// [`CatalogError::Store`].
pub fn search(conn: &Connection, q: &str, limit: usize) -> Result<Vec<Product>, CatalogError> {
    let limit = limit.clamp(1, MAX_SEARCH) as i64;
    // Words are quoted so FTS5 operators in user input are plain text.
    let terms: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\"*"))
        .collect();
    let mut out = Vec::new();
    if terms.is_empty() {
        let mut stmt = conn.prepare_cached(
            "SELECT sku, name, unit_price, tax_rate, barcode, category, stock_tracked FROM products ORDER BY sku LIMIT ?1",
        )?;
        for p in stmt.query_map(params![limit], projection::row_to_product)? {
            out.push(p?);
        }
    } else {
        let mut stmt = conn.prepare_cached(
            "SELECT p.sku, p.name, p.unit_price, p.tax_rate, p.barcode, p.category, p.stock_tracked
             FROM products_fts f JOIN products p ON p.rowid = f.rowid
             WHERE products_fts MATCH ?1 ORDER BY rank LIMIT ?2",
        )?;
        for p in stmt.query_map(params![terms.join(" AND "), limit], projection::row_to_product)? {
            out.push(p?);
        }
    }
    Ok(out)
}

/// Looks a product up by EAN-13 / UPC-A barcode.
///
/// # Errors
/// [`CatalogError::Invalid`] for a code with a bad length or check digit; [`CatalogError::NotFound`].
pub fn by_barcode(conn: &Connection, code: &str) -> Result<Product, CatalogError> {
    let code = normalize_gtin(code).map_err(|e| CatalogError::invalid("barcode", e.to_string()))?;
    let p = conn
        .prepare_cached(
            "SELECT sku, name, unit_price, tax_rate, barcode, category, stock_tracked FROM products WHERE barcode = ?1 LIMIT 1",
        )?
        .query_row(params![code], projection::row_to_product);
    match p {
        Ok(p) => Ok(p),
        Err(rusqlite::Error::QueryReturnedNoRows) => Err(CatalogError::NotFound(format!("barcode {code}"))),
        Err(e) => Err(e.into()),
    }
}
