//! A mock of Alibaba Cloud Model Studio's native DashScope API for Qwen text generation,
//! faithful to its "DashScope API reference" where the relay depends on it:
//!
//! - `POST /api/v1/services/aigc/text-generation/generation` with the key as a bearer token and
//!   the body `{"model", "input": {"messages"}, "parameters"}`; with `result_format: message`
//!   the answer is `{"output": {"choices": [{"message", "finish_reason"}]}, "usage":
//!   {"input_tokens", "output_tokens", "total_tokens", ...}, "request_id"}` (without it, the
//!   legacy `output.text`, which the relay must never ask for);
//! - streaming only with the header `X-DashScope-SSE: enable`: events of `id:`, `event:result`,
//!   `:HTTP_STATUS/200` and `data:` lines, each carrying the usage so far and a `finish_reason`
//!   of `"null"` until the last; without `parameters.incremental_output: true` each event
//!   repeats the whole text so far, as DashScope does;
//! - reasoning (`message.reasoning_content`) unless `parameters.enable_thinking` is false; tool
//!   calls as OpenAI's, streamed in two pieces, the second with empty `id` and `name`;
//! - errors as `{"code", "message", "request_id"}`: `InvalidApiKey` (401), `Arrearage` (400),
//!   `DataInspectionFailed` (400), `Throttling.RateQuota` (429), `InternalError` (500), and in a
//!   stream an `event:error` event carrying that body;
//! - the model list on the compatible-mode path beside it (`/compatible-mode/v1/models`);
//! - text-to-image as an asynchronous task: `POST /api/v1/services/aigc/text2image/image-synthesis`
//!   only with `X-DashScope-Async: enable` (without it: 403 `AccessDenied`, "current user api
//!   does not support synchronous calls"), answering `{"output": {"task_id", "task_status":
//!   "PENDING"}, "request_id"}`; then `GET /api/v1/tasks/{task_id}`: `RUNNING` for the first
//!   half second, then `SUCCEEDED` with `output.results[]` (`url`, `orig_prompt`,
//!   `actual_prompt`), `output.task_metrics` and `usage.image_count`. A prompt containing
//!   `forbidden` ends `FAILED` with `DataInspectionFailed`; one containing `half` has every
//!   second image fail (`code`/`message` in its result); for one containing `flaky` the task
//!   route answers 503 for its first 1.5 s; one containing `stuck` never ends `RUNNING`. The
//!   URLs are PNGs served by the mock.
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
use crate::mock_vendor::{self, MockVendor, Shared, WireFormat, words};

/// DashScope's native wire format.
#[derive(Debug)]
pub enum DashScopeNative {}

/// A running mock of the native DashScope API; dropped, it stops.
pub type MockDashScope = MockVendor<DashScopeNative>;

/// The base URL path (`https://dashscope.aliyuncs.com/api/v1`).
pub const PREFIX: &str = "/api/v1";

/// The generation path under the base URL.
pub const GENERATION: &str = "/services/aigc/text-generation/generation";

/// The text-to-image path under the base URL.
pub const IMAGE_SYNTHESIS: &str = "/services/aigc/text2image/image-synthesis";

const REQUEST_ID: &str = "3b1e6b8c-mock-4f5d-9a7e-dashscope";

/// How long a mock image task runs before it succeeds.
const TASK_RUNS_MS: u128 = 500;

fn error(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        axum::Json(json!({"code": code, "message": message, "request_id": REQUEST_ID})),
    )
        .into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
    }
    response
}

impl WireFormat for DashScopeNative {
    const VENDOR: &'static str = "DashScope";
    const PIECE_BYTES: usize = 29;
    const ERROR_EVENTS: bool = true;

    fn routes() -> Router<Shared> {
        Router::new()
            .route(&format!("{PREFIX}{GENERATION}"), post(generation))
            .route(&format!("{PREFIX}{IMAGE_SYNTHESIS}"), post(image_synthesis))
            .route(&format!("{PREFIX}/tasks/{{id}}"), get(task))
            .route("/results/{name}", get(result_image))
            .route("/compatible-mode/v1/models", get(models))
    }

    fn status_error(code: u16) -> Response {
        match code {
            400 => error(
                400,
                "InvalidParameter",
                "Required parameter(s) missing or invalid, please check the request parameters.",
            ),
            401 => error(401, "InvalidApiKey", "Invalid API-key provided."),
            403 => error(403, "AccessDenied", "Access denied."),
            429 => error(
                429,
                "Throttling.RateQuota",
                "Requests rate limit exceeded, please try again later.",
            ),
            other => error(
                other,
                "InternalError",
                "An internal error has occured, please try again later or contact service support.",
            ),
        }
    }

    fn no_credit() -> Response {
        error(
            400,
            "Arrearage",
            "Access denied, please make sure your account is in good standing.",
        )
    }

    fn content_filter() -> Response {
        error(
            400,
            "DataInspectionFailed",
            "Input data may contain inappropriate content.",
        )
    }
}

async fn models(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if !shared.authorized(&headers, "authorization", "Bearer ") {
        return DashScopeNative::status_error(401);
    }
    axum::Json(json!({"object": "list", "data": [
        {"id": "dashscope-mock-chat", "object": "model", "owned_by": "system"},
        {"id": "dashscope-mock-reasoner", "object": "model", "owned_by": "system"}]}))
    .into_response()
}

/// The usage as DashScope reports it.
fn usage(input: i64, output: i64, cached: i64, reasoning: i64) -> Value {
    json!({"input_tokens": input, "output_tokens": output, "total_tokens": input + output,
        "prompt_tokens_details": {"cached_tokens": cached},
        "output_tokens_details": {"reasoning_tokens": reasoning}})
}

fn answer(message: Value, finish: &str, usage: Value) -> Value {
    json!({"output": {"choices": [{"finish_reason": finish, "message": message}]},
        "usage": usage, "request_id": REQUEST_ID})
}

/// One server-sent event as DashScope writes it.
fn event(n: usize, name: &str, status: u16, data: &Value) -> String {
    format!("id:{n}\nevent:{name}\n:HTTP_STATUS/{status}\ndata:{data}\n\n")
}

async fn generation(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return DashScopeNative::status_error(400);
    };
    let seen = shared.admit(&headers, request.clone());
    if !shared.authorized(&headers, "authorization", "Bearer ") {
        return DashScopeNative::status_error(401);
    }
    let cut = match mock_vendor::apply::<DashScopeNative>(seen.fault).await {
        Ok(cut) => cut,
        Err(refusal) => return refusal,
    };
    let script = seen.script;
    let parameters = &request["parameters"];
    let messages_value = &request["input"]["messages"];
    let messages = messages_value.as_array().cloned().unwrap_or_default();
    if messages.is_empty() {
        return error(
            400,
            "BadRequest.EmptyInput",
            "Required input parameter missing from request.",
        );
    }
    if parameters["result_format"] != "message" {
        // The legacy text format: not what the relay may rely on (no tool calls, no roles).
        let reply = reply_to(messages_value);
        return axum::Json(json!({"output": {"text": reply, "finish_reason": "stop"},
            "usage": usage(prompt_tokens(messages_value), words(&reply), 0, 0), "request_id": REQUEST_ID}))
        .into_response();
    }
    let stream = headers
        .get("x-dashscope-sse")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("enable"));
    let incremental = parameters["incremental_output"].as_bool() == Some(true);
    let prompt = prompt_tokens(messages_value) + script.cached_tokens;

    // A tool call, when tools are offered and the user just spoke.
    if let Some(tool) = parameters["tools"].as_array().and_then(|t| t.first())
        && messages.last().is_some_and(|m| m["role"] == "user")
        && parameters["tool_choice"] != "none"
    {
        let name = tool["function"]["name"].as_str().unwrap_or("");
        let arguments =
            json!({"city": content_text(&messages[messages.len() - 1]["content"])}).to_string();
        let completion = words(&arguments);
        let whole_usage = usage(prompt, completion, script.cached_tokens, 0);
        shared.record_usage(whole_usage.clone());
        let call = json!({"index": 0, "id": "call_mock1", "type": "function",
            "function": {"name": name, "arguments": arguments}});
        if !stream {
            return axum::Json(answer(
                json!({"role": "assistant", "content": "", "tool_calls": [call]}),
                "tool_calls",
                whole_usage,
            ))
            .into_response();
        }
        let split = (arguments.len() / 2..arguments.len())
            .find(|i| arguments.is_char_boundary(*i))
            .unwrap_or(arguments.len());
        let pieces = [
            json!({"index": 0, "id": "call_mock1", "type": "function", "function": {"name": name, "arguments": &arguments[..split]}}),
            json!({"index": 0, "id": "", "type": "function", "function": {"name": "", "arguments": &arguments[split..]}}),
        ];
        let mut events = Vec::new();
        for (i, piece) in pieces.into_iter().enumerate() {
            let so_far = usage(
                prompt,
                completion * (i as i64 + 1) / 2,
                script.cached_tokens,
                0,
            );
            events.push(event(
                i + 1,
                "result",
                200,
                &answer(
                    json!({"role": "assistant", "content": "", "tool_calls": [piece]}),
                    "null",
                    so_far,
                ),
            ));
        }
        events.push(event(
            3,
            "result",
            200,
            &answer(
                json!({"role": "assistant", "content": ""}),
                "tool_calls",
                whole_usage,
            ),
        ));
        return mock_vendor::event_stream::<DashScopeNative>(events, script.stream_pause, false);
    }

    let reply = script
        .reply
        .clone()
        .unwrap_or_else(|| reply_to(messages_value));
    let reasoning = script
        .reasoning
        .clone()
        .filter(|_| parameters["enable_thinking"].as_bool() != Some(false));
    let reasoning_words = reasoning.as_deref().map(words).unwrap_or(0);
    let completion = words(&reply) + reasoning_words;
    let whole_usage = usage(prompt, completion, script.cached_tokens, reasoning_words);
    shared.record_usage(whole_usage.clone());
    if !stream {
        let mut message = json!({"role": "assistant", "content": reply});
        if let Some(thought) = &reasoning {
            message["reasoning_content"] = json!(thought);
        }
        return axum::Json(answer(message, "stop", whole_usage)).into_response();
    }
    // Reasoning first, then the answer, a word an event; each event carries the usage so far.
    let mut events = Vec::new();
    let mut output = 0;
    let (mut thought_so_far, mut text_so_far) = (String::new(), String::new());
    for piece in reasoning
        .as_deref()
        .unwrap_or("")
        .split_inclusive(' ')
        .filter(|p| !p.is_empty())
    {
        output += words(piece);
        thought_so_far.push_str(piece);
        let shown = if incremental {
            piece
        } else {
            thought_so_far.as_str()
        };
        events.push(event(
            events.len() + 1,
            "result",
            200,
            &answer(
                json!({"role": "assistant", "content": "", "reasoning_content": shown}),
                "null",
                usage(prompt, output, script.cached_tokens, output),
            ),
        ));
    }
    let mut cut_short = false;
    for (i, word) in reply.split_inclusive(' ').enumerate() {
        if cut.stops_at(i) {
            cut_short = true;
            break;
        }
        output += words(word);
        text_so_far.push_str(word);
        let shown = if incremental {
            word
        } else {
            text_so_far.as_str()
        };
        events.push(event(
            events.len() + 1,
            "result",
            200,
            &answer(
                json!({"role": "assistant", "content": shown, "reasoning_content": ""}),
                "null",
                usage(prompt, output, script.cached_tokens, reasoning_words),
            ),
        ));
    }
    if cut_short && cut.error_after.is_some() {
        events.push(event(
            events.len() + 1,
            "error",
            500,
            &json!({"code": "InternalError", "message": "An internal error has occured, please try again later or contact service support.", "request_id": REQUEST_ID}),
        ));
    } else if !cut_short {
        events.push(event(
            events.len() + 1,
            "result",
            200,
            &answer(
                json!({"role": "assistant", "content": "", "reasoning_content": ""}),
                "stop",
                whole_usage,
            ),
        ));
    }
    mock_vendor::event_stream::<DashScopeNative>(
        events,
        script.stream_pause,
        cut_short && cut.die_after.is_some(),
    )
}

/// A task's id carries what the mock needs to answer it later (it keeps no tasks): when it
/// started, how many images, and its prompt, hex-encoded.
fn task_id(started_ms: u128, n: u64, prompt: &str) -> String {
    let hex: String = prompt.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{started_ms}-{n}-{hex}")
}

fn read_task_id(id: &str) -> Option<(u128, u64, String)> {
    let mut parts = id.splitn(3, '-');
    let started = parts.next()?.parse().ok()?;
    let n = parts.next()?.parse().ok()?;
    let hex = parts.next()?;
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    Some((started, n, String::from_utf8(bytes?).ok()?))
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

async fn image_synthesis(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return DashScopeNative::status_error(400);
    };
    let seen = shared.admit(&headers, request.clone());
    if !shared.authorized(&headers, "authorization", "Bearer ") {
        return DashScopeNative::status_error(401);
    }
    if let Err(refusal) = mock_vendor::apply::<DashScopeNative>(seen.fault).await {
        return refusal;
    }
    let asynchronous = headers
        .get("x-dashscope-async")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("enable"));
    if !asynchronous {
        return error(
            403,
            "AccessDenied",
            "current user api does not support synchronous calls",
        );
    }
    let Some(prompt) = request["input"]["prompt"]
        .as_str()
        .filter(|p| !p.is_empty())
    else {
        return error(400, "InvalidParameter", "Field required: input.prompt");
    };
    let n = request["parameters"]["n"].as_u64().unwrap_or(1);
    if !(1..=4).contains(&n) {
        return error(400, "InvalidParameter", "n should be in [1, 4]");
    }
    if let Some(size) = request["parameters"]["size"].as_str()
        && !size
            .split_once('*')
            .is_some_and(|(w, h)| w.parse::<u32>().is_ok() && h.parse::<u32>().is_ok())
    {
        return error(400, "InvalidParameter", "size is invalid");
    }
    axum::Json(
        json!({"output": {"task_status": "PENDING", "task_id": task_id(now_ms(), n, prompt)},
        "request_id": REQUEST_ID}),
    )
    .into_response()
}

async fn task(
    State(shared): State<Shared>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if !shared.authorized(&headers, "authorization", "Bearer ") {
        return DashScopeNative::status_error(401);
    }
    let Some((started, n, prompt)) = read_task_id(&id) else {
        return error(400, "InvalidParameter", "task_id is invalid");
    };
    let times = json!({"submit_time": "2026-12-05 10:00:00.000", "scheduled_time": "2026-12-05 10:00:00.100"});
    let elapsed = now_ms().saturating_sub(started);
    if prompt.contains("flaky") && elapsed < 3 * TASK_RUNS_MS {
        return DashScopeNative::status_error(503);
    }
    if elapsed < TASK_RUNS_MS || prompt.contains("stuck") {
        let mut output = json!({"task_id": id, "task_status": "RUNNING",
            "task_metrics": {"TOTAL": n, "SUCCEEDED": 0, "FAILED": 0}});
        output["submit_time"] = times["submit_time"].clone();
        return axum::Json(json!({"request_id": REQUEST_ID, "output": output})).into_response();
    }
    if prompt.contains("forbidden") {
        return axum::Json(json!({"request_id": REQUEST_ID, "output": {"task_id": id,
            "task_status": "FAILED", "code": "DataInspectionFailed",
            "message": "Input data may contain inappropriate content."}}))
        .into_response();
    }
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let mut succeeded = 0;
    let results: Vec<Value> = (0..n)
        .map(|i| {
            if prompt.contains("half") && i % 2 == 1 {
                json!({"code": "InternalError.Algo", "message": "The image could not be generated."})
            } else {
                succeeded += 1;
                json!({"url": format!("http://{host}/results/{id}-{i}.png"),
                    "orig_prompt": prompt, "actual_prompt": format!("{prompt}, highly detailed")})
            }
        })
        .collect();
    axum::Json(json!({"request_id": REQUEST_ID, "output": {"task_id": id,
        "task_status": "SUCCEEDED", "submit_time": times["submit_time"],
        "scheduled_time": times["scheduled_time"], "end_time": "2026-12-05 10:00:05.000",
        "results": results,
        "task_metrics": {"TOTAL": n, "SUCCEEDED": succeeded, "FAILED": n - succeeded}},
        "usage": {"image_count": succeeded}}))
    .into_response()
}

/// A 1×1 PNG, the image behind every result URL.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn result_image(axum::extract::Path(_name): axum::extract::Path<String>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "image/png")], PNG).into_response()
}
