//! A mock Anthropic Messages server (`POST /v1/messages`, `GET /v1/models`), faithful to the
//! documented wire format where the relay depends on it: `x-api-key` and `anthropic-version`
//! headers, content blocks, and streams of `event:`/`data:` pairs — `message_start` (with the
//! prompt's usage), `content_block_start` / `content_block_delta` (`text_delta`,
//! `input_json_delta`, `thinking_delta`, `signature_delta`) / `content_block_stop`, `ping`,
//! `message_delta` (stop reason and cumulative output tokens) and `message_stop`.
//!
//! Scriptable per test through the harness ([`crate::mock_vendor`]): failures with status and
//! `Retry-After` (529 overloaded, 429, 5xx, an unpaid account's 400), streams that die half
//! way or carry an `error` event, a slow first byte, pauses between pieces, cached prompt
//! tokens and thinking. Every request is recorded, with its headers.
//!
//! The reply is `echo: <last user text>`, or, when the request offers tools and the last turn
//! is the user's, a call of the first tool with `{"city": <last user text>}`; after a tool
//! result it is `echo: <tool result text>`. Tokens are words: `input_tokens` counts the words
//! of the system prompt and every text and tool-result block, `output_tokens` the words of the
//! reply (thinking included) or of the call's JSON input.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

pub use crate::mock_vendor::Fault;
use crate::mock_vendor::{self, MockVendor, Shared, WireFormat, words};

/// Anthropic's Messages wire format.
#[derive(Debug)]
pub enum Anthropic {}

/// A running mock Anthropic; dropped, it stops.
pub type MockAnthropic = MockVendor<Anthropic>;

impl WireFormat for Anthropic {
    const VENDOR: &'static str = "Anthropic";
    const PIECE_BYTES: usize = 29;
    const ERROR_EVENTS: bool = true;

    fn routes() -> Router<Shared> {
        Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/models", get(models))
    }

    fn status_error(code: u16) -> Response {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = match code {
            429 => "rate_limit_error",
            529 => "overloaded_error",
            401 => "authentication_error",
            403 => "permission_error",
            c if c >= 500 => "api_error",
            _ => "invalid_request_error",
        };
        error(status, kind, "Scripted failure.")
    }

    fn no_credit() -> Response {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
        )
    }
}

/// The text of a content (a string, or its text and tool-result blocks).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| match b["type"].as_str() {
                Some("text") => b["text"].as_str().map(str::to_string),
                Some("tool_result") => Some(content_text(&b["content"])),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Words of the system prompt and every message (the mock's `input_tokens`).
pub fn input_tokens(request: &Value) -> i64 {
    let system = content_text(&request["system"]);
    words(&system)
        + request["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| words(&content_text(&m["content"])))
            .sum::<i64>()
}

/// What the mock answers: text, or a tool call `(id, name, input)`.
enum Reply {
    Text(String),
    Call(String, String, Value),
}

fn reply(request: &Value, canned: Option<String>) -> Reply {
    let last = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    let after_tool = last["content"]
        .as_array()
        .is_some_and(|b| b.iter().any(|b| b["type"] == "tool_result"));
    let text = content_text(&last["content"]);
    match request["tools"].as_array().and_then(|t| t.first()) {
        Some(tool) if !after_tool && last["role"] == "user" => Reply::Call(
            "toolu_mock1".into(),
            tool["name"].as_str().unwrap_or("").to_string(),
            json!({ "city": text }),
        ),
        _ => Reply::Text(canned.unwrap_or_else(|| format!("echo: {text}"))),
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({"type": "error", "error": {"type": kind, "message": message}})),
    )
        .into_response();
    if status.as_u16() == 429 || status.as_u16() == 529 {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
    }
    response
}

async fn models(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if !shared.authorized(&headers, "x-api-key", "") {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        );
    }
    axum::Json(json!({"data": [
        {"type": "model", "id": "claude-mock-1", "display_name": "Claude Mock 1", "created_at": "2025-01-01T00:00:00Z"},
        {"type": "model", "id": "claude-mock-2", "display_name": "Claude Mock 2", "created_at": "2025-01-01T00:00:00Z"}],
        "has_more": false, "first_id": "claude-mock-1", "last_id": "claude-mock-2"}))
    .into_response()
}

fn event(kind: &str, data: Value) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

async fn messages(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid JSON",
        );
    };
    let seen = shared.admit(&headers, request.clone());
    if !shared.authorized(&headers, "x-api-key", "") {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        );
    }
    if headers.get("anthropic-version").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    let cut = match mock_vendor::apply::<Anthropic>(seen.fault).await {
        Ok(cut) => cut,
        Err(refusal) => return refusal,
    };
    let script = seen.script;
    let (pause, cache_read, thinking) =
        (script.stream_pause, script.cached_tokens, script.reasoning);
    if request["max_tokens"].as_i64().is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "max_tokens: Field required",
        );
    }
    if request["messages"].as_array().is_none_or(Vec::is_empty) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "messages: at least one message is required",
        );
    }
    let model = request["model"].as_str().unwrap_or("").to_string();
    let input = input_tokens(&request);
    let answer = reply(&request, script.reply);
    let thought_words = thinking.as_deref().map(words).unwrap_or(0);
    let (output, stop) = match &answer {
        Reply::Text(t) => (words(t) + thought_words, "end_turn"),
        Reply::Call(_, _, input) => (words(&input.to_string()) + thought_words, "tool_use"),
    };
    let usage = json!({"input_tokens": input, "output_tokens": output,
        "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": 0});
    shared.record_usage(usage.clone());
    let mut content = Vec::new();
    if let Some(t) = &thinking {
        content.push(json!({"type": "thinking", "thinking": t, "signature": "sig-mock"}));
    }
    match &answer {
        Reply::Text(t) => content.push(json!({"type": "text", "text": t})),
        Reply::Call(id, name, input) => {
            content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
        }
    }
    if request["stream"].as_bool() != Some(true) {
        return axum::Json(
            json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": null, "usage": usage}),
        )
        .into_response();
    }

    let mut events = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": 1, "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": 0}}}),
    )];
    let mut index = 0;
    if let Some(t) = &thinking {
        events.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ));
        for piece in t.split_inclusive(' ') {
            events.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "thinking_delta", "thinking": piece}}),
            ));
        }
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
            "delta": {"type": "signature_delta", "signature": "sig-mock"}}),
        ));
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    events.push(event("ping", json!({"type": "ping"})));
    let mut cut_short = false;
    match &answer {
        Reply::Text(t) => {
            events.push(event(
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}),
            ));
            let pieces: Vec<&str> = t.split_inclusive(' ').collect();
            for (i, piece) in pieces.iter().enumerate() {
                if cut.stops_at(i) {
                    cut_short = true;
                    break;
                }
                events.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": piece}}),
                ));
            }
        }
        Reply::Call(id, name, input) => {
            events.push(event(
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
            ));
            // The input arrives as partial JSON, cut mid-token as the real API does.
            let json_text = input.to_string();
            let mid = json_text.len() / 2;
            let split = (mid..json_text.len())
                .find(|i| json_text.is_char_boundary(*i))
                .unwrap_or(json_text.len());
            for piece in [&json_text[..split], &json_text[split..]] {
                events.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece}}),
                ));
            }
        }
    }
    if cut.error_after.is_some() && cut_short {
        events.push(event(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ));
    }
    let died = cut.die_after.is_some() && cut_short;
    if !cut_short {
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        events.push(event("message_delta", json!({"type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output}})));
        events.push(event("message_stop", json!({"type": "message_stop"})));
    }
    mock_vendor::event_stream::<Anthropic>(events, pause, died)
}
