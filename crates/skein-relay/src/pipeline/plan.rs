//! Plan: which model, at what price, on which channels, and the refusals that come before any
//! hold (so they cost nothing). Every route applies the same rules in the same order; only
//! which kinds of channel can carry the request differs.

use std::sync::Arc;
use std::time::Instant;

use skein_core::limit::Quota;
use skein_core::{ApiError, ApiResult};

use super::{Caller, MAX_ATTEMPTS};
use crate::RelayService;
use crate::channels::LiveChannel;
use crate::errors;
use crate::pricing::Price;

/// A request's model, its price, and the channels that may serve it, best first.
pub(crate) struct Plan {
    /// The model that serves the request: the client's name, or the model its alias names
    /// (usage records and prices use this name).
    pub model: String,
    /// Its price for the caller's group (rates and multiplier).
    pub rates: Price,
    /// The channels to try, in order.
    pub candidates: Vec<Arc<LiveChannel>>,
    /// The routing decisions, for the request log.
    pub routing: crate::journal::Routing,
    /// The model's fallbacks that can serve now, in order: tried, each at its own price, once
    /// every candidate failed.
    pub fallbacks: Vec<Stage>,
}

/// One model to try: its name, its price and its channels.
pub(crate) struct Stage {
    /// The model (prices and usage records use this name).
    pub model: String,
    /// Its price for the caller's group.
    pub rates: Price,
    /// Its channels to try, in order.
    pub candidates: Vec<Arc<LiveChannel>>,
}

/// What the request log says about a stage's routing: the channels left out, the scores of
/// those kept, whether the request explored and whether stickiness chose, and the strategy
/// that ordered them.
type StageLog = (
    Vec<crate::journal::SkippedChannel>,
    Vec<Option<f64>>,
    (bool, bool, crate::routing::Strategy),
);

/// [`plan_for`] over OpenAI-format channels: the routes besides chat go only to those.
pub(crate) async fn plan(
    svc: &RelayService,
    caller: &Caller,
    model: Option<&str>,
) -> ApiResult<Plan> {
    plan_for(svc, caller, model, |c| {
        crate::vendor::adapter(c.kind).serves_openai_paths()
    })
    .await
}

/// Checks that `caller` may use `model` and that something serves and prices it; answers the
/// channels (of those `serves` accepts) to try. Refusals here happen before any hold, so they
/// cost nothing.
///
/// The unknown-model rule, the same on every route and for in-process callers (OpenAI's): a
/// model no channel serves for the caller's group is 404 `model_not_found`, checked before
/// the price, so a name nobody configured is "not found" rather than "not priced"; a served
/// but unpriced model is 400 `model_not_priced`, since it could not be billed.
#[tracing::instrument(name = "relay.route", level = "info", skip_all, fields(model = model.unwrap_or_default(), group = caller.group()))]
pub(crate) async fn plan_for(
    svc: &RelayService,
    caller: &Caller,
    model: Option<&str>,
    serves: impl Fn(&LiveChannel) -> bool,
) -> ApiResult<Plan> {
    let model = model
        .filter(|m| !m.is_empty() && m.len() <= 128 && !m.contains('\0'))
        .ok_or_else(|| {
            ApiError::bad_request("missing_model", "Say which model to use.", "请指定模型。")
        })?
        .to_string();
    if !caller.allows_model(&model) {
        return Err(errors::model_not_allowed(&model));
    }
    // A subscriber's plans may limit the models (every route, keys and Chat alike).
    let plans = svc.entitlements(caller.user_id()).await?;
    if !plans.allows_model(&model) {
        return Err(errors::not_in_plan(&model, &plans));
    }
    let routes = svc.model_routes();
    let served = routes.resolve(&model);
    let table = svc.table();
    let now = Instant::now();
    let policy = svc.policy(caller.group());
    // Balances order the `balance` strategy, and a low one puts a channel last in any.
    let balances = svc.balances();
    // A model's stage: its channels for the caller's group (of those `serves` accepts, not
    // resting), its price, and which channels were left out and why (for the request log);
    // the refusal when it has none.
    // `first`: the stage tried first takes its channels' breaker trials now; a fallback's
    // are taken only if the request gets that far (see `attempt`).
    let stage = |name: &str, shown: &str, first: bool| -> ApiResult<(Stage, StageLog)> {
        let (ordered, n) = table.numbered(caller.group(), name);
        let ordered: Vec<Arc<LiveChannel>> = ordered.into_iter().filter(|c| serves(c)).collect();
        // A model with a strategy of its own routes by it; the group's exploring and
        // stickiness still apply.
        let policy = crate::routing::Policy {
            strategy: routes.strategy(name).unwrap_or(policy.strategy),
            ..policy
        };
        let (routed, decision) = crate::routing::order(
            policy,
            ordered,
            n,
            svc.routing_stats.of(name),
            &balances,
            now,
            caller.sticky_key(),
        );
        if routed.is_empty() {
            return Err(errors::model_not_found(shown));
        }
        let rates = svc
            .price_for(caller.group(), name)
            .ok_or_else(|| errors::not_priced(name))?;
        let scored = routed.into_iter().zip(
            decision
                .scores
                .iter()
                .copied()
                .chain(std::iter::repeat(None)),
        );
        let (kept, left) = if first {
            svc.breakers
                .admit_in_order(scored, |(c, _)| c.id.as_str(), MAX_ATTEMPTS, now)
        } else {
            svc.breakers
                .peek_in_order(scored, |(c, _)| c.id.as_str(), MAX_ATTEMPTS, now)
        };
        let (candidates, scores): (Vec<Arc<LiveChannel>>, Vec<Option<f64>>) =
            kept.into_iter().unzip();
        let skipped: Vec<_> = left
            .into_iter()
            .map(|((c, _), reason)| crate::journal::SkippedChannel {
                id: c.id.clone(),
                name: c.name.clone(),
                reason: reason.to_string(),
            })
            .collect();
        if candidates.is_empty() {
            return Err(errors::channels_cooling_down(shown));
        }
        Ok((
            Stage {
                model: name.to_string(),
                rates,
                candidates,
            },
            (
                skipped,
                scores,
                (decision.explored, decision.sticky, policy.strategy),
            ),
        ))
    };
    // Fallbacks the key may use and that can serve now; one that cannot is skipped.
    let mut fallbacks: Vec<Stage> = routes
        .fallbacks(&model, served, caller.group())
        .iter()
        .filter(|m| caller.allows_model(m) && plans.allows_model(m))
        .filter_map(|m| stage(m, m, false).ok().map(|(stage, _)| stage))
        .collect();
    let (first, (skipped, scores, (explored, sticky, strategy))) = match stage(served, &model, true)
    {
        Ok(first) => first,
        // A model with nothing to serve it now (no channel here, or all resting) goes
        // straight to its first fallback; an unpriced one is a setup error and says so.
        Err(error) if error.code() != "model_not_priced" && !fallbacks.is_empty() => {
            tracing::info!(%model, fallback = %fallbacks[0].model, "no channel can serve the model; using its fallback");
            let mut first = fallbacks.remove(0);
            // Tried first after all: its channels take their breakers' trials now.
            let (kept, _) = svc.breakers.admit_in_order(
                std::mem::take(&mut first.candidates),
                |c| c.id.as_str(),
                MAX_ATTEMPTS,
                now,
            );
            first.candidates = kept;
            let strategy = routes.strategy(&first.model).unwrap_or(policy.strategy);
            (first, (Vec::new(), Vec::new(), (false, false, strategy)))
        }
        Err(error) => return Err(error),
    };
    if let Some(key) = caller.key() {
        check_tpm(svc, key).await?;
    }
    Ok(Plan {
        routing: crate::journal::Routing::new(caller.group(), &first.candidates, skipped)
            .decided(strategy, &scores, explored, sticky),
        model: first.model,
        rates: first.rates,
        candidates: first.candidates,
        fallbacks,
    })
}

/// The status a usage record gets: the charge's own, marked when the model was served free
/// because it has no price (`relay.allow_unpriced`).
pub(crate) fn record_status(status: &str, price: &Price) -> String {
    if price.priced {
        status.to_string()
    } else {
        format!("{status}_unpriced")
    }
}

/// The budget every route counts against, so one key's tokens per minute cover them all.
fn tpm_key(key: &skein_core::api::KeyInfo) -> String {
    format!("tpm:key:{}", key.key_id)
}

/// Refuses a key that has used its tokens per minute (a probe that spends nothing).
pub(crate) async fn check_tpm(svc: &RelayService, key: &skein_core::api::KeyInfo) -> ApiResult<()> {
    let Some(tpm) = key.tpm_limit else {
        return Ok(());
    };
    if let Some(wait) = limited(svc, &tpm_key(key), Quota::per_minute(tpm), 0).await {
        return Err(errors::tokens_per_minute_exceeded(tpm, wait));
    }
    Ok(())
}

/// Charges `cost` to the limit bucket `bucket`: the seconds to wait when it is spent, `None`
/// when the request may go on (also when the limiter is unreachable: losing it must not take
/// the relay down with it).
pub(crate) async fn limited(
    svc: &RelayService,
    bucket: &str,
    quota: Quota,
    cost: u32,
) -> Option<u64> {
    match svc.limiter.check(bucket, quota, cost).await {
        Ok(decision) if !decision.allowed => Some(
            decision
                .retry_after
                .map(|d| d.as_secs().max(1))
                .unwrap_or(1),
        ),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(%error, "rate limiter unavailable; request allowed");
            None
        }
    }
}

/// Counts `tokens` against the caller's tokens per minute, if it is a key with such a limit
/// (at most a full minute's worth: the budget is then empty and refills at its rate).
pub(crate) async fn count_tpm(svc: &RelayService, caller: &Caller, tokens: i64) {
    let Some(key) = caller.key() else { return };
    let Some(tpm) = key.tpm_limit else { return };
    let used = u32::try_from(tokens.max(0)).unwrap_or(u32::MAX);
    if used > 0
        && let Err(error) = svc
            .limiter
            .check(&tpm_key(key), Quota::per_minute(tpm), used.min(tpm))
            .await
    {
        tracing::warn!(%error, "tokens-per-minute limiter unavailable");
    }
}
