//! A soak run (issue #22): the release binary under a steady mixed load for a configurable
//! time, sampling what it holds every few seconds through the admin runtime report, written
//! to `target/bench/soak.csv`. Exits non-zero when RSS still trends upward after warm-up
//! (least-squares slope over the second half above `--max-slope-mib-per-min`): memory that
//! only grows is the failure this program is for.
//!
//! The mix, by request number: whole answers, streams read to the end, streams the client
//! hangs up on after the first piece, requests with an unknown key, and an upstream 500 now and
//! then (the mock's next answer fails). A new API key is created every second, so the key
//! caches and rate-limit windows see new keys throughout.
//!
//! `cargo build --release -p skein -p skein-bench && ./target/release/bench-soak --seconds 60`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use skein_bench::{default_binary, post, start, wait_ready};
use skein_testkit::mock_openai::{Fault, MockOpenAi};
use tokio::sync::{RwLock, Semaphore};

/// Soak: steady mixed load, sampled memory, a trend check.
#[derive(Parser)]
struct Args {
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Requests per second (all kinds together).
    #[arg(long, default_value_t = 300)]
    rate: u32,
    /// Seconds between samples.
    #[arg(long, default_value_t = 3)]
    sample_secs: u64,
    /// Fail when RSS grows faster than this over the second half (MiB per minute).
    #[arg(long, default_value_t = 2.0)]
    max_slope_mib_per_min: f64,
    /// Requests in flight at most (the load waits beyond it rather than piling up).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// The server binary (default: the release build in the target directory).
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
    /// Where to write the samples.
    #[arg(long, default_value = "target/bench/soak.csv")]
    out: std::path::PathBuf,
}

/// Counts of what the load saw.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    ok: AtomicU64,
    /// Answers that were not 2xx (unknown keys and injected upstream failures among them).
    refused: AtomicU64,
    /// Requests that never got an answer (connection errors).
    failed: AtomicU64,
}

/// One sample of the runtime report.
struct Sample {
    t: f64,
    rss_mib: f64,
    anon_mib: f64,
    fds: f64,
    threads: f64,
    tasks: f64,
    pool: f64,
    limiter_keys: f64,
    key_cache: f64,
    sent: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let passed = runtime.block_on(run(args))?;
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let binary = std::fs::canonicalize(args.binary.clone().unwrap_or_else(default_binary))?;
    let mock = MockOpenAi::start("sk-soak-upstream").await;
    mock.stop_recording();
    let server = start(
        &binary,
        &[
            ("SKEIN_LOG_LEVEL", "error"),
            ("SKEIN_LIMITS__API_PER_KEY_PER_MINUTE", "100000000"),
            ("SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE", "100000000"),
            ("SKEIN_LIMITS__API_PER_USER_PER_MINUTE", "100000000"),
            ("SKEIN_LIMITS__INVALID_KEYS_PER_IP_PER_MINUTE", "100000000"),
            // The sampler's token must outlive a long soak.
            ("SKEIN_AUTH__ACCESS_TOKEN_TTL_SECS", "86400"),
        ],
    )?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;
    wait_ready(&client, &server.base).await?;
    let base = server.base.clone();
    let root = post(
        &client,
        format!("{base}/api/v1/auth/register"),
        "",
        json!({"username": "soak", "password": "benchmark password", "setup_token": skein_bench::SETUP_TOKEN}),
    )
    .await?;
    let access = root["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let user_id = root["user"]["id"].as_str().unwrap_or_default().to_string();
    post(&client, format!("{base}/api/v1/channels"), &access, json!({
        "type": "openai", "name": "mock", "base_url": mock.base_url, "keys": [mock.key], "models": ["soak-model"]})).await?;
    let price = json!({"input_per_mtok": 1_000_000, "output_per_mtok": 2_000_000, "cache_read_per_mtok": 0, "cache_write_per_mtok": 0, "per_call": 0});
    let r = client
        .put(format!("{base}/api/v1/admin/pricing/soak-model"))
        .bearer_auth(&access)
        .json(&price)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "pricing failed");
    post(
        &client,
        format!("{base}/api/v1/admin/billing/users/{user_id}/adjust"),
        &access,
        json!({"amount": 900_000_000_000_i64, "memo": "soak"}),
    )
    .await?;

    let keys: Arc<RwLock<Vec<String>>> = Arc::new(RwLock::new(Vec::new()));
    let new_key = {
        let (client, base, access) = (client.clone(), base.clone(), access.clone());
        move |n: u64| create_key(client.clone(), base.clone(), access.clone(), n)
    };
    keys.write().await.push(new_key(0).await?);

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let duration = Duration::from_secs(args.seconds);
    let mock = Arc::new(mock);

    // A new key every second, for as long as the load runs.
    let key_maker = {
        let keys = keys.clone();
        tokio::spawn(async move {
            let mut n = 1;
            while started.elapsed() < duration {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match new_key(n).await {
                    Ok(key) => keys.write().await.push(key),
                    Err(error) => eprintln!("could not create a key: {error}"),
                }
                n += 1;
            }
        })
    };

    // The load: every 10 ms a slice of the rate, each request its own task, bounded.
    let load = {
        let (client, base, keys, tally, mock) = (
            client.clone(),
            base.clone(),
            keys.clone(),
            tally.clone(),
            mock.clone(),
        );
        let slots = Arc::new(Semaphore::new(args.concurrency.max(1)));
        let per_tick = f64::from(args.rate) / 100.0;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut owed = 0.0;
            let mut i: u64 = 0;
            while started.elapsed() < duration {
                tick.tick().await;
                owed += per_tick;
                while owed >= 1.0 {
                    owed -= 1.0;
                    i += 1;
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let key = {
                        let keys = keys.read().await;
                        keys[usize::try_from(i).unwrap_or(0) % keys.len()].clone()
                    };
                    if i % 20 == 19 {
                        mock.fail_next(Fault::Status(500));
                    }
                    let (client, base, tally) = (client.clone(), base.clone(), tally.clone());
                    tokio::spawn(async move {
                        one_request(&client, &base, &key, i, &tally).await;
                        drop(permit);
                    });
                }
            }
        })
    };

    // The samples.
    let mut samples = Vec::new();
    let mut next = Duration::ZERO;
    while started.elapsed() < duration + Duration::from_secs(args.sample_secs) {
        if started.elapsed() >= next {
            let r = client
                .get(format!("{base}/api/v1/admin/system/runtime"))
                .bearer_auth(&access)
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "runtime report: {}", r.status());
            let v: Value = r.json().await?;
            let mib = |name: &str| v[name].as_f64().unwrap_or(0.0) / (1024.0 * 1024.0);
            let n = |name: &str| v[name].as_f64().unwrap_or(0.0);
            let g = |name: &str| v["gauges"][name].as_f64().unwrap_or(0.0);
            let s = Sample {
                t: started.elapsed().as_secs_f64(),
                rss_mib: mib("rss_bytes"),
                anon_mib: mib("rss_anon_bytes"),
                fds: n("open_fds"),
                threads: n("threads"),
                tasks: n("tasks"),
                pool: g("db.pool.size"),
                limiter_keys: g("limiter.keys"),
                key_cache: g("relay.key_cache"),
                sent: tally.sent.load(Ordering::Relaxed),
            };
            println!(
                "t {:>6.1} s  rss {:>6.1} MiB  anon {:>6.1} MiB  fds {:>4}  threads {:>3}  tasks {:>5}  pool {:>2}  limiter keys {:>6}  key cache {:>5}  sent {}",
                s.t,
                s.rss_mib,
                s.anon_mib,
                s.fds,
                s.threads,
                s.tasks,
                s.pool,
                s.limiter_keys,
                s.key_cache,
                s.sent
            );
            samples.push(s);
            next += Duration::from_secs(args.sample_secs.max(1));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load.await?;
    key_maker.await?;

    let mut csv = String::from(
        "t_secs,rss_mib,rss_anon_mib,open_fds,threads,tasks,db_pool,limiter_keys,key_cache,requests_sent\n",
    );
    for s in &samples {
        csv.push_str(&format!(
            "{:.1},{:.2},{:.2},{},{},{},{},{},{},{}\n",
            s.t,
            s.rss_mib,
            s.anon_mib,
            s.fds,
            s.threads,
            s.tasks,
            s.pool,
            s.limiter_keys,
            s.key_cache,
            s.sent
        ));
    }
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, csv)?;

    // The trend after warm-up: the second half of the samples.
    let half = &samples[samples.len() / 2..];
    let per_min = |f: fn(&Sample) -> f64| slope(half, f) * 60.0;
    let rss_slope = per_min(|s| s.rss_mib);
    let fds_slope = per_min(|s| s.fds);
    let tasks_slope = per_min(|s| s.tasks);
    let sent = tally.sent.load(Ordering::Relaxed);
    println!(
        "requests: {sent} sent, {} answered 2xx, {} refused (unknown keys, injected upstream 500s), {} failed without an answer",
        tally.ok.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed)
    );
    println!(
        "second-half slopes: RSS {rss_slope:+.2} MiB/min (limit {:.2}), fds {fds_slope:+.1}/min, tasks {tasks_slope:+.1}/min",
        args.max_slope_mib_per_min
    );
    println!("wrote {}", args.out.display());
    let passed = rss_slope <= args.max_slope_mib_per_min;
    println!(
        "{}",
        if passed {
            "PASS: RSS flat after warm-up"
        } else {
            "FAIL: RSS still grows after warm-up"
        }
    );
    Ok(passed)
}

/// Creates an API key named after `n`; answers the key.
async fn create_key(
    client: reqwest::Client,
    base: String,
    access: String,
    n: u64,
) -> anyhow::Result<String> {
    let key = post(
        &client,
        format!("{base}/api/v1/keys"),
        &access,
        json!({"name": format!("soak-{n}")}),
    )
    .await?;
    Ok(key["key"].as_str().unwrap_or_default().to_string())
}

/// One request of the mix, chosen by its number.
async fn one_request(client: &reqwest::Client, base: &str, key: &str, i: u64, tally: &Tally) {
    tally.sent.fetch_add(1, Ordering::Relaxed);
    let kind = i % 20;
    let stream = matches!(kind, 12..=17);
    let key = if kind == 18 {
        "sk-not-a-key-of-this-server"
    } else {
        key
    };
    let body = json!({"model": "soak-model", "max_tokens": 16, "stream": stream,
        "messages": [{"role": "user", "content": format!("soak request {i}")}]});
    let sent = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await;
    let resp = match sent {
        Ok(resp) => resp,
        Err(_) => {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    if !resp.status().is_success() {
        tally.refused.fetch_add(1, Ordering::Relaxed);
        let _ = resp.bytes().await;
        return;
    }
    if matches!(kind, 16 | 17) {
        // The client hangs up after the first piece.
        let mut resp = resp;
        let _ = resp.chunk().await;
        drop(resp);
        tally.ok.fetch_add(1, Ordering::Relaxed);
        return;
    }
    match resp.bytes().await {
        Ok(_) => tally.ok.fetch_add(1, Ordering::Relaxed),
        Err(_) => tally.failed.fetch_add(1, Ordering::Relaxed),
    };
}

/// Least-squares slope of `f` over time (per second).
fn slope(samples: &[Sample], f: fn(&Sample) -> f64) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|s| s.t).sum::<f64>() / n;
    let mean_y = samples.iter().map(f).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for s in samples {
        num += (s.t - mean_t) * (f(s) - mean_y);
        den += (s.t - mean_t) * (s.t - mean_t);
    }
    if den == 0.0 { 0.0 } else { num / den }
}
