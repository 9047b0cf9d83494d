//! Admin views of anyone's balance and usage, adjustments, and redemption-code batches.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rand::Rng;
use serde::{Deserialize, Serialize};
use skein_core::api::AuditBefore;
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::{future_expiry, looks_like_id, new_id, now_ms};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};

use super::EXPORT_LIMIT;
use super::user::{LedgerQuery, UsageQuery, usage_csv};
use crate::query::{self, DailyUsage, LedgerEntry, QuotaView, RedemptionCode, UsageRecord};
use crate::{BillingService, Credit};

/// The largest single adjustment (about 2 million dollars at the default rate); bigger
/// numbers are almost certainly typos.
const MAX_ADJUST: i64 = 1_000_000_000_000;

/// An admin credit (positive) or debit (negative).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Adjustment {
    /// Signed quota units, non-zero.
    pub amount: i64,
    /// Why (required; kept in the ledger).
    pub memo: String,
}

/// The balance after an adjustment.
#[derive(Debug, Serialize, ToSchema)]
pub struct Adjusted {
    /// Balance afterwards.
    pub balance: i64,
}

/// A batch of redemption codes to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCodes {
    /// Name of the batch (to find and export it).
    pub name: String,
    /// Quota each code grants (> 0).
    pub amount: i64,
    /// How many codes, 1–1000.
    pub count: u32,
    /// RFC 3339 expiry; omitted = never.
    pub expires_at: Option<String>,
}

/// Filters of the code list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CodeQuery {
    /// Batch name.
    pub name: Option<String>,
    /// `active`, `disabled` or `redeemed`.
    pub status: Option<String>,
    /// 1-based page.
    pub page: Option<u32>,
    /// Page size, 1–100.
    pub per_page: Option<u32>,
}

/// A code's new state.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCode {
    /// Disabled codes cannot be redeemed; redeemed codes cannot change.
    pub disabled: bool,
}

/// Any user's balance (admin).
#[utoipa::path(get, path = "/admin/billing/users/{id}/quota", tag = "admin-billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = QuotaView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn user_quota(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<QuotaView>> {
    svc.require_user(&id).await?;
    Ok(ApiJson(svc.quota(&id).await?))
}

/// Any user's ledger (admin).
#[utoipa::path(get, path = "/admin/billing/users/{id}/ledger", tag = "admin-billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id"), LedgerQuery),
    responses((status = 200, body = Page<LedgerEntry>), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn user_ledger(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LedgerQuery>,
) -> ApiResult<ApiJson<Page<LedgerEntry>>> {
    svc.require_user(&id).await?;
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
    };
    let (rows, total) = query::ledger(
        &svc.db,
        &id,
        q.kind.as_deref().unwrap_or(""),
        q.before,
        page.limit(),
        page.offset(),
    )
    .await?;
    Ok(ApiJson(Page::new(rows, total, page)))
}

/// Credit or debit a user's balance with a required memo (admin). A debit never takes the
/// available balance below the configured overdraft (zero by default). Send an
/// `Idempotency-Key` header to make retries safe: the same key applies once. No one, root
/// included, adjusts their own balance (403 `self_adjustment`): money an admin gives needs a
/// second person to receive it.
#[utoipa::path(post, path = "/admin/billing/users/{id}/adjust", tag = "admin-billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")), request_body = Adjustment,
    responses(
        (status = 200, body = Adjusted),
        (status = 403, description = "Not an admin, or the caller's own account (`self_adjustment`)", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Debit larger than the available balance", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn adjust(
    State(svc): State<Arc<BillingService>>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<Adjustment>,
) -> ApiResult<(Extension<AuditBefore>, ApiJson<Adjusted>)> {
    // An admin crediting themself would mint money for their own use with nobody else
    // involved; root is no exception, so one stolen admin session cannot fund itself.
    if id == admin.user_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "self_adjustment",
            "You cannot adjust your own balance; another admin must do it.",
            "不能调整自己的余额，请由其他管理员操作。",
        ));
    }
    let idempotency_key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(key)) if (1..=128).contains(&key.len()) => {
            Some(format!("adjust:{}:{key}", admin.user_id))
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 128 visible characters.",
                "Idempotency-Key 必须为 1 到 128 个可见字符。",
            ));
        }
    };
    if req.amount == 0 || req.amount.unsigned_abs() > MAX_ADJUST as u64 {
        return Err(ApiError::invalid_field(
            "amount",
            format!("The amount must be non-zero and at most {MAX_ADJUST} in size."),
            format!("金额不能为零，且绝对值不超过 {MAX_ADJUST}。"),
        ));
    }
    let memo = req.memo.trim();
    if memo.is_empty() || memo.chars().count() > 500 {
        return Err(ApiError::invalid_field(
            "memo",
            "Say why, in at most 500 characters.",
            "请填写原因（不超过 500 个字符）。",
        ));
    }
    svc.require_user(&id).await?;
    let balance = svc
        .credit(Credit {
            user_id: id.clone(),
            kind: "admin_adjust",
            amount: req.amount,
            reference: None,
            actor_id: Some(admin.user_id.clone()),
            memo: Some(memo.to_string()),
            idempotency_key,
        })
        .await?;
    let (balance, before) = match balance {
        Some(balance) => {
            tracing::info!(actor = %admin.user_id, target = %id, amount = req.amount, "balance adjusted by admin");
            // The credit is one atomic ledger entry, so the balance it found is exact.
            (balance, balance - req.amount)
        }
        // A retry of an adjustment already applied: answer the balance, change nothing.
        None => {
            let balance = svc.quota(&id).await?.balance;
            (balance, balance)
        }
    };
    Ok((
        Extension(AuditBefore(serde_json::json!({ "balance": before }))),
        ApiJson(Adjusted { balance }),
    ))
}

fn admin_filter(q: &UsageQuery) -> ApiResult<query::UsageFilter> {
    q.filter(q.user_id.clone().unwrap_or_default())
}

/// Everyone's usage records, filtered (admin).
#[utoipa::path(get, path = "/admin/billing/usage", tag = "admin-billing", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, body = Page<UsageRecord>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_usage(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<ApiJson<Page<UsageRecord>>> {
    let page = q.page();
    let (rows, total) =
        query::usage(&svc.db, &admin_filter(&q)?, page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(rows, total, page)))
}

/// Everyone's usage records as CSV (admin).
#[utoipa::path(get, path = "/admin/billing/usage/export", tag = "admin-billing", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 403, body = ErrorEnvelope)))]
pub async fn export_usage(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<impl IntoResponse> {
    usage_csv(&svc, &admin_filter(&q)?).await
}

/// Daily totals per model or per user (`group=user`) for dashboards (admin).
#[utoipa::path(get, path = "/admin/billing/usage/daily", tag = "admin-billing", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, body = Vec<DailyUsage>), (status = 403, body = ErrorEnvelope)))]
pub async fn daily_usage(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<ApiJson<Vec<DailyUsage>>> {
    let by_user = match q.group.as_deref() {
        None | Some("model") => false,
        Some("user") => true,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "group",
                "group must be model or user.",
                "group 必须是 model 或 user。",
            ));
        }
    };
    Ok(ApiJson(
        query::daily(&svc.db, &admin_filter(&q)?, by_user).await?,
    ))
}

/// Redemption codes, filtered by batch and status (admin).
#[utoipa::path(get, path = "/admin/redemption-codes", tag = "admin-billing", security(("bearer" = [])), params(CodeQuery),
    responses((status = 200, body = Page<RedemptionCode>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_codes(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<CodeQuery>,
) -> ApiResult<ApiJson<Page<RedemptionCode>>> {
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
    };
    let (rows, total) = query::codes(
        &svc.db,
        q.name.as_deref().unwrap_or(""),
        q.status.as_deref().unwrap_or(""),
        page.limit(),
        page.offset(),
    )
    .await?;
    Ok(ApiJson(Page::new(rows, total, page)))
}

/// Create a batch of redemption codes (admin).
#[utoipa::path(post, path = "/admin/redemption-codes", tag = "admin-billing", security(("bearer" = [])), request_body = CreateCodes,
    responses((status = 201, body = Vec<RedemptionCode>), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn create_codes(
    State(svc): State<Arc<BillingService>>,
    AdminUser(admin): AdminUser,
    ApiJson(req): ApiJson<CreateCodes>,
) -> ApiResult<(StatusCode, ApiJson<Vec<RedemptionCode>>)> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid_field(
            "name",
            "Name the batch (1–100 characters).",
            "请填写批次名称（1–100 个字符）。",
        ));
    }
    if req.amount <= 0 || req.amount > MAX_ADJUST {
        return Err(ApiError::invalid_field(
            "amount",
            format!("The amount must be between 1 and {MAX_ADJUST}."),
            format!("金额必须在 1 到 {MAX_ADJUST} 之间。"),
        ));
    }
    if !(1..=1000).contains(&req.count) {
        return Err(ApiError::invalid_field(
            "count",
            "count must be 1 to 1000.",
            "数量必须为 1 到 1000。",
        ));
    }
    let now = now_ms();
    let expires_at = future_expiry(req.expires_at.as_deref(), now)?;
    let codes: Vec<(String, String)> = (0..req.count).map(|_| (new_id(), new_code())).collect();
    query::insert_codes(
        &svc.db,
        &codes,
        name,
        req.amount,
        expires_at,
        &admin.user_id,
        now,
    )
    .await?;
    let (rows, _) = query::codes(&svc.db, name, "", i64::from(req.count), 0).await?;
    let created: Vec<RedemptionCode> = rows
        .into_iter()
        .filter(|r| codes.iter().any(|(id, _)| *id == r.id))
        .collect();
    tracing::info!(actor = %admin.user_id, count = req.count, amount = req.amount, batch = name, "redemption codes created");
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// A batch's codes as CSV (admin).
#[utoipa::path(get, path = "/admin/redemption-codes/export", tag = "admin-billing", security(("bearer" = [])), params(CodeQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 403, body = ErrorEnvelope)))]
pub async fn export_codes(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<CodeQuery>,
) -> ApiResult<impl IntoResponse> {
    let (rows, _) = query::codes(
        &svc.db,
        q.name.as_deref().unwrap_or(""),
        q.status.as_deref().unwrap_or(""),
        EXPORT_LIMIT,
        0,
    )
    .await?;
    let rows = rows.into_iter().map(|r| {
        vec![
            r.code,
            r.batch_name,
            r.amount.to_string(),
            r.status,
            r.expires_at.unwrap_or_default(),
            r.redeemed_by.unwrap_or_default(),
            r.redeemed_at.unwrap_or_default(),
            r.created_at,
        ]
    });
    Ok(super::csv_response(
        "redemption-codes.csv",
        "code,batch,amount,status,expires_at,redeemed_by,redeemed_at,created_at",
        rows,
    ))
}

/// Disable or re-enable an unredeemed code (admin).
#[utoipa::path(patch, path = "/admin/redemption-codes/{id}", tag = "admin-billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Code id")), request_body = UpdateCode,
    responses((status = 200, body = RedemptionCode), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn update_code(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateCode>,
) -> ApiResult<ApiJson<RedemptionCode>> {
    let not_found = || ApiError::not_found("Redemption code", "兑换码");
    if !looks_like_id(&id) {
        return Err(not_found());
    }
    Ok(ApiJson(
        query::set_code_disabled(&svc.db, &id, req.disabled)
            .await?
            .ok_or_else(not_found)?,
    ))
}

/// 20 characters from an alphabet without look-alikes, grouped for reading aloud.
fn new_code() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    let mut rng = rand::rngs::OsRng;
    let raw: Vec<char> = (0..20)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    raw.chunks(5)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}
