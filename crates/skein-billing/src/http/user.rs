//! A signed-in user's own balance, ledger, usage and code redemption.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};

use super::{EXPORT_LIMIT, time_bound};
use crate::query::{self, DailyUsage, LedgerEntry, QuotaView, UsageFilter, UsageRecord};
use crate::writer::{Done, Op};
use crate::{BillingService, unexpected};

/// Filters of the ledger.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    /// Only this kind (`consume`, `redeem`, ...).
    pub kind: Option<String>,
    /// Only entries with a `seq` below this (pass the last `seq` of a page to get the next,
    /// stable while new entries arrive).
    pub before: Option<i64>,
    /// 1-based page.
    pub page: Option<u32>,
    /// Page size, 1–100.
    pub per_page: Option<u32>,
}

/// Filters of usage records.
#[derive(Debug, Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// API key id.
    pub key_id: Option<String>,
    /// A user (admin views only).
    pub user_id: Option<String>,
    /// Daily totals per `model` (default) or per `user` (admin views only).
    pub group: Option<String>,
    /// 1-based page.
    pub page: Option<u32>,
    /// Page size, 1–100.
    pub per_page: Option<u32>,
}

impl UsageQuery {
    pub(crate) fn filter(&self, user_id: String) -> ApiResult<UsageFilter> {
        Ok(UsageFilter {
            user_id,
            model: self.model.clone().unwrap_or_default(),
            key_id: self.key_id.clone().unwrap_or_default(),
            from_ms: time_bound("from", self.from.as_deref())?,
            to_ms: time_bound("to", self.to.as_deref())?,
        })
    }

    pub(crate) fn page(&self) -> PageQuery {
        PageQuery {
            page: self.page,
            per_page: self.per_page,
        }
    }
}

/// A code to redeem.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// The redemption code.
    pub code: String,
}

/// What a redemption added.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redeemed {
    /// Quota added.
    pub amount: i64,
    /// Balance afterwards.
    pub balance: i64,
}

/// The caller's balance: total, held by requests in progress, available, used.
#[utoipa::path(get, path = "/billing/quota", tag = "billing", security(("bearer" = [])),
    responses((status = 200, body = QuotaView), (status = 401, body = ErrorEnvelope)))]
pub async fn get_quota(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<QuotaView>> {
    Ok(ApiJson(svc.quota(&user.user_id).await?))
}

/// The caller's ledger: every change of their balance, newest first (by `seq`).
#[utoipa::path(get, path = "/billing/ledger", tag = "billing", security(("bearer" = [])), params(LedgerQuery),
    responses((status = 200, body = Page<LedgerEntry>), (status = 401, body = ErrorEnvelope)))]
pub async fn get_ledger(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<LedgerQuery>,
) -> ApiResult<ApiJson<Page<LedgerEntry>>> {
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
    };
    let (rows, total) = query::ledger(
        &svc.db,
        &user.user_id,
        q.kind.as_deref().unwrap_or(""),
        q.before,
        page.limit(),
        page.offset(),
    )
    .await?;
    Ok(ApiJson(Page::new(rows, total, page)))
}

/// The caller's usage records, filtered by time, model and key.
#[utoipa::path(get, path = "/billing/usage", tag = "billing", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, body = Page<UsageRecord>), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn list_usage(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<ApiJson<Page<UsageRecord>>> {
    let filter = q.filter(user.user_id)?;
    let page = q.page();
    let (rows, total) = query::usage(&svc.db, &filter, page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(rows, total, page)))
}

/// The caller's usage records as CSV (same filters; at most 100,000 rows).
#[utoipa::path(get, path = "/billing/usage/export", tag = "billing", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 401, body = ErrorEnvelope)))]
pub async fn export_usage(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<impl IntoResponse> {
    usage_csv(&svc, &q.filter(user.user_id)?).await
}

pub(crate) async fn usage_csv(
    svc: &BillingService,
    filter: &UsageFilter,
) -> ApiResult<impl IntoResponse + use<>> {
    let (rows, _) = query::usage(&svc.db, filter, EXPORT_LIMIT, 0).await?;
    let rows = rows.into_iter().map(|r| {
        vec![
            r.created_at,
            r.user_id,
            r.key_id.unwrap_or_default(),
            r.model,
            r.channel_id.unwrap_or_default(),
            r.prompt_tokens.to_string(),
            r.completion_tokens.to_string(),
            r.cached_tokens.to_string(),
            r.cost.to_string(),
            r.duration_ms.to_string(),
            r.ttft_ms.map(|v| v.to_string()).unwrap_or_default(),
            r.stream.to_string(),
            r.status,
            r.request_id,
            r.cache_write_tokens.to_string(),
            r.overrun.to_string(),
            r.uncollected.to_string(),
        ]
    });
    Ok(super::csv_response(
        "usage.csv",
        "time,user_id,key_id,model,channel_id,prompt_tokens,completion_tokens,cached_tokens,cost,duration_ms,ttft_ms,stream,status,request_id,cache_write_tokens,overrun,uncollected",
        rows,
    ))
}

/// The caller's daily totals per model (UTC days).
#[utoipa::path(get, path = "/billing/usage/daily", tag = "billing", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, body = Vec<DailyUsage>), (status = 401, body = ErrorEnvelope)))]
pub async fn daily_usage(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<ApiJson<Vec<DailyUsage>>> {
    Ok(ApiJson(
        query::daily(&svc.db, &q.filter(user.user_id)?, false).await?,
    ))
}

/// Redeem a code for quota. Each code works once, for one user.
#[utoipa::path(post, path = "/billing/redeem", tag = "billing", security(("bearer" = [])), request_body = RedeemRequest,
    responses(
        (status = 200, body = Redeemed),
        (status = 401, body = ErrorEnvelope),
        (status = 422, description = "Unknown, used, expired or disabled code", body = ErrorEnvelope),
    ))]
pub async fn redeem(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<RedeemRequest>,
) -> ApiResult<ApiJson<Redeemed>> {
    let code = req.code.trim();
    if code.is_empty() || code.len() > 64 {
        return Err(ApiError::invalid_field(
            "code",
            "Enter a redemption code.",
            "请输入兑换码。",
        ));
    }
    match svc
        .writer
        .submit(Op::Redeem {
            user_id: user.user_id.clone(),
            code: code.to_string(),
        })
        .await?
    {
        Done::Redeemed { amount, balance } => {
            svc.forget_balance(&user.user_id);
            tracing::info!(user_id = %user.user_id, amount, "redemption code redeemed");
            Ok(ApiJson(Redeemed { amount, balance }))
        }
        other => Err(unexpected(&other)),
    }
}
