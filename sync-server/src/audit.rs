//! The security audit log of head office: one `audit` row per security-relevant event.
//!
//! Events the server sees itself (admin logins and failures, user and role changes,
//! enrollment codes issued, used and refused, enrollments, renewals, node revocations,
//! refused connections, forbidden document requests) are written where they happen,
//! in the transaction of the change they record when there is one. Events the nodes saw
//! (security facts: logins, failed PINs, lockouts, logouts; and facts a manager override
//! authorised) arrive in the ledgers and are projected here in the same transaction as the
//! facts projection ([`record_fact`]).
//!
//! No secret is ever part of a row: no password, PIN, token or enrollment code. Rows are
//! stored through [`crate::db::AuditDb`] (no SQL here).

use std::sync::LazyLock;

use caja_shared::audit::{AuditKind, FACT_PREFIX};
use caja_shared::facts::{Fact, FactBody};
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::db::{AuditDb, AuditRow};
use serde_json::{Value, json};

use crate::error::ServerError;

/// The audit table's schema (it lives with the SQLite backend, [`crate::db`]).
pub use crate::db::sqlite::AUDIT_SCHEMA as SCHEMA;

/// Most entries one query returns.
pub const MAX_LIMIT: u32 = 1000;

/// The kinds head office writes of its own events (names of the shared vocabulary
/// [`AuditKind`], the same the node uses; docs/ERRORS.md).
pub const OWN_KINDS: &[AuditKind] = &[
    AuditKind::CatalogChanged,
    AuditKind::CatalogChangedByNode,
    AuditKind::ConnectionRefused,
    AuditKind::EnrollmentRefused,
    AuditKind::EnrollmentCodeIssued,
    AuditKind::LoginFailed,
    AuditKind::LoginLocked,
    AuditKind::LoginSucceeded,
    AuditKind::Logout,
    AuditKind::NodeEnrolled,
    AuditKind::NodeRenewed,
    AuditKind::NodeRevoked,
    AuditKind::PaymentForwarded,
    AuditKind::ReconciliationAssigned,
    AuditKind::ReconciliationOpened,
    AuditKind::ReconciliationResolved,
    AuditKind::RoleDefined,
    AuditKind::RoleDeleted,
    AuditKind::SessionRefreshReused,
    AuditKind::StoreCreated,
    AuditKind::StorePaymentSettingsChanged,
    AuditKind::SyncForbidden,
    AuditKind::UserCreated,
    AuditKind::UserDisabled,
    AuditKind::UserEnabled,
    AuditKind::UserRolesChanged,
    AuditKind::UserSessionsRevoked,
    AuditKind::UserUpdated,
];

/// Every kind an entry can have: head office's own events ([`OWN_KINDS`]) and
/// `fact.<kind>` for each event a store records in its ledgers
/// ([`AuditKind::FROM_FACTS`]: security events and facts authorised by an override, with
/// the names the node's own audit log uses). `GET /v1/audit?kind=` takes one of these or a
/// prefix of them ending at a dot (`login` for `login.failed` and `login.succeeded`,
/// `fact` for every store event), so a typo is an error rather than an empty list.
/// Writing a kind that is not here is a bug, caught by a debug assertion in [`record`].
pub static KINDS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut kinds: Vec<String> = OWN_KINDS.iter().map(|k| k.as_str().to_string()).collect();
    kinds.extend(AuditKind::FROM_FACTS.iter().map(|k| fact_kind(*k)));
    kinds.sort();
    kinds
});

/// The kind head office logs for a store's event of kind `k` (`fact.login.failed`).
pub fn fact_kind(k: AuditKind) -> String {
    format!("{FACT_PREFIX}{k}")
}

/// Whether `filter` is a kind of [`KINDS`] or a prefix of one ending at a dot.
pub fn is_kind_filter(filter: &str) -> bool {
    caja_shared::audit::is_filter_of(KINDS.iter().map(String::as_str), filter)
}

/// Who did something at head office: an admin API user, or the local operator (CLI, or
/// a program using the library directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user id, when a user did it.
    pub id: Option<String>,
    /// The username, or a description of the local operator.
    pub name: String,
}

impl Actor {
    /// The local operator: whoever runs `caja-sync` commands or calls the library.
    pub fn local() -> Actor {
        Actor {
            id: None,
            name: "local operator".into(),
        }
    }

    /// An admin API user.
    pub fn user(id: &str, name: &str) -> Actor {
        Actor {
            id: Some(id.to_string()),
            name: name.to_string(),
        }
    }
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Row id (increasing).
    pub id: i64,
    /// When it happened (UTC, seconds).
    pub at: DateTime<Utc>,
    /// The store concerned, if any.
    pub store: Option<String>,
    /// The node concerned, if any.
    pub node: Option<String>,
    /// The acting user's id, if known.
    pub actor_id: Option<String>,
    /// The acting user's name (or the local operator), if known.
    pub actor_name: Option<String>,
    /// What happened, e.g. `login.failed`, `node.revoked`, `fact.login.locked`.
    pub kind: String,
    /// Details (JSON object).
    pub detail: Value,
    /// The ledger fact this entry was projected from, if any.
    pub fact_id: Option<String>,
}

/// An entry to write; `at` is now unless set.
#[derive(Debug, Clone, Default)]
pub struct NewEntry {
    /// The store concerned.
    pub store: Option<String>,
    /// The node concerned.
    pub node: Option<String>,
    /// Who did it.
    pub actor: Option<Actor>,
    /// What happened.
    pub kind: String,
    /// Details (a JSON object; never a secret).
    pub detail: Value,
}

impl NewEntry {
    /// An entry of `kind` with `detail`.
    pub fn new(kind: &str, detail: Value) -> NewEntry {
        NewEntry {
            kind: kind.to_string(),
            detail,
            ..NewEntry::default()
        }
    }

    /// With the store concerned.
    pub fn store(mut self, store: impl ToString) -> Self {
        self.store = Some(store.to_string());
        self
    }

    /// With the node concerned.
    pub fn node(mut self, node: impl ToString) -> Self {
        self.node = Some(node.to_string());
        self
    }

    /// With the actor.
    pub fn by(mut self, actor: &Actor) -> Self {
        self.actor = Some(actor.clone());
        self
    }
}

/// Writes an entry now.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn record(conn: &Connection, e: &NewEntry) -> Result<(), ServerError> {
    debug_assert!(KINDS.contains(&e.kind), "audit kind {} is not in KINDS", e.kind);
    conn.insert_audit(&AuditRow {
        at: Utc::now().timestamp(),
        store: e.store.as_deref(),
        node: e.node.as_deref(),
        actor_id: e.actor.as_ref().and_then(|a| a.id.as_deref()),
        actor_name: e.actor.as_ref().map(|a| a.name.as_str()),
        kind: &e.kind,
        detail: &e.detail.to_string(),
        fact_id: None,
    })?;
    Ok(())
}

/// Projects a received fact into the log if it is security-relevant: a security event
/// (`fact.<kind>`, e.g. `fact.login.failed`) or a fact a second user authorised
/// (`fact.override.used`). Other
/// facts are ignored; a fact already projected is ignored (`fact_id` is unique).
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn record_fact(conn: &Connection, fact: &Fact) -> Result<bool, ServerError> {
    let (kind, detail) = match (&fact.body, &fact.authorized_by) {
        (FactBody::Security(event), _) => {
            let kind = fact_kind(AuditKind::of_event(event));
            let event = serde_json::to_value(event).unwrap_or(Value::Null);
            (kind, json!({"terminal": fact.terminal, "event": event}))
        }
        (body, Some(auth)) => {
            let what = match body {
                FactBody::Sale(_) => "sale",
                FactBody::Refund(_) => "refund",
                FactBody::StockMovement(_) => "stock_movement",
                FactBody::Security(_) => "security",
                FactBody::Payment(_) => "payment",
            };
            (
                fact_kind(AuditKind::OverrideUsed),
                json!({
                    "terminal": fact.terminal,
                    "fact_kind": what,
                    "authorized_by": {"user": auth.user, "user_name": auth.user_name,
                                      "permission": auth.permission, "override_id": auth.override_id},
                }),
            )
        }
        _ => return Ok(false),
    };
    debug_assert!(KINDS.contains(&kind), "audit kind {kind} is not in KINDS");
    let node = fact.node.to_string();
    let id = fact.id.to_string();
    Ok(conn.insert_audit(&AuditRow {
        at: fact.occurred_at.timestamp(),
        store: Some(fact.store.as_str()),
        node: Some(&node),
        actor_id: fact.user.as_deref(),
        actor_name: fact.user_name.as_deref(),
        kind: &kind,
        detail: &detail.to_string(),
        fact_id: Some(&id),
    })?)
}

/// Filters of [`list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries of this store.
    pub store: Option<String>,
    /// Only entries at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only entries at or before this time.
    pub to: Option<DateTime<Utc>>,
    /// At most this many (default 100, at most [`MAX_LIMIT`]).
    pub limit: Option<u32>,
    /// Only entries of these stores (a user scoped to some stores); `None`: any.
    pub within: Option<Vec<String>>,
    /// Only entries of this kind, or of kinds under this prefix (`login` matches
    /// `login.failed`); see [`is_kind_filter`].
    pub kind: Option<String>,
}

/// Entries matching `q`, newest first.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn list(conn: &Connection, q: &AuditQuery) -> Result<Vec<AuditEntry>, ServerError> {
    Ok(conn.list_audit(q, q.limit.unwrap_or(100).clamp(1, MAX_LIMIT))?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use caja_shared::facts::{Authorization, LoginMethod, SecurityEvent};

    #[test]
    fn records_filters_and_projects_facts_once() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        record(
            &conn,
            &NewEntry::new("login.failed", json!({"username": "ana"})).by(&Actor::local()),
        )
        .unwrap();
        let mut f = caja_shared::facts::tests_support::sample();
        f.body = FactBody::Security(SecurityEvent::LoginFailed {
            method: LoginMethod::Pin,
            username: "bo".into(),
            reason: "wrong secret".into(),
        });
        assert!(record_fact(&conn, &f).unwrap());
        assert!(
            !record_fact(&conn, &f).unwrap(),
            "a replayed fact is not logged twice"
        );
        let mut sale = caja_shared::facts::tests_support::sample();
        assert!(
            !record_fact(&conn, &sale).unwrap(),
            "a plain sale is not security-relevant"
        );
        sale.authorized_by = Some(Authorization {
            user: "m1".into(),
            user_name: "mo".into(),
            permission: "price.override".into(),
            override_id: "o1".into(),
        });
        assert!(record_fact(&conn, &sale).unwrap());
        let all = list(&conn, &AuditQuery::default()).unwrap();
        assert_eq!(all.len(), 3);
        let kinds: Vec<&str> = all.iter().map(|e| e.kind.as_str()).collect();
        assert!(kinds.contains(&"fact.login.failed"), "{kinds:?}");
        assert!(kinds.contains(&"fact.override.used"));
        let store = f.store.to_string();
        let only = list(
            &conn,
            &AuditQuery {
                store: Some(store),
                limit: Some(1),
                ..AuditQuery::default()
            },
        )
        .unwrap();
        assert_eq!(only.len(), 1);
        assert!(only[0].fact_id.is_some());
        let kind = |k: &str| {
            let q = AuditQuery {
                kind: Some(k.into()),
                ..AuditQuery::default()
            };
            list(&conn, &q)
                .unwrap()
                .into_iter()
                .map(|e| e.kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(kind("login"), ["login.failed"]);
        assert_eq!(kind("fact.login"), ["fact.login.failed"]);
        let mut facts = kind("fact");
        facts.sort();
        assert_eq!(facts, ["fact.login.failed", "fact.override.used"]);
        assert_eq!(kind("fact.override"), ["fact.override.used"]);
    }

    #[test]
    fn kind_filters_are_kinds_or_their_dotted_prefixes() {
        for ok in [
            "login",
            "login.failed",
            "fact",
            "fact.login",
            "fact.login.locked",
            "user",
        ] {
            assert!(is_kind_filter(ok), "{ok}");
        }
        for bad in [
            "",
            "log",
            "login.",
            "login.fail",
            "LOGIN",
            "fact.login.pin",
            "nope",
            "%",
        ] {
            assert!(!is_kind_filter(bad), "{bad}");
        }
    }

    #[test]
    fn every_security_event_has_its_fact_kind() {
        let mut f = caja_shared::facts::tests_support::sample();
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        // One of each event; `record_fact` asserts (debug) that the kind it writes is known.
        for event in caja_shared::facts::tests_support::security_events() {
            f.id = caja_shared::ids::FactId::new();
            f.body = FactBody::Security(event);
            assert!(record_fact(&conn, &f).unwrap());
        }
    }
}
