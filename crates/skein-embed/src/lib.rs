//! Skein's built-in local embedding model (`skein-local-embed`): a model2vec static model —
//! one vector per token, averaged — read from a folder holding `model.safetensors`,
//! `tokenizer.json` (a SentencePiece Unigram tokenizer) and `config.json`, and run in plain
//! Rust with no ML runtime.
//!
//! **Why a static model and our own loader:** a static model embeds a chunk in microseconds
//! on one core, needs no GPU and no model server, and its files are a few megabytes. The
//! `tokenizers` and `model2vec-rs` crates would cost minutes of compile time (and a C++
//! build) for the one Unigram Viterbi pass and the safetensors header this needs.
//!
//! The model the project installs is PyPI's `tokenlearn-static-model` (a multilingual
//! Unigram vocabulary of 276k pieces mapped onto 10,000 int8 vectors of 64 dimensions with a
//! weight per token); any model2vec folder with a Unigram tokenizer loads the same way.

mod safetensors;
mod unigram;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use unigram::Unigram;

/// The model name the platform serves the built-in model under (`/v1/embeddings`, knowledge
/// bases).
pub const MODEL_NAME: &str = "skein-local-embed";

/// The most tokens of one input that count (model2vec's default `max_length`).
pub const MAX_TOKENS: usize = 512;

/// Why a model folder could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not what a model2vec folder holds.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// `config.json`: only what changes the output.
#[derive(Debug, Deserialize)]
struct ModelConfig {
    #[serde(default = "yes")]
    normalize: bool,
}

fn yes() -> bool {
    true
}

/// A loaded static embedding model.
pub struct StaticModel {
    tokenizer: Unigram,
    /// Token id → row of `embeddings` (vocabulary quantization); `None`: the id is the row.
    mapping: Option<Vec<u32>>,
    /// A weight per token id, multiplied into its row; `None`: 1.
    weights: Option<Vec<f32>>,
    /// `rows × dimensions` values.
    embeddings: Vec<f32>,
    dimensions: usize,
    normalize: bool,
    /// Inputs are cut to `MAX_TOKENS × this` characters before tokenizing, as model2vec does,
    /// so a huge input costs no more than a long one.
    median_token_chars: usize,
}

impl std::fmt::Debug for StaticModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticModel")
            .field("vocabulary", &self.tokenizer.len())
            .field("rows", &(self.embeddings.len() / self.dimensions.max(1)))
            .field("dimensions", &self.dimensions)
            .finish()
    }
}

impl StaticModel {
    /// Loads the model in `dir`.
    pub fn load(dir: &Path) -> Result<StaticModel, EmbedError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| EmbedError::Io { path, source })
        };
        let bad = |name: &str, message: String| EmbedError::Format {
            path: dir.join(name),
            message,
        };
        let config: ModelConfig = match read("config.json") {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| bad("config.json", e.to_string()))?
            }
            Err(EmbedError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                ModelConfig { normalize: true }
            }
            Err(e) => return Err(e),
        };
        let tokenizer =
            Unigram::from_json(&read("tokenizer.json")?).map_err(|m| bad("tokenizer.json", m))?;
        let weights_file = read("model.safetensors")?;
        let tensors =
            safetensors::Tensors::parse(&weights_file).map_err(|m| bad("model.safetensors", m))?;
        let in_weights = |m: String| bad("model.safetensors", m);
        let (shape, embeddings) = tensors.f32("embeddings").map_err(in_weights)?;
        let [rows, dimensions] = shape[..] else {
            return Err(bad(
                "model.safetensors",
                format!("'embeddings' has shape {shape:?}, not [rows, dimensions]"),
            ));
        };
        if rows == 0 || dimensions == 0 {
            return Err(bad("model.safetensors", "'embeddings' is empty".into()));
        }
        let vocabulary = tokenizer.len();
        let mapping = match tensors.has("mapping") {
            true => {
                let mapping = tensors.indices("mapping").map_err(in_weights)?;
                if mapping.len() != vocabulary || mapping.iter().any(|&r| r as usize >= rows) {
                    return Err(bad(
                        "model.safetensors",
                        "'mapping' does not map every token to a row".into(),
                    ));
                }
                Some(mapping)
            }
            false if rows == vocabulary => None,
            false => {
                return Err(bad(
                    "model.safetensors",
                    format!("{rows} rows for {vocabulary} tokens and no 'mapping'"),
                ));
            }
        };
        let weights = match tensors.has("weights") {
            true => {
                let (_, weights) = tensors.f32("weights").map_err(in_weights)?;
                if weights.len() != vocabulary {
                    return Err(bad(
                        "model.safetensors",
                        "'weights' has no weight for every token".into(),
                    ));
                }
                Some(weights)
            }
            false => None,
        };
        Ok(StaticModel {
            median_token_chars: tokenizer.median_piece_chars().max(1),
            tokenizer,
            mapping,
            weights,
            embeddings,
            dimensions,
            normalize: config.normalize,
        })
    }

    /// The length of every vector.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// How many tokens `text` counts (what a call is measured in).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.token_ids(text).len()
    }

    fn token_ids(&self, text: &str) -> Vec<u32> {
        let cut = match text
            .char_indices()
            .nth(MAX_TOKENS * self.median_token_chars)
        {
            Some((at, _)) => &text[..at],
            None => text,
        };
        let mut ids = self.tokenizer.encode(cut);
        ids.truncate(MAX_TOKENS);
        ids
    }

    /// The embedding of `text`: the mean of its tokens' vectors, scaled to length 1 when the
    /// model says so. Text with no known token embeds as the zero vector.
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let ids = self.token_ids(text);
        let mut sum = vec![0.0f32; self.dimensions];
        for &id in &ids {
            let id = id as usize;
            let row = self.mapping.as_ref().map_or(id, |m| m[id] as usize);
            let weight = self.weights.as_ref().map_or(1.0, |w| w[id]);
            let start = row * self.dimensions;
            for (s, v) in sum
                .iter_mut()
                .zip(&self.embeddings[start..start + self.dimensions])
            {
                *s += v * weight;
            }
        }
        if !ids.is_empty() {
            let n = ids.len() as f32;
            sum.iter_mut().for_each(|s| *s /= n);
        }
        if self.normalize {
            let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 && norm.is_finite() {
                sum.iter_mut().for_each(|s| *s /= norm);
            }
        }
        sum
    }

    /// [`embed`](Self::embed) for each input.
    pub fn embed_all<S: AsRef<str>>(&self, inputs: &[S]) -> Vec<Vec<f32>> {
        inputs.iter().map(|t| self.embed(t.as_ref())).collect()
    }
}

#[cfg(test)]
mod tests;
