//! The JSON shape of sales and refunds in responses: amounts as decimal strings in major
//! units with the currency's decimals.

use caja_shared::facts::{Authorization, Fact, FactBody, Line, Tender, TenderKind};
use caja_shared::money::{Currency, format_minor};
use caja_shared::payments::{CardMode, CardPayment, PaymentOutcome};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A sale or refund as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FactView {
    /// Fact id (UUIDv7).
    pub id: String,
    /// `sale` or `refund`.
    pub kind: String,
    /// Receipt number `<store>-<terminal>-<seq>`.
    pub receipt_no: String,
    /// Store code.
    pub store: String,
    /// The user who recorded it (id).
    #[serde(default)]
    pub user_id: Option<String>,
    /// Their username.
    #[serde(default)]
    pub username: Option<String>,
    /// The manager override that authorised it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_by: Option<AuthorizedBy>,
    /// Terminal id.
    pub terminal: String,
    /// When it happened (RFC 3339, UTC).
    pub occurred_at: String,
    /// Business day (YYYY-MM-DD).
    pub business_date: String,
    /// ISO 4217 code.
    pub currency: String,
    /// For a refund with receipt: the original sale's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_sale: Option<String>,
    /// Lines.
    pub lines: Vec<LineView>,
    /// Tenders.
    pub tenders: Vec<TenderView>,
    /// Sum of line nets.
    pub net: String,
    /// Sum of line taxes.
    pub tax: String,
    /// Total (negative for a refund).
    pub total: String,
    /// Cash change given.
    pub change: String,
}

/// One line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LineView {
    /// SKU.
    pub sku: String,
    /// Description at the time.
    pub description: String,
    /// Quantity (decimal string).
    pub quantity: String,
    /// Unit price, tax exclusive (decimal string, may have more decimals than the currency).
    pub unit_price: String,
    /// True when the price differs from the catalog's.
    pub price_overridden: bool,
    /// Tax rate as a fraction.
    pub tax_rate: String,
    /// Net amount.
    pub net: String,
    /// Tax amount.
    pub tax: String,
    /// Total amount.
    pub total: String,
}

/// Who authorised a sale or refund with their PIN (a manager override).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthorizedBy {
    /// The authorising user's id.
    pub user_id: String,
    /// Their username.
    pub username: String,
    /// The permission they lent.
    pub permission: String,
}

impl From<&Authorization> for AuthorizedBy {
    fn from(a: &Authorization) -> Self {
        AuthorizedBy {
            user_id: a.user.clone(),
            username: a.user_name.clone(),
            permission: a.permission.clone(),
        }
    }
}

/// One tender.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenderView {
    /// `cash`, `card` or `other`.
    pub kind: String,
    /// Label shown on receipts, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Amount.
    pub amount: String,
    /// The tender's id: shown for tokenized card tenders, whose payment events name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// An `other` tender's reference (voucher number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// A tokenized card tender's payment: how it was taken and its state now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<CardView>,
}

fn line_view(l: &Line, c: Currency) -> LineView {
    LineView {
        sku: l.sku.clone(),
        description: l.description.clone(),
        quantity: l.quantity.normalize().to_string(),
        unit_price: l.unit_price.to_string(),
        price_overridden: l.price_overridden,
        tax_rate: l.tax_rate.normalize().to_string(),
        net: format_minor(l.net_minor, c),
        tax: format_minor(l.tax_minor, c),
        total: format_minor(l.total_minor, c),
    }
}

/// A tokenized card tender's payment as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardView {
    /// `online` (authorized and captured at the till) or `stored_offline`.
    pub mode: String,
    /// The derived state: `stored_offline`, `forwarded`, `authorized`, `captured`,
    /// `declined`, `voided`, `refunded` or `expired` (terminal states never go back).
    pub state: String,
    /// The provider's reference, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<String>,
    /// For a stored payment: the last moment head office may forward it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_by: Option<String>,
    /// The provider's decline code or why it expired, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

fn card_view(p: &CardPayment) -> CardView {
    match &p.mode {
        CardMode::Online { provider_ref } => CardView {
            mode: "online".into(),
            state: PaymentOutcome::Captured.as_str().into(),
            provider_ref: Some(provider_ref.clone()),
            forward_by: None,
            code: None,
        },
        CardMode::StoredOffline { forward_by } => CardView {
            mode: "stored_offline".into(),
            state: PaymentOutcome::StoredOffline.as_str().into(),
            provider_ref: None,
            forward_by: Some(forward_by.to_rfc3339()),
            code: None,
        },
    }
}

/// Puts the projected states of the fact's card tenders (`card_payments`) into a view.
pub fn with_card_states(v: &mut FactView, rows: &[(String, crate::store::payments::CardRow)]) {
    for t in &mut v.tenders {
        let (Some(id), Some(card)) = (&t.id, &mut t.card) else {
            continue;
        };
        if let Some((_, r)) = rows.iter().find(|(tid, _)| tid == id) {
            card.state = r.state.clone();
            card.code = r.code.clone();
            if r.provider_ref.is_some() {
                card.provider_ref = r.provider_ref.clone();
            }
        }
    }
}

fn tender_view(t: &Tender, c: Currency) -> TenderView {
    TenderView {
        kind: match t.kind {
            TenderKind::Cash => "cash",
            TenderKind::Card => "card",
            TenderKind::Other => "other",
        }
        .into(),
        label: t.label.clone(),
        amount: format_minor(t.amount_minor, c),
        id: t.card.as_ref().and(t.id).map(|i| i.to_string()),
        reference: t.reference.clone(),
        card: t.card.as_ref().map(card_view),
    }
}

/// The view of a sale or refund fact; `None` for other facts.
pub fn view(f: &Fact) -> Option<FactView> {
    let base = |kind: &str, receipt: &str, c: Currency| FactView {
        id: f.id.to_string(),
        kind: kind.into(),
        receipt_no: receipt.into(),
        user_id: f.user.clone(),
        username: f.user_name.clone(),
        authorized_by: f.authorized_by.as_ref().map(AuthorizedBy::from),
        store: f.store.to_string(),
        terminal: f.terminal.clone(),
        occurred_at: f.occurred_at.to_rfc3339(),
        business_date: f.business_date.to_string(),
        currency: c.code().into(),
        original_sale: None,
        lines: vec![],
        tenders: vec![],
        net: String::new(),
        tax: String::new(),
        total: String::new(),
        change: format_minor(0, c),
    };
    match &f.body {
        FactBody::Sale(s) => {
            let c = s.currency;
            Some(FactView {
                lines: s.lines.iter().map(|l| line_view(l, c)).collect(),
                tenders: s.tenders.iter().map(|t| tender_view(t, c)).collect(),
                net: format_minor(s.net_minor, c),
                tax: format_minor(s.tax_minor, c),
                total: format_minor(s.total_minor, c),
                change: format_minor(s.change_minor, c),
                ..base("sale", &s.receipt_no, c)
            })
        }
        FactBody::Refund(r) => {
            let c = r.currency;
            Some(FactView {
                original_sale: r.original_sale.map(|o| o.to_string()),
                lines: r.lines.iter().map(|l| line_view(l, c)).collect(),
                tenders: r.tenders.iter().map(|t| tender_view(t, c)).collect(),
                net: format_minor(r.lines.iter().map(|l| l.net_minor).sum(), c),
                tax: format_minor(r.lines.iter().map(|l| l.tax_minor).sum(), c),
                total: format_minor(r.total_minor, c),
                ..base("refund", &r.receipt_no, c)
            })
        }
        FactBody::StockMovement(_) | FactBody::Security(_) | FactBody::Payment(_) => None,
    }
}
