//! The lexical index on SQLite (FTS5) and PostgreSQL (tsvector): Chinese and English terms
//! match, results are ranked by BM25 and confined to their base, re-indexing a chunk never
//! duplicates it, and documents and bases are removed whole — answered from memory and from
//! the database's index alike, and an in-memory copy follows changes another instance makes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::TestDb;
use skein_db::Backend;
use skein_knowledge::lexical::{IndexedChunk, LexicalIndex};
use skein_knowledge::search::Source;
use skein_text::segment::Analyzer;

fn chunk(id: &str, document: &str, text: &str) -> IndexedChunk {
    IndexedChunk {
        chunk_id: id.into(),
        document_id: document.into(),
        terms: Analyzer::default().terms(text),
    }
}

fn ids(hits: &[skein_knowledge::lexical::LexicalHit]) -> Vec<&str> {
    hits.iter().map(|h| h.chunk_id.as_str()).collect()
}

/// Bases searched from memory (the default), or in the database's full-text index (0 bytes).
const IN_MEMORY: u64 = 64 << 20;
/// See [`IN_MEMORY`].
const IN_DATABASE: u64 = 0;

async fn ranks_and_filters(backend: Backend, cache_bytes: u64) {
    let t = TestDb::new(backend).await;
    let index = LexicalIndex::with_cache(t.db.clone(), cache_bytes);
    let chunks = [
        chunk(
            "a1",
            "doc-a",
            "员工每年享有十五天带薪年假，未休完的年假可以顺延五天。",
        ),
        chunk("a2", "doc-a", "病假超过两天需要提供医院的诊断证明。"),
        chunk(
            "b1",
            "doc-b",
            "Annual leave: employees get 22 days of paid leave a year.",
        ),
        chunk(
            "b2",
            "doc-b",
            "Expense claims are filed through the finance portal.",
        ),
        chunk(
            "b3",
            "doc-b",
            "The finance team answers questions about the portal and leave.",
        ),
    ];
    index.insert("base-1", &chunks).await.unwrap();
    // The same chunks again (a resumed job): nothing is duplicated.
    index.insert("base-1", &chunks).await.unwrap();
    // In memory: read now (searches never wait for it; they ask the database meanwhile).
    assert_eq!(index.warm("base-1").await.unwrap(), cache_bytes > 0);
    // Another base with a chunk that would match: never returned for base-1.
    index
        .insert(
            "base-2",
            &[chunk("x1", "doc-x", "年假 annual leave 年假 annual leave")],
        )
        .await
        .unwrap();

    let q = |text: &str| Analyzer::default().terms(text);
    let hits = index
        .search("base-1", &q("年假可以顺延吗？"), 10)
        .await
        .unwrap();
    assert_eq!(ids(&hits), ["a1"], "{hits:?}");
    assert!(hits[0].coverage > 0.99, "{hits:?}");

    let hits = index
        .search("base-1", &q("How many days of annual leave?"), 10)
        .await
        .unwrap();
    assert_eq!(ids(&hits)[0], "b1", "{hits:?}");
    assert!(hits.iter().all(|h| h.chunk_id != "x1"));
    // b3 mentions "leave" only: lower score and lower coverage than b1.
    let b3 = hits.iter().find(|h| h.chunk_id == "b3").unwrap();
    assert!(b3.score < hits[0].score && b3.coverage < hits[0].coverage);

    let hits = index
        .search("base-1", &q("finance portal"), 1)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);

    // A question about something the base never mentions covers little.
    let hits = index
        .search("base-1", &q("annual unicorn budget"), 10)
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.coverage < 0.5), "{hits:?}");
    assert!(
        index
            .search("base-1", &q("的 the"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        index
            .search("nobase", &q("年假"), 10)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(index.remove_document("doc-a").await.unwrap(), 2);
    assert!(
        index
            .search("base-1", &q("年假"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(index.remove_base("base-2").await.unwrap(), 1);
    let hits = index
        .search("base-2", &q("annual leave"), 10)
        .await
        .unwrap();
    assert!(hits.is_empty());
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ranks_and_filters() {
    ranks_and_filters(Backend::Sqlite, IN_MEMORY).await;
    ranks_and_filters(Backend::Sqlite, IN_DATABASE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ranks_and_filters() {
    ranks_and_filters(Backend::Postgres, IN_MEMORY).await;
    ranks_and_filters(Backend::Postgres, IN_DATABASE).await;
}

/// Two instances over one database: what one indexes or removes, the other's in-memory copy
/// of the base sees at its next search (the base's generation moved), and on PostgreSQL the
/// memory answers with the database path's scores exactly.
async fn instances_see_each_others_changes(backend: Backend) {
    let t = TestDb::new(backend).await;
    let reader = LexicalIndex::new(t.db.clone());
    let writer = LexicalIndex::new(t.db.clone());
    let database = LexicalIndex::with_cache(t.db.clone(), IN_DATABASE);
    let q = |text: &str| Analyzer::default().terms(text);
    writer
        .insert(
            "b",
            &[
                chunk(
                    "c1",
                    "d1",
                    "The lighthouse keeper climbs the stairs at dusk.",
                ),
                chunk("c2", "d1", "Ferries leave the harbor every hour in summer."),
                chunk("c3", "d2", "The harbor master keeps the ferry timetable."),
            ],
        )
        .await
        .unwrap();
    assert!(reader.warm("b").await.unwrap());
    let (first, source) = reader
        .search_traced("b", &q("harbor ferry"), 10, None)
        .await
        .unwrap();
    assert_eq!(source, Source::Memory);
    assert_eq!(ids(&first)[0], "c3", "{first:?}");
    if backend == Backend::Postgres {
        let exact = database.search("b", &q("harbor ferry"), 10).await.unwrap();
        assert_eq!(ids(&first), ids(&exact));
        for (m, d) in first.iter().zip(&exact) {
            assert!((m.score - d.score).abs() < 1e-9, "{m:?} {d:?}");
            assert!((m.coverage - d.coverage).abs() < 1e-9, "{m:?} {d:?}");
        }
    }
    // Added on the other instance: found here at once.
    writer
        .insert(
            "b",
            &[chunk("c4", "d3", "A new ferry pier opens at the harbor.")],
        )
        .await
        .unwrap();
    let (hits, source) = reader
        .search_traced("b", &q("ferry pier"), 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&hits)[0], "c4", "{hits:?}");
    // The copy is stale: this search asked the database and left a rebuild running.
    assert_eq!(source, Source::Database);
    assert!(reader.warm("b").await.unwrap());
    let (hits, source) = reader
        .search_traced("b", &q("ferry pier"), 10, None)
        .await
        .unwrap();
    assert_eq!((ids(&hits)[0], source), ("c4", Source::Memory), "{hits:?}");
    // Removed there: gone here.
    writer.remove_document("d2").await.unwrap();
    writer.remove_document("d3").await.unwrap();
    let hits = reader
        .search("b", &q("harbor ferry pier"), 10)
        .await
        .unwrap();
    assert_eq!(ids(&hits), ["c2"], "{hits:?}");
    writer.remove_base("b").await.unwrap();
    assert!(
        reader
            .search("b", &q("harbor"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_instances_see_each_others_changes() {
    instances_see_each_others_changes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_see_each_others_changes() {
    instances_see_each_others_changes(Backend::Postgres).await;
}

async fn odd_terms_are_safe(backend: Backend) {
    let t = TestDb::new(backend).await;
    let index = LexicalIndex::new(t.db.clone());
    // Terms with quotes, backslashes and FTS/tsquery operators reach neither parser as syntax.
    let nasty: Vec<String> = [
        "o'neil",
        "\"quoted\"",
        "a\\b",
        "NEAR",
        "OR",
        "&",
        "|",
        "!",
        ":*",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    index
        .insert(
            "b",
            &[IndexedChunk {
                chunk_id: "c".into(),
                document_id: "d".into(),
                terms: nasty.clone(),
            }],
        )
        .await
        .unwrap();
    let hits = index.search("b", &nasty, 5).await.unwrap();
    assert_eq!(ids(&hits), ["c"]);
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_odd_terms_are_safe() {
    odd_terms_are_safe(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_odd_terms_are_safe() {
    odd_terms_are_safe(Backend::Postgres).await;
}

/// A base whose size estimate fits the budget but whose built copy does not is read once per
/// generation, not on every search: the refusal is remembered until the base changes. Every
/// search meanwhile answers from the database.
async fn a_copy_over_budget_is_refused_once_per_generation(backend: Backend) {
    use std::sync::atomic::Ordering::Relaxed;
    let t = TestDb::new(backend).await;
    // 78 bytes by the estimate (one chunk, two terms; 156 with the second chunk); the long id
    // makes the copy over 400.
    let index = LexicalIndex::with_cache(t.db.clone(), 200);
    let long_id = "c".repeat(300);
    index
        .insert("b", &[chunk(&long_id, "d1", "harbor ferry")])
        .await
        .unwrap();
    let q = Analyzer::default().terms("harbor ferry");
    let refused = |index: &LexicalIndex| index.rebuilds().refused.load(Relaxed);
    let (hits, source) = index.search_traced("b", &q, 5, None).await.unwrap();
    assert_eq!(
        (ids(&hits), source),
        (vec![long_id.as_str()], Source::Database)
    );
    for _ in 0..500 {
        if refused(&index) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(refused(&index), 1);
    for _ in 0..3 {
        let (hits, source) = index.search_traced("b", &q, 5, None).await.unwrap();
        assert_eq!((hits.len(), source), (1, Source::Database));
    }
    // Not read again at the same generation.
    assert_eq!(index.rebuilds().started.load(Relaxed), 1);
    // The base changed: it is tried again (and refused again).
    index
        .insert("b", &[chunk("c2", "d2", "harbor master")])
        .await
        .unwrap();
    let (hits, _) = index.search_traced("b", &q, 5, None).await.unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(index.rebuilds().started.load(Relaxed), 2);
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_copy_over_budget_is_refused_once_per_generation() {
    a_copy_over_budget_is_refused_once_per_generation(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_copy_over_budget_is_refused_once_per_generation() {
    a_copy_over_budget_is_refused_once_per_generation(Backend::Postgres).await;
}
