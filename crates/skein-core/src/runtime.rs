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

/// What the memory allocator holds, in bytes, for the runtime report: `allocated` is what the
/// program asked for and still holds; `resident` what of the allocator sits in RAM (allocated,
/// its metadata, and freed pages not yet given back); `retained` address space kept for reuse
/// but not in RAM. `resident` well above `allocated` after an idle minute means pages are not
/// being returned; `allocated` that only grows means something in the program keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AllocatorStats {
    /// The allocator's name (`jemalloc`).
    pub name: &'static str,
    /// Bytes the program has allocated and not freed.
    pub allocated_bytes: u64,
    /// Bytes in pages that hold at least one allocation.
    pub active_bytes: u64,
    /// Bytes of the allocator in RAM: active pages, metadata, and freed pages not yet purged.
    pub resident_bytes: u64,
    /// Bytes the allocator has mapped (address space, in RAM or not).
    pub mapped_bytes: u64,
    /// Bytes unmapped from RAM but kept as address space for reuse (not in RSS).
    pub retained_bytes: u64,
    /// Bytes of the allocator's own bookkeeping.
    pub metadata_bytes: u64,
}

/// Reads the allocator's statistics; `None` when the allocator keeps none (the system one).
pub type AllocatorStatsFn = fn() -> Option<AllocatorStats>;
