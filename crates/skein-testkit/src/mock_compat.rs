//! Mocks of the OpenAI-compatible vendors with quirks — DeepSeek, DashScope (Qwen), Zhipu GLM,
//! Moonshot Kimi, SiliconFlow, Volcengine Ark, MiniMax, Tencent Hunyuan, Baidu Qianfan and
//! iFlytek Spark — each faithful to its documentation where the relay depends on it: the
//! path under its documented base URL, the bearer key, where its answers put reasoning
//! (`reasoning_content`, or MiniMax's `reasoning_details` when `reasoning_split` is set),
//! cached tokens (Moonshot's top-level `usage.cached_tokens`) and a stream's usage (always on
//! the last chunk, only when `stream_options.include_usage` asks, or inside the last choice),
//! how a tool call streams (arguments in pieces; Qwen's later pieces with empty `id` and
//! `name`; GLM's whole call in one chunk), and the vendor's own error bodies for an empty
//! balance, a content-review refusal, a rate limit and a failure.
//!
//! One [`Dialect`] per vendor holds those differences as data; [`Compat`] is the wire format
//! the harness ([`crate::mock_vendor`]) runs. The reply is `echo: <last user message>`; tokens
//! are words, as in [`crate::mock_openai`].

use std::marker::PhantomData;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::mock_openai::{content_text, prompt_tokens, reply_to};
use crate::mock_vendor::{self, MockVendor, Shared, WireFormat, words};

/// Where a vendor's stream reports usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamUsage {
    /// A last chunk with empty `choices`, when `stream_options.include_usage` asks.
    WhenAsked,
    /// Always, on the chunk that finishes.
    Always,
    /// Inside the finishing choice (Moonshot).
    InChoice,
}

/// How a vendor streams a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolStream {
    /// The arguments in two pieces after a chunk with the id and name (OpenAI's way).
    Pieces,
    /// In pieces, the later ones with `"id": ""` and `"name": ""` (Qwen).
    PiecesEmptyIds,
    /// The whole call in one chunk (GLM).
    Whole,
}

/// One vendor's differences, as data.
pub trait Dialect: Send + Sync + 'static {
    /// The vendor's name.
    const VENDOR: &'static str;
    /// The path of its documented base URL (`/compatible-mode/v1`), which the mock serves
    /// under; a channel's base URL is the mock's plus this.
    const PREFIX: &'static str;
    /// Reasoning as `reasoning_details` (MiniMax) rather than `reasoning_content`.
    const DETAILS: bool = false;
    /// Where a stream's usage comes.
    const STREAM_USAGE: StreamUsage = StreamUsage::WhenAsked;
    /// Cached prompt tokens as a top-level `usage.cached_tokens` (Moonshot).
    const CACHED_AT_TOP: bool = false;
    /// How a tool call streams.
    const TOOL_STREAM: ToolStream = ToolStream::Pieces;
    /// Whether it has a model list.
    const MODELS: bool = true;
    /// The vendor's documented balance endpoint (its path under [`Dialect::PREFIX`]) and
    /// its answer for an account holding `amount` (in the account's currency), if it has one.
    fn balance(_amount: f64) -> Option<(&'static str, Value)> {
        None
    }
    /// The status and body of an account without balance.
    fn no_credit() -> (u16, Value);
    /// The status and body of a content-review refusal.
    fn content_filter() -> (u16, Value);
    /// The body of a scripted failure with `status`.
    fn failure(status: u16) -> Value {
        let kind = match status {
            429 => "rate_limit_error",
            500.. => "server_error",
            _ => "invalid_request_error",
        };
        json!({"error": {"message": "Scripted failure.", "type": kind, "param": null, "code": null}})
    }
}

/// The wire format of dialect `D`.
pub struct Compat<D>(PhantomData<D>);

/// A running mock of dialect `D`; dropped, it stops.
pub type MockCompat<D> = MockVendor<Compat<D>>;

macro_rules! dialect {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub enum $name {}
    };
}

dialect!(
    /// DeepSeek: `https://api.deepseek.com`, 402 `Insufficient Balance`.
    DeepSeek
);
dialect!(
    /// DashScope compatible mode: `/compatible-mode/v1`, code `Arrearage`, Qwen's empty ids.
    DashScope
);
dialect!(
    /// Zhipu BigModel v4: `/api/paas/v4`, string codes (1113 arrears behind a 429), whole
    /// tool calls, usage always on the last chunk.
    Zhipu
);
dialect!(
    /// Moonshot: `/v1`, `error.type` names, usage inside the last choice, top-level cached
    /// tokens.
    Moonshot
);
dialect!(
    /// SiliconFlow: `/v1`, top-level `{"code": 30001, "message"}` behind a 403.
    SiliconFlow
);
dialect!(
    /// Volcengine Ark: `/api/v3`, `AccountOverdueError` behind a 403.
    Volcengine
);
dialect!(
    /// MiniMax: `/v1`, `reasoning_details`, errors as `base_resp` inside a 200.
    MiniMax
);
dialect!(
    /// Tencent Hunyuan's OpenAI-compatible endpoint: `/v1`, Tencent Cloud codes.
    Hunyuan
);
dialect!(
    /// Baidu Qianfan v2: `/v2`.
    Qianfan
);
dialect!(
    /// iFlytek Spark HTTP: `/v1`, numeric codes, usage always on the last chunk, no model
    /// list.
    Spark
);

impl Dialect for DeepSeek {
    const VENDOR: &'static str = "DeepSeek";
    const PREFIX: &'static str = "";
    /// `GET /user/balance` (DeepSeek API docs, "Get User Balance"): amounts as strings, one
    /// entry per currency; granted (free) plus topped-up make the total.
    fn balance(amount: f64) -> Option<(&'static str, Value)> {
        Some((
            "/user/balance",
            json!({"is_available": amount > 0.0, "balance_infos": [{
                "currency": "CNY",
                "total_balance": format!("{amount:.2}"),
                "granted_balance": "0.00",
                "topped_up_balance": format!("{amount:.2}")}]}),
        ))
    }
    fn no_credit() -> (u16, Value) {
        (
            402,
            json!({"error": {"message": "Insufficient Balance", "type": "unknown_error", "param": null, "code": "invalid_request_error"}}),
        )
    }
    fn content_filter() -> (u16, Value) {
        (
            400,
            json!({"error": {"message": "Content Exists Risk", "type": "invalid_request_error", "param": null, "code": "invalid_request_error"}}),
        )
    }
}

impl Dialect for DashScope {
    const VENDOR: &'static str = "DashScope";
    const PREFIX: &'static str = "/compatible-mode/v1";
    const TOOL_STREAM: ToolStream = ToolStream::PiecesEmptyIds;
    fn no_credit() -> (u16, Value) {
        (
            400,
            json!({"error": {"code": "Arrearage", "param": null, "message": "Access denied, please make sure your account is in good standing.", "type": "Arrearage"}, "request_id": "mock"}),
        )
    }
    fn content_filter() -> (u16, Value) {
        (
            400,
            json!({"error": {"code": "data_inspection_failed", "param": null, "message": "Input data may contain inappropriate content.", "type": "data_inspection_failed"}, "request_id": "mock"}),
        )
    }
}

impl Dialect for Zhipu {
    const VENDOR: &'static str = "Zhipu";
    const PREFIX: &'static str = "/api/paas/v4";
    const STREAM_USAGE: StreamUsage = StreamUsage::Always;
    const TOOL_STREAM: ToolStream = ToolStream::Whole;
    fn no_credit() -> (u16, Value) {
        (
            429,
            json!({"error": {"code": "1113", "message": "您的账户已欠费，请充值后重试。"}}),
        )
    }
    fn content_filter() -> (u16, Value) {
        (
            400,
            json!({"error": {"code": "1301", "message": "系统检测到输入或生成内容可能包含不安全或敏感内容，请您避免输入易产生敏感内容的提示语，感谢您的配合。"}}),
        )
    }
    fn failure(status: u16) -> Value {
        let code = match status {
            429 => "1302",
            500.. => "500",
            _ => "1210",
        };
        json!({"error": {"code": code, "message": "Scripted failure."}})
    }
}

impl Dialect for Moonshot {
    const VENDOR: &'static str = "Moonshot";
    const PREFIX: &'static str = "/v1";
    /// `GET /v1/users/me/balance` (Moonshot docs, "查询余额"): numbers in CNY, the available
    /// balance being cash plus vouchers.
    fn balance(amount: f64) -> Option<(&'static str, Value)> {
        Some((
            "/users/me/balance",
            json!({"code": 0, "data": {"available_balance": amount, "voucher_balance": 0.0,
                "cash_balance": amount}, "scode": "0x0", "status": true}),
        ))
    }
    const STREAM_USAGE: StreamUsage = StreamUsage::InChoice;
    const CACHED_AT_TOP: bool = true;
    fn no_credit() -> (u16, Value) {
        (
            429,
            json!({"error": {"message": "Your account org-mock<ak-mock> is suspended, please check your plan and billing details", "type": "exceeded_current_quota_error"}}),
        )
    }
    fn content_filter() -> (u16, Value) {
        (
            400,
            json!({"error": {"message": "The request was rejected because it was considered high risk", "type": "content_filter"}}),
        )
    }
    fn failure(status: u16) -> Value {
        let kind = match status {
            429 => "rate_limit_reached_error",
            500.. => "server_error",
            _ => "invalid_request_error",
        };
        json!({"error": {"message": "Scripted failure.", "type": kind}})
    }
}

impl Dialect for SiliconFlow {
    const VENDOR: &'static str = "SiliconFlow";
    const PREFIX: &'static str = "/v1";
    /// `GET /v1/user/info` (SiliconFlow docs, "获取用户账户信息"): amounts as strings in CNY;
    /// `totalBalance` is the gift `balance` plus the topped-up `chargeBalance`.
    fn balance(amount: f64) -> Option<(&'static str, Value)> {
        Some((
            "/user/info",
            json!({"code": 20000, "message": "OK", "status": true, "data": {
                "id": "mock-user", "name": "mock", "image": "", "email": "", "isAdmin": false,
                "balance": "0.00", "status": "normal", "introduction": "", "role": "",
                "chargeBalance": format!("{amount:.2}"), "totalBalance": format!("{amount:.2}")}}),
        ))
    }
    fn no_credit() -> (u16, Value) {
        (
            403,
            json!({"code": 30001, "message": "Sorry, your account balance is insufficient", "data": null}),
        )
    }
    fn content_filter() -> (u16, Value) {
        (
            400,
            json!({"code": 20015, "message": "Scripted failure.", "data": null}),
        )
    }
    fn failure(status: u16) -> Value {
        let code = if status == 429 { 50603 } else { 20015 };
        json!({"code": code, "message": "Scripted failure.", "data": null})
    }
}

impl Dialect for Volcengine {
    const VENDOR: &'static str = "Volcengine";
    const PREFIX: &'static str = "/api/v3";
    fn no_credit() -> (u16, Value) {
        (
            403,
            json!({"error": {"code": "AccountOverdueError", "message": "The request failed because your account has an overdue balance. Request ID: mock", "param": "", "type": "Forbidden"}}),
        )
    }
    fn content_filter() -> (u16, Value) {
        (
            400,
            json!({"error": {"code": "InputTextSensitiveContentDetected", "message": "The request failed because the input text may contain sensitive information. Request ID: mock", "param": "", "type": "BadRequest"}}),
        )
    }
}

impl Dialect for MiniMax {
    const VENDOR: &'static str = "MiniMax";
    const PREFIX: &'static str = "/v1";
    const DETAILS: bool = true;
    fn no_credit() -> (u16, Value) {
        (
            200,
            json!({"id": "", "choices": null, "created": 0, "model": "", "object": "", "usage": null,
                "base_resp": {"status_code": 1008, "status_msg": "insufficient balance"}}),
        )
    }
    fn content_filter() -> (u16, Value) {
        (
            200,
            json!({"id": "", "choices": null, "created": 0, "model": "", "object": "", "usage": null,
                "base_resp": {"status_code": 1026, "status_msg": "input new_sensitive"}}),
        )
    }
}

impl Dialect for Hunyuan {
    const VENDOR: &'static str = "Hunyuan";
    const PREFIX: &'static str = "/v1";
    fn no_credit() -> (u16, Value) {
        (
            400,
            json!({"error": {"message": "账号余额不足", "type": "runtime_error", "param": null, "code": "ResourceInsufficient.ChargeResourceExhaust"}}),
        )
    }
    fn content_filter() -> (u16, Value) {
        (
            400,
            json!({"error": {"message": "Scripted failure.", "type": "invalid_request_error", "param": null, "code": "InvalidParameter"}}),
        )
    }
}

impl Dialect for Qianfan {
    const VENDOR: &'static str = "Qianfan";
    const PREFIX: &'static str = "/v2";
    fn no_credit() -> (u16, Value) {
        (
            403,
            json!({"error": {"code": "ServiceArrears", "message": "The service is in arrears.", "type": "access_denied"}, "id": "as-mock"}),
        )
    }
    fn content_filter() -> (u16, Value) {
        (
            400,
            json!({"error": {"code": "invalid_argument", "message": "Scripted failure.", "type": "invalid_request_error"}}),
        )
    }
}

impl Dialect for Spark {
    const VENDOR: &'static str = "Spark";
    const PREFIX: &'static str = "/v1";
    const STREAM_USAGE: StreamUsage = StreamUsage::Always;
    const MODELS: bool = false;
    fn no_credit() -> (u16, Value) {
        (
            200,
            json!({"code": 11201, "message": "licc limit: Your daily usage has exceeded the limit", "sid": "cha-mock"}),
        )
    }
    fn content_filter() -> (u16, Value) {
        (
            200,
            json!({"code": 10013, "message": "input content audit failed", "sid": "cha-mock"}),
        )
    }
}

fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
    }
    response
}

impl<D: Dialect> WireFormat for Compat<D> {
    const VENDOR: &'static str = D::VENDOR;
    const PIECE_BYTES: usize = 31;
    const ERROR_EVENTS: bool = false;

    fn routes() -> Router<Shared> {
        let chat = format!("{}/chat/completions", D::PREFIX);
        let mut router = Router::new().route(&chat, post(chat_handler::<D>));
        if let Some((path, _)) = D::balance(0.0) {
            router = router.route(&format!("{}{path}", D::PREFIX), get(balance::<D>));
        }
        if D::MODELS {
            router.route(&format!("{}/models", D::PREFIX), get(models::<D>))
        } else {
            router
        }
    }

    fn status_error(code: u16) -> Response {
        json_response(code, D::failure(code))
    }

    fn no_credit() -> Response {
        let (status, body) = D::no_credit();
        json_response(status, body)
    }

    fn content_filter() -> Response {
        let (status, body) = D::content_filter();
        json_response(status, body)
    }
}

fn unauthorized() -> Response {
    json_response(
        401,
        json!({"error": {"message": "Authentication Fails (no such user)", "type": "authentication_error", "param": null, "code": "invalid_api_key"}}),
    )
}

async fn balance<D: Dialect>(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if !shared.authorized(&headers, "authorization", "Bearer ") {
        return unauthorized();
    }
    match D::balance(shared.script().balance) {
        Some((_, body)) => axum::Json(body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn models<D: Dialect>(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if !shared.authorized(&headers, "authorization", "Bearer ") {
        return unauthorized();
    }
    let owner = D::VENDOR.to_lowercase();
    axum::Json(json!({"object": "list", "data": [
        {"id": format!("{owner}-mock-chat"), "object": "model", "owned_by": owner},
        {"id": format!("{owner}-mock-reasoner"), "object": "model", "owned_by": owner}]}))
    .into_response()
}

/// The usage in the vendor's terms.
fn usage_of<D: Dialect>(prompt: i64, completion: i64, cached: i64, reasoning: i64) -> Value {
    let mut usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning}});
    if D::CACHED_AT_TOP {
        usage["cached_tokens"] = json!(cached);
    } else {
        usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    usage
}

async fn chat_handler<D: Dialect>(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return json_response(400, D::failure(400));
    };
    let seen = shared.admit(&headers, request.clone());
    if !shared.authorized(&headers, "authorization", "Bearer ") {
        return unauthorized();
    }
    let cut = match mock_vendor::apply::<Compat<D>>(seen.fault).await {
        Ok(cut) => cut,
        Err(refusal) => return refusal,
    };
    let script = seen.script;
    if request["messages"].as_array().is_none_or(Vec::is_empty) {
        return json_response(400, D::failure(400));
    }
    let model = request["model"].as_str().unwrap_or("").to_string();
    let stream = request["stream"].as_bool() == Some(true);
    let include_usage = match D::STREAM_USAGE {
        StreamUsage::WhenAsked => {
            request["stream_options"]["include_usage"].as_bool() == Some(true)
        }
        StreamUsage::Always | StreamUsage::InChoice => true,
    };
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_764_000_000, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    // The usage rides on the finishing chunk, inside its choice, or apart, by dialect.
    let finishing = |mut last: Value, usage: &Value| -> Vec<Value> {
        match D::STREAM_USAGE {
            StreamUsage::InChoice => {
                last["choices"][0]["usage"] = usage.clone();
                vec![last]
            }
            StreamUsage::Always => {
                last["usage"] = usage.clone();
                vec![last]
            }
            StreamUsage::WhenAsked if include_usage => vec![
                last,
                json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_764_000_000,
                    "model": model, "choices": [], "usage": usage}),
            ],
            StreamUsage::WhenAsked => vec![last],
        }
    };
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    // A tool call, when tools are offered and the user just spoke.
    if let Some(tool) = request["tools"].as_array().and_then(|t| t.first())
        && messages.last().is_some_and(|m| m["role"] == "user")
    {
        let name = tool["function"]["name"].as_str().unwrap_or("");
        let arguments =
            json!({"city": content_text(&messages[messages.len() - 1]["content"])}).to_string();
        let usage = usage_of::<D>(
            prompt_tokens(&request["messages"]) + script.cached_tokens,
            words(&arguments),
            script.cached_tokens,
            0,
        );
        shared.record_usage(usage.clone());
        let call = json!({"id": "call_mock1", "type": "function", "function": {"name": name, "arguments": arguments}});
        if !stream {
            return axum::Json(json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1_764_000_000, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [call]}, "finish_reason": "tool_calls"}],
                "usage": usage})).into_response();
        }
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        let split = (arguments.len() / 2..arguments.len())
            .find(|i| arguments.is_char_boundary(*i))
            .unwrap_or(arguments.len());
        match D::TOOL_STREAM {
            ToolStream::Whole => {
                let mut whole = call.clone();
                whole["index"] = json!(0);
                events.push(chunk(json!({"tool_calls": [whole]}), Value::Null));
            }
            ToolStream::Pieces | ToolStream::PiecesEmptyIds => {
                events.push(chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_mock1", "type": "function", "function": {"name": name, "arguments": &arguments[..split]}}]}),
                    Value::Null,
                ));
                let rest = if D::TOOL_STREAM == ToolStream::PiecesEmptyIds {
                    json!({"tool_calls": [{"index": 0, "id": "", "type": "function", "function": {"name": "", "arguments": &arguments[split..]}}]})
                } else {
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": &arguments[split..]}}]})
                };
                events.push(chunk(rest, Value::Null));
            }
        }
        events.extend(finishing(chunk(json!({}), json!("tool_calls")), &usage));
        let mut text: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        text.push("data: [DONE]\n\n".into());
        return mock_vendor::event_stream::<Compat<D>>(text, script.stream_pause, false);
    }
    let reply = script
        .reply
        .clone()
        .unwrap_or_else(|| reply_to(&request["messages"]));
    let reasoning = script.reasoning.clone();
    let reasoning_words = reasoning.as_deref().map(words).unwrap_or(0);
    let prompt = prompt_tokens(&request["messages"]) + script.cached_tokens;
    let completion = words(&reply) + reasoning_words;
    let usage = usage_of::<D>(prompt, completion, script.cached_tokens, reasoning_words);
    shared.record_usage(usage.clone());
    // MiniMax separates reasoning only when asked to (else it is `<think>` text in content).
    let details = D::DETAILS && request["reasoning_split"].as_bool() == Some(true);
    let reasoning_field = |text: &str| -> (String, Value) {
        if D::DETAILS {
            (
                "reasoning_details".into(),
                json!([{"type": "reasoning.text", "text": text}]),
            )
        } else {
            ("reasoning_content".into(), json!(text))
        }
    };
    if !stream {
        let mut message = json!({"role": "assistant", "content": reply});
        if let Some(thought) = &reasoning {
            if D::DETAILS && !details {
                message["content"] = json!(format!("<think>{thought}</think>{reply}"));
            } else {
                let (field, value) = reasoning_field(thought);
                message[field] = value;
            }
        }
        let mut answer = json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1_764_000_000, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage});
        if D::DETAILS {
            answer["base_resp"] = json!({"status_code": 0, "status_msg": ""});
        }
        return axum::Json(answer).into_response();
    }
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    if let Some(thought) = &reasoning {
        for piece in thought.split_inclusive(' ') {
            let (field, value) = reasoning_field(piece);
            let mut delta = json!({});
            delta[field] = value;
            events.push(chunk(delta, Value::Null));
        }
    }
    let mut cut_short = false;
    for (i, word) in reply.split_inclusive(' ').enumerate() {
        if cut.stops_at(i) {
            cut_short = true;
            break;
        }
        events.push(chunk(json!({"content": word}), Value::Null));
    }
    let mut text: Vec<String> = Vec::new();
    if !cut_short {
        events.extend(finishing(chunk(json!({}), json!("stop")), &usage));
    }
    text.extend(events.iter().map(|e| format!("data: {e}\n\n")));
    if !cut_short {
        text.push("data: [DONE]\n\n".into());
    }
    mock_vendor::event_stream::<Compat<D>>(
        text,
        script.stream_pause,
        cut_short && cut.die_after.is_some(),
    )
}
