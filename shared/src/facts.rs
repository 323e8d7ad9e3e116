//! Facts: immutable business events. A correction is a new fact, never an edit.
//!
//! A fact carries everything it needs later (prices, tax, who, which terminal), so it
//! never depends on catalog state when documents merge. Facts are stored in the ledger
//! documents as one JSON string each ([`Fact::encode`]).
//!
//! Compatibility rule: fields are append-only; a new field is `Option` or
//! `#[serde(default)]`; a breaking change bumps [`FACT_SCHEMA_VERSION`] and readers refuse
//! versions they do not know ([`FactError::UnknownVersion`]).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::hlc::HlcTimestamp;
use crate::ids::{FactId, NodeId, StoreCode};
use crate::money::{self, Currency, MoneyError};

/// The fact schema version this build writes and reads.
pub const FACT_SCHEMA_VERSION: u16 = 1;

/// Errors decoding or validating facts.
#[derive(Debug, thiserror::Error)]
pub enum FactError {
    /// Not valid fact JSON.
    #[error("fact is not valid JSON of the fact schema: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a newer build with a schema we do not know.
    #[error("fact schema version {0} is not supported (this build reads {FACT_SCHEMA_VERSION})")]
    UnknownVersion(u16),
    /// A money computation failed.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// The fact's own numbers do not add up (tenders short of the total, too much
    /// change, …). The message is written for the cashier who typed the amounts.
    #[error("{0}")]
    Inconsistent(String),
}

/// One fact with its envelope: who, where, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// Schema version ([`FACT_SCHEMA_VERSION`]).
    pub v: u16,
    /// UUIDv7 id, unique across the chain.
    pub id: FactId,
    /// The store the fact belongs to.
    pub store: StoreCode,
    /// The node that recorded it.
    pub node: NodeId,
    /// The terminal (till) it was recorded on, e.g. `"T1"`.
    pub terminal: String,
    /// The id of the user who recorded it (the subject of their access token).
    #[serde(default)]
    pub user: Option<String>,
    /// That user's username when the fact was recorded, for people reading the fact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// A second user who authorised this fact with their PIN (a manager override), when
    /// the recording user lacked a permission it needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_by: Option<Authorization>,
    /// Hybrid logical clock timestamp: the ordering key.
    pub hlc: HlcTimestamp,
    /// When the business event happened (UTC). Usually the node's clock at write time; an
    /// import or replay may give the original time.
    pub occurred_at: DateTime<Utc>,
    /// The store-local business day the fact counts towards; it names the ledger document.
    pub business_date: NaiveDate,
    /// What happened.
    pub body: FactBody,
}

/// The kinds of fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FactBody {
    /// A completed sale.
    Sale(Sale),
    /// Money and goods going back to a customer.
    Refund(Refund),
    /// Stock received, adjusted, written off or moved.
    StockMovement(StockMovement),
    /// A security-relevant event: a login, a failed PIN, a lockout, a logout, an override.
    Security(SecurityEvent),
    /// An event in a card tender's life (stored offline, forwarded, captured, declined,
    /// …): [`crate::payments`].
    Payment(crate::payments::PaymentEvent),
}

/// A manager override: who authorised a fact that its recorder could not make alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    /// The authorising user's id.
    pub user: String,
    /// Their username at the time.
    pub user_name: String,
    /// The permission they lent, e.g. `"refund.no_receipt"`.
    pub permission: String,
    /// The override's id (the `override_granted` security fact has the same id in
    /// `override_id`), so one override authorises one fact.
    pub override_id: String,
}

/// How a user logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    /// Username and password.
    Password,
    /// Username and PIN at a terminal.
    Pin,
}

/// A security event. The fact's envelope says who (`user`, when the user is known), where
/// (`terminal`) and when. No secret (password, PIN, token) is ever part of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SecurityEvent {
    /// A user logged in and a session started.
    LoginSucceeded {
        /// Password or PIN.
        method: LoginMethod,
        /// The session (refresh-token family) id.
        session: String,
    },
    /// A login was refused.
    LoginFailed {
        /// Password or PIN.
        method: LoginMethod,
        /// The username given (at most 64 characters).
        username: String,
        /// Why: `wrong secret`, `unknown user`, `disabled`, `locked`, `no PIN set`, ….
        reason: String,
    },
    /// Too many failed logins (PIN or password): the user is locked out on this terminal
    /// (or every terminal) until `until`.
    Locked {
        /// The username.
        username: String,
        /// Consecutive failures that caused the lock.
        failures: u32,
        /// When the lock ends (UTC).
        until: DateTime<Utc>,
        /// Whether the lock holds on every terminal of the node (too many failures across
        /// terminals), not just the fact's.
        #[serde(default)]
        all_terminals: bool,
    },
    /// A user logged out: the session and its access token are revoked.
    Logout {
        /// The session id.
        session: String,
    },
    /// A session was revoked because one of its refresh tokens was used twice.
    SessionRevoked {
        /// The session id.
        session: String,
        /// Why.
        reason: String,
    },
    /// A user authorised one action with their PIN (a manager override).
    OverrideGranted {
        /// The permission lent.
        permission: String,
        /// The override's id; the fact it authorised carries it in
        /// [`Authorization::override_id`].
        override_id: String,
        /// The user id of the person who asked for it.
        requested_by: Option<String>,
    },
}

/// How a customer paid (or was paid back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenderKind {
    /// Notes and coins.
    Cash,
    /// Payment card (credit or debit).
    Card,
    /// Anything else (e-wallet, voucher); its `label` says what.
    Other,
}

/// One tender of a sale or refund, in minor units of the fact's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tender {
    /// Cash, card or other.
    pub kind: TenderKind,
    /// The name shown on receipts and reports (`"Ewallet"`); `None` uses the kind.
    #[serde(default)]
    pub label: Option<String>,
    /// Amount tendered in minor units: positive for a sale, negative for a refund.
    pub amount_minor: i64,
    /// The tender's own id (facts written before tenders had one have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<crate::ids::TenderId>,
    /// For a card tender: the provider token and whether it was taken online or stored
    /// offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<crate::payments::CardPayment>,
    /// For an `other` tender (voucher, e-wallet): its reference (voucher number, wallet
    /// transaction id), at most 64 characters at the node's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl Tender {
    /// The name reports group by: the label if there is one, else the kind
    /// (`"cash"`, `"card"`, `"other"`).
    pub fn report_name(&self) -> String {
        match &self.label {
            Some(l) if !l.trim().is_empty() => l.clone(),
            _ => match self.kind {
                TenderKind::Cash => "cash".into(),
                TenderKind::Card => "card".into(),
                TenderKind::Other => "other".into(),
            },
        }
    }
}

/// A sale's tenders with the change taken off its cash tenders (first cash tender first):
/// `(report name, amount in minor units)`.
pub fn takings_by_tender(tenders: &[Tender], change_minor: i64) -> Vec<(String, i64)> {
    let mut change = change_minor.max(0);
    tenders
        .iter()
        .map(|t| {
            let mut amount = t.amount_minor;
            if t.kind == TenderKind::Cash && change > 0 && amount > 0 {
                let take = change.min(amount);
                amount -= take;
                change -= take;
            }
            (t.report_name(), amount)
        })
        .collect()
}

/// One priced line of a sale or refund.
///
/// Amounts are minor units; `net = round(quantity × unit_price)`, `tax = round(net ×
/// tax_rate)`, `total = net + tax`, each rounded per [`money::round_to_minor`]. In a refund
/// the quantity is what came back (positive) and the amounts are negative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Stock keeping unit (product code).
    pub sku: String,
    /// Description at the time of the sale.
    pub description: String,
    /// Quantity sold (or returned); positive.
    pub quantity: Decimal,
    /// Unit price in major units, tax exclusive; may have more decimals than the currency.
    pub unit_price: Decimal,
    /// True when the cashier (or an import) used a price other than the catalog's.
    #[serde(default)]
    pub price_overridden: bool,
    /// Exclusive tax rate as a fraction (`0.05`).
    pub tax_rate: Decimal,
    /// Net amount, minor units.
    pub net_minor: i64,
    /// Tax amount, minor units.
    pub tax_minor: i64,
    /// `net_minor + tax_minor`.
    pub total_minor: i64,
    /// Whether the line moves stock (false for postage, discounts, fees).
    pub stock_tracked: bool,
}

impl Line {
    /// Prices a line by the rounding rule. `sign` is `1` for a sale and `-1` for a refund.
    ///
    /// # Errors
    /// [`FactError::Money`] on overflow.
    #[allow(clippy::too_many_arguments)]
    pub fn priced(
        sku: &str,
        description: &str,
        quantity: Decimal,
        unit_price: Decimal,
        price_overridden: bool,
        tax_rate: Decimal,
        stock_tracked: bool,
        currency: Currency,
        sign: i64,
    ) -> Result<Line, FactError> {
        let net = money::line_total_minor(quantity, unit_price, currency)? * sign;
        let tax = money::tax_minor(net, tax_rate, currency)?;
        Ok(Line {
            sku: sku.to_string(),
            description: description.to_string(),
            quantity,
            unit_price,
            price_overridden,
            tax_rate,
            net_minor: net,
            tax_minor: tax,
            total_minor: net.checked_add(tax).ok_or(MoneyError::Overflow)?,
            stock_tracked,
        })
    }
}

/// A completed sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sale {
    /// Human-readable receipt number `<store>-<terminal>-<seq>`, unique offline.
    pub receipt_no: String,
    /// Currency of every amount in the sale.
    pub currency: Currency,
    /// The priced lines.
    pub lines: Vec<Line>,
    /// How it was paid; the tenders add up to at least `total_minor`.
    pub tenders: Vec<Tender>,
    /// Sum of line nets, minor units.
    pub net_minor: i64,
    /// Sum of line taxes, minor units.
    pub tax_minor: i64,
    /// Sum of line totals: what the customer owes, minor units.
    pub total_minor: i64,
    /// Cash given back: tenders minus total, minor units (0 when exact).
    pub change_minor: i64,
}

/// A refund, with or without the original sale (a receipt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    /// Receipt number of the refund itself.
    pub receipt_no: String,
    /// The sale being refunded, when the customer has the receipt.
    #[serde(default)]
    pub original_sale: Option<FactId>,
    /// Currency of every amount.
    pub currency: Currency,
    /// Lines returned: quantities positive, amounts negative.
    pub lines: Vec<Line>,
    /// Money paid back: amounts negative.
    pub tenders: Vec<Tender>,
    /// Sum of line totals (negative or zero), minor units.
    pub total_minor: i64,
    /// Whether returned goods go back into stock on hand.
    #[serde(default = "yes")]
    pub restock: bool,
    /// Why (free text), e.g. `"damaged"`.
    #[serde(default)]
    pub reason: Option<String>,
}

fn yes() -> bool {
    true
}

/// Why stock moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementReason {
    /// Goods received from a supplier.
    Receipt,
    /// A manual correction (found, miscounted).
    Adjustment,
    /// The difference found by a stock count.
    Count,
    /// Damaged, lost or expired goods written off.
    WriteOff,
    /// Sent to another store.
    TransferOut,
    /// Received from another store.
    TransferIn,
}

/// A stock movement: a signed change of stock on hand for one SKU at the fact's store.
/// Stock on hand is the sum of movements (sales and refunds count as movements too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockMovement {
    /// The product.
    pub sku: String,
    /// Signed quantity: positive adds stock, negative removes it.
    pub quantity: Decimal,
    /// Why.
    pub reason: MovementReason,
    /// Free-text note (supplier delivery number, "damaged", …).
    #[serde(default)]
    pub note: Option<String>,
}

impl Fact {
    /// Encodes the fact as its JSON string (the value stored in a ledger document).
    pub fn encode(&self) -> String {
        // Serializing these plain data types cannot fail: no maps with non-string keys.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes a fact and checks its schema version.
    ///
    /// # Errors
    /// [`FactError::Json`] for malformed input, [`FactError::UnknownVersion`] for a schema
    /// this build does not know.
    pub fn decode(s: &str) -> Result<Fact, FactError> {
        #[derive(Deserialize)]
        struct Version {
            v: u16,
        }
        let v: Version = serde_json::from_str(s)?;
        if v.v != FACT_SCHEMA_VERSION {
            return Err(FactError::UnknownVersion(v.v));
        }
        Ok(serde_json::from_str(s)?)
    }

    /// Whether every amount of a sale or refund (total, each tender, change) is within
    /// [`MAX_AMOUNT_MINOR`] either way. [`settle`] refuses anything else, so a fact that is
    /// not came from outside our code (a tampered node) and must not reach the reports,
    /// whose sums it could otherwise overflow.
    pub fn amounts_within_bounds(&self) -> bool {
        let ok = |a: i64| a.checked_abs().is_some_and(|a| a <= MAX_AMOUNT_MINOR);
        match &self.body {
            FactBody::Sale(s) => {
                ok(s.total_minor) && ok(s.change_minor) && s.tenders.iter().all(|t| ok(t.amount_minor))
            }
            FactBody::Refund(r) => ok(r.total_minor) && r.tenders.iter().all(|t| ok(t.amount_minor)),
            FactBody::Payment(p) => ok(p.amount_minor),
            FactBody::StockMovement(_) | FactBody::Security(_) => true,
        }
    }

    /// The money this fact adds to takings, in minor units: a sale's total, a refund's
    /// (negative) total, zero for stock movements.
    pub fn takings_minor(&self) -> i64 {
        match &self.body {
            FactBody::Sale(s) => s.total_minor,
            FactBody::Refund(r) => r.total_minor,
            FactBody::StockMovement(_) | FactBody::Security(_) | FactBody::Payment(_) => 0,
        }
    }
}

/// The largest amount one sale or refund may have, in minor units, for its total and for
/// the tenders together: 100,000,000,000 (one billion pounds in pence). Far beyond any
/// till, and low enough that a report summing 90 million of them cannot overflow `i64`.
pub const MAX_AMOUNT_MINOR: i64 = 100_000_000_000;

/// Sums line amounts and checks a sale's tenders cover its total.
///
/// Returns `(net, tax, total, change)` in minor units; `currency` only formats messages.
///
/// # Errors
/// [`FactError::Inconsistent`] when the tenders are short of the total, a non-cash
/// tender overpays (only cash gives change), or the total or the tenders exceed
/// [`MAX_AMOUNT_MINOR`]; [`FactError::Money`] on overflow.
pub fn settle(
    lines: &[Line],
    tenders: &[Tender],
    currency: Currency,
) -> Result<(i64, i64, i64, i64), FactError> {
    let m = |minor: i64| format!("{} {}", money::format_minor(minor, currency), currency);
    let sum = |f: fn(&Line) -> i64| -> Result<i64, FactError> {
        lines.iter().try_fold(0i64, |acc, l| {
            acc.checked_add(f(l))
                .ok_or(FactError::Money(MoneyError::Overflow))
        })
    };
    let (net, tax, total) = (
        sum(|l| l.net_minor)?,
        sum(|l| l.tax_minor)?,
        sum(|l| l.total_minor)?,
    );
    let tendered = tenders
        .iter()
        .try_fold(0i64, |acc, t| acc.checked_add(t.amount_minor))
        .ok_or(FactError::Money(MoneyError::Overflow))?;
    let over = |a: i64| a.checked_abs().is_none_or(|a| a > MAX_AMOUNT_MINOR);
    if over(total) {
        return Err(FactError::Inconsistent(format!(
            "the total {} is beyond what one sale or refund may be (at most {} either way)",
            m(total),
            m(MAX_AMOUNT_MINOR)
        )));
    }
    if over(tendered) || tenders.iter().any(|t| over(t.amount_minor)) {
        return Err(FactError::Inconsistent(format!(
            "tenders of {} are beyond what one sale or refund may take (at most {} either way)",
            m(tendered),
            m(MAX_AMOUNT_MINOR)
        )));
    }
    if total >= 0 {
        if tendered < total {
            return Err(FactError::Inconsistent(format!(
                "tenders of {} are short of the total {}",
                m(tendered),
                m(total)
            )));
        }
        let change = tendered - total;
        // Change beyond 100,000 in major units is a mistyped amount, not a payment.
        let max_change = 10i64.pow(currency.exponent()).saturating_mul(100_000);
        if change > max_change {
            return Err(FactError::Inconsistent(format!(
                "tenders of {} leave change of {}, more than {}: check the amount tendered",
                m(tendered),
                m(change),
                m(max_change)
            )));
        }
        let cash: i64 = tenders
            .iter()
            .filter(|t| t.kind == TenderKind::Cash)
            .map(|t| t.amount_minor)
            .sum();
        if change > cash.max(0) {
            return Err(FactError::Inconsistent(format!(
                "tenders of {} are more than the total {}, and only cash gives change: a card or other tender may be at most what is still due",
                m(tendered),
                m(total)
            )));
        }
        Ok((net, tax, total, change))
    } else {
        if tendered != total {
            return Err(FactError::Inconsistent(format!(
                "refund tenders of {} must equal the total {}",
                m(tendered),
                m(total)
            )));
        }
        Ok((net, tax, total, 0))
    }
}

/// Sample facts for tests in this crate and others.
#[doc(hidden)]
#[allow(clippy::unwrap_used)]
pub mod tests_support {
    use super::*;
    use crate::hlc::HlcTimestamp;
    use std::str::FromStr;

    /// A one-line cash sale of 6 x 2.55 GBP paid with 20.00.
    pub fn sample() -> Fact {
        let line = Line::priced(
            "85123A",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            Decimal::from(6),
            Decimal::from_str("2.55").unwrap(),
            false,
            Decimal::ZERO,
            true,
            Currency::GBP,
            1,
        )
        .unwrap();
        let tenders = vec![Tender {
            kind: TenderKind::Cash,
            label: None,
            amount_minor: 2000,
            id: None,
            card: None,
            reference: None,
        }];
        let (net, tax, total, change) = settle(std::slice::from_ref(&line), &tenders, Currency::GBP).unwrap();
        Fact {
            v: FACT_SCHEMA_VERSION,
            id: FactId::new(),
            store: StoreCode::from_str("united-kingdom").unwrap(),
            node: NodeId::new(),
            terminal: "T1".into(),
            user: None,
            user_name: None,
            authorized_by: None,
            hlc: HlcTimestamp {
                wall_ms: 1,
                counter: 0,
            },
            occurred_at: DateTime::parse_from_rfc3339("2010-12-01T08:26:00Z")
                .unwrap()
                .with_timezone(&Utc),
            business_date: NaiveDate::from_ymd_opt(2010, 12, 1).unwrap(),
            body: FactBody::Sale(Sale {
                receipt_no: "united-kingdom-T1-1".into(),
                currency: Currency::GBP,
                lines: vec![line],
                tenders,
                net_minor: net,
                tax_minor: tax,
                total_minor: total,
                change_minor: change,
            }),
        }
    }

    /// One security event of each kind, for tests that check every kind is handled.
    pub fn security_events() -> Vec<SecurityEvent> {
        let events = vec![
            SecurityEvent::LoginSucceeded {
                method: LoginMethod::Pin,
                session: "s".into(),
            },
            SecurityEvent::LoginFailed {
                method: LoginMethod::Password,
                username: "u".into(),
                reason: "r".into(),
            },
            SecurityEvent::Locked {
                username: "u".into(),
                failures: 5,
                until: Utc::now(),
                all_terminals: false,
            },
            SecurityEvent::Logout { session: "s".into() },
            SecurityEvent::SessionRevoked {
                session: "s".into(),
                reason: "r".into(),
            },
            SecurityEvent::OverrideGranted {
                permission: "p".into(),
                override_id: "o".into(),
                requested_by: None,
            },
        ];
        for e in &events {
            // Exhaustive on purpose: a new event does not compile until it is listed above.
            match e {
                SecurityEvent::LoginSucceeded { .. }
                | SecurityEvent::LoginFailed { .. }
                | SecurityEvent::Locked { .. }
                | SecurityEvent::Logout { .. }
                | SecurityEvent::SessionRevoked { .. }
                | SecurityEvent::OverrideGranted { .. } => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tests_support::sample as sample_sale;

    #[test]
    fn sale_round_trips_and_settles() {
        let f = sample_sale();
        assert_eq!(f.takings_minor(), 1530);
        let FactBody::Sale(s) = &f.body else { panic!() };
        assert_eq!(s.change_minor, 470);
        assert_eq!(Fact::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn refuses_unknown_version_and_garbage() {
        let mut f = sample_sale();
        f.v = 99;
        assert!(matches!(
            Fact::decode(&f.encode()),
            Err(FactError::UnknownVersion(99))
        ));
        assert!(matches!(Fact::decode("{not json"), Err(FactError::Json(_))));
    }

    #[test]
    fn security_events_round_trip_and_old_facts_still_decode() {
        let mut f = sample_sale();
        f.user = Some("u1".into());
        f.user_name = Some("ana".into());
        f.authorized_by = Some(Authorization {
            user: "m1".into(),
            user_name: "mo".into(),
            permission: "refund.no_receipt".into(),
            override_id: "o1".into(),
        });
        assert_eq!(Fact::decode(&f.encode()).unwrap(), f);
        f.body = FactBody::Security(SecurityEvent::Locked {
            username: "ana".into(),
            failures: 5,
            until: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            all_terminals: false,
        });
        let json = f.encode();
        assert!(json.contains(r#""type":"security","event":"locked""#), "{json}");
        assert_eq!(Fact::decode(&json).unwrap(), f);
        assert_eq!(f.takings_minor(), 0);
        // A fact written before users existed (no user_name, no authorized_by) decodes.
        let mut old: serde_json::Value = serde_json::from_str(&sample_sale().encode()).unwrap();
        old.as_object_mut().unwrap().remove("user_name");
        assert!(Fact::decode(&old.to_string()).is_ok());
    }

    #[test]
    fn card_cannot_give_change() {
        let line = Line::priced(
            "X",
            "x",
            Decimal::ONE,
            Decimal::TEN,
            false,
            Decimal::ZERO,
            true,
            Currency::GBP,
            1,
        )
        .unwrap();
        let card = vec![Tender {
            kind: TenderKind::Card,
            label: None,
            amount_minor: 1500,
            id: None,
            card: None,
            reference: None,
        }];
        assert!(settle(std::slice::from_ref(&line), &card, Currency::GBP).is_err());
        let short = vec![Tender {
            kind: TenderKind::Cash,
            label: None,
            amount_minor: 900,
            id: None,
            card: None,
            reference: None,
        }];
        assert!(settle(std::slice::from_ref(&line), &short, Currency::GBP).is_err());
    }

    #[test]
    fn amounts_beyond_the_bound_are_refused_and_detected() {
        let line = |qty: i64, price: i64| {
            Line::priced(
                "X",
                "x",
                Decimal::from(qty),
                Decimal::from(price),
                false,
                Decimal::ZERO,
                true,
                Currency::GBP,
                1,
            )
            .unwrap()
        };
        let cash = |amount_minor: i64| {
            vec![Tender {
                kind: TenderKind::Cash,
                label: None,
                amount_minor,
                id: None,
                card: None,
                reference: None,
            }]
        };
        // 1,000,000 x 1,000 = 1,000,000,000.00: exactly the bound.
        let at = [line(1_000_000, 1_000)];
        assert!(settle(&at, &cash(MAX_AMOUNT_MINOR), Currency::GBP).is_ok());
        let over = [line(1_000_000, 1_000), line(1, 1)];
        let e = settle(&over, &cash(MAX_AMOUNT_MINOR + 100), Currency::GBP).unwrap_err();
        assert!(
            e.to_string().contains("beyond what one sale or refund may be"),
            "{e}"
        );
        // A tiny sale paid with an absurd cash amount.
        let small = [line(1, 3)];
        let e = settle(&small, &cash(i64::MAX / 2), Currency::GBP).unwrap_err();
        assert!(e.to_string().contains("tenders of"), "{e}");

        let mut f = sample_sale();
        assert!(f.amounts_within_bounds());
        if let FactBody::Sale(s) = &mut f.body {
            s.total_minor = MAX_AMOUNT_MINOR + 1;
        }
        assert!(!f.amounts_within_bounds(), "a tampered fact is detected");
        if let FactBody::Sale(s) = &mut f.body {
            s.total_minor = 1530;
            s.tenders[0].amount_minor = i64::MIN;
        }
        assert!(!f.amounts_within_bounds());
    }
}
