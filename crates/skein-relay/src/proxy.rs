//! Talking to OpenAI-format upstreams: building the request for a channel, classifying the
//! answer (use it, try another channel, or hand the error to the client), reading usage, and
//! an incremental server-sent-events splitter that copes with events cut anywhere.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use crate::channels::LiveChannel;

/// Kinds this adapter speaks today.
pub const OPENAI_KINDS: &[&str] = &["openai"];

/// What an upstream attempt came to.
pub enum Attempt {
    /// A 2xx answer to stream or read.
    Ok(reqwest::Response),
    /// Worth trying another channel: connect error, timeout, 429, 5xx. The reason is logged.
    Retry(String),
    /// The upstream refused the request itself (4xx other than 429): the client should see it.
    Refused(u16, Bytes),
    /// The channel itself is unusable (its key is rejected, its account is out of quota):
    /// disable it and try another.
    Dead(String),
}

/// Sends `body` to the channel's chat-completions endpoint.
pub async fn send(http: &reqwest::Client, channel: &LiveChannel, body: Bytes) -> Attempt {
    let url = format!("{}/v1/chat/completions", channel.base_url);
    let mut req = http
        .post(url)
        .timeout(Duration::from_secs(
            u64::try_from(channel.timeout_secs).unwrap_or(120),
        ))
        .bearer_auth(channel.key())
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in &channel.headers {
        req = req.header(name, value);
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Attempt::Ok(resp),
        Ok(resp) => {
            let status = resp.status().as_u16();
            if status == 401 || status == 403 {
                return Attempt::Dead(format!("upstream {status}: the channel's key was rejected"));
            }
            if status == 429 || status == 402 {
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = resp.bytes().await.unwrap_or_default();
                // OpenAI answers 429 with code `insufficient_quota` when the account has no credit:
                // no retry will help until someone pays.
                if status == 402 || body.windows(18).any(|w| w == b"insufficient_quota") {
                    return Attempt::Dead(format!(
                        "upstream {status}: the channel's account is out of quota"
                    ));
                }
                return Attempt::Retry(match retry_after {
                    Some(after) => format!("upstream {status} (retry-after {after})"),
                    None => format!("upstream {status}"),
                });
            }
            if status >= 500 {
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                Attempt::Retry(match retry_after {
                    Some(after) => format!("upstream {status} (retry-after {after})"),
                    None => format!("upstream {status}"),
                })
            } else {
                let body = resp.bytes().await.unwrap_or_default();
                Attempt::Refused(status, body)
            }
        }
        Err(e) if e.is_timeout() => Attempt::Retry("upstream timed out".into()),
        Err(e) if e.is_connect() => Attempt::Retry("upstream unreachable".into()),
        Err(e) => Attempt::Retry(format!("upstream request failed: {e}")),
    }
}

/// Sends `body` (of `content_type`) to `path` under the channel's base URL: the embeddings,
/// completions, images, audio and rerank routes, which share chat's upstream rules but not its
/// path or body type. Classified as [`send`] does; kept apart from it so chat's adapter can
/// change on its own.
pub(crate) async fn send_to(
    http: &reqwest::Client,
    channel: &LiveChannel,
    path: &str,
    content_type: &str,
    body: Bytes,
) -> Attempt {
    let mut req = http
        .post(format!("{}{path}", channel.base_url))
        .timeout(Duration::from_secs(
            u64::try_from(channel.timeout_secs).unwrap_or(120),
        ))
        .bearer_auth(channel.key())
        .header("content-type", content_type)
        .body(body);
    for (name, value) in &channel.headers {
        req = req.header(name, value);
    }
    classify(req.send().await).await
}

/// Sorts an upstream answer into use it / try another channel / disable the channel / hand the
/// refusal to the client.
async fn classify(result: Result<reqwest::Response, reqwest::Error>) -> Attempt {
    let resp = match result {
        Ok(resp) => resp,
        Err(e) if e.is_timeout() => return Attempt::Retry("upstream timed out".into()),
        Err(e) if e.is_connect() => return Attempt::Retry("upstream unreachable".into()),
        Err(e) => return Attempt::Retry(format!("upstream request failed: {e}")),
    };
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return Attempt::Ok(resp);
    }
    if status == 401 || status == 403 {
        return Attempt::Dead(format!("upstream {status}: the channel's key was rejected"));
    }
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let retry = |status: u16| {
        Attempt::Retry(match &retry_after {
            Some(after) => format!("upstream {status} (retry-after {after})"),
            None => format!("upstream {status}"),
        })
    };
    if status >= 500 {
        return retry(status);
    }
    let body = resp.bytes().await.unwrap_or_default();
    if status == 429 || status == 402 {
        // OpenAI answers 429 `insufficient_quota` when the account has no credit: no retry
        // helps until someone pays.
        if status == 402 || body.windows(18).any(|w| w == b"insufficient_quota") {
            return Attempt::Dead(format!(
                "upstream {status}: the channel's account is out of quota"
            ));
        }
        return retry(status);
    }
    Attempt::Refused(status, body)
}

/// A one-token request to check a channel works.
pub async fn probe(
    http: &reqwest::Client,
    channel: &LiveChannel,
    model: &str,
) -> Result<(), String> {
    if !OPENAI_KINDS.contains(&channel.kind.as_str()) {
        return Err(format!(
            "testing {} channels is not supported yet",
            channel.kind
        ));
    }
    let body = serde_json::json!({
        "model": channel.upstream_model(model),
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    });
    match send(http, channel, Bytes::from(body.to_string())).await {
        Attempt::Ok(resp) => match resp.json::<Value>().await {
            Ok(v) if v.get("choices").is_some() => Ok(()),
            Ok(_) => Err("the upstream answered without choices".into()),
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

/// Token counts an upstream reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens.
    pub prompt: i64,
    /// Completion tokens (reasoning included).
    pub completion: i64,
    /// Prompt tokens served from cache.
    pub cached: i64,
}

/// Reads OpenAI's `usage` object, if the value has a non-null one.
pub fn usage_of(value: &Value) -> Option<Tokens> {
    let usage = value.get("usage").filter(|u| u.is_object())?;
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    Some(Tokens {
        prompt: int(&usage["prompt_tokens"]),
        completion: int(&usage["completion_tokens"]),
        cached: int(&usage["prompt_tokens_details"]["cached_tokens"]),
    })
}

/// A rough upper estimate of tokens in text (no tokenizer yet): a token is rarely shorter
/// than 3 bytes of English, and a CJK character (3 bytes in UTF-8) is about one token.
pub fn estimate_tokens(text_len: usize) -> i64 {
    i64::try_from(text_len / 3 + 1).unwrap_or(i64::MAX)
}

/// Splits a byte stream into server-sent events, whatever the chunk boundaries.
#[derive(Default)]
pub struct SseSplitter {
    buffer: BytesMut,
}

impl SseSplitter {
    /// Feeds bytes; answers the complete events now available (each without its blank line).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        loop {
            let boundary = find_boundary(&self.buffer);
            let Some((end, skip)) = boundary else { break };
            let event = self.buffer.split_to(end).freeze();
            let _ = self.buffer.split_to(skip);
            if !event.is_empty() {
                events.push(event);
            }
        }
        events
    }

    /// What is left when the stream ends (an unterminated last event).
    pub fn finish(&mut self) -> Option<Bytes> {
        let rest = self.buffer.split().freeze();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

fn find_boundary(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The `data:` payload of an event (lines joined), if it has one.
pub fn event_data(event: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(event).ok()?;
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_cut_anywhere() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":\ndata: 2}\r\n\r\ndata: [DONE]\n\n";
        for cut in 1..stream.len() {
            let mut s = SseSplitter::default();
            let mut events = s.push(&stream[..cut]);
            events.extend(s.push(&stream[cut..]));
            let data: Vec<String> = events.iter().filter_map(|e| event_data(e)).collect();
            assert_eq!(
                data,
                vec!["{\"a\":1}", "{\"b\":\n2}", "[DONE]"],
                "cut at {cut}"
            );
            assert!(s.finish().is_none());
        }
    }

    #[test]
    fn reads_usage_only_when_present() {
        let v: Value = serde_json::json!({"usage": {"prompt_tokens": 12, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4}}});
        assert_eq!(
            usage_of(&v),
            Some(Tokens {
                prompt: 12,
                completion: 5,
                cached: 4
            })
        );
        assert_eq!(usage_of(&serde_json::json!({"usage": null})), None);
        assert_eq!(usage_of(&serde_json::json!({})), None);
    }
}
