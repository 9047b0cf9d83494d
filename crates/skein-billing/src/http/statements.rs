//! Monthly statements: a user's own, as JSON, CSV or PDF, mailed on demand; any user's for
//! admins, who can also run the monthly mailing now.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use skein_core::auth::{AdminUser, AuthUser};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::i18n::Lang;
use skein_core::ids::looks_like_id;
use skein_core::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};

use crate::BillingService;
use crate::statement::{self, Statement};
use crate::statement_mail::{self, MailRun};

/// Where a month starts.
#[derive(Debug, Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// The UTC offset the month's bounds are in, in minutes (480 for China); default 0.
    pub utc_offset_minutes: Option<i32>,
}

/// Where a month starts, and the PDF's language.
#[derive(Debug, Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct PdfQuery {
    /// The UTC offset the month's bounds are in, in minutes (480 for China); default 0.
    pub utc_offset_minutes: Option<i32>,
    /// `en` or `zh-CN`; default: the `Accept-Language` header's.
    pub lang: Option<String>,
}

/// The month to mail, for the monthly run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailRunRequest {
    /// `YYYY-MM`, a month that is over; default: last month.
    pub month: Option<String>,
    /// The UTC offset of the month, in minutes; default `billing.statement_utc_offset_minutes`.
    pub utc_offset_minutes: Option<i32>,
}

/// Whether a statement mail was queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailedStatement {
    /// Handed to the mail queue; `false` when the account has no verified email address
    /// (or this server sends no mail).
    pub queued: bool,
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

/// The caller's statement for a month as a PDF, in English or Chinese.
#[utoipa::path(get, path = "/billing/statements/{month}/pdf", tag = "billing", security(("bearer" = [])),
    params(("month" = String, Path, description = "YYYY-MM"), PdfQuery),
    responses((status = 200, description = "PDF", content_type = "application/pdf"), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn own_pdf(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    header_lang: Lang,
    Path(month): Path<String>,
    ApiQuery(q): ApiQuery<PdfQuery>,
) -> ApiResult<Response> {
    use axum::response::IntoResponse;
    let lang = match q.lang.as_deref() {
        None => header_lang,
        Some(l) if l.starts_with("zh") => Lang::Zh,
        Some("en") => Lang::En,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "lang",
                "lang must be en or zh-CN.",
                "lang 须为 en 或 zh-CN。",
            ));
        }
    };
    let s = statement::statement(
        &svc.db,
        &user.user_id,
        &month,
        q.utc_offset_minutes.unwrap_or(0),
    )
    .await?;
    let pdf = crate::statement_pdf::render(&s, lang, svc.config.quota_per_usd);
    let disposition = format!("attachment; filename=\"statement-{}.pdf\"", s.month);
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/pdf".to_string(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        pdf,
    )
        .into_response())
}

/// Mail the caller their statement for a month, to their verified address, in their
/// language (through the User service's mail queue).
#[utoipa::path(post, path = "/billing/statements/{month}/email", tag = "billing", security(("bearer" = [])),
    params(("month" = String, Path, description = "YYYY-MM"), StatementQuery),
    responses((status = 202, body = MailedStatement), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn email_own(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    Path(month): Path<String>,
    ApiQuery(q): ApiQuery<StatementQuery>,
) -> ApiResult<(StatusCode, ApiJson<MailedStatement>)> {
    let queued = svc
        .mail_statement(&user.user_id, &month, q.utc_offset_minutes.unwrap_or(0))
        .await?;
    Ok((StatusCode::ACCEPTED, ApiJson(MailedStatement { queued })))
}

/// Mail every user their statement of a month that is over, now (admin); each user gets
/// each month's statement once, however often this or the monthly schedule runs.
#[utoipa::path(post, path = "/admin/billing/statements/mail", tag = "admin-billing", security(("bearer" = [])),
    request_body = MailRunRequest,
    responses((status = 200, body = MailRun), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn mail_run(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    ApiJson(req): ApiJson<MailRunRequest>,
) -> ApiResult<ApiJson<MailRun>> {
    let offset = req
        .utc_offset_minutes
        .unwrap_or(svc.config.statement_utc_offset_minutes);
    let month = req
        .month
        .unwrap_or_else(|| statement_mail::previous_month(skein_core::ids::now_ms(), offset));
    let (_, end) = statement::month_bounds(&month, offset)?;
    if end > skein_core::ids::now_ms() {
        return Err(statement_mail::month_not_over());
    }
    Ok(ApiJson(svc.mail_statements(&month, offset).await?))
}
