//! Coupons: admins make and switch them; users check one against an amount before paying
//! (the order itself claims it, see `payment::coupon`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skein_core::auth::{AdminUser, AuthUser};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::{looks_like_id, new_id, now_ms, rfc3339_to_ms};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::BillingService;
use crate::payment::coupon::{self, CouponKind, CouponScope, CouponView, NewCoupon};

/// A coupon to create. Exactly one of `percent_off` and `amount_off`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCoupon {
    /// What users type (4–32 letters, digits, `-` or `_`; stored upper case).
    pub code: String,
    /// The admin's name for it (1–100 characters).
    pub name: String,
    /// Percent off, 1–100.
    pub percent_off: Option<i64>,
    /// Minor units off (fen, cents), > 0.
    pub amount_off: Option<i64>,
    /// Smallest order (before the discount) it applies to, in minor units.
    #[serde(default)]
    pub min_spend: i64,
    /// Valid from (RFC 3339); omitted = at once.
    pub starts_at: Option<String>,
    /// Valid until (RFC 3339); omitted = no end.
    pub ends_at: Option<String>,
    /// Most uses in all, ≥ 1; omitted = no limit.
    pub total_limit: Option<i64>,
    /// Most uses per user, ≥ 1; omitted = no limit.
    pub per_user_limit: Option<i64>,
    /// Only for users without a paid order.
    #[serde(default)]
    pub first_purchase_only: bool,
    /// What it may be used on: `topup`, `plan` or `all` (the default).
    pub scope: Option<String>,
    /// With `plan` or `all`: only these plans (ids of existing plans); omitted or empty =
    /// every plan.
    #[serde(default)]
    pub plan_ids: Vec<String>,
}

/// A change to a coupon.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCoupon {
    /// Switch it off (true) or on again (false).
    pub disabled: Option<bool>,
    /// A new end (RFC 3339), or `""` for none.
    pub ends_at: Option<String>,
}

/// A coupon to check against an amount.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteCoupon {
    /// The code as typed.
    pub code: String,
    /// The amount before the discount, in minor units.
    pub amount: i64,
    /// The plan being bought; omitted for a top-up.
    pub plan_id: Option<String>,
}

/// What a coupon does to an amount.
#[derive(Debug, Serialize, ToSchema)]
pub struct CouponQuote {
    /// The code (upper case).
    pub code: String,
    /// `percent` or `fixed`.
    pub kind: CouponKind,
    /// Percent off, for `percent`.
    pub percent_off: i64,
    /// The amount before the discount, in minor units.
    pub amount: i64,
    /// What it takes off, in minor units.
    pub discount: i64,
    /// What is paid, in minor units.
    pub pay_amount: i64,
}

fn field_error(field: &str, en: &'static str, zh: &'static str) -> ApiError {
    ApiError::invalid_field(field, en, zh)
}

fn time_field(field: &str, text: Option<&str>) -> ApiResult<Option<i64>> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => rfc3339_to_ms(text).map(Some).ok_or_else(|| {
            field_error(
                field,
                "Give times as RFC 3339, e.g. 2026-12-31T23:59:59Z.",
                "时间须为 RFC 3339 格式，例如 2026-12-31T23:59:59Z。",
            )
        }),
    }
}

/// Checks an admin's coupon; the coupon to store.
fn parse(
    req: &CreateCoupon,
    currency: crate::payment::Currency,
    admin: &str,
) -> ApiResult<NewCoupon> {
    let code = coupon::normalize(&req.code);
    if !(4..=32).contains(&code.len())
        || !code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(field_error(
            "code",
            "The code must be 4–32 letters, digits, '-' or '_'.",
            "优惠码须为 4–32 个字母、数字、“-”或“_”。",
        ));
    }
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(field_error(
            "name",
            "Name the coupon (1–100 characters).",
            "请填写优惠券名称（1–100 个字符）。",
        ));
    }
    let (kind, percent_off, amount_off) = match (req.percent_off, req.amount_off) {
        (Some(p), None) if (1..=100).contains(&p) => (CouponKind::Percent, p, 0),
        (None, Some(a)) if a > 0 && a <= 100_000_000 => (CouponKind::Fixed, 0, a),
        _ => {
            return Err(field_error(
                "percent_off",
                "Give either percent_off (1–100) or amount_off (minor units, > 0), not both.",
                "请只填写 percent_off（1–100）或 amount_off（以分为单位，大于 0）之一。",
            ));
        }
    };
    if !(0..=100_000_000).contains(&req.min_spend) {
        return Err(field_error(
            "min_spend",
            "min_spend must be 0 or more (minor units).",
            "最低消费须大于等于 0（以分为单位）。",
        ));
    }
    let starts_at = time_field("starts_at", req.starts_at.as_deref())?;
    let ends_at = time_field("ends_at", req.ends_at.as_deref())?;
    if let (Some(s), Some(e)) = (starts_at, ends_at)
        && e <= s
    {
        return Err(field_error(
            "ends_at",
            "ends_at must be after starts_at.",
            "结束时间须晚于开始时间。",
        ));
    }
    for (field, limit) in [
        ("total_limit", req.total_limit),
        ("per_user_limit", req.per_user_limit),
    ] {
        if limit.is_some_and(|n| n < 1) {
            return Err(field_error(
                field,
                "A limit must be 1 or more (leave it out for no limit).",
                "限制次数须至少为 1（不限制请留空）。",
            ));
        }
    }
    let scope = match req.scope.as_deref().map(str::trim) {
        None | Some("") => CouponScope::All,
        Some(text) => CouponScope::parse(text).ok_or_else(|| {
            field_error(
                "scope",
                "The scope is topup, plan or all.",
                "适用范围须为 topup（充值）、plan（套餐）或 all（全部）。",
            )
        })?,
    };
    let mut plan_ids: Vec<String> = Vec::new();
    for id in &req.plan_ids {
        let id = id.trim();
        if !skein_core::ids::looks_like_id(id) {
            return Err(field_error(
                "plan_ids",
                "plan_ids holds plan ids.",
                "plan_ids 须为套餐 ID。",
            ));
        }
        if !plan_ids.iter().any(|p| p == id) {
            plan_ids.push(id.to_string());
        }
    }
    if scope == CouponScope::Topup && !plan_ids.is_empty() {
        return Err(field_error(
            "plan_ids",
            "A top-up coupon cannot name plans.",
            "仅限充值的优惠券不能指定套餐。",
        ));
    }
    Ok(NewCoupon {
        scope,
        plan_ids,
        id: new_id(),
        code,
        name: name.to_string(),
        kind,
        percent_off,
        amount_off,
        currency,
        min_spend: req.min_spend,
        starts_at,
        ends_at,
        total_limit: req.total_limit,
        per_user_limit: req.per_user_limit,
        first_purchase_only: req.first_purchase_only,
        created_by: admin.to_string(),
    })
}

/// Create a coupon (admin). Its amounts are in the payment currency.
#[utoipa::path(post, path = "/admin/billing/coupons", tag = "admin-billing", security(("bearer" = [])), request_body = CreateCoupon,
    responses((status = 201, body = CouponView), (status = 403, body = ErrorEnvelope), (status = 404, description = "Top-up is not enabled", body = ErrorEnvelope),
        (status = 409, description = "The code is taken", body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn create(
    State(svc): State<Arc<BillingService>>,
    AdminUser(admin): AdminUser,
    ApiJson(req): ApiJson<CreateCoupon>,
) -> ApiResult<(StatusCode, ApiJson<CouponView>)> {
    let currency = svc.payments()?.config.currency;
    let new = parse(&req, currency, &admin.user_id)?;
    if !new.plan_ids.is_empty() {
        let mut conn = svc
            .db
            .pool()
            .acquire()
            .await
            .map_err(skein_db::DbError::from)?;
        for id in &new.plan_ids {
            if crate::payment::plan::get_plan(&mut conn, id)
                .await?
                .is_none()
            {
                return Err(field_error(
                    "plan_ids",
                    "One of plan_ids is not a plan.",
                    "plan_ids 中有不存在的套餐。",
                ));
            }
        }
    }
    if !coupon::insert(&svc.db, &new, now_ms()).await? {
        return Err(ApiError::conflict(
            "coupon_code_taken",
            "Another coupon has this code.",
            "已有其他优惠券使用此优惠码。",
        ));
    }
    let made = coupon::by_id(&svc.db, &new.id)
        .await?
        .ok_or_else(|| ApiError::internal("a coupon vanished after it was made"))?;
    tracing::info!(coupon_id = %new.id, code = %new.code, admin_id = %admin.user_id, "coupon created");
    Ok((StatusCode::CREATED, ApiJson(made.into_view())))
}

/// Every coupon, newest first, with the uses taken (admin).
#[utoipa::path(get, path = "/admin/billing/coupons", tag = "admin-billing", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<CouponView>), (status = 403, body = ErrorEnvelope)))]
pub async fn list(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<Page<CouponView>>> {
    let (rows, total) = coupon::list(&svc.db, page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(
        rows.into_iter().map(coupon::Coupon::into_view).collect(),
        total,
        page,
    )))
}

fn no_coupon() -> ApiError {
    ApiError::not_found("coupon", "优惠券")
}

/// Switch a coupon off or on, or move its end (admin). Orders that already hold it keep it.
#[utoipa::path(patch, path = "/admin/billing/coupons/{id}", tag = "admin-billing", security(("bearer" = [])), request_body = UpdateCoupon,
    params(("id" = String, Path, description = "Coupon id")),
    responses((status = 200, body = CouponView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn update(
    State(svc): State<Arc<BillingService>>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateCoupon>,
) -> ApiResult<ApiJson<CouponView>> {
    if !looks_like_id(&id) {
        return Err(no_coupon());
    }
    let ends_at = match req.ends_at.as_deref() {
        None => None,
        Some(text) => Some(time_field("ends_at", Some(text))?),
    };
    if !coupon::update(&svc.db, &id, req.disabled, ends_at, now_ms()).await? {
        return Err(no_coupon());
    }
    tracing::info!(coupon_id = %id, admin_id = %admin.user_id, disabled = ?req.disabled, "coupon changed");
    let found = coupon::by_id(&svc.db, &id).await?.ok_or_else(no_coupon)?;
    Ok(ApiJson(found.into_view()))
}

/// Check a coupon against an amount before paying (a top-up, or with `plan_id` a plan):
/// what it takes off, or why it cannot be used (422 `coupon_unavailable` with
/// `details.reason`). Nothing is claimed until the order is made.
#[utoipa::path(post, path = "/billing/coupons/quote", tag = "payments", security(("bearer" = [])), request_body = QuoteCoupon,
    responses((status = 200, body = CouponQuote), (status = 401, body = ErrorEnvelope), (status = 404, description = "Top-up is not enabled", body = ErrorEnvelope),
        (status = 422, description = "The coupon cannot be used", body = ErrorEnvelope)))]
pub async fn quote(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<QuoteCoupon>,
) -> ApiResult<ApiJson<CouponQuote>> {
    let currency = svc.payments()?.config.currency;
    let (found, discount) = coupon::quote(
        &svc.db,
        &req.code,
        &user.user_id,
        req.amount,
        currency,
        req.plan_id
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty()),
        now_ms(),
    )
    .await?;
    Ok(ApiJson(CouponQuote {
        code: found.code,
        kind: found.kind,
        percent_off: found.percent_off,
        amount: req.amount,
        discount,
        pay_amount: req.amount - discount,
    }))
}
