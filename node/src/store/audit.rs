//! The node's audit log: security-relevant events in one table for `GET /v1/audit`.
//!
//! Entries come from three places, all inside the writer's transaction: every security
//! fact (logins, failed PINs, lockouts, logouts, revoked sessions, overrides granted) and
//! every fact authorised by an override, when it is projected (local or replicated, so a
//! store's other nodes see them too, `record_fact`); changes of staff or roles found
//! when the `store/<store>` document is projected (`auth::staff`); and catalog writes made
//! here (`catalog_changed`), in the transaction of the write. Kinds are the shared
//! vocabulary [`AuditKind`] (the same names as head office's). Nothing secret is ever
//! written here.

use caja_shared::audit::AuditKind;
use caja_shared::facts::{Fact, FactBody, SecurityEvent};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::StoreError;

/// Appends one entry. An entry for a fact already logged is ignored.
///
/// # Errors
/// [`StoreError::Sqlite`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert(
    conn: &Connection,
    at: DateTime<Utc>,
    kind: AuditKind,
    user_id: Option<&str>,
    username: Option<&str>,
    terminal: Option<&str>,
    fact_id: Option<&str>,
    detail: &Value,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO audit_log (at, kind, user_id, username, terminal, fact_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        kind.as_str(),
        user_id,
        username,
        terminal,
        fact_id,
        detail.to_string()
    ])?;
    Ok(())
}

/// Whether `filter` is a kind of the node's log or a dotted prefix of some (`login` for
/// `login.failed`, `login.locked`, `login.succeeded`): what `GET /v1/audit?kind=` takes, as
/// head office's does, so a typo is an error rather than an empty list.
pub fn is_kind_filter(filter: &str) -> bool {
    caja_shared::audit::is_filter_of(AuditKind::ALL.iter().map(|k| k.as_str()), filter)
}

/// Who made a change at this node (the user of the request).
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// User id.
    pub user_id: &'a str,
    /// Username.
    pub username: &'a str,
    /// The terminal of a PIN login.
    pub terminal: Option<&'a str>,
}

/// At most this many SKUs are listed in one `catalog_changed` entry (the count is whole).
const CATALOG_SKUS_SHOWN: usize = 100;

/// Logs a catalog write made at this node (`catalog.changed`: `PUT /v1/products/{sku}`
/// or a CSV import, `how`): who, at which terminal, how many products and (the first 100)
/// SKUs. Price changes made here replicate chain-wide, so they are security-relevant.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub(crate) fn catalog_changed(
    conn: &Connection,
    who: Who<'_>,
    skus: &[String],
    how: &str,
) -> Result<(), StoreError> {
    let shown: Vec<&String> = skus.iter().take(CATALOG_SKUS_SHOWN).collect();
    insert(
        conn,
        Utc::now(),
        AuditKind::CatalogChanged,
        Some(who.user_id),
        Some(who.username),
        who.terminal,
        None,
        &json!({"how": how, "products": skus.len(), "skus": shown}),
    )
}

/// The audit entry a fact makes, if it makes one: `(kind, detail)`.
fn entry_of(fact: &Fact) -> Option<(AuditKind, Value)> {
    if let FactBody::Security(e) = &fact.body {
        let kind = AuditKind::of_event(e);
        let mut detail = serde_json::to_value(e).unwrap_or(Value::Null);
        if let Some(o) = detail.as_object_mut() {
            o.remove("event");
        }
        return Some((kind, detail));
    }
    let a = fact.authorized_by.as_ref()?;
    let (what, receipt) = match &fact.body {
        FactBody::Sale(s) => ("sale", Some(s.receipt_no.as_str())),
        FactBody::Refund(r) => ("refund", Some(r.receipt_no.as_str())),
        _ => ("fact", None),
    };
    Some((
        AuditKind::OverrideUsed,
        json!({"fact": what, "receipt_no": receipt, "permission": a.permission,
               "authorized_by": a.user, "authorized_by_name": a.user_name, "override_id": a.override_id}),
    ))
}

/// Logs a fact if it is security-relevant (called by the projection of every fact).
///
/// # Errors
/// [`StoreError::Sqlite`].
pub(crate) fn record_fact(conn: &Connection, fact: &Fact) -> Result<(), StoreError> {
    let Some((kind, detail)) = entry_of(fact) else {
        return Ok(());
    };
    let username = fact.user_name.clone().or_else(|| match &fact.body {
        FactBody::Security(
            SecurityEvent::LoginFailed { username, .. } | SecurityEvent::Locked { username, .. },
        ) => Some(username.clone()),
        _ => None,
    });
    insert(
        conn,
        fact.occurred_at,
        kind,
        fact.user.as_deref(),
        username.as_deref(),
        Some(&fact.terminal),
        Some(&fact.id.to_string()),
        &detail,
    )
}

/// One entry of `GET /v1/audit`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Position in the log (increasing).
    pub seq: i64,
    /// When it happened (RFC 3339, UTC).
    pub at: String,
    /// What: a kind of [`AuditKind`], e.g. `login.failed`, `login.locked`,
    /// `override.used`, `user.roles_changed`, `catalog.changed` (docs/ERRORS.md).
    pub kind: String,
    /// The user concerned (id), if known.
    pub user_id: Option<String>,
    /// Their username, if known.
    pub username: Option<String>,
    /// The terminal, for events at a till.
    pub terminal: Option<String>,
    /// The fact that records it, for events that are facts.
    pub fact_id: Option<String>,
    /// Event details (never a secret).
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// Entries with `seq` after `after`, oldest first, at most `limit`, optionally of one
/// kind or the kinds under a dotted prefix ([`is_kind_filter`]) and after a time.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn list(
    conn: &Connection,
    after: i64,
    since: Option<DateTime<Utc>>,
    kind: Option<&str>,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let since = since.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, kind, user_id, username, terminal, fact_id, detail FROM audit_log
         WHERE seq > ?1 AND (?2 IS NULL OR at >= ?2) AND (?3 IS NULL OR kind = ?3
               OR substr(kind, 1, length(?3) + 1) = ?3 || '.')
         ORDER BY seq LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![after, since, kind, limit as i64], |r| {
        let detail: String = r.get(7)?;
        Ok(AuditEntry {
            seq: r.get(0)?,
            at: r.get(1)?,
            kind: r.get(2)?,
            user_id: r.get(3)?,
            username: r.get(4)?,
            terminal: r.get(5)?,
            fact_id: r.get(6)?,
            detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kind_filters_take_a_kind_or_a_dotted_prefix() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::auth_schema::migrate(&conn).unwrap();
        let at = Utc::now();
        for k in [AuditKind::LoginFailed, AuditKind::LoginLocked, AuditKind::Logout] {
            insert(&conn, at, k, None, None, None, None, &json!({})).unwrap();
        }
        let kinds = |f: &str| -> Vec<String> {
            list(&conn, 0, None, Some(f), 10)
                .unwrap()
                .into_iter()
                .map(|e| e.kind)
                .collect()
        };
        assert_eq!(kinds("login"), ["login.failed", "login.locked"]);
        assert_eq!(kinds("login.locked"), ["login.locked"]);
        assert_eq!(kinds("logout"), ["logout"]);
        assert!(is_kind_filter("login") && is_kind_filter("login.failed"));
        assert!(!is_kind_filter("login_failed") && !is_kind_filter("log"));
    }
}
