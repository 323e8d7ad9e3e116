//! The repository trait of the reconciliation queue (`ReconcileDb`) and its row types:
//! generic cases a person must look at (a declined or expired stored card payment now;
//! oversells, duplicate receipts, double refunds and clock skew later).

use crate::db::DbError;

/// Where a case is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseStatus {
    /// Nobody has taken it.
    Open,
    /// A user was assigned.
    Assigned,
    /// Resolved: final.
    Resolved,
}

impl CaseStatus {
    /// The stored name (`open`, `assigned`, `resolved`).
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::Assigned => "assigned",
            CaseStatus::Resolved => "resolved",
        }
    }

    /// The status named `name`, if any.
    pub fn parse(name: &str) -> Option<CaseStatus> {
        [CaseStatus::Open, CaseStatus::Assigned, CaseStatus::Resolved]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// One reconciliation case (`reconciliation_cases`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// UUIDv7.
    pub id: String,
    /// What kind of case (`payment_declined`, `payment_expired`, …).
    pub kind: String,
    /// The store code.
    pub store: String,
    /// The sale fact concerned, if any.
    pub sale: Option<String>,
    /// The card tender concerned, if any.
    pub tender: Option<String>,
    /// The amount at stake, minor units of `currency`, if any.
    pub amount_minor: Option<i64>,
    /// ISO 4217 code of the amount.
    pub currency: Option<String>,
    /// Where it is.
    pub status: CaseStatus,
    /// The username it is assigned to.
    pub assignee: Option<String>,
    /// How it was resolved (`collected`, `written_off`, `refunded`, `other`).
    pub resolution: Option<String>,
    /// Why, in words (1-500 characters), or what opened it.
    pub reason: Option<String>,
    /// When it was opened, Unix seconds.
    pub created_at: i64,
    /// When it last changed, Unix seconds.
    pub updated_at: i64,
    /// The username who resolved it.
    pub resolved_by: Option<String>,
}

/// A page of cases: all filters optional; ordered by id (so by creation), after `after`.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only this status.
    pub status: Option<CaseStatus>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only these stores (`None`: all).
    pub stores: Option<Vec<String>>,
    /// Only cases with a larger id.
    pub after: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// The reconciliation queue.
pub(crate) trait ReconcileDb {
    /// Opens a case; `Ok(false)` when a case of this kind for this tender exists already.
    ///
    /// # Errors
    /// [`DbError`].
    fn insert_case(&self, case: &Case) -> Result<bool, DbError>;

    /// One case.
    ///
    /// # Errors
    /// [`DbError`].
    fn case(&self, id: &str) -> Result<Option<Case>, DbError>;

    /// Cases matching `filter`.
    ///
    /// # Errors
    /// [`DbError`].
    fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<Case>, DbError>;

    /// Writes a case's status, assignee, resolution, reason, resolver and update time.
    ///
    /// # Errors
    /// [`DbError`].
    fn update_case(&self, case: &Case) -> Result<(), DbError>;
}
