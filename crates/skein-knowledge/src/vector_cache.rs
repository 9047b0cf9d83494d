//! Bases' vectors held in memory between searches, so a search scans floats instead of
//! reading (and decoding) every embedding of the base from the database.
//!
//! **Why:** reading a base's embeddings per query is what made vector search slow at scale —
//! at 100,000 chunks it moved tens of megabytes out of the database for every search (see
//! docs/benchmarks.md). The cache keeps each base's vectors normalized in one contiguous
//! array, and checks with one indexed query per search (the base's ready documents: how
//! many, how many chunks, the latest change) that nothing was added, removed or re-indexed
//! since — on this instance or any other — before trusting it. A stale stamp starts a rebuild
//! in the background ([`crate::rebuild`]); meanwhile searches scan the previous copy (every hit
//! is then checked against the base's ready chunks, so nothing removed is found) or, with
//! none, the database.
//! Its size is bounded (`knowledge.vector_cache_mb`); the least recently used base goes
//! first, and a base larger than the whole budget is scanned from the database as before.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::fusion::VectorHit;
use crate::vector;

/// What a base's ready documents looked like when its vectors were read: (documents, chunks,
/// the latest change, ms).
pub type Stamp = (i64, i64, i64);

/// One base's vectors, normalized, by length (a base that changed model holds two lengths
/// until its re-index ends).
#[derive(Debug, Default)]
pub struct VectorSet {
    by_dimensions: HashMap<usize, Rows>,
}

#[derive(Debug, Default)]
struct Rows {
    ids: Vec<String>,
    data: Vec<f32>,
}

impl VectorSet {
    /// The set of stored `(chunk id, bytes)` vectors; undecodable ones are left out.
    pub fn build(stored: Vec<(String, Vec<u8>)>) -> VectorSet {
        let mut by_dimensions: HashMap<usize, Rows> = HashMap::new();
        for (id, bytes) in stored {
            let Some(v) = vector::decode(&bytes) else {
                continue;
            };
            if v.is_empty() {
                continue;
            }
            let rows = by_dimensions.entry(v.len()).or_default();
            rows.ids.push(id);
            rows.data.extend(vector::normalized(&v));
        }
        VectorSet { by_dimensions }
    }

    /// How many floats it holds.
    pub fn floats(&self) -> usize {
        self.by_dimensions.values().map(|r| r.data.len()).sum()
    }

    /// The `limit` vectors most similar to `query` by cosine, best first (ties by id), as
    /// [`vector::nearest`] answers them.
    pub fn nearest(&self, query: &[f32], limit: usize) -> Vec<VectorHit> {
        self.nearest_among(query, limit, None)
    }

    /// [`nearest`](Self::nearest) among the chunks in `allowed` only, when given.
    pub fn nearest_among(
        &self,
        query: &[f32],
        limit: usize,
        allowed: Option<&HashSet<String>>,
    ) -> Vec<VectorHit> {
        let Some(rows) = self.by_dimensions.get(&query.len()) else {
            return Vec::new();
        };
        if limit == 0 {
            return Vec::new();
        }
        let query = vector::normalized(query);
        // The best `limit` so far, worst on top (better: more similar, then the smaller id,
        // as the flat scan orders ties); ids are cloned only for the winners.
        type Key<'a> = (Similarity, Reverse<&'a str>);
        let mut best: BinaryHeap<Reverse<Key<'_>>> = BinaryHeap::with_capacity(limit + 1);
        for (row, id) in rows.data.chunks_exact(query.len()).zip(&rows.ids) {
            if let Some(allowed) = allowed
                && !allowed.contains(id)
            {
                continue;
            }
            let s: f32 = row.iter().zip(&query).map(|(a, b)| a * b).sum();
            let entry = Reverse((Similarity(s), Reverse(id.as_str())));
            if best.len() < limit {
                best.push(entry);
            } else if best.peek().is_some_and(|worst| entry < *worst) {
                best.pop();
                best.push(entry);
            }
        }
        let mut hits: Vec<VectorHit> = best
            .into_iter()
            .map(|Reverse((Similarity(similarity), Reverse(id)))| VectorHit {
                chunk_id: id.to_string(),
                similarity,
            })
            .collect();
        hits.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then_with(|| a.chunk_id.cmp(&b.chunk_id))
        });
        hits
    }
}

/// A similarity ordered by `total_cmp`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Similarity(f32);

impl Eq for Similarity {}

impl PartialOrd for Similarity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Similarity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

struct Entry {
    stamp: Stamp,
    set: Arc<VectorSet>,
    used: Instant,
}

/// Bases' vector sets, bounded by a number of floats.
pub struct VectorCache {
    entries: Mutex<HashMap<String, Entry>>,
    max_floats: usize,
}

impl VectorCache {
    /// A cache of at most `max_bytes` of vectors.
    pub fn new(max_bytes: u64) -> VectorCache {
        VectorCache {
            entries: Mutex::new(HashMap::new()),
            max_floats: usize::try_from(max_bytes / 4).unwrap_or(usize::MAX),
        }
    }

    /// The base's set, and whether it was built at `stamp` (current) or before (stale: the
    /// base changed since; a search may use it while it is rebuilt, since every hit is checked
    /// against the base's ready chunks).
    pub fn lookup(&self, base_id: &str, stamp: Stamp) -> Option<(Arc<VectorSet>, bool)> {
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get_mut(base_id)?;
        entry.used = Instant::now();
        Some((entry.set.clone(), entry.stamp == stamp))
    }

    /// Whether a set of `floats` fits the budget at all.
    pub fn fits(&self, floats: usize) -> bool {
        floats <= self.max_floats
    }

    /// Bases held, and their floats.
    pub fn usage(&self) -> (usize, usize) {
        self.entries
            .lock()
            .map(|e| (e.len(), e.values().map(|x| x.set.floats()).sum()))
            .unwrap_or((0, 0))
    }

    /// The base's set if it was built at `stamp`.
    pub fn get(&self, base_id: &str, stamp: Stamp) -> Option<Arc<VectorSet>> {
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get_mut(base_id)?;
        if entry.stamp != stamp {
            return None;
        }
        entry.used = Instant::now();
        Some(entry.set.clone())
    }

    /// Keeps `set` as the base's at `stamp`, evicting the least recently used bases to stay
    /// in budget; a set larger than the budget is not kept.
    pub fn put(&self, base_id: &str, stamp: Stamp, set: Arc<VectorSet>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        entries.remove(base_id);
        let size = set.floats();
        if size > self.max_floats {
            return;
        }
        let mut total: usize = entries.values().map(|e| e.set.floats()).sum();
        while total + size > self.max_floats {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = entries.remove(&oldest) {
                total -= e.set.floats();
            }
        }
        entries.insert(
            base_id.to_string(),
            Entry {
                stamp,
                set,
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

    fn stored(items: &[(&str, &[f32])]) -> Vec<(String, Vec<u8>)> {
        items
            .iter()
            .map(|(id, v)| ((*id).to_string(), vector::encode(v)))
            .collect()
    }

    #[test]
    fn the_set_ranks_as_the_flat_scan_does() {
        let items = stored(&[
            ("far", &[-1.0, 0.0]),
            ("near", &[2.0, 0.1]),
            ("other-model", &[1.0, 0.0, 0.0]),
            ("mid", &[1.0, 1.0]),
            ("twin-b", &[0.0, 3.0]),
            ("twin-a", &[0.0, 1.0]),
        ]);
        let set = VectorSet::build(items.clone());
        for limit in 0..8 {
            for query in [[1.0f32, 0.0], [0.0, 1.0], [0.3, -0.7]] {
                assert_eq!(
                    set.nearest(&query, limit),
                    vector::nearest(&query, &items, limit),
                    "limit {limit}, query {query:?}"
                );
            }
        }
        assert_eq!(set.nearest(&[1.0, 0.0, 0.0], 5)[0].chunk_id, "other-model");
        assert!(set.nearest(&[1.0; 7], 5).is_empty());
    }

    #[test]
    fn a_stale_stamp_misses_and_the_budget_evicts_the_least_recent() {
        let cache = VectorCache::new(4 * 4);
        let two = || Arc::new(VectorSet::build(stored(&[("a", &[1.0, 0.0])])));
        cache.put("b1", (1, 1, 1), two());
        assert!(cache.get("b1", (1, 1, 1)).is_some());
        assert!(cache.get("b1", (1, 1, 2)).is_none());
        cache.put("b2", (1, 1, 1), two());
        // Four floats fit: both are kept; a third evicts the least recently used (b1).
        cache.put("b3", (1, 1, 1), two());
        assert!(cache.get("b1", (1, 1, 1)).is_none());
        assert!(cache.get("b2", (1, 1, 1)).is_some());
        assert!(cache.get("b3", (1, 1, 1)).is_some());
        // Larger than the whole budget: not kept.
        let big = Arc::new(VectorSet::build(stored(&[("x", &[1.0; 5])])));
        cache.put("big", (1, 1, 1), big);
        assert!(cache.get("big", (1, 1, 1)).is_none());
        cache.forget("b2");
        assert!(cache.get("b2", (1, 1, 1)).is_none());
    }
}
