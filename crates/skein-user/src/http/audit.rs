//! `GET /admin/audit`: the audit log of administrators' actions, filtered and paged, as JSON or
//! CSV (admin).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::rfc3339_to_ms;
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult};
use utoipa::IntoParams;

use crate::UserService;
use crate::audit::{self, AuditFilter, AuditRecord};

/// Filters of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this admin's actions.
    pub actor_id: Option<String>,
    /// Only actions containing this text, e.g. `channels` or `DELETE`.
    pub action: Option<String>,
    /// Only at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Only before this time (RFC 3339).
    pub to: Option<String>,
    /// 1-based page.
    pub page: Option<u32>,
    /// Page size, 1–100.
    pub per_page: Option<u32>,
    /// `csv` for a file of every matching entry (at most 100,000).
    pub format: Option<String>,
}

fn time(field: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            rfc3339_to_ms(v).ok_or_else(|| {
                ApiError::invalid_field(
                    field,
                    "Give a time as RFC 3339, e.g. 2026-12-01T00:00:00Z.",
                    "请以 RFC 3339 格式给出时间，例如 2026-12-01T00:00:00Z。",
                )
            })
        })
        .transpose()
}

/// Administrators' actions, newest first (admin). Every change an admin asks for through the
/// API is kept — who, what, on which path, with the request body (secrets replaced), the
/// answer's status, the request id and the address — and nothing can remove it.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = Page<AuditRecord>), (status = 200, content_type = "text/csv", body = String),
        (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn list_audit(
    State(svc): State<Arc<UserService>>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    let filter = AuditFilter {
        actor_id: q.actor_id.as_deref().filter(|a| !a.is_empty()),
        action: q.action.as_deref().map(str::trim).filter(|a| !a.is_empty()),
        from_ms: time("from", q.from.as_deref())?,
        to_ms: time("to", q.to.as_deref())?,
    };
    if filter.action.is_some_and(|a| a.chars().count() > 200) {
        return Err(ApiError::invalid_field(
            "action",
            "The action filter is too long.",
            "操作筛选内容过长。",
        ));
    }
    if q.format.as_deref() == Some("csv") {
        let (rows, _) = audit::list(svc.db.pool(), &filter, 100_000, 0).await?;
        let mut out = String::from(
            "time,actor_id,actor_role,action,target,status,request_id,ip,before,detail\n",
        );
        for r in rows {
            let e = &r.entry;
            let fields = [
                r.created_at.as_str(),
                &e.actor_id,
                &e.actor_role,
                &e.action,
                &e.target,
                &e.status.to_string(),
                &e.request_id,
                &e.ip,
                e.before.as_deref().unwrap_or(""),
                e.detail.as_deref().unwrap_or(""),
            ];
            out.push_str(
                &fields
                    .iter()
                    .map(|f| skein_core::csv::field(f))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push('\n');
        }
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"audit.csv\"",
                ),
            ],
            out,
        )
            .into_response());
    }
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
    };
    let (rows, total) = audit::list(svc.db.pool(), &filter, page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(rows, total, page)).into_response())
}
