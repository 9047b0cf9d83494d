//! Progressive delays after failed sign-ins, per (account, client address).
//!
//! A lockout per account lets anyone lock the owner out by guessing wrong on purpose. Here
//! failures count per account *and* address (an IPv6 /64), so a stranger's guesses slow only
//! the stranger: a few are free, then each costs a wait that doubles up to a cap. Both pieces
//! of state live in the [`RateLimiter`] (memory or Redis), so every instance sees them:
//! - the failure count is a GCRA bucket that forgets one failure per cap period;
//! - the wait is a one-event bucket whose theoretical arrival time is the end of the wait
//!   (charging it once with `period = d` sets the wait to `d`; probing it with cost 0 answers
//!   whether the wait is over and, if not, how long is left).

use std::time::Duration;

use skein_core::limit::{Quota, RateLimiter};

/// The first wait after the free failures; each further failure doubles it.
pub const FIRST_DELAY: Duration = Duration::from_secs(5);
/// How many failures the counter can hold (far more than the doubling needs to reach the cap).
const COUNTER_LIMIT: u32 = 64;

/// The wait after the `failures`-th failure in a row, when `free` cost nothing, capped at `cap`.
pub fn delay_after(failures: u32, free: u32, cap: Duration) -> Option<Duration> {
    let over = failures.checked_sub(free)?;
    // 5 s × 2^over; the shift is bounded so it cannot overflow before the cap applies.
    let factor = 1u64 << over.min(30);
    let delay = FIRST_DELAY.saturating_mul(u32::try_from(factor).unwrap_or(u32::MAX));
    Some(delay.min(cap).max(Duration::from_secs(1)))
}

/// The login throttle of one (account, address) pair.
pub struct LoginThrottle<'a> {
    limiter: &'a dyn RateLimiter,
    count_key: String,
    wait_key: String,
    free: u32,
    cap: Duration,
}

impl<'a> LoginThrottle<'a> {
    /// The throttle for `account` (a user id, or the login typed for an unknown account)
    /// signing in from the address bucket `ip`.
    pub fn new(
        limiter: &'a dyn RateLimiter,
        account: &str,
        ip: &str,
        free: u32,
        cap: Duration,
    ) -> Self {
        LoginThrottle {
            limiter,
            count_key: format!("login:fail:{account}:{ip}"),
            wait_key: format!("login:wait:{account}:{ip}"),
            free,
            cap: cap.max(Duration::from_secs(1)),
        }
    }

    fn count_quota(&self) -> Quota {
        Quota {
            limit: COUNTER_LIMIT,
            // One failure is forgiven per cap period, so a patient guesser stays at the cap.
            period: self.cap.saturating_mul(COUNTER_LIMIT),
        }
    }

    /// How long this pair must still wait before another attempt, if at all. A limiter that
    /// cannot be reached allows the attempt (and logs), like every other limit.
    pub async fn wait_left(&self) -> Option<Duration> {
        let probe = Quota {
            limit: 1,
            period: self.cap,
        };
        match self.limiter.check(&self.wait_key, probe, 0).await {
            Ok(d) if !d.allowed => Some(d.retry_after.unwrap_or(Duration::from_secs(1))),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "login limiter unavailable");
                None
            }
        }
    }

    /// Counts an attempt before its password is checked, and starts the wait the next attempt
    /// meets if this one fails. Counting first means parallel guesses cannot all slip through
    /// before the first failure is recorded; a correct password clears both ([`Self::clear`]).
    pub async fn count_attempt(&self) {
        let failures = match self
            .limiter
            .check(&self.count_key, self.count_quota(), 1)
            .await
        {
            Ok(d) => COUNTER_LIMIT.saturating_sub(d.remaining),
            Err(error) => {
                tracing::warn!(%error, "login limiter unavailable");
                return;
            }
        };
        if let Some(delay) = delay_after(failures, self.free, self.cap) {
            let wait = Quota {
                limit: 1,
                period: delay,
            };
            if let Err(error) = self.limiter.check(&self.wait_key, wait, 1).await {
                tracing::warn!(%error, "login limiter unavailable");
            }
        }
    }

    /// Forgets this pair's failures after a correct password.
    pub async fn clear(&self) {
        for key in [&self.count_key, &self.wait_key] {
            if let Err(error) = self.limiter.reset(key).await {
                tracing::warn!(%error, "login limiter unavailable");
            }
        }
    }
}

/// Charges one event to `key` under `quota`; `Err` with the wait when the quota is used up.
/// A limiter that cannot be reached allows the event (and logs), like every other limit.
pub async fn charge(limiter: &dyn RateLimiter, key: &str, quota: Quota) -> Result<(), Duration> {
    match limiter.check(key, quota, 1).await {
        Ok(d) if !d.allowed => Err(d.retry_after.unwrap_or(Duration::from_secs(1))),
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::warn!(%error, key, "limiter unavailable");
            Ok(())
        }
    }
}

/// `limit` events per hour.
pub fn per_hour(limit: u32) -> Quota {
    Quota {
        limit: limit.max(1),
        period: Duration::from_secs(3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_failures_then_doubling_up_to_the_cap() {
        let cap = Duration::from_secs(900);
        assert_eq!(delay_after(4, 5, cap), None);
        assert_eq!(delay_after(5, 5, cap), Some(Duration::from_secs(5)));
        assert_eq!(delay_after(6, 5, cap), Some(Duration::from_secs(10)));
        assert_eq!(delay_after(9, 5, cap), Some(Duration::from_secs(80)));
        assert_eq!(delay_after(20, 5, cap), Some(cap));
        assert_eq!(delay_after(u32::MAX, 0, cap), Some(cap));
    }
}
