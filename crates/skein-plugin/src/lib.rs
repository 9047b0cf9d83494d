//! Skein's Plugin service (`/api/v1/plugins`, `/api/v1/admin/plugins`): the tools a model may
//! call during a chat. Built-in tools (web search through the admin's provider, image
//! generation through the relay), OpenAPI operations and MCP servers' tools; a market where
//! admins publish plugins and users enable them (per user, per conversation) with their own
//! settings and secrets.
//!
//! Chat reaches it through [`PluginApi`] (the binary registers a chat tool runner over it).
//!
//! **Architecture Invariant:** a tool runs with its caller's rights only. [`PluginApi::execute`]
//! works out again which tools the caller may use (their enabled plugins, published or their
//! own) and runs only one of those, with the caller's secrets; a tool name the model makes up,
//! or one of another user's private plugins, is "no such tool". Secrets are sealed at rest,
//! bound to their row, and never returned by any route.

pub mod code;
pub mod config;
pub(crate) mod errors;
mod http;
pub mod image;
pub mod mcp;
mod mcp_client;
pub mod mcp_stdio;
pub mod net;
pub mod oauth;
pub mod openapi;
pub mod page;
pub mod remote;
mod sampling;
// The sandbox must set rlimits, move pipes onto fixed descriptors and drop to its own uid in
// the child between fork and exec: `pre_exec` and a few libc calls, each with its SAFETY note.
#[allow(unsafe_code)]
pub mod sandbox;
pub mod schema;
pub mod search;
mod service;
pub mod store;
pub mod vault;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use skein_core::api::{
    BillingApi, FileApi, PluginApi, RelayApi, ReserveRequest, ToolCaller, ToolDescriptor,
    ToolOutput, ToolProgress, Usage,
};
use skein_core::service::{BackgroundTasks, FirstRun};
use skein_core::{ApiResult, ids};
use skein_db::{Db, ServiceMigrations};

pub use config::PluginConfig;
use openapi::ToolDef;
use store::{EnablementRow, PluginRow};
pub use vault::Vault;

/// The Plugin service's migrations.
pub static MIGRATIONS: ServiceMigrations = ServiceMigrations {
    service: skein_core::service::ServiceName::Plugin,
    sqlite: || skein_db::sqlx::migrate!("migrations/sqlite"),
    postgres: || skein_db::sqlx::migrate!("migrations/postgres"),
};

/// The most bytes a tool's HTTP answer may have (OpenAPI operations, MCP calls).
pub const MAX_TOOL_ANSWER_BYTES: usize = 1024 * 1024;

/// The built-in web search tool's name.
pub const WEB_SEARCH: &str = "web_search";

/// The built-in code tool's name.
pub const RUN_CODE: &str = code::RUN_CODE;

/// The built-in image tool's name.
pub const GENERATE_IMAGE: &str = "generate_image";

/// The Plugin service.
pub struct PluginService {
    db: Db,
    vault: Vault,
    relay: Option<Arc<dyn RelayApi>>,
    files: Option<Arc<dyn FileApi>>,
    /// Holds and charges for paid tools; without it a paid tool does not run.
    billing: Option<Arc<dyn BillingApi>>,
    http: reqwest::Client,
    /// OAuth access tokens of plugins that sign in with client credentials.
    tokens: oauth::TokenCache,
    /// The operator's settings (the local MCP servers allowed).
    config: PluginConfig,
    /// The code sandbox, probed once on first need; the error is the reason admins see.
    sandbox: tokio::sync::OnceCell<Result<sandbox::Sandbox, String>>,
    /// The prune of paid calls' records.
    background: BackgroundTasks,
}

/// The admin's settings, as stored (`plugin_settings`, name `admin`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct StoredSettings {
    #[serde(default)]
    pub search: Option<StoredSearch>,
    #[serde(default)]
    pub image_model: Option<String>,
    /// The model MCP servers' sampling requests are answered with (none: not offered).
    #[serde(default)]
    pub sampling_model: Option<String>,
    #[serde(default)]
    pub allow_private_addresses: bool,
    /// Whether users' own plugins may reach them too (off: only what admins publish may).
    #[serde(default)]
    pub allow_private_addresses_for_user_plugins: bool,
    /// The longest one tool call may take, seconds (within the caller's deadline).
    #[serde(default)]
    pub tool_timeout_secs: Option<u64>,
    /// The code interpreter.
    #[serde(default)]
    pub code: code::StoredCode,
}

/// The search provider as stored: its key sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSearch {
    pub provider: search::ProviderKind,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub engine_id: Option<String>,
    pub count: u32,
}

/// The owner a plugin's own secret is sealed for.
fn plugin_owner(plugin_id: &str) -> String {
    format!("plugin:{plugin_id}")
}

/// The owner a user's secrets for a plugin are sealed for.
fn user_owner(user_id: &str, plugin_id: &str) -> String {
    format!("user:{user_id}:plugin:{plugin_id}")
}

/// A tool offered to a caller, with the plugin it comes from.
#[derive(Debug, Clone)]
pub(crate) struct Offered {
    pub plugin: PluginRow,
    pub tool: ToolDef,
}

/// How one call ended, for its charge: what the model reads, and whether the tool did its
/// work. A paid call is charged when the tool ran and answered in its own words, even when
/// that answer reports a failure (a program that exited with an error or hit a limit, an MCP
/// result marked `isError`): the work was done. It is not charged when the tool did not run
/// or no answer of its own came back (refused, unreachable, timed out, too large, unreadable,
/// an HTTP error status, a JSON-RPC error).
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub output: ToolOutput,
    pub worked: bool,
}

impl Outcome {
    /// The tool ran and `output` is its own answer (charged when paid).
    pub(crate) fn worked(output: ToolOutput) -> Self {
        Outcome {
            output,
            worked: true,
        }
    }

    /// The call did not run or failed on the way; the model hears `content`.
    pub(crate) fn failed(content: impl Into<String>) -> Self {
        Outcome {
            output: ToolOutput::error(content),
            worked: false,
        }
    }
}

impl From<ToolOutput> for Outcome {
    /// An answer whose error flag says it all: a success worked, an error did not.
    fn from(output: ToolOutput) -> Self {
        Outcome {
            worked: !output.is_error,
            output,
        }
    }
}

impl PluginService {
    /// The service over `db`, sealing secrets with `vault`; `relay` and `files` (when they run
    /// here or are reachable) for image generation, `billing` for tools with a price,
    /// `config` for the local MCP servers allowed and the records' retention. Starts the
    /// prune of paid calls' records (so it must be called within a Tokio runtime).
    pub fn new(
        db: Db,
        vault: Vault,
        relay: Option<Arc<dyn RelayApi>>,
        files: Option<Arc<dyn FileApi>>,
        billing: Option<Arc<dyn BillingApi>>,
        config: PluginConfig,
    ) -> Result<Arc<Self>, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot make the HTTP client: {e}"))?;
        let service = Arc::new(PluginService {
            db,
            vault,
            relay,
            files,
            billing,
            http,
            tokens: oauth::TokenCache::default(),
            config,
            sandbox: tokio::sync::OnceCell::new(),
            background: BackgroundTasks::new(),
        });
        service.background.every(
            "plugin.charges.prune",
            Duration::from_secs(service.config.charge_prune_every_secs.max(1)),
            FirstRun::Now,
            &service,
            |service| async move {
                service.prune_charges().await;
            },
        );
        Ok(service)
    }

    /// Removes the records of paid calls charged or released longer ago than the retention.
    pub async fn prune_charges(&self) -> u64 {
        let retention_ms = i64::from(self.config.charge_retention_days) * 24 * 3600 * 1000;
        match store::prune_charges(&self.db, now() - retention_ms).await {
            Ok(0) => 0,
            Ok(removed) => {
                tracing::info!(removed, "paid tool call records pruned");
                removed
            }
            Err(error) => {
                tracing::warn!(%error, "paid tool call records could not be pruned");
                0
            }
        }
    }

    /// The code sandbox, or why it cannot run on this server (probed on the first call).
    pub(crate) async fn sandbox(&self) -> Result<&sandbox::Sandbox, String> {
        self.sandbox
            .get_or_init(|| async {
                let probed = sandbox::Sandbox::probe().await;
                match &probed {
                    Ok(_) => tracing::info!("the code sandbox works"),
                    Err(reason) => tracing::warn!(%reason, "the code sandbox cannot run here"),
                }
                probed
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    pub(crate) async fn settings(&self) -> ApiResult<StoredSettings> {
        let settings: StoredSettings = match store::setting(&self.db, "admin").await? {
            Some(text) => serde_json::from_str(&text).unwrap_or_default(),
            None => StoredSettings::default(),
        };
        // `tools_of` is synchronous: the sandbox is probed here, before it is asked.
        if settings.code.enabled {
            let _ = self.sandbox().await;
        }
        Ok(settings)
    }

    pub(crate) async fn save_settings(&self, settings: &StoredSettings) -> ApiResult<()> {
        let text = serde_json::to_string(settings).map_err(skein_core::ApiError::internal)?;
        store::set_setting(&self.db, "admin", &text).await?;
        Ok(())
    }

    /// The search provider's settings with its key opened.
    fn search_settings(&self, stored: &StoredSearch) -> ApiResult<search::SearchSettings> {
        let api_key = match &stored.api_key {
            Some(sealed) => Some(
                String::from_utf8(self.vault.open(sealed, "search")?)
                    .map_err(skein_core::ApiError::internal)?,
            ),
            None => None,
        };
        Ok(search::SearchSettings {
            provider: stored.provider,
            base_url: stored.base_url.clone(),
            api_key,
            engine_id: stored.engine_id.clone(),
            count: stored.count,
        })
    }

    /// The tools a plugin offers given the admin's settings (built-ins need theirs).
    pub(crate) fn tools_of(&self, row: &PluginRow, settings: &StoredSettings) -> Vec<ToolDef> {
        match row.builtin.as_deref() {
            Some("web_search") if settings.search.is_some() => vec![ToolDef {
                name: WEB_SEARCH.into(),
                description: "Search the web for current information. Returns numbered results to cite as [n].".into(),
                parameters: json!({"type": "object",
                    "properties": {"query": {"type": "string", "description": "What to search for."}},
                    "required": ["query"]}),
                method: String::new(),
                path: String::new(),
                params: Vec::new(),
                body: false,
            }, page::tool()],
            Some("image_generation")
                if settings.image_model.is_some() && self.relay.is_some() && self.files.is_some() =>
            {
                vec![ToolDef {
                    name: GENERATE_IMAGE.into(),
                    description: "Draw an image from a description; the user sees it with the answer.".into(),
                    parameters: json!({"type": "object",
                        "properties": {"prompt": {"type": "string", "description": "What to draw."},
                            "size": {"type": "string", "description": "Optional size such as 1024x1024."}},
                        "required": ["prompt"]}),
                    method: String::new(),
                    path: String::new(),
                    params: Vec::new(),
                    body: false,
                }]
            }
            Some("code_interpreter") if settings.code.enabled => match self.sandbox.get() {
                Some(Ok(sandbox)) => vec![code::tool(sandbox, &settings.code.limits)],
                _ => Vec::new(),
            },
            Some(_) => Vec::new(),
            None => serde_json::from_str(&row.tools).unwrap_or_default(),
        }
    }

    /// Whether `row` is on for `user_id` in the conversation: its toggle, else their choice,
    /// else whether the conversation's assistant binds it.
    fn is_on(
        row: &PluginRow,
        mine: &HashMap<String, EnablementRow>,
        toggles: &HashMap<String, bool>,
        bound: &[String],
    ) -> bool {
        toggles.get(&row.id).copied().unwrap_or_else(|| {
            mine.get(&row.id).is_some_and(|e| e.enabled != 0) || bound.contains(&row.id)
        })
    }

    /// The tools `caller` may use now, each name once (the first plugin keeps a name).
    pub(crate) async fn offered(&self, caller: &ToolCaller) -> ApiResult<Vec<Offered>> {
        let rows = store::visible(&self.db, &caller.user_id).await?;
        let mine: HashMap<String, EnablementRow> = store::enablements(&self.db, &caller.user_id)
            .await?
            .into_iter()
            .map(|e| (e.plugin_id.clone(), e))
            .collect();
        let toggles: HashMap<String, bool> = match &caller.conversation_id {
            Some(conversation) => {
                store::conversation_toggles(&self.db, &caller.user_id, conversation)
                    .await?
                    .into_iter()
                    .collect()
            }
            None => HashMap::new(),
        };
        let settings = self.settings().await?;
        let mut offered: Vec<Offered> = Vec::new();
        for row in rows {
            if !Self::is_on(&row, &mine, &toggles, &caller.bound_plugin_ids) {
                continue;
            }
            for tool in self.tools_of(&row, &settings) {
                if offered.iter().any(|o| o.tool.name == tool.name) {
                    continue;
                }
                offered.push(Offered {
                    plugin: row.clone(),
                    tool,
                });
            }
        }
        Ok(offered)
    }

    /// The caller's secret `name` for `plugin`, opened.
    async fn user_secret(
        &self,
        user_id: &str,
        plugin_id: &str,
        name: &str,
    ) -> ApiResult<Option<String>> {
        let Some(row) = store::enablements(&self.db, user_id)
            .await?
            .into_iter()
            .find(|e| e.plugin_id == plugin_id)
        else {
            return Ok(None);
        };
        let Some(sealed) = row.secrets else {
            return Ok(None);
        };
        let plain = self.vault.open(&sealed, &user_owner(user_id, plugin_id))?;
        let map: HashMap<String, String> = serde_json::from_slice(&plain).unwrap_or_default();
        Ok(map.get(name).cloned())
    }

    /// The key a plugin's calls carry for `user_id`: their own `api_key`, else the plugin's.
    async fn auth_key(&self, row: &PluginRow, user_id: &str) -> ApiResult<Option<String>> {
        if let Some(key) = self.user_secret(user_id, &row.id, "api_key").await? {
            return Ok(Some(key));
        }
        match &row.auth_secret {
            Some(sealed) => Ok(Some(
                String::from_utf8(self.vault.open(sealed, &plugin_owner(&row.id))?)
                    .map_err(skein_core::ApiError::internal)?,
            )),
            None => Ok(None),
        }
    }

    /// The headers and query a plugin's auth adds; an OAuth client's token is fetched (or
    /// the kept one used) under `policy`. The error is what the model hears.
    async fn auth_parts(
        &self,
        row: &PluginRow,
        user_id: &str,
        policy: net::FetchPolicy,
    ) -> Result<(Vec<(String, String)>, Vec<(String, String)>), String> {
        let unreadable = || "The plugin's key cannot be read; ask an administrator.".to_string();
        let key = self
            .auth_key(row, user_id)
            .await
            .map_err(|_| unreadable())?;
        let Some(key) = key else {
            return Ok((Vec::new(), Vec::new()));
        };
        Ok(match row.auth_kind.as_str() {
            "bearer" => (
                vec![("authorization".into(), format!("Bearer {key}"))],
                Vec::new(),
            ),
            "api_key_header" => (vec![(row.auth_name.clone(), key)], Vec::new()),
            "api_key_query" => (Vec::new(), vec![(row.auth_name.clone(), key)]),
            oauth::KIND => {
                let client: oauth::Client =
                    serde_json::from_str(&row.auth_name).map_err(|_| unreadable())?;
                let token = self
                    .tokens
                    .token(&row.id, &client, &key, policy)
                    .await
                    .map_err(|e| format!("The plugin could not sign in: {e}."))?;
                (
                    vec![("authorization".into(), format!("Bearer {token}"))],
                    Vec::new(),
                )
            }
            _ => (Vec::new(), Vec::new()),
        })
    }

    async fn run(
        &self,
        caller: &ToolCaller,
        offered: &Offered,
        arguments: &Value,
        deadline: Duration,
        progress: &ToolProgress,
    ) -> Outcome {
        let settings = match self.settings().await {
            Ok(s) => s,
            Err(e) => {
                return Outcome::failed(format!(
                    "The tool could not start: {}",
                    e.message(skein_core::i18n::Lang::En)
                ));
            }
        };
        match (
            offered.plugin.builtin.as_deref(),
            offered.plugin.kind.as_str(),
        ) {
            // A page's address comes from the model: untrusted, like a user's own plugin.
            (Some("web_search"), _) if offered.tool.name == page::FETCH_PAGE => {
                let policy = Self::policy(&settings, true, deadline);
                page::fetch(arguments, policy.allow_private, deadline, progress)
                    .await
                    .into()
            }
            (Some("web_search"), _) => self.web_search(&settings, arguments, progress).await.into(),
            (Some("image_generation"), _) => image::generate(self, caller, &settings, arguments)
                .await
                .into(),
            (Some("code_interpreter"), _) => {
                code::run(self, caller, &settings, arguments, deadline, progress).await
            }
            // An HTTP error status is the service saying the operation was not done.
            (_, "openapi") => self
                .call_openapi(caller, offered, &settings, arguments, deadline)
                .await
                .into(),
            (_, "mcp") => {
                self.call_mcp(caller, offered, &settings, arguments, deadline, progress)
                    .await
            }
            _ => Outcome::failed("This tool cannot be run."),
        }
    }

    async fn web_search(
        &self,
        settings: &StoredSettings,
        arguments: &Value,
        progress: &ToolProgress,
    ) -> ToolOutput {
        let Some(stored) = &settings.search else {
            return ToolOutput::error("Web search is not set up.");
        };
        let query = arguments["query"].as_str().unwrap_or_default().trim();
        if query.is_empty() {
            return ToolOutput::error("The argument `query` is required.");
        }
        let provider = match self
            .search_settings(stored)
            .map_err(|e| e.message(skein_core::i18n::Lang::En).to_string())
            .and_then(|s| search::provider(&s))
        {
            Ok(p) => p,
            Err(e) => return ToolOutput::error(format!("Web search is not usable: {e}")),
        };
        progress(json!({"stage": "searching", "text": format!("Searching for {query}")}));
        match provider
            .search(&self.http, query, stored.count.max(1))
            .await
        {
            Ok(hits) => {
                progress(json!({"stage": "found", "text": format!("{} results", hits.len())}));
                ToolOutput {
                    content: search::for_model(query, &hits),
                    citations: search::citations(&hits),
                    ..ToolOutput::default()
                }
            }
            Err(e) => ToolOutput::error(format!("The web search failed: {e}")),
        }
    }

    /// How a tool of a plugin may fetch: a user's own plugin reaches private addresses only
    /// when the admin allowed that for users' plugins too, so one admin's internal tool does
    /// not open the internal network to every user who registers a plugin.
    fn policy(
        settings: &StoredSettings,
        users_plugin: bool,
        deadline: Duration,
    ) -> net::FetchPolicy {
        net::FetchPolicy {
            allow_private: settings.allow_private_addresses
                && (!users_plugin || settings.allow_private_addresses_for_user_plugins),
            max_bytes: MAX_TOOL_ANSWER_BYTES,
            timeout: deadline,
        }
    }

    async fn call_openapi(
        &self,
        caller: &ToolCaller,
        offered: &Offered,
        settings: &StoredSettings,
        arguments: &Value,
        deadline: Duration,
    ) -> ToolOutput {
        let mut request =
            match openapi::request_for(&offered.plugin.base_url, &offered.tool, arguments) {
                Ok(r) => r,
                Err(e) => {
                    return ToolOutput::error(format!(
                        "The call of {} is wrong: {e}.",
                        offered.tool.name
                    ));
                }
            };
        let users_plugin = offered.plugin.owner_id.is_some();
        match self
            .auth_parts(
                &offered.plugin,
                &caller.user_id,
                Self::policy(settings, users_plugin, deadline),
            )
            .await
        {
            Ok((headers, query)) => {
                request.headers.extend(headers);
                if !query.is_empty() {
                    request.url.query_pairs_mut().extend_pairs(query);
                }
            }
            Err(e) => return ToolOutput::error(e),
        }
        match net::send(request, Self::policy(settings, users_plugin, deadline)).await {
            Ok(answer) => match openapi::result_text(&answer) {
                Ok(text) => ToolOutput {
                    content: text,
                    ..ToolOutput::default()
                },
                Err(e) => {
                    ToolOutput::error(format!("The call of {} failed: {e}.", offered.tool.name))
                }
            },
            Err(e) => ToolOutput::error(format!("The call of {} failed: {e}.", offered.tool.name)),
        }
    }

    async fn call_mcp(
        &self,
        caller: &ToolCaller,
        offered: &Offered,
        settings: &StoredSettings,
        arguments: &Value,
        deadline: Duration,
        progress: &ToolProgress,
    ) -> Outcome {
        let sampler = sampling::RelaySampler::for_call(
            self.relay.as_ref(),
            settings.sampling_model.as_deref(),
            caller,
        );
        if let Some(name) = offered.plugin.base_url.strip_prefix(mcp_stdio::SCHEME) {
            let Some(command) = self.config.command(name) else {
                return Outcome::failed(format!(
                    "The local MCP server {name} is no longer allowed on this server."
                ));
            };
            return match mcp_stdio::call_tool(
                command,
                &offered.tool.name,
                arguments,
                deadline,
                progress,
                sampler,
            )
            .await
            {
                // A `tools/call` result is the tool's own answer, `isError` or not.
                Ok(output) => Outcome::worked(output),
                Err(e) => Outcome::failed(format!("The MCP server failed: {e}.")),
            };
        }
        let policy = Self::policy(settings, offered.plugin.owner_id.is_some(), deadline);
        let headers = match self
            .auth_parts(&offered.plugin, &caller.user_id, policy)
            .await
        {
            Ok((headers, _)) => headers,
            Err(e) => return Outcome::failed(e),
        };
        let client = mcp::McpClient::new(
            &offered.plugin.base_url,
            headers,
            Self::policy(settings, offered.plugin.owner_id.is_some(), deadline),
        );
        match client
            .call_tool(&offered.tool.name, arguments, progress, sampler)
            .await
        {
            Ok(output) => Outcome::worked(output),
            Err(e) => Outcome::failed(format!("The MCP server failed: {e}.")),
        }
    }
}

#[async_trait]
impl PluginApi for PluginService {
    async fn tools(&self, caller: &ToolCaller) -> ApiResult<Vec<ToolDescriptor>> {
        Ok(self
            .offered(caller)
            .await?
            .into_iter()
            .map(|o| ToolDescriptor {
                price: price_of(&o.plugin, &o.tool.name),
                requires_approval: o.plugin.requires_approval != 0,
                name: o.tool.name,
                description: o.tool.description,
                parameters: o.tool.parameters,
                plugin_id: o.plugin.id,
            })
            .collect())
    }

    async fn may_use(&self, user_id: &str, plugin_id: &str) -> ApiResult<bool> {
        Ok(store::visible_one(&self.db, user_id, plugin_id)
            .await?
            .is_some())
    }

    async fn execute(
        &self,
        caller: &ToolCaller,
        name: &str,
        arguments: &str,
        deadline: Duration,
    ) -> ToolOutput {
        self.execute_reporting(caller, name, arguments, deadline, Arc::new(|_: Value| {}))
            .await
    }

    async fn execute_reporting(
        &self,
        caller: &ToolCaller,
        name: &str,
        arguments: &str,
        deadline: Duration,
        progress: ToolProgress,
    ) -> ToolOutput {
        // The caller's rights, worked out again: only a tool they may use now runs.
        let offered = match self.offered(caller).await {
            Ok(offered) => offered,
            Err(e) => {
                tracing::warn!(error = %e.message(skein_core::i18n::Lang::En), "plugin tools could not be listed");
                return ToolOutput::error("The tools are unavailable right now.");
            }
        };
        let Some(tool) = offered.into_iter().find(|o| o.tool.name == name) else {
            return ToolOutput::error(format!("There is no tool called {name} you may use."));
        };
        let arguments: Value = if arguments.trim().is_empty() {
            json!({})
        } else {
            match serde_json::from_str(arguments) {
                Ok(v) => v,
                Err(_) => {
                    return ToolOutput::error(format!(
                        "The arguments of {name} are not valid JSON."
                    ));
                }
            }
        };
        // A paid tool is held for before it runs: a balance that cannot pay runs nothing.
        let price = price_of(&tool.plugin, name);
        let hold = if price > 0 {
            match self.hold(caller, &tool, price).await {
                Ok(hold) => hold
                    .zip(self.billing.clone())
                    .map(|(hold, billing)| HoldGuard {
                        hold: Some(hold),
                        billing,
                        db: self.db.clone(),
                    }),
                Err(refused) => return refused,
            }
        } else {
            None
        };
        // The admin's limit, when it is shorter than the caller's.
        let deadline = match self.settings().await.ok().and_then(|s| s.tool_timeout_secs) {
            Some(secs) => deadline.min(Duration::from_secs(secs.max(1))),
            None => deadline,
        };
        // The call is counted while the tool runs: the count is no reason to make it wait.
        let counting = async {
            if let Err(e) = store::count_call(&self.db, &tool.plugin.id, &caller.user_id).await {
                tracing::warn!(error = %e, "a plugin call was not counted");
            }
        };
        let started = std::time::Instant::now();
        let running = async {
            match tokio::time::timeout(
                deadline,
                self.run(caller, &tool, &arguments, deadline, &progress),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => Outcome::failed(format!(
                    "The tool {name} did not answer within {} seconds.",
                    deadline.as_secs()
                )),
            }
        };
        let ((), outcome) = tokio::join!(counting, running);
        tracing::info!(tool = name, plugin = %tool.plugin.id, user = %caller.user_id,
            is_error = outcome.output.is_error, worked = outcome.worked,
            duration_ms = started.elapsed().as_millis() as u64, "tool call");
        if let Some(hold) = hold.and_then(|mut guard| guard.take()) {
            self.settle(caller, hold, name, outcome.worked, started.elapsed())
                .await;
        }
        outcome.output
    }
}

/// A hold that is freed if the call is dropped before it settles (the user stopped the
/// answer while the tool ran): the call is then not charged, and no hold is left to expire.
struct HoldGuard {
    hold: Option<Hold>,
    billing: Arc<dyn BillingApi>,
    db: Db,
}

impl HoldGuard {
    /// The hold, to settle; the guard then frees nothing.
    fn take(&mut self) -> Option<Hold> {
        self.hold.take()
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        let Some(hold) = self.hold.take() else {
            return;
        };
        let (billing, db) = (self.billing.clone(), self.db.clone());
        // Drop cannot wait: the release runs on its own (a runtime is always there, since
        // the call that owned the guard ran on it).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = billing.release(&hold.reservation_id).await {
                    tracing::warn!(error = %e.message(skein_core::i18n::Lang::En), "a stopped tool call's hold was not freed; it expires");
                }
                if let Err(e) = store::finish_charge(&db, &hold.call_key, Some(&hold.reservation_id), "released").await {
                    tracing::warn!(error = %e, "a stopped tool call's end was not recorded");
                }
            });
        }
    }
}

/// The quota one call of `tool` costs: its own price, else its plugin's (never below 0).
pub(crate) fn price_of(plugin: &PluginRow, tool: &str) -> i64 {
    serde_json::from_str::<HashMap<String, i64>>(&plugin.tool_prices)
        .ok()
        .and_then(|prices| prices.get(tool).copied())
        .unwrap_or(plugin.price_per_call)
        .max(0)
}

/// A paid call's hold, settled once the tool answered.
struct Hold {
    call_key: String,
    reservation_id: String,
    price: i64,
}

impl PluginService {
    /// Holds `price` for one call of `offered`: `Err` with what the model hears when the
    /// call's key was claimed before (a paid call never runs twice under one key, nor free),
    /// when the balance cannot pay, or when billing is unreachable (the tool does not run).
    async fn hold(
        &self,
        caller: &ToolCaller,
        offered: &Offered,
        price: i64,
    ) -> Result<Option<Hold>, ToolOutput> {
        let name = &offered.tool.name;
        let Some(billing) = &self.billing else {
            return Err(ToolOutput::error(format!(
                "The tool {name} costs {price} quota per call and billing is unavailable here; it did not run."
            )));
        };
        // Without a key from the caller the call gets its own, so it is still charged once.
        let call_key = if caller.call_key.is_empty() {
            format!("tool:{}", ids::new_id())
        } else {
            format!("tool:{}", caller.call_key)
        };
        match store::claim_charge(
            &self.db,
            &call_key,
            &caller.user_id,
            &offered.plugin.id,
            name,
            price,
            now(),
        )
        .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(%call_key, "a paid tool call came again under its key; refused");
                return Err(ToolOutput::error(format!(
                    "The tool {name} was already called under this call's key; it did not run again."
                )));
            }
            Err(e) => {
                tracing::warn!(error = %e, "a paid tool call could not be recorded");
                return Err(ToolOutput::error(format!(
                    "The tool {name} could not be paid for right now; it did not run."
                )));
            }
        }
        let request = ReserveRequest {
            user_id: caller.user_id.clone(),
            key: None,
            amount: price,
            min_amount: price,
            reference: call_key.clone(),
        };
        match billing.reserve(request).await {
            // The claim already says `held`; the hold's id is written with the call's end,
            // which saves the paid call a write before its tool runs.
            Ok(reservation) => Ok(Some(Hold {
                call_key,
                reservation_id: reservation.id,
                price,
            })),
            Err(e) => {
                if let Err(e) = store::drop_charge(&self.db, &call_key).await {
                    tracing::warn!(error = %e, "a refused tool charge was not forgotten");
                }
                if matches!(e.code(), "insufficient_quota" | "key_quota_exceeded") {
                    Err(ToolOutput::error(format!(
                        "The tool {name} costs {price} quota per call and the balance cannot pay for it; it did not run."
                    )))
                } else {
                    tracing::warn!(error = %e.message(skein_core::i18n::Lang::En), "a paid tool call could not be held");
                    Err(ToolOutput::error(format!(
                        "The tool {name} could not be paid for right now; it did not run."
                    )))
                }
            }
        }
    }

    /// Charges a call whose tool did its work (see [`Outcome`]), or frees the hold of one
    /// that did not run or got no answer of its own; the charge shows in usage as model
    /// `tool:<name>`.
    async fn settle(
        &self,
        caller: &ToolCaller,
        hold: Hold,
        name: &str,
        worked: bool,
        took: Duration,
    ) {
        let Some(billing) = &self.billing else {
            return;
        };
        let status = if !worked {
            if let Err(e) = billing.release(&hold.reservation_id).await {
                tracing::warn!(error = %e.message(skein_core::i18n::Lang::En), "a failed tool call's hold was not freed; it expires");
            }
            "released"
        } else {
            let usage = Usage {
                cost: hold.price,
                model: format!("tool:{name}"),
                duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
                status: "ok".into(),
                request_id: caller.request_id.clone(),
                conversation_id: caller.conversation_id.clone(),
                pricing: Some(json!({"per_call": hold.price}).to_string()),
                ..Usage::default()
            };
            if let Err(e) = billing.settle(&hold.reservation_id, usage).await {
                tracing::warn!(error = %e.message(skein_core::i18n::Lang::En), call_key = %hold.call_key, "a tool call was not charged");
                // Still `held`, now with its hold's id, for whoever reconciles it.
                let _ = store::finish_charge(
                    &self.db,
                    &hold.call_key,
                    Some(&hold.reservation_id),
                    "held",
                )
                .await;
                return;
            }
            "charged"
        };
        if let Err(e) =
            store::finish_charge(&self.db, &hold.call_key, Some(&hold.reservation_id), status).await
        {
            tracing::warn!(error = %e, "a paid tool call's end was not recorded");
        }
    }
}

/// Now, ms (for rows).
pub(crate) fn now() -> i64 {
    ids::now_ms()
}
