//! The offline-payments report: per store, the stored-offline card tenders head office
//! queued (by the UTC day they arrived), counted and summed by forward state.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{ForwardState, PaymentDb};
use crate::error::ServerError;
use crate::server::SyncServer;

/// A count and an amount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CountAmount {
    /// How many tenders.
    pub count: i64,
    /// Their amount, minor units.
    pub amount_minor: i64,
}

impl CountAmount {
    fn add(&mut self, count: i64, amount: i64) {
        self.count = self.count.saturating_add(count);
        self.amount_minor = self.amount_minor.saturating_add(amount);
    }
}

/// One store's (and currency's) stored-offline card payments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreOfflinePayments {
    /// Store code.
    pub store: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Every stored tender received.
    pub stored: CountAmount,
    /// Not yet sent (or waiting to be retried).
    pub pending: CountAmount,
    /// Sent, answer not yet recorded.
    pub forwarding: CountAmount,
    /// Captured.
    pub captured: CountAmount,
    /// Declined by the provider.
    pub declined: CountAmount,
    /// Not forwarded before the deadline.
    pub expired: CountAmount,
}

/// `GET /v1/reports/offline-payments`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OfflinePaymentsReport {
    /// First UTC day included (`yyyy-mm-dd`), if bounded.
    pub from: Option<String>,
    /// Last UTC day included (`yyyy-mm-dd`), if bounded.
    pub to: Option<String>,
    /// Per store and currency, by store code.
    pub stores: Vec<StoreOfflinePayments>,
}

/// The report over `db` for days `from..=to`, for the stores `only` allows (all: `None`).
///
/// # Errors
/// [`ServerError::Sqlite`].
pub(crate) fn offline_payments(
    db: &impl PaymentDb,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<OfflinePaymentsReport, ServerError> {
    let start = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
    let from_s = from.and_then(start);
    let to_s = to.and_then(|d| d.succ_opt()).and_then(start);
    let mut by: BTreeMap<(String, String), StoreOfflinePayments> = BTreeMap::new();
    for t in db.forward_totals(from_s, to_s)? {
        if only.is_some_and(|o| !o.contains(&t.store)) {
            continue;
        }
        let e = by
            .entry((t.store.clone(), t.currency.clone()))
            .or_insert_with(|| StoreOfflinePayments {
                store: t.store.clone(),
                currency: t.currency.clone(),
                ..StoreOfflinePayments::default()
            });
        e.stored.add(t.count, t.amount_minor);
        let slot = match t.state {
            ForwardState::Pending => &mut e.pending,
            ForwardState::Forwarding => &mut e.forwarding,
            ForwardState::Captured => &mut e.captured,
            ForwardState::Declined => &mut e.declined,
            ForwardState::Expired => &mut e.expired,
        };
        slot.add(t.count, t.amount_minor);
    }
    Ok(OfflinePaymentsReport {
        from: from.map(|d| d.to_string()),
        to: to.map(|d| d.to_string()),
        stores: by.into_values().collect(),
    })
}

impl SyncServer {
    /// The offline-payments report for UTC days `from..=to` of the stores `only` allows.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn offline_payments_report(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        only: Option<std::collections::BTreeSet<String>>,
    ) -> Result<OfflinePaymentsReport, ServerError> {
        self.hub()
            .with_core(move |core| offline_payments(&core.conn, from, to, only.as_ref()))
            .await?
    }
}
