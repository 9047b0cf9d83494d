//! Admins: publish plugins for everyone (OpenAPI, MCP), delete any plugin, and set up the
//! built-ins (the web search provider and its key, the image model) and whether tools may
//! reach private addresses.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use super::plugins::{NewPlugin, PluginList, PluginView};
use crate::code::{CodeInput, CodeView, StoredCode};
use crate::search::ProviderKind;
use crate::{PluginService, StoredSearch, StoredSettings, store};

/// Every plugin, published and private (an admin's view: no user's choices, no secrets).
#[utoipa::path(get, path = "/admin/plugins", tag = "admin-plugins", security(("bearer" = [])),
    responses((status = 200, body = PluginList), (status = 403, body = ErrorEnvelope)))]
pub async fn admin_list_plugins(
    State(svc): State<Arc<PluginService>>,
    AdminUser(admin): AdminUser,
) -> ApiResult<ApiJson<PluginList>> {
    let settings = svc.settings().await?;
    let items = store::all(&svc.db)
        .await?
        .iter()
        .map(|row| svc.view(row, None, &settings, &admin.user_id))
        .collect();
    Ok(ApiJson(PluginList { items }))
}

/// Publish an OpenAPI or MCP plugin for everyone. Its key, if given, is sealed and never
/// shown again.
#[utoipa::path(post, path = "/admin/plugins", tag = "admin-plugins", security(("bearer" = [])), request_body = NewPlugin,
    responses((status = 201, body = PluginView), (status = 403, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope)))]
pub async fn admin_create_plugin(
    State(svc): State<Arc<PluginService>>,
    AdminUser(admin): AdminUser,
    ApiJson(input): ApiJson<NewPlugin>,
) -> ApiResult<(StatusCode, ApiJson<PluginView>)> {
    let row = svc.register(None, input).await?;
    let settings = svc.settings().await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(svc.view(&row, None, &settings, &admin.user_id)),
    ))
}

/// Delete a plugin (built-ins stay).
#[utoipa::path(delete, path = "/admin/plugins/{id}", tag = "admin-plugins", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn admin_delete_plugin(
    State(svc): State<Arc<PluginService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if store::delete(&svc.db, &id).await? {
        svc.tokens.forget(&id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("Plugin", "插件"))
    }
}

/// The search provider as shown: whether a key is set, never the key.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchView {
    /// Which API.
    pub provider: ProviderKind,
    /// Its address, when not the vendor's own.
    pub base_url: Option<String>,
    /// Google's search engine id.
    pub engine_id: Option<String>,
    /// Results per search.
    pub count: u32,
    /// Whether a key is stored.
    pub key_set: bool,
}

/// The built-ins' setup.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    /// Web search, when set up.
    pub search: Option<SearchView>,
    /// The image model, when image generation is set up.
    pub image_model: Option<String>,
    /// The model MCP servers' sampling requests are answered with, billed to the user whose
    /// tool call it is; `null`: sampling is not offered.
    pub sampling_model: Option<String>,
    /// Whether tools may reach private, loopback and link-local addresses.
    pub allow_private_addresses: bool,
    /// Whether users' own plugins may too (only with `allow_private_addresses`).
    pub allow_private_addresses_for_user_plugins: bool,
    /// The longest one tool call may take, seconds (`null`: chat's own deadline, 60 s).
    pub tool_timeout_secs: Option<u64>,
    /// The code interpreter: whether it is on, whether its sandbox works here, its limits.
    pub code: CodeView,
}

async fn settings_view(svc: &PluginService, s: &StoredSettings) -> SettingsView {
    let sandbox = svc.sandbox().await;
    SettingsView {
        code: CodeView {
            enabled: s.code.enabled,
            available: sandbox.is_ok(),
            unavailable_reason: sandbox.as_ref().err().cloned(),
            javascript: sandbox.as_ref().is_ok_and(|s| s.has_javascript()),
            limits: s.code.limits,
        },
        search: s.search.as_ref().map(|x| SearchView {
            provider: x.provider,
            base_url: x.base_url.clone(),
            engine_id: x.engine_id.clone(),
            count: x.count,
            key_set: x.api_key.is_some(),
        }),
        image_model: s.image_model.clone(),
        sampling_model: s.sampling_model.clone(),
        allow_private_addresses: s.allow_private_addresses,
        allow_private_addresses_for_user_plugins: s.allow_private_addresses_for_user_plugins,
        tool_timeout_secs: s.tool_timeout_secs,
    }
}

/// The built-ins' setup.
#[utoipa::path(get, path = "/admin/plugins/settings", tag = "admin-plugins", security(("bearer" = [])),
    responses((status = 200, body = SettingsView), (status = 403, body = ErrorEnvelope)))]
pub async fn get_settings(
    State(svc): State<Arc<PluginService>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<SettingsView>> {
    let settings = svc.settings().await?;
    Ok(ApiJson(settings_view(&svc, &settings).await))
}

/// Web search as set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchInput {
    /// Which API.
    pub provider: ProviderKind,
    /// Its address, when not the vendor's own (required for SearXNG).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Its key; absent keeps the stored one.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Google's search engine id.
    #[serde(default)]
    pub engine_id: Option<String>,
    /// Results per search (1 to 20, default 5).
    #[serde(default)]
    pub count: Option<u32>,
}

/// The built-ins' setup as set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    /// Web search, or `null` to turn it off.
    pub search: Option<SearchInput>,
    /// The image model, or `null` to turn image generation off.
    #[serde(default)]
    pub image_model: Option<String>,
    /// The model that answers MCP servers' sampling requests (at most 5 per tool call, each
    /// billed to the user whose call it is), or `null` not to offer sampling.
    #[serde(default)]
    pub sampling_model: Option<String>,
    /// Whether the tools of plugins admins publish may reach private, loopback and
    /// link-local addresses.
    #[serde(default)]
    pub allow_private_addresses: bool,
    /// Whether the tools of users' own plugins may too (only with `allow_private_addresses`;
    /// off by default: a user's plugin could otherwise read the internal network).
    #[serde(default)]
    pub allow_private_addresses_for_user_plugins: bool,
    /// The longest one tool call may take, seconds (1 to 300; `null` for chat's own 60 s).
    #[serde(default)]
    pub tool_timeout_secs: Option<u64>,
    /// The code interpreter; absent keeps it as it is.
    #[serde(default)]
    pub code: Option<CodeInput>,
}

/// Set up web search, image generation and private addresses.
#[utoipa::path(put, path = "/admin/plugins/settings", tag = "admin-plugins", security(("bearer" = [])),
    request_body = SettingsInput,
    responses((status = 200, body = SettingsView), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn put_settings(
    State(svc): State<Arc<PluginService>>,
    _admin: AdminUser,
    ApiJson(input): ApiJson<SettingsInput>,
) -> ApiResult<ApiJson<SettingsView>> {
    let current = svc.settings().await?;
    let search = match input.search {
        None => None,
        Some(s) => {
            let count = s.count.unwrap_or(5);
            if !(1..=20).contains(&count) {
                return Err(ApiError::invalid_field(
                    "search.count",
                    "search.count is 1 to 20.",
                    "search.count 须为 1 到 20。",
                ));
            }
            if let Some(url) = s.base_url.as_deref().filter(|u| !u.is_empty())
                && reqwest::Url::parse(url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .is_none()
            {
                return Err(ApiError::invalid_field(
                    "search.base_url",
                    "search.base_url must be an http or https URL.",
                    "search.base_url 须为 http 或 https URL。",
                ));
            }
            let api_key = match s.api_key.as_deref().filter(|k| !k.is_empty()) {
                Some(key) => Some(svc.vault.seal(key.as_bytes(), "search")?),
                None => current.search.as_ref().and_then(|c| c.api_key.clone()),
            };
            let stored = StoredSearch {
                provider: s.provider,
                base_url: s.base_url.filter(|u| !u.is_empty()),
                api_key,
                engine_id: s.engine_id.filter(|c| !c.is_empty()),
                count,
            };
            // A provider that cannot work (no key, no SearXNG address) is refused now.
            let open = svc.search_settings(&stored)?;
            crate::search::provider(&open).map_err(|e| {
                ApiError::invalid_field(
                    "search",
                    format!("Web search cannot work: {e}."),
                    format!("网络搜索无法使用：{e}。"),
                )
            })?;
            Some(stored)
        }
    };
    if input
        .tool_timeout_secs
        .is_some_and(|t| !(1..=300).contains(&t))
    {
        return Err(ApiError::invalid_field(
            "tool_timeout_secs",
            "tool_timeout_secs is 1 to 300.",
            "tool_timeout_secs 须为 1 到 300。",
        ));
    }
    let code = match input.code {
        None => current.code,
        Some(c) => {
            let limits = c.limits.unwrap_or(current.code.limits);
            if let Err((name, range)) = limits.check() {
                return Err(ApiError::invalid_field(
                    "code.limits",
                    format!("code.limits.{name} is {range}."),
                    format!("code.limits.{name} 须为 {range}。"),
                ));
            }
            // Code never runs outside the sandbox: no sandbox, no code interpreter.
            if c.enabled
                && let Err(reason) = svc.sandbox().await
            {
                return Err(ApiError::invalid_field(
                    "code.enabled",
                    format!("The code interpreter cannot be turned on: {reason}."),
                    format!("无法开启代码解释器：沙箱在此服务器上不可用（{reason}）。"),
                ));
            }
            StoredCode {
                enabled: c.enabled,
                limits,
            }
        }
    };
    let settings = StoredSettings {
        code,
        search,
        tool_timeout_secs: input.tool_timeout_secs,
        image_model: input.image_model.filter(|m| !m.trim().is_empty()),
        sampling_model: input.sampling_model.filter(|m| !m.trim().is_empty()),
        allow_private_addresses: input.allow_private_addresses,
        allow_private_addresses_for_user_plugins: input.allow_private_addresses_for_user_plugins,
    };
    svc.save_settings(&settings).await?;
    Ok(ApiJson(settings_view(&svc, &settings).await))
}

/// What an admin changes of a plugin; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginPatchInput {
    /// Display name (1 to 80 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// Icon name or URL.
    #[serde(default)]
    pub icon: Option<String>,
    /// Market category.
    #[serde(default)]
    pub category: Option<String>,
    /// JSON Schema of users' settings (an object schema).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings_schema: Option<serde_json::Value>,
    /// Quota one call of its tools costs (0: free).
    #[serde(default)]
    pub price_per_call: Option<i64>,
    /// Prices of single tools over `price_per_call`, tool name → quota (`{}` clears them).
    #[serde(default)]
    pub tool_prices: Option<std::collections::BTreeMap<String, i64>>,
    /// Whether each call waits for the user's approval in the chat.
    #[serde(default)]
    pub requires_approval: Option<bool>,
}

/// The most quota one tool call may be priced at.
const MAX_PRICE: i64 = 1_000_000_000_000;

/// Change a plugin: its market entry, its price per call (and per tool), whether its calls
/// need the user's approval, and its settings schema. Built-ins too (a price for web search
/// or code runs).
#[utoipa::path(patch, path = "/admin/plugins/{id}", tag = "admin-plugins", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = PluginPatchInput,
    responses((status = 200, body = PluginView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
pub async fn admin_patch_plugin(
    State(svc): State<Arc<PluginService>>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<PluginPatchInput>,
) -> ApiResult<ApiJson<PluginView>> {
    if store::one(&svc.db, &id).await?.is_none() {
        return Err(ApiError::not_found("Plugin", "插件"));
    }
    let name = match input.name.as_deref().map(str::trim) {
        Some(name) if name.is_empty() || name.chars().count() > 80 => {
            return Err(ApiError::invalid_field(
                "name",
                "name is 1 to 80 characters.",
                "name 须为 1 到 80 个字符。",
            ));
        }
        other => other.map(str::to_string),
    };
    let price_ok = |p: i64| (0..=MAX_PRICE).contains(&p);
    if input.price_per_call.is_some_and(|p| !price_ok(p)) {
        return Err(ApiError::invalid_field(
            "price_per_call",
            format!("price_per_call is 0 to {MAX_PRICE}."),
            format!("price_per_call 须为 0 到 {MAX_PRICE}。"),
        ));
    }
    if let Some(prices) = &input.tool_prices
        && let Some((tool, _)) = prices.iter().find(|(_, p)| !price_ok(**p))
    {
        return Err(ApiError::invalid_field(
            "tool_prices",
            format!("The price of {tool} is 0 to {MAX_PRICE}."),
            format!("{tool} 的价格须为 0 到 {MAX_PRICE}。"),
        ));
    }
    let settings_schema = match &input.settings_schema {
        Some(schema) => {
            crate::schema::check_schema(schema).map_err(|e| {
                ApiError::invalid_field(
                    "settings_schema",
                    format!("settings_schema is not usable: {e}."),
                    format!("settings_schema 无法使用：{e}。"),
                )
            })?;
            Some(schema.to_string())
        }
        None => None,
    };
    let patch = store::PluginPatch {
        name,
        description: input.description.map(|d| d.trim().to_string()),
        icon: input.icon.map(|i| i.chars().take(500).collect()),
        category: input.category.map(|c| c.chars().take(40).collect()),
        settings_schema,
        price_per_call: input.price_per_call,
        tool_prices: match &input.tool_prices {
            Some(prices) => Some(serde_json::to_string(prices).map_err(ApiError::internal)?),
            None => None,
        },
        requires_approval: input.requires_approval,
    };
    store::update(&svc.db, &id, &patch, crate::now()).await?;
    svc.tokens.forget(&id);
    let row = store::one(&svc.db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Plugin", "插件"))?;
    let settings = svc.settings().await?;
    Ok(ApiJson(svc.view(&row, None, &settings, &admin.user_id)))
}
