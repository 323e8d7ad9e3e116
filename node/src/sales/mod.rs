//! Sales and refunds: turning a cashier's request into a priced, settled fact.
//!
//! - [`view`]: the response shape.
//! - [`card`]: card tokens, other-tender labels and the store-and-forward rules.
//! - [`online`]: authorizing and capturing card tenders with the provider.
//!
//! Prices come from the catalog projection unless the request overrides them; every
//! amount is computed by `caja_shared::facts::Line::priced` (the one rounding rule).

pub mod card;
pub mod online;
pub mod view;

use caja_shared::auth::Permission;
use caja_shared::facts::{self, Fact, FactBody, Line, Refund, Sale, Tender, TenderKind};
use caja_shared::ids::FactId;
use caja_shared::money::parse_minor;
use caja_shared::payments::{CardMode, CardPayment, PaymentEvent, PaymentOutcome, TenderId};
use chrono::{DateTime, Utc};
use rusqlite::params;
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Actor;
use crate::config::check_terminal;
use crate::decimal::{self, check_price, check_quantity};
use crate::identity::Identity;
use crate::store::StoreError;
use crate::store::{Ctx, facts as ledger, projection};

/// Why a sale or refund was refused. The HTTP layer maps each variant to a problem.
#[derive(Debug, thiserror::Error)]
pub enum SaleError {
    /// A field of the request is invalid (422 `invalid-input`).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, e.g. `lines[0].quantity`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The SKU is not in the catalog (422 `unknown-sku`).
    #[error("unknown SKU {0:?}: it is not in this store's catalog")]
    UnknownSku(String),
    /// No such resource (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with what is stored, e.g. refunding more than was sold (409).
    #[error("{0}")]
    Conflict(String),
    /// Money did not add up (422 `invalid-amount`).
    #[error(transparent)]
    Money(#[from] caja_shared::money::MoneyError),
    /// The fact could not be built (422 `invalid-amount`).
    #[error(transparent)]
    Fact(#[from] caja_shared::facts::FactError),
    /// A permission or manager override refused it.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The card provider declined a card tender (422 `card-declined`): the provider's
    /// sentence for the cashier.
    #[error("{0}")]
    CardDeclined(String),
    /// This card kind is never taken offline (422 `offline-card-not-allowed`).
    #[error("{0}")]
    OfflineNotAllowed(String),
    /// The sale's offline card amount is over the floor limit (422 `offline-floor-limit`).
    #[error("{0}")]
    OfflineFloorLimit(String),
    /// The node's or the store's offline total would pass its cap (422
    /// `offline-cap-reached`).
    #[error("{0}")]
    OfflineCapReached(String),
    /// The offline acceptance window has closed (422 `offline-window-closed`).
    #[error("{0}")]
    OfflineWindowClosed(String),
    /// Storage failed (500; boxed: storage errors are large and rare).
    #[error(transparent)]
    Store(Box<StoreError>),
}

impl SaleError {
    /// Shorthand for [`SaleError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SaleError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for SaleError {
    fn from(e: StoreError) -> Self {
        SaleError::Store(Box::new(e))
    }
}

impl From<rusqlite::Error> for SaleError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e).into()
    }
}

impl From<caja_shared::docs::DocError> for SaleError {
    fn from(e: caja_shared::docs::DocError) -> Self {
        StoreError::Schema(e).into()
    }
}

/// Most lines in one sale or refund. Real wholesale orders are long: the online-retail
/// file in `shared/data` has invoices of up to 705 priced lines, so 500 refused real
/// trading; 1,000 lines stay far inside the default 1 MiB request body.
pub const MAX_LINES: usize = 1000;

/// Most tenders one sale may have (split payments across cash, cards and vouchers).
pub const MAX_TENDERS: usize = 20;

/// Longest refund reason, in bytes (like a stock movement's note).
pub const MAX_REASON_BYTES: usize = 500;

/// A line of a sale or refund request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    /// The product's SKU.
    pub sku: String,
    /// Quantity, positive, at most 3 decimals (string or number).
    #[serde(deserialize_with = "decimal::de")]
    #[schema(value_type = String, example = "2")]
    pub quantity: Decimal,
    /// Unit price override (tax exclusive, major units); absent uses the catalog price.
    #[serde(default, deserialize_with = "decimal::de_opt")]
    #[schema(value_type = Option<String>, example = "2.55")]
    pub unit_price: Option<Decimal>,
}

/// A tender of a sale request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenderRequest {
    /// `cash`, `card` or `other`.
    #[schema(value_type = String, example = "cash")]
    pub kind: TenderKind,
    /// Label for receipts and reports (e.g. `"Ewallet"`), at most 40 characters.
    #[serde(default)]
    pub label: Option<String>,
    /// Amount tendered, decimal string in major units (`"20.00"`; a whole number may be a
    /// JSON integer, `20`), no more decimals than the currency has.
    #[schema(example = "20.00")]
    #[serde(deserialize_with = "caja_shared::money::de_decimal_text")]
    pub amount: String,
    /// For a card tender: the provider token from the payment terminal (`tok_…`/`pm_…`,
    /// at most 64 characters). Absent: a card taken on a stand-alone terminal.
    #[serde(default)]
    pub card_token: Option<String>,
    /// For a tokenized card tender: `credit` (default), `debit`, `gift_card`, `keyed`,
    /// `cashback`.
    #[serde(default)]
    pub card_kind: Option<card::CardKind>,
    /// For an `other` tender: its reference (voucher number), at most 64 characters.
    #[serde(default)]
    pub reference: Option<String>,
}

/// `POST /v1/sales` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleRequest {
    /// 1 to [`MAX_LINES`] (1,000) lines.
    pub lines: Vec<LineRequest>,
    /// 1 to [`MAX_TENDERS`] (20) tenders adding up to at least the total (only cash gives
    /// change).
    pub tenders: Vec<TenderRequest>,
    /// When the sale happened (RFC 3339); default now. Imports and replays pass the
    /// original time; it decides the business day.
    #[serde(default, deserialize_with = "crate::timestamp::de_opt")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Terminal id; default the node's.
    #[serde(default)]
    pub terminal: Option<String>,
}

/// How a refund pays back.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundTenderRequest {
    /// `cash`, `card` or `other`.
    #[schema(value_type = String, example = "cash")]
    pub kind: TenderKind,
    /// Label, at most 40 characters.
    #[serde(default)]
    pub label: Option<String>,
}

/// `POST /v1/refunds` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// The sale being refunded (with receipt); absent for a refund without receipt.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub original_sale: Option<FactId>,
    /// Lines returned (positive quantities). With a receipt, the original's prices apply
    /// and the quantity may not exceed what was sold less earlier refunds.
    pub lines: Vec<LineRequest>,
    /// How the money goes back; default cash.
    #[serde(default)]
    pub tender: Option<RefundTenderRequest>,
    /// Why (at most [`MAX_REASON_BYTES`], 500 bytes).
    #[serde(default)]
    pub reason: Option<String>,
    /// Whether goods go back into stock; default true.
    #[serde(default)]
    pub restock: Option<bool>,
    /// When it happened; default now.
    #[serde(default, deserialize_with = "crate::timestamp::de_opt")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Terminal id; default the node's.
    #[serde(default)]
    pub terminal: Option<String>,
}

/// The terminal of a fact: the request's, else the one the user logged in on with their
/// PIN, else the node's default. A PIN session records facts of its own terminal only.
fn terminal(ident: &Identity, actor: &Actor, t: &Option<String>) -> Result<String, SaleError> {
    let session = actor.principal.terminal.as_ref();
    match (t, session) {
        (Some(t), Some(s)) if t != s => Err(SaleError::invalid(
            "terminal",
            format!("this session is logged in on terminal {s}, not {t}"),
        )),
        (Some(t), _) => {
            check_terminal(t).map_err(|r| SaleError::invalid("terminal", r))?;
            Ok(t.clone())
        }
        (None, Some(s)) => Ok(s.clone()),
        (None, None) => Ok(ident.terminal.clone()),
    }
}

fn check_lines(lines: &[LineRequest]) -> Result<(), SaleError> {
    if lines.is_empty() {
        return Err(SaleError::invalid("lines", "at least one line is required"));
    }
    if lines.len() > MAX_LINES {
        return Err(SaleError::invalid(
            "lines",
            format!("at most {MAX_LINES} lines, got {}", lines.len()),
        ));
    }
    for (i, l) in lines.iter().enumerate() {
        check_quantity(l.quantity, false)
            .map_err(|r| SaleError::invalid(format!("lines[{i}].quantity"), r))?;
        if let Some(p) = l.unit_price {
            check_price(p).map_err(|r| SaleError::invalid(format!("lines[{i}].unit_price"), r))?;
        }
    }
    Ok(())
}

/// The time of a new fact: the request's `occurred_at` (imports, replays) or now. A time
/// before 2000-01-01 or more than [`BACKDATE_TOLERANCE`] ahead of this node's clock is
/// refused: nothing is sold in the future, and it would file the fact under a business
/// day that has not begun.
///
/// # Errors
/// Why the time is refused (the caller reports it on field `occurred_at`).
pub fn occurred_at(at: Option<DateTime<Utc>>) -> Result<DateTime<Utc>, String> {
    let now = Utc::now();
    let Some(at) = at else { return Ok(now) };
    let earliest = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
        .unwrap_or_default()
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    if at > now + BACKDATE_TOLERANCE {
        return Err(format!(
            "{} is in the future (this node's clock says {})",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    if at < earliest {
        return Err(format!("{} is before 2000-01-01", at.to_rfc3339()));
    }
    Ok(at)
}

/// How far from the node's clock a sale or refund may be dated without `sale.backdate`:
/// 5 minutes (a till's clock a little off; anything more rewrites a closed day's takings).
pub const BACKDATE_TOLERANCE: chrono::Duration = chrono::Duration::minutes(5);

/// Whether `at` is further back than [`BACKDATE_TOLERANCE`] (the future is refused by
/// [`occurred_at`]).
fn backdated(at: DateTime<Utc>) -> bool {
    Utc::now() - at > BACKDATE_TOLERANCE
}

fn receipt_no(ctx: &Ctx<'_>, ident: &Identity, terminal: &str) -> Result<String, SaleError> {
    let seq = ledger::next_seq(ctx, &format!("receipt/{terminal}"))?;
    Ok(format!("{}-{terminal}-{seq}", ident.store))
}

/// Prices and records a sale in the caller's writer job.
///
/// # Errors
/// [`SaleError::Invalid`] for bad lines or tenders, [`SaleError::UnknownSku`],
/// [`SaleError::Fact`] when tenders do not cover the total, [`SaleError::Store`].
pub fn checkout(
    ctx: &mut Ctx<'_>,
    ident: &Identity,
    actor: &Actor,
    req: &SaleRequest,
) -> Result<Fact, SaleError> {
    checkout_with(ctx, ident, actor, req, &[])
}

/// Like [`checkout`], with the card tenders the provider already approved (`online[i]`
/// for tender `i`); every other tokenized card tender is stored offline under the store's
/// rules ([`card::check_offline`]) and gets a `StoredOffline` payment fact in this job.
///
/// # Errors
/// As [`checkout`], and the offline refusals of [`card::check_offline`].
pub fn checkout_with(
    ctx: &mut Ctx<'_>,
    ident: &Identity,
    actor: &Actor,
    req: &SaleRequest,
    online: &[Option<card::OnlineCard>],
) -> Result<Fact, SaleError> {
    check_lines(&req.lines)?;
    let at = occurred_at(req.occurred_at).map_err(|r| SaleError::invalid("occurred_at", r))?;
    if req.tenders.is_empty() {
        return Err(SaleError::invalid("tenders", "at least one tender is required"));
    }
    if req.tenders.len() > MAX_TENDERS {
        return Err(SaleError::invalid(
            "tenders",
            format!("at most {MAX_TENDERS} tenders, got {}", req.tenders.len()),
        ));
    }
    let terminal = terminal(ident, actor, &req.terminal)?;
    let c = ident.currency;
    let mut lines = Vec::with_capacity(req.lines.len());
    for l in &req.lines {
        let p = projection::product(ctx.conn, &l.sku)?.ok_or_else(|| SaleError::UnknownSku(l.sku.clone()))?;
        let price = l.unit_price.unwrap_or(p.unit_price);
        let overridden = price != p.unit_price;
        lines.push(Line::priced(
            &p.sku,
            &p.name,
            l.quantity,
            price,
            overridden,
            p.tax_rate,
            p.stock_tracked,
            c,
            1,
        )?);
    }
    let mut tenders = Vec::with_capacity(req.tenders.len());
    let mut offline = Vec::new();
    for (i, t) in req.tenders.iter().enumerate() {
        let amount = parse_minor(&t.amount, c)
            .map_err(|e| SaleError::invalid(format!("tenders[{i}].amount"), e.to_string()))?;
        if amount < 0 {
            return Err(SaleError::invalid(
                format!("tenders[{i}].amount"),
                "must not be negative",
            ));
        }
        card::check_tender(i, t)?;
        let pre = online.get(i).and_then(Option::as_ref);
        let card = t.card_token.as_ref().map(|token| CardPayment {
            token: token.clone(),
            mode: match pre {
                Some(o) => CardMode::Online {
                    provider_ref: o.provider_ref.clone(),
                },
                // Set below, once the store's settings are read.
                None => CardMode::StoredOffline { forward_by: at },
            },
        });
        if card.is_some() && pre.is_none() {
            offline.push((t.card_kind.unwrap_or_default(), amount));
        }
        tenders.push(Tender {
            kind: t.kind,
            label: t.label.clone(),
            amount_minor: amount,
            id: Some(pre.map(|o| o.id).unwrap_or_default()),
            card,
            reference: t.reference.clone(),
        });
    }
    let (net, tax, total, change) =
        facts::settle(&lines, &tenders, c).map_err(|e| SaleError::invalid("tenders", e.to_string()))?;
    let mut author = actor.principal.author();
    let mut needed = Vec::new();
    if lines.iter().any(|l| l.price_overridden) {
        needed.push((
            Permission::PriceOverride,
            "selling at a price other than the catalog's",
        ));
    }
    if backdated(at) {
        needed.push((Permission::SaleBackdate, "a sale dated more than 5 minutes ago"));
    }
    let now = Utc::now();
    let (settings, over_floor) = card::check_offline(ctx, ident, actor, &offline, c, now)?;
    if over_floor {
        needed.push((
            Permission::PaymentOfflineOverride,
            "a card taken offline above the store's floor limit",
        ));
    }
    let forward_by = now
        + chrono::Duration::seconds(
            i64::try_from(settings.forward_deadline_secs)
                .unwrap_or(i64::MAX / 1000)
                .min(10 * 365 * 86_400),
        );
    for t in &mut tenders {
        if let Some(CardPayment {
            mode: CardMode::StoredOffline { forward_by: f },
            ..
        }) = &mut t.card
        {
            *f = forward_by;
        }
    }
    author.authorized_by = actor.authorize_all(ctx, &needed, &terminal)?;
    let receipt = receipt_no(ctx, ident, &terminal)?;
    let stored: Vec<(TenderId, i64)> = tenders
        .iter()
        .filter(|t| {
            matches!(
                t.card,
                Some(CardPayment {
                    mode: CardMode::StoredOffline { .. },
                    ..
                })
            )
        })
        .filter_map(|t| t.id.map(|id| (id, t.amount_minor)))
        .collect();
    let body = FactBody::Sale(Sale {
        receipt_no: receipt,
        currency: c,
        lines,
        tenders,
        net_minor: net,
        tax_minor: tax,
        total_minor: total,
        change_minor: change,
    });
    let fact = ledger::envelope(ctx, ident, terminal.clone(), at, &author, body);
    ledger::record(ctx, &fact)?;
    for (tender, amount) in stored {
        let event = FactBody::Payment(PaymentEvent {
            tender,
            sale: fact.id,
            receipt_no: Some(receipt_of(&fact)),
            outcome: PaymentOutcome::StoredOffline,
            amount_minor: amount,
            currency: c,
            provider_ref: None,
            idempotency_key: None,
            code: None,
            message: Some(format!("stored offline; forward by {}", forward_by.to_rfc3339())),
        });
        let e = ledger::envelope(ctx, ident, terminal.clone(), at, &author, event);
        ledger::record(ctx, &e)?;
    }
    Ok(fact)
}

fn receipt_of(f: &Fact) -> String {
    match &f.body {
        FactBody::Sale(s) => s.receipt_no.clone(),
        FactBody::Refund(r) => r.receipt_no.clone(),
        _ => String::new(),
    }
}

/// Reads a stored sale or refund fact.
///
/// # Errors
/// [`SaleError::Store`]; a stored fact that does not decode is reported as such.
pub fn fact_by_id(conn: &rusqlite::Connection, id: &FactId) -> Result<Option<Fact>, SaleError> {
    let body: Option<String> = rusqlite::OptionalExtension::optional(
        conn.prepare_cached("SELECT body FROM facts WHERE fact_id = ?1")?
            .query_row(params![id.to_string()], |r| r.get(0)),
    )?;
    body.map(|b| Fact::decode(&b).map_err(SaleError::from))
        .transpose()
}

/// Quantity of `sku` already refunded against `original`.
fn refunded_qty(conn: &rusqlite::Connection, original: &FactId, sku: &str) -> Result<Decimal, SaleError> {
    let mut stmt = conn.prepare_cached("SELECT body FROM facts WHERE original_sale = ?1")?;
    let bodies = stmt.query_map(params![original.to_string()], |r| r.get::<_, String>(0))?;
    let mut q = Decimal::ZERO;
    for b in bodies {
        if let FactBody::Refund(r) = Fact::decode(&b?)?.body {
            q += r
                .lines
                .iter()
                .filter(|l| l.sku == sku)
                .map(|l| l.quantity)
                .sum::<Decimal>();
        }
    }
    Ok(q)
}

/// Prices and records a refund, with or without the original sale.
///
/// # Errors
/// [`SaleError::NotFound`] for an unknown original sale, [`SaleError::Conflict`] when
/// refunding more than was sold, [`SaleError::UnknownSku`], [`SaleError::Invalid`].
pub fn refund(
    ctx: &mut Ctx<'_>,
    ident: &Identity,
    actor: &Actor,
    req: &RefundRequest,
) -> Result<Fact, SaleError> {
    check_lines(&req.lines)?;
    if req.reason.as_ref().is_some_and(|r| r.len() > MAX_REASON_BYTES) {
        return Err(SaleError::invalid(
            "reason",
            format!("at most {MAX_REASON_BYTES} bytes"),
        ));
    }
    let at = occurred_at(req.occurred_at).map_err(|r| SaleError::invalid("occurred_at", r))?;
    let terminal = terminal(ident, actor, &req.terminal)?;
    let c = ident.currency;
    let original = match &req.original_sale {
        Some(id) => match fact_by_id(ctx.conn, id)? {
            Some(Fact {
                body: FactBody::Sale(s),
                ..
            }) => Some((*id, s)),
            _ => return Err(SaleError::NotFound(format!("sale {id}"))),
        },
        None => None,
    };
    let mut lines = Vec::with_capacity(req.lines.len());
    for (i, l) in req.lines.iter().enumerate() {
        let line = match &original {
            Some((id, sale)) => {
                let sold: Vec<&Line> = sale.lines.iter().filter(|x| x.sku == l.sku).collect();
                let Some(first) = sold.first() else {
                    return Err(SaleError::Conflict(format!(
                        "lines[{i}]: SKU {} is not on sale {id}",
                        l.sku
                    )));
                };
                let sold_qty: Decimal = sold.iter().map(|x| x.quantity).sum();
                let already = refunded_qty(ctx.conn, id, &l.sku)?;
                if l.quantity + already > sold_qty {
                    return Err(SaleError::Conflict(format!(
                        "lines[{i}]: refunding {} of {} but sale {id} sold {sold_qty} and {already} were already refunded",
                        l.quantity, l.sku
                    )));
                }
                if l.unit_price.is_some_and(|p| p != first.unit_price) {
                    return Err(SaleError::invalid(
                        format!("lines[{i}].unit_price"),
                        "a refund with receipt uses the original price; omit unit_price",
                    ));
                }
                Line::priced(
                    &first.sku,
                    &first.description,
                    l.quantity,
                    first.unit_price,
                    first.price_overridden,
                    first.tax_rate,
                    first.stock_tracked,
                    sale.currency,
                    -1,
                )?
            }
            None => {
                let p = projection::product(ctx.conn, &l.sku)?
                    .ok_or_else(|| SaleError::UnknownSku(l.sku.clone()))?;
                let price = l.unit_price.unwrap_or(p.unit_price);
                Line::priced(
                    &p.sku,
                    &p.name,
                    l.quantity,
                    price,
                    price != p.unit_price,
                    p.tax_rate,
                    p.stock_tracked,
                    c,
                    -1,
                )?
            }
        };
        lines.push(line);
    }
    let total: i64 = lines.iter().map(|l| l.total_minor).sum();
    let (kind, label) = match &req.tender {
        Some(t) => (t.kind, t.label.clone()),
        None => (TenderKind::Cash, None),
    };
    if let Some(l) = &label
        && l.chars().count() > card::MAX_LABEL_CHARS
    {
        return Err(SaleError::invalid(
            "tender.label",
            format!(
                "at most {} characters, got {}",
                card::MAX_LABEL_CHARS,
                l.chars().count()
            ),
        ));
    }
    let tenders = vec![Tender {
        kind,
        label,
        amount_minor: total,
        id: Some(TenderId::new()),
        card: None,
        reference: None,
    }];
    facts::settle(&lines, &tenders, c).map_err(|e| SaleError::invalid("tender", e.to_string()))?;
    let mut author = actor.principal.author();
    let mut needed = Vec::new();
    if original.is_none() {
        needed.push((Permission::RefundNoReceipt, "a refund without receipt"));
        if lines.iter().any(|l| l.price_overridden) {
            needed.push((
                Permission::PriceOverride,
                "a refund at a price other than the catalog's",
            ));
        }
    }
    if backdated(at) {
        needed.push((Permission::SaleBackdate, "a refund dated more than 5 minutes ago"));
    }
    author.authorized_by = actor.authorize_all(ctx, &needed, &terminal)?;
    let receipt = receipt_no(ctx, ident, &terminal)?;
    let body = FactBody::Refund(Refund {
        receipt_no: receipt,
        original_sale: original.map(|(id, _)| id),
        currency: c,
        lines,
        tenders,
        total_minor: total,
        restock: req.restock.unwrap_or(true),
        reason: req.reason.clone(),
    });
    let fact = ledger::envelope(ctx, ident, terminal, at, &author, body);
    ledger::record(ctx, &fact)?;
    Ok(fact)
}
