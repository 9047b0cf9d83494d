//! The most a chat request can cost, worked out before it is sent, so the hold covers it.
//!
//! The prompt is counted with the o200k tokenizer — message text, tool calls and results,
//! system prompts, the `tools` and `functions` schemas, `response_format`'s schema — and images
//! at the most a vendor bills for one. Each kind of upstream gets a safety factor where its
//! tokenizer counts more than o200k. The output is held for the client's own limit or, when it
//! sets none, for the model's maximum output; either way the limit actually held is written
//! into the upstream request, so the vendor cannot produce more than was paid for.

use std::collections::BTreeMap;

use serde_json::Value;
use skein_text::tokens::count_tokens;

use crate::channels::ChannelKind;
use crate::pricing::Price;

/// Tokens one image may cost at most: Anthropic bills about 1,600 for the largest image it
/// accepts unscaled (1.15 megapixels); OpenAI's high detail is at most 1,445 (85 + 8 tiles of
/// 170 after scaling to 768 × 2048); Gemini 258 per 768-pixel tile, 1,290 for five tiles.
pub const IMAGE_TOKENS: i64 = 1_600;
/// OpenAI's flat price of an image sent with `detail: "low"`.
pub const IMAGE_TOKENS_LOW: i64 = 85;
/// Framing OpenAI adds around each message.
const PER_MESSAGE: i64 = 4;
/// Prompts larger than this (bytes of JSON) are counted on the blocking pool, off the runtime.
pub const BLOCKING_ABOVE: usize = 32 * 1024;
/// The least output a request is held for when the client sets no limit: below this the
/// balance cannot pay for a useful answer and the request is refused.
pub const MIN_OUTPUT: i64 = 256;

/// How much more than o200k a kind of upstream's tokenizer may count, in per-mille. OpenAI's
/// own models use o200k; OpenAI-compatible vendors (DeepSeek, Qwen, GLM, ...) and Gemini
/// differ by up to about a tenth; Claude's tokenizer counts up to about a third more.
pub fn safety_permille(kind: ChannelKind) -> i64 {
    crate::vendor::adapter(kind).tokenizer_safety_permille()
}

/// Prompt tokens of a pivot (OpenAI chat) request, as o200k counts them.
pub fn prompt_tokens(request: &Value) -> i64 {
    let mut total: i64 = 0;
    for message in request["messages"].as_array().into_iter().flatten() {
        total = total
            .saturating_add(PER_MESSAGE)
            .saturating_add(content_tokens(&message["content"]));
        for field in ["tool_calls", "function_call", "audio"] {
            if let Some(value) = message.get(field).filter(|v| !v.is_null()) {
                total = total.saturating_add(json_tokens(value));
            }
        }
        if let Some(name) = message["name"].as_str() {
            total = total.saturating_add(tokens(name));
        }
    }
    // Schemas the vendor puts in front of the prompt.
    for field in ["tools", "functions", "response_format", "prediction"] {
        if let Some(value) = request.get(field).filter(|v| !v.is_null()) {
            total = total.saturating_add(json_tokens(value));
        }
    }
    total
}

/// Tokens of a message's `content`: a string, or an array of text, image and audio parts.
fn content_tokens(content: &Value) -> i64 {
    match content {
        Value::String(text) => tokens(text),
        Value::Array(parts) => parts.iter().fold(0i64, |sum, part| {
            let add = match part["type"].as_str() {
                Some("image_url") if part["image_url"]["detail"] == "low" => IMAGE_TOKENS_LOW,
                // Audio input runs ~10 tokens a second, and a second of even 32 kbit/s MP3
                // is ~5,300 base64 characters: one token per 500 covers any clip (WAV is held
                // several times over, and released at the bill); a short clip holds what an
                // image does.
                Some("input_audio") => {
                    let data = part["input_audio"]["data"].as_str().map_or(0, str::len);
                    IMAGE_TOKENS.max(i64::try_from(data / 500).unwrap_or(i64::MAX))
                }
                Some("image_url" | "image" | "file") => IMAGE_TOKENS,
                _ => match part["text"].as_str() {
                    Some(text) => tokens(text),
                    None => json_tokens(part),
                },
            };
            sum.saturating_add(add)
        }),
        Value::Null => 0,
        other => json_tokens(other),
    }
}

/// Tokens of `text`: a short text is held at its length in bytes (no token is shorter than a
/// byte, so that is an upper bound, and a few tokens too many cost nothing), a longer one as
/// the tokenizer counts it. Most requests are short, and this keeps the tokenizer — and the
/// tens of megabytes of its tables — off their path.
pub fn tokens(text: &str) -> i64 {
    let tokens = if text.len() <= SHORT_TEXT {
        text.len()
    } else {
        count_tokens(text)
    };
    i64::try_from(tokens).unwrap_or(i64::MAX)
}

/// Texts up to this many bytes are held at their length instead of being tokenized.
pub const SHORT_TEXT: usize = 64;

fn json_tokens(value: &Value) -> i64 {
    tokens(&value.to_string())
}

/// `tokens` scaled by a per-mille factor, rounded up.
pub fn scaled(tokens: i64, permille: i64) -> i64 {
    let scaled = (i128::from(tokens.max(0)) * i128::from(permille.max(0)) + 999) / 1000;
    i64::try_from(scaled).unwrap_or(i64::MAX)
}

/// The most output tokens a model writes in one answer, as its vendor documents it; the
/// longest prefix of the model name in the table wins.
const MAX_OUTPUT: &[(&str, i64)] = &[
    ("gpt-3.5", 4_096),
    ("gpt-4", 8_192),
    ("gpt-4-turbo", 4_096),
    ("gpt-4o", 16_384),
    ("chatgpt-4o", 16_384),
    ("gpt-4.1", 32_768),
    ("gpt-5", 128_000),
    ("o1", 100_000),
    ("o1-mini", 65_536),
    ("o3", 100_000),
    ("o4", 100_000),
    ("claude-3-haiku", 4_096),
    ("claude-3-5", 8_192),
    ("claude-3-7", 64_000),
    ("claude-sonnet-4", 64_000),
    ("claude-haiku-4", 64_000),
    ("claude-opus-4", 32_000),
    ("gemini-1.5", 8_192),
    ("gemini-2.0", 8_192),
    ("gemini-2.5", 65_536),
    ("gemini-3", 65_536),
    ("deepseek-chat", 8_192),
    ("deepseek-reasoner", 65_536),
    ("qwen", 8_192),
    ("glm", 16_384),
    ("moonshot", 16_384),
    ("kimi", 16_384),
];

/// The output limits of models: the administrator's table (`relay.max_output_tokens`) over the
/// built-in one, and a default for a model neither knows.
#[derive(Debug, Clone)]
pub struct OutputLimits {
    /// Per model name (exact), set by the administrator.
    pub overrides: BTreeMap<String, i64>,
    /// For a model no table knows.
    pub default: i64,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            overrides: BTreeMap::new(),
            default: 16_384,
        }
    }
}

impl OutputLimits {
    /// The most output `model` writes in one answer.
    pub fn max_output(&self, model: &str) -> i64 {
        if let Some(n) = self.overrides.get(model) {
            return (*n).max(1);
        }
        let lower = model.to_ascii_lowercase();
        // Vendors prefix names in aggregators (`openai/gpt-4o`); the name after the last `/`
        // is the model.
        let name = lower.rsplit('/').next().unwrap_or(&lower);
        MAX_OUTPUT
            .iter()
            .filter(|(prefix, _)| name.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, n)| *n)
            .unwrap_or(self.default)
    }
}

/// What a request is held for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// Prompt tokens, safety factor included.
    pub prompt: i64,
    /// Output tokens per choice.
    pub output: i64,
    /// Choices asked for (`n`).
    pub choices: i64,
    /// The least output per choice the request may start with (equals `output` when the
    /// client set its own limit: a client's limit is held whole or refused).
    pub min_output: i64,
}

impl Hold {
    /// Quota units the whole hold costs.
    pub fn amount(&self, price: &Price) -> i64 {
        self.cost_with(price, self.output)
    }

    /// Quota units of the smallest hold the request may start with.
    pub fn min_amount(&self, price: &Price) -> i64 {
        self.cost_with(price, self.min_output)
    }

    fn cost_with(&self, price: &Price, output: i64) -> i64 {
        price
            .cost_at_most(self.prompt, output.saturating_mul(self.choices))
            .max(1)
    }

    /// The output per choice that `granted` units pay for (at least `min_output`, at most
    /// `output`): the cost is monotonic in the output, so a binary search finds the largest.
    pub fn output_for(&self, price: &Price, granted: i64) -> i64 {
        if self.cost_with(price, self.output) <= granted {
            return self.output;
        }
        let (mut low, mut high) = (self.min_output, self.output);
        while low < high {
            let mid = low + (high - low + 1) / 2;
            if self.cost_with(price, mid) <= granted {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        low
    }
}

/// The hold for a pivot request whose prompt counts `prompt` tokens, on upstreams of `kinds`
/// (the worst safety factor among them applies), for a model that writes at most `max_output`.
pub fn hold(request: &Value, prompt: i64, kinds: &[ChannelKind], max_output: i64) -> Hold {
    let factor = kinds
        .iter()
        .map(|k| safety_permille(*k))
        .max()
        .unwrap_or(1_000);
    let asked = client_limit(request);
    let output = asked.map_or(max_output, |n| n.min(max_output)).max(1);
    let choices = request["n"].as_i64().unwrap_or(1).clamp(1, 128);
    Hold {
        prompt: scaled(prompt, factor),
        output,
        choices,
        min_output: if asked.is_some() {
            output
        } else {
            MIN_OUTPUT.min(output)
        },
    }
}

/// The client's own output limit, if it set one.
pub fn client_limit(request: &Value) -> Option<i64> {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|f| request.get(*f).and_then(Value::as_i64))
        .filter(|n| *n > 0)
}

/// Writes the output limit that was held into a pivot request, in the field the client used;
/// reasoning models (o-series, GPT-5) take only `max_completion_tokens`, others `max_tokens`.
pub fn write_limit(request: &mut Value, model: &str, output: i64) {
    let Some(obj) = request.as_object_mut() else {
        return;
    };
    let field = if obj.contains_key("max_completion_tokens") {
        "max_completion_tokens"
    } else if obj.contains_key("max_tokens") {
        "max_tokens"
    } else {
        let name = model.rsplit('/').next().unwrap_or(model);
        let reasoning = ["o1", "o3", "o4", "gpt-5"]
            .iter()
            .any(|p| name.starts_with(p));
        if reasoning {
            "max_completion_tokens"
        } else {
            "max_tokens"
        }
    };
    obj.insert(field.into(), Value::from(output));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn price() -> Price {
        Price {
            rates: crate::pricing::Rates {
                input_per_mtok: 1_000_000,
                output_per_mtok: 2_000_000,
                cache_read_per_mtok: 0,
                cache_write_per_mtok: 0,
                per_call: 0,
                audio_input_per_mtok: None,
                audio_output_per_mtok: None,
            },
            group: "default".into(),
            multiplier_permille: 1000,
            priced: true,
        }
    }

    #[test]
    fn one_letter_words_count_as_the_tokenizer_counts_them() {
        // "a a a …": bytes / 3 would say 200,000; the tokenizer says one token a word.
        let text = "a ".repeat(30_000);
        let request = json!({"messages": [{"role": "user", "content": text}]});
        let tokens = prompt_tokens(&request);
        assert!((30_000..30_100).contains(&tokens), "{tokens}");
    }

    #[test]
    fn tools_schemas_and_images_are_counted() {
        let bare = json!({"messages": [{"role": "user", "content": "hi"}]});
        let schema = json!({"type": "object", "properties": {"city": {"type": "string", "description": "the city whose weather to look up, by its common English name"}}});
        let with_tools = json!({"messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": schema}}],
            "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}});
        assert!(prompt_tokens(&with_tools) > prompt_tokens(&bare) + 40);
        let image = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/b.png", "detail": "low"}}]}]});
        assert!(prompt_tokens(&image) >= IMAGE_TOKENS + IMAGE_TOKENS_LOW);
    }

    #[test]
    fn output_is_held_for_the_model_maximum_and_multiplied_by_n() {
        let limits = OutputLimits::default();
        assert_eq!(limits.max_output("gpt-4o-mini"), 16_384);
        assert_eq!(limits.max_output("o3-mini"), 100_000);
        assert_eq!(limits.max_output("openai/gpt-4.1"), 32_768);
        assert_eq!(limits.max_output("unknown-model"), 16_384);
        let request = json!({"n": 8, "messages": []});
        let h = hold(&request, 100, &[ChannelKind::OpenAi], 16_384);
        assert_eq!((h.output, h.choices, h.min_output), (16_384, 8, MIN_OUTPUT));
        assert_eq!(h.prompt, 110, "the OpenAI-compatible safety factor");
        let capped = json!({"max_tokens": 50, "messages": []});
        let h = hold(
            &capped,
            100,
            &[ChannelKind::Anthropic, ChannelKind::OpenAi],
            16_384,
        );
        assert_eq!((h.output, h.min_output, h.prompt), (50, 50, 135));
    }

    #[test]
    fn a_partial_grant_pays_for_the_largest_output_it_covers() {
        let h = Hold {
            prompt: 1_000,
            output: 10_000,
            choices: 2,
            min_output: 256,
        };
        let p = price();
        assert_eq!(h.amount(&p), 1_000 + 40_000);
        assert_eq!(h.output_for(&p, h.amount(&p)), 10_000);
        // 21,000 units: 1,000 for the prompt, 20,000 for 2 × 5,000 output tokens.
        assert_eq!(h.output_for(&p, 21_000), 5_000);
        assert_eq!(h.output_for(&p, 20_999), 4_999);
        assert!(p.cost(h.prompt, 2 * h.output_for(&p, 12_345), 0) <= 12_345);
    }

    #[test]
    fn the_held_limit_is_written_in_the_field_the_model_takes() {
        let mut a = json!({"max_tokens": 9000});
        write_limit(&mut a, "gpt-4o", 100);
        assert_eq!(a, json!({"max_tokens": 100}));
        let mut b = json!({});
        write_limit(&mut b, "o3-mini", 100);
        assert_eq!(b, json!({"max_completion_tokens": 100}));
        let mut c = json!({});
        write_limit(&mut c, "deepseek-chat", 100);
        assert_eq!(c, json!({"max_tokens": 100}));
    }
}
