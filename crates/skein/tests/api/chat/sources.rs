//! Chat's context seam through the real server: a source added to the chat service, as the
//! Knowledge service will add its retrieval, puts its section into what goes upstream and its
//! citations into the answer that is stored and shown; a source that fails refuses the answer
//! before anything is stored.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_chat::sources::{Citation, Context, ContextSource, Stage};
use skein_chat::turn::Turn;
use skein_core::{ApiError, ApiResult};
use skein_testkit::{Backend, RelayWorld, TestApp, Upstream, on_both_backends, relay_world};

/// A knowledge base in miniature: one cited passage for every question, and unreachable
/// when asked to fail.
struct Handbook;

#[async_trait]
impl ContextSource for Handbook {
    fn name(&self) -> &str {
        "handbook"
    }

    fn stage(&self) -> Stage {
        Stage::Retrieval
    }

    async fn contribute(&self, turn: &Turn, context: &mut Context) -> ApiResult<()> {
        let question = turn.question().map(|q| q.content.as_str()).unwrap_or("");
        if question.contains("unreachable") {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "knowledge_unavailable",
                "The handbook cannot be read now.",
                "暂时无法读取手册。",
            ));
        }
        context.add_section(
            self.name(),
            "Answer from the handbook:\n[1] Refunds take 5 days.",
        );
        context.cite(Citation {
            source: self.name().into(),
            label: "1".into(),
            title: "Handbook".into(),
            url: Some("https://example.com/handbook#refunds".into()),
            excerpt: "Refunds take 5 days.".into(),
            reference: json!({"document": "handbook", "chunk": 7}),
        });
        Ok(())
    }
}

async fn handbook_app(backend: Backend) -> TestApp {
    TestApp::spawn_extended(
        backend,
        |c| c.chat.title_model = Some(String::new()),
        |skein| {
            skein
                .chat
                .as_ref()
                .expect("this server runs chat")
                .add_context_source(Arc::new(Handbook))
        },
    )
    .await
}

/// `(event, data)` of a finished SSE body.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let name = frame.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_string(), serde_json::from_str(data).ok()?))
        })
        .collect()
}

on_both_backends! {
    async fn a_context_source_adds_its_section_upstream_and_its_citations_to_the_answer(backend) {
        let app = handbook_app(backend).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let r = app.post("/api/v1/chat/conversations", Some(&user.access), json!({"model": "gpt-test", "system_prompt": "be brief"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.json["id"].as_str().unwrap().to_string();
        let path = format!("/api/v1/chat/conversations/{id}/messages");
        let send = |content: &str| app.client.post(app.url(&path)).bearer_auth(&user.access).json(&json!({"content": content}));

        let r = send("how long do refunds take?").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let ev = events(&r.text().await.unwrap());
        let done = &ev.iter().find(|(e, _)| e == "done").expect("a done event").1["message"];
        let cited = json!([{
            "source": "handbook", "label": "1", "title": "Handbook",
            "url": "https://example.com/handbook#refunds", "excerpt": "Refunds take 5 days.",
            "reference": {"document": "handbook", "chunk": 7},
        }]);
        assert_eq!(done["sources"], cited, "{done}");

        // Upstream: the system prompt, the source's section after it, then the question.
        let sent = upstream.requests().last().unwrap().clone();
        assert_eq!(sent["messages"], json!([
            {"role": "system", "content": "be brief"},
            {"role": "system", "content": "Answer from the handbook:\n[1] Refunds take 5 days."},
            {"role": "user", "content": "how long do refunds take?"},
        ]));

        // Stored with the answer: the history shows the citations on the answer only, and the
        // context inspector shows the section that was sent.
        let h = app.get(&path, Some(&user.access)).await.json;
        let messages = h["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert!(messages[0].get("sources").is_none(), "{}", messages[0]);
        assert_eq!(messages[1]["sources"], cited);
        let answer = messages[1]["id"].as_str().unwrap();
        let ctx = app.get(&format!("/api/v1/chat/messages/{answer}/context"), Some(&user.access)).await;
        assert_eq!(ctx.json["request"]["messages"][1]["content"], "Answer from the handbook:\n[1] Refunds take 5 days.", "{}", ctx.text);

        // A source that fails refuses the answer with its error; nothing is stored and the
        // conversation is free for the next message.
        let calls = upstream.requests().len();
        let r = app.post(&path, Some(&user.access), json!({"content": "is the handbook unreachable?"})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::SERVICE_UNAVAILABLE, "knowledge_unavailable"), "{}", r.text);
        assert_eq!(upstream.requests().len(), calls, "no upstream call");
        assert_eq!(app.get(&path, Some(&user.access)).await.json["messages"].as_array().unwrap().len(), 2);
        let r = send("and exchanges?").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let ev = events(&r.text().await.unwrap());
        assert_eq!(ev.iter().find(|(e, _)| e == "done").unwrap().1["message"]["status"], "done");
    }
}
