//! Rate-limit state in this process's memory: exact for one instance, zero dependencies.
//!
//! Bound: one entry per key whose window is still running (a key whose theoretical arrival
//! time has passed is at full capacity, the same as no entry). Expired keys are swept out on
//! a timer, whether or not traffic still arrives, and the tables give their memory back, so a
//! burst of distinct IPs or keys does not stay resident once its windows pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use skein_core::limit::{Decision, LimitError, Quota, RateLimiter, gcra};

/// Shards keep unrelated keys from contending on one lock.
const SHARDS: usize = 16;
/// A shard sweeps inline when it grows past this many (then past twice what survived), so a
/// shard full of live keys is not swept on every insert.
const SWEEP_AT: usize = 4096;
/// How often the background sweeper clears expired keys from every shard.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// One shard: its keys' theoretical arrival times (µs since `start`) and when it next sweeps.
#[derive(Default)]
struct Shard {
    tats: HashMap<String, i64>,
    sweep_at: usize,
}

impl Shard {
    /// Drops keys whose window has passed and gives back table memory the survivors don't need.
    fn sweep(&mut self, now_us: i64) {
        self.tats.retain(|_, tat| *tat > now_us);
        // A table at a quarter of its capacity keeps twice its length: shrinking costs a
        // rehash, so small slack stays, and a table emptied by a passed burst goes back.
        if self.tats.capacity() > 4 * self.tats.len().max(16) {
            self.tats.shrink_to(2 * self.tats.len());
        }
        self.sweep_at = SWEEP_AT.max(2 * self.tats.len());
    }
}

/// In-memory GCRA limiter.
pub struct MemoryLimiter {
    start: Instant,
    shards: Vec<Mutex<Shard>>,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        MemoryLimiter {
            start: Instant::now(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        tats: HashMap::new(),
                        sweep_at: SWEEP_AT,
                    })
                })
                .collect(),
        }
    }
}

impl MemoryLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the task that sweeps expired keys every [`SWEEP_EVERY`]; it ends when the
    /// limiter is dropped.
    pub fn start_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else { break };
                limiter.sweep();
            }
        });
    }

    /// Drops every key whose window has passed (what the sweeper runs).
    pub fn sweep(&self) {
        let now = self.now_us();
        for shard in &self.shards {
            if let Ok(mut shard) = shard.lock() {
                shard.sweep(now);
            }
        }
    }

    /// Keys held now, across shards (for the runtime report).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.tats.len()).unwrap_or(0))
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
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
        let mut shard = self
            .shard(key)
            .lock()
            .map_err(|_| LimitError("poisoned lock".into()))?;
        let (decision, new_tat) = gcra(shard.tats.get(key).copied(), now, quota, cost);
        if let Some(tat) = new_tat {
            if shard.tats.len() >= shard.sweep_at {
                shard.sweep(now);
            }
            shard.tats.insert(key.to_string(), tat);
        }
        Ok(decision)
    }

    async fn reset(&self, key: &str) -> Result<(), LimitError> {
        let mut shard = self
            .shard(key)
            .lock()
            .map_err(|_| LimitError("poisoned lock".into()))?;
        shard.tats.remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), LimitError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// Sizes for the runtime report: rate-limit keys whose window still runs (per IP, key, user,
/// login failure).
impl skein_core::runtime::Gauges for MemoryLimiter {
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        vec![("limiter.keys", skein_core::runtime::count(self.len()))]
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

    #[tokio::test]
    async fn the_map_shrinks_back_once_its_windows_pass() {
        let limiter = MemoryLimiter::new();
        // Windows of 50 ms: 20,000 distinct callers, as a burst of new IPs would bring.
        let q = Quota {
            limit: 1,
            period: Duration::from_millis(50),
        };
        for i in 0..20_000 {
            limiter
                .check(&format!("ip:{i}"), q, 1)
                .await
                .expect("check");
        }
        assert!(
            limiter.len() > 10_000,
            "the burst is held while its windows run"
        );
        let capacity_at_peak: usize = limiter
            .shards
            .iter()
            .map(|s| s.lock().expect("lock").tats.capacity())
            .sum();
        tokio::time::sleep(Duration::from_millis(80)).await;
        limiter.sweep();
        assert_eq!(limiter.len(), 0, "every window has passed");
        let capacity_after: usize = limiter
            .shards
            .iter()
            .map(|s| s.lock().expect("lock").tats.capacity())
            .sum();
        assert!(
            capacity_after * 8 < capacity_at_peak,
            "the tables give their memory back: {capacity_after} of {capacity_at_peak}"
        );
    }

    #[tokio::test]
    async fn a_live_key_survives_the_sweep() {
        let limiter = MemoryLimiter::new();
        limiter
            .check("slow", Quota::per_minute(1), 1)
            .await
            .expect("check");
        limiter.sweep();
        assert_eq!(limiter.len(), 1);
        let denied = limiter
            .check("slow", Quota::per_minute(1), 1)
            .await
            .expect("check");
        assert!(!denied.allowed, "sweeping forgot nothing still counting");
    }
}
