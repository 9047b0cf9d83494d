//! A mock OpenAI server (chat completions here; embeddings, completions, images, audio and
//! rerank in [`endpoints`]), faithful to the documented wire format where the
//! relay depends on it, and scriptable per test: failures with status and `Retry-After`,
//! streams that die half way, events cut at odd byte boundaries, and a record of every
//! request it received.
//!
//! The reply to a message is `echo: <last user message>`. Token counts are words (split on
//! whitespace): `prompt_tokens` counts the words of all message contents, `completion_tokens`
//! the words of the reply, so tests can compute exact costs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};

pub mod endpoints;

/// What the next request gets instead of a normal answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status with an OpenAI error body (and `Retry-After` for 429).
    Status(u16),
    /// Stream this many content chunks, then drop the connection (no usage, no `[DONE]`).
    DieAfter(usize),
    /// Wait this long before answering.
    Delay(Duration),
}

#[derive(Default)]
struct Inner {
    faults: VecDeque<Fault>,
    requests: Vec<(HeaderMap, Value)>,
    /// The usage of every answer given (what a bill should come from).
    usages: Vec<Value>,
    /// Pause between the pieces of every stream (to hold many streams open at once).
    stream_pause: Duration,
    /// Whether to keep request bodies (a load test would grow without bound).
    record: bool,
    /// Answer reranks Cohere-style, without token usage.
    rerank_without_usage: bool,
    /// Write past `max_tokens`, as a misbehaving upstream would.
    ignore_max_tokens: bool,
    /// Report this many times the prompt tokens (a tokenizer that counts more than Skein's).
    prompt_scale: i64,
    /// Answer this text instead of the echo.
    reply: Option<String>,
    /// The account's key was revoked: every request, the model list included, is refused.
    revoked: bool,
}

/// A running mock; dropped, it stops.
pub struct MockOpenAi {
    /// `http://127.0.0.1:PORT` (use as a channel's base URL).
    pub base_url: String,
    /// The API key it accepts.
    pub key: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockOpenAi {
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

impl MockOpenAi {
    /// Revokes (`true`) or restores the key, as a vendor's console would: while revoked every
    /// request is refused as unauthenticated, the model list included.
    pub fn revoke_key(&self, revoked: bool) {
        self.inner.lock().expect("mock lock").revoked = revoked;
    }

    /// Starts a mock that accepts `key`.
    pub async fn start(key: &str) -> MockOpenAi {
        let inner = Arc::new(Mutex::new(Inner {
            record: true,
            ..Inner::default()
        }));
        let shared = Shared {
            key: key.to_string(),
            inner: inner.clone(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/models", axum::routing::get(models))
            .route("/openai/models", axum::routing::get(models))
            .route("/v1/embeddings", post(endpoints::embeddings))
            .route("/v1/completions", post(endpoints::completions))
            .route("/v1/images/generations", post(endpoints::image_generations))
            .route("/v1/audio/speech", post(endpoints::speech))
            .route("/v1/audio/transcriptions", post(endpoints::transcriptions))
            .route("/v1/audio/translations", post(endpoints::translations))
            .route("/v1/rerank", post(endpoints::rerank))
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(azure),
            )
            // OpenAI takes audio files up to 25 MB.
            .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockOpenAi {
            base_url,
            key: key.to_string(),
            inner,
            task,
        }
    }

    /// Ignores `max_tokens` from now on (`true`), writing the whole reply as a misbehaving
    /// upstream would; by default the reply stops there with `finish_reason: "length"`.
    pub fn set_ignore_max_tokens(&self, on: bool) {
        self.inner.lock().expect("mock lock").ignore_max_tokens = on;
    }

    /// Answers `text` (one word a chunk when streamed) instead of echoing the prompt, from now
    /// on: a long answer to a short question.
    pub fn set_reply(&self, text: &str) {
        self.inner.lock().expect("mock lock").reply = Some(text.to_string());
    }

    /// Reports `scale` times the prompt tokens from now on (1 is the default).
    pub fn set_prompt_scale(&self, scale: i64) {
        self.inner.lock().expect("mock lock").prompt_scale = scale.max(1);
    }

    /// Pauses this long between the pieces of every stream from now on.
    pub fn set_stream_pause(&self, pause: Duration) {
        self.inner.lock().expect("mock lock").stream_pause = pause;
    }

    /// Stops keeping request bodies (for load tests).
    pub fn stop_recording(&self) {
        let mut inner = self.inner.lock().expect("mock lock");
        inner.record = false;
        inner.requests.clear();
    }

    /// Answers reranks without token usage (Cohere's shape) when `false`; with it (Jina's
    /// shape) when `true`, the default.
    pub fn set_rerank_usage(&self, on: bool) {
        self.inner.lock().expect("mock lock").rerank_without_usage = !on;
    }

    /// Queues a fault for the next request (faults apply in order, one per request).
    pub fn fail_next(&self, fault: Fault) {
        self.inner
            .lock()
            .expect("mock lock")
            .faults
            .push_back(fault);
    }

    /// The bodies of the requests received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.inner
            .lock()
            .expect("mock lock")
            .requests
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// The usage of every answer given so far.
    pub fn usages(&self) -> Vec<Value> {
        self.inner.lock().expect("mock lock").usages.clone()
    }

    /// One header of every request received so far (empty when absent). Azure-style requests
    /// carry `x-mock-path`: the path and query they arrived on.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.inner
            .lock()
            .expect("mock lock")
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

    /// The `Authorization` headers received so far.
    pub fn authorizations(&self) -> Vec<String> {
        self.inner
            .lock()
            .expect("mock lock")
            .requests
            .iter()
            .map(|(h, _)| {
                h.get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }
}

/// OpenAI's `GET /v1/models` (and Azure's `/openai/models`, keyed by `api-key`).
async fn models(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let key = shared.key();
    let bearer = format!("Bearer {key}");
    let presented = [
        ("authorization", bearer.as_str()),
        ("api-key", key.as_str()),
    ];
    if !presented
        .iter()
        .any(|(name, want)| headers.get(*name).and_then(|v| v.to_str().ok()) == Some(*want))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
        );
    }
    axum::Json(json!({"object": "list", "data": [
        {"id": "gpt-mock", "object": "model", "created": 1_700_000_000, "owned_by": "system"}]}))
    .into_response()
}

/// The text of a message's content: a string, or the text parts of a content array.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Words in the contents of all messages (the mock's "tokens").
pub fn prompt_tokens(messages: &Value) -> i64 {
    messages
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| content_text(&m["content"]).split_whitespace().count() as i64)
        .sum()
}

/// The mock's reply to a request.
pub fn reply_to(messages: &Value) -> String {
    let last = messages
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default();
    format!("echo: {last}")
}

fn error(status: StatusCode, message: &str, kind: &str) -> Response {
    let mut response = (
        status,
        axum::Json(
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        ),
    )
        .into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
    }
    response
}

async fn chat(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
        );
    };
    let (fault, pause, ignore_max_tokens, prompt_scale, canned) = {
        let mut inner = shared.inner.lock().expect("mock lock");
        if inner.record {
            inner.requests.push((headers.clone(), request.clone()));
        }
        (
            inner.faults.pop_front(),
            inner.stream_pause,
            inner.ignore_max_tokens,
            inner.prompt_scale.max(1),
            inner.reply.clone(),
        )
    };
    let expected = format!("Bearer {}", shared.key());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
        );
    }
    let mut die_after = None;
    match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let kind = if code == 429 {
                "rate_limit_error"
            } else if code >= 500 {
                "server_error"
            } else {
                "invalid_request_error"
            };
            return error(status, "Scripted failure.", kind);
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::DieAfter(n)) => die_after = Some(n),
        None => {}
    }
    if request["messages"].as_array().is_none_or(Vec::is_empty) {
        return error(
            StatusCode::BAD_REQUEST,
            "'messages' must contain at least one message.",
            "invalid_request_error",
        );
    }
    if let Some(call) = tool_call(&shared, &request) {
        return call;
    }
    let model = request["model"].as_str().unwrap_or("").to_string();
    let mut reply = canned.unwrap_or_else(|| reply_to(&request["messages"]));
    let prompt = prompt_tokens(&request["messages"]) * prompt_scale;
    // Like OpenAI, stop at the client's limit with finish_reason "length".
    let limit = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|f| request[*f].as_u64())
        .map(|n| n as usize);
    let mut finish = "stop";
    if let Some(limit) = limit
        && !ignore_max_tokens
        && reply.split_whitespace().count() > limit
    {
        reply = reply.split_inclusive(' ').take(limit).collect::<String>();
        finish = "length";
    }
    let completion = reply.split_whitespace().count() as i64;
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}});
    shared
        .inner
        .lock()
        .expect("mock lock")
        .usages
        .push(usage.clone());
    if request["stream"].as_bool() != Some(true) {
        return axum::Json(json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_764_000_000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "logprobs": null, "finish_reason": finish}],
            "usage": usage,
        }))
        .into_response();
    }
    let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
    let chunk = |delta: Value, finish: Value, usage_field: Value| {
        let mut c = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_764_000_000, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if include_usage {
            c["usage"] = usage_field;
        }
        format!("data: {c}\n\n")
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
        Value::Null,
    )];
    let words: Vec<String> = reply.split_inclusive(' ').map(str::to_string).collect();
    for (i, word) in words.iter().enumerate() {
        if die_after == Some(i) {
            break;
        }
        events.push(chunk(json!({"content": word}), Value::Null, Value::Null));
    }
    let died = die_after.is_some_and(|n| n < words.len());
    if !died {
        events.push(chunk(json!({}), json!(finish), Value::Null));
        if include_usage {
            let last = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_764_000_000, "model": model,
                "choices": [], "usage": usage});
            events.push(format!("data: {last}\n\n"));
        }
        events.push("data: [DONE]\n\n".to_string());
    }
    // Cut the stream into pieces that ignore event boundaries, as real networks do.
    let all: Vec<u8> = events.concat().into_bytes();
    let pieces: Vec<Result<Bytes, std::io::Error>> = all
        .chunks(37)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures::StreamExt::then(futures::stream::iter(pieces), move |piece| async move {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        piece
    });
    let body = if died {
        // End the body with an error so the connection breaks instead of closing cleanly.
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

/// Azure OpenAI's route: the deployment in the path, `api-version` in the query, the key in an
/// `api-key` header; answered like `/v1/chat/completions`, with the path recorded as the
/// `x-mock-path` header.
async fn azure(
    State(shared): State<Shared>,
    axum::extract::Path(deployment): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    if !query.split('&').any(|p| p.starts_with("api-version=")) {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"code": "404", "message": "Resource not found"}})),
        )
            .into_response();
    }
    if headers.get("api-key").and_then(|v| v.to_str().ok()) != Some(shared.key().as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}})),
        )
            .into_response();
    }
    let path = format!("/openai/deployments/{deployment}/chat/completions?{query}");
    if let Ok(value) = axum::http::HeaderValue::from_str(&path) {
        headers.insert("x-mock-path", value);
    }
    if let Ok(value) = axum::http::HeaderValue::from_str(&format!("Bearer {}", shared.key())) {
        headers.insert("authorization", value);
    }
    chat(State(shared), headers, body).await
}

/// When the request offers tools and the last message is the user's, the answer calls the
/// first tool with `{"city": <last user text>}`; streamed, its arguments come in two pieces.
/// Completion tokens are the words of the arguments' JSON.
fn tool_call(shared: &Shared, request: &Value) -> Option<Response> {
    let tool = request["tools"].as_array()?.first()?;
    let messages = request["messages"].as_array()?;
    let last = messages.last()?;
    if last["role"] != "user" {
        return None;
    }
    let name = tool["function"]["name"].as_str().unwrap_or("");
    let arguments = json!({"city": content_text(&last["content"])}).to_string();
    let prompt = prompt_tokens(&request["messages"]);
    let completion = arguments.split_whitespace().count() as i64;
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}});
    shared
        .inner
        .lock()
        .expect("mock lock")
        .usages
        .push(usage.clone());
    let model = request["model"].as_str().unwrap_or("");
    let call = json!({"id": "call_mock1", "type": "function", "function": {"name": name, "arguments": arguments}});
    if request["stream"].as_bool() != Some(true) {
        return Some(axum::Json(json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_764_000_000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [call]}, "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": usage,
        })).into_response());
    }
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_764_000_000, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let split = arguments.len() / 2;
    let split = (split..arguments.len())
        .find(|i| arguments.is_char_boundary(*i))
        .unwrap_or(arguments.len());
    let mut events = vec![
        chunk(json!({"role": "assistant", "content": null}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_mock1", "type": "function", "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": &arguments[..split]}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": &arguments[split..]}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
    ];
    if request["stream_options"]["include_usage"].as_bool() == Some(true) {
        events.push(json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_764_000_000, "model": model,
            "choices": [], "usage": usage}));
    }
    let mut text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    Some(
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(text))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    )
}
