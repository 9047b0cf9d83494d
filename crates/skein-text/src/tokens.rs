//! Token counting with OpenAI's o200k tokenizer (GPT-4o and later), for budgets and for
//! billing what a broken stream delivered. Other vendors' tokenizers differ by a few percent;
//! the count is close enough for both uses, and a vendor's own usage, when it reports one, is
//! always preferred.
//!
//! The vocabulary comes from `tiktoken-rs`, but is kept in a compact table of our own: its
//! `CoreBPE` holds the 200,000 tokens three times as separate heap vectors in hash maps, about
//! 40 MiB for the life of the process (issue #22, measured by heap profile), where counting needs
//! only bytes → rank. The table below holds one byte string, its offsets and an index: ~4 MiB,
//! and the same counts (`tests::counts_match_tiktoken`).

use std::sync::OnceLock;

use serde_json::Value;

/// The o200k encoding's ordinary tokens are ranks `0..O200K_RANKS`, without gaps.
const O200K_RANKS: u32 = 199_998;

/// o200k's pre-tokenizer: the text is cut into pieces by this pattern before BPE merging.
const O200K_SPLIT: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);

/// Byte strings and their ranks in three flat arrays: every token's bytes back to back, where
/// each ends, and an open-addressing index from a hash of the bytes to the rank.
struct Vocab {
    bytes: Vec<u8>,
    /// `ends[r]`: where rank `r`'s bytes end in `bytes` (they start where `r - 1`'s end).
    ends: Vec<u32>,
    /// `rank + 1` per slot, 0 when empty; a power of two, at most half full.
    slots: Vec<u32>,
}

impl Vocab {
    /// Builds the table from tokens given in rank order.
    fn new(tokens: impl Iterator<Item = Vec<u8>>) -> Vocab {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for token in tokens {
            bytes.extend_from_slice(&token);
            ends.push(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        }
        bytes.shrink_to_fit();
        let slots = vec![0; (ends.len() * 2).next_power_of_two().max(2)];
        let mut vocab = Vocab { bytes, ends, slots };
        let mask = vocab.slots.len() - 1;
        for rank in 0..vocab.ends.len() {
            let token = vocab.token(rank);
            let mut slot = hash(token) as usize & mask;
            while vocab.slots[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            vocab.slots[slot] = u32::try_from(rank + 1).unwrap_or(u32::MAX);
        }
        vocab
    }

    /// The bytes of `rank`.
    fn token(&self, rank: usize) -> &[u8] {
        let start = if rank == 0 {
            0
        } else {
            self.ends[rank - 1] as usize
        };
        &self.bytes[start..self.ends[rank] as usize]
    }

    /// The rank of `piece`, when it is one token.
    fn rank(&self, piece: &[u8]) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut slot = hash(piece) as usize & mask;
        loop {
            let entry = self.slots[slot];
            if entry == 0 {
                return None;
            }
            if self.token(entry as usize - 1) == piece {
                return Some(entry - 1);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Heap bytes the table holds.
    fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + 4 * (self.ends.capacity() + self.slots.capacity())
    }

    /// Tokens in one pre-tokenized piece: byte-pair merging, lowest rank first (ties to the
    /// left), as tiktoken does; only the number of parts left is kept.
    fn piece_tokens(&self, piece: &[u8]) -> usize {
        if piece.len() < 2 || self.rank(piece).is_some() {
            return usize::from(!piece.is_empty());
        }
        let rank_of = |from: usize, to: usize| self.rank(&piece[from..to]).unwrap_or(u32::MAX);
        // (start, rank of the pair that starts here); two sentinels close the list.
        let mut parts: Vec<(usize, u32)> = (0..piece.len() - 1)
            .map(|i| (i, rank_of(i, i + 2)))
            .collect();
        parts.push((piece.len() - 1, u32::MAX));
        parts.push((piece.len(), u32::MAX));
        loop {
            let mut min = (u32::MAX, 0);
            for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
                if rank < min.0 {
                    min = (rank, i);
                }
            }
            if min.0 == u32::MAX {
                break;
            }
            let i = min.1;
            // Part i absorbs part i + 1: the pairs now starting at i - 1 and at i span to
            // the part after the absorbed one.
            let merged_rank = |parts: &[(usize, u32)], at: usize| {
                if at + 3 < parts.len() {
                    rank_of(parts[at].0, parts[at + 3].0)
                } else {
                    u32::MAX
                }
            };
            if i > 0 {
                parts[i - 1].1 = merged_rank(&parts, i - 1);
            }
            parts[i].1 = merged_rank(&parts, i);
            parts.remove(i + 1);
        }
        parts.len() - 1
    }
}

/// A fast non-cryptographic hash of a short byte string (the index is not exposed to input
/// that could choose collisions: only vocabulary tokens are stored, and a lookup of unknown
/// bytes ends at the first empty slot).
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let mut last = [0u8; 8];
    let rest = chunks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    h = (h.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h ^ (h >> 29)
}

/// The o200k vocabulary and its pre-tokenizer.
struct Tokenizer {
    vocab: Vocab,
    split: fancy_regex::Regex,
}

impl Tokenizer {
    /// Loads o200k from `tiktoken-rs` into the compact table; tiktoken's own `CoreBPE` is dropped
    /// at the end (its ~40 MiB are freed at once, and jemalloc returns them to the system).
    fn load() -> Result<Tokenizer, String> {
        let split = fancy_regex::Regex::new(O200K_SPLIT).map_err(|e| e.to_string())?;
        let bpe = tiktoken_rs::o200k_base().map_err(|e| e.to_string())?;
        // Every rank below O200K_RANKS is an ordinary token (the vocabulary has no gaps).
        let vocab = Vocab::new(
            bpe._decode_native_and_split((0..O200K_RANKS).collect())
                .collect::<Vec<_>>()
                .into_iter(),
        );
        drop(bpe);
        Ok(Tokenizer { vocab, split })
    }

    /// Tokens in `text`, as tiktoken's `encode_ordinary(text).len()`.
    fn count(&self, text: &str) -> usize {
        let mut total = 0;
        let mut done = 0;
        for found in self.split.find_iter(text) {
            match found {
                Ok(piece) => {
                    total += self.vocab.piece_tokens(piece.as_str().as_bytes());
                    done = piece.end();
                }
                // The pattern's backtracking limit: estimate the rest from its bytes.
                Err(_) => {
                    total += (text.len() - done).div_ceil(3);
                    break;
                }
            }
        }
        total
    }
}

/// The tokenizer, loaded at the first count; `None` inside when it could not load.
static ENCODER: OnceLock<Option<Tokenizer>> = OnceLock::new();

fn encoder() -> Option<&'static Tokenizer> {
    ENCODER
        .get_or_init(|| match Tokenizer::load() {
            Ok(tokenizer) => Some(tokenizer),
            Err(error) => {
                tracing::error!(%error, "the o200k tokenizer did not load; estimating tokens from bytes");
                None
            }
        })
        .as_ref()
}

/// Heap bytes the loaded tokenizer's table holds (0 before its first use), for the runtime
/// report.
pub fn tokenizer_heap_bytes() -> usize {
    ENCODER
        .get()
        .and_then(Option::as_ref)
        .map(|t| t.vocab.heap_bytes())
        .unwrap_or(0)
}

/// Tokens in `text` by OpenAI's o200k encoding (GPT-4o and later; close enough for other
/// vendors' models to budget a window).
pub fn count_tokens(text: &str) -> usize {
    if text.is_empty() {
        return 0;
    }
    let Some(bpe) = encoder() else {
        return text.len().div_ceil(3);
    };
    // BPE merging is quadratic in the length of one pre-tokenized piece, and a long run of one
    // character is one piece: count in slices of at most PIECE bytes (cut after whitespace
    // where possible), which over-counts by at most a token per slice.
    let mut total = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(PIECE);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end < rest.len()
            && let Some(space) = rest[..end].rfind(char::is_whitespace)
            && space > PIECE / 2
        {
            end = space + 1;
            while !rest.is_char_boundary(end) {
                end += 1;
            }
        }
        total += bpe.count(&rest[..end]);
        rest = &rest[end..];
    }
    total
}

/// The tokenizer's count of `text` in one piece, for tests that compare the sliced count.
#[doc(hidden)]
pub fn exact_for_tests(text: &str) -> usize {
    encoder().map(|bpe| bpe.count(text)).unwrap_or(0)
}

/// Longest slice of text the tokenizer sees at once, in bytes.
const PIECE: usize = 2048;

/// Tokens of the text a chat request's `messages` carry (string contents and text parts), plus
/// OpenAI's framing of about four tokens per message; an image part counts as `per_image`.
pub fn count_messages(messages: &Value, per_image: usize) -> usize {
    let Some(messages) = messages.as_array() else {
        return 0;
    };
    messages
        .iter()
        .map(|m| {
            let content = match &m["content"] {
                Value::String(text) => count_tokens(text),
                Value::Array(parts) => parts
                    .iter()
                    .map(|p| match p["type"].as_str() {
                        Some("image_url" | "input_audio") => per_image,
                        _ => p["text"].as_str().map(count_tokens).unwrap_or(0),
                    })
                    .sum(),
                _ => 0,
            };
            let calls = m
                .get("tool_calls")
                .map(|t| count_tokens(&t.to_string()))
                .unwrap_or(0);
            4 + content + calls
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// tiktoken's own count, the reference.
    fn reference(text: &str) -> usize {
        static BPE: OnceLock<tiktoken_rs::CoreBPE> = OnceLock::new();
        BPE.get_or_init(|| tiktoken_rs::o200k_base().expect("o200k loads"))
            .encode_ordinary(text)
            .len()
    }

    #[test]
    fn counts_match_tiktoken() {
        let samples = [
            "Hello, world! This is a test of the tokenizer.",
            "知识库的检索增强生成（RAG）把文档切成片段，再按相似度排序。",
            "fn main() {\n    println!(\"{}\", 1 + 2);\n}\n\n\n    \t  trailing   ",
            "I'm sure they'll say it's fine — we've done it, DON'T WORRY'S.",
            "12345678901234567890 3.14159 1e-9 0xDEADBEEF",
            "emoji 👩‍👩‍👧‍👦🎉 and mixed ＡＢＣ全角 and ñandú café naïve",
            "https://example.com/path?q=1&r=2#frag /usr/bin/env\r\n\r\nline",
            "日本語のテキストと한국어 텍스트 and Ελληνικά and русский текст",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "    leading spaces\n\n\n\nmany newlines\u{a0}nbsp\u{3000}ideographic space",
            "",
            " ",
            "\u{0}\u{1}\u{7f}",
        ];
        for text in samples {
            assert_eq!(exact_for_tests(text), reference(text), "{text:?}");
        }
        let long: String = samples.concat().repeat(20);
        assert_eq!(exact_for_tests(&long), reference(&long));
    }

    #[test]
    fn the_table_is_small_and_complete() {
        let tokenizer = encoder().expect("the tokenizer loads");
        assert_eq!(tokenizer.vocab.ends.len(), O200K_RANKS as usize);
        // Every token is found again under its own rank.
        for rank in (0..O200K_RANKS as usize).step_by(97) {
            let token = tokenizer.vocab.token(rank).to_vec();
            assert_eq!(tokenizer.vocab.rank(&token), Some(rank as u32));
        }
        let bytes = tokenizer.vocab.heap_bytes();
        assert!(bytes < 6 << 20, "{bytes} bytes");
        assert!(bytes > 1 << 20, "{bytes} bytes");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn any_text_counts_as_tiktoken_does(text in "\\PC{0,200}") {
            prop_assert_eq!(exact_for_tests(&text), reference(&text));
        }

        #[test]
        fn mixed_scripts_count_as_tiktoken_does(
            text in "([a-zA-Z]{1,8}|[一-龥]{1,6}|[0-9]{1,5}|[ \\t\\n]{1,4}|[.,!?'\"()\\-]{1,3}){0,40}"
        ) {
            prop_assert_eq!(exact_for_tests(&text), reference(&text));
        }
    }
}
