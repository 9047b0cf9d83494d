//! The request log (admin): what each relayed request came to — who asked, for which model,
//! the routing decisions, every upstream attempt with its outcome and timing, and the charge —
//! kept for `relay.request_log_retention_days`. Never a prompt, an answer or a key: an
//! upstream's refusal is kept as its status and error type only, because its message can
//! quote what the client sent.
//!
//! The pipeline fills a [`Journal`] as the request goes (the plan's [`Routing`] when the hold
//! is taken, an [`AttemptRecord`] per channel tried); when the request is settled, released or
//! refused, the journal becomes a [`RequestRecord`] on [`RequestLog`]'s buffer. A background
//! task writes the buffer in one transaction every [`FLUSH_EVERY`], so no request waits for
//! the log, and rows beyond [`MAX_BUFFERED`] are dropped (and counted) rather than let a slow
//! database grow the buffer without bound.

pub mod store;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skein_db::Db;
use utoipa::ToSchema;

use crate::channels::LiveChannel;

/// How often buffered rows are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Most rows waiting to be written; more are dropped.
pub const MAX_BUFFERED: usize = 20_000;

/// Longest error text kept for an attempt.
const MAX_ERROR_CHARS: usize = 300;

/// A channel the plan chose, in the order it would be tried.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoutedChannel {
    /// Channel id.
    pub id: String,
    /// Its name when the request ran (kept after the channel is deleted).
    pub name: String,
    /// Its priority then.
    pub priority: i64,
    /// Its score under the group's routing strategy (lower is better; absent under
    /// `priority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// A channel that serves the model but was left out, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SkippedChannel {
    /// Channel id.
    pub id: String,
    /// Its name when the request ran.
    pub name: String,
    /// `circuit_open` (its breaker keeps traffic away) or `attempt_limit` (more channels
    /// than one request tries).
    pub reason: String,
}

/// The routing decisions of one request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Routing {
    /// The channel group the caller routes through.
    pub group: String,
    /// The channels to try, best first.
    pub candidates: Vec<RoutedChannel>,
    /// The channels left out.
    pub skipped: Vec<SkippedChannel>,
    /// The group's routing strategy (`priority` for requests logged before strategies).
    #[serde(default = "priority")]
    pub strategy: crate::routing::Strategy,
    /// Whether this request explored: another channel than the best went first, so its
    /// measurements stay fresh.
    #[serde(default)]
    pub explored: bool,
    /// Whether the group's stickiness put the first channel first (the conversation or key
    /// went to the channel it went to before).
    #[serde(default)]
    pub sticky: bool,
}

fn priority() -> crate::routing::Strategy {
    crate::routing::Strategy::Priority
}

impl Routing {
    /// Routing through `group` to `candidates` (best first), with the channels left out.
    pub(crate) fn new(
        group: &str,
        candidates: &[std::sync::Arc<LiveChannel>],
        skipped: Vec<SkippedChannel>,
    ) -> Routing {
        Routing {
            group: group.to_string(),
            candidates: candidates
                .iter()
                .map(|c| RoutedChannel {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    priority: c.priority,
                    score: None,
                })
                .collect(),
            skipped,
            strategy: crate::routing::Strategy::Priority,
            explored: false,
            sticky: false,
        }
    }

    /// The same routing, decided by `strategy` with these `scores` (one per candidate).
    pub(crate) fn decided(
        mut self,
        strategy: crate::routing::Strategy,
        scores: &[Option<f64>],
        explored: bool,
        sticky: bool,
    ) -> Routing {
        for (candidate, score) in self.candidates.iter_mut().zip(scores) {
            candidate.score = *score;
        }
        self.strategy = strategy;
        self.explored = explored;
        self.sticky = sticky;
        self
    }
}

/// One upstream attempt.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// Channel id.
    pub channel_id: String,
    /// Its name then.
    pub channel_name: String,
    /// `ok`, `retry` (failed over: timeout, unreachable, 429, 5xx), `dead` (key rejected or
    /// account out of quota), `refused` (the upstream's 4xx, shown to the client) or
    /// `unsupported` (the channel's format cannot carry the request; nothing was sent).
    pub outcome: &'static str,
    /// The upstream's HTTP status, when it answered.
    pub http_status: Option<i64>,
    /// What went wrong, for the operator.
    pub error: Option<String>,
    /// From sending to the end of the answer (or the failure).
    pub latency_ms: i64,
    /// From sending to the answer's headers.
    pub ttfb_ms: Option<i64>,
    /// What the caller was charged through this attempt.
    pub cost: i64,
    started: Instant,
}

/// How a request ended, when nothing was settled.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    /// `error` or `refused`.
    pub status: &'static str,
    /// The error code the client got.
    pub detail: String,
    /// The HTTP status the client got.
    pub http_status: i64,
}

/// What the pipeline learns about one request as it goes.
#[derive(Debug)]
pub(crate) struct Journal {
    /// The log row's id (time-ordered by the request's start).
    pub id: String,
    /// Start, ms.
    pub started_at: i64,
    /// The plan's decisions.
    pub routing: Routing,
    /// Every channel tried, in order.
    pub attempts: Vec<AttemptRecord>,
    /// How it ended, when no settle says so.
    pub ending: Option<Ending>,
}

impl Journal {
    /// A journal for a request routed by `routing`, starting now.
    pub fn new(routing: Routing) -> Journal {
        Journal {
            id: skein_core::ids::new_id(),
            started_at: skein_core::ids::now_ms(),
            routing,
            attempts: Vec::new(),
            ending: None,
        }
    }

    /// Records an attempt on `channel` begun at `started` that came to `outcome`.
    pub fn attempt(
        &mut self,
        channel: &LiveChannel,
        started: Instant,
        outcome: &'static str,
        http_status: Option<i64>,
        error: Option<&str>,
    ) {
        let elapsed = ms(started.elapsed());
        self.attempts.push(AttemptRecord {
            channel_id: channel.id.clone(),
            channel_name: channel.name.clone(),
            outcome,
            http_status,
            error: error.map(clean_error),
            latency_ms: elapsed,
            ttfb_ms: http_status.map(|_| elapsed),
            cost: 0,
            started,
        });
    }

    /// Records how a request that was not settled ended.
    pub fn end(&mut self, status: &'static str, detail: &str, http_status: u16) {
        self.ending = Some(Ending {
            status,
            detail: detail.to_string(),
            http_status: i64::from(http_status),
        });
    }

    /// The serving attempt is over: its latency runs to now, and it carried `cost`.
    fn close_serving(&mut self, cost: i64) {
        if let Some(last) = self.attempts.last_mut()
            && last.outcome == "ok"
        {
            last.latency_ms = ms(last.started.elapsed());
            last.cost = cost;
        }
    }
}

/// The HTTP status an attempt's failure reason names (`upstream 503 ...`), if any.
pub(crate) fn status_in(reason: &str) -> Option<i64> {
    reason
        .strip_prefix("upstream ")?
        .get(..3)?
        .parse::<i64>()
        .ok()
        .filter(|s| (100..600).contains(s))
}

/// An upstream's refusal body, reduced to its error type and code: its message may quote the
/// client's words, which the log never keeps.
pub(crate) fn refusal_summary(body: &[u8]) -> Option<String> {
    let error = crate::vendor::error_object(body);
    let parts: Vec<String> = ["type", "code", "status"]
        .iter()
        .filter_map(|f| match &error[*f] {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" / "))
}

/// An error text bounded in length, with anything shaped like a secret key masked: a vendor
/// may echo part of a rejected key.
fn clean_error(text: &str) -> String {
    let masked: Vec<String> = text
        .split(' ')
        .map(|word| {
            let secretish = word.len() >= 20
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if secretish || word.starts_with("sk-") {
                "[redacted]".to_string()
            } else {
                word.to_string()
            }
        })
        .collect();
    masked.join(" ").chars().take(MAX_ERROR_CHARS).collect()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One finished request, as written.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Log row id.
    pub id: String,
    /// The request id the client saw.
    pub request_id: String,
    /// Whose request.
    pub user_id: String,
    /// The API key, for a key's request.
    pub key_id: Option<String>,
    /// The model as the client named it.
    pub model: String,
    /// Whether it streamed.
    pub stream: bool,
    /// The serving channel, or the last one tried.
    pub channel_id: Option<String>,
    /// `ok`, `error` or `refused`.
    pub status: &'static str,
    /// The settle's status (`partial`, `client_closed`, ...) or the error code.
    pub detail: Option<String>,
    /// What the client got.
    pub http_status: i64,
    /// What was charged.
    pub cost: i64,
    /// Prompt tokens billed.
    pub prompt_tokens: i64,
    /// Completion tokens billed.
    pub completion_tokens: i64,
    /// Start to end.
    pub duration_ms: i64,
    /// Start to the first byte of the answer.
    pub ttfb_ms: Option<i64>,
    /// The plan's decisions.
    pub routing: Routing,
    /// Every attempt.
    pub attempts: Vec<AttemptRecord>,
    /// Start, ms.
    pub created_at: i64,
}

/// Who and what a request was, for its record.
pub(crate) struct Subject<'a> {
    /// The request id.
    pub request_id: &'a str,
    /// The caller.
    pub caller: &'a crate::caller::Caller,
    /// The model.
    pub model: &'a str,
    /// Whether it streamed.
    pub stream: bool,
}

/// What a settle knew.
pub(crate) struct Settled {
    /// `ok`, `partial`, `client_closed`, `error`, ...
    pub status: &'static str,
    /// Charged.
    pub cost: i64,
    /// Prompt tokens.
    pub prompt: i64,
    /// Completion tokens.
    pub completion: i64,
    /// Start to first byte.
    pub ttfb: Option<Duration>,
}

impl Journal {
    /// The record of a settled request.
    pub fn settled(mut self, subject: &Subject<'_>, settled: &Settled) -> RequestRecord {
        self.close_serving(settled.cost);
        let failed = settled.status == "error";
        self.record(
            subject,
            if failed { "error" } else { "ok" },
            (settled.status != "ok").then(|| settled.status.to_string()),
            if failed { 502 } else { 200 },
            (settled.cost, settled.prompt, settled.completion),
            settled.ttfb.map(ms),
        )
    }

    /// The record of a request that ended without a settle (released or refused).
    pub fn unsettled(self, subject: &Subject<'_>) -> RequestRecord {
        let ending = self.ending.clone().unwrap_or(Ending {
            status: "error",
            detail: "upstream_error".into(),
            http_status: 502,
        });
        self.record(
            subject,
            ending.status,
            Some(ending.detail),
            ending.http_status,
            (0, 0, 0),
            None,
        )
    }

    fn record(
        self,
        subject: &Subject<'_>,
        status: &'static str,
        detail: Option<String>,
        http_status: i64,
        (cost, prompt_tokens, completion_tokens): (i64, i64, i64),
        ttfb_ms: Option<i64>,
    ) -> RequestRecord {
        let duration_ms = (skein_core::ids::now_ms() - self.started_at).max(0);
        RequestRecord {
            channel_id: self.attempts.last().map(|a| a.channel_id.clone()),
            id: self.id,
            request_id: subject.request_id.to_string(),
            user_id: subject.caller.user_id().to_string(),
            key_id: subject.caller.key().map(|k| k.key_id.clone()),
            model: subject.model.to_string(),
            stream: subject.stream,
            status,
            detail,
            http_status,
            cost,
            prompt_tokens,
            completion_tokens,
            duration_ms,
            ttfb_ms,
            routing: self.routing,
            attempts: self.attempts,
            created_at: self.started_at,
        }
    }
}

/// The buffer of finished requests and its writer's settings.
pub struct RequestLog {
    buffer: Mutex<Vec<RequestRecord>>,
    dropped: AtomicU64,
    /// How long rows are kept.
    pub retention_days: u32,
}

impl RequestLog {
    /// An empty log keeping rows for `retention_days`.
    pub fn new(retention_days: u32) -> RequestLog {
        RequestLog {
            buffer: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            retention_days,
        }
    }

    /// Queues a finished request for the next write.
    pub fn push(&self, record: RequestRecord) {
        let Ok(mut buffer) = self.buffer.lock() else {
            return;
        };
        if buffer.len() >= MAX_BUFFERED {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buffer.push(record);
    }

    /// Rows waiting to be written (for the runtime report).
    pub fn buffered(&self) -> usize {
        self.buffer.lock().map(|b| b.len()).unwrap_or(0)
    }

    /// Writes every buffered row in one transaction. Rows that fail to write are dropped with
    /// a warning: the log must never hold up or take down the relay.
    pub async fn flush(&self, db: &Db) {
        let batch = match self.buffer.lock() {
            Ok(mut buffer) if !buffer.is_empty() => std::mem::take(&mut *buffer),
            _ => return,
        };
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            crate::metrics::REQUEST_LOG_DROPPED.add(&[], dropped as f64);
            tracing::warn!(
                dropped,
                "request log rows dropped: the database did not keep up"
            );
        }
        if let Err(error) = store::insert(db, &batch).await {
            tracing::warn!(%error, rows = batch.len(), "could not write the request log");
        }
    }

    /// Removes rows older than the retention; answers how many requests went.
    pub async fn prune(&self, db: &Db) -> skein_db::DbResult<u64> {
        let cutoff = skein_core::ids::now_ms() - i64::from(self.retention_days) * store::DAY_MS;
        store::prune(db, cutoff).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_no_secret_and_stay_short() {
        let e = clean_error("upstream 401: Incorrect API key provided: sk-abc123 for x");
        assert!(!e.contains("sk-abc"), "{e}");
        let e = clean_error("bad token AbCdEfGhIjKlMnOpQrStUvWx here");
        assert!(e.contains("[redacted]") && e.contains("here"), "{e}");
        assert!(clean_error(&"x ".repeat(400)).chars().count() <= MAX_ERROR_CHARS);
    }

    #[test]
    fn statuses_are_read_from_reasons() {
        assert_eq!(status_in("upstream 503 (retry-after 2)"), Some(503));
        assert_eq!(status_in("upstream timed out"), None);
        assert_eq!(status_in("upstream 429"), Some(429));
    }

    #[test]
    fn refusals_keep_only_type_and_code() {
        let body = br#"{"error": {"message": "you wrote: my secret prompt", "type": "invalid_request_error", "code": "bad"}}"#;
        let s = refusal_summary(body).unwrap_or_default();
        assert_eq!(s, "invalid_request_error / bad");
        assert!(refusal_summary(b"not json").is_none());
    }
}
