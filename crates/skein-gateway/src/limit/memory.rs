//! Rate-limit state in this process's memory: exact for one instance, zero dependencies.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use skein_core::limit::{Decision, LimitError, Quota, RateLimiter, gcra};

/// Shards keep unrelated keys from contending on one lock.
const SHARDS: usize = 16;
/// A shard sweeps out expired keys when it grows past this many.
const SWEEP_AT: usize = 4096;

/// In-memory GCRA limiter.
pub struct MemoryLimiter {
    start: Instant,
    shards: Vec<Mutex<HashMap<String, i64>>>,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        MemoryLimiter {
            start: Instant::now(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl MemoryLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, i64>> {
        // FNV-1a: cheap and stable; the shard only spreads lock contention.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let index = usize::try_from(hash % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }

    fn now_us(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_micros()).unwrap_or(i64::MAX)
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn check(&self, key: &str, quota: Quota, cost: u32) -> Result<Decision, LimitError> {
        let now = self.now_us();
        let mut map = self
            .shard(key)
            .lock()
            .map_err(|_| LimitError("poisoned lock".into()))?;
        let (decision, new_tat) = gcra(map.get(key).copied(), now, quota, cost);
        if let Some(tat) = new_tat {
            if map.len() >= SWEEP_AT {
                map.retain(|_, t| *t > now);
            }
            map.insert(key.to_string(), tat);
        }
        Ok(decision)
    }

    async fn reset(&self, key: &str) -> Result<(), LimitError> {
        let mut map = self
            .shard(key)
            .lock()
            .map_err(|_| LimitError("poisoned lock".into()))?;
        map.remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), LimitError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_per_key_and_resets() {
        let limiter = MemoryLimiter::new();
        let q = Quota::per_minute(2);
        assert!(limiter.check("a", q, 1).await.expect("check").allowed);
        assert!(limiter.check("a", q, 1).await.expect("check").allowed);
        let denied = limiter.check("a", q, 1).await.expect("check");
        assert!(!denied.allowed);
        assert!(denied.retry_after.is_some());
        assert!(
            limiter.check("b", q, 1).await.expect("check").allowed,
            "keys are independent"
        );
        limiter.reset("a").await.expect("reset");
        assert!(limiter.check("a", q, 1).await.expect("check").allowed);
    }
}
