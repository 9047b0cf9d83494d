//! The market: public, published, listed assistants by category, searched in any language
//! (substring match over name, description and tags, with LIKE's metacharacters escaped),
//! sorted; likes and favourites (one per user, counts exact); usage statistics; reports.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult, ids};
use utoipa::{IntoParams, ToSchema};

use super::agents::{AgentCard, card};
use crate::store::{self, CategoryRow, Mark, MarketQuery, ReportRow, Sort};
use crate::{AgentService, day_of};

/// Longest search string, in characters.
const MAX_QUERY: usize = 100;
/// Most search terms.
const MAX_TERMS: usize = 8;

/// A market search.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MarketParams {
    /// Words to find in name, description or tags (each must occur; any language; a word
    /// matches the words it begins, Chinese and Japanese text anywhere).
    pub q: Option<String>,
    /// A category id.
    pub category: Option<String>,
    /// `trending` (default), `newest`, `most_used`, `most_liked`.
    pub sort: Option<String>,
    /// Only featured assistants.
    pub featured: Option<bool>,
    /// 1-based page.
    pub page: Option<u32>,
    /// Page size, 1–100.
    pub per_page: Option<u32>,
}

/// Splits a search string into lower-cased terms.
pub(crate) fn terms(q: &str) -> ApiResult<Vec<String>> {
    if q.chars().count() > MAX_QUERY {
        return Err(ApiError::invalid_field(
            "q",
            format!("A search has at most {MAX_QUERY} characters."),
            format!("搜索内容最多 {MAX_QUERY} 个字符。"),
        ));
    }
    Ok(q.to_lowercase()
        .split_whitespace()
        .take(MAX_TERMS)
        .map(str::to_string)
        .collect())
}

fn sort(text: Option<&str>) -> ApiResult<Sort> {
    match text.unwrap_or("trending") {
        "trending" => Ok(Sort::Trending),
        "newest" => Ok(Sort::Newest),
        "most_used" => Ok(Sort::MostUsed),
        "most_liked" => Ok(Sort::MostLiked),
        _ => Err(ApiError::invalid_field(
            "sort",
            "sort is trending, newest, most_used or most_liked.",
            "sort 须为 trending、newest、most_used 或 most_liked。",
        )),
    }
}

/// Browse and search the market.
#[utoipa::path(get, path = "/market/agents", tag = "market", security((), ("bearer" = [])), params(MarketParams),
    responses((status = 200, body = Page<AgentCard>), (status = 422, body = ErrorEnvelope)))]
pub async fn market(
    State(svc): State<Arc<AgentService>>,
    ApiQuery(p): ApiQuery<MarketParams>,
) -> ApiResult<ApiJson<Page<AgentCard>>> {
    let terms = terms(p.q.as_deref().unwrap_or(""))?;
    let page = PageQuery {
        page: p.page,
        per_page: p.per_page,
    };
    let category = p.category.as_deref().filter(|c| !c.is_empty());
    let query = MarketQuery {
        terms: &terms,
        category,
        featured: p.featured.unwrap_or(false),
        sort: sort(p.sort.as_deref())?,
        limit: page.limit(),
        offset: page.offset(),
    };
    // Searches from memory once it is loaded; browsing reads the page in an index's order
    // and takes the total from memory; the tables answer everything before the first load.
    let (rows, total) = match svc.market.search(&query) {
        Some((ids, total)) => (store::market_rows(&svc.db, &ids).await?, total),
        None => {
            let known = if terms.is_empty() {
                svc.market.browse_total(&query)
            } else {
                None
            };
            store::market_counted(&svc.db, &query, known).await?
        }
    };
    Ok(ApiJson(Page::new(
        rows.iter().map(|r| card(&svc, r)).collect(),
        total,
        page,
    )))
}

/// A market category.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Category {
    /// Id: lower-case letters, digits and `-` (1–32).
    pub id: String,
    /// English name.
    pub name_en: String,
    /// Chinese name.
    pub name_zh: String,
    /// Order in lists (smaller first).
    #[serde(default)]
    pub sort: i64,
}

pub(crate) fn category_view(c: CategoryRow) -> Category {
    Category {
        id: c.id,
        name_en: c.name_en,
        name_zh: c.name_zh,
        sort: c.sort,
    }
}

/// The market's categories, in order.
#[utoipa::path(get, path = "/market/categories", tag = "market", security((), ("bearer" = [])),
    responses((status = 200, body = Vec<Category>)))]
pub async fn categories(State(svc): State<Arc<AgentService>>) -> ApiResult<ApiJson<Vec<Category>>> {
    Ok(ApiJson(
        store::categories(&svc.db)
            .await?
            .into_iter()
            .map(category_view)
            .collect(),
    ))
}

/// A like or favourite, after the change.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarkState {
    /// Whether the caller has it now.
    pub on: bool,
    /// How many users have it.
    pub count: i64,
}

async fn set(
    svc: &AgentService,
    user: &AuthUser,
    id: &str,
    mark: Mark,
    on: bool,
) -> ApiResult<ApiJson<MarkState>> {
    let row = svc.visible(id, Some(&user.user_id)).await?;
    if row.current_version.is_none() {
        return Err(crate::not_found());
    }
    let count = store::set_mark(&svc.db, mark, id, &user.user_id, on, ids::now_ms()).await?;
    svc.market_changed(id).await;
    Ok(ApiJson(MarkState { on, count }))
}

/// Like an assistant (again is a no-op).
#[utoipa::path(put, path = "/agents/{id}/like", tag = "market", security(("bearer" = [])),
    responses((status = 200, body = MarkState), (status = 404, body = ErrorEnvelope)))]
pub async fn like(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<MarkState>> {
    set(&svc, &user, &id, Mark::Like, true).await
}

/// Take a like back.
#[utoipa::path(delete, path = "/agents/{id}/like", tag = "market", security(("bearer" = [])),
    responses((status = 200, body = MarkState), (status = 404, body = ErrorEnvelope)))]
pub async fn unlike(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<MarkState>> {
    set(&svc, &user, &id, Mark::Like, false).await
}

/// Add an assistant to my favourites.
#[utoipa::path(put, path = "/agents/{id}/favourite", tag = "market", security(("bearer" = [])),
    responses((status = 200, body = MarkState), (status = 404, body = ErrorEnvelope)))]
pub async fn favourite(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<MarkState>> {
    set(&svc, &user, &id, Mark::Favourite, true).await
}

/// Remove an assistant from my favourites.
#[utoipa::path(delete, path = "/agents/{id}/favourite", tag = "market", security(("bearer" = [])),
    responses((status = 200, body = MarkState), (status = 404, body = ErrorEnvelope)))]
pub async fn unfavourite(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<MarkState>> {
    set(&svc, &user, &id, Mark::Favourite, false).await
}

/// My favourite assistants, most recent first.
#[utoipa::path(get, path = "/agents/favourites", tag = "market", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<AgentCard>)))]
pub async fn list_favourites(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<Page<AgentCard>>> {
    let (rows, total) =
        store::favourites(&svc.db, &user.user_id, page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(
        rows.iter().map(|r| card(&svc, r)).collect(),
        total,
        page,
    )))
}

/// How many days of statistics to show.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// 1–365 (default 30).
    pub days: Option<u32>,
}

/// One day of usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayStats {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Conversations started.
    pub conversations: i64,
    /// Messages sent.
    pub messages: i64,
    /// Distinct users.
    pub users: i64,
}

/// An assistant's usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// Conversations started, all time.
    pub conversations: i64,
    /// Messages sent, all time.
    pub messages: i64,
    /// Distinct users, all time.
    pub unique_users: i64,
    /// Likes.
    pub likes: i64,
    /// Favourites.
    pub favourites: i64,
    /// Per day, oldest first (days without use are left out).
    pub days: Vec<DayStats>,
}

/// Usage statistics of an assistant (its owner, or an admin).
#[utoipa::path(get, path = "/agents/{id}/stats", tag = "market", security(("bearer" = [])), params(StatsQuery),
    responses((status = 200, body = Stats), (status = 404, body = ErrorEnvelope)))]
pub async fn stats(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<ApiJson<Stats>> {
    let row = store::agent(&svc.db, &id)
        .await?
        .ok_or_else(crate::not_found)?;
    if row.owner_id != user.user_id && user.role < skein_core::auth::Role::Admin {
        return Err(crate::not_found());
    }
    let days = i64::from(q.days.unwrap_or(30).clamp(1, 365));
    let from = day_of(ids::now_ms() - (days - 1) * 86_400_000);
    let (per_day, unique_users) = store::usage(&svc.db, &id, &from).await?;
    Ok(ApiJson(Stats {
        conversations: row.conversations,
        messages: row.messages,
        unique_users,
        likes: row.likes,
        favourites: row.favourites,
        days: per_day
            .into_iter()
            .map(|d| DayStats {
                day: d.day,
                conversations: d.conversations,
                messages: d.messages,
                users: d.users,
            })
            .collect(),
    }))
}

/// A report of an assistant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    /// Why (1–1,000 characters).
    pub reason: String,
}

/// A filed report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    /// Id.
    pub id: String,
    /// The assistant.
    pub agent_id: String,
    /// Who reported it.
    pub user_id: String,
    /// Why.
    pub reason: String,
    /// Filed, RFC 3339.
    pub created_at: String,
}

pub(crate) fn report_view(r: ReportRow) -> ReportView {
    ReportView {
        id: r.id,
        agent_id: r.agent_id,
        user_id: r.user_id,
        reason: r.reason,
        created_at: ids::ms_to_rfc3339(r.created_at),
    }
}

/// Report an assistant to the admins.
#[utoipa::path(post, path = "/agents/{id}/report", tag = "market", security(("bearer" = [])), request_body = ReportInput,
    responses((status = 201, body = ReportView), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn report(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ReportInput>,
) -> ApiResult<(StatusCode, ApiJson<ReportView>)> {
    svc.visible(&id, Some(&user.user_id)).await?;
    let reason = input.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 1_000 {
        return Err(ApiError::invalid_field(
            "reason",
            "A report needs a reason of 1 to 1,000 characters.",
            "举报理由须为 1 到 1,000 个字符。",
        ));
    }
    let row = ReportRow {
        id: ids::new_id(),
        agent_id: id,
        user_id: user.user_id.clone(),
        reason,
        created_at: ids::now_ms(),
        resolved_at: None,
    };
    store::insert_report(&svc.db, &row).await?;
    Ok((StatusCode::CREATED, ApiJson(report_view(row))))
}
