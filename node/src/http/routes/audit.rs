//! `/v1/audit`: the store's security log (managers and up).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use caja_shared::audit::AuditKind;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::Node;
use crate::http::error::{ApiError, Problem};
use crate::store::audit::{self, AuditEntry};

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries after this position (`seq` of the last entry seen), for paging.
    pub after: Option<i64>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only this kind (e.g. `login.failed`) or the kinds under a dotted prefix (`login`
    /// for `login.failed`, `login.locked`, `login.succeeded`), as at head office; a wrong
    /// one is a 422 listing the kinds.
    pub kind: Option<String>,
    /// At most this many entries (1-1000, default 200).
    pub limit: Option<usize>,
}

/// Security events: logins, failures, lockouts, logouts, revoked sessions, overrides, and
/// changes of staff and roles from head office. Oldest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = [AuditEntry]), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    State(node): State<Node>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let Query(q) = q?;
    if let Some(k) = q.kind.as_deref()
        && !audit::is_kind_filter(k)
    {
        let kinds: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(ApiError::invalid(
            "kind",
            format!(
                "{k:?} is not a kind or a dotted prefix of kinds; kinds: {}",
                kinds.join(", ")
            ),
        ));
    }
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1-1000"));
    }
    let entries = node
        .db()
        .read(move |c| audit::list(c, q.after.unwrap_or(0), q.since, q.kind.as_deref(), limit))
        .await?;
    Ok(Json(entries))
}
