//! The "Online Retail" file as a replay plan: one store per country, invoices as sales,
//! `C` invoices as refunds without receipt, zero-priced lines as stock movements.
//!
//! Layout (`shared/data/README.md`): `InvoiceNo,StockCode,Description,Quantity,InvoiceDate,
//! UnitPrice,CustomerID,Country`, `InvoiceDate` like `2010-12-01 08:26:00` (taken as UTC),
//! `UnitPrice` in pounds sterling with up to 3 decimals, `Quantity` a whole number.
//!
//! Rules (from the replay issue; each is tested below):
//! - Store: [`StoreCode::slug`] of `Country`, display name `Country`.
//! - Rows are grouped by `InvoiceNo`. An invoice happens at the `InvoiceDate` of its first
//!   (good) row in file order, at the store of that row; a later row of the invoice with
//!   another `Country` is a bad row. Invoices are ordered by (time, line of the first row),
//!   stably; within an invoice the sale or refund comes first, then its stock movements in
//!   file order.
//! - A numeric `InvoiceNo` is one [`Op::Sale`] of its lines with `UnitPrice != 0`, at the
//!   file's price (a price override when it differs from the catalog), paid by card
//!   (online orders); an invoice without such a line is no sale.
//! - `C…` is a refund without receipt: lines with `UnitPrice != 0` are returned with
//!   quantity `-Quantity` (positive).
//! - `A…` is an accounting adjustment: skipped and counted per invoice in
//!   [`ReplayPlan::skipped_adjustments`]; negative prices are allowed there only.
//! - A line with `UnitPrice` 0 carries no money and becomes an [`Op::Stock`] at the
//!   invoice's store and time, referenced by the invoice number: in a numeric invoice a
//!   negative `Quantity` is a write-off of that quantity (note: the description, if any)
//!   and a positive one is goods sent at no charge, `-Quantity`, also a write-off (note
//!   `no charge: <description>`, or `no charge` when blank); in a `C` invoice it is
//!   `-Quantity` returned to stock, reason adjustment (note: the description, if any).
//! - Bad rows: `Quantity` 0 or not whole, a negative `UnitPrice` outside `A` invoices, a
//!   priced line whose sign contradicts its invoice (a sale line with negative quantity,
//!   a refund line with positive quantity, which would give a non-positive line quantity),
//!   an `InvoiceNo` that is neither digits nor `C…`/`A…`, a SKU that is not 1-64
//!   characters without control characters, unparsable numbers or dates, and every
//!   layout problem of [`super::plan`].
//! - Catalog: one product per `StockCode` (trimmed) of a good row, `A` invoices included;
//!   name = the latest non-blank description in trading order (else the code), price =
//!   the latest `UnitPrice > 0` in trading order outside `A` invoices (else 0), tax 0,
//!   not stock-tracked for the non-product codes [`NON_PRODUCT_CODES`].

use std::collections::HashMap;
use std::io::Read;

use caja_shared::docs::Product;
use caja_shared::facts::{MovementReason, TenderKind};
use caja_shared::ids::StoreCode;
use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;

use super::plan::{
    BadRow, Column, Format, Op, OpLine, OpTender, ReplayError, ReplayPlan, add_store, parse_decimal,
    parse_whole, read_rows, store_code,
};

/// Stock codes that are not products (postage, discount, manual, fees, samples, …):
/// their catalog entries are not stock-tracked. Matched exactly and case-sensitively
/// (source: `shared/data/README.md` and the replay issue).
pub const NON_PRODUCT_CODES: &[&str] = &[
    "POST",
    "D",
    "M",
    "BANK CHARGES",
    "AMAZONFEE",
    "DOT",
    "CRUK",
    "S",
    "PADS",
    "B",
    "C2",
];

/// The format of `InvoiceDate` (`2010-12-01 08:26:00`), taken as UTC.
pub const DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The columns read, in this order (`CustomerID` is not needed).
const COLUMNS: [Column; 7] = [
    Column::required("InvoiceNo"),
    Column::required("StockCode"),
    Column::may_be_blank("Description"),
    Column::required("Quantity"),
    Column::required("InvoiceDate"),
    Column::required("UnitPrice"),
    Column::required("Country"),
];

/// What an invoice number says the invoice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// All digits: a sale.
    Sale,
    /// `C…`: a cancellation, replayed as a refund without receipt.
    Refund,
    /// `A…`: an accounting adjustment, skipped.
    Adjustment,
}

impl Kind {
    fn of(invoice: &str) -> Result<Kind, String> {
        let rest_ok = |rest: &str| !rest.is_empty();
        if invoice.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Kind::Sale)
        } else if invoice.strip_prefix('C').is_some_and(rest_ok) {
            Ok(Kind::Refund)
        } else if invoice.strip_prefix('A').is_some_and(rest_ok) {
            Ok(Kind::Adjustment)
        } else {
            Err(format!(
                "InvoiceNo {invoice:?} is neither a number nor starts with C (cancellation) or A (adjustment)"
            ))
        }
    }
}

/// One good row.
#[derive(Debug)]
struct Row {
    sku: String,
    description: String,
    quantity: Decimal,
    unit_price: Decimal,
}

/// The good rows of one invoice, in file order.
#[derive(Debug)]
struct Invoice {
    number: String,
    kind: Kind,
    first_line: u64,
    at: DateTime<Utc>,
    store: StoreCode,
    country: String,
    rows: Vec<Row>,
}

/// Parses the decompressed online-retail file into a plan (see the module docs for the
/// rules).
///
/// # Errors
/// [`ReplayError::Io`] when the header cannot be read, [`ReplayError::MissingColumns`]
/// when it lacks one of `InvoiceNo, StockCode, Description, Quantity, InvoiceDate,
/// UnitPrice, Country`.
pub fn parse<R: Read>(reader: R) -> Result<ReplayPlan, ReplayError> {
    let mut bad_rows: Vec<BadRow> = Vec::new();
    let mut invoices: Vec<Invoice> = Vec::new();
    let mut by_number: HashMap<String, usize> = HashMap::new();
    let rows_read = read_rows(reader, &COLUMNS, &mut bad_rows, |line, f| {
        let [number, sku, description, quantity, date, price, country] = f else {
            return Err("internal error: wrong number of columns".to_string());
        };
        let kind = Kind::of(number)?;
        check_sku(sku)?;
        let quantity = parse_whole("Quantity", quantity)?;
        if quantity.is_zero() {
            return Err("Quantity is 0".to_string());
        }
        let at = NaiveDateTime::parse_from_str(date, DATE_FORMAT)
            .map_err(|e| format!("InvoiceDate {date:?} is not a date like 2010-12-01 08:26:00: {e}"))?
            .and_utc();
        let unit_price = parse_decimal("UnitPrice", price)?;
        if unit_price.is_sign_negative() && !unit_price.is_zero() && kind != Kind::Adjustment {
            return Err(format!(
                "UnitPrice {price} is negative outside an accounting adjustment (A invoice)"
            ));
        }
        if !unit_price.is_zero() {
            if kind == Kind::Sale && quantity.is_sign_negative() {
                return Err(format!(
                    "priced line with negative Quantity {quantity} in sale invoice"
                ));
            }
            if kind == Kind::Refund && quantity.is_sign_positive() {
                return Err(format!(
                    "priced line with positive Quantity {quantity} in cancellation invoice"
                ));
            }
        }
        let store = store_code("Country", country)?;
        let row = Row {
            sku: sku.to_string(),
            description: description.to_string(),
            quantity,
            unit_price,
        };
        match by_number.get(*number).and_then(|&i| invoices.get_mut(i)) {
            Some(invoice) => {
                if invoice.store != store {
                    return Err(format!(
                        "Country {country:?} differs from {:?} on line {}, the invoice's first line",
                        invoice.country, invoice.first_line
                    ));
                }
                invoice.rows.push(row);
            }
            None => {
                by_number.insert(number.to_string(), invoices.len());
                invoices.push(Invoice {
                    number: number.to_string(),
                    kind,
                    first_line: line,
                    at,
                    store,
                    country: country.to_string(),
                    rows: vec![row],
                });
            }
        }
        Ok(())
    })?;
    drop(by_number);

    // Trading order: by the invoice's time, then by its first line; stable.
    invoices.sort_by_key(|i| (i.at, i.first_line));

    let mut plan = ReplayPlan {
        format: Format::OnlineRetail,
        currency: Format::OnlineRetail.currency(),
        catalog: Vec::new(),
        stores: Vec::new(),
        ops: Vec::new(),
        skipped_adjustments: 0,
        bad_rows,
        rows_read,
    };
    let mut catalog = Catalog::default();
    for invoice in invoices {
        add_store(&mut plan.stores, &invoice.store, &invoice.country);
        for row in &invoice.rows {
            catalog.see(row, invoice.kind);
        }
        replay_invoice(invoice, &mut plan);
    }
    plan.catalog = catalog.into_products();
    Ok(plan)
}

/// Appends the operations of one invoice (in trading order) to the plan.
fn replay_invoice(invoice: Invoice, plan: &mut ReplayPlan) {
    if invoice.kind == Kind::Adjustment {
        plan.skipped_adjustments += 1;
        return;
    }
    let mut lines = Vec::new();
    let mut stock = Vec::new();
    for (line, row) in invoice.rows.into_iter().enumerate() {
        if !row.unit_price.is_zero() {
            let quantity = match invoice.kind {
                Kind::Refund => -row.quantity,
                _ => row.quantity,
            };
            lines.push(OpLine {
                sku: row.sku,
                quantity,
                unit_price: row.unit_price,
            });
            continue;
        }
        let described = (!row.description.is_empty()).then(|| row.description.clone());
        let (quantity, reason, note) = match invoice.kind {
            Kind::Refund => (-row.quantity, MovementReason::Adjustment, described),
            _ if row.quantity.is_sign_negative() => (row.quantity, MovementReason::WriteOff, described),
            _ => {
                let note = match described {
                    Some(d) => format!("no charge: {d}"),
                    None => "no charge".to_string(),
                };
                (-row.quantity, MovementReason::WriteOff, Some(note))
            }
        };
        stock.push(Op::Stock {
            store: invoice.store.clone(),
            occurred_at: invoice.at,
            reference: invoice.number.clone(),
            line,
            sku: row.sku,
            quantity,
            reason,
            note,
        });
    }
    if !lines.is_empty() {
        plan.ops.push(match invoice.kind {
            Kind::Refund => Op::Refund {
                store: invoice.store.clone(),
                occurred_at: invoice.at,
                reference: invoice.number.clone(),
                lines,
            },
            _ => Op::Sale {
                store: invoice.store.clone(),
                occurred_at: invoice.at,
                reference: invoice.number.clone(),
                lines,
                tender: OpTender {
                    kind: TenderKind::Card,
                    label: None,
                },
            },
        });
    }
    plan.ops.extend(stock);
}

/// Checks a (trimmed) SKU: 1-64 characters, no control characters.
fn check_sku(sku: &str) -> Result<(), String> {
    let chars = sku.chars().count();
    if chars == 0 || chars > 64 || sku.chars().any(char::is_control) {
        return Err(format!(
            "StockCode {sku:?} is not a SKU: 1-64 characters without control characters"
        ));
    }
    Ok(())
}

/// The catalog as it builds up in trading order.
#[derive(Debug, Default)]
struct Catalog {
    /// SKU -> (latest non-blank description, latest positive price outside A invoices).
    products: HashMap<String, (Option<String>, Option<Decimal>)>,
}

impl Catalog {
    fn see(&mut self, row: &Row, kind: Kind) {
        let entry = self.products.entry(row.sku.clone()).or_default();
        if !row.description.is_empty() {
            entry.0 = Some(row.description.clone());
        }
        if kind != Kind::Adjustment && row.unit_price > Decimal::ZERO {
            entry.1 = Some(row.unit_price);
        }
    }

    fn into_products(self) -> Vec<Product> {
        let mut products: Vec<Product> = self
            .products
            .into_iter()
            .map(|(sku, (name, price))| Product {
                name: name.unwrap_or_else(|| sku.clone()),
                unit_price: price.unwrap_or(Decimal::ZERO),
                tax_rate: Decimal::ZERO,
                barcode: None,
                category: None,
                stock_tracked: !NON_PRODUCT_CODES.contains(&sku.as_str()),
                sku,
            })
            .collect();
        products.sort_by(|a, b| a.sku.cmp(&b.sku));
        products
    }
}

#[cfg(test)]
mod tests;
