//! One base's search, stage by stage: BM25 over the lexical index, cosine over the base's
//! vectors (when it has an embedding model), reciprocal rank fusion with the "no answer"
//! threshold, then an optional rerank that falls back to the fused order when the rerank
//! model fails or is slow. Each hit keeps its rank at every stage for hit testing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skein_core::api::{KnowledgePassage, RelayCaller, RerankRequest};
use skein_core::i18n::Lang;
use skein_core::{ApiError, ApiResult};
use skein_text::segment::Analyzer;

use crate::fusion::{self, FusedHit, FusionConfig, VectorHit};
use crate::store::{self, BaseRow, ChunkRow};
use crate::vector_cache::VectorSet;
use crate::{KnowledgeService, vector};

/// Candidates each retriever contributes to fusion.
pub const CANDIDATES: usize = 50;
/// The most hits a search answers.
pub const MAX_TOP_K: usize = 50;
/// The most below-threshold hits shown to hit testing.
const BELOW_SHOWN: usize = 5;

/// One hit, with what each stage said of it.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The chunk (with its document's name and file).
    pub chunk: ChunkRow,
    /// The score it is ordered by: the rerank score when reranked, else the RRF score.
    pub score: f64,
    /// 1-based rank in the BM25 results.
    pub bm25_rank: Option<usize>,
    /// 1-based rank in the vector results.
    pub vector_rank: Option<usize>,
    /// 1-based rank after fusion.
    pub fused_rank: usize,
    /// 1-based rank after reranking.
    pub rerank_rank: Option<usize>,
    /// The share of the query's information the chunk holds (lexical evidence).
    pub coverage: Option<f64>,
    /// Cosine similarity to the query (vector evidence).
    pub similarity: Option<f32>,
    /// The rerank model's score.
    pub rerank_score: Option<f64>,
}

impl Hit {
    /// The hit as other services see it.
    pub fn passage(&self) -> KnowledgePassage {
        let c = &self.chunk;
        let pages = match (c.page_start, c.page_end) {
            (Some(a), Some(b)) => {
                Some((u32::try_from(a).unwrap_or(0), u32::try_from(b).unwrap_or(0)))
            }
            _ => None,
        };
        KnowledgePassage {
            base_id: c.base_id.clone(),
            document_id: c.document_id.clone(),
            document_name: c.document_name.clone(),
            file_id: c.file_id.clone(),
            chunk_id: c.id.clone(),
            text: c.text.clone(),
            headings: serde_json::from_str(&c.headings).unwrap_or_default(),
            pages,
            score: self.score,
        }
    }
}

/// How a search was run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// BM25 only: the base has no embedding model.
    Lexical,
    /// BM25 and vectors, fused.
    Hybrid,
}

/// What a search found, and how.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Hits that passed the threshold, best first.
    pub hits: Vec<Hit>,
    /// The best few that did not.
    pub below_threshold: Vec<Hit>,
    /// Nothing passed: say "no relevant knowledge".
    pub no_answer: bool,
    /// Lexical only, or hybrid.
    pub mode: Mode,
    /// Why the vector stage was skipped for this query (the embedding call failed).
    pub vector_error: Option<String>,
    /// Whether the rerank model ordered the hits.
    pub reranked: bool,
    /// The base has a rerank model but it failed or timed out: the fused order stands.
    pub unranked: bool,
    /// Time taken, ms.
    pub took_ms: u64,
}

impl KnowledgeService {
    /// Searches one base (the caller checked access) for `query`; the query's embedding and
    /// the rerank are billed to `caller`.
    pub async fn search_base(
        &self,
        base: &BaseRow,
        caller: RelayCaller,
        query: &str,
        top_k: usize,
    ) -> ApiResult<Outcome> {
        let started = Instant::now();
        let text = query.to_string();
        let terms = tokio::task::spawn_blocking(move || Analyzer::default().terms(&text))
            .await
            .unwrap_or_default();
        let lexical = self.lexical.search(&base.id, &terms, CANDIDATES).await?;
        let mut vector_error = None;
        let mut vectors: Vec<VectorHit> = Vec::new();
        let mode = if base.embedding_model.is_some() {
            Mode::Hybrid
        } else {
            Mode::Lexical
        };
        if let Some(model) = &base.embedding_model {
            match self
                .embed(caller.clone(), model, vec![query.to_string()])
                .await
            {
                Ok(embedded) => match embedded.into_iter().next() {
                    Some(q) => vectors = self.nearest(&base.id, q).await?,
                    None => {
                        vector_error = Some("the embedding model answered no vector".to_string())
                    }
                },
                Err(e) => {
                    tracing::info!(base_id = %base.id, code = e.code(), "query embedding failed; searching lexically");
                    vector_error = Some(e.message(Lang::En).to_string());
                }
            }
        }
        let fused = fusion::fuse(&lexical, &vectors, &FusionConfig::default());
        let no_answer = fused.no_answer();
        let wanted: Vec<&FusedHit> = fused.hits.iter().take(top_k).collect();
        let below: Vec<&FusedHit> = fused.below_threshold.iter().take(BELOW_SHOWN).collect();
        let ids: Vec<String> = wanted
            .iter()
            .chain(&below)
            .map(|h| h.chunk_id.clone())
            .collect();
        let rows: HashMap<String, ChunkRow> = store::ready_chunks(&self.db, &base.id, &ids)
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let to_hits = |list: &[&FusedHit], rows: &HashMap<String, ChunkRow>| -> Vec<Hit> {
            list.iter()
                .filter_map(|h| {
                    Some(Hit {
                        chunk: rows.get(&h.chunk_id)?.clone(),
                        score: h.score,
                        bm25_rank: h.lexical_rank,
                        vector_rank: h.vector_rank,
                        fused_rank: 0,
                        rerank_rank: None,
                        coverage: h.coverage,
                        similarity: h.similarity,
                        rerank_score: None,
                    })
                })
                .collect()
        };
        let mut hits = to_hits(&wanted, &rows);
        for (i, hit) in hits.iter_mut().enumerate() {
            hit.fused_rank = i + 1;
        }
        let below_threshold = to_hits(&below, &rows);
        let (mut reranked, mut unranked) = (false, false);
        if let (Some(model), false) = (&base.rerank_model, hits.is_empty()) {
            match self.rerank(model, caller, query, &hits).await {
                Some(scores) => {
                    for (rank, (index, score)) in scores.iter().enumerate() {
                        if let Some(hit) = hits.get_mut(*index) {
                            hit.rerank_rank = Some(rank + 1);
                            hit.rerank_score = Some(*score);
                            hit.score = *score;
                        }
                    }
                    hits.sort_by_key(|h| h.rerank_rank.unwrap_or(usize::MAX));
                    reranked = true;
                }
                None => unranked = true,
            }
        }
        Ok(Outcome {
            no_answer: no_answer || hits.is_empty(),
            hits,
            below_threshold,
            mode,
            vector_error,
            reranked,
            unranked,
            took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// The base's [`CANDIDATES`] vectors nearest to `query`: from the vector cache when it
    /// is current (one indexed query checks), else read from the database (and cached).
    async fn nearest(&self, base_id: &str, query: Vec<f32>) -> ApiResult<Vec<VectorHit>> {
        if self.config.vector_cache_mb == 0 {
            let stored = store::base_vectors(&self.db, base_id).await?;
            return tokio::task::spawn_blocking(move || {
                vector::nearest(&query, &stored, CANDIDATES)
            })
            .await
            .map_err(ApiError::internal);
        }
        // The stamp is read before the vectors: a change between the two leaves a set newer
        // than its stamp, which the next search rebuilds; never one older than its stamp.
        let stamp = store::vector_stamp(&self.db, base_id).await?;
        let set = match self.vectors.get(base_id, stamp) {
            Some(set) => set,
            None => {
                let stored = store::base_vectors(&self.db, base_id).await?;
                let set = tokio::task::spawn_blocking(move || Arc::new(VectorSet::build(stored)))
                    .await
                    .map_err(ApiError::internal)?;
                self.vectors.put(base_id, stamp, set.clone());
                set
            }
        };
        tokio::task::spawn_blocking(move || set.nearest(&query, CANDIDATES))
            .await
            .map_err(ApiError::internal)
    }

    /// `(index into hits, score)` best first, or `None` when the rerank model failed or took
    /// longer than `rerank_timeout_ms`.
    async fn rerank(
        &self,
        model: &str,
        caller: RelayCaller,
        query: &str,
        hits: &[Hit],
    ) -> Option<Vec<(usize, f64)>> {
        let request = RerankRequest {
            model: model.to_string(),
            query: query.to_string(),
            documents: hits.iter().map(|h| h.chunk.text.clone()).collect(),
            top_n: None,
        };
        let timeout = Duration::from_millis(self.config.rerank_timeout_ms);
        match tokio::time::timeout(timeout, self.relay.rerank(caller, request)).await {
            Ok(Ok(reranking)) => {
                let mut seen = vec![false; hits.len()];
                let mut order: Vec<(usize, f64)> = Vec::with_capacity(hits.len());
                for r in reranking.results {
                    if r.index < hits.len() && !seen[r.index] {
                        seen[r.index] = true;
                        order.push((r.index, r.score));
                    }
                }
                // Documents the model left out keep their fused order, after the rest.
                let floor = order.iter().map(|o| o.1).fold(f64::INFINITY, f64::min);
                let floor = if floor.is_finite() { floor } else { 0.0 };
                for (i, was) in seen.iter().enumerate() {
                    if !was {
                        order.push((i, floor - 1.0));
                    }
                }
                Some(order)
            }
            Ok(Err(e)) => {
                tracing::info!(code = e.code(), "rerank failed; answering unranked");
                None
            }
            Err(_) => {
                tracing::info!(
                    timeout_ms = self.config.rerank_timeout_ms,
                    "rerank timed out; answering unranked"
                );
                None
            }
        }
    }
}
