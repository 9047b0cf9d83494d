//! Scale-out benchmark: the throughput of 1, 2 and 3 Skein instances of one deployment (one
//! PostgreSQL database, one Redis) relaying chat completions to a mock upstream, with the
//! client spreading requests round-robin over the instances (what a load balancer does).
//!
//! Each instance count gets a fresh database and Redis prefix. The load is closed-loop:
//! `--concurrency` workers each send their next request as soon as the last one answers, so
//! the number is the most the deployment served, not a rate asked for. Prints one line per
//! instance count and writes `target/bench/scale.json`.
//!
//! ```sh
//! cargo build --release -p skein && cargo run --release -p skein-bench --bin bench-scale -- \
//!     --postgres postgres://postgres@127.0.0.1:5432/postgres --redis redis://127.0.0.1:6379
//! ```
//! On one machine the instances share its cores with PostgreSQL, Redis, the mock and the load
//! generator, so the curve says how much the shared state (holds, rate limits, the bus) costs,
//! not how far a cluster scales; `docs/benchmarks.md` has the recipe for a cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::{Value, json};
use skein_bench::{Server, default_binary, machine, ms, post, start, wait_ready};
use skein_db::sqlx::{Connection, Executor, PgConnection};
use skein_testkit::mock_openai::MockOpenAi;

/// Measures throughput against the number of instances.
#[derive(Parser)]
struct Args {
    /// Instance counts to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    instances: Vec<usize>,
    /// Seconds of load per instance count (after a warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// A PostgreSQL server where the benchmark may create databases.
    #[arg(
        long,
        env = "SKEIN_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// Redis.
    #[arg(
        long,
        env = "SKEIN_TEST_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis: String,
    /// The server binary (default: the release build in the target directory).
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/scale.json")]
    out: std::path::PathBuf,
    /// A deployment already running elsewhere (a cluster): its instances' or its load
    /// balancer's base URLs, loaded round-robin instead of starting instances here. Needs
    /// `--key` (an API key of a funded user) and `--model`.
    #[arg(long, value_delimiter = ',')]
    urls: Vec<String>,
    /// The API key for `--urls`.
    #[arg(long, env = "SKEIN_BENCH_KEY")]
    key: Option<String>,
    /// The model for `--urls` (priced, served by a channel of the deployment).
    #[arg(long, default_value = "bench-model")]
    model: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

/// The 1-, 5- and 15-minute load averages, to read the numbers against.
fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect()
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    if !args.urls.is_empty() {
        let key = args.key.clone().context("--urls needs --key")?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency * 2)
            .build()?;
        let urls: Vec<String> = args
            .urls
            .iter()
            .map(|base| format!("{}/v1/chat/completions", base.trim_end_matches('/')))
            .collect();
        let body = json!({"model": args.model, "messages": [{"role": "user", "content": "hello scale benchmark"}], "max_tokens": 16}).to_string();
        let load_before = load_average();
        let run = closed_loop(
            &client,
            &urls,
            &key,
            &body,
            args.concurrency,
            Duration::from_secs(args.seconds),
        )
        .await;
        println!(
            "{} URL(s): {:>7.0} req/s  p50 {:.2} ms  p99 {:.2} ms  errors {}",
            urls.len(),
            run.ok as f64 / run.elapsed.as_secs_f64(),
            run.p50,
            run.p99,
            run.errors
        );
        rows.push(json!({"urls": args.urls, "requests": run.ok, "errors": run.errors,
            "requests_per_second": run.ok as f64 / run.elapsed.as_secs_f64(), "p50_ms": run.p50, "p99_ms": run.p99,
            "load_before": load_before, "load_after": load_average()}));
    }
    let binary = std::fs::canonicalize(args.binary.clone().unwrap_or_else(default_binary));
    let mock = MockOpenAi::start("sk-bench-upstream").await;
    mock.stop_recording();
    let counts = if args.urls.is_empty() {
        args.instances.clone()
    } else {
        Vec::new()
    };
    for count in counts {
        let binary = binary
            .as_ref()
            .map_err(|e| anyhow::anyhow!("the server binary: {e}"))?;
        let row = measure(&args, binary, &mock, count).await?;
        println!(
            "{count} instance(s): {:>7.0} req/s  p50 {:.2} ms  p99 {:.2} ms  errors {}  load average before {:?} after {:?}",
            row["requests_per_second"].as_f64().unwrap_or(0.0),
            row["p50_ms"].as_f64().unwrap_or(0.0),
            row["p99_ms"].as_f64().unwrap_or(0.0),
            row["errors"],
            row["load_before"],
            row["load_after"],
        );
        rows.push(row);
    }
    let results = json!({
        "benchmark": "scale",
        "machine": machine(),
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "runs": rows,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// A fresh database on the benchmark's PostgreSQL server; answers its URL and name.
async fn fresh_database(admin: &str) -> anyhow::Result<(String, String)> {
    let name = format!("skein_bench_{}", uuid_like());
    let mut conn = PgConnection::connect(admin)
        .await
        .with_context(|| format!("PostgreSQL at {admin}"))?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    conn.close().await.ok();
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    Ok((format!("{base}/{name}"), name))
}

async fn drop_database(admin: &str, name: &str) {
    if let Ok(mut conn) = PgConnection::connect(admin).await {
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await;
        conn.close().await.ok();
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}{:x}", std::process::id())
}

/// The deployment's relay secret key (64 hex characters), the same for every instance.
const RELAY_SECRET_KEY: &str = "5e1f0b9a7c3d2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";

/// Starts `count` instances of one deployment, sets up a key, loads them and stops them.
async fn measure(
    args: &Args,
    binary: &std::path::Path,
    mock: &MockOpenAi,
    count: usize,
) -> anyhow::Result<Value> {
    let (database, name) = fresh_database(&args.postgres).await?;
    let prefix = format!("bench-{}:", uuid_like());
    let jwt = format!("bench-jwt-secret-{}-0123456789abcdef", uuid_like());
    let env = [
        ("SKEIN_DATABASE_URL", database.as_str()),
        ("SKEIN_REDIS_URL", args.redis.as_str()),
        ("SKEIN_REDIS__KEY_PREFIX", prefix.as_str()),
        ("SKEIN_JWT_SECRET", jwt.as_str()),
        // Channel keys are sealed with this key: every instance must share it, or the others
        // cannot read the channel the first one stored (they skip it: 404 model_not_found).
        ("SKEIN_RELAY__SECRET_KEY", RELAY_SECRET_KEY),
        ("SKEIN_LIMITS__API_PER_KEY_PER_MINUTE", "100000000"),
    ];
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    // The first instance migrates the database; the others start once it is ready.
    let mut servers: Vec<Server> = vec![start(binary, &env)?];
    wait_ready(&client, &servers[0].base).await?;
    for _ in 1..count {
        let server = start(binary, &env)?;
        wait_ready(&client, &server.base).await?;
        servers.push(server);
    }
    let key = setup(&client, &servers[0].base, mock).await?;
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("{}/v1/chat/completions", s.base))
        .collect();
    // Every instance must know the key and channel before the clock starts. The bus carries
    // them to the other instances within milliseconds, not before the set-up's answer: each
    // instance is asked until it serves (at most 10 s, the periodic reload's period), and how
    // long that took is printed.
    let body = json!({"model": "bench-model", "messages": [{"role": "user", "content": "hello scale benchmark"}], "max_tokens": 16}).to_string();
    let asked = std::time::Instant::now();
    for url in &urls {
        loop {
            let r = client
                .post(url)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await?;
            let status = r.status();
            r.bytes().await?;
            if status.is_success() {
                break;
            }
            anyhow::ensure!(
                asked.elapsed() < Duration::from_secs(10),
                "{url} still answers {status} 10 s after the set-up"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    println!(
        "  every instance served the new channel, price and key {:.0} ms after the set-up",
        asked.elapsed().as_secs_f64() * 1000.0
    );
    for _ in 0..50 {
        for url in &urls {
            let r = client
                .post(url)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await?;
            anyhow::ensure!(
                r.status().is_success(),
                "warm-up failed on {url}: {}",
                r.status()
            );
            r.bytes().await?;
        }
    }
    let load_before = load_average();
    let run = closed_loop(
        &client,
        &urls,
        &key,
        &body,
        args.concurrency,
        Duration::from_secs(args.seconds),
    )
    .await;
    let load_after = load_average();
    drop(servers);
    drop_database(&args.postgres, &name).await;
    Ok(json!({
        "instances": count,
        "requests": run.ok,
        "errors": run.errors,
        "requests_per_second": run.ok as f64 / run.elapsed.as_secs_f64(),
        "p50_ms": run.p50,
        "p99_ms": run.p99,
        "load_before": load_before,
        "load_after": load_after,
    }))
}

/// Root, a channel to the mock, a price, a funded user and their key, through instance one.
async fn setup(client: &reqwest::Client, base: &str, mock: &MockOpenAi) -> anyhow::Result<String> {
    let root = post(client, format!("{base}/api/v1/auth/register"), "",
        json!({"username": "bench", "password": "benchmark password", "setup_token": skein_bench::SETUP_TOKEN})).await?;
    let access = root["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    post(client, format!("{base}/api/v1/channels"), &access, json!({
        "type": "openai", "name": "mock", "base_url": mock.base_url, "keys": [mock.key], "models": ["bench-model"]})).await?;
    let price = json!({"input_per_mtok": 1_000_000, "output_per_mtok": 2_000_000, "cache_read_per_mtok": 0, "cache_write_per_mtok": 0, "per_call": 0});
    let r = client
        .put(format!("{base}/api/v1/admin/pricing/bench-model"))
        .bearer_auth(&access)
        .json(&price)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "pricing failed");
    let user = post(
        client,
        format!("{base}/api/v1/auth/register"),
        "",
        json!({"username": "bench-user", "password": "benchmark password"}),
    )
    .await?;
    let user_id = user["user"]["id"].as_str().unwrap_or_default().to_string();
    post(
        client,
        format!("{base}/api/v1/admin/billing/users/{user_id}/adjust"),
        &access,
        json!({"amount": 900_000_000_000_i64, "memo": "bench"}),
    )
    .await?;
    let user_access = user["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key = post(
        client,
        format!("{base}/api/v1/keys"),
        &user_access,
        json!({"name": "bench"}),
    )
    .await?["key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(!key.is_empty(), "no key was made");
    Ok(key)
}

struct ClosedLoop {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    p50: f64,
    p99: f64,
}

/// `concurrency` workers sending back to back for `duration`, request `i` to `urls[i % n]`.
async fn closed_loop(
    client: &reqwest::Client,
    urls: &[String],
    key: &str,
    body: &str,
    concurrency: usize,
    duration: Duration,
) -> ClosedLoop {
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let urls: Arc<Vec<String>> = Arc::new(urls.to_vec());
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, urls, next, errors, stop) = (
            client.clone(),
            urls.clone(),
            next.clone(),
            errors.clone(),
            stop.clone(),
        );
        let (key, body) = (key.to_string(), body.to_string());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let url = &urls[next.fetch_add(1, Ordering::Relaxed) % urls.len()];
                let sent = Instant::now();
                let ok = match client
                    .post(url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed());
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut all = Vec::new();
    for worker in workers {
        if let Ok(latencies) = worker.await {
            all.extend(latencies);
        }
    }
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| ms(*d))
    };
    ClosedLoop {
        ok: all.len(),
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
    }
}
