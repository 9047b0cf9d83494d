//! Routing that learns: per-group strategies that order a model's channels by what this
//! instance measured (latency, errors), by what the channel costs upstream, by its remaining
//! upstream balance, or by all of measured latency, errors and cost at once (`balanced`, two
//! random choices so that load spreads), on top of priority and weight. A group may be
//! sticky: the same conversation (or API key) goes to the same channel among the equals while
//! that channel is healthy, so vendors' prompt caches keep hitting.
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
use crate::channels::{ChannelHealth, LiveChannel, ModelHealth};

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
    /// Measured latency, errors and upstream cost in one score, with the power of two
    /// choices: two channels of the best priority drawn at random, the better one first, so
    /// traffic spreads over the good channels instead of piling onto the single best; the
    /// rest by priority, then score.
    Balanced,
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
            Strategy::Balanced => "balanced",
        }
    }

    /// The strategy stored as `name` (an unknown name routes by priority).
    pub fn parse(name: &str) -> Strategy {
        match name {
            "latency" => Strategy::Latency,
            "errors" => Strategy::Errors,
            "cost" => Strategy::Cost,
            "balance" => Strategy::Balance,
            "balanced" => Strategy::Balanced,
            _ => Strategy::Priority,
        }
    }

    /// Whether the strategy reads measurements (and so explores to keep them fresh).
    fn measured(self) -> bool {
        matches!(
            self,
            Strategy::Latency | Strategy::Errors | Strategy::Balanced
        )
    }
}

/// A group's routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The strategy.
    pub strategy: Strategy,
    /// The percentage (0–50) of a route's requests that try another channel first.
    pub explore_percent: i64,
    /// The same conversation or key goes to the same channel among the equals (see
    /// [`sticky_first`]).
    pub sticky: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            strategy: Strategy::Priority,
            explore_percent: DEFAULT_EXPLORE_PERCENT,
            sticky: false,
        }
    }
}

/// What this instance measured of one channel, or of one model on it.
#[derive(Debug, Clone, Copy)]
struct Measured {
    /// Average latency to the answer's first byte, ms (`None` before the first success).
    latency_ms: Option<f64>,
    /// Average time to a streamed answer's first token, ms (`None` before the first stream).
    ttft_ms: Option<f64>,
    /// Average of failures (1) and successes (0).
    error_rate: f64,
    /// Attempts measured.
    samples: u64,
    /// When the last one was.
    at: Instant,
}

impl Measured {
    fn new(now: Instant) -> Self {
        Measured {
            latency_ms: None,
            ttft_ms: None,
            error_rate: 0.0,
            samples: 0,
            at: now,
        }
    }

    fn update(&mut self, now: Instant, change: impl FnOnce(&mut Measured)) {
        // Old measurements say nothing about the channel now: start again from this one.
        if now.duration_since(self.at) > STALE_AFTER {
            self.latency_ms = None;
            self.ttft_ms = None;
            self.error_rate = 0.0;
        }
        change(self);
        self.samples += 1;
        self.at = now;
    }

    fn first_token(&mut self, ms: f64) {
        self.ttft_ms = Some(self.ttft_ms.map_or(ms, |t| t + ALPHA * (ms - t)));
    }

    fn is_fresh(&self, now: Instant) -> bool {
        now.duration_since(self.at) <= STALE_AFTER
    }

    fn health(&self, now: Instant) -> ChannelHealth {
        ChannelHealth {
            latency_ms: self.latency_ms.map(|l| (l * 10.0).round() / 10.0),
            ttft_ms: self.ttft_ms.map(|t| (t * 10.0).round() / 10.0),
            error_rate: (self.error_rate * 1000.0).round() / 1000.0,
            samples: self.samples,
            stale: !self.is_fresh(now),
            models: Vec::new(),
        }
    }
}

/// A channel's measurements: over all its models, and per model (a channel serving a fast
/// small model and a slow large one is fast for the one and slow for the other).
#[derive(Debug, Clone)]
struct ChannelMeasured {
    all: Measured,
    models: HashMap<String, Measured>,
}

/// Attempts of a model on a channel measured before its own averages replace the channel's
/// in scoring: one sample is too noisy to move traffic by.
const MODEL_SAMPLES: u64 = 3;

/// Measurements of every channel and of every model on it, kept in memory per instance (each
/// instance routes by what it sees; a lock held for a map update only). The models are those
/// the channel was asked for and answered or failed, so the map is bounded by the channels'
/// configured models.
#[derive(Default)]
pub struct Stats {
    by_channel: Mutex<HashMap<String, ChannelMeasured>>,
}

/// [`Stats`] as seen by the requests for one model: what [`order`] scores by.
#[derive(Clone, Copy)]
pub struct ModelStats<'a> {
    stats: &'a Stats,
    model: &'a str,
}

impl Stats {
    /// The measurements as `model`'s requests are scored by.
    pub fn of<'a>(&'a self, model: &'a str) -> ModelStats<'a> {
        ModelStats { stats: self, model }
    }

    fn update(&self, channel: &str, model: &str, now: Instant, change: impl Fn(&mut Measured)) {
        let Ok(mut map) = self.by_channel.lock() else {
            return;
        };
        let entry = map
            .entry(channel.to_string())
            .or_insert_with(|| ChannelMeasured {
                all: Measured::new(now),
                models: HashMap::new(),
            });
        entry.all.update(now, &change);
        match entry.models.get_mut(model) {
            Some(m) => m.update(now, &change),
            None => {
                let mut m = Measured::new(now);
                m.update(now, &change);
                entry.models.insert(model.to_string(), m);
            }
        }
    }

    /// `channel` answered `model` after `latency` (to its first byte).
    pub fn success(&self, channel: &str, model: &str, latency: Duration, now: Instant) {
        let ms = latency.as_secs_f64() * 1000.0;
        self.update(channel, model, now, |m| {
            m.latency_ms = Some(m.latency_ms.map_or(ms, |l| l + ALPHA * (ms - l)));
            m.error_rate *= 1.0 - ALPHA;
        });
    }

    /// A stream of `model` from `channel` brought its first token after `ttft` (the attempt
    /// itself was counted by [`Stats::success`] when the answer began).
    pub fn first_token(&self, channel: &str, model: &str, ttft: Duration) {
        let ms = ttft.as_secs_f64() * 1000.0;
        let Ok(mut map) = self.by_channel.lock() else {
            return;
        };
        if let Some(c) = map.get_mut(channel) {
            c.all.first_token(ms);
            if let Some(m) = c.models.get_mut(model) {
                m.first_token(ms);
            }
        }
    }

    /// `channel` failed `model` (an attempt failed over or found the key dead).
    pub fn failure(&self, channel: &str, model: &str, now: Instant) {
        self.update(channel, model, now, |m| {
            m.error_rate += ALPHA * (1.0 - m.error_rate);
        });
    }

    /// The measurements of `channel`, over all its models and per model, for the admin view.
    pub fn health(&self, channel: &str, now: Instant) -> Option<ChannelHealth> {
        let map = self.by_channel.lock().ok()?;
        let c = map.get(channel)?;
        let mut health = c.all.health(now);
        health.models = c
            .models
            .iter()
            .map(|(model, m)| {
                let h = m.health(now);
                ModelHealth {
                    model: model.clone(),
                    latency_ms: h.latency_ms,
                    ttft_ms: h.ttft_ms,
                    error_rate: h.error_rate,
                    samples: h.samples,
                    stale: h.stale,
                }
            })
            .collect();
        health.models.sort_by(|a, b| a.model.cmp(&b.model));
        Some(health)
    }
}

impl ModelStats<'_> {
    /// The fresh measurements of `channel` for this model: its own once it has
    /// [`MODEL_SAMPLES`], else the channel's over all models (`None` when unknown or stale).
    fn fresh(
        &self,
        map: &HashMap<String, ChannelMeasured>,
        channel: &str,
        now: Instant,
    ) -> Option<Measured> {
        let c = map.get(channel)?;
        let own = c
            .models
            .get(self.model)
            .filter(|m| m.samples >= MODEL_SAMPLES && m.is_fresh(now));
        own.or(Some(&c.all).filter(|m| m.is_fresh(now))).copied()
    }
}

/// What a routing decision was, for the request log.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Each channel's score, in the order given (`None` under `priority`).
    pub scores: Vec<Option<f64>>,
    /// Whether this request explored (another channel than the best went first).
    pub explored: bool,
    /// Whether the group's stickiness chose the first channel.
    pub sticky: bool,
}

/// Orders `channels` (given in priority + weighted round-robin order) for request number `n`
/// of their route under `policy`, scoring by `stats` (of the route's model); `balances` gives the remaining upstream balance of
/// channels that report one; `sticky_key` names the conversation or key the request belongs
/// to (stickiness needs one). A channel whose balance is low goes last under every strategy
/// (it is still tried before the request fails). Answers the order and the scores behind it.
pub fn order(
    policy: Policy,
    channels: Vec<Arc<LiveChannel>>,
    n: u64,
    stats: ModelStats<'_>,
    balances: &HashMap<String, Known>,
    now: Instant,
    sticky_key: Option<&str>,
) -> (Vec<Arc<LiveChannel>>, Decision) {
    let (mut order, mut decision, equals) = score(policy, channels, n, stats, balances, now);
    if policy.sticky
        && let Some(key) = sticky_key
        && equals > 1
    {
        decision.sticky = sticky_first(&mut order, &mut decision.scores, equals, key);
    }
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
                ..decision
            },
        );
    }
    (order, decision)
}

/// Puts first, among the leading `equals` channels, the one `key` belongs to: weighted
/// rendezvous hashing, so each key keeps its channel while the set of equals is the same, keys
/// spread over the equals by weight, and a channel that leaves (its breaker opens, an admin
/// disables it) moves only its own keys. Answers whether the order changed.
fn sticky_first(
    order: &mut Vec<Arc<LiveChannel>>,
    scores: &mut Vec<Option<f64>>,
    equals: usize,
    key: &str,
) -> bool {
    let rank = |c: &LiveChannel| {
        // A uniform draw in (0, 1] from the key and the channel, then -ln(u) / weight: the
        // smallest wins, each channel with a probability proportional to its weight.
        let u =
            (mix(fnv(key.as_bytes()) ^ fnv(c.id.as_bytes())) >> 11) as f64 / (1u64 << 53) as f64;
        -(u.max(f64::MIN_POSITIVE)).ln() / c.weight.max(1) as f64
    };
    let Some(winner) =
        (0..equals.min(order.len())).min_by(|&a, &b| rank(&order[a]).total_cmp(&rank(&order[b])))
    else {
        return false;
    };
    if winner == 0 {
        return false;
    }
    let channel = order.remove(winner);
    order.insert(0, channel);
    if winner < scores.len() {
        let score = scores.remove(winner);
        scores.insert(0, score);
    }
    true
}

/// FNV-1a: a stable hash of a key (the same on every instance and every release).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64's finaliser: spreads a hash or a counter over all 64 bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The strategy's order, its scores, and how many leading channels are equals (stickiness
/// chooses among them; 0 when the request explores).
fn score(
    policy: Policy,
    channels: Vec<Arc<LiveChannel>>,
    n: u64,
    stats: ModelStats<'_>,
    balances: &HashMap<String, Known>,
    now: Instant,
) -> (Vec<Arc<LiveChannel>>, Decision, usize) {
    // The leading channels of the best priority: the equals of the priority order.
    let best_priority = |channels: &[Arc<LiveChannel>]| {
        channels.first().map_or(0, |f| {
            channels
                .iter()
                .take_while(|c| c.priority == f.priority)
                .count()
        })
    };
    if policy.strategy == Strategy::Priority || channels.len() < 2 {
        let equals = best_priority(&channels);
        return (channels, Decision::default(), equals);
    }
    let scores: Vec<f64> = {
        let map = match stats.stats.by_channel.lock() {
            Ok(map) => map,
            Err(_) => {
                let equals = best_priority(&channels);
                return (channels, Decision::default(), equals);
            }
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
                    // Latency made worse by errors, then by what the channel costs upstream;
                    // unknown scores best (it gets measured).
                    Strategy::Balanced => measured.map_or(0.0, |m| {
                        let cost = if c.cost_ratio_permille > 0 {
                            c.cost_ratio_permille as f64 / 1000.0
                        } else {
                            1.0
                        };
                        (m.latency_ms.unwrap_or(0.0).max(1.0) + 1000.0 * m.error_rate)
                            * (1.0 + 3.0 * m.error_rate)
                            * cost
                    }),
                    Strategy::Priority => 0.0,
                }
            })
            .collect()
    };
    let best = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let tolerance = match policy.strategy {
        Strategy::Latency | Strategy::Balanced => {
            (best * LATENCY_TOLERANCE).max(LATENCY_TOLERANCE_MS)
        }
        Strategy::Errors => ERROR_TOLERANCE,
        _ => 0.0,
    };
    let tied = |s: f64| s <= best + tolerance;
    // Ties (within the tolerance of the best) keep the priority and weight order.
    let tier = |s: f64| if tied(s) { f64::NEG_INFINITY } else { s };
    let mut ranked: Vec<(Arc<LiveChannel>, f64)> = channels.into_iter().zip(scores).collect();
    let mut equals;
    if policy.strategy == Strategy::Balanced {
        // Two choices among the best priority: the one round-robin by weight put first, and
        // one drawn from the others by the request's number; the better goes first, the
        // rest by score.
        let pool = ranked.first().map_or(0, |f| {
            ranked
                .iter()
                .take_while(|c| c.0.priority == f.0.priority)
                .count()
        });
        let first = if pool >= 2 {
            let other = 1 + (mix(n) % (pool as u64 - 1)) as usize;
            if ranked[other].1 < ranked[0].1 {
                other
            } else {
                0
            }
        } else {
            0
        };
        let chosen = ranked.remove(first);
        // Failover keeps to priority: a backup tier is tried after the best one, each tier
        // by score.
        ranked.sort_by(|a, b| b.0.priority.cmp(&a.0.priority).then(a.1.total_cmp(&b.1)));
        ranked.insert(0, chosen);
        // The equals, for stickiness: the best priority's channels within the tolerance.
        equals = ranked
            .iter()
            .take_while(|c| c.0.priority == ranked[0].0.priority && tied(c.1))
            .count();
    } else {
        ranked.sort_by(|a, b| tier(a.1).total_cmp(&tier(b.1)));
        equals = ranked.iter().take_while(|c| tied(c.1)).count();
    }
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
            // An exploring request goes where it was sent, not where its key sticks.
            equals = 0;
        }
    }
    let (order, scores): (Vec<_>, Vec<_>) = ranked
        .into_iter()
        .map(|(c, s)| (c, s.is_finite().then_some((s * 1000.0).round() / 1000.0)))
        .unzip();
    (
        order,
        Decision {
            scores,
            explored,
            sticky: false,
        },
        equals,
    )
}

/// Every group's stored policy.
pub async fn all(db: &Db) -> DbResult<HashMap<String, (Policy, i64)>> {
    let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT group_name, strategy, explore_percent, sticky, updated_at FROM relay_routing_policies",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(group, strategy, explore_percent, sticky, at)| {
            let policy = Policy {
                strategy: Strategy::parse(&strategy),
                explore_percent,
                sticky: sticky != 0,
            };
            (group, (policy, at))
        })
        .collect())
}

/// Sets a group's policy.
pub async fn set(db: &Db, group: &str, policy: Policy, now: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO relay_routing_policies (group_name, strategy, explore_percent, sticky, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (group_name) DO UPDATE SET strategy = $2, explore_percent = $3, sticky = $4, updated_at = $5",
    )
    .bind(group)
    .bind(policy.strategy.as_str())
    .bind(policy.explore_percent)
    .bind(i64::from(policy.sticky))
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
        stats.success("a", "m", Duration::from_millis(400), now);
        stats.success("b", "m", Duration::from_millis(20), now);
        let policy = Policy {
            strategy: Strategy::Latency,
            explore_percent: 10,
            sticky: false,
        };
        let mut firsts = Vec::new();
        for n in 0..20 {
            let (got, _) = order(
                policy,
                table(&[("a", 1000), ("b", 1000)]),
                n,
                stats.of("m"),
                &HashMap::new(),
                now,
                None,
            );
            firsts.push(got[0].id.clone());
        }
        assert_eq!(firsts.iter().filter(|f| *f == "a").count(), 2, "{firsts:?}");
        // Stale measurements count as unknown: the slow channel is tried again.
        let later = now + STALE_AFTER + Duration::from_secs(1);
        stats.success("b", "m", Duration::from_millis(100), later);
        let (got, _) = order(
            policy,
            table(&[("a", 1000), ("b", 1000)]),
            0,
            stats.of("m"),
            &HashMap::new(),
            later,
            None,
        );
        assert_eq!(ids(&got)[0], "a");
    }

    #[test]
    fn each_model_is_routed_by_its_own_measurements_once_it_has_a_few() {
        let stats = Stats::default();
        let now = Instant::now();
        let policy = Policy {
            strategy: Strategy::Latency,
            explore_percent: 0,
            sticky: false,
        };
        let first = |model: &str| {
            order(
                policy,
                table(&[("a", 1000), ("b", 1000)]),
                0,
                stats.of(model),
                &HashMap::new(),
                now,
                None,
            )
            .0[0]
                .id
                .clone()
        };
        // a serves the small model fast and the large one slowly; b the other way round.
        for _ in 0..MODEL_SAMPLES {
            stats.success("a", "small", Duration::from_millis(30), now);
            stats.success("b", "small", Duration::from_millis(3_000), now);
        }
        stats.success("a", "large", Duration::from_millis(2_000), now);
        stats.success("b", "large", Duration::from_millis(200), now);
        assert_eq!(first("small"), "a");
        // One sample of the large model is not enough: the channels' averages over all
        // models still decide (a is the faster one overall).
        assert_eq!(first("large"), "a");
        for _ in 1..MODEL_SAMPLES {
            stats.success("a", "large", Duration::from_millis(2_000), now);
            stats.success("b", "large", Duration::from_millis(200), now);
        }
        assert_eq!(first("large"), "b");
        assert_eq!(first("small"), "a");
        // A model never asked of these channels goes by their averages.
        assert!(["a", "b"].contains(&first("other").as_str()));

        // The admin view shows both levels.
        let health = stats.health("b", now).expect("measured");
        assert_eq!(health.samples, 2 * MODEL_SAMPLES);
        let models: Vec<(&str, u64)> = health
            .models
            .iter()
            .map(|m| (m.model.as_str(), m.samples))
            .collect();
        assert_eq!(models, [("large", MODEL_SAMPLES), ("small", MODEL_SAMPLES)]);
        assert_eq!(health.models[0].latency_ms, Some(200.0));

        // A failure counts against the model and the channel.
        stats.failure("b", "large", now);
        let health = stats.health("b", now).expect("measured");
        assert!(health.models[0].error_rate > 0.0 && health.error_rate > 0.0);
        assert_eq!(health.models[1].error_rate, 0.0);
    }

    #[test]
    fn errors_decay_back_into_a_tie() {
        let stats = Stats::default();
        let now = Instant::now();
        stats.failure("a", "m", now);
        let policy = Policy {
            strategy: Strategy::Errors,
            explore_percent: 0,
            sticky: false,
        };
        for n in 0..4 {
            let (got, _) = order(
                policy,
                table(&[("a", 1000), ("b", 1000)]),
                n,
                stats.of("m"),
                &HashMap::new(),
                now,
                None,
            );
            assert_eq!(ids(&got)[0], "b");
        }
        for _ in 0..6 {
            stats.success("a", "m", Duration::from_millis(5), now);
        }
        let firsts: Vec<String> = (0..4)
            .map(|n| {
                order(
                    policy,
                    table(&[("a", 1000), ("b", 1000)]),
                    n,
                    stats.of("m"),
                    &HashMap::new(),
                    now,
                    None,
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
            sticky: false,
        };
        for n in 0..6 {
            let (got, _) = order(
                cost,
                table(&[("a", 1000), ("b", 600)]),
                n,
                stats.of("m"),
                &HashMap::new(),
                now,
                None,
            );
            assert_eq!(ids(&got), ["b", "a"], "no exploration for a static score");
        }
        let balance = Policy {
            strategy: Strategy::Balance,
            explore_percent: 0,
            sticky: false,
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
            stats.of("m"),
            &balances,
            now,
            None,
        );
        assert_eq!(ids(&got), ["b", "a", "c"]);
        assert_eq!(decision.scores, [Some(-50.0), Some(-5.0), None]);
        // A low balance goes last under any strategy, priority included.
        let low = HashMap::from([("a".to_string(), known(1.0, true))]);
        let (got, _) = order(
            Policy::default(),
            table(&[("a", 1000), ("b", 1000)]),
            0,
            stats.of("m"),
            &low,
            now,
            None,
        );
        assert_eq!(ids(&got), ["b", "a"]);
    }

    /// One route's table: `(id, priority, weight)` rows, as the relay builds it.
    fn route(rows: &[(&str, i64, i64)]) -> ChannelTable {
        let vault = Vault::new(&[1u8; 32]);
        let rows: Vec<ChannelRow> = rows
            .iter()
            .map(|(id, priority, weight)| {
                crate::channels::tests::row(id, *priority, *weight, &vault)
            })
            .collect();
        ChannelTable::build(&rows, &vault)
    }

    #[test]
    fn time_to_first_token_is_averaged_apart_from_latency() {
        let stats = Stats::default();
        let now = Instant::now();
        // No attempt measured yet: a first token alone records nothing.
        stats.first_token("a", "m", Duration::from_millis(500));
        assert!(stats.health("a", now).is_none());
        stats.success("a", "m", Duration::from_millis(100), now);
        assert_eq!(stats.health("a", now).and_then(|h| h.ttft_ms), None);
        stats.first_token("a", "m", Duration::from_millis(500));
        stats.first_token("a", "m", Duration::from_millis(1_500));
        let health = stats.health("a", now).expect("measured");
        // 500 + 0.3 × (1500 − 500); latency and samples untouched.
        assert_eq!(health.ttft_ms, Some(800.0));
        assert_eq!(health.latency_ms, Some(100.0));
        assert_eq!(health.samples, 1);
    }

    #[test]
    fn balanced_spreads_over_the_good_channels_and_never_leads_with_the_worst() {
        let stats = Stats::default();
        let now = Instant::now();
        for (id, ms) in [("a", 50), ("b", 60), ("c", 70), ("d", 400)] {
            stats.success(id, "m", Duration::from_millis(ms), now);
        }
        let policy = Policy {
            strategy: Strategy::Balanced,
            explore_percent: 0,
            sticky: false,
        };
        let table = route(&[
            ("a", 0, 1),
            ("b", 0, 1),
            ("c", 0, 1),
            ("d", 0, 1),
            ("z", -1, 1),
        ]);
        let mut firsts: HashMap<String, usize> = HashMap::new();
        for _ in 0..400 {
            let (channels, n) = table.numbered("default", "m");
            let (got, decision) = order(
                policy,
                channels,
                n,
                stats.of("m"),
                &HashMap::new(),
                now,
                None,
            );
            *firsts.entry(got[0].id.clone()).or_default() += 1;
            // After the first, the rest by score: the slow one and the lower priority last.
            assert_eq!(ids(&got)[3..], ["d", "z"], "{:?}", ids(&got));
            assert_eq!(decision.scores.len(), 5);
        }
        // The slowest of the best priority is never first: any other drawn beside it wins.
        assert_eq!(firsts.get("d"), None, "{firsts:?}");
        assert_eq!(firsts.get("z"), None, "{firsts:?}");
        // The good ones share the load, the best the most (unlike `latency`, where the
        // tolerance makes a, b and c ties and c would get its round-robin share).
        for id in ["a", "b", "c"] {
            assert!(firsts.get(id).copied().unwrap_or(0) >= 40, "{firsts:?}");
        }
        assert!(
            firsts["a"] > firsts["b"] && firsts["b"] > firsts["c"],
            "{firsts:?}"
        );
    }

    #[test]
    fn a_sticky_group_keeps_each_key_on_one_channel_and_spreads_keys_by_weight() {
        let stats = Stats::default();
        let now = Instant::now();
        let sticky = Policy {
            sticky: true,
            ..Policy::default()
        };
        let table = route(&[("a", 0, 1), ("b", 0, 1), ("c", 0, 2), ("z", -1, 5)]);
        let mut owner: HashMap<String, String> = HashMap::new();
        for k in 0..400 {
            let key = format!("conversation-{k}");
            // Whatever the round-robin says, the key's channel leads, every time.
            for _ in 0..4 {
                let (channels, n) = table.numbered("default", "m");
                let (got, _) = order(
                    sticky,
                    channels,
                    n,
                    stats.of("m"),
                    &HashMap::new(),
                    now,
                    Some(&key),
                );
                let first = got[0].id.clone();
                assert_ne!(first, "z", "a lower priority never takes a sticky key");
                assert_eq!(ids(&got)[3], "z");
                let was = owner.entry(key.clone()).or_insert_with(|| first.clone());
                assert_eq!(*was, first, "{key} moved");
            }
        }
        let share = |id: &str| owner.values().filter(|o| *o == id).count();
        // Weights 1 : 1 : 2 over 400 keys: about 100, 100, 200.
        assert!((60..=140).contains(&share("a")), "a {}", share("a"));
        assert!((60..=140).contains(&share("b")), "b {}", share("b"));
        assert!((150..=250).contains(&share("c")), "c {}", share("c"));

        // A channel that leaves (breaker open, disabled) moves only its own keys.
        let without_c = route(&[("a", 0, 1), ("b", 0, 1), ("z", -1, 5)]);
        for (key, was) in &owner {
            let (channels, n) = without_c.numbered("default", "m");
            let (got, _) = order(
                sticky,
                channels,
                n,
                stats.of("m"),
                &HashMap::new(),
                now,
                Some(key),
            );
            if was != "c" {
                assert_eq!(&got[0].id, was, "{key} moved though its channel stayed");
            }
        }

        // Without stickiness the round-robin decides, and a key's requests spread.
        let (mut firsts, plain) = (Vec::new(), Policy::default());
        for _ in 0..4 {
            let (channels, n) = table.numbered("default", "m");
            let (got, decision) = order(
                plain,
                channels,
                n,
                stats.of("m"),
                &HashMap::new(),
                now,
                Some("k"),
            );
            assert!(!decision.sticky);
            firsts.push(got[0].id.clone());
        }
        firsts.dedup();
        assert!(firsts.len() > 1, "{firsts:?}");
    }

    #[test]
    fn stickiness_is_said_when_it_chose_and_yields_to_exploring() {
        let stats = Stats::default();
        let now = Instant::now();
        let table = route(&[("a", 0, 1), ("b", 0, 1)]);
        // A key whose channel is b: with a first in round-robin order, stickiness moves b up.
        let key = (0..100)
            .map(|k| format!("k{k}"))
            .find(|k| {
                let (channels, n) = table.numbered("default", "m");
                let sticky = Policy {
                    sticky: true,
                    ..Policy::default()
                };
                let (got, _) = order(
                    sticky,
                    channels,
                    n,
                    stats.of("m"),
                    &HashMap::new(),
                    now,
                    Some(k),
                );
                got[0].id == "b"
            })
            .expect("some key belongs to b");
        let sticky = Policy {
            sticky: true,
            ..Policy::default()
        };
        let mut said = 0;
        for _ in 0..4 {
            let (channels, n) = table.numbered("default", "m");
            let led_by_a = channels[0].id == "a";
            let (got, decision) = order(
                sticky,
                channels,
                n,
                stats.of("m"),
                &HashMap::new(),
                now,
                Some(&key),
            );
            assert_eq!(got[0].id, "b");
            assert_eq!(decision.sticky, led_by_a);
            said += usize::from(decision.sticky);
        }
        assert!(said > 0);
        // Measured strategies still explore: every second request here goes to the other.
        stats.success("a", "m", Duration::from_millis(10), now);
        stats.success("b", "m", Duration::from_millis(10), now);
        let exploring = Policy {
            strategy: Strategy::Latency,
            explore_percent: 50,
            sticky: true,
        };
        let mut explored = 0;
        for _ in 0..4 {
            let (channels, n) = table.numbered("default", "m");
            let (got, decision) = order(
                exploring,
                channels,
                n,
                stats.of("m"),
                &HashMap::new(),
                now,
                Some(&key),
            );
            if decision.explored {
                explored += 1;
                assert!(!decision.sticky);
            } else {
                assert_eq!(got[0].id, "b");
            }
        }
        assert_eq!(explored, 2);
    }
}
