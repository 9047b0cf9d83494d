//! The chat pipeline behind `POST /v1/chat/completions`, `POST /v1/messages` and Gemini's
//! `generateContent`: every client format is converted to the pivot (OpenAI chat), routed to a
//! channel of any kind through its [`crate::upstream`] adapter, and billed through reserve →
//! settle.
//!
//! An Anthropic client on an Anthropic channel, or a Gemini client on a Gemini channel, is
//! passed through: its body goes as written (model mapped) and the vendor's answer comes back
//! unchanged, while a decoder reads the usage for the bill.
//!
//! For OpenAI-format upstreams the body is forwarded as the client wrote it (unknown fields
//! included); only the model is mapped and, for streams, `stream_options.include_usage` is
//! switched on so the bill comes from the upstream's own count. A client that did not ask for
//! usage never sees that extra chunk. The stream is read by a task of its own: if the client
//! hangs up, the task reads on to the upstream's final usage and bills that.

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
use skein_core::request::RequestId;
use skein_core::{ApiError, ApiResult};

use crate::RelayService;
use crate::estimate;
use crate::pricing::Price;
use crate::proxy::{Attempt, SseSplitter, Tokens, estimate_tokens, event_data, usage_of};
use crate::upstream::{self, StreamDecoder, Upstream};

/// Relays an OpenAI chat completion.
pub(crate) async fn chat_completions(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    request_id: Option<axum::Extension<RequestId>>,
    body: Bytes,
) -> ApiResult<Response> {
    let request = super::meter::parse_json(&body)?;
    relay(
        svc,
        key,
        request_id.map(|r| r.0.0).unwrap_or_default(),
        request,
        Format::OpenAi,
        InProcess::default(),
    )
    .await
}

/// Relays an Anthropic Messages request: converted to the OpenAI format for the upstream, and
/// the answer (whole or streamed) converted back, so the Anthropic SDK works unchanged.
pub(crate) async fn messages(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    request_id: Option<axum::Extension<RequestId>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let anthropic = super::meter::parse_json(&body)?;
    // Beta features a client turned on travel with its body to Anthropic channels.
    let betas: Vec<(String, String)> = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| ("anthropic-beta".to_string(), v.to_string()))
        .collect();
    let stream = anthropic["stream"].as_bool() == Some(true);
    let model = anthropic["model"].as_str().unwrap_or("").to_string();
    let (request, mut native) = with_native(
        crate::convert::anthropic::request_to_openai(&anthropic),
        anthropic,
        &model,
        stream,
        anthropic_max_tokens,
    );
    native.headers = betas;
    relay_with(
        svc,
        key,
        request_id.map(|r| r.0.0).unwrap_or_default(),
        request?,
        Format::Anthropic,
        InProcess::default(),
        Some(native),
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
    let gemini = super::meter::parse_json(&body)?;
    let (request, native) = with_native(
        crate::convert::gemini::request_to_openai(&gemini, model, stream),
        gemini,
        model,
        stream,
        |g| g["generationConfig"]["maxOutputTokens"].as_i64(),
    );
    relay_with(
        svc,
        key,
        request_id.map(|r| r.0.0).unwrap_or_default(),
        request?,
        Format::Gemini { sse },
        InProcess::default(),
        Some(native),
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

/// A client's request in its own vendor format, kept for a channel of that same vendor: sent
/// as written (model mapped), so fields the pivot cannot express (Anthropic's `top_k`,
/// `thinking` or `cache_control`, Gemini's `safetySettings`) still reach it.
pub(crate) struct Native {
    body: Value,
    /// Client headers to send along (Anthropic's `anthropic-beta`).
    headers: Vec<(String, String)>,
    /// Why the pivot cannot carry this request: channels of other kinds refuse it with this.
    pivot_error: Option<ApiError>,
}

fn anthropic_max_tokens(body: &Value) -> Option<i64> {
    body["max_tokens"].as_i64()
}

/// The pivot request to route and reserve with, and the native body. When the client's
/// request has something the pivot cannot carry, routing goes on with a stand-in pivot (the
/// model, the whole body as the prompt estimate, the output limit) so a channel of the
/// client's own vendor can still serve it; other channels refuse it with the conversion's
/// error. The stand-in fails only without a model.
fn with_native(
    converted: ApiResult<Value>,
    body: Value,
    model: &str,
    stream: bool,
    max_tokens: fn(&Value) -> Option<i64>,
) -> (ApiResult<Value>, Native) {
    match converted {
        Ok(pivot) => (
            Ok(pivot),
            Native {
                body,
                headers: Vec::new(),
                pivot_error: None,
            },
        ),
        Err(error) => {
            let mut stand_in = json!({"model": model, "stream": stream,
                "messages": [{"role": "user", "content": body.to_string()}]});
            if let Some(n) = max_tokens(&body) {
                stand_in["max_tokens"] = json!(n);
            }
            let pivot =
                if error.code() == "unsupported_content" || error.code() == "unsupported_field" {
                    Ok(stand_in)
                } else {
                    Err(error.clone())
                };
            (
                pivot,
                Native {
                    body,
                    headers: Vec::new(),
                    pivot_error: Some(error),
                },
            )
        }
    }
}

/// What an in-process caller (Chat) adds to a relayed call.
#[derive(Default)]
pub(crate) struct InProcess {
    /// Recorded with the charge.
    pub conversation_id: Option<String>,
    /// Stops the call: the upstream connection is closed and what was delivered is billed.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
    /// Receives the exact charge once settled.
    pub charge: Option<tokio::sync::oneshot::Sender<skein_core::api::RelayCharge>>,
}

/// Relays one chat request in `format` for `key`. An in-process caller (Chat) passes a key with
/// an empty id: it is charged to the user alone, with the conversation on the record.
pub(crate) async fn relay(
    svc: Arc<RelayService>,
    key: KeyInfo,
    request_id: String,
    request: Value,
    format: Format,
    in_process: InProcess,
) -> ApiResult<Response> {
    relay_with(svc, key, request_id, request, format, in_process, None).await
}

/// [`relay`], with the client's own body for channels of the client's vendor.
///
/// Every refusal (a bad request, an unknown or unpriced model, a field that would change the
/// vendor's price, too little quota) comes before the hold. After the hold, the rest runs on a
/// task of the service's own: a client that hangs up before the first byte, or the gateway's
/// timeout, drops only the wait for the answer, so whatever the upstream does is still
/// settled and no hold outlives its request.
async fn relay_with(
    svc: Arc<RelayService>,
    key: KeyInfo,
    request_id: String,
    mut request: Value,
    format: Format,
    in_process: InProcess,
    native: Option<Native>,
) -> ApiResult<Response> {
    let plan = super::meter::plan_for(
        &svc,
        &key,
        request.get("model").and_then(Value::as_str),
        |c| upstream::for_kind(&c.kind).is_some(),
    )
    .await?;
    if !request.get("messages").is_some_and(Value::is_array) {
        return Err(ApiError::bad_request(
            "missing_messages",
            "messages must be an array.",
            "messages 必须是数组。",
        ));
    }
    super::fields::refuse_unpriced(
        &request,
        format,
        native.as_ref().map(|n| (&n.body, &n.headers)),
        &svc.tuning.extra_request_fields,
    )?;

    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let client_wants_usage = request["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let kinds: Vec<&str> = plan.candidates.iter().map(|c| c.kind.as_str()).collect();
    let max_output = svc.tuning.output.max_output(&plan.model);
    let (request_back, prompt) = count_prompt(request).await?;
    request = request_back;
    let mut hold = estimate::hold(&request, prompt, &kinds, max_output);
    if let (Format::Gemini { .. }, Some(n)) = (format, native.as_ref()) {
        // A Gemini client on a Gemini channel may ask for several candidates.
        let candidates = n.body["generationConfig"]["candidateCount"]
            .as_i64()
            .unwrap_or(1);
        hold.choices = hold.choices.max(candidates.clamp(1, 128));
    }
    let reserve = ReserveRequest {
        user_id: key.user_id.clone(),
        key: (!key.key_id.is_empty()).then(|| KeyLimit {
            key_id: key.key_id.clone(),
            limit: key.quota_limit,
        }),
        amount: hold.amount(&plan.rates),
        min_amount: hold.min_amount(&plan.rates),
        reference: request_id.clone(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task_svc = svc.clone();
    // From the hold on, the work is the service's, not the handler's: a hold taken by a
    // request whose client is gone is still settled or released.
    svc.tasks.spawn(async move {
        let answer = match task_svc.billing.reserve(reserve).await {
            Ok(reservation) => {
                let job = Job::new(
                    task_svc,
                    key,
                    request_id,
                    request,
                    format,
                    in_process,
                    native,
                    plan,
                    hold,
                    reservation,
                    stream,
                    client_wants_usage,
                );
                job.run().await
            }
            Err(refusal) => Err(refusal),
        };
        // Nobody may be waiting any more; the bill is settled either way.
        let _ = tx.send(answer);
    });
    rx.await
        .unwrap_or_else(|_| Err(ApiError::internal("the relay task ended without an answer")))
}

impl Job {
    /// The job for a request whose hold was granted: the output the grant pays for is written
    /// into the request (the pivot and the client's own body) as the vendor's limit.
    #[allow(clippy::too_many_arguments)]
    fn new(
        svc: Arc<RelayService>,
        key: KeyInfo,
        request_id: String,
        mut request: Value,
        format: Format,
        in_process: InProcess,
        mut native: Option<Native>,
        plan: super::meter::Plan,
        hold: estimate::Hold,
        reservation: skein_core::api::Reservation,
        stream: bool,
        client_wants_usage: bool,
    ) -> Job {
        let output = hold.output_for(&plan.rates, reservation.amount);
        estimate::write_limit(&mut request, &plan.model, output);
        if let Some(native) = native.as_mut() {
            match format {
                Format::Anthropic => set(&mut native.body, &["max_tokens"], output),
                Format::Gemini { .. } => set(
                    &mut native.body,
                    &["generationConfig", "maxOutputTokens"],
                    output,
                ),
                Format::OpenAi => {}
            }
        }
        if stream {
            let options = request.as_object_mut().map(|o| {
                o.entry("stream_options")
                    .or_insert_with(|| Value::Object(Default::default()))
            });
            if let Some(Value::Object(options)) = options {
                options.insert("include_usage".into(), Value::Bool(true));
            }
        }
        Job {
            keep_alive: Some(svc.renewals.keep(&reservation)),
            svc,
            key,
            request_id,
            request,
            format,
            in_process,
            native,
            plan,
            reservation_id: reservation.id,
            prompt_estimate: hold.prompt,
            output_cap: output.saturating_mul(hold.choices),
            choices: hold.choices,
            stream,
            client_wants_usage,
            started: Instant::now(),
        }
    }
}

/// Counts a request's prompt; a large one on the blocking pool, so a megabyte of text does not
/// hold up the runtime's other requests.
async fn count_prompt(request: Value) -> ApiResult<(Value, i64)> {
    if crate::proxy::json_len(&request["messages"]) <= estimate::BLOCKING_ABOVE {
        let tokens = estimate::prompt_tokens(&request);
        return Ok((request, tokens));
    }
    tokio::task::spawn_blocking(move || {
        let tokens = estimate::prompt_tokens(&request);
        (request, tokens)
    })
    .await
    // Only a panic in the tokenizer ends the task early; nothing was held yet.
    .map_err(ApiError::internal)
}

/// Sets a number at a path of objects, creating the objects on the way; leaves a body whose
/// path runs through something else (the vendor refuses such a body anyway).
fn set(body: &mut Value, path: &[&str], value: i64) {
    let mut at = body;
    for (i, key) in path.iter().enumerate() {
        if at.is_null() {
            *at = Value::Object(Default::default());
        }
        let Some(obj) = at.as_object_mut() else {
            return;
        };
        if i + 1 == path.len() {
            obj.insert((*key).to_string(), Value::from(value));
            return;
        }
        at = obj.entry(*key).or_insert(Value::Null);
    }
}

/// One held chat request on its way through the channels.
struct Job {
    /// Renews the hold until the request is settled or released.
    keep_alive: Option<crate::renew::KeepAlive>,
    svc: Arc<RelayService>,
    key: KeyInfo,
    request_id: String,
    request: Value,
    format: Format,
    in_process: InProcess,
    native: Option<Native>,
    plan: super::meter::Plan,
    reservation_id: String,
    prompt_estimate: i64,
    /// Completion tokens (all choices) the hold pays for: a stream is ended there.
    output_cap: i64,
    /// Answers asked for (`n`).
    choices: i64,
    stream: bool,
    client_wants_usage: bool,
    started: Instant,
}

impl Job {
    /// Tries the plan's channels in order: connect errors, timeouts, 429 and 5xx move on; a
    /// rejected key or an empty account disables the channel and moves on; another 4xx is the
    /// client's to see. When nothing is delivered the hold is released.
    async fn run(mut self) -> ApiResult<Response> {
        let svc = self.svc.clone();
        let model = self.plan.model.clone();
        let format = self.format;
        let stream = self.stream;
        let mut tried = Vec::new();
        // A request one kind of upstream cannot carry may still suit another kind of channel;
        // if none can carry it, the client hears why.
        let mut cannot_carry: Option<ApiError> = None;
        let mut attempts = 0;
        let candidates = std::mem::take(&mut self.plan.candidates);
        for channel in candidates {
            let Some(adapter) = upstream::for_kind(&channel.kind) else {
                continue;
            };
            let upstream_model = channel.upstream_model(&model).to_string();
            if let Some(obj) = self.request.as_object_mut() {
                obj.insert("model".into(), Value::String(upstream_model.clone()));
            }
            // A channel of the client's own vendor gets the client's body as written.
            let native_here = self.native.as_ref().filter(|_| {
                matches!(
                    (format, channel.kind.as_str()),
                    (Format::Anthropic, "anthropic") | (Format::Gemini { .. }, "gemini")
                )
            });
            let sent = match (
                native_here,
                self.native.as_ref().and_then(|n| n.pivot_error.clone()),
            ) {
                (Some(n), _) => {
                    upstream::send_native(
                        &svc.http,
                        &channel,
                        &channel.with_overrides(&n.body),
                        &upstream_model,
                        stream,
                        &n.headers,
                    )
                    .await
                }
                (None, Some(error)) => Some(Err(error)),
                (None, None) => None,
            };
            let sent = match sent {
                Some(sent) => sent,
                None => {
                    upstream::send(
                        &svc.http,
                        &channel,
                        &channel.with_overrides(&self.request),
                        svc.images,
                    )
                    .await
                }
            };
            let attempt = match sent {
                Ok(attempt) => attempt,
                Err(error) => {
                    tracing::info!(channel = %channel.id, code = error.code(), "the request cannot be carried to this channel");
                    tried.push(format!("{}: {error}", channel.name));
                    cannot_carry.get_or_insert(error);
                    continue;
                }
            };
            attempts += 1;
            let native = native_here.is_some();
            match attempt {
                Attempt::Ok(resp) => {
                    svc.breakers.success(&channel.id);
                    tracing::info!(channel = %channel.id, tried = ?tried, %model, stream, "upstream answered");
                    let bill = Bill {
                        _keep_alive: self.keep_alive.take(),
                        svc: svc.clone(),
                        key: self.key.clone(),
                        reservation_id: self.reservation_id.clone(),
                        rates: self.plan.rates.clone(),
                        model: model.clone(),
                        channel_id: channel.id.clone(),
                        request_id: self.request_id.clone(),
                        prompt_estimate: self.prompt_estimate,
                        started: self.started,
                        stream,
                        // Kept only for streams: a stream that breaks before the vendor's usage
                        // is billed by counting the prompt and what was delivered. The request
                        // is done with once an upstream answered: move, not copy.
                        messages: stream
                            .then(|| self.request.get_mut("messages").map(Value::take))
                            .flatten(),
                        conversation_id: self.in_process.conversation_id.take(),
                        cancel: self.in_process.cancel.take(),
                        charge: self.in_process.charge.take(),
                        idle: upstream::idle_timeout(&channel),
                        output_cap: self.output_cap,
                        choices: self.choices,
                    };
                    return Ok(if stream {
                        let decoder = adapter.decoder(&upstream_model);
                        relay_stream(resp, bill, self.client_wants_usage, format, decoder, native)
                    } else {
                        relay_whole(resp, bill, format, adapter, &upstream_model, native).await
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
                    svc.disable_if_confirmed(&channel, &model, &reason).await;
                    tried.push(format!("{}: {reason}", channel.name));
                }
                Attempt::Refused(status, body) => {
                    release(&svc, &self.reservation_id).await;
                    tracing::info!(channel = %channel.id, status, "upstream refused the request");
                    return Ok(refused(status, body, format, adapter, native));
                }
            }
        }
        release(&svc, &self.reservation_id).await;
        if attempts == 0
            && let Some(error) = cannot_carry
        {
            return Err(error);
        }
        Err(super::meter::all_failed(&model, &tried))
    }
}

/// The upstream's own refusal (a 4xx), in the client's format.
fn refused(
    status: u16,
    body: Bytes,
    format: Format,
    adapter: &dyn Upstream,
    native: bool,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    if native {
        // The client speaks this vendor's format: its error as the vendor wrote it.
        return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let body = adapter.error_to_openai(body);
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
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn release(svc: &RelayService, reservation_id: &str) {
    if let Err(error) = svc.billing.release(reservation_id).await {
        tracing::error!(%error, %reservation_id, "could not release a reservation; it will expire");
    }
}

/// Everything needed to settle once the upstream is done.
struct Bill {
    /// Renews the hold until the bill is settled (dropped with it).
    _keep_alive: Option<crate::renew::KeepAlive>,
    svc: Arc<RelayService>,
    key: KeyInfo,
    reservation_id: String,
    rates: Price,
    model: String,
    channel_id: String,
    request_id: String,
    prompt_estimate: i64,
    started: Instant,
    stream: bool,
    messages: Option<Value>,
    conversation_id: Option<String>,
    cancel: Option<tokio_util::sync::CancellationToken>,
    charge: Option<tokio::sync::oneshot::Sender<skein_core::api::RelayCharge>>,
    /// The serving channel's idle timeout.
    idle: Duration,
    /// Completion tokens (all choices) the hold pays for.
    output_cap: i64,
    /// Answers asked for (`n`).
    choices: i64,
}

impl Bill {
    async fn settle(mut self, tokens: Tokens, status: &str, ttft: Option<Duration>) {
        let cost = self.rates.cost_counts(
            &crate::pricing::Counts {
                prompt: tokens.prompt,
                completion: tokens.completion,
                cached: tokens.cached,
                cache_write: tokens.cache_write,
                cache_write_1h: tokens.cache_write_1h,
            },
            1,
        );
        let charge = self.charge.take();
        let usage = Usage {
            cost,
            model: self.model.clone(),
            channel_id: Some(self.channel_id.clone()),
            prompt_tokens: tokens.prompt,
            completion_tokens: tokens.completion,
            cached_tokens: tokens.cached,
            cache_write_tokens: tokens.cache_write.saturating_add(tokens.cache_write_1h),
            duration_ms: i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX),
            ttft_ms: ttft.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            stream: self.stream,
            status: super::meter::record_status(status, &self.rates),
            request_id: self.request_id.clone(),
            conversation_id: self.conversation_id.clone(),
            pricing: self.rates.record(),
        };
        super::meter::count_tpm(
            &self.svc,
            &self.key,
            tokens.prompt.saturating_add(tokens.completion),
        )
        .await;
        match self.svc.billing.settle(&self.reservation_id, usage).await {
            Ok(s) => {
                tracing::info!(key_id = %self.key.key_id, cost = s.charged, status, "request settled");
                if let Some(charge) = charge {
                    let _ = charge.send(skein_core::api::RelayCharge {
                        prompt_tokens: tokens.prompt,
                        completion_tokens: tokens.completion,
                        cost: s.charged,
                        status: status.to_string(),
                    });
                }
            }
            Err(error) => {
                tracing::error!(%error, reservation_id = %self.reservation_id, "settle failed")
            }
        }
    }
}

async fn relay_whole(
    resp: reqwest::Response,
    bill: Bill,
    format: Format,
    adapter: &dyn Upstream,
    upstream_model: &str,
    native: bool,
) -> Response {
    let status = resp.status();
    let bytes = match upstream::read_body(resp, bill.idle).await {
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
    // An OpenAI answer for an OpenAI client goes out as the upstream wrote it: only its usage
    // is read (skipping the rest as it is parsed). Any other answer, or one without usage, is
    // parsed whole.
    let passthrough = !native && format == Format::OpenAi && adapter.speaks_pivot();
    let quick = passthrough
        .then(|| super::meter::usage_in(&bytes))
        .flatten()
        .and_then(|u| crate::proxy::usage_tokens(&u));
    let parsed: Option<Value> = if quick.is_some() {
        None
    } else {
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .map(|v| adapter.response(v, upstream_model))
    };
    let (tokens, outcome) = match quick.or_else(|| parsed.as_ref().and_then(usage_of)) {
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
                    ..Tokens::default()
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
        // The client speaks the vendor's format: the answer as the vendor wrote it.
        _ if native => bytes,
        (Format::Anthropic, Some(value)) => {
            Bytes::from(crate::convert::anthropic::response_from_openai(&value, &model).to_string())
        }
        (Format::Gemini { .. }, Some(value)) => {
            Bytes::from(crate::convert::gemini::response_from_openai(&value, &model).to_string())
        }
        (Format::OpenAi, Some(value)) if !adapter.speaks_pivot() => Bytes::from(value.to_string()),
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

/// What a stream's reader task keeps while it turns pivot events into the client's format.
struct StreamState {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    anthropic: Option<crate::convert::anthropic::StreamConverter>,
    gemini_sse: Option<bool>,
    model: String,
    pending_calls: Vec<(String, String)>,
    first_item: bool,
    client_wants_usage: bool,
    tokens: Option<Tokens>,
    delivered_text: usize,
    /// The text delivered (up to [`DELIVERED_KEPT`] bytes), to count with the tokenizer.
    delivered: String,
    first_token: Option<Duration>,
    client_gone: bool,
    started: Instant,
    reservation_id: String,
    /// The client speaks the upstream's format: upstream events go to it as they are, and
    /// pivot events only count usage.
    native: bool,
    /// How long a write may wait on a client that stopped reading.
    write_timeout: Duration,
    /// The stream's closing events (`[DONE]`, `message_stop`), sent only once the charge is
    /// committed: a client never holds a finished answer the ledger does not.
    tail: Vec<Bytes>,
    /// Gemini streams have no closing event, so their last item is the one held back: each
    /// item waits here until the next arrives.
    held: Option<Bytes>,
    /// Completion tokens (all choices) the hold pays for, and those counted so far.
    output_cap: i64,
    output_seen: i64,
    /// Output text not counted yet.
    uncounted: String,
    /// The output reached what was held: the stream is ended here.
    cut: bool,
}

impl StreamState {
    /// Sends bytes to the client unless it left. A client that stops reading gets a bounded
    /// wait and is then dropped: the reader never stalls on it, and reads on to the bill.
    async fn send(&mut self, bytes: Bytes) {
        if self.client_gone {
            return;
        }
        if self
            .tx
            .send_timeout(bytes, self.write_timeout)
            .await
            .is_err()
        {
            // The client left; read on to the upstream's own usage and bill that.
            self.client_gone = true;
            tracing::info!(reservation_id = %self.reservation_id, "client disconnected or stopped reading mid-stream; draining upstream");
        }
    }

    /// Sends one client event: a closing one is kept for after the charge, and a Gemini item
    /// waits for the next.
    async fn emit(&mut self, bytes: Bytes, closing: bool) {
        if closing {
            self.tail.push(bytes);
        } else if self.gemini_sse.is_some() {
            if let Some(previous) = self.held.replace(bytes) {
                self.send(previous).await;
            }
        } else {
            self.send(bytes).await;
        }
    }

    /// Sends one upstream event as it came (re-framed for Gemini's JSON-array streams).
    async fn send_native(&mut self, event: &Bytes) {
        if self.cut {
            return;
        }
        if self.gemini_sse == Some(false) {
            let Some(data) = event_data(event) else {
                return;
            };
            let item = format!("{}{data}", if self.first_item { "[" } else { "," });
            self.first_item = false;
            self.emit(Bytes::from(item), false).await;
            return;
        }
        let closing = self.anthropic.is_some()
            && event_data(event).is_some_and(|d| d.contains("\"message_stop\""));
        let mut framed = Vec::with_capacity(event.len() + 2);
        framed.extend_from_slice(event);
        framed.extend_from_slice(b"\n\n");
        self.emit(Bytes::from(framed), closing).await;
    }

    /// Reads usage and delivered text from one pivot event and sends it on in the client's
    /// format; marks the stream cut once the output reaches what was held.
    async fn forward(&mut self, event: Bytes) {
        if self.cut {
            return;
        }
        let mut forward = true;
        let mut event = event;
        if let Some(data) = event_data(&event)
            && data != "[DONE]"
            && let Ok(mut value) = serde_json::from_str::<Value>(&data)
        {
            if let Some(found) = usage_of(&value) {
                self.tokens = Some(found);
            }
            if let Some(choices) = value["choices"].as_array() {
                for choice in choices {
                    let delta = &choice["delta"];
                    let content = delta["content"].as_str().unwrap_or("");
                    let reasoning = delta["reasoning_content"].as_str().unwrap_or("");
                    let calls = delta.get("tool_calls").map(Value::to_string);
                    let len = content.len()
                        + reasoning.len()
                        + calls.as_ref().map(String::len).unwrap_or(0);
                    if len > 0 && self.first_token.is_none() {
                        self.first_token = Some(self.started.elapsed());
                    }
                    if len > 0 {
                        // Tool calls count by their names and arguments, as vendors count
                        // them, not by the JSON that frames each delta.
                        self.uncounted.push_str(content);
                        self.uncounted.push_str(reasoning);
                        for call in delta["tool_calls"].as_array().into_iter().flatten() {
                            let f = &call["function"];
                            self.uncounted.push_str(f["name"].as_str().unwrap_or(""));
                            self.uncounted
                                .push_str(f["arguments"].as_str().unwrap_or(""));
                        }
                    }
                    self.delivered_text += len;
                    if self.delivered.len() < DELIVERED_KEPT {
                        self.delivered.push_str(content);
                        self.delivered.push_str(reasoning);
                        if let Some(calls) = &calls {
                            self.delivered.push_str(calls);
                        }
                    }
                }
            }
            // Counted a few hundred bytes at a time: a token split across deltas counts once,
            // and the tokenizer sees each byte once.
            if self.uncounted.len() >= COUNT_EVERY {
                let counted = skein_text::tokens::count_tokens(&self.uncounted);
                self.output_seen = self
                    .output_seen
                    .saturating_add(i64::try_from(counted).unwrap_or(i64::MAX));
                self.uncounted.clear();
            }
            if self.output_seen > cut_at(self.output_cap) {
                // The vendor wrote past the limit it was sent: what was held is spent.
                self.cut = true;
                tracing::warn!(reservation_id = %self.reservation_id, cap = self.output_cap, "the upstream wrote past the held output; ending the stream");
            }
            if self.native {
                return;
            }
            if let Some(converter) = self.anthropic.as_mut() {
                let events = converter.chunk(&value);
                forward = !events.is_empty();
                event = Bytes::from(events.trim_end_matches('\n').to_string());
            } else if let Some(sse) = self.gemini_sse {
                match crate::convert::gemini::chunk_from_openai(
                    &value,
                    &self.model,
                    &mut self.pending_calls,
                ) {
                    Some(item) => {
                        event = Bytes::from(if sse {
                            format!("data: {item}")
                        } else {
                            format!("{}{item}", if self.first_item { "[" } else { "," })
                        });
                        self.first_item = false;
                    }
                    None => forward = false,
                }
            } else if !self.client_wants_usage
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
        let done = event_data(&event).as_deref() == Some("[DONE]");
        if done && (self.anthropic.is_some() || self.gemini_sse.is_some()) {
            // Anthropic streams end with message_stop, sent once usage is known; Gemini's
            // simply end.
            forward = false;
        }
        if self.native {
            return;
        }
        if forward {
            let mut framed = Vec::with_capacity(event.len() + 2);
            framed.extend_from_slice(&event);
            framed.extend_from_slice(b"\n\n");
            self.emit(Bytes::from(framed), done).await;
        }
    }

    /// The events that end a stream cut at its held output the way a vendor ends one that hit
    /// its `max_tokens`, in the client's format: a `length` finish, the usage, the end.
    async fn end_cut(&mut self, tokens: Tokens, choices: i64) {
        let id = format!("chatcmpl-{}", self.reservation_id);
        let created = skein_core::ids::now_ms() / 1000;
        let usage =
            crate::convert::openai_usage(tokens.prompt, tokens.completion, tokens.cached, 0);
        if self.native {
            let tail = if self.anthropic.is_some() {
                format!(
                    "event: message_delta\ndata: {}\n\nevent: message_stop\ndata: {}\n\n",
                    json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": null},
                        "usage": {"output_tokens": tokens.completion}}),
                    json!({"type": "message_stop"})
                )
            } else {
                let item = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS", "index": 0}],
                    "usageMetadata": {"promptTokenCount": tokens.prompt, "candidatesTokenCount": tokens.completion,
                        "totalTokenCount": tokens.prompt + tokens.completion}});
                match self.gemini_sse {
                    Some(false) => format!("{}{item}", if self.first_item { "[" } else { "," }),
                    _ => format!("data: {item}\n\n"),
                }
            };
            self.first_item = false;
            if let Some(previous) = self.held.take() {
                self.send(previous).await;
            }
            self.tail.push(Bytes::from(tail));
            return;
        }
        // The closing events below are not output: let them through.
        self.cut = false;
        self.output_cap = i64::MAX;
        let finishes: Vec<Value> = (0..choices.max(1))
            .map(|i| json!({"index": i, "delta": {}, "logprobs": null, "finish_reason": "length"}))
            .collect();
        let finish = json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": self.model, "choices": finishes});
        let usage = crate::convert::openai_usage_chunk(&id, &self.model, created, usage);
        for event in [
            format!("data: {finish}"),
            format!("data: {usage}"),
            "data: [DONE]".to_string(),
        ] {
            self.forward(Bytes::from(event)).await;
        }
        self.cut = true;
    }
}

/// Where a stream is cut: a fifth (and a few tokens) past the output held, because tokens are
/// counted here delta by delta with o200k and a vendor's own tokenizer differs; a vendor that
/// honours the limit it was sent stops well before. A charge beyond the hold is still bounded
/// by the overdraft.
fn cut_at(cap: i64) -> i64 {
    cap.saturating_add(cap / 5).saturating_add(32)
}

/// Bytes of output gathered before they are counted against the hold.
const COUNT_EVERY: usize = 256;

/// Most delivered text kept for counting; beyond it the rest is estimated from its length.
const DELIVERED_KEPT: usize = 1 << 20;

/// Tokens of a stream that ended without the vendor's usage: the prompt and the text that was
/// delivered, counted with the tokenizer.
fn counted(bill: &Bill, state: &StreamState) -> Tokens {
    let prompt = bill
        .messages
        .as_ref()
        .map(|m| i64::try_from(skein_text::tokens::count_messages(m, 765)).unwrap_or(i64::MAX))
        .unwrap_or(bill.prompt_estimate);
    let beyond = state.delivered_text.saturating_sub(state.delivered.len());
    let completion = i64::try_from(skein_text::tokens::count_tokens(&state.delivered))
        .unwrap_or(i64::MAX)
        .saturating_add(if beyond > 0 {
            estimate_tokens(beyond)
        } else {
            0
        });
    Tokens {
        prompt,
        completion,
        ..Tokens::default()
    }
}

fn relay_stream(
    resp: reqwest::Response,
    bill: Bill,
    client_wants_usage: bool,
    format: Format,
    mut decoder: Box<dyn StreamDecoder>,
    native: bool,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mut state = StreamState {
        tx,
        anthropic: (format == Format::Anthropic)
            .then(|| crate::convert::anthropic::StreamConverter::new(&bill.model)),
        gemini_sse: match format {
            Format::Gemini { sse } => Some(sse),
            _ => None,
        },
        model: bill.model.clone(),
        pending_calls: Vec::new(),
        first_item: true,
        client_wants_usage,
        tokens: None,
        delivered_text: 0,
        delivered: String::new(),
        first_token: None,
        client_gone: false,
        started: bill.started,
        reservation_id: bill.reservation_id.clone(),
        native,
        write_timeout: bill.svc.tuning.client_write_timeout,
        tail: Vec::new(),
        held: None,
        output_cap: bill.output_cap,
        output_seen: 0,
        uncounted: String::new(),
        cut: false,
    };
    let tasks = bill.svc.tasks.clone();
    tasks.spawn(async move {
        let mut upstream = resp.bytes_stream();
        let mut splitter = SseSplitter::default();
        let mut broken = false;
        // The upstream said in its stream that it failed (a passed-through client heard it).
        let mut reported = false;
        let idle = bill.idle;
        let cancel = bill.cancel.clone();
        let cancelled = async move {
            match cancel {
                Some(cancel) => cancel.cancelled_owned().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(cancelled);
        let mut stopped = false;
        'read: loop {
            let next = tokio::select! {
                biased;
                () = &mut cancelled => {
                    // The in-process caller stopped the answer: drop the upstream connection
                    // so the vendor stops generating, and bill what was delivered.
                    stopped = true;
                    break;
                }
                next = tokio::time::timeout(idle, upstream.next()) => next,
            };
            let chunk = match next {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => {
                    broken = true;
                    break;
                }
            };
            for event in splitter.push(&chunk) {
                if state.native {
                    state.send_native(&event).await;
                }
                match decoder.event(event) {
                    Ok(events) => {
                        for event in events {
                            state.forward(event).await;
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(%reason, "the upstream reported an error mid-stream");
                        broken = true;
                        reported = true;
                        break 'read;
                    }
                }
                if state.cut {
                    break 'read;
                }
            }
        }
        // Closing the connection stops a vendor that writes past its limit.
        drop(upstream);
        let cut = state.cut;
        let tail = if broken || stopped || cut {
            decoder.partial()
        } else {
            decoder.finish()
        };
        for event in tail {
            state.forward(event).await;
        }
        let (tokens, status) = match (state.tokens, broken) {
            _ if cut => {
                // Billed for the output that was held (the vendor's count never came).
                let mut tokens = counted(&bill, &state);
                tokens.completion = tokens.completion.min(state.output_cap);
                (tokens, "length_cut")
            }
            (Some(tokens), _) if stopped => (tokens, "stopped"),
            (None, _) if stopped => (counted(&bill, &state), "stopped"),
            (Some(tokens), false) => (
                tokens,
                if state.client_gone {
                    "client_closed"
                } else {
                    "ok"
                },
            ),
            (Some(tokens), true) => (tokens, "partial"),
            (None, _) => (counted(&bill, &state), if broken { "partial" } else { "estimated" }),
        };
        if cut {
            state.end_cut(tokens, bill.choices).await;
        }
        let first_token = state.first_token;
        // The charge is committed before the stream's last event leaves: a client never holds
        // a finished answer that the ledger does not.
        bill.settle(tokens, status, first_token).await;
        if let Some(last) = state.held.take() {
            state.send(last).await;
        }
        // A passed-through client already has the vendor's own error event.
        let told = state.native && reported && state.gemini_sse != Some(false);
        if !state.client_gone && !told && !cut {
            let first_item = state.first_item;
            let gemini_sse = state.gemini_sse;
            let tail = match (state.anthropic.as_mut(), broken) {
                // A native Anthropic stream already carries message_stop.
                (Some(_), false) if state.native => None,
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
                state.tail.insert(0, Bytes::from(tail));
            }
        }
        if cut && state.gemini_sse == Some(false) {
            state.tail.push(Bytes::from_static(b"]"));
        }
        if cut && state.anthropic.is_some() && !state.native {
            let closing = state
                .anthropic
                .as_mut()
                .map(crate::convert::anthropic::StreamConverter::finish);
            if let Some(closing) = closing {
                state.tail.push(Bytes::from(closing));
            }
        }
        for event in std::mem::take(&mut state.tail) {
            state.send(event).await;
        }
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
