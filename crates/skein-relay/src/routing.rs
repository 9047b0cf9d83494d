//! Routing that learns: per-group strategies that order a model's channels by what this
//! instance measured (latency, errors), by what the channel costs upstream, or by its
//! remaining upstream balance, on top of priority and weight.
//!
//! Every strategy but `priority` orders all of a route's channels by a score (lower first);
//! channels whose scores are within the strategy's tolerance of each other are ties and keep
//! the priority + smooth weighted round-robin order, so equal channels still share traffic by
//! weight. The measured strategies explore: every k-th request of a route (k from the group's
//! `explore_percent`) puts another channel first, and measurements older than [`STALE_AFTER`]
//! count as unknown (tried first), so a channel that recovered is measured again and wins its
//! traffic back. Circuit breakers apply after ordering: an open breaker still keeps a channel
//! out, whatever its score.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skein_db::sqlx;
use skein_db::{Db, DbResult};
use utoipa::ToSchema;

use crate::balance::Known;
use crate::channels::{ChannelHealth, LiveChannel};

/// How much one new sample moves an average (exponentially weighted).
const ALPHA: f64 = 0.3;
/// Measurements older than this count as unknown: the channel is tried again as if new.
pub const STALE_AFTER: Duration = Duration::from_secs(300);
/// The share of a route's requests that explore when a group does not say.
pub const DEFAULT_EXPLORE_PERCENT: i64 = 5;
/// Latencies within this fraction of the best one are ties.
const LATENCY_TOLERANCE: f64 = 0.25;
/// ...or within this many milliseconds (small answers jitter by a few).
const LATENCY_TOLERANCE_MS: f64 = 20.0;
/// Error rates within this of the best one are ties.
const ERROR_TOLERANCE: f64 = 0.1;

/// How a group's requests choose among a model's channels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Highest priority first, weighted round-robin inside a priority (the default).
    #[default]
    Priority,
    /// Lowest measured latency to the upstream's first byte (an average over recent
    /// requests, raised by the channel's error rate).
    Latency,
    /// Lowest measured error rate (failed-over attempts, rejected keys).
    Errors,
    /// Lowest upstream cost (the channel's `cost_ratio_permille`).
    Cost,
    /// Most remaining upstream balance (where the vendor reports it; unknown balances last).
    Balance,
}

impl Strategy {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Priority => "priority",
            Strategy::Latency => "latency",
            Strategy::Errors => "errors",
            Strategy::Cost => "cost",
            Strategy::Balance => "balance",
        }
    }

    /// The strategy stored as `name` (an unknown name routes by priority).
    pub fn parse(name: &str) -> Strategy {
        match name {
            "latency" => Strategy::Latency,
            "errors" => Strategy::Errors,
            "cost" => Strategy::Cost,
            "balance" => Strategy::Balance,
            _ => Strategy::Priority,
        }
    }

    /// Whether the strategy reads measurements (and so explores to keep them fresh).
    fn measured(self) -> bool {
        matches!(self, Strategy::Latency | Strategy::Errors)
    }
}

/// A group's routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The strategy.
    pub strategy: Strategy,
    /// The percentage (0–50) of a route's requests that try another channel first.
    pub explore_percent: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            strategy: Strategy::Priority,
            explore_percent: DEFAULT_EXPLORE_PERCENT,
        }
    }
}

/// What this instance measured of one channel.
#[derive(Debug, Clone, Copy)]
struct Measured {
    /// Average latency to the answer's first byte, ms (`None` before the first success).
    latency_ms: Option<f64>,
    /// Average of failures (1) and successes (0).
    error_rate: f64,
    /// Attempts measured.
    samples: u64,
    /// When the last one was.
    at: Instant,
}

/// Measurements of every channel, kept in memory per instance (each instance routes by what
/// it sees; a lock held for a map update only).
#[derive(Default)]
pub struct Stats {
    by_channel: Mutex<HashMap<String, Measured>>,
}

impl Stats {
    fn update(&self, channel: &str, now: Instant, change: impl FnOnce(&mut Measured)) {
        let Ok(mut map) = self.by_channel.lock() else {
            return;
        };
        let entry = map.entry(channel.to_string()).or_insert(Measured {
            latency_ms: None,
            error_rate: 0.0,
            samples: 0,
            at: now,
        });
        // Old measurements say nothing about the channel now: start again from this one.
        if now.duration_since(entry.at) > STALE_AFTER {
            entry.latency_ms = None;
            entry.error_rate = 0.0;
        }
        change(entry);
        entry.samples += 1;
        entry.at = now;
    }

    /// `channel` answered after `latency` (to its first byte).
    pub fn success(&self, channel: &str, latency: Duration, now: Instant) {
        let ms = latency.as_secs_f64() * 1000.0;
        self.update(channel, now, |m| {
            m.latency_ms = Some(m.latency_ms.map_or(ms, |l| l + ALPHA * (ms - l)));
            m.error_rate *= 1.0 - ALPHA;
        });
    }

    /// `channel` failed (an attempt failed over or found the key dead).
    pub fn failure(&self, channel: &str, now: Instant) {
        self.update(channel, now, |m| {
            m.error_rate += ALPHA * (1.0 - m.error_rate);
        });
    }

    /// The measurements of `channel`, for the admin view.
    pub fn health(&self, channel: &str, now: Instant) -> Option<ChannelHealth> {
        let map = self.by_channel.lock().ok()?;
        let m = map.get(channel)?;
        Some(ChannelHealth {
            latency_ms: m.latency_ms.map(|l| (l * 10.0).round() / 10.0),
            error_rate: (m.error_rate * 1000.0).round() / 1000.0,
            samples: m.samples,
            stale: now.duration_since(m.at) > STALE_AFTER,
        })
    }

    /// The fresh measurements of `channel` (`None` when unknown or stale).
    fn fresh(
        &self,
        map: &HashMap<String, Measured>,
        channel: &str,
        now: Instant,
    ) -> Option<Measured> {
        map.get(channel)
            .copied()
            .filter(|m| now.duration_since(m.at) <= STALE_AFTER)
    }
}

/// What a routing decision was, for the request log.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Each channel's score, in the order given (`None` under `priority`).
    pub scores: Vec<Option<f64>>,
    /// Whether this request explored (another channel than the best went first).
    pub explored: bool,
}

/// Orders `channels` (given in priority + weighted round-robin order) for request number `n`
/// of their route under `policy`; `balances` gives the remaining upstream balance of
/// channels that report one. A channel whose balance is low goes last under every strategy
/// (it is still tried before the request fails). Answers the order and the scores behind it.
pub fn order(
    policy: Policy,
    channels: Vec<Arc<LiveChannel>>,
    n: u64,
    stats: &Stats,
    balances: &HashMap<String, Known>,
    now: Instant,
) -> (Vec<Arc<LiveChannel>>, Decision) {
    let (mut order, decision) = score(policy, channels, n, stats, balances, now);
    let low = |c: &Arc<LiveChannel>| balances.get(&c.id).is_some_and(|b| b.low);
    if order.iter().any(low) {
        // Stable: the strategy's order holds among the healthy and among the low.
        let mut paired: Vec<(Arc<LiveChannel>, Option<f64>)> = order
            .drain(..)
            .zip(
                decision
                    .scores
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(None)),
            )
            .collect();
        paired.sort_by_key(|(c, _)| low(c));
        let scored = !decision.scores.is_empty();
        let (channels, scores): (Vec<_>, Vec<_>) = paired.into_iter().unzip();
        return (
            channels,
            Decision {
                scores: if scored { scores } else { Vec::new() },
                explored: decision.explored,
            },
        );
    }
    (order, decision)
}

fn score(
    policy: Policy,
    channels: Vec<Arc<LiveChannel>>,
    n: u64,
    stats: &Stats,
    balances: &HashMap<String, Known>,
    now: Instant,
) -> (Vec<Arc<LiveChannel>>, Decision) {
    if policy.strategy == Strategy::Priority || channels.len() < 2 {
        return (channels, Decision::default());
    }
    let scores: Vec<f64> = {
        let map = match stats.by_channel.lock() {
            Ok(map) => map,
            Err(_) => return (channels, Decision::default()),
        };
        channels
            .iter()
            .map(|c| {
                let measured = stats.fresh(&map, &c.id, now);
                match policy.strategy {
                    // Unknown latency scores best, so a new or recovered channel is measured.
                    Strategy::Latency => measured.map_or(0.0, |m| {
                        m.latency_ms.unwrap_or(0.0) * (1.0 + 3.0 * m.error_rate)
                            + 1000.0 * m.error_rate
                    }),
                    Strategy::Errors => measured.map_or(0.0, |m| m.error_rate),
                    Strategy::Cost => c.cost_ratio_permille as f64,
                    // Most balance first; a channel whose vendor reports none goes after them.
                    Strategy::Balance => balances.get(&c.id).map_or(f64::INFINITY, |b| -b.amount),
                    Strategy::Priority => 0.0,
                }
            })
            .collect()
    };
    let best = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let tolerance = match policy.strategy {
        Strategy::Latency => (best * LATENCY_TOLERANCE).max(LATENCY_TOLERANCE_MS),
        Strategy::Errors => ERROR_TOLERANCE,
        _ => 0.0,
    };
    // Ties (within the tolerance of the best) keep the priority and weight order.
    let tier = |s: f64| {
        if s <= best + tolerance {
            f64::NEG_INFINITY
        } else {
            s
        }
    };
    let mut ranked: Vec<(Arc<LiveChannel>, f64)> = channels.into_iter().zip(scores).collect();
    ranked.sort_by(|a, b| tier(a.1).total_cmp(&tier(b.1)));
    let mut explored = false;
    if policy.strategy.measured() && policy.explore_percent > 0 {
        let every = (100 / policy.explore_percent.clamp(1, 50)) as u64;
        if n % every == every - 1 {
            // Each exploring request takes the next of the others, so all get measured.
            let others = ranked.len() as u64 - 1;
            let pick = 1 + ((n / every) % others) as usize;
            let chosen = ranked.remove(pick);
            ranked.insert(0, chosen);
            explored = true;
        }
    }
    let (order, scores): (Vec<_>, Vec<_>) = ranked
        .into_iter()
        .map(|(c, s)| (c, s.is_finite().then_some((s * 1000.0).round() / 1000.0)))
        .unzip();
    (order, Decision { scores, explored })
}

/// Every group's stored policy.
pub async fn all(db: &Db) -> DbResult<HashMap<String, (Policy, i64)>> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT group_name, strategy, explore_percent, updated_at FROM relay_routing_policies",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(group, strategy, explore_percent, at)| {
            let policy = Policy {
                strategy: Strategy::parse(&strategy),
                explore_percent,
            };
            (group, (policy, at))
        })
        .collect())
}

/// Sets a group's policy.
pub async fn set(db: &Db, group: &str, policy: Policy, now: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO relay_routing_policies (group_name, strategy, explore_percent, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (group_name) DO UPDATE SET strategy = $2, explore_percent = $3, updated_at = $4",
    )
    .bind(group)
    .bind(policy.strategy.as_str())
    .bind(policy.explore_percent)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::{ChannelRow, ChannelTable};
    use crate::vault::Vault;

    fn table(ids: &[(&str, i64)]) -> Vec<Arc<LiveChannel>> {
        let vault = Vault::new(&[1u8; 32]);
        let rows: Vec<ChannelRow> = ids
            .iter()
            .map(|(id, cost)| {
                let mut row = crate::channels::tests::row(id, 0, 1, &vault);
                row.cost_ratio_permille = *cost;
                row
            })
            .collect();
        ChannelTable::build(&rows, &vault).candidates("default", "m")
    }

    fn ids(order: &[Arc<LiveChannel>]) -> Vec<&str> {
        order.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn latency_prefers_the_fast_channel_and_explores_the_slow_one() {
        let stats = Stats::default();
        let now = Instant::now();
        stats.success("a", Duration::from_millis(400), now);
        stats.success("b", Duration::from_millis(20), now);
        let policy = Policy {
            strategy: Strategy::Latency,
            explore_percent: 10,
        };
        let mut firsts = Vec::new();
        for n in 0..20 {
            let (got, _) = order(
                policy,
                table(&[("a", 1000), ("b", 1000)]),
                n,
                &stats,
                &HashMap::new(),
                now,
            );
            firsts.push(got[0].id.clone());
        }
        assert_eq!(firsts.iter().filter(|f| *f == "a").count(), 2, "{firsts:?}");
        // Stale measurements count as unknown: the slow channel is tried again.
        let later = now + STALE_AFTER + Duration::from_secs(1);
        stats.success("b", Duration::from_millis(100), later);
        let (got, _) = order(
            policy,
            table(&[("a", 1000), ("b", 1000)]),
            0,
            &stats,
            &HashMap::new(),
            later,
        );
        assert_eq!(ids(&got)[0], "a");
    }

    #[test]
    fn errors_decay_back_into_a_tie() {
        let stats = Stats::default();
        let now = Instant::now();
        stats.failure("a", now);
        let policy = Policy {
            strategy: Strategy::Errors,
            explore_percent: 0,
        };
        for n in 0..4 {
            let (got, _) = order(
                policy,
                table(&[("a", 1000), ("b", 1000)]),
                n,
                &stats,
                &HashMap::new(),
                now,
            );
            assert_eq!(ids(&got)[0], "b");
        }
        for _ in 0..6 {
            stats.success("a", Duration::from_millis(5), now);
        }
        let firsts: Vec<String> = (0..4)
            .map(|n| {
                order(
                    policy,
                    table(&[("a", 1000), ("b", 1000)]),
                    n,
                    &stats,
                    &HashMap::new(),
                    now,
                )
                .0[0]
                    .id
                    .clone()
            })
            .collect();
        assert!(firsts.iter().any(|f| f == "a"), "{firsts:?}");
    }

    #[test]
    fn cost_and_balance_order_statically() {
        let stats = Stats::default();
        let now = Instant::now();
        let cost = Policy {
            strategy: Strategy::Cost,
            explore_percent: 50,
        };
        for n in 0..6 {
            let (got, _) = order(
                cost,
                table(&[("a", 1000), ("b", 600)]),
                n,
                &stats,
                &HashMap::new(),
                now,
            );
            assert_eq!(ids(&got), ["b", "a"], "no exploration for a static score");
        }
        let balance = Policy {
            strategy: Strategy::Balance,
            explore_percent: 0,
        };
        let known = |amount, low| Known { amount, low };
        let balances = HashMap::from([
            ("a".to_string(), known(5.0, false)),
            ("b".to_string(), known(50.0, false)),
        ]);
        let (got, decision) = order(
            balance,
            table(&[("a", 1000), ("b", 1000), ("c", 1000)]),
            0,
            &stats,
            &balances,
            now,
        );
        assert_eq!(ids(&got), ["b", "a", "c"]);
        assert_eq!(decision.scores, [Some(-50.0), Some(-5.0), None]);
        // A low balance goes last under any strategy, priority included.
        let low = HashMap::from([("a".to_string(), known(1.0, true))]);
        let (got, _) = order(
            Policy::default(),
            table(&[("a", 1000), ("b", 1000)]),
            0,
            &stats,
            &low,
            now,
        );
        assert_eq!(ids(&got), ["b", "a"]);
    }
}
