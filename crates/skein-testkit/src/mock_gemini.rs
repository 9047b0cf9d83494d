//! A mock Gemini API server (`POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, `GET /v1beta/models`), faithful to the documented wire
//! format where the relay depends on it: the `x-goog-api-key` header, `contents[].parts`,
//! `functionCall` parts, `finishReason`, `usageMetadata` (running totals in every stream item,
//! thoughts counted apart from candidates, cached tokens inside the prompt count), Google's
//! error body, and streams as server-sent events separated by CRLF.
//!
//! Scriptable per test like [`crate::mock_openai::MockOpenAi`]: failures with status (429
//! `RESOURCE_EXHAUSTED`, 5xx, an invalid key's 400), streams that die half way, a slow first
//! byte, pauses between pieces, usage only at the end, cached tokens and thoughts. Every
//! request is recorded with its headers and path.
//!
//! The reply is `echo: <last user text>`, or, when the request offers functions and the last
//! turn is the user's text, a call of the first function with `{"city": <last user text>}`;
//! after a function response it is `echo: <its result>`. Tokens are words: the prompt counts
//! the words of the system instruction, every text part and every function response's
//! `result`; candidates count the words of the reply, or of the call's JSON args.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

/// What the next request gets instead of a normal answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status with Google's error body for it.
    Status(u16),
    /// Stream this many text items, then drop the connection.
    DieAfter(usize),
    /// Wait this long before answering (a slow first byte).
    Delay(Duration),
}

/// A request as the mock saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query (`/v1beta/models/m:streamGenerateContent?alt=sse`).
    pub path: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    faults: VecDeque<Fault>,
    requests: Vec<Received>,
    usages: Vec<Value>,
    stream_pause: Duration,
    cached: i64,
    thought: Option<String>,
    usage_only_at_end: bool,
    /// The account's key was revoked: every request, the model list included, is refused.
    revoked: bool,
}

/// A running mock; dropped, it stops.
pub struct MockGemini {
    /// `http://127.0.0.1:PORT` (use as a channel's base URL).
    pub base_url: String,
    /// The API key it accepts.
    pub key: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockGemini {
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

impl MockGemini {
    /// Revokes (`true`) or restores the key, as a vendor's console would: while revoked every
    /// request is refused as unauthenticated, the model list included.
    pub fn revoke_key(&self, revoked: bool) {
        self.inner.lock().expect("mock lock").revoked = revoked;
    }

    /// Starts a mock that accepts `key`.
    pub async fn start(key: &str) -> MockGemini {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let shared = Shared {
            key: key.to_string(),
            inner: inner.clone(),
        };
        let app = Router::new()
            .route("/v1beta/models/{model_action}", post(generate))
            .route("/v1beta/models", get(models))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockGemini {
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

    /// Reports this many extra prompt tokens as cached (`cachedContentTokenCount`, which Gemini
    /// includes in `promptTokenCount`).
    pub fn set_cached(&self, tokens: i64) {
        self.lock().cached = tokens;
    }

    /// Thinks `text` (a `thought: true` part, counted in `thoughtsTokenCount`) first.
    pub fn set_thought(&self, text: Option<&str>) {
        self.lock().thought = text.map(str::to_string);
    }

    /// Sends `usageMetadata` only in the last stream item instead of in every one.
    pub fn set_usage_only_at_end(&self, on: bool) {
        self.lock().usage_only_at_end = on;
    }

    /// Queues a fault for the next request (faults apply in order, one per request).
    pub fn fail_next(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// The requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.lock().requests.clone()
    }

    /// The bodies of the requests received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.lock()
            .requests
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }

    /// The final `usageMetadata` of every answer given so far.
    pub fn usages(&self) -> Vec<Value> {
        self.lock().usages.clone()
    }
}

fn words(text: &str) -> i64 {
    text.split_whitespace().count() as i64
}

fn parts_text(parts: &Value) -> String {
    parts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            if let Some(t) = p["text"].as_str() {
                Some(t.to_string())
            } else {
                p.get("functionResponse")
                    .map(|r| match &r["response"]["result"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Words of the system instruction and every content (the mock's uncached prompt tokens).
pub fn prompt_words(request: &Value) -> i64 {
    words(&parts_text(&request["systemInstruction"]["parts"]))
        + request["contents"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| words(&parts_text(&c["parts"])))
            .sum::<i64>()
}

fn google_error(code: u16, status: &str, message: &str) -> Response {
    let http = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut error = json!({"error": {"code": code, "message": message, "status": status}});
    if code == 429 {
        error["error"]["details"] =
            json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]);
    }
    (http, axum::Json(error)).into_response()
}

fn bad_key() -> Response {
    let mut r = google_error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
    );
    if let Ok(body) = serde_json::to_string(
        &json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}),
    ) {
        *r.body_mut() = axum::body::Body::from(body);
    }
    r
}

async fn models(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) != Some(shared.key().as_str()) {
        return bad_key();
    }
    axum::Json(json!({"models": [
        {"name": "models/gemini-mock-flash", "displayName": "Gemini Mock Flash", "supportedGenerationMethods": ["generateContent"]},
        {"name": "models/gemini-mock-pro", "displayName": "Gemini Mock Pro", "supportedGenerationMethods": ["generateContent"]}]}))
    .into_response()
}

async fn generate(
    State(shared): State<Shared>,
    Path(model_action): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let path = match &query {
        Some(q) => format!("/v1beta/models/{model_action}?{q}"),
        None => format!("/v1beta/models/{model_action}"),
    };
    let (fault, pause, cached, thought, usage_only_at_end) = {
        let mut inner = shared.inner.lock().expect("mock lock");
        inner.requests.push(Received {
            path,
            headers: headers.clone(),
            body: request.clone(),
        });
        (
            inner.faults.pop_front(),
            inner.stream_pause,
            inner.cached,
            inner.thought.clone(),
            inner.usage_only_at_end,
        )
    };
    if headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) != Some(shared.key().as_str()) {
        return bad_key();
    }
    let Some((model, action)) = model_action.rsplit_once(':') else {
        return google_error(404, "NOT_FOUND", "Method not found.");
    };
    let stream = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return google_error(404, "NOT_FOUND", "Method not found."),
    };
    let mut die_after = None;
    match fault {
        Some(Fault::Status(code)) => {
            let status = match code {
                429 => "RESOURCE_EXHAUSTED",
                403 => "PERMISSION_DENIED",
                500 => "INTERNAL",
                503 => "UNAVAILABLE",
                504 => "DEADLINE_EXCEEDED",
                _ => "INVALID_ARGUMENT",
            };
            return google_error(code, status, "Scripted failure.");
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::DieAfter(n)) => die_after = Some(n),
        None => {}
    }
    let Some(contents) = request["contents"].as_array().filter(|c| !c.is_empty()) else {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "* GenerateContentRequest.contents: contents is not specified",
        );
    };
    let last = contents.last().cloned().unwrap_or_default();
    let after_function = last["parts"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p.get("functionResponse").is_some()));
    let last_text = parts_text(&last["parts"]);
    let declared = request["tools"][0]["functionDeclarations"][0]["name"]
        .as_str()
        .map(str::to_string);
    let call = match declared {
        Some(name) if !after_function && last["role"] == "user" => {
            Some(json!({"name": name, "args": {"city": last_text}}))
        }
        _ => None,
    };
    let text = format!("echo: {last_text}");
    let prompt = prompt_words(&request) + cached;
    let thoughts = thought.as_deref().map(words).unwrap_or(0);
    let candidates = match &call {
        Some(c) => words(&c["args"].to_string()),
        None => words(&text),
    };
    let meta = |candidates_so_far: i64, thoughts_so_far: i64| {
        let mut m = json!({"promptTokenCount": prompt, "candidatesTokenCount": candidates_so_far,
            "totalTokenCount": prompt + candidates_so_far + thoughts_so_far});
        if thoughts_so_far > 0 {
            m["thoughtsTokenCount"] = json!(thoughts_so_far);
        }
        if cached > 0 {
            m["cachedContentTokenCount"] = json!(cached);
        }
        m
    };
    let final_meta = meta(candidates, thoughts);
    shared
        .inner
        .lock()
        .expect("mock lock")
        .usages
        .push(final_meta.clone());
    let mut parts = Vec::new();
    if let Some(t) = &thought {
        parts.push(json!({"text": t, "thought": true}));
    }
    match &call {
        Some(c) => parts.push(json!({"functionCall": c})),
        None => parts.push(json!({"text": text})),
    }
    if !stream {
        return axum::Json(json!({
            "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": final_meta, "modelVersion": model, "responseId": "mock-response"}))
        .into_response();
    }
    if !query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"))
    {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "This mock streams only with alt=sse.",
        );
    }
    // One item per thought, per word of text, or per call, each with the usage so far.
    let mut items: Vec<(Value, i64, i64)> = Vec::new();
    if let Some(t) = &thought {
        items.push((json!({"text": t, "thought": true}), 0, thoughts));
    }
    match &call {
        Some(c) => items.push((json!({"functionCall": c}), candidates, thoughts)),
        None => {
            let mut so_far = 0;
            for piece in text.split_inclusive(' ') {
                so_far += words(piece);
                items.push((json!({"text": piece}), so_far, thoughts));
            }
        }
    }
    let mut events = Vec::new();
    let count = items.len();
    let mut died = false;
    for (i, (part, c, t)) in items.into_iter().enumerate() {
        if die_after == Some(i) {
            died = true;
            break;
        }
        let last = i + 1 == count;
        let mut candidate = json!({"content": {"parts": [part], "role": "model"}, "index": 0});
        if last {
            candidate["finishReason"] = json!("STOP");
        }
        let mut item = json!({"candidates": [candidate], "modelVersion": model, "responseId": "mock-response"});
        if last || !usage_only_at_end {
            item["usageMetadata"] = meta(c, t);
        }
        events.push(format!("data: {item}\r\n\r\n"));
    }
    crate::mock_anthropic::stream_response(events, pause, died)
}
