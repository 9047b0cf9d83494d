//! Hold and bill: reserve an estimate before the upstream is called, keep the hold renewed
//! while the call runs, then settle the exact cost with its usage record (or release the hold
//! when nothing was delivered).

use std::sync::Arc;
use std::time::{Duration, Instant};

use skein_core::api::{RelayCharge, ReserveRequest, Usage};
use skein_core::{ApiError, ApiResult};

use super::plan::{Plan, count_tpm, record_status};
use super::{Caller, SpawnInSpan};
use crate::RelayService;
use crate::journal::{Journal, Settled, Subject};
use crate::pricing::Price;

/// How much to hold: `amount` if the balance allows, else as little as `min_amount` (the
/// request is then limited to what that pays for).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HoldAmount {
    /// What the request may cost at most.
    pub amount: i64,
    /// The least hold it can run with.
    pub min_amount: i64,
}

impl HoldAmount {
    /// A hold of exactly `estimate` (at least one unit).
    pub fn exactly(estimate: i64) -> HoldAmount {
        HoldAmount {
            amount: estimate.max(1),
            min_amount: estimate.max(1),
        }
    }
}

/// Holds `hold` for the caller, then runs `work` with the [`Meter`] that settles or releases
/// it, and answers what `work` answers.
///
/// The hold and everything after it run on a task of the service's own: a caller that hangs
/// up (or the gateway's timeout) drops only the wait for the answer, so work the upstream
/// does anyway is still billed, and no hold is left to expire. A refused hold is the
/// caller's error and costs nothing.
pub(crate) async fn held<T, W, Fut>(
    svc: &Arc<RelayService>,
    caller: Caller,
    request_id: String,
    plan: &Plan,
    hold: HoldAmount,
    stream: bool,
    work: W,
) -> ApiResult<T>
where
    T: Send + 'static,
    W: FnOnce(Meter) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ApiResult<T>> + Send + 'static,
{
    let reserve = ReserveRequest {
        user_id: caller.user_id().to_string(),
        key: caller.key_limit(),
        amount: hold.amount,
        min_amount: hold.min_amount,
        reference: request_id.clone(),
    };
    let rates = plan.rates.clone();
    let model = plan.model.clone();
    let journal = Journal::new(plan.routing.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task_svc = svc.clone();
    svc.tasks.spawn_in_current_span(async move {
        let answer = match task_svc.billing.reserve(reserve).await {
            Ok(reservation) => {
                let meter = Meter {
                    journal,
                    _keep_alive: task_svc.renewals.keep(&reservation),
                    svc: task_svc,
                    caller,
                    reservation_id: reservation.id,
                    granted: reservation.amount,
                    rates,
                    model,
                    channel_id: String::new(),
                    request_id,
                    started: Instant::now(),
                    stream,
                    idle: Duration::from_secs(120),
                };
                work(meter).await
            }
            Err(refusal) => {
                // A refused hold (no balance, the key's quota spent) is a row of its own, so
                // an operator sees who is turned away and why.
                let mut journal = journal;
                journal.end("refused", refusal.code(), refusal.status().as_u16());
                let subject = Subject {
                    request_id: &request_id,
                    caller: &caller,
                    model: &model,
                    stream,
                };
                task_svc.request_log.push(journal.unsettled(&subject));
                Err(refusal)
            }
        };
        // Nobody may be waiting any more; the bill is settled either way.
        let _ = tx.send(answer);
    });
    rx.await
        .unwrap_or_else(|_| Err(ApiError::internal("the relay task ended without an answer")))
}

/// Reserves `hold` for `caller` and answers the [`Meter`] that settles or releases it, for
/// work that holds again and again on one connection (a Realtime session takes a fresh hold
/// after each response it settles). The caller keeps the meter until it settles or releases
/// it; a refusal is logged as [`held`] logs it and costs nothing.
pub(crate) async fn reserve(
    svc: &Arc<RelayService>,
    caller: &Caller,
    request_id: String,
    plan: &Plan,
    hold: HoldAmount,
) -> ApiResult<Meter> {
    let reserve = ReserveRequest {
        user_id: caller.user_id().to_string(),
        key: caller.key_limit(),
        amount: hold.amount,
        min_amount: hold.min_amount,
        reference: request_id.clone(),
    };
    let journal = Journal::new(plan.routing.clone());
    match svc.billing.reserve(reserve).await {
        Ok(reservation) => Ok(Meter {
            journal,
            _keep_alive: svc.renewals.keep(&reservation),
            svc: svc.clone(),
            caller: caller.clone(),
            reservation_id: reservation.id,
            granted: reservation.amount,
            rates: plan.rates.clone(),
            model: plan.model.clone(),
            channel_id: String::new(),
            request_id,
            started: Instant::now(),
            stream: true,
            idle: Duration::from_secs(120),
        }),
        Err(refusal) => {
            let mut journal = journal;
            journal.end("refused", refusal.code(), refusal.status().as_u16());
            let subject = Subject {
                request_id: &request_id,
                caller,
                model: &plan.model,
                stream: true,
            };
            svc.request_log.push(journal.unsettled(&subject));
            Err(refusal)
        }
    }
}

/// What a finished request is charged and recorded as.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Charge {
    /// Exact cost in quota units.
    pub cost: i64,
    /// Prompt tokens (input characters for speech), for the usage record.
    pub prompt: i64,
    /// Completion tokens, for the usage record.
    pub completion: i64,
    /// Prompt tokens read from the upstream's cache.
    pub cached: i64,
    /// Prompt tokens written to the upstream's cache.
    pub cache_write: i64,
    /// Tokens counted against the key's tokens per minute (0 where a route has no tokens).
    pub tpm_tokens: i64,
    /// `ok`, `estimated` (no usage from the upstream), `partial`, `client_closed`, ...
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
            ..Charge::default()
        }
    }
}

/// A granted hold and everything needed to settle it once the answer is known.
pub(crate) struct Meter {
    pub(super) svc: Arc<RelayService>,
    /// What the request log will say about this request.
    pub(super) journal: Journal,
    pub(super) caller: Caller,
    /// Renews the hold until the meter is done with.
    _keep_alive: crate::renew::KeepAlive,
    pub(super) reservation_id: String,
    /// Quota held: what the caller asked for, or the most that fit.
    pub(super) granted: i64,
    rates: Price,
    pub(super) model: String,
    pub(super) channel_id: String,
    request_id: String,
    pub(super) started: Instant,
    pub(super) stream: bool,
    /// The serving channel's idle timeout.
    pub(super) idle: Duration,
}

impl Meter {
    /// The model's price for the caller's group.
    pub fn rates(&self) -> &Price {
        &self.rates
    }

    /// Serves the request as `model` at `rates` from here on: a fallback model took over.
    pub(super) fn serve_as(&mut self, model: String, rates: Price) {
        self.model = model;
        self.rates = rates;
    }

    /// Charges exactly `charge.cost`, writes the usage record, and counts tokens against the
    /// key's tokens per minute. Answers the charge as the ledger took it, or `None` if
    /// settling failed (the hold then expires).
    pub async fn settle(self, charge: Charge) -> Option<RelayCharge> {
        let usage = Usage {
            cost: charge.cost.max(0),
            model: self.model.clone(),
            channel_id: Some(self.channel_id.clone()),
            prompt_tokens: charge.prompt,
            completion_tokens: charge.completion,
            cached_tokens: charge.cached,
            cache_write_tokens: charge.cache_write,
            duration_ms: i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX),
            ttft_ms: charge
                .ttft
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            stream: self.stream,
            status: record_status(charge.status, &self.rates),
            request_id: self.request_id.clone(),
            conversation_id: self.caller.conversation_id().map(str::to_string),
            pricing: self.rates.record(),
        };
        // A stream's first token, for the channel's average: only when the first channel
        // answered, so a failover's wait is not counted against the channel that took over.
        if self.stream
            && self.journal.attempts.len() == 1
            && let Some(ttft) = charge.ttft
        {
            self.svc
                .routing_stats
                .first_token(&self.channel_id, &self.model, ttft);
        }
        count_tpm(&self.svc, &self.caller, charge.tpm_tokens).await;
        let elapsed = self.started.elapsed();
        let settled = self.svc.billing.settle(&self.reservation_id, usage).await;
        let subject = Subject {
            request_id: &self.request_id,
            caller: &self.caller,
            model: &self.model,
            stream: self.stream,
        };
        let record = self.journal.settled(
            &subject,
            &Settled {
                status: charge.status,
                cost: settled.as_ref().map_or(charge.cost, |s| s.charged),
                prompt: charge.prompt,
                completion: charge.completion,
                ttfb: charge.ttft,
            },
        );
        self.svc.request_log.push(record);
        match settled {
            Ok(s) => {
                crate::metrics::settled(
                    &self.model,
                    &self.channel_id,
                    charge.status,
                    elapsed,
                    charge.ttft,
                    [
                        ("prompt", charge.prompt),
                        ("completion", charge.completion),
                        ("cached", charge.cached),
                        ("cache_write", charge.cache_write),
                    ],
                    s.charged,
                );
                tracing::info!(key_id = %self.caller.label(), cost = s.charged, status = charge.status, "request settled");
                Some(RelayCharge {
                    prompt_tokens: charge.prompt,
                    completion_tokens: charge.completion,
                    cost: s.charged,
                    status: charge.status.to_string(),
                })
            }
            Err(error) => {
                tracing::error!(%error, reservation_id = %self.reservation_id, "settle failed");
                None
            }
        }
    }

    /// Settles on a task of its own, so the answer does not wait for the ledger (the hold
    /// already bounds what the request can cost) unless the ledger is that far behind
    /// (`settle_slot`); shutdown waits for it.
    pub async fn settle_later(self, charge: Charge) {
        let slot = self.svc.settle_slot().await;
        let tasks = self.svc.tasks.clone();
        tasks.spawn_in_current_span(async move {
            self.settle(charge).await;
            drop(slot);
        });
    }

    /// Frees the hold: nothing was delivered.
    pub async fn release(self) {
        if let Err(error) = self.svc.billing.release(&self.reservation_id).await {
            tracing::error!(%error, reservation_id = %self.reservation_id, "could not release a reservation; it will expire");
        }
        let subject = Subject {
            request_id: &self.request_id,
            caller: &self.caller,
            model: &self.model,
            stream: self.stream,
        };
        self.svc.request_log.push(self.journal.unsettled(&subject));
    }
}
