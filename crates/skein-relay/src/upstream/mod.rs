//! Upstream adapters: one per kind of channel, behind one trait. An adapter turns the pivot
//! request (OpenAI chat completions, whatever the client spoke) into its vendor's HTTP request
//! — URL, authentication, body — and the vendor's answer, whole or streamed, back into the
//! pivot, so routing, billing and the client-side conversions in [`crate::convert`] see one
//! format. It also says what a failed answer means for routing ([`Attempt`]).

pub mod anthropic;
pub mod azure;
pub mod gemini;
pub mod images;
pub mod openai;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use skein_core::ApiResult;

use crate::channels::{ChannelKind, LiveChannel};
use crate::proxy::Attempt;

/// One upstream wire format.
pub trait Upstream: Send + Sync {
    /// The channel kind it serves.
    fn kind(&self) -> ChannelKind;

    /// The vendor's base URL, for channels that name none (Azure has none: each resource has
    /// its own).
    fn default_base_url(&self) -> Option<&'static str>;

    /// The HTTP request for a pivot request whose `model` is already the upstream's name.
    /// Fails with a 400 naming a field the vendor cannot express.
    fn request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
        pivot: &Value,
    ) -> ApiResult<reqwest::RequestBuilder>;

    /// The request for a body already in this vendor's own format (a client of the same
    /// vendor), sent as the client wrote it with only the model mapped, so nothing is lost to
    /// the pivot. `None` when the adapter has no such path.
    fn native_request(
        &self,
        _http: &reqwest::Client,
        _channel: &LiveChannel,
        _body: &Value,
        _model: &str,
        _stream: bool,
    ) -> Option<ApiResult<reqwest::RequestBuilder>> {
        None
    }

    /// Whether the vendor's answers are already the pivot format (OpenAI's), so they can reach
    /// OpenAI clients byte for byte.
    fn speaks_pivot(&self) -> bool {
        false
    }

    /// A whole (non-streamed) answer as a pivot chat completion.
    fn response(&self, body: Value, model: &str) -> Value;

    /// A decoder for a streamed answer to `model`.
    fn decoder(&self, model: &str) -> Box<dyn StreamDecoder>;

    /// What a non-2xx answer means: retry elsewhere, refuse the request, or a dead channel.
    /// The default reads OpenAI's error body: 402, or 429 with code `insufficient_quota`, is an
    /// account out of credit.
    fn classify(&self, status: u16, retry_after: Option<&str>, body: Bytes) -> Attempt {
        let error = error_object(&body);
        let out_of_credit = status == 402
            || (status == 429 && error["code"].as_str() == Some("insufficient_quota"));
        classify(status, retry_after, body, out_of_credit)
    }

    /// A vendor error body in OpenAI's shape (`{"error": {"message", "type", ...}}`), which the
    /// client-side conversions read.
    fn error_to_openai(&self, body: Bytes) -> Bytes;

    /// The request that lists the models an account can use.
    fn models_request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
    ) -> ApiResult<reqwest::RequestBuilder>;

    /// The model ids in the answer to [`Upstream::models_request`].
    fn models(&self, body: &Value) -> Vec<String>;
}

/// Turns a vendor's stream into pivot server-sent events (`data: {chunk}`, `data: [DONE]`).
pub trait StreamDecoder: Send {
    /// The pivot events for one upstream event; `Err` when the upstream reported an error
    /// inside the stream (it will not finish).
    fn event(&mut self, event: Bytes) -> Result<Vec<Bytes>, String>;

    /// The pivot events owed once the upstream stream ended cleanly.
    fn finish(&mut self) -> Vec<Bytes>;

    /// The usage known so far when the stream broke off (vendors that report running totals),
    /// so a partial answer is billed from the vendor's count rather than an estimate.
    fn partial(&mut self) -> Vec<Bytes> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(a: &Attempt) -> bool {
        matches!(a, Attempt::Dead(_))
    }

    #[test]
    fn every_kind_has_its_adapter() {
        for kind in ChannelKind::ALL {
            assert_eq!(for_kind(kind).kind(), kind);
        }
    }

    #[test]
    fn errors_are_classified_from_structured_fields_only() {
        let openai = for_kind(ChannelKind::OpenAi);
        let quota = Bytes::from(
            r#"{"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}"#,
        );
        assert!(dead(&openai.classify(429, None, quota)));
        // A 400 that echoes the client's words is the request's fault, whatever they say.
        let echo = Bytes::from(
            r#"{"error": {"message": "Invalid value: 'insufficient_quota'.", "type": "invalid_request_error", "code": null}}"#,
        );
        assert!(matches!(
            openai.classify(400, None, echo),
            Attempt::Refused(400, _)
        ));
        assert!(
            matches!(openai.classify(429, Some("2"), Bytes::new()), Attempt::Retry(r) if r.contains("retry-after 2"))
        );

        let anthropic = for_kind(ChannelKind::Anthropic);
        let credit = Bytes::from(
            r#"{"type": "error", "error": {"type": "invalid_request_error", "message": "Your credit balance is too low to access the Anthropic API."}}"#,
        );
        assert!(dead(&anthropic.classify(400, None, credit)));
        let echo = Bytes::from(
            r#"{"type": "error", "error": {"type": "invalid_request_error", "message": "messages.0: Your credit balance is too low"}}"#,
        );
        assert!(matches!(
            anthropic.classify(400, None, echo),
            Attempt::Refused(..)
        ));
        let overloaded = Bytes::from(
            r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
        );
        assert!(matches!(
            anthropic.classify(529, None, overloaded),
            Attempt::Retry(_)
        ));

        let gemini = for_kind(ChannelKind::Gemini);
        let bad_key = Bytes::from(
            r#"{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}"#,
        );
        assert!(dead(&gemini.classify(400, None, bad_key)));
        let billing = Bytes::from(
            r#"[{"error": {"code": 400, "message": "Enable billing.", "status": "FAILED_PRECONDITION"}}]"#,
        );
        assert!(dead(&gemini.classify(400, None, billing)));
        let echo = Bytes::from(
            r#"{"error": {"code": 400, "message": "Invalid value at 'x' (API_KEY_INVALID FAILED_PRECONDITION)", "status": "INVALID_ARGUMENT"}}"#,
        );
        assert!(matches!(
            gemini.classify(400, None, echo),
            Attempt::Refused(..)
        ));
        assert!(matches!(
            gemini.classify(429, None, Bytes::new()),
            Attempt::Retry(_)
        ));
    }
}

/// The adapter of a channel kind: the one place a new kind is wired to its module.
pub fn for_kind(kind: ChannelKind) -> &'static dyn Upstream {
    match kind {
        ChannelKind::OpenAi => &openai::OpenAi,
        ChannelKind::Azure => &azure::Azure,
        ChannelKind::Anthropic => &anthropic::Anthropic,
        ChannelKind::Gemini => &gemini::Gemini,
    }
}

/// How remote images may be fetched for upstreams that need them inline.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImagePolicy {
    /// Allow private, loopback and link-local addresses (tests and trusted networks only).
    pub allow_private: bool,
}

/// Sends a pivot request through a channel. `Err` is a 400 for the client (a field this
/// upstream cannot carry, an image URL it may not fetch); the caller may try another kind.
pub async fn send(
    http: &reqwest::Client,
    channel: &LiveChannel,
    pivot: &Value,
    images: ImagePolicy,
) -> ApiResult<Attempt> {
    let adapter = for_kind(channel.kind);
    let inlined;
    let pivot = if adapter.kind() == ChannelKind::Gemini {
        inlined = images::inline_remote_images(pivot, images).await?;
        &inlined
    } else {
        pivot
    };
    let req = adapter.request(http, channel, pivot)?;
    Ok(send_request(adapter, channel, req).await)
}

/// Sends a body in the channel's own format (see [`Upstream::native_request`]) with the
/// client's vendor headers that select features (`anthropic-beta`); `None` when the channel's
/// adapter has no native path.
pub async fn send_native(
    http: &reqwest::Client,
    channel: &LiveChannel,
    body: &Value,
    model: &str,
    stream: bool,
    client_headers: &[(String, String)],
) -> Option<ApiResult<Attempt>> {
    let adapter = for_kind(channel.kind);
    let mut req = match adapter.native_request(http, channel, body, model, stream)? {
        Ok(req) => req,
        Err(error) => return Some(Err(error)),
    };
    for (name, value) in client_headers {
        req = req.header(name, value);
    }
    Some(Ok(send_request(adapter, channel, req).await))
}

/// How long an upstream may stay silent: until its answer's headers arrive, and between any two
/// pieces of its body. It is not a limit on the whole answer, so a long stream or a slow
/// reasoning model is never cut while it is still writing.
pub fn idle_timeout(channel: &LiveChannel) -> Duration {
    Duration::from_secs(u64::try_from(channel.timeout_secs).unwrap_or(120).max(1))
}

/// Reads a whole upstream body, allowing at most `idle` between its pieces.
pub(crate) async fn read_body(resp: reqwest::Response, idle: Duration) -> Result<Bytes, String> {
    use futures::StreamExt;
    let mut body = resp.bytes_stream();
    let mut out = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(chunk))) => out.extend_from_slice(&chunk),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Err(error))) => return Err(error.to_string()),
            Err(_) => return Err("the upstream went silent".into()),
        }
    }
}

/// Sends a prepared upstream request with the channel's extra headers, waiting at most its
/// idle timeout for the answer to begin, and classifies the answer with `adapter`'s rules.
pub(crate) async fn send_request(
    adapter: &dyn Upstream,
    channel: &LiveChannel,
    mut req: reqwest::RequestBuilder,
) -> Attempt {
    for (name, value) in &channel.headers {
        req = req.header(name, value);
    }
    let idle = idle_timeout(channel);
    let Ok(sent) = tokio::time::timeout(idle, req.send()).await else {
        return Attempt::Retry("upstream timed out".into());
    };
    match sent {
        Ok(resp) if resp.status().is_success() => Attempt::Ok(resp),
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = read_body(resp, idle).await.unwrap_or_default();
            adapter.classify(status, retry_after.as_deref(), body)
        }
        Err(e) if e.is_timeout() => Attempt::Retry("upstream timed out".into()),
        Err(e) if e.is_connect() => Attempt::Retry("upstream unreachable".into()),
        // reqwest's message names the URL, never a header, so no key reaches the log.
        Err(e) => Attempt::Retry(format!("upstream request failed: {e}")),
    }
}

/// How a dead channel's reason says its key was rejected (rather than its account emptied):
/// such a reason is confirmed with the key itself before the channel is disabled.
pub const KEY_REJECTED: &str = "the channel's key was rejected";

/// Whether the channel's own key still works: the vendor's model list answers it (a request
/// that costs nothing and carries nothing of a client's). `Ok(false)` when the vendor refuses
/// the key; `Err` when the list said nothing either way (no such endpoint, unreachable).
pub async fn key_works(http: &reqwest::Client, channel: &LiveChannel) -> Result<bool, String> {
    match fetch_models(http, channel).await {
        Ok(_) => Ok(true),
        Err(reason) if reason.starts_with("upstream 401") || reason.starts_with("upstream 403") => {
            Ok(false)
        }
        Err(reason) => Err(reason),
    }
}

/// The rules every vendor shares: a rejected key (401/403) or an account out of credit (which
/// the adapter recognises in its vendor's error body) is a dead channel; 429 and 5xx
/// (Anthropic's 529 overloaded included) are worth another channel; any other 4xx is the
/// request's fault. Adapters read structured fields (codes, statuses, the start of a
/// vendor-written message), never a search of the whole body, which can echo what the client
/// sent: a client must not be able to disable a channel by writing a vendor's phrase.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: Bytes,
    out_of_credit: bool,
) -> Attempt {
    if status == 401 || status == 403 {
        return Attempt::Dead(format!("upstream {status}: {KEY_REJECTED}"));
    }
    if (300..400).contains(&status) {
        // Not followed (the key would go to another host): this channel cannot serve.
        return Attempt::Retry(format!("upstream {status}: a redirect, not followed"));
    }
    if out_of_credit {
        // No retry helps until someone pays.
        return Attempt::Dead(format!(
            "upstream {status}: the channel's account is out of quota"
        ));
    }
    if status == 429 || status >= 500 {
        return Attempt::Retry(match retry_after {
            Some(after) => format!("upstream {status} (retry-after {after})"),
            None => format!("upstream {status}"),
        });
    }
    Attempt::Refused(status, body)
}

/// The `error` object of a vendor's error body (Google's may come as a one-item array), or
/// `Null`.
pub fn error_object(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    if v.is_array() {
        v[0]["error"].clone()
    } else {
        v["error"].clone()
    }
}

/// An OpenAI-shaped error body with `message` and `type`.
pub fn openai_error(message: &str, kind: &str) -> Bytes {
    Bytes::from(
        json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
            .to_string(),
    )
}

/// `data: {value}` as one server-sent event (without its blank line).
pub fn data_event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}"))
}

/// The end-of-stream marker of OpenAI streams.
pub fn done_event() -> Bytes {
    Bytes::from_static(b"data: [DONE]")
}

/// A one-token request through a channel's adapter, to check the channel works.
pub async fn probe(
    http: &reqwest::Client,
    channel: &LiveChannel,
    model: &str,
) -> Result<(), String> {
    let adapter = for_kind(channel.kind);
    let upstream_model = channel.upstream_model(model).to_string();
    let pivot = json!({
        "model": upstream_model,
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    });
    let attempt = send(http, channel, &pivot, ImagePolicy::default())
        .await
        .map_err(|e| e.to_string())?;
    match attempt {
        Attempt::Ok(resp) => match resp.json::<Value>().await {
            Ok(v) => {
                let pivot = adapter.response(v, &upstream_model);
                if pivot["choices"].as_array().is_some_and(|c| !c.is_empty()) {
                    Ok(())
                } else {
                    Err("the upstream answered without a choice".into())
                }
            }
            Err(e) => Err(format!(
                "the upstream answered something that is not JSON: {e}"
            )),
        },
        Attempt::Retry(reason) | Attempt::Dead(reason) => Err(reason),
        Attempt::Refused(status, body) => Err(format!(
            "upstream {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        )),
    }
}

/// The models a channel's upstream account offers, as the vendor names them.
pub async fn fetch_models(
    http: &reqwest::Client,
    channel: &LiveChannel,
) -> Result<Vec<String>, String> {
    let adapter = for_kind(channel.kind);
    let mut req = adapter
        .models_request(http, channel)
        .map_err(|e| e.to_string())?
        .timeout(Duration::from_secs(30));
    for (name, value) in &channel.headers {
        req = req.header(name, value);
    }
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            "upstream timed out".to_string()
        } else {
            "upstream unreachable".to_string()
        }
    })?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|_| "the upstream answer broke off".to_string())?;
    if !status.is_success() {
        return Err(format!(
            "upstream {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(300)
                .collect::<String>()
        ));
    }
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the upstream answered something that is not JSON: {e}"))?;
    let mut models = adapter.models(&body);
    models.sort();
    models.dedup();
    Ok(models)
}

/// Shared by the OpenAI-format adapters (OpenAI and Azure): the stream is already the pivot.
pub struct PassThrough;

impl StreamDecoder for PassThrough {
    fn event(&mut self, event: Bytes) -> Result<Vec<Bytes>, String> {
        Ok(vec![event])
    }

    fn finish(&mut self) -> Vec<Bytes> {
        Vec::new()
    }
}

/// The `data:` JSON of an upstream event, if it has one that parses.
pub fn event_json(event: &[u8]) -> Option<Value> {
    let data = crate::proxy::event_data(event)?;
    serde_json::from_str(&data).ok()
}
