//! Expected replay figures, computed straight from the real data files and independently
//! of the product.
//!
//! The end-to-end replays send the files in `shared/data` through the real node and sync
//! server and compare the server's report with the figures here. To be a real check this
//! module shares no code with the product: it does not use the node's replay parser nor
//! `caja-shared`'s money or fact types. It reads the CSV itself (`csv`, `flate2`) and does
//! its own exact arithmetic (`rust_decimal`, never floating point).
//!
//! The rules are the replay rules of the issue that asked for replays, and
//! `shared/data/README.md`; every amount is rounded half away from zero to the cent, per
//! line ([`round_cents`]):
//! - online-retail: a store per country ([`store_code`] of `Country`); a business day per
//!   invoice (the date of its first row's `InvoiceDate`, taken as UTC). A numeric invoice
//!   with at least one line with `UnitPrice != 0` is one sale: `gross += Σ round(Quantity ×
//!   UnitPrice)` over those lines. A `C…` invoice with such a line is one refund:
//!   `refunded += Σ round(Quantity × UnitPrice)` (negative). `A…` invoices are counted in
//!   `adjustments` and carry no money. Every sale and refund amount is tendered by
//!   `"card"` (online orders).
//! - supermarket: a store per branch ([`store_code`] of `Branch`), every row one sale on
//!   its `Date` (month/day/two-digit year): `net = round(Unit price × Quantity)`, `tax =
//!   round(net × 0.05)`, `gross += net + tax`, tendered by the `Payment` text.
//!
//! Rows the product's replay treats as bad rows are skipped here too: fields unequal to
//! the header's, invalid UTF-8, blank required fields, unparsable numbers, dates or times,
//! `Quantity` 0 or not whole, a negative price (outside `A` invoices), a priced sale line
//! with a negative quantity or a priced cancellation line with a positive one, an invoice
//! number that is neither digits nor `C…`/`A…`, a stock code that is not 1-64 characters
//! without control characters, a country or branch or product line that gives no store
//! code, an online-retail row whose country differs from its invoice's first row, and an
//! unknown supermarket payment.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, bail};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use rust_decimal::{Decimal, RoundingStrategy};

/// Sales and refunds of one store on one business day (or of a whole replay). Amounts are
/// major units (pounds or dollars) with at most 2 decimals; tax inclusive for the
/// supermarket (its tax is exclusive, so gross = net of the lines + tax).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayTotals {
    /// Number of sales.
    pub sales: u64,
    /// Number of refunds.
    pub refunds: u64,
    /// Sum of the sales' amounts (>= 0).
    pub gross: Decimal,
    /// Sum of the refunds' amounts (<= 0).
    pub refunded: Decimal,
    /// `gross + refunded`.
    pub net: Decimal,
}

impl DayTotals {
    fn sale(&mut self, amount: Decimal) {
        self.sales += 1;
        self.gross += amount;
        self.net += amount;
    }

    fn refund(&mut self, amount: Decimal) {
        self.refunds += 1;
        self.refunded += amount;
        self.net += amount;
    }
}

/// The figures a replay of one file must produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Store code -> business day -> totals. Only days with at least one sale or refund
    /// appear (a day of stock movements alone carries no money).
    pub stores: BTreeMap<String, BTreeMap<NaiveDate, DayTotals>>,
    /// Store code -> tender name as the report names it (`"card"` for online-retail; the
    /// `Payment` text `"Cash"`, `"Credit card"`, `"Ewallet"` for the supermarket) -> sum of
    /// the amounts tendered (refunds negative), major units.
    pub tenders: BTreeMap<String, BTreeMap<String, Decimal>>,
    /// All stores and days together.
    pub totals: DayTotals,
    /// Accounting adjustments (online-retail `A…` invoices) skipped, counted per invoice,
    /// within the kept days when the days were limited.
    pub adjustments: u64,
    /// Supermarket only: the sum of the file's own `Total` column over the counted rows,
    /// unrounded (4 decimals), to show how the cent-rounded totals differ from it.
    pub file_total: Option<Decimal>,
}

impl Expected {
    fn sale(&mut self, store: &str, day: NaiveDate, tender: &str, amount: Decimal) {
        self.day(store, day).sale(amount);
        self.totals.sale(amount);
        self.tender(store, tender, amount);
    }

    fn refund(&mut self, store: &str, day: NaiveDate, tender: &str, amount: Decimal) {
        self.day(store, day).refund(amount);
        self.totals.refund(amount);
        self.tender(store, tender, amount);
    }

    fn day(&mut self, store: &str, day: NaiveDate) -> &mut DayTotals {
        self.stores
            .entry(store.to_string())
            .or_default()
            .entry(day)
            .or_default()
    }

    fn tender(&mut self, store: &str, tender: &str, amount: Decimal) {
        *self
            .tenders
            .entry(store.to_string())
            .or_default()
            .entry(tender.to_string())
            .or_default() += amount;
    }
}

/// A store code from a free-text name (`"United Kingdom"` -> `united-kingdom`): ASCII
/// letters and digits lowercased, every run of anything else one `-`, trimmed of `-`, at
/// most 40 characters. Empty when the name has no ASCII letter or digit.
pub fn store_code(name: &str) -> String {
    let mut code = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !code.is_empty() {
                code.push('-');
            }
            gap = false;
            code.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    code.truncate(40);
    code
}

/// Rounds an amount in major units to the cent, half away from zero (`0.495` -> `0.50`,
/// `-2.345` -> `-2.35`).
pub fn round_cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// The expected figures of an online-retail replay of `path` (gzip or plain CSV), limited
/// to the first `first_days` distinct business days of the whole chain when given (the
/// days of sale and cancellation invoices, including those that carry only stock
/// movements; adjustments are counted when their day is within the kept days).
///
/// # Errors
/// When the file cannot be opened or read to its end, or its header lacks a column.
pub fn online_retail(path: &Path, first_days: Option<u32>) -> anyhow::Result<Expected> {
    struct Invoice {
        kind: u8,
        day: NaiveDate,
        store: String,
        priced: bool,
        amount: Decimal,
    }
    let mut invoices: HashMap<String, Invoice> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let columns = [
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "Country",
    ];
    for_each_row(path, &columns, |f| {
        let [number, sku, _, quantity, date, price, country] = f else {
            return None;
        };
        let kind = match number.as_bytes() {
            [] => return None,
            b if b.iter().all(u8::is_ascii_digit) => b'N',
            [k @ (b'C' | b'A'), _, ..] => *k,
            _ => return None,
        };
        let sku_chars = sku.chars().count();
        if sku_chars == 0 || sku_chars > 64 || sku.chars().any(char::is_control) {
            return None;
        }
        let quantity = whole(quantity).filter(|q| !q.is_zero())?;
        let when = NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S").ok()?;
        let price = Decimal::from_str(price).ok()?;
        if price < Decimal::ZERO && kind != b'A' {
            return None;
        }
        let priced = !price.is_zero();
        if priced
            && ((kind == b'N' && quantity < Decimal::ZERO) || (kind == b'C' && quantity > Decimal::ZERO))
        {
            return None;
        }
        let store = store_code(country);
        if store.is_empty() {
            return None;
        }
        match invoices.get(*number) {
            Some(invoice) if invoice.store != store => return None,
            Some(_) => {}
            None => {
                order.push(number.to_string());
                invoices.insert(
                    number.to_string(),
                    Invoice {
                        kind,
                        day: when.date(),
                        store,
                        priced: false,
                        amount: Decimal::ZERO,
                    },
                );
            }
        }
        let invoice = invoices.get_mut(*number)?;
        if priced && kind != b'A' {
            invoice.priced = true;
            invoice.amount += round_cents(quantity * price);
        }
        Some(())
    })?;

    let trading_days: BTreeSet<NaiveDate> = invoices
        .values()
        .filter(|i| i.kind != b'A')
        .map(|i| i.day)
        .collect();
    let last_day = match first_days {
        None => None,
        Some(0) => Some(None),
        Some(n) => Some(
            trading_days
                .iter()
                .nth(n as usize - 1)
                .or(trading_days.last())
                .copied(),
        ),
    };
    let kept = |day: NaiveDate| match last_day {
        None => true,
        Some(None) => false,
        Some(Some(last)) => day <= last,
    };

    let mut expected = Expected::default();
    for number in &order {
        let Some(invoice) = invoices.get(number) else {
            continue;
        };
        if !kept(invoice.day) {
            continue;
        }
        match invoice.kind {
            b'A' => expected.adjustments += 1,
            b'N' if invoice.priced => expected.sale(&invoice.store, invoice.day, "card", invoice.amount),
            b'C' if invoice.priced => expected.refund(&invoice.store, invoice.day, "card", invoice.amount),
            _ => {}
        }
    }
    Ok(expected)
}

/// The expected figures of a supermarket replay of `path` (plain or gzip CSV), with the
/// sum of the file's own `Total` column in [`Expected::file_total`].
///
/// # Errors
/// When the file cannot be opened or read to its end, or its header lacks a column.
pub fn supermarket(path: &Path) -> anyhow::Result<Expected> {
    let rate = Decimal::new(5, 2);
    let mut expected = Expected::default();
    let mut file_total = Decimal::ZERO;
    let columns = [
        "Invoice ID",
        "Branch",
        "City",
        "Product line",
        "Unit price",
        "Quantity",
        "Date",
        "Time",
        "Payment",
        "Total",
    ];
    for_each_row(path, &columns, |f| {
        let [
            invoice,
            branch,
            city,
            product_line,
            price,
            quantity,
            date,
            time,
            payment,
            total,
        ] = f
        else {
            return None;
        };
        let store = store_code(branch);
        if invoice.is_empty() || city.is_empty() || store.is_empty() || store_code(product_line).is_empty() {
            return None;
        }
        let price = Decimal::from_str(price).ok().filter(|p| *p >= Decimal::ZERO)?;
        let quantity = whole(quantity).filter(|q| *q > Decimal::ZERO)?;
        let day = NaiveDate::parse_from_str(date, "%m/%d/%y").ok()?;
        NaiveTime::parse_from_str(time, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M:%S"))
            .ok()?;
        if !matches!(*payment, "Cash" | "Credit card" | "Ewallet") {
            return None;
        }
        let net = round_cents(price * quantity);
        let tax = round_cents(net * rate);
        expected.sale(&store, day, payment, net + tax);
        // The file's Total is not needed to replay; an unreadable one is left out of the sum.
        if let Ok(total) = Decimal::from_str(total) {
            file_total += total;
        }
        Some(())
    })?;
    expected.file_total = Some(file_total);
    Ok(expected)
}

/// A whole number (`"6"`, `"-12"`), or `None`.
fn whole(text: &str) -> Option<Decimal> {
    Decimal::from_str(text).ok().filter(|q| q.fract().is_zero())
}

/// Calls `row` with the trimmed fields of `columns` (in that order) for every row of the
/// file that has as many fields as the header, all valid UTF-8, and no blank field in
/// `columns` other than `Description`. A row `row` refuses (`None`) is skipped.
fn for_each_row(
    path: &Path,
    columns: &[&str],
    mut row: impl FnMut(&[&str]) -> Option<()>,
) -> anyhow::Result<()> {
    let mut file = BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let mut magic = Vec::with_capacity(2);
    (&mut file).take(2).read_to_end(&mut magic)?;
    let gzip = magic == [0x1f, 0x8b];
    let file = std::io::Cursor::new(magic).chain(file);
    let input: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header: Vec<String> = csv
        .headers()
        .with_context(|| format!("reading the header of {}", path.display()))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    let mut index = Vec::with_capacity(columns.len());
    for column in columns {
        match header.iter().position(|h| h == column) {
            Some(i) => index.push(i),
            None => bail!("{} has no column {column:?}", path.display()),
        }
    }
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) if e.is_io_error() => {
                return Err(e).with_context(|| format!("reading {}", path.display()));
            }
            // Invalid UTF-8: the row is skipped, the next one is read.
            Err(_) => continue,
        }
        if record.len() != header.len() {
            continue;
        }
        let fields: Vec<&str> = index
            .iter()
            .map(|&i| record.get(i).unwrap_or_default().trim())
            .collect();
        let blank = fields
            .iter()
            .zip(columns)
            .any(|(f, c)| f.is_empty() && *c != "Description");
        if !blank {
            // A refused row is simply not counted.
            let _ = row(&fields);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::from_str(s).unwrap()
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn store_codes() {
        assert_eq!(store_code("United Kingdom"), "united-kingdom");
        assert_eq!(store_code(" EIRE "), "eire");
        assert_eq!(store_code("RSA"), "rsa");
        assert_eq!(store_code("Channel  Islands!"), "channel-islands");
        assert_eq!(store_code("--Über café--"), "ber-caf");
        assert_eq!(store_code("***"), "");
        assert_eq!(store_code(&"ab ".repeat(30)).len(), 40);
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_cents(d("0.495")), d("0.50"));
        assert_eq!(round_cents(d("-2.345")), d("-2.35"));
        assert_eq!(round_cents(d("2.3449")), d("2.34"));
    }

    const RETAIL: &str = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
1,A1,thing,3,2010-12-01 08:00:00,0.165,,United Kingdom
1,POST,POSTAGE,1,2010-12-02 09:00:00,18,,United Kingdom
1,A2,free,5,2010-12-01 08:00:00,0,,United Kingdom
2,A1,only free,5,2010-12-01 09:00:00,0,,United Kingdom
C3,A1,back,-12,2010-12-01 10:00:00,0.425,,United Kingdom
C3,A1,back again,-1,2010-12-01 10:00:00,1.005,,United Kingdom
C4,A1,free back,-1,2010-12-01 10:00:00,0,,United Kingdom
A5,B,Adjust bad debt,1,2010-12-03 10:00:00,-11062.06,,United Kingdom
6,A1,thing,2,2010-12-02 23:59:59,2.5,,France
7,A1,bad,0,2010-12-02 10:00:00,2.5,,France
8,A1,bad,1,2010-12-02 10:00:00,-2.5,,France
9,A1,bad,-1,2010-12-02 10:00:00,2.5,,France
10,A1,bad,1,2010-12-02,2.5,,France
1,A1,other country,1,2010-12-01 08:00:00,1,,France
11,A1,short,1,2010-12-02 10:00:00,2.5,France
12,A1,thing,1,2010-12-04 10:00:00,1,,France
";

    #[test]
    fn online_retail_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "retail.csv", RETAIL);
        let e = online_retail(&path, None).unwrap();
        // Invoice 1 on its first row's day: 3 x 0.165 = 0.495 -> 0.50, + 18.00.
        // C3: -12 x 0.425 = -5.10, -1 x 1.005 = -1.005 -> -1.01; total -6.11.
        let uk = &e.stores["united-kingdom"];
        assert_eq!(
            uk[&day("2010-12-01")],
            DayTotals {
                sales: 1,
                refunds: 1,
                gross: d("18.50"),
                refunded: d("-6.11"),
                net: d("12.39")
            }
        );
        assert_eq!(
            uk.len(),
            1,
            "invoice 2 and C4 carry no money; A5 is an adjustment"
        );
        let fr = &e.stores["france"];
        assert_eq!(
            fr[&day("2010-12-02")],
            DayTotals {
                sales: 1,
                gross: d("5.00"),
                net: d("5.00"),
                ..DayTotals::default()
            }
        );
        assert_eq!(fr[&day("2010-12-04")].gross, d("1"));
        assert_eq!(e.adjustments, 1);
        assert_eq!(e.tenders["united-kingdom"]["card"], d("12.39"));
        assert_eq!(e.tenders["france"]["card"], d("6.00"));
        assert_eq!(
            e.totals,
            DayTotals {
                sales: 3,
                refunds: 1,
                gross: d("24.50"),
                refunded: d("-6.11"),
                net: d("18.39")
            }
        );
        assert_eq!(e.file_total, None);

        // Gzip gives the same; the first 2 days keep 12-01 and 12-02 only.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, RETAIL.as_bytes()).unwrap();
        let packed = dir.path().join("retail.csv.gz");
        std::fs::write(&packed, gz.finish().unwrap()).unwrap();
        assert_eq!(online_retail(&packed, None).unwrap(), e);
        let two = online_retail(&packed, Some(2)).unwrap();
        assert_eq!(two.totals.sales, 2);
        assert_eq!(two.adjustments, 0, "the adjustment is on day 3");
        assert!(!two.stores["france"].contains_key(&day("2010-12-04")));
        let three = online_retail(&packed, Some(3)).unwrap();
        // 12-03 has only the adjustment, so it is not a trading day: day 3 is 12-04.
        assert_eq!((three.totals.sales, three.adjustments), (3, 1));
        assert_eq!(
            online_retail(&packed, Some(0)).unwrap().totals,
            DayTotals::default()
        );
    }

    #[test]
    fn supermarket_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "s.csv",
            "Invoice ID,Branch,City,Customer type,Gender,Product line,Unit price,Quantity,Tax 5%,Total,Date,Time,Payment,cogs,gross margin percentage,gross income,Rating\r
750-67-8428,A,Yangon,Member,Female,Health and beauty,74.69,7,26.1415,548.9715,01/05/19,13:08,Ewallet,522.83,4.761904762,26.1415,9.1\r
226-31-3081,C,Naypyitaw,Normal,Female,Electronic accessories,15.28,5,3.82,80.22,03/08/19,10:29,Cash,76.4,4.761904762,3.82,9.6\r
631-41-3108,A,Yangon,Normal,Male,Home and lifestyle,46.33,7,16.2155,340.5255,01/05/19,13:23,Credit card,324.31,4.761904762,16.2155,7.4\r
1,A,Yangon,Normal,Male,Home and lifestyle,46.33,7,16.2155,340.5255,01/05/19,13:23,Bitcoin,324.31,4.761904762,16.2155,7.4\r
2,A,Yangon,Normal,Male,Home and lifestyle,46.33,0,16.2155,340.5255,01/05/19,13:23,Cash,324.31,4.761904762,16.2155,7.4\r
",
        );
        let e = supermarket(&path).unwrap();
        // 74.69 x 7 = 522.83, tax 26.1415 -> 26.14: 548.97. 15.28 x 5 = 76.40 + 3.82 = 80.22.
        // 46.33 x 7 = 324.31, tax 16.2155 -> 16.22: 340.53.
        let a = &e.stores["a"][&day("2019-01-05")];
        assert_eq!(
            (a.sales, a.gross, a.net, a.refunded),
            (2, d("889.50"), d("889.50"), d("0"))
        );
        assert_eq!(e.stores["c"][&day("2019-03-08")].gross, d("80.22"));
        assert_eq!(e.tenders["a"]["Ewallet"], d("548.97"));
        assert_eq!(e.tenders["a"]["Credit card"], d("340.53"));
        assert_eq!(e.tenders["c"]["Cash"], d("80.22"));
        assert_eq!(e.totals.sales, 3);
        assert_eq!(e.totals.gross, d("969.72"));
        assert_eq!(e.file_total, Some(d("969.7170")));
        assert_eq!(e.adjustments, 0);
    }

    fn data(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data")
            .join(name)
    }

    #[test]
    fn real_supermarket_file() {
        let e = supermarket(&data("supermarket-sales-3-branches.csv")).unwrap();
        assert_eq!(e.totals.sales, 1000);
        assert_eq!(e.stores.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        for (store, days) in &e.stores {
            let gross: Decimal = days.values().map(|t| t.gross).sum();
            let tendered: Decimal = e.tenders[store].values().copied().sum();
            assert_eq!(gross, tendered);
            eprintln!(
                "supermarket store {store}: gross {gross}, tenders {:?}",
                e.tenders[store]
            );
        }
        let file_total = e.file_total.unwrap();
        eprintln!(
            "supermarket: ours {} vs file_total {file_total} (difference {})",
            e.totals.gross,
            e.totals.gross - file_total
        );
        // Per-row cent rounding moves each row by at most half a cent.
        assert!((e.totals.gross - file_total).abs() <= d("5.00"));
    }

    #[test]
    fn real_online_retail_first_30_days() {
        let e = online_retail(&data("online-retail-2010-12-to-2011-09.csv.gz"), Some(30)).unwrap();
        let uk: &BTreeMap<NaiveDate, DayTotals> = &e.stores["united-kingdom"];
        assert!(uk.values().map(|t| t.sales).sum::<u64>() > 0);
        let days: BTreeSet<&NaiveDate> = e.stores.values().flat_map(|d| d.keys()).collect();
        assert!(days.len() <= 30);
        eprintln!(
            "online-retail first 30 days: {} days with money, {} stores, {} sales, {} refunds, gross {}, refunded {}, net {}, adjustments {}",
            days.len(),
            e.stores.len(),
            e.totals.sales,
            e.totals.refunds,
            e.totals.gross,
            e.totals.refunded,
            e.totals.net,
            e.adjustments
        );
        assert!(e.totals.refunded <= Decimal::ZERO);
        assert_eq!(e.totals.net, e.totals.gross + e.totals.refunded);
    }
}
