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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::replay::plan::{limit_days, parse_plan};
    use std::io::BufRead;
    use std::str::FromStr;

    const HEADER: &str =
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n";

    fn plan(rows: &str) -> ReplayPlan {
        parse_plan(format!("{HEADER}{rows}").as_bytes(), Format::OnlineRetail).unwrap()
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn product<'a>(p: &'a ReplayPlan, sku: &str) -> &'a Product {
        p.catalog.iter().find(|x| x.sku == sku).unwrap()
    }

    #[test]
    fn numeric_invoice_is_one_card_sale_of_its_priced_lines() {
        let p = plan(
            "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:27:00,3.39,17850.0,United Kingdom
536365,POST,POSTAGE,1,2010-12-01 08:26:00,18.0,17850.0,United Kingdom
",
        );
        assert!(p.bad_rows.is_empty(), "{:?}", p.bad_rows);
        assert_eq!(p.rows_read, 3);
        assert_eq!(p.format, Format::OnlineRetail);
        assert_eq!(p.currency.code(), "GBP");
        assert_eq!(
            p.stores,
            [(
                StoreCode::from_str("united-kingdom").unwrap(),
                "United Kingdom".into()
            )]
        );
        assert_eq!(p.ops.len(), 1);
        let Op::Sale {
            store,
            occurred_at,
            reference,
            lines,
            tender,
        } = &p.ops[0]
        else {
            panic!("{:?}", p.ops[0])
        };
        assert_eq!(store.as_str(), "united-kingdom");
        // The invoice's time is its first row's.
        assert_eq!(occurred_at.to_rfc3339(), "2010-12-01T08:26:00+00:00");
        assert_eq!(reference, "536365");
        assert_eq!(
            lines,
            &[
                OpLine {
                    sku: "85123A".into(),
                    quantity: d("6"),
                    unit_price: d("2.55")
                },
                OpLine {
                    sku: "71053".into(),
                    quantity: d("6"),
                    unit_price: d("3.39")
                },
                OpLine {
                    sku: "POST".into(),
                    quantity: d("1"),
                    unit_price: d("18.0")
                },
            ]
        );
        assert_eq!(
            tender,
            &OpTender {
                kind: TenderKind::Card,
                label: None
            }
        );
        assert!(!product(&p, "POST").stock_tracked);
        assert!(product(&p, "85123A").stock_tracked);
    }

    #[test]
    fn cancellations_are_refunds_without_receipt() {
        let p = plan(
            "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom
C536383,35004C,SET OF 3 COLOURED  FLYING DUCKS,-2,2010-12-01 09:49:00,4.65,15311.0,United Kingdom
C536383,22139,RETROSPOT TEA SET,-3,2010-12-01 09:49:00,0,15311.0,United Kingdom
",
        );
        assert!(p.bad_rows.is_empty(), "{:?}", p.bad_rows);
        assert_eq!(p.ops.len(), 3);
        let Op::Refund { reference, lines, .. } = &p.ops[0] else {
            panic!()
        };
        assert_eq!(reference, "C536379");
        assert_eq!(
            lines,
            &[OpLine {
                sku: "D".into(),
                quantity: d("1"),
                unit_price: d("27.5")
            }]
        );
        let Op::Refund { lines, .. } = &p.ops[1] else {
            panic!()
        };
        assert_eq!(
            lines,
            &[OpLine {
                sku: "35004C".into(),
                quantity: d("2"),
                unit_price: d("4.65")
            }]
        );
        // A zero-priced line of a cancellation comes back to stock.
        let Op::Stock {
            sku,
            quantity,
            reason,
            note,
            reference,
            ..
        } = &p.ops[2]
        else {
            panic!()
        };
        assert_eq!(
            (sku.as_str(), *quantity, *reason),
            ("22139", d("3"), MovementReason::Adjustment)
        );
        assert_eq!(note.as_deref(), Some("RETROSPOT TEA SET"));
        assert_eq!(reference, "C536383");
        assert!(!product(&p, "D").stock_tracked);
    }

    #[test]
    fn adjustments_are_skipped_and_counted_per_invoice() {
        let p = plan(
            "A563185,B,Adjust bad debt,1,2011-08-12 14:50:00,11062.06,,United Kingdom
A563186,B,Adjust bad debt,1,2011-08-12 14:51:00,-11062.06,,United Kingdom
A563186,B,Adjust bad debt,1,2011-08-12 14:51:00,-1.00,,United Kingdom
",
        );
        assert!(p.bad_rows.is_empty(), "{:?}", p.bad_rows);
        assert!(p.ops.is_empty());
        assert_eq!(p.skipped_adjustments, 2);
        // The code is in the catalog (name from the rows) with no price: A rows set none.
        let b = product(&p, "B");
        assert_eq!(
            (b.name.as_str(), b.unit_price, b.stock_tracked),
            ("Adjust bad debt", d("0"), false)
        );
    }

    #[test]
    fn zero_priced_lines_are_stock_movements() {
        let p = plan(
            "536589,21777,,-10,2010-12-01 16:50:00,0.0,,United Kingdom
537032,21275,damaged,-30,2010-12-03 16:50:00,0,,United Kingdom
536414,22139,,56,2010-12-01 11:52:00,0.0,,United Kingdom
536941,22734,amazon,20,2010-12-03 12:08:00,0.0,,United Kingdom
",
        );
        assert!(p.bad_rows.is_empty(), "{:?}", p.bad_rows);
        // An invoice without a priced line is no sale: only stock movements, by time.
        let got: Vec<_> = p
            .ops
            .iter()
            .map(|op| match op {
                Op::Stock {
                    reference,
                    sku,
                    quantity,
                    reason,
                    note,
                    ..
                } => (
                    reference.as_str(),
                    sku.as_str(),
                    *quantity,
                    *reason,
                    note.as_deref(),
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "536414",
                    "22139",
                    d("-56"),
                    MovementReason::WriteOff,
                    Some("no charge")
                ),
                ("536589", "21777", d("-10"), MovementReason::WriteOff, None),
                (
                    "536941",
                    "22734",
                    d("-20"),
                    MovementReason::WriteOff,
                    Some("no charge: amazon")
                ),
                (
                    "537032",
                    "21275",
                    d("-30"),
                    MovementReason::WriteOff,
                    Some("damaged")
                ),
            ]
        );
        // Without a price or a description the catalog falls back to the code and 0.
        let p1 = product(&p, "22139");
        assert_eq!((p1.name.as_str(), p1.unit_price), ("22139", d("0")));
    }

    #[test]
    fn sale_comes_before_its_stock_movements_at_the_same_time_and_store() {
        let p = plan(
            "536500,11111,freebie,2,2010-12-02 10:00:00,0,,France
536500,22222,THING,1,2010-12-02 10:05:00,1.25,,France
",
        );
        assert_eq!(p.ops.len(), 2);
        assert!(matches!(&p.ops[0], Op::Sale { lines, .. } if lines.len() == 1 && lines[0].sku == "22222"));
        let Op::Stock {
            store,
            occurred_at,
            quantity,
            ..
        } = &p.ops[1]
        else {
            panic!()
        };
        assert_eq!(store.as_str(), "france");
        assert_eq!(occurred_at.to_rfc3339(), "2010-12-02T10:00:00+00:00");
        assert_eq!(*quantity, d("-2"));
    }

    #[test]
    fn ops_are_in_trading_order_and_invoices_are_grouped() {
        let p = plan(
            "2,X1,b,1,2010-12-01 09:00:00,1,,EIRE
1,X1,a,1,2010-12-01 08:00:00,1,,EIRE
3,X1,c,1,2010-12-01 08:00:00,1,,France
2,X2,b2,1,2010-12-01 07:00:00,1,,EIRE
",
        );
        let refs: Vec<_> = p.ops.iter().map(Op::reference).collect();
        // Invoice 2 keeps its first row's time (09:00) and gets both its lines; invoices 1
        // and 3 share a time and keep file order.
        assert_eq!(refs, ["1", "3", "2"]);
        assert!(matches!(&p.ops[2], Op::Sale { lines, .. } if lines.len() == 2));
        let codes: Vec<_> = p.stores.iter().map(|(c, n)| (c.as_str(), n.as_str())).collect();
        assert_eq!(codes, [("eire", "EIRE"), ("france", "France")]);
    }

    #[test]
    fn catalog_takes_the_latest_name_and_price_in_trading_order() {
        let p = plan(
            "3,85123A,NEWEST,1,2010-12-03 08:00:00,2.95,,United Kingdom
1,85123A,OLD NAME,1,2010-12-01 08:00:00,2.55,,United Kingdom
2,85123A,,1,2010-12-02 08:00:00,3.10,,United Kingdom
4,85123A,,5,2010-12-04 08:00:00,0,,United Kingdom
C5,85123A,,-1,2010-12-05 08:00:00,2.65,,United Kingdom
A6,85123A,LATER ADJUSTMENT,1,2010-12-06 08:00:00,9.99,,United Kingdom
7, 85123B ,X,1,2010-12-01 08:00:00,1,,United Kingdom
8,C2,CARRIAGE,1,2010-12-01 08:00:00,50,,United Kingdom
9,m,lowercase m is a product,1,2010-12-01 08:00:00,1,,United Kingdom
",
        );
        assert!(p.bad_rows.is_empty(), "{:?}", p.bad_rows);
        let a = product(&p, "85123A");
        // Name: the A invoice is latest; price: latest positive outside A (the C invoice).
        assert_eq!(a.name, "LATER ADJUSTMENT");
        assert_eq!(a.unit_price, d("2.65"));
        assert_eq!(
            (a.tax_rate, a.barcode.as_deref(), a.category.as_deref()),
            (d("0"), None, None)
        );
        assert!(product(&p, "85123B").stock_tracked, "SKU is trimmed");
        assert!(!product(&p, "C2").stock_tracked);
        assert!(
            product(&p, "m").stock_tracked,
            "non-product codes are case-sensitive"
        );
        let skus: Vec<_> = p.catalog.iter().map(|x| x.sku.as_str()).collect();
        assert_eq!(skus, ["85123A", "85123B", "C2", "m"]);
    }

    #[test]
    fn bad_rows_are_recorded_and_parsing_goes_on() {
        let long = "X".repeat(65);
        let p = plan(&format!(
            "1,A1,ok,1,2010-12-01 08:00:00,1,,UK
2,A1,zero,0,2010-12-01 08:00:00,1,,UK
3,A1,neg price,1,2010-12-01 08:00:00,-1,,UK
4,A1,fraction,1.5,2010-12-01 08:00:00,1,,UK
5,A1,bad price,1,2010-12-01 08:00:00,1.2.3,,UK
6,A1,bad date,1,01/12/2010 08:00,1,,UK
7,A1,short row,1,2010-12-01 08:00:00,1,UK
8,,blank code,1,2010-12-01 08:00:00,1,,UK
9,{long},long code,1,2010-12-01 08:00:00,1,,UK
X10,A1,bad invoice,1,2010-12-01 08:00:00,1,,UK
11,A1,sale with negative quantity,-1,2010-12-01 08:00:00,1,,UK
C12,A1,refund with positive quantity,1,2010-12-01 08:00:00,1,,UK
13,A1,no country,1,2010-12-01 08:00:00,1,,
14,A1,symbols only,1,2010-12-01 08:00:00,1,,***
1,A1,other country,1,2010-12-01 08:00:00,1,,France
15,A1,extra field,1,2010-12-01 08:00:00,1,,UK,extra
16,\"A\u{7}1\",control,1,2010-12-01 08:00:00,1,,UK
1,A1,ok again,2,2010-12-01 08:00:00,1,,UK
"
        ));
        let lines: Vec<u64> = p.bad_rows.iter().map(|b| b.line).collect();
        assert_eq!(lines, (3..=18).collect::<Vec<_>>(), "{:#?}", p.bad_rows);
        let reason = |line: u64| &p.bad_rows.iter().find(|b| b.line == line).unwrap().reason;
        assert_eq!(reason(3), "Quantity is 0");
        assert!(reason(4).contains("negative outside"));
        assert!(reason(5).contains("whole number"));
        assert!(reason(6).contains("not a decimal"));
        assert!(reason(7).contains("InvoiceDate"));
        assert!(reason(8).contains("expected 8 fields"));
        assert_eq!(reason(9), "StockCode is blank");
        assert!(reason(10).contains("1-64"));
        assert!(reason(11).contains("InvoiceNo"));
        assert!(reason(12).contains("negative Quantity"));
        assert!(reason(13).contains("positive Quantity"));
        assert_eq!(reason(14), "Country is blank");
        assert!(reason(15).contains("store code"));
        assert!(reason(16).contains("differs"));
        assert!(reason(17).contains("expected 8 fields"));
        assert!(reason(18).contains("control"));
        assert_eq!(p.rows_read, 18);
        assert_eq!(p.ops.len(), 1);
        assert!(matches!(&p.ops[0], Op::Sale { lines, .. } if lines.len() == 2));
    }

    #[test]
    fn a_row_with_invalid_utf8_is_a_bad_row() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"1,A1,caf\xe9,1,2010-12-01 08:00:00,1,,UK\n");
        bytes.extend_from_slice(b"2,A1,ok,1,2010-12-01 08:00:00,1,,UK\n");
        // Invalid UTF-8 in a column the replay does not read still makes the row bad.
        bytes.extend_from_slice(b"3,A1,ok,1,2010-12-01 08:00:00,1,\xff,UK\n");
        let p = parse_plan(&bytes[..], Format::OnlineRetail).unwrap();
        assert_eq!(p.bad_rows.len(), 2, "{:?}", p.bad_rows);
        assert_eq!(p.bad_rows[0].line, 2);
        assert!(
            p.bad_rows[0].reason.contains("Description"),
            "{:?}",
            p.bad_rows[0]
        );
        assert!(p.bad_rows[0].reason.contains("UTF-8"));
        assert_eq!(p.bad_rows[1].line, 4);
        assert!(p.bad_rows[1].reason.contains("CustomerID"));
        assert_eq!(p.ops.len(), 1);
    }

    #[test]
    fn quoted_fields_and_multi_line_records_keep_line_numbers() {
        let p = plan(
            "1,A1,\"LANTERN, WHITE\",1,2010-12-01 08:00:00,1,,UK
2,A1,\"two
lines\",1,2010-12-01 08:00:00,1,,UK
3,A1,x,0,2010-12-01 08:00:00,1,,UK
",
        );
        assert_eq!(
            p.bad_rows,
            [BadRow {
                line: 5,
                reason: "Quantity is 0".into()
            }]
        );
        assert_eq!(product(&p, "A1").name, "two\nlines");
    }

    /// The first 20,000 lines of the real file: no panics, the UK store, adjustments
    /// counted, and every op well formed.
    #[test]
    fn real_file_first_20000_lines() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/online-retail-2010-12-to-2011-09.csv.gz"
        );
        let file = std::fs::File::open(path).unwrap();
        let mut reader = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(file));
        let mut head = Vec::new();
        for _ in 0..20_000 {
            if reader.read_until(b'\n', &mut head).unwrap() == 0 {
                break;
            }
        }
        let mut p = parse_plan(&head[..], Format::OnlineRetail).unwrap();
        assert_eq!(p.rows_read, 19_999);
        assert!(
            p.bad_rows.is_empty(),
            "{:?}",
            &p.bad_rows[..p.bad_rows.len().min(5)]
        );
        assert!(
            p.stores
                .iter()
                .any(|(c, n)| c.as_str() == "united-kingdom" && n == "United Kingdom")
        );
        assert_eq!(p.skipped_adjustments, 0, "the A invoices are in August 2011");
        let sales = p.ops.iter().filter(|o| matches!(o, Op::Sale { .. })).count();
        let refunds = p.ops.iter().filter(|o| matches!(o, Op::Refund { .. })).count();
        let stock = p.ops.iter().filter(|o| matches!(o, Op::Stock { .. })).count();
        eprintln!(
            "first 20,000 lines: {sales} sales, {refunds} refunds, {stock} stock ops, {} products",
            p.catalog.len()
        );
        assert!(sales > 500 && refunds > 10 && stock > 0);
        assert!(p.ops.windows(2).all(|w| w[0].occurred_at() <= w[1].occurred_at()));
        for op in &p.ops {
            if let Op::Sale { lines, .. } | Op::Refund { lines, .. } = op {
                assert!(!lines.is_empty());
                assert!(
                    lines
                        .iter()
                        .all(|l| l.quantity > Decimal::ZERO && l.unit_price > Decimal::ZERO)
                );
            }
        }
        assert!(p.catalog.windows(2).all(|w| w[0].sku < w[1].sku));
        assert!(p.catalog.iter().any(|x| x.sku == "POST" && !x.stock_tracked));
        let days = {
            let mut d: Vec<_> = p.ops.iter().map(Op::business_date).collect();
            d.dedup();
            d.len()
        };
        limit_days(&mut p, 2);
        let second = chrono::NaiveDate::from_ymd_opt(2010, 12, 2).unwrap();
        assert!(days > 2 && p.ops.iter().all(|o| o.business_date() <= second));

        // The adjustments of the real file, taken from it as they are.
        let adjustments = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
A563185,B,Adjust bad debt,1,2011-08-12 14:50:00,11062.06,,United Kingdom
A563186,B,Adjust bad debt,1,2011-08-12 14:51:00,-11062.06,,United Kingdom
A563187,B,Adjust bad debt,1,2011-08-12 14:52:00,-11062.06,,United Kingdom
";
        let a = parse_plan(adjustments.as_bytes(), Format::OnlineRetail).unwrap();
        assert_eq!((a.skipped_adjustments, a.ops.len(), a.bad_rows.len()), (3, 0, 0));
    }
}
