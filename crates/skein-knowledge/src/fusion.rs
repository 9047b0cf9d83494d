//! Hybrid retrieval: reciprocal rank fusion of the lexical and vector rankings, and the
//! "no answer" gate.
//!
//! RRF (Cormack et al., 2009) scores a chunk by Σ weight / (k + rank) over the rankings it
//! appears in. It needs no score calibration between BM25 (unbounded) and cosine similarity
//! (−1..1), and a chunk both retrievers like rises above one only one of them likes — unlike
//! returning the vector order unchanged.
//!
//! RRF scores say nothing about whether anything relevant was found: the best of a bad lot
//! still ranks first. So each fused hit keeps its evidence (lexical coverage and vector
//! similarity), and the [`Threshold`] drops hits that no retriever vouches for; when none is
//! left the search answers "no relevant knowledge" instead of guessing.

use std::collections::HashMap;

use crate::lexical::LexicalHit;

/// The constant of reciprocal rank fusion; 60 is the value of the original paper and of most
/// search engines' hybrid modes.
pub const RRF_K: f64 = 60.0;

/// A vector-search result.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    /// The chunk.
    pub chunk_id: String,
    /// Cosine similarity of the chunk's embedding to the query's.
    pub similarity: f32,
}

/// How to fuse and when to say "no answer".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionConfig {
    /// The RRF constant.
    pub k: f64,
    /// Weight of the lexical ranking.
    pub lexical_weight: f64,
    /// Weight of the vector ranking.
    pub vector_weight: f64,
    /// The gate.
    pub threshold: Threshold,
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig {
            k: RRF_K,
            lexical_weight: 1.0,
            vector_weight: 1.0,
            threshold: Threshold::default(),
        }
    }
}

/// A hit passes when either retriever vouches for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// The least lexical coverage (see [`LexicalHit::coverage`]) that counts as a match.
    pub min_coverage: f64,
    /// The least cosine similarity that counts as a match (depends on the embedding model).
    pub min_similarity: f32,
}

impl Default for Threshold {
    fn default() -> Self {
        // 0.4: on the evaluation corpus it turns away all 6 unanswerable questions while keeping
        // 40 of 47 answerable ones by BM25 alone (at 0.3 half the unanswerable ones pass;
        // `knowledge-eval` prints the sweep). Vector similarity is to vouch for the rest.
        Threshold {
            min_coverage: 0.4,
            min_similarity: 0.5,
        }
    }
}

impl Threshold {
    /// Whether the evidence is strong enough.
    pub fn passes(&self, coverage: Option<f64>, similarity: Option<f32>) -> bool {
        coverage.is_some_and(|c| c >= self.min_coverage)
            || similarity.is_some_and(|s| s >= self.min_similarity)
    }
}

/// One fused result, with what each stage said (the hit-testing page shows it).
#[derive(Debug, Clone, PartialEq)]
pub struct FusedHit {
    /// The chunk.
    pub chunk_id: String,
    /// The RRF score.
    pub score: f64,
    /// Its 1-based rank in the lexical results, if there.
    pub lexical_rank: Option<usize>,
    /// Its 1-based rank in the vector results, if there.
    pub vector_rank: Option<usize>,
    /// Its lexical coverage, if lexically found.
    pub coverage: Option<f64>,
    /// Its similarity, if found by vectors.
    pub similarity: Option<f32>,
}

/// The outcome of a hybrid search.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    /// The hits that passed the threshold, best first.
    pub hits: Vec<FusedHit>,
    /// Hits dropped by the threshold (kept for hit testing), best first.
    pub below_threshold: Vec<FusedHit>,
}

impl Fused {
    /// True when nothing passed: the caller says "no relevant knowledge".
    pub fn no_answer(&self) -> bool {
        self.hits.is_empty()
    }
}

/// Fuses the two rankings (each best first) and applies the threshold.
pub fn fuse(lexical: &[LexicalHit], vector: &[VectorHit], config: &FusionConfig) -> Fused {
    let mut by_id: HashMap<&str, FusedHit> = HashMap::new();
    for (i, hit) in lexical.iter().enumerate() {
        let entry = by_id
            .entry(&hit.chunk_id)
            .or_insert_with(|| empty(&hit.chunk_id));
        if entry.lexical_rank.is_none() {
            entry.lexical_rank = Some(i + 1);
            entry.coverage = Some(hit.coverage);
            entry.score += config.lexical_weight / (config.k + (i + 1) as f64);
        }
    }
    for (i, hit) in vector.iter().enumerate() {
        let entry = by_id
            .entry(&hit.chunk_id)
            .or_insert_with(|| empty(&hit.chunk_id));
        if entry.vector_rank.is_none() {
            entry.vector_rank = Some(i + 1);
            entry.similarity = Some(hit.similarity);
            entry.score += config.vector_weight / (config.k + (i + 1) as f64);
        }
    }
    let mut all: Vec<FusedHit> = by_id.into_values().collect();
    // Ties (a chunk ranked n-th by one retriever against another's n-th) go to the better
    // best rank, then to the id, so results are stable.
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| best_rank(a).cmp(&best_rank(b)))
            .then_with(|| a.chunk_id.cmp(&b.chunk_id))
    });
    let (hits, below_threshold) = all
        .into_iter()
        .partition(|h| config.threshold.passes(h.coverage, h.similarity));
    Fused {
        hits,
        below_threshold,
    }
}

fn empty(chunk_id: &str) -> FusedHit {
    FusedHit {
        chunk_id: chunk_id.to_owned(),
        score: 0.0,
        lexical_rank: None,
        vector_rank: None,
        coverage: None,
        similarity: None,
    }
}

fn best_rank(hit: &FusedHit) -> usize {
    hit.lexical_rank
        .into_iter()
        .chain(hit.vector_rank)
        .min()
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(id: &str, coverage: f64) -> LexicalHit {
        LexicalHit {
            chunk_id: id.into(),
            score: 1.0,
            coverage,
        }
    }

    fn vec_hit(id: &str, similarity: f32) -> VectorHit {
        VectorHit {
            chunk_id: id.into(),
            similarity,
        }
    }

    #[test]
    fn a_chunk_both_retrievers_find_beats_either_alone() {
        let lexical = [lex("a", 0.9), lex("b", 0.9), lex("c", 0.9)];
        let vector = [vec_hit("d", 0.9), vec_hit("c", 0.9), vec_hit("a", 0.9)];
        let fused = fuse(&lexical, &vector, &FusionConfig::default());
        let order: Vec<&str> = fused.hits.iter().map(|h| h.chunk_id.as_str()).collect();
        // a: 1/61 + 1/63, c: 1/63 + 1/62, then b (2nd lexically) and d (1st by vectors).
        assert_eq!(order, ["a", "c", "d", "b"]);
        assert_eq!(fused.hits[1].lexical_rank, Some(3));
        assert_eq!(fused.hits[1].vector_rank, Some(2));
    }

    #[test]
    fn weights_shift_the_order() {
        let lexical = [lex("a", 0.9)];
        let vector = [vec_hit("b", 0.9)];
        let config = FusionConfig {
            vector_weight: 2.0,
            ..FusionConfig::default()
        };
        let fused = fuse(&lexical, &vector, &config);
        assert_eq!(fused.hits[0].chunk_id, "b");
    }

    #[test]
    fn nothing_vouched_for_means_no_answer() {
        let lexical = [lex("a", 0.2), lex("b", 0.1)];
        let vector = [vec_hit("a", 0.31)];
        let fused = fuse(&lexical, &vector, &FusionConfig::default());
        assert!(fused.no_answer());
        assert_eq!(fused.below_threshold.len(), 2);
        let strong = [vec_hit("c", 0.8)];
        let fused = fuse(&lexical, &strong, &FusionConfig::default());
        assert!(!fused.no_answer());
        assert_eq!(fused.hits[0].chunk_id, "c");
    }
}
