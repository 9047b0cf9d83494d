//! `/api/v1/channels` (admin): upstream accounts. Keys are accepted, sealed, and never shown
//! again; a channel's answer says how many it holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skein_core::api::AuditBefore;
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::{looks_like_id, new_id, now_ms};
use skein_core::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};

use crate::RelayService;
use crate::channel_fields::{
    base_url, bounded, groups, headers, kind, mapping, models, name, overrides, status, threshold,
    upstream_keys,
};
use crate::channels::{self, Channel, ChannelKind, ChannelSecrets, ChannelSettings, ChannelStatus};
use crate::errors;

/// A new channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// `openai`: OpenAI or any OpenAI-compatible API (vLLM, ...); `azure`: Azure OpenAI
    /// (base URL is the resource, optionally with `?api-version=`; mapped model names are
    /// deployments); `anthropic`: Anthropic Messages; `gemini`: Google's Gemini API;
    /// `deepseek`, `dashscope` (Qwen), `zhipu` (GLM), `moonshot` (Kimi), `siliconflow`,
    /// `volcengine` (Doubao), `minimax`, `hunyuan`, `qianfan`, `spark`: those vendors'
    /// OpenAI-compatible APIs with their own reasoning, usage and error conventions;
    /// `ollama`: Ollama's native API (any key, e.g. `ollama`, unless a proxy wants one).
    // Read as text and checked by the handler, so an unknown type gets the same 422 as every
    // other bad field rather than a JSON-decoding error.
    #[serde(rename = "type")]
    #[schema(value_type = ChannelKind)]
    pub kind: String,
    /// Label.
    pub name: String,
    /// Base URL; defaults to the vendor's.
    pub base_url: Option<String>,
    /// Upstream API keys (round-robin).
    pub keys: Vec<String>,
    /// Models it serves.
    pub models: Vec<String>,
    /// Client model name → upstream model name.
    #[serde(default)]
    pub model_mapping: BTreeMap<String, String>,
    /// Groups that may use it (default `["default"]`).
    pub groups: Option<Vec<String>>,
    /// Higher first (default 0).
    #[serde(default)]
    pub priority: i64,
    /// Share inside its priority (default 1).
    pub weight: Option<i64>,
    /// Upstream timeout in seconds (default 120).
    pub timeout_secs: Option<i64>,
    /// Extra headers sent upstream (stored sealed).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Fields merged into every body sent upstream (they win over the client's), e.g.
    /// `{"temperature": 0.3}`; not `model`, `messages`, `stream` or `stream_options`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub param_overrides: serde_json::Map<String, serde_json::Value>,
    /// What the channel costs upstream relative to the model's price list, per-mille (1000,
    /// the default, is list price; 700 a 30 % discount), 1–100,000. The `cost` routing
    /// strategy prefers the lowest.
    pub cost_ratio_permille: Option<i64>,
    /// Under this upstream balance (in the vendor's currency) the channel is tried last and
    /// shown as low; 0 or absent: never.
    pub low_balance_threshold: Option<f64>,
    /// `enabled` (default) or `disabled`.
    pub status: Option<String>,
}

/// Changes to a channel; omitted fields stay. `keys` and `headers`, when given, replace all.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    /// Wire format.
    #[serde(rename = "type")]
    #[schema(value_type = Option<ChannelKind>)]
    pub kind: Option<String>,
    /// Label.
    pub name: Option<String>,
    /// Base URL (changing it, or `type`, needs `keys` too).
    pub base_url: Option<String>,
    /// New keys (replace the old ones).
    pub keys: Option<Vec<String>>,
    /// Models.
    pub models: Option<Vec<String>>,
    /// Mapping.
    pub model_mapping: Option<BTreeMap<String, String>>,
    /// Groups.
    pub groups: Option<Vec<String>>,
    /// Priority.
    pub priority: Option<i64>,
    /// Weight.
    pub weight: Option<i64>,
    /// Timeout, seconds.
    pub timeout_secs: Option<i64>,
    /// Extra headers (replace the old ones).
    pub headers: Option<BTreeMap<String, String>>,
    /// Parameter overrides (replace the old ones; `{}` clears).
    #[schema(value_type = Option<Object>)]
    pub param_overrides: Option<serde_json::Map<String, serde_json::Value>>,
    /// Upstream cost relative to the price list, per-mille.
    pub cost_ratio_permille: Option<i64>,
    /// Low-balance threshold (0 turns it off).
    pub low_balance_threshold: Option<f64>,
    /// `enabled` or `disabled`.
    pub status: Option<String>,
}

/// The outcome of a channel test.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    /// Whether the upstream answered a tiny request correctly.
    pub ok: bool,
    /// Round trip, ms.
    pub latency_ms: i64,
    /// What happened, for people.
    pub message: String,
}

/// Every channel (admin).
#[utoipa::path(get, path = "/channels", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = Vec<Channel>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_channels(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<Vec<Channel>>> {
    Ok(ApiJson(
        channels::all(&svc.db)
            .await?
            .into_iter()
            .map(|r| view(&svc, r))
            .collect(),
    ))
}

/// Add a channel (admin).
#[utoipa::path(post, path = "/channels", tag = "channels", security(("bearer" = [])), request_body = CreateChannel,
    responses((status = 201, body = Channel), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn create_channel(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
    ApiJson(req): ApiJson<CreateChannel>,
) -> ApiResult<(StatusCode, ApiJson<Channel>)> {
    let kind = kind(&req.kind)?;
    let settings = ChannelSettings {
        base_url: base_url(kind, req.base_url.as_deref())?,
        kind,
        name: name(&req.name)?,
        secrets: ChannelSecrets {
            keys: upstream_keys(req.keys)?,
            headers: headers(req.headers)?,
        },
        models: models(req.models)?,
        model_mapping: mapping(req.model_mapping)?,
        groups: groups(&svc, req.groups.unwrap_or_else(|| vec!["default".into()]))?,
        priority: bounded("priority", req.priority, -1000, 1000)?,
        weight: bounded("weight", req.weight.unwrap_or(1), 1, 1000)?,
        timeout_secs: bounded("timeout_secs", req.timeout_secs.unwrap_or(120), 1, 3600)?,
        param_overrides: overrides(req.param_overrides)?,
        cost_ratio_permille: bounded(
            "cost_ratio_permille",
            req.cost_ratio_permille.unwrap_or(1000),
            1,
            100_000,
        )?,
        low_balance_threshold: threshold(req.low_balance_threshold)?,
        status: status(req.status.as_deref().unwrap_or("enabled"))?,
    };
    let id = new_id();
    channels::save(&svc.db, &svc.vault, &id, &settings, now_ms(), true).await?;
    svc.routing_changed().await?;
    tracing::info!(actor = %admin.user_id, channel = %id, kind = %settings.kind, "channel created");
    let row = channels::by_id(&svc.db, &id)
        .await?
        .ok_or_else(|| ApiError::internal("new channel vanished"))?;
    Ok((StatusCode::CREATED, ApiJson(view(&svc, row))))
}

/// One channel (admin).
#[utoipa::path(get, path = "/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id")),
    responses((status = 200, body = Channel), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_channel(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Channel>> {
    Ok(ApiJson(view(&svc, load(&svc, &id).await?)))
}

/// Change a channel (admin). New `keys` replace all old keys; changing `type` or `base_url`
/// needs `keys` in the same request (422 `keys_required`), and `headers` too when the channel
/// has extra headers (422 `headers_required`): they may carry credentials as well.
#[utoipa::path(patch, path = "/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id")), request_body = UpdateChannel,
    responses((status = 200, body = Channel), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn update_channel(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateChannel>,
) -> ApiResult<(Extension<AuditBefore>, ApiJson<Channel>)> {
    let row = load(&svc, &id).await?;
    let before = AuditBefore::of(&view(&svc, row.clone()));
    let mut secrets = channels::open_secrets(&svc.vault, &row.id, &row.secrets)?;
    let current = Channel::from(row);
    let kind = match req.kind {
        Some(k) => self::kind(&k)?,
        None => self::kind(current.kind.as_str())?,
    };
    let new_base_url = match req.base_url.as_deref() {
        Some(url) => base_url(kind, Some(url))?,
        None => current.base_url.clone(),
    };
    // Keys were entered for one host and one vendor: never send them anywhere else without
    // the admin entering them again (an admin could otherwise point a channel at a host of
    // theirs and collect the keys someone else entered).
    let moved = current.kind.known().ok() != Some(kind) || new_base_url != current.base_url;
    if moved && req.keys.is_none() {
        return Err(errors::keys_required());
    }
    // Extra headers are sealed with the keys because vendors take credentials in them too
    // (`api-key`, `X-Api-Key`, gateway tokens): the same rule holds.
    if moved && req.headers.is_none() && !secrets.headers.is_empty() {
        return Err(errors::headers_required());
    }
    if let Some(keys) = req.keys {
        secrets.keys = upstream_keys(keys)?;
    }
    if let Some(h) = req.headers {
        secrets.headers = headers(h)?;
    }
    let settings = ChannelSettings {
        base_url: new_base_url,
        kind,
        name: match &req.name {
            Some(n) => name(n)?,
            None => current.name.clone(),
        },
        secrets,
        models: match req.models {
            Some(m) => models(m)?,
            None => current.models.clone(),
        },
        model_mapping: match req.model_mapping {
            Some(m) => mapping(m)?,
            None => current.model_mapping.clone(),
        },
        groups: match req.groups {
            Some(g) => groups(&svc, g)?,
            None => current.groups.clone(),
        },
        priority: bounded(
            "priority",
            req.priority.unwrap_or(current.priority),
            -1000,
            1000,
        )?,
        weight: bounded("weight", req.weight.unwrap_or(current.weight), 1, 1000)?,
        timeout_secs: bounded(
            "timeout_secs",
            req.timeout_secs.unwrap_or(current.timeout_secs),
            1,
            3600,
        )?,
        param_overrides: match req.param_overrides {
            Some(o) => overrides(o)?,
            None => current.param_overrides.clone(),
        },
        cost_ratio_permille: bounded(
            "cost_ratio_permille",
            req.cost_ratio_permille
                .unwrap_or(current.cost_ratio_permille),
            1,
            100_000,
        )?,
        low_balance_threshold: match req.low_balance_threshold {
            Some(t) => threshold(Some(t))?,
            None => current.low_balance_threshold,
        },
        status: match req.status.as_deref() {
            Some(s) => status(s)?,
            None if current.status == ChannelStatus::AutoDisabled => ChannelStatus::Enabled,
            None => current.status,
        },
    };
    channels::save(&svc.db, &svc.vault, &id, &settings, now_ms(), false).await?;
    svc.routing_changed().await?;
    tracing::info!(actor = %admin.user_id, channel = %id, "channel updated");
    Ok((
        Extension(before),
        ApiJson(view(&svc, load(&svc, &id).await?)),
    ))
}

/// Remove a channel (admin).
#[utoipa::path(delete, path = "/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id")),
    responses((status = 204, description = "Removed"), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_channel(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
) -> ApiResult<(Extension<AuditBefore>, StatusCode)> {
    let row = load(&svc, &id).await?;
    let before = AuditBefore::of(&view(&svc, row.clone()));
    channels::delete(&svc.db, &row.id).await?;
    svc.routing_changed().await?;
    tracing::info!(actor = %admin.user_id, channel = %id, "channel deleted");
    Ok((Extension(before), StatusCode::NO_CONTENT))
}

/// Which model a channel test asks.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TestQuery {
    /// One of the channel's models (default: its first).
    pub model: Option<String>,
}

/// Read the channel's upstream balance from its vendor now and store it (admin); vendors
/// with a balance endpoint: `deepseek`, `moonshot`, `siliconflow` (others: 422
/// `no_balance_endpoint`). Balances are also read every 15 minutes.
#[utoipa::path(post, path = "/channels/{id}/balance", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id")),
    responses((status = 200, body = Channel), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope)))]
pub async fn refresh_balance(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Channel>> {
    let row = load(&svc, &id).await?;
    let channel = live_channel(&svc, &row)?;
    match crate::balance::fetch(&svc.http, &channel).await {
        Ok(Some(reported)) => {
            svc.balance_read(&row, &reported).await?;
        }
        Ok(None) => {
            return Err(errors::no_balance_endpoint());
        }
        Err(reason) => {
            return Err(errors::balance_unread(reason));
        }
    }
    Ok(ApiJson(view(&svc, load(&svc, &id).await?)))
}

/// Send a tiny real request through the channel and record latency and result (admin).
#[utoipa::path(post, path = "/channels/{id}/test", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id"), TestQuery),
    responses((status = 200, body = TestResult), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
pub async fn test_channel(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TestQuery>,
) -> ApiResult<ApiJson<TestResult>> {
    let row = load(&svc, &id).await?;
    let models: Vec<String> = serde_json::from_str(&row.models).unwrap_or_default();
    let chosen = match q.model.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        // Only a model the channel serves: a test must say something about its routing.
        Some(m) if models.iter().any(|x| x == m) => Some(m.to_string()),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "model",
                "Test with one of the channel's models.",
                "请使用该渠道的模型进行测试。",
            ));
        }
        None => models.first().cloned(),
    };
    let Some(model) = chosen else {
        return Err(ApiError::invalid_field(
            "models",
            "The channel lists no model to test with.",
            "该渠道没有可用于测试的模型。",
        ));
    };
    let channel = live_channel(&svc, &row)?;
    let model = &model;
    let started = Instant::now();
    let outcome = crate::upstream::probe(&svc.http, &channel, model).await;
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (ok, message) = match outcome {
        Ok(()) => (true, "ok".to_string()),
        Err(reason) => (false, reason),
    };
    channels::record_test(&svc.db, &id, now_ms(), latency_ms, &message).await?;
    Ok(ApiJson(TestResult {
        ok,
        latency_ms,
        message,
    }))
}

/// The last probe of each of the channel's models (admin): whether the upstream answered a
/// one-token chat with it, how fast, and when.
#[utoipa::path(get, path = "/channels/{id}/probes", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id")),
    responses((status = 200, body = crate::probes::ChannelProbes), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)))]
pub async fn channel_probes(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<crate::probes::ChannelProbes>> {
    let row = load(&svc, &id).await?;
    Ok(ApiJson(crate::probes::stored(&svc.db, &row).await?))
}

/// Probe every model of the channel now (admin): a one-token chat per model (up to 100,
/// four at a time), stored as its last probe and counted in this instance's routing
/// measurements of that model. Each probe is a small paid call at the vendor, billed to no
/// user.
#[utoipa::path(post, path = "/channels/{id}/probes", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id")),
    responses((status = 200, body = crate::probes::ChannelProbes), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn probe_channel(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<crate::probes::ChannelProbes>> {
    let row = load(&svc, &id).await?;
    // Refuses a channel without models or groups, as a test does.
    live_channel(&svc, &row)?;
    Ok(ApiJson(crate::probes::probe_channel(&svc, &row).await?))
}

/// The models the channel's upstream account offers, as the vendor lists them (admin): a
/// starting point for the channel's `models`.
#[utoipa::path(get, path = "/channels/{id}/models", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id")),
    responses((status = 200, body = UpstreamModels), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 502, body = ErrorEnvelope)))]
pub async fn channel_models(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<UpstreamModels>> {
    let row = load(&svc, &id).await?;
    let channel = live_channel(&svc, &row)?;
    match crate::upstream::fetch_models(&svc.http, &channel).await {
        Ok(models) => Ok(ApiJson(UpstreamModels { models })),
        Err(reason) => Err(errors::models_unlisted(reason)),
    }
}

/// An upstream account not saved yet, whose models the channel form wants to list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchModels {
    /// Channel type, as for a new channel.
    #[serde(rename = "type")]
    #[schema(value_type = ChannelKind)]
    pub kind: String,
    /// Base URL; defaults to the vendor's.
    pub base_url: Option<String>,
    /// Upstream API keys (the first is used).
    pub keys: Vec<String>,
    /// Extra headers sent upstream.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The models an upstream account offers before it is saved as a channel (admin): the
/// channel form's "fetch models". The key is used for this one request and kept nowhere.
#[utoipa::path(post, path = "/channels/fetch-models", tag = "channels", security(("bearer" = [])), request_body = FetchModels,
    responses((status = 200, body = UpstreamModels), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 502, body = ErrorEnvelope)))]
pub async fn fetch_models(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    ApiJson(req): ApiJson<FetchModels>,
) -> ApiResult<ApiJson<UpstreamModels>> {
    let kind = kind(&req.kind)?;
    let secrets = ChannelSecrets {
        keys: upstream_keys(req.keys)?,
        headers: headers(req.headers)?,
    };
    let id = new_id();
    let group = svc
        .groups
        .first()
        .cloned()
        .unwrap_or_else(|| "default".into());
    let row = channels::ChannelRow {
        id: id.clone(),
        kind: channels::StoredKind::from(kind),
        name: "fetch-models".into(),
        base_url: base_url(kind, req.base_url.as_deref())?,
        secrets: channels::seal_secrets(&svc.vault, &id, &secrets)?,
        key_count: 1,
        models: "[\"models\"]".into(),
        model_mapping: "{}".into(),
        groups_list: serde_json::to_string(&[group]).unwrap_or_default(),
        priority: 0,
        weight: 1,
        timeout_secs: 30,
        header_names: "[]".into(),
        param_overrides: "{}".into(),
        cost_ratio_permille: 1000,
        balance: None,
        balance_currency: None,
        balance_at: None,
        low_balance_threshold: None,
        status: ChannelStatus::Enabled,
        status_reason: None,
        last_test_at: None,
        last_test_latency_ms: None,
        last_test_result: None,
        created_at: 0,
        updated_at: 0,
    };
    let channel = live_channel(&svc, &row)?;
    match crate::upstream::fetch_models(&svc.http, &channel).await {
        Ok(models) => Ok(ApiJson(UpstreamModels { models })),
        Err(reason) => Err(errors::models_unlisted(reason)),
    }
}

/// A model to pull onto an Ollama server.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullModel {
    /// The model as Ollama's library names it (`qwen3:8b`).
    pub model: String,
}

/// What Ollama said once the pull finished.
#[derive(Debug, Serialize, ToSchema)]
pub struct PullResult {
    /// Ollama's final status (`success`).
    pub status: String,
}

/// Pull a model onto an Ollama channel's server (admin). The answer waits until Ollama has
/// the model (a large one takes minutes); the channel's model list shows it afterwards.
#[utoipa::path(post, path = "/channels/{id}/pull", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id")), request_body = PullModel,
    responses((status = 200, body = PullResult), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope)))]
pub async fn pull_model(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PullModel>,
) -> ApiResult<ApiJson<PullResult>> {
    let row = load(&svc, &id).await?;
    if row.kind.known().ok() != Some(ChannelKind::Ollama) {
        return Err(ApiError::invalid_field(
            "type",
            "Only Ollama channels can pull models.",
            "只有 Ollama 渠道可以拉取模型。",
        ));
    }
    let model = req.model.trim();
    let valid = (1..=200).contains(&model.len())
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/".contains(c));
    if !valid {
        return Err(ApiError::invalid_field(
            "model",
            "Name the model as Ollama's library does (letters, digits, `._-:/`).",
            "请按 Ollama 模型库的写法填写模型名（字母、数字和 `._-:/`）。",
        ));
    }
    let channel = live_channel(&svc, &row)?;
    tracing::info!(actor = %admin.user_id, channel = %id, %model, "pulling a model onto Ollama");
    match crate::vendor::ollama::pull(&svc.http, &channel, model).await {
        Ok(status) => Ok(ApiJson(PullResult { status })),
        Err(reason) => Err(errors::pull_failed(model, reason)),
    }
}

/// The models an upstream account offers.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamModels {
    /// Model ids as the vendor names them, sorted.
    pub models: Vec<String>,
}

/// A stored channel ready to send through, whatever its status (tests and listings act on
/// disabled channels too).
fn live_channel(
    svc: &RelayService,
    row: &channels::ChannelRow,
) -> ApiResult<Arc<channels::LiveChannel>> {
    let models: Vec<String> = serde_json::from_str(&row.models).unwrap_or_default();
    let groups: Vec<String> = serde_json::from_str(&row.groups_list).unwrap_or_default();
    if models.is_empty() || groups.is_empty() {
        return Err(ApiError::invalid_field(
            "models",
            "The channel lists no model or group.",
            "该渠道没有模型或分组。",
        ));
    }
    channels::live(row, &svc.vault)
        .ok_or_else(|| ApiError::internal("the channel's secrets cannot be read"))
}

fn view(svc: &RelayService, row: channels::ChannelRow) -> Channel {
    let mut channel = Channel::from(row);
    channel.circuit = svc.circuit(&channel.id);
    channel.health = svc.channel_health(&channel.id);
    let detail = svc.breakers.detail(&channel.id);
    channel.circuit_since = detail.since_ms.map(skein_core::ids::ms_to_rfc3339);
    if let Some((at, reason)) = detail.last_error {
        channel.last_error = Some(reason);
        channel.last_error_at = Some(skein_core::ids::ms_to_rfc3339(at));
    }
    channel
}

async fn load(svc: &RelayService, id: &str) -> ApiResult<channels::ChannelRow> {
    let not_found = || ApiError::not_found("Channel", "渠道");
    if !looks_like_id(id) {
        return Err(not_found());
    }
    channels::by_id(&svc.db, id).await?.ok_or_else(not_found)
}
