//! The "Supermarket sales" file as a replay plan: three branches, one sale per row.
//!
//! Layout (`shared/data/README.md`): `Invoice ID,Branch,City,Customer type,Gender,Product
//! line,Unit price,Quantity,Tax 5%,Total,Date,Time,Payment,cogs,gross margin
//! percentage,gross income,Rating`; `Date` is month/day/two-digit year (`01/05/19` is
//! 2019-01-05), `Time` is `13:08`; tax is 5 % exclusive. The file names no currency; the
//! plan takes it as USD.
//!
//! Rules (from the replay issue; each is tested below):
//! - Store: [`StoreCode::slug`] of `Branch` (`a`, `b`, `c`), display name
//!   `<Branch> (<City>)` from the branch's first row in trading order.
//! - Every row is one [`Op::Sale`] of one line: SKU = [`StoreCode::slug`] of
//!   `Product line` (`health-and-beauty`), quantity = `Quantity` (a whole number > 0),
//!   unit price = `Unit price` as in the file, at `Date` + `Time` taken as UTC,
//!   referenced by `Invoice ID`. Ops are ordered by (time, line), stably.
//! - Tender from `Payment`: `Cash` is cash, `Credit card` is card, `Ewallet` is other,
//!   each labelled with the file's text; anything else is a bad row.
//! - Catalog: one product per product line: name and category = `Product line`, price =
//!   the latest `Unit price` in trading order, tax rate 0.05, not stock-tracked.
//! - Bad rows: a negative `Unit price`, a `Quantity` that is not a whole number above 0,
//!   unparsable numbers, dates or times, an unknown payment, a branch or product line that
//!   gives no code, and every layout problem of [`super::plan`]. The file's own `Tax 5%`
//!   and `Total` are not read: the system computes its own (the expected figures compare
//!   them).

use std::collections::HashMap;
use std::io::Read;

use caja_shared::docs::Product;
use caja_shared::facts::TenderKind;
use caja_shared::ids::StoreCode;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;

use super::plan::{
    BadRow, Column, Format, Op, OpLine, OpTender, ReplayError, ReplayPlan, add_store, parse_decimal,
    parse_whole, store_code,
};

/// The format of `Date`: month/day/two-digit year (`01/05/19`).
pub const DATE_FORMAT: &str = "%m/%d/%y";

/// The exclusive tax rate of every product line: 5 % (the file's `Tax 5%` column).
pub const TAX_RATE: Decimal = Decimal::from_parts(5, 0, 0, false, 2);

/// The columns read, in this order.
const COLUMNS: [Column; 9] = [
    Column::required("Invoice ID"),
    Column::required("Branch"),
    Column::required("City"),
    Column::required("Product line"),
    Column::required("Unit price"),
    Column::required("Quantity"),
    Column::required("Date"),
    Column::required("Time"),
    Column::required("Payment"),
];

/// One good row, before ordering.
#[derive(Debug)]
struct Row {
    line: u64,
    at: DateTime<Utc>,
    store: StoreCode,
    store_name: String,
    product_line: String,
    op: Op,
}

/// The tender a `Payment` value names, or why it names none.
fn tender(payment: &str) -> Result<OpTender, String> {
    let kind = match payment {
        "Cash" => TenderKind::Cash,
        "Credit card" => TenderKind::Card,
        "Ewallet" => TenderKind::Other,
        other => {
            return Err(format!(
                "Payment {other:?} is not one of Cash, Credit card, Ewallet"
            ));
        }
    };
    Ok(OpTender {
        kind,
        label: Some(payment.to_string()),
    })
}

/// Parses `Time` (`13:08`, or `13:08:30`).
fn time(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .map_err(|e| format!("Time {text:?} is not a time like 13:08: {e}"))
}

/// Parses the decompressed supermarket file into a plan (see the module docs for the
/// rules).
///
/// # Errors
/// [`ReplayError::Io`] when the header cannot be read, [`ReplayError::MissingColumns`]
/// when it lacks one of `Invoice ID, Branch, City, Product line, Unit price, Quantity,
/// Date, Time, Payment`.
pub fn parse<R: Read>(reader: R) -> Result<ReplayPlan, ReplayError> {
    let mut bad_rows: Vec<BadRow> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let rows_read = super::plan::read_rows(reader, &COLUMNS, &mut bad_rows, |line, f| {
        let [
            invoice,
            branch,
            city,
            product_line,
            price,
            quantity,
            date,
            clock,
            payment,
        ] = f
        else {
            return Err("internal error: wrong number of columns".to_string());
        };
        let store = store_code("Branch", branch)?;
        let sku = StoreCode::slug(product_line)
            .map_err(|_| format!("Product line {product_line:?} gives no usable code"))?;
        let unit_price = parse_decimal("Unit price", price)?;
        if unit_price.is_sign_negative() && !unit_price.is_zero() {
            return Err(format!("Unit price {price} is negative"));
        }
        let quantity = parse_whole("Quantity", quantity)?;
        if quantity <= Decimal::ZERO {
            return Err(format!("Quantity {quantity} is not above 0"));
        }
        let day = NaiveDate::parse_from_str(date, DATE_FORMAT)
            .map_err(|e| format!("Date {date:?} is not a date like 01/05/19 (month/day/year): {e}"))?;
        let at = NaiveDateTime::new(day, time(clock)?).and_utc();
        let tender = tender(payment)?;
        rows.push(Row {
            line,
            at,
            store: store.clone(),
            store_name: format!("{branch} ({city})"),
            product_line: product_line.to_string(),
            op: Op::Sale {
                store,
                occurred_at: at,
                reference: invoice.to_string(),
                lines: vec![OpLine {
                    sku: sku.as_str().to_string(),
                    quantity,
                    unit_price,
                }],
                tender,
            },
        });
        Ok(())
    })?;

    // Trading order: by time, then by line; stable.
    rows.sort_by_key(|r| (r.at, r.line));

    let mut stores = Vec::new();
    let mut catalog: HashMap<String, Product> = HashMap::new();
    let mut ops = Vec::with_capacity(rows.len());
    for row in rows {
        add_store(&mut stores, &row.store, &row.store_name);
        if let Op::Sale { lines, .. } = &row.op {
            for line in lines {
                catalog.insert(
                    line.sku.clone(),
                    Product {
                        sku: line.sku.clone(),
                        name: row.product_line.clone(),
                        unit_price: line.unit_price,
                        tax_rate: TAX_RATE,
                        barcode: None,
                        category: Some(row.product_line.clone()),
                        stock_tracked: false,
                    },
                );
            }
        }
        ops.push(row.op);
    }
    let mut catalog: Vec<Product> = catalog.into_values().collect();
    catalog.sort_by(|a, b| a.sku.cmp(&b.sku));

    Ok(ReplayPlan {
        format: Format::Supermarket,
        currency: Format::Supermarket.currency(),
        catalog,
        stores,
        ops,
        skipped_adjustments: 0,
        bad_rows,
        rows_read,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::replay::plan::{parse_plan, read_plan};
    use std::str::FromStr;

    const HEADER: &str = "Invoice ID,Branch,City,Customer type,Gender,Product line,Unit price,Quantity,Tax 5%,Total,Date,Time,Payment,cogs,gross margin percentage,gross income,Rating\r\n";

    fn plan(rows: &str) -> ReplayPlan {
        parse_plan(format!("{HEADER}{rows}").as_bytes(), Format::Supermarket).unwrap()
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn every_row_is_one_sale_in_time_order() {
        let p = plan(
            "750-67-8428,A,Yangon,Member,Female,Health and beauty,74.69,7,26.1415,548.9715,01/05/19,13:08,Ewallet,522.83,4.761904762,26.1415,9.1\r
226-31-3081,C,Naypyitaw,Normal,Female,Electronic accessories,15.28,5,3.82,80.22,03/08/19,10:29,Cash,76.4,4.761904762,3.82,9.6\r
631-41-3108,A,Yangon,Normal,Male,Home and lifestyle,46.33,7,16.2155,340.5255,03/03/19,13:23,Credit card,324.31,4.761904762,16.2155,7.4\r
123-19-1176,B,Mandalay,Member,Male,Health and beauty,58.22,8,23.288,489.048,01/05/19,13:08,Ewallet,465.76,4.761904762,23.288,8.4\r
",
        );
        assert!(p.bad_rows.is_empty(), "{:?}", p.bad_rows);
        assert_eq!((p.rows_read, p.skipped_adjustments), (4, 0));
        assert_eq!(p.currency.code(), "USD");
        let refs: Vec<_> = p.ops.iter().map(Op::reference).collect();
        // 01/05 13:08 twice (file order), then 03/03, then 03/08.
        assert_eq!(refs, ["750-67-8428", "123-19-1176", "631-41-3108", "226-31-3081"]);
        let Op::Sale {
            store,
            occurred_at,
            lines,
            tender,
            ..
        } = &p.ops[0]
        else {
            panic!()
        };
        assert_eq!(store.as_str(), "a");
        assert_eq!(occurred_at.to_rfc3339(), "2019-01-05T13:08:00+00:00");
        assert_eq!(
            lines,
            &[OpLine {
                sku: "health-and-beauty".into(),
                quantity: d("7"),
                unit_price: d("74.69")
            }]
        );
        assert_eq!(
            tender,
            &OpTender {
                kind: TenderKind::Other,
                label: Some("Ewallet".into())
            }
        );
        let tenders: Vec<_> = p
            .ops
            .iter()
            .map(|o| match o {
                Op::Sale { tender, .. } => (tender.kind, tender.label.clone().unwrap()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tenders[2], (TenderKind::Card, "Credit card".to_string()));
        assert_eq!(tenders[3], (TenderKind::Cash, "Cash".to_string()));
        let stores: Vec<_> = p.stores.iter().map(|(c, n)| (c.as_str(), n.as_str())).collect();
        assert_eq!(
            stores,
            [("a", "A (Yangon)"), ("b", "B (Mandalay)"), ("c", "C (Naypyitaw)")]
        );
    }

    #[test]
    fn catalog_has_one_product_per_line_at_the_latest_price() {
        let p = plan(
            "1,A,Yangon,Member,Female,Health and beauty,74.69,7,0,0,01/05/19,13:08,Cash,0,0,0,0
2,A,Yangon,Member,Female,Health and beauty,10.00,1,0,0,01/01/19,13:08,Cash,0,0,0,0
3,A,Yangon,Member,Female,Sports and travel,5.5,1,0,0,01/01/19,13:08,Cash,0,0,0,0
",
        );
        assert_eq!(p.catalog.len(), 2);
        let h = &p.catalog[0];
        assert_eq!(h.sku, "health-and-beauty");
        assert_eq!(h.name, "Health and beauty");
        assert_eq!(
            h.unit_price,
            d("74.69"),
            "latest in trading order, not in file order"
        );
        assert_eq!(h.tax_rate, d("0.05"));
        assert_eq!(h.category.as_deref(), Some("Health and beauty"));
        assert!(!h.stock_tracked);
        assert_eq!(h.barcode, None);
        assert_eq!(p.catalog[1].sku, "sports-and-travel");
    }

    #[test]
    fn bad_rows_are_recorded_and_parsing_goes_on() {
        let ok = "A,Yangon,Member,Female,Health and beauty,74.69,7,0,0,01/05/19,13:08,Cash,0,0,0,0";
        let p = plan(&format!(
            "1,{ok}
2,A,Yangon,Member,Female,Health and beauty,74.69,7,0,0,01/05/19,13:08,Bitcoin,0,0,0,0
3,A,Yangon,Member,Female,Health and beauty,-1,7,0,0,01/05/19,13:08,Cash,0,0,0,0
4,A,Yangon,Member,Female,Health and beauty,74.69,0,0,0,01/05/19,13:08,Cash,0,0,0,0
5,A,Yangon,Member,Female,Health and beauty,74.69,2.5,0,0,01/05/19,13:08,Cash,0,0,0,0
6,A,Yangon,Member,Female,Health and beauty,x,7,0,0,01/05/19,13:08,Cash,0,0,0,0
7,A,Yangon,Member,Female,Health and beauty,74.69,7,0,0,13/05/19,13:08,Cash,0,0,0,0
8,A,Yangon,Member,Female,Health and beauty,74.69,7,0,0,01/05/19,25:08,Cash,0,0,0,0
9,A,Yangon,Member,Female,Health and beauty,74.69,7,0,0,01/05/19,13:08,Cash,0,0,0
,{ok}
11,-,Yangon,Member,Female,Health and beauty,74.69,7,0,0,01/05/19,13:08,Cash,0,0,0,0
12,A,Yangon,Member,Female,&&,74.69,7,0,0,01/05/19,13:08,Cash,0,0,0,0
13,A,Yangon,Member,Female,Health and beauty,74.69,7,0,0,01/05/19,,Cash,0,0,0,0
14,{ok}
"
        ));
        let lines: Vec<u64> = p.bad_rows.iter().map(|b| b.line).collect();
        assert_eq!(lines, (3..=14).collect::<Vec<_>>(), "{:#?}", p.bad_rows);
        let reason = |line: u64| &p.bad_rows.iter().find(|b| b.line == line).unwrap().reason;
        assert!(reason(3).contains("Payment \"Bitcoin\""));
        assert!(reason(4).contains("negative"));
        assert!(reason(5).contains("not above 0"));
        assert!(reason(6).contains("whole number"));
        assert!(reason(7).contains("not a decimal"));
        assert!(reason(8).contains("Date"));
        assert!(reason(9).contains("Time"));
        assert!(reason(10).contains("expected 17 fields"));
        assert_eq!(reason(11), "Invoice ID is blank");
        assert!(reason(12).contains("Branch"));
        assert!(reason(13).contains("Product line"));
        assert_eq!(reason(14), "Time is blank");
        assert_eq!(p.ops.len(), 2);
        assert_eq!(p.rows_read, 14);
    }

    #[test]
    fn a_row_with_invalid_utf8_is_a_bad_row() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(
            b"1,A,Yang\xc3\x28n,Member,Female,Health and beauty,74.69,7,0,0,01/05/19,13:08,Cash,0,0,0,0\r\n",
        );
        let p = parse_plan(&bytes[..], Format::Supermarket).unwrap();
        assert_eq!(p.bad_rows.len(), 1);
        assert_eq!(p.bad_rows[0].line, 2);
        assert!(
            p.bad_rows[0].reason.contains("field 3 (City) is not valid UTF-8"),
            "{:?}",
            p.bad_rows
        );
        assert!(p.ops.is_empty());
    }

    /// The real file: every one of its 1,000 rows is a sale or a bad row, three stores.
    #[test]
    fn real_file() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/supermarket-sales-3-branches.csv"
        );
        let p = read_plan(std::path::Path::new(path), Format::Supermarket).unwrap();
        assert_eq!(p.rows_read, 1000);
        assert_eq!(p.ops.len() + p.bad_rows.len(), 1000);
        assert!(p.bad_rows.is_empty(), "{:?}", p.bad_rows);
        let stores: Vec<_> = p.stores.iter().map(|(c, n)| (c.as_str(), n.as_str())).collect();
        assert_eq!(
            stores,
            [("a", "A (Yangon)"), ("b", "B (Mandalay)"), ("c", "C (Naypyitaw)")]
        );
        assert_eq!(p.catalog.len(), 6);
        assert!(p.ops.windows(2).all(|w| w[0].occurred_at() <= w[1].occurred_at()));
        let first = p.ops.first().unwrap().business_date().to_string();
        let last = p.ops.last().unwrap().business_date().to_string();
        assert_eq!((first.as_str(), last.as_str()), ("2019-01-01", "2019-03-30"));
    }
}
