//! The chain sales report, computed from the facts projection.
//!
//! JSON shape (amounts are decimal strings with the currency's decimals):
//! ```json
//! {"currency": "GBP",
//!  "stores": {"a": {"2024-01-01": {"sales": 2, "refunds": 1, "gross": "30.60",
//!                                  "refunded": "-15.30", "net": "15.30",
//!                                  "tenders": {"cash": "15.30"}},
//!                   "tenders": {"cash": "15.30"}}},
//!  "totals": {"sales": 2, "refunds": 1, "gross": "30.60", "refunded": "-15.30",
//!             "net": "15.30", "tenders": {"cash": "15.30"}}}
//! ```
//! `sales`/`refunds` count Sale/Refund facts; `gross` sums sale totals, `refunded` refund
//! totals (zero or negative), `net = gross + refunded`; `tenders` sums sale tenders (cash
//! net of change) and refund tenders by [`caja_shared::facts::Tender::report_name`].
//! Stock movements carry no money. Facts in another currency than the server's are
//! left out of the report.

use std::collections::BTreeMap;

use caja_shared::money::{Currency, format_minor};
use chrono::NaiveDate;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ServerError;

/// The chain sales report. Compatibility: fields are append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SalesReport {
    /// The currency of every amount.
    #[schema(value_type = String, example = "GBP")]
    pub currency: Currency,
    /// Per store code, its days and its tender totals.
    pub stores: BTreeMap<String, StoreReport>,
    /// All stores together.
    pub totals: Totals,
}

/// One store in the report: one entry per business day (`yyyy-mm-dd` keys) plus the key
/// `tenders` with the store's totals by tender.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct StoreReport {
    /// The store's totals of each business day.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub days: BTreeMap<NaiveDate, Totals>,
    /// The store's takings by tender name over all its days (decimal strings).
    pub tenders: BTreeMap<String, String>,
}

/// Counts and amounts of a day, a store or the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Totals {
    /// Number of sales.
    pub sales: u64,
    /// Number of refunds.
    pub refunds: u64,
    /// Sum of sale totals (decimal string, major units).
    pub gross: String,
    /// Sum of refund totals, zero or negative (decimal string).
    pub refunded: String,
    /// `gross + refunded` (decimal string).
    pub net: String,
    /// Takings by tender name (decimal strings).
    pub tenders: BTreeMap<String, String>,
}

/// Totals in minor units while summing.
#[derive(Debug, Default, Clone)]
struct Acc {
    sales: u64,
    refunds: u64,
    gross: i64,
    refunded: i64,
    tenders: BTreeMap<String, i64>,
}

impl Acc {
    fn add(&mut self, other: &Acc) {
        self.sales += other.sales;
        self.refunds += other.refunds;
        self.gross = self.gross.saturating_add(other.gross);
        self.refunded = self.refunded.saturating_add(other.refunded);
        add_tenders(&mut self.tenders, &other.tenders);
    }

    fn totals(&self, c: Currency) -> Totals {
        Totals {
            sales: self.sales,
            refunds: self.refunds,
            gross: format_minor(self.gross, c),
            refunded: format_minor(self.refunded, c),
            net: format_minor(self.gross.saturating_add(self.refunded), c),
            tenders: format_tenders(&self.tenders, c),
        }
    }
}

fn add_tenders(into: &mut BTreeMap<String, i64>, from: &BTreeMap<String, i64>) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_insert(0);
        *e = e.saturating_add(*v);
    }
}

fn format_tenders(t: &BTreeMap<String, i64>, c: Currency) -> BTreeMap<String, String> {
    t.iter().map(|(k, v)| (k.clone(), format_minor(*v, c))).collect()
}

fn acc_for(
    days: &mut BTreeMap<String, BTreeMap<NaiveDate, Acc>>,
    store: String,
    date: String,
) -> Option<&mut Acc> {
    let date = NaiveDate::parse_from_str(&date, "%Y-%m-%d").ok()?;
    Some(days.entry(store).or_default().entry(date).or_default())
}

const FILTER: &str = "f.currency = ?1
    AND (?2 IS NULL OR f.business_date >= ?2)
    AND (?3 IS NULL OR f.business_date <= ?3)";

/// Computes the report for business days `from..=to` (either bound optional).
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn sales_report(
    conn: &Connection,
    currency: Currency,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<SalesReport, ServerError> {
    let day = |d: Option<NaiveDate>| d.map(|d| d.format("%Y-%m-%d").to_string());
    let args = params![currency.code(), day(from), day(to)];
    let mut days: BTreeMap<String, BTreeMap<NaiveDate, Acc>> = BTreeMap::new();

    let mut stmt = conn.prepare_cached(&format!(
        "SELECT f.store, f.business_date, f.kind, COUNT(*), SUM(f.total_minor) FROM facts f
         WHERE f.kind IN ('sale', 'refund') AND {FILTER} GROUP BY 1, 2, 3"
    ))?;
    let mut rows = stmt.query(args)?;
    while let Some(r) = rows.next()? {
        let (count, sum): (i64, i64) = (r.get(3)?, r.get(4)?);
        if let Some(acc) = acc_for(&mut days, r.get(0)?, r.get(1)?) {
            if r.get::<_, String>(2)? == "sale" {
                acc.sales += u64::try_from(count).unwrap_or(0);
                acc.gross = acc.gross.saturating_add(sum);
            } else {
                acc.refunds += u64::try_from(count).unwrap_or(0);
                acc.refunded = acc.refunded.saturating_add(sum);
            }
        }
    }

    let mut stmt = conn.prepare_cached(&format!(
        "SELECT f.store, f.business_date, t.name, SUM(t.amount_minor)
         FROM fact_tenders t JOIN facts f ON f.id = t.fact_id
         WHERE {FILTER} GROUP BY 1, 2, 3"
    ))?;
    let mut rows = stmt.query(args)?;
    while let Some(r) = rows.next()? {
        let (name, sum): (String, i64) = (r.get(2)?, r.get(3)?);
        if let Some(acc) = acc_for(&mut days, r.get(0)?, r.get(1)?) {
            let e = acc.tenders.entry(name).or_insert(0);
            *e = e.saturating_add(sum);
        }
    }

    let mut total = Acc::default();
    let mut stores = BTreeMap::new();
    for (store, by_day) in days {
        let mut store_acc = Acc::default();
        let mut report = StoreReport::default();
        for (date, acc) in by_day {
            store_acc.add(&acc);
            report.days.insert(date, acc.totals(currency));
        }
        report.tenders = format_tenders(&store_acc.tenders, currency);
        total.add(&store_acc);
        stores.insert(store, report);
    }
    Ok(SalesReport {
        currency,
        stores,
        totals: total.totals(currency),
    })
}
