//! Tool-call overhead benchmark: what a plugin tool call costs beyond the tool's own time.
//! One OpenAPI tool (a GET against a tiny local HTTP server) is called `--calls` times
//! through `PluginApi::execute` — working out the caller's tools from the database, parsing
//! the arguments, counting the call, the SSRF check and the request — free, and again with a
//! price (a hold, the settle through the Billing ledger and the call's charge row); and the
//! same GET made directly with a fresh client, as the tool makes it. Overhead = the tool
//! call's percentile less the direct GET's. SQLite in a temporary directory, in process.
//! Run `cargo run --release -p skein-bench --bin bench-tools`; results go to
//! `target/bench/tools.json`. The target is 5 ms p99 per step beyond the tool's own time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use skein_bench::{machine, ms};
use skein_billing::{BillingConfig, BillingService, Credit};
use skein_core::ApiError;
use skein_core::api::{PluginApi, ToolCaller, UserDirectory};
use skein_db::Db;
use skein_plugin::store::{self, PluginRow};
use skein_plugin::{PluginService, Vault};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Measures tool-call overhead.
#[derive(Parser)]
struct Args {
    /// Calls timed per variant.
    #[arg(long, default_value_t = 500)]
    calls: usize,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/tools.json")]
    out: std::path::PathBuf,
}

/// The benchmark's user exists by construction.
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

/// A tiny HTTP/1.1 server answering every request with the same small JSON, one
/// connection per request (the tool's client does not keep connections).
async fn serve() -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut read = 0;
                while read < buf.len() {
                    match socket.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                    if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let body = br#"{"sky":"sunny","celsius":21}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body).await;
            });
        }
    });
    Ok(address)
}

fn percentiles(mut times: Vec<Duration>) -> serde_json::Value {
    times.sort();
    let at = |p: f64| {
        let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
        ms(times[i])
    };
    json!({"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": at(1.0)})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let db = Db::connect(&url, 8).await?;
    db.migrate(&[&skein_billing::MIGRATIONS, &skein_plugin::MIGRATIONS])
        .await?;
    let billing = BillingService::start(db.clone(), BillingConfig::default(), Arc::new(Everyone));
    let user = "bench-user".to_string();
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
    let plugins = PluginService::new(
        db.clone(),
        Vault::derived(&[7u8; 32]),
        None,
        None,
        Some(billing.clone() as Arc<dyn skein_core::api::BillingApi>),
        skein_plugin::PluginConfig::default(),
    )
    .map_err(anyhow::Error::msg)?;
    let address = serve().await?;
    store::set_setting(&db, "admin", r#"{"allow_private_addresses": true}"#).await?;
    let tools = json!([{"name": "get_weather", "description": "Weather", "method": "GET", "path": "/weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "params": [{"name": "city", "location": "query", "required": true}], "body": false}]);
    let now = skein_core::ids::now_ms();
    let row = PluginRow {
        id: "bench-weather".into(),
        owner_id: None,
        name: "Weather".into(),
        description: String::new(),
        icon: String::new(),
        category: "tools".into(),
        kind: "openapi".into(),
        builtin: None,
        base_url: format!("http://{address}"),
        tools: tools.to_string(),
        auth_kind: "none".into(),
        auth_name: String::new(),
        auth_secret: None,
        settings_schema: "{}".into(),
        required_secrets: "[]".into(),
        calls: 0,
        price_per_call: 0,
        tool_prices: "{}".into(),
        requires_approval: 0,
        created_at: now,
        updated_at: now,
    };
    store::insert(&db, &row).await?;
    store::set_enablement(&db, &user, &row.id, true, "{}", None, now).await?;

    let caller = |key: String| ToolCaller {
        user_id: user.clone(),
        conversation_id: Some("bench-conversation".into()),
        request_id: "bench".into(),
        bound_plugin_ids: Vec::new(),
        call_key: key,
    };
    let deadline = Duration::from_secs(30);
    let arguments = r#"{"city": "Paris"}"#;

    // Warm-up: the first calls open connections and fill caches.
    for i in 0..20 {
        let out = plugins
            .execute(
                &caller(format!("warm-{i}")),
                "get_weather",
                arguments,
                deadline,
            )
            .await;
        anyhow::ensure!(!out.is_error, "the tool failed: {}", out.content);
    }

    let mut direct = Vec::with_capacity(args.calls);
    for _ in 0..args.calls {
        let started = Instant::now();
        let client = reqwest::Client::builder().no_proxy().build()?;
        let body = client
            .get(format!("http://{address}/weather?city=Paris"))
            .send()
            .await?
            .bytes()
            .await?;
        direct.push(started.elapsed());
        anyhow::ensure!(body.starts_with(b"{\"sky\""), "unexpected answer");
    }

    let mut free = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let started = Instant::now();
        let out = plugins
            .execute(
                &caller(format!("free-{i}")),
                "get_weather",
                arguments,
                deadline,
            )
            .await;
        free.push(started.elapsed());
        anyhow::ensure!(!out.is_error, "the tool failed: {}", out.content);
    }

    store::update(
        &db,
        &row.id,
        &store::PluginPatch {
            price_per_call: Some(10),
            ..store::PluginPatch::default()
        },
        now,
    )
    .await?;
    let mut paid = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let started = Instant::now();
        let out = plugins
            .execute(
                &caller(format!("paid-{i}")),
                "get_weather",
                arguments,
                deadline,
            )
            .await;
        paid.push(started.elapsed());
        anyhow::ensure!(!out.is_error, "the tool failed: {}", out.content);
    }
    // Every paid call was charged once: 10 each.
    let charged: (i64,) = skein_db::sqlx::query_as(
        "SELECT COUNT(*) FROM plugin_tool_charges WHERE status = 'charged'",
    )
    .fetch_one(db.pool())
    .await?;
    anyhow::ensure!(
        charged.0 as usize == args.calls,
        "{} of {} paid calls were charged",
        charged.0,
        args.calls
    );

    let direct = percentiles(direct);
    let free = percentiles(free);
    let paid = percentiles(paid);
    let over = |variant: &serde_json::Value, key: &str| {
        let v = variant[key].as_f64().unwrap_or(0.0) - direct[key].as_f64().unwrap_or(0.0);
        (v * 1000.0).round() / 1000.0
    };
    let overhead = json!({
        "free": {"p50_ms": over(&free, "p50_ms"), "p99_ms": over(&free, "p99_ms")},
        "paid": {"p50_ms": over(&paid, "p50_ms"), "p99_ms": over(&paid, "p99_ms")},
    });
    println!("direct GET:       {direct}");
    println!("free tool call:   {free}");
    println!("paid tool call:   {paid}");
    println!("overhead (p50/p99 less the direct GET's): {overhead}");
    let results = json!({
        "benchmark": "tools",
        "machine": machine(),
        "backend": "sqlite",
        "calls": args.calls,
        "direct_get": direct,
        "free_tool_call": free,
        "paid_tool_call": paid,
        "overhead": overhead,
        "target_overhead_p99_ms": 5,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
