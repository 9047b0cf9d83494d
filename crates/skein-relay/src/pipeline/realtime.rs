//! OpenAI's Realtime API: which channels offer it, the upstream connection, and the bill of a
//! session. The frames themselves are relayed by `http/realtime.rs`.
//!
//! A session is billed response by response. Its first hold is taken before anything is
//! dialled upstream (a key without balance is refused at no cost to anybody); each
//! `response.done` the upstream sends settles the open hold with that response's `usage` (input
//! tokens, text and audio, with the cached ones at the cache rate, and output tokens, text and
//! audio) at the model's price, one usage record per response, and takes a fresh hold for the
//! next. When no fresh hold can be had the session ends. When the session ends the open hold is
//! released: a response cut off before its `response.done` reported no usage and is not billed,
//! while every response that finished was settled as it finished.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use skein_core::{ApiError, ApiResult};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use super::Caller;
use super::bill::{self, Charge, HoldAmount, Meter};
use super::plan::Plan;
use crate::RelayService;
use crate::channels::{ChannelKind, LiveChannel};
use crate::errors;
use crate::pricing::{Counts, Price};

/// The upstream end of a session.
pub(crate) type UpstreamSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Input tokens one response's hold covers (the conversation so far is each response's input).
const HOLD_INPUT_TOKENS: i64 = 16_384;
/// Output tokens one response's hold covers.
const HOLD_OUTPUT_TOKENS: i64 = 4_096;
/// The least hold a response may start with, input tokens.
const MIN_HOLD_INPUT_TOKENS: i64 = 1_024;
/// The least hold a response may start with, output tokens.
const MIN_HOLD_OUTPUT_TOKENS: i64 = 256;
/// Longest an upstream may take to accept a session.
const CONNECT_WAIT: Duration = Duration::from_secs(15);

/// Whether channels of `kind` offer the Realtime API (OpenAI's and Azure OpenAI's WebSocket).
pub(crate) fn offers_realtime(kind: ChannelKind) -> bool {
    matches!(kind, ChannelKind::OpenAi | ChannelKind::Azure)
}

/// The bill of one Realtime session, and where it is served.
pub(crate) struct Session {
    svc: Arc<RelayService>,
    caller: Caller,
    plan: Plan,
    request_id: String,
    /// The hold for the response to come.
    meter: Option<Meter>,
    /// The channel serving the session, once connected.
    channel_id: String,
    /// Responses settled so far, by id: a `response.done` seen twice is billed once.
    settled: HashSet<String>,
    /// Holds taken so far (each hold's reference is the request id and this number).
    holds: usize,
}

impl Session {
    /// Checks the caller may use `model`, finds the channels that offer it, and takes the
    /// session's first hold, all before anything is opened upstream.
    pub async fn open(
        svc: &Arc<RelayService>,
        caller: Caller,
        model: Option<&str>,
        request_id: String,
    ) -> ApiResult<Session> {
        let plan = super::plan::plan_for(svc, &caller, model, |c| offers_realtime(c.kind)).await?;
        let mut session = Session {
            svc: svc.clone(),
            caller,
            plan,
            request_id,
            meter: None,
            channel_id: String::new(),
            settled: HashSet::new(),
            holds: 0,
        };
        session.meter = Some(session.hold().await?);
        Ok(session)
    }

    async fn hold(&mut self) -> ApiResult<Meter> {
        let rates = &self.plan.rates;
        // A response is mostly audio: held at the dearer of the text and audio rates.
        let amount = rates
            .cost_at_most(HOLD_INPUT_TOKENS, HOLD_OUTPUT_TOKENS)
            .max(1);
        let hold = HoldAmount {
            amount,
            min_amount: rates
                .cost_at_most(MIN_HOLD_INPUT_TOKENS, MIN_HOLD_OUTPUT_TOKENS)
                .clamp(1, amount),
        };
        self.holds += 1;
        let reference = format!("{}:{}", self.request_id, self.holds);
        let mut meter = bill::reserve(&self.svc, &self.caller, reference, &self.plan, hold).await?;
        meter.channel_id = self.channel_id.clone();
        Ok(meter)
    }

    /// Dials the channels in order until one accepts the session; `beta` is the client's
    /// `OpenAI-Beta` header, passed on. When none does, the hold is released by [`Self::close`].
    pub async fn connect(&mut self, beta: Option<&str>) -> ApiResult<UpstreamSocket> {
        let mut tried = Vec::new();
        for channel in self.plan.candidates.clone() {
            let model = channel.upstream_model(&self.plan.model).to_string();
            match dial(&channel, &model, beta).await {
                Ok(socket) => {
                    self.channel_id = channel.id.clone();
                    if let Some(meter) = &mut self.meter {
                        meter.channel_id = channel.id.clone();
                    }
                    tracing::info!(channel = %channel.name, model = %self.plan.model, "realtime session opened");
                    return Ok(socket);
                }
                Err(reason) => {
                    tracing::warn!(channel = %channel.name, %reason, "realtime upstream refused the session");
                    tried.push(channel.name.clone());
                }
            }
        }
        Err(errors::all_failed(&self.plan.model, &tried))
    }

    /// Reads one text frame from the upstream: a `response.done` settles its response and
    /// takes the hold for the next. An error is the refusal of that hold: the session may not
    /// go on, and the client is told why.
    pub async fn observe(&mut self, text: &str) -> ApiResult<()> {
        // Audio deltas are most of the frames and large: only a frame that can be the end of
        // a response is parsed.
        if !text.contains("response.done") {
            return Ok(());
        }
        let Ok(event) = serde_json::from_str::<Value>(text) else {
            return Ok(());
        };
        if event["type"] != "response.done" {
            return Ok(());
        }
        let response = &event["response"];
        if let Some(id) = response["id"].as_str()
            && !self.settled.insert(id.to_string())
        {
            return Ok(());
        }
        let charge = charge(&self.plan.rates, &response["usage"]);
        if let Some(meter) = self.meter.take() {
            meter.settle(charge).await;
        }
        self.meter = Some(self.hold().await?);
        Ok(())
    }

    /// The session ended: the hold of a response that did not finish is released.
    pub async fn close(mut self) {
        if let Some(meter) = self.meter.take() {
            meter.release().await;
        }
    }
}

/// What one response costs, from its `usage`: input tokens (text and audio, the cached ones
/// at the cache rate) and output tokens (text and audio) at the model's price.
fn charge(rates: &Price, usage: &Value) -> Charge {
    if !usage.is_object() {
        return Charge::new(0, 0, 0, "no_usage");
    }
    let input = usage["input_tokens"].as_i64().unwrap_or(0).max(0);
    let output = usage["output_tokens"].as_i64().unwrap_or(0).max(0);
    let cached = usage["input_token_details"]["cached_tokens"]
        .as_i64()
        .unwrap_or(0)
        .clamp(0, input);
    // Cached audio is read at the cache rate like cached text; the rest of the audio at the
    // audio rates where the model has them.
    let details = &usage["input_token_details"];
    let cached_audio = details["cached_tokens_details"]["audio_tokens"]
        .as_i64()
        .unwrap_or(0)
        .clamp(0, cached);
    let counts = Counts {
        prompt: input,
        completion: output,
        cached,
        audio_prompt: (details["audio_tokens"].as_i64().unwrap_or(0) - cached_audio).max(0),
        audio_completion: usage["output_token_details"]["audio_tokens"]
            .as_i64()
            .unwrap_or(0),
        ..Counts::default()
    };
    let mut charge = Charge::new(rates.cost_counts(&counts, 1), input, output, "ok");
    charge.cached = cached;
    charge
}

/// The WebSocket URL of a channel's Realtime API for `model` (Azure: the deployment).
pub(crate) fn realtime_url(channel: &LiveChannel, model: &str) -> ApiResult<reqwest::Url> {
    let mut url = match channel.kind {
        ChannelKind::Azure => crate::vendor::openai::azure::realtime_url(&channel.base_url, model)?,
        _ => {
            let mut url = reqwest::Url::parse(&format!(
                "{}/v1/realtime",
                channel.base_url.trim_end_matches('/')
            ))
            .map_err(ApiError::internal)?;
            url.query_pairs_mut().append_pair("model", model);
            url
        }
    };
    let scheme = if url.scheme() == "http" { "ws" } else { "wss" };
    url.set_scheme(scheme)
        .map_err(|()| ApiError::internal("the channel's base URL cannot be a WebSocket URL"))?;
    Ok(url)
}

/// Opens a session on `channel`; the reason it failed otherwise (never with the key).
async fn dial(
    channel: &LiveChannel,
    model: &str,
    beta: Option<&str>,
) -> Result<UpstreamSocket, String> {
    let url = realtime_url(channel, model).map_err(|e| e.code().to_string())?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let headers = request.headers_mut();
    let key = |value: String| {
        HeaderValue::from_str(&value).map_err(|_| "a key that is not a header value".to_string())
    };
    match channel.kind {
        ChannelKind::Azure => headers.insert("api-key", key(channel.key().to_string())?),
        _ => headers.insert("authorization", key(format!("Bearer {}", channel.key()))?),
    };
    for (name, value) in &channel.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    if let Some(beta) = beta.and_then(|b| HeaderValue::from_str(b).ok()) {
        headers.insert("openai-beta", beta);
    }
    match tokio::time::timeout(CONNECT_WAIT, tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            Err(format!("status {}", response.status().as_u16()))
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::Rates;

    fn price() -> Price {
        Price {
            rates: Rates {
                input_per_mtok: 4_000_000,
                output_per_mtok: 16_000_000,
                cache_read_per_mtok: 400_000,
                cache_write_per_mtok: 0,
                per_call: 0,
                audio_input_per_mtok: None,
                audio_output_per_mtok: None,
            },
            group: "default".into(),
            multiplier_permille: 1000,
            priced: true,
        }
    }

    #[test]
    fn a_response_is_charged_from_its_usage() {
        let usage = serde_json::json!({
            "total_tokens": 160, "input_tokens": 120, "output_tokens": 40,
            "input_token_details": {"text_tokens": 20, "audio_tokens": 100, "cached_tokens": 64,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 64}},
            "output_token_details": {"text_tokens": 10, "audio_tokens": 30}
        });
        let c = charge(&price(), &usage);
        assert_eq!((c.prompt, c.completion, c.cached), (120, 40, 64));
        // 56 uncached × 4 + 64 cached × 0.4 + 40 × 16 = 224 + 25.6 + 640, rounded up once.
        assert_eq!(c.cost, 890);
        assert_eq!(c.status, "ok");
        assert_eq!(charge(&price(), &Value::Null).cost, 0);

        // With audio priced apart (×8 in, ×4 out), the 36 uncached audio tokens and the 30
        // audio output tokens go at those rates: 20 text × 4 + 36 audio × 32 + 64 cached × 0.4
        // + 10 text × 16 + 30 audio × 64 = 80 + 1152 + 25.6 + 160 + 1920, rounded up once.
        let mut audio = price();
        audio.rates.audio_input_per_mtok = Some(32_000_000);
        audio.rates.audio_output_per_mtok = Some(64_000_000);
        let c = charge(&audio, &usage);
        assert_eq!((c.prompt, c.completion, c.cached), (120, 40, 64));
        assert_eq!(c.cost, 3338);
    }
}
