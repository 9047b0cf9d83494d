//! A SentencePiece Unigram tokenizer read from a Hugging Face `tokenizer.json`: NFKC
//! normalization (what SentencePiece's precompiled `nmt_nfkc` map does, near enough for a
//! mean of token vectors), words split at whitespace and marked with `▁`, then the Viterbi
//! path of the highest total piece score through each word.

use std::collections::HashMap;

use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

/// SentencePiece's word-start mark.
const WORD_START: char = '\u{2581}';
/// The score below the vocabulary's lowest given to a character no piece covers (as
/// SentencePiece's `kUnkPenalty`).
const UNKNOWN_PENALTY: f64 = 10.0;

#[derive(Deserialize)]
struct TokenizerJson {
    #[serde(default)]
    normalizer: Option<serde_json::Value>,
    model: ModelJson,
}

#[derive(Deserialize)]
struct ModelJson {
    #[serde(rename = "type")]
    kind: String,
    vocab: Vec<(String, f64)>,
}

/// A Unigram tokenizer.
pub struct Unigram {
    /// Piece → (id, log-probability).
    pieces: HashMap<String, (u32, f64)>,
    /// The longest piece, in characters: how far a match can reach.
    max_piece_chars: usize,
    unknown_score: f64,
    lowercase: bool,
    median_piece_chars: usize,
}

impl Unigram {
    /// Reads a `tokenizer.json` whose model is Unigram.
    pub fn from_json(bytes: &[u8]) -> Result<Unigram, String> {
        let parsed: TokenizerJson = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if parsed.model.kind != "Unigram" {
            return Err(format!(
                "a {} tokenizer; only Unigram (SentencePiece) tokenizers are supported",
                parsed.model.kind
            ));
        }
        let lowercase = parsed
            .normalizer
            .as_ref()
            .is_some_and(|n| n.to_string().contains("\"Lowercase\""));
        let vocab = parsed.model.vocab;
        if vocab.is_empty() {
            return Err("the vocabulary is empty".into());
        }
        let mut pieces = HashMap::with_capacity(vocab.len());
        let mut lengths = Vec::with_capacity(vocab.len());
        let mut lowest = f64::INFINITY;
        for (id, (piece, score)) in vocab.into_iter().enumerate() {
            let id = u32::try_from(id).map_err(|_| "the vocabulary is too large".to_string())?;
            lowest = lowest.min(score);
            lengths.push(piece.chars().count());
            // The first of duplicate pieces wins, as in the trie Hugging Face builds.
            pieces.entry(piece).or_insert((id, score));
        }
        let max_piece_chars = lengths.iter().copied().max().unwrap_or(1);
        let mut sorted = lengths;
        sorted.sort_unstable();
        let median_piece_chars = sorted[sorted.len() / 2];
        Ok(Unigram {
            pieces,
            max_piece_chars,
            unknown_score: lowest - UNKNOWN_PENALTY,
            lowercase,
            median_piece_chars,
        })
    }

    /// How many pieces the vocabulary has (ids are below this).
    pub fn len(&self) -> usize {
        self.pieces.len().max(
            self.pieces
                .values()
                .map(|(id, _)| *id as usize + 1)
                .max()
                .unwrap_or(0),
        )
    }

    /// Whether the vocabulary is empty (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The median length of a piece, in characters.
    pub fn median_piece_chars(&self) -> usize {
        self.median_piece_chars
    }

    /// The ids of `text`'s pieces; characters no piece covers are left out (a static model
    /// has no vector for them).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let normalized: String = text
            .nfkc()
            .filter(|c| !c.is_control() || c.is_whitespace())
            .collect();
        let normalized = if self.lowercase {
            normalized.to_lowercase()
        } else {
            normalized
        };
        let mut ids = Vec::new();
        let mut word = String::new();
        for w in normalized.split_whitespace() {
            word.clear();
            word.push(WORD_START);
            word.push_str(w);
            self.viterbi(&word, &mut ids);
        }
        ids
    }

    /// Appends the best segmentation of one word.
    fn viterbi(&self, word: &str, out: &mut Vec<u32>) {
        let bounds: Vec<usize> = word
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(word.len()))
            .collect();
        let n = bounds.len() - 1;
        // best[i]: (score, start of the last piece, its id or None for an unknown char).
        let mut best: Vec<Option<(f64, usize, Option<u32>)>> = vec![None; n + 1];
        best[0] = Some((0.0, 0, None));
        for i in 0..n {
            let Some((here, _, _)) = best[i] else {
                continue;
            };
            let mut single = false;
            for len in 1..=self.max_piece_chars.min(n - i) {
                let piece = &word[bounds[i]..bounds[i + len]];
                if let Some(&(id, score)) = self.pieces.get(piece) {
                    single |= len == 1;
                    let candidate = here + score;
                    if best[i + len].is_none_or(|(s, _, _)| candidate > s) {
                        best[i + len] = Some((candidate, i, Some(id)));
                    }
                }
            }
            if !single {
                let candidate = here + self.unknown_score;
                if best[i + 1].is_none_or(|(s, _, _)| candidate > s) {
                    best[i + 1] = Some((candidate, i, None));
                }
            }
        }
        let mut path = Vec::new();
        let mut at = n;
        while at > 0 {
            let Some((_, start, id)) = best[at] else {
                break;
            };
            // Characters no piece covers have no vector: they are left out, as model2vec
            // drops its unknown token. (`unk_id` is not used to recognise them: some
            // model2vec exports point it at an ordinary piece.)
            if let Some(id) = id {
                path.push(id);
            }
            at = start;
        }
        out.extend(path.into_iter().rev());
    }
}
