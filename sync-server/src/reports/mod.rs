//! Reports: the facts the nodes' ledgers send, projected into rows ([`projection`]), and
//! the chain sales report built from them ([`sales`]); also the audit log's read side.
//!
//! Modules:
//! - [`projection`] holds facts received, as rows for reports (tenders counted by
//!   [`caja_shared::facts::takings_by_tender`], the rule the node uses too).
//! - [`sales`] holds the chain sales report ([`SalesReport`]).
//! - [`payments`] holds the offline-payments report ([`OfflinePaymentsReport`]).

pub mod payments;
pub mod projection;
pub mod sales;

use chrono::NaiveDate;

use crate::audit::{self, AuditEntry, AuditQuery, NewEntry};
use crate::db::FactDb;
use crate::error::ServerError;
use crate::server::SyncServer;

pub use payments::{CountAmount, OfflinePaymentsReport, StoreOfflinePayments};
pub use sales::{SalesReport, StoreReport, Totals};

impl SyncServer {
    /// The chain sales report from the server's projection of the ledgers it has
    /// received, for business days `from..=to` (either bound optional).
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn sales_report(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<SalesReport, ServerError> {
        self.hub()
            .with_core(move |core| sales::sales_report(&core.conn, core.currency, from, to))
            .await?
    }

    /// [`SyncServer::sales_report`] of only the stores in `only` (all when `None`).
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub(crate) async fn sales_report_of(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        only: Option<std::collections::BTreeSet<String>>,
    ) -> Result<SalesReport, ServerError> {
        self.hub()
            .with_core(move |core| sales::sales_report_of(&core.conn, core.currency, from, to, only.as_ref()))
            .await?
    }

    /// Number of facts the server has projected (all stores), to wait for convergence.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn fact_count(&self) -> Result<u64, ServerError> {
        Ok(self.hub().with_core(|core| core.conn.fact_count()).await??)
    }

    /// Audit entries matching `query`, newest first.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, ServerError> {
        self.hub()
            .with_core(move |core| audit::list(&core.conn, &query))
            .await?
    }

    /// Writes an audit entry.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub(crate) async fn record_audit(&self, entry: NewEntry) -> Result<(), ServerError> {
        self.hub()
            .with_core(move |core| audit::record(&core.conn, &entry))
            .await?
    }

    /// A projected fact as its JSON (with `user`, `user_name`, `authorized_by`), or `None`.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn fact(&self, id: &str) -> Result<Option<serde_json::Value>, ServerError> {
        let id = id.to_string();
        let body: Option<String> = self
            .hub()
            .with_core(move |core| core.conn.fact_body(&id))
            .await??;
        Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
    }
}
