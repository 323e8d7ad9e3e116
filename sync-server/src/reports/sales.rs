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
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::FactDb;
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

/// Computes the report for business days `from..=to` (either bound optional).
///
/// # Errors
/// [`ServerError::Sqlite`].
pub(crate) fn sales_report(
    db: &impl FactDb,
    currency: Currency,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<SalesReport, ServerError> {
    sales_report_of(db, currency, from, to, None)
}

/// [`sales_report`] of only the stores in `only` (all when `None`); the totals are those
/// stores' totals.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub(crate) fn sales_report_of(
    db: &impl FactDb,
    currency: Currency,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<SalesReport, ServerError> {
    let wanted = |store: &str| only.is_none_or(|o| o.contains(store));
    let day = |d: Option<NaiveDate>| d.map(|d| d.format("%Y-%m-%d").to_string());
    let (from, to) = (day(from), day(to));
    let mut days: BTreeMap<String, BTreeMap<NaiveDate, Acc>> = BTreeMap::new();

    for r in db.day_totals(currency.code(), from.as_deref(), to.as_deref())? {
        if !wanted(&r.store) {
            continue;
        }
        if let Some(acc) = acc_for(&mut days, r.store, r.date) {
            if r.kind == "sale" {
                acc.sales += u64::try_from(r.count).unwrap_or(0);
                acc.gross = acc.gross.saturating_add(r.sum_minor);
            } else {
                acc.refunds += u64::try_from(r.count).unwrap_or(0);
                acc.refunded = acc.refunded.saturating_add(r.sum_minor);
            }
        }
    }

    for r in db.tender_totals(currency.code(), from.as_deref(), to.as_deref())? {
        if !wanted(&r.store) {
            continue;
        }
        if let Some(acc) = acc_for(&mut days, r.store, r.date) {
            let e = acc.tenders.entry(r.name).or_insert(0);
            *e = e.saturating_add(r.sum_minor);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::reports::projection::{Projected, project_fact};
    use caja_shared::facts::{
        self, Fact, FactBody, Line, MovementReason, Refund, Sale, StockMovement, Tender, TenderKind,
    };
    use caja_shared::ids::{FactId, StoreCode};
    use rusqlite::Connection;
    use rust_decimal::Decimal;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, d).unwrap()
    }

    fn tender(kind: TenderKind, label: Option<&str>, amount: i64) -> Tender {
        Tender {
            kind,
            label: label.map(str::to_string),
            amount_minor: amount,
            id: None,
            card: None,
            reference: None,
        }
    }

    fn base(store: &str, d: u32, body: FactBody) -> Fact {
        let mut f = facts::tests_support::sample();
        f.id = FactId::new();
        f.store = store.parse().unwrap();
        f.business_date = day(d);
        f.body = body;
        f
    }

    /// A one-line sale of `pence` (no tax) paid with `tenders`.
    fn sale(store: &str, d: u32, pence: i64, tenders: Vec<Tender>) -> Fact {
        let line = Line::priced(
            "X",
            "x",
            Decimal::ONE,
            Decimal::new(pence, 2),
            false,
            Decimal::ZERO,
            true,
            Currency::GBP,
            1,
        )
        .unwrap();
        let (net, tax, total, change) =
            facts::settle(std::slice::from_ref(&line), &tenders, Currency::GBP).unwrap();
        base(
            store,
            d,
            FactBody::Sale(Sale {
                receipt_no: "r".into(),
                currency: Currency::GBP,
                lines: vec![line],
                tenders,
                net_minor: net,
                tax_minor: tax,
                total_minor: total,
                change_minor: change,
            }),
        )
    }

    fn refund(store: &str, d: u32, pence: i64, tenders: Vec<Tender>) -> Fact {
        let line = Line::priced(
            "X",
            "x",
            Decimal::ONE,
            Decimal::new(pence, 2),
            false,
            Decimal::ZERO,
            true,
            Currency::GBP,
            -1,
        )
        .unwrap();
        base(
            store,
            d,
            FactBody::Refund(Refund {
                receipt_no: "r".into(),
                original_sale: None,
                currency: Currency::GBP,
                total_minor: line.total_minor,
                lines: vec![line],
                tenders,
                restock: true,
                reason: None,
            }),
        )
    }

    fn db_with_facts() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        let a: StoreCode = "a".parse().unwrap();
        let b: StoreCode = "b".parse().unwrap();
        let first = sale("a", 1, 1530, vec![tender(TenderKind::Cash, None, 2000)]);
        let a_facts = [
            first.clone(),
            sale(
                "a",
                1,
                1000,
                vec![tender(TenderKind::Card, Some("Credit card"), 1000)],
            ),
            refund("a", 1, 500, vec![tender(TenderKind::Cash, None, -500)]),
            sale("a", 2, 1530, vec![tender(TenderKind::Cash, None, 1530)]),
        ];
        for f in &a_facts {
            assert_eq!(project_fact(&conn, &a, f).unwrap(), Projected::Inserted);
        }
        assert_eq!(project_fact(&conn, &a, &first).unwrap(), Projected::Duplicate);
        let intruder = sale("b", 1, 99_999, vec![tender(TenderKind::Cash, None, 99_999)]);
        assert_eq!(project_fact(&conn, &a, &intruder).unwrap(), Projected::WrongStore);
        // A tampered node's fact with an amount no node of ours writes: kept out of the
        // reports (five of them would overflow the day's sum).
        let mut huge = sale("a", 1, 1530, vec![tender(TenderKind::Cash, None, 1530)]);
        if let FactBody::Sale(s) = &mut huge.body {
            s.total_minor = i64::MAX / 4;
        }
        assert_eq!(project_fact(&conn, &a, &huge).unwrap(), Projected::OutOfBounds);
        let stock = base(
            "b",
            1,
            FactBody::StockMovement(StockMovement {
                sku: "X".into(),
                quantity: Decimal::TEN,
                reason: MovementReason::Receipt,
                note: None,
            }),
        );
        for f in [
            sale("b", 1, 2550, vec![tender(TenderKind::Card, None, 2550)]),
            stock,
        ] {
            assert_eq!(project_fact(&conn, &b, &f).unwrap(), Projected::Inserted);
        }
        assert_eq!(crate::db::FactDb::fact_count(&conn).unwrap(), 6);
        conn
    }

    #[test]
    fn report_has_exact_totals_per_day_store_and_chain() {
        let conn = db_with_facts();
        let report = sales_report(&conn, Currency::GBP, None, None).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        let expected = serde_json::json!({
            "currency": "GBP",
            "stores": {
                "a": {
                    "2024-01-01": {"sales": 2, "refunds": 1, "gross": "25.30", "refunded": "-5.00",
                                   "net": "20.30", "tenders": {"Credit card": "10.00", "cash": "10.30"}},
                    "2024-01-02": {"sales": 1, "refunds": 0, "gross": "15.30", "refunded": "0.00",
                                   "net": "15.30", "tenders": {"cash": "15.30"}},
                    "tenders": {"Credit card": "10.00", "cash": "25.60"}
                },
                "b": {
                    "2024-01-01": {"sales": 1, "refunds": 0, "gross": "25.50", "refunded": "0.00",
                                   "net": "25.50", "tenders": {"card": "25.50"}},
                    "tenders": {"card": "25.50"}
                }
            },
            "totals": {"sales": 4, "refunds": 1, "gross": "66.10", "refunded": "-5.00", "net": "61.10",
                       "tenders": {"Credit card": "10.00", "card": "25.50", "cash": "25.60"}}
        });
        assert_eq!(json, expected);
        let back: SalesReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn report_filters_business_days_inclusively() {
        let conn = db_with_facts();
        let report = sales_report(&conn, Currency::GBP, Some(day(2)), Some(day(2))).unwrap();
        assert_eq!(report.stores.len(), 1);
        assert_eq!(
            report.stores["a"].days.keys().copied().collect::<Vec<_>>(),
            vec![day(2)]
        );
        assert_eq!(report.totals.sales, 1);
        assert_eq!(report.totals.net, "15.30");
        let none = sales_report(&conn, Currency::GBP, Some(day(3)), None).unwrap();
        assert!(none.stores.is_empty());
        assert_eq!(none.totals.gross, "0.00");
        // Facts in another currency are not summed into a GBP report.
        let usd = sales_report(&conn, Currency::USD, None, None).unwrap();
        assert_eq!(usd.totals.sales, 0);
    }

    #[test]
    fn change_comes_off_cash_tenders_only() {
        let t = [
            tender(TenderKind::Card, None, 500),
            tender(TenderKind::Cash, None, 300),
            tender(TenderKind::Cash, Some("Cash"), 1000),
        ];
        assert_eq!(
            caja_shared::facts::takings_by_tender(&t, 1100),
            vec![
                ("card".to_string(), 500),
                ("cash".to_string(), 0),
                ("Cash".to_string(), 200)
            ]
        );
    }
}
