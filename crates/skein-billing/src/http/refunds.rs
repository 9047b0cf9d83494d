//! Refunds of paid orders (admin): make one, list them, ask the provider again.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::{looks_like_id, new_id};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};

use crate::BillingService;
use crate::payment::refund::{self, NewRefund, RefundView};

/// A refund to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// Money to give back, in minor units; omitted = everything not refunded yet.
    pub amount: Option<i64>,
    /// Why (1–200 characters); shown to the provider where it takes one, and in the ledger.
    pub reason: String,
    /// Take the balance below zero when it is smaller than the quota the refund takes back
    /// (the user keeps a debt); without it such a refund is refused.
    #[serde(default)]
    pub force: bool,
    /// The money was (or will be) returned outside Skein, e.g. in an EPay merchant panel:
    /// record it and debit the balance without calling the provider.
    #[serde(default)]
    pub manual: bool,
}

/// Filters of a refund list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RefundQuery {
    /// Only this status (`pending`, `succeeded`, `failed`).
    pub status: Option<String>,
    /// Only refunds of this order.
    pub order_id: Option<String>,
    /// 1-based page.
    pub page: Option<u32>,
    /// Page size, 1–100.
    pub per_page: Option<u32>,
}

fn no_refund() -> ApiError {
    ApiError::not_found("refund", "退款")
}

/// Refund a paid order, in full or in part (admin). The quota it bought (in proportion, for a
/// part) is taken off the user's balance at once, as one ledger entry; the provider is then
/// asked to return the money (Stripe, Alipay, WeChat Pay) unless `manual`. An
/// `Idempotency-Key` header makes a repeat answer the first refund (200) instead of a new one.
#[utoipa::path(post, path = "/admin/billing/orders/{id}/refunds", tag = "admin-billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–128 characters; the same key is the same refund")),
    request_body = CreateRefund,
    responses(
        (status = 201, description = "Made (status `pending` until the provider confirms, `succeeded` for manual ones)", body = RefundView),
        (status = 200, description = "The refund this Idempotency-Key made before", body = RefundView),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Not paid, refunded in full already, or the balance is smaller than the quota to take back (`refund_exceeds_balance`; use `force`)", body = ErrorEnvelope),
        (status = 422, description = "Amount beyond what is left, bad reason, or a provider without a refund API (`refund_manual_only`)", body = ErrorEnvelope),
    ))]
pub async fn create_refund(
    State(svc): State<Arc<BillingService>>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateRefund>,
) -> ApiResult<(StatusCode, ApiJson<RefundView>)> {
    if !looks_like_id(&id) {
        return Err(ApiError::not_found("order", "订单"));
    }
    let request_key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(key)) if (1..=128).contains(&key.len()) => Some(format!("{id}:{key}")),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 128 visible characters.",
                "Idempotency-Key 须为 1 到 128 个可见字符。",
            ));
        }
    };
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(ApiError::invalid_field(
            "reason",
            "Give a reason of 1 to 200 characters.",
            "请填写 1 到 200 个字符的退款原因。",
        ));
    }
    if req.amount.is_some_and(|a| a <= 0) {
        return Err(ApiError::invalid_field(
            "amount",
            "The amount must be more than zero.",
            "退款金额必须大于零。",
        ));
    }
    let (made, created) = svc
        .refund_order(NewRefund {
            id: new_id(),
            order_id: id,
            amount_minor: req.amount,
            reason: reason.to_string(),
            force: req.force,
            manual: req.manual,
            actor_id: admin.user_id,
            request_key,
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, ApiJson(made.into())))
}

/// Refunds, newest first (admin), optionally of one order or status.
#[utoipa::path(get, path = "/admin/billing/refunds", tag = "admin-billing", security(("bearer" = [])), params(RefundQuery),
    responses((status = 200, body = Page<RefundView>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_refunds(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<RefundQuery>,
) -> ApiResult<ApiJson<Page<RefundView>>> {
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
    };
    let (refunds, total) = refund::list(
        &svc.db,
        q.order_id.as_deref().unwrap_or(""),
        q.status.as_deref().unwrap_or(""),
        page.limit(),
        page.offset(),
    )
    .await?;
    Ok(ApiJson(Page::new(
        refunds.into_iter().map(RefundView::from).collect(),
        total,
        page,
    )))
}

/// Ask the provider about a pending refund now (admin); the refund after.
#[utoipa::path(post, path = "/admin/billing/refunds/{id}/reconcile", tag = "admin-billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Refund id")),
    responses((status = 200, body = RefundView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 503, description = "The provider could not be reached", body = ErrorEnvelope)))]
pub async fn reconcile_refund(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<RefundView>> {
    if !looks_like_id(&id) {
        return Err(no_refund());
    }
    let found = refund::get(&svc.db, &id).await?.ok_or_else(no_refund)?;
    if found.status == refund::RefundStatus::Pending && !found.manual {
        svc.reconcile_refund(&found).await?;
    }
    let after = refund::get(&svc.db, &id).await?.ok_or_else(no_refund)?;
    Ok(ApiJson(after.into()))
}
