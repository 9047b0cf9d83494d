//! A mock Gemini API server (`POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, `GET /v1beta/models`), faithful to the documented wire
//! format where the relay depends on it: the `x-goog-api-key` header, `contents[].parts`,
//! `functionCall` parts, `finishReason`, `usageMetadata` (running totals in every stream item,
//! thoughts counted apart from candidates, cached tokens inside the prompt count), Google's
//! error body, and streams as server-sent events separated by CRLF.
//!
//! Scriptable per test through the harness ([`crate::mock_vendor`]): failures with status
//! (429 `RESOURCE_EXHAUSTED`, 5xx, an invalid key's 400), streams that die half way, a slow
//! first byte, pauses between pieces, usage only at the end, cached tokens and thoughts.
//! Every request is recorded with its headers and path. Gemini streams have no error event,
//! so [`Fault::ErrorEventAfter`] cannot be scripted.
//!
//! The reply is `echo: <last user text>`, or, when the request offers functions and the last
//! turn is the user's text, a call of the first function with `{"city": <last user text>}`;
//! after a function response it is `echo: <its result>`. Tokens are words: the prompt counts
//! the words of the system instruction, every text part and every function response's
//! `result`; candidates count the words of the reply, or of the call's JSON args.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::mock_vendor::{self, MockVendor, Shared, WireFormat, words};
pub use crate::mock_vendor::{Fault, Received};

/// The Gemini API's wire format.
#[derive(Debug)]
pub enum Gemini {}

/// A running mock Gemini; dropped, it stops.
pub type MockGemini = MockVendor<Gemini>;

impl WireFormat for Gemini {
    const VENDOR: &'static str = "Gemini";
    const PIECE_BYTES: usize = 29;
    const ERROR_EVENTS: bool = false;

    fn routes() -> Router<Shared> {
        Router::new()
            .route("/v1beta/models/{model_action}", post(generate))
            .route("/v1beta/models", get(models))
    }

    fn status_error(code: u16) -> Response {
        let status = match code {
            429 => "RESOURCE_EXHAUSTED",
            403 => "PERMISSION_DENIED",
            500 => "INTERNAL",
            503 => "UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            _ => "INVALID_ARGUMENT",
        };
        google_error(code, status, "Scripted failure.")
    }

    fn no_credit() -> Response {
        // Gemini's answer when a project's quota or prepaid credit is used up.
        google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
        )
    }
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
    if !shared.authorized(&headers, "x-goog-api-key", "") {
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
    let seen = shared.admit(&headers, request.clone());
    if !shared.authorized(&headers, "x-goog-api-key", "") {
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
    let cut = match mock_vendor::apply::<Gemini>(seen.fault).await {
        Ok(cut) => cut,
        Err(refusal) => return refusal,
    };
    let script = seen.script;
    let (pause, cached, thought, usage_only_at_end) = (
        script.stream_pause,
        script.cached_tokens,
        script.reasoning,
        script.usage_only_at_end,
    );
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
    let text = script.reply.unwrap_or_else(|| format!("echo: {last_text}"));
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
    shared.record_usage(final_meta.clone());
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
        if cut.die_after == Some(i) {
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
    mock_vendor::event_stream::<Gemini>(events, pause, died)
}
