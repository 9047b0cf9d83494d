//! `GET /api/v1/admin/system/runtime`: what the process holds right now — resident memory,
//! open file descriptors, threads and tasks, and the size of every cache, map and pool the
//! services registered — so an operator can see which of them grows before it becomes an
//! out-of-memory kill.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use serde::Serialize;
use skein_core::ApiResult;
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::runtime::{AllocatorStats, AllocatorStatsFn, GaugeSources, count};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The parts of the process that report their sizes.
pub struct Runtime {
    /// Registered at composition time, one per service (and the limiter and pool).
    pub sources: GaugeSources,
    /// Reads the allocator's statistics when the binary runs one that keeps them (jemalloc).
    pub allocator: Option<AllocatorStatsFn>,
}

/// What the process holds now.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuntimeReport {
    /// Resident set size in bytes (`VmRSS`; Linux only, `null` elsewhere).
    pub rss_bytes: Option<u64>,
    /// Anonymous resident memory in bytes (`RssAnon`: the heap, not mapped files).
    pub rss_anon_bytes: Option<u64>,
    /// Open file descriptors (sockets, the database, logs).
    pub open_fds: Option<u64>,
    /// OS threads.
    pub threads: Option<u64>,
    /// Tokio tasks alive (connections, streams, background work).
    pub tasks: u64,
    /// Each cache, map and pool by name: entries (or connections for `db.pool.*`).
    pub gauges: BTreeMap<String, u64>,
    /// What the memory allocator holds (`null` with the system allocator): how much of the
    /// RSS is the program's live heap, and how much freed memory the allocator still keeps.
    pub allocator: Option<AllocatorStats>,
}

/// The route, relative to `/api/v1`.
pub fn routes(runtime: Arc<Runtime>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(runtime_report))
        .with_state(runtime)
}

/// What the process holds: memory, descriptors, tasks, and every cache's size (admin).
#[utoipa::path(get, path = "/admin/system/runtime", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = RuntimeReport), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)))]
pub async fn runtime_report(
    State(runtime): State<Arc<Runtime>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<RuntimeReport>> {
    Ok(ApiJson(runtime.report()))
}

impl Runtime {
    /// What the process holds now (also logged on `SIGUSR1`). Reads `/proc`; call it on the
    /// runtime (it counts tokio's tasks).
    pub fn report(&self) -> RuntimeReport {
        let mut gauges = BTreeMap::new();
        for source in &self.sources {
            for (name, value) in source.gauges() {
                gauges.insert(name.to_string(), value);
            }
        }
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let field = |name: &str| status.as_deref().and_then(|s| status_field(s, name));
        // The listing counts the descriptor it is read through; that one is not the process's.
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| count(dir.count().saturating_sub(1)));
        let tasks = tokio::runtime::Handle::try_current()
            .map(|handle| count(handle.metrics().num_alive_tasks()))
            .unwrap_or(0);
        RuntimeReport {
            rss_bytes: field("VmRSS:").map(|kib| kib.saturating_mul(1024)),
            rss_anon_bytes: field("RssAnon:").map(|kib| kib.saturating_mul(1024)),
            open_fds,
            threads: field("Threads:"),
            tasks,
            gauges,
            allocator: self.allocator.and_then(|read| read()),
        }
    }
}

/// The number after `name` in `/proc/self/status` (kB for memory lines).
fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_status_field() {
        let status = "Name:\tskein\nVmRSS:\t   61234 kB\nThreads:\t7\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(61_234));
        assert_eq!(status_field(status, "Threads:"), Some(7));
        assert_eq!(status_field(status, "RssAnon:"), None);
    }
}
