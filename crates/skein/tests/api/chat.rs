//! Chat end to end through the real server and a mock upstream: conversations, streamed
//! answers billed to the user, the message tree (edit, regenerate, switch), stop, answers that
//! outlive their client, re-attaching, export and import, and refusals.

pub(crate) mod continuation;
pub(crate) mod socket;
pub(crate) mod sources;
pub(crate) mod tools;
pub(crate) mod voice;

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_openai::{Fault, reply_to};
use skein_testkit::{Backend, Persona, TestApp, on_both_backends};

use skein_testkit::{Price, RelayWorld, Upstream, relay_world};

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// A server whose chat writes no titles (so each answer is one upstream call), unless a test
/// turns them on.
async fn chat_app(backend: Backend, configure: impl FnOnce(&mut skein::config::Config)) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.chat.title_model = Some(String::new());
        configure(c);
    })
    .await
}

/// Server-sent events of a finished stream, as `(event, data)`.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let mut name = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).ok();
                }
            }
            Some((name?, data?))
        })
        .collect()
}

fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(e, _)| e == "delta")
        .map(|(_, d)| d["content"].as_str().unwrap().to_string())
        .collect()
}

fn find<'a>(events: &'a [(String, Value)], name: &str) -> &'a Value {
    &events
        .iter()
        .find(|(e, _)| e == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
        .1
}

async fn new_conversation(app: &TestApp, who: &Persona, body: Value) -> String {
    let r = app
        .post("/api/v1/chat/conversations", Some(&who.access), body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// Sends and reads the whole SSE answer.
async fn send(
    app: &TestApp,
    who: &Persona,
    conversation: &str,
    body: Value,
) -> (StatusCode, Vec<(String, Value)>, String) {
    let r = app
        .client
        .post(app.url(&format!(
            "/api/v1/chat/conversations/{conversation}/messages"
        )))
        .bearer_auth(&who.access)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, events(&text), text)
}

async fn history(app: &TestApp, who: &Persona, conversation: &str) -> Value {
    let r = app
        .get(
            &format!("/api/v1/chat/conversations/{conversation}/messages"),
            Some(&who.access),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

/// The user's balance once every hold is settled.
async fn settled_balance(app: &TestApp, who: &Persona) -> i64 {
    for _ in 0..500 {
        let q = app
            .get("/api/v1/billing/quota", Some(&who.access))
            .await
            .json;
        if q["reserved"] == 0 {
            return q["balance"].as_i64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("holds were never settled");
}

/// Words × the test prices (2 per prompt word, 6 per completion word).
fn cost_of(prompt_words: i64, completion_words: i64) -> i64 {
    prompt_words * 2 + completion_words * 6
}

/// Waits until the message has left `streaming`.
async fn finished(app: &TestApp, who: &Persona, conversation: &str, message: &str) -> Value {
    for _ in 0..600 {
        let h = history(app, who, conversation).await;
        if let Some(m) = h["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == message)
            && m["status"] != "streaming"
        {
            return m.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the answer never finished");
}

on_both_backends! {
    async fn a_conversation_streams_branches_exports_and_imports(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let before = settled_balance(&app, &user).await;
        let id = new_conversation(&app, &user, json!({"title": "Trip", "model": "gpt-test", "system_prompt": "be brief", "temperature": 0.3})).await;

        // 1. Send: the answer streams, with usage and cost, and is saved.
        let (status, ev, raw) = send(&app, &user, &id, json!({"content": "hello there"})).await;
        assert_eq!(status, StatusCode::OK, "{raw}");
        let start = find(&ev, "start").clone();
        assert_eq!(text_of(&ev), "echo: hello there");
        let first_cost = cost_of(4, 3); // "be brief" + "hello there"; "echo: hello there"
        assert_eq!(find(&ev, "usage")["cost"], first_cost);
        let done = &find(&ev, "done")["message"];
        assert_eq!((done["status"].as_str(), done["content"].as_str()), (Some("done"), Some("echo: hello there")));
        assert_eq!(done["id"], start["assistant_message_id"]);
        // What went upstream: the system prompt, the message, the settings, and the model.
        let sent = upstream.requests().last().unwrap().clone();
        assert_eq!(sent["messages"], json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]));
        assert_eq!(sent["temperature"], 0.3);
        assert_eq!(sent["model"], "gpt-upstream");

        let h = history(&app, &user, &id).await;
        assert_eq!(h["messages"].as_array().unwrap().len(), 2);
        let first_user = h["messages"][0]["id"].as_str().unwrap().to_string();
        let first_answer = h["messages"][1]["id"].as_str().unwrap().to_string();

        // 2. Edit the first message: a sibling branch with its own answer.
        let (_, ev, _) = send(&app, &user, &id, json!({"content": "goodbye now", "parent_id": null})).await;
        assert_eq!(text_of(&ev), "echo: goodbye now");
        let h = history(&app, &user, &id).await;
        let m = h["messages"].as_array().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0]["content"].as_str(), m[0]["sibling_count"].as_u64(), m[0]["sibling_index"].as_u64()), (Some("goodbye now"), Some(2), Some(1)));
        assert_eq!(m[0]["sibling_ids"][0], first_user.as_str());

        // 3. Regenerate that answer: a sibling answer under the same message.
        let edited_answer = m[1]["id"].as_str().unwrap().to_string();
        let r = app.client.post(app.url(&format!("/api/v1/chat/messages/{edited_answer}/regenerate")))
            .bearer_auth(&user.access).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let ev = events(&r.text().await.unwrap());
        assert_eq!(text_of(&ev), "echo: goodbye now");
        let h = history(&app, &user, &id).await;
        let m = h["messages"].as_array().unwrap();
        assert_eq!((m[1]["sibling_count"].as_u64(), m[1]["sibling_index"].as_u64()), (Some(2), Some(1)));
        assert_eq!(m[1]["sibling_ids"][0], edited_answer.as_str());

        // 4. Switch back to the first branch: its newest leaf becomes active.
        let r = app.post(&format!("/api/v1/chat/conversations/{id}/switch"), Some(&user.access), json!({"message_id": first_user})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["active_leaf_id"], first_answer.as_str());
        assert_eq!(r.json["messages"][0]["content"], "hello there");
        assert_eq!(history(&app, &user, &id).await["active_leaf_id"], first_answer.as_str());

        // 5. Export: Markdown and HTML show the branch on screen; JSON holds the whole tree.
        let md = app.get(&format!("/api/v1/chat/conversations/{id}/export?format=markdown"), Some(&user.access)).await;
        assert_eq!(md.status, StatusCode::OK);
        assert!(md.text.starts_with("# Trip") && md.text.contains("hello there") && !md.text.contains("goodbye"), "{}", md.text);
        let page = app.get(&format!("/api/v1/chat/conversations/{id}/export?format=html"), Some(&user.access)).await;
        assert!(page.text.contains("<!doctype html>") && page.text.contains("echo: hello there"));
        let exported = app.get(&format!("/api/v1/chat/conversations/{id}/export?format=json"), Some(&user.access)).await;
        // Two first messages (the original and its edit) and three answers.
        assert_eq!(exported.json["messages"].as_array().unwrap().len(), 5);
        assert_eq!(exported.json["active_leaf_id"], first_answer.as_str());

        // 6. Import it back: a new conversation with the same tree and branch on screen.
        let r = app.post("/api/v1/chat/import", Some(&user.access), exported.json.clone()).await;
        assert_eq!((r.status, r.json["imported"].as_i64()), (StatusCode::OK, Some(1)), "{}", r.text);
        let copy = r.json["ids"][0].as_str().unwrap();
        let h = history(&app, &user, copy).await;
        let m = h["messages"].as_array().unwrap();
        assert_eq!((m[0]["content"].as_str(), m[1]["content"].as_str()), (Some("hello there"), Some("echo: hello there")));
        assert_eq!(m[0]["sibling_count"], 2);
        assert_eq!(app.get(&format!("/api/v1/chat/conversations/{copy}"), Some(&user.access)).await.json["system_prompt"], "be brief");

        // 7. Billing: three answers, each a consumption record with the conversation id, and
        //    the balance fell by exactly their sum.
        let edit_cost = cost_of(4, 3);
        let expected = first_cost + 2 * edit_cost;
        assert_eq!(settled_balance(&app, &user).await, before - expected);
        let usage = app.get("/api/v1/billing/usage", Some(&user.access)).await.json;
        let records = usage["items"].as_array().unwrap();
        assert_eq!(records.len(), 3);
        assert!(records.iter().all(|r| r["conversation_id"] == id.as_str() && r["key_id"].is_null()), "{records:?}");
        assert_eq!(records.iter().map(|r| r["cost"].as_i64().unwrap()).sum::<i64>(), expected);
        let ledger = app.get("/api/v1/billing/ledger?kind=consume", Some(&user.access)).await.json;
        assert_eq!(ledger["total"], 3, "{ledger}");
    }

    async fn stop_keeps_what_was_written(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        upstream.set_stream_pause(Duration::from_millis(40));
        let id = new_conversation(&app, &user, json!({})).await;
        let words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen";
        let r = app.client.post(app.url(&format!("/api/v1/chat/conversations/{id}/messages")))
            .bearer_auth(&user.access).json(&json!({"content": words})).send().await.unwrap();
        let mut body = r.bytes_stream();
        let mut seen = String::new();
        let mut stopped = false;
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if !stopped && seen.contains("event: delta") {
                let answer = find(&events(&seen), "start")["assistant_message_id"].as_str().unwrap().to_string();
                let r = app.post(&format!("/api/v1/chat/messages/{answer}/stop"), Some(&user.access), json!({})).await;
                assert_eq!((r.status, r.json["stopping"].as_bool()), (StatusCode::ACCEPTED, Some(true)), "{}", r.text);
                stopped = true;
            }
        }
        let ev = events(&seen);
        let done = &find(&ev, "done")["message"];
        let full = reply_to(&json!([{"role": "user", "content": words}]));
        let kept = done["content"].as_str().unwrap();
        assert_eq!(done["status"], "stopped");
        assert!(!kept.is_empty() && kept.len() < full.len() && full.starts_with(kept), "kept {kept:?}");
        let saved = finished(&app, &user, &id, done["id"].as_str().unwrap()).await;
        assert_eq!((saved["status"].as_str(), saved["content"].as_str()), (Some("stopped"), Some(kept)));
        // The upstream was cut off and what was delivered was billed: the message shows the
        // very charge the ledger holds, and less than the whole answer would have cost.
        let usage = app.get("/api/v1/billing/usage", Some(&user.access)).await.json;
        let record = &usage["items"][0];
        assert_eq!(record["status"], "stopped", "{usage}");
        assert_eq!(saved["usage"]["cost"], record["cost"], "{saved}");
        let whole = cost_of(16, 17);
        assert!(record["cost"].as_i64().unwrap() < whole, "{record}");
    }

    async fn an_answer_outlives_its_client_and_can_be_reattached(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        upstream.set_stream_pause(Duration::from_millis(25));
        let id = new_conversation(&app, &user, json!({})).await;
        let words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu";
        let full = reply_to(&json!([{"role": "user", "content": words}]));

        // The client reads the start, then hangs up.
        let r = app.client.post(app.url(&format!("/api/v1/chat/conversations/{id}/messages")))
            .bearer_auth(&user.access).json(&json!({"content": words})).send().await.unwrap();
        let mut body = r.bytes_stream();
        let mut seen = String::new();
        while !seen.contains("event: start") {
            seen.push_str(&String::from_utf8_lossy(&body.next().await.unwrap().unwrap()));
        }
        drop(body);
        let answer = find(&events(&seen), "start")["assistant_message_id"].as_str().unwrap().to_string();

        // Another client attaches while it is still being written and receives all of it.
        let r = app.client.get(app.url(&format!("/api/v1/chat/messages/{answer}/stream")))
            .bearer_auth(&user.access).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let ev = events(&r.text().await.unwrap());
        assert_eq!(text_of(&ev), full);
        assert_eq!(find(&ev, "done")["message"]["status"], "done");

        // And the whole answer was saved although its first client left.
        let saved = finished(&app, &user, &id, &answer).await;
        assert_eq!((saved["status"].as_str(), saved["content"].as_str()), (Some("done"), Some(full.as_str())));
        // Attaching to a finished answer answers at once.
        let r = app.client.get(app.url(&format!("/api/v1/chat/messages/{answer}/stream")))
            .bearer_auth(&user.access).send().await.unwrap();
        let ev = events(&r.text().await.unwrap());
        assert_eq!(find(&ev, "done")["message"]["content"], full.as_str());
    }

    async fn an_upstream_that_dies_mid_answer_keeps_the_part_and_marks_it_failed(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let id = new_conversation(&app, &user, json!({})).await;
        upstream.fail_next(Fault::DieAfter(2));
        let (_, ev, raw) = send(&app, &user, &id, json!({"content": "tell me a long story please"})).await;
        assert_eq!(find(&ev, "error")["code"], "upstream_error", "{raw}");
        let done = &find(&ev, "done")["message"];
        assert_eq!(done["status"], "failed");
        // What arrived before the break is kept (how much of it crosses a broken connection
        // depends on the network; never more than the whole answer).
        let full = "echo: tell me a long story please";
        let kept = done["content"].as_str().unwrap();
        assert!(kept.starts_with("echo:") && full.starts_with(kept) && kept.len() < full.len(), "{kept:?}");
        assert_eq!(done["error"]["code"], "upstream_error");
        // Regenerating the failed answer works once the upstream is well.
        let failed = done["id"].as_str().unwrap();
        let r = app.client.post(app.url(&format!("/api/v1/chat/messages/{failed}/regenerate")))
            .bearer_auth(&user.access).send().await.unwrap();
        let ev = events(&r.text().await.unwrap());
        assert_eq!(text_of(&ev), "echo: tell me a long story please");
    }

    async fn refusals_are_clear_and_charge_nothing(backend) {
        let app = chat_app(backend, |c| c.chat.max_message_chars = 50).await;
        let RelayWorld { user, root, upstream: _upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let other = app.register("mallory").await;
        let id = new_conversation(&app, &user, json!({})).await;
        let (_, _, _) = send(&app, &user, &id, json!({"content": "first"})).await;
        let h = history(&app, &user, &id).await;
        let answer = h["messages"][1]["id"].as_str().unwrap().to_string();

        // Another user's ids read as missing, everywhere.
        for path in [
            format!("/api/v1/chat/conversations/{id}"),
            format!("/api/v1/chat/conversations/{id}/messages"),
            format!("/api/v1/chat/conversations/{id}/export?format=json"),
            format!("/api/v1/chat/messages/{answer}/context"),
        ] {
            let r = app.get(&path, Some(&other.access)).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
            assert!(!r.text.contains("echo"), "{path} leaked: {}", r.text);
        }
        for path in [
            format!("/api/v1/chat/conversations/{id}/messages"),
            format!("/api/v1/chat/messages/{answer}/regenerate"),
            format!("/api/v1/chat/messages/{answer}/stop"),
        ] {
            let r = app.post(&path, Some(&other.access), json!({"content": "hi"})).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        }
        let r = app.patch(&format!("/api/v1/chat/conversations/{id}"), Some(&other.access), json!({"title": "mine"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/api/v1/chat/conversations/{id}"), Some(&user.access)).await.json["title"], "");

        // Bad input.
        let path = format!("/api/v1/chat/conversations/{id}/messages");
        let post = |body: Value| app.post(&path, Some(&user.access), body);
        assert_eq!(post(json!({"content": "   "})).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(post(json!({"content": "x".repeat(51)})).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(post(json!({"content": "hi", "model": "nope"})).await.error_code(), "model_not_available");
        assert_eq!(post(json!({"content": "hi", "images": ["file:///etc/passwd"]})).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(post(json!({"content": 5})).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        let other_conversation = new_conversation(&app, &user, json!({})).await;
        let r = app.post(&format!("/api/v1/chat/conversations/{other_conversation}/messages"), Some(&user.access), json!({"content": "hi", "parent_id": answer})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let r = app.send(app.client.post(app.url(&format!("/api/v1/chat/conversations/{id}/messages")))
            .bearer_auth(&user.access).header("content-type", "application/json").body("{\"content\": ")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = app.patch(&format!("/api/v1/chat/conversations/{id}"), Some(&user.access), json!({"temperature": 9})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.get("/api/v1/chat/conversations/not-an-id", Some(&user.access)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.post("/api/v1/chat/import", Some(&user.access), json!({"hello": 1})).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        let _ = root;

        // A user with no quota: the error event says so, and nothing is charged.
        let poor = app.register("poor").await;
        let poor_conversation = new_conversation(&app, &poor, json!({})).await;
        let before = settled_balance(&app, &poor).await;
        let (status, ev, raw) = send(&app, &poor, &poor_conversation, json!({"content": "hello"})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(find(&ev, "error")["code"], "insufficient_quota", "{raw}");
        assert_eq!(find(&ev, "done")["message"]["status"], "failed");
        assert_eq!(settled_balance(&app, &poor).await, before);
        let ledger = app.get("/api/v1/billing/ledger?kind=consume", Some(&poor.access)).await.json;
        assert_eq!(ledger["total"], 0);
    }

    async fn one_answer_at_a_time_per_conversation(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        upstream.set_stream_pause(Duration::from_millis(30));
        let id = new_conversation(&app, &user, json!({})).await;
        let r = app.client.post(app.url(&format!("/api/v1/chat/conversations/{id}/messages")))
            .bearer_auth(&user.access).json(&json!({"content": "a b c d e f g h"})).send().await.unwrap();
        let mut body = r.bytes_stream();
        let _ = body.next().await;
        let second = app.post(&format!("/api/v1/chat/conversations/{id}/messages"), Some(&user.access), json!({"content": "again"})).await;
        assert_eq!((second.status, second.error_code()), (StatusCode::CONFLICT, "generation_in_progress"), "{}", second.text);
        while body.next().await.is_some() {}
        // Nothing of the refused message was stored.
        let h = history(&app, &user, &id).await;
        assert_eq!(h["messages"].as_array().unwrap().len(), 2);
        assert!(!h.to_string().contains("again"));
    }

    async fn conversations_list_search_pin_archive_delete_and_restore(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream: _upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let a = new_conversation(&app, &user, json!({"title": "周末去杭州旅行"})).await;
        let b = new_conversation(&app, &user, json!({"title": "Rust lifetimes"})).await;
        let c = new_conversation(&app, &user, json!({})).await;
        send(&app, &user, &c, json!({"content": "如何用 Rust 写一个 100%_safe 的解析器"})).await;
        let list = |q: &'static str| app.get(q, Some(&user.access));

        // Pinned first, then the newest activity.
        app.patch(&format!("/api/v1/chat/conversations/{a}"), Some(&user.access), json!({"pinned": true})).await;
        let items = list("/api/v1/chat/conversations").await.json["items"].clone();
        let order: Vec<&str> = items.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(order[0], a.as_str());
        assert_eq!(order.len(), 3);

        // Search finds Chinese in titles and in message text, and takes % and _ literally.
        let found = list("/api/v1/chat/conversations?q=%E6%9D%AD%E5%B7%9E").await.json; // 杭州
        assert_eq!(found["items"].as_array().unwrap().len(), 1);
        assert_eq!(found["items"][0]["id"], a.as_str());
        assert!(found["items"][0]["snippet"].is_null(), "only the title matched: {found}");
        let found = list("/api/v1/chat/conversations?q=%E8%A7%A3%E6%9E%90%E5%99%A8").await.json; // 解析器
        assert_eq!(found["items"][0]["id"], c.as_str());
        // A hit in the text says where: a snippet of the first message that matched.
        assert_eq!(found["items"][0]["snippet"], "如何用 Rust 写一个 100%_safe 的解析器", "{found}");
        assert!(list("/api/v1/chat/conversations").await.json["items"][0].get("snippet").is_none());
        assert_eq!(list("/api/v1/chat/conversations?q=100%25_safe").await.json["items"].as_array().unwrap().len(), 1);
        assert_eq!(list("/api/v1/chat/conversations?q=100%25Xsafe").await.json["items"].as_array().unwrap().len(), 0);
        assert_eq!(list("/api/v1/chat/conversations?q=LIFETIMES").await.json["items"][0]["id"], b.as_str());

        // Archive hides; delete hides and can be undone.
        app.patch(&format!("/api/v1/chat/conversations/{b}"), Some(&user.access), json!({"archived": true})).await;
        assert_eq!(list("/api/v1/chat/conversations").await.json["items"].as_array().unwrap().len(), 2);
        assert_eq!(list("/api/v1/chat/conversations?archived=true").await.json["items"][0]["id"], b.as_str());
        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/chat/conversations/{c}"), Some(&user.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get(&format!("/api/v1/chat/conversations/{c}"), Some(&user.access)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(list("/api/v1/chat/conversations?deleted=true").await.json["items"][0]["id"], c.as_str());
        let r = app.post(&format!("/api/v1/chat/conversations/{c}/restore"), Some(&user.access), json!({})).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(history(&app, &user, &c).await["messages"].as_array().unwrap().len(), 2);

        // Pages.
        let page = list("/api/v1/chat/conversations?limit=1").await.json;
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
        let next = page["next_cursor"].as_str().unwrap().to_string();
        let page2 = app.get(&format!("/api/v1/chat/conversations?limit=1&cursor={next}"), Some(&user.access)).await.json;
        assert_ne!(page2["items"][0]["id"], page["items"][0]["id"]);

        // The models the user may chat with, with prices.
        let models = app.get("/api/v1/chat/models", Some(&user.access)).await.json;
        assert_eq!(models[0]["id"], "gpt-test");
        assert_eq!(models[0]["input_price"], 2_000_000);
    }

    async fn history_is_trimmed_to_the_window_and_older_turns_summarised(backend) {
        let app = chat_app(backend, |c| {
            // Small turns in a small window: the mock "summarises" by echoing the transcript,
            // which must fit the summary call's 600-token limit.
            c.chat.context_windows.insert("gpt-test".into(), 400);
            c.chat.output_reserve = 100;
            c.chat.summary_model = Some("gpt-test".into());
        }).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let id = new_conversation(&app, &user, json!({"system_prompt": "stay on topic"})).await;
        let long = |n: usize| format!("turn{n} ") + &"lorem ipsum dolor sit amet ".repeat(6);
        for n in 0..6 {
            let (_, ev, raw) = send(&app, &user, &id, json!({"content": long(n)})).await;
            assert!(ev.iter().any(|(e, _)| e == "done"), "{raw}");
        }
        let h = history(&app, &user, &id).await;
        let last_answer = h["messages"].as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_string();
        let ctx = app.get(&format!("/api/v1/chat/messages/{last_answer}/context"), Some(&user.access)).await;
        assert_eq!(ctx.status, StatusCode::OK, "{}", ctx.text);
        let trimmed = ctx.json["trimmed_turns"].as_u64().unwrap();
        assert!(trimmed > 0, "{}", ctx.text);
        let sent = ctx.json["request"]["messages"].as_array().unwrap();
        // The system prompt and the newest turn are always there; the oldest turns are not.
        assert_eq!(sent[0]["content"], "stay on topic");
        assert!(sent.last().unwrap()["content"].as_str().unwrap().starts_with("turn5 "));
        assert!(sent[2..].iter().all(|m| !m["content"].as_str().unwrap().starts_with("turn0 ")), "{sent:?}");
        // The dropped turns were summarised by the summary model, and the summary was sent.
        let summary = sent[1]["content"].as_str().unwrap();
        assert!(summary.starts_with("Summary of the earlier conversation:"), "{sent:?}");
        // The summary grew with the conversation: each later one folded the one before it in.
        assert!(summary.contains("Summary so far:") && summary.contains("turn4 "), "{summary}");
        let asked_to_summarise = upstream.requests().iter().any(|r| r["messages"][0]["content"].as_str().is_some_and(|s| s.starts_with("Summarise")));
        assert!(asked_to_summarise);
    }

    async fn the_html_export_renders_answers_and_escapes_what_was_typed(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream: _upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let id = new_conversation(&app, &user, json!({"title": "Export"})).await;
        let question = "a **bold** word <script>alert(1)</script>\n\n```rust\nlet x = 1 < 2;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        send(&app, &user, &id, json!({"content": question})).await;
        let page = app.get(&format!("/api/v1/chat/conversations/{id}/export?format=html"), Some(&user.access)).await;
        assert_eq!(page.status, StatusCode::OK);
        let (typed, answer) = page.text.split_once("<section class=\"assistant\">").expect("an answer section");
        // The answer (the mock echoes the question) is rendered: emphasis, a code block, a table.
        assert!(answer.contains("<strong>bold</strong>"), "{answer}");
        assert!(answer.contains("<pre><code class=\"language-rust\">let x = 1 &lt; 2;"), "{answer}");
        assert!(answer.contains("<table>") && answer.contains("<td>1</td>"), "{answer}");
        assert!(!answer.contains("```") && !answer.contains("|---|"), "{answer}");
        // Raw HTML stays text in both; what the user typed is shown as typed.
        assert!(!page.text.contains("<script>"), "{}", page.text);
        assert!(answer.contains("&lt;script&gt;"), "{answer}");
        assert!(typed.contains("a **bold** word &lt;script&gt;"), "{typed}");
    }

    async fn the_first_answer_gets_a_generated_title(backend) {
        let app = TestApp::spawn_with(backend, |_| {}).await;
        let RelayWorld { user, upstream: _upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let id = new_conversation(&app, &user, json!({})).await;
        let (_, ev, raw) = send(&app, &user, &id, json!({"content": "plan a **rich** trip"})).await;
        let title = find(&ev, "title")["title"].as_str().unwrap().to_string();
        // The mock echoes the prompt it got: the title request quoted the user's words, and
        // the Markdown in what came back was taken out.
        assert!(title.starts_with("echo: User: plan a rich trip"), "{raw}");
        assert!(!title.contains('*'), "{title}");
        assert_eq!(app.get(&format!("/api/v1/chat/conversations/{id}"), Some(&user.access)).await.json["title"], title.as_str());
        // A second answer does not rename it.
        send(&app, &user, &id, json!({"content": "more"})).await;
        assert_eq!(app.get(&format!("/api/v1/chat/conversations/{id}"), Some(&user.access)).await.json["title"], title.as_str());
    }
}

on_both_backends! {
    async fn voice_input_is_transcribed_through_the_relay_and_billed(backend) {
        let app = chat_app(backend, |c| c.chat.transcription_model = "whisper-chat".into()).await;
        let RelayWorld { user, root, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        app.add_channel(&root, json!({
            "type": "openai", "name": "speech", "base_url": upstream.base_url, "keys": [upstream.key],
            "models": ["whisper-chat"], "model_mapping": {"whisper-chat": "whisper-1"}
        })).await;
        app.set_price(&root, "whisper-chat", Price::per_call(250)).await;
        let before = settled_balance(&app, &user).await;
        let upload = |file: (&'static str, &'static str, Vec<u8>)| {
            let mut body = b"--b0und\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nzh\r\n".to_vec();
            body.extend_from_slice(format!("--b0und\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n", file.0, file.1).as_bytes());
            body.extend_from_slice(&file.2);
            body.extend_from_slice(b"\r\n--b0und--\r\n");
            app.client.post(app.url("/api/v1/chat/transcriptions")).bearer_auth(&user.access)
                .header("content-type", "multipart/form-data; boundary=b0und").body(body)
        };

        let recording = crate::relay::endpoints::audio(5000);
        let r = app.send(upload(("voice.webm", "audio/webm;codecs=opus", recording.clone()))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["text"], skein_testkit::mock_openai::endpoints::transcript_of("recording.webm", &recording));
        assert_eq!(settled_balance(&app, &user).await, before - 250);
        let usage = app.get("/api/v1/billing/usage", Some(&user.access)).await.json;
        assert_eq!(usage["items"][0]["model"], "whisper-chat");

        // Refused before any upstream call, and charged nothing.
        let r = app.send(upload(("notes.txt", "text/plain", b"plain text".to_vec()))).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_audio"), "{}", r.text);
        let r = app.send(upload(("empty.wav", "audio/wav", Vec::new()))).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let r = app.post("/api/v1/chat/transcriptions", Some(&user.access), json!({"file": "x"})).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
        // The server refuses an oversized upload before reading it all and closes the
        // connection, which a client still writing can see as a reset before the 413: send it
        // on connections of its own until the answer arrives.
        let mut refused = None;
        for _ in 0..5 {
            let (content_type, body) = big_recording();
            let sent = reqwest::Client::new().post(app.url("/api/v1/chat/transcriptions")).bearer_auth(&user.access)
                .header("content-type", content_type).body(body).send().await;
            if let Ok(r) = sent {
                refused = Some(r.status());
                break;
            }
        }
        assert_eq!(refused, Some(StatusCode::PAYLOAD_TOO_LARGE));
        assert_eq!(settled_balance(&app, &user).await, before - 250);
    }
}

on_both_backends! {
    async fn images_ride_along_and_other_users_see_nothing(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let other = app.register("eve").await;
        let id = new_conversation(&app, &user, json!({})).await;
        let image = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
        let (_, ev, raw) = send(&app, &user, &id, json!({"content": "what is this", "images": [image]})).await;
        assert_eq!(text_of(&ev), "echo: what is this", "{raw}");
        let sent = upstream.requests().last().unwrap().clone();
        assert_eq!(sent["messages"][0]["content"], json!([{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": image}}]));
        let h = history(&app, &user, &id).await;
        // Stored as a file: the message holds its id, and the browser gets a signed URL that
        // serves the very bytes sent.
        let stored = h["messages"][0]["images"][0].as_str().unwrap();
        assert!(stored.starts_with("file:"), "{h}");
        let shown = h["messages"][0]["image_urls"][0].as_str().unwrap();
        assert!(shown.starts_with("/api/v1/files/") && shown.contains("sig="), "{shown}");
        let r = app.client.get(app.url(shown)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "image/png");
        let png = base64_decode(image.split_once(",").unwrap().1);
        assert_eq!(r.bytes().await.unwrap().to_vec(), png);
        let listed = app.get("/api/v1/files?purpose=chat", Some(&user.access)).await;
        assert_eq!(listed.json["items"].as_array().unwrap().len(), 1, "{}", listed.text);
        // Another user cannot attach it.
        let theirs = new_conversation(&app, &other, json!({})).await;
        let r = app.post(&format!("/api/v1/chat/conversations/{theirs}/messages"), Some(&other.access), json!({"content": "mine now", "images": [stored]})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        // The context inspector elides the image data.
        let answer = h["messages"][1]["id"].as_str().unwrap();
        let ctx = app.get(&format!("/api/v1/chat/messages/{answer}/context"), Some(&user.access)).await;
        assert!(!ctx.text.contains("iVBORw0KGgo"), "{}", ctx.text);

        // Everything addressed by id is the owner's alone.
        let first = h["messages"][0]["id"].as_str().unwrap();
        let r = app.client.get(app.url(&format!("/api/v1/chat/messages/{answer}/stream"))).bearer_auth(&other.access).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = app.post(&format!("/api/v1/chat/conversations/{id}/switch"), Some(&other.access), json!({"message_id": first})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let mine = new_conversation(&app, &other, json!({})).await;
        let r = app.post(&format!("/api/v1/chat/conversations/{mine}/switch"), Some(&other.access), json!({"message_id": first})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "another user's message id switches nothing");
        for format in ["markdown", "html"] {
            let r = app.get(&format!("/api/v1/chat/conversations/{id}/export?format={format}"), Some(&other.access)).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND);
        }
        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/chat/conversations/{id}"), Some(&other.access), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.post(&format!("/api/v1/chat/conversations/{id}/restore"), Some(&other.access), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let everything = app.get("/api/v1/chat/export", Some(&other.access)).await;
        assert!(!everything.text.contains("what is this"), "{}", everything.text);
        let listed = app.get("/api/v1/chat/conversations?q=what", Some(&other.access)).await;
        assert_eq!(listed.json["items"].as_array().unwrap().len(), 0);
        // Still the owner's, untouched.
        assert_eq!(history(&app, &user, &id).await["messages"].as_array().unwrap().len(), 2);
    }

    async fn the_next_message_can_follow_at_once_and_a_chatgpt_export_imports(backend) {
        // Titles on: the next message must not wait for the title of the first answer.
        let app = TestApp::spawn_with(backend, |_| {}).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let id = new_conversation(&app, &user, json!({})).await;
        let r = app.client.post(app.url(&format!("/api/v1/chat/conversations/{id}/messages")))
            .bearer_auth(&user.access).json(&json!({"content": "first question"})).send().await.unwrap();
        let mut body = r.bytes_stream();
        let mut seen = String::new();
        while !seen.contains("event: done") {
            seen.push_str(&String::from_utf8_lossy(&body.next().await.unwrap().unwrap()));
        }
        // The title is still being written on the first stream; the conversation is free.
        upstream.fail_next(Fault::Delay(Duration::from_millis(300)));
        let (status, ev, raw) = send(&app, &user, &id, json!({"content": "second question"})).await;
        assert_eq!(status, StatusCode::OK, "{raw}");
        assert_eq!(text_of(&ev), "echo: second question", "{raw}");
        while body.next().await.is_some() {}
        let h = history(&app, &user, &id).await;
        let contents: Vec<&str> = h["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!(contents, ["first question", "echo: first question", "second question", "echo: second question"]);

        // ChatGPT's export format, through HTTP.
        let export = json!([{
            "title": "旧对话", "create_time": 1_700_000_000.0, "current_node": "a1",
            "mapping": {
                "root": {"id": "root", "message": null, "parent": null, "children": ["u1"]},
                "u1": {"id": "u1", "parent": "root", "children": ["a1"], "message": {"author": {"role": "user"}, "create_time": 1_700_000_001.0, "content": {"content_type": "text", "parts": ["你好"]}}},
                "a1": {"id": "a1", "parent": "u1", "children": [], "message": {"author": {"role": "assistant"}, "create_time": 1_700_000_002.0, "content": {"content_type": "text", "parts": ["你好！有什么可以帮你？"]}}}
            }
        }]);
        let r = app.post("/api/v1/chat/import", Some(&user.access), export).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let imported = r.json["ids"][0].as_str().unwrap();
        let h = history(&app, &user, imported).await;
        assert_eq!(h["messages"][1]["content"], "你好！有什么可以帮你？");
        assert_eq!(app.get(&format!("/api/v1/chat/conversations/{imported}"), Some(&user.access)).await.json["title"], "旧对话");
    }
}

/// A 26 MB recording as a multipart form: `(content type, body)`.
fn big_recording() -> (&'static str, Vec<u8>) {
    let mut body = b"--b0und\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\n".to_vec();
    body.extend_from_slice(&crate::relay::endpoints::audio(26 * 1024 * 1024));
    body.extend_from_slice(b"\r\n--b0und--\r\n");
    ("multipart/form-data; boundary=b0und", body)
}

/// A ChatGPT export of one conversation: a hidden root, then `n - 1` turns in one chain
/// (every tenth a tool message, skipped), listed leaf first.
fn chatgpt_chain(n: usize) -> Value {
    let mut mapping = serde_json::Map::new();
    for i in (0..n).rev() {
        let parent = if i == 0 {
            Value::Null
        } else {
            json!(format!("n{}", i - 1))
        };
        let message = match i {
            0 => Value::Null,
            i if i % 10 == 0 => {
                json!({"author": {"role": "tool"}, "content": {"content_type": "text", "parts": ["tool output"]}})
            }
            i => json!({
                "author": {"role": if i % 2 == 1 { "user" } else { "assistant" }},
                "create_time": 1_700_000_000 + i,
                "content": {"content_type": "text", "parts": [format!("turn {i}")]}
            }),
        };
        mapping.insert(
            format!("n{i}"),
            json!({"id": format!("n{i}"), "parent": parent, "message": message}),
        );
    }
    json!([{"title": "长对话", "create_time": 1_700_000_000.0, "current_node": format!("n{}", n - 1), "mapping": mapping}])
}

on_both_backends! {
    async fn a_twenty_thousand_node_chatgpt_chain_imports_in_batches(backend) {
        let app = chat_app(backend, |_| {}).await;
        let user = app.register("ada").await;
        let other = app.register("bob").await;
        let n = 20_000;
        let started = std::time::Instant::now();
        let r = app.post("/api/v1/chat/import", Some(&user.access), chatgpt_chain(n)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", &r.text[..r.text.len().min(500)]);
        assert!(started.elapsed() < Duration::from_secs(60), "import took {:?}", started.elapsed());
        let id = r.json["ids"][0].as_str().unwrap().to_string();
        let h = history(&app, &user, &id).await;
        let messages = h["messages"].as_array().unwrap();
        // Every kept turn, in one chain from the first question to the current node.
        let kept: Vec<usize> = (1..n).filter(|i| i % 10 != 0).collect();
        assert_eq!(messages.len(), kept.len());
        assert_eq!(messages[0]["content"], "turn 1");
        assert_eq!(messages[messages.len() - 1]["content"], format!("turn {}", kept[kept.len() - 1]));
        assert_eq!(messages[9]["content"], "turn 11", "turn 11 hangs from turn 9 across the skipped tool message");
        // Shown once, whole; not in the trash; not anyone else's.
        let listed = app.get("/api/v1/chat/conversations", Some(&user.access)).await;
        assert_eq!(listed.json["items"].as_array().unwrap().len(), 1, "{}", listed.text);
        let trash = app.get("/api/v1/chat/conversations?deleted=true", Some(&user.access)).await;
        assert_eq!(trash.json["items"].as_array().map(Vec::len), Some(0), "{}", trash.text);
        assert_eq!(app.get(&format!("/api/v1/chat/conversations/{id}"), Some(&other.access)).await.status, StatusCode::NOT_FOUND);
    }

    async fn cyclic_and_oversized_imports_are_refused_and_leave_nothing(backend) {
        let app = chat_app(backend, |_| {}).await;
        let user = app.register("ada").await;
        let looped = json!([{"title": "loop", "mapping": {
            "a": {"parent": "c", "message": {"author": {"role": "user"}, "content": {"content_type": "text", "parts": ["a"]}}},
            "b": {"parent": "a", "message": {"author": {"role": "assistant"}, "content": {"content_type": "text", "parts": ["b"]}}},
            "c": {"parent": "b", "message": null}
        }}]);
        let r = app.post("/api/v1/chat/import", Some(&user.access), looped).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "import_cycle"), "{}", r.text);

        let many = Value::Array((0..10_001).map(|_| json!({"title": "t", "mapping": {}})).collect());
        let r = app.post("/api/v1/chat/import", Some(&user.access), many).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::PAYLOAD_TOO_LARGE, "import_too_large"), "{}", r.text);
        assert_eq!(r.json["error"]["details"]["max"], 10_000);
        let zh = app.send(app.client.post(app.url("/api/v1/chat/import")).bearer_auth(&user.access)
            .header("accept-language", "zh-CN").json(&chatgpt_chain(20_002))).await;
        assert_eq!((zh.status, zh.error_code()), (StatusCode::PAYLOAD_TOO_LARGE, "import_too_large"), "{}", zh.text);
        assert!(zh.json["error"]["message"].as_str().unwrap().contains("20000"), "{}", zh.text);
        assert!(zh.json["error"]["message"].as_str().unwrap().contains("拆分"), "{}", zh.text);

        let listed = app.get("/api/v1/chat/conversations", Some(&user.access)).await;
        assert_eq!(listed.json["items"].as_array().map(Vec::len), Some(0), "{}", listed.text);
        let r = app.send(app.client.post(app.url("/api/v1/chat/import")).bearer_auth(&user.access).body("[]")).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}

on_both_backends! {
    async fn uploaded_images_are_sent_by_id_and_old_inline_images_move_into_files(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let id = new_conversation(&app, &user, json!({})).await;
        let png = tiny_png();
        let form = |name: &str, content: &[u8]| {
            let mut body = format!(
                "--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nchat\r\n--b\r\n\
                 Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n"
            )
            .into_bytes();
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n--b--\r\n");
            body
        };
        let upload = |name: &'static str, content: Vec<u8>| {
            let app = &app;
            let user = &user;
            async move {
                let r = app.send(app.client.post(app.url("/api/v1/files")).bearer_auth(&user.access)
                    .header("content-type", "multipart/form-data; boundary=b").body(form(name, &content))).await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
                r.json["id"].as_str().unwrap().to_string()
            }
        };
        let image = upload("dot.png", png.clone()).await;
        let text = upload("notes.txt", b"just words".to_vec()).await;

        // A text file is not an image; an unknown id is missing.
        let r = app.post(&format!("/api/v1/chat/conversations/{id}/messages"), Some(&user.access), json!({"content": "x", "images": [format!("file:{text}")]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let r = app.post(&format!("/api/v1/chat/conversations/{id}/messages"), Some(&user.access), json!({"content": "x", "images": [format!("file:{}", skein_core::ids::new_id())]})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

        // By id: the row keeps the id, the vendor gets the bytes.
        let (_, ev, raw) = send(&app, &user, &id, json!({"content": "look", "images": [format!("file:{image}")]})).await;
        assert_eq!(text_of(&ev), "echo: look", "{raw}");
        let sent = upstream.requests().last().unwrap().clone();
        let url = sent["messages"][0]["content"][1]["image_url"]["url"].as_str().unwrap().to_string();
        assert_eq!(url, format!("data:image/png;base64,{}", base64_encode(&png)));
        let h = history(&app, &user, &id).await;
        assert_eq!(h["messages"][0]["images"], json!([format!("file:{image}")]));

        // An older version kept images inline: `skein migrate` moves them into files, and the
        // conversation goes on with the same picture.
        let first = h["messages"][0]["id"].as_str().unwrap().to_string();
        let db = skein::open_database(&app.config).await.unwrap();
        let inline = json!([format!("data:image/png;base64,{}", base64_encode(&png))]).to_string();
        skein_db::sqlx::query("UPDATE chat_messages SET images = $1 WHERE id = $2")
            .bind(&inline).bind(&first).execute(db.pool()).await.unwrap();
        assert!(history(&app, &user, &id).await["messages"][0]["images"][0].as_str().unwrap().starts_with("data:image/png"));
        let mut batches = 0;
        let report = skein::move_chat_images(&app.config, &db, |_| batches += 1).await.unwrap();
        assert_eq!((report.messages, report.images, report.skipped), (1, 1, 0));
        assert!(batches >= 1);
        let again = skein::move_chat_images(&app.config, &db, |_| {}).await.unwrap();
        assert_eq!((again.messages, again.images), (0, 0), "a second run finds nothing");
        db.close().await;
        let h = history(&app, &user, &id).await;
        let moved = h["messages"][0]["images"][0].as_str().unwrap();
        assert!(moved.starts_with("file:"), "{h}");
        let r = app.client.get(app.url(h["messages"][0]["image_urls"][0].as_str().unwrap())).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().to_vec(), png);
        let (_, ev, _) = send(&app, &user, &id, json!({"content": "again"})).await;
        assert_eq!(text_of(&ev), "echo: again");
        let sent = upstream.requests().last().unwrap().clone();
        assert_eq!(sent["messages"][0]["content"][1]["image_url"]["url"].as_str().unwrap(), url);

        // Exports carry the pictures themselves: embedded in HTML and JSON, in Markdown when
        // asked, and left out when asked.
        let html = app.get(&format!("/api/v1/chat/conversations/{id}/export?format=html"), Some(&user.access)).await;
        assert!(html.text.contains(&format!("<img src=\"{url}\" alt=\"image 1\">")), "{}", &html.text[..html.text.len().min(600)]);
        assert!(html.text.contains("img-src data:"));
        let exported = app.get(&format!("/api/v1/chat/conversations/{id}/export"), Some(&user.access)).await;
        let with_images: Vec<&Value> = exported.json["messages"].as_array().unwrap().iter().filter(|m| m.get("images").is_some()).collect();
        assert_eq!(with_images.len(), 1, "{}", exported.text);
        assert!(with_images.iter().all(|m| m["images"] == json!([url])));
        let md = app.get(&format!("/api/v1/chat/conversations/{id}/export?format=markdown"), Some(&user.access)).await;
        assert!(!md.text.contains("data:image"));
        let md = app.get(&format!("/api/v1/chat/conversations/{id}/export?format=markdown&attachments=true"), Some(&user.access)).await;
        assert!(md.text.contains(&format!("![image 1]({url})")), "{}", md.text);
        let bare = app.get(&format!("/api/v1/chat/conversations/{id}/export?attachments=false"), Some(&user.access)).await;
        assert!(!bare.text.contains("data:image"));
        let archive = app.get("/api/v1/chat/export", Some(&user.access)).await;
        assert!(!archive.text.contains("data:image"));
        let archive = app.get("/api/v1/chat/export?attachments=true", Some(&user.access)).await;
        assert!(archive.text.contains(&url));
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A small valid PNG.
fn tiny_png() -> Vec<u8> {
    let mut out = Vec::new();
    let img = image::RgbImage::from_pixel(8, 6, image::Rgb([10, 200, 10]));
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

on_both_backends! {
    async fn a_branch_is_deleted_with_what_is_under_it(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let other = app.register("mallory").await;
        let id = new_conversation(&app, &user, json!({})).await;
        send(&app, &user, &id, json!({"content": "first question"})).await;
        send(&app, &user, &id, json!({"content": "second question"})).await;
        let h = history(&app, &user, &id).await;
        let first_answer = h["messages"][1]["id"].as_str().unwrap().to_string();
        let second_question = h["messages"][2]["id"].as_str().unwrap().to_string();
        // A second version of the first answer (the regenerated one is on screen).
        let r = app.client.post(app.url(&format!("/api/v1/chat/messages/{first_answer}/regenerate")))
            .bearer_auth(&user.access).send().await.unwrap();
        r.text().await.unwrap();
        let h = history(&app, &user, &id).await;
        assert_eq!(h["messages"][1]["sibling_count"], 2);
        let regenerated = h["messages"][1]["id"].as_str().unwrap().to_string();
        assert_ne!(regenerated, first_answer);

        // Another user's delete finds nothing, and changes nothing.
        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/chat/messages/{first_answer}"), Some(&other.access), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

        // Deleting the version on screen shows the one beside it, with what followed it.
        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/chat/messages/{regenerated}"), Some(&user.access), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let m = r.json["messages"].as_array().unwrap();
        assert_eq!(m.len(), 4, "{}", r.text);
        assert_eq!((m[1]["id"].as_str(), m[1]["sibling_count"].as_u64()), (Some(first_answer.as_str()), Some(1)));
        assert_eq!(m[3]["content"], "echo: second question");
        assert_eq!(history(&app, &user, &id).await, r.json, "stored, not only answered");

        // Deleting the first answer takes the follow-up turn under it too.
        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/chat/messages/{first_answer}"), Some(&user.access), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let m = r.json["messages"].as_array().unwrap();
        assert_eq!(m.len(), 1, "the question stays, now a leaf: {}", r.text);
        assert_eq!(m[0]["content"], "first question");
        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/chat/messages/{second_question}"), Some(&user.access), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "gone with its branch: {}", r.text);
        // The next message follows the question that is left, and the deleted turns are not
        // sent upstream.
        let (status, ev, _) = send(&app, &user, &id, json!({"content": "third question"})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text_of(&ev), "echo: third question");
        let sent = upstream.requests().last().unwrap().clone();
        assert!(!sent.to_string().contains("second question"), "{sent}");

        // An answer being written cannot be deleted.
        upstream.set_stream_pause(Duration::from_millis(40));
        let words = "one two three four five six seven eight nine ten eleven twelve";
        let r = app.client.post(app.url(&format!("/api/v1/chat/conversations/{id}/messages")))
            .bearer_auth(&user.access).json(&json!({"content": words})).send().await.unwrap();
        let mut body = r.bytes_stream();
        let mut seen = String::new();
        let mut refused = false;
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if !refused && seen.contains("event: delta") {
                let start = find(&events(&seen), "start").clone();
                let question = start["user_message_id"].as_str().unwrap().to_string();
                let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/chat/messages/{question}"), Some(&user.access), None).await;
                assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("generation_in_progress")), "{}", r.text);
                refused = true;
            }
        }
        assert!(refused, "the answer streamed: {seen}");
    }

    async fn answers_take_a_thumbs_up_or_down(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream: _upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let other = app.register("mallory").await;
        let id = new_conversation(&app, &user, json!({})).await;
        send(&app, &user, &id, json!({"content": "rate me"})).await;
        let h = history(&app, &user, &id).await;
        let question = h["messages"][0]["id"].as_str().unwrap().to_string();
        let answer = h["messages"][1]["id"].as_str().unwrap().to_string();
        assert!(h["messages"][1].get("feedback").is_none());
        let feedback = |who: &Persona, message: &str, body: Value| {
            let path = format!("/api/v1/chat/messages/{message}/feedback");
            let token = who.access.clone();
            let app = &app;
            async move { app.put(&path, Some(&token), body).await }
        };

        let r = feedback(&user, &answer, json!({"rating": "up"})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        assert_eq!(history(&app, &user, &id).await["messages"][1]["feedback"], "up");
        let r = feedback(&user, &answer, json!({"rating": "down", "comment": "made up a source"})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        assert_eq!(history(&app, &user, &id).await["messages"][1]["feedback"], "down");

        // Refusals: another user's answer, a question, an unknown rating, a long comment.
        let r = feedback(&other, &answer, json!({"rating": "up"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let r = feedback(&user, &question, json!({"rating": "up"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let r = feedback(&user, &answer, json!({"rating": "meh"})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("rating")), "{}", r.text);
        let r = feedback(&user, &answer, json!({"rating": "up", "comment": "x".repeat(2001)})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(history(&app, &user, &id).await["messages"][1]["feedback"], "down", "a refused change changes nothing");

        // Taken back.
        let r = feedback(&user, &answer, json!({"rating": null})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        assert!(history(&app, &user, &id).await["messages"][1].get("feedback").is_none());
    }

    async fn a_shared_link_shows_the_branch_read_only_until_revoked(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream: _upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let other = app.register("mallory").await;
        let empty = new_conversation(&app, &user, json!({})).await;
        let r = app.post(&format!("/api/v1/chat/conversations/{empty}/shares"), Some(&user.access), json!({})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "an empty conversation: {}", r.text);

        let id = new_conversation(&app, &user, json!({"title": "Trip plans", "system_prompt": "secret instructions"})).await;
        send(&app, &user, &id, json!({"content": "where to in May"})).await;
        let r = app.post(&format!("/api/v1/chat/conversations/{id}/shares"), Some(&user.access), json!({})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let share_id = r.json["id"].as_str().unwrap().to_string();
        let token = r.json["token"].as_str().unwrap().to_string();
        assert_eq!(r.json["path"], format!("/share/{token}"));
        assert!(token.len() >= 22, "a long secret: {token}");
        // Another user cannot share, list or revoke it.
        let r = app.post(&format!("/api/v1/chat/conversations/{id}/shares"), Some(&other.access), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/api/v1/chat/conversations/{id}/shares"), Some(&other.access)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.call(reqwest::Method::DELETE, &format!("/api/v1/chat/shares/{share_id}"), Some(&other.access), None).await.status, StatusCode::NOT_FOUND);

        // Anyone with the link reads it without signing in: the messages, nothing private.
        send(&app, &user, &id, json!({"content": "said after sharing"})).await;
        let shared = app.get(&format!("/api/v1/chat/shared/{token}"), None).await;
        assert_eq!(shared.status, StatusCode::OK, "{}", shared.text);
        assert_eq!(shared.json["title"], "Trip plans");
        let m = shared.json["messages"].as_array().unwrap();
        assert_eq!(m.len(), 2, "only what was shared: {}", shared.text);
        assert_eq!((m[0]["content"].as_str(), m[1]["content"].as_str()), (Some("where to in May"), Some("echo: where to in May")));
        for private in ["secret instructions", "said after sharing", "cost", "usage", "user_id"] {
            assert!(!shared.text.contains(private), "{private} in {}", shared.text);
        }
        let listed = app.get(&format!("/api/v1/chat/conversations/{id}/shares"), Some(&user.access)).await;
        assert_eq!(listed.json.as_array().unwrap().len(), 1, "{}", listed.text);

        // Revoked: gone, and listed no more; an unknown token is the same 404.
        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/chat/shares/{share_id}"), Some(&user.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        assert_eq!(app.get(&format!("/api/v1/chat/shared/{token}"), None).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get("/api/v1/chat/shared/not-a-real-token", None).await.status, StatusCode::NOT_FOUND);
        assert!(app.get(&format!("/api/v1/chat/conversations/{id}/shares"), Some(&user.access)).await.json.as_array().unwrap().is_empty());

        // A new link shows the whole branch now; deleting the conversation ends it.
        let r = app.post(&format!("/api/v1/chat/conversations/{id}/shares"), Some(&user.access), json!({})).await;
        let token = r.json["token"].as_str().unwrap().to_string();
        assert_eq!(app.get(&format!("/api/v1/chat/shared/{token}"), None).await.json["messages"].as_array().unwrap().len(), 4);
        app.call(reqwest::Method::DELETE, &format!("/api/v1/chat/conversations/{id}"), Some(&user.access), None).await;
        assert_eq!(app.get(&format!("/api/v1/chat/shared/{token}"), None).await.status, StatusCode::NOT_FOUND);
    }
}

on_both_backends! {
    async fn chat_preferences_follow_the_user_and_refuse_bad_values(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream: _upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let other = app.register("mallory").await;
        let r = app.get("/api/v1/chat/preferences", Some(&user.access)).await;
        assert_eq!((r.status, r.json.clone()), (StatusCode::OK, json!({"default_model": null, "send_key": "enter", "font_size": "medium"})));
        assert_eq!(app.get("/api/v1/chat/preferences", None).await.status, StatusCode::UNAUTHORIZED);

        let r = app.put("/api/v1/chat/preferences", Some(&user.access), json!({"default_model": "gpt-test", "send_key": "mod_enter"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json, json!({"default_model": "gpt-test", "send_key": "mod_enter", "font_size": "medium"}));
        // A field left out stays; another session (another device) reads the same.
        let r = app.put("/api/v1/chat/preferences", Some(&user.access), json!({"font_size": "large"})).await;
        assert_eq!(r.json, json!({"default_model": "gpt-test", "send_key": "mod_enter", "font_size": "large"}));
        let again = app.login("ada", skein_testkit::PASSWORD).await;
        assert_eq!(app.get("/api/v1/chat/preferences", Some(&again.access)).await.json["font_size"], "large");
        // Another user's are their own.
        assert_eq!(app.get("/api/v1/chat/preferences", Some(&other.access)).await.json["send_key"], "enter");

        // Refused, each naming its field, and nothing stored.
        for (body, field) in [
            (json!({"send_key": "space"}), "send_key"),
            (json!({"font_size": "huge"}), "font_size"),
            (json!({"default_model": "m".repeat(201)}), "default_model"),
        ] {
            let r = app.put("/api/v1/chat/preferences", Some(&user.access), body).await;
            assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{}", r.text);
        }
        let r = app.put("/api/v1/chat/preferences", Some(&user.access), json!({"colour": "red"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields are refused: {}", r.text);
        // null clears the model.
        let r = app.put("/api/v1/chat/preferences", Some(&user.access), json!({"default_model": null})).await;
        assert_eq!(r.json, json!({"default_model": null, "send_key": "mod_enter", "font_size": "large"}));
    }
}

on_both_backends! {
    async fn the_prompt_library_keeps_personal_prompts_and_admins_share(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { root, user, .. } = relay_world(&app, Upstream::OpenAi).await;
        let other = app.register("mallory").await;
        let r = app.post("/api/v1/chat/prompts", Some(&user.access), json!({"command": "/translate", "title": "Translate", "content": "Translate into English:\n"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!((r.json["command"].as_str(), r.json["mine"].as_bool(), r.json["shared"].as_bool()), (Some("translate"), Some(true), Some(false)));
        let mine = r.json["id"].as_str().unwrap().to_string();

        // A user cannot share with everyone; an admin can.
        let r = app.post("/api/v1/chat/prompts", Some(&user.access), json!({"command": "all", "title": "All", "content": "x", "shared": true})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        let r = app.post("/api/v1/chat/prompts", Some(&root.access), json!({"command": "周报", "title": "Weekly report", "content": "把以下记录整理成周报：", "shared": true})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let shared = r.json["id"].as_str().unwrap().to_string();

        // The user sees theirs and the shared one; another user only the shared one.
        let listed = app.get("/api/v1/chat/prompts", Some(&user.access)).await.json;
        let commands: Vec<(&str, bool)> = listed.as_array().unwrap().iter().map(|p| (p["command"].as_str().unwrap(), p["mine"].as_bool().unwrap())).collect();
        assert_eq!(commands, vec![("translate", true), ("周报", false)]);
        let theirs = app.get("/api/v1/chat/prompts", Some(&other.access)).await.json;
        assert_eq!(theirs.as_array().unwrap().len(), 1, "{theirs}");

        // Only the owner changes or deletes: another user's and the shared prompt are 404.
        let r = app.patch(&format!("/api/v1/chat/prompts/{mine}"), Some(&other.access), json!({"title": "Mine now"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/chat/prompts/{shared}"), Some(&user.access), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.patch(&format!("/api/v1/chat/prompts/{mine}"), Some(&user.access), json!({"title": "Translate to English"})).await;
        assert_eq!((r.status, r.json["title"].as_str(), r.json["command"].as_str()), (StatusCode::OK, Some("Translate to English"), Some("translate")), "{}", r.text);

        // Refusals: a taken command, a command with spaces, an empty text; nothing stored.
        let r = app.post("/api/v1/chat/prompts", Some(&user.access), json!({"command": "translate", "title": "Again", "content": "y"})).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("command_taken")), "{}", r.text);
        let r = app.post("/api/v1/chat/prompts", Some(&user.access), json!({"command": "two words", "title": "T", "content": "y"})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("command")), "{}", r.text);
        let r = app.post("/api/v1/chat/prompts", Some(&user.access), json!({"command": "empty", "title": "T", "content": "  "})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("content")), "{}", r.text);
        assert_eq!(app.get("/api/v1/chat/prompts", Some(&user.access)).await.json.as_array().unwrap().len(), 2);

        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/chat/prompts/{mine}"), Some(&user.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get("/api/v1/chat/prompts", Some(&user.access)).await.json.as_array().unwrap().len(), 1);
    }
}
