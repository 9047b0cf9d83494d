//! Snapshot tests of the format conversions (`skein_relay::vendor`): OpenAI (the pivot) ↔
//! Anthropic Messages ↔ Gemini generateContent ↔ OpenAI Responses, for requests, whole
//! responses and stream events; and what each OpenAI-compatible vendor profile, Ollama and
//! DashScope's native API make of the pivot. Each snapshot in `crates/skein-relay/snapshots/` documents what one conversion
//! makes of a representative input: text, multi-turn, system prompts, images, tool
//! definitions, tool calls and results, reasoning, usage with cache tokens, and refusals.
//!
//! A change in a conversion shows as a snapshot diff: review it with `cargo insta review` (or
//! rerun with `INSTA_UPDATE=always` and read the `.snap` diff) before committing it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::{Value, json};
use skein_core::ApiResult;
use skein_core::i18n::Lang;
use skein_relay::vendor::openai::responses;
use skein_relay::vendor::{Upstream, anthropic, compat, dashscope, gemini, ollama};

/// A 1×1 PNG in base64.
const PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAACklEQVR4nGMAAQAABQABDQottAAAAABJRU5ErkJggg==";

/// Snapshots live in the crate's `snapshots/` directory.
fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings
}

macro_rules! snap {
    ($name:expr, $value:expr) => {
        settings().bind(|| insta::assert_json_snapshot!($name, scrub($value)))
    };
}

macro_rules! snap_text {
    ($name:expr, $value:expr) => {
        settings().bind(|| insta::assert_snapshot!($name, $value))
    };
}

/// What changes from run to run: `created` (the clock), the random part of the ids made
/// for Gemini's function calls (`call_<12 hex>_<n>`) and the clock in the ids made for Ollama's
/// answers.
fn scrub(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if k == "created" && v.is_i64() {
                        json!("[created]")
                    } else {
                        scrub(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(scrub).collect()),
        Value::String(s) => Value::String(scrub_call_id(&s)),
        other => other,
    }
}

fn scrub_call_id(s: &str) -> String {
    // Ollama's answers have no id: the relay makes one from the clock.
    if let Some(secs) = s.strip_prefix("chatcmpl-ollama-")
        && secs.bytes().all(|b| b.is_ascii_digit())
    {
        return "chatcmpl-ollama-[created]".to_string();
    }
    if let Some(rest) = s.strip_prefix("call_")
        && let Some((random, n)) = rest.split_once('_')
        && random.len() == 12
        && random.bytes().all(|b| b.is_ascii_hexdigit())
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return format!("call_[random]_{n}");
    }
    s.to_string()
}

/// A conversion's answer: the value, or the refusal as the client would read it.
fn outcome(result: ApiResult<Value>) -> Value {
    match result {
        Ok(value) => value,
        Err(e) => json!({"refused": {"status": e.status().as_u16(), "code": e.code(),
            "message": e.message(Lang::En), "details": e.details()}}),
    }
}

/// A weather tool in OpenAI's shape.
fn openai_tools() -> Value {
    json!([{"type": "function", "function": {"name": "weather", "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

/// A pivot request with everything that converts: system, multi-turn, an image, tools, a
/// tool call and its result, a reasoning effort, stop sequences and sampling.
fn pivot_request() -> Value {
    json!({
        "model": "m", "max_tokens": 10_000, "temperature": 0.5, "top_p": 0.9, "stop": ["END"],
        "reasoning_effort": "medium", "tools": openai_tools(), "tool_choice": "auto",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture, and the weather in Paris?"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}]},
            {"role": "assistant", "content": "A dot. Checking the weather.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
            {"role": "user", "content": "Thanks. And tomorrow?"}
        ]
    })
}

/// A pivot answer with text, reasoning, a tool call and usage with cached tokens.
fn pivot_response() -> Value {
    json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1_764_000_000, "model": "up-model",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
            "role": "assistant", "content": "Let me check.", "reasoning_content": "The user wants weather.",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 100}, "completion_tokens_details": {"reasoning_tokens": 12}}
    })
}

/// A pivot stream: role, reasoning, text, a tool call whose arguments come in pieces, the
/// finish, and the usage chunk.
fn pivot_chunks() -> Vec<Value> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1_764_000_000, "model": "up-model",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"reasoning_content": "Weather "}), Value::Null),
        chunk(json!({"reasoning_content": "wanted."}), Value::Null),
        chunk(json!({"content": "Let me "}), Value::Null),
        chunk(json!({"content": "check."}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_9", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1_764_000_000, "model": "up-model",
            "choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 100}, "completion_tokens_details": {"reasoning_tokens": 12}}}),
    ]
}

// ---------------------------------------------------------------------------------------
// Anthropic clients (their request to the pivot, the pivot's answer back).

#[test]
fn anthropic_client_request_text_and_system() {
    snap!(
        "anthropic_client_request_text_and_system",
        outcome(anthropic::request_to_openai(&json!({
            "model": "m", "max_tokens": 100, "system": "Be brief.", "stream": true,
            "stop_sequences": ["END"], "temperature": 0.3, "metadata": {"user_id": "u-1"},
            "messages": [{"role": "user", "content": "Hello"}]
        })))
    );
}

#[test]
fn anthropic_client_request_multi_turn_image_tools_thinking() {
    snap!(
        "anthropic_client_request_multi_turn_image_tools_thinking",
        outcome(anthropic::request_to_openai(&json!({
            "model": "m", "max_tokens": 2048,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [{"name": "weather", "description": "Weather now",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "tool_choice": {"type": "tool", "name": "weather"},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this, and the weather in Paris?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Need the tool.", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                    {"type": "text", "text": "Thanks."}]}
            ]
        })))
    );
}

#[test]
fn anthropic_client_request_refusals() {
    let refusals: Vec<Value> = [
        // No max_tokens.
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        // A field only an Anthropic upstream understands.
        json!({"model": "m", "max_tokens": 10, "container": "c", "messages": [{"role": "user", "content": "hi"}]}),
        // top_k has no pivot field.
        json!({"model": "m", "max_tokens": 10, "top_k": 5, "messages": [{"role": "user", "content": "hi"}]}),
        // A document block.
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}]}),
    ]
    .iter()
    .map(|r| outcome(anthropic::request_to_openai(r)))
    .collect();
    snap!("anthropic_client_request_refusals", json!(refusals));
}

#[test]
fn anthropic_client_response() {
    snap!(
        "anthropic_client_response",
        anthropic::response_from_openai(&pivot_response(), "m")
    );
}

#[test]
fn anthropic_client_stream() {
    let mut converter = anthropic::StreamConverter::new("m");
    let mut out = String::new();
    for chunk in pivot_chunks() {
        out.push_str(&converter.chunk(&chunk));
    }
    out.push_str(&converter.finish());
    snap_text!("anthropic_client_stream", out);
}

#[test]
fn anthropic_client_stream_error() {
    snap_text!(
        "anthropic_client_stream_error",
        anthropic::StreamConverter::error("the upstream stream broke off")
    );
}

// ---------------------------------------------------------------------------------------
// Anthropic upstreams (the pivot's request to them, their answer to the pivot).

#[test]
fn anthropic_upstream_request() {
    snap!(
        "anthropic_upstream_request",
        outcome(anthropic::request_from_openai(&pivot_request()))
    );
}

#[test]
fn anthropic_upstream_request_refusals() {
    let refusals: Vec<Value> = [
        // n > 1 has no Anthropic field.
        json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
        // Thinking must fit below max_tokens (medium is 8,192 tokens).
        json!({"model": "m", "max_tokens": 256, "reasoning_effort": "medium", "messages": [{"role": "user", "content": "hi"}]}),
        // Audio input has no Anthropic block.
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]}),
        // A strict function schema.
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {}, "strict": true}}]}),
    ]
    .iter()
    .map(|r| outcome(anthropic::request_from_openai(r)))
    .collect();
    snap!("anthropic_upstream_request_refusals", json!(refusals));
}

#[test]
fn anthropic_upstream_response() {
    snap!(
        "anthropic_upstream_response",
        anthropic::response_to_openai(&json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-up",
            "content": [
                {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 20, "output_tokens": 30, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 8}
        }))
    );
}

#[test]
fn anthropic_upstream_usage() {
    snap!(
        "anthropic_upstream_usage",
        json!([
            anthropic::usage_to_openai(&json!({"input_tokens": 20, "output_tokens": 30})),
            anthropic::usage_to_openai(&json!({"input_tokens": 20, "output_tokens": 30,
                "cache_read_input_tokens": 100, "cache_creation_input_tokens": 8,
                "cache_creation": {"ephemeral_5m_input_tokens": 5, "ephemeral_1h_input_tokens": 3}})),
        ])
    );
}

#[test]
fn anthropic_upstream_stream() {
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-up",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 20, "output_tokens": 1, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Weather wanted."}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "ping"}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Let me check."}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 30}}),
        json!({"type": "message_stop"}),
    ];
    let mut stream = anthropic::UpstreamStream::default();
    let out: Vec<Value> = events
        .iter()
        .flat_map(|e| stream.event(e).expect("a good event"))
        .map(|c| c.unwrap_or(json!("[DONE]")))
        .collect();
    snap!("anthropic_upstream_stream", json!(out));
}

#[test]
fn anthropic_upstream_stream_error() {
    let mut stream = anthropic::UpstreamStream::default();
    let error = stream.event(
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    snap!(
        "anthropic_upstream_stream_error",
        json!({"error": error.err()})
    );
}

// ---------------------------------------------------------------------------------------
// Gemini clients.

#[test]
fn gemini_client_request_text_and_system() {
    snap!(
        "gemini_client_request_text_and_system",
        outcome(gemini::request_to_openai(
            &json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
                "generationConfig": {"maxOutputTokens": 100, "temperature": 0.3, "topP": 0.9, "stopSequences": ["END"]}
            }),
            "m",
            true
        ))
    );
}

#[test]
fn gemini_client_request_multi_turn_image_tools_thinking() {
    snap!(
        "gemini_client_request_multi_turn_image_tools_thinking",
        outcome(gemini::request_to_openai(
            &json!({
                "contents": [
                    {"role": "user", "parts": [
                        {"text": "What is this, and the weather in Paris?"},
                        {"inlineData": {"mimeType": "image/png", "data": PNG}}]},
                    {"role": "model", "parts": [
                        {"text": "Checking."},
                        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "weather", "response": {"result": "sunny"}}}]}
                ],
                "tools": [{"functionDeclarations": [{"name": "weather", "description": "Weather now",
                    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
                "generationConfig": {"thinkingConfig": {"thinkingBudget": 8192}}
            }),
            "m",
            false
        ))
    );
}

#[test]
fn gemini_client_request_refusals() {
    let refusals: Vec<Value> = [
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"candidateCount": 2}}),
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "cachedContent": "cachedContents/1"}),
        json!({"contents": []}),
    ]
    .iter()
    .map(|r| outcome(gemini::request_to_openai(r, "m", false)))
    .collect();
    snap!("gemini_client_request_refusals", json!(refusals));
}

#[test]
fn gemini_client_response() {
    snap!(
        "gemini_client_response",
        gemini::response_from_openai(&pivot_response(), "m")
    );
}

#[test]
fn gemini_client_stream() {
    let mut pending = Vec::new();
    let out: Vec<Value> = pivot_chunks()
        .iter()
        .filter_map(|c| gemini::chunk_from_openai(c, "m", &mut pending))
        .collect();
    snap!("gemini_client_stream", json!(out));
}

// ---------------------------------------------------------------------------------------
// Gemini upstreams.

#[test]
fn gemini_upstream_request() {
    snap!(
        "gemini_upstream_request",
        outcome(gemini::request_from_openai(&pivot_request()))
    );
}

#[test]
fn gemini_upstream_request_refusals() {
    let refusals: Vec<Value> = [
        json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
    ]
    .iter()
    .map(|r| outcome(gemini::request_from_openai(r)))
    .collect();
    snap!("gemini_upstream_request_refusals", json!(refusals));
}

#[test]
fn gemini_upstream_response() {
    snap!(
        "gemini_upstream_response",
        gemini::response_to_openai(
            &json!({
                "candidates": [{"content": {"role": "model", "parts": [
                    {"text": "The user wants weather.", "thought": true},
                    {"text": "Let me check."},
                    {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
                    "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 18, "thoughtsTokenCount": 12,
                    "cachedContentTokenCount": 100, "totalTokenCount": 150},
                "modelVersion": "gemini-up", "responseId": "resp-1"
            }),
            "m"
        )
    );
}

#[test]
fn gemini_upstream_blocked_prompt() {
    snap!(
        "gemini_upstream_blocked_prompt",
        gemini::response_to_openai(
            &json!({"promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}),
            "m"
        )
    );
}

#[test]
fn gemini_upstream_stream() {
    let items = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Weather wanted.", "thought": true}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 0, "thoughtsTokenCount": 12, "cachedContentTokenCount": 100, "totalTokenCount": 132},
            "modelVersion": "gemini-up", "responseId": "resp-1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me check."}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 3, "thoughtsTokenCount": 12, "cachedContentTokenCount": 100, "totalTokenCount": 135},
            "modelVersion": "gemini-up", "responseId": "resp-1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 18, "thoughtsTokenCount": 12, "cachedContentTokenCount": 100, "totalTokenCount": 150},
            "modelVersion": "gemini-up", "responseId": "resp-1"}),
    ];
    let mut stream = gemini::UpstreamStream::new("m");
    let mut out: Vec<Value> = items
        .iter()
        .flat_map(|i| stream.item(i).expect("a good item"))
        .collect();
    out.extend(stream.finish());
    snap!("gemini_upstream_stream", json!(out));
}

#[test]
fn gemini_upstream_stream_error() {
    let mut stream = gemini::UpstreamStream::new("m");
    let error = stream.item(&json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}));
    snap!(
        "gemini_upstream_stream_error",
        json!({"error": error.err()})
    );
}

#[test]
fn gemini_upstream_usage() {
    snap!(
        "gemini_upstream_usage",
        json!([
            gemini::usage_to_openai(
                &json!({"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15})
            ),
            gemini::usage_to_openai(
                &json!({"promptTokenCount": 120, "candidatesTokenCount": 18, "thoughtsTokenCount": 12,
                "cachedContentTokenCount": 100, "toolUsePromptTokenCount": 4, "totalTokenCount": 154})
            ),
        ])
    );
}

// ---------------------------------------------------------------------------------------
// OpenAI Responses clients (their request to the pivot, the pivot's answer back).

/// The Responses ids made per answer (`resp_`, `rs_`, `msg_`, `fc_` and 32 hex digits) and
/// `created_at`, numbered by first appearance so a stream's events still show which item
/// each one belongs to.
fn scrub_responses(value: Value) -> Value {
    fn walk(value: Value, seen: &mut Vec<String>) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| {
                        let v = if k == "created_at" && v.is_i64() {
                            json!("[created_at]")
                        } else {
                            walk(v, seen)
                        };
                        (k, v)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| walk(v, seen)).collect()),
            Value::String(s) => {
                let made = s.split_once('_').is_some_and(|(prefix, rest)| {
                    ["resp", "rs", "msg", "fc"].contains(&prefix)
                        && rest.len() == 32
                        && rest.bytes().all(|b| b.is_ascii_hexdigit())
                });
                if !made {
                    return Value::String(s);
                }
                let n = seen.iter().position(|x| *x == s).unwrap_or_else(|| {
                    seen.push(s.clone());
                    seen.len() - 1
                });
                let prefix = s.split_once('_').map_or("", |(p, _)| p);
                Value::String(format!("{prefix}_[{n}]"))
            }
            other => other,
        }
    }
    walk(value, &mut Vec::new())
}

/// A Responses request with instructions, an image, a function tool, an earlier call and its
/// output, and a reasoning effort.
fn responses_request() -> Value {
    json!({
        "model": "m", "instructions": "Be brief.", "max_output_tokens": 10_000, "temperature": 0.5,
        "reasoning": {"effort": "medium"}, "tool_choice": "auto",
        "tools": [{"type": "function", "name": "weather", "description": "Weather now",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "What is in this picture, and the weather in Paris?"},
                {"type": "input_image", "image_url": format!("data:image/png;base64,{PNG}")}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A dot. Checking the weather."}]},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 C"},
            {"role": "user", "content": "Thanks. And tomorrow?"}
        ]
    })
}

#[test]
fn responses_client_request() {
    snap!(
        "responses_client_request",
        outcome(responses::request_to_openai(&responses_request()))
    );
}

#[test]
fn responses_client_request_refusals() {
    let with = |field: &str, value: Value| {
        let mut r = json!({"model": "m", "input": "Hi"});
        r[field] = value;
        r
    };
    let refusals: Vec<Value> = [
        with("conversation", json!("conv_1")),
        with("tools", json!([{"type": "web_search"}])),
        with("input", json!([{"type": "item_reference", "id": "msg_1"}])),
        with("input", json!([])),
        with("modalities", json!(["audio"])),
    ]
    .iter()
    .map(|r| outcome(responses::request_to_openai(r)))
    .collect();
    snap!("responses_client_request_refusals", json!(refusals));
}

#[test]
fn responses_client_response() {
    settings().bind(|| {
        insta::assert_json_snapshot!(
            "responses_client_response",
            scrub_responses(responses::response_from_openai(
                &pivot_response(),
                &responses_request(),
                "m"
            ))
        )
    });
}

#[test]
fn responses_client_stream() {
    let mut converter = responses::StreamConverter::new(&responses_request(), "m");
    let mut sse: String = pivot_chunks().iter().map(|c| converter.chunk(c)).collect();
    sse.push_str(&converter.finish());
    // Each event as `{"event": name, "data": {...}}`, in order.
    let events: Vec<Value> = sse
        .split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let mut event = Value::Null;
            let mut data = Value::Null;
            for line in frame.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = json!(name);
                } else if let Some(json) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(json).expect("JSON data");
                }
            }
            json!({"event": event, "data": data})
        })
        .collect();
    settings().bind(|| {
        insta::assert_json_snapshot!("responses_client_stream", scrub_responses(json!(events)))
    });
}

// ---------------------------------------------------------------------------------------
// OpenAI-compatible vendors: what each profile sends for the same pivot request.

#[test]
fn compat_upstream_requests() {
    // The pivot request as a client sends it back mid tool loop: earlier reasoning on the
    // assistant turn, so each profile's history rule shows.
    let mut pivot = pivot_request();
    pivot["messages"][2]["reasoning_content"] = json!("The user wants the weather.");
    let bodies: serde_json::Map<String, Value> = compat::profiles::ALL
        .iter()
        .map(|profile| (profile.vendor.to_string(), outcome(profile.body(&pivot))))
        .collect();
    snap!("compat_upstream_requests", Value::Object(bodies));
}

#[test]
fn compat_upstream_tool_choice_refusals() {
    let mut pivot = pivot_request();
    pivot["tool_choice"] = json!({"type": "function", "function": {"name": "weather"}});
    let answers: serde_json::Map<String, Value> = compat::profiles::ALL
        .iter()
        .map(|profile| {
            let body = outcome(profile.body(&pivot));
            // Only what became of the choice: the rest is in `compat_upstream_requests`.
            let choice = body.get("refused").cloned().unwrap_or_else(|| {
                json!({"tool_choice": body["tool_choice"], "tools": body.get("tools").is_some()})
            });
            (profile.vendor.to_string(), choice)
        })
        .collect();
    snap!("compat_upstream_tool_choice", Value::Object(answers));
}

#[test]
fn compat_upstream_response_reasoning_details() {
    // MiniMax reports reasoning as `reasoning_details`; the pivot carries it as
    // `reasoning_content`.
    snap!(
        "compat_upstream_response_reasoning_details",
        compat::profiles::MINIMAX.response(
            json!({"id": "c1", "object": "chat.completion", "created": 1_764_000_000, "model": "MiniMax-M2",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Sunny.",
                    "reasoning_details": [{"type": "reasoning.text", "id": "r1", "format": "MiniMax-response-v1", "index": 0, "text": "Look it up."}]}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}),
            "m"
        )
    );
}

// ---------------------------------------------------------------------------------------
// Ollama and DashScope's native API.

#[test]
fn ollama_upstream_request() {
    snap!(
        "ollama_upstream_request",
        outcome(ollama::request_body(&pivot_request()))
    );
}

#[test]
fn ollama_upstream_response() {
    snap!(
        "ollama_upstream_response",
        ollama::Ollama.response(
            json!({"model": "qwen3", "created_at": "2026-11-01T00:00:00Z", "done": true, "done_reason": "stop",
                "message": {"role": "assistant", "content": "Let me check.", "thinking": "The user wants weather.",
                    "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}]},
                "prompt_eval_count": 120, "eval_count": 30}),
            "m"
        )
    );
}

#[test]
fn dashscope_native_upstream_request() {
    // Text and tools go native; an image part is refused by name (the native text API takes
    // none).
    let mut text_only = pivot_request();
    text_only["messages"][1]["content"] = json!("What is the weather in Paris?");
    snap!(
        "dashscope_native_upstream_request",
        json!([
            outcome(dashscope::request_body(&text_only)),
            outcome(dashscope::request_body(&pivot_request()))
        ])
    );
}

#[test]
fn dashscope_native_upstream_response() {
    snap!(
        "dashscope_native_upstream_response",
        dashscope::DashScopeNative.response(
            json!({"request_id": "req-1", "output": {"choices": [{"finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": "Let me check.", "reasoning_content": "The user wants weather.",
                    "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}]},
                "usage": {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150,
                    "prompt_tokens_details": {"cached_tokens": 100}}}),
            "m"
        )
    );
}
