//! The pricing table: everyone signed in can read it (to pick a model knowing its price);
//! admins set and remove prices, load the built-in defaults for models not yet priced, and
//! set each key group's price multiplier.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use skein_core::api::AuditBefore;
use skein_core::auth::{AdminUser, AuthUser};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::now_ms;
use skein_core::{ApiError, ApiResult};

use crate::RelayService;
use crate::pricing::{self, DefaultPrice, GroupMultiplier, ModelPrice, Rates};
use serde::{Deserialize, Serialize};
use skein_core::ids::ms_to_rfc3339;
use utoipa::ToSchema;

/// The largest group multiplier accepted, in per-mille (×100).
const MAX_MULTIPLIER_PERMILLE: i64 = 100_000;

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
) -> ApiResult<(Extension<AuditBefore>, ApiJson<ModelPrice>)> {
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
    let audio = [rates.audio_input_per_mtok, rates.audio_output_per_mtok];
    if all
        .iter()
        .chain(audio.iter().flatten())
        .any(|r| !(0..=MAX_RATE).contains(r))
    {
        return Err(ApiError::invalid_field(
            "rates",
            format!("Rates must be 0 to {MAX_RATE}."),
            format!("价格必须在 0 到 {MAX_RATE} 之间。"),
        ));
    }
    let before = AuditBefore::of(&price_of(&svc, &model).await?);
    pricing::upsert(&svc.db, &model, &rates, now_ms()).await?;
    svc.routing_changed().await?;
    tracing::info!(actor = %admin.user_id, %model, ?rates, "price set");
    let price = price_of(&svc, &model)
        .await?
        .ok_or_else(|| ApiError::internal("price vanished"))?;
    Ok((Extension(before), ApiJson(price)))
}

/// The stored price of `model`, if it has one.
async fn price_of(svc: &RelayService, model: &str) -> ApiResult<Option<ModelPrice>> {
    Ok(pricing::all(&svc.db)
        .await?
        .into_iter()
        .find(|p| p.model == model))
}

/// Remove a model's price (admin); the model is then refused until priced again.
#[utoipa::path(delete, path = "/admin/pricing/{model}", tag = "pricing", security(("bearer" = [])),
    params(("model" = String, Path, description = "Model name")),
    responses((status = 204, description = "Removed"), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_price(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    Path(model): Path<String>,
) -> ApiResult<(Extension<AuditBefore>, StatusCode)> {
    let before = AuditBefore::of(&price_of(&svc, &model).await?);
    if !pricing::delete(&svc.db, &model).await? {
        return Err(ApiError::not_found("Price", "价格"));
    }
    svc.routing_changed().await?;
    Ok((Extension(before), StatusCode::NO_CONTENT))
}

/// The built-in prices of well-known models, with where and when each was read (admin).
#[utoipa::path(get, path = "/admin/pricing/defaults", tag = "pricing", security(("bearer" = [])),
    responses((status = 200, body = Vec<DefaultPrice>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_defaults(_admin: AdminUser) -> ApiJson<Vec<DefaultPrice>> {
    ApiJson(pricing::DEFAULTS.to_vec())
}

/// What loading the defaults did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DefaultsLoaded {
    /// Models that had no price and now have the built-in one.
    pub added: Vec<String>,
    /// Models left as they were because they already had a price.
    pub kept: Vec<String>,
}

/// Load the built-in prices for every listed model that has no price yet (admin); prices
/// already set are never changed. Nothing is loaded unless an admin asks.
#[utoipa::path(post, path = "/admin/pricing/defaults", tag = "pricing", security(("bearer" = [])),
    responses((status = 200, body = DefaultsLoaded), (status = 403, body = ErrorEnvelope)))]
pub async fn load_defaults(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
) -> ApiResult<ApiJson<DefaultsLoaded>> {
    let now = now_ms();
    let mut loaded = DefaultsLoaded {
        added: Vec::new(),
        kept: Vec::new(),
    };
    for default in pricing::DEFAULTS {
        if pricing::insert_missing(&svc.db, default.model, &default.rates, now).await? {
            loaded.added.push(default.model.to_string());
        } else {
            loaded.kept.push(default.model.to_string());
        }
    }
    svc.routing_changed().await?;
    tracing::info!(actor = %admin.user_id, added = ?loaded.added, "default prices loaded");
    Ok(ApiJson(loaded))
}

/// A model some channel serves that has no price: requests for it are refused as
/// `model_not_priced` (or served free under `relay.allow_unpriced`), so the pricing page
/// offers it to price.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnpricedModel {
    /// Model name as clients ask for it.
    pub model: String,
    /// Names of the channels that serve it.
    pub channels: Vec<String>,
    /// Whether the built-in defaults have a price for it (loading them would price it).
    pub has_default: bool,
}

/// Models that channels serve but that have no price, by name (admin). Channels an admin
/// disabled are left out; one the breaker took out counts, since it comes back by itself.
#[utoipa::path(get, path = "/admin/pricing/unpriced", tag = "pricing", security(("bearer" = [])),
    responses((status = 200, body = Vec<UnpricedModel>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_unpriced(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<Vec<UnpricedModel>>> {
    let priced: std::collections::HashSet<String> = pricing::all(&svc.db)
        .await?
        .into_iter()
        .map(|p| p.model)
        .collect();
    let mut unpriced: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for channel in crate::channels::all(&svc.db).await? {
        if channel.status == crate::channels::ChannelStatus::Disabled {
            continue;
        }
        let models: Vec<String> = serde_json::from_str(&channel.models).unwrap_or_default();
        for model in models.into_iter().filter(|m| !priced.contains(m)) {
            let names = unpriced.entry(model).or_default();
            if !names.contains(&channel.name) {
                names.push(channel.name.clone());
            }
        }
    }
    Ok(ApiJson(
        unpriced
            .into_iter()
            .map(|(model, channels)| UnpricedModel {
                has_default: pricing::DEFAULTS.iter().any(|d| d.model == model),
                model,
                channels,
            })
            .collect(),
    ))
}

/// Every configured key group with its price multiplier (admin); a group never set bills at
/// ×1.0 (1000 per-mille).
#[utoipa::path(get, path = "/admin/groups", tag = "pricing", security(("bearer" = [])),
    responses((status = 200, body = Vec<GroupMultiplier>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_groups(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<Vec<GroupMultiplier>>> {
    let stored = pricing::group_multipliers(&svc.db).await?;
    Ok(ApiJson(
        svc.groups()
            .iter()
            .map(|group| group_view(group, stored.get(group).copied()))
            .collect(),
    ))
}

fn group_view(group: &str, stored: Option<(i64, i64)>) -> GroupMultiplier {
    GroupMultiplier {
        group: group.to_string(),
        multiplier_permille: stored.map_or(pricing::NEUTRAL_PERMILLE, |(m, _)| m),
        updated_at: stored.map(|(_, at)| ms_to_rfc3339(at)),
    }
}

/// A group's new multiplier.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMultiplier {
    /// Per-mille: 1000 = ×1.0, 800 = ×0.8; 0 to 100,000.
    pub multiplier_permille: i64,
}

/// Set a key group's price multiplier (admin): requests by keys of that group cost the model's
/// rates times `multiplier_permille` / 1000, rounded up once.
#[utoipa::path(put, path = "/admin/groups/{group}", tag = "pricing", security(("bearer" = [])),
    params(("group" = String, Path, description = "A group from relay.groups")), request_body = SetMultiplier,
    responses((status = 200, body = GroupMultiplier), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn set_group(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
    Path(group): Path<String>,
    ApiJson(body): ApiJson<SetMultiplier>,
) -> ApiResult<(Extension<AuditBefore>, ApiJson<GroupMultiplier>)> {
    if !svc.groups().contains(&group) {
        return Err(ApiError::not_found("Group", "分组"));
    }
    if !(0..=MAX_MULTIPLIER_PERMILLE).contains(&body.multiplier_permille) {
        return Err(ApiError::invalid_field(
            "multiplier_permille",
            format!(
                "The multiplier must be 0 to {MAX_MULTIPLIER_PERMILLE} per-mille (1000 = ×1.0)."
            ),
            format!("倍率必须在 0 到 {MAX_MULTIPLIER_PERMILLE} 千分比之间（1000 即 1 倍）。"),
        ));
    }
    let stored = pricing::group_multipliers(&svc.db).await?;
    let before = AuditBefore::of(&group_view(&group, stored.get(&group).copied()));
    let now = now_ms();
    pricing::set_group_multiplier(&svc.db, &group, body.multiplier_permille, now).await?;
    svc.routing_changed().await?;
    tracing::info!(actor = %admin.user_id, %group, permille = body.multiplier_permille, "group multiplier set");
    Ok((
        Extension(before),
        ApiJson(group_view(&group, Some((body.multiplier_permille, now)))),
    ))
}
