//! `/v1/audit`: the security audit log (head office's own events and the security facts
//! and overrides the stores sent).

use axum::extract::State;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::error::{ApiError, ApiQuery, Problem};
use crate::{AuditQuery, SyncServer};

/// Query of `GET /v1/audit`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this store.
    pub store: Option<String>,
    /// Only this kind, or the kinds under this prefix (`login` for `login.failed` and
    /// `login.succeeded`; `fact` for every event the stores recorded, `fact.login` for
    /// their logins). One of the kinds listed in the 422 answer to a wrong one
    /// (`audit::KINDS` in the code, docs/ERRORS.md), or such a prefix.
    pub kind: Option<String>,
    /// From this time (RFC 3339) or day (`yyyy-mm-dd`, from its start, UTC).
    pub from: Option<String>,
    /// Up to this time (RFC 3339) or day (`yyyy-mm-dd`, to its end, UTC).
    pub to: Option<String>,
    /// At most this many entries (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditOut {
    /// Entry id (increasing).
    pub id: i64,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What happened, e.g. `login.failed`, `node.revoked`, `fact.login.locked`.
    pub kind: String,
    /// The store concerned.
    pub store: Option<String>,
    /// The node concerned.
    pub node: Option<String>,
    /// The acting user's id.
    pub actor_id: Option<String>,
    /// The acting user's name.
    pub actor_name: Option<String>,
    /// The ledger fact it comes from, if any.
    pub fact_id: Option<String>,
    /// Details.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

fn time(name: &'static str, text: Option<&str>, end_of_day: bool) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(t) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(Some(d.with_timezone(&Utc)));
    }
    let day = caja_shared::docs::parse_day(t).ok_or_else(|| ApiError::Invalid {
        field: name,
        reason: format!("{t:?} is neither an RFC 3339 time nor a yyyy-mm-dd date"),
    })?;
    let at = if end_of_day {
        day.and_hms_opt(23, 59, 59)
    } else {
        day.and_hms_opt(0, 0, 0)
    };
    Ok(at.map(|a| a.and_utc()))
}

/// Audit entries, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "Entries, newest first", body = [AuditOut]),
        (status = 422, description = "Bad filter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such store", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(server): State<SyncServer>,
    axum::Extension(me): axum::Extension<crate::http::auth::Principal>,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> Result<axum::Json<Vec<AuditOut>>, ApiError> {
    if q.limit
        .is_some_and(|l| !(1..=crate::audit::MAX_LIMIT).contains(&l))
    {
        return Err(ApiError::Invalid {
            field: "limit",
            reason: format!("must be 1-{}", crate::audit::MAX_LIMIT),
        });
    }
    let kind = q.kind.filter(|k| !k.is_empty());
    if let Some(k) = &kind
        && !crate::audit::is_kind_filter(k)
    {
        return Err(ApiError::Invalid {
            field: "kind",
            reason: format!(
                "{k:?} is not a kind or a prefix of kinds ending at a dot; kinds: {}",
                crate::audit::KINDS.join(", ")
            ),
        });
    }
    let store = q.store.filter(|s| !s.is_empty());
    if let Some(code) = &store
        && !server.stores().await?.iter().any(|s| s.row.code.as_str() == code)
    {
        // A typo must not pass for "nothing happened there".
        return Err(ApiError::NotFound(format!("store {code:?} does not exist")));
    }
    let query = AuditQuery {
        store,
        kind,
        from: time("from", q.from.as_deref(), false)?,
        to: time("to", q.to.as_deref(), true)?,
        limit: q.limit,
        // A user tied to stores sees only their stores' entries (see `Principal::scope`).
        within: me.scope.as_ref().map(|s| s.iter().cloned().collect()),
    };
    Ok(axum::Json(
        server
            .audit(query)
            .await?
            .into_iter()
            .map(|e| AuditOut {
                id: e.id,
                at: e.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                kind: e.kind,
                store: e.store,
                node: e.node,
                actor_id: e.actor_id,
                actor_name: e.actor_name,
                fact_id: e.fact_id,
                detail: e.detail,
            })
            .collect(),
    ))
}
