//! Knowledge bases end to end through the real server, on SQLite and PostgreSQL: documents
//! uploaded (docx, pdf, txt) and indexed by the background worker with embeddings from the
//! mock upstream, hybrid search in Chinese and English with each stage's ranks, permissions
//! (another user's base is a 404; shares and public bases), an embedding upstream that fails
//! halfway and a job that resumes without duplicating anything, deletes that take chunks with
//! them, and chat answering from an attached base with citations.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein::config::Config;
use skein_testkit::mock_vendor::Fault;
use skein_testkit::{
    Persona, Price, RelayWorld, Resp, TestApp, Upstream, WorldSpec, on_both_backends,
};

const BOUNDARY: &str = "skein-knowledge-test-boundary";
const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../skein-knowledge/tests/data/fixtures"
);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn form(field: &str, name: &str, content: &[u8], extra: &str) -> Vec<u8> {
    let mut body = format!(
        "{extra}--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn multipart(app: &TestApp, who: &Persona, path: &str, body: Vec<u8>) -> Resp {
    app.send(
        app.client
            .post(app.url(path))
            .bearer_auth(&who.access)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body),
    )
    .await
}

/// Uploads a document straight into a base; answers the document.
async fn upload(app: &TestApp, who: &Persona, base: &str, name: &str, content: &[u8]) -> Value {
    let r = multipart(
        app,
        who,
        &format!("/api/v1/knowledge/bases/{base}/documents/upload"),
        form("file", name, content, ""),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "upload {name}: {}", r.text);
    assert_eq!(r.json["status"], "queued");
    r.json
}

/// Uploads a file to the File service; answers its id.
async fn file(app: &TestApp, who: &Persona, name: &str, content: &[u8]) -> String {
    let purpose = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nknowledge\r\n"
    );
    let r = multipart(
        app,
        who,
        "/api/v1/files",
        form("file", name, content, &purpose),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

async fn create_base(app: &TestApp, who: &Persona, body: Value) -> String {
    let r = app
        .post("/api/v1/knowledge/bases", Some(&who.access), body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// Polls a document until it is ready or failed; answers it.
async fn settled(app: &TestApp, who: &Persona, base: &str, doc: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = app
            .get(
                &format!("/api/v1/knowledge/bases/{base}/documents/{doc}"),
                Some(&who.access),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if r.json["status"] == "ready" || r.json["status"] == "failed" {
            return r.json;
        }
        assert!(
            Instant::now() < deadline,
            "document never settled: {}",
            r.json
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn search(app: &TestApp, who: &Persona, base: &str, query: &str) -> Resp {
    app.post(
        &format!("/api/v1/knowledge/bases/{base}/search"),
        Some(&who.access),
        json!({"query": query, "top_k": 5}),
    )
    .await
}

fn quick(c: &mut Config) {
    c.knowledge.poll_interval_ms = 50;
    c.knowledge.retry_base_secs = 1;
    c.chat.title_model = Some(String::new());
}

/// A relay serving a chat model and an embedding model, on a fast-polling server.
async fn world(app: &TestApp) -> RelayWorld {
    WorldSpec::new(Upstream::OpenAi)
        .model("gpt-test", Some("gpt-upstream"))
        .model("embed-test", None)
        .price("gpt-test", Price::tokens(2_000_000, 6_000_000))
        .price("embed-test", Price::tokens(1_000_000, 0))
        .build(app)
        .await
}

/// Rows of a knowledge table (the test checks what no API shows any more: deleted rows).
async fn rows(app: &TestApp, table: &str) -> i64 {
    let db = skein_db::Db::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    let (n,): (i64,) = skein_db::sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(db.pool())
        .await
        .unwrap();
    db.close().await;
    n
}

const NOTES: &str = "Refund policy\n\nThe refund window is thirty days from delivery, and refunds reach the card within five working days.\n\n退款政策\n\n退货须在签收后三十天内申请，退款五个工作日内到账。\n";

on_both_backends! {
    async fn documents_are_indexed_and_found_in_chinese_and_english(backend) {
        let app = TestApp::spawn_with(backend, quick).await;
        let RelayWorld { user: ada, upstream, root, .. } = world(&app).await;
        let base = create_base(&app, &ada, json!({"name": "Policies", "embedding_model": "embed-test"})).await;

        // docx and txt uploaded straight into the base, pdf added by its file id.
        let docx = upload(&app, &ada, &base, "travel.docx", &fixture("sample.docx")).await;
        let txt = upload(&app, &ada, &base, "refunds.txt", NOTES.as_bytes()).await;
        let pdf_file = file(&app, &ada, "handbook.pdf", &fixture("sample.pdf")).await;
        let r = app.post(&format!("/api/v1/knowledge/bases/{base}/documents"), Some(&ada.access), json!({"file_id": pdf_file})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let pdf = r.json.clone();
        for doc in [&docx, &txt, &pdf] {
            let done = settled(&app, &ada, &base, doc["id"].as_str().unwrap()).await;
            assert_eq!(done["status"], "ready", "{done}");
            assert!(done["chunk_count"].as_i64().unwrap() >= 1, "{done}");
            assert_eq!(done["progress_done"], done["progress_total"], "{done}");
        }

        // English finds the docx's hotel limit, with every stage's rank.
        let r = search(&app, &ada, &base, "what is the nightly hotel limit?").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["mode"], "hybrid");
        assert_eq!(r.json["no_answer"], false);
        let top = &r.json["hits"][0];
        assert_eq!(top["document_name"], "travel.docx", "{}", r.json);
        assert!(top["chunk"]["text"].as_str().unwrap().contains("150 euros"), "{top}");
        assert_eq!(top["fused_rank"], 1);
        assert!(top["bm25_rank"].is_u64(), "{top}");
        assert!(r.json["hits"].as_array().unwrap().iter().all(|h| h["vector_rank"].is_u64() || h["bm25_rank"].is_u64()));
        assert!(r.json["hits"].as_array().unwrap().iter().any(|h| h["vector_rank"].is_u64()), "vectors took part: {}", r.json);

        // Chinese finds the Chinese passages (jieba-segmented on both backends).
        let r = search(&app, &ada, &base, "上海住宿每晚多少钱").await;
        assert!(r.json["hits"][0]["chunk"]["text"].as_str().unwrap().contains("六百元"), "{}", r.json);
        let r = search(&app, &ada, &base, "退款几天到账").await;
        let top = &r.json["hits"][0];
        assert_eq!(top["document_name"], "refunds.txt", "{}", r.json);
        assert!(top["chunk"]["text"].as_str().unwrap().contains("五个工作日"), "{top}");

        // The pdf keeps its pages.
        let r = search(&app, &ada, &base, "how often are laptops replaced").await;
        let top = &r.json["hits"][0];
        assert_eq!(top["document_name"], "handbook.pdf", "{}", r.json);
        // One chunk holds the three short pages, and says so.
        assert_eq!((top["chunk"]["page_start"].as_i64(), top["chunk"]["page_end"].as_i64()), (Some(1), Some(3)), "{top}");
        assert!(top["chunk"]["text"].as_str().unwrap().contains("every three years"), "{top}");

        // Embeddings went through the relay, in batches, billed to the owner.
        let embeds: Vec<Value> = upstream.requests().into_iter().filter(|r| r["model"] == "embed-test").collect();
        assert!(embeds.len() >= 4, "three documents and the queries: {}", embeds.len());
        let ledger = app.get("/api/v1/billing/ledger", Some(&ada.access)).await;
        assert!(ledger.text.contains("embed-test") || ledger.json["total"].as_i64().unwrap_or(0) > 1, "{}", ledger.text);

        // Statistics, the list with status, and the chunk viewer.
        let stats = app.get(&format!("/api/v1/knowledge/bases/{base}/stats"), Some(&ada.access)).await.json;
        assert_eq!(stats["documents"], 3);
        assert_eq!(stats["ready_documents"], 3);
        assert_eq!(stats["chunks"], stats["embedded_chunks"], "{stats}");
        let list = app.get(&format!("/api/v1/knowledge/bases/{base}/documents"), Some(&ada.access)).await.json;
        assert_eq!(list["total"], 3);
        let doc = txt["id"].as_str().unwrap();
        let chunks = app.get(&format!("/api/v1/knowledge/bases/{base}/documents/{doc}/chunks"), Some(&ada.access)).await.json;
        assert!(chunks["items"][0]["text"].as_str().unwrap().contains("thirty days"), "{chunks}");
        assert_eq!(chunks["items"][0]["embedded"], true);

        // Another user: every route of the base is a 404, and the list does not show it.
        let bob = app.register("bob").await;
        for path in [format!("/api/v1/knowledge/bases/{base}"), format!("/api/v1/knowledge/bases/{base}/documents"),
                     format!("/api/v1/knowledge/bases/{base}/documents/{doc}/chunks"), format!("/api/v1/knowledge/bases/{base}/stats")] {
            let r = app.get(&path, Some(&bob.access)).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        }
        assert_eq!(search(&app, &bob, &base, "refund").await.status, StatusCode::NOT_FOUND);
        let r = app.post(&format!("/api/v1/knowledge/bases/{base}/documents"), Some(&bob.access), json!({"file_id": pdf_file})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.send(app.client.delete(app.url(&format!("/api/v1/knowledge/bases/{base}"))).bearer_auth(&bob.access)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get("/api/v1/knowledge/bases", Some(&bob.access)).await.json["total"], 0);
        // Bob cannot add Ada's file to a base of his own either.
        let bobs = create_base(&app, &bob, json!({"name": "Mine", "embedding_model": ""})).await;
        let r = app.post(&format!("/api/v1/knowledge/bases/{bobs}/documents"), Some(&bob.access), json!({"file_id": pdf_file})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

        // Shared for reading: Bob searches but may not change it; public: everyone reads.
        let r = app.put(&format!("/api/v1/knowledge/bases/{base}/shares"), Some(&ada.access), json!({"shares": [{"user_id": bob.id, "permission": "read"}]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(search(&app, &bob, &base, "refund window").await.status, StatusCode::OK);
        let r = multipart(&app, &bob, &format!("/api/v1/knowledge/bases/{base}/documents/upload"), form("file", "x.txt", b"hello", "")).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "knowledge_read_only"), "{}", r.text);
        let r = app.patch(&format!("/api/v1/knowledge/bases/{base}"), Some(&bob.access), json!({"name": "mine now"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let carol = app.register("carol").await;
        assert_eq!(app.get(&format!("/api/v1/knowledge/bases/{base}"), Some(&carol.access)).await.status, StatusCode::NOT_FOUND);
        app.patch(&format!("/api/v1/knowledge/bases/{base}"), Some(&ada.access), json!({"visibility": "public"})).await;
        let r = app.get(&format!("/api/v1/knowledge/bases/{base}"), Some(&carol.access)).await;
        assert_eq!((r.status, r.json["permission"].as_str()), (StatusCode::OK, Some("read")), "{}", r.text);
        let _ = root;

        // Deleting a document takes its chunks; deleting the base takes everything.
        let before = rows(&app, "knowledge_chunks").await;
        let r = app.send(app.client.delete(app.url(&format!("/api/v1/knowledge/bases/{base}/documents/{doc}"))).bearer_auth(&ada.access)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert!(rows(&app, "knowledge_chunks").await < before);
        let r = search(&app, &ada, &base, "退款几天到账").await;
        assert!(r.json["hits"].as_array().unwrap().iter().all(|h| h["document_name"] != "refunds.txt"), "{}", r.json);
        let r = app.send(app.client.delete(app.url(&format!("/api/v1/knowledge/bases/{base}"))).bearer_auth(&ada.access)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get(&format!("/api/v1/knowledge/bases/{base}"), Some(&ada.access)).await.status, StatusCode::NOT_FOUND);
        for table in ["knowledge_chunks", "knowledge_lexical_chunks", "knowledge_documents", "knowledge_jobs", "knowledge_shares"] {
            assert_eq!(rows(&app, table).await, 0, "{table}");
        }
    }

    async fn an_embedding_upstream_failing_halfway_resumes_without_duplicates(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            quick(c);
            c.knowledge.embed_batch = 2;
        }).await;
        let RelayWorld { user: ada, upstream, .. } = world(&app).await;
        let base = create_base(&app, &ada, json!({"name": "Long", "embedding_model": "embed-test", "chunk_max_tokens": 16, "chunk_overlap_tokens": 0})).await;
        let text: String = (1..=8).map(|i| format!("Section {i}\n\nParagraph number {i} talks about topic{i} at some length so that it fills one chunk.\n\n")).collect();
        // The first batch is embedded, the second fails upstream; the retry must resume there.
        upstream.fail_next(Fault::Delay(Duration::from_millis(0)));
        upstream.fail_next(Fault::Status(500));
        let doc = upload(&app, &ada, &base, "long.md", text.as_bytes()).await;
        let id = doc["id"].as_str().unwrap();

        // Seen waiting for its retry: one batch in, an error in both languages, not searchable.
        let deadline = Instant::now() + Duration::from_secs(30);
        let waiting = loop {
            let d = app.get(&format!("/api/v1/knowledge/bases/{base}/documents/{id}"), Some(&ada.access)).await.json;
            if d["error"]["code"] == "embedding_failed" || d["status"] == "ready" {
                break d;
            }
            assert!(Instant::now() < deadline, "{d}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(waiting["status"], "embedding", "{waiting}");
        assert_eq!(waiting["progress_done"], 2, "{waiting}");
        assert!(waiting["progress_total"].as_i64().unwrap() >= 6, "{waiting}");
        assert!(!waiting["error"]["zh"].as_str().unwrap().is_empty());
        let r = search(&app, &ada, &base, "topic1 paragraph").await;
        assert_eq!(r.json["hits"], json!([]), "half-indexed documents are not searchable: {}", r.json);
        assert_eq!(r.json["no_answer"], true);

        let done = settled(&app, &ada, &base, id).await;
        assert_eq!(done["status"], "ready", "{done}");
        assert_eq!(done["error"], Value::Null);
        let total = done["chunk_count"].as_i64().unwrap();
        let chunks = app.get(&format!("/api/v1/knowledge/bases/{base}/documents/{id}/chunks?per_page=100"), Some(&ada.access)).await.json;
        assert_eq!(chunks["total"], total);
        let positions: Vec<i64> = chunks["items"].as_array().unwrap().iter().map(|c| c["position"].as_i64().unwrap()).collect();
        assert_eq!(positions, (0..total).collect::<Vec<_>>(), "no chunk twice");
        assert!(chunks["items"].as_array().unwrap().iter().all(|c| c["embedded"] == true));

        // Every chunk was embedded by exactly one successful call: the first batch was not
        // sent again after the failure.
        let embeds: Vec<Value> = upstream.requests().into_iter().filter(|r| r["model"] == "embed-test" && r["input"].is_array()).collect();
        let first = chunks["items"][0]["text"].as_str().unwrap();
        let sent_first = embeds.iter().filter(|r| r["input"].as_array().unwrap().iter().any(|i| i == first)).count();
        assert_eq!(sent_first, 1, "the first batch was embedded once: {embeds:?}");
        let stats = app.get(&format!("/api/v1/knowledge/bases/{base}/stats"), Some(&ada.access)).await.json;
        assert_eq!((stats["chunks"].as_i64(), stats["embedded_chunks"].as_i64()), (Some(total), Some(total)));
        assert_eq!(rows(&app, "knowledge_lexical_chunks").await, total);
        let r = search(&app, &ada, &base, "topic1 paragraph").await;
        assert!(r.json["hits"][0]["chunk"]["text"].as_str().unwrap().contains("topic1"), "{}", r.json);
    }

    async fn bad_documents_fail_clearly_and_lexical_bases_say_no_answer(backend) {
        let app = TestApp::spawn_with(backend, quick).await;
        let ada = app.register("ada").await;
        // No embedding model anywhere: lexical search only, and the base says so.
        let r = app.post("/api/v1/knowledge/bases", Some(&ada.access), json!({"name": "Plain"})).await;
        assert_eq!(r.json["retrieval"], "lexical", "{}", r.text);
        assert_eq!(r.json["embedding_model"], Value::Null);
        let base = r.json["id"].as_str().unwrap().to_string();
        let good = upload(&app, &ada, &base, "refunds.txt", NOTES.as_bytes()).await;
        let bomb = upload(&app, &ada, &base, "bomb.docx", &fixture("bomb.docx")).await;
        let empty = upload(&app, &ada, &base, "scan.pdf", &fixture("no-text.pdf")).await;
        let good = settled(&app, &ada, &base, good["id"].as_str().unwrap()).await;
        assert_eq!(good["status"], "ready");
        for doc in [bomb, empty] {
            let d = settled(&app, &ada, &base, doc["id"].as_str().unwrap()).await;
            assert_eq!(d["status"], "failed", "{d}");
            assert_eq!(d["error"]["code"], "extract_failed", "{d}");
            assert!(d["error"]["zh"].as_str().unwrap().contains("文件"), "{d}");
        }
        // A program is no document.
        let r = multipart(&app, &ada, &format!("/api/v1/knowledge/bases/{base}/documents/upload"), form("file", "tool.exe", b"MZ\x90\x00", "")).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_document"), "{}", r.text);

        // The base still answers, and says "no answer" for what it does not hold.
        let r = search(&app, &ada, &base, "what is the refund window").await;
        assert_eq!(r.json["mode"], "lexical");
        assert_eq!(r.json["no_answer"], false, "{}", r.json);
        assert_eq!(r.json["hits"][0]["vector_rank"], Value::Null);
        let r = search(&app, &ada, &base, "quantum chromodynamics lattice gauge").await;
        assert_eq!(r.json["no_answer"], true, "{}", r.json);
        assert_eq!(r.json["hits"], json!([]));
        let r = search(&app, &ada, &base, "  ").await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn rerank_orders_hits_and_a_slow_reranker_answers_unranked(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            quick(c);
            c.knowledge.rerank_timeout_ms = 500;
        }).await;
        let RelayWorld { user: ada, upstream, .. } = WorldSpec::new(Upstream::OpenAi)
            .model("rerank-test", None)
            .price("rerank-test", Price::tokens(1_000_000, 0))
            .build(&app)
            .await;
        let base = create_base(&app, &ada, json!({"name": "Ranked", "embedding_model": "", "rerank_model": "rerank-test"})).await;
        let doc = upload(&app, &ada, &base, "travel.docx", &fixture("sample.docx")).await;
        assert_eq!(settled(&app, &ada, &base, doc["id"].as_str().unwrap()).await["status"], "ready");

        let r = search(&app, &ada, &base, "hotel limit Paris").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!((r.json["reranked"].as_bool(), r.json["unranked"].as_bool()), (Some(true), Some(false)), "{}", r.json);
        assert_eq!(r.json["hits"][0]["reranked_rank"], 1, "{}", r.json);
        assert!(upstream.requests().iter().any(|q| q["model"] == "rerank-test"));

        // A reranker slower than the timeout: the fused order stands, and the answer says so.
        upstream.fail_next(Fault::Delay(Duration::from_secs(3)));
        let started = Instant::now();
        let r = search(&app, &ada, &base, "hotel limit Paris").await;
        assert!(started.elapsed() < Duration::from_secs(2), "did not wait for the reranker");
        assert_eq!((r.json["reranked"].as_bool(), r.json["unranked"].as_bool()), (Some(false), Some(true)), "{}", r.json);
        assert_eq!(r.json["hits"][0]["fused_rank"], 1);
        assert_eq!(r.json["hits"][0]["reranked_rank"], Value::Null);
    }

    async fn chat_answers_from_an_attached_base_with_citations(backend) {
        let app = TestApp::spawn_with(backend, quick).await;
        let RelayWorld { user: ada, upstream, .. } = world(&app).await;
        let base = create_base(&app, &ada, json!({"name": "Shop", "embedding_model": ""})).await;
        let doc = upload(&app, &ada, &base, "refunds.txt", NOTES.as_bytes()).await;
        assert_eq!(settled(&app, &ada, &base, doc["id"].as_str().unwrap()).await["status"], "ready");

        let r = app.post("/api/v1/chat/conversations", Some(&ada.access), json!({"model": "gpt-test"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let conversation = r.json["id"].as_str().unwrap().to_string();
        let attach = format!("/api/v1/knowledge/conversations/{conversation}/bases");
        let r = app.put(&attach, Some(&ada.access), json!({"base_ids": [base]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(app.get(&attach, Some(&ada.access)).await.json["base_ids"], json!([base]));
        // Another user cannot attach a base they cannot read.
        let bob = app.register("bob").await;
        let r = app.put(&attach, Some(&bob.access), json!({"base_ids": [base]})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);

        let path = format!("/api/v1/chat/conversations/{conversation}/messages");
        let r = app.post(&path, Some(&ada.access), json!({"content": "What is the refund window?"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let sent = upstream.requests().into_iter().rfind(|r| r["model"] == "gpt-upstream").unwrap();
        let system = sent["messages"][0]["content"].as_str().unwrap().to_string();
        assert!(system.contains("[1] refunds.txt"), "{system}");
        assert!(system.contains("thirty days from delivery"), "{system}");
        let history = app.get(&path, Some(&ada.access)).await.json;
        let answer = &history["messages"][1];
        let source = &answer["sources"][0];
        assert_eq!(source["source"], "knowledge", "{answer}");
        assert_eq!(source["label"], "1");
        assert_eq!(source["title"], "refunds.txt");
        assert!(source["excerpt"].as_str().unwrap().contains("thirty days"));
        assert_eq!(source["reference"]["file_id"], doc["file_id"]);
        assert_eq!(source["reference"]["base_id"], json!(base));

        // Nothing relevant: the model is told to say so, and nothing is cited.
        let r = app.post(&path, Some(&ada.access), json!({"content": "What colour is the chairman's yacht?"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let sent = upstream.requests().into_iter().rfind(|r| r["model"] == "gpt-upstream").unwrap();
        assert_eq!(sent["messages"][0]["content"], skein::rag::NO_KNOWLEDGE, "{sent}");
        let history = app.get(&path, Some(&ada.access)).await.json;
        assert!(history["messages"][3].get("sources").is_none(), "{}", history["messages"][3]);
    }
}

/// The built-in model's folder: scripts/test installs it (scripts/local-embed-model) and sets
/// `SKEIN_LOCAL_EMBED_DIR`; these tests need it.
fn local_model_dir() -> std::path::PathBuf {
    std::env::var("SKEIN_LOCAL_EMBED_DIR")
        .map(std::path::PathBuf::from)
        .expect("SKEIN_LOCAL_EMBED_DIR: run scripts/local-embed-model DIR and point it there (scripts/test does)")
}

fn with_local_model(c: &mut Config) {
    quick(c);
    c.knowledge.local_embed_dir = Some(local_model_dir());
}

const LEAVE: &str = "Annual leave\n\nFull-time staff receive twenty-five days of paid holiday each year.\n\n年假\n\n员工每年享有十五天带薪年假，可以分三次休完。\n\nParking\n\nThe garage under building B has forty spaces for visitors.\n";

on_both_backends! {
    async fn the_built_in_model_embeds_for_bases_and_api_users_with_no_vendor(backend) {
        let app = TestApp::spawn_with(backend, with_local_model).await;
        let RelayWorld { user: ada, key, upstream, .. } = world(&app).await;

        // A base that names no model gets the built-in one: hybrid search, no upstream call.
        let base = create_base(&app, &ada, json!({"name": "Handbook"})).await;
        let view = app.get(&format!("/api/v1/knowledge/bases/{base}"), Some(&ada.access)).await.json;
        assert_eq!(view["embedding_model"], "skein-local-embed", "{view}");
        assert_eq!(view["retrieval"], "hybrid", "{view}");
        let doc = upload(&app, &ada, &base, "leave.txt", LEAVE.as_bytes()).await;
        let done = settled(&app, &ada, &base, doc["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "ready", "{done}");
        let stats = app.get(&format!("/api/v1/knowledge/bases/{base}/stats"), Some(&ada.access)).await.json;
        assert_eq!(stats["chunks"], stats["embedded_chunks"], "{stats}");
        let r = search(&app, &ada, &base, "how many days of paid holiday do full-time staff receive").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["mode"], "hybrid", "{}", r.json);
        assert!(r.json["vector_error"].is_null(), "{}", r.json);
        let top = &r.json["hits"][0];
        assert!(top["chunk"]["text"].as_str().unwrap().contains("twenty-five days"), "{}", r.json);
        assert!(top["vector_rank"].is_u64() && top["similarity"].as_f64().unwrap() > 0.0, "vectors took part: {top}");
        let r = search(&app, &ada, &base, "员工每年有多少天带薪年假").await;
        assert!(r.json["hits"][0]["chunk"]["text"].as_str().unwrap().contains("十五天"), "{}", r.json);
        assert!(upstream.requests().iter().all(|r| r["model"] != "skein-local-embed"), "the built-in model never goes upstream");

        // /v1/embeddings serves it to API keys, in OpenAI's shape, float and base64.
        let r = app.send(app.client.post(app.url("/v1/embeddings")).bearer_auth(&key)
            .json(&json!({"model": "skein-local-embed", "input": ["员工每年享有十五天带薪年假", "paid annual leave", ""]}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["model"], "skein-local-embed");
        let data = r.json["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        let vector = |i: usize| -> Vec<f64> { data[i]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
        assert_eq!(vector(0).len(), 64);
        let norm: f64 = vector(0).iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "normalized: {norm}");
        assert!(vector(2).iter().all(|x| *x == 0.0), "empty text embeds as zeros");
        assert!(r.json["usage"]["prompt_tokens"].as_i64().unwrap() > 3, "{}", r.json);
        let r = app.send(app.client.post(app.url("/v1/embeddings")).bearer_auth(&key)
            .json(&json!({"model": "skein-local-embed", "input": "paid annual leave", "encoding_format": "base64"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(r.json["data"][0]["embedding"].as_str().unwrap()).unwrap();
        let decoded: Vec<f64> = bytes.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect();
        assert_eq!(decoded.len(), 64);
        assert!(decoded.iter().zip(vector(1)).all(|(a, b)| (a - b).abs() < 1e-6), "base64 and float agree");

        // Bad input gets a clear error.
        let r = app.send(app.client.post(app.url("/v1/embeddings")).bearer_auth(&key)
            .json(&json!({"model": "skein-local-embed", "input": "x", "dimensions": 32}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(r.text.contains("64"), "{}", r.text);
        let r = app.send(app.client.post(app.url("/v1/embeddings")).bearer_auth(&key)
            .json(&json!({"model": "skein-local-embed", "input": [[1, 2, 3]]}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        // Without a key: refused as every relay route is.
        let r = app.send(app.client.post(app.url("/v1/embeddings")).json(&json!({"model": "skein-local-embed", "input": "x"}))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }

    async fn without_the_built_in_model_bases_search_by_keywords_and_naming_it_is_refused(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            quick(c);
            // A folder that holds no model: the server starts and runs without it.
            c.knowledge.local_embed_dir = Some(std::env::temp_dir().join("skein-no-such-model"));
        }).await;
        let RelayWorld { user: ada, key, .. } = world(&app).await;
        let base = create_base(&app, &ada, json!({"name": "Plain"})).await;
        let view = app.get(&format!("/api/v1/knowledge/bases/{base}"), Some(&ada.access)).await.json;
        assert!(view["embedding_model"].is_null(), "{view}");
        assert_eq!(view["retrieval"], "lexical", "{view}");
        let doc = upload(&app, &ada, &base, "leave.txt", LEAVE.as_bytes()).await;
        assert_eq!(settled(&app, &ada, &base, doc["id"].as_str().unwrap()).await["status"], "ready");
        let r = search(&app, &ada, &base, "员工每年有多少天带薪年假").await;
        assert_eq!(r.json["mode"], "lexical", "{}", r.json);
        assert!(r.json["hits"][0]["chunk"]["text"].as_str().unwrap().contains("十五天"), "{}", r.json);

        for lang in ["en", "zh-CN"] {
            let r = app.send(app.client.post(app.url("/api/v1/knowledge/bases")).bearer_auth(&ada.access)
                .header("accept-language", lang)
                .json(&json!({"name": "Wants it", "embedding_model": "skein-local-embed"}))).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
            let wanted = if lang == "en" { "not installed" } else { "未安装" };
            assert!(r.text.contains(wanted), "{lang}: {}", r.text);
        }
        let r = app.patch(&format!("/api/v1/knowledge/bases/{base}"), Some(&ada.access), json!({"embedding_model": "skein-local-embed"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        // /v1/embeddings has no such model either.
        let r = app.send(app.client.post(app.url("/v1/embeddings")).bearer_auth(&key)
            .json(&json!({"model": "skein-local-embed", "input": "x"}))).await;
        assert!(!r.status.is_success(), "{}", r.text);
    }
}

const EVAL_DOCS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../skein-knowledge/tests/data/eval/docs"
);

/// A web server on loopback serving one page (and a 404), for adding pages by URL.
async fn page_server() -> (String, tokio::task::JoinHandle<()>) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/wiki/leave",
        get(|| async {
            (
                [("content-type", "text/html; charset=utf-8")],
                "<html><head><title>Leave</title></head><body><nav>Home | Wiki</nav>\
                 <h1>Parental leave</h1><p>New parents may take sixteen weeks of paid parental leave.</p>\
                 <h2>育儿假</h2><p>新生儿父母可享受十六周带薪育儿假。</p></body></html>",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

on_both_backends! {
    async fn spreadsheets_images_scans_and_web_pages_are_indexed(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            quick(c);
            // The page server below is on loopback: the admin allowed private addresses.
            c.knowledge.allow_private_urls = true;
        }).await;
        let ada = app.register("ada").await;
        let base = create_base(&app, &ada, json!({"name": "Office", "embedding_model": ""})).await;
        let read = |name: &str| std::fs::read(format!("{EVAL_DOCS}/{name}")).unwrap();

        let xlsx = upload(&app, &ada, &base, "supplies.xlsx", &read("en-office-supplies.xlsx")).await;
        let image = upload(&app, &ada, &base, "notice.png", &fixture("notice.png")).await;
        let scan = upload(&app, &ada, &base, "closure.pdf", &read("zh-library-closure-scan.pdf")).await;
        let (site, server) = page_server().await;
        let r = app.post(&format!("/api/v1/knowledge/bases/{base}/documents/url"), Some(&ada.access), json!({"url": format!("{site}/wiki/leave")})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let page = r.json.clone();
        assert!(page["name"].as_str().unwrap().ends_with(".html"), "{page}");
        for doc in [&xlsx, &image, &scan, &page] {
            let done = settled(&app, &ada, &base, doc["id"].as_str().unwrap()).await;
            assert_eq!(done["status"], "ready", "{done}");
        }
        server.abort();

        // The spreadsheet: rows under their header, each sheet named.
        let r = search(&app, &ada, &base, "which shelf has the toner cartridge").await;
        let text = r.json["hits"][0]["chunk"]["text"].as_str().unwrap().to_string();
        assert!(text.contains("Black toner cartridge TN-420 | S3"), "{}", r.json);
        assert!(text.contains("Item | Shelf | In stock"), "the header goes with the rows: {text}");
        let r = search(&app, &ada, &base, "who approves orders above 300 dollars").await;
        assert!(r.json["hits"][0]["chunk"]["text"].as_str().unwrap().contains("office manager"), "{}", r.json);

        // The image and the scanned page, read by OCR (Chinese and English).
        let r = search(&app, &ada, &base, "会议室预订提前几天").await;
        assert_eq!(r.json["hits"][0]["document_name"], "notice.png", "{}", r.json);
        assert!(r.json["hits"][0]["chunk"]["text"].as_str().unwrap().contains("提前两天"), "{}", r.json);
        let r = search(&app, &ada, &base, "room bookings close").await;
        assert_eq!(r.json["hits"][0]["document_name"], "notice.png", "{}", r.json);
        let r = search(&app, &ada, &base, "闭馆期间怎么还书").await;
        let top = &r.json["hits"][0];
        assert_eq!(top["document_name"], "closure.pdf", "{}", r.json);
        assert!(top["chunk"]["text"].as_str().unwrap().contains("自助还书箱"), "{top}");
        assert_eq!(top["chunk"]["page_start"], 1, "{top}");

        // The web page: readable text, navigation dropped.
        let r = search(&app, &ada, &base, "how long is parental leave").await;
        let top = &r.json["hits"][0];
        assert!(top["chunk"]["text"].as_str().unwrap().contains("sixteen weeks"), "{}", r.json);
        assert!(!top["chunk"]["text"].as_str().unwrap().contains("Home | Wiki"), "{top}");
        let r = search(&app, &ada, &base, "育儿假多少周").await;
        assert!(r.json["hits"][0]["chunk"]["text"].as_str().unwrap().contains("十六周"), "{}", r.json);
        // A page that answers 404 is refused with the status, and nothing is added.
        let (site, server) = page_server().await;
        let r = app.post(&format!("/api/v1/knowledge/bases/{base}/documents/url"), Some(&ada.access), json!({"url": format!("{site}/missing")})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert!(r.text.contains("404"), "{}", r.text);
        server.abort();
        assert_eq!(app.get(&format!("/api/v1/knowledge/bases/{base}/documents"), Some(&ada.access)).await.json["total"], 4);
    }

    async fn urls_on_private_addresses_are_refused_unless_the_admin_allows_them(backend) {
        let app = TestApp::spawn_with(backend, quick).await;
        let ada = app.register("ada").await;
        let base = create_base(&app, &ada, json!({"name": "Web", "embedding_model": ""})).await;
        let (site, server) = page_server().await;
        let metadata = "http://169.254.169.254/latest/meta-data/".to_string();
        for url in [format!("{site}/wiki/leave"), metadata, "http://[::1]:9/x".to_string()] {
            let r = app.post(&format!("/api/v1/knowledge/bases/{base}/documents/url"), Some(&ada.access), json!({"url": url})).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {}", r.text);
            assert!(r.text.contains("not allowed"), "{url}: {}", r.text);
        }
        for url in ["ftp://example.com/a.txt", "not a url", "file:///etc/passwd"] {
            let r = app.post(&format!("/api/v1/knowledge/bases/{base}/documents/url"), Some(&ada.access), json!({"url": url})).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {}", r.text);
        }
        server.abort();
        assert_eq!(app.get(&format!("/api/v1/knowledge/bases/{base}/documents"), Some(&ada.access)).await.json["total"], 0);
        // Another user's base: 404 before anything is fetched.
        let bob = app.register("bob").await;
        let r = app.post(&format!("/api/v1/knowledge/bases/{base}/documents/url"), Some(&bob.access), json!({"url": "https://example.com/"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    }
}

/// The base's lexical statistics row: (generation, chunks, total terms).
async fn lexical_stats(app: &TestApp, base: &str) -> Option<(i64, i64, i64)> {
    let db = skein_db::Db::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    let row = skein_db::sqlx::query_as(
        "SELECT generation, chunks, total_terms FROM knowledge_lexical_bases WHERE base_id = $1",
    )
    .bind(base)
    .fetch_optional(db.pool())
    .await
    .unwrap();
    db.close().await;
    row
}

/// The ids of a search's hits' documents.
fn hit_documents(r: &Resp) -> Vec<String> {
    r.json["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["chunk"]["document_id"].as_str().unwrap().to_string())
        .collect()
}

on_both_backends! {
    async fn the_in_memory_lexical_index_follows_documents_added_and_removed(backend) {
        let app = TestApp::spawn_with(backend, quick).await;
        let ada = app.register("ada").await;
        let base = create_base(&app, &ada, json!({"name": "Moving"})).await;
        let first = upload(&app, &ada, &base, "refunds.txt", NOTES.as_bytes()).await;
        let first = first["id"].as_str().unwrap().to_string();
        assert_eq!(settled(&app, &ada, &base, &first).await["status"], "ready");
        // This search reads the base into memory.
        let r = search(&app, &ada, &base, "refund window").await;
        assert_eq!(hit_documents(&r), std::slice::from_ref(&first), "{}", r.json);
        let (generation, chunks, terms) = lexical_stats(&app, &base).await.unwrap();
        assert!(chunks >= 1 && terms > chunks, "{chunks} {terms}");

        // A document added later is found at once: the publish moved the base's generation.
        let second = upload(&app, &ada, &base, "lighthouse.txt",
            "The lighthouse keeper climbs 212 steps to light the lamp at dusk.\n".as_bytes()).await;
        let second = second["id"].as_str().unwrap().to_string();
        assert_eq!(settled(&app, &ada, &base, &second).await["status"], "ready");
        let (moved, more, _) = lexical_stats(&app, &base).await.unwrap();
        assert!(moved > generation && more > chunks, "{moved} {more}");
        let r = search(&app, &ada, &base, "lighthouse keeper steps").await;
        assert_eq!(hit_documents(&r), std::slice::from_ref(&second), "{}", r.json);
        let r = search(&app, &ada, &base, "refund window").await;
        assert_eq!(hit_documents(&r), std::slice::from_ref(&first), "{}", r.json);

        // A deleted document is gone from the next search, and its counts from the statistics.
        let r = app.send(app.client.delete(app.url(&format!("/api/v1/knowledge/bases/{base}/documents/{first}"))).bearer_auth(&ada.access)).await;
        assert!(r.status.is_success(), "{}", r.text);
        let r = search(&app, &ada, &base, "refund window").await;
        assert_eq!(r.json["hits"], json!([]), "{}", r.json);
        assert_eq!(r.json["no_answer"], true);
        let (_, left, _) = lexical_stats(&app, &base).await.unwrap();
        assert_eq!(left, more - chunks);
        assert_eq!(rows(&app, "knowledge_lexical_chunks").await, left);

        // Deleting the base takes its statistics with it.
        let r = app.send(app.client.delete(app.url(&format!("/api/v1/knowledge/bases/{base}"))).bearer_auth(&ada.access)).await;
        assert!(r.status.is_success(), "{}", r.text);
        assert_eq!(lexical_stats(&app, &base).await, None);
    }

    async fn a_one_chunk_base_answers_a_question_worded_with_a_word_it_never_uses(backend) {
        let app = TestApp::spawn_with(backend, quick).await;
        let ada = app.register("ada").await;
        let base = create_base(&app, &ada, json!({"name": "Leave"})).await;
        let doc = upload(&app, &ada, &base, "leave.txt",
            "Annual leave\n\nEmployees receive fifteen days of annual leave each year.\n".as_bytes()).await;
        let doc = doc["id"].as_str().unwrap().to_string();
        assert_eq!(settled(&app, &ada, &base, &doc).await["chunk_count"], 1);
        // "new" and "get" are nowhere in the base: they used to outweigh every word it holds.
        let r = search(&app, &ada, &base, "How many days of annual leave do new employees get?").await;
        assert_eq!(r.json["no_answer"], false, "{}", r.json);
        assert_eq!(hit_documents(&r), std::slice::from_ref(&doc));
        // A question about something else still gets "no answer", one shared word or none.
        for unrelated in ["quantum chromodynamics lattice gauge", "leave the quantum lattice gauge alone"] {
            let r = search(&app, &ada, &base, unrelated).await;
            assert_eq!(r.json["no_answer"], true, "{unrelated}: {}", r.json);
        }
    }

    async fn searches_filter_by_document_and_file_type(backend) {
        let app = TestApp::spawn_with(backend, quick).await;
        let ada = app.register("ada").await;
        let base = create_base(&app, &ada, json!({"name": "Filtered"})).await;
        let txt = upload(&app, &ada, &base, "refunds.txt", NOTES.as_bytes()).await;
        let md = upload(&app, &ada, &base, "refunds-2025.md",
            "# Refunds in 2025\n\nThe refund window was fourteen days in 2025.\n".as_bytes()).await;
        let (txt, md) = (txt["id"].as_str().unwrap().to_string(), md["id"].as_str().unwrap().to_string());
        for doc in [&txt, &md] {
            assert_eq!(settled(&app, &ada, &base, doc).await["status"], "ready");
        }
        let path = format!("/api/v1/knowledge/bases/{base}/search");
        let find = |body: Value| {
            let (app, ada, path) = (&app, &ada, &path);
            async move { app.post(path, Some(&ada.access), body).await }
        };
        let mut both = hit_documents(&find(json!({"query": "refund window"})).await);
        both.sort();
        let mut expected = vec![txt.clone(), md.clone()];
        expected.sort();
        assert_eq!(both, expected);
        let r = find(json!({"query": "refund window", "document_ids": [md]})).await;
        assert_eq!(hit_documents(&r), std::slice::from_ref(&md), "{}", r.json);
        let r = find(json!({"query": "refund window", "file_types": ["text"]})).await;
        assert_eq!(hit_documents(&r), std::slice::from_ref(&txt), "{}", r.json);
        let r = find(json!({"query": "refund window", "file_types": ["pdf", "docx"]})).await;
        assert_eq!(r.json["hits"], json!([]), "{}", r.json);
        assert_eq!(r.json["no_answer"], true);

        // Another base's document is no way into it: the filter keeps only this base's.
        let other = create_base(&app, &ada, json!({"name": "Other"})).await;
        let foreign = upload(&app, &ada, &other, "refunds.txt", NOTES.as_bytes()).await;
        let foreign = foreign["id"].as_str().unwrap().to_string();
        assert_eq!(settled(&app, &ada, &other, &foreign).await["status"], "ready");
        let r = find(json!({"query": "refund window", "document_ids": [foreign]})).await;
        assert_eq!(r.json["hits"], json!([]), "{}", r.json);

        // Bad filters are refused, in both languages.
        for (body, field) in [
            (json!({"query": "refund", "file_types": ["exe"]}), "file_types"),
            (json!({"query": "refund", "file_types": []}), "file_types"),
            (json!({"query": "refund", "document_ids": []}), "document_ids"),
        ] {
            let r = find(body).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
            assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
        }
    }

    async fn a_reader_of_a_shared_base_opens_a_cited_file_and_no_one_else_does(backend) {
        let app = TestApp::spawn_with(backend, quick).await;
        let ada = app.register("ada").await;
        let bob = app.register("bob").await;
        let eve = app.register("eve").await;
        let base = create_base(&app, &ada, json!({"name": "Shared"})).await;
        let doc = upload(&app, &ada, &base, "refunds.txt", NOTES.as_bytes()).await;
        let doc = doc["id"].as_str().unwrap().to_string();
        assert_eq!(settled(&app, &ada, &base, &doc).await["status"], "ready");
        let path = format!("/api/v1/knowledge/bases/{base}/documents/{doc}/file");

        // Before the share bob is a stranger: the same 404 as for a base that is not there.
        let r = app.get(&path, Some(&bob.access)).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "not_found"), "{}", r.text);
        let r = app.put(&format!("/api/v1/knowledge/bases/{base}/shares"), Some(&ada.access), json!({"shares": [{"user_id": bob.id, "permission": "read"}]})).await;
        assert!(r.status.is_success(), "{}", r.text);

        // A reader finds the chunk, and opens its file by the citation's document: the URL
        // answers the file's bytes without a session.
        let r = search(&app, &bob, &base, "refund window").await;
        assert_eq!(hit_documents(&r), std::slice::from_ref(&doc), "{}", r.json);
        let r = app.get(&path, Some(&bob.access)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["name"], "refunds.txt");
        let url = r.json["url"].as_str().unwrap();
        let url = if url.starts_with("http") { url.to_string() } else { app.url(url) };
        let file = reqwest::get(&url).await.unwrap();
        assert_eq!(file.status(), StatusCode::OK);
        assert_eq!(file.bytes().await.unwrap().as_ref(), NOTES.as_bytes());

        // Others: not the base's reader, no way in, whatever they name.
        let r = app.get(&path, Some(&eve.access)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert!(!r.text.contains("refunds.txt"), "{}", r.text);
        let r = app.get(&path, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        // A document of another base named under this one is not found.
        let eves = create_base(&app, &eve, json!({"name": "Eve's"})).await;
        let r = app.get(&format!("/api/v1/knowledge/bases/{eves}/documents/{doc}/file"), Some(&eve.access)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        // Once the share is withdrawn, bob is a stranger again.
        let r = app.put(&format!("/api/v1/knowledge/bases/{base}/shares"), Some(&ada.access), json!({"shares": []})).await;
        assert!(r.status.is_success(), "{}", r.text);
        let r = app.get(&path, Some(&bob.access)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    }

    async fn a_bases_progress_is_pushed_as_server_sent_events(backend) {
        let app = TestApp::spawn_with(backend, quick).await;
        let ada = app.register("ada").await;
        let eve = app.register("eve").await;
        let base = create_base(&app, &ada, json!({"name": "Pushed"})).await;
        let events = format!("/api/v1/knowledge/bases/{base}/events");
        // A stranger gets the same 404 as for no base.
        let r = app.get(&events, Some(&eve.access)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

        let response = app.client.get(app.url(&events)).bearer_auth(&ada.access).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        // The next complete frame as (event, data), within 30 s.
        let mut next = async || -> (String, Value) {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(end) = buffer.find("\n\n") {
                    let frame: String = buffer.drain(..end + 2).collect();
                    if frame.starts_with(':') {
                        continue;
                    }
                    let event = frame.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("message").to_string();
                    let data = frame.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
                    return (event, serde_json::from_str(data).unwrap());
                }
                let left = deadline.saturating_duration_since(Instant::now());
                let chunk = tokio::time::timeout(left, futures::StreamExt::next(&mut body)).await
                    .expect("no event within 30 s").expect("stream ended").unwrap();
                buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        };
        // An empty base: synced at once.
        assert_eq!(next().await.0, "synced");

        // A document is pushed from queued through to ready, with its progress.
        let doc = upload(&app, &ada, &base, "refunds.txt", NOTES.as_bytes()).await;
        let doc = doc["id"].as_str().unwrap().to_string();
        let mut statuses = Vec::new();
        loop {
            let (event, data) = next().await;
            assert_eq!(event, "document", "{data}");
            assert_eq!(data["id"], doc.as_str());
            statuses.push(data["status"].as_str().unwrap().to_string());
            if data["status"] == "ready" {
                assert!(data["chunk_count"].as_i64().unwrap() >= 1, "{data}");
                break;
            }
            assert_ne!(data["status"], "failed", "{data}");
        }
        // The watcher may miss a short step, never the end; the start is seen unless the worker
        // was faster than one look.
        assert_eq!(statuses.last().map(String::as_str), Some("ready"), "{statuses:?}");

        // Its removal is pushed too.
        let r = app.send(app.client.delete(app.url(&format!("/api/v1/knowledge/bases/{base}/documents/{doc}"))).bearer_auth(&ada.access)).await;
        assert!(r.status.is_success(), "{}", r.text);
        let (event, data) = next().await;
        assert_eq!((event.as_str(), &data), ("removed", &json!({"id": doc})));
    }
}

/// Searches until the search's stages came from `sources` (read into memory in the
/// background); answers that search.
async fn search_until_sources(
    app: &TestApp,
    who: &Persona,
    base: &str,
    query: &str,
    sources: Value,
) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = search(app, who, base, query).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if r.json["sources"] == sources {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "never served from {sources}: {}",
            r.json
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_backends! {
    async fn a_changed_base_is_read_into_memory_in_the_background_not_on_a_search(backend) {
        // The in-memory copies are what this is about: pgvector (PostgreSQL) stays out of it.
        let app = TestApp::spawn_with(backend, |c| {
            quick(c);
            c.knowledge.pgvector = false;
        }).await;
        let RelayWorld { user: ada, upstream: _upstream, .. } = world(&app).await;
        let base = create_base(&app, &ada, json!({"name": "Warm", "embedding_model": "embed-test"})).await;
        let first = upload(&app, &ada, &base, "refunds.txt", NOTES.as_bytes()).await;
        let first = first["id"].as_str().unwrap().to_string();
        assert_eq!(settled(&app, &ada, &base, &first).await["status"], "ready");

        // The first search answers from the database: no copy of the base is in memory, and
        // the search did not wait for one to be read (it would then say "memory").
        let r = search(&app, &ada, &base, "refund window").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["sources"], json!({"lexical": "database", "vector": "database"}), "{}", r.json);
        assert_eq!(r.json["hits"][0]["chunk"]["document_id"], first.as_str(), "{}", r.json);
        // The copies are read in the background; later searches use them, with the same answer.
        let r = search_until_sources(&app, &ada, &base, "refund window", json!({"lexical": "memory", "vector": "memory"})).await;
        assert_eq!(r.json["hits"][0]["chunk"]["document_id"], first.as_str(), "{}", r.json);

        // A document added later is found by the very next search: BM25 from the database
        // (the copy is a generation behind), vectors from the previous copy meanwhile.
        let second = upload(&app, &ada, &base, "lighthouse.txt",
            "The lighthouse keeper climbs 212 steps to light the lamp at dusk.\n".as_bytes()).await;
        let second = second["id"].as_str().unwrap().to_string();
        assert_eq!(settled(&app, &ada, &base, &second).await["status"], "ready");
        let r = search(&app, &ada, &base, "lighthouse keeper steps").await;
        assert_eq!(r.json["sources"], json!({"lexical": "database", "vector": "memory_stale"}), "{}", r.json);
        assert!(hit_documents(&r).contains(&second), "{}", r.json);
        let r = search_until_sources(&app, &ada, &base, "lighthouse keeper steps", json!({"lexical": "memory", "vector": "memory"})).await;
        assert!(hit_documents(&r).contains(&second), "{}", r.json);
        assert_eq!(r.json["hits"][0]["bm25_rank"], 1, "{}", r.json);

        // A deleted document is gone from the next search, whatever copy answers it.
        let r = app.send(app.client.delete(app.url(&format!("/api/v1/knowledge/bases/{base}/documents/{second}"))).bearer_auth(&ada.access)).await;
        assert!(r.status.is_success(), "{}", r.text);
        let r = search(&app, &ada, &base, "lighthouse keeper steps").await;
        assert!(!hit_documents(&r).contains(&second), "{}", r.json);
    }

    async fn parent_chunks_hand_back_the_section_around_the_small_chunk_that_matched(backend) {
        let app = TestApp::spawn_with(backend, quick).await;
        let ada = app.register("ada").await;
        // A parent no larger than the chunks is refused, in both languages.
        let r = app.post("/api/v1/knowledge/bases", Some(&ada.access),
            json!({"name": "P", "chunk_max_tokens": 64, "parent_chunk_tokens": 64})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.json["error"]["details"]["field"], "parent_chunk_tokens", "{}", r.text);

        let base = create_base(&app, &ada, json!({"name": "Sections", "embedding_model": "", "chunk_max_tokens": 32,
            "chunk_overlap_tokens": 0, "parent_chunk_tokens": 400})).await;
        let r = app.get(&format!("/api/v1/knowledge/bases/{base}"), Some(&ada.access)).await;
        assert_eq!(r.json["parent_chunk_tokens"], 400, "{}", r.json);
        let section = "# Harbor rules\n\n\
            Visitors sign the logbook at the gate before they walk onto the quay.\n\n\
            Dogs stay on a short leash near the fishing boats at all times.\n\n\
            Bicycles are parked in the racks beside the old customs house.\n\n\
            Swimming inside the breakwater is forbidden during daylight hours.\n\n\
            The ferry to Lantau leaves at a quarter past seven from pier four.\n\n\
            # Opening hours\n\nThe museum opens at nine and closes at five.\n";
        let doc = upload(&app, &ada, &base, "harbor.md", section.as_bytes()).await;
        let doc = doc["id"].as_str().unwrap().to_string();
        let done = settled(&app, &ada, &base, &doc).await;
        assert_eq!(done["status"], "ready", "{done}");
        assert!(done["chunk_count"].as_i64().unwrap() >= 3, "small chunks: {done}");

        let r = search(&app, &ada, &base, "ferry Lantau pier").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let top = &r.json["hits"][0];
        // The small chunk matched: it holds the ferry, not the logbook at the section's start.
        let chunk = top["chunk"]["text"].as_str().unwrap();
        assert!(chunk.contains("Lantau") && !chunk.contains("logbook"), "{top}");
        // Its parent is the whole section around it, and only that section.
        let parent = top["parent"]["text"].as_str().unwrap();
        assert!(parent.contains("Lantau") && parent.contains("logbook") && parent.contains("Bicycles"), "{top}");
        assert!(!parent.contains("museum"), "{top}");
        assert_eq!(top["parent"]["headings"], json!(["Harbor rules"]), "{top}");
        assert!(top["parent"]["tokens"].as_i64().unwrap() > top["chunk"]["tokens"].as_i64().unwrap(), "{top}");

        // Turning parents off re-indexes the base: no parent any more.
        let r = app.send(app.client.patch(app.url(&format!("/api/v1/knowledge/bases/{base}")))
            .bearer_auth(&ada.access).json(&json!({"parent_chunk_tokens": 0}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["parent_chunk_tokens"], Value::Null, "{}", r.json);
        assert_eq!(settled(&app, &ada, &base, &doc).await["status"], "ready");
        let r = search(&app, &ada, &base, "ferry Lantau pier").await;
        assert_eq!(r.json["hits"][0]["parent"], Value::Null, "{}", r.json);
        assert_eq!(rows(&app, "knowledge_chunk_parents").await, 0);
    }

    async fn progress_streams_are_capped_per_user(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            quick(c);
            c.knowledge.event_streams_per_user = 2;
        }).await;
        let ada = app.register("ada").await;
        let bob = app.register("bob").await;
        let base = create_base(&app, &ada, json!({"name": "Watched", "visibility": "public"})).await;
        let events = format!("/api/v1/knowledge/bases/{base}/events");
        let open = |who: &Persona| app.client.get(app.url(&events)).bearer_auth(who.access.clone()).send();
        let one = open(&ada).await.unwrap();
        let two = open(&ada).await.unwrap();
        assert_eq!((one.status(), two.status()), (StatusCode::OK, StatusCode::OK));

        // A third at once is refused, clearly, in both languages.
        let r = app.get(&events, Some(&ada.access)).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_streams"), "{}", r.text);
        assert!(r.text.contains("2 progress streams"), "{}", r.text);
        assert_eq!(r.json["error"]["details"]["limit"], 2, "{}", r.text);
        let r = app.send(app.client.get(app.url(&events)).bearer_auth(&ada.access).header("accept-language", "zh-CN")).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(r.text.contains("进度推送连接"), "{}", r.text);

        // The cap is per user: bob, a reader of the public base, opens his own.
        let bobs = open(&bob).await.unwrap();
        assert_eq!(bobs.status(), StatusCode::OK);

        // A stream the client closes gives its slot back.
        drop(one);
        let deadline = Instant::now() + Duration::from_secs(60);
        let three = loop {
            let r = open(&ada).await.unwrap();
            if r.status() == StatusCode::OK {
                break r;
            }
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(Instant::now() < deadline, "the closed stream's slot never came back");
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        drop((two, three, bobs));
    }
}

/// Whether this PostgreSQL has the pgvector extension (scripts/test builds it).
async fn pgvector_installed(app: &TestApp) -> bool {
    let db = skein_db::Db::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    let row: Option<(String,)> = skein_db::sqlx::query_as(
        "SELECT CAST(name AS TEXT) FROM pg_available_extensions WHERE name = 'vector'",
    )
    .fetch_optional(db.pool())
    .await
    .unwrap();
    db.close().await;
    row.is_some()
}

/// On PostgreSQL with pgvector (which `scripts/test` builds): a world and a base of the mock
/// embedding model holding the refund notes, indexed; answers the world (keep it: it owns the
/// mock upstream), the base's id and the document's.
async fn pgvector_base(app: &TestApp) -> (RelayWorld, String, String) {
    assert!(
        pgvector_installed(app).await,
        "pgvector is not installed on this PostgreSQL: scripts/test builds it"
    );
    let world = world(app).await;
    let ada = &world.user;
    let base = create_base(
        app,
        ada,
        json!({"name": "Refunds", "embedding_model": "embed-test"}),
    )
    .await;
    let doc = upload(app, ada, &base, "refunds.txt", NOTES.as_bytes()).await;
    let doc = doc["id"].as_str().unwrap().to_string();
    assert_eq!(settled(app, ada, &base, &doc).await["status"], "ready");
    (world, base, doc)
}

/// On PostgreSQL with pgvector, vectors are searched through its HNSW index: the search says
/// so once the index is built (in the background; the in-memory scan answers meanwhile), finds
/// what the scan finds, and a deleted document's vectors leave the index's table with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_searches_vectors_through_pgvector() {
    // A base this small is scanned in memory by default (sooner than the index): every size
    // goes through the index here.
    let app = TestApp::spawn_with(skein_testkit::Backend::Postgres, |c| {
        quick(c);
        c.knowledge.pgvector_min_floats = 0;
    })
    .await;
    let (
        RelayWorld {
            user: ada,
            upstream: _upstream,
            ..
        },
        base,
        doc,
    ) = pgvector_base(&app).await;
    let chunks = rows(&app, "knowledge_chunks").await;
    assert!(chunks >= 1);
    assert_eq!(rows(&app, "knowledge_pgvectors").await, chunks);

    let before = search(&app, &ada, &base, "refund window").await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    let r = search_until_sources(
        &app,
        &ada,
        &base,
        "refund window",
        json!({"lexical": "memory", "vector": "pgvector"}),
    )
    .await;
    // The same hits as the exact scan gave (a base this small is all in HNSW's candidates).
    let ranks = |r: &Resp| -> Vec<(Value, Value)> {
        r.json["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["chunk"]["id"].clone(), h["vector_rank"].clone()))
            .collect()
    };
    assert_eq!(ranks(&r), ranks(&before), "{}\n{}", r.json, before.json);
    assert!(
        r.json["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["vector_rank"].is_u64()),
        "{}",
        r.json
    );
    assert_eq!(r.json["hits"][0]["chunk"]["document_id"], doc.as_str());

    // A filtered search is not pgvector's: the scan answers it.
    let r = app
        .post(
            &format!("/api/v1/knowledge/bases/{base}/search"),
            Some(&ada.access),
            json!({"query": "refund window", "document_ids": [doc]}),
        )
        .await;
    assert_ne!(r.json["sources"]["vector"], "pgvector", "{}", r.json);

    // Deleted with its document.
    let r = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/knowledge/bases/{base}/documents/{doc}")))
                .bearer_auth(&ada.access),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    assert_eq!(rows(&app, "knowledge_pgvectors").await, 0);
    let r = search(&app, &ada, &base, "refund window").await;
    assert_eq!(r.json["hits"], json!([]), "{}", r.json);
}

/// With pgvector on and the default threshold, a small base (here one document) is searched
/// by scanning its vectors in memory once they are read, which is sooner than the index at
/// that size; the index is still kept (its table has every chunk) for when the base grows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_scans_a_small_base_in_memory_before_its_index() {
    let app = TestApp::spawn_with(skein_testkit::Backend::Postgres, quick).await;
    let (
        RelayWorld {
            user: ada,
            upstream: _upstream,
            ..
        },
        base,
        _,
    ) = pgvector_base(&app).await;
    assert_eq!(
        rows(&app, "knowledge_pgvectors").await,
        rows(&app, "knowledge_chunks").await
    );
    let r = search_until_sources(
        &app,
        &ada,
        &base,
        "refund window",
        json!({"lexical": "memory", "vector": "memory"}),
    )
    .await;
    assert!(
        r.json["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["vector_rank"].is_u64()),
        "{}",
        r.json
    );
    // Served from memory every time after, never from the index.
    for _ in 0..5 {
        let r = search(&app, &ada, &base, "refund window").await;
        assert_eq!(r.json["sources"]["vector"], "memory", "{}", r.json);
    }
}

/// A PDF larger than what is read into memory is copied to a scratch file and read from there by
/// poppler a range of pages at a time: it is indexed and searchable, its page numbers hold past
/// the first range, and running headers and footers still go. A text file of that size is still
/// refused by the in-memory limit (which shows the PDF took the other path). Without poppler
/// the PDF obeys the in-memory limit too and fails as clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_pdf_is_read_from_disk_a_range_of_pages_at_a_time() {
    let app = TestApp::spawn_with(skein_testkit::Backend::Sqlite, |c| {
        quick(c);
        c.knowledge.max_document_bytes = 4 << 20;
    })
    .await;
    let ada = app.register("ada").await;
    // Chunks of a page or so each, so a hit names one page.
    let base = create_base(&app, &ada, json!({"name": "Archive", "embedding_model": "", "chunk_max_tokens": 16, "chunk_overlap_tokens": 0})).await;
    let facts = [
        "The ferry timetable changed in spring.",
        "A new crane was delivered for the east quay.",
        "The harbour lighthouse was repainted in 1931.",
    ];
    let mut pdf = skein_testkit::pdf::PdfBuilder::new();
    for page in 1..=70usize {
        let body = match page {
            3 => facts[0].to_string(),
            64 => facts[1].to_string(),
            70 => facts[2].to_string(),
            n => format!(
                "Cargo tally {n}: {} barrels of {}.",
                n * 7,
                ["salt", "tar", "oil"][n % 3]
            ),
        };
        pdf.text_page(&[
            "Harbour ledger",
            "",
            &body,
            "",
            &format!("Page {page} of 70"),
        ]);
    }
    // Large enough to be read from disk (the limit is 16 MiB), and past the in-memory limit.
    pdf.padding(17 << 20);
    let pdf = pdf.finish();
    let doc = upload(&app, &ada, &base, "ledger.pdf", &pdf).await;
    let text = upload(&app, &ada, &base, "tally.txt", &vec![b'a'; 5 << 20]).await;

    let text = settled(&app, &ada, &base, text["id"].as_str().unwrap()).await;
    assert_eq!(
        (text["status"].as_str(), text["error"]["code"].as_str()),
        (Some("failed"), Some("document_too_large")),
        "{text}"
    );
    let doc = settled(&app, &ada, &base, doc["id"].as_str().unwrap()).await;
    if !skein_knowledge::extract::pdftotext_available() {
        assert_eq!(doc["error"]["code"], "document_too_large", "{doc}");
        return;
    }
    assert_eq!(doc["status"], "ready", "{doc}");
    for (fact, page) in facts.iter().zip([3, 64, 70]) {
        let r = search(&app, &ada, &base, fact).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let top = &r.json["hits"][0]["chunk"];
        assert!(
            top["text"].as_str().unwrap().contains(fact),
            "{fact}: {}",
            r.json
        );
        assert_eq!(
            (top["page_start"].as_i64(), top["page_end"].as_i64()),
            (Some(page), Some(page)),
            "{fact}: {top}"
        );
        assert!(
            !top["text"].as_str().unwrap().contains("Harbour ledger"),
            "the running header goes: {top}"
        );
        assert!(
            !top["text"].as_str().unwrap().contains("of 70"),
            "the page footer goes: {top}"
        );
    }
}
