//! The pivot format (OpenAI chat completions), which every adapter speaks to the rest of the
//! relay, and what every vendor's conversions share: the refusals of fields a target cannot
//! express (a clear 400 rather than a silent drop), reasoning efforts ⇄ thinking budgets,
//! `data:` URLs, and the pivot's chunks, usage and server-sent events. Each vendor module
//! converts both ways: a client's request to the pivot and the pivot's answer back (client
//! side), and the pivot request to the vendor's and the vendor's answer to the pivot
//! (upstream side).

use bytes::Bytes;
use serde_json::{Value, json};

/// OpenAI's `reasoning_effort` for a thinking budget in tokens (Anthropic's `budget_tokens`,
/// Gemini's `thinkingBudget`): the pivot speaks in efforts, the vendors in budgets.
pub fn effort_for_budget(budget: i64) -> &'static str {
    match budget {
        ..=0 => "minimal",
        1..4096 => "low",
        4096..16384 => "medium",
        _ => "high",
    }
}

/// The thinking budget in tokens for an OpenAI `reasoning_effort` (0: no thinking).
pub fn budget_for_effort(effort: &str) -> Option<i64> {
    match effort {
        "minimal" | "none" => Some(0),
        "low" => Some(2048),
        "medium" => Some(8192),
        "high" => Some(24576),
        _ => None,
    }
}

/// The media type and base64 payload of a `data:` URL (`data:image/png;base64,AAAA`).
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((if mime.is_empty() { "image/png" } else { mime }, data))
}

/// The text of an OpenAI message content (a string, or its text parts joined), or `None`
/// when a part is not text (the caller decides how to carry or refuse it).
pub fn plain_text(content: &Value) -> Option<String> {
    match content {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p["type"].as_str() {
                Some("text") => p["text"].as_str().map(str::to_string),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|t| t.join("\n")),
        _ => None,
    }
}

/// Seconds since the epoch, for the `created` field of converted answers.
pub fn now_secs() -> i64 {
    skein_core::ids::now_ms() / 1000
}

/// An OpenAI stream chunk with one choice.
pub fn openai_chunk(id: &str, model: &str, created: i64, delta: Value, finish: Value) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

/// The last OpenAI stream chunk: no choices, the usage of the whole request.
pub fn openai_usage_chunk(id: &str, model: &str, created: i64, usage: Value) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [], "usage": usage})
}

/// OpenAI's `usage` object from the counts every vendor reports in some form.
pub fn openai_usage(prompt: i64, completion: i64, cached: i64, reasoning: i64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning}})
}

/// `data: {value}` as one server-sent event (without its blank line).
pub fn data_event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}"))
}

/// The end-of-stream marker of OpenAI streams.
pub fn done_event() -> Bytes {
    Bytes::from_static(b"data: [DONE]")
}

/// The `data:` JSON of an upstream event, if it has one that parses.
pub fn event_json(event: &[u8]) -> Option<Value> {
    let data = crate::proxy::event_data(event)?;
    serde_json::from_str(&data).ok()
}
