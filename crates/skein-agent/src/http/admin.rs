//! Admin: the market's categories (bilingual names), moderation (unlist, feature) and the
//! queue of reports.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult, ids};
use utoipa::ToSchema;

use super::agents::{AgentCard, card};
use super::market::{Category, ReportView, category_view, report_view};
use crate::AgentService;
use crate::store::{self, CategoryRow};

fn check_category(c: &Category) -> ApiResult<()> {
    let id_ok = (1..=32).contains(&c.id.len())
        && c.id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !id_ok {
        return Err(ApiError::invalid_field(
            "id",
            "A category id has 1 to 32 lower-case letters, digits or dashes.",
            "分类 ID 须为 1 到 32 个小写字母、数字或连字符。",
        ));
    }
    for (field, name) in [("name_en", &c.name_en), ("name_zh", &c.name_zh)] {
        if name.trim().is_empty() || name.chars().count() > 32 {
            return Err(ApiError::invalid_field(
                field,
                "A category name has 1 to 32 characters, in English and in Chinese.",
                "分类名称须为 1 到 32 个字符，中英文各一个。",
            ));
        }
    }
    Ok(())
}

/// Add or rename a market category.
#[utoipa::path(put, path = "/admin/agent-categories", tag = "admin", security(("bearer" = [])), request_body = Category,
    responses((status = 200, body = Category), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn put_category(
    State(svc): State<Arc<AgentService>>,
    _admin: AdminUser,
    ApiJson(c): ApiJson<Category>,
) -> ApiResult<ApiJson<Category>> {
    check_category(&c)?;
    let row = CategoryRow {
        id: c.id,
        name_en: c.name_en.trim().to_string(),
        name_zh: c.name_zh.trim().to_string(),
        sort: c.sort,
        created_at: ids::now_ms(),
    };
    store::upsert_category(&svc.db, &row).await?;
    Ok(ApiJson(category_view(row)))
}

/// Remove a market category (assistants keep the id; it no longer lists them).
#[utoipa::path(delete, path = "/admin/agent-categories/{id}", tag = "admin", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_category(
    State(svc): State<Arc<AgentService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if store::delete_category(&svc.db, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("Category", "分类"))
    }
}

/// A moderation decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Moderation {
    /// Whether it is in the market.
    pub listed: Option<bool>,
    /// Whether it is featured.
    pub featured: Option<bool>,
    /// A report this resolves.
    pub resolves_report: Option<String>,
}

/// Unlist, relist or feature an assistant.
#[utoipa::path(put, path = "/admin/agents/{id}/moderation", tag = "admin", security(("bearer" = [])), request_body = Moderation,
    responses((status = 200, body = AgentCard), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn moderate(
    State(svc): State<Arc<AgentService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
    ApiJson(m): ApiJson<Moderation>,
) -> ApiResult<ApiJson<AgentCard>> {
    let moderated = store::moderate(&svc.db, &id, m.listed, m.featured).await?;
    svc.market_changed(&id).await;
    if !moderated {
        return Err(crate::not_found());
    }
    if let Some(report) = &m.resolves_report {
        store::resolve_report(&svc.db, report, ids::now_ms()).await?;
    }
    let row = store::agent(&svc.db, &id)
        .await?
        .ok_or_else(crate::not_found)?;
    Ok(ApiJson(card(&svc, &row)))
}

/// Open reports, oldest first.
#[utoipa::path(get, path = "/admin/agent-reports", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<ReportView>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_reports(
    State(svc): State<Arc<AgentService>>,
    _admin: AdminUser,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<Page<ReportView>>> {
    let (rows, total) = store::open_reports(&svc.db, page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(
        rows.into_iter().map(report_view).collect(),
        total,
        page,
    )))
}

/// Resolve a report without other action.
#[utoipa::path(post, path = "/admin/agent-reports/{id}/resolve", tag = "admin", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn resolve_report(
    State(svc): State<Arc<AgentService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if store::resolve_report(&svc.db, &id, ids::now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("Report", "举报"))
    }
}
