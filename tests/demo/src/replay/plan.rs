//! Replay plans: what one of the real retail files asks the system to do, parsed but not
//! yet sent.
//!
//! A [`ReplayPlan`] is the pure result of reading one of the files described in
//! `shared/data/README.md` (read-only, next to the repository): a catalog, the stores and
//! the operations (sales, refunds without receipt, stock movements) in trading order. No
//! HTTP, no clock, no async here; the replay driver turns a plan into REST calls.
//!
//! The rules are the replay rules of the issue that asked for replays, together with
//! `shared/data/README.md`; the format-specific ones are documented in
//! [`super::online_retail`] and [`super::supermarket`]. Bad input never stops a parse: a
//! row that breaks the layout becomes a [`BadRow`] with its line number, and a truncated
//! or corrupt gzip stream ends the plan at the last complete row with one final
//! [`BadRow`]. Numbers are parsed as exact decimals, never as floating point.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::str::FromStr;

use caja_shared::docs::Product;
use caja_shared::facts::{MovementReason, TenderKind};
use caja_shared::ids::StoreCode;
use caja_shared::money::Currency;
use chrono::{DateTime, NaiveDate, Utc};
use csv::ByteRecord;
use rust_decimal::Decimal;

/// The layout of a replay file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The UCI "Online Retail" invoice lines (`online-retail-2010-12-to-2011-09.csv.gz`):
    /// one store per country, prices in pounds sterling.
    OnlineRetail,
    /// The "Supermarket sales" file (`supermarket-sales-3-branches.csv`): one store per
    /// branch, one sale per row, 5 % exclusive tax.
    Supermarket,
}

impl Format {
    /// The name used on the command line and in [`fmt::Display`]: `online-retail` or
    /// `supermarket`.
    pub fn name(self) -> &'static str {
        match self {
            Format::OnlineRetail => "online-retail",
            Format::Supermarket => "supermarket",
        }
    }

    /// The currency the file's prices are in. Neither file names its currency:
    /// `shared/data/README.md` says the online retailer's prices are pounds sterling
    /// (GBP); the supermarket file's prices are taken as US dollars (USD).
    pub fn currency(self) -> Currency {
        match self {
            Format::OnlineRetail => Currency::GBP,
            Format::Supermarket => Currency::USD,
        }
    }
}

impl FromStr for Format {
    type Err = ReplayError;

    /// Parses `online-retail` or `supermarket` (exactly, after trimming spaces).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "online-retail" => Ok(Format::OnlineRetail),
            "supermarket" => Ok(Format::Supermarket),
            other => Err(ReplayError::UnknownFormat(other.to_string())),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a replay of one file will do, in the order it will do it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayPlan {
    /// The layout the file was read as.
    pub format: Format,
    /// The currency of every price in the plan. The files name no currency; see
    /// [`Format::currency`] (GBP for online-retail, USD for supermarket).
    pub currency: Currency,
    /// The products the file sells: one per product code, sorted by SKU. Prices are
    /// major units of [`ReplayPlan::currency`], tax exclusive.
    pub catalog: Vec<Product>,
    /// The stores the file trades in as (code, display name), sorted by code.
    pub stores: Vec<(StoreCode, String)>,
    /// The operations in trading order (by time, then by the file line that started
    /// them); the order is stable, so replaying it twice does the same thing.
    pub ops: Vec<Op>,
    /// Accounting adjustments (online-retail invoices starting with `A`) that were
    /// skipped, counted per invoice, over the whole file (not changed by
    /// [`limit_days`]).
    pub skipped_adjustments: u64,
    /// Rows that could not be used, in file order (not changed by [`limit_days`]).
    pub bad_rows: Vec<BadRow>,
    /// Data rows read (the header is not counted), good and bad; rows after a point
    /// where the input ended unexpectedly are not counted.
    pub rows_read: u64,
}

/// A row of the file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based physical line number in the (decompressed) file; the header is line 1.
    pub line: u64,
    /// What was wrong, in words meant for a person.
    pub reason: String,
}

/// One operation of a replay: what a till (or a stock clerk) at a store did at a time.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A completed sale, paid with one tender for its full amount.
    Sale {
        /// The store that sold.
        store: StoreCode,
        /// When, as written in the file (taken as UTC).
        occurred_at: DateTime<Utc>,
        /// The file's own reference (online-retail `InvoiceNo`, supermarket `Invoice ID`).
        reference: String,
        /// The priced lines, in file order; never empty.
        lines: Vec<OpLine>,
        /// How the customer paid.
        tender: OpTender,
    },
    /// A refund without receipt (online-retail `C` invoices). Quantities are what came
    /// back, positive.
    Refund {
        /// The store that refunded.
        store: StoreCode,
        /// When, as written in the file (taken as UTC).
        occurred_at: DateTime<Utc>,
        /// The file's own reference (the `C…` invoice number).
        reference: String,
        /// The priced lines returned, in file order; never empty.
        lines: Vec<OpLine>,
    },
    /// A stock movement that carries no money (online-retail lines with `UnitPrice` 0).
    Stock {
        /// The store whose stock moves.
        store: StoreCode,
        /// When, as written in the file (taken as UTC).
        occurred_at: DateTime<Utc>,
        /// The file's own reference (the invoice number of the line).
        reference: String,
        /// The line's position within its reference (0-based): two free lines of one SKU in
        /// one invoice are two movements, each with its own Idempotency-Key.
        line: usize,
        /// The product.
        sku: String,
        /// Signed change of stock on hand, in units: negative removes stock.
        quantity: Decimal,
        /// Why stock moved.
        reason: MovementReason,
        /// Free text from the file (its description), if any.
        note: Option<String>,
    },
}

impl Op {
    /// The store the operation happens at.
    pub fn store(&self) -> &StoreCode {
        match self {
            Op::Sale { store, .. } | Op::Refund { store, .. } | Op::Stock { store, .. } => store,
        }
    }

    /// When the operation happened (UTC).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Op::Sale { occurred_at, .. } | Op::Refund { occurred_at, .. } | Op::Stock { occurred_at, .. } => {
                *occurred_at
            }
        }
    }

    /// The business day the operation counts towards: the UTC date of
    /// [`Op::occurred_at`].
    pub fn business_date(&self) -> NaiveDate {
        self.occurred_at().date_naive()
    }

    /// The file's own reference (invoice number).
    pub fn reference(&self) -> &str {
        match self {
            Op::Sale { reference, .. } | Op::Refund { reference, .. } | Op::Stock { reference, .. } => {
                reference
            }
        }
    }
}

/// One priced line of a sale or refund.
#[derive(Debug, Clone, PartialEq)]
pub struct OpLine {
    /// The product code, as in the catalog.
    pub sku: String,
    /// Units sold or returned; always positive (a whole number in both files).
    pub quantity: Decimal,
    /// Unit price in major units of the plan's currency, tax exclusive, exactly as in the
    /// file (it may carry more decimals than the currency, and it may differ from the
    /// catalog price: a price override).
    pub unit_price: Decimal,
}

/// The tender that pays a sale in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpTender {
    /// Cash, card or other.
    pub kind: TenderKind,
    /// The name reports show (`"Ewallet"`); `None` lets reports use the kind.
    pub label: Option<String>,
}

/// Why a replay file could not be read at all. Problems with single rows are not errors;
/// they become [`BadRow`]s.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be opened.
    #[error("cannot open replay file {path}")]
    Open {
        /// The path as given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading failed before the header was complete (a later failure ends the plan with a
    /// [`BadRow`] instead).
    #[error("cannot read the replay file's header: {0}")]
    Io(#[from] io::Error),
    /// The header lacks columns the format needs.
    #[error("the header lacks required columns: {}", missing.join(", "))]
    MissingColumns {
        /// The names of the missing columns, in the format's column order.
        missing: Vec<String>,
    },
    /// The format name is not one of `online-retail`, `supermarket`.
    #[error("unknown replay format {0:?}: expected \"online-retail\" or \"supermarket\"")]
    UnknownFormat(String),
}

/// Reads a replay file: gzip-compressed when it starts with the gzip magic bytes
/// `1f 8b` (all members are read), plain CSV otherwise.
///
/// # Errors
/// [`ReplayError::Open`] when the file cannot be opened, and the errors of
/// [`parse_plan`]. A truncated or corrupt gzip stream is not an error: the plan holds the
/// rows read until then and ends with a [`BadRow`] saying the input ended unexpectedly.
pub fn read_plan(path: &Path, format: Format) -> Result<ReplayPlan, ReplayError> {
    let mut file = File::open(path).map_err(|source| ReplayError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut magic = Vec::with_capacity(2);
    (&mut file).take(2).read_to_end(&mut magic)?;
    let stream = io::Cursor::new(magic.clone()).chain(file);
    if magic == [0x1f, 0x8b] {
        parse_plan(flate2::read::MultiGzDecoder::new(stream), format)
    } else {
        parse_plan(stream, format)
    }
}

/// Parses an already decompressed replay file.
///
/// # Errors
/// [`ReplayError::Io`] when the header cannot be read, [`ReplayError::MissingColumns`]
/// when it lacks a column the format needs. Every later problem is recorded in
/// [`ReplayPlan::bad_rows`] and parsing goes on (or, for a read error, ends with the rows
/// read so far).
pub fn parse_plan<R: Read>(reader: R, format: Format) -> Result<ReplayPlan, ReplayError> {
    match format {
        Format::OnlineRetail => super::online_retail::parse(reader),
        Format::Supermarket => super::supermarket::parse(reader),
    }
}

/// Keeps only the operations of the plan's first `first_days` distinct business days (UTC
/// dates of [`Op::occurred_at`], over all stores); used for "one month" replays.
/// `first_days = 0` keeps nothing. The catalog, stores, bad rows and counters are left as
/// they are.
pub fn limit_days(plan: &mut ReplayPlan, first_days: u32) {
    let mut days: Vec<NaiveDate> = plan.ops.iter().map(Op::business_date).collect();
    days.sort_unstable();
    days.dedup();
    let Some(keep) = usize::try_from(first_days).ok().filter(|n| *n < days.len()) else {
        return;
    };
    match keep.checked_sub(1).and_then(|i| days.get(i)) {
        Some(last) => plan.ops.retain(|op| op.business_date() <= *last),
        None => plan.ops.clear(),
    }
}

/// A column a format reads, by its header name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    /// The header name, matched exactly after trimming spaces.
    pub name: &'static str,
    /// Whether a row may leave the field blank.
    pub may_be_blank: bool,
}

impl Column {
    /// A column whose field must not be blank.
    pub const fn required(name: &'static str) -> Self {
        Column {
            name,
            may_be_blank: false,
        }
    }

    /// A column whose field may be blank.
    pub const fn may_be_blank(name: &'static str) -> Self {
        Column {
            name,
            may_be_blank: true,
        }
    }
}

/// Reads every data row of a CSV file and hands the fields of `columns` (trimmed, in the
/// order of `columns`) with the row's line number to `on_row`; a row `on_row` refuses
/// (with a reason) becomes a bad row.
///
/// Layout problems (a different number of fields than the header, invalid UTF-8 anywhere
/// in the row, a blank required field) become bad rows without calling `on_row`. A read
/// error (a truncated or corrupt gzip stream) ends the reading with a bad row on the line
/// after the last complete row. Returns the number of data rows read.
///
/// Line numbers are physical lines (counted by `\n`) where the record's first byte is.
/// `csv::Position::line` alone is not that: a record's position is where the reader
/// started looking for it, which is before any blank lines and, in a CRLF file, before the
/// `\n` of the previous record's terminator. So the bytes at that position are kept
/// ([`Window`]) and the newlines before the record's first byte are added.
///
/// # Errors
/// [`ReplayError::Io`] when the header cannot be read, [`ReplayError::MissingColumns`]
/// when it lacks one of `columns`.
pub(crate) fn read_rows<R: Read>(
    reader: R,
    columns: &[Column],
    bad_rows: &mut Vec<BadRow>,
    mut on_row: impl FnMut(u64, &[&str]) -> Result<(), String>,
) -> Result<u64, ReplayError> {
    let window = Rc::new(RefCell::new(Window::default()));
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(Tap {
            inner: reader,
            window: Rc::clone(&window),
        });
    let header: Vec<String> = csv
        .byte_headers()
        .map_err(io::Error::from)?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 {
                h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h)
            } else {
                h
            };
            String::from_utf8_lossy(h).trim().to_string()
        })
        .collect();
    let mut index = Vec::with_capacity(columns.len());
    let mut missing = Vec::new();
    for column in columns {
        match header.iter().position(|h| h == column.name) {
            Some(i) => index.push(i),
            None => missing.push(column.name.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(ReplayError::MissingColumns { missing });
    }

    let mut rows_read = 0u64;
    let mut record = ByteRecord::new();
    loop {
        let next_line = {
            let at = csv.position();
            let mut window = window.borrow_mut();
            window.forget_before(at.byte());
            at.line() + window.newlines_at(at.byte())
        };
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                bad_rows.push(BadRow {
                    line: next_line,
                    reason: format!("input ends unexpectedly: {e}"),
                });
                break;
            }
        }
        rows_read += 1;
        let line = record
            .position()
            .map_or(next_line, |at| at.line() + window.borrow().newlines_at(at.byte()));
        let outcome =
            check_layout(&record, &header, columns, &index).and_then(|picked| on_row(line, &picked));
        if let Err(reason) = outcome {
            bad_rows.push(BadRow { line, reason });
        }
    }
    Ok(rows_read)
}

/// The bytes the CSV reader has read from one offset on, so the start of a record can be
/// looked at after the reader has parsed it.
#[derive(Debug, Default)]
struct Window {
    /// Offset in the input of `bytes[0]`.
    offset: u64,
    /// The bytes read from `offset` on.
    bytes: VecDeque<u8>,
}

impl Window {
    /// The number of `\n` in the run of `\r` and `\n` bytes that starts at offset `at`:
    /// blank lines, and the `\n` of a CRLF the reader has not consumed yet.
    fn newlines_at(&self, at: u64) -> u64 {
        let skip = usize::try_from(at.saturating_sub(self.offset)).unwrap_or(usize::MAX);
        let newlines = self
            .bytes
            .iter()
            .skip(skip)
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .filter(|b| **b == b'\n')
            .count();
        u64::try_from(newlines).unwrap_or(u64::MAX)
    }

    /// Drops the bytes before offset `at`.
    fn forget_before(&mut self, at: u64) {
        let n = usize::try_from(at.saturating_sub(self.offset))
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        self.bytes.drain(..n);
        self.offset += n as u64;
    }
}

/// A reader that copies what it reads into a [`Window`].
struct Tap<R> {
    inner: R,
    window: Rc<RefCell<Window>>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(read) = buf.get(..n) {
            self.window.borrow_mut().bytes.extend(read);
        }
        Ok(n)
    }
}

/// Checks one record's layout and returns the trimmed fields of `columns`, in order.
fn check_layout<'r>(
    record: &'r ByteRecord,
    header: &[String],
    columns: &[Column],
    index: &[usize],
) -> Result<Vec<&'r str>, String> {
    if record.len() != header.len() {
        return Err(format!(
            "expected {} fields like the header, found {}",
            header.len(),
            record.len()
        ));
    }
    let mut fields = Vec::with_capacity(record.len());
    for (i, raw) in record.iter().enumerate() {
        let text = std::str::from_utf8(raw).map_err(|_| {
            let name = header.get(i).map_or("?", String::as_str);
            format!("field {} ({name}) is not valid UTF-8", i + 1)
        })?;
        fields.push(text.trim());
    }
    let mut picked = Vec::with_capacity(columns.len());
    for (column, &i) in columns.iter().zip(index) {
        let value = fields.get(i).copied().unwrap_or_default();
        if value.is_empty() && !column.may_be_blank {
            return Err(format!("{} is blank", column.name));
        }
        picked.push(value);
    }
    Ok(picked)
}

/// Parses an exact decimal from the file (`"2.55"`, `"-11062.06"`), never through floating
/// point. `column` names the field in the error.
pub(crate) fn parse_decimal(column: &str, text: &str) -> Result<Decimal, String> {
    Decimal::from_str(text).map_err(|_| format!("{column} {text:?} is not a decimal number"))
}

/// Parses a whole-number quantity (`"6"`, `"-12"`), as an exact decimal with no fraction.
pub(crate) fn parse_whole(column: &str, text: &str) -> Result<Decimal, String> {
    let value = parse_decimal(column, text)?;
    if value.fract().is_zero() {
        Ok(value.trunc())
    } else {
        Err(format!("{column} {text:?} is not a whole number"))
    }
}

/// A store code from a free-text name, or why there is none.
pub(crate) fn store_code(column: &str, name: &str) -> Result<StoreCode, String> {
    StoreCode::slug(name).map_err(|_| format!("{column} {name:?} gives no usable store code"))
}

/// Adds `(code, name)` to `stores` unless the code is already there (the first name
/// wins), keeping `stores` sorted by code.
pub(crate) fn add_store(stores: &mut Vec<(StoreCode, String)>, code: &StoreCode, name: &str) {
    if let Err(at) = stores.binary_search_by(|(c, _)| c.cmp(code)) {
        stores.insert(at, (code.clone(), name.to_string()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    const SMALL: &str = "Invoice ID,Branch,City,Customer type,Gender,Product line,Unit price,Quantity,Tax 5%,Total,Date,Time,Payment,cogs,gross margin percentage,gross income,Rating
750-67-8428,A,Yangon,Member,Female,Health and beauty,74.69,7,26.1415,548.9715,01/05/19,13:08,Ewallet,522.83,4.761904762,26.1415,9.1
226-31-3081,C,Naypyitaw,Normal,Female,Electronic accessories,15.28,5,3.82,80.22,03/08/19,10:29,Cash,76.4,4.761904762,3.82,9.6
631-41-3108,A,Yangon,Normal,Male,Home and lifestyle,46.33,7,16.2155,340.5255,03/03/19,13:23,Credit card,324.31,4.761904762,16.2155,7.4
";

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn format_names_round_trip() {
        for f in [Format::OnlineRetail, Format::Supermarket] {
            assert_eq!(f.to_string().parse::<Format>().unwrap(), f);
        }
        assert_eq!("online-retail".parse::<Format>().unwrap(), Format::OnlineRetail);
        assert!(matches!(
            "Supermarket".parse::<Format>(),
            Err(ReplayError::UnknownFormat(_))
        ));
        assert_eq!(Format::OnlineRetail.currency(), Currency::GBP);
        assert_eq!(Format::Supermarket.currency(), Currency::USD);
    }

    #[test]
    fn reads_plain_and_gzip_files_alike() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("s.csv");
        let packed = dir.path().join("s.csv.gz");
        std::fs::write(&plain, SMALL).unwrap();
        // Two gzip members: MultiGzDecoder must read both.
        let (a, b) = SMALL.split_at(SMALL.len() / 2);
        let mut both = gzip(a.as_bytes());
        both.extend(gzip(b.as_bytes()));
        std::fs::write(&packed, both).unwrap();
        let p1 = read_plan(&plain, Format::Supermarket).unwrap();
        let p2 = read_plan(&packed, Format::Supermarket).unwrap();
        assert_eq!(p1, p2);
        assert_eq!(p1.ops.len(), 3);
        assert!(p1.bad_rows.is_empty());
        assert!(matches!(
            read_plan(&dir.path().join("absent.csv"), Format::Supermarket),
            Err(ReplayError::Open { .. })
        ));
    }

    #[test]
    fn truncated_gzip_keeps_the_rows_before_the_cut() {
        let mut text = String::from(SMALL.lines().next().unwrap());
        text.push('\n');
        let row = SMALL.lines().nth(1).unwrap();
        for _ in 0..2000 {
            text.push_str(row);
            text.push('\n');
        }
        let packed = gzip(text.as_bytes());
        let cut = &packed[..packed.len() / 2];
        let plan = parse_plan(flate2::read::MultiGzDecoder::new(cut), Format::Supermarket).unwrap();
        assert!(
            !plan.ops.is_empty() && plan.ops.len() < 2000,
            "{}",
            plan.ops.len()
        );
        let last = plan.bad_rows.last().unwrap();
        assert!(last.reason.starts_with("input ends unexpectedly: "), "{last:?}");
        // The rows before the cut are whole rows, all good; the bad row is the next line.
        assert_eq!(plan.bad_rows.len(), 1, "{:?}", plan.bad_rows);
        assert_eq!(plan.rows_read, plan.ops.len() as u64);
        assert_eq!(last.line, plan.rows_read + 2);

        // A cut in the gzip trailer (all data there, checksum missing) is reported too.
        let cut = &packed[..packed.len() - 4];
        let plan = parse_plan(flate2::read::MultiGzDecoder::new(cut), Format::Supermarket).unwrap();
        assert_eq!(plan.ops.len(), 2000);
        assert!(plan.bad_rows[0].reason.starts_with("input ends unexpectedly"));
        assert_eq!(plan.bad_rows[0].line, 2002);

        // A file cut inside the header is an error: there is nothing to replay.
        let cut = &packed[..12];
        assert!(matches!(
            parse_plan(flate2::read::MultiGzDecoder::new(cut), Format::Supermarket),
            Err(ReplayError::Io(_))
        ));
    }

    #[test]
    fn missing_columns_are_named() {
        let err = parse_plan(
            "Invoice ID,Branch,Unit price\n1,A,2\n".as_bytes(),
            Format::Supermarket,
        )
        .unwrap_err();
        let ReplayError::MissingColumns { missing } = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            missing,
            ["City", "Product line", "Quantity", "Date", "Time", "Payment"]
        );
        let err = parse_plan("".as_bytes(), Format::OnlineRetail).unwrap_err();
        assert!(matches!(err, ReplayError::MissingColumns { missing } if missing.len() == 7));
    }

    #[test]
    fn line_numbers_are_physical_lines_with_crlf_blank_lines_and_quoted_newlines() {
        let rows: Vec<&str> = SMALL.lines().collect();
        let bad = rows[1].replace(",7,", ",x,");
        let quoted = rows[2].replace("Naypyitaw", "\"Nay\r\npyitaw\"");
        let bad_quoted = rows[3].replace("Yangon", "\"Yan\ngon\"").replace(",7,", ",0,");
        for eol in ["\n", "\r\n"] {
            // 1 header, 2 bad, 3 blank, 4-5 quoted, 6 blank, 7 blank, 8-9 bad quoted, 10 bad.
            let text = [rows[0], &bad, "", &quoted, "", "", &bad_quoted, &bad].join(eol);
            let plan = parse_plan(text.as_bytes(), Format::Supermarket).unwrap();
            let lines: Vec<u64> = plan.bad_rows.iter().map(|b| b.line).collect();
            assert_eq!(lines, [2, 8, 10], "{eol:?}: {:?}", plan.bad_rows);
            assert_eq!((plan.rows_read, plan.ops.len()), (4, 1));
        }
    }

    #[test]
    fn header_may_start_with_a_byte_order_mark() {
        let text = format!("\u{feff}{SMALL}");
        let plan = parse_plan(text.as_bytes(), Format::Supermarket).unwrap();
        assert_eq!(plan.ops.len(), 3);
    }

    #[test]
    fn limit_days_keeps_the_first_distinct_days() {
        // Days: 01-05, 03-03, 03-08 (ops sorted by time).
        let plan = parse_plan(SMALL.as_bytes(), Format::Supermarket).unwrap();
        let days = |p: &ReplayPlan| {
            p.ops
                .iter()
                .map(|o| o.business_date().to_string())
                .collect::<Vec<_>>()
        };
        let mut two = plan.clone();
        limit_days(&mut two, 2);
        assert_eq!(days(&two), ["2019-01-05", "2019-03-03"]);
        assert_eq!(two.catalog, plan.catalog);
        let mut all = plan.clone();
        limit_days(&mut all, 3);
        assert_eq!(all, plan);
        limit_days(&mut all, 99);
        assert_eq!(all, plan);
        let mut none = plan.clone();
        limit_days(&mut none, 0);
        assert!(none.ops.is_empty());
    }

    #[test]
    fn op_accessors() {
        let plan = parse_plan(SMALL.as_bytes(), Format::Supermarket).unwrap();
        let first = &plan.ops[0];
        assert_eq!(first.store().as_str(), "a");
        assert_eq!(first.reference(), "750-67-8428");
        assert_eq!(first.occurred_at().to_rfc3339(), "2019-01-05T13:08:00+00:00");
    }

    #[test]
    fn whole_numbers_and_decimals() {
        assert_eq!(parse_whole("Quantity", "6").unwrap(), Decimal::from(6));
        assert_eq!(parse_whole("Quantity", "-12.0").unwrap(), Decimal::from(-12));
        assert!(
            parse_whole("Quantity", "1.5")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            parse_decimal("UnitPrice", "2,55")
                .unwrap_err()
                .contains("not a decimal")
        );
        assert_eq!(parse_decimal("UnitPrice", "0.165").unwrap(), Decimal::new(165, 3));
    }
}
