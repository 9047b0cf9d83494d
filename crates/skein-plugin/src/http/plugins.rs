//! The market as a user sees it: published plugins and their own, their choices (enabled,
//! settings, secrets), per-conversation toggles, the tools they may use now, and registering
//! a private OpenAPI or MCP plugin.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use skein_core::api::{PluginApi, ToolCaller, ToolDescriptor};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};

use crate::errors;
use crate::store::{self, EnablementRow, PluginRow};
use crate::{PluginService, StoredSettings, openapi, user_owner};

/// A tool of a plugin, as the market shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolSummary {
    /// The name the model calls it by.
    pub name: String,
    /// What it does.
    pub description: String,
}

/// A plugin as a user sees it. Secrets are never shown: only which are set.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Icon name or URL.
    pub icon: String,
    /// Market category.
    pub category: String,
    /// `builtin`, `openapi` or `mcp`.
    pub kind: String,
    /// `public` (an admin published it) or `private` (yours).
    pub scope: String,
    /// Whether it can run now (a built-in needs the admin's setup).
    pub available: bool,
    /// Its tools.
    pub tools: Vec<ToolSummary>,
    /// JSON Schema of your settings.
    #[schema(value_type = Object)]
    pub settings_schema: Value,
    /// Secrets you must supply, by name.
    pub required_secrets: Vec<String>,
    /// Whether you enabled it.
    pub enabled: bool,
    /// Your settings.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Which of your secrets are set (names only).
    pub secrets_set: Vec<String>,
    /// Calls by everyone.
    pub calls: i64,
    /// Your calls.
    pub your_calls: i64,
    /// Quota one call of its tools costs (0: free), unless `tool_prices` names the tool.
    pub price_per_call: i64,
    /// Prices of single tools, over `price_per_call`.
    #[schema(value_type = Object)]
    pub tool_prices: Value,
    /// Whether each call waits for your approval in the chat before it runs.
    pub requires_approval: bool,
}

impl PluginService {
    pub(crate) fn view(
        &self,
        row: &PluginRow,
        mine: Option<&EnablementRow>,
        settings: &StoredSettings,
        user_id: &str,
    ) -> PluginView {
        let tools: Vec<ToolSummary> = self
            .tools_of(row, settings)
            .into_iter()
            .map(|t| ToolSummary {
                name: t.name,
                description: t.description,
            })
            .collect();
        let secrets_set: Vec<String> = mine
            .and_then(|m| m.secrets.as_deref())
            .and_then(|sealed| self.vault.open(sealed, &user_owner(user_id, &row.id)).ok())
            .and_then(|plain| serde_json::from_slice::<HashMap<String, String>>(&plain).ok())
            .map(|map| {
                let mut names: Vec<String> = map.into_keys().collect();
                names.sort();
                names
            })
            .unwrap_or_default();
        PluginView {
            id: row.id.clone(),
            name: row.name.clone(),
            description: row.description.clone(),
            icon: row.icon.clone(),
            category: row.category.clone(),
            kind: row.kind.clone(),
            scope: if row.owner_id.is_some() {
                "private"
            } else {
                "public"
            }
            .into(),
            available: !tools.is_empty(),
            tools,
            settings_schema: serde_json::from_str(&row.settings_schema)
                .unwrap_or_else(|_| json!({})),
            required_secrets: serde_json::from_str(&row.required_secrets).unwrap_or_default(),
            enabled: mine.is_some_and(|m| m.enabled != 0),
            settings: mine
                .and_then(|m| serde_json::from_str(&m.settings).ok())
                .unwrap_or_else(|| json!({})),
            secrets_set,
            calls: row.calls,
            your_calls: mine.map_or(0, |m| m.calls),
            price_per_call: row.price_per_call,
            tool_prices: serde_json::from_str(&row.tool_prices).unwrap_or_else(|_| json!({})),
            requires_approval: row.requires_approval != 0,
        }
    }
}

/// The market page.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// Published plugins first, then yours.
    pub items: Vec<PluginView>,
}

/// The plugins you may use: every published one and your own, with your choices.
#[utoipa::path(get, path = "/plugins", tag = "plugins", security(("bearer" = [])),
    responses((status = 200, body = PluginList), (status = 401, body = ErrorEnvelope)))]
pub async fn list_plugins(
    State(svc): State<Arc<PluginService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<PluginList>> {
    let rows = store::visible(&svc.db, &user.user_id).await?;
    let mine: HashMap<String, EnablementRow> = store::enablements(&svc.db, &user.user_id)
        .await?
        .into_iter()
        .map(|e| (e.plugin_id.clone(), e))
        .collect();
    let settings = svc.settings().await?;
    let items = rows
        .iter()
        .map(|row| svc.view(row, mine.get(&row.id), &settings, &user.user_id))
        .collect();
    Ok(ApiJson(PluginList { items }))
}

/// One plugin you may use.
#[utoipa::path(get, path = "/plugins/{id}", tag = "plugins", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = PluginView), (status = 404, body = ErrorEnvelope)))]
pub async fn get_plugin(
    State(svc): State<Arc<PluginService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<PluginView>> {
    let row = store::visible_one(&svc.db, &user.user_id, &id)
        .await?
        .ok_or_else(errors::plugin_not_found)?;
    let mine = store::enablements(&svc.db, &user.user_id)
        .await?
        .into_iter()
        .find(|e| e.plugin_id == id);
    let settings = svc.settings().await?;
    Ok(ApiJson(svc.view(
        &row,
        mine.as_ref(),
        &settings,
        &user.user_id,
    )))
}

/// How a plugin's calls authenticate.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthInput {
    /// `none`, `api_key_header`, `api_key_query`, `bearer` or `oauth2_client_credentials`.
    pub kind: String,
    /// The header or query parameter an API key goes in.
    #[serde(default)]
    pub name: Option<String>,
    /// The key (sealed at rest, never shown again). Without it, each user supplies their own
    /// `api_key` secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// OAuth 2 client credentials: the token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// OAuth 2 client credentials: the client id (`secret` is the client secret).
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth 2 client credentials: the scope asked for.
    #[serde(default)]
    pub scope: Option<String>,
}

/// A new OpenAPI or MCP plugin.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlugin {
    /// Display name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Icon name or URL.
    #[serde(default)]
    pub icon: String,
    /// Market category.
    #[serde(default)]
    pub category: Option<String>,
    /// `openapi` or `mcp`.
    pub kind: String,
    /// The OpenAPI 3 document, for `openapi`: a JSON object, or its text in JSON or YAML.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub openapi: Option<Value>,
    /// The server calls go to: for `openapi`, instead of the document's first server; for
    /// `mcp`, the server's endpoint, Streamable HTTP or the older HTTP+SSE (found out when it
    /// is registered).
    #[serde(default)]
    pub server_url: Option<String>,
    /// How calls authenticate.
    #[serde(default)]
    pub auth: Option<AuthInput>,
    /// JSON Schema of each user's settings.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings_schema: Option<Value>,
    /// Secrets each user must supply, by name.
    #[serde(default)]
    pub required_secrets: Vec<String>,
    /// For `mcp`: a local server the operator allowed (`[[plugin.mcp_commands]]`), by name,
    /// instead of `server_url` (administrators only).
    #[serde(default)]
    pub command: Option<String>,
}

fn field(name: &str, en: String, zh: String) -> ApiError {
    ApiError::invalid_field(name, en, zh)
}

impl PluginService {
    /// Checks and stores a new plugin for `owner_id` (`None`: published by an admin).
    pub(crate) async fn register(
        &self,
        owner_id: Option<&str>,
        input: NewPlugin,
    ) -> ApiResult<PluginRow> {
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(field(
                "name",
                "The name must have 1 to 80 characters.".into(),
                "名称须为 1 到 80 个字符。".into(),
            ));
        }
        if input.description.chars().count() > 2000 {
            return Err(field(
                "description",
                "The description is longer than 2,000 characters.".into(),
                "描述超过 2000 个字符。".into(),
            ));
        }
        // The settings schema is checked now, so every user's settings can be checked by it.
        if let Some(schema) = &input.settings_schema {
            crate::schema::check_schema(schema).map_err(|e| {
                field(
                    "settings_schema",
                    format!("settings_schema is not usable: {e}."),
                    format!("settings_schema 无法使用：{e}。"),
                )
            })?;
        }
        let auth = input.auth.clone().unwrap_or(AuthInput {
            kind: "none".into(),
            name: None,
            secret: None,
            token_url: None,
            client_id: None,
            scope: None,
        });
        if !matches!(
            auth.kind.as_str(),
            "none" | "api_key_header" | "api_key_query" | "bearer" | crate::oauth::KIND
        ) {
            return Err(field(
                "auth.kind",
                "auth.kind is one of none, api_key_header, api_key_query, bearer, oauth2_client_credentials.".into(),
                "auth.kind 须为 none、api_key_header、api_key_query、bearer、oauth2_client_credentials 之一。".into(),
            ));
        }
        let mut auth_name = auth.name.clone().unwrap_or_default();
        if auth.kind == crate::oauth::KIND {
            // The client is stored in `auth_name` (JSON); its secret is sealed like a key.
            let token_url = auth
                .token_url
                .clone()
                .filter(|u| {
                    reqwest::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
                })
                .ok_or_else(|| {
                    field(
                        "auth.token_url",
                        "OAuth client credentials need the token endpoint (an http or https URL)."
                            .into(),
                        "OAuth 客户端凭据需要令牌端点（http 或 https URL）。".into(),
                    )
                })?;
            let client_id = auth
                .client_id
                .clone()
                .filter(|c| !c.trim().is_empty() && c.len() <= 512)
                .ok_or_else(|| {
                    field(
                        "auth.client_id",
                        "OAuth client credentials need the client id.".into(),
                        "OAuth 客户端凭据需要客户端 ID。".into(),
                    )
                })?;
            if auth.secret.as_deref().is_none_or(str::is_empty) {
                return Err(field(
                    "auth.secret",
                    "OAuth client credentials need the client secret.".into(),
                    "OAuth 客户端凭据需要客户端密钥。".into(),
                ));
            }
            let client = crate::oauth::Client {
                token_url,
                client_id,
                scope: auth.scope.clone().filter(|s| !s.trim().is_empty()),
            };
            auth_name = serde_json::to_string(&client).map_err(ApiError::internal)?;
        }
        if auth.kind.starts_with("api_key")
            && (auth_name.is_empty()
                || !auth_name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(field("auth.name", "An API key needs the header or query parameter it goes in (letters, digits, - and _).".into(),
                "API 密钥需要指定所在的请求头或查询参数名（字母、数字、- 和 _）。".into()));
        }
        let (tools, base_url) = match input.kind.as_str() {
            "openapi" => {
                let document = match input.openapi.clone() {
                    Some(Value::String(text)) => {
                        if text.len() > openapi::MAX_DOCUMENT_BYTES {
                            return Err(errors::too_large());
                        }
                        openapi::parse_document(&text).map_err(|e| {
                            field(
                                "openapi",
                                format!("The OpenAPI document cannot be read: {e}."),
                                format!("无法读取 OpenAPI 文档：{e}。"),
                            )
                        })?
                    }
                    Some(doc @ Value::Object(_)) => doc,
                    _ => {
                        return Err(field(
                            "openapi",
                            "An OpenAPI plugin needs its document (`openapi`).".into(),
                            "OpenAPI 插件需要提供文档（openapi）。".into(),
                        ));
                    }
                };
                if document.to_string().len() > openapi::MAX_DOCUMENT_BYTES {
                    return Err(errors::too_large());
                }
                let tools = openapi::tools_of(&document).map_err(|e| {
                    field(
                        "openapi",
                        format!("The OpenAPI document cannot be used: {e}."),
                        format!("OpenAPI 文档无法使用：{e}。"),
                    )
                })?;
                let base = input
                    .server_url
                    .clone()
                    .or_else(|| openapi::server_url(&document))
                    .ok_or_else(|| {
                        field(
                            "server_url",
                            "The document names no server: give `server_url`.".into(),
                            "文档未指定服务器：请提供 server_url。".into(),
                        )
                    })?;
                (tools, base)
            }
            "mcp" if input.command.is_some() => {
                // A local program: only one the operator allowed, and only for admins.
                if owner_id.is_some() {
                    return Err(errors::local_mcp_admin_only());
                }
                let name = input.command.clone().unwrap_or_default();
                let Some(command) = self.config.command(&name) else {
                    return Err(field(
                        "command",
                        format!(
                            "No local MCP server is called {name}; the server's configuration lists the allowed ones ([[plugin.mcp_commands]])."
                        ),
                        format!(
                            "没有名为 {name} 的本地 MCP 服务器；允许的服务器在服务器配置中列出（[[plugin.mcp_commands]]）。"
                        ),
                    ));
                };
                let tools =
                    crate::mcp_stdio::list_tools(command, std::time::Duration::from_secs(20))
                        .await
                        .map_err(errors::mcp_tools_unlisted)?;
                (tools, format!("{}{name}", crate::mcp_stdio::SCHEME))
            }
            "mcp" => {
                let base = input.server_url.clone().ok_or_else(|| {
                    field(
                        "server_url",
                        "An MCP plugin needs its server's address (`server_url`).".into(),
                        "MCP 插件需要服务器地址（server_url）。".into(),
                    )
                })?;
                (Vec::new(), base)
            }
            _ => {
                return Err(field(
                    "kind",
                    "kind is openapi or mcp.".into(),
                    "kind 须为 openapi 或 mcp。".into(),
                ));
            }
        };
        let local = base_url.starts_with(crate::mcp_stdio::SCHEME) && input.command.is_some();
        let url = reqwest::Url::parse(&base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        if url.is_none() && !local {
            return Err(field(
                "server_url",
                "The server address must be an http or https URL.".into(),
                "服务器地址须为 http 或 https URL。".into(),
            ));
        }
        let id = skein_core::ids::new_id();
        let auth_secret = match auth.secret.as_deref().filter(|s| !s.is_empty()) {
            Some(secret) => Some(
                self.vault
                    .seal(secret.as_bytes(), &crate::plugin_owner(&id))?,
            ),
            None => None,
        };
        // An MCP server's tools are listed now, as the caller would reach it, so a wrong
        // address or key fails here rather than in a chat; which transport it speaks is found
        // out here too, and kept in the stored address.
        let (tools, base_url) = if input.kind == "mcp" && !local {
            let settings = self.settings().await?;
            let policy = Self::policy(
                &settings,
                owner_id.is_some(),
                std::time::Duration::from_secs(20),
            );
            let mut headers = Vec::new();
            if let Some(secret) = auth.secret.as_deref().filter(|s| !s.is_empty()) {
                match auth.kind.as_str() {
                    "bearer" => {
                        headers.push(("authorization".to_string(), format!("Bearer {secret}")))
                    }
                    "api_key_header" => headers.push((auth_name.clone(), secret.to_string())),
                    crate::oauth::KIND => {
                        let client: crate::oauth::Client =
                            serde_json::from_str(&auth_name).map_err(ApiError::internal)?;
                        let token = self
                            .tokens
                            .token(&id, &client, secret, policy)
                            .await
                            .map_err(errors::mcp_sign_in_failed)?;
                        headers.push(("authorization".to_string(), format!("Bearer {token}")));
                    }
                    _ => {}
                }
            }
            let (stored, tools) = crate::mcp::discover(&base_url, headers, policy)
                .await
                .map_err(errors::mcp_tools_unlisted)?;
            (tools, stored)
        } else {
            (tools, base_url)
        };
        let now = crate::now();
        let row = PluginRow {
            id,
            owner_id: owner_id.map(str::to_string),
            name: name.to_string(),
            description: input.description.trim().to_string(),
            icon: input.icon.chars().take(500).collect(),
            category: input
                .category
                .clone()
                .unwrap_or_else(|| "other".into())
                .chars()
                .take(40)
                .collect(),
            kind: input.kind.clone(),
            builtin: None,
            base_url,
            tools: serde_json::to_string(&tools).map_err(ApiError::internal)?,
            auth_kind: auth.kind.clone(),
            auth_name,
            auth_secret,
            settings_schema: input
                .settings_schema
                .clone()
                .unwrap_or_else(|| json!({}))
                .to_string(),
            required_secrets: json!(input.required_secrets).to_string(),
            calls: 0,
            price_per_call: 0,
            tool_prices: "{}".into(),
            requires_approval: 0,
            created_at: now,
            updated_at: now,
        };
        store::insert(&self.db, &row).await?;
        Ok(row)
    }
}

/// Register a private OpenAPI or MCP plugin, which only you see and use. Its calls reach only
/// public addresses unless an admin allowed private ones.
#[utoipa::path(post, path = "/plugins", tag = "plugins", security(("bearer" = [])), request_body = NewPlugin,
    responses((status = 201, body = PluginView), (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 502, description = "The MCP server could not be reached", body = ErrorEnvelope)))]
pub async fn create_private_plugin(
    State(svc): State<Arc<PluginService>>,
    user: AuthUser,
    ApiJson(input): ApiJson<NewPlugin>,
) -> ApiResult<(StatusCode, ApiJson<PluginView>)> {
    let row = svc.register(Some(&user.user_id), input).await?;
    let settings = svc.settings().await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(svc.view(&row, None, &settings, &user.user_id)),
    ))
}

/// Delete one of your private plugins.
#[utoipa::path(delete, path = "/plugins/{id}", tag = "plugins", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_private_plugin(
    State(svc): State<Arc<PluginService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let row = store::visible_one(&svc.db, &user.user_id, &id)
        .await?
        .filter(|r| r.owner_id.as_deref() == Some(user.user_id.as_str()))
        .ok_or_else(errors::plugin_not_found)?;
    store::delete(&svc.db, &row.id).await?;
    svc.tokens.forget(&row.id);
    Ok(StatusCode::NO_CONTENT)
}

/// Your choices for a plugin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Whether its tools are offered in your chats.
    pub enabled: bool,
    /// Your settings (kept when absent).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Option<Value>,
    /// Your secrets by name (replace the stored ones when present; sealed, never shown).
    #[serde(default)]
    pub secrets: Option<HashMap<String, String>>,
}

/// Enable, disable or configure a plugin for yourself.
#[utoipa::path(put, path = "/plugins/{id}/preferences", tag = "plugins", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = Preferences,
    responses((status = 200, body = PluginView), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn set_preferences(
    State(svc): State<Arc<PluginService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<Preferences>,
) -> ApiResult<ApiJson<PluginView>> {
    let row = store::visible_one(&svc.db, &user.user_id, &id)
        .await?
        .ok_or_else(errors::plugin_not_found)?;
    let current = store::enablements(&svc.db, &user.user_id)
        .await?
        .into_iter()
        .find(|e| e.plugin_id == id);
    let settings = match input.settings {
        Some(v @ Value::Object(_)) => {
            // Checked against the plugin's schema, so its tools read settings they understand.
            let schema: Value = serde_json::from_str(&row.settings_schema).unwrap_or(Value::Null);
            // The error names the setting itself (`settings.units`), so a form can mark it.
            crate::schema::validate(&schema, &v).map_err(|e| {
                field(
                    &e.at,
                    format!("The settings do not fit the plugin: {}.", e.en),
                    format!("设置不符合插件的要求：{}。", e.zh),
                )
            })?;
            v.to_string()
        }
        Some(_) => {
            return Err(field(
                "settings",
                "settings must be a JSON object.".into(),
                "settings 须为 JSON 对象。".into(),
            ));
        }
        None => current
            .as_ref()
            .map_or_else(|| "{}".to_string(), |c| c.settings.clone()),
    };
    if settings.len() > 64 * 1024 {
        return Err(field(
            "settings",
            "The settings are larger than 64 KB.".into(),
            "设置超过 64 KB。".into(),
        ));
    }
    let secrets = match &input.secrets {
        Some(map) => {
            if map.len() > 32 || map.iter().any(|(k, v)| k.len() > 64 || v.len() > 4096) {
                return Err(field(
                    "secrets",
                    "At most 32 secrets, names up to 64 and values up to 4,096 characters.".into(),
                    "最多 32 个密钥，名称不超过 64 个字符，值不超过 4096 个字符。".into(),
                ));
            }
            let plain = serde_json::to_vec(map).map_err(ApiError::internal)?;
            Some(svc.vault.seal(&plain, &user_owner(&user.user_id, &id))?)
        }
        None => None,
    };
    store::set_enablement(
        &svc.db,
        &user.user_id,
        &id,
        input.enabled,
        &settings,
        secrets.as_deref(),
        crate::now(),
    )
    .await?;
    let mine = store::enablements(&svc.db, &user.user_id)
        .await?
        .into_iter()
        .find(|e| e.plugin_id == id);
    let stored = svc.settings().await?;
    Ok(ApiJson(svc.view(
        &row,
        mine.as_ref(),
        &stored,
        &user.user_id,
    )))
}

/// Which conversation's tools to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ToolsQuery {
    /// A conversation, for its own toggles.
    pub conversation_id: Option<String>,
}

/// The tools you may use now (in a conversation, with its toggles), as offered to models.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolList {
    /// The tools, with their JSON Schemas.
    pub items: Vec<ToolDescriptor>,
}

/// The tools offered in your chats, as JSON Schema.
#[utoipa::path(get, path = "/plugins/tools", tag = "plugins", security(("bearer" = [])), params(ToolsQuery),
    responses((status = 200, body = ToolList), (status = 401, body = ErrorEnvelope)))]
pub async fn list_tools(
    State(svc): State<Arc<PluginService>>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ToolsQuery>,
) -> ApiResult<ApiJson<ToolList>> {
    let caller = ToolCaller {
        user_id: user.user_id,
        conversation_id: q.conversation_id,
        request_id: String::new(),
        // Chat knows the conversation's assistant; this listing shows the user's own choice.
        bound_plugin_ids: Vec::new(),
        call_key: String::new(),
    };
    Ok(ApiJson(ToolList {
        items: svc.tools(&caller).await?,
    }))
}

/// A plugin's toggle in a conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationToggle {
    /// The plugin.
    pub plugin_id: String,
    /// On or off in this conversation, over your choice.
    pub enabled: bool,
}

/// A conversation's toggles.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationToggles {
    /// The plugins this conversation turns on or off; the rest follow your choices.
    pub items: Vec<ConversationToggle>,
}

/// The plugins a conversation turns on or off.
#[utoipa::path(get, path = "/plugins/conversations/{conversation_id}", tag = "plugins", security(("bearer" = [])),
    params(("conversation_id" = String, Path)), responses((status = 200, body = ConversationToggles)))]
pub async fn conversation_toggles(
    State(svc): State<Arc<PluginService>>,
    user: AuthUser,
    Path(conversation_id): Path<String>,
) -> ApiResult<ApiJson<ConversationToggles>> {
    let items = store::conversation_toggles(&svc.db, &user.user_id, &conversation_id)
        .await?
        .into_iter()
        .map(|(plugin_id, enabled)| ConversationToggle { plugin_id, enabled })
        .collect();
    Ok(ApiJson(ConversationToggles { items }))
}

/// A conversation's toggle of one plugin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToggleInput {
    /// On, off, or `null` to follow your choice again.
    pub enabled: Option<bool>,
}

/// Turn a plugin on or off in one conversation (toggles are yours: another user's
/// conversation id only sets your own toggle, which no one else reads).
#[utoipa::path(put, path = "/plugins/conversations/{conversation_id}/{plugin_id}", tag = "plugins", security(("bearer" = [])),
    params(("conversation_id" = String, Path), ("plugin_id" = String, Path)), request_body = ToggleInput,
    responses((status = 200, body = ConversationToggles), (status = 404, body = ErrorEnvelope)))]
pub async fn set_conversation_toggle(
    State(svc): State<Arc<PluginService>>,
    user: AuthUser,
    Path((conversation_id, plugin_id)): Path<(String, String)>,
    ApiJson(input): ApiJson<ToggleInput>,
) -> ApiResult<ApiJson<ConversationToggles>> {
    if conversation_id.is_empty() || conversation_id.len() > 64 {
        return Err(errors::plugin_not_found());
    }
    store::visible_one(&svc.db, &user.user_id, &plugin_id)
        .await?
        .ok_or_else(errors::plugin_not_found)?;
    store::set_conversation_toggle(
        &svc.db,
        &user.user_id,
        &conversation_id,
        &plugin_id,
        input.enabled,
    )
    .await?;
    conversation_toggles(State(svc), user, Path(conversation_id)).await
}
