//! Relay benchmark: first saturation throughput (closed loop, 64 keep-alive connections,
//! small whole answers: requests/s the mock alone answers and Skein answers), then the same
//! fixed-rate load sent straight to a mock OpenAI upstream and through Skein (key auth,
//! routing, billing, logging on), so the difference is what Skein adds. Run `cargo build
//! --release -p skein && cargo run --release -p skein-bench --bin bench-relay`; results go to
//! `target/bench/relay.json`.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use skein_bench::{
    FixedRate, MakeRequest, closed_loop, cpu_secs, default_binary, fixed_rate, machine, post,
    rss_kib, start, wait_ready,
};
use skein_testkit::mock_openai::MockOpenAi;

/// Measures the latency Skein adds to chat completions.
#[derive(Parser)]
struct Args {
    /// Requests per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Seconds per run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Streams held open at once for the memory measurement (0 to skip).
    #[arg(long, default_value_t = 2000)]
    open_streams: usize,
    /// Seconds of idle after the load before RSS is read again: whether the memory a burst
    /// took comes back (0 to skip).
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// The server binary (default: the release build in the target directory), so builds
    /// with different allocators can be compared.
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/relay.json")]
    out: std::path::PathBuf,
    /// The default group's routing strategy during the runs (`priority`, `latency`, `errors`,
    /// `cost`, `balance`), so the learning strategies' cost is measured too.
    #[arg(long, default_value = "priority")]
    strategy: String,
    /// After the fixed-rate runs, raise the rate through Skein step by step (by this many
    /// req/s, from `--rate`) until p99 passes `--p99-limit-ms`, errors pass 1 % or the rate is
    /// not reached (0 to skip).
    #[arg(long, default_value_t = 0)]
    saturate_step: u32,
    /// Seconds per saturation step.
    #[arg(long, default_value_t = 5)]
    saturate_secs: u64,
    /// The p99 (ms) that ends the saturation search.
    #[arg(long, default_value_t = 50.0)]
    p99_limit_ms: f64,
    /// Saturation throughput, closed loop (on by default): this many keep-alive connections
    /// each send the next small whole chat completion as soon as the last answer is read,
    /// first straight to the mock, then through Skein with a real key (auth, routing, hold,
    /// settle, usage record and request log on); requests/s, p50, p99 and errors (non-2xx
    /// included) for both, and Skein's CPU per request. 0 skips it. For this phase alone:
    /// `--skip-fixed-rate --open-streams 0 --idle-secs 0`.
    #[arg(long, visible_alias = "connections", default_value_t = 64)]
    closed_loop_connections: usize,
    /// Seconds of each closed-loop run.
    #[arg(long, default_value_t = 10)]
    closed_loop_secs: u64,
    /// Also run the closed loop with wrk (Debian's `wrk`, at this path or on `PATH` when
    /// given as `wrk`): a load generator in C costs far less CPU per request than this
    /// program's own, so on a small machine it leaves Skein more of the cores, as an
    /// operator's `wrk` or `oha` run would. Same connections and seconds as the closed loop.
    #[arg(long)]
    wrk: Option<std::path::PathBuf>,
    /// wrk's threads.
    #[arg(long, default_value_t = 1)]
    wrk_threads: usize,
    /// Skip the fixed-rate runs (whole and streamed) before the saturation runs.
    #[arg(long)]
    skip_fixed_rate: bool,
    /// After the closed loops, run them once more through `relay-floor`: a proxy made of
    /// Skein's HTTP stacks and runtime settings with nothing between the two legs (no auth,
    /// routing, billing or log), so the gap between it and Skein is Skein's own work and the
    /// gap between it and the mock is the stacks' and the second leg's.
    #[arg(long)]
    floor: bool,
    /// The `relay-floor` binary (default: beside this program, built by `cargo build
    /// --release -p skein-bench`); a wrapper script may pin it. Needs the closed loop on.
    #[arg(long)]
    floor_binary: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Two workers: the mock upstream and the load generator share this process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

/// The token the benchmark's server serves `/metrics` behind.
const METRICS_TOKEN: &str = "bench-metrics-token";

/// What the server's `/metrics` say of its ledger and request log so far.
struct Backlog {
    /// The billing writer's mean operations per commit.
    batch_mean: Option<f64>,
    /// Answers that waited for the ledger to catch up (`relay.max_settles_behind`).
    settle_waits: f64,
    /// Request-log rows dropped because the database did not keep up.
    log_dropped: f64,
}

/// Reads [`Backlog`] from `/metrics`; `None` if the server did not answer.
async fn backlog(client: &reqwest::Client, base: &str) -> Option<Backlog> {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    let sum = value("skein_billing_batch_operations_sum ");
    let count = value("skein_billing_batch_operations_count ");
    Some(Backlog {
        batch_mean: sum.zip(count).filter(|(_, c)| *c > 0.0).map(|(s, c)| s / c),
        // A series not yet born is 0.
        settle_waits: value("skein_relay_settle_waits_total ").unwrap_or(0.0),
        log_dropped: value("skein_relay_request_log_dropped_total ").unwrap_or(0.0),
    })
}

/// Sends `request` 300 times, one after another, so connections and caches are warm before a
/// run is measured.
async fn warm(client: &reqwest::Client, request: &MakeRequest) -> anyhow::Result<()> {
    for _ in 0..300 {
        request(client).send().await?.bytes().await?;
    }
    Ok(())
}

/// One closed-loop run's line, the same for either load generator.
fn print_closed_loop(
    name: &str,
    connections: usize,
    per_sec: f64,
    p50: f64,
    p99: f64,
    errors: u64,
) {
    println!(
        "{name:<28} {connections} connections: {per_sec:>7.0} req/s  p50 {p50:.3} ms  p99 {p99:.3} ms  errors {errors}"
    );
}

async fn run(args: Args) -> anyhow::Result<()> {
    let binary = std::fs::canonicalize(args.binary.clone().unwrap_or_else(default_binary))?;
    let mock = MockOpenAi::start("sk-bench-upstream").await;
    mock.stop_recording();
    let server = start(
        &binary,
        &[
            ("SKEIN_LOG_LEVEL", "warn"),
            ("SKEIN_LIMITS__API_PER_KEY_PER_MINUTE", "100000000"),
            ("SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE", "100000000"),
            ("SKEIN_LIMITS__API_PER_USER_PER_MINUTE", "100000000"),
            ("SKEIN_SERVER__METRICS_TOKEN", METRICS_TOKEN),
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
        json!({"username": "bench", "password": "benchmark password", "setup_token": skein_bench::SETUP_TOKEN}),
    )
    .await?;
    let access = root["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let root_access = access.clone();
    post(&client, format!("{base}/api/v1/channels"), &access, json!({
        "type": "openai", "name": "mock", "base_url": mock.base_url, "keys": [mock.key], "models": ["bench-model"]})).await?;
    let price = json!({"input_per_mtok": 1_000_000, "output_per_mtok": 2_000_000, "cache_read_per_mtok": 0, "cache_write_per_mtok": 0, "per_call": 0});
    let r = client
        .put(format!("{base}/api/v1/admin/pricing/bench-model"))
        .bearer_auth(&access)
        .json(&price)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "pricing failed");
    // The load runs as a second account: no one, root included, adjusts their own balance.
    let user = post(
        &client,
        format!("{base}/api/v1/auth/register"),
        "",
        json!({"username": "bench-user", "password": "benchmark password"}),
    )
    .await?;
    let user_id = user["user"]["id"].as_str().unwrap_or_default().to_string();
    post(
        &client,
        format!("{base}/api/v1/admin/billing/users/{user_id}/adjust"),
        &access,
        json!({"amount": 900_000_000_000_i64, "memo": "bench"}),
    )
    .await?;
    let access = user["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key = post(
        &client,
        format!("{base}/api/v1/keys"),
        &access,
        json!({"name": "bench"}),
    )
    .await?["key"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let r = client
        .put(format!("{base}/api/v1/admin/routing/default"))
        .bearer_auth(&root_access)
        .json(&json!({"strategy": args.strategy}))
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "setting the routing strategy failed"
    );
    let body = json!({"model": "bench-model", "messages": [{"role": "user", "content": "hello relay benchmark"}], "max_tokens": 16});
    let stream_body = json!({"model": "bench-model", "messages": [{"role": "user", "content": "hello relay benchmark"}], "max_tokens": 16, "stream": true});
    let make = |url: String, token: String, body: Value| -> Arc<MakeRequest> {
        let bytes = body.to_string();
        Arc::new(move |c: &reqwest::Client| {
            c.post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(bytes.clone())
        })
    };
    let direct_url = format!("{}/v1/chat/completions", mock.base_url);
    let relay_url = format!("{base}/v1/chat/completions");
    // Warm both paths.
    warm(
        &client,
        &*make(direct_url.clone(), mock.key.clone(), body.clone()),
    )
    .await?;
    warm(
        &client,
        &*make(relay_url.clone(), key.clone(), body.clone()),
    )
    .await?;
    // Closed loop first, on a fresh server: requests per second the mock alone answers and
    // Skein answers (auth, routing, hold, settle, usage record and request log on) when every
    // connection waits for its answer.
    let mut closed = Value::Null;
    let mut closed_summary = None;
    if args.closed_loop_connections > 0 {
        let secs = Duration::from_secs(args.closed_loop_secs);
        let n = args.closed_loop_connections;
        // CPU seconds of this process (load generator and mock) and of the server, around
        // each run: what a request costs each side, whatever the machine's core count.
        let own = std::process::id();
        let bench_before = cpu_secs(own)?;
        let alone = closed_loop(
            &client,
            make(direct_url.clone(), mock.key.clone(), body.clone()),
            n,
            secs,
        )
        .await;
        let bench_alone = cpu_secs(own)? - bench_before;
        let (bench_before, server_before) = (cpu_secs(own)?, cpu_secs(server.child.id())?);
        let through = closed_loop(
            &client,
            make(relay_url.clone(), key.clone(), body.clone()),
            n,
            secs,
        )
        .await;
        let bench_through = cpu_secs(own)? - bench_before;
        let server_through = cpu_secs(server.child.id())? - server_before;
        let per_request = |cpu: f64, r: &FixedRate| {
            let requests = r.achieved * args.closed_loop_secs as f64;
            if requests > 0.0 {
                cpu / requests * 1e6
            } else {
                0.0
            }
        };
        let skein_us = per_request(server_through, &through);
        // The request log counts what it dropped when it next writes (every 250 ms).
        tokio::time::sleep(Duration::from_millis(600)).await;
        let backlog = backlog(&client, &base).await;
        let batch = backlog.as_ref().and_then(|b| b.batch_mean);
        for (name, r) in [
            ("closed loop, mock alone", &alone),
            ("closed loop, through Skein", &through),
        ] {
            print_closed_loop(name, n, r.achieved, r.p50, r.p99, r.errors as u64);
        }
        println!(
            "closed loop CPU per request: Skein {skein_us:.0} µs; load generator + mock {:.0} µs (mock alone), {:.0} µs (through Skein)",
            per_request(bench_alone, &alone),
            per_request(bench_through, &through)
        );
        if let Some(batch) = batch {
            println!("billing writer: {batch:.1} operations per commit on average");
        }
        let (waits, dropped) = backlog
            .as_ref()
            .map_or((0.0, 0.0), |b| (b.settle_waits, b.log_dropped));
        println!(
            "ledger backlog: {waits:.0} answers waited for it to catch up; request-log rows dropped: {dropped:.0}"
        );
        let row = |r: &FixedRate| json!({"requests_per_sec": r.achieved, "p50_ms": r.p50, "p90_ms": r.p90, "p99_ms": r.p99, "max_ms": r.max, "errors": r.errors});
        closed = json!({
            "connections": n,
            "seconds": args.closed_loop_secs,
            "mock_alone": row(&alone),
            "through_skein": row(&through),
            "skein_cpu_us_per_request": skein_us,
            "bench_cpu_us_per_request_alone": per_request(bench_alone, &alone),
            "bench_cpu_us_per_request_through": per_request(bench_through, &through),
            "billing_operations_per_commit": batch,
            "answers_that_waited_for_the_ledger": waits,
            "request_log_rows_dropped": dropped,
        });
        closed_summary = Some((alone, through, skein_us));
    }
    // The floor: the same closed loops through a proxy with nothing between its two legs.
    let mut floor = Value::Null;
    if args.floor && args.closed_loop_connections == 0 {
        println!("--floor needs the closed loop (--closed-loop-connections above 0): skipped");
    }
    if args.floor && args.closed_loop_connections > 0 {
        let binary = args
            .floor_binary
            .clone()
            .unwrap_or_else(skein_bench::default_floor_binary);
        let proxy = skein_bench::start_floor(&binary, &direct_url)?;
        wait_ready(&client, &proxy.base).await?;
        let floor_url = format!("{}/v1/chat/completions", proxy.base);
        let through_floor = make(floor_url.clone(), mock.key.clone(), body.clone());
        warm(&client, &*through_floor).await?;
        let n = args.closed_loop_connections;
        let before = cpu_secs(proxy.child.id())?;
        let own = closed_loop(
            &client,
            through_floor,
            n,
            Duration::from_secs(args.closed_loop_secs),
        )
        .await;
        let own_cpu = cpu_secs(proxy.child.id())? - before;
        let own_us = own_cpu / (own.achieved * args.closed_loop_secs as f64).max(1.0) * 1e6;
        print_closed_loop(
            "closed loop, through floor",
            n,
            own.achieved,
            own.p50,
            own.p99,
            own.errors as u64,
        );
        let mut wrk_floor = Value::Null;
        let mut wrk_us = None;
        if let Some(wrk) = &args.wrk {
            let (wrk, url, token, text) = (
                wrk.clone(),
                floor_url.clone(),
                mock.key.clone(),
                body.to_string(),
            );
            let (threads, secs) = (args.wrk_threads, args.closed_loop_secs);
            let before = cpu_secs(proxy.child.id())?;
            let r = tokio::task::spawn_blocking(move || {
                skein_bench::wrk::run(&wrk, &url, &token, &text, threads, n, secs)
            })
            .await??;
            let cpu = cpu_secs(proxy.child.id())? - before;
            let us = cpu / (r.requests.max(1) as f64) * 1e6;
            print_closed_loop(
                "wrk, through floor",
                n,
                r.per_sec,
                r.p50_ms,
                r.p99_ms,
                r.errors,
            );
            wrk_us = Some(us);
            wrk_floor = json!({"result": r.to_json(), "floor_cpu_us_per_request": us});
        }
        match wrk_us {
            Some(wrk_us) => {
                println!("floor CPU per request: {own_us:.0} µs (own loop), {wrk_us:.0} µs (wrk)")
            }
            None => println!("floor CPU per request: {own_us:.0} µs"),
        }
        floor = json!({
            "connections": n,
            "seconds": args.closed_loop_secs,
            "closed_loop": {"result": {"requests_per_sec": own.achieved, "p50_ms": own.p50, "p90_ms": own.p90, "p99_ms": own.p99, "max_ms": own.max, "errors": own.errors}, "floor_cpu_us_per_request": own_us},
            "wrk": wrk_floor,
        });
    }
    // The same closed loop from wrk, when asked for: mock alone, then through Skein.
    let mut wrk_results = Value::Null;
    if let Some(wrk) = &args.wrk {
        let n = args.closed_loop_connections.max(1);
        // On the blocking pool: the mock answers on this runtime meanwhile.
        let run = |url: String, token: String| {
            let (wrk, body) = (wrk.clone(), body.to_string());
            let (threads, secs) = (args.wrk_threads, args.closed_loop_secs);
            tokio::task::spawn_blocking(move || {
                skein_bench::wrk::run(&wrk, &url, &token, &body, threads, n, secs)
            })
        };
        let alone = run(direct_url.clone(), mock.key.clone()).await??;
        let backlog_before = backlog(&client, &base).await;
        let server_before = cpu_secs(server.child.id())?;
        let through = run(relay_url.clone(), key.clone()).await??;
        let server_cpu = cpu_secs(server.child.id())? - server_before;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (waits, dropped) = match (backlog_before, backlog(&client, &base).await) {
            (Some(before), Some(after)) => (
                after.settle_waits - before.settle_waits,
                after.log_dropped - before.log_dropped,
            ),
            _ => (0.0, 0.0),
        };
        let skein_us = if through.requests > 0 {
            server_cpu / through.requests as f64 * 1e6
        } else {
            0.0
        };
        for (name, r) in [
            ("wrk, mock alone", &alone),
            ("wrk, through Skein", &through),
        ] {
            print_closed_loop(name, n, r.per_sec, r.p50_ms, r.p99_ms, r.errors);
        }
        println!(
            "wrk through Skein: {skein_us:.0} µs of Skein CPU per request; {waits:.0} answers waited for the ledger; request-log rows dropped: {dropped:.0}"
        );
        wrk_results = json!({
            "connections": n,
            "threads": args.wrk_threads,
            "seconds": args.closed_loop_secs,
            "mock_alone": alone.to_json(),
            "through_skein": through.to_json(),
            "skein_cpu_us_per_request": skein_us,
            "answers_that_waited_for_the_ledger": waits,
            "request_log_rows_dropped": dropped,
        });
    }
    let duration = Duration::from_secs(if args.skip_fixed_rate {
        0
    } else {
        args.seconds
    });
    let direct = fixed_rate(
        &client,
        make(direct_url.clone(), mock.key.clone(), body.clone()),
        args.rate,
        duration,
    )
    .await;
    let relayed = fixed_rate(
        &client,
        make(relay_url.clone(), key.clone(), body.clone()),
        args.rate,
        duration,
    )
    .await;
    let direct_stream = fixed_rate(
        &client,
        make(direct_url, mock.key.clone(), stream_body.clone()),
        args.rate,
        duration,
    )
    .await;
    let relayed_stream = fixed_rate(
        &client,
        make(relay_url.clone(), key.clone(), stream_body),
        args.rate,
        duration,
    )
    .await;
    let rss = rss_kib(server.child.id())? as f64 / 1024.0;

    // Saturation: rising rates through Skein until the p99, the errors or the rate itself
    // break; the last step that held is the sustainable rate on this machine.
    let mut steps = Vec::new();
    let mut sustained = None;
    if args.saturate_step > 0 {
        let mut rate = args.rate;
        loop {
            let r = fixed_rate(
                &client,
                make(relay_url.clone(), key.clone(), body.clone()),
                rate,
                Duration::from_secs(args.saturate_secs),
            )
            .await;
            let sent = f64::from(rate) * args.saturate_secs as f64;
            let held = r.p99 <= args.p99_limit_ms
                && (r.errors as f64) <= sent * 0.01
                && r.achieved >= f64::from(rate) * 0.95;
            println!(
                "saturation {rate:>6} req/s: achieved {:>6.0}  p50 {:.3} ms  p99 {:.3} ms  errors {}  {}",
                r.achieved,
                r.p50,
                r.p99,
                r.errors,
                if held { "held" } else { "broke" }
            );
            steps.push(json!({"rate": rate, "achieved": r.achieved, "p50_ms": r.p50, "p99_ms": r.p99, "errors": r.errors, "held": held}));
            if !held || rate >= 100_000 {
                break;
            }
            sustained = Some(rate);
            rate += args.saturate_step;
        }
    }

    // Memory with many streams open at once: the mock pauses between pieces, so each stream
    // stays open for about ten seconds while they are all in flight.
    let mut open_streams_rss = None;
    let mut streams_open = 0;
    if args.open_streams > 0 {
        mock.set_stream_pause(Duration::from_millis(400));
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::with_capacity(args.open_streams);
        let request = make(
            format!("{base}/v1/chat/completions"),
            key.clone(),
            json!({"model": "bench-model",
            "messages": [{"role": "user", "content": "hold this stream open"}], "max_tokens": 16, "stream": true}),
        );
        for _ in 0..args.open_streams {
            let req = request(&client);
            let opened = opened.clone();
            tasks.push(tokio::spawn(async move {
                if let Ok(resp) = req.send().await {
                    opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = resp.bytes().await;
                }
            }));
        }
        let mut peak = 0u64;
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(800)).await;
            peak = peak.max(rss_kib(server.child.id())?);
        }
        streams_open = opened.load(std::sync::atomic::Ordering::Relaxed);
        open_streams_rss = Some(peak as f64 / 1024.0);
        for task in tasks {
            let _ = task.await;
        }
        mock.set_stream_pause(Duration::ZERO);
    }

    // Memory after the load has stopped: what the allocator gave back to the OS.
    let mut idle_rss = None;
    let mut idle_report = Value::Null;
    if args.idle_secs > 0 {
        drop(client);
        tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
        idle_rss = Some(rss_kib(server.child.id())? as f64 / 1024.0);
        // What the idle server holds, by part, through a fresh client (one connection).
        let reader = reqwest::Client::new();
        idle_report = skein_bench::memory_report(&reader, &base, &root_access, server.child.id())
            .await
            .unwrap_or_else(|error| json!({"error": error.to_string()}));
        println!(
            "idle breakdown: {}",
            skein_bench::breakdown_line(&idle_report)
        );
        skein_bench::run_idle_hook(server.child.id());
    }

    let show = |name: &str, r: &FixedRate| {
        println!(
            "{name:<28} achieved {:>6.0} req/s  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  errors {}",
            r.achieved, r.p50, r.p90, r.p99, r.max, r.errors
        )
    };
    if !args.skip_fixed_rate {
        show("direct to mock", &direct);
        show("through Skein", &relayed);
        show("direct to mock (stream)", &direct_stream);
        show("through Skein (stream)", &relayed_stream);
        println!(
            "added by Skein: p50 {:.3} ms, p99 {:.3} ms (whole); p50 {:.3} ms, p99 {:.3} ms (small stream, whole body)",
            relayed.p50 - direct.p50,
            relayed.p99 - direct.p99,
            relayed_stream.p50 - direct_stream.p50,
            relayed_stream.p99 - direct_stream.p99
        );
    }
    println!("Skein RSS after the runs: {rss:.1} MiB");
    if let Some(peak) = open_streams_rss {
        println!(
            "{} streams requested at once, {streams_open} open: Skein peak RSS {peak:.1} MiB",
            args.open_streams
        );
    }
    if let Some(idle) = idle_rss {
        println!("after {} s idle: Skein RSS {idle:.1} MiB", args.idle_secs);
    }
    if let Some((alone, through, skein_us)) = &closed_summary {
        println!(
            "saturation, closed loop, {} connections: mock alone {:.0} req/s (p50 {:.3} / p99 {:.3} ms), through Skein {:.0} req/s (p50 {:.3} / p99 {:.3} ms, errors {}, {skein_us:.0} µs of Skein CPU each)",
            args.closed_loop_connections,
            alone.achieved,
            alone.p50,
            alone.p99,
            through.achieved,
            through.p50,
            through.p99,
            through.errors
        );
    }
    if let Some(rate) = sustained {
        println!(
            "saturation: {rate} req/s held (p99 ≤ {} ms, errors ≤ 1 %), routing strategy {}",
            args.p99_limit_ms, args.strategy
        );
    }
    let row = |r: &FixedRate| json!({"achieved": r.achieved, "p50_ms": r.p50, "p90_ms": r.p90, "p99_ms": r.p99, "max_ms": r.max, "errors": r.errors});
    let results = json!({
        "benchmark": "relay",
        "machine": machine(),
        "rate": args.rate,
        "seconds": args.seconds,
        "direct": row(&direct),
        "relayed": row(&relayed),
        "direct_stream": row(&direct_stream),
        "relayed_stream": row(&relayed_stream),
        "added_p50_ms": relayed.p50 - direct.p50,
        "added_p99_ms": relayed.p99 - direct.p99,
        "skein_rss_mib": rss,
        "open_streams": args.open_streams,
        "open_streams_confirmed": streams_open,
        "open_streams_peak_rss_mib": open_streams_rss,
        "idle_secs": args.idle_secs,
        "idle_rss_mib": idle_rss,
        "idle_report": idle_report,
        "strategy": args.strategy,
        "saturation_steps": steps,
        "saturation_sustained_rate": sustained,
        "saturation_p99_limit_ms": args.p99_limit_ms,
        "closed_loop": closed,
        "closed_loop_wrk": wrk_results,
        "closed_loop_floor": floor,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
