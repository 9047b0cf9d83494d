//! A mock OpenAI server (chat completions here; embeddings, completions, images, audio and
//! rerank in [`endpoints`]; Realtime sessions in `realtime`), faithful to the documented wire format where the relay depends
//! on it. The harness ([`crate::mock_vendor`]) makes it scriptable per test: failures with
//! status and `Retry-After`, streams that die half way or end in an error chunk, events cut at
//! odd byte boundaries, and a record of every request it received.
//!
//! The reply to a message is `echo: <last user message>`. Token counts are words (split on
//! whitespace): `prompt_tokens` counts the words of all message contents, `completion_tokens`
//! the words of the reply, so tests can compute exact costs.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

pub use crate::mock_vendor::Fault;
use crate::mock_vendor::{self, MockVendor, Script, Shared, WireFormat, words};

pub mod endpoints;
mod realtime;

/// OpenAI's wire format (and Azure OpenAI's deployment route).
#[derive(Debug)]
pub enum OpenAi {}

/// A running mock OpenAI; dropped, it stops.
pub type MockOpenAi = MockVendor<OpenAi>;

impl WireFormat for OpenAi {
    const VENDOR: &'static str = "OpenAI";
    const PIECE_BYTES: usize = 37;
    const ERROR_EVENTS: bool = true;

    fn routes() -> Router<Shared> {
        Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .route("/openai/models", get(models))
            .route("/v1/embeddings", post(endpoints::embeddings))
            .route("/v1/completions", post(endpoints::completions))
            .route("/v1/images/generations", post(endpoints::image_generations))
            .route("/v1/audio/speech", post(endpoints::speech))
            .route("/v1/audio/transcriptions", post(endpoints::transcriptions))
            .route("/v1/audio/translations", post(endpoints::translations))
            .route("/v1/rerank", post(endpoints::rerank))
            .route("/v1/realtime", get(realtime::session))
            .route("/openai/realtime", get(realtime::session))
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(azure),
            )
            // OpenAI takes audio files up to 25 MB.
            .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
    }

    fn status_error(code: u16) -> Response {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = if code == 429 {
            "rate_limit_error"
        } else if code >= 500 {
            "server_error"
        } else {
            "invalid_request_error"
        };
        error(status, "Scripted failure.", kind)
    }

    fn no_credit() -> Response {
        // A 429 like a rate limit, told apart by its code, and without `Retry-After`: waiting
        // does not help.
        (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"error": {
                "message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}})),
        )
            .into_response()
    }
}

/// OpenAI's `GET /v1/models` (and Azure's `/openai/models`, keyed by `api-key`).
async fn models(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if !shared.authorized(&headers, "authorization", "Bearer ")
        && !shared.authorized(&headers, "api-key", "")
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
        .map(|m| words(&content_text(&m["content"])))
        .sum()
}

/// The mock's reply to a request. When the messages end with the assistant's own text (a
/// client asking it to continue an answer) and that text begins the reply, only the rest is
/// written, as a model continues its own words.
pub fn reply_to(messages: &Value) -> String {
    let list = messages.as_array();
    let last = list
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default();
    let reply = format!("echo: {last}");
    let written = list
        .and_then(|m| m.last())
        .filter(|m| m["role"] == "assistant")
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default();
    match reply.strip_prefix(written.as_str()) {
        Some(rest) if !written.is_empty() => rest.to_string(),
        _ => reply,
    }
}

/// OpenAI's error body (`Retry-After: 1` on 429).
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

/// Audio tokens the mock says each spoken word of an answer takes.
pub const AUDIO_TOKENS_PER_WORD: i64 = 5;

/// Audio tokens of the `input_audio` parts of `messages`: one per 100 base64 characters.
pub fn input_audio_tokens(messages: &Value) -> i64 {
    messages
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|p| p["type"] == "input_audio")
        .map(|p| {
            let chars = p["input_audio"]["data"].as_str().map_or(0, str::len);
            i64::try_from(chars.div_ceil(100)).unwrap_or(i64::MAX)
        })
        .sum()
}

/// OpenAI's `usage`: `cached` is part of `prompt`, `reasoning` part of `completion`.
fn usage_of(prompt: i64, completion: i64, cached: i64, reasoning: i64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached}, "completion_tokens_details": {"reasoning_tokens": reasoning}})
}

async fn chat(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let authorized = shared.authorized(&headers, "authorization", "Bearer ");
    answer_chat(shared, headers, body, authorized).await
}

/// Answers a chat completion whose key was checked (`authorized`) by the route it came on.
async fn answer_chat(
    shared: Shared,
    headers: HeaderMap,
    body: Bytes,
    authorized: bool,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
        );
    };
    let seen = shared.admit(&headers, request.clone());
    if !authorized {
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
        );
    }
    let cut = match mock_vendor::apply::<OpenAi>(seen.fault).await {
        Ok(cut) => cut,
        Err(refusal) => return refusal,
    };
    let script = seen.script;
    if request["messages"].as_array().is_none_or(Vec::is_empty) {
        return error(
            StatusCode::BAD_REQUEST,
            "'messages' must contain at least one message.",
            "invalid_request_error",
        );
    }
    let model = request["model"].as_str().unwrap_or("").to_string();
    if script.missing_models.contains(&model) {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {
                "message": format!("The model `{model}` does not exist or you do not have access to it."),
                "type": "invalid_request_error", "param": null, "code": "model_not_found"}})),
        )
            .into_response();
    }
    if let Some(call) = tool_call(&shared, &request, &script) {
        return call;
    }
    let mut reply = script
        .reply
        .clone()
        .unwrap_or_else(|| reply_to(&request["messages"]));
    let prompt =
        prompt_tokens(&request["messages"]) * script.prompt_scale.max(1) + script.cached_tokens;
    // Like OpenAI, stop at the client's limit with finish_reason "length".
    let limit = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|f| request[*f].as_u64())
        .map(|n| n as usize);
    let mut finish = "stop";
    if let Some(limit) = limit
        && !script.ignore_max_tokens
        && reply.split_whitespace().count() > limit
    {
        reply = reply.split_inclusive(' ').take(limit).collect::<String>();
        finish = "length";
    }
    let reasoning = script.reasoning.as_deref().map(words).unwrap_or(0);
    // Audio, as OpenAI's audio models count it: input audio parts in the prompt, and spoken
    // output when `modalities` asks for it (whole answers only).
    let audio_in = input_audio_tokens(&request["messages"]);
    let speaks = request["stream"].as_bool() != Some(true)
        && request["modalities"]
            .as_array()
            .is_some_and(|m| m.iter().any(|v| v == "audio"));
    let audio_out = if speaks {
        words(&reply) * AUDIO_TOKENS_PER_WORD
    } else {
        0
    };
    let prompt = prompt + audio_in;
    let completion = words(&reply) + reasoning + audio_out;
    let mut usage = usage_of(prompt, completion, script.cached_tokens, reasoning);
    if audio_in > 0 || speaks {
        usage["prompt_tokens_details"]["audio_tokens"] = json!(audio_in);
        usage["completion_tokens_details"]["audio_tokens"] = json!(audio_out);
    }
    shared.record_usage(usage.clone());
    if request["stream"].as_bool() != Some(true) {
        let message = if speaks {
            use base64::Engine;
            let data = base64::engine::general_purpose::STANDARD.encode(reply.as_bytes());
            json!({"role": "assistant", "content": null, "refusal": null, "audio": {
                "id": "audio_mock", "expires_at": 1_764_003_600, "data": data, "transcript": reply}})
        } else {
            json!({"role": "assistant", "content": reply})
        };
        return axum::Json(json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_764_000_000, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
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
    let pieces: Vec<String> = reply.split_inclusive(' ').map(str::to_string).collect();
    let mut cut_short = false;
    for (i, word) in pieces.iter().enumerate() {
        if cut.stops_at(i) {
            cut_short = true;
            break;
        }
        events.push(chunk(json!({"content": word}), Value::Null, Value::Null));
    }
    if cut_short && cut.error_after.is_some() {
        // What OpenAI sends when a stream fails after it began: an error object as the data
        // of an event, then the end of the body.
        let error = json!({"error": {"message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error", "param": null, "code": null}});
        events.push(format!("data: {error}\n\n"));
    }
    if !cut_short {
        events.push(chunk(json!({}), json!(finish), Value::Null));
        if include_usage {
            let last = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_764_000_000, "model": model,
                "choices": [], "usage": usage});
            events.push(format!("data: {last}\n\n"));
        }
        events.push("data: [DONE]\n\n".to_string());
    }
    let died = cut_short && cut.die_after.is_some();
    mock_vendor::event_stream::<OpenAi>(events, script.stream_pause, died)
}

/// Azure OpenAI's route: the deployment in the path, `api-version` in the query, the key in an
/// `api-key` header; answered like `/v1/chat/completions` (the path is recorded, as for
/// every request, in the `x-mock-path` header).
async fn azure(
    State(shared): State<Shared>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
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
    if !shared.authorized(&headers, "api-key", "") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}})),
        )
            .into_response();
    }
    answer_chat(shared, headers, body, true).await
}

/// When the request offers tools and the last message is the user's (or a tool's, while fewer
/// than `tool_rounds` calls followed the user's message), the answer calls the first tool
/// with `{"city": <last user text>}` (ids `call_mock1`, `call_mock2`, ... by round); streamed,
/// its arguments come in two pieces. Completion tokens are the words of the arguments' JSON.
fn tool_call(shared: &Shared, request: &Value, script: &Script) -> Option<Response> {
    let (cached, pause) = (script.cached_tokens, script.stream_pause);
    let tool = request["tools"].as_array()?.first()?;
    let messages = request["messages"].as_array()?;
    let last = messages.last()?;
    let asked = messages.iter().rposition(|m| m["role"] == "user")?;
    let rounds = messages[asked..]
        .iter()
        .filter(|m| m["role"] == "assistant" && m["tool_calls"].is_array())
        .count();
    let calls_again = last["role"] == "tool" && rounds < script.tool_rounds;
    if last["role"] != "user" && !calls_again {
        return None;
    }
    let id = format!("call_mock{}", rounds + 1);
    let name = script
        .tool_name
        .as_deref()
        .unwrap_or_else(|| tool["function"]["name"].as_str().unwrap_or(""));
    let arguments = script
        .tool_arguments
        .clone()
        .unwrap_or_else(|| json!({"city": content_text(&messages[asked]["content"])}).to_string());
    let prompt = prompt_tokens(&request["messages"]) + cached;
    let completion = words(&arguments);
    let usage = usage_of(prompt, completion, cached, 0);
    shared.record_usage(usage.clone());
    let model = request["model"].as_str().unwrap_or("");
    let call =
        json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}});
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
            json!({"tool_calls": [{"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
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
    let mut text: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    text.push("data: [DONE]\n\n".to_string());
    Some(mock_vendor::event_stream::<OpenAi>(text, pause, false))
}
