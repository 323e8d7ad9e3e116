//! `/v1/reports`: the daily takings report.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::Node;
use crate::http::error::{ApiError, Problem};
use crate::reports::{self, DailyReport};

/// Report parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// Business day `YYYY-MM-DD`; default today (UTC).
    pub date: Option<String>,
}

/// Sales, refunds, net and takings by tender for one business day.
#[utoipa::path(get, path = "/v1/reports/daily", params(DailyQuery),
    responses((status = 200, body = DailyReport), (status = 400, body = Problem)))]
pub async fn daily(
    State(node): State<Node>,
    q: Result<Query<DailyQuery>, QueryRejection>,
) -> Result<Json<DailyReport>, ApiError> {
    let Query(q) = q?;
    let date = match q.date.as_deref() {
        None | Some("") => chrono::Utc::now().date_naive(),
        Some(d) => caja_shared::docs::parse_day(d)
            .ok_or_else(|| ApiError::BadParam(format!("date {d:?} is not YYYY-MM-DD")))?,
    };
    let currency = node.identity().currency;
    Ok(Json(
        node.db().read(move |c| reports::daily(c, date, currency)).await?,
    ))
}
