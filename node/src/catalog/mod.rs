//! Catalog at the node: products written locally or replicated from head office,
//! full-text search (SQLite FTS5) and barcode lookup (GS1 check digit).

use caja_shared::barcode::normalize_gtin;
use caja_shared::docs::{self, DocId, Product};
use rusqlite::{Connection, params};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::decimal;
use crate::error::NodeError;
use crate::store::{Ctx, projection};

/// Most products returned by one search.
pub const MAX_SEARCH: usize = 200;

/// A product as written by clients (`PUT /v1/products/{sku}` body, one CSV import row).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Display name, 1-200 characters.
    pub name: String,
    /// Unit price, tax exclusive, major units, up to 6 decimals.
    #[serde(deserialize_with = "decimal::de")]
    #[schema(value_type = String, example = "2.55")]
    pub unit_price: Decimal,
    /// Exclusive tax rate as a fraction (`0.05`); default 0.
    #[serde(default, deserialize_with = "decimal::de_opt")]
    #[schema(value_type = Option<String>, example = "0.05")]
    pub tax_rate: Option<Decimal>,
    /// EAN-13 or UPC-A with a valid check digit.
    #[serde(default)]
    pub barcode: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Whether it has stock on hand; default true.
    #[serde(default)]
    pub stock_tracked: Option<bool>,
}

/// A product in responses.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductView {
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Unit price (decimal string).
    pub unit_price: String,
    /// Tax rate (decimal string).
    pub tax_rate: String,
    /// 13-digit GTIN.
    pub barcode: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Tracks stock.
    pub stock_tracked: bool,
}

impl From<&Product> for ProductView {
    fn from(p: &Product) -> Self {
        Self {
            sku: p.sku.clone(),
            name: p.name.clone(),
            unit_price: p.unit_price.to_string(),
            tax_rate: p.tax_rate.normalize().to_string(),
            barcode: p.barcode.clone(),
            category: p.category.clone(),
            stock_tracked: p.stock_tracked,
        }
    }
}

/// Validates client input into a catalog product by the chain's rules
/// ([`Product::validated`], shared with the sync server).
///
/// # Errors
/// [`NodeError::Invalid`] naming the field.
pub fn validate(sku: &str, input: ProductInput) -> Result<Product, NodeError> {
    Product {
        sku: sku.to_string(),
        name: input.name,
        unit_price: input.unit_price,
        tax_rate: input.tax_rate.unwrap_or(Decimal::ZERO),
        barcode: input.barcode,
        category: input.category,
        stock_tracked: input.stock_tracked.unwrap_or(true),
    }
    .validated()
    .map_err(|e| NodeError::invalid(e.field, e.reason))
}

/// Writes products to the catalog document and the projection in the caller's job.
///
/// # Errors
/// [`NodeError::Invalid`] (field `barcode`) when a barcode would belong to two products
/// (in `products`, or another product already has it and keeps it): a scan must find the
/// one product the code was printed for. [`NodeError::Store`].
pub fn put(ctx: &mut Ctx<'_>, products: &[Product]) -> Result<(), NodeError> {
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
fn check_barcodes(conn: &Connection, products: &[Product]) -> Result<(), NodeError> {
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
            return Err(NodeError::invalid(
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
                return Err(NodeError::invalid(
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
/// [`NodeError::Invalid`] with field `csv` for bytes that are not UTF-8 (with the line),
/// a missing column, or bad rows.
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<Product>, NodeError> {
    if let Err(e) = std::str::from_utf8(bytes) {
        let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
        return Err(NodeError::invalid(
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
        .map_err(|e| NodeError::invalid("csv", e.to_string()))?
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
        return Err(NodeError::invalid(
            "csv",
            format!(
                "unknown column {unknown:?}: the columns are {}",
                COLUMNS.join(", ")
            ),
        ));
    }
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(sku_i), Some(name_i), Some(price_i)) = (col("sku"), col("name"), col("unit_price")) else {
        return Err(NodeError::invalid(
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
        let row = (|| -> Result<Product, NodeError> {
            let parse = |s: Option<&str>, f: &str| -> Result<Option<Decimal>, NodeError> {
                s.map(|t| {
                    caja_shared::money::parse_decimal(t)
                        .map_err(|e| NodeError::invalid(f, format!("{t:?}: {e}")))
                })
                .transpose()
            };
            let input = ProductInput {
                name: get(Some(name_i)).unwrap_or_default().to_string(),
                unit_price: parse(get(Some(price_i)), "unit_price")?
                    .ok_or_else(|| NodeError::invalid("unit_price", "missing"))?,
                tax_rate: parse(get(tax_i), "tax_rate")?,
                barcode: get(bar_i).map(str::to_string),
                category: get(cat_i).map(str::to_string),
                stock_tracked: match get(st_i).map(str::to_ascii_lowercase).as_deref() {
                    None => None,
                    Some("true" | "1" | "yes") => Some(true),
                    Some("false" | "0" | "no") => Some(false),
                    Some(o) => {
                        return Err(NodeError::invalid(
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
        return Err(NodeError::invalid(
            "csv",
            format!("{n} bad row(s), nothing imported: {}", problems.join("; ")),
        ));
    }
    if out.is_empty() {
        return Err(NodeError::invalid("csv", "no rows"));
    }
    Ok(out)
}

/// Full-text search over SKU, name and category; every word must match as a prefix.
/// An empty query lists products by SKU.
///
/// # Errors
/// [`NodeError::Store`].
pub fn search(conn: &Connection, q: &str, limit: usize) -> Result<Vec<Product>, NodeError> {
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
/// [`NodeError::Invalid`] for a code with a bad length or check digit; [`NodeError::NotFound`].
pub fn by_barcode(conn: &Connection, code: &str) -> Result<Product, NodeError> {
    let code = normalize_gtin(code).map_err(|e| NodeError::invalid("barcode", e.to_string()))?;
    let p = conn
        .prepare_cached(
            "SELECT sku, name, unit_price, tax_rate, barcode, category, stock_tracked FROM products WHERE barcode = ?1 LIMIT 1",
        )?
        .query_row(params![code], projection::row_to_product);
    match p {
        Ok(p) => Ok(p),
        Err(rusqlite::Error::QueryReturnedNoRows) => Err(NodeError::NotFound(format!("barcode {code}"))),
        Err(e) => Err(e.into()),
    }
}
