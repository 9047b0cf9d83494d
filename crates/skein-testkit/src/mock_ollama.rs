//! A mock Ollama server, faithful to its native API (docs/api.md of ollama/ollama) where the
//! relay depends on it: `POST /api/chat` answered whole or as newline-delimited JSON
//! (`application/x-ndjson`, one object a line, cut at odd byte boundaries here), `thinking`
//! beside `content` when the request sets `think`, tool calls whole with their arguments as
//! an object, the counts `prompt_eval_count` / `eval_count` on the last (`done: true`) line,
//! `GET /api/tags` for the models pulled, and errors as `{"error": "..."}`. Ollama takes no
//! key; the mock records what came.
//!
//! The reply is `echo: <last user message>`; tokens are words.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::mock_openai::{content_text, prompt_tokens, reply_to};
use crate::mock_vendor::{self, MockVendor, Shared, WireFormat, streamed_body, words};

/// Ollama's native wire format.
#[derive(Debug)]
pub enum Ollama {}

/// A running mock Ollama; dropped, it stops.
pub type MockOllama = MockVendor<Ollama>;

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(json!({ "error": message }))).into_response()
}

impl WireFormat for Ollama {
    const VENDOR: &'static str = "Ollama";
    const PIECE_BYTES: usize = 23;
    const ERROR_EVENTS: bool = false;

    fn routes() -> Router<Shared> {
        Router::new()
            .route("/api/chat", post(chat))
            .route("/api/tags", get(tags))
            .route("/api/pull", post(pull))
    }

    fn status_error(code: u16) -> Response {
        error(code, "Scripted failure.")
    }

    fn no_credit() -> Response {
        // A local server has no account; a proxy in front of one refuses as unauthorised.
        error(401, "unauthorized")
    }
}

async fn tags(State(_shared): State<Shared>) -> Response {
    axum::Json(json!({"models": [
        {"name": "qwen3:8b", "model": "qwen3:8b", "modified_at": "2025-10-01T00:00:00Z", "size": 5_225_000_000_i64,
            "digest": "mock", "details": {"format": "gguf", "family": "qwen3", "parameter_size": "8.2B", "quantization_level": "Q4_K_M"}},
        {"name": "llama3.2:latest", "model": "llama3.2:latest", "modified_at": "2025-10-01T00:00:00Z", "size": 2_019_000_000_i64,
            "digest": "mock", "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}}]}))
    .into_response()
}

/// `POST /api/pull` with `stream: false`: recorded, answered `{"status": "success"}`, or 404
/// for a model the library lacks (named `missing...`).
async fn pull(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let _ = shared.admit(&headers, request.clone());
    let model = request["model"].as_str().unwrap_or("");
    if model.starts_with("missing") {
        return error(404, "pull model manifest: file does not exist");
    }
    axum::Json(json!({"status": "success"})).into_response()
}

fn line(model: &str, message: Value, done: bool) -> Value {
    json!({"model": model, "created_at": "2025-12-04T20:00:00Z", "message": message, "done": done})
}

async fn chat(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalid character in request body");
    };
    let seen = shared.admit(&headers, request.clone());
    let cut = match mock_vendor::apply::<Ollama>(seen.fault).await {
        Ok(cut) => cut,
        Err(refusal) => return refusal,
    };
    let script = seen.script;
    let model = request["model"].as_str().unwrap_or("").to_string();
    // Ollama streams unless told not to.
    let stream = request["stream"].as_bool() != Some(false);
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let prompt = prompt_tokens(&request["messages"]);
    let done = |completion: i64, reason: &str| {
        json!({"model": model, "created_at": "2025-12-04T20:00:00Z", "message": {"role": "assistant", "content": ""},
            "done": true, "done_reason": reason, "total_duration": 1_000_000, "load_duration": 1_000,
            "prompt_eval_count": prompt, "prompt_eval_duration": 1_000, "eval_count": completion, "eval_duration": 1_000})
    };
    let mut lines: Vec<Value> = Vec::new();
    if let Some(tool) = request["tools"].as_array().and_then(|t| t.first())
        && messages.last().is_some_and(|m| m["role"] == "user")
    {
        let question = content_text(&messages[messages.len() - 1]["content"]);
        let arguments = json!({ "city": question });
        let completion = words(&arguments.to_string());
        shared.record_usage(json!({"prompt_eval_count": prompt, "eval_count": completion}));
        let call = json!({"function": {"name": tool["function"]["name"], "arguments": arguments}});
        let message = json!({"role": "assistant", "content": "", "tool_calls": [call]});
        if !stream {
            let mut whole = done(completion, "stop");
            whole["message"] = message;
            return axum::Json(whole).into_response();
        }
        lines.push(line(&model, message, false));
        lines.push(done(completion, "stop"));
        return ndjson(lines, &script, false);
    }
    let reply = script
        .reply
        .clone()
        .unwrap_or_else(|| reply_to(&request["messages"]));
    let thinking = script
        .reasoning
        .clone()
        .filter(|_| request["think"].as_bool() != Some(false));
    let completion = words(&reply) + thinking.as_deref().map(words).unwrap_or(0);
    shared.record_usage(json!({"prompt_eval_count": prompt, "eval_count": completion}));
    if !stream {
        let mut whole = done(completion, "stop");
        whole["message"] = json!({"role": "assistant", "content": reply});
        if let Some(thinking) = thinking {
            whole["message"]["thinking"] = json!(thinking);
        }
        return axum::Json(whole).into_response();
    }
    if let Some(thinking) = &thinking {
        for piece in thinking.split_inclusive(' ') {
            lines.push(line(
                &model,
                json!({"role": "assistant", "content": "", "thinking": piece}),
                false,
            ));
        }
    }
    let mut cut_short = false;
    for (i, word) in reply.split_inclusive(' ').enumerate() {
        if cut.stops_at(i) {
            cut_short = true;
            break;
        }
        lines.push(line(
            &model,
            json!({"role": "assistant", "content": word}),
            false,
        ));
    }
    if !cut_short {
        lines.push(done(completion, "stop"));
    }
    ndjson(lines, &script, cut_short)
}

/// An NDJSON answer of `lines`, cut into odd pieces, breaking off when `died`.
fn ndjson(lines: Vec<Value>, script: &mock_vendor::Script, died: bool) -> Response {
    let all: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let pieces = all
        .as_bytes()
        .chunks(Ollama::PIECE_BYTES)
        .map(Bytes::copy_from_slice)
        .collect();
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(streamed_body(pieces, script.stream_pause, died))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
