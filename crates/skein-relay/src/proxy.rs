//! What every upstream exchange shares and no vendor owns: reading the pivot format's usage,
//! and an incremental server-sent-events splitter that copes with events cut anywhere. It
//! depends on no other module of the crate. The per-vendor requests and conversions live in
//! [`crate::vendor`], the sending in [`crate::upstream`].

use bytes::{Bytes, BytesMut};
use serde_json::Value;

/// Token counts an upstream reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens.
    pub prompt: i64,
    /// Completion tokens (reasoning included).
    pub completion: i64,
    /// Prompt tokens served from cache.
    pub cached: i64,
    /// Prompt tokens written to the vendor's cache for its short (5-minute) lifetime.
    pub cache_write: i64,
    /// Prompt tokens written to the vendor's cache for an hour (Anthropic prices them higher).
    pub cache_write_1h: i64,
    /// Prompt tokens that are audio (OpenAI's `prompt_tokens_details.audio_tokens`), billed at
    /// the model's audio input rate where it has one.
    pub audio_prompt: i64,
    /// Completion tokens that are audio (`completion_tokens_details.audio_tokens`).
    pub audio_completion: i64,
}

/// Reads OpenAI's `usage` object, if the value has a non-null one.
pub fn usage_of(value: &Value) -> Option<Tokens> {
    usage_tokens(value.get("usage")?)
}

/// The tokens of an OpenAI `usage` object itself.
pub fn usage_tokens(usage: &Value) -> Option<Tokens> {
    let usage = Some(usage).filter(|u| u.is_object())?;
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    Some(Tokens {
        prompt: int(&usage["prompt_tokens"]),
        completion: int(&usage["completion_tokens"]),
        cached: int(&usage["prompt_tokens_details"]["cached_tokens"]),
        cache_write: int(&usage["prompt_tokens_details"][CACHE_WRITE]),
        cache_write_1h: int(&usage["prompt_tokens_details"][CACHE_WRITE_1H]),
        audio_prompt: int(&usage["prompt_tokens_details"]["audio_tokens"]),
        audio_completion: int(&usage["completion_tokens_details"]["audio_tokens"]),
    })
}

/// Skein's own field in a pivot usage's `prompt_tokens_details`: prompt tokens the vendor wrote
/// to its cache (5-minute lifetime). OpenAI has no such count; Anthropic's adapters fill it, so
/// the writes are billed at the cache-write price rather than as plain input.
pub const CACHE_WRITE: &str = "cache_write_tokens";
/// Like [`CACHE_WRITE`], for writes kept an hour.
pub const CACHE_WRITE_1H: &str = "cache_write_1h_tokens";

/// The length of `value` written as compact JSON (as `to_string` would write it), counted
/// without building the text.
pub fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// A rough upper estimate of tokens in text (no tokenizer yet): a token is rarely shorter
/// than 3 bytes of English, and a CJK character (3 bytes in UTF-8) is about one token.
pub fn estimate_tokens(text_len: usize) -> i64 {
    i64::try_from(text_len / 3 + 1).unwrap_or(i64::MAX)
}

/// Splits a byte stream into server-sent events, whatever the chunk boundaries (or, made
/// with [`SseSplitter::lines`], into the lines of newline-delimited JSON).
#[derive(Default)]
pub struct SseSplitter {
    buffer: BytesMut,
    lines: bool,
}

impl SseSplitter {
    /// A splitter at every line end (NDJSON streams, such as Ollama's).
    pub fn lines() -> SseSplitter {
        SseSplitter {
            buffer: BytesMut::new(),
            lines: true,
        }
    }

    /// Feeds bytes; answers the complete events now available (each without its blank line).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        loop {
            let boundary = if self.lines {
                self.buffer.iter().position(|b| *b == b'\n').map(|i| (i, 1))
            } else {
                find_boundary(&self.buffer)
            };
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
    fn splits_lines_cut_anywhere() {
        let stream = b"{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":3}\n";
        for cut in 1..stream.len() {
            let mut s = SseSplitter::lines();
            let mut lines = s.push(&stream[..cut]);
            lines.extend(s.push(&stream[cut..]));
            let lines: Vec<&[u8]> = lines.iter().map(|l| l.trim_ascii()).collect();
            assert_eq!(
                lines,
                vec![&b"{\"a\":1}"[..], b"{\"b\":2}", b"{\"c\":3}"],
                "cut at {cut}"
            );
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
                cached: 4,
                ..Tokens::default()
            })
        );
        assert_eq!(usage_of(&serde_json::json!({"usage": null})), None);
        assert_eq!(usage_of(&serde_json::json!({})), None);
    }
}
