//! A soak run (issue #22): the release binary under repeated and steady mixed load, sampling
//! what it holds through the admin runtime report. Two phases, both optional:
//!
//! 1. `--runs N`: N identical batches of `--run-requests` requests (`--run-concurrency` at a
//!    time), each followed by `--run-idle-secs` of idle; RSS and the allocator's figures are
//!    read after each batch and after each idle. Memory that a batch leaves behind shows as a
//!    staircase; the gate is the last idle RSS within `--max-run-growth` of the first.
//! 2. `--seconds S`: a steady `--rate` for S seconds, sampled every `--sample-secs`. The gate is
//!    the least-squares RSS slope over the second half (after warm-up) at most
//!    `--max-slope-mib-per-min`.
//!
//! The mix, by request number: whole answers, streams read to the end, streams the client
//! hangs up on after the first piece, messages in Chat conversations whose history grows (one
//! in twenty; every 400th request opens a new conversation), requests with an unknown key, an
//! upstream 500 and an upstream 429 now and then (the primary mock's next answer fails, and the relay fails over
//! to the backup channel on a second mock). Requests use `--keys` distinct API keys spread over
//! `--users` users (a user may hold 100 keys) and come from `--ips` distinct client addresses
//! (`X-Forwarded-For`, trusted by this server); in the steady phase a new key is made every
//! second and a new user every 50 keys, so key caches, billing's books and per-IP rate-limit
//! windows see new entries throughout.
//!
//! Writes `soak.json` (everything), `soak.csv` (the steady phase's samples), `soak.svg` (RSS,
//! anonymous RSS, the allocator's resident and allocated bytes, SQLite's heap) and, when
//! `rsvg-convert` is installed (Debian: `librsvg2-bin`), `soak.png` to `--out-dir`. The steady
//! phase fails when RSS, open descriptors or tasks trend upward over its second half.
//!
//! `cargo build --release -p skein -p skein-bench && ./target/release/bench-soak --runs 10
//! --seconds 300 --keys 10000`

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};
use skein_bench::{
    breakdown_line, default_binary, machine, memory_report, post, start, wait_ready,
};
use skein_testkit::mock_openai::{Fault, MockOpenAi};
use tokio::sync::{RwLock, Semaphore};

/// Soak: repeated batches and steady mixed load, sampled memory, trend checks.
#[derive(Parser)]
struct Args {
    /// Identical batches before the steady phase (0 to skip).
    #[arg(long, default_value_t = 0)]
    runs: usize,
    /// Requests per batch.
    #[arg(long, default_value_t = 20_000)]
    run_requests: u64,
    /// Requests in flight at once during a batch.
    #[arg(long, default_value_t = 128)]
    run_concurrency: usize,
    /// Seconds of idle after each batch before memory is read again.
    #[arg(long, default_value_t = 30)]
    run_idle_secs: u64,
    /// Fail when the last batch's idle RSS is above the first's by more than this fraction.
    #[arg(long, default_value_t = 0.05)]
    max_run_growth: f64,
    /// Seconds of steady load (0 to skip).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Requests per second in the steady phase (all kinds together).
    #[arg(long, default_value_t = 300)]
    rate: u32,
    /// Seconds between samples.
    #[arg(long, default_value_t = 3)]
    sample_secs: u64,
    /// Fail when RSS grows faster than this over the second half (MiB per minute).
    #[arg(long, default_value_t = 2.0)]
    max_slope_mib_per_min: f64,
    /// Requests in flight at most in the steady phase (the load waits beyond it).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Distinct API keys the load uses (made before it starts), spread over `--users`.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Users the keys belong to (each may hold at most 100 keys).
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// Fail when open descriptors or tasks grow faster than this over the second half (per
    /// minute).
    #[arg(long, default_value_t = 5.0)]
    max_count_slope_per_min: f64,
    /// Distinct client addresses the load comes from.
    #[arg(long, default_value_t = 10_000)]
    ips: u64,
    /// Chat conversations opened per user before the load (more open during it).
    #[arg(long, default_value_t = 10)]
    conversations: usize,
    /// The server binary (default: the release build in the target directory).
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
    /// Where soak.json, soak.csv and soak.svg go.
    #[arg(long, default_value = "target/bench")]
    out_dir: std::path::PathBuf,
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

impl Tally {
    fn json(&self) -> Value {
        json!({
            "sent": self.sent.load(Ordering::Relaxed),
            "ok": self.ok.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
            "failed": self.failed.load(Ordering::Relaxed),
        })
    }
}

/// One sample of the runtime report.
struct Sample {
    t: f64,
    rss_mib: f64,
    anon_mib: f64,
    resident_mib: f64,
    allocated_mib: f64,
    fds: f64,
    threads: f64,
    tasks: f64,
    pool: f64,
    limiter_keys: f64,
    key_cache: f64,
    sqlite_mib: f64,
    ended_holds: f64,
    sent: u64,
}

/// What the load needs to send a request.
#[derive(Clone)]
struct Load {
    client: reqwest::Client,
    base: String,
    keys: Arc<RwLock<Vec<String>>>,
    ips: u64,
    tally: Arc<Tally>,
    mock: Arc<MockOpenAi>,
    /// Users' access tokens, for Chat.
    tokens: Arc<Vec<String>>,
    /// Chat conversations: (index into `tokens`, conversation id).
    conversations: Arc<RwLock<Vec<(usize, String)>>>,
}

/// What a new user or key needs: the root's token (to credit new users) and the server.
#[derive(Clone)]
struct Accounts {
    client: reqwest::Client,
    base: String,
    root: String,
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
    // The backup the relay fails over to when the primary answers 500 or 429.
    let backup = MockOpenAi::start("sk-soak-backup").await;
    backup.stop_recording();
    let server = start(
        &binary,
        &[
            ("SKEIN_LOG_LEVEL", "error"),
            ("SKEIN_LIMITS__API_PER_KEY_PER_MINUTE", "100000000"),
            ("SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE", "100000000"),
            ("SKEIN_LIMITS__API_PER_USER_PER_MINUTE", "100000000"),
            ("SKEIN_LIMITS__INVALID_KEYS_PER_IP_PER_MINUTE", "100000000"),
            // Many client addresses come from one machine through this header.
            ("SKEIN_SERVER__TRUST_FORWARDED_FOR", "true"),
            // The sampler's token must outlive a long soak.
            ("SKEIN_AUTH__ACCESS_TOKEN_TTL_SECS", "86400"),
        ],
    )?;
    let pid = server.child.id();
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
    post(&client, format!("{base}/api/v1/channels"), &access, json!({
        "type": "openai", "name": "mock", "base_url": mock.base_url, "keys": [mock.key], "models": ["soak-model"], "priority": 10})).await?;
    post(&client, format!("{base}/api/v1/channels"), &access, json!({
        "type": "openai", "name": "backup", "base_url": backup.base_url, "keys": [backup.key], "models": ["soak-model"], "priority": 0})).await?;
    let price = json!({"input_per_mtok": 1_000_000, "output_per_mtok": 2_000_000, "cache_read_per_mtok": 0, "cache_write_per_mtok": 0, "per_call": 0});
    let r = client
        .put(format!("{base}/api/v1/admin/pricing/soak-model"))
        .bearer_auth(&access)
        .json(&price)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "pricing failed");
    // The load runs as other accounts: no one, root included, adjusts their own balance.
    let accounts = Accounts {
        client: client.clone(),
        base: base.clone(),
        root: access.clone(),
    };
    // A fresh client reads the reports, so its one connection is all the sampler adds.
    let reader = reqwest::Client::new();
    let report = |label: &str| {
        let (reader, base, access, label) = (
            reader.clone(),
            base.clone(),
            access.clone(),
            label.to_string(),
        );
        async move {
            let r = memory_report(&reader, &base, &access, pid).await?;
            println!("{label:<22} {}", breakdown_line(&r));
            anyhow::Ok(r)
        }
    };
    let at_start = report("after set-up").await?;

    let made = Instant::now();
    let users = args.users.max(1);
    let per_user = args.keys.max(1).div_ceil(users).min(100);
    let tokens: Vec<String> = futures::stream::iter(0..users)
        .map(|n| accounts.clone().new_user(format!("soak-user-{n}")))
        .buffer_unordered(8)
        .filter_map(|token| async move { token.ok() })
        .collect()
        .await;
    anyhow::ensure!(!tokens.is_empty(), "no user could be made");
    let wanted: Vec<(String, u64)> = (0..args.keys.max(1))
        .map(|n| (tokens[(n / per_user) % tokens.len()].clone(), n as u64))
        .collect();
    let new_keys: Vec<String> = futures::stream::iter(wanted)
        .map(|(token, n)| create_key(client.clone(), base.clone(), token, n))
        .buffer_unordered(16)
        .filter_map(|key| async move { key.ok() })
        .collect()
        .await;
    println!(
        "made {} users and {} API keys in {:.1} s",
        tokens.len(),
        new_keys.len(),
        made.elapsed().as_secs_f64()
    );
    anyhow::ensure!(!new_keys.is_empty(), "no API key could be made");
    let wanted: Vec<usize> = (0..tokens.len() * args.conversations)
        .map(|n| n % tokens.len())
        .collect();
    let opened: Vec<(usize, String)> = futures::stream::iter(wanted)
        .map(|user| {
            let (client, base, token) = (client.clone(), base.clone(), tokens[user].clone());
            async move {
                open_conversation(&client, &base, &token)
                    .await
                    .map(|id| (user, id))
            }
        })
        .buffer_unordered(16)
        .filter_map(|c| async move { c.ok() })
        .collect()
        .await;
    println!("opened {} chat conversations", opened.len());
    let load = Load {
        client: client.clone(),
        base: base.clone(),
        keys: Arc::new(RwLock::new(new_keys)),
        ips: args.ips.max(1),
        tally: Arc::new(Tally::default()),
        mock: Arc::new(mock),
        tokens: Arc::new(tokens),
        conversations: Arc::new(RwLock::new(opened)),
    };
    let after_keys = report("after the keys").await?;

    // Phase 1: identical batches.
    let mut runs = Vec::new();
    let mut next_request: u64 = 0;
    for n in 1..=args.runs {
        let started = Instant::now();
        let slots = Arc::new(Semaphore::new(args.run_concurrency.max(1)));
        let mut tasks = Vec::with_capacity(usize::try_from(args.run_requests).unwrap_or(0));
        for _ in 0..args.run_requests {
            next_request += 1;
            let permit = slots.clone().acquire_owned().await?;
            let (load, i) = (load.clone(), next_request);
            tasks.push(tokio::spawn(async move {
                load.one_request(i).await;
                drop(permit);
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        let secs = started.elapsed().as_secs_f64();
        let after = report(&format!("run {n}: after load")).await?;
        tokio::time::sleep(Duration::from_secs(args.run_idle_secs)).await;
        let idle = report(&format!("run {n}: after idle")).await?;
        runs.push(json!({
            "run": n,
            "requests": args.run_requests,
            "seconds": secs,
            "req_per_sec": args.run_requests as f64 / secs,
            "after_load": after,
            "after_idle": idle,
        }));
    }
    let idle_rss = |run: &Value| run["after_idle"]["proc"]["rss_kib"].as_f64().unwrap_or(0.0);
    let runs_growth = match (runs.first(), runs.last()) {
        (Some(first), Some(last)) if runs.len() > 1 && idle_rss(first) > 0.0 => {
            Some(idle_rss(last) / idle_rss(first) - 1.0)
        }
        _ => None,
    };
    let tally_runs = load.tally.json();

    // Phase 2: steady load.
    let mut samples = Vec::new();
    if args.seconds > 0 {
        samples = steady(&args, &load, &reader, &accounts, &mut next_request).await?;
    }
    let steady_idle = if args.seconds > 0 {
        tokio::time::sleep(Duration::from_secs(args.run_idle_secs)).await;
        Some(report("steady: after idle").await?)
    } else {
        None
    };

    // The trend after warm-up: the second half of the samples.
    let half = &samples[samples.len() / 2..];
    let per_min = |f: fn(&Sample) -> f64| slope(half, f) * 60.0;
    let rss_slope = per_min(|s| s.rss_mib);
    let fds_slope = per_min(|s| s.fds);
    let tasks_slope = per_min(|s| s.tasks);
    let allocated_slope = per_min(|s| s.allocated_mib);
    let sqlite_slope = per_min(|s| s.sqlite_mib);
    println!("requests: {}", load.tally.json());
    if let Some(growth) = runs_growth {
        println!(
            "runs: last idle RSS {:+.1} % of the first (limit {:+.1} %)",
            growth * 100.0,
            args.max_run_growth * 100.0
        );
    }
    if !samples.is_empty() {
        println!(
            "steady, second half: RSS {rss_slope:+.2} MiB/min (limit {:.2}), allocated {allocated_slope:+.2} MiB/min, SQLite {sqlite_slope:+.2} MiB/min, fds {fds_slope:+.1}/min, tasks {tasks_slope:+.1}/min (limit {:.1})",
            args.max_slope_mib_per_min, args.max_count_slope_per_min
        );
    }
    let runs_pass = runs_growth.is_none_or(|g| g <= args.max_run_growth);
    let steady_pass = samples.is_empty()
        || (rss_slope <= args.max_slope_mib_per_min
            && fds_slope <= args.max_count_slope_per_min
            && tasks_slope <= args.max_count_slope_per_min);
    let failed = load.tally.failed.load(Ordering::Relaxed);

    std::fs::create_dir_all(&args.out_dir)?;
    let csv_path = args.out_dir.join("soak.csv");
    std::fs::write(&csv_path, csv(&samples))?;
    let svg_path = args.out_dir.join("soak.svg");
    std::fs::write(&svg_path, svg(&samples, &runs))?;
    let png_path = args.out_dir.join("soak.png");
    let png = match std::process::Command::new("rsvg-convert")
        .arg("-o")
        .arg(&png_path)
        .arg(&svg_path)
        .status()
    {
        Ok(status) if status.success() => format!(", {}", png_path.display()),
        _ => " (no PNG: rsvg-convert, from Debian's librsvg2-bin, is not installed)".to_string(),
    };
    let results = json!({
        "benchmark": "soak",
        "machine": machine(),
        "binary": binary.display().to_string(),
        "malloc_conf_env": std::env::var("MALLOC_CONF").ok(),
        "args": {
            "runs": args.runs, "run_requests": args.run_requests, "users": args.users,
            "run_concurrency": args.run_concurrency, "run_idle_secs": args.run_idle_secs,
            "seconds": args.seconds, "rate": args.rate, "keys": args.keys, "ips": args.ips,
            "conversations_per_user": args.conversations,
            "concurrency": args.concurrency,
        },
        "at_start": at_start,
        "after_keys": after_keys,
        "runs": runs,
        "runs_requests": tally_runs,
        "runs_idle_rss_growth": runs_growth,
        "steady_requests": load.tally.json(),
        "steady_second_half_slopes_per_min": {
            "rss_mib": rss_slope, "allocated_mib": allocated_slope, "sqlite_mib": sqlite_slope,
            "fds": fds_slope, "tasks": tasks_slope,
        },
        "steady_after_idle": steady_idle,
        "passed": { "runs": runs_pass, "steady": steady_pass, "no_failed_requests": failed == 0 },
    });
    let json_path = args.out_dir.join("soak.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)?;
    println!(
        "wrote {}, {}, {}{png}",
        json_path.display(),
        csv_path.display(),
        svg_path.display()
    );
    let passed = runs_pass && steady_pass && failed == 0;
    println!(
        "{}",
        if passed {
            "PASS: memory flat across runs and after warm-up, no request failed without an answer"
        } else {
            "FAIL: see the figures above"
        }
    );
    Ok(passed)
}

/// The steady phase: `rate` requests a second for `seconds`, a new key every second, sampled.
async fn steady(
    args: &Args,
    load: &Load,
    reader: &reqwest::Client,
    accounts: &Accounts,
    next_request: &mut u64,
) -> anyhow::Result<Vec<Sample>> {
    let access = accounts.root.as_str();
    let started = Instant::now();
    let duration = Duration::from_secs(args.seconds);
    let first = *next_request;
    // A new key every second, and every 50 keys a new user to hold them.
    let key_maker = {
        let load = load.clone();
        let accounts = accounts.clone();
        tokio::spawn(async move {
            let mut n: u64 = 1_000_000;
            let mut owner = None;
            while started.elapsed() < duration {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if n.is_multiple_of(50) || owner.is_none() {
                    match accounts.clone().new_user(format!("soak-new-{n}")).await {
                        Ok(token) => owner = Some(token),
                        Err(error) => eprintln!("could not create a user: {error}"),
                    }
                }
                if let Some(token) = owner.clone() {
                    match create_key(load.client.clone(), load.base.clone(), token, n).await {
                        Ok(key) => load.keys.write().await.push(key),
                        Err(error) => eprintln!("could not create a key: {error}"),
                    }
                }
                n += 1;
            }
        })
    };
    // Every 10 ms a slice of the rate, each request its own task, bounded.
    let sender = {
        let load = load.clone();
        let slots = Arc::new(Semaphore::new(args.concurrency.max(1)));
        let per_tick = f64::from(args.rate) / 100.0;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut owed = 0.0;
            let mut i = first;
            while started.elapsed() < duration {
                tick.tick().await;
                owed += per_tick;
                while owed >= 1.0 {
                    owed -= 1.0;
                    i += 1;
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return i;
                    };
                    let load = load.clone();
                    tokio::spawn(async move {
                        load.one_request(i).await;
                        drop(permit);
                    });
                }
            }
            i
        })
    };
    let mut samples = Vec::new();
    let mut next = Duration::ZERO;
    let pid_base = load.base.clone();
    while started.elapsed() < duration + Duration::from_secs(args.sample_secs) {
        if started.elapsed() >= next {
            let r = reader
                .get(format!("{pid_base}/api/v1/admin/system/runtime"))
                .bearer_auth(access)
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "runtime report: {}", r.status());
            let v: Value = r.json().await?;
            let mib = |v: &Value| v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0);
            let n = |name: &str| v[name].as_f64().unwrap_or(0.0);
            let g = |name: &str| v["gauges"][name].as_f64().unwrap_or(0.0);
            let s = Sample {
                t: started.elapsed().as_secs_f64(),
                rss_mib: mib(&v["rss_bytes"]),
                anon_mib: mib(&v["rss_anon_bytes"]),
                resident_mib: mib(&v["allocator"]["resident_bytes"]),
                allocated_mib: mib(&v["allocator"]["allocated_bytes"]),
                fds: n("open_fds"),
                threads: n("threads"),
                tasks: n("tasks"),
                pool: g("db.pool.size"),
                limiter_keys: g("limiter.keys"),
                key_cache: g("relay.key_cache"),
                sqlite_mib: g("db.sqlite.memory_bytes") / (1024.0 * 1024.0),
                ended_holds: g("billing.ended_holds"),
                sent: load.tally.sent.load(Ordering::Relaxed),
            };
            println!(
                "t {:>6.1} s  rss {:>6.1} MiB  anon {:>6.1}  resident {:>6.1}  allocated {:>6.1}  sqlite {:>5.1}  fds {:>4}  threads {:>3}  tasks {:>5}  pool {:>2}  limiter keys {:>6}  key cache {:>5}  ended holds {:>6}  sent {}",
                s.t,
                s.rss_mib,
                s.anon_mib,
                s.resident_mib,
                s.allocated_mib,
                s.sqlite_mib,
                s.fds,
                s.threads,
                s.tasks,
                s.pool,
                s.limiter_keys,
                s.key_cache,
                s.ended_holds,
                s.sent
            );
            samples.push(s);
            next += Duration::from_secs(args.sample_secs.max(1));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    *next_request = sender.await?;
    key_maker.await?;
    Ok(samples)
}

impl Load {
    /// One request of the mix, chosen by its number `i`.
    async fn one_request(&self, i: u64) {
        let tally = &self.tally;
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let kind = i % 20;
        // The primary fails the next request it gets; the relay fails over to the backup.
        if kind == 19 {
            self.mock.fail_next(Fault::Status(500));
        } else if kind == 11 {
            self.mock.fail_next(Fault::Status(429));
        }
        let stream = matches!(kind, 12..=17);
        // Spread over the keys and addresses so each is seen again only now and then.
        let spread = i.wrapping_mul(2_654_435_761);
        if kind == 10 {
            self.chat_message(i, spread).await;
            return;
        }
        let key = if kind == 18 {
            "sk-not-a-key-of-this-server".to_string()
        } else {
            let keys = self.keys.read().await;
            keys[usize::try_from(spread % keys.len() as u64).unwrap_or(0)].clone()
        };
        let ip = (spread >> 7) % self.ips;
        let address = format!("10.{}.{}.{}", (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
        let body = json!({"model": "soak-model", "max_tokens": 16, "stream": stream,
            "messages": [{"role": "user", "content": format!("soak request {i}")}]});
        let sent = self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(key)
            .header("x-forwarded-for", address)
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
}

impl Load {
    /// A message in a Chat conversation (its history sent upstream each time), read to the end
    /// of its event stream; every 400th request opens a new conversation first.
    async fn chat_message(&self, i: u64, spread: u64) {
        let tally = &self.tally;
        let picked = if i % 400 == 10 {
            let user = usize::try_from(spread % self.tokens.len() as u64).unwrap_or(0);
            match open_conversation(&self.client, &self.base, &self.tokens[user]).await {
                Ok(id) => {
                    self.conversations.write().await.push((user, id.clone()));
                    Some((user, id))
                }
                Err(_) => None,
            }
        } else {
            let conversations = self.conversations.read().await;
            if conversations.is_empty() {
                None
            } else {
                let n = usize::try_from(spread % conversations.len() as u64).unwrap_or(0);
                Some(conversations[n].clone())
            }
        };
        let Some((user, conversation)) = picked else {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let sent = self
            .client
            .post(format!(
                "{}/api/v1/chat/conversations/{conversation}/messages",
                self.base
            ))
            .bearer_auth(&self.tokens[user])
            .json(&json!({"content": format!("soak chat {i}")}))
            .send()
            .await;
        let Ok(resp) = sent else {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // 409: the conversation is still answering an earlier message (one answer at a time).
        let ok = resp.status().is_success();
        match resp.bytes().await {
            Ok(_) if ok => tally.ok.fetch_add(1, Ordering::Relaxed),
            Ok(_) => tally.refused.fetch_add(1, Ordering::Relaxed),
            Err(_) => tally.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Opens a Chat conversation on the soak's model; answers its id.
async fn open_conversation(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<String> {
    let c = post(
        client,
        format!("{base}/api/v1/chat/conversations"),
        token,
        json!({"model": "soak-model"}),
    )
    .await?;
    c["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no conversation id"))
}

impl Accounts {
    /// Registers a user and credits it (as root); answers the user's access token.
    async fn new_user(self, name: String) -> anyhow::Result<String> {
        let user = post(
            &self.client,
            format!("{}/api/v1/auth/register", self.base),
            "",
            json!({"username": name, "password": "benchmark password"}),
        )
        .await?;
        let user_id = user["user"]["id"].as_str().unwrap_or_default().to_string();
        post(
            &self.client,
            format!("{}/api/v1/admin/billing/users/{user_id}/adjust", self.base),
            &self.root,
            json!({"amount": 900_000_000_000_i64, "memo": "soak"}),
        )
        .await?;
        Ok(user["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }
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

/// The steady phase's samples as CSV.
fn csv(samples: &[Sample]) -> String {
    let mut csv = String::from(
        "t_secs,rss_mib,rss_anon_mib,alloc_resident_mib,alloc_allocated_mib,sqlite_heap_mib,open_fds,threads,tasks,db_pool,limiter_keys,key_cache,billing_ended_holds,requests_sent\n",
    );
    for s in samples {
        let _ = writeln!(
            csv,
            "{:.1},{:.2},{:.2},{:.2},{:.2},{:.2},{},{},{},{},{},{},{},{}",
            s.t,
            s.rss_mib,
            s.anon_mib,
            s.resident_mib,
            s.allocated_mib,
            s.sqlite_mib,
            s.fds,
            s.threads,
            s.tasks,
            s.pool,
            s.limiter_keys,
            s.key_cache,
            s.ended_holds,
            s.sent
        );
    }
    csv
}

/// Two line charts in one SVG: memory after each batch and after its idle (left), and memory
/// over the steady phase (right). Hand-drawn, so the benchmark needs no plotting library.
fn svg(samples: &[Sample], runs: &[Value]) -> String {
    let kib = |v: &Value| v.as_f64().unwrap_or(0.0) / 1024.0;
    let bytes = |v: &Value| v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0);
    let run_series = |f: &dyn Fn(&Value) -> f64| -> Vec<(f64, f64)> {
        runs.iter()
            .enumerate()
            .map(|(n, r)| ((n + 1) as f64, f(r)))
            .collect()
    };
    let left = vec![
        (
            "RSS after load",
            "#d62728",
            run_series(&|r| kib(&r["after_load"]["proc"]["rss_kib"])),
        ),
        (
            "RSS after idle",
            "#1f77b4",
            run_series(&|r| kib(&r["after_idle"]["proc"]["rss_kib"])),
        ),
        (
            "allocator resident after idle",
            "#2ca02c",
            run_series(&|r| bytes(&r["after_idle"]["allocator"]["resident_bytes"])),
        ),
        (
            "allocated after idle",
            "#9467bd",
            run_series(&|r| bytes(&r["after_idle"]["allocator"]["allocated_bytes"])),
        ),
        (
            "SQLite heap after idle",
            "#8c564b",
            run_series(&|r| bytes(&r["after_idle"]["gauges"]["db.sqlite.memory_bytes"])),
        ),
    ];
    let over = |f: fn(&Sample) -> f64| samples.iter().map(|s| (s.t, f(s))).collect::<Vec<_>>();
    let right = vec![
        ("RSS", "#d62728", over(|s| s.rss_mib)),
        ("anonymous RSS", "#ff7f0e", over(|s| s.anon_mib)),
        ("allocator resident", "#2ca02c", over(|s| s.resident_mib)),
        ("allocated", "#9467bd", over(|s| s.allocated_mib)),
        ("SQLite heap", "#8c564b", over(|s| s.sqlite_mib)),
    ];
    let mut out = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"440\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"1200\" height=\"440\" fill=\"white\"/>\n",
    );
    chart(&mut out, 0.0, "MiB per identical batch (run number)", &left);
    chart(
        &mut out,
        600.0,
        "MiB during the steady load (seconds)",
        &right,
    );
    out.push_str("</svg>\n");
    out
}

/// A line of a chart: its name, its colour and its points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// One chart at horizontal offset `x0`: axes with min/max labels, a line per series, a legend.
fn chart(out: &mut String, x0: f64, title: &str, series: &[Series]) {
    let (left, top, width, height) = (x0 + 60.0, 40.0, 500.0, 280.0);
    let points = series.iter().flat_map(|(_, _, p)| p.iter());
    let (mut x_min, mut x_max, mut y_max) = (f64::MAX, f64::MIN, 0.0_f64);
    for &(x, y) in points {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.0}\" y=\"24\" font-weight=\"bold\">{title}</text>",
        left
    );
    let _ = writeln!(
        out,
        "<rect x=\"{left:.0}\" y=\"{top:.0}\" width=\"{width:.0}\" height=\"{height:.0}\" fill=\"none\" stroke=\"#888\"/>"
    );
    if x_min > x_max {
        let _ = writeln!(
            out,
            "<text x=\"{:.0}\" y=\"{:.0}\">not run</text>",
            left + 20.0,
            top + 40.0
        );
        return;
    }
    let y_max = (y_max * 1.1).max(1.0);
    let x_span = (x_max - x_min).max(1.0);
    let px = |x: f64| left + (x - x_min) / x_span * width;
    let py = |y: f64| top + height - y / y_max * height;
    for step in 0..=4 {
        let y = y_max * f64::from(step) / 4.0;
        let _ = writeln!(
            out,
            "<line x1=\"{left:.0}\" x2=\"{:.0}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{y:.0}</text>",
            left + width,
            py(y),
            py(y),
            left - 6.0,
            py(y) + 4.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{left:.0}\" y=\"{:.0}\">{x_min:.0}</text><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{x_max:.0}</text>",
        top + height + 16.0,
        left + width,
        top + height + 16.0
    );
    for (n, (name, color, points)) in series.iter().enumerate() {
        let path = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(
            out,
            "<polyline points=\"{path}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>"
        );
        let ly = top + height + 36.0 + 16.0 * (n as f64 / 2.0).floor();
        let lx = left + if n % 2 == 0 { 0.0 } else { 250.0 };
        let _ = writeln!(
            out,
            "<rect x=\"{lx:.0}\" y=\"{:.0}\" width=\"12\" height=\"4\" fill=\"{color}\"/><text x=\"{:.0}\" y=\"{:.0}\">{name}</text>",
            ly - 6.0,
            lx + 16.0,
            ly
        );
    }
}
