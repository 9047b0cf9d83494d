//! Rate-limit state in Redis, so every instance of a deployment draws on one budget.
//!
//! One Lua script reads and advances the key atomically and uses Redis's own clock, so
//! instances with skewed clocks still agree. The decision itself is the same [`gcra`] the
//! memory store uses: the script returns the stored time and the clock, Rust decides.

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;
use skein_core::limit::{Decision, LimitError, Quota, RateLimiter, gcra};

const GCRA_SCRIPT: &str = r#"
local period = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = math.max(tonumber(stored), now) end
local effective = math.max(cost, 1)
local new_tat = tat + effective * interval
if cost > 0 and new_tat - now <= period then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
end
local had = 0
if stored then had = 1 end
return {had, string.format('%.0f', tat), string.format('%.0f', now)}
"#;

/// Redis-backed GCRA limiter.
pub struct RedisLimiter {
    conn: ConnectionManager,
    prefix: String,
    script: Script,
}

impl RedisLimiter {
    /// Connects to Redis; `prefix` namespaces every key.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, LimitError> {
        let client = redis::Client::open(url).map_err(|e| LimitError(e.to_string()))?;
        let conn = ConnectionManager::new(client)
            .await
            .map_err(|e| LimitError(e.to_string()))?;
        Ok(RedisLimiter {
            conn,
            prefix: format!("{prefix}rl:"),
            script: Script::new(GCRA_SCRIPT),
        })
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, key: &str, quota: Quota, cost: u32) -> Result<Decision, LimitError> {
        let mut conn = self.conn.clone();
        let (had, tat, now): (i64, String, String) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(quota.period_us())
            .arg(quota.interval_us())
            .arg(cost)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| LimitError(e.to_string()))?;
        let parse = |s: &str| s.parse::<i64>().map_err(|e| LimitError(e.to_string()));
        let now = parse(&now)?;
        let tat = if had == 1 { Some(parse(&tat)?) } else { None };
        Ok(gcra(tat, now, quota, cost).0)
    }

    async fn reset(&self, key: &str) -> Result<(), LimitError> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(format!("{}{key}", self.prefix))
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| LimitError(e.to_string()))
    }

    async fn ping(&self) -> Result<(), LimitError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| LimitError(e.to_string()))
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
