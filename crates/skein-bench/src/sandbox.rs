//! Code sandbox benchmark: the cold start of one run (a fresh bubblewrap sandbox with its
//! namespaces, tmpfs mounts, seccomp filter and rlimits, the runner, and the program) for a
//! Python `print` and, when Node.js is installed, a JavaScript `console.log`, from the call
//! to the outcome, as p50/p90/p99 over `--runs` runs; plus the same Python program run
//! directly, without the sandbox, for the sandbox's own share. Run
//! `cargo run --release -p skein-bench --bin bench-sandbox`; results go to
//! `target/bench/sandbox.json`. The target is 300 ms for Python.

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use skein_bench::{machine, ms};
use skein_plugin::sandbox::{Language, Limits, Sandbox};

/// Measures the code sandbox's cold start.
#[derive(Parser)]
struct Args {
    /// Runs timed per language.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/sandbox.json")]
    out: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

fn percentiles(mut times: Vec<Duration>) -> serde_json::Value {
    times.sort();
    let at = |p: f64| {
        let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
        ms(times[i])
    };
    json!({"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": at(1.0)})
}

async fn time_runs(
    sandbox: &Sandbox,
    language: Language,
    code: &str,
    runs: usize,
) -> anyhow::Result<serde_json::Value> {
    let limits = Limits::default();
    // One warm-up: the first exec reads the binaries from disk into the page cache.
    sandbox
        .run(language, code, Vec::new(), &limits)
        .await
        .map_err(anyhow::Error::msg)?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let outcome = sandbox
            .run(language, code, Vec::new(), &limits)
            .await
            .map_err(anyhow::Error::msg)?;
        times.push(started.elapsed());
        anyhow::ensure!(outcome.stdout == "42\n", "unexpected output: {outcome:?}");
    }
    Ok(percentiles(times))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let sandbox = Sandbox::probe().await.map_err(anyhow::Error::msg)?;
    let python = time_runs(&sandbox, Language::Python, "print(6 * 7)", args.runs).await?;
    println!("python cold start: {python}");
    let javascript = if sandbox.has_javascript() {
        let js = time_runs(
            &sandbox,
            Language::Javascript,
            "console.log(6 * 7)",
            args.runs,
        )
        .await?;
        println!("javascript cold start: {js}");
        js
    } else {
        serde_json::Value::Null
    };
    // The same program without any sandbox: what Python itself costs.
    let mut bare = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let started = Instant::now();
        let out = tokio::process::Command::new("/usr/bin/python3")
            .args(["-c", "print(6 * 7)"])
            .output()
            .await?;
        bare.push(started.elapsed());
        anyhow::ensure!(out.stdout == b"42\n", "bare python failed");
    }
    let bare = percentiles(bare);
    println!("python without the sandbox: {bare}");
    let results = json!({
        "machine": machine(),
        "runs": args.runs,
        "python": python,
        "javascript": javascript,
        "python_unsandboxed": bare,
        "target_python_ms": 300,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
