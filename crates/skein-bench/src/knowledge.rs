//! Knowledge benchmark: the retrieval evaluation (recall@5 and MRR by BM25 only, vectors only,
//! hybrid, and hybrid + rerank; Chinese and English apart) with the mock embedding upstream and
//! with the built-in model `skein-local-embed`, on SQLite and PostgreSQL; then the search
//! latency (p50/p99) of one base of 100,000 chunks on each database, lexical and hybrid
//! without rerank, through `KnowledgeService::search_base` (the code the search route runs).
//!
//! `cargo run --release -p skein-bench --bin bench-knowledge`; the built-in model is read from
//! `--local-model` or `SKEIN_LOCAL_EMBED_DIR` (`scripts/local-embed-model` installs it),
//! PostgreSQL from `SKEIN_TEST_POSTGRES_URL`. Results go to `target/bench/knowledge.json`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use clap::Parser;
use serde_json::{Value, json};
use skein_bench::{machine, ms};
use skein_core::ApiError;
use skein_core::api::{
    AudioUpload, ByteStream, ChatStream, EmbedRequest, Embeddings, FileApi, FileContent, FileMeta,
    ImageRequest, Images, NewFile, PricedModel, RelayApi, RelayCaller, RerankRequest, Reranking,
    Speech, SpeechRequest, Transcript,
};
use skein_db::Db;
use skein_db::sqlx::{Connection, Executor, PgConnection};
use skein_embed::StaticModel;
use skein_knowledge::eval::{self, Embedder, EvalConfig, Report, Reranker, Retrieval};
use skein_knowledge::lexical::{IndexedChunk, LexicalIndex};
use skein_knowledge::search::Source;
use skein_knowledge::store::{self, BaseRow, DocumentRow, NewChunk};
use skein_knowledge::{KnowledgeConfig, KnowledgeService, vector};
use skein_testkit::mock_openai::MockOpenAi;
use skein_text::chunk::{ChunkConfig, render, sentences};
use skein_text::segment::Analyzer;

/// Measures the Knowledge service.
#[derive(Parser)]
struct Args {
    /// The evaluation corpus (`docs/` and `questions.json`).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// The built-in model's folder.
    #[arg(long, env = "SKEIN_LOCAL_EMBED_DIR")]
    local_model: Option<PathBuf>,
    /// PostgreSQL to measure on (a scratch database is made and dropped).
    #[arg(long, env = "SKEIN_TEST_POSTGRES_URL")]
    postgres: Option<String>,
    /// Chunks in the latency base.
    #[arg(long, default_value_t = 100_000)]
    chunks: usize,
    /// Times every question is asked in the latency run.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Skip the latency run (evaluation only).
    #[arg(long)]
    no_latency: bool,
    /// `knowledge.vector_cache_mb` for the latency run (0: vectors read from the database on
    /// every search, as before the cache).
    #[arg(long, default_value_t = 512)]
    vector_cache_mb: u64,
    /// `knowledge.lexical_cache_mb` for the latency run (0: BM25 through the database's
    /// full-text index on every search, as before the in-memory index).
    #[arg(long, default_value_t = 256)]
    lexical_cache_mb: u64,
    /// Questions asked once through the database's indexes alone (the code before the
    /// in-memory indexes, for comparison; 0: skip).
    #[arg(long, default_value_t = 20)]
    db_questions: usize,
    /// Pages of the PDF (and of the DOCX with the same text) in the ingestion run (0: skip).
    #[arg(long, default_value_t = 400)]
    ingest_pages: usize,
    /// Skip the evaluation (latency only).
    #[arg(long)]
    no_eval: bool,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/knowledge.json")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

const CHUNKING: ChunkConfig = ChunkConfig {
    max_tokens: 160,
    overlap_tokens: 24,
};

async fn run(args: Args) -> anyhow::Result<()> {
    let corpus_dir = args.corpus.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../skein-knowledge/tests/data/eval")
    });
    let corpus = eval::load(&corpus_dir)?;
    let answerable = |lang: eval::Lang| {
        corpus
            .questions
            .iter()
            .filter(|q| q.lang == lang && q.document.is_some())
            .count()
    };
    println!(
        "corpus: {} documents, {} questions ({} zh and {} en answerable)",
        corpus.documents.len(),
        corpus.questions.len(),
        answerable(eval::Lang::Zh),
        answerable(eval::Lang::En)
    );
    let local = match &args.local_model {
        Some(dir) => {
            let started = Instant::now();
            let model = StaticModel::load(dir)
                .with_context(|| format!("loading the built-in model from {}", dir.display()))?;
            println!(
                "built-in model: {} dimensions, loaded in {:.0} ms",
                model.dimensions(),
                ms(started.elapsed())
            );
            Some(Arc::new(model))
        }
        None => {
            println!("built-in model: not given (--local-model / SKEIN_LOCAL_EMBED_DIR)");
            None
        }
    };
    let mock = MockOpenAi::start("bench-key").await;
    let http = reqwest::Client::new();
    let upstream = MockUpstream {
        http: http.clone(),
        base_url: mock.base_url.clone(),
        key: mock.key.clone(),
    };

    let mut backends = vec![("sqlite", "sqlite::memory:".to_string())];
    let mut scratch = None;
    if let Some(url) = &args.postgres {
        let (db_url, name) = scratch_postgres(url).await?;
        backends.push(("postgres", db_url));
        scratch = Some((url.clone(), name));
    }

    let mut evaluation = Vec::new();
    println!(
        "\n{:<9} {:<16} {:<14} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "database", "embedding", "retrieval", "zh R@5", "zh MRR", "en R@5", "en MRR", "R@5", "MRR"
    );
    for (backend, url) in backends.iter().filter(|_| !args.no_eval) {
        let mut embedders: Vec<(&str, &dyn Embedder)> = vec![("mock upstream", &upstream)];
        let local_embedder = local.clone().map(Local);
        if let Some(l) = &local_embedder {
            embedders.push(("skein-local-embed", l));
        }
        for (i, (name, embedder)) in embedders.into_iter().enumerate() {
            // One connection: a pool of ":memory:" would be a database per connection.
            let db = Db::connect(url, 1).await?;
            db.migrate(&[&skein_knowledge::MIGRATIONS]).await?;
            let index = LexicalIndex::new(db.clone());
            let config = EvalConfig {
                analyzer: Analyzer::default(),
                chunking: CHUNKING,
                min_coverage: 0.4,
            };
            let base = format!("eval{i}");
            let indexed =
                eval::index_corpus(&index, &base, &corpus, config, Some(embedder)).await?;
            for retrieval in Retrieval::ALL {
                // BM25 does not depend on the embedding model: shown once.
                if retrieval == Retrieval::Bm25 && i > 0 {
                    continue;
                }
                let report = eval::run(
                    &index,
                    &indexed,
                    &corpus,
                    config,
                    retrieval,
                    Some(&upstream),
                )
                .await?;
                print_row(
                    backend,
                    if retrieval == Retrieval::Bm25 {
                        "-"
                    } else {
                        name
                    },
                    &report,
                );
                evaluation.push(json!({
                    "database": backend, "embedding": name, "retrieval": retrieval,
                    "rerank": if retrieval == Retrieval::HybridRerank { "mock upstream" } else { "-" },
                    "chinese": report.chinese, "english": report.english, "overall": report.overall,
                    "no_answer": report.no_answer, "misses": report.misses, "chunks": report.chunks,
                }));
            }
            db.close().await;
        }
    }

    let ingestion = if args.ingest_pages > 0 {
        ingestion(&corpus, local.clone(), args.ingest_pages)?
    } else {
        Value::Null
    };

    let mut latency = Vec::new();
    if !args.no_latency {
        for (backend, url) in &backends {
            let url = if *backend == "sqlite" {
                let dir = std::env::temp_dir()
                    .join(format!("skein-bench-knowledge-{}", std::process::id()));
                std::fs::create_dir_all(&dir)?;
                let file = dir.join("knowledge.db");
                let _ = std::fs::remove_file(&file);
                format!("sqlite://{}?mode=rwc", file.display())
            } else {
                url.clone()
            };
            let measured = search_latency(&corpus, &url, backend, local.clone(), &args).await?;
            latency.extend(measured);
        }
    }
    drop(mock);
    if let Some((admin, name)) = scratch {
        let mut conn = PgConnection::connect(&admin).await?;
        conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await?;
    }
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let document = json!({
        "machine": machine(),
        "corpus": {
            "documents": corpus.documents.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
            "questions": corpus.questions.len(),
        },
        "chunking": {"max_tokens": CHUNKING.max_tokens, "overlap_tokens": CHUNKING.overlap_tokens},
        "rerank": "the mock upstream's /v1/rerank (share of the query's whitespace-separated words found in the chunk): a stand-in, not a rerank model",
        "evaluation": evaluation,
        "ingestion": ingestion,
        "latency": latency,
    });
    std::fs::write(&args.out, serde_json::to_vec_pretty(&document)?)?;
    println!("\nwritten to {}", args.out.display());
    Ok(())
}

fn print_row(backend: &str, embedding: &str, r: &Report) {
    let retrieval = match r.retrieval {
        Retrieval::Bm25 => "BM25",
        Retrieval::Vector => "vector",
        Retrieval::Hybrid => "hybrid",
        Retrieval::HybridRerank => "hybrid+rerank",
    };
    println!(
        "{:<9} {:<16} {:<14} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3}",
        backend,
        embedding,
        retrieval,
        r.chinese.recall_at_5,
        r.chinese.mrr,
        r.english.recall_at_5,
        r.english.mrr,
        r.overall.recall_at_5,
        r.overall.mrr
    );
}

/// A scratch database on the server at `admin`: (its URL, its name).
async fn scratch_postgres(admin: &str) -> anyhow::Result<(String, String)> {
    let name = format!("skein_bench_knowledge_{}", std::process::id());
    let mut conn = PgConnection::connect(admin)
        .await
        .with_context(|| format!("PostgreSQL at {admin}"))?;
    conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    Ok((format!("{base}/{name}"), name))
}

/// The mock OpenAI upstream's `/v1/embeddings` and `/v1/rerank`, over HTTP.
struct MockUpstream {
    http: reqwest::Client,
    base_url: String,
    key: String,
}

impl MockUpstream {
    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let r = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let json: Value = r.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {json}"));
        }
        Ok(json)
    }
}

#[async_trait]
impl Embedder for MockUpstream {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let answer = self
            .post(
                "/v1/embeddings",
                json!({"model": "mock-embedding", "input": texts}),
            )
            .await?;
        answer["data"]
            .as_array()
            .ok_or("no data")?
            .iter()
            .map(|d| {
                d["embedding"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .filter_map(Value::as_f64)
                            .map(|x| x as f32)
                            .collect()
                    })
                    .ok_or_else(|| "no embedding".to_string())
            })
            .collect()
    }
}

#[async_trait]
impl Reranker for MockUpstream {
    async fn scores(&self, query: &str, documents: &[String]) -> Result<Vec<f64>, String> {
        let answer = self
            .post(
                "/v1/rerank",
                json!({"model": "mock-rerank", "query": query, "documents": documents, "return_documents": false}),
            )
            .await?;
        let mut scores = vec![f64::NEG_INFINITY; documents.len()];
        for r in answer["results"].as_array().ok_or("no results")? {
            if let (Some(i), Some(s)) = (r["index"].as_u64(), r["relevance_score"].as_f64())
                && let Some(slot) = scores.get_mut(i as usize)
            {
                *slot = s;
            }
        }
        Ok(scores)
    }
}

/// The built-in model, in process.
struct Local(Arc<StaticModel>);

#[async_trait]
impl Embedder for Local {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        Ok(self.0.embed_all(texts))
    }
}

/// A relay that only embeds, with a fixed 64-dimension hash (for the latency run without the
/// built-in model); every other call is refused.
struct HashRelay;

fn hash_vector(text: &str) -> Vec<f32> {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        state = (state ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    (0..64)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn refused() -> ApiError {
    ApiError::internal("not served by the benchmark's relay")
}

#[async_trait]
impl RelayApi for HashRelay {
    async fn chat(&self, _: RelayCaller, _: Value) -> Result<ChatStream, ApiError> {
        Err(refused())
    }
    async fn priced_models(&self, _: &str, _: Option<&str>) -> Result<Vec<PricedModel>, ApiError> {
        Ok(Vec::new())
    }
    async fn embed(&self, _: RelayCaller, request: EmbedRequest) -> Result<Embeddings, ApiError> {
        Ok(Embeddings {
            vectors: request.inputs.iter().map(|t| hash_vector(t)).collect(),
            charge: Default::default(),
        })
    }
    async fn rerank(&self, _: RelayCaller, _: RerankRequest) -> Result<Reranking, ApiError> {
        Err(refused())
    }
    async fn transcribe(&self, _: RelayCaller, _: AudioUpload) -> Result<Transcript, ApiError> {
        Err(refused())
    }
    async fn image(&self, _: RelayCaller, _: ImageRequest) -> Result<Images, ApiError> {
        Err(refused())
    }
    async fn speak(&self, _: RelayCaller, _: SpeechRequest) -> Result<Speech, ApiError> {
        Err(refused())
    }
}

/// Files are never read: the benchmark writes chunks straight into the store.
struct NoFiles;

#[async_trait]
impl FileApi for NoFiles {
    async fn store(&self, _: NewFile, _: ByteStream) -> Result<FileMeta, ApiError> {
        Err(refused())
    }
    async fn open(
        &self,
        _: &str,
        _: &str,
        _: Option<std::ops::Range<u64>>,
    ) -> Result<FileContent, ApiError> {
        Err(refused())
    }
    async fn metadata(&self, _: &str, _: &str) -> Result<FileMeta, ApiError> {
        Err(refused())
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), ApiError> {
        Err(refused())
    }
    async fn authorise(&self, _: &str, _: &str) -> Result<FileMeta, ApiError> {
        Err(refused())
    }
    fn content_url(&self, _: &str, _: Duration) -> String {
        String::new()
    }
}

const CHUNKS_PER_DOCUMENT: usize = 100;

/// Fills one base with `args.chunks` synthetic chunks (sentences of the corpus mixed by a
/// fixed pseudo-random sequence, about 60 terms each — pessimistic: every query term is common)
/// with embeddings, then times every question `args.rounds` times, lexical and hybrid.
async fn search_latency(
    corpus: &eval::Corpus,
    url: &str,
    backend: &str,
    local: Option<Arc<StaticModel>>,
    args: &Args,
) -> anyhow::Result<Vec<Value>> {
    let db = Db::connect(url, 8).await?;
    db.migrate(&[&skein_knowledge::MIGRATIONS]).await?;
    let config = KnowledgeConfig {
        // No job is ever queued for the worker: the chunks are written straight in.
        poll_interval_ms: 86_400_000,
        vector_cache_mb: args.vector_cache_mb,
        lexical_cache_mb: args.lexical_cache_mb,
        ..KnowledgeConfig::default()
    };
    let service =
        KnowledgeService::start(db.clone(), config, Arc::new(NoFiles), Arc::new(HashRelay));
    let model_name = match &local {
        Some(model) => {
            service.set_local_model(model.clone());
            skein_embed::MODEL_NAME.to_string()
        }
        None => "bench-hash-64".to_string(),
    };
    let now = skein_core::ids::now_ms();
    let base = BaseRow {
        id: skein_core::ids::new_id(),
        owner_id: "bench".into(),
        name: "bench".into(),
        description: String::new(),
        embedding_model: Some(model_name.clone()),
        rerank_model: None,
        chunk_max_tokens: 512,
        chunk_overlap_tokens: 64,
        parent_chunk_tokens: None,
        visibility: "private".into(),
        created_at: now,
        updated_at: now,
    };
    store::insert_base(&db, &base).await?;

    let analyzer = Analyzer::default();
    // Each sentence of the corpus with its terms, segmented once: a chunk is a run of
    // sentences, its terms theirs (segmenting the joined text again per chunk made filling
    // 100,000 chunks take over ten minutes).
    let pool: Vec<(String, Vec<String>)> = corpus
        .documents
        .iter()
        .flat_map(|d| {
            sentences(&render(&d.blocks))
                .into_iter()
                .map(|(_, s)| s.to_string())
                .filter(|s| !s.trim().is_empty())
                .collect::<Vec<_>>()
        })
        .map(|s| {
            let terms = analyzer.terms(&s);
            (s, terms)
        })
        .filter(|(_, terms)| !terms.is_empty())
        .collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % 1_000_003).unwrap_or(0)
    };
    let started = Instant::now();
    let documents = args.chunks.div_ceil(CHUNKS_PER_DOCUMENT);
    let lexical = LexicalIndex::new(db.clone());
    for d in 0..documents {
        let doc = DocumentRow {
            id: skein_core::ids::new_id(),
            base_id: base.id.clone(),
            file_id: format!("bench-file-{d}"),
            file_owner_id: "bench".into(),
            name: format!("synthetic-{d}.txt"),
            content_type: "text/plain".into(),
            size: 0,
            status: "queued".into(),
            progress_done: 0,
            progress_total: 0,
            chunk_count: None,
            error: None,
            created_at: now,
            updated_at: now,
        };
        store::insert_document(&db, &doc).await?;
        let count = CHUNKS_PER_DOCUMENT.min(args.chunks - d * CHUNKS_PER_DOCUMENT);
        let (texts, chunk_terms): (Vec<String>, Vec<Vec<String>>) = (0..count)
            .map(|_| {
                let (mut text, mut terms) = (String::new(), Vec::new());
                while terms.len() < 60 {
                    let (sentence, its) = &pool[next() % pool.len()];
                    text.push_str(sentence);
                    text.push(' ');
                    terms.extend(its.iter().cloned());
                }
                (text, terms)
            })
            .unzip();
        let chunks: Vec<NewChunk> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| NewChunk {
                id: skein_core::ids::new_id(),
                position: i as i64,
                text: text.clone(),
                headings: "[]".into(),
                pages: None,
                tokens: 100,
                parent_id: None,
            })
            .collect();
        store::store_chunks(&db, &doc, &chunks, "embedding", now).await?;
        let vectors = match &local {
            Some(model) => model.embed_all(&texts),
            None => texts.iter().map(|t| hash_vector(t)).collect(),
        };
        let stored: Vec<(String, Vec<u8>)> = chunks
            .iter()
            .zip(&vectors)
            .map(|(c, v)| (c.id.clone(), vector::encode(v)))
            .collect();
        store::store_embeddings(&db, &doc.id, &stored, now).await?;
        let indexed: Vec<IndexedChunk> = chunks
            .iter()
            .zip(chunk_terms)
            .map(|(c, terms)| IndexedChunk {
                chunk_id: c.id.clone(),
                document_id: doc.id.clone(),
                terms,
            })
            .collect();
        lexical.insert(&base.id, &indexed).await?;
        // The vectors in pgvector's table, as the worker writes them when a document is ready.
        if backend == "postgres" {
            let mut tx = db.begin_write().await?;
            skein_knowledge::pgvector::insert_in(db.backend(), &mut tx, &base.id, &doc.id, &stored)
                .await?;
            tx.commit().await?;
        }
        store::set_status(
            &db,
            &doc.id,
            "ready",
            (count as i64, count as i64),
            None,
            now,
        )
        .await?;
        // The job the document was queued with is the worker's; the benchmark took its place.
        skein_db::sqlx::query("DELETE FROM knowledge_jobs WHERE document_id = $1")
            .bind(&doc.id)
            .execute(db.pool())
            .await?;
        if (d + 1) % 100 == 0 {
            println!(
                "  {backend}: {} chunks written ({:.0} s)",
                (d + 1) * CHUNKS_PER_DOCUMENT,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let fill_secs = started.elapsed().as_secs_f64();
    let mut results = Vec::new();
    // Each run: (name, the base's embedding model, lexical cache MiB, vector cache MiB,
    // pgvector, questions asked, rounds). The "database" runs are the code before the
    // in-memory indexes (over a second a search at this size), so they ask a sample once.
    let sample = args.db_questions.min(corpus.questions.len());
    let all = corpus.questions.len();
    let (lexical_mb, vector_mb) = (args.lexical_cache_mb, args.vector_cache_mb);
    let hybrid = Some(model_name.clone());
    let mut runs = vec![
        (
            "lexical",
            None,
            lexical_mb,
            vector_mb,
            false,
            all,
            args.rounds,
        ),
        (
            "hybrid",
            hybrid.clone(),
            lexical_mb,
            vector_mb,
            false,
            all,
            args.rounds,
        ),
    ];
    if backend == "postgres" {
        runs.push((
            "hybrid, pgvector",
            hybrid.clone(),
            lexical_mb,
            vector_mb,
            true,
            all,
            args.rounds,
        ));
    }
    if sample > 0 {
        runs.push((
            "lexical, database index",
            None,
            0,
            vector_mb,
            false,
            sample,
            1,
        ));
        runs.push((
            "hybrid, database index and vectors",
            hybrid.clone(),
            0,
            0,
            false,
            sample,
            1,
        ));
    }
    drop(service);
    for (mode, embedding_model, lexical_mb, vector_mb, pgvector, questions, rounds) in runs {
        let service = KnowledgeService::start(
            db.clone(),
            KnowledgeConfig {
                poll_interval_ms: 86_400_000,
                vector_cache_mb: vector_mb,
                lexical_cache_mb: lexical_mb,
                pgvector,
                // The pgvector run measures the index at every size (by default a base this
                // small is scanned in memory instead: the "hybrid" run).
                pgvector_min_floats: 0,
                ..KnowledgeConfig::default()
            },
            Arc::new(NoFiles),
            Arc::new(HashRelay),
        );
        if let Some(model) = &local {
            service.set_local_model(model.clone());
        }
        let searched = BaseRow {
            embedding_model,
            ..base.clone()
        };
        let caller = RelayCaller {
            user_id: "bench".into(),
            group: None,
            request_id: "bench".into(),
            conversation_id: None,
            cancel: None,
        };
        // The first search finds nothing in memory: it answers from the database and starts
        // the base's rebuild in the background (it no longer waits for it).
        let cold = Instant::now();
        let first = service
            .search_base(&searched, caller.clone(), &corpus.questions[0].question, 10)
            .await?;
        let first_ms = ms(cold.elapsed());
        // Then the base is read into memory (or pgvector's index built) before timing.
        let warm = Instant::now();
        service.warm(&base.id).await?;
        let mut expected = first.vector_source;
        if pgvector {
            let deadline = Instant::now() + Duration::from_secs(1800);
            loop {
                let outcome = service
                    .search_base(&searched, caller.clone(), &corpus.questions[0].question, 10)
                    .await?;
                if outcome.vector_source == Some(Source::Pgvector) {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "pgvector's index was never built"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            expected = Some(Source::Pgvector);
        } else if searched.embedding_model.is_some() {
            expected = Some(if vector_mb > 0 {
                Source::Memory
            } else {
                Source::Database
            });
        }
        let warm_ms = ms(warm.elapsed());
        let lexical_expected = if lexical_mb > 0 {
            Source::Memory
        } else {
            Source::Database
        };
        let mut times = Vec::new();
        for _ in 0..rounds {
            for q in corpus.questions.iter().take(questions) {
                let t = Instant::now();
                let outcome = service
                    .search_base(&searched, caller.clone(), &q.question, 10)
                    .await?;
                times.push(ms(t.elapsed()));
                anyhow::ensure!(
                    outcome.vector_error.is_none(),
                    "vector stage failed: {:?}",
                    outcome.vector_error
                );
                anyhow::ensure!(
                    (outcome.lexical_source, outcome.vector_source) == (lexical_expected, expected),
                    "served from {:?}/{:?}, not {lexical_expected:?}/{expected:?}",
                    outcome.lexical_source,
                    outcome.vector_source
                );
            }
        }
        times.sort_by(f64::total_cmp);
        let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        println!(
            "{backend:<9} {mode:<36} {} chunks: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} searches (first, cold {:.1} ms; warming {:.0} ms)",
            args.chunks,
            at(0.5),
            at(0.99),
            at(1.0),
            times.len(),
            first_ms,
            warm_ms
        );
        results.push(json!({
            "database": backend, "mode": mode, "chunks": args.chunks,
            "embedding": if mode.starts_with("lexical") { "-" } else { model_name.as_str() },
            "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0), "searches": times.len(),
            "first_search_ms": first_ms, "warm_ms": warm_ms, "fill_secs": fill_secs,
            "lexical_cache_mb": lexical_mb, "vector_cache_mb": vector_mb, "pgvector": pgvector,
            "load_before": load_average(),
        }));
        drop(service);
    }
    db.close().await;
    Ok(results)
}

/// Lines of English text from the corpus, for the synthetic documents of the ingestion run
/// (Latin only: the PDF's font is Helvetica with WinAnsi encoding).
fn latin_lines(corpus: &eval::Corpus) -> Vec<String> {
    corpus
        .documents
        .iter()
        .flat_map(|d| {
            sentences(&render(&d.blocks))
                .into_iter()
                .map(|(_, s)| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| s.len() > 20 && s.len() < 110 && s.is_ascii())
        .collect()
}

/// A text PDF of `pages` pages of 40 lines each, built as `make_docs.py` builds the evaluation's.
fn synthetic_pdf(lines: &[String], pages: usize) -> Vec<u8> {
    let mut pdf = skein_testkit::pdf::PdfBuilder::new();
    for p in 0..pages {
        let title = format!("Page {} of the ingestion benchmark", p + 1);
        let page: Vec<&str> = std::iter::once(title.as_str())
            .chain((0..40).map(|l| lines[(p * 40 + l) % lines.len()].as_str()))
            .collect();
        pdf.text_page(&page);
    }
    pdf.finish()
}

/// A DOCX with the same text as [`synthetic_pdf`]: a heading and 40 paragraphs per page, a
/// page break between pages.
fn synthetic_docx(lines: &[String], pages: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut body = String::new();
    for p in 0..pages {
        body.push_str(&format!(
            "<w:p><w:pPr><w:pStyle w:val=\"Heading1\"/></w:pPr><w:r><w:t>Page {} of the ingestion benchmark</w:t></w:r></w:p>",
            p + 1
        ));
        for l in 0..40 {
            let line = &lines[(p * 40 + l) % lines.len()];
            body.push_str(&format!(
                "<w:p><w:r><w:t>{}</w:t></w:r></w:p>",
                escape(line)
            ));
        }
        body.push_str("<w:p><w:r><w:br w:type=\"page\"/></w:r></w:p>");
    }
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
    );
    let members = [
        ("[Content_Types].xml", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/><Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>".to_string()),
        ("_rels/.rels", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"word/document.xml\"/></Relationships>".to_string()),
        ("word/document.xml", document),
    ];
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in members {
        zip.start_file(name, options)?;
        zip.write_all(content.as_bytes())?;
    }
    Ok(zip.finish()?.into_inner())
}

/// Ingestion throughput without the database: extraction (pages/s) of a text PDF and of a
/// DOCX with the same text, then chunking with jieba segmentation for the lexical index
/// (chunks/s), then embedding with the built-in model (chunks/s) — the CPU stages of the
/// worker, one thread, each timed alone.
fn ingestion(
    corpus: &eval::Corpus,
    local: Option<Arc<StaticModel>>,
    pages: usize,
) -> anyhow::Result<Value> {
    use skein_knowledge::extract::{Format, extract};
    let lines = latin_lines(corpus);
    anyhow::ensure!(!lines.is_empty(), "no Latin lines in the corpus");
    let config = ChunkConfig {
        max_tokens: 512,
        overlap_tokens: 64,
    };
    let mut stages = Vec::new();
    let mut chunks_of_pdf = Vec::new();
    println!("\ningestion ({pages} pages of 41 lines, one thread):");
    for (format, bytes) in [
        (Format::Pdf, synthetic_pdf(&lines, pages)),
        (Format::Docx, synthetic_docx(&lines, pages)?),
    ] {
        let t = Instant::now();
        let blocks = extract(format, &bytes).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let secs = t.elapsed().as_secs_f64();
        let text_bytes: usize = render(&blocks).len();
        println!(
            "  extract {:<5} {:>8} bytes: {:.2} s, {:.0} pages/s ({:.1} MB of text/s)",
            format.as_str(),
            bytes.len(),
            secs,
            pages as f64 / secs,
            text_bytes as f64 / secs / 1e6
        );
        stages.push(
            json!({"stage": "extract", "format": format.as_str(), "pages": pages,
            "file_bytes": bytes.len(), "text_bytes": text_bytes, "secs": secs,
            "pages_per_sec": pages as f64 / secs}),
        );
        let t = Instant::now();
        let chunks = skein_text::chunk::chunk(&blocks, config);
        let chunk_secs = t.elapsed().as_secs_f64();
        let analyzer = Analyzer::default();
        let t = Instant::now();
        let terms: usize = chunks.iter().map(|c| analyzer.terms(&c.text).len()).sum();
        let segment_secs = t.elapsed().as_secs_f64();
        println!(
            "  chunk   {:<5} {} chunks of ≤512 tokens: {:.2} s ({:.0} chunks/s); segment for BM25: {:.2} s ({:.0} chunks/s, {terms} terms)",
            format.as_str(),
            chunks.len(),
            chunk_secs,
            chunks.len() as f64 / chunk_secs,
            segment_secs,
            chunks.len() as f64 / segment_secs
        );
        stages.push(
            json!({"stage": "chunk", "format": format.as_str(), "chunks": chunks.len(),
            "secs": chunk_secs, "chunks_per_sec": chunks.len() as f64 / chunk_secs}),
        );
        stages.push(json!({"stage": "segment", "format": format.as_str(), "chunks": chunks.len(),
            "terms": terms, "secs": segment_secs, "chunks_per_sec": chunks.len() as f64 / segment_secs}));
        if format == Format::Pdf {
            chunks_of_pdf = chunks.into_iter().map(|c| c.text).collect();
        }
    }
    if let Some(model) = local {
        let t = Instant::now();
        let vectors = model.embed_all(&chunks_of_pdf);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "  embed   {} chunks with {}: {:.2} s ({:.0} chunks/s)",
            vectors.len(),
            skein_embed::MODEL_NAME,
            secs,
            vectors.len() as f64 / secs
        );
        stages.push(json!({"stage": "embed", "model": skein_embed::MODEL_NAME,
            "chunks": vectors.len(), "secs": secs, "chunks_per_sec": vectors.len() as f64 / secs}));
    }
    Ok(json!({"pages": pages, "lines_per_page": 41, "stages": stages}))
}

/// The 1-minute load average (`/proc/loadavg`), recorded beside each run's numbers.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
