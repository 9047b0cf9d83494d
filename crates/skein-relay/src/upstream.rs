//! Sending to upstreams: a pivot request or a client's own body through a channel's adapter
//! (see [`crate::vendor`]), with the channel's headers and idle timeout, and the answer
//! classified into an [`Attempt`]; the other OpenAI routes' bodies to OpenAI channels; probes
//! and model lists for admins.

pub use crate::vendor::gemini::images::ImagePolicy;

pub mod dashscope_images;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use skein_core::ApiResult;

use crate::channels::LiveChannel;
use crate::vendor::{Attempt, Upstream, adapter};

/// Sends a pivot request through a channel. `Err` is a 400 for the client (a field this
/// upstream cannot carry, an image URL it may not fetch); the caller may try another kind.
pub async fn send(
    http: &reqwest::Client,
    channel: &LiveChannel,
    pivot: &Value,
    images: ImagePolicy,
) -> ApiResult<Attempt> {
    let adapter = adapter(channel.kind);
    let inlined;
    let pivot = if adapter.inlines_images() {
        inlined = crate::vendor::gemini::images::inline_remote_images(pivot, images).await?;
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
    let adapter = adapter(channel.kind);
    let mut req = match adapter.native_request(http, channel, body, model, stream)? {
        Ok(req) => req,
        Err(error) => return Some(Err(error)),
    };
    for (name, value) in client_headers {
        req = req.header(name, value);
    }
    Some(Ok(send_request(adapter, channel, req).await))
}

/// Sends `body` (of `content_type`) to `path` under an OpenAI-format channel's base URL: the
/// embeddings, completions, images, audio and rerank routes, which share chat's upstream rules
/// (and the OpenAI adapter's error classification) but not its path or body type.
pub(crate) async fn send_to(
    http: &reqwest::Client,
    channel: &LiveChannel,
    path: &'static str,
    content_type: &str,
    body: Bytes,
) -> Attempt {
    let req = channel
        .post(http, path)
        .bearer_auth(channel.key())
        .header("content-type", content_type)
        .body(body);
    send_request(adapter(channel.kind), channel, req).await
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

/// The most bytes an admin call reads of a vendor's model list: the longest lists (hundreds
/// of models with descriptions) stay well under it.
pub const MAX_MODEL_LIST_BYTES: usize = 4 * 1024 * 1024;

/// Reads at most `limit` bytes of an upstream answer that only an admin action asked for (a
/// model list, a balance): a vendor, or whatever a base URL points at, must not be able to
/// make the server hold an unbounded body. A longer answer is refused, not cut, since a cut
/// JSON document would not parse anyway; a declared length over the limit is refused before
/// anything is read.
pub async fn read_limited(resp: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    use futures::StreamExt;
    let too_long = || format!("the upstream answer is longer than {} KiB", limit / 1024);
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(too_long());
    }
    let mut body = resp.bytes_stream();
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| "the upstream answer broke off".to_string())?;
        if out.len() + chunk.len() > limit {
            return Err(too_long());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
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
    // The vendor sees the attempt's span as the parent of whatever it traces.
    req = skein_core::trace::inject(req);
    let idle = idle_timeout(channel);
    let Ok(sent) = tokio::time::timeout(idle, req.send()).await else {
        return Attempt::Retry("upstream timed out".into());
    };
    match sent {
        Ok(resp) if resp.status().is_success() => {
            let streamed = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("text/event-stream"));
            if adapter.errors_in_ok() && !streamed {
                checked_ok(adapter, resp, idle).await
            } else {
                Attempt::Ok(resp)
            }
        }
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

/// A whole 2xx answer of a vendor that reports some errors with a 2xx: read, checked, and
/// either classified as the error it is or handed on as the answer it is.
async fn checked_ok(adapter: &dyn Upstream, resp: reqwest::Response, idle: Duration) -> Attempt {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = match read_body(resp, idle).await {
        Ok(body) => body,
        Err(reason) => return Attempt::Retry(format!("upstream answer broke off: {reason}")),
    };
    if adapter.error_in_ok(&body) {
        return adapter.classify(status.as_u16(), None, body);
    }
    let mut rebuilt = axum::http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.headers_mut() = headers;
    Attempt::Ok(reqwest::Response::from(rebuilt))
}

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

/// A one-token request through a channel's adapter, to check the channel works.
pub async fn probe(
    http: &reqwest::Client,
    channel: &LiveChannel,
    model: &str,
) -> Result<(), String> {
    let adapter = adapter(channel.kind);
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
    let adapter = adapter(channel.kind);
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
    let bytes = read_limited(resp, MAX_MODEL_LIST_BYTES).await?;
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
