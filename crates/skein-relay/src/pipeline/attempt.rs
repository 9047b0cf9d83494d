//! Attempt: try the plan's channels in order until one answers. Connect errors, timeouts,
//! 429 and 5xx move on to the next channel (and count against its circuit breaker); a
//! rejected key or an empty upstream account disables the channel — once its own key
//! confirms it — and moves on; another 4xx is the caller's to see. When nothing is delivered
//! the hold is released.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use bytes::Bytes;
use skein_core::{ApiError, ApiResult};
use tracing::Instrument;

use super::bill::Meter;
use super::plan::Stage;
use crate::RelayService;
use crate::channels::LiveChannel;
use crate::errors;
use crate::vendor::Attempt;

/// Sends one request to a channel, in whatever wire format that channel's kind speaks.
pub(crate) trait Dispatch: Send {
    /// Sends the request to `channel` (which knows the model as `upstream_model`). `Err`
    /// when this channel cannot carry the request (a field its format has no place for):
    /// that is not an attempt, and the next channel is tried.
    fn send(
        &mut self,
        svc: &RelayService,
        channel: &LiveChannel,
        upstream_model: &str,
    ) -> impl Future<Output = Result<Attempt, ApiError>> + Send;
}

/// A body sent to the same path of every OpenAI-format channel, with the model mapped by
/// `body` (the routes besides chat).
pub(crate) struct OpenAiPath<F> {
    /// Path under the channel's base URL, e.g. `/v1/embeddings`.
    pub path: &'static str,
    /// The body's content type (a form keeps its boundary).
    pub content_type: String,
    /// Builds the body for a channel, given the model name that channel knows it by.
    pub body: F,
}

impl<F: Fn(&str) -> Bytes + Send + Sync> Dispatch for OpenAiPath<F> {
    async fn send(
        &mut self,
        svc: &RelayService,
        channel: &LiveChannel,
        upstream_model: &str,
    ) -> Result<Attempt, ApiError> {
        let body = (self.body)(upstream_model);
        Ok(crate::upstream::send_to(&svc.http, channel, self.path, &self.content_type, body).await)
    }
}

/// What the attempts came to when some channel answered.
// One per request, moved out at once: boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Attempted {
    /// A 2xx answer to read, with the meter that bills it (set to the serving channel).
    Answered {
        /// The channel that answered.
        channel: Arc<LiveChannel>,
        /// Its answer.
        response: reqwest::Response,
        /// Settles the hold.
        meter: Meter,
    },
    /// The upstream refused the request itself (its 4xx): the hold is released, and the
    /// caller hears what it said.
    Refused {
        /// The channel that refused.
        channel: Arc<LiveChannel>,
        /// Its status.
        status: StatusCode,
        /// Its error body, as it wrote it.
        body: Bytes,
    },
}

/// Tries `candidates` in order with `dispatch`, then each fallback model's channels (the
/// meter switched to that model and its price); see the module documentation. Every channel
/// failing is 502 `upstream_unavailable`, or — when no channel could even carry the request —
/// the reason the first one gave.
pub(crate) async fn attempt<D: Dispatch>(
    mut meter: Meter,
    candidates: Vec<Arc<LiveChannel>>,
    fallbacks: Vec<Stage>,
    dispatch: &mut D,
) -> ApiResult<Attempted> {
    let svc = meter.svc.clone();
    let asked = meter.model.clone();
    let mut tried = Vec::new();
    // A request one kind of upstream cannot carry may still suit another kind of channel;
    // if none can carry it, the caller hears why.
    let mut cannot_carry: Option<ApiError> = None;
    let mut attempts = 0;
    let first = std::iter::once((None, candidates));
    let rest = fallbacks
        .into_iter()
        .map(|stage| (Some((stage.model, stage.rates)), stage.candidates));
    let tries = first
        .chain(rest)
        .enumerate()
        .flat_map(|(n, (switch, channels))| {
            let mut switch = switch;
            channels
                .into_iter()
                .map(move |channel| (switch.take(), channel, n > 0))
        });
    for (switch, channel, fallback) in tries {
        if let Some((model, rates)) = switch {
            // Every channel of the model before failed: its fallback serves, at its price.
            tracing::warn!(from = %meter.model, to = %model, "every channel failed; falling back");
            crate::metrics::FALLBACKS.inc(&[meter.model.as_str(), model.as_str()]);
            meter.serve_as(model, rates);
        }
        // A fallback's channels were planned without their breakers' trials: one whose
        // breaker is open takes its trial now, or is passed over if another request has it.
        if fallback && svc.breakers.admit(&channel.id, Instant::now()) == crate::breaker::Admit::No
        {
            tracing::info!(channel = %channel.id, "fallback channel resting; passed over");
            continue;
        }
        let model = meter.model.clone();
        let upstream_model = channel.upstream_model(&model).to_string();
        let started = Instant::now();
        // One client span per upstream attempt: its traceparent goes to the vendor.
        let span = tracing::info_span!(
            "relay.attempt",
            otel.kind = "client",
            channel.id = %channel.id,
            channel.kind = channel.kind.as_str(),
            gen_ai.request.model = %model,
            upstream_model = %upstream_model,
            attempt = attempts + 1,
            outcome = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let sent = dispatch
            .send(&svc, &channel, &upstream_model)
            .instrument(span.clone())
            .await;
        let (outcome, status) = match &sent {
            Ok(Attempt::Ok(response)) => ("ok", Some(response.status().as_u16())),
            Ok(Attempt::Retry(reason)) => (
                "retry",
                crate::journal::status_in(reason).and_then(|s| u16::try_from(s).ok()),
            ),
            Ok(Attempt::Dead(reason)) => (
                "dead",
                crate::journal::status_in(reason).and_then(|s| u16::try_from(s).ok()),
            ),
            Ok(Attempt::Refused(status, _)) => ("refused", Some(*status)),
            Err(_) => ("unsupported", None),
        };
        span.record("outcome", outcome);
        if let Some(status) = status {
            span.record("http.response.status_code", status);
        }
        if matches!(outcome, "retry" | "dead") {
            span.record("otel.status_code", "ERROR");
        }
        drop(span);
        let attempt = match sent {
            Ok(attempt) => attempt,
            Err(error) => {
                tracing::info!(channel = %channel.id, code = error.code(), "the request cannot be carried to this channel");
                meter
                    .journal
                    .attempt(&channel, started, "unsupported", None, Some(error.code()));
                tried.push(format!("{}: {error}", channel.name));
                cannot_carry.get_or_insert(error);
                continue;
            }
        };
        attempts += 1;
        match attempt {
            Attempt::Ok(response) => {
                svc.breakers.success(&channel.id);
                // The time to the answer's first byte: what a client waits before anything.
                svc.routing_stats
                    .success(&channel.id, &model, started.elapsed(), Instant::now());
                let status = Some(i64::from(response.status().as_u16()));
                meter.journal.attempt(&channel, started, "ok", status, None);
                tracing::info!(channel = %channel.id, tried = ?tried, %model, stream = meter.stream, "upstream answered");
                meter.channel_id = channel.id.clone();
                meter.idle = crate::upstream::idle_timeout(&channel);
                return Ok(Attempted::Answered {
                    channel,
                    response,
                    meter,
                });
            }
            Attempt::Retry(reason) => {
                crate::metrics::UPSTREAM_ERRORS.inc(&[channel.id.as_str(), "retry"]);
                svc.routing_stats
                    .failure(&channel.id, &model, Instant::now());
                if svc.breakers.failure(&channel.id, Instant::now()) {
                    crate::metrics::BREAKER_OPENED.inc(&[channel.id.as_str()]);
                    tracing::warn!(channel = %channel.id, "circuit opened: the channel rests after repeated failures");
                }
                svc.breakers.note_error(&channel.id, &reason);
                let status = crate::journal::status_in(&reason);
                meter
                    .journal
                    .attempt(&channel, started, "retry", status, Some(reason.as_str()));
                tracing::warn!(channel = %channel.id, %reason, "channel failed; trying the next");
                tried.push(format!("{}: {reason}", channel.name));
            }
            Attempt::Dead(reason) => {
                crate::metrics::UPSTREAM_ERRORS.inc(&[channel.id.as_str(), "dead"]);
                svc.routing_stats
                    .failure(&channel.id, &model, Instant::now());
                svc.breakers.note_error(&channel.id, &reason);
                let status = crate::journal::status_in(&reason);
                meter
                    .journal
                    .attempt(&channel, started, "dead", status, Some(reason.as_str()));
                svc.disable_if_confirmed(&channel, &model, &reason).await;
                tried.push(format!("{}: {reason}", channel.name));
            }
            Attempt::Refused(status, body) => {
                crate::metrics::UPSTREAM_ERRORS.inc(&[channel.id.as_str(), "refused"]);
                let summary = crate::journal::refusal_summary(&body);
                meter.journal.attempt(
                    &channel,
                    started,
                    "refused",
                    Some(i64::from(status)),
                    summary.as_deref(),
                );
                meter.journal.end("refused", "upstream_refused", status);
                meter.release().await;
                tracing::info!(channel = %channel.id, status, "upstream refused the request");
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                return Ok(Attempted::Refused {
                    channel,
                    status,
                    body,
                });
            }
        }
    }
    if attempts == 0
        && let Some(error) = cannot_carry
    {
        meter
            .journal
            .end("refused", error.code(), error.status().as_u16());
        meter.release().await;
        return Err(error);
    }
    let error = errors::all_failed(&asked, &tried);
    meter
        .journal
        .end("error", error.code(), error.status().as_u16());
    meter.release().await;
    Err(error)
}
