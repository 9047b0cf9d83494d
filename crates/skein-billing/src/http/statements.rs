//! Monthly statements: a user's own, as JSON or CSV, and any user's for admins.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use skein_core::auth::{AdminUser, AuthUser};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::looks_like_id;
use skein_core::{ApiError, ApiResult};
use utoipa::IntoParams;

use crate::BillingService;
use crate::statement::{self, Statement};

/// Where a month starts.
#[derive(Debug, Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// The UTC offset the month's bounds are in, in minutes (480 for China); default 0.
    pub utc_offset_minutes: Option<i32>,
}

/// The caller's statement for a month (`YYYY-MM`): opening and closing balance, every
/// ledger kind, consumption by model and by key, and the orders paid. Totals reconcile with
/// the ledger exactly.
#[utoipa::path(get, path = "/billing/statements/{month}", tag = "billing", security(("bearer" = [])),
    params(("month" = String, Path, description = "YYYY-MM"), StatementQuery),
    responses((status = 200, body = Statement), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn own(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    Path(month): Path<String>,
    ApiQuery(q): ApiQuery<StatementQuery>,
) -> ApiResult<ApiJson<Statement>> {
    Ok(ApiJson(
        statement::statement(
            &svc.db,
            &user.user_id,
            &month,
            q.utc_offset_minutes.unwrap_or(0),
        )
        .await?,
    ))
}

/// The caller's statement for a month as CSV (`section,name,count,amount`).
#[utoipa::path(get, path = "/billing/statements/{month}/csv", tag = "billing", security(("bearer" = [])),
    params(("month" = String, Path, description = "YYYY-MM"), StatementQuery),
    responses((status = 200, description = "CSV", content_type = "text/csv"), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn own_csv(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    Path(month): Path<String>,
    ApiQuery(q): ApiQuery<StatementQuery>,
) -> ApiResult<Response> {
    let s = statement::statement(
        &svc.db,
        &user.user_id,
        &month,
        q.utc_offset_minutes.unwrap_or(0),
    )
    .await?;
    Ok(super::csv_response(
        &format!("statement-{}.csv", s.month),
        "section,name,count,amount",
        statement::csv_rows(&s),
    ))
}

/// Any user's statement for a month (admin).
#[utoipa::path(get, path = "/admin/billing/users/{user_id}/statements/{month}", tag = "admin-billing", security(("bearer" = [])),
    params(("user_id" = String, Path, description = "User id"), ("month" = String, Path, description = "YYYY-MM"), StatementQuery),
    responses((status = 200, body = Statement), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn user(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    Path((user_id, month)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<StatementQuery>,
) -> ApiResult<ApiJson<Statement>> {
    if !looks_like_id(&user_id) {
        return Err(ApiError::not_found("User", "用户"));
    }
    svc.require_user(&user_id).await?;
    Ok(ApiJson(
        statement::statement(&svc.db, &user_id, &month, q.utc_offset_minutes.unwrap_or(0)).await?,
    ))
}
