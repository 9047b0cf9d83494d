//! Skein's Knowledge service (`/api/v1/knowledge/...`): knowledge bases of documents read from
//! the File service, indexed by a durable ingestion queue ([`worker`]) into chunks with
//! embeddings and a lexical index, searched by BM25 and vectors fused by reciprocal rank
//! ([`search`]), optionally reranked, and offered to chat through
//! [`KnowledgeApi`](skein_core::api::KnowledgeApi).
//!
//! The foundations: reading documents ([`extract`]), the lexical BM25 index on SQLite and
//! PostgreSQL ([`lexical`]), fusing lexical and vector rankings ([`fusion`]), flat vector
//! search ([`vector`]) and the retrieval evaluation ([`eval`]). Text segmentation and chunking
//! live in `skein-text`.
//!
//! **Architecture Invariant:** only this crate touches the `knowledge_*` tables. A document's
//! chunks are searchable only once its status is `ready`, which is set in the same
//! transaction that adds its chunks to the lexical index; every search joins on it, so a
//! half-indexed document (crashed, waiting for a retry, being re-indexed) is never found.

pub mod access;
pub mod config;
pub(crate) mod errors;
pub mod eval;
pub mod extract;
pub mod fusion;
mod http;
pub mod lexical;
pub mod lexical_cache;
pub mod net;
pub mod pgvector;
pub mod rebuild;
pub mod remote;
pub mod search;
mod service;
pub mod store;
pub mod vector;
pub mod vector_cache;
pub mod worker;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
pub use config::KnowledgeConfig;
use skein_core::api::{
    EmbedRequest, FileApi, KnowledgeApi, KnowledgeCaller, KnowledgePassage, KnowledgeQuery,
    KnowledgeResults, RelayApi, RelayCaller,
};
use skein_core::service::{BackgroundTasks, FirstRun, ServiceName};
use skein_core::{ApiError, ids};
use skein_db::{Db, ServiceMigrations};

/// The Knowledge service's migrations (the lexical index, bases, documents, chunks, jobs).
pub static MIGRATIONS: ServiceMigrations = ServiceMigrations {
    service: ServiceName::Knowledge,
    sqlite: || skein_db::sqlx::migrate!("migrations/sqlite"),
    postgres: || skein_db::sqlx::migrate!("migrations/postgres"),
};

/// The Knowledge service.
pub struct KnowledgeService {
    db: Db,
    config: KnowledgeConfig,
    files: Arc<dyn FileApi>,
    relay: Arc<dyn RelayApi>,
    lexical: lexical::LexicalIndex,
    /// This instance's name on the job leases it holds.
    worker_id: String,
    /// The ingestion worker.
    background: BackgroundTasks,
    /// The built-in embedding model, when installed ([`skein_embed::MODEL_NAME`]).
    local_model: OnceLock<Arc<skein_embed::StaticModel>>,
    /// Bases' vectors between searches.
    vectors: Arc<vector_cache::VectorCache>,
    /// Bases' vectors being read into memory in the background.
    vector_rebuilds: rebuild::Rebuilds<vector_cache::Stamp>,
    /// Vector search through pgvector (PostgreSQL with the extension).
    pgvector: Arc<pgvector::Pgvector>,
    /// Progress streams open, by user.
    event_streams: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

/// The most texts one call to the built-in model embeds before yielding the thread.
const LOCAL_BATCH: usize = 64;

impl KnowledgeService {
    /// The service, with its ingestion worker polling for due jobs.
    pub fn start(
        db: Db,
        config: KnowledgeConfig,
        files: Arc<dyn FileApi>,
        relay: Arc<dyn RelayApi>,
    ) -> Arc<Self> {
        let background = BackgroundTasks::new();
        let service = Arc::new(KnowledgeService {
            lexical: lexical::LexicalIndex::with_tasks(
                db.clone(),
                config.lexical_cache_mb << 20,
                background.clone(),
            ),
            pgvector: Arc::new(pgvector::Pgvector::new(
                db.clone(),
                config.pgvector,
                background.clone(),
            )),
            db,
            worker_id: format!("knowledge-{}", ids::new_id()),
            vector_rebuilds: rebuild::Rebuilds::new(background.clone()),
            background,
            vectors: Arc::new(vector_cache::VectorCache::new(config.vector_cache_mb << 20)),
            config,
            files,
            relay,
            local_model: OnceLock::new(),
            event_streams: Default::default(),
        });
        let pgvector = service.pgvector.clone();
        service.background.spawn(async move {
            if !pgvector.available().await {
                return;
            }
            match pgvector.backfill().await {
                Ok(0) => {}
                Ok(copied) => tracing::info!(copied, "knowledge: vectors copied for pgvector"),
                Err(e) => tracing::warn!(error = %e, "knowledge: vectors could not be copied for pgvector; vectors are scanned in memory"),
            }
        });
        let period = std::time::Duration::from_millis(service.config.poll_interval_ms);
        service.background.every(
            "knowledge.jobs",
            period,
            FirstRun::Now,
            &service,
            |service| async move {
                service.run_due_jobs().await;
            },
        );
        service
    }

    /// Uses `model` for bases whose embedding model is [`skein_embed::MODEL_NAME`], and makes
    /// it the default of new bases when `knowledge.default_embedding_model` is unset. Set once;
    /// later calls are ignored.
    pub fn set_local_model(&self, model: Arc<skein_embed::StaticModel>) {
        let _ = self.local_model.set(model);
    }

    /// The built-in embedding model, when installed.
    pub fn local_model(&self) -> Option<&Arc<skein_embed::StaticModel>> {
        self.local_model.get()
    }

    /// Embeds `inputs` with `model`: the built-in model here when that is the model and it is
    /// installed (no relay call, nothing billed), else through the relay, billed to `caller`.
    pub async fn embed(
        &self,
        caller: RelayCaller,
        model: &str,
        inputs: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        if model == skein_embed::MODEL_NAME
            && let Some(local) = self.local_model.get()
        {
            let mut vectors = Vec::with_capacity(inputs.len());
            for batch in inputs.chunks(LOCAL_BATCH) {
                let (local, batch) = (local.clone(), batch.to_vec());
                let embedded = tokio::task::spawn_blocking(move || local.embed_all(&batch))
                    .await
                    .map_err(ApiError::internal)?;
                vectors.extend(embedded);
            }
            return Ok(vectors);
        }
        let request = EmbedRequest {
            model: model.to_string(),
            inputs,
            dimensions: None,
        };
        Ok(self.relay.embed(caller, request).await?.vectors)
    }

    /// The configuration in effect.
    pub fn config(&self) -> &KnowledgeConfig {
        &self.config
    }

    /// A relay caller billed to `user_id` (ingestion bills the base's owner; a search the
    /// person searching).
    fn caller(user_id: &str, request_id: &str, conversation_id: Option<&str>) -> RelayCaller {
        RelayCaller {
            user_id: user_id.to_string(),
            // The user's own group, as the relay decides for their API keys.
            group: None,
            request_id: request_id.to_string(),
            conversation_id: conversation_id.map(str::to_string),
            cancel: None,
        }
    }
}

#[async_trait]
impl KnowledgeApi for KnowledgeService {
    async fn may_read(&self, user_id: &str, base_id: &str) -> Result<bool, ApiError> {
        Ok(self.access(user_id, base_id).await.is_ok())
    }

    async fn search(
        &self,
        caller: KnowledgeCaller,
        query: KnowledgeQuery,
    ) -> Result<KnowledgeResults, ApiError> {
        let relay_caller = Self::caller(
            &caller.user_id,
            &caller.request_id,
            caller.conversation_id.as_deref(),
        );
        let top_k = query.top_k.clamp(1, search::MAX_TOP_K);
        // (rank within its base, passage): bases' scores are not comparable, their ranks are.
        let mut ranked: Vec<(usize, KnowledgePassage)> = Vec::new();
        for base_id in &query.base_ids {
            let (base, _) = self.access(&caller.user_id, base_id).await?;
            let outcome = self
                .search_base(&base, relay_caller.clone(), &query.query, top_k)
                .await?;
            // Parent-child chunks: several matched chunks of one section give the section once.
            let mut seen_parents = std::collections::HashSet::new();
            let hits = outcome.hits.into_iter().filter(|h| {
                h.parent
                    .as_ref()
                    .is_none_or(|p| seen_parents.insert(p.id.clone()))
            });
            for (rank, hit) in hits.enumerate() {
                ranked.push((rank, hit.passage()));
            }
        }
        ranked.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.score.total_cmp(&a.1.score)));
        let passages: Vec<KnowledgePassage> =
            ranked.into_iter().take(top_k).map(|(_, p)| p).collect();
        Ok(KnowledgeResults {
            no_answer: passages.is_empty(),
            passages,
        })
    }

    async fn conversation_bases(
        &self,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<Vec<String>, ApiError> {
        let mut readable = Vec::new();
        for base_id in store::conversation_bases(&self.db, user_id, conversation_id).await? {
            if self.access(user_id, &base_id).await.is_ok() {
                readable.push(base_id);
            }
        }
        Ok(readable)
    }
}
