//! The process's memory for operators: the allocator's own statistics in the runtime report,
//! and a summary of what the process holds written to the log on `SIGUSR1` (unix), so a
//! server that grows can be asked what holds the memory without restarting it (issue #22).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use skein_core::runtime::{AllocatorStats, AllocatorStatsFn};
use skein_gateway::runtime::{Runtime, RuntimeReport};

/// Set by the binary that makes jemalloc its global allocator: only then do jemalloc's
/// statistics describe the process (a test binary linking this crate allocates elsewhere).
static JEMALLOC_IS_GLOBAL: AtomicBool = AtomicBool::new(false);

/// Says that jemalloc is this process's global allocator, so its statistics are reported.
/// Called by the `skein` binary next to its `#[global_allocator]`.
pub fn jemalloc_is_global_allocator() {
    JEMALLOC_IS_GLOBAL.store(true, Ordering::Relaxed);
}

/// The allocator statistics reader for the runtime report, when the allocator keeps any.
pub fn allocator_stats() -> Option<AllocatorStatsFn> {
    if cfg!(feature = "jemalloc") && JEMALLOC_IS_GLOBAL.load(Ordering::Relaxed) {
        Some(read_jemalloc)
    } else {
        None
    }
}

/// jemalloc's `stats.*`, refreshed first (they are a snapshot taken at each `epoch` advance).
#[cfg(feature = "jemalloc")]
fn read_jemalloc() -> Option<AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    let bytes = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Some(AllocatorStats {
        name: "jemalloc",
        allocated_bytes: bytes(stats::allocated::read().ok()?),
        active_bytes: bytes(stats::active::read().ok()?),
        resident_bytes: bytes(stats::resident::read().ok()?),
        mapped_bytes: bytes(stats::mapped::read().ok()?),
        retained_bytes: bytes(stats::retained::read().ok()?),
        metadata_bytes: bytes(stats::metadata::read().ok()?),
    })
}

#[cfg(not(feature = "jemalloc"))]
fn read_jemalloc() -> Option<AllocatorStats> {
    None
}

/// Logs the runtime report each time the process gets `SIGUSR1`, until the process ends.
/// Without this, `SIGUSR1` would terminate the server (the signal's default action); the
/// listener is installed before this returns, so a signal sent right after start is caught.
#[cfg(unix)]
pub fn log_on_sigusr1(runtime: Arc<Runtime>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut signals = match signal(SignalKind::user_defined1()) {
        Ok(signals) => signals,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGUSR1; no memory summary on request");
            return;
        }
    };
    tokio::spawn(async move {
        while signals.recv().await.is_some() {
            log_report(&runtime.report());
            dump_heap_profile();
        }
    });
}

/// With the `heap-profile` feature and profiling switched on (`MALLOC_CONF=prof:true`), writes
/// jemalloc's heap profile (`<prof_prefix>.<pid>.<n>.m<n>.heap`, read with `jeprof`) next to the
/// summary, so what holds the memory can be attributed on a running server without gdb.
#[cfg(feature = "heap-profile")]
fn dump_heap_profile() {
    use tikv_jemalloc_ctl::raw;
    // SAFETY: `opt.prof` is a `bool` option in jemalloc's mallctl namespace (read-only).
    #[allow(unsafe_code)]
    let active = unsafe { raw::read::<bool>(b"opt.prof\0") }.unwrap_or(false);
    if !active {
        tracing::warn!("heap profile not written: start the server with MALLOC_CONF=prof:true");
        return;
    }
    // SAFETY: `prof.dump` takes a `const char *` file name; null asks for jemalloc's own
    // `<prof_prefix>.<pid>.<seq>.m<seq>.heap` name, so no pointer outlives this call.
    #[allow(unsafe_code)]
    let written = unsafe { raw::write(b"prof.dump\0", std::ptr::null::<std::ffi::c_char>()) };
    match written {
        Ok(()) => tracing::warn!(
            "heap profile written (jemalloc prof_prefix, default jeprof.<pid>.*.heap in the working directory)"
        ),
        Err(error) => tracing::warn!(%error, "heap profile not written"),
    }
}

/// Heap profiles need jemalloc's profiler (`--features heap-profile`).
#[cfg(not(feature = "heap-profile"))]
fn dump_heap_profile() {}

/// Nothing to listen for where there are no unix signals; the admin runtime report remains.
#[cfg(not(unix))]
pub fn log_on_sigusr1(_runtime: Arc<Runtime>) {}

/// One log line with every figure of `report`. At warn level, like the setup token: the
/// operator asked for it, and a quieter log (`RUST_LOG=warn`) must still show it.
pub fn log_report(report: &RuntimeReport) {
    tracing::warn!(
        rss_mib = report.rss_bytes.map(mib),
        rss_anon_mib = report.rss_anon_bytes.map(mib),
        open_fds = report.open_fds,
        threads = report.threads,
        tasks = report.tasks,
        allocator = %allocator_line(report.allocator.as_ref()),
        holds = %gauges_line(report),
        "memory summary (SIGUSR1)"
    );
}

/// `allocated=… active=… resident=… retained=…` in MiB, or `system` without statistics.
fn allocator_line(stats: Option<&AllocatorStats>) -> String {
    match stats {
        Some(s) => format!(
            "{} allocated={:.1}MiB active={:.1}MiB resident={:.1}MiB mapped={:.1}MiB retained={:.1}MiB metadata={:.1}MiB",
            s.name,
            mib(s.allocated_bytes),
            mib(s.active_bytes),
            mib(s.resident_bytes),
            mib(s.mapped_bytes),
            mib(s.retained_bytes),
            mib(s.metadata_bytes)
        ),
        None => "system (no statistics)".to_string(),
    }
}

/// Every cache, map and pool size as `name=count`, in name order.
fn gauges_line(report: &RuntimeReport) -> String {
    report
        .gauges
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Bytes in MiB, one decimal is enough for an operator.
fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_every_figure() {
        let report = RuntimeReport {
            rss_bytes: Some(64 << 20),
            rss_anon_bytes: Some(40 << 20),
            open_fds: Some(12),
            threads: Some(9),
            tasks: 7,
            gauges: [
                ("relay.key_cache".to_string(), 3),
                ("db.pool.size".to_string(), 2),
            ]
            .into_iter()
            .collect(),
            allocator: Some(AllocatorStats {
                name: "jemalloc",
                allocated_bytes: 10 << 20,
                active_bytes: 12 << 20,
                resident_bytes: 20 << 20,
                mapped_bytes: 30 << 20,
                retained_bytes: 50 << 20,
                metadata_bytes: 3 << 20,
            }),
        };
        assert_eq!(gauges_line(&report), "db.pool.size=2 relay.key_cache=3");
        assert_eq!(
            allocator_line(report.allocator.as_ref()),
            "jemalloc allocated=10.0MiB active=12.0MiB resident=20.0MiB mapped=30.0MiB retained=50.0MiB metadata=3.0MiB"
        );
        assert_eq!(allocator_line(None), "system (no statistics)");
        assert!((mib(64 << 20) - 64.0).abs() < f64::EPSILON);
    }
}
