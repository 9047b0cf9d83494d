//! The chat pipeline: every client format (OpenAI chat completions, Anthropic Messages,
//! Gemini `generateContent`) and in-process callers are converted to the pivot (OpenAI chat),
//! routed to a channel of any kind through its [`crate::upstream`] adapter, and billed
//! through hold → settle.
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

mod events;
mod stream;
mod whole;

use std::sync::Arc;

use serde_json::{Value, json};
use skein_core::api::ChatStream;
use skein_core::{ApiError, ApiResult};

use super::Caller;
use super::Reply;
use super::attempt::{Attempted, Dispatch, attempt};
use super::bill::{HoldAmount, Meter, held};
use super::plan::{Plan, plan_for};
use crate::RelayService;
use crate::channels::{ChannelKind, LiveChannel};
use crate::errors;
use crate::estimate;
use crate::upstream;
use crate::vendor::{self, Attempt};

/// The wire format the caller speaks.
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
    /// OpenAI's Responses API (`POST /v1/responses`), converted both ways; the client's
    /// request rides in [`Native::body`] (no channel takes it as written) so the answer can
    /// echo it.
    Responses,
    /// Typed events for an in-process caller ([`skein_core::api::ChatEvent`]); always
    /// streamed.
    Events,
}

/// A client's request in its own vendor format, kept for a channel of that same vendor: sent
/// as written (model mapped), so fields the pivot cannot express (Anthropic's `top_k`,
/// `thinking` or `cache_control`, Gemini's `safetySettings`) still reach it.
pub(crate) struct Native {
    pub(crate) body: Value,
    /// Client headers to send along (Anthropic's `anthropic-beta`).
    pub(crate) headers: Vec<(String, String)>,
    /// Why the pivot cannot carry this request: channels of other kinds refuse it with this.
    pivot_error: Option<ApiError>,
    /// For a Responses client whose response is kept: called with the final `response`.
    pub(crate) keep: Option<KeepResponse>,
}

/// Called with a Responses answer's final `response` object, and awaited before the client
/// gets the answer's end, so a client that continues from it at once finds it kept.
pub(crate) type KeepResponse =
    Box<dyn FnOnce(Value) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// What a Responses answer needs besides the upstream's: the client's request it echoes, and
/// where its final `response` goes when it is kept.
pub(crate) struct ResponsesEcho<'a> {
    /// The client's request (with the id and the stored-state fields the handler resolved).
    pub(crate) request: &'a Value,
    /// Called with the final `response`.
    pub(crate) keep: Option<KeepResponse>,
}

impl Native {
    /// A Responses client's request: no channel takes it as written, it is kept so the
    /// answer can echo what was asked (tools, instructions, options).
    pub(crate) fn responses(body: Value, keep: Option<KeepResponse>) -> Native {
        Native {
            body,
            headers: Vec::new(),
            pivot_error: None,
            keep,
        }
    }
}

/// The output limit an Anthropic body sets.
pub(crate) fn anthropic_max_tokens(body: &Value) -> Option<i64> {
    body["max_tokens"].as_i64()
}

/// The output limit a Gemini body sets.
pub(crate) fn gemini_max_tokens(body: &Value) -> Option<i64> {
    body["generationConfig"]["maxOutputTokens"].as_i64()
}

/// The pivot request to route and reserve with, and the native body. When the client's
/// request has something the pivot cannot carry, routing goes on with a stand-in pivot (the
/// model, the whole body as the prompt estimate, the output limit) so a channel of the
/// client's own vendor can still serve it; other channels refuse it with the conversion's
/// error. The stand-in fails only without a model.
pub(crate) fn with_native(
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
                keep: None,
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
                    keep: None,
                },
            )
        }
    }
}

/// What a relayed chat call answers: bytes for a client in its format, or typed events.
enum Output {
    /// For an HTTP client.
    Reply(Reply),
    /// For an in-process caller.
    Events(ChatStream),
}

/// Relays one chat request from an HTTP client in `format` (not [`Format::Events`]), with the
/// client's own body for channels of the client's vendor.
pub(crate) async fn for_client(
    svc: Arc<RelayService>,
    caller: Caller,
    request_id: String,
    request: Value,
    format: Format,
    native: Option<Native>,
) -> ApiResult<Reply> {
    for_client_until(svc, caller, request_id, request, format, native, None).await
}

/// As [`for_client`], for a caller that may stop the answer: cancelling `cancel` ends a
/// stream (the upstream connection is closed and what was delivered is billed).
pub(crate) async fn for_client_until(
    svc: Arc<RelayService>,
    caller: Caller,
    request_id: String,
    request: Value,
    format: Format,
    native: Option<Native>,
    cancel: Option<tokio_util::sync::CancellationToken>,
) -> ApiResult<Reply> {
    match relay(svc, caller, request_id, request, format, native, cancel).await? {
        Output::Reply(reply) => Ok(reply),
        Output::Events(_) => Err(ApiError::internal("a client format answered with events")),
    }
}

/// Relays one OpenAI-format chat request for an in-process caller as typed events, streamed
/// whatever the request says; cancelling `cancel` stops the answer (the upstream connection
/// is closed and what was delivered is billed).
pub(crate) async fn for_service(
    svc: Arc<RelayService>,
    caller: Caller,
    request_id: String,
    mut request: Value,
    cancel: Option<tokio_util::sync::CancellationToken>,
) -> ApiResult<ChatStream> {
    if let Some(body) = request.as_object_mut() {
        body.insert("stream".into(), Value::Bool(true));
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    match relay(
        svc,
        caller,
        request_id,
        request,
        Format::Events,
        None,
        cancel,
    )
    .await?
    {
        Output::Events(events) => Ok(events),
        Output::Reply(_) => Err(ApiError::internal("an in-process chat answered with bytes")),
    }
}

/// Relays one chat request.
///
/// Every refusal (a bad request, an unknown or unpriced model, a field that would change the
/// vendor's price, too little quota) comes before the hold. After the hold, the rest runs on a
/// task of the service's own (see [`held`]), so whatever the upstream does is still settled
/// and no hold outlives its request.
async fn relay(
    svc: Arc<RelayService>,
    caller: Caller,
    request_id: String,
    request: Value,
    format: Format,
    native: Option<Native>,
    cancel: Option<tokio_util::sync::CancellationToken>,
) -> ApiResult<Output> {
    let plan = plan_for(
        &svc,
        &caller,
        request.get("model").and_then(Value::as_str),
        |_| true,
    )
    .await?;
    if !request.get("messages").is_some_and(Value::is_array) {
        return Err(ApiError::bad_request(
            "missing_messages",
            "messages must be an array.",
            "messages 必须是数组。",
        ));
    }
    // Audio output may be asked for only of models (and fallbacks) priced for it.
    let audio_priced = std::iter::once(&plan.rates)
        .chain(plan.fallbacks.iter().map(|s| &s.rates))
        .all(|p| p.rates.audio_output_per_mtok.is_some());
    super::fields::refuse_unpriced(
        &request,
        format,
        native.as_ref().map(|n| (&n.body, &n.headers)),
        &svc.tuning.extra_request_fields,
        audio_priced,
    )?;

    let stream = format == Format::Events
        || request
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let client_wants_usage = request["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let kinds: Vec<ChannelKind> = plan
        .candidates
        .iter()
        .chain(plan.fallbacks.iter().flat_map(|s| s.candidates.iter()))
        .map(|c| c.kind)
        .collect();
    let max_output = svc.tuning.output.max_output(&plan.model);
    let (request, prompt) = count_prompt(request).await?;
    let mut hold = estimate::hold(&request, prompt, &kinds, max_output);
    if let (Format::Gemini { .. }, Some(n)) = (format, native.as_ref()) {
        // A Gemini client on a Gemini channel may ask for several candidates.
        let candidates = n.body["generationConfig"]["candidateCount"]
            .as_i64()
            .unwrap_or(1);
        hold.choices = hold.choices.max(candidates.clamp(1, 128));
    }
    // A fallback may serve at its own price: the hold covers the dearest model that may.
    let rates = plan.dearest(|rates| hold.amount(rates));
    let amount = HoldAmount {
        amount: hold.amount(rates),
        min_amount: hold.min_amount(rates),
    };
    held(
        &svc,
        caller,
        request_id,
        &plan.clone_head(),
        amount,
        stream,
        move |meter| {
            let job = Job::new(
                meter,
                request,
                format,
                native,
                plan,
                hold,
                stream,
                client_wants_usage,
                cancel,
            );
            job.run()
        },
    )
    .await
}

impl Plan {
    /// The highest `cost` of the model's and its fallbacks' prices: what a hold must cover
    /// when any of them may serve.
    pub(crate) fn most(&self, cost: impl Fn(&crate::pricing::Price) -> i64) -> i64 {
        cost(self.dearest(&cost))
    }

    /// The price, of the model's and its fallbacks', for which `cost` is the highest.
    fn dearest(&self, cost: impl Fn(&crate::pricing::Price) -> i64) -> &crate::pricing::Price {
        self.fallbacks
            .iter()
            .map(|s| &s.rates)
            .fold(
                &self.rates,
                |best, r| if cost(r) > cost(best) { r } else { best },
            )
    }

    /// The plan without its channels (what the hold needs to know).
    fn clone_head(&self) -> Plan {
        Plan {
            model: self.model.clone(),
            rates: self.rates.clone(),
            candidates: Vec::new(),
            routing: self.routing.clone(),
            fallbacks: Vec::new(),
        }
    }
}

/// One held chat request on its way through the channels.
struct Job {
    meter: Meter,
    request: Value,
    format: Format,
    native: Option<Native>,
    plan: Plan,
    prompt_estimate: i64,
    /// Completion tokens (all choices) the hold pays for: a stream is ended there.
    output_cap: i64,
    /// Answers asked for (`n`).
    choices: i64,
    stream: bool,
    client_wants_usage: bool,
    cancel: Option<tokio_util::sync::CancellationToken>,
}

impl Job {
    /// The job for a request whose hold was granted: the output the grant pays for is written
    /// into the request (the pivot and the client's own body) as the vendor's limit.
    #[allow(clippy::too_many_arguments)]
    fn new(
        meter: Meter,
        mut request: Value,
        format: Format,
        mut native: Option<Native>,
        plan: Plan,
        hold: estimate::Hold,
        stream: bool,
        client_wants_usage: bool,
        cancel: Option<tokio_util::sync::CancellationToken>,
    ) -> Job {
        let output = hold.output_for(plan.dearest(|rates| hold.amount(rates)), meter.granted);
        estimate::write_limit(&mut request, &plan.model, output);
        if let Some(native) = native.as_mut() {
            match format {
                Format::Anthropic => set(&mut native.body, &["max_tokens"], output),
                Format::Gemini { .. } => set(
                    &mut native.body,
                    &["generationConfig", "maxOutputTokens"],
                    output,
                ),
                Format::OpenAi | Format::Events | Format::Responses => {}
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
            meter,
            request,
            format,
            native,
            plan,
            prompt_estimate: hold.prompt,
            output_cap: output.saturating_mul(hold.choices),
            choices: hold.choices,
            stream,
            client_wants_usage,
            cancel,
        }
    }

    /// Tries the plan's channels (see [`attempt`]) and relays the first answer in the
    /// caller's format.
    async fn run(mut self) -> ApiResult<Output> {
        let format = self.format;
        let stream = self.stream;
        let candidates = std::mem::take(&mut self.plan.candidates);
        let fallbacks = std::mem::take(&mut self.plan.fallbacks);
        let keep = self.native.as_mut().and_then(|n| n.keep.take());
        let mut dispatch = ChatDispatch {
            request: &mut self.request,
            native: self.native.as_ref(),
            format,
            stream,
        };
        let attempted = attempt(self.meter, candidates, fallbacks, &mut dispatch).await?;
        let (channel, response, meter) = match attempted {
            Attempted::Answered {
                channel,
                response,
                meter,
            } => (channel, response, meter),
            Attempted::Refused {
                channel,
                status,
                body,
            } => {
                let native = self
                    .native
                    .as_ref()
                    .is_some_and(|_| native_on(format, &channel));
                let adapter = vendor::adapter(channel.kind);
                if format == Format::Events {
                    let body = adapter.error_to_openai(body);
                    return Err(errors::refused_error(
                        status,
                        &body,
                        "The model's provider refused the request",
                        "模型服务商拒绝了请求",
                    ));
                }
                return Ok(Output::Reply(whole::refused(
                    status, body, format, adapter, native,
                )));
            }
        };
        let native = self
            .native
            .as_ref()
            .is_some_and(|_| native_on(format, &channel));
        let adapter = vendor::adapter(channel.kind);
        // The model that served (a fallback may have taken over), as its channel names it.
        let upstream_model = channel.upstream_model(&meter.model).to_string();
        let bill = stream::Bill {
            meter,
            prompt_estimate: self.prompt_estimate,
            // Kept only for streams: a stream that breaks before the vendor's usage is billed
            // by counting the prompt and what was delivered. The request is done with once an
            // upstream answered: move, not copy.
            messages: stream
                .then(|| self.request.get_mut("messages").map(Value::take))
                .flatten(),
            cancel: self.cancel.take(),
            output_cap: self.output_cap,
            choices: self.choices,
        };
        // A Responses client's own request, which its answer echoes.
        let responses = self
            .native
            .as_ref()
            .filter(|_| format == Format::Responses)
            .map(|n| ResponsesEcho {
                request: &n.body,
                keep,
            });
        if !stream {
            return whole::relay_whole(
                response,
                bill,
                format,
                adapter,
                &upstream_model,
                native,
                responses,
            )
            .await
            .map(Output::Reply);
        }
        let decoder = adapter.decoder(&upstream_model);
        Ok(
            match stream::relay_stream(
                response,
                bill,
                self.client_wants_usage,
                format,
                decoder,
                native,
                responses,
            ) {
                stream::Streamed::Bytes(reply) => Output::Reply(reply),
                stream::Streamed::Events(events) => Output::Events(events),
            },
        )
    }
}

/// Whether a channel is of the client's own vendor, so it gets the client's body as written.
fn native_on(format: Format, channel: &LiveChannel) -> bool {
    matches!(
        (format, channel.kind),
        (Format::Anthropic, ChannelKind::Anthropic) | (Format::Gemini { .. }, ChannelKind::Gemini)
    )
}

/// Sends a chat request to a channel: the client's own body to a channel of its vendor, else
/// the pivot through the channel kind's adapter.
struct ChatDispatch<'a> {
    request: &'a mut Value,
    native: Option<&'a Native>,
    format: Format,
    stream: bool,
}

impl Dispatch for ChatDispatch<'_> {
    async fn send(
        &mut self,
        svc: &RelayService,
        channel: &LiveChannel,
        upstream_model: &str,
    ) -> Result<Attempt, ApiError> {
        if let Some(obj) = self.request.as_object_mut() {
            obj.insert("model".into(), Value::String(upstream_model.to_string()));
        }
        let native_here = self.native.filter(|_| native_on(self.format, channel));
        let sent = match (native_here, self.native.and_then(|n| n.pivot_error.clone())) {
            (Some(n), _) => {
                upstream::send_native(
                    &svc.http,
                    channel,
                    &channel.with_overrides(&n.body),
                    upstream_model,
                    self.stream,
                    &n.headers,
                )
                .await
            }
            (None, Some(error)) => Some(Err(error)),
            (None, None) => None,
        };
        match sent {
            Some(sent) => sent,
            None => {
                upstream::send(
                    &svc.http,
                    channel,
                    &channel.with_overrides(self.request),
                    svc.images,
                )
                .await
            }
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
