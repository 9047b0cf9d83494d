//! The pipeline the OpenAI routes besides chat share (embeddings, completions, images, audio,
//! rerank): check the key and the model, pick channels, reserve an estimate, try up to three
//! channels, then settle the exact cost once the answer is known.
//!
//! Chat has its own copy of these steps in `chat.rs` because its answer needs converting to
//! other vendors' formats; the rules are the same: routing by (key group, model) with priority
//! and weight, failover only on retryable errors and only before any byte reached the client,
//! circuit breakers, automatic disabling on a rejected key or an empty upstream account, and
//! refused requests charge nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use skein_core::api::{KeyInfo, KeyLimit, ReserveRequest, Usage};
use skein_core::limit::Quota;
use skein_core::{ApiError, ApiResult};

use crate::RelayService;
use crate::channels::LiveChannel;
use crate::pricing::Price;
use crate::proxy::{self, Attempt, SseSplitter, event_data, usage_of};

/// Most channels tried for one request.
pub(crate) const MAX_ATTEMPTS: usize = 3;

/// A request's model, its price, and the channels that may serve it, best first.
pub(crate) struct Plan {
    /// The model as the client named it (usage records and prices use this name).
    pub model: String,
    /// Its price for the key's group (rates and multiplier).
    pub rates: Price,
    /// The channels to try, in order.
    pub candidates: Vec<Arc<LiveChannel>>,
}

/// Checks that `key` may use `model` and that something serves and prices it; answers the
/// channels to try. Refusals here happen before any hold, so they cost nothing.
///
/// A model no channel serves for the key's group is 404 `model_not_found` (checked before the
/// price, so a name nobody configured is "not found" rather than "not priced"); a served but
/// unpriced model is 400 `model_not_priced`, since it could not be billed.
pub(crate) async fn plan(
    svc: &RelayService,
    key: &KeyInfo,
    model: Option<&str>,
) -> ApiResult<Plan> {
    plan_for(svc, key, model, |c| {
        proxy::OPENAI_KINDS.contains(&c.kind.as_str())
    })
    .await
}

/// [`plan`] over the channels `serves` accepts: every route applies the same rules in the same
/// order, only which kinds of channel can carry it differs.
pub(crate) async fn plan_for(
    svc: &RelayService,
    key: &KeyInfo,
    model: Option<&str>,
    serves: impl Fn(&LiveChannel) -> bool,
) -> ApiResult<Plan> {
    let model = model
        .filter(|m| !m.is_empty() && m.len() <= 128 && !m.contains('\0'))
        .ok_or_else(|| {
            ApiError::bad_request("missing_model", "Say which model to use.", "请指定模型。")
        })?
        .to_string();
    if !key.allows_model(&model) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "model_not_allowed",
            format!("This API key may not use {model}."),
            format!("该 API 密钥不允许使用 {model}。"),
        ));
    }
    let routed: Vec<Arc<LiveChannel>> = svc
        .table()
        .candidates(&key.group, &model)
        .into_iter()
        .filter(|c| serves(c))
        .collect();
    if routed.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("No channel serves {model} for this key."),
            format!("没有可为该密钥提供 {model} 的渠道。"),
        ));
    }
    let rates = svc
        .price_for(&key.group, &model)
        .ok_or_else(|| not_priced(&model))?;
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
    check_tpm(svc, key).await?;
    Ok(Plan {
        model,
        rates,
        candidates,
    })
}

/// 400 `model_not_priced`: a model nobody set a price for cannot be billed.
pub(crate) fn not_priced(model: &str) -> ApiError {
    ApiError::bad_request(
        "model_not_priced",
        format!(
            "{model} has no price yet, so it cannot be billed. Ask an administrator to price it."
        ),
        format!("{model} 尚未定价，无法计费，请联系管理员设置价格。"),
    )
}

/// The status a usage record gets: the charge's own, marked when the model was served free
/// because it has no price (`relay.allow_unpriced`).
pub(crate) fn record_status(status: &str, price: &Price) -> String {
    if price.priced {
        status.to_string()
    } else {
        format!("{status}_unpriced")
    }
}

/// The budget every route counts against, so one key's tokens per minute cover them all.
fn tpm_key(key: &KeyInfo) -> String {
    format!("tpm:key:{}", key.key_id)
}

/// Refuses a key that has used its tokens per minute (a probe that spends nothing).
pub(crate) async fn check_tpm(svc: &RelayService, key: &KeyInfo) -> ApiResult<()> {
    let Some(tpm) = key.tpm_limit else {
        return Ok(());
    };
    if let Some(wait) = limited(svc, &tpm_key(key), Quota::per_minute(tpm), 0).await {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "tokens_per_minute_exceeded",
            format!("This API key has used its {tpm} tokens per minute. Try again in {wait} s."),
            format!("该 API 密钥已用完每分钟 {tpm} 个 token 的额度，请在 {wait} 秒后重试。"),
        )
        .with_retry_after(wait));
    }
    Ok(())
}

/// Charges `cost` to the limit bucket `bucket`: the seconds to wait when it is spent, `None`
/// when the request may go on (also when the limiter is unreachable: losing it must not take
/// the relay down with it).
pub(crate) async fn limited(
    svc: &RelayService,
    bucket: &str,
    quota: Quota,
    cost: u32,
) -> Option<u64> {
    match svc.limiter.check(bucket, quota, cost).await {
        Ok(decision) if !decision.allowed => Some(
            decision
                .retry_after
                .map(|d| d.as_secs().max(1))
                .unwrap_or(1),
        ),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(%error, "rate limiter unavailable; request allowed");
            None
        }
    }
}

/// Counts `tokens` against the key's tokens per minute (at most a full minute's worth: the
/// budget is then empty and refills at its rate).
pub(crate) async fn count_tpm(svc: &RelayService, key: &KeyInfo, tokens: i64) {
    let Some(tpm) = key.tpm_limit else { return };
    let used = u32::try_from(tokens.max(0)).unwrap_or(u32::MAX);
    if used > 0
        && let Err(error) = svc
            .limiter
            .check(&tpm_key(key), Quota::per_minute(tpm), used.min(tpm))
            .await
    {
        tracing::warn!(%error, "tokens-per-minute limiter unavailable");
    }
}

/// Where a request goes upstream and in what form.
pub(crate) struct Upstream<F> {
    /// Path under the channel's base URL, e.g. `/v1/embeddings`.
    pub path: &'static str,
    /// The body's content type (a form keeps the client's boundary).
    pub content_type: String,
    /// Builds the body for a channel, given the model name that channel knows it by.
    pub body: F,
    /// Whether the answer will be streamed (kept on the usage record).
    pub stream: bool,
}

/// Holds `estimate` for the key's owner, then tries the plan's channels in order until one
/// answers, and hands that answer to `finish` (which relays it and settles the bill). Connect
/// errors, timeouts, 429 and 5xx move on to the next channel; a rejected key or an empty
/// upstream account disables the channel and moves on; another 4xx is the client's to see.
/// When nothing is delivered the hold is released.
///
/// Everything after the hold runs on a task of the service's own: a client that hangs up (or
/// the gateway's timeout) drops only the wait for the answer, so work the upstream does anyway
/// — an image being drawn — is still billed, and no hold is left to expire.
pub(crate) async fn call<F, G, Fut>(
    svc: &Arc<RelayService>,
    key: &KeyInfo,
    request_id: &str,
    plan: Plan,
    estimate: i64,
    upstream: Upstream<F>,
    finish: G,
) -> ApiResult<Response>
where
    F: Fn(&str) -> Bytes + Send + 'static,
    G: FnOnce(reqwest::Response, Meter) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    let reserve = ReserveRequest {
        user_id: key.user_id.clone(),
        key: (!key.key_id.is_empty()).then(|| KeyLimit {
            key_id: key.key_id.clone(),
            limit: key.quota_limit,
        }),
        amount: estimate.max(1),
        min_amount: estimate.max(1),
        reference: request_id.to_string(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let svc = svc.clone();
    let key = key.clone();
    let request_id = request_id.to_string();
    let tasks = svc.tasks.clone();
    // The hold is taken on the task too: a handler dropped while the hold is being granted
    // would otherwise leave it open until it expires.
    tasks.spawn(async move {
        let reservation = match svc.billing.reserve(reserve).await {
            Ok(reservation) => reservation,
            Err(refusal) => {
                let _ = tx.send(Err(refusal));
                return;
            }
        };
        let keep_alive = svc.renewals.keep(&reservation);
        let meter = Meter {
            svc,
            key,
            _keep_alive: keep_alive,
            reservation_id: reservation.id,
            rates: plan.rates.clone(),
            model: plan.model.clone(),
            channel_id: String::new(),
            request_id,
            started: Instant::now(),
            stream: upstream.stream,
            idle: Duration::from_secs(120),
        };
        let answer = match attempt(meter, plan, upstream).await {
            Ok((resp, meter)) => Ok(finish(resp, meter).await),
            Err(refusal) => refusal,
        };
        // Nobody may be waiting any more; the bill is settled either way.
        let _ = tx.send(answer);
    });
    rx.await
        .unwrap_or_else(|_| Err(ApiError::internal("the relay task ended without an answer")))
}

/// The channel loop of [`call`]: the first 2xx answer with its meter, or what the client gets
/// instead (`Ok` for the upstream's own refusal, `Err` when every channel failed).
async fn attempt<F: Fn(&str) -> Bytes>(
    mut meter: Meter,
    plan: Plan,
    upstream: Upstream<F>,
) -> Result<(reqwest::Response, Meter), ApiResult<Response>> {
    let svc = meter.svc.clone();
    let mut tried = Vec::new();
    for channel in plan.candidates {
        let body = (upstream.body)(channel.upstream_model(&plan.model));
        match proxy::send_to(
            &svc.http,
            &channel,
            upstream.path,
            &upstream.content_type,
            body,
        )
        .await
        {
            Attempt::Ok(resp) => {
                svc.breakers.success(&channel.id);
                tracing::info!(channel = %channel.id, tried = ?tried, model = %plan.model, path = upstream.path, "upstream answered");
                meter.channel_id = channel.id.clone();
                meter.idle = crate::upstream::idle_timeout(&channel);
                return Ok((resp, meter));
            }
            Attempt::Retry(reason) => {
                if svc.breakers.failure(&channel.id, Instant::now()) {
                    tracing::warn!(channel = %channel.id, "circuit opened: the channel rests after repeated failures");
                }
                tracing::warn!(channel = %channel.id, %reason, "channel failed; trying the next");
                tried.push(format!("{}: {reason}", channel.name));
            }
            Attempt::Dead(reason) => {
                svc.disable_if_confirmed(&channel, &plan.model, &reason)
                    .await;
                tried.push(format!("{}: {reason}", channel.name));
            }
            Attempt::Refused(status, body) => {
                meter.release().await;
                tracing::info!(channel = %channel.id, status, "upstream refused the request");
                return Err(Ok(refusal(status, body)));
            }
        }
    }
    meter.release().await;
    Err(Err(all_failed(&plan.model, &tried)))
}

/// 502 `upstream_unavailable` once every channel failed. Which channels and why goes to the
/// log under the request id; the client hears neither (channel names, hosts and transport
/// errors are the operator's business).
pub(crate) fn all_failed(model: &str, tried: &[String]) -> ApiError {
    tracing::warn!(tried = ?tried, %model, "every channel failed");
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_unavailable",
        format!(
            "{model} is unavailable right now: every provider behind it failed. Try again shortly."
        ),
        format!("{model} 暂时不可用：其后的所有服务商都失败了，请稍后重试。"),
    )
}

/// The upstream's own 4xx for the client: its JSON error as written, or (if it sent something
/// else) that text inside OpenAI's error shape, so SDKs can still parse it.
fn refusal(status: u16, body: Bytes) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
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
        Bytes::from(
            json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})
                .to_string(),
        )
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn release(svc: &RelayService, reservation_id: &str) {
    if let Err(error) = svc.billing.release(reservation_id).await {
        tracing::error!(%error, %reservation_id, "could not release a reservation; it will expire");
    }
}

/// What a finished request is charged and recorded as.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Charge {
    /// Exact cost in quota units.
    pub cost: i64,
    /// Prompt tokens (input characters for speech), for the usage record.
    pub prompt: i64,
    /// Completion tokens, for the usage record.
    pub completion: i64,
    /// Tokens counted against the key's tokens per minute (0 where a route has no tokens).
    pub tpm_tokens: i64,
    /// `ok`, `estimated` (no usage from the upstream), `partial`, `client_closed`.
    pub status: &'static str,
    /// Time to the first byte of a stream.
    pub ttft: Option<Duration>,
}

impl Charge {
    /// A charge of `cost` with token counts for the record.
    pub fn new(cost: i64, prompt: i64, completion: i64, status: &'static str) -> Charge {
        Charge {
            cost,
            prompt,
            completion,
            tpm_tokens: prompt.saturating_add(completion),
            status,
            ttft: None,
        }
    }
}

/// Everything needed to settle a request once its answer is known.
pub(crate) struct Meter {
    svc: Arc<RelayService>,
    key: KeyInfo,
    /// Renews the hold until the meter is done with.
    _keep_alive: crate::renew::KeepAlive,
    reservation_id: String,
    rates: Price,
    model: String,
    channel_id: String,
    request_id: String,
    started: Instant,
    stream: bool,
    /// The serving channel's idle timeout.
    idle: Duration,
}

impl Meter {
    /// The model's price for the key's group.
    pub fn rates(&self) -> &Price {
        &self.rates
    }

    /// Charges exactly `charge.cost`, writes the usage record, and counts tokens against the
    /// key's tokens per minute.
    pub async fn settle(self, charge: Charge) {
        let usage = Usage {
            cost: charge.cost.max(0),
            model: self.model.clone(),
            channel_id: Some(self.channel_id.clone()),
            prompt_tokens: charge.prompt,
            completion_tokens: charge.completion,
            cached_tokens: 0,
            cache_write_tokens: 0,
            duration_ms: i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX),
            ttft_ms: charge
                .ttft
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            stream: self.stream,
            status: record_status(charge.status, &self.rates),
            request_id: self.request_id.clone(),
            conversation_id: None,
            pricing: self.rates.record(),
        };
        count_tpm(&self.svc, &self.key, charge.tpm_tokens).await;
        match self.svc.billing.settle(&self.reservation_id, usage).await {
            Ok(s) => {
                tracing::info!(key_id = %self.key.key_id, cost = s.charged, status = charge.status, "request settled")
            }
            Err(error) => {
                tracing::error!(%error, reservation_id = %self.reservation_id, "settle failed")
            }
        }
    }

    /// Settles on a task of its own, so the answer does not wait for the ledger (the hold
    /// already bounds what the request can cost); shutdown waits for it.
    pub fn settle_later(self, charge: Charge) {
        let tasks = self.svc.tasks.clone();
        tasks.spawn(self.settle(charge));
    }

    /// Frees the hold: nothing was delivered.
    pub async fn release(self) {
        release(&self.svc, &self.reservation_id).await;
    }
}

/// Reads a whole answer, bills it with `bill` (given the bytes, so each route parses only what
/// it needs: an embeddings answer can be megabytes of floats), and hands the client the upstream's status, content type and bytes as they
/// were. If the upstream breaks off before the answer is complete, the client gets 502 and the
/// hold is released: nothing usable was delivered.
pub(crate) async fn whole(
    resp: reqwest::Response,
    meter: Meter,
    bill: impl FnOnce(&Meter, &[u8]) -> Charge,
) -> Response {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    let bytes = match crate::upstream::read_body(resp, meter.idle).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, "upstream body broke off");
            meter.release().await;
            return broken_off();
        }
    };
    let mut charge = bill(&meter, &bytes);
    charge.ttft = Some(meter.started.elapsed());
    meter.settle_later(charge);
    (status, [(header::CONTENT_TYPE, content_type)], bytes).into_response()
}

/// 502 for an answer that broke off.
fn broken_off() -> Response {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        "The upstream answer broke off.",
        "上游响应中断。",
    )
    .into_response()
}

/// Relays a server-sent-events answer event by event. `text_len` measures what an event
/// delivered (for the bill when the upstream never says its usage); `tokens` turns the
/// upstream's usage or that estimate into a charge. Usage the client did not ask for is
/// hidden from it. The reader is a task of its own: a client that leaves does not stop it from
/// reading on to the upstream's usage and billing that.
pub(crate) fn sse(
    resp: reqwest::Response,
    meter: Meter,
    client_wants_usage: bool,
    text_len: fn(&Value) -> usize,
    bill: impl FnOnce(&Meter, Option<proxy::Tokens>, usize, bool) -> Charge + Send + 'static,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let tasks = meter.svc.tasks.clone();
    tasks.spawn(async move {
        let mut upstream = resp.bytes_stream();
        let mut splitter = SseSplitter::default();
        let mut tokens = None;
        let mut delivered = 0usize;
        let mut first = None;
        let mut client_gone = false;
        let mut broken = false;
        let idle = meter.idle;
        let write_timeout = meter.svc.tuning.client_write_timeout;
        loop {
            let chunk = match tokio::time::timeout(idle, upstream.next()).await {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => {
                    broken = true;
                    break;
                }
            };
            for mut event in splitter.push(&chunk) {
                let mut forward = true;
                if let Some(data) = event_data(&event)
                    && data != "[DONE]"
                    && let Ok(mut value) = serde_json::from_str::<Value>(&data)
                {
                    if let Some(found) = usage_of(&value) {
                        tokens = Some(found);
                    }
                    let len = text_len(&value);
                    if len > 0 && first.is_none() {
                        first = Some(meter.started.elapsed());
                    }
                    delivered += len;
                    if !client_wants_usage
                        && let Some(obj) = value.as_object_mut()
                        && obj.remove("usage").is_some()
                    {
                        // The usage-only chunk Skein asked for on the client's behalf.
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
                if forward && !client_gone {
                    let mut framed = Vec::with_capacity(event.len() + 2);
                    framed.extend_from_slice(&event);
                    framed.extend_from_slice(b"\n\n");
                    // A client that stops reading is given a bounded wait, then dropped: the
                    // upstream is still read to its usage and billed.
                    if tx
                        .send_timeout(Bytes::from(framed), write_timeout)
                        .await
                        .is_err()
                    {
                        client_gone = true;
                        tracing::info!(reservation_id = %meter.reservation_id, "client disconnected mid-stream; draining upstream");
                    }
                }
            }
        }
        if broken && !client_gone {
            let error = json!({"error": {"message": "The upstream stream broke off.", "type": "server_error", "param": null, "code": "upstream_error"}});
            let _ = tx
                .send_timeout(Bytes::from(format!("data: {error}\n\n")), write_timeout)
                .await;
        }
        drop(tx);
        let mut charge = bill(&meter, tokens, delivered, broken);
        charge.ttft = first;
        if charge.status == "ok" && client_gone {
            charge.status = "client_closed";
        }
        meter.settle(charge).await;
    });
    streamed(rx, HeaderValue::from_static("text/event-stream"))
}

/// Relays a binary answer (speech audio) chunk by chunk as it arrives, then settles `charge`
/// (marked `partial` if the upstream broke off). The upstream did the work whether or not the
/// client stayed, so a client that leaves is still charged.
pub(crate) fn bytes(resp: reqwest::Response, meter: Meter, charge: Charge) -> Response {
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let tasks = meter.svc.tasks.clone();
    tasks.spawn(async move {
        let mut upstream = resp.bytes_stream();
        let mut first = None;
        let mut broken = false;
        let mut client_gone = false;
        let idle = meter.idle;
        let write_timeout = meter.svc.tuning.client_write_timeout;
        loop {
            match tokio::time::timeout(idle, upstream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    first.get_or_insert_with(|| meter.started.elapsed());
                    if !client_gone && tx.send_timeout(chunk, write_timeout).await.is_err() {
                        client_gone = true;
                    }
                }
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        drop(tx);
        let status = match (broken, client_gone) {
            (true, _) => "partial",
            (false, true) => "client_closed",
            (false, false) => charge.status,
        };
        meter
            .settle(Charge {
                status,
                ttft: first,
                ..charge
            })
            .await;
    });
    streamed(rx, content_type)
}

fn streamed(mut rx: tokio::sync::mpsc::Receiver<Bytes>, content_type: HeaderValue) -> Response {
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<_, std::io::Error>))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Parses a JSON body, or 400 `invalid_json`.
pub(crate) fn parse_json(body: &[u8]) -> ApiResult<Value> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("The body is not valid JSON: {e}"),
            format!("请求体不是合法的 JSON：{e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "The body must be a JSON object.",
            "请求体必须是 JSON 对象。",
        ));
    }
    Ok(value)
}

/// 400 `invalid_<field>` for a missing or wrong-typed field.
pub(crate) fn invalid(field: &str, what_en: &str, what_zh: &str) -> ApiError {
    ApiError::bad_request(
        format!("invalid_{field}"),
        format!("{field} {what_en}"),
        format!("{field} {what_zh}"),
    )
    .with_details(json!({ "field": field }))
}

/// The `usage` object of a JSON answer, if it has one. Only that field is built; the rest is
/// skipped as it is read.
pub(crate) fn usage_in(bytes: &[u8]) -> Option<Value> {
    #[derive(serde::Deserialize)]
    struct UsageOnly {
        #[serde(default)]
        usage: Option<Value>,
    }
    serde_json::from_slice::<UsageOnly>(bytes)
        .ok()?
        .usage
        .filter(Value::is_object)
}

/// The tokens of an embeddings `input` or a completions `prompt`, counted with the o200k
/// tokenizer and the OpenAI-compatible safety factor (token arrays count exactly), or `None`
/// if it is not one of the shapes OpenAI accepts: a string, or a non-empty array of strings,
/// of token ids, or of non-empty token arrays. A large input is counted off the async
/// workers' hot loop (`block_in_place`), so one megabyte of text does not stall the others.
pub(crate) fn input_tokens(input: &Value) -> Option<i64> {
    let large = proxy::json_len(input) > crate::estimate::BLOCKING_ABOVE;
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if large && multi_thread {
        tokio::task::block_in_place(|| counted_input(input))
    } else {
        counted_input(input)
    }
}

fn text_tokens(text: &str) -> i64 {
    crate::estimate::scaled(
        crate::estimate::tokens(text),
        crate::estimate::safety_permille("openai"),
    )
}

fn counted_input(input: &Value) -> Option<i64> {
    match input {
        Value::String(text) => Some(text_tokens(text)),
        Value::Array(items) if !items.is_empty() => {
            if items.iter().all(Value::is_i64) {
                return i64::try_from(items.len()).ok();
            }
            items.iter().try_fold(0i64, |sum, item| {
                let tokens = match item {
                    Value::String(text) => text_tokens(text),
                    Value::Array(ids) if !ids.is_empty() && ids.iter().all(Value::is_i64) => {
                        i64::try_from(ids.len()).ok()?
                    }
                    _ => return None,
                };
                Some(sum.saturating_add(tokens))
            })
        }
        _ => None,
    }
}

/// `request` as bytes with its model set to `upstream_model`.
pub(crate) fn with_model(request: &Value, upstream_model: &str) -> Bytes {
    let mut request = request.clone();
    if let Some(obj) = request.as_object_mut() {
        obj.insert("model".into(), Value::String(upstream_model.to_string()));
    }
    Bytes::from(request.to_string())
}
