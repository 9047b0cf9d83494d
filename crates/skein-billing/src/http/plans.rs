//! Subscription plans: users list them, buy or renew one and cancel at period end; admins
//! define plans, see subscriptions and run the period grants now.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skein_core::auth::{AdminUser, AuthUser};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::{looks_like_id, new_id, now_ms};
use skein_core::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};

use super::pay::CreatedOrder;
use crate::BillingService;
use crate::payment::plan::{self, Period, Plan, PlanView, SubscriptionView};
use crate::payment::plan_reminder::ReminderRun;

/// A plan to define.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlan {
    /// English name (1–100 characters).
    pub name_en: String,
    /// Chinese name (1–100 characters).
    pub name_zh: String,
    /// Price of one period, in minor units of the payment currency, > 0.
    pub price: i64,
    /// `month` or `year`.
    pub period: String,
    /// Quota units granted at the start of each period, > 0.
    pub quota_per_period: i64,
    /// A user group the plan is for (recorded and shown).
    pub group_name: Option<String>,
    /// Models the plan is meant for (recorded and shown); empty = all.
    #[serde(default)]
    pub models: Vec<String>,
}

/// A change to a plan; what is left out stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlan {
    /// English name.
    pub name_en: Option<String>,
    /// Chinese name.
    pub name_zh: Option<String>,
    /// Price of one period (for orders made from now on).
    pub price: Option<i64>,
    /// Quota per period (for periods bought from now on).
    pub quota_per_period: Option<i64>,
    /// Offer it (true) or stop offering it (false; subscribers keep what they paid for).
    pub active: Option<bool>,
}

/// Buying (or renewing) a plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyPlan {
    /// `epay`, `stripe`, `alipay` or `wechat`.
    pub provider: String,
    /// The provider's method; the first offered when left out.
    pub method: Option<String>,
    /// A coupon code (scoped to plans, or to all purchases); the order then pays the
    /// discounted price for the same period.
    pub coupon: Option<String>,
}

/// Cancel at period end, or take that back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSubscription {
    /// true: end when the paid periods run out; false: keep it (renew by paying again).
    pub cancel_at_period_end: bool,
}

/// Filters of the admin's subscription list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    /// Only this user's.
    pub user_id: Option<String>,
}

/// What a subscription run did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionRun {
    /// Users granted a period's quota now.
    pub granted_users: usize,
    /// Expiry reminders mailed now (each is sent once per subscription period).
    pub reminders: ReminderRun,
}

fn no_plan() -> ApiError {
    ApiError::not_found("plan", "套餐")
}

fn check_name(field: &str, name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid_field(
            field,
            "A name has 1 to 100 characters.",
            "名称须为 1 到 100 个字符。",
        ));
    }
    Ok(name.to_string())
}

fn check_positive(field: &str, value: i64) -> ApiResult<i64> {
    if value <= 0 || value > crate::ledger::MAX_AMOUNT {
        return Err(ApiError::invalid_field(
            field,
            "The value must be a positive whole number.",
            "该值须为正整数。",
        ));
    }
    Ok(value)
}

/// The plans on offer, cheapest first.
#[utoipa::path(get, path = "/billing/plans", tag = "subscriptions", security(("bearer" = [])),
    responses((status = 200, body = Vec<PlanView>), (status = 401, body = ErrorEnvelope)))]
pub async fn offered_plans(
    State(svc): State<Arc<BillingService>>,
    _user: AuthUser,
) -> ApiResult<ApiJson<Vec<PlanView>>> {
    let plans = plan::list_plans(&svc.db, true).await?;
    Ok(ApiJson(plans.into_iter().map(PlanView::from).collect()))
}

/// Buy a plan, or renew the caller's active subscription of it by one period: makes an order
/// and answers where to pay it. The first period's quota is granted when it is paid; a
/// renewal's when its period begins.
#[utoipa::path(post, path = "/billing/plans/{id}/orders", tag = "subscriptions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plan id")), request_body = BuyPlan,
    responses(
        (status = 201, body = CreatedOrder),
        (status = 401, body = ErrorEnvelope),
        (status = 404, description = "No such plan on offer, or top-up is off", body = ErrorEnvelope),
        (status = 409, description = "The plan's currency is not the payment currency, or a downgrade from it is scheduled", body = ErrorEnvelope),
        (status = 422, description = "Unknown provider or method, or a coupon that cannot be used", body = ErrorEnvelope),
        (status = 429, description = "Too many unpaid orders", body = ErrorEnvelope),
    ))]
pub async fn buy_plan(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<BuyPlan>,
) -> ApiResult<(StatusCode, ApiJson<CreatedOrder>)> {
    if !looks_like_id(&id) {
        return Err(no_plan());
    }
    let (order, pay_url) = svc
        .create_plan_order(
            &user.user_id,
            &id,
            req.provider.trim(),
            req.method.as_deref().map(str::trim),
            req.coupon.as_deref(),
            None,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedOrder {
            order: order.into(),
            pay_url,
        }),
    ))
}

/// The caller's subscriptions, newest first.
#[utoipa::path(get, path = "/billing/subscriptions", tag = "subscriptions", security(("bearer" = [])),
    responses((status = 200, body = Vec<SubscriptionView>), (status = 401, body = ErrorEnvelope)))]
pub async fn my_subscriptions(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<SubscriptionView>>> {
    Ok(ApiJson(
        plan::list_subscriptions(&svc.db, &user.user_id).await?,
    ))
}

/// Cancel one of the caller's active subscriptions at period end, or keep it after all.
#[utoipa::path(patch, path = "/billing/subscriptions/{id}", tag = "subscriptions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id")), request_body = UpdateSubscription,
    responses((status = 200, body = SubscriptionView), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "No such active subscription of the caller's", body = ErrorEnvelope)))]
pub async fn update_subscription(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateSubscription>,
) -> ApiResult<ApiJson<SubscriptionView>> {
    let none = || ApiError::not_found("subscription", "订阅");
    if !looks_like_id(&id) {
        return Err(none());
    }
    plan::set_cancel(
        &svc.db,
        &user.user_id,
        &id,
        req.cancel_at_period_end,
        now_ms(),
    )
    .await?
    .map(ApiJson)
    .ok_or_else(none)
}

/// Every plan, offered or not (admin).
#[utoipa::path(get, path = "/admin/billing/plans", tag = "admin-billing", security(("bearer" = [])),
    responses((status = 200, body = Vec<PlanView>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_plans(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<Vec<PlanView>>> {
    let plans = plan::list_plans(&svc.db, false).await?;
    Ok(ApiJson(plans.into_iter().map(PlanView::from).collect()))
}

/// Define a plan (admin), priced in the payment currency.
#[utoipa::path(post, path = "/admin/billing/plans", tag = "admin-billing", security(("bearer" = [])), request_body = CreatePlan,
    responses((status = 201, body = PlanView), (status = 403, body = ErrorEnvelope), (status = 404, description = "Top-up is off", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
pub async fn create_plan(
    State(svc): State<Arc<BillingService>>,
    AdminUser(admin): AdminUser,
    ApiJson(req): ApiJson<CreatePlan>,
) -> ApiResult<(StatusCode, ApiJson<PlanView>)> {
    let currency = svc.payments()?.config.currency;
    let period = Period::parse(req.period.trim()).ok_or_else(|| {
        ApiError::invalid_field(
            "period",
            "The period is month or year.",
            "周期须为 month（月）或 year（年）。",
        )
    })?;
    let group_name = req
        .group_name
        .as_deref()
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| check_name("group_name", g))
        .transpose()?;
    let mut models = Vec::new();
    for m in &req.models {
        let m = m.trim();
        if m.is_empty() || m.len() > 200 {
            return Err(ApiError::invalid_field(
                "models",
                "Each model name has 1 to 200 characters.",
                "每个模型名须为 1 到 200 个字符。",
            ));
        }
        models.push(m.to_string());
    }
    let plan = Plan {
        id: new_id(),
        name_en: check_name("name_en", &req.name_en)?,
        name_zh: check_name("name_zh", &req.name_zh)?,
        currency,
        price_minor: check_positive("price", req.price)?,
        period,
        quota_per_period: check_positive("quota_per_period", req.quota_per_period)?,
        group_name,
        models,
        active: true,
        created_at: now_ms(),
    };
    plan::insert_plan(&svc.db, &plan, &admin.user_id).await?;
    Ok((StatusCode::CREATED, ApiJson(plan.into())))
}

/// Change a plan (admin).
#[utoipa::path(patch, path = "/admin/billing/plans/{id}", tag = "admin-billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Plan id")), request_body = UpdatePlan,
    responses((status = 200, body = PlanView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
pub async fn update_plan(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdatePlan>,
) -> ApiResult<ApiJson<PlanView>> {
    if !looks_like_id(&id) {
        return Err(no_plan());
    }
    let mut conn = svc
        .db
        .pool()
        .acquire()
        .await
        .map_err(skein_db::DbError::from)?;
    let mut plan = plan::get_plan(&mut conn, &id).await?.ok_or_else(no_plan)?;
    drop(conn);
    if let Some(name) = &req.name_en {
        plan.name_en = check_name("name_en", name)?;
    }
    if let Some(name) = &req.name_zh {
        plan.name_zh = check_name("name_zh", name)?;
    }
    if let Some(price) = req.price {
        plan.price_minor = check_positive("price", price)?;
    }
    if let Some(quota) = req.quota_per_period {
        plan.quota_per_period = check_positive("quota_per_period", quota)?;
    }
    if let Some(active) = req.active {
        plan.active = active;
    }
    if !plan::update_plan(&svc.db, &plan, now_ms()).await? {
        return Err(no_plan());
    }
    Ok(ApiJson(plan.into()))
}

/// Subscriptions, newest first (admin), optionally of one user.
#[utoipa::path(get, path = "/admin/billing/subscriptions", tag = "admin-billing", security(("bearer" = [])), params(SubscriptionQuery),
    responses((status = 200, body = Vec<SubscriptionView>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_subscriptions(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<SubscriptionQuery>,
) -> ApiResult<ApiJson<Vec<SubscriptionView>>> {
    Ok(ApiJson(
        plan::list_subscriptions(&svc.db, q.user_id.as_deref().unwrap_or("")).await?,
    ))
}

/// Grant the subscription periods that have begun, end the finished ones and mail the expiry
/// reminders that are due now, instead of at the scheduler's next tick (admin). Safe to run
/// any time, on any instance: each period is granted once, each reminder sent once.
#[utoipa::path(post, path = "/admin/billing/subscriptions/run", tag = "admin-billing", security(("bearer" = [])),
    responses((status = 200, body = SubscriptionRun), (status = 403, body = ErrorEnvelope)))]
pub async fn run_subscriptions(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<SubscriptionRun>> {
    let (granted_users, reminders) = svc.run_subscriptions().await?;
    Ok(ApiJson(SubscriptionRun {
        granted_users,
        reminders,
    }))
}
