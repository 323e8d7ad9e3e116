//! Tests of the online-retail layout: the real file's dirt, each with its outcome.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::replay::plan::{limit_days, parse_plan};
use std::io::BufRead;
use std::str::FromStr;

const HEADER: &str = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n";

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
