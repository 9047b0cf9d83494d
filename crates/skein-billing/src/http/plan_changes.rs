//! Changing a subscription's plan: preview the price, apply (an upgrade makes an order to
//! pay, a downgrade is scheduled), cancel a scheduled downgrade. The rules are in
//! `payment::plan_change`.

use std::sync::Arc;

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::{looks_like_id, now_ms};
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::BillingService;
use crate::payment::OrderView;
use crate::payment::plan::SubscriptionView;
use crate::payment::plan_change::{self, Applied, ChangeKind, ChangePreview};

/// The plan to preview a change to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewChange {
    /// The plan to move to.
    pub plan_id: String,
}

/// A change of plan to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyChange {
    /// The plan to move to.
    pub plan_id: String,
    /// For an upgrade (paid now): `epay`, `stripe`, `alipay` or `wechat`.
    pub provider: Option<String>,
    /// The provider's method; the first offered when left out.
    pub method: Option<String>,
    /// For an upgrade: a coupon code, applied to what is left to pay after the credit.
    pub coupon: Option<String>,
}

/// What applying a change did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeResult {
    /// `upgrade` or `downgrade`.
    pub kind: ChangeKind,
    /// The terms, as the preview showed them.
    pub preview: ChangePreview,
    /// An upgrade's order (its coupon discount included); it takes effect once paid.
    pub order: Option<OrderView>,
    /// Where to pay the upgrade.
    pub pay_url: Option<String>,
    /// A downgrade: the subscription with its scheduled plan.
    pub subscription: Option<SubscriptionView>,
}

fn checked(id: &str, plan_id: &str) -> ApiResult<()> {
    if !looks_like_id(id) {
        return Err(ApiError::not_found("subscription", "订阅"));
    }
    if !looks_like_id(plan_id.trim()) {
        return Err(ApiError::not_found("plan", "套餐"));
    }
    Ok(())
}

/// Preview moving one of the caller's active subscriptions to another plan: an upgrade's
/// prorated price now, or when a downgrade would take effect. Nothing changes.
#[utoipa::path(post, path = "/billing/subscriptions/{id}/change/preview", tag = "subscriptions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id")), request_body = PreviewChange,
    responses((status = 200, body = ChangePreview), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "No such active subscription of the caller's, or no such plan on offer", body = ErrorEnvelope),
        (status = 409, description = "Already on that plan, or renewed ahead (no upgrade)", body = ErrorEnvelope)))]
pub async fn preview_change(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PreviewChange>,
) -> ApiResult<ApiJson<ChangePreview>> {
    checked(&id, &req.plan_id)?;
    let (preview, _, _) =
        plan_change::preview(&svc.db, &user.user_id, &id, req.plan_id.trim(), now_ms()).await?;
    Ok(ApiJson(preview))
}

/// Move one of the caller's active subscriptions to another plan. An upgrade answers an
/// order to pay (the prorated price, less a coupon): once paid, the old subscription ends as
/// `upgraded` and the new one starts. A downgrade is scheduled for the end of the paid
/// periods; renewing then buys the new plan.
#[utoipa::path(post, path = "/billing/subscriptions/{id}/change", tag = "subscriptions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id")), request_body = ApplyChange,
    responses((status = 200, body = ChangeResult), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "No such active subscription of the caller's, no such plan on offer, or top-up is off", body = ErrorEnvelope),
        (status = 409, description = "Already on that plan, or renewed ahead", body = ErrorEnvelope),
        (status = 422, description = "An upgrade without a provider, an unknown provider or method, or a coupon that cannot be used", body = ErrorEnvelope),
        (status = 429, description = "Too many unpaid orders", body = ErrorEnvelope)))]
pub async fn apply_change(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ApplyChange>,
) -> ApiResult<ApiJson<ChangeResult>> {
    checked(&id, &req.plan_id)?;
    let (preview, applied) = svc
        .change_plan(
            &user.user_id,
            &id,
            req.plan_id.trim(),
            req.provider.as_deref().map(str::trim),
            req.method.as_deref().map(str::trim),
            req.coupon.as_deref(),
        )
        .await?;
    Ok(ApiJson(match applied {
        Applied::Upgrade(order, pay_url) => ChangeResult {
            kind: ChangeKind::Upgrade,
            preview,
            order: Some((*order).into()),
            pay_url: Some(pay_url),
            subscription: None,
        },
        Applied::Downgrade(view) => ChangeResult {
            kind: ChangeKind::Downgrade,
            preview,
            order: None,
            pay_url: None,
            subscription: Some(*view),
        },
    }))
}

/// Cancel the downgrade scheduled on one of the caller's subscriptions: it keeps its plan.
#[utoipa::path(delete, path = "/billing/subscriptions/{id}/change", tag = "subscriptions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = SubscriptionView), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "No downgrade scheduled on an active subscription of the caller's", body = ErrorEnvelope),
        (status = 409, description = "The cheaper plan is paid for already", body = ErrorEnvelope)))]
pub async fn cancel_change(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<SubscriptionView>> {
    if !looks_like_id(&id) {
        return Err(ApiError::not_found("scheduled downgrade", "已安排的降级"));
    }
    Ok(ApiJson(svc.cancel_downgrade(&user.user_id, &id).await?))
}
