//! Whole Gemini `GenerateContentResponse`s ⇄ pivot chat completions, their finish reasons
//! and their usage.

use serde_json::{Value, json};

use crate::vendor::pivot;

/// OpenAI's `finish_reason` as Gemini's `finishReason`.
pub fn finish_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        _ => "STOP",
    }
}

pub(super) fn usage_metadata(usage: &Value) -> Value {
    let prompt = usage["prompt_tokens"].as_i64().unwrap_or(0);
    let completion = usage["completion_tokens"].as_i64().unwrap_or(0);
    // OpenAI counts reasoning inside completion tokens; Gemini reports thoughts apart.
    let thoughts = usage["completion_tokens_details"]["reasoning_tokens"]
        .as_i64()
        .unwrap_or(0)
        .clamp(0, completion.max(0));
    let mut meta = json!({"promptTokenCount": prompt, "candidatesTokenCount": completion - thoughts, "totalTokenCount": prompt + completion});
    if thoughts > 0 {
        meta["thoughtsTokenCount"] = json!(thoughts);
    }
    if let Some(cached) = usage["prompt_tokens_details"]["cached_tokens"]
        .as_i64()
        .filter(|c| *c > 0)
    {
        meta["cachedContentTokenCount"] = json!(cached);
    }
    meta
}

fn parts_of(message: &Value, text_field: &str) -> Vec<Value> {
    let mut parts = Vec::new();
    // Reasoning becomes a thought part, as Gemini marks its own.
    if let Some(thought) = message["reasoning_content"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        parts.push(json!({"text": thought, "thought": true}));
    }
    if let Some(text) = message[text_field].as_str().filter(|t| !t.is_empty()) {
        parts.push(json!({"text": text}));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("{}"))
                .unwrap_or(json!({}));
        parts.push(json!({"functionCall": {"name": call["function"]["name"], "args": args}}));
    }
    parts
}

/// A whole OpenAI response as a Gemini `GenerateContentResponse`.
pub fn response_from_openai(resp: &Value, model: &str) -> Value {
    let choice = &resp["choices"][0];
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts_of(&choice["message"], "content")},
            "finishReason": finish_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
            "index": 0,
        }],
        "usageMetadata": usage_metadata(&resp["usage"]),
        "modelVersion": model,
    })
}

/// Gemini's `finishReason` as OpenAI's `finish_reason` (`tool_calls` when the answer calls
/// functions: Gemini says `STOP` then).
pub fn finish_to_openai(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// Gemini's `usageMetadata` as OpenAI's usage: `promptTokenCount` already includes cached
/// tokens; thoughts are counted apart from candidates, and OpenAI counts them as completion.
pub fn usage_to_openai(meta: &Value) -> Value {
    let int = |k: &str| meta[k].as_i64().unwrap_or(0);
    let thoughts = int("thoughtsTokenCount");
    let mut usage = pivot::openai_usage(
        int("promptTokenCount") + int("toolUsePromptTokenCount"),
        int("candidatesTokenCount") + thoughts,
        int("cachedContentTokenCount"),
        thoughts,
    );
    // Gemini prices audio input apart from text: its per-modality counts say how much of
    // the prompt was audio, and go where OpenAI puts that count.
    let audio = |field: &str| -> i64 {
        meta[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["modality"] == "AUDIO")
            .filter_map(|d| d["tokenCount"].as_i64())
            .sum()
    };
    let (audio_in, audio_out) = (
        audio("promptTokensDetails"),
        audio("candidatesTokensDetails"),
    );
    if audio_in > 0 {
        usage["prompt_tokens_details"]["audio_tokens"] = audio_in.into();
    }
    if audio_out > 0 {
        usage["completion_tokens_details"]["audio_tokens"] = audio_out.into();
    }
    usage
}

/// A prefix for the ids of one answer's function calls: Gemini gives calls no ids (or only
/// sometimes), OpenAI and Anthropic clients need ids unique across the conversation.
pub(super) fn call_prefix() -> String {
    let id = skein_core::ids::new_id().replace('-', "");
    format!("call_{}", &id[id.len().saturating_sub(12)..])
}

/// Splits a candidate's parts into text, thoughts and calls (numbered from `first_call`, ids
/// made from `prefix` when Gemini gave none).
pub(super) fn split_parts(
    parts: &Value,
    first_call: usize,
    prefix: &str,
) -> (String, String, Vec<Value>) {
    let mut text = String::new();
    let mut thoughts = String::new();
    let mut calls = Vec::new();
    for part in parts.as_array().into_iter().flatten() {
        if let Some(t) = part["text"].as_str() {
            if part["thought"].as_bool() == Some(true) {
                thoughts.push_str(t);
            } else {
                text.push_str(t);
            }
        } else if let Some(call) = part.get("functionCall") {
            let n = first_call + calls.len();
            let id = call["id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{prefix}_{n}"));
            calls.push(
                json!({"index": n, "id": id, "type": "function", "function": {"name": call["name"],
                "arguments": call.get("args").cloned().unwrap_or(json!({})).to_string()}}),
            );
        }
    }
    (text, thoughts, calls)
}

/// A whole Gemini `GenerateContentResponse` as an OpenAI chat completion.
pub fn response_to_openai(resp: &Value, model: &str) -> Value {
    let candidate = &resp["candidates"][0];
    let (text, thoughts, mut calls) =
        split_parts(&candidate["content"]["parts"], 0, &call_prefix());
    let finish = match candidate["finishReason"].as_str() {
        Some(r) => finish_to_openai(r, !calls.is_empty()),
        // No candidate at all: the prompt itself was blocked.
        None if resp["promptFeedback"]["blockReason"].is_string() => "content_filter",
        None => finish_to_openai("STOP", !calls.is_empty()),
    };
    for call in &mut calls {
        if let Some(o) = call.as_object_mut() {
            o.remove("index");
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !thoughts.is_empty() {
        message["reasoning_content"] = json!(thoughts);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": format!("chatcmpl-{}", resp["responseId"].as_str().unwrap_or("gemini")),
        "object": "chat.completion",
        "created": pivot::now_secs(),
        "model": resp["modelVersion"].as_str().unwrap_or(model),
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage_to_openai(&resp["usageMetadata"]),
    })
}
