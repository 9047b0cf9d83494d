//! Whole Anthropic messages ⇄ pivot chat completions, their stop reasons and their usage
//! (cache reads and writes included).

use serde_json::{Value, json};

use crate::vendor::pivot;

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`.
pub fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

pub(super) fn usage(value: &Value) -> Value {
    let prompt = value["prompt_tokens"].as_i64().unwrap_or(0);
    let details = &value["prompt_tokens_details"];
    let cached = details["cached_tokens"].as_i64().unwrap_or(0);
    let written = details[crate::proxy::CACHE_WRITE].as_i64().unwrap_or(0)
        + details[crate::proxy::CACHE_WRITE_1H].as_i64().unwrap_or(0);
    json!({"input_tokens": prompt - cached - written, "output_tokens": value["completion_tokens"].as_i64().unwrap_or(0),
        "cache_read_input_tokens": cached, "cache_creation_input_tokens": written})
}

pub(super) fn message_id(openai_id: &str) -> String {
    format!("msg_{}", openai_id.trim_start_matches("chatcmpl-"))
}

/// A whole OpenAI response as an Anthropic message.
pub fn response_from_openai(resp: &Value, model: &str) -> Value {
    let choice = &resp["choices"][0];
    let mut content = Vec::new();
    if let Some(thinking) = choice["message"]["reasoning_content"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "thinking", "thinking": thinking, "signature": ""}));
    }
    if let Some(text) = choice["message"]["content"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in choice["message"]["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let input: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("{}"))
                .unwrap_or(json!({}));
        content.push(json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": input}));
    }
    json!({
        "id": message_id(resp["id"].as_str().unwrap_or("")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": usage(&resp["usage"]),
    })
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic's usage as OpenAI's: Anthropic counts cache reads and writes apart from
/// `input_tokens`; OpenAI's `prompt_tokens` includes them (and bills reads as cached).
pub fn usage_to_openai(usage: &Value) -> Value {
    let int = |k: &str| usage[k].as_i64().unwrap_or(0);
    let cached = int("cache_read_input_tokens");
    let written = int("cache_creation_input_tokens");
    // The split by lifetime, when Anthropic gives it; otherwise every write is a 5-minute one.
    let written_1h = usage["cache_creation"]["ephemeral_1h_input_tokens"]
        .as_i64()
        .unwrap_or(0)
        .clamp(0, written.max(0));
    let prompt = int("input_tokens") + cached + written;
    let mut out = pivot::openai_usage(prompt, int("output_tokens"), cached, 0);
    if written > 0 {
        out["prompt_tokens_details"][crate::proxy::CACHE_WRITE] = json!(written - written_1h);
        out["prompt_tokens_details"][crate::proxy::CACHE_WRITE_1H] = json!(written_1h);
    }
    out
}

pub(super) fn chat_id(message_id: &str) -> String {
    format!("chatcmpl-{}", message_id.trim_start_matches("msg_"))
}

/// A whole Anthropic message as an OpenAI chat completion.
pub fn response_to_openai(resp: &Value) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in resp["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or("")),
            Some("thinking") => reasoning.push_str(block["thinking"].as_str().unwrap_or("")),
            Some("tool_use") => calls.push(json!({"id": block["id"], "type": "function",
                "function": {"name": block["name"], "arguments": block["input"].to_string()}})),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": chat_id(resp["id"].as_str().unwrap_or("")),
        "object": "chat.completion",
        "created": pivot::now_secs(),
        "model": resp["model"],
        "choices": [{"index": 0, "message": message, "logprobs": null,
            "finish_reason": finish_reason(resp["stop_reason"].as_str().unwrap_or("end_turn"))}],
        "usage": usage_to_openai(&resp["usage"]),
    })
}
