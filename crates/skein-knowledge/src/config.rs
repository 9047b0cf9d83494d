//! The `[knowledge]` section of the configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Knowledge bases: their defaults, the ingestion worker and search.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnowledgeConfig {
    /// The embedding model a new base uses when its creator names none (any model the relay
    /// serves); `None`: new bases search lexically (BM25) only unless one is named.
    pub default_embedding_model: Option<String>,
    /// The folder of the built-in local embedding model (`skein-local-embed`: a model2vec
    /// static model, `scripts/local-embed-model` installs it). Unset: `<data_dir>/models/
    /// skein-local-embed` when that exists. When it loads, new bases without a
    /// `default_embedding_model` use it, and `/v1/embeddings` serves it.
    pub local_embed_dir: Option<PathBuf>,
    /// Largest chunk, in tokens, of a new base.
    pub chunk_max_tokens: u32,
    /// Overlap between neighbouring chunks, in tokens, of a new base.
    pub chunk_overlap_tokens: u32,
    /// Chunks embedded per call to the embedding model.
    pub embed_batch: u32,
    /// How often an idle worker looks for due jobs, in milliseconds.
    pub poll_interval_ms: u64,
    /// How long a claimed job stays claimed without a sign of life, in seconds; after that
    /// another instance takes it over.
    pub lease_secs: u64,
    /// The wait before the first retry of a failed step, in seconds (doubled each attempt).
    pub retry_base_secs: u64,
    /// Attempts before a document is marked failed.
    pub max_attempts: u32,
    /// How long a search waits for the rerank model before answering unranked, in ms.
    pub rerank_timeout_ms: u64,
    /// Largest document read for indexing, in bytes (it is read into memory).
    pub max_document_bytes: u64,
    /// Largest PDF read for indexing when poppler is installed, in bytes: a PDF over 16 MiB
    /// is then copied to the temporary folder (`TMPDIR`) and read from there a range of pages
    /// at a time, so it takes disk rather than memory. Without poppler PDFs are read into
    /// memory and obey `max_document_bytes`.
    pub max_pdf_bytes: u64,
    /// Memory for bases' vectors kept between searches, in MiB (0: read them from the
    /// database on every search).
    pub vector_cache_mb: u64,
    /// Memory for bases' lexical (BM25) indexes kept between searches, in MiB (0: every
    /// search asks the database's full-text index, slow past tens of thousands of chunks).
    pub lexical_cache_mb: u64,
    /// Whether a web page added by URL may be on a private, loopback or link-local address
    /// (an intranet wiki). Off: only public addresses are fetched.
    pub allow_private_urls: bool,
    /// On PostgreSQL, search vectors through pgvector's HNSW index when the `vector`
    /// extension is installed (created at first use when the database role may). Off, or
    /// without it: vectors are scanned in memory as on SQLite.
    pub pgvector: bool,
    /// With pgvector on: a base whose vectors, held in memory, count at most this many floats
    /// (chunks × dimensions) is still searched by scanning them, which answers sooner and
    /// exactly at that size (100,000 chunks of 64 dimensions: p99 11 ms by the scan, 87 ms
    /// through the index); larger bases, and bases not in memory, go through the index. 0:
    /// always the index.
    pub pgvector_min_floats: u64,
    /// Progress streams (`/knowledge/bases/{id}/events`) one user may hold open at once on
    /// this instance; each reads the database every half second for up to ten minutes.
    pub event_streams_per_user: u32,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        KnowledgeConfig {
            default_embedding_model: None,
            local_embed_dir: None,
            chunk_max_tokens: 512,
            chunk_overlap_tokens: 64,
            embed_batch: 32,
            poll_interval_ms: 1000,
            lease_secs: 120,
            retry_base_secs: 10,
            max_attempts: 8,
            rerank_timeout_ms: 3000,
            max_document_bytes: 100 << 20,
            max_pdf_bytes: 512 << 20,
            vector_cache_mb: 512,
            lexical_cache_mb: 256,
            allow_private_urls: false,
            pgvector: true,
            pgvector_min_floats: 16 << 20,
            event_streams_per_user: 8,
        }
    }
}

impl KnowledgeConfig {
    /// Refuses settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if !(16..=8192).contains(&self.chunk_max_tokens) {
            return Err("knowledge.chunk_max_tokens must be 16 to 8192".into());
        }
        if self.chunk_overlap_tokens > self.chunk_max_tokens / 2 {
            return Err(
                "knowledge.chunk_overlap_tokens must be at most half of chunk_max_tokens".into(),
            );
        }
        if !(1..=2048).contains(&self.embed_batch) {
            return Err("knowledge.embed_batch must be 1 to 2048".into());
        }
        if self.event_streams_per_user == 0 {
            return Err("knowledge.event_streams_per_user must be positive".into());
        }
        if self.poll_interval_ms == 0 || self.lease_secs == 0 || self.max_attempts == 0 {
            return Err(
                "knowledge.poll_interval_ms, lease_secs and max_attempts must be positive".into(),
            );
        }
        Ok(())
    }
}
