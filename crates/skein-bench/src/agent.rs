//! Agent benchmark: market search and assistant-page reads over 50,000 published public
//! assistants, timed at the store (what the handlers run, without HTTP: the market in memory
//! and the page's rows, beside the SQL-only path used before it is loaded), on SQLite and,
//! with `--postgres-url`, on PostgreSQL. Prints p50/p99 per query and writes
//! `target/bench/agent.json`. Run `cargo run --release -p skein-bench --bin bench-agent`
//! (a debug build times the same SQL; the database engine does the work).

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use skein_agent::market_index::MarketIndex;
use skein_agent::store::{self, MarketQuery, Sort};
use skein_bench::{machine, ms};
use skein_db::Db;

/// Measures the Agent service's market queries.
#[derive(Parser)]
struct Args {
    /// Published public assistants to seed.
    #[arg(long, default_value_t = 50_000)]
    agents: usize,
    /// Timed runs per query.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Also run on this PostgreSQL server (a fresh database is created on it).
    #[arg(long)]
    postgres_url: Option<String>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/agent.json")]
    out: std::path::PathBuf,
}

const EN: &[&str] = &[
    "translator",
    "writer",
    "coder",
    "reviewer",
    "teacher",
    "analyst",
    "planner",
    "designer",
    "marketing",
    "travel",
    "legal",
    "finance",
    "health",
    "poetry",
    "history",
    "science",
];
const ZH: &[&str] = &[
    "翻译", "写作", "编程", "审稿", "老师", "分析", "规划", "设计", "营销", "旅行", "法律", "财务",
    "健康", "诗歌", "历史", "科学",
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut results = serde_json::Map::new();
    let sqlite = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    results.insert("sqlite".into(), backend(&sqlite, &args).await?);
    if let Some(url) = &args.postgres_url {
        let name = format!("skein_bench_agent_{}", std::process::id());
        let admin = Db::connect(url, 2).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(admin.pool())
            .await?;
        let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
        let result = backend(&format!("{base}/{name}"), &args).await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(admin.pool())
            .await?;
        results.insert("postgres".into(), result?);
    }
    let report =
        json!({"agents": args.agents, "runs": args.runs, "machine": machine(), "results": results});
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    println!("written to {}", args.out.display());
    Ok(())
}

async fn backend(url: &str, args: &Args) -> anyhow::Result<serde_json::Value> {
    let db = Db::connect(url, 4).await?;
    db.migrate(&[&skein_agent::MIGRATIONS]).await?;
    let label = if url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let started = Instant::now();
    seed(&db, args.agents).await?;
    if label == "postgres" {
        // A live database has statistics (autovacuum gathers them); a fresh one needs them
        // before its plans mean anything.
        sqlx::query("ANALYZE").execute(db.pool()).await?;
    }
    println!(
        "{label}: seeded {} assistants in {:.1} s",
        args.agents,
        started.elapsed().as_secs_f64()
    );
    let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM agents ORDER BY id LIMIT 1000")
        .fetch_all(db.pool())
        .await?;
    let mut out = serde_json::Map::new();
    let cases: &[(&str, &[&str], Sort)] = &[
        ("search_zh", &["翻译"], Sort::Trending),
        ("search_en", &["translator"], Sort::MostLiked),
        ("search_two_terms", &["翻译", "travel"], Sort::Newest),
        ("search_miss", &["zzzz"], Sort::Trending),
        ("browse_trending", &[], Sort::Trending),
        ("browse_newest", &[], Sort::Newest),
    ];
    // What the service serves: the market read into memory once (and every 30 s), each
    // search answered from it, then the page's rows read by id.
    let index = MarketIndex::default();
    let t = Instant::now();
    let cards = index.reload(&db).await?;
    let load_ms = ms(t.elapsed());
    println!("{label}: read {cards} cards into memory in {load_ms:.1} ms");
    out.insert("memory_load_ms".into(), json!(load_ms));
    // The periodic comparison when nothing changed (what every instance pays each 30 s).
    let t = Instant::now();
    index.sync(&db).await?;
    let sync_ms = ms(t.elapsed());
    println!("{label}: compared {cards} cards with the tables in {sync_ms:.1} ms");
    out.insert("memory_sync_ms".into(), json!(sync_ms));
    for (name, terms, sort) in cases {
        let terms: Vec<String> = terms.iter().map(|t| t.to_string()).collect();
        let query = MarketQuery {
            terms: &terms,
            category: None,
            featured: false,
            sort: *sort,
            limit: 24,
            offset: 0,
        };
        let mut times = Vec::with_capacity(args.runs);
        let mut sql_times = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            // As the handler does: a search from memory and its page's rows; browsing from
            // the page's index with the total counted in memory.
            let t = Instant::now();
            match index.search(&query) {
                Some((ids, _)) => {
                    store::market_rows(&db, &ids).await?;
                }
                None => {
                    let total = index
                        .browse_total(&query)
                        .ok_or_else(|| anyhow::anyhow!("the market was not loaded"))?;
                    store::market_counted(&db, &query, Some(total)).await?;
                }
            }
            times.push(t.elapsed());
            let t = Instant::now();
            store::market(&db, &query).await?;
            sql_times.push(t.elapsed());
        }
        out.insert((*name).into(), summary(label, name, &mut times));
        let sql = format!("{name}_sql");
        out.insert(sql.clone(), summary(label, &sql, &mut sql_times));
    }
    // A like: the card read back into memory.
    let mut times = Vec::with_capacity(args.runs);
    for i in 0..args.runs {
        let t = Instant::now();
        index.refresh(&db, &ids[i % ids.len()].0).await?;
        times.push(t.elapsed());
    }
    out.insert(
        "card_refresh".into(),
        summary(label, "card_refresh", &mut times),
    );
    // The assistant page: the row, then its current version's spec.
    let mut times = Vec::with_capacity(args.runs);
    for i in 0..args.runs {
        let id = &ids[i % ids.len()].0;
        let t = Instant::now();
        let row = store::agent(&db, id).await?;
        if let Some(v) = row.and_then(|r| r.current_version) {
            store::version(&db, id, v).await?;
        }
        times.push(t.elapsed());
    }
    out.insert(
        "assistant_page".into(),
        summary(label, "assistant_page", &mut times),
    );
    db.close().await;
    Ok(out.into())
}

fn summary(label: &str, name: &str, times: &mut [Duration]) -> serde_json::Value {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let (p50, p99) = (ms(at(0.50)), ms(at(0.99)));
    println!("{label} {name:>18}: p50 {p50:.2} ms, p99 {p99:.2} ms");
    json!({"p50_ms": p50, "p99_ms": p99})
}

/// Inserts `n` published public assistants (and their first versions) in one transaction,
/// with names, descriptions and tags mixing the English and Chinese words searched for.
async fn seed(db: &Db, n: usize) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    let now = skein_core::ids::now_ms();
    for i in 0..n {
        let id = format!("bench-{i:06}");
        let (en, zh) = (EN[i % EN.len()], ZH[(i / 7) % ZH.len()]);
        let name = format!("{zh}{en} {i}");
        let description = format!("A {en} assistant for {zh} work, number {i}.");
        let tags = format!("{en}\n{zh}");
        let search = format!("{name}\n{description}\n{en} {zh}").to_lowercase();
        let published = now - (i as i64) * 60_000;
        sqlx::query(
            "INSERT INTO agents (id, owner_id, visibility, draft, current_version, latest_version, card_name, \
             card_avatar, card_description, card_tags, search_text, likes, conversations, created_at, updated_at, published_at) \
             VALUES ($1, $2, 'public', '{}', 1, 1, $3, '🤖', $4, $5, $6, $7, $8, $9, $9, $9)",
        )
        .bind(&id)
        .bind(format!("owner-{}", i % 500))
        .bind(&name)
        .bind(&description)
        .bind(&tags)
        .bind(&search)
        .bind((i % 97) as i64)
        .bind((i % 1013) as i64)
        .bind(published)
        .execute(&mut *tx)
        .await?;
        let spec = json!({"name": name, "description": description, "system_prompt": "You help.", "tags": [en, zh]});
        sqlx::query(
            "INSERT INTO agent_versions (agent_id, version, spec, changelog, author_id, created_at) \
             VALUES ($1, 1, $2, '', $3, $4)",
        )
        .bind(&id)
        .bind(spec.to_string())
        .bind(format!("owner-{}", i % 500))
        .bind(published)
        .execute(&mut *tx)
        .await?;
        store::index_terms(&mut tx, &id, &search).await?;
    }
    tx.commit().await?;
    store::refresh_trends(db, now).await?;
    Ok(())
}
