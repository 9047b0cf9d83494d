//! The retrieval evaluation: a corpus of documents and questions with the passage that answers
//! each (or none, for questions the corpus cannot answer), run through the real pipeline —
//! extraction, chunking, segmentation, the lexical index in the database — and scored.
//!
//! A corpus folder holds `docs/` (any format [`crate::extract`] reads, by extension) and
//! `questions.json`: `[{"id", "lang": "zh"|"en", "question", "document": "file name" | null,
//! "answer": "a phrase of the answering passage" | null}]`. A retrieved chunk is relevant when
//! it comes from the question's document and contains the answer phrase (whitespace ignored),
//! so the judgement survives changes to chunk sizes.

use std::collections::HashMap;
use std::path::Path;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use skein_text::chunk::{self, Block, ChunkConfig};
use skein_text::segment::Analyzer;

use crate::extract::{self, ExtractError, Format};
use crate::fusion::{self, FusionConfig, Threshold};
use crate::lexical::{IndexedChunk, LexicalIndex};
use crate::search::CANDIDATES;
use crate::vector;

/// How many results count for recall.
pub const RECALL_AT: usize = 5;
/// How deep the reciprocal rank looks.
pub const MRR_AT: usize = 10;

/// A document of the corpus, extracted.
#[derive(Debug, Clone)]
pub struct Document {
    /// Its file name.
    pub name: String,
    /// Its blocks.
    pub blocks: Vec<Block>,
}

/// The language of a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Chinese.
    Zh,
    /// English.
    En,
}

/// One question.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Question {
    /// A short stable id.
    pub id: String,
    /// Its language.
    pub lang: Lang,
    /// The question as a user would type it.
    pub question: String,
    /// The file that answers it; `None` when nothing in the corpus does.
    pub document: Option<String>,
    /// A phrase of the answering passage.
    pub answer: Option<String>,
}

/// Documents and questions.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The documents.
    pub documents: Vec<Document>,
    /// The questions.
    pub questions: Vec<Question>,
}

/// Why a corpus could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A document could not be extracted.
    #[error("{name}: {source}")]
    Extract {
        /// The document.
        name: String,
        /// Why.
        source: ExtractError,
    },
    /// `questions.json` is malformed or names what is not there.
    #[error("questions: {0}")]
    Questions(String),
    /// The index failed.
    #[error(transparent)]
    Db(#[from] skein_db::DbError),
    /// The embedding or rerank model failed.
    #[error("model: {0}")]
    Model(String),
}

/// Loads the corpus in `dir`, checking that every answer is in its document.
pub fn load(dir: &Path) -> Result<Corpus, EvalError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| EvalError::Io { path, source }
    };
    let docs_dir = dir.join("docs");
    let mut names: Vec<_> = std::fs::read_dir(&docs_dir)
        .map_err(io(&docs_dir))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut documents = Vec::new();
    for name in names {
        let Some(format) = Format::from_file_name(&name) else {
            continue;
        };
        let path = docs_dir.join(&name);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let blocks = extract::extract(format, &bytes).map_err(|source| EvalError::Extract {
            name: name.clone(),
            source,
        })?;
        documents.push(Document { name, blocks });
    }
    let path = dir.join("questions.json");
    let raw = std::fs::read(&path).map_err(io(&path))?;
    let questions: Vec<Question> =
        serde_json::from_slice(&raw).map_err(|e| EvalError::Questions(e.to_string()))?;
    for q in &questions {
        match (&q.document, &q.answer) {
            (Some(doc), Some(answer)) => {
                let document = documents
                    .iter()
                    .find(|d| &d.name == doc)
                    .ok_or_else(|| EvalError::Questions(format!("{}: no document {doc}", q.id)))?;
                if !compact(&chunk::render(&document.blocks)).contains(&compact(answer)) {
                    return Err(EvalError::Questions(format!(
                        "{}: the answer is not in {doc}",
                        q.id
                    )));
                }
            }
            (None, None) => {}
            _ => {
                return Err(EvalError::Questions(format!(
                    "{}: give both document and answer, or neither",
                    q.id
                )));
            }
        }
    }
    Ok(Corpus {
        documents,
        questions,
    })
}

fn compact(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// How to run the evaluation.
#[derive(Debug, Clone, Copy)]
pub struct EvalConfig {
    /// How chunks and questions become terms.
    pub analyzer: Analyzer,
    /// How documents are chunked.
    pub chunking: ChunkConfig,
    /// The least coverage of the best hit for a question to count as answered.
    pub min_coverage: f64,
}

/// Recall and MRR over a set of questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Score {
    /// How many questions.
    pub questions: usize,
    /// The share of questions with a relevant chunk in the top [`RECALL_AT`].
    pub recall_at_5: f64,
    /// The mean reciprocal rank of the first relevant chunk (0 beyond [`MRR_AT`]).
    pub mrr: f64,
}

/// How well the threshold separates answerable questions from the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct NoAnswerScore {
    /// The threshold used.
    pub min_coverage: f64,
    /// Questions the corpus cannot answer.
    pub unanswerable: usize,
    /// Of those, how many the threshold turned away (the right call).
    pub rejected: usize,
    /// Answerable questions the threshold turned away (the wrong call).
    pub answerable_rejected: usize,
}

/// The outcome of one evaluation run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Which analyzer.
    pub analyzer: String,
    /// Which retrieval.
    pub retrieval: Retrieval,
    /// Chunks indexed.
    pub chunks: usize,
    /// All answerable questions.
    pub overall: Score,
    /// Chinese questions.
    pub chinese: Score,
    /// English questions.
    pub english: Score,
    /// The "no answer" threshold's record.
    pub no_answer: NoAnswerScore,
    /// Answerable questions whose answer no chunk holds whole (a chunking problem; should be 0).
    pub unreachable: Vec<String>,
    /// Answerable questions with no relevant chunk in the top 5.
    pub misses: Vec<String>,
    /// Each question's outcome.
    pub questions: Vec<QuestionResult>,
}

/// What one question got.
#[derive(Debug, Clone, Serialize)]
pub struct QuestionResult {
    /// The question's id.
    pub id: String,
    /// Whether the corpus answers it.
    pub answerable: bool,
    /// The 1-based rank of the first relevant chunk (within [`MRR_AT`]).
    pub rank: Option<usize>,
    /// The coverage of the best hit (0 without hits): what the "no answer" gate looks at.
    pub top_coverage: f64,
}

impl Report {
    /// How the "no answer" gate would do at each threshold: (threshold, unanswerable
    /// questions rejected, answerable questions rejected).
    pub fn threshold_sweep(&self, thresholds: &[f64]) -> Vec<(f64, usize, usize)> {
        thresholds
            .iter()
            .map(|&t| {
                let rejected = |answerable: bool| {
                    self.questions
                        .iter()
                        .filter(|q| q.answerable == answerable && q.top_coverage < t)
                        .count()
                };
                (t, rejected(false), rejected(true))
            })
            .collect()
    }
}

/// How chunks are retrieved for a question: the stages of [`crate::search`], alone and
/// together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Retrieval {
    /// BM25 over the segmented terms only.
    Bm25,
    /// Cosine similarity of embeddings only.
    Vector,
    /// Both, fused by reciprocal rank.
    Hybrid,
    /// Both fused, then the top [`MRR_AT`] reordered by a rerank model.
    HybridRerank,
}

impl Retrieval {
    /// Every kind, in the order the tables show them.
    pub const ALL: [Retrieval; 4] = [
        Retrieval::Bm25,
        Retrieval::Vector,
        Retrieval::Hybrid,
        Retrieval::HybridRerank,
    ];

    /// Whether it needs embeddings.
    pub fn needs_vectors(self) -> bool {
        self != Retrieval::Bm25
    }
}

/// Embeds texts for the vector stage: the built-in model, or an embedding upstream.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// One vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String>;
}

/// Scores documents against a query, higher is better, as a rerank model does.
#[async_trait]
pub trait Reranker: Send + Sync {
    /// One score per document, in order.
    async fn scores(&self, query: &str, documents: &[String]) -> Result<Vec<f64>, String>;
}

/// A corpus indexed once into one base: its chunks in the lexical index and, when an
/// [`Embedder`] was given, the chunks' and the questions' embeddings.
pub struct Indexed {
    base_id: String,
    /// Chunk id → (document name, text without whitespace) for judging relevance.
    judged: HashMap<String, (String, String)>,
    /// Chunk id → text, for the rerank model.
    texts: HashMap<String, String>,
    /// The chunks' embeddings as stored.
    vectors: Vec<(String, Vec<u8>)>,
    /// Each question's embedding, by question id.
    question_vectors: HashMap<String, Vec<f32>>,
    chunks: usize,
}

/// Embeds in batches, as ingestion does.
const EMBED_BATCH: usize = 64;

/// Chunks the corpus into `base_id` of `index` (and embeds chunks and questions with
/// `embedder`, if given).
pub async fn index_corpus(
    index: &LexicalIndex,
    base_id: &str,
    corpus: &Corpus,
    config: EvalConfig,
    embedder: Option<&dyn Embedder>,
) -> Result<Indexed, EvalError> {
    let mut judged = HashMap::new();
    let mut texts = HashMap::new();
    let mut indexed = Vec::new();
    let mut order = Vec::new();
    for doc in &corpus.documents {
        for (i, c) in chunk::chunk(&doc.blocks, config.chunking)
            .iter()
            .enumerate()
        {
            let chunk_id = format!("{base_id}/{}#{i}", doc.name);
            let text = c.indexed_text();
            indexed.push(IndexedChunk {
                chunk_id: chunk_id.clone(),
                document_id: format!("{base_id}/{}", doc.name),
                terms: config.analyzer.terms(&text),
            });
            judged.insert(chunk_id.clone(), (doc.name.clone(), compact(&text)));
            order.push(chunk_id.clone());
            texts.insert(chunk_id, text);
        }
    }
    index.insert(base_id, &indexed).await?;
    // Every question is then answered from the same copy in memory, as the service's searches
    // are once a base is warm (instead of the first few from the database while it is read).
    index.warm(base_id).await?;
    let mut vectors = Vec::new();
    let mut question_vectors = HashMap::new();
    if let Some(embedder) = embedder {
        for ids in order.chunks(EMBED_BATCH) {
            let batch: Vec<String> = ids.iter().map(|id| texts[id].clone()).collect();
            let embedded = embedder.embed(&batch).await.map_err(EvalError::Model)?;
            if embedded.len() != batch.len() {
                return Err(EvalError::Model(
                    "a vector per text was not answered".into(),
                ));
            }
            for (id, v) in ids.iter().zip(embedded) {
                vectors.push((id.clone(), vector::encode(&v)));
            }
        }
        for questions in corpus.questions.chunks(EMBED_BATCH) {
            let batch: Vec<String> = questions.iter().map(|q| q.question.clone()).collect();
            let embedded = embedder.embed(&batch).await.map_err(EvalError::Model)?;
            for (q, v) in questions.iter().zip(embedded) {
                question_vectors.insert(q.id.clone(), v);
            }
        }
    }
    Ok(Indexed {
        base_id: base_id.to_string(),
        chunks: indexed.len(),
        judged,
        texts,
        vectors,
        question_vectors,
    })
}

/// Indexes the corpus into `base_id` of `index` and asks every question by BM25.
pub async fn evaluate(
    index: &LexicalIndex,
    base_id: &str,
    corpus: &Corpus,
    config: EvalConfig,
) -> Result<Report, EvalError> {
    let indexed = index_corpus(index, base_id, corpus, config, None).await?;
    run(index, &indexed, corpus, config, Retrieval::Bm25, None).await
}

/// Asks every question of an indexed corpus with `retrieval` and scores the answers.
/// [`Retrieval::HybridRerank`] needs `reranker`; the vector kinds need the corpus indexed
/// with an embedder.
pub async fn run(
    index: &LexicalIndex,
    indexed: &Indexed,
    corpus: &Corpus,
    config: EvalConfig,
    retrieval: Retrieval,
    reranker: Option<&dyn Reranker>,
) -> Result<Report, EvalError> {
    if retrieval.needs_vectors() && indexed.vectors.is_empty() {
        return Err(EvalError::Model(format!(
            "{retrieval:?} needs the corpus embedded"
        )));
    }
    let mut ranks: Vec<(Lang, Option<usize>)> = Vec::new();
    let mut no_answer = NoAnswerScore {
        min_coverage: config.min_coverage,
        ..NoAnswerScore::default()
    };
    let mut unreachable = Vec::new();
    let mut misses = Vec::new();
    let mut results = Vec::new();
    // Fusion for ranking: every candidate kept, so the ranks measure ordering alone; the
    // "no answer" gate is judged separately with the service's threshold.
    let rank_all = FusionConfig {
        threshold: Threshold {
            min_coverage: 0.0,
            min_similarity: f32::NEG_INFINITY,
        },
        ..FusionConfig::default()
    };
    let gate = FusionConfig::default();
    for q in &corpus.questions {
        let terms = config.analyzer.terms(&q.question);
        let lexical_depth = if retrieval == Retrieval::Bm25 {
            MRR_AT
        } else {
            CANDIDATES
        };
        let lexical = index
            .search(&indexed.base_id, &terms, lexical_depth)
            .await?;
        let top_coverage = lexical.first().map(|h| h.coverage).unwrap_or(0.0);
        let nearest = match (
            retrieval.needs_vectors(),
            indexed.question_vectors.get(&q.id),
        ) {
            (true, Some(v)) => vector::nearest(v, &indexed.vectors, CANDIDATES),
            _ => Vec::new(),
        };
        let (ranked, answered): (Vec<String>, bool) = match retrieval {
            Retrieval::Bm25 => (
                lexical.iter().map(|h| h.chunk_id.clone()).collect(),
                top_coverage >= config.min_coverage,
            ),
            Retrieval::Vector => (
                nearest
                    .iter()
                    .take(MRR_AT)
                    .map(|h| h.chunk_id.clone())
                    .collect(),
                nearest
                    .first()
                    .is_some_and(|h| h.similarity >= gate.threshold.min_similarity),
            ),
            Retrieval::Hybrid | Retrieval::HybridRerank => {
                let fused = fusion::fuse(&lexical, &nearest, &rank_all);
                let mut ids: Vec<String> = fused
                    .hits
                    .iter()
                    .take(MRR_AT)
                    .map(|h| h.chunk_id.clone())
                    .collect();
                if retrieval == Retrieval::HybridRerank && !ids.is_empty() {
                    let reranker = reranker.ok_or_else(|| {
                        EvalError::Model("hybrid + rerank needs a rerank model".into())
                    })?;
                    let documents: Vec<String> =
                        ids.iter().map(|id| indexed.texts[id].clone()).collect();
                    let scores = reranker
                        .scores(&q.question, &documents)
                        .await
                        .map_err(EvalError::Model)?;
                    let mut order: Vec<(usize, f64)> = scores.into_iter().enumerate().collect();
                    // Best first; ties keep the fused order (a stable sort).
                    order.sort_by(|a, b| b.1.total_cmp(&a.1));
                    ids = order.into_iter().map(|(i, _)| ids[i].clone()).collect();
                }
                (ids, !fusion::fuse(&lexical, &nearest, &gate).no_answer())
            }
        };
        let (Some(doc), Some(answer)) = (&q.document, &q.answer) else {
            results.push(QuestionResult {
                id: q.id.clone(),
                answerable: false,
                rank: None,
                top_coverage,
            });
            no_answer.unanswerable += 1;
            if !answered {
                no_answer.rejected += 1;
            }
            continue;
        };
        if !answered {
            no_answer.answerable_rejected += 1;
        }
        let answer = compact(answer);
        let relevant = |id: &str| {
            indexed
                .judged
                .get(id)
                .is_some_and(|(name, text)| name == doc && text.contains(&answer))
        };
        if !indexed.judged.keys().any(|id| relevant(id)) {
            unreachable.push(q.id.clone());
        }
        let rank = ranked
            .iter()
            .take(MRR_AT)
            .position(|id| relevant(id))
            .map(|r| r + 1);
        if rank.is_none_or(|r| r > RECALL_AT) {
            misses.push(q.id.clone());
        }
        results.push(QuestionResult {
            id: q.id.clone(),
            answerable: true,
            rank,
            top_coverage,
        });
        ranks.push((q.lang, rank));
    }
    let score = |lang: Option<Lang>| {
        let picked: Vec<Option<usize>> = ranks
            .iter()
            .filter(|(l, _)| lang.is_none_or(|x| x == *l))
            .map(|(_, r)| *r)
            .collect();
        let n = picked.len();
        if n == 0 {
            return Score::default();
        }
        let found = picked
            .iter()
            .filter(|r| r.is_some_and(|r| r <= RECALL_AT))
            .count();
        let rr = picked
            .iter()
            .flatten()
            .fold(0.0, |sum, r| sum + 1.0 / *r as f64);
        Score {
            questions: n,
            recall_at_5: found as f64 / n as f64,
            mrr: rr / n as f64,
        }
    };
    Ok(Report {
        analyzer: format!("{:?}", config.analyzer),
        retrieval,
        chunks: indexed.chunks,
        overall: score(None),
        chinese: score(Some(Lang::Zh)),
        english: score(Some(Lang::En)),
        no_answer,
        unreachable,
        misses,
        questions: results,
    })
}
