//! The one write path for local facts: append to the day's ledger document, persist the
//! change, project it, all inside the caller's writer job (one SQLite transaction).

use caja_shared::docs::{self, DocId};
use caja_shared::facts::{Authorization, FACT_SCHEMA_VERSION, Fact, FactBody};
use caja_shared::ids::FactId;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Ctx, StoreError, projection};
use crate::identity::Identity;

/// Who records a fact: the user of the request (none for events before anyone logged
/// in, such as a failed login of an unknown username) and, for an override, who
/// authorised it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Author {
    /// User id.
    pub user_id: Option<String>,
    /// Username.
    pub user_name: Option<String>,
    /// The manager override that authorised the fact.
    pub authorized_by: Option<Authorization>,
}

/// A new fact of this node: a fresh UUIDv7, the next HLC tick, `occurred_at`'s UTC date as
/// the business day, and its author.
pub fn envelope(
    ctx: &mut Ctx<'_>,
    ident: &Identity,
    terminal: String,
    occurred_at: DateTime<Utc>,
    author: &Author,
    body: FactBody,
) -> Fact {
    let hlc = ctx.tick();
    Fact {
        v: FACT_SCHEMA_VERSION,
        id: FactId::new(),
        store: ident.store.clone(),
        node: ident.node_id,
        terminal,
        user: author.user_id.clone(),
        user_name: author.user_name.clone(),
        authorized_by: author.authorized_by.clone(),
        hlc,
        occurred_at,
        business_date: occurred_at.date_naive(),
        body,
    }
}

/// Records a fact this node created: ledger document `ledger/<store>/<business date>`,
/// its stored change, and its projection rows (pending until the server acknowledges).
///
/// # Errors
/// [`StoreError`] from automerge or SQLite; the caller's savepoint then rolls back.
pub fn record(ctx: &mut Ctx<'_>, fact: &Fact) -> Result<DocId, StoreError> {
    let doc = DocId::Ledger {
        store: fact.store.clone(),
        date: fact.business_date,
    };
    let am = ctx.doc(&doc)?;
    let before = am.get_heads();
    docs::append_facts(am, std::slice::from_ref(fact))?;
    ctx.persist(&doc, &before)?;
    projection::project_fact(ctx.conn, &doc, fact, true, false)?;
    Ok(doc)
}

/// The next value of a named counter (1 for a new counter), e.g. receipt numbers per
/// terminal. Part of the caller's transaction, so a rolled-back sale does not burn a number.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn next_seq(ctx: &Ctx<'_>, name: &str) -> Result<i64, StoreError> {
    let v: i64 = ctx
        .conn
        .prepare_cached(
            "INSERT INTO counters (name, value) VALUES (?1, 1)
             ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
        )?
        .query_row(params![name], |r| r.get(0))?;
    Ok(v)
}

/// A stored response for an `Idempotency-Key`: `(request hash, status, body)`.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn idempotent_response(ctx: &Ctx<'_>, key: &str) -> Result<Option<(String, u16, String)>, StoreError> {
    Ok(ctx
        .conn
        .prepare_cached("SELECT request_hash, status, body FROM idempotency WHERE key = ?1")?
        .query_row(params![key], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u16, r.get(2)?))
        })
        .optional()?)
}

/// Stores the response given for an `Idempotency-Key`, in the same transaction as the
/// write it answers.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn save_idempotent_response(
    ctx: &Ctx<'_>,
    key: &str,
    route: &str,
    request_hash: &str,
    status: u16,
    body: &str,
) -> Result<(), StoreError> {
    ctx.conn
        .prepare_cached(
            "INSERT INTO idempotency (key, route, request_hash, status, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            key,
            route,
            request_hash,
            status,
            body,
            chrono::Utc::now().to_rfc3339()
        ])?;
    Ok(())
}
