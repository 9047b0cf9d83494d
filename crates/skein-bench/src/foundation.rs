//! Foundation benchmark: cold start to ready, idle memory, and `GET /api/v1/user/profile`
//! latency under a fixed request rate, measured against the real release binary.
//!
//! Run `cargo build --release -p skein && cargo run --release -p skein-bench --bin
//! bench-foundation`. Results are printed and written to `target/bench/foundation.json`.
//!
//! Latency is measured open-loop: each request has a scheduled send time and its latency
//! counts from then, so a stalled server cannot hide queueing delay (no coordinated omission).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use tokio::sync::Mutex;

/// Measures start-up, idle memory and authenticated request latency of `skein serve`.
#[derive(Parser)]
struct Args {
    /// The skein binary (default: the release build in the target directory).
    #[arg(long)]
    skein: Option<PathBuf>,
    /// Requests per second of the fixed-rate run.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Seconds of the fixed-rate run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Cold starts to take the median of.
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/foundation.json")]
    out: PathBuf,
}

/// A running `skein serve` that is killed when dropped.
struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = args.skein.clone().unwrap_or_else(default_binary);
    let binary = std::fs::canonicalize(&binary).unwrap_or(binary);
    anyhow::ensure!(
        binary.exists(),
        "{} not found: run `cargo build --release -p skein` first",
        binary.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args, binary))
}

fn default_binary() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    Path::new(&target).join("release").join("skein")
}

async fn run(args: Args, binary: PathBuf) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    let mut cold = Vec::new();
    for _ in 0..args.starts {
        let started = Instant::now();
        let server = start(&binary)?;
        wait_ready(&client, &server.base).await?;
        cold.push(started.elapsed());
    }
    cold.sort();
    let cold_median = cold[cold.len() / 2];
    println!(
        "cold start to ready (fresh data dir, median of {}): {:.1} ms",
        cold.len(),
        ms(cold_median)
    );

    let server = start(&binary)?;
    wait_ready(&client, &server.base).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss_kib = rss_kib(server.child.id())?;
    println!("idle RSS: {:.1} MiB", idle_rss_kib as f64 / 1024.0);

    let register = client
        .post(format!("{}/api/v1/auth/register", server.base))
        .json(&json!({"username": "bench", "password": "benchmark password"}))
        .send()
        .await?;
    anyhow::ensure!(
        register.status().is_success(),
        "register failed: {}",
        register.status()
    );
    let body: serde_json::Value = register.json().await?;
    let token = body["access_token"]
        .as_str()
        .context("no access token")?
        .to_string();
    let url = format!("{}/api/v1/user/profile", server.base);

    // Warm the connection pool and the session cache.
    for _ in 0..200 {
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await?
            .bytes()
            .await?;
    }

    let fixed = fixed_rate(
        &client,
        &url,
        &token,
        args.rate,
        Duration::from_secs(args.seconds),
    )
    .await;
    println!(
        "GET /api/v1/user/profile at {} req/s for {} s: achieved {:.0} req/s, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms, errors {}",
        args.rate,
        args.seconds,
        fixed.achieved,
        fixed.p50,
        fixed.p90,
        fixed.p99,
        fixed.max,
        fixed.errors
    );
    let loaded_rss_kib = rss_kib(server.child.id())?;
    println!("RSS after load: {:.1} MiB", loaded_rss_kib as f64 / 1024.0);

    let results = json!({
        "benchmark": "foundation",
        "machine": machine(),
        "cold_start_ms": { "median": ms(cold_median), "all": cold.iter().map(|d| ms(*d)).collect::<Vec<_>>() },
        "idle_rss_mib": idle_rss_kib as f64 / 1024.0,
        "rss_after_load_mib": loaded_rss_kib as f64 / 1024.0,
        "profile": {
            "target_rate": args.rate,
            "seconds": args.seconds,
            "achieved_rate": fixed.achieved,
            "p50_ms": fixed.p50,
            "p90_ms": fixed.p90,
            "p99_ms": fixed.p99,
            "max_ms": fixed.max,
            "errors": fixed.errors,
        },
        "targets": { "cold_start_ms": 1000, "idle_rss_mib": 40, "p99_ms": 2.0, "rate": 2000 },
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

fn start(binary: &Path) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(binary)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("SKEIN_DATA_DIR", dir.path())
        .env("SKEIN_LOG_LEVEL", "warn")
        // The benchmark measures the server, not the per-user limit (1,200/min by default).
        .env("SKEIN_LIMITS__API_PER_USER_PER_MINUTE", "100000000")
        .env("SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE", "100000000")
        .current_dir(dir.path())
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

async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
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

struct FixedRate {
    achieved: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    errors: usize,
}

async fn fixed_rate(
    client: &reqwest::Client,
    url: &str,
    token: &str,
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
    let (client, url, token) = (client.clone(), url.to_string(), token.to_string());
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
            let client = client.clone();
            let url = url.clone();
            let token = token.clone();
            let latencies = latencies_in.clone();
            let errors = errors_in.clone();
            tasks.push(handle.spawn(async move {
                let ok = match client.get(&url).bearer_auth(&token).send().await {
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

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

fn machine() -> serde_json::Value {
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
