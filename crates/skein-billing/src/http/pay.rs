//! Top-up through payment providers: the options, a user's orders, the providers'
//! notifications, and the admin's view of every order.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use skein_core::auth::{AdminUser, AuthUser};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::{looks_like_id, now_ms};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};

use crate::BillingService;
use crate::payment::{Currency, Notification, OrderView, ProviderName, store};

/// A provider users may pay through.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderOption {
    /// `epay`, `stripe`, `alipay` or `wechat`.
    pub provider: ProviderName,
    /// Its methods (`alipay`, `wxpay`, `card`).
    pub methods: Vec<String>,
}

/// What a user may pay, and what it buys.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentOptions {
    /// Whether online top-up is on.
    pub enabled: bool,
    /// What users pay in.
    pub currency: Option<Currency>,
    /// Amounts offered as buttons, in minor units.
    pub amounts: Vec<i64>,
    /// Smallest amount, in minor units.
    pub min_amount: i64,
    /// Largest amount, in minor units.
    pub max_amount: i64,
    /// Quota units one yuan or dollar buys.
    pub quota_per_unit: i64,
    /// The providers.
    pub providers: Vec<ProviderOption>,
}

/// A new top-up order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// Amount in minor units (fen, cents).
    pub amount: i64,
    /// `epay`, `stripe`, `alipay` or `wechat`.
    pub provider: String,
    /// The provider's method (`alipay`, `wxpay`); the first offered when left out.
    pub method: Option<String>,
    /// A coupon code; the order then pays the discounted amount for the same quota.
    pub coupon: Option<String>,
}

/// An order and where to pay it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedOrder {
    /// The order.
    pub order: OrderView,
    /// The provider's payment page; send the payer there.
    pub pay_url: String,
}

/// Filters of an order list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Only this status (`pending`, `paid`, `expired`, `failed`).
    pub status: Option<String>,
    /// Only this user (admin view).
    pub user_id: Option<String>,
    /// 1-based page.
    pub page: Option<u32>,
    /// Page size, 1–100.
    pub per_page: Option<u32>,
}

/// A page of orders of one user (or everyone's, for `""`), filtered by `q`'s status.
async fn order_page(
    svc: &BillingService,
    user_id: &str,
    q: &OrderQuery,
) -> ApiResult<ApiJson<Page<OrderView>>> {
    let page = q.page();
    let (orders, total) = store::list(
        &svc.db,
        user_id,
        q.status.as_deref().unwrap_or(""),
        page.limit(),
        page.offset(),
    )
    .await?;
    Ok(ApiJson(Page::new(
        orders.into_iter().map(OrderView::from).collect(),
        total,
        page,
    )))
}

impl OrderQuery {
    fn page(&self) -> PageQuery {
        PageQuery {
            page: self.page,
            per_page: self.per_page,
        }
    }
}

/// What users may pay, and through whom. Answers `enabled: false` when top-up is off.
#[utoipa::path(get, path = "/billing/payment/options", tag = "payments", security(("bearer" = [])),
    responses((status = 200, body = PaymentOptions), (status = 401, body = ErrorEnvelope)))]
pub async fn options(
    State(svc): State<Arc<BillingService>>,
    _user: AuthUser,
) -> ApiJson<PaymentOptions> {
    let Ok(payments) = svc.payments() else {
        return ApiJson(PaymentOptions {
            enabled: false,
            currency: None,
            amounts: Vec::new(),
            min_amount: 0,
            max_amount: 0,
            quota_per_unit: 0,
            providers: Vec::new(),
        });
    };
    ApiJson(PaymentOptions {
        enabled: true,
        currency: Some(payments.config.currency),
        amounts: payments.config.amounts.clone(),
        min_amount: payments.config.min_amount,
        max_amount: payments.config.max_amount,
        quota_per_unit: payments.quota_per_unit,
        providers: payments
            .providers()
            .iter()
            .map(|p| ProviderOption {
                provider: p.name(),
                methods: p.methods(),
            })
            .collect(),
    })
}

/// Start a top-up: makes an order and answers the provider's page to pay it on.
#[utoipa::path(post, path = "/billing/orders", tag = "payments", security(("bearer" = [])), request_body = CreateOrder,
    responses(
        (status = 201, body = CreatedOrder),
        (status = 401, body = ErrorEnvelope),
        (status = 404, description = "Top-up is not enabled", body = ErrorEnvelope),
        (status = 422, description = "Amount out of range, unknown provider or method, or a coupon that cannot be used", body = ErrorEnvelope),
        (status = 503, description = "The provider could not be reached", body = ErrorEnvelope),
    ))]
pub async fn create_order(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateOrder>,
) -> ApiResult<(StatusCode, ApiJson<CreatedOrder>)> {
    let (order, pay_url) = svc
        .create_order(
            &user.user_id,
            req.provider.trim(),
            req.method.as_deref().map(str::trim),
            req.amount,
            req.coupon.as_deref(),
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

/// The caller's top-up orders, newest first.
#[utoipa::path(get, path = "/billing/orders", tag = "payments", security(("bearer" = [])), params(OrderQuery),
    responses((status = 200, body = Page<OrderView>), (status = 401, body = ErrorEnvelope)))]
pub async fn list_orders(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> ApiResult<ApiJson<Page<OrderView>>> {
    order_page(&svc, &user.user_id, &q).await
}

fn no_order() -> ApiError {
    ApiError::not_found("order", "订单")
}

/// One of the caller's orders (a payer back from the provider polls this).
#[utoipa::path(get, path = "/billing/orders/{id}", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, body = OrderView), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_order(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<OrderView>> {
    if !looks_like_id(&id) {
        return Err(no_order());
    }
    let order = store::get(&svc.db, &id, Some(&user.user_id))
        .await?
        .ok_or_else(no_order)?;
    Ok(ApiJson(order.into()))
}

/// A payment provider's notification (EPay's `notify_url`, Stripe's webhook). Public: the
/// signature is what is checked. Answers what the provider expects (`success` for EPay) once
/// the notification is taken, duplicates included; 400 for a forged one.
#[utoipa::path(post, path = "/billing/payment/{provider}/notify", tag = "payments",
    request_body(content = String, description = "The provider's notification as it sends it (EPay: a form; Stripe: an event)"),
    params(("provider" = String, Path, description = "`epay`, `stripe`, `alipay` or `wechat`")),
    responses(
        (status = 200, description = "Taken (the provider's acknowledgement)"),
        (status = 400, description = "Bad signature", body = ErrorEnvelope),
        (status = 404, description = "Provider not configured", body = ErrorEnvelope),
    ))]
pub async fn notify(
    State(svc): State<Arc<BillingService>>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let notification = Notification {
        query: query.unwrap_or_default(),
        body,
        signature: headers
            .get("stripe-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        headers,
        received_ms: now_ms(),
    };
    let (content_type, ack) = svc.take_notification(&provider, notification).await?;
    Ok(([(header::CONTENT_TYPE, content_type)], ack))
}

/// EPay gateways also notify with GET; same as the POST form.
#[utoipa::path(get, path = "/billing/payment/{provider}/notify", tag = "payments",
    params(("provider" = String, Path, description = "`epay`")),
    responses((status = 200, description = "Taken"), (status = 400, body = ErrorEnvelope)))]
pub async fn notify_get(
    state: State<Arc<BillingService>>,
    provider: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    notify(state, provider, query, headers, Bytes::new()).await
}

/// Everyone's top-up orders (admin).
#[utoipa::path(get, path = "/admin/billing/orders", tag = "admin-billing", security(("bearer" = [])), params(OrderQuery),
    responses((status = 200, body = Page<OrderView>), (status = 403, body = ErrorEnvelope)))]
pub async fn admin_orders(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> ApiResult<ApiJson<Page<OrderView>>> {
    order_page(&svc, q.user_id.as_deref().unwrap_or(""), &q).await
}

/// Ask the provider about an order now and credit it if it was paid (admin); the order after.
#[utoipa::path(post, path = "/admin/billing/orders/{id}/reconcile", tag = "admin-billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, body = OrderView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 503, description = "The provider could not be reached", body = ErrorEnvelope)))]
pub async fn reconcile_order(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<OrderView>> {
    if !looks_like_id(&id) {
        return Err(no_order());
    }
    let order = store::get(&svc.db, &id, None).await?.ok_or_else(no_order)?;
    svc.reconcile_order(&order).await?;
    let order = store::get(&svc.db, &id, None).await?.ok_or_else(no_order)?;
    Ok(ApiJson(order.into()))
}
