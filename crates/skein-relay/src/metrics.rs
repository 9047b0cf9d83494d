//! The Relay's Prometheus metrics. Labels are configured names only: `model` is a model some
//! channel serves (requests for unknown models are refused before anything is counted here)
//! and `channel` is a channel id, so the series are bounded by what admins configure.

use std::time::Duration;

use skein_core::metrics::{Counter, Histogram, SECONDS_BUCKETS};

/// Settled requests by model, channel and outcome (`ok`, `estimated`, `partial`, ...).
pub(crate) static REQUESTS: Counter = Counter::new(
    "skein_relay_requests_total",
    "Relayed requests that reached an upstream and were settled, by model, channel and outcome.",
    &["model", "channel", "status"],
);
/// Whole request time, upstream call included.
pub(crate) static DURATION: Histogram = Histogram::new(
    "skein_relay_request_duration_seconds",
    "Relayed request duration from the hold to the settle, by model and channel.",
    &["model", "channel"],
    SECONDS_BUCKETS,
);
/// Time to the first token (streams) or to the whole answer (non-streamed requests).
pub(crate) static TTFT: Histogram = Histogram::new(
    "skein_relay_time_to_first_token_seconds",
    "Time from the hold to the first token of the answer, by model and channel.",
    &["model", "channel"],
    SECONDS_BUCKETS,
);
/// Tokens by kind.
pub(crate) static TOKENS: Counter = Counter::new(
    "skein_relay_tokens_total",
    "Tokens relayed, by model, channel and kind (prompt, completion, cached, cache_write).",
    &["model", "channel", "kind"],
);
/// What the settled requests cost, in quota units.
pub(crate) static COST: Counter = Counter::new(
    "skein_relay_cost_quota_total",
    "Quota units charged for relayed requests, by model and channel.",
    &["model", "channel"],
);
/// Failed attempts at a channel, by kind.
pub(crate) static UPSTREAM_ERRORS: Counter = Counter::new(
    "skein_relay_upstream_errors_total",
    "Failed upstream attempts by channel and kind: retry (connect error, timeout, 429, 5xx; the next channel is tried), dead (rejected key or empty account), refused (the upstream's 4xx to the caller).",
    &["channel", "kind"],
);
/// Breakers that opened.
pub(crate) static BREAKER_OPENED: Counter = Counter::new(
    "skein_relay_breaker_opened_total",
    "Times a channel's circuit breaker opened after repeated failures.",
    &["channel"],
);
/// Requests no channel could serve.
pub(crate) static UNAVAILABLE: Counter = Counter::new(
    "skein_relay_unavailable_total",
    "Requests answered 502 because every channel behind their model failed.",
    &["model"],
);
/// Requests a fallback model took over.
pub(crate) static FALLBACKS: Counter = Counter::new(
    "skein_relay_fallbacks_total",
    "Requests served by a fallback model because every channel of the model asked for failed.",
    &["from", "to"],
);

/// Response-cache lookups that found a kept answer or stored a new one.
pub(crate) static CACHE: Counter = Counter::new(
    "skein_relay_response_cache_total",
    "Cacheable chat completions by result: hit (answered from the response cache) or miss (answered upstream and kept).",
    &["result"],
);

/// Answers held back until the ledger caught up.
pub(crate) static SETTLE_WAITS: Counter = Counter::new(
    "skein_relay_settle_waits_total",
    "Answers that waited to go out because relay.max_settles_behind earlier charges were still waiting for the ledger (a ledger slower than the traffic).",
    &[],
);

/// Request-log rows the database did not keep up with.
pub(crate) static REQUEST_LOG_DROPPED: Counter = Counter::new(
    "skein_relay_request_log_dropped_total",
    "Request-log rows dropped because more were waiting to be written than the buffer holds (the database did not keep up).",
    &[],
);

/// Records one settled request.
pub(crate) fn settled(
    model: &str,
    channel: &str,
    status: &str,
    elapsed: Duration,
    ttft: Option<Duration>,
    tokens: [(&str, i64); 4],
    cost: i64,
) {
    REQUESTS.inc(&[model, channel, status]);
    DURATION.observe(&[model, channel], elapsed.as_secs_f64());
    if let Some(ttft) = ttft {
        TTFT.observe(&[model, channel], ttft.as_secs_f64());
    }
    for (kind, n) in tokens {
        if n > 0 {
            TOKENS.add(&[model, channel, kind], n as f64);
        }
    }
    if cost > 0 {
        COST.add(&[model, channel], cost as f64);
    }
}
