//! The reconciliation queue: cases a person must settle (a stored card payment the
//! provider declined, or that expired unforwarded; later oversells, duplicate receipts,
//! double refunds and clock skew). Opening, assigning and resolving a case are each
//! audited (`reconciliation.opened` / `.assigned` / `.resolved`) in the same transaction.

use caja_shared::ids::StoreCode;
use chrono::Utc;
use serde_json::json;

use crate::audit::{self, Actor, NewEntry};
use crate::db::{Case, CaseFilter, CaseStatus, ReconcileDb, UserDb};
use crate::error::ServerError;
use crate::server::SyncServer;

/// A stored card payment the provider declined.
pub const KIND_PAYMENT_DECLINED: &str = "payment_declined";
/// A stored card payment not forwarded before its deadline.
pub const KIND_PAYMENT_EXPIRED: &str = "payment_expired";
/// Every kind of case so far (filters refuse others).
pub const KINDS: &[&str] = &[KIND_PAYMENT_DECLINED, KIND_PAYMENT_EXPIRED];

/// How a case may be resolved.
pub const RESOLUTIONS: &[&str] = &["collected", "written_off", "refunded", "other"];

/// Longest resolution reason, characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Opens `case` on `conn` (the caller's transaction) and audits it; `Ok(false)` when a
/// case of its kind for its tender exists already (nothing written).
///
/// # Errors
/// [`ServerError::Sqlite`].
pub(crate) fn open(conn: &rusqlite::Connection, case: &Case) -> Result<bool, ServerError> {
    if !conn.insert_case(case)? {
        return Ok(false);
    }
    audit::record(
        conn,
        &NewEntry::new(
            "reconciliation.opened",
            json!({"case": case.id, "kind": case.kind, "sale": case.sale, "tender": case.tender,
                   "amount_minor": case.amount_minor, "currency": case.currency, "reason": case.reason}),
        )
        .store(&case.store)
        .by(&Actor {
            id: None,
            name: "head office".into(),
        }),
    )?;
    Ok(true)
}

/// A new open case of `kind` (UUIDv7 id, now).
pub(crate) fn new_case(kind: &str, store: &str) -> Case {
    let now = Utc::now().timestamp();
    Case {
        id: uuid::Uuid::now_v7().to_string(),
        kind: kind.to_string(),
        store: store.to_string(),
        sale: None,
        tender: None,
        amount_minor: None,
        currency: None,
        status: CaseStatus::Open,
        assignee: None,
        resolution: None,
        reason: None,
        created_at: now,
        updated_at: now,
        resolved_by: None,
    }
}

/// The case `id` if it exists and `visible` says its store may be seen; otherwise
/// [`ServerError::NotFound`] (a store-scoped admin cannot tell another store's case from
/// none).
fn visible_case(
    conn: &rusqlite::Connection,
    id: &str,
    visible: &dyn Fn(&str) -> bool,
) -> Result<Case, ServerError> {
    match conn.case(id)? {
        Some(c) if visible(&c.store) => Ok(c),
        _ => Err(ServerError::NotFound(format!("no reconciliation case {id:?}"))),
    }
}

impl SyncServer {
    /// Cases matching `filter` (its `stores` limits what a store-scoped admin sees).
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn reconciliation_cases(&self, filter: CaseFilter) -> Result<Vec<Case>, ServerError> {
        self.hub()
            .with_core(move |core| Ok(core.conn.list_cases(&filter)?))
            .await?
    }

    /// One case, if `stores` (`None`: all) includes its store.
    ///
    /// # Errors
    /// [`ServerError::NotFound`]; [`ServerError::Sqlite`].
    pub async fn reconciliation_case(
        &self,
        id: &str,
        stores: Option<Vec<StoreCode>>,
    ) -> Result<Case, ServerError> {
        let id = id.to_string();
        self.hub()
            .with_core(move |core| visible_case(&core.conn, &id, &|s| sees(&stores, s)))
            .await?
    }

    /// Assigns a case to the user `to` on behalf of `by` (audited). A resolved case
    /// cannot be assigned.
    ///
    /// # Errors
    /// [`ServerError::NotFound`] (no such case, or not in `stores`);
    /// [`ServerError::InvalidField`] (`to`: no such user); [`ServerError::Conflict`]
    /// when it is resolved.
    pub async fn assign_case(
        &self,
        by: &Actor,
        id: &str,
        to: &str,
        stores: Option<Vec<StoreCode>>,
    ) -> Result<Case, ServerError> {
        let (by, id, to) = (by.clone(), id.to_string(), to.to_string());
        self.hub()
            .with_core(move |core| {
                let tx = core.conn.transaction()?;
                let mut case = visible_case(&tx, &id, &|s| sees(&stores, s))?;
                if case.status == CaseStatus::Resolved {
                    return Err(ServerError::Conflict(format!("case {id} is resolved")));
                }
                if tx.user_by_username(&to)?.is_none() {
                    return Err(ServerError::InvalidField {
                        field: "to",
                        reason: format!("no user {to:?}"),
                    });
                }
                let previous = case.assignee.clone();
                case.status = CaseStatus::Assigned;
                case.assignee = Some(to.clone());
                case.updated_at = Utc::now().timestamp();
                tx.update_case(&case)?;
                audit::record(
                    &tx,
                    &NewEntry::new(
                        "reconciliation.assigned",
                        json!({"case": case.id, "kind": case.kind, "to": to, "previous": previous}),
                    )
                    .store(&case.store)
                    .by(&by),
                )?;
                tx.commit()?;
                Ok(case)
            })
            .await?
    }

    /// Resolves a case on behalf of `by` with one of [`RESOLUTIONS`] and a reason of
    /// 1-[`MAX_REASON_CHARS`] characters (audited).
    ///
    /// # Errors
    /// [`ServerError::InvalidField`] (`resolution`, `reason`); [`ServerError::NotFound`];
    /// [`ServerError::Conflict`] when it is resolved already.
    pub async fn resolve_case(
        &self,
        by: &Actor,
        id: &str,
        resolution: &str,
        reason: &str,
        stores: Option<Vec<StoreCode>>,
    ) -> Result<Case, ServerError> {
        if !RESOLUTIONS.contains(&resolution) {
            return Err(ServerError::InvalidField {
                field: "resolution",
                reason: format!("must be one of {}", RESOLUTIONS.join(", ")),
            });
        }
        let n = reason.trim().chars().count();
        if n == 0 || n > MAX_REASON_CHARS || reason.chars().any(|c| c.is_control() && c != '\n') {
            return Err(ServerError::InvalidField {
                field: "reason",
                reason: format!("must be 1-{MAX_REASON_CHARS} characters without control characters"),
            });
        }
        let (by, id, resolution, reason) = (
            by.clone(),
            id.to_string(),
            resolution.to_string(),
            reason.trim().to_string(),
        );
        self.hub()
            .with_core(move |core| {
                let tx = core.conn.transaction()?;
                let mut case = visible_case(&tx, &id, &|s| sees(&stores, s))?;
                if case.status == CaseStatus::Resolved {
                    return Err(ServerError::Conflict(format!("case {id} is resolved already")));
                }
                case.status = CaseStatus::Resolved;
                case.resolution = Some(resolution.clone());
                case.reason = Some(reason.clone());
                case.resolved_by = Some(by.name.clone());
                case.updated_at = Utc::now().timestamp();
                tx.update_case(&case)?;
                audit::record(
                    &tx,
                    &NewEntry::new(
                        "reconciliation.resolved",
                        json!({"case": case.id, "kind": case.kind, "resolution": resolution,
                               "reason": reason, "sale": case.sale, "tender": case.tender}),
                    )
                    .store(&case.store)
                    .by(&by),
                )?;
                tx.commit()?;
                Ok(case)
            })
            .await?
    }
}

/// Whether `stores` (`None`: every store) includes `store`.
fn sees(stores: &Option<Vec<StoreCode>>, store: &str) -> bool {
    stores
        .as_ref()
        .is_none_or(|s| s.iter().any(|c| c.as_str() == store))
}
