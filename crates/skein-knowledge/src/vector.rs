//! Embeddings as stored (little-endian `f32` bytes) and a brute-force cosine search over one
//! base's vectors.
//!
//! **Decision: a flat scan in Rust** over each base's vectors held in memory
//! ([`crate::vector_cache`]), and pgvector's HNSW index on PostgreSQL when the extension is
//! installed ([`crate::pgvector`]). sqlite-vec was not added: its `vec0` table is a flat scan
//! too (no approximate index in its 0.1 releases), in C behind SQLite's virtual-table calls,
//! so it cannot beat the in-memory scan, and it would be the build's second C extension
//! (docs/benchmarks.md has the numbers at 100,000 chunks).

use crate::fusion::VectorHit;

/// A vector as stored.
pub fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A stored vector; `None` when the bytes are not whole `f32`s.
pub fn decode(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

/// The vector scaled to length 1 (a zero vector stays zero).
pub fn normalized(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return vec![0.0; vector.len()];
    }
    vector.iter().map(|v| v / norm).collect()
}

/// The `limit` stored vectors most similar to `query` by cosine, best first. Vectors of
/// another length (from a model the base used before) are skipped.
pub fn nearest(query: &[f32], stored: &[(String, Vec<u8>)], limit: usize) -> Vec<VectorHit> {
    let query = normalized(query);
    let mut hits: Vec<VectorHit> = stored
        .iter()
        .filter_map(|(id, bytes)| {
            let v = decode(bytes)?;
            if v.len() != query.len() {
                return None;
            }
            let v = normalized(&v);
            let similarity: f32 = v.iter().zip(&query).map(|(a, b)| a * b).sum();
            Some(VectorHit {
                chunk_id: id.clone(),
                similarity,
            })
        })
        .collect();
    hits.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then_with(|| a.chunk_id.cmp(&b.chunk_id))
    });
    hits.truncate(limit);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_rank_by_cosine() {
        let v = vec![0.5f32, -1.25, 3.0];
        assert_eq!(decode(&encode(&v)), Some(v));
        assert_eq!(decode(&[1, 2, 3]), None);
        let stored = vec![
            ("far".to_string(), encode(&[-1.0, 0.0])),
            ("near".to_string(), encode(&[2.0, 0.1])),
            ("other-model".to_string(), encode(&[1.0, 0.0, 0.0])),
            ("mid".to_string(), encode(&[1.0, 1.0])),
        ];
        let hits = nearest(&[1.0, 0.0], &stored, 2);
        let ids: Vec<&str> = hits.iter().map(|h| h.chunk_id.as_str()).collect();
        assert_eq!(ids, ["near", "mid"]);
        assert!((hits[1].similarity - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }
}
