//! The OpenAI routes besides chat — embeddings, text completions, images, speech, audio
//! forms and rerank — as pipeline calls: each checks its request, estimates its hold, names
//! its upstream path and reads its bill from the answer; planning, holding, attempting and
//! settling are the shared steps. HTTP handlers and in-process callers both call these.

use std::future::Future;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;
use serde_json::Value;
use skein_core::ApiResult;

use super::attempt::{Attempted, Dispatch, OpenAiPath, attempt};
use super::bill::{Charge, HoldAmount, Meter, held};
use super::input::{input_tokens, usage_in, with_model};
use super::plan::{Plan, plan, plan_for};
use super::{Caller, Reply, read};
use crate::RelayService;
use crate::channels::{ChannelKind, LiveChannel};
use crate::errors;
use crate::proxy::{Tokens, estimate_tokens, usage_of};
use crate::vendor::Attempt;

/// What a call came to: the upstream's answer, or its own refusal (a 4xx).
pub(crate) enum Answer {
    /// The answer, billed.
    Replied(Reply),
    /// The upstream refused the request; nothing was charged.
    Refused {
        /// Its status.
        status: StatusCode,
        /// Its error body, as it wrote it.
        body: Bytes,
    },
}

impl Answer {
    /// For an OpenAI client: the upstream's JSON error as written, or (if it sent something
    /// else) that text inside OpenAI's error shape, so SDKs can still parse it.
    pub fn for_client(self) -> Reply {
        let (status, body) = match self {
            Answer::Replied(reply) => return reply,
            Answer::Refused { status, body } => (status, body),
        };
        let body = if serde_json::from_slice::<Value>(&body).is_ok_and(|v| v.is_object()) {
            body
        } else {
            let text: String = String::from_utf8_lossy(&body).chars().take(500).collect();
            let message = if text.trim().is_empty() {
                format!(
                    "The upstream refused the request with HTTP {}.",
                    status.as_u16()
                )
            } else {
                text
            };
            crate::vendor::openai::errors::error_body(&message, "invalid_request_error")
        };
        Reply::whole(status, HeaderValue::from_static("application/json"), body)
    }

    /// For an in-process caller: the answer, or the refusal as an error whose message starts
    /// with `prefix` (and `prefix_zh`).
    pub fn or_refusal(self, prefix: &str, prefix_zh: &str) -> ApiResult<Reply> {
        match self {
            Answer::Replied(reply) => Ok(reply),
            Answer::Refused { status, body } => {
                Err(errors::refused_error(status, &body, prefix, prefix_zh))
            }
        }
    }
}

/// One call of an OpenAI route: its plan, the hold it needs, and where it goes.
struct Call<D> {
    plan: Plan,
    /// What to hold.
    estimate: i64,
    /// Whether the answer is streamed (kept on the usage record).
    stream: bool,
    /// Whether the model's fallbacks serve when every channel failed (routes whose charge
    /// is read from the meter's price at the end, so a fallback bills at its own).
    fallbacks: bool,
    dispatch: D,
}

/// Holds the call's estimate, sends it to the plan's OpenAI-format channels and hands the
/// first answer to `finish`, which reads and bills it.
async fn run<D, G, Fut>(
    svc: &Arc<RelayService>,
    caller: Caller,
    request_id: String,
    call: Call<D>,
    finish: G,
) -> ApiResult<Answer>
where
    D: Dispatch + 'static,
    G: FnOnce(reqwest::Response, Meter) -> Fut + Send + 'static,
    Fut: Future<Output = ApiResult<Reply>> + Send + 'static,
{
    let Call {
        mut plan,
        estimate,
        stream,
        fallbacks,
        dispatch,
    } = call;
    let candidates = std::mem::take(&mut plan.candidates);
    let fallbacks = if fallbacks {
        std::mem::take(&mut plan.fallbacks)
    } else {
        Vec::new()
    };
    let hold = HoldAmount::exactly(estimate);
    held(
        svc,
        caller,
        request_id,
        &plan,
        hold,
        stream,
        move |meter| async move {
            let mut dispatch = dispatch;
            match attempt(meter, candidates, fallbacks, &mut dispatch).await? {
                Attempted::Answered {
                    response, meter, ..
                } => finish(response, meter).await.map(Answer::Replied),
                Attempted::Refused { status, body, .. } => Ok(Answer::Refused { status, body }),
            }
        },
    )
    .await
}

/// [`run`] for an answer read whole and billed by `bill` from its bytes.
async fn run_whole<D>(
    svc: &Arc<RelayService>,
    caller: Caller,
    request_id: String,
    call: Call<D>,
    bill: impl FnOnce(&Meter, &[u8]) -> Charge + Send + 'static,
) -> ApiResult<Answer>
where
    D: Dispatch + 'static,
{
    run(svc, caller, request_id, call, move |resp, meter| {
        read::whole(resp, meter, bill)
    })
    .await
}

/// A JSON body sent to `path` with its model mapped.
fn json_to(path: &'static str, request: Value) -> OpenAiPath<impl Fn(&str) -> Bytes> {
    OpenAiPath {
        path,
        content_type: "application/json".into(),
        body: move |model: &str| with_model(&request, model),
    }
}

/// `POST /v1/embeddings`: billed from the upstream's `usage.prompt_tokens` at the model's
/// input price (plus its per-call price, if any). The body goes upstream as written with
/// only the model mapped, and the answer comes back byte for byte: `encoding_format` and
/// `dimensions` are the upstream's to honour, and their output is never decoded.
pub(crate) async fn embeddings(
    svc: Arc<RelayService>,
    caller: Caller,
    request_id: String,
    request: Value,
) -> ApiResult<Answer> {
    let prompt_estimate = input_tokens(&request["input"]).ok_or_else(|| {
        errors::invalid_input(
            "input",
            "must be a string, an array of strings, or an array of token arrays.",
            "必须是字符串、字符串数组或 token 数组的数组。",
        )
    })?;
    if let Some(format) = request.get("encoding_format")
        && !matches!(format.as_str(), Some("float" | "base64"))
    {
        return Err(errors::invalid_input(
            "encoding_format",
            "must be \"float\" or \"base64\".",
            "必须是 \"float\" 或 \"base64\"。",
        ));
    }
    if let Some(dimensions) = request.get("dimensions")
        && dimensions.as_i64().is_none_or(|d| d <= 0)
    {
        return Err(errors::invalid_input(
            "dimensions",
            "must be a positive integer.",
            "必须是正整数。",
        ));
    }
    if request["model"].as_str() == Some(skein_embed::MODEL_NAME)
        && let Some(local) = svc.local_embed.get()
    {
        return super::local::embeddings(local.clone(), &request).await;
    }
    let plan = plan(&svc, &caller, request["model"].as_str()).await?;
    let estimate = plan.most(|r| r.cost(prompt_estimate, 0, 0));
    let dispatch = json_to("/v1/embeddings", request);
    run_whole(
        &svc,
        caller,
        request_id,
        Call {
            plan,
            estimate,
            stream: false,
            fallbacks: true,
            dispatch,
        },
        move |meter, bytes| {
            let rates = meter.rates();
            match usage_in(bytes).and_then(|u| u["prompt_tokens"].as_i64()) {
                Some(prompt) => Charge::new(rates.cost(prompt, 0, 0), prompt, 0, "ok"),
                // No usage from the upstream: bill the estimate of the input.
                None => Charge::new(
                    rates.cost(prompt_estimate, 0, 0),
                    prompt_estimate,
                    0,
                    "estimated",
                ),
            }
        },
    )
    .await
}

/// `POST /v1/rerank`, the Cohere/Jina-style rerank API (`{model, query, documents, top_n}`)
/// that vLLM, Jina, Xinference and most gateways serve at `{base}/v1/rerank`. Billed from the
/// upstream's `usage` tokens (`total_tokens`, else `prompt_tokens`) at the model's input price
/// plus its per-call price; an upstream that reports no tokens (Cohere reports search units)
/// is billed the per-call price alone.
pub(crate) async fn rerank(
    svc: Arc<RelayService>,
    caller: Caller,
    request_id: String,
    request: Value,
) -> ApiResult<Answer> {
    let query = request["query"]
        .as_str()
        .filter(|q| !q.is_empty())
        .ok_or_else(|| {
            errors::invalid_input("query", "must be a non-empty string.", "必须是非空字符串。")
        })?;
    let documents = request["documents"]
        .as_array()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            errors::invalid_input(
                "documents",
                "must be a non-empty array.",
                "必须是非空数组。",
            )
        })?;
    // Each document is scored against the query, so the query counts once per document.
    let mut tokens_estimate = 0i64;
    for document in documents {
        let text_len = match document {
            Value::String(text) => text.len(),
            Value::Object(_) => document.to_string().len(),
            _ => {
                return Err(errors::invalid_input(
                    "documents",
                    "must hold strings or objects.",
                    "只能包含字符串或对象。",
                ));
            }
        };
        tokens_estimate = tokens_estimate.saturating_add(estimate_tokens(text_len + query.len()));
    }
    if let Some(top_n) = request.get("top_n")
        && top_n.as_i64().is_none_or(|n| n <= 0)
    {
        return Err(errors::invalid_input(
            "top_n",
            "must be a positive integer.",
            "必须是正整数。",
        ));
    }
    let plan = plan(&svc, &caller, request["model"].as_str()).await?;
    let estimate = plan.most(|r| r.cost(tokens_estimate, 0, 0));
    let dispatch = json_to("/v1/rerank", request);
    run_whole(
        &svc,
        caller,
        request_id,
        Call {
            plan,
            estimate,
            stream: false,
            fallbacks: true,
            dispatch,
        },
        move |meter, bytes| {
            let rates = meter.rates();
            let tokens = usage_in(bytes).and_then(|u| {
                u["total_tokens"]
                    .as_i64()
                    .or_else(|| u["prompt_tokens"].as_i64())
            });
            match tokens {
                Some(tokens) => Charge::new(rates.cost(tokens, 0, 0), tokens, 0, "ok"),
                None => Charge::new(rates.cost_calls(0, 0, 0, 1), 0, 0, "ok"),
            }
        },
    )
    .await
}

/// OpenAI's default `max_tokens` for text completions (reserved when the client sets none).
const DEFAULT_MAX_TOKENS: i64 = 16;

/// `POST /v1/completions`, OpenAI's legacy text completions, whole and streamed, billed from
/// the upstream's usage as chat is. For streams, `stream_options.include_usage` is switched
/// on upstream so the bill comes from the upstream's own count; a client that did not ask for
/// usage never sees that chunk.
pub(crate) async fn completions(
    svc: Arc<RelayService>,
    caller: Caller,
    request_id: String,
    mut request: Value,
) -> ApiResult<Answer> {
    let prompt_estimate = input_tokens(&request["prompt"]).ok_or_else(|| {
        errors::invalid_input(
            "prompt",
            "must be a string, an array of strings, or an array of token arrays.",
            "必须是字符串、字符串数组或 token 数组的数组。",
        )
    })?;
    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let client_wants_usage = request["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let max_tokens = request
        .get("max_tokens")
        .and_then(Value::as_i64)
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let choices = ["n", "best_of"]
        .iter()
        .filter_map(|f| request.get(*f).and_then(Value::as_i64))
        .max()
        .unwrap_or(1)
        .clamp(1, 128);
    let plan = plan(&svc, &caller, request["model"].as_str()).await?;
    let estimate = plan.most(|r| r.cost(prompt_estimate, max_tokens.saturating_mul(choices), 0));
    if stream && let Some(obj) = request.as_object_mut() {
        let options = obj
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(options) = options.as_object_mut() {
            options.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let dispatch = json_to("/v1/completions", request);
    run(
        &svc,
        caller,
        request_id,
        Call {
            plan,
            estimate,
            stream,
            fallbacks: true,
            dispatch,
        },
        move |resp, meter| async move {
            if stream {
                return Ok(read::sse(
                    resp,
                    meter,
                    client_wants_usage,
                    completion_text_len,
                    move |meter, tokens, delivered, broken| {
                        completion_charge(meter, tokens, prompt_estimate, delivered, broken)
                    },
                ));
            }
            read::whole(resp, meter, move |meter, bytes| {
                let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
                let delivered = parsed
                    .as_ref()
                    .map(completion_text_len)
                    .unwrap_or(bytes.len());
                completion_charge(
                    meter,
                    parsed.as_ref().and_then(usage_of),
                    prompt_estimate,
                    delivered,
                    false,
                )
            })
            .await
        },
    )
    .await
}

/// A text completion's charge from the upstream's usage, or (without one) the prompt
/// estimate plus the text delivered.
fn completion_charge(
    meter: &Meter,
    tokens: Option<Tokens>,
    prompt_estimate: i64,
    delivered: usize,
    broken: bool,
) -> Charge {
    let rates = meter.rates();
    let (tokens, status) = match tokens {
        Some(tokens) => (tokens, if broken { "partial" } else { "ok" }),
        None => (
            Tokens {
                prompt: prompt_estimate,
                completion: estimate_tokens(delivered),
                ..Tokens::default()
            },
            if broken { "partial" } else { "estimated" },
        ),
    };
    Charge::new(
        rates.cost(tokens.prompt, tokens.completion, tokens.cached),
        tokens.prompt,
        tokens.completion,
        status,
    )
}

/// Bytes of text in a completion or a completion chunk.
fn completion_text_len(value: &Value) -> usize {
    value["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .map(str::len)
        .sum()
}

/// Most images one request may ask for (bounds the hold).
pub(crate) const MAX_IMAGES: i64 = 128;

/// `POST /v1/images/generations`: billed the model's per-call price for every image the
/// upstream returns (the hold is per-call × `n`), plus, when the upstream reports token usage
/// (`gpt-image-1` does), those tokens at the model's token prices.
pub(crate) async fn images(
    svc: Arc<RelayService>,
    caller: Caller,
    request_id: String,
    request: Value,
) -> ApiResult<Answer> {
    let prompt = request["prompt"]
        .as_str()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            errors::invalid_input(
                "prompt",
                "must be a non-empty string.",
                "必须是非空字符串。",
            )
        })?;
    let n = match request.get("n") {
        None | Some(Value::Null) => 1,
        Some(n) => n
            .as_i64()
            .filter(|n| (1..=MAX_IMAGES).contains(n))
            .ok_or_else(|| {
                errors::invalid_input(
                    "n",
                    &format!("must be an integer from 1 to {MAX_IMAGES}."),
                    &format!("必须是 1 到 {MAX_IMAGES} 之间的整数。"),
                )
            })?,
    };
    let prompt_estimate = estimate_tokens(prompt.len());
    // OpenAI-format channels, and native DashScope ones (its image models answer through an
    // asynchronous task: see `upstream::dashscope_images`).
    let plan = plan_for(&svc, &caller, request["model"].as_str(), |c| {
        crate::vendor::adapter(c.kind).serves_openai_paths()
            || c.kind == ChannelKind::DashScopeNative
    })
    .await?;
    let estimate = plan.most(|r| r.cost_calls(prompt_estimate, 0, 0, n));
    let dispatch = ImagesDispatch {
        openai: json_to("/v1/images/generations", request.clone()),
        request,
    };
    run_whole(
        &svc,
        caller,
        request_id,
        Call {
            plan,
            estimate,
            stream: false,
            fallbacks: true,
            dispatch,
        },
        move |meter, bytes| {
            #[derive(serde::Deserialize)]
            struct Images {
                #[serde(default)]
                data: Vec<serde::de::IgnoredAny>,
                #[serde(default)]
                usage: Option<Value>,
            }
            let rates = meter.rates();
            match serde_json::from_slice::<Images>(bytes) {
                Ok(images) => {
                    let delivered = i64::try_from(images.data.len()).unwrap_or(i64::MAX);
                    let usage = images.usage.unwrap_or_default();
                    let input = usage["input_tokens"].as_i64().unwrap_or(0);
                    let output = usage["output_tokens"].as_i64().unwrap_or(0);
                    let cost = rates.cost_calls(input, output, 0, delivered);
                    Charge::new(cost, input, output, "ok")
                }
                // An answer we cannot read: bill what was asked for.
                Err(_) => Charge::new(rates.cost_calls(0, 0, 0, n), 0, 0, "estimated"),
            }
        },
    )
    .await
}

/// The images route's dispatch: the body as written to OpenAI-format channels, an
/// asynchronous image task to native DashScope ones.
struct ImagesDispatch<F> {
    openai: OpenAiPath<F>,
    request: Value,
}

impl<F: Fn(&str) -> Bytes + Send + Sync> Dispatch for ImagesDispatch<F> {
    async fn send(
        &mut self,
        svc: &RelayService,
        channel: &LiveChannel,
        upstream_model: &str,
    ) -> Result<Attempt, skein_core::ApiError> {
        if channel.kind == ChannelKind::DashScopeNative {
            let attempt = crate::upstream::dashscope_images::generate(
                &svc.http,
                channel,
                &self.request,
                upstream_model,
                svc.images,
            )
            .await?;
            // The client asked OpenAI's route: a refusal reads as OpenAI's error body.
            return Ok(match attempt {
                Attempt::Refused(status, body) => Attempt::Refused(
                    status,
                    crate::vendor::adapter(channel.kind).error_to_openai(body),
                ),
                other => other,
            });
        }
        self.openai.send(svc, channel, upstream_model).await
    }
}

/// `POST /v1/audio/speech`: billed per input character — the model's `input_per_mtok` is read
/// as the price per million characters (how OpenAI prices `tts-1`) — plus its per-call price;
/// the audio streams back as the upstream sends it.
pub(crate) async fn speech(
    svc: Arc<RelayService>,
    caller: Caller,
    request_id: String,
    request: Value,
) -> ApiResult<Answer> {
    let (call, charge) = speech_call(&svc, &caller, request).await?;
    run(
        &svc,
        caller,
        request_id,
        call,
        move |resp, meter| async move { Ok(read::bytes(resp, meter, charge)) },
    )
    .await
}

/// [`speech`] read whole, for a service that hands the audio on in one piece (the charge is
/// then known with the answer).
pub(crate) async fn speech_whole(
    svc: Arc<RelayService>,
    caller: Caller,
    request_id: String,
    request: Value,
) -> ApiResult<Answer> {
    let (mut call, charge) = speech_call(&svc, &caller, request).await?;
    call.stream = false;
    run_whole(&svc, caller, request_id, call, move |_, _| charge).await
}

/// The call a speech request makes, and its charge (known before the call: characters at the
/// input price, plus the call).
async fn speech_call(
    svc: &Arc<RelayService>,
    caller: &Caller,
    request: Value,
) -> ApiResult<(
    Call<OpenAiPath<impl Fn(&str) -> Bytes + Send + Sync + 'static>>,
    Charge,
)> {
    let characters = request["input"]
        .as_str()
        .filter(|i| !i.is_empty())
        .map(|i| i64::try_from(i.chars().count()).unwrap_or(i64::MAX))
        .ok_or_else(|| {
            errors::invalid_input("input", "must be a non-empty string.", "必须是非空字符串。")
        })?;
    let plan = plan(svc, caller, request["model"].as_str()).await?;
    let cost = plan.rates.cost(characters, 0, 0);
    // Characters are not tokens: nothing counts against the key's tokens per minute.
    let charge = Charge {
        tpm_tokens: 0,
        ..Charge::new(cost, characters, 0, "ok")
    };
    let call = Call {
        plan,
        estimate: cost,
        stream: true,
        fallbacks: false,
        dispatch: json_to("/v1/audio/speech", request),
    };
    Ok((call, charge))
}

/// An audio form to relay (a transcription or translation): its model, the file's size for
/// the hold, and the form sent upstream, built for the model name each channel knows.
pub(crate) struct AudioForm {
    /// The `model` field.
    pub model: Option<String>,
    /// Bytes of the audio file.
    pub file_len: usize,
    /// `multipart/form-data; boundary=...`.
    pub content_type: String,
    /// The form for an upstream model name.
    pub body: Box<dyn Fn(&str) -> Bytes + Send + Sync>,
}

/// `POST /v1/audio/transcriptions` and `/v1/audio/translations` (`path`): billed the per-call
/// price, plus token prices when the upstream reports `usage` in tokens (`gpt-4o-transcribe`
/// does; `whisper-1` reports a duration, which is not priced).
pub(crate) async fn audio(
    svc: Arc<RelayService>,
    caller: Caller,
    request_id: String,
    form: AudioForm,
    path: &'static str,
) -> ApiResult<Answer> {
    let plan = plan(&svc, &caller, form.model.as_deref()).await?;
    // Models priced by tokens (gpt-4o-transcribe) are held for about one audio token per KiB
    // of file and as many text tokens out; per-call models for their price.
    let kib = i64::try_from(form.file_len.div_ceil(1024)).unwrap_or(i64::MAX);
    let estimate = plan.rates.cost(kib, kib, 0);
    let dispatch = OpenAiPath {
        path,
        content_type: form.content_type,
        body: form.body,
    };
    run_whole(
        &svc,
        caller,
        request_id,
        Call {
            plan,
            estimate,
            stream: false,
            fallbacks: false,
            dispatch,
        },
        move |meter, bytes| {
            let rates = meter.rates();
            let usage = usage_in(bytes).unwrap_or_default();
            if usage["type"] == "tokens" {
                let input = usage["input_tokens"].as_i64().unwrap_or(0);
                let output = usage["output_tokens"].as_i64().unwrap_or(0);
                Charge::new(rates.cost(input, output, 0), input, output, "ok")
            } else {
                Charge::new(rates.cost_calls(0, 0, 0, 1), 0, 0, "ok")
            }
        },
    )
    .await
}
