//! Skein's Agent service (`/api/v1/agents`, `/api/v1/market`): assistants with a draft and
//! immutable published versions, conversations pinned to the version they started with, and
//! a market of public assistants with categories, search, likes, favourites, usage statistics,
//! reports and moderation; import and export in LobeChat's agent format and Skein's own.
//!
//! Chat reaches it through [`AgentApi`] (the persona a conversation is pinned to, and usage
//! per message), from a context source the binary registers on the Chat service; it reaches
//! Chat through [`ConversationOpener`] to start a conversation. Bound knowledge bases and
//! plugins are stored as ids with each version, for the Knowledge and Plugin services.
//!
//! **Architecture Invariant:** only this crate touches the `agent_*` tables and `agents`.
//! A version row is never updated or deleted, and deleting an assistant only marks it, so a
//! conversation keeps the exact prompt and settings it started with for its whole life.

pub mod checks;
pub mod diff;
mod http;
pub mod lobe;
pub mod market_index;
pub mod remote;
pub mod search;
mod service;
pub mod spec;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use skein_core::api::{
    AgentApi, AgentPersona, ConversationOpener, FileApi, KnowledgeApi, PluginApi, RelayApi,
};
use skein_core::service::{BackgroundTasks, FirstRun};
use skein_core::{ApiError, ApiResult, ids};
use skein_db::{Db, ServiceMigrations};

use spec::AgentSpec;
use store::AgentRow;

/// The Agent service's migrations.
pub static MIGRATIONS: ServiceMigrations = ServiceMigrations {
    service: skein_core::service::ServiceName::Agent,
    sqlite: || skein_db::sqlx::migrate!("migrations/sqlite"),
    postgres: || skein_db::sqlx::migrate!("migrations/postgres"),
};

/// The Agent service.
pub struct AgentService {
    db: Db,
    /// The services it asks.
    peers: Peers,
    /// The market in memory, for searches.
    market: market_index::MarketIndex,
    /// The market's upkeep: search terms of cards indexed before an upgrade, trending scores.
    background: BackgroundTasks,
}

/// The services the Agent service asks, each `None` when it runs in no reachable process.
#[derive(Clone, Default)]
pub struct Peers {
    /// Chat, to start conversations.
    pub opener: Option<Arc<dyn ConversationOpener>>,
    /// Whether an owner may read a knowledge base the assistant binds.
    pub knowledge: Option<Arc<dyn KnowledgeApi>>,
    /// Whether an owner may use a plugin the assistant binds.
    pub plugins: Option<Arc<dyn PluginApi>>,
    /// The models an owner is served.
    pub relay: Option<Arc<dyn RelayApi>>,
    /// Avatars uploaded as files.
    pub files: Option<Arc<dyn FileApi>>,
}

/// How often every trending score is worked out again (its divisor counts whole days).
const TREND_PERIOD: Duration = Duration::from_secs(3600);

impl AgentService {
    /// The service over `db`, asking `peers` where they run.
    pub fn new(db: Db, peers: Peers) -> Arc<Self> {
        let service = Arc::new(AgentService {
            db,
            peers,
            market: market_index::MarketIndex::default(),
            background: BackgroundTasks::new(),
        });
        service.background.every(
            "agent-market-upkeep",
            TREND_PERIOD,
            FirstRun::Now,
            &service,
            |svc| async move { svc.upkeep().await },
        );
        service.background.every(
            "agent-market-index",
            market_index::RELOAD_EVERY,
            FirstRun::Now,
            &service,
            |svc| async move {
                if let Err(error) = svc.market.sync(&svc.db).await {
                    tracing::warn!(%error, "reading the market into memory failed");
                }
            },
        );
        service
    }

    /// Puts assistant `id` in the market in memory as the tables have it now, after this
    /// process changed it (the next reload would, but a user expects their change at once).
    pub(crate) async fn market_changed(&self, id: &str) {
        if let Err(error) = self.market.refresh(&self.db, id).await {
            tracing::warn!(%error, agent = id, "updating the market in memory failed");
        }
    }

    /// Indexes cards whose search terms are missing or stale (a batch at a time, so the
    /// write lock is never held long), then refreshes the trending scores.
    async fn upkeep(&self) {
        loop {
            match store::reindex_stale(&self.db, 500).await {
                Ok(0) => break,
                Ok(n) => tracing::info!(assistants = n, "indexed assistants for market search"),
                Err(error) => {
                    tracing::warn!(%error, "indexing assistants for market search failed");
                    break;
                }
            }
        }
        if let Err(error) = store::refresh_trends(&self.db, ids::now_ms()).await {
            tracing::warn!(%error, "refreshing the market's trending scores failed");
        } else if let Err(error) = self.market.sync(&self.db).await {
            tracing::warn!(%error, "reading the market into memory failed");
        }
    }

    /// The assistant `id` as `user_id` may see it: the owner sees it always; others only
    /// when it is published and not private. Anything else reads as missing.
    pub(crate) async fn visible(&self, id: &str, user_id: Option<&str>) -> ApiResult<AgentRow> {
        let row = store::agent(&self.db, id).await?.ok_or_else(not_found)?;
        let owner = user_id == Some(row.owner_id.as_str());
        if owner || (row.visibility != "private" && row.current_version.is_some()) {
            Ok(row)
        } else {
            Err(not_found())
        }
    }

    /// `user_id`'s own assistant `id`.
    pub(crate) async fn owned(&self, id: &str, user_id: &str) -> ApiResult<AgentRow> {
        let row = store::agent(&self.db, id).await?.ok_or_else(not_found)?;
        if row.owner_id == user_id {
            Ok(row)
        } else {
            Err(not_found())
        }
    }

    /// The spec `pin` speaks with: its version's, or for a preview the owner's draft as it
    /// is now (`None` once the assistant is deleted, so the preview goes on as a plain
    /// conversation).
    pub(crate) async fn pinned_spec(
        &self,
        pin: &store::BindingRow,
    ) -> ApiResult<Option<AgentSpec>> {
        if pin.version != store::DRAFT {
            return self
                .version_spec(&pin.agent_id, pin.version)
                .await
                .map(Some);
        }
        match store::agent(&self.db, &pin.agent_id).await? {
            Some(row) if row.owner_id == pin.user_id => parse_spec(&row.draft).map(Some),
            _ => Ok(None),
        }
    }

    /// The spec of version `n` of `agent_id`.
    pub(crate) async fn version_spec(&self, agent_id: &str, n: i64) -> ApiResult<AgentSpec> {
        let row = store::version(&self.db, agent_id, n)
            .await?
            .ok_or_else(version_not_found)?;
        parse_spec(&row.spec)
    }
}

/// A stored spec; a row that does not parse is our fault, not the caller's.
pub(crate) fn parse_spec(json: &str) -> ApiResult<AgentSpec> {
    serde_json::from_str(json).map_err(ApiError::internal)
}

/// 404 for an assistant that does not exist or that the caller may not see.
pub(crate) fn not_found() -> ApiError {
    ApiError::not_found("Assistant", "助手")
}

/// 404 for a version number that does not exist.
pub(crate) fn version_not_found() -> ApiError {
    ApiError::not_found("Version", "版本")
}

/// The UTC day of `ms`, `YYYY-MM-DD`.
pub(crate) fn day_of(ms: i64) -> String {
    ids::ms_to_rfc3339(ms).chars().take(10).collect()
}

#[async_trait]
impl AgentApi for AgentService {
    async fn persona(
        &self,
        conversation_id: &str,
        user_id: &str,
    ) -> ApiResult<Option<AgentPersona>> {
        let Some(pin) = store::binding(&self.db, conversation_id, user_id).await? else {
            return Ok(None);
        };
        let Some(spec) = self.pinned_spec(&pin).await? else {
            return Ok(None);
        };
        Ok(Some(AgentPersona {
            agent_id: pin.agent_id,
            agent_name: spec.name,
            version: pin.version,
            system_prompt: spec.system_prompt,
            // The model picked at the start, where allowed, else the version's.
            model: pin
                .model
                .filter(|_| spec.allow_model_override)
                .or(spec.model),
            temperature: spec.temperature,
            top_p: spec.top_p,
            max_tokens: spec.max_tokens,
            allow_model_override: spec.allow_model_override,
            opening_message: Some(spec.opening_message).filter(|m| !m.is_empty()),
            knowledge_base_ids: spec.knowledge_base_ids,
            plugin_ids: spec.plugin_ids,
        }))
    }

    async fn record_message(&self, conversation_id: &str, user_id: &str) -> ApiResult<()> {
        if let Some(pin) = store::binding(&self.db, conversation_id, user_id)
            .await?
            .filter(|pin| pin.version != store::DRAFT)
        {
            store::count_message(&self.db, &pin.agent_id, user_id, &day_of(ids::now_ms())).await?;
        }
        Ok(())
    }
}
