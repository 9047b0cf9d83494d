//! What the process holds, for the admin runtime report: each part of the process (a service,
//! the rate limiter, the database pool) fills in the sizes of its own caches, maps and pools,
//! so an operator can see which of them grows.

use std::sync::Arc;

/// A part of the process that can say how much it holds.
pub trait Gauges: Send + Sync {
    /// Current sizes by name (`"relay.key_cache"`, entries or connections), cheap to read.
    fn gauges(&self) -> Vec<(&'static str, u64)>;
}

/// Gauges read by a closure, for parts that are not a type of their own (the database pool).
pub struct GaugesFn<F>(pub F);

impl<F> Gauges for GaugesFn<F>
where
    F: Fn() -> Vec<(&'static str, u64)> + Send + Sync,
{
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        (self.0)()
    }
}

/// Every part registered at composition time.
pub type GaugeSources = Vec<Arc<dyn Gauges>>;

/// A count as a gauge value (sizes never exceed `u64`).
pub fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
