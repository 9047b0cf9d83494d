//! Bases' lexical (BM25) indexes held in memory between searches: compact postings scored in
//! Rust instead of asking the database's full-text index per query.
//!
//! **Why:** at 100,000 chunks a query through FTS5 or GIN cost over a second (docs/benchmarks.md):
//! the base filter, the per-term document frequencies and the per-candidate term frequencies
//! were each a pass over tens of thousands of rows. Held here, a base is a sorted chunk list,
//! each chunk's length normalization precomputed, and per term one posting list (chunk index,
//! term frequency) whose length *is* the term's document frequency. A query is term-at-a-time
//! accumulation over its terms' postings into a dense score array, then a bounded heap: a few
//! hundred thousand additions at most, well under a millisecond.
//!
//! The copy is stamped with the base's generation (`knowledge_lexical_bases`, bumped in the
//! transaction of every change to the base's index, on any instance); a search reads the
//! generation by primary key and, when it moved, answers from the database while the copy is
//! rebuilt in the background ([`crate::rebuild`]). The memory is bounded
//! (`knowledge.lexical_cache_mb`): the least recently used base goes first, and a base larger
//! than the budget is searched in the database as before.
//!
//! Scores are the PostgreSQL path's exactly (FTS5's BM25 formula with the base's own
//! statistics, term frequency capped at 255), ties broken by chunk id.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::lexical::{B, K1, LexicalHit, coverage, fts5_idf};

/// One base's index in memory.
#[derive(Debug, Default)]
pub struct LexicalSet {
    /// Chunk ids, sorted (a posting's chunk index points here; the order breaks ties).
    chunk_ids: Vec<String>,
    /// Per chunk, BM25's length normalization `K1 * (1 - B + B * len / avg_len)`.
    norms: Vec<f64>,
    /// Term → index into `offsets`.
    dictionary: HashMap<Box<str>, u32>,
    /// Term `t`'s postings are `offsets[t]..offsets[t + 1]` of `docs` and `tfs`.
    offsets: Vec<u32>,
    /// Chunk indexes, ascending within each term.
    docs: Vec<u32>,
    /// Term frequencies, capped at 255 as PostgreSQL's positions are.
    tfs: Vec<u8>,
}

impl LexicalSet {
    /// The index of `(chunk id, space-separated terms, term count)` rows.
    pub fn build(mut rows: Vec<(String, String, i64)>) -> LexicalSet {
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let total: f64 = rows.iter().map(|r| r.2.max(0) as f64).sum();
        let avg_len = if rows.is_empty() || total <= 0.0 {
            1.0
        } else {
            total / rows.len() as f64
        };
        let mut dictionary: HashMap<Box<str>, u32> = HashMap::new();
        let mut postings: Vec<Vec<(u32, u8)>> = Vec::new();
        let mut chunk_ids = Vec::with_capacity(rows.len());
        let mut norms = Vec::with_capacity(rows.len());
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for (doc, (id, terms, len)) in rows.iter().enumerate() {
            let doc = u32::try_from(doc).unwrap_or(u32::MAX);
            counts.clear();
            for term in terms.split(' ').filter(|t| !t.is_empty()) {
                *counts.entry(term).or_default() += 1;
            }
            for (term, tf) in &counts {
                let slot = match dictionary.get(*term) {
                    Some(slot) => *slot,
                    None => {
                        let slot = u32::try_from(postings.len()).unwrap_or(u32::MAX);
                        dictionary.insert((*term).into(), slot);
                        postings.push(Vec::new());
                        slot
                    }
                };
                if let Some(list) = postings.get_mut(slot as usize) {
                    list.push((doc, u8::try_from(*tf).unwrap_or(u8::MAX)));
                }
            }
            chunk_ids.push(id.clone());
            norms.push(K1 * (1.0 - B + B * (*len).max(0) as f64 / avg_len));
        }
        let total_postings: usize = postings.iter().map(Vec::len).sum();
        let mut offsets = Vec::with_capacity(postings.len() + 1);
        let mut docs = Vec::with_capacity(total_postings);
        let mut tfs = Vec::with_capacity(total_postings);
        offsets.push(0);
        for list in postings {
            for (doc, tf) in list {
                docs.push(doc);
                tfs.push(tf);
            }
            offsets.push(u32::try_from(docs.len()).unwrap_or(u32::MAX));
        }
        LexicalSet {
            chunk_ids,
            norms,
            dictionary,
            offsets,
            docs,
            tfs,
        }
    }

    /// An estimate of the memory it holds, in bytes.
    pub fn bytes(&self) -> usize {
        let ids: usize = self.chunk_ids.iter().map(|s| s.len() + 24).sum();
        let terms: usize = self.dictionary.keys().map(|k| k.len() + 16 + 4 + 8).sum();
        ids + self.norms.len() * 8 + terms + self.offsets.len() * 4 + self.docs.len() * 5
    }

    /// Chunks it holds.
    pub fn len(&self) -> usize {
        self.chunk_ids.len()
    }

    /// Whether it holds no chunk.
    pub fn is_empty(&self) -> bool {
        self.chunk_ids.is_empty()
    }

    /// The best `limit` chunks for the (distinct, at most 64) query terms, best first; only
    /// chunks in `allowed` when given (a filtered search; statistics stay the base's).
    pub fn search(
        &self,
        terms: &[&str],
        limit: usize,
        allowed: Option<&HashSet<String>>,
    ) -> Vec<LexicalHit> {
        let n = self.chunk_ids.len();
        if n == 0 || limit == 0 || terms.is_empty() {
            return Vec::new();
        }
        let chunks = i64::try_from(n).unwrap_or(i64::MAX);
        let mut scores = vec![0f64; n];
        // Which query terms each chunk holds (bit i: terms[i]), for coverage.
        let mut held = vec![0u64; n];
        let mut touched: Vec<u32> = Vec::new();
        let mut df: HashMap<&str, i64> = HashMap::with_capacity(terms.len());
        for (i, term) in terms.iter().enumerate().take(64) {
            let Some(slot) = self.dictionary.get(*term) else {
                continue;
            };
            let slot = *slot as usize;
            let (Some(from), Some(to)) = (self.offsets.get(slot), self.offsets.get(slot + 1))
            else {
                continue;
            };
            let (from, to) = (*from as usize, *to as usize);
            df.insert(term, i64::try_from(to - from).unwrap_or(i64::MAX));
            let idf = fts5_idf(chunks, i64::try_from(to - from).unwrap_or(i64::MAX));
            let bit = 1u64 << i;
            for (doc, tf) in self.docs[from..to].iter().zip(&self.tfs[from..to]) {
                let doc = *doc as usize;
                if held[doc] == 0 {
                    touched.push(doc as u32);
                }
                held[doc] |= bit;
                let tf = f64::from(*tf);
                scores[doc] += idf * tf * (K1 + 1.0) / (tf + self.norms[doc]);
            }
        }
        // The best `limit`, worst on top: higher score, then the smaller chunk index.
        let mut best: BinaryHeap<Reverse<(Score, Reverse<u32>)>> =
            BinaryHeap::with_capacity(limit + 1);
        for doc in touched {
            if let Some(allowed) = allowed
                && !allowed.contains(&self.chunk_ids[doc as usize])
            {
                continue;
            }
            let entry = Reverse((Score(scores[doc as usize]), Reverse(doc)));
            if best.len() < limit {
                best.push(entry);
            } else if best.peek().is_some_and(|worst| entry < *worst) {
                best.pop();
                best.push(entry);
            }
        }
        let mut ranked: Vec<(Score, Reverse<u32>)> = best.into_iter().map(|r| r.0).collect();
        ranked.sort_by(|a, b| b.cmp(a));
        ranked
            .into_iter()
            .map(|(Score(score), Reverse(doc))| {
                let mask = held[doc as usize];
                LexicalHit {
                    chunk_id: self.chunk_ids[doc as usize].clone(),
                    score,
                    coverage: coverage(terms, &df, chunks, |t| {
                        terms
                            .iter()
                            .position(|q| *q == t)
                            .is_some_and(|i| i < 64 && mask & (1 << i) != 0)
                    }),
                }
            })
            .collect()
    }
}

/// A score ordered by `total_cmp`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score(f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

struct Entry {
    generation: i64,
    set: Arc<LexicalSet>,
    bytes: usize,
    used: Instant,
}

/// Bases' lexical sets, bounded by bytes.
pub struct LexicalCache {
    entries: Mutex<HashMap<String, Entry>>,
    max_bytes: usize,
}

impl LexicalCache {
    /// A cache of at most `max_bytes`.
    pub fn new(max_bytes: u64) -> LexicalCache {
        LexicalCache {
            entries: Mutex::new(HashMap::new()),
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
        }
    }

    /// The most bytes it holds (0: off).
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Bases held, and their bytes.
    pub fn usage(&self) -> (usize, usize) {
        self.entries
            .lock()
            .map(|e| (e.len(), e.values().map(|x| x.bytes).sum()))
            .unwrap_or((0, 0))
    }

    /// The base's set if it was built at `generation`.
    pub fn get(&self, base_id: &str, generation: i64) -> Option<Arc<LexicalSet>> {
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get_mut(base_id)?;
        if entry.generation != generation {
            return None;
        }
        entry.used = Instant::now();
        Some(entry.set.clone())
    }

    /// Keeps `set` as the base's at `generation`, evicting the least recently used bases to
    /// stay in budget; a set larger than the budget is not kept.
    pub fn put(&self, base_id: &str, generation: i64, set: Arc<LexicalSet>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        entries.remove(base_id);
        let bytes = set.bytes();
        if bytes > self.max_bytes {
            return;
        }
        let mut total: usize = entries.values().map(|e| e.bytes).sum();
        while total + bytes > self.max_bytes {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = entries.remove(&oldest) {
                total -= e.bytes;
            }
        }
        entries.insert(
            base_id.to_string(),
            Entry {
                generation,
                set,
                bytes,
                used: Instant::now(),
            },
        );
    }

    /// Forgets a base (deleted).
    pub fn forget(&self, base_id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(base_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(items: &[(&str, &str)]) -> Vec<(String, String, i64)> {
        items
            .iter()
            .map(|(id, terms)| {
                (
                    (*id).to_string(),
                    (*terms).to_string(),
                    terms.split(' ').count() as i64,
                )
            })
            .collect()
    }

    #[test]
    fn ranks_by_bm25_with_coverage_and_ties_by_id() {
        let set = LexicalSet::build(rows(&[
            ("c", "年假 天数 年假"),
            ("a", "报销 流程 发票"),
            ("b", "年假 申请"),
            ("d", "报销 流程 发票"),
        ]));
        let hits = set.search(&["年假", "天数"], 10, None);
        let ids: Vec<&str> = hits.iter().map(|h| h.chunk_id.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);
        assert!((hits[0].coverage - 1.0).abs() < 1e-9);
        assert!(hits[1].coverage < 1.0 && hits[1].coverage > 0.0);
        // Equal scores: the smaller id first; the limit keeps the best.
        let hits = set.search(&["发票"], 1, None);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].chunk_id, "a");
        assert!(set.search(&["unicorn"], 5, None).is_empty());
        assert!(set.search(&["年假"], 0, None).is_empty());
        // A filter keeps only its chunks, ranked as before.
        let only: HashSet<String> = ["d".to_string()].into();
        let hits = set.search(&["发票"], 5, Some(&only));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].chunk_id, "d");
    }

    #[test]
    fn the_formula_is_fts5s_bm25_with_base_statistics() {
        let set = LexicalSet::build(rows(&[("x", "a b b"), ("y", "c d"), ("z", "e")]));
        let hit = &set.search(&["b"], 1, None)[0];
        let avg = 6.0 / 3.0;
        let idf = ((3.0 - 1.0 + 0.5) / (1.0 + 0.5f64)).ln();
        let expected = idf * 2.0 * (K1 + 1.0) / (2.0 + K1 * (1.0 - B + B * 3.0 / avg));
        assert!(
            (hit.score - expected).abs() < 1e-12,
            "{} {expected}",
            hit.score
        );
    }

    #[test]
    fn a_stale_generation_misses_and_the_budget_evicts_the_least_recent() {
        let one = || Arc::new(LexicalSet::build(rows(&[("a", "x y")])));
        let size = one().bytes();
        let cache = LexicalCache::new((size * 2) as u64);
        cache.put("b1", 1, one());
        assert!(cache.get("b1", 1).is_some());
        assert!(cache.get("b1", 2).is_none());
        cache.put("b2", 1, one());
        cache.put("b3", 1, one());
        assert!(cache.get("b1", 1).is_none());
        assert!(cache.get("b2", 1).is_some());
        assert!(cache.get("b3", 1).is_some());
        let small = LexicalCache::new(1);
        small.put("b", 1, one());
        assert!(small.get("b", 1).is_none());
        cache.forget("b2");
        assert!(cache.get("b2", 1).is_none());
    }
}
