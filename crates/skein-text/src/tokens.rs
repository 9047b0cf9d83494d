//! Token counting with OpenAI's o200k tokenizer (GPT-4o and later), for budgets and for
//! billing what a broken stream delivered. Other vendors' tokenizers differ by a few percent;
//! the count is close enough for both uses, and a vendor's own usage, when it reports one, is
//! always preferred.

use std::sync::OnceLock;

use serde_json::Value;

fn encoder() -> Option<&'static tiktoken_rs::CoreBPE> {
    static ENCODER: OnceLock<Option<tiktoken_rs::CoreBPE>> = OnceLock::new();
    ENCODER
        .get_or_init(|| match tiktoken_rs::o200k_base() {
            Ok(bpe) => Some(bpe),
            Err(error) => {
                tracing::error!(%error, "the o200k tokenizer did not load; estimating tokens from bytes");
                None
            }
        })
        .as_ref()
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
        total += bpe.encode_ordinary(&rest[..end]).len();
        rest = &rest[end..];
    }
    total
}

/// The tokenizer's count of `text` in one piece, for tests that compare the sliced count.
#[doc(hidden)]
pub fn exact_for_tests(text: &str) -> usize {
    encoder()
        .map(|bpe| bpe.encode_ordinary(text).len())
        .unwrap_or(0)
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
