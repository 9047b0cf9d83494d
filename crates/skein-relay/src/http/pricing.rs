//! The pricing table: everyone signed in can read it (to pick a model knowing its price);
//! admins set and remove prices.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use skein_core::auth::{AdminUser, AuthUser};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::now_ms;
use skein_core::{ApiError, ApiResult};

use crate::RelayService;
use crate::pricing::{self, ModelPrice, Rates};

/// The largest rate accepted (quota units per million tokens or per call).
const MAX_RATE: i64 = 1_000_000_000_000;

/// Every model's price, in quota units per million tokens.
#[utoipa::path(get, path = "/pricing", tag = "pricing", security(("bearer" = [])),
    responses((status = 200, body = Vec<ModelPrice>), (status = 401, body = ErrorEnvelope)))]
pub async fn list_prices(
    State(svc): State<Arc<RelayService>>,
    _user: AuthUser,
) -> ApiResult<ApiJson<Vec<ModelPrice>>> {
    Ok(ApiJson(pricing::all(&svc.db).await?))
}

/// Set a model's price (admin).
#[utoipa::path(put, path = "/admin/pricing/{model}", tag = "pricing", security(("bearer" = [])),
    params(("model" = String, Path, description = "Model name")), request_body = Rates,
    responses((status = 200, body = ModelPrice), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn set_price(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
    Path(model): Path<String>,
    ApiJson(rates): ApiJson<Rates>,
) -> ApiResult<ApiJson<ModelPrice>> {
    let model = model.trim().to_string();
    if model.is_empty() || model.len() > 128 {
        return Err(ApiError::invalid_field(
            "model",
            "Name the model (1–128 characters).",
            "请填写模型名称（1–128 个字符）。",
        ));
    }
    let all = [
        rates.input_per_mtok,
        rates.output_per_mtok,
        rates.cache_read_per_mtok,
        rates.cache_write_per_mtok,
        rates.per_call,
    ];
    if all.iter().any(|r| !(0..=MAX_RATE).contains(r)) {
        return Err(ApiError::invalid_field(
            "rates",
            format!("Rates must be 0 to {MAX_RATE}."),
            format!("价格必须在 0 到 {MAX_RATE} 之间。"),
        ));
    }
    pricing::upsert(&svc.db, &model, &rates, now_ms()).await?;
    svc.reload().await?;
    tracing::info!(actor = %admin.user_id, %model, ?rates, "price set");
    let price = pricing::all(&svc.db)
        .await?
        .into_iter()
        .find(|p| p.model == model)
        .ok_or_else(|| ApiError::internal("price vanished"))?;
    Ok(ApiJson(price))
}

/// Remove a model's price (admin); the model is then refused until priced again.
#[utoipa::path(delete, path = "/admin/pricing/{model}", tag = "pricing", security(("bearer" = [])),
    params(("model" = String, Path, description = "Model name")),
    responses((status = 204, description = "Removed"), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_price(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    Path(model): Path<String>,
) -> ApiResult<StatusCode> {
    if !pricing::delete(&svc.db, &model).await? {
        return Err(ApiError::not_found("Price", "价格"));
    }
    svc.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}
