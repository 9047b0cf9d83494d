//! Shared pieces of Skein's benchmark programs: starting the release binary, an open-loop
//! fixed-rate load generator, a closed-loop one, and reading memory.

pub mod wrk;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::sync::Mutex;

/// A running `skein serve` that is killed when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The server's data directory, removed with it (none for `relay-floor`).
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The release binary in the target directory.
pub fn default_binary() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    Path::new(&target).join("release").join("skein")
}

/// The setup token every benchmark server is started with; the first registration sends it.
pub const SETUP_TOKEN: &str = "benchmark-setup-token-0123456789";

/// A loopback port free right now, for a server to listen on.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Spawns `command`, a server told to listen on `port`, with its output quiet and its errors
/// shown.
fn spawn_server(
    mut command: Command,
    binary: &Path,
    port: u16,
    dir: Option<tempfile::TempDir>,
) -> anyhow::Result<Server> {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    Ok(Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    })
}

/// Starts `skein serve` on a free port with a fresh data directory and `env` added.
pub fn start(binary: &Path, env: &[(&str, &str)]) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut command = Command::new(binary);
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("SKEIN_DATA_DIR", dir.path())
        .env("SKEIN_LOG_LEVEL", "warn")
        .env("SKEIN_SETUP_TOKEN", SETUP_TOKEN)
        // The benchmark measures the server, not the per-user limit (1,200/min by default).
        .env("SKEIN_LIMITS__API_PER_USER_PER_MINUTE", "100000000")
        .env("SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE", "100000000")
        .current_dir(dir.path());
    spawn_server(command, binary, port, Some(dir))
}

/// The `relay-floor` binary beside this program (`bench-relay --floor`).
pub fn default_floor_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("relay-floor")))
        .unwrap_or_else(|| PathBuf::from("relay-floor"))
}

/// Starts `relay-floor` on a free port, forwarding to `upstream` (a chat completions URL).
pub fn start_floor(binary: &Path, upstream: &str) -> anyhow::Result<Server> {
    let port = free_port()?;
    let mut command = Command::new(binary);
    command.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--upstream",
        upstream,
    ]);
    spawn_server(command, binary, port, None)
}

/// Polls `/readyz` until it answers 200.
pub async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    bail!("server at {base} never became ready")
}

/// Builds one request of a load run.
pub type MakeRequest = dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync;

/// Results of a fixed-rate run, latencies in ms.
pub struct FixedRate {
    /// achieved.
    pub achieved: f64,
    /// p50.
    pub p50: f64,
    /// p90.
    pub p90: f64,
    /// p99.
    pub p99: f64,
    /// max.
    pub max: f64,
    /// Failed requests.
    pub errors: usize,
}

/// Sends `rate` requests per second for `duration`, made by `make`, each timed from its
/// scheduled send time (no coordinated omission).
pub async fn fixed_rate(
    client: &reqwest::Client,
    make: Arc<MakeRequest>,
    rate: u32,
    duration: Duration,
) -> FixedRate {
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        (rate as usize) * duration.as_secs() as usize,
    )));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let total = u64::from(rate) * duration.as_secs();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    // Pace from an OS thread: tokio's timer has millisecond resolution, which would add up
    // to a millisecond of false latency to requests scheduled between ticks.
    let handle = tokio::runtime::Handle::current();
    let client = client.clone();
    let (latencies_in, errors_in) = (latencies.clone(), errors.clone());
    let start = Instant::now();
    let pacer = std::thread::spawn(move || {
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let scheduled = start + interval.mul_f64(i as f64);
            let now = Instant::now();
            if scheduled > now {
                std::thread::sleep(scheduled - now);
            }
            let request = make(&client);
            let latencies = latencies_in.clone();
            let errors = errors_in.clone();
            tasks.push(handle.spawn(async move {
                let ok = match request.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.lock().await.push(scheduled.elapsed());
                } else {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }));
        }
        tasks
    });
    let tasks = tokio::task::spawn_blocking(move || pacer.join())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = start.elapsed();
    let mut all = latencies.lock().await.clone();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .map(|d| ms(*d))
            .unwrap_or(0.0)
    };
    FixedRate {
        achieved: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p90: pick(0.90),
        p99: pick(0.99),
        max: all.last().map(|d| ms(*d)).unwrap_or(0.0),
        errors: errors.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// Keeps `connections` requests in flight for `duration` (closed loop: each connection sends
/// its next request when the last answer is read), made by `make`: the throughput a server
/// sustains when clients wait for it, and each request's latency from its send.
pub async fn closed_loop(
    client: &reqwest::Client,
    make: Arc<MakeRequest>,
    connections: usize,
    duration: Duration,
) -> FixedRate {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (client, make) = (client.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while start.elapsed() < duration {
                let sent = Instant::now();
                let ok = match make(&client).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((latencies, failed)) = task.await {
            all.extend(latencies);
            errors += failed;
        }
    }
    let elapsed = start.elapsed();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .map(|d| ms(*d))
            .unwrap_or(0.0)
    };
    FixedRate {
        achieved: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p90: pick(0.90),
        p99: pick(0.99),
        max: all.last().map(|d| ms(*d)).unwrap_or(0.0),
        errors,
    }
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// Samples a process's resident memory every 20 ms until stopped; the peak seen.
pub struct PeakRss {
    peak: Arc<std::sync::atomic::AtomicU64>,
    done: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    /// Starts sampling `pid`; the peak is at least `floor_kib`.
    pub fn start(pid: u32, floor_kib: u64) -> Self {
        use std::sync::atomic::Ordering;
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(floor_kib));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = {
            let (peak, done) = (peak.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    if let Ok(kib) = rss_kib(pid) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        PeakRss { peak, done, task }
    }

    /// Stops sampling; the peak RSS seen, KiB.
    pub async fn stop(self) -> anyhow::Result<u64> {
        use std::sync::atomic::Ordering;
        self.done.store(true, Ordering::Relaxed);
        self.task.await?;
        Ok(self.peak.load(Ordering::Relaxed))
    }
}

/// CPU time (user + system, seconds) a process has used so far, from `/proc/PID/stat` (in
/// Linux's fixed 100 ticks per second).
pub fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("no stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short stat")?.parse::<u64>()? as f64)
    };
    // utime and stime are fields 14 and 15: 11 and 12 after the command name.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// What the numbers were measured on.
pub fn machine() -> serde_json::Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    json!({ "cpus": cpus, "cpu": model })
}

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// POSTs `body` as JSON with a bearer token; the answer's JSON, or an error naming the status.
pub async fn post(
    client: &reqwest::Client,
    url: String,
    token: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let r = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{status}: {body}");
    Ok(body)
}

/// The server's runtime report (admin) plus what `/proc` says of its memory by kind: the
/// figures that account for its RSS.
pub async fn memory_report(
    client: &reqwest::Client,
    base: &str,
    admin_token: &str,
    pid: u32,
) -> anyhow::Result<serde_json::Value> {
    let r = client
        .get(format!("{base}/api/v1/admin/system/runtime"))
        .bearer_auth(admin_token)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "runtime report: {}", r.status());
    let mut report: serde_json::Value = r.json().await?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    report["proc"] = json!({
        "rss_kib": kib("VmRSS:"),
        "rss_anon_kib": kib("RssAnon:"),
        "rss_file_kib": kib("RssFile:"),
        "threads": kib("Threads:"),
    });
    Ok(report)
}

/// One line of a memory report: RSS by kind, the allocator's figures and the bigger holders.
pub fn breakdown_line(report: &serde_json::Value) -> String {
    let mib = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0);
    let kib = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0) / 1024.0;
    let a = &report["allocator"];
    let g = &report["gauges"];
    format!(
        "rss {:.1} MiB (anon {:.1}, file {:.1}); allocator allocated {:.1} active {:.1} resident {:.1} retained {:.1} metadata {:.1} MiB; threads {} tasks {} fds {} db pool {} (idle {}); SQLite heap {:.1} MiB; billing ended holds {}",
        kib(&report["proc"]["rss_kib"]),
        kib(&report["proc"]["rss_anon_kib"]),
        kib(&report["proc"]["rss_file_kib"]),
        mib(&a["allocated_bytes"]),
        mib(&a["active_bytes"]),
        mib(&a["resident_bytes"]),
        mib(&a["retained_bytes"]),
        mib(&a["metadata_bytes"]),
        report["threads"],
        report["tasks"],
        report["open_fds"],
        g["db.pool.size"],
        g["db.pool.idle"],
        mib(&g["db.sqlite.memory_bytes"]),
        g["billing.ended_holds"],
    )
}

/// Runs the command in `BENCH_IDLE_HOOK` (through `sh -c`, with the server's pid as `$1`)
/// while the server idles, to look at it from outside (`/proc/PID/smaps`, a debugger).
pub fn run_idle_hook(pid: u32) {
    if let Ok(hook) = std::env::var("BENCH_IDLE_HOOK") {
        let status = Command::new("sh")
            .args(["-c", &hook, "hook", &pid.to_string()])
            .status();
        if let Err(error) = status {
            eprintln!("BENCH_IDLE_HOOK failed: {error}");
        }
    }
}
