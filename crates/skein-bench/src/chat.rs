//! Chat benchmark: the time to first token of a chat answer against the relay's own stream for
//! the same request (what Chat adds: auth, the tree, saving messages, context building), and
//! the time to load the history of a conversation of 2,000 messages with 50 branches. Run
//! `cargo build --release -p skein -p skein-bench && ./target/release/bench-chat`; results go
//! to `target/bench/chat.json`.

use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};
use skein_bench::{default_binary, machine, ms, post, start, wait_ready};
use skein_testkit::mock_openai::MockOpenAi;

/// Measures what the Chat service adds.
#[derive(Parser)]
struct Args {
    /// Answers timed on each path.
    #[arg(long, default_value_t = 400)]
    answers: usize,
    /// History loads timed.
    #[arg(long, default_value_t = 300)]
    loads: usize,
    /// Messages in the big conversation.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Branches in the big conversation.
    #[arg(long, default_value_t = 50)]
    branches: usize,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/chat.json")]
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

/// Sends a request and answers the time until `marker` first appears in the body, after
/// reading the body to its end.
async fn time_to(request: reqwest::RequestBuilder, marker: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = request.send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "status {}",
        response.status()
    );
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    let mut first = None;
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk?));
        if first.is_none() && seen.contains(marker) {
            first = Some(started.elapsed());
        }
    }
    first.ok_or_else(|| anyhow::anyhow!("no {marker} in {seen}"))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    ms(sorted[at.min(sorted.len() - 1)])
}

/// A Skein export of one conversation: a chain of `messages - branches` turns and `branches`
/// extra answers beside answers spread along it.
fn big_conversation(messages: usize, branches: usize) -> Value {
    let chain = messages - branches;
    let mut list = Vec::with_capacity(messages);
    let text =
        "A message of ordinary length, about as long as a chat turn usually is, with some words.";
    for i in 0..chain {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        let parent = (i > 0).then(|| format!("m{}", i - 1));
        list.push(json!({"id": format!("m{i}"), "parent_id": parent, "role": role, "content": format!("{text} {i}"),
            "created_at": skein_core::ids::ms_to_rfc3339(1_700_000_000_000 + i as i64)}));
    }
    for b in 0..branches {
        // Beside the answer at an odd position spread along the chain.
        let beside = (b * (chain / branches.max(1))) | 1;
        let parent = format!("m{}", beside - 1);
        list.push(json!({"id": format!("b{b}"), "parent_id": parent, "role": "assistant", "content": format!("branch {b}"),
            "created_at": skein_core::ids::ms_to_rfc3339(1_700_000_000_000 + (chain + b) as i64)}));
    }
    json!({"format": "skein.conversation.v1", "title": "big", "active_leaf_id": format!("m{}", chain - 1), "messages": list})
}

async fn run(args: Args) -> anyhow::Result<()> {
    let binary = std::fs::canonicalize(default_binary())?;
    let mock = MockOpenAi::start("sk-bench-upstream").await;
    mock.stop_recording();
    let server = start(
        &binary,
        &[
            ("SKEIN_CHAT__TITLE_MODEL", ""),
            ("SKEIN_LIMITS__API_PER_KEY_PER_MINUTE", "100000000"),
        ],
    )?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
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
    post(&client, format!("{base}/api/v1/channels"), &access, json!({
        "type": "openai", "name": "mock", "base_url": mock.base_url, "keys": [mock.key], "models": ["bench-model"]})).await?;
    let r = client
        .put(format!("{base}/api/v1/admin/pricing/bench-model"))
        .bearer_auth(&access)
        .json(&json!({"input_per_mtok": 1_000_000, "output_per_mtok": 2_000_000, "cache_read_per_mtok": 0, "cache_write_per_mtok": 0, "per_call": 0}))
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

    // Time to first token: the same one-message request through the relay (an API key) and
    // through Chat (a new conversation each time, so every answer is a first answer).
    let question = "hello chat benchmark";
    let relay_request = || {
        client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "bench-model", "stream": true, "messages": [{"role": "user", "content": question}]}))
    };
    let mut conversations = Vec::with_capacity(args.answers + 50);
    for _ in 0..args.answers + 50 {
        let c = post(
            &client,
            format!("{base}/api/v1/chat/conversations"),
            &access,
            json!({"model": "bench-model"}),
        )
        .await?;
        conversations.push(c["id"].as_str().unwrap_or_default().to_string());
    }
    let chat_request = |conversation: &str| {
        client
            .post(format!(
                "{base}/api/v1/chat/conversations/{conversation}/messages"
            ))
            .bearer_auth(&access)
            .json(&json!({"content": question}))
    };
    // Warm both paths.
    for conversation in &conversations[..50] {
        time_to(relay_request(), "\"content\":\"echo").await?;
        time_to(chat_request(conversation), "event: delta").await?;
    }
    let mut relay_ttft = Vec::with_capacity(args.answers);
    let mut chat_ttft = Vec::with_capacity(args.answers);
    for conversation in &conversations[50..] {
        relay_ttft.push(time_to(relay_request(), "\"content\":\"echo").await?);
        chat_ttft.push(time_to(chat_request(conversation), "event: delta").await?);
    }
    relay_ttft.sort();
    chat_ttft.sort();

    // History of a big branched conversation.
    let imported = post(
        &client,
        format!("{base}/api/v1/chat/import"),
        &access,
        big_conversation(args.messages, args.branches),
    )
    .await?;
    let big = imported["ids"][0].as_str().unwrap_or_default().to_string();
    let history_url = format!("{base}/api/v1/chat/conversations/{big}/messages");
    let first = client
        .get(&history_url)
        .bearer_auth(&access)
        .send()
        .await?
        .json::<Value>()
        .await?;
    let path_len = first["messages"].as_array().map(Vec::len).unwrap_or(0);
    let mut loads = Vec::with_capacity(args.loads);
    for _ in 0..args.loads {
        let started = Instant::now();
        let r = client.get(&history_url).bearer_auth(&access).send().await?;
        anyhow::ensure!(r.status().is_success(), "history failed");
        r.bytes().await?;
        loads.push(started.elapsed());
    }
    loads.sort();

    let (relay_p50, relay_p99) = (percentile(&relay_ttft, 0.5), percentile(&relay_ttft, 0.99));
    let (chat_p50, chat_p99) = (percentile(&chat_ttft, 0.5), percentile(&chat_ttft, 0.99));
    let (load_p50, load_p99) = (percentile(&loads, 0.5), percentile(&loads, 0.99));
    println!(
        "time to first token, relay stream : p50 {relay_p50:.3} ms  p99 {relay_p99:.3} ms  ({} answers)",
        relay_ttft.len()
    );
    println!("time to first token, chat         : p50 {chat_p50:.3} ms  p99 {chat_p99:.3} ms");
    println!(
        "added by chat                     : p50 {:.3} ms  p99 {:.3} ms",
        chat_p50 - relay_p50,
        chat_p99 - relay_p99
    );
    println!(
        "history of {} messages, {} branches ({path_len} on the active path): p50 {load_p50:.3} ms  p99 {load_p99:.3} ms",
        args.messages, args.branches
    );
    let results = json!({
        "benchmark": "chat",
        "machine": machine(),
        "answers": args.answers,
        "relay_ttft_p50_ms": relay_p50, "relay_ttft_p99_ms": relay_p99,
        "chat_ttft_p50_ms": chat_p50, "chat_ttft_p99_ms": chat_p99,
        "added_ttft_p50_ms": chat_p50 - relay_p50, "added_ttft_p99_ms": chat_p99 - relay_p99,
        "history_messages": args.messages, "history_branches": args.branches, "history_path_len": path_len,
        "history_load_p50_ms": load_p50, "history_load_p99_ms": load_p99,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
