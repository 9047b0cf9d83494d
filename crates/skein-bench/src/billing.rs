//! Billing benchmark: reserve + settle throughput and latency with many concurrent callers,
//! on SQLite and on PostgreSQL, followed by the ledger audit.
//!
//! Run `cargo run --release -p skein-bench --bin bench-billing`. PostgreSQL is reached at
//! `SKEIN_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`; a
//! scratch database is created and dropped). Results go to `target/bench/billing.json`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use skein_billing::BillingConfig;
use skein_billing::{BillingService, Credit};
use skein_core::api::{BillingApi, ReserveRequest, Usage, UserDirectory};
use skein_core::{ApiError, ids::new_id};
use skein_db::Db;
use skein_db::sqlx::{Connection, Executor, PgConnection};

/// Measures reserve + settle through the Billing service's API, as the Relay calls it.
#[derive(Parser)]
struct Args {
    /// Concurrent callers.
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// Seconds per backend.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Users the callers spread over.
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// Skip PostgreSQL.
    #[arg(long)]
    sqlite_only: bool,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/billing.json")]
    out: std::path::PathBuf,
}

/// The benchmark's users exist by construction.
struct Everyone;

#[async_trait::async_trait]
impl UserDirectory for Everyone {
    async fn user_exists(&self, _user_id: &str) -> Result<bool, ApiError> {
        Ok(true)
    }

    async fn user_active(&self, _user_id: &str) -> Result<bool, ApiError> {
        Ok(true)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut results = Vec::new();
    let dir = tempfile::tempdir()?;
    let sqlite_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    results.push(run("sqlite", &sqlite_url, &args).await?);
    if !args.sqlite_only {
        let admin = std::env::var("SKEIN_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("skein_bench_{}", std::process::id());
        let mut conn = PgConnection::connect(&admin).await?;
        conn.execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
            .await?;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        let outcome = run("postgres", &format!("{base}/{name}"), &args).await;
        conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await?;
        results.push(outcome?);
    }
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(
        &args.out,
        serde_json::to_string_pretty(&json!({ "benchmark": "billing", "runs": results }))?,
    )?;
    println!("wrote {}", args.out.display());
    Ok(())
}

async fn run(backend: &str, url: &str, args: &Args) -> anyhow::Result<serde_json::Value> {
    let db = Db::connect(url, 16).await?;
    db.migrate(&[&skein_billing::MIGRATIONS]).await?;
    let billing = BillingService::start(db.clone(), BillingConfig::default(), Arc::new(Everyone));
    let users: Vec<String> = (0..args.users).map(|_| new_id()).collect();
    for user in &users {
        billing
            .credit(Credit {
                user_id: user.clone(),
                kind: "topup",
                amount: 1_000_000_000,
                reference: None,
                actor_id: None,
                memo: Some("benchmark".into()),
                idempotency_key: None,
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut callers = Vec::new();
    for c in 0..args.callers {
        let billing = billing.clone();
        let user = users[c % users.len()].clone();
        callers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut charged = 0i64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let reserve = ReserveRequest {
                    user_id: user.clone(),
                    key: None,
                    amount: 2_000,
                    min_amount: 2_000,
                    reference: String::new(),
                };
                let outcome = match billing.reserve(reserve).await {
                    Ok(r) => {
                        let cost = 1 + (t.elapsed().subsec_nanos() as i64 % 1_999);
                        let usage = Usage {
                            cost,
                            model: "bench-model".into(),
                            request_id: r.id.clone(),
                            ..Usage::default()
                        };
                        billing.settle(&r.id, usage).await.map(|s| s.charged)
                    }
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(c) => {
                        charged += c;
                        latencies.push(t.elapsed());
                    }
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors, charged)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut charged = 0;
    for caller in callers {
        let (l, e, c) = caller.await?;
        latencies.extend(l);
        errors += e;
        charged += c;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    let drift = billing.verify().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{backend}: {} callers, {:.0} settled requests/s (reserve + settle), p50 {:.2} ms, p99 {:.2} ms, errors {errors}, verify: {}",
        args.callers,
        rate,
        pick(0.5),
        pick(0.99),
        if drift.is_empty() {
            "clean".to_string()
        } else {
            format!("{} problems", drift.len())
        }
    );
    db.close().await;
    Ok(json!({
        "backend": backend,
        "callers": args.callers,
        "seconds": elapsed.as_secs_f64(),
        "settled": latencies.len(),
        "settled_per_second": rate,
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "errors": errors,
        "charged": charged,
        "verify_clean": drift.is_empty(),
        "target_settled_per_second": 5000,
    }))
}
