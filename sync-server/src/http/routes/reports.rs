//! `/v1/reports/sales`: the chain sales report over business days;
//! `/v1/reports/offline-payments`: stored-offline card payments by forward state.

use axum::extract::State;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::SyncServer;
use crate::http::error::{ApiError, ApiQuery, Problem};
use crate::reports::{OfflinePaymentsReport, SalesReport};

/// Query of `GET /v1/reports/sales`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// First business day included (`yyyy-mm-dd`).
    pub from: Option<String>,
    /// Last business day included (`yyyy-mm-dd`).
    pub to: Option<String>,
}

impl ReportQuery {
    /// The days `from..=to`, each optional, checked (`yyyy-mm-dd`, `from` not after `to`).
    fn days(&self) -> Result<(Option<NaiveDate>, Option<NaiveDate>), ApiError> {
        let from = date("from", self.from.as_deref())?;
        let to = date("to", self.to.as_deref())?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(ApiError::BadRequest(format!("from {f} is after to {t}")));
        }
        Ok((from, to))
    }
}

fn date(name: &str, text: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            caja_shared::docs::parse_day(t).ok_or_else(|| {
                ApiError::BadRequest(format!("{name} {t:?} is not a date of the form yyyy-mm-dd"))
            })
        })
        .transpose()
}

/// The chain sales report for business days `from..=to` (both optional).
#[utoipa::path(get, path = "/v1/reports/sales", tag = "reports", params(ReportQuery),
    responses(
        (status = 200, description = "The report", body = SalesReport),
        (status = 400, description = "Bad date", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn sales(
    State(server): State<SyncServer>,
    axum::Extension(me): axum::Extension<crate::http::auth::Principal>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<axum::Json<SalesReport>, ApiError> {
    let (from, to) = q.days()?;
    // A user tied to stores sees only theirs (see `Principal::scope`).
    Ok(axum::Json(
        server.sales_report_of(from, to, me.scope.clone()).await?,
    ))
}

/// Stored-offline card payments per store, counted and summed by forward state (stored,
/// pending, forwarding, captured, declined, expired), for the UTC days `from..=to` they
/// reached head office.
#[utoipa::path(get, path = "/v1/reports/offline-payments", tag = "reports", params(ReportQuery),
    responses(
        (status = 200, description = "The report", body = OfflinePaymentsReport),
        (status = 400, description = "Bad date", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn offline_payments(
    State(server): State<SyncServer>,
    axum::Extension(me): axum::Extension<crate::http::auth::Principal>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<axum::Json<OfflinePaymentsReport>, ApiError> {
    let (from, to) = q.days()?;
    Ok(axum::Json(
        server.offline_payments_report(from, to, me.scope.clone()).await?,
    ))
}
