//! A mock Anthropic Messages server (`POST /v1/messages`, `GET /v1/models`), faithful to the
//! documented wire format where the relay depends on it: `x-api-key` and `anthropic-version`
//! headers, content blocks, and streams of `event:`/`data:` pairs — `message_start` (with the
//! prompt's usage), `content_block_start` / `content_block_delta` (`text_delta`,
//! `input_json_delta`, `thinking_delta`, `signature_delta`) / `content_block_stop`, `ping`,
//! `message_delta` (stop reason and cumulative output tokens) and `message_stop`.
//!
//! Scriptable per test like [`crate::mock_openai::MockOpenAi`]: failures with status and
//! `Retry-After` (529 overloaded, 429, 5xx, an unpaid account's 400), streams that die half
//! way or carry an `error` event, a slow first byte, pauses between pieces, cached prompt
//! tokens and thinking. Every request is recorded, with its headers.
//!
//! The reply is `echo: <last user text>`, or, when the request offers tools and the last turn
//! is the user's, a call of the first tool with `{"city": <last user text>}`; after a tool
//! result it is `echo: <tool result text>`. Tokens are words: `input_tokens` counts the words
//! of the system prompt and every text and tool-result block, `output_tokens` the words of the
//! reply (thinking included) or of the call's JSON input.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

/// What the next request gets instead of a normal answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status with Anthropic's error body for it (`Retry-After: 1` on 429 and 529).
    Status(u16),
    /// Answer 400 "Your credit balance is too low" (an unpaid account).
    NoCredit,
    /// Stream this many text deltas, then drop the connection (no `message_delta`).
    DieAfter(usize),
    /// Stream this many text deltas, then an `error` event (`overloaded_error`).
    ErrorEventAfter(usize),
    /// Wait this long before answering (a slow first byte).
    Delay(Duration),
}

#[derive(Default)]
struct Inner {
    faults: VecDeque<Fault>,
    requests: Vec<(HeaderMap, Value)>,
    usages: Vec<Value>,
    stream_pause: Duration,
    cache_read: i64,
    thinking: Option<String>,
    /// The account's key was revoked: every request, the model list included, is refused.
    revoked: bool,
}

/// A running mock; dropped, it stops.
pub struct MockAnthropic {
    /// `http://127.0.0.1:PORT` (use as a channel's base URL).
    pub base_url: String,
    /// The API key it accepts.
    pub key: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockAnthropic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    key: String,
    inner: Arc<Mutex<Inner>>,
}

impl Shared {
    /// The key requests must carry: none matches once it was revoked.
    fn key(&self) -> String {
        if self.inner.lock().expect("mock lock").revoked {
            "revoked\u{1}".to_string()
        } else {
            self.key.clone()
        }
    }
}

impl MockAnthropic {
    /// Revokes (`true`) or restores the key, as a vendor's console would: while revoked every
    /// request is refused as unauthenticated, the model list included.
    pub fn revoke_key(&self, revoked: bool) {
        self.inner.lock().expect("mock lock").revoked = revoked;
    }

    /// Starts a mock that accepts `key`.
    pub async fn start(key: &str) -> MockAnthropic {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let shared = Shared {
            key: key.to_string(),
            inner: inner.clone(),
        };
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/models", get(models))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockAnthropic {
            base_url,
            key: key.to_string(),
            inner,
            task,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("mock lock")
    }

    /// Pauses this long between the pieces of every stream from now on.
    pub fn set_stream_pause(&self, pause: Duration) {
        self.lock().stream_pause = pause;
    }

    /// Reports this many extra prompt tokens as read from the cache
    /// (`cache_read_input_tokens`, which Anthropic counts apart from `input_tokens`).
    pub fn set_cache_read(&self, tokens: i64) {
        self.lock().cache_read = tokens;
    }

    /// Thinks `text` (a thinking block, signed) before answering.
    pub fn set_thinking(&self, text: Option<&str>) {
        self.lock().thinking = text.map(str::to_string);
    }

    /// Queues a fault for the next request (faults apply in order, one per request).
    pub fn fail_next(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// The bodies of the requests received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.lock()
            .requests
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// One header of every request received so far (empty when absent).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.lock()
            .requests
            .iter()
            .map(|(h, _)| {
                h.get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    /// The final `usage` of every answer given so far (what a bill should come from).
    pub fn usages(&self) -> Vec<Value> {
        self.lock().usages.clone()
    }
}

fn words(text: &str) -> i64 {
    text.split_whitespace().count() as i64
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

fn reply(request: &Value) -> Reply {
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
        _ => Reply::Text(format!("echo: {text}")),
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
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(shared.key().as_str()) {
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
    let (fault, pause, cache_read, thinking) = {
        let mut inner = shared.inner.lock().expect("mock lock");
        inner.requests.push((headers.clone(), request.clone()));
        (
            inner.faults.pop_front(),
            inner.stream_pause,
            inner.cache_read,
            inner.thinking.clone(),
        )
    };
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(shared.key().as_str()) {
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
    let mut die_after = None;
    let mut error_after = None;
    match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let kind = match code {
                429 => "rate_limit_error",
                529 => "overloaded_error",
                401 => "authentication_error",
                403 => "permission_error",
                c if c >= 500 => "api_error",
                _ => "invalid_request_error",
            };
            return error(status, kind, "Scripted failure.");
        }
        Some(Fault::NoCredit) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
            );
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::DieAfter(n)) => die_after = Some(n),
        Some(Fault::ErrorEventAfter(n)) => error_after = Some(n),
        None => {}
    }
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
    let answer = reply(&request);
    let thought_words = thinking.as_deref().map(words).unwrap_or(0);
    let (output, stop) = match &answer {
        Reply::Text(t) => (words(t) + thought_words, "end_turn"),
        Reply::Call(_, _, input) => (words(&input.to_string()) + thought_words, "tool_use"),
    };
    let usage = json!({"input_tokens": input, "output_tokens": output,
        "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": 0});
    shared
        .inner
        .lock()
        .expect("mock lock")
        .usages
        .push(usage.clone());
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
    let mut cut = false;
    match &answer {
        Reply::Text(t) => {
            events.push(event(
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}),
            ));
            let pieces: Vec<&str> = t.split_inclusive(' ').collect();
            for (i, piece) in pieces.iter().enumerate() {
                if die_after == Some(i) || error_after == Some(i) {
                    cut = true;
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
    if error_after.is_some() && cut {
        events.push(event(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ));
    }
    let died = die_after.is_some() && cut;
    if !cut {
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        events.push(event("message_delta", json!({"type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output}})));
        events.push(event("message_stop", json!({"type": "message_stop"})));
    }
    stream_response(events, pause, died)
}

/// A streamed body cut into 29-byte pieces (ignoring event boundaries, as networks do), ending
/// in a broken connection when `died`.
pub(crate) fn stream_response(events: Vec<String>, pause: Duration, died: bool) -> Response {
    let all: Vec<u8> = events.concat().into_bytes();
    let pieces: Vec<Result<Bytes, std::io::Error>> = all
        .chunks(29)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures::StreamExt::then(futures::stream::iter(pieces), move |piece| async move {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        piece
    });
    let body = if died {
        let broken = futures::StreamExt::chain(
            stream,
            futures::stream::once(async { Err(std::io::Error::other("mock died")) }),
        );
        Body::from_stream(broken)
    } else {
        Body::from_stream(stream)
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
