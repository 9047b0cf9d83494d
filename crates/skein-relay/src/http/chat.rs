//! `POST /v1/chat/completions`: OpenAI's chat API, relayed to OpenAI-format channels, billed
//! through reserve → settle.
//!
//! The request body is forwarded as the client wrote it (unknown fields included); only the
//! model is mapped and, for streams, `stream_options.include_usage` is switched on so the bill
//! comes from the upstream's own count. A client that did not ask for usage never sees that
//! extra chunk. The stream is read by a task of its own: if the client hangs up, the task
//! reads on to the upstream's final usage and bills that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use skein_core::api::{KeyInfo, KeyLimit, ReserveRequest, Usage};
use skein_core::auth::ApiKeyCaller;
use skein_core::limit::Quota;
use skein_core::request::RequestId;
use skein_core::{ApiError, ApiResult};

use crate::RelayService;
use crate::channels::LiveChannel;
use crate::pricing::Rates;
use crate::proxy::{self, Attempt, SseSplitter, Tokens, estimate_tokens, event_data, usage_of};

/// Output tokens reserved when the client sets no limit.
const DEFAULT_MAX_OUTPUT: i64 = 4096;
/// Most channels tried for one request.
const MAX_ATTEMPTS: usize = 3;
/// How long a stream whose client left is read on for its final usage.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// Relays an OpenAI chat completion.
pub(crate) async fn chat_completions(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    request_id: Option<axum::Extension<RequestId>>,
    body: Bytes,
) -> ApiResult<Response> {
    let request = parse_json(&body)?;
    relay(
        svc,
        key,
        request_id.map(|r| r.0.0).unwrap_or_default(),
        request,
        Format::OpenAi,
        None,
    )
    .await
}

/// Relays an Anthropic Messages request: converted to the OpenAI format for the upstream, and
/// the answer (whole or streamed) converted back, so the Anthropic SDK works unchanged.
pub(crate) async fn messages(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    request_id: Option<axum::Extension<RequestId>>,
    body: Bytes,
) -> ApiResult<Response> {
    let anthropic = parse_json(&body)?;
    let request = crate::convert::anthropic::request_to_openai(&anthropic)?;
    relay(
        svc,
        key,
        request_id.map(|r| r.0.0).unwrap_or_default(),
        request,
        Format::Anthropic,
        None,
    )
    .await
}

/// Relays a Gemini `generateContent` or `streamGenerateContent` call (`?alt=sse` for server-sent
/// events; otherwise the stream is one JSON array whose items arrive as they are made).
pub(crate) async fn gemini(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    request_id: Option<axum::Extension<RequestId>>,
    axum::extract::Path(model_action): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let (model, action) = model_action.rsplit_once(':').ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "Use models/{model}:generateContent.",
            "请使用 models/{model}:generateContent。",
        )
    })?;
    let stream = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("The method {action} is not supported."),
                format!("不支持方法 {action}。"),
            ));
        }
    };
    let sse = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
    let gemini = parse_json(&body)?;
    let request = crate::convert::gemini::request_to_openai(&gemini, model, stream)?;
    relay(
        svc,
        key,
        request_id.map(|r| r.0.0).unwrap_or_default(),
        request,
        Format::Gemini { sse },
        None,
    )
    .await
}

/// The wire format the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// OpenAI chat completions (the upstream's own format: passed through).
    OpenAi,
    /// Anthropic Messages (converted both ways).
    Anthropic,
    /// Gemini generateContent (converted both ways); streams as SSE or as one JSON array.
    Gemini {
        /// `?alt=sse` was asked for.
        sse: bool,
    },
}

fn parse_json(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("The body is not valid JSON: {e}"),
            format!("请求体不是合法的 JSON：{e}"),
        )
    })
}

/// Relays one chat request in `format` for `key`. An in-process caller (Chat) passes a key with
/// an empty id: it is charged to the user alone, with `conversation_id` on the record.
pub(crate) async fn relay(
    svc: Arc<RelayService>,
    key: KeyInfo,
    request_id: String,
    mut request: Value,
    format: Format,
    conversation_id: Option<String>,
) -> ApiResult<Response> {
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty() && m.len() <= 128 && !m.contains('\0'))
        .ok_or_else(|| {
            ApiError::bad_request("missing_model", "Say which model to use.", "请指定模型。")
        })?
        .to_string();
    if !request.get("messages").is_some_and(Value::is_array) {
        return Err(ApiError::bad_request(
            "missing_messages",
            "messages must be an array.",
            "messages 必须是数组。",
        ));
    }
    if !key.allows_model(&model) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "model_not_allowed",
            format!("This API key may not use {model}."),
            format!("该 API 密钥不允许使用 {model}。"),
        ));
    }
    let rates = svc.prices().get(&model).copied().ok_or_else(|| {
        ApiError::bad_request(
            "model_not_priced",
            format!("{model} has no price yet, so it cannot be billed. Ask an administrator to price it."),
            format!("{model} 尚未定价，无法计费，请联系管理员设置价格。"),
        )
    })?;
    let routed = svc.table().candidates(&key.group, &model);
    let routed: Vec<Arc<LiveChannel>> = routed
        .into_iter()
        .filter(|c| proxy::OPENAI_KINDS.contains(&c.kind.as_str()))
        .collect();
    if routed.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("No channel serves {model} for this key."),
            format!("没有可为该密钥提供 {model} 的渠道。"),
        ));
    }
    let now = Instant::now();
    let candidates: Vec<Arc<LiveChannel>> = routed
        .into_iter()
        .filter(|c| svc.breakers.allow(&c.id, now))
        .take(MAX_ATTEMPTS)
        .collect();
    if candidates.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "channels_cooling_down",
            format!(
                "Every channel for {model} failed repeatedly and is resting. Try again shortly."
            ),
            format!("{model} 的所有渠道都连续失败，正在冷却，请稍后重试。"),
        )
        .with_retry_after(crate::breaker::OPEN_FOR.as_secs()));
    }

    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let client_wants_usage = request["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let max_output = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|f| request.get(*f).and_then(Value::as_i64))
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_OUTPUT);
    let prompt_estimate = estimate_tokens(request["messages"].to_string().len());
    let estimate = rates.cost(prompt_estimate, max_output, 0).max(1);
    if let Some(tpm) = key.tpm_limit {
        let probe = svc
            .limiter
            .check(&tpm_key(&key), Quota::per_minute(tpm), 0)
            .await;
        if let Ok(decision) = probe
            && !decision.allowed
        {
            let wait = decision
                .retry_after
                .map(|d| d.as_secs().max(1))
                .unwrap_or(1);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "tokens_per_minute_exceeded",
                format!(
                    "This API key has used its {tpm} tokens per minute. Try again in {wait} s."
                ),
                format!("该 API 密钥已用完每分钟 {tpm} 个 token 的额度，请在 {wait} 秒后重试。"),
            )
            .with_retry_after(wait));
        }
    }
    let reservation = svc
        .billing
        .reserve(ReserveRequest {
            user_id: key.user_id.clone(),
            key: (!key.key_id.is_empty()).then(|| KeyLimit {
                key_id: key.key_id.clone(),
                limit: key.quota_limit,
            }),
            amount: estimate,
            reference: request_id.clone(),
        })
        .await?;

    if stream {
        let options = request.as_object_mut().map(|o| {
            o.entry("stream_options")
                .or_insert_with(|| Value::Object(Default::default()))
        });
        if let Some(Value::Object(options)) = options {
            options.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let started = Instant::now();
    let mut tried = Vec::new();
    for channel in candidates {
        if let Some(obj) = request.as_object_mut() {
            obj.insert(
                "model".into(),
                Value::String(channel.upstream_model(&model).to_string()),
            );
        }
        let upstream_body = Bytes::from(request.to_string());
        match proxy::send(&svc.http, &channel, upstream_body).await {
            Attempt::Ok(resp) => {
                svc.breakers.success(&channel.id);
                tracing::info!(channel = %channel.id, tried = ?tried, %model, stream, "upstream answered");
                let bill = Bill {
                    svc: svc.clone(),
                    key: key.clone(),
                    reservation_id: reservation.id.clone(),
                    rates,
                    model: model.clone(),
                    channel_id: channel.id.clone(),
                    request_id: request_id.clone(),
                    prompt_estimate,
                    started,
                    stream,
                    conversation_id: conversation_id.clone(),
                };
                return Ok(if stream {
                    relay_stream(resp, bill, client_wants_usage, format)
                } else {
                    relay_whole(resp, bill, format).await
                });
            }
            Attempt::Retry(reason) => {
                if svc.breakers.failure(&channel.id, Instant::now()) {
                    tracing::warn!(channel = %channel.id, "circuit opened: the channel rests after repeated failures");
                }
                tracing::warn!(channel = %channel.id, %reason, "channel failed; trying the next");
                tried.push(format!("{}: {reason}", channel.name));
            }
            Attempt::Dead(reason) => {
                svc.auto_disable(&channel.id, &reason).await;
                tried.push(format!("{}: {reason}", channel.name));
            }
            Attempt::Refused(status, body) => {
                release(&svc, &reservation.id).await;
                tracing::info!(channel = %channel.id, status, "upstream refused the request");
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                let body = match format {
                    Format::OpenAi => body,
                    Format::Anthropic => {
                        let upstream: Value = serde_json::from_slice(&body).unwrap_or_default();
                        let message = upstream["error"]["message"]
                            .as_str()
                            .unwrap_or("The upstream refused the request.");
                        Bytes::from(json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}}).to_string())
                    }
                    Format::Gemini { .. } => {
                        let upstream: Value = serde_json::from_slice(&body).unwrap_or_default();
                        let message = upstream["error"]["message"]
                            .as_str()
                            .unwrap_or("The upstream refused the request.");
                        Bytes::from(json!({"error": {"code": status.as_u16(), "message": message, "status": "INVALID_ARGUMENT"}}).to_string())
                    }
                };
                return Ok(
                    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
                );
            }
        }
    }
    release(&svc, &reservation.id).await;
    tracing::warn!(tried = ?tried, %model, "every channel failed");
    Err(ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_unavailable",
        format!("Every channel for {model} failed: {}.", tried.join("; ")),
        format!("{model} 的所有渠道都失败了：{}。", tried.join("；")),
    ))
}

fn tpm_key(key: &KeyInfo) -> String {
    format!("tpm:key:{}", key.key_id)
}

async fn release(svc: &RelayService, reservation_id: &str) {
    if let Err(error) = svc.billing.release(reservation_id).await {
        tracing::error!(%error, %reservation_id, "could not release a reservation; it will expire");
    }
}

/// Everything needed to settle once the upstream is done.
struct Bill {
    svc: Arc<RelayService>,
    key: KeyInfo,
    reservation_id: String,
    rates: Rates,
    model: String,
    channel_id: String,
    request_id: String,
    prompt_estimate: i64,
    started: Instant,
    stream: bool,
    conversation_id: Option<String>,
}

impl Bill {
    async fn settle(self, tokens: Tokens, status: &str, ttft: Option<Duration>) {
        let cost = self
            .rates
            .cost(tokens.prompt, tokens.completion, tokens.cached);
        let usage = Usage {
            cost,
            model: self.model.clone(),
            channel_id: Some(self.channel_id.clone()),
            prompt_tokens: tokens.prompt,
            completion_tokens: tokens.completion,
            cached_tokens: tokens.cached,
            duration_ms: i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX),
            ttft_ms: ttft.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            stream: self.stream,
            status: status.to_string(),
            request_id: self.request_id.clone(),
            conversation_id: self.conversation_id.clone(),
            pricing: serde_json::to_string(&self.rates).ok(),
        };
        if let Some(tpm) = self.key.tpm_limit {
            // Count what was used against the key's tokens per minute (at most a full minute's
            // worth: the budget is then empty and refills at its rate).
            let used = u32::try_from(tokens.prompt.saturating_add(tokens.completion).max(0))
                .unwrap_or(u32::MAX);
            if used > 0
                && let Err(error) = self
                    .svc
                    .limiter
                    .check(&tpm_key(&self.key), Quota::per_minute(tpm), used.min(tpm))
                    .await
            {
                tracing::warn!(%error, "tokens-per-minute limiter unavailable");
            }
        }
        match self.svc.billing.settle(&self.reservation_id, usage).await {
            Ok(s) => {
                tracing::info!(key_id = %self.key.key_id, cost = s.charged, status, "request settled")
            }
            Err(error) => {
                tracing::error!(%error, reservation_id = %self.reservation_id, "settle failed")
            }
        }
    }
}

async fn relay_whole(resp: reqwest::Response, bill: Bill, format: Format) -> Response {
    let status = resp.status();
    let bytes = match resp.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => {
            let tokens = Tokens {
                prompt: bill.prompt_estimate,
                ..Tokens::default()
            };
            tracing::warn!(%error, "upstream body broke off");
            bill.settle(tokens, "error", None).await;
            return ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "The upstream answer broke off.",
                "上游响应中断。",
            )
            .into_response();
        }
    };
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let (tokens, outcome) = match parsed.as_ref().and_then(usage_of) {
        Some(tokens) => (tokens, "ok"),
        None => {
            // No usage from the upstream: bill the prompt estimate and the text delivered.
            let text_len = parsed
                .as_ref()
                .map(|v| v["choices"].to_string().len())
                .unwrap_or(bytes.len());
            (
                Tokens {
                    prompt: bill.prompt_estimate,
                    completion: estimate_tokens(text_len),
                    cached: 0,
                },
                "estimated",
            )
        }
    };
    let ttft = bill.started.elapsed();
    let model = bill.model.clone();
    // The answer does not wait for the ledger: the charge is settled right after, by a task of
    // its own (the reservation already bounds what the request can cost).
    let tasks = bill.svc.tasks.clone();
    tasks.spawn(bill.settle(tokens, outcome, Some(ttft)));
    let bytes = match (format, parsed) {
        (Format::Anthropic, Some(value)) => {
            Bytes::from(crate::convert::anthropic::response_from_openai(&value, &model).to_string())
        }
        (Format::Gemini { .. }, Some(value)) => {
            Bytes::from(crate::convert::gemini::response_from_openai(&value, &model).to_string())
        }
        _ => bytes,
    };
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

fn relay_stream(
    resp: reqwest::Response,
    bill: Bill,
    client_wants_usage: bool,
    format: Format,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mut anthropic = (format == Format::Anthropic)
        .then(|| crate::convert::anthropic::StreamConverter::new(&bill.model));
    let gemini_sse = match format {
        Format::Gemini { sse } => Some(sse),
        _ => None,
    };
    let model = bill.model.clone();
    let mut pending_calls: Vec<(String, String)> = Vec::new();
    let mut first_item = true;
    let tasks = bill.svc.tasks.clone();
    tasks.spawn(async move {
        let mut upstream = resp.bytes_stream();
        let mut splitter = SseSplitter::default();
        let mut tokens: Option<Tokens> = None;
        let mut delivered_text = 0usize;
        let mut first_token: Option<Duration> = None;
        let mut client_gone = false;
        let mut broken = false;
        let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
        loop {
            let next = tokio::time::timeout_at(deadline, upstream.next()).await;
            let chunk = match next {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => {
                    broken = true;
                    break;
                }
            };
            for event in splitter.push(&chunk) {
                let mut forward = true;
                let mut event = event;
                if let Some(data) = event_data(&event)
                    && data != "[DONE]"
                    && let Ok(mut value) = serde_json::from_str::<Value>(&data)
                {
                    if let Some(found) = usage_of(&value) {
                        tokens = Some(found);
                    }
                    if let Some(choices) = value["choices"].as_array() {
                        for choice in choices {
                            let delta = &choice["delta"];
                            let len = delta["content"].as_str().map(str::len).unwrap_or(0)
                                + delta["reasoning_content"]
                                    .as_str()
                                    .map(str::len)
                                    .unwrap_or(0)
                                + delta
                                    .get("tool_calls")
                                    .map(|t| t.to_string().len())
                                    .unwrap_or(0);
                            if len > 0 && first_token.is_none() {
                                first_token = Some(bill.started.elapsed());
                            }
                            delivered_text += len;
                        }
                    }
                    if let Some(converter) = anthropic.as_mut() {
                        let events = converter.chunk(&value);
                        forward = !events.is_empty();
                        event = Bytes::from(events.trim_end_matches('\n').to_string());
                    } else if let Some(sse) = gemini_sse {
                        match crate::convert::gemini::chunk_from_openai(&value, &model, &mut pending_calls) {
                            Some(item) => {
                                event = Bytes::from(if sse {
                                    format!("data: {item}")
                                } else {
                                    format!("{}{item}", if first_item { "[" } else { "," })
                                });
                                first_item = false;
                            }
                            None => forward = false,
                        }
                    } else if !client_wants_usage
                        && let Some(obj) = value.as_object_mut()
                        && obj.remove("usage").is_some()
                    {
                        if obj
                            .get("choices")
                            .and_then(Value::as_array)
                            .is_some_and(Vec::is_empty)
                        {
                            forward = false;
                        } else {
                            event = Bytes::from(format!("data: {value}"));
                        }
                    }
                }
                if (anthropic.is_some() || gemini_sse.is_some()) && event_data(&event).as_deref() == Some("[DONE]") {
                    // Anthropic streams end with message_stop, sent below once usage is known.
                    forward = false;
                }
                if forward && !client_gone {
                    let mut framed = Vec::with_capacity(event.len() + 2);
                    framed.extend_from_slice(&event);
                    framed.extend_from_slice(b"\n\n");
                    if tx.send(Bytes::from(framed)).await.is_err() {
                        // The client left; read on to the upstream's own usage and bill that.
                        client_gone = true;
                        tracing::info!(reservation_id = %bill.reservation_id, "client disconnected mid-stream; draining upstream");
                    }
                }
            }
        }
        let (tokens, status) = match (tokens, broken) {
            (Some(tokens), false) => (tokens, if client_gone { "client_closed" } else { "ok" }),
            (Some(tokens), true) => (tokens, "partial"),
            (None, _) => {
                let estimated = Tokens {
                    prompt: bill.prompt_estimate,
                    completion: estimate_tokens(delivered_text),
                    cached: 0,
                };
                (estimated, if broken { "partial" } else { "estimated" })
            }
        };
        if !client_gone {
            let tail = match (anthropic.as_mut(), broken) {
                (Some(_), true) => Some(crate::convert::anthropic::StreamConverter::error(
                    "The upstream stream broke off.",
                )),
                (Some(converter), false) => Some(converter.finish()),
                (None, broken) if gemini_sse.is_some() => {
                    let open = if first_item { "[" } else { "," };
                    let error = json!({"error": {"code": 502, "message": "The upstream stream broke off.", "status": "UNAVAILABLE"}});
                    match (gemini_sse, broken) {
                        (Some(true), true) => Some(format!("data: {error}\n\n")),
                        (Some(true), false) => None,
                        (_, true) => Some(format!("{open}{error}]")),
                        (_, false) => Some(if first_item { "[]".to_string() } else { "]".to_string() }),
                    }
                }
                (None, true) => {
                    let error = json!({"error": {"message": "The upstream stream broke off.", "type": "server_error", "param": null, "code": "upstream_error"}});
                    Some(format!("data: {error}\n\n"))
                }
                (None, false) => None,
            };
            if let Some(tail) = tail {
                let _ = tx.send(Bytes::from(tail)).await;
            }
        }
        drop(tx);
        bill.settle(tokens, status, first_token).await;
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    let content_type = if format == (Format::Gemini { sse: false }) {
        "application/json"
    } else {
        "text/event-stream"
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok)))
}
