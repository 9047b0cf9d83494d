//! W3C trace context (`traceparent`) for distributed traces: parsing the header a request
//! arrives with, and writing the current span's context onto outgoing requests (to Skein's own
//! services when split, and to upstream vendors).
//!
//! The exporter that records spans lives in the binary (`skein::telemetry`); it installs a hook
//! here that answers the current span's context. Without it (traces off, the default) nothing
//! is added to any request.

use std::fmt;
use std::sync::OnceLock;

/// The header W3C Trace Context names.
pub const TRACEPARENT: &str = "traceparent";

/// One span's place in a trace, as `traceparent` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace's id (never all zeros).
    pub trace_id: [u8; 16],
    /// The span's id (never all zeros).
    pub span_id: [u8; 8],
    /// Whether the trace is being recorded (the `sampled` flag).
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` header value (`00-<32 hex>-<16 hex>-<2 hex>`). Unknown future
    /// versions are read by their first four fields, as the specification asks; anything
    /// malformed (or the invalid all-zero ids) is `None`, and the request starts a new trace.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let value = value.trim();
        let mut parts = value.split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || version.eq_ignore_ascii_case("ff") {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let _: [u8; 1] = decode_hex(version)?;
        let trace_id: [u8; 16] = decode_hex(trace)?;
        let span_id: [u8; 8] = decode_hex(span)?;
        let [flags]: [u8; 1] = decode_hex(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            u8::from(self.sampled)
        )
    }
}

/// Lowercase hex of exactly `N` bytes (uppercase is invalid in `traceparent`).
fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Answers a span's context (or its nearest traced ancestor's), when traces are on.
pub type ContextHook = fn(&tracing::Span) -> Option<TraceParent>;

static HOOK: OnceLock<ContextHook> = OnceLock::new();

/// Installs the hook that answers a span's context (the exporter does, once).
pub fn set_context_hook(hook: ContextHook) {
    let _ = HOOK.set(hook);
}

/// `span`'s context, when traces are on.
pub fn of(span: &tracing::Span) -> Option<TraceParent> {
    HOOK.get().and_then(|hook| hook(span))
}

/// The current span's context, when traces are on and the caller is inside a traced span.
pub fn current() -> Option<TraceParent> {
    of(&tracing::Span::current())
}

/// Adds `traceparent` with the current span's context to an outgoing request (nothing when
/// traces are off), so the service or vendor called joins the caller's trace.
pub fn inject(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match current() {
        Some(context) => request.header(TRACEPARENT, context.to_string()),
        None => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_w3c_example() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(text).unwrap();
        assert!(parsed.sampled);
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.to_string(), text);
        let unsampled = TraceParent::parse(&text.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled);
    }

    #[test]
    fn refuses_malformed_and_zero_ids() {
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A later version may carry more fields; its first four are read.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more")
                .is_some()
        );
    }
}
