//! The retrieval evaluation as a test: BM25 over Chinese-segmented terms must reach the floors
//! measured on the bilingual corpus in `tests/data/eval`, and splitting on whitespace (what
//! other platforms do) must do clearly worse on the Chinese questions — the check that fails
//! if segmentation breaks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::TestDb;
use skein_db::Backend;
use skein_knowledge::eval::{self, EvalConfig, Report};
use skein_knowledge::lexical::LexicalIndex;
use skein_text::chunk::ChunkConfig;
use skein_text::segment::Analyzer;

async fn run(backend: Backend, analyzer: Analyzer) -> Report {
    let corpus =
        eval::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/eval"))
            .unwrap();
    let t = TestDb::new(backend).await;
    let config = EvalConfig {
        analyzer,
        chunking: ChunkConfig {
            max_tokens: 160,
            overlap_tokens: 24,
        },
        min_coverage: 0.4,
    };
    let report = eval::evaluate(&LexicalIndex::new(t.db.clone()), "eval", &corpus, config)
        .await
        .unwrap();
    t.close().await;
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    report
}

async fn segmented_bm25_reaches_the_floor(backend: Backend) {
    let words = run(backend, Analyzer::default()).await;
    assert!(words.unreachable.is_empty(), "{:?}", words.unreachable);
    assert!(
        words.chunks > 10 * 2,
        "documents should span several chunks: {}",
        words.chunks
    );
    assert!(words.chinese.recall_at_5 >= FLOOR_ZH, "{:?}", words.chinese);
    assert!(words.english.recall_at_5 >= FLOOR_EN, "{:?}", words.english);
    assert!(words.overall.mrr >= FLOOR_MRR, "{:?}", words.overall);

    // The gate turns away every unanswerable question.
    assert_eq!(words.no_answer.rejected, words.no_answer.unanswerable);
    // By lexical coverage alone the gate also turns away some answerable questions worded
    // unlike their answer (36 of 123 measured): in hybrid search vector similarity vouches
    // for those. A regression past a third fails.
    assert!(
        words.no_answer.answerable_rejected * 3 <= words.overall.questions,
        "{:?}",
        words.no_answer
    );

    let whitespace = run(backend, Analyzer::Whitespace).await;
    assert!(
        whitespace.chinese.recall_at_5 + 0.5 <= words.chinese.recall_at_5,
        "whitespace {:?} against segmented {:?}",
        whitespace.chinese,
        words.chinese
    );
}

/// Floors under what was measured (23 documents, 123 answerable questions: zh recall@5 0.95,
/// en 0.98, MRR 0.88 on SQLite), so
/// a regression fails and a harmless change of ranking does not.
const FLOOR_ZH: f64 = 0.9;
const FLOOR_EN: f64 = 0.85;
const FLOOR_MRR: f64 = 0.75;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_segmented_bm25_reaches_the_floor() {
    segmented_bm25_reaches_the_floor(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_segmented_bm25_reaches_the_floor() {
    segmented_bm25_reaches_the_floor(Backend::Postgres).await;
}
