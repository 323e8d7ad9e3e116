//! `/v1/reconciliation`: the reconciliation queue (declined and expired stored card
//! payments, later other kinds): list with filters, one case, assign, resolve. A user
//! tied to stores sees only their stores' cases (another store's case is 404).

use axum::Extension;
use axum::extract::State;
use caja_shared::ids::StoreCode;
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::SyncServer;
use crate::db::{Case, CaseFilter, CaseStatus};
use crate::http::auth::Principal;
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};
use crate::reconcile;

/// Query of `GET /v1/reconciliation`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaseQuery {
    /// `open`, `assigned` or `resolved`.
    pub status: Option<String>,
    /// A store code.
    pub store: Option<String>,
    /// `payment_declined` or `payment_expired`.
    pub kind: Option<String>,
    /// At most this many (1-500, default 100).
    pub limit: Option<u32>,
    /// Only cases after this case id (the last id of the previous page).
    pub after: Option<String>,
}

/// A reconciliation case.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaseOut {
    /// Case id (UUIDv7).
    pub id: String,
    /// `payment_declined`, `payment_expired`, …
    pub kind: String,
    /// Store code.
    pub store: String,
    /// The sale fact concerned.
    pub sale: Option<String>,
    /// The card tender concerned.
    pub tender: Option<String>,
    /// Amount at stake, minor units.
    pub amount_minor: Option<i64>,
    /// ISO 4217 code.
    pub currency: Option<String>,
    /// `open`, `assigned` or `resolved`.
    pub status: String,
    /// Username it is assigned to.
    pub assignee: Option<String>,
    /// `collected`, `written_off`, `refunded` or `other`, once resolved.
    pub resolution: Option<String>,
    /// Why it was opened, then the resolver's reason.
    pub reason: Option<String>,
    /// Username who resolved it.
    pub resolved_by: Option<String>,
    /// Opened at (RFC 3339, UTC).
    pub created_at: String,
    /// Last changed at (RFC 3339, UTC).
    pub updated_at: String,
}

impl From<Case> for CaseOut {
    fn from(c: Case) -> Self {
        let time = |t: i64| {
            DateTime::from_timestamp(t, 0)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        CaseOut {
            created_at: time(c.created_at),
            updated_at: time(c.updated_at),
            id: c.id,
            kind: c.kind,
            store: c.store,
            sale: c.sale,
            tender: c.tender,
            amount_minor: c.amount_minor,
            currency: c.currency,
            status: c.status.as_str().to_string(),
            assignee: c.assignee,
            resolution: c.resolution,
            reason: c.reason,
            resolved_by: c.resolved_by,
        }
    }
}

/// Body of `POST /v1/reconciliation/{id}/assign`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignIn {
    /// The username to assign the case to.
    pub to: String,
}

/// Body of `POST /v1/reconciliation/{id}/resolve`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveIn {
    /// `collected`, `written_off`, `refunded` or `other`.
    pub resolution: String,
    /// Why, 1-500 characters.
    pub reason: String,
}

/// The stores a principal may see (`None`: all).
fn scope(me: &Principal) -> Option<Vec<StoreCode>> {
    me.scope
        .as_ref()
        .map(|s| s.iter().filter_map(|c| c.parse().ok()).collect())
}

/// Lists cases, oldest first.
#[utoipa::path(get, path = "/v1/reconciliation", tag = "reconciliation", params(CaseQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cases", body = [CaseOut]),
        (status = 422, description = "Bad status, kind or limit", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiQuery(q): ApiQuery<CaseQuery>,
) -> Result<axum::Json<Vec<CaseOut>>, ApiError> {
    let status = q
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            CaseStatus::parse(s).ok_or(ApiError::Invalid {
                field: "status",
                reason: "must be open, assigned or resolved".into(),
            })
        })
        .transpose()?;
    let kind = q.kind.filter(|k| !k.is_empty());
    if let Some(k) = &kind
        && !reconcile::KINDS.contains(&k.as_str())
    {
        return Err(ApiError::Invalid {
            field: "kind",
            reason: format!("must be one of {}", reconcile::KINDS.join(", ")),
        });
    }
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 500 {
        return Err(ApiError::Invalid {
            field: "limit",
            reason: "must be 1 to 500".into(),
        });
    }
    let mut stores: Option<Vec<String>> = me.scope.as_ref().map(|s| s.iter().cloned().collect());
    if let Some(store) = q.store.filter(|s| !s.is_empty()) {
        stores = Some(if me.sees(&store) { vec![store] } else { Vec::new() });
    }
    let cases = server
        .reconciliation_cases(CaseFilter {
            status,
            kind,
            stores,
            after: q.after.filter(|a| !a.is_empty()),
            limit,
        })
        .await?;
    Ok(axum::Json(cases.into_iter().map(CaseOut::from).collect()))
}

/// One case.
#[utoipa::path(get, path = "/v1/reconciliation/{id}", tag = "reconciliation",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The case", body = CaseOut),
        (status = 404, description = "No such case (or another store's)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<CaseOut>, ApiError> {
    Ok(axum::Json(
        server.reconciliation_case(&id, scope(&me)).await?.into(),
    ))
}

/// Assigns a case to a user (audited as `reconciliation.assigned`).
#[utoipa::path(post, path = "/v1/reconciliation/{id}/assign", tag = "reconciliation",
    request_body = AssignIn, security(("bearer" = [])),
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The case", body = CaseOut),
        (status = 404, description = "No such case (or another store's)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Resolved already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn assign(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AssignIn>,
) -> Result<axum::Json<CaseOut>, ApiError> {
    Ok(axum::Json(
        server
            .assign_case(&me.actor(), &id, &body.to, scope(&me))
            .await?
            .into(),
    ))
}

/// Resolves a case (audited as `reconciliation.resolved`); a resolved case cannot be
/// resolved again.
#[utoipa::path(post, path = "/v1/reconciliation/{id}/resolve", tag = "reconciliation",
    request_body = ResolveIn, security(("bearer" = [])),
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The case", body = CaseOut),
        (status = 404, description = "No such case (or another store's)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Resolved already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad resolution or reason", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resolve(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ResolveIn>,
) -> Result<axum::Json<CaseOut>, ApiError> {
    Ok(axum::Json(
        server
            .resolve_case(&me.actor(), &id, &body.resolution, &body.reason, scope(&me))
            .await?
            .into(),
    ))
}
