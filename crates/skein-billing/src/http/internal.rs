//! `/internal/billing/*`: the BillingApi over HTTP, for Skein processes that run the Relay or
//! Chat apart from Billing. The binary serves them only on the internal listener, behind the
//! internal token (`skein_core::internal::guard`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde::Deserialize;
use skein_core::ApiResult;
use skein_core::api::{
    BillingApi, Entitlements, KeyLimit, Reservation, ReserveRequest, Settlement, Usage,
};
use skein_core::extract::ApiJson;

use crate::BillingService;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReserveBody {
    user_id: String,
    key_id: Option<String>,
    key_limit: Option<i64>,
    amount: i64,
    /// The least hold the work can start with; omitted = `amount` (all or nothing).
    min_amount: Option<i64>,
    #[serde(default)]
    reference: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettleBody {
    reservation_id: String,
    usage: Usage,
}

/// The body of release and renew: which hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    reservation_id: String,
}

pub(crate) fn routes(service: Arc<BillingService>) -> Router {
    Router::new()
        .route("/internal/billing/reserve", post(reserve))
        .route("/internal/billing/settle", post(settle))
        .route("/internal/billing/release", post(release))
        .route("/internal/billing/renew", post(renew))
        .route("/internal/billing/entitlements", post(entitlements))
        .with_state(service)
}

async fn reserve(
    State(svc): State<Arc<BillingService>>,
    ApiJson(body): ApiJson<ReserveBody>,
) -> ApiResult<ApiJson<Reservation>> {
    svc.require_user(&body.user_id).await?;
    let key = body.key_id.map(|key_id| KeyLimit {
        key_id,
        limit: body.key_limit,
    });
    let request = ReserveRequest {
        user_id: body.user_id,
        key,
        amount: body.amount,
        min_amount: body.min_amount.unwrap_or(body.amount),
        reference: body.reference,
    };
    Ok(ApiJson(svc.reserve(request).await?))
}

async fn settle(
    State(svc): State<Arc<BillingService>>,
    ApiJson(body): ApiJson<SettleBody>,
) -> ApiResult<ApiJson<Settlement>> {
    Ok(ApiJson(svc.settle(&body.reservation_id, body.usage).await?))
}

async fn release(
    State(svc): State<Arc<BillingService>>,
    ApiJson(body): ApiJson<ReleaseBody>,
) -> ApiResult<axum::http::StatusCode> {
    svc.release(&body.reservation_id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn renew(
    State(svc): State<Arc<BillingService>>,
    ApiJson(body): ApiJson<ReleaseBody>,
) -> ApiResult<axum::http::StatusCode> {
    svc.renew(&body.reservation_id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The body of entitlements: whose.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    user_id: String,
}

async fn entitlements(
    State(svc): State<Arc<BillingService>>,
    ApiJson(body): ApiJson<UserBody>,
) -> ApiResult<ApiJson<Entitlements>> {
    Ok(ApiJson(svc.entitlements(&body.user_id).await?))
}
