//! Card and other tenders of a sale request: token and label checks, and the store's
//! store-and-forward rules ([`PaymentSettings`]) for a card taken while the provider or
//! the link is down.
//!
//! A card tender without a token is a card taken on a stand-alone terminal and is
//! recorded as before (no provider, no offline rules).

use caja_shared::auth::Permission;
use caja_shared::docs::{DocId, store::payment_settings};
use caja_shared::facts::TenderKind;
use caja_shared::money::{Currency, format_minor};
use caja_shared::payments::{MAX_TOKEN_LEN, PaymentSettings, TenderId};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{SaleError, TenderRequest};
use crate::auth::Actor;
use crate::identity::Identity;
use crate::store::{Ctx, payments};

/// Longest label of an `other` tender (it becomes a key in every report), characters.
pub const MAX_LABEL_CHARS: usize = 40;

/// Longest reference of an `other` tender (voucher number, wallet transaction), characters.
pub const MAX_REFERENCE_CHARS: usize = 64;

/// What kind of card a tokenized card tender is; some are never taken offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardKind {
    /// Credit card (the default).
    #[default]
    Credit,
    /// Debit card.
    Debit,
    /// Gift card.
    GiftCard,
    /// Card number typed in by hand.
    Keyed,
    /// A debit with cash back.
    Cashback,
}

impl CardKind {
    /// The name the store's `never_offline` list uses (`gift_card`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CardKind::Credit => "credit",
            CardKind::Debit => "debit",
            CardKind::GiftCard => "gift_card",
            CardKind::Keyed => "keyed",
            CardKind::Cashback => "cashback",
        }
    }

    fn cashier_name(self) -> &'static str {
        match self {
            CardKind::Credit => "a credit card",
            CardKind::Debit => "a debit card",
            CardKind::GiftCard => "a gift card",
            CardKind::Keyed => "a keyed card",
            CardKind::Cashback => "cashback",
        }
    }
}

/// A card tender the provider approved before the sale was written (online path): its
/// tender id (the provider's idempotency keys derive from it) and the provider's reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineCard {
    /// The tender id used for the provider's idempotency keys.
    pub id: TenderId,
    /// The provider's payment (intent) id.
    pub provider_ref: String,
}

/// Checks the card and other fields of tender `i`.
///
/// # Errors
/// [`SaleError::Invalid`] naming the field: a token that is not `tok_…`/`pm_…` or is
/// longer than [`MAX_TOKEN_LEN`], card fields on a non-card tender, a label over
/// [`MAX_LABEL_CHARS`], a reference over [`MAX_REFERENCE_CHARS`].
pub fn check_tender(i: usize, t: &TenderRequest) -> Result<(), SaleError> {
    let field = |f: &str| format!("tenders[{i}].{f}");
    if let Some(label) = &t.label
        && label.chars().count() > MAX_LABEL_CHARS
    {
        return Err(SaleError::invalid(
            field("label"),
            format!(
                "at most {MAX_LABEL_CHARS} characters, got {}",
                label.chars().count()
            ),
        ));
    }
    if let Some(r) = &t.reference {
        if t.kind != TenderKind::Other {
            return Err(SaleError::invalid(
                field("reference"),
                "only an other tender has a reference",
            ));
        }
        if r.chars().count() > MAX_REFERENCE_CHARS || r.chars().any(char::is_control) {
            return Err(SaleError::invalid(
                field("reference"),
                format!("at most {MAX_REFERENCE_CHARS} characters, no control characters"),
            ));
        }
    }
    if t.kind != TenderKind::Card && (t.card_token.is_some() || t.card_kind.is_some()) {
        return Err(SaleError::invalid(
            field("card_token"),
            "only a card tender takes a card token",
        ));
    }
    if let Some(tok) = &t.card_token {
        let ok = (tok.starts_with("tok_") || tok.starts_with("pm_"))
            && tok.len() <= MAX_TOKEN_LEN
            && tok.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(SaleError::invalid(
                field("card_token"),
                format!(
                    "must be a provider token (tok_… or pm_…, letters, digits and _, at most {MAX_TOKEN_LEN} characters), never a card number"
                ),
            ));
        }
    }
    Ok(())
}

/// The store's card rules from this node's copy of `store/<store>` (defaults when head
/// office never set them).
///
/// # Errors
/// [`SaleError::Store`] when the document cannot be loaded.
pub fn settings(ctx: &Ctx<'_>, ident: &Identity) -> Result<PaymentSettings, SaleError> {
    let doc = DocId::Store {
        store: ident.store.clone(),
    };
    // Read from disk (this transaction's view), never created in the writer's cache: a
    // standalone node has no store document.
    Ok(settings_from(ctx.conn, &doc))
}

/// The card rules stored in `doc` (a `store/<store>` document) on `conn`; the defaults
/// when there is none, or when it does not load from disk right now (the sync client
/// refetches a head-office document that no longer loads): a sale or the sync status
/// must not fail on it. The failure is logged.
pub fn settings_from(conn: &rusqlite::Connection, doc: &DocId) -> PaymentSettings {
    match caja_shared::docstore::load(conn, doc) {
        Ok(Some(d)) => payment_settings(&d),
        Ok(None) => PaymentSettings::default(),
        Err(e) => {
            tracing::warn!(error = %e, %doc, "the store document does not load; using the default card rules");
            PaymentSettings::default()
        }
    }
}

/// Checks a sale's card tenders taken offline against the store's rules, in this order:
/// kinds never taken offline, the floor limit, the node's cap, the store's cap, the
/// acceptance window. `offline` is the sale's tokenized card tenders taken offline
/// (kind, amount in minor units). Returns the settings and whether the sale needs
/// `payment.offline_override` (over the floor limit, with the permission or an override
/// token: the caller authorises it with the sale's other needs, so the fact records
/// `authorized_by`).
///
/// # Errors
/// [`SaleError::OfflineNotAllowed`], [`SaleError::OfflineFloorLimit`],
/// [`SaleError::OfflineCapReached`], [`SaleError::OfflineWindowClosed`].
pub fn check_offline(
    ctx: &mut Ctx<'_>,
    ident: &Identity,
    actor: &Actor,
    offline: &[(CardKind, i64)],
    currency: Currency,
    now: DateTime<Utc>,
) -> Result<(PaymentSettings, bool), SaleError> {
    if offline.is_empty() {
        return Ok((PaymentSettings::default(), false));
    }
    let s = settings(ctx, ident)?;
    let m = |minor: i64| format!("{} {}", format_minor(minor, currency), currency);
    if let Some((k, _)) = offline
        .iter()
        .find(|(k, _)| s.never_offline.iter().any(|n| n == k.as_str()))
    {
        return Err(SaleError::OfflineNotAllowed(format!(
            "the card provider cannot be reached and {} is never taken offline in this store: ask for another payment",
            k.cashier_name()
        )));
    }
    let amount: i64 = offline.iter().map(|(_, a)| *a).sum();
    let over_floor = amount > s.floor_limit_minor;
    if over_floor {
        let perm = Permission::PaymentOfflineOverride;
        if !actor.principal.permissions.contains(&perm) && actor.override_token.is_none() {
            return Err(SaleError::OfflineFloorLimit(format!(
                "{} by card while offline is over this store's limit of {}: a manager can approve it ({perm}), or ask for another payment",
                m(amount),
                m(s.floor_limit_minor)
            )));
        }
    }
    let node = ident.node_id.to_string();
    let (_, node_total, first) = payments::outstanding(ctx.conn, Some(&node))?;
    if node_total.saturating_add(amount) > s.node_cap_minor {
        return Err(SaleError::OfflineCapReached(format!(
            "this till's cards stored offline would reach {}, over its cap of {} (node cap): ask for another payment",
            m(node_total.saturating_add(amount)),
            m(s.node_cap_minor)
        )));
    }
    let (_, store_total, _) = payments::outstanding(ctx.conn, None)?;
    if store_total.saturating_add(amount) > s.store_cap_minor {
        return Err(SaleError::OfflineCapReached(format!(
            "the store's cards stored offline would reach {}, over its cap of {} (store cap): ask for another payment",
            m(store_total.saturating_add(amount)),
            m(s.store_cap_minor)
        )));
    }
    if let Some(first) = first {
        let end = first.saturating_add(
            i64::try_from(s.window_secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
        );
        if now.timestamp_millis() > end {
            return Err(SaleError::OfflineWindowClosed(format!(
                "cards have been taken offline since {} and the {} h offline period is over: ask for another payment",
                DateTime::<Utc>::from_timestamp_millis(first)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default(),
                s.window_secs / 3600
            )));
        }
    }
    Ok((s, over_floor))
}
