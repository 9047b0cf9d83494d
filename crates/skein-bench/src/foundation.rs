//! Foundation benchmark: cold start to ready, idle memory, and `GET /api/v1/user/profile`
//! latency under a fixed request rate, measured against the real release binary.
//!
//! Run `cargo build --release -p skein && cargo run --release -p skein-bench --bin
//! bench-foundation`. Results are printed and written to `target/bench/foundation.json`.
//!
//! Latency is measured open-loop: each request has a scheduled send time and its latency
//! counts from then, so a stalled server cannot hide queueing delay (no coordinated omission).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use skein_bench::{
    MakeRequest, default_binary, fixed_rate, machine, ms, rss_kib, start, wait_ready,
};

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

async fn run(args: Args, binary: PathBuf) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    let mut cold = Vec::new();
    for _ in 0..args.starts {
        let started = Instant::now();
        let server = start(&binary, &[])?;
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

    let server = start(&binary, &[])?;
    wait_ready(&client, &server.base).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss_kib = rss_kib(server.child.id())?;
    println!("idle RSS: {:.1} MiB", idle_rss_kib as f64 / 1024.0);

    let register = client
        .post(format!("{}/api/v1/auth/register", server.base))
        .json(&json!({"username": "bench", "password": "benchmark password", "setup_token": skein_bench::SETUP_TOKEN}))
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

    let make: Arc<MakeRequest> = {
        let (url, token) = (url.clone(), token.clone());
        Arc::new(move |c: &reqwest::Client| c.get(&url).bearer_auth(&token))
    };
    let fixed = fixed_rate(&client, make, args.rate, Duration::from_secs(args.seconds)).await;
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
