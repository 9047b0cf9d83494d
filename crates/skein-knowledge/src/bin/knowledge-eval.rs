//! Prints the retrieval evaluation (recall@5 and MRR, overall and per language, and how well
//! the "no answer" threshold separates unanswerable questions) for each analyzer, and writes
//! it to `target/bench/knowledge-eval.json` (relative to where it runs, as the other benchmarks).
//!
//! `cargo run -p skein-knowledge --bin knowledge-eval [-- CORPUS_DIR [OUT.json]]`; the corpus
//! defaults to the crate's `tests/data/eval`. The index is the real one, on an in-memory
//! SQLite database.

use std::path::PathBuf;

use serde_json::json;
use skein_db::Db;
use skein_knowledge::eval::{self, EvalConfig};
use skein_knowledge::lexical::LexicalIndex;
use skein_text::chunk::ChunkConfig;
use skein_text::segment::Analyzer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let corpus_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/eval"));
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench/knowledge-eval.json"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let corpus = eval::load(&corpus_dir)?;
        let chunking = ChunkConfig {
            max_tokens: 160,
            overlap_tokens: 24,
        };
        println!(
            "corpus: {} documents, {} questions ({})",
            corpus.documents.len(),
            corpus.questions.len(),
            corpus_dir.display()
        );
        println!(
            "{:<28} {:>7} {:>8} {:>7} {:>8} {:>7} {:>8}",
            "analyzer", "R@5", "MRR", "zh R@5", "zh MRR", "en R@5", "en MRR"
        );
        let mut reports = Vec::new();
        for (i, analyzer) in [
            Analyzer::Words { stopwords: true },
            Analyzer::Words { stopwords: false },
            Analyzer::Bigrams { stopwords: true },
            Analyzer::Whitespace,
        ]
        .into_iter()
        .enumerate()
        {
            let config = EvalConfig {
                analyzer,
                chunking,
                min_coverage: 0.4,
            };
            // A fresh database per analyzer: FTS5's statistics span the whole table. One
            // connection, because every connection to ":memory:" is a database of its own.
            let db = Db::connect("sqlite::memory:", 1).await?;
            db.migrate(&[&skein_knowledge::MIGRATIONS]).await?;
            let index = LexicalIndex::new(db);
            let report = eval::evaluate(&index, &format!("run{i}"), &corpus, config).await?;
            println!(
                "{:<28} {:>7.3} {:>8.3} {:>7.3} {:>8.3} {:>7.3} {:>8.3}",
                report.analyzer,
                report.overall.recall_at_5,
                report.overall.mrr,
                report.chinese.recall_at_5,
                report.chinese.mrr,
                report.english.recall_at_5,
                report.english.mrr
            );
            reports.push(report);
        }
        let sweep_at = [0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7];
        let sweep = reports[0].threshold_sweep(&sweep_at);
        println!("\nno-answer gate on the best hit's coverage ({}):", reports[0].analyzer);
        println!("{:>9} {:>22} {:>22}", "threshold", "unanswerable rejected", "answerable rejected");
        let unanswerable = reports[0].no_answer.unanswerable;
        let answerable = reports[0].overall.questions;
        for (t, good, bad) in &sweep {
            println!("{t:>9.2} {:>22} {:>22}", format!("{good}/{unanswerable}"), format!("{bad}/{answerable}"));
        }
        let latency = search_latency(&corpus, SCALE_CHUNKS).await?;
        println!(
            "\nlexical search over {} synthetic chunks (SQLite in memory, this build's profile): p50 {:.2} ms, p99 {:.2} ms over {} queries",
            SCALE_CHUNKS, latency.0, latency.1, latency.2
        );
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let document = json!({
            "chunking": { "max_tokens": chunking.max_tokens, "overlap_tokens": chunking.overlap_tokens },
            "reports": reports,
            "search_latency": {
                "chunks": SCALE_CHUNKS, "p50_ms": latency.0, "p99_ms": latency.1, "queries": latency.2,
                "note": "SQLite in memory, BM25 only, synthetic chunks mixed from the corpus's ~200 sentences: pessimistic, every query term is in a large share of the chunks",
            },
            "threshold_sweep": sweep.iter().map(|(t, good, bad)| json!({
                "min_coverage": t, "unanswerable_rejected": good, "answerable_rejected": bad,
            })).collect::<Vec<_>>(),
        });
        std::fs::write(&out, serde_json::to_vec_pretty(&document)?)?;
        println!("\nwritten to {}", out.display());
        Ok(())
    })
}

/// How many chunks the latency measurement indexes.
const SCALE_CHUNKS: usize = 20_000;

/// Indexes `chunks` synthetic chunks (sentences of the corpus mixed by a fixed pseudo-random
/// sequence, about 60 terms each) and times every question against them five times:
/// (p50 ms, p99 ms, queries). A pessimistic set: drawn from ~200 sentences, every query term
/// occurs in a large share of the chunks, so FTS5 scores most of the table for each query;
/// real text is far sparser. The benchmark of record (100,000 real chunks, both databases)
/// is still to be built.
async fn search_latency(
    corpus: &eval::Corpus,
    chunks: usize,
) -> Result<(f64, f64, usize), Box<dyn std::error::Error>> {
    use skein_knowledge::lexical::IndexedChunk;
    use skein_text::chunk::{render, sentences};

    let analyzer = Analyzer::default();
    let pool: Vec<Vec<String>> = corpus
        .documents
        .iter()
        .flat_map(|d| {
            let text = render(&d.blocks);
            sentences(&text)
                .into_iter()
                .map(|(_, s)| analyzer.terms(s))
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    let db = Db::connect("sqlite::memory:", 1).await?;
    db.migrate(&[&skein_knowledge::MIGRATIONS]).await?;
    let index = LexicalIndex::new(db);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % 1_000_003).unwrap_or(0)
    };
    let mut batch = Vec::new();
    for i in 0..chunks {
        let mut terms = Vec::new();
        while terms.len() < 60 {
            terms.extend(pool[next() % pool.len()].iter().cloned());
        }
        batch.push(IndexedChunk {
            chunk_id: format!("c{i}"),
            document_id: format!("d{}", i / 20),
            terms,
        });
        if batch.len() == 1000 {
            index.insert("scale", &batch).await?;
            batch.clear();
        }
    }
    index.insert("scale", &batch).await?;
    let mut times = Vec::new();
    for _ in 0..5 {
        for q in &corpus.questions {
            let terms = analyzer.terms(&q.question);
            let started = std::time::Instant::now();
            index.search("scale", &terms, 10).await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    Ok((at(0.5), at(0.99), times.len()))
}
