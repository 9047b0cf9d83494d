//! Rate limiting as one trait with one algorithm (GCRA), so the in-memory limiter and the
//! Redis limiter make identical decisions; only where the state lives differs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// `limit` events per `period`, with bursts of up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Events allowed per period.
    pub limit: u32,
    /// The period.
    pub period: Duration,
}

impl Quota {
    /// `limit` per minute.
    pub fn per_minute(limit: u32) -> Self {
        Quota {
            limit,
            period: Duration::from_secs(60),
        }
    }

    /// Microseconds of the period.
    pub fn period_us(&self) -> i64 {
        i64::try_from(self.period.as_micros()).unwrap_or(i64::MAX)
    }

    /// Microseconds each event uses up (the GCRA emission interval).
    pub fn interval_us(&self) -> i64 {
        (self.period_us() / i64::from(self.limit.max(1))).max(1)
    }
}

/// The outcome of a check, with what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The quota's limit.
    pub limit: u32,
    /// Events still allowed right now.
    pub remaining: u32,
    /// Time until the bucket is entirely full again.
    pub reset_after: Duration,
    /// When denied, time until the next event would be allowed.
    pub retry_after: Option<Duration>,
}

/// The limiter could not reach its store.
#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct LimitError(pub String);

/// A store of GCRA state: in memory for one process, Redis across instances.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts `cost` events against `key`. A cost of 0 only asks whether one more event would
    /// be allowed and consumes nothing.
    async fn check(&self, key: &str, quota: Quota, cost: u32) -> Result<Decision, LimitError>;
    /// Forgets the key (a successful login clears its failures).
    async fn reset(&self, key: &str) -> Result<(), LimitError>;
    /// Whether the store is reachable (for `/readyz`).
    async fn ping(&self) -> Result<(), LimitError>;
    /// A short name for logs and `/readyz`.
    fn backend(&self) -> &'static str;
}

/// The caller's rate limit as the gateway applied it to a request, handed to the handler (a
/// request extension) so a connection that carries many requests (a WebSocket) counts each
/// one against the same limit an HTTP request would, instead of only its opening.
#[derive(Clone)]
pub struct RequestQuota {
    limiter: Arc<dyn RateLimiter>,
    key: String,
    quota: Quota,
}

impl RequestQuota {
    /// The limit counted under `key` in `limiter`.
    pub fn new(limiter: Arc<dyn RateLimiter>, key: impl Into<String>, quota: Quota) -> Self {
        RequestQuota {
            limiter,
            key: key.into(),
            quota,
        }
    }

    /// Counts one more request: a 429 `rate_limited` (with the seconds to wait) when over the
    /// limit. A limiter that cannot be reached lets it through, as the gateway does.
    pub async fn admit(&self) -> Result<(), crate::ApiError> {
        match self.limiter.check(&self.key, self.quota, 1).await {
            Ok(decision) if !decision.allowed => {
                let wait = decision
                    .retry_after
                    .map(|d| d.as_secs_f64().ceil() as u64)
                    .unwrap_or(1)
                    .max(1);
                Err(crate::ApiError::too_many_requests(wait))
            }
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, "rate limiter unavailable; request allowed");
                Ok(())
            }
        }
    }
}

/// The GCRA step shared by every store. `tat_us` is the stored theoretical arrival time
/// (none for a fresh key), `now_us` the store's clock. Answers the decision and, when state
/// must be written, the new theoretical arrival time.
pub fn gcra(tat_us: Option<i64>, now_us: i64, quota: Quota, cost: u32) -> (Decision, Option<i64>) {
    let period = quota.period_us();
    let interval = quota.interval_us();
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    let effective = i64::from(cost.max(1));
    let new_tat = tat.saturating_add(effective.saturating_mul(interval));
    let allowed = new_tat - now_us <= period;
    let remaining_after = |t: i64| -> u32 {
        let room = (period - (t - now_us)).max(0) / interval;
        u32::try_from(room).unwrap_or(u32::MAX).min(quota.limit)
    };
    let us = |v: i64| Duration::from_micros(u64::try_from(v.max(0)).unwrap_or(0));
    if !allowed {
        let decision = Decision {
            allowed: false,
            limit: quota.limit,
            remaining: remaining_after(tat),
            reset_after: us(tat - now_us),
            retry_after: Some(us(new_tat - period - now_us)),
        };
        return (decision, None);
    }
    if cost == 0 {
        let decision = Decision {
            allowed: true,
            limit: quota.limit,
            remaining: remaining_after(tat),
            reset_after: us(tat - now_us),
            retry_after: None,
        };
        return (decision, None);
    }
    let decision = Decision {
        allowed: true,
        limit: quota.limit,
        remaining: remaining_after(new_tat),
        reset_after: us(new_tat - now_us),
        retry_after: None,
    };
    (decision, Some(new_tat))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(quota: Quota, times: &[i64]) -> Vec<bool> {
        let mut tat = None;
        times
            .iter()
            .map(|&now| {
                let (d, new) = gcra(tat, now, quota, 1);
                if let Some(t) = new {
                    tat = Some(t);
                }
                d.allowed
            })
            .collect()
    }

    #[test]
    fn allows_a_burst_of_limit_then_refuses() {
        let q = Quota::per_minute(3);
        assert_eq!(run(q, &[0, 0, 0, 0]), vec![true, true, true, false]);
    }

    #[test]
    fn refills_one_per_interval() {
        let q = Quota::per_minute(3); // one event per 20 s
        let s = 1_000_000;
        assert_eq!(
            run(q, &[0, 0, 0, 19 * s, 20 * s, 21 * s]),
            vec![true, true, true, false, true, false]
        );
    }

    #[test]
    fn reports_remaining_and_retry_after() {
        let q = Quota::per_minute(2);
        let (d1, t1) = gcra(None, 0, q, 1);
        assert_eq!((d1.allowed, d1.remaining), (true, 1));
        let (d2, t2) = gcra(t1, 0, q, 1);
        assert_eq!((d2.allowed, d2.remaining), (true, 0));
        let (d3, t3) = gcra(t2, 0, q, 1);
        assert!(!d3.allowed && t3.is_none());
        assert_eq!(d3.retry_after, Some(Duration::from_secs(30)));
        assert_eq!(d3.reset_after, Duration::from_secs(60));
    }

    #[test]
    fn zero_cost_probes_without_consuming() {
        let q = Quota::per_minute(1);
        let (probe, write) = gcra(None, 0, q, 0);
        assert!(probe.allowed && write.is_none());
        let (_, t) = gcra(None, 0, q, 1);
        let (probe, write) = gcra(t, 0, q, 0);
        assert!(!probe.allowed && write.is_none());
        assert_eq!(probe.retry_after, Some(Duration::from_secs(60)));
    }
}
