//! One deployment in two processes on one PostgreSQL and Redis: `--services user,billing` in
//! one, `--services relay,chat` in the other (or `user,billing,chat` and `relay`), each
//! reaching the other's services only through their internal routes (with the internal token,
//! on the internal listeners). The key relay, chat and account cases must come out exactly as
//! in one process.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_core::secret::Secret;
use skein_testkit::mock_openai::{MockOpenAi, prompt_tokens, reply_to};
use skein_testkit::{Backend, Persona, Price, TestApp, redis_url};

const TOKEN: &str = "internal-token-for-split-tests-0123456789";

/// Two processes on one PostgreSQL and Redis: `first` (with User and Billing, whose internal
/// listener the second calls) and `second` (with the Relay, which the first calls).
async fn two_processes(first: &str, second: &str) -> (TestApp, TestApp) {
    let first_internal = skein_testkit::reserve_internal_address();
    let second_internal = skein_testkit::reserve_internal_address();
    let prefix = format!("split-{}:", uuid::Uuid::now_v7());
    let one = TestApp::spawn_services(Backend::Postgres, first, |c| {
        c.redis.url = Some(redis_url());
        c.redis.key_prefix = prefix.clone();
        c.services.internal_token = Some(Secret::new(TOKEN));
        c.server.internal_listen = Some(first_internal.clone());
        c.services.relay_url = Some(format!("http://{second_internal}"));
        // Sessions are trusted this long in the other process, as on any other instance.
        c.auth.session_cache_secs = 1;
        c.chat.title_model = Some(String::new());
    })
    .await;
    let two = one
        .sibling_services(second, |c| {
            c.server.internal_listen = Some(second_internal.clone());
            c.services.relay_url = None;
            c.services.user_url = Some(format!("http://{first_internal}"));
            c.services.billing_url = Some(format!("http://{first_internal}"));
        })
        .await;
    (one, two)
}

/// Two processes: `(user+billing, relay+chat)`.
async fn split() -> (TestApp, TestApp) {
    two_processes("user,billing", "relay,chat").await
}

/// The balance once no hold is open, read from the billing process.
async fn settled_balance(app: &TestApp, who: &Persona, records: i64) -> i64 {
    for _ in 0..500 {
        let usage = app.get("/api/v1/billing/usage", Some(&who.access)).await;
        let q = app.get("/api/v1/billing/quota", Some(&who.access)).await;
        if usage.json["total"].as_i64() == Some(records) && q.json["reserved"] == 0 {
            return q.json["balance"].as_i64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{records} requests were never settled");
}

/// 2 per prompt token, 6 per completion token: the prices set below.
fn cost(messages: &Value) -> i64 {
    prompt_tokens(messages) * 2 + reply_to(messages).split_whitespace().count() as i64 * 6
}

#[tokio::test]
async fn user_and_billing_apart_from_relay_and_chat_work_as_one() {
    let (users, relay) = split().await;
    assert!(
        relay.get("/healthz", None).await.status.is_success(),
        "the relay process is up"
    );

    // Accounts live in the user process; the registration grant comes from its Billing.
    let root = users.root().await;
    let ada = users.register("ada").await;
    users.fund(&root, &ada, 1_000_000).await;
    // Each process serves its own services' API only.
    assert_eq!(
        relay
            .get("/api/v1/billing/quota", Some(&ada.access))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        users.get("/api/v1/keys", Some(&ada.access)).await.status,
        StatusCode::NOT_FOUND
    );

    // Channels, prices and keys live in the relay process; its gateway accepts the user
    // process's tokens by asking it for the session.
    let upstream = MockOpenAi::start("sk-upstream-split").await;
    relay
        .add_channel(&root, json!({
            "type": "openai", "name": "primary", "base_url": upstream.base_url, "keys": [upstream.key],
            "models": ["gpt-test"], "model_mapping": {"gpt-test": "gpt-upstream"}, "priority": 10
        }))
        .await;
    relay
        .set_price(&root, "gpt-test", Price::tokens(2_000_000, 6_000_000))
        .await;
    let key = relay.api_key(&ada, "split").await;

    // The relay process's admin actions are in the user process's audit log.
    let mut audited = false;
    for _ in 0..200 {
        let log = users
            .get("/api/v1/admin/audit?action=channels", Some(&root.access))
            .await;
        if log.text.contains("primary") {
            assert!(
                !log.text.contains(&upstream.key),
                "a secret reached the audit log"
            );
            audited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(audited, "the channel's creation was not audited");

    // A whole completion: held, relayed, settled by the billing process, to the unit.
    let before = settled_balance(&users, &ada, 0).await;
    let messages = json!([{"role": "user", "content": "hello from the other process"}]);
    let r = relay
        .send(
            relay
                .client
                .post(relay.url("/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&json!({"model": "gpt-test", "messages": messages})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json["choices"][0]["message"]["content"],
        reply_to(&messages)
    );
    let after_whole = settled_balance(&users, &ada, 1).await;
    assert_eq!(before - after_whole, cost(&messages));

    // A streamed one.
    let messages =
        json!([{"role": "user", "content": "stream this answer across processes please"}]);
    let r = relay
        .send(
            relay
                .client
                .post(relay.url("/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&json!({"model": "gpt-test", "messages": messages, "stream": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.trim_end().ends_with("data: [DONE]"), "{}", r.text);
    let after_stream = settled_balance(&users, &ada, 2).await;
    assert_eq!(after_whole - after_stream, cost(&messages));

    // Not enough quota is refused by the remote Billing with its own code and details.
    users.fund(&root, &ada, -after_stream).await;
    let r = relay
        .send(
            relay
                .client
                .post(relay.url("/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&json!({"model": "gpt-test", "messages": messages})),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "insufficient_quota", "{}", r.text);
    users.fund(&root, &ada, 1_000_000).await;

    // A chat conversation in the relay process, answered and billed by the billing process.
    let before_chat = settled_balance(&users, &ada, 2).await;
    let r = relay
        .post(
            "/api/v1/chat/conversations",
            Some(&ada.access),
            json!({"title": "Split", "model": "gpt-test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let conversation = r.json["id"].as_str().unwrap().to_string();
    let r = relay
        .client
        .post(relay.url(&format!(
            "/api/v1/chat/conversations/{conversation}/messages"
        )))
        .bearer_auth(&ada.access)
        .json(&json!({"content": "hello there"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("echo: hello there"), "{text}");
    let charged = settled_balance(&users, &ada, 3).await;
    let usage = users
        .get("/api/v1/billing/usage?per_page=1", Some(&ada.access))
        .await;
    let chat_cost = usage.json["items"][0]["cost"].as_i64().unwrap();
    assert_eq!(
        usage.json["items"][0]["conversation_id"].as_str(),
        Some(conversation.as_str())
    );
    // "hello there" in, "echo: hello there" out, at 2 and 6 a token.
    assert_eq!(chat_cost, 2 * 2 + 3 * 6);
    assert_eq!(before_chat - charged, chat_cost);
    // The ledger the two processes wrote through one Billing is consistent.
    crate::billing::verify_clean(&users, &root, &ada).await;

    // Disabling ada in the user process stops her key in the relay process at once (the
    // event crosses to the relay) and her session there within the session cache.
    let r = users
        .patch(
            &format!("/api/v1/admin/users/{}", ada.id),
            Some(&root.access),
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = relay
        .send(
            relay
                .client
                .post(relay.url("/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&json!({"model": "gpt-test", "messages": messages})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let mut refused = false;
    for _ in 0..60 {
        let r = relay
            .get("/api/v1/chat/conversations", Some(&ada.access))
            .await;
        if r.status == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refused,
        "a disabled user's session still works in the relay process"
    );
}

/// Two processes: `(user+billing+chat, relay)`. Chat reaches the Relay over HTTP, and the
/// Relay holds and settles through the Billing beside Chat: a chat answer crosses twice.
async fn chat_apart() -> (TestApp, TestApp) {
    two_processes("user,billing,chat", "relay").await
}

/// `(event, data)` of a chat answer's SSE body.
fn chat_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let name = frame.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_string(), serde_json::from_str(data).ok()?))
        })
        .collect()
}

#[tokio::test]
async fn chat_apart_from_the_relay_streams_bills_once_and_stops() {
    use futures::StreamExt;
    let (chat, relay) = chat_apart().await;
    let root = chat.root().await;
    let ada = chat.register("ada").await;
    chat.fund(&root, &ada, 1_000_000).await;
    // Channels and prices are the relay process's.
    let upstream = MockOpenAi::start("sk-upstream-split").await;
    relay
        .add_channel(&root, json!({
            "type": "openai", "name": "primary", "base_url": upstream.base_url, "keys": [upstream.key],
            "models": ["gpt-test"], "model_mapping": {"gpt-test": "gpt-upstream"}, "priority": 10
        }))
        .await;
    relay
        .set_price(&root, "gpt-test", Price::tokens(2_000_000, 6_000_000))
        .await;
    assert_eq!(
        chat.get("/api/v1/channels", Some(&root.access))
            .await
            .status,
        StatusCode::NOT_FOUND,
        "the chat process does not serve the relay's API"
    );

    // The chat process lists the relay's models at the user's prices, over the wire.
    let models = chat.get("/api/v1/chat/models", Some(&ada.access)).await;
    assert_eq!(models.status, StatusCode::OK, "{}", models.text);
    assert_eq!(models.json[0]["id"], "gpt-test", "{}", models.text);
    assert_eq!(models.json[0]["input_price"], 2_000_000, "{}", models.text);

    // An answer streamed from the relay process through the chat process, billed once.
    let before = settled_balance(&chat, &ada, 0).await;
    let r = chat
        .post(
            "/api/v1/chat/conversations",
            Some(&ada.access),
            json!({"model": "gpt-test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let conversation = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/chat/conversations/{conversation}/messages");
    let r = chat
        .client
        .post(chat.url(&path))
        .bearer_auth(&ada.access)
        .json(&json!({"content": "hello there"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let events = chat_events(&r.text().await.unwrap());
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "delta")
        .map(|(_, d)| d["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "echo: hello there", "{events:?}");
    let done = &events
        .iter()
        .find(|(e, _)| e == "done")
        .expect("a done event")
        .1["message"];
    let charged = settled_balance(&chat, &ada, 1).await;
    // "hello there" in, "echo: hello there" out, at 2 and 6 a token.
    assert_eq!(before - charged, 2 * 2 + 3 * 6);
    assert_eq!(
        done["usage"]["cost"],
        2 * 2 + 3 * 6,
        "the message shows the ledger's charge"
    );
    let usage = chat
        .get("/api/v1/billing/usage?per_page=1", Some(&ada.access))
        .await;
    assert_eq!(
        usage.json["items"][0]["conversation_id"].as_str(),
        Some(conversation.as_str())
    );

    // A stopped answer: the stop reaches the relay process, which cuts the upstream, bills
    // what was delivered, releases the rest of the hold and says what it charged.
    upstream.set_stream_pause(Duration::from_millis(40));
    let words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen";
    let r = chat
        .client
        .post(chat.url(&path))
        .bearer_auth(&ada.access)
        .json(&json!({"content": words}))
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    let mut stopped = false;
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if !stopped && seen.contains("event: delta") {
            let events = chat_events(&seen);
            let start = &events.iter().find(|(e, _)| e == "start").expect("start").1;
            let answer = start["assistant_message_id"].as_str().unwrap().to_string();
            let r = chat
                .post(
                    &format!("/api/v1/chat/messages/{answer}/stop"),
                    Some(&ada.access),
                    json!({}),
                )
                .await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
            stopped = true;
        }
    }
    let events = chat_events(&seen);
    let done = &events
        .iter()
        .find(|(e, _)| e == "done")
        .expect("a done event")
        .1["message"];
    assert_eq!(done["status"], "stopped", "{seen}");
    let after_stop = settled_balance(&chat, &ada, 2).await;
    let usage = chat
        .get("/api/v1/billing/usage?per_page=1", Some(&ada.access))
        .await;
    let record = &usage.json["items"][0];
    assert_eq!(record["status"], "stopped", "{record}");
    let stop_cost = record["cost"].as_i64().unwrap();
    assert_eq!(charged - after_stop, stop_cost);
    assert_eq!(done["usage"]["cost"].as_i64(), Some(stop_cost), "{done}");
    assert!(
        stop_cost < 14 * 2 + 15 * 6,
        "billed less than the whole answer: {record}"
    );
    crate::billing::verify_clean(&chat, &root, &ada).await;
}

/// The file signing key both processes share: signed file URLs are made where they are needed.
const SIGNING_KEY: &str = "file-signing-key-for-split-tests-0123456789";

/// Two processes: `content` runs everything but Chat (User, Billing, Relay, File, Knowledge,
/// Plugin, Agent); `chat` runs Chat alone and reaches every other service over HTTP, and the
/// Agent service in `content` starts conversations in `chat`.
async fn chat_alone() -> (TestApp, TestApp) {
    let content_internal = skein_testkit::reserve_internal_address();
    let chat_internal = skein_testkit::reserve_internal_address();
    let prefix = format!("split-{}:", uuid::Uuid::now_v7());
    let content = TestApp::spawn_services(
        Backend::Postgres,
        "user,billing,relay,file,knowledge,plugin,agent",
        |c| {
            c.redis.url = Some(redis_url());
            c.redis.key_prefix = prefix.clone();
            c.services.internal_token = Some(Secret::new(TOKEN));
            c.server.internal_listen = Some(content_internal.clone());
            c.services.chat_url = Some(format!("http://{chat_internal}"));
            c.file.signing_key = Some(Secret::new(SIGNING_KEY));
            c.auth.session_cache_secs = 1;
            c.chat.title_model = Some(String::new());
            c.knowledge.poll_interval_ms = 50;
            c.knowledge.retry_base_secs = 1;
        },
    )
    .await;
    let chat = content
        .sibling_services("chat", |c| {
            let there = Some(format!("http://{content_internal}"));
            c.server.internal_listen = Some(chat_internal.clone());
            c.services.chat_url = None;
            c.services.user_url = there.clone();
            c.services.billing_url = there.clone();
            c.services.relay_url = there.clone();
            c.services.file_url = there.clone();
            c.services.knowledge_url = there.clone();
            c.services.plugin_url = there.clone();
            c.services.agent_url = there;
        })
        .await;
    (content, chat)
}

/// Sends `content` in conversation `id` through the chat process; the answer's SSE events.
async fn say(chat: &TestApp, who: &Persona, id: &str, body: Value) -> Vec<(String, Value)> {
    let r = chat
        .client
        .post(chat.url(&format!("/api/v1/chat/conversations/{id}/messages")))
        .bearer_auth(&who.access)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    chat_events(&r.text().await.unwrap())
}

fn event<'a>(events: &'a [(String, Value)], name: &str) -> &'a Value {
    &events
        .iter()
        .find(|(e, _)| e == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
        .1
}

#[tokio::test]
async fn chat_alone_reaches_files_knowledge_plugins_and_assistants_over_the_wire() {
    use skein_testkit::{Upstream, WorldSpec};
    let (content, chat) = chat_alone().await;
    let world = WorldSpec::new(Upstream::OpenAi)
        .model("gpt-test", Some("gpt-upstream"))
        .model("gpt-other", None)
        .price("gpt-test", Price::tokens(2_000_000, 6_000_000))
        .price("gpt-other", Price::tokens(2_000_000, 6_000_000))
        .build(&content)
        .await;
    let (ada, upstream) = (&world.user, &world.upstream);

    // Settings: the default model an admin sets in the User service's process is the one
    // the chat process answers with (told over the bus, read over the wire).
    let r = content
        .put(
            "/api/v1/admin/settings",
            Some(&world.root.access),
            json!({"default_model": "gpt-other"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut followed = false;
    for _ in 0..100 {
        let r = chat
            .post("/api/v1/chat/conversations", Some(&ada.access), json!({}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.json["id"].as_str().unwrap().to_string();
        let ev = say(&chat, ada, &id, json!({"content": "hi"})).await;
        assert_eq!(event(&ev, "done")["message"]["status"], "done", "{ev:?}");
        if upstream.requests().last().unwrap()["model"] == "gpt-other" {
            followed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        followed,
        "the chat process never used the default model set in the User service"
    );
    let new_conversation = || async {
        let r = chat
            .post(
                "/api/v1/chat/conversations",
                Some(&ada.access),
                json!({"model": "gpt-test"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json["id"].as_str().unwrap().to_string()
    };

    // File: an image sent inline is stored through the File service in the other process,
    // read back from it for the upstream, and shown with a URL signed here that the File
    // service accepts.
    let id = new_conversation().await;
    let image = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    let ev = say(
        &chat,
        ada,
        &id,
        json!({"content": "what is this", "images": [image]}),
    )
    .await;
    assert_eq!(event(&ev, "done")["message"]["status"], "done", "{ev:?}");
    let sent = upstream.requests().last().unwrap().clone();
    assert_eq!(
        sent["messages"][0]["content"][1],
        json!({"type": "image_url", "image_url": {"url": image}}),
        "the upstream got the bytes the File service stored"
    );
    let history = chat
        .get(
            &format!("/api/v1/chat/conversations/{id}/messages"),
            Some(&ada.access),
        )
        .await;
    let stored = history.json["messages"][0]["images"][0].as_str().unwrap();
    assert!(stored.starts_with("file:"), "{}", history.text);
    let listed = content
        .get("/api/v1/files?purpose=chat", Some(&ada.access))
        .await;
    assert_eq!(
        listed.json["items"][0]["id"].as_str(),
        stored.strip_prefix("file:"),
        "{}",
        listed.text
    );
    let shown = history.json["messages"][0]["image_urls"][0]
        .as_str()
        .unwrap();
    let r = content.client.get(content.url(shown)).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a URL signed in the chat process"
    );
    assert_eq!(r.headers()["content-type"], "image/png");
    // Another user's file id is as missing across the wire as in one process.
    let eve = content.register("eve").await;
    let theirs = chat
        .post(
            "/api/v1/chat/conversations",
            Some(&eve.access),
            json!({"model": "gpt-test"}),
        )
        .await;
    let theirs = theirs.json["id"].as_str().unwrap();
    let r = chat
        .post(
            &format!("/api/v1/chat/conversations/{theirs}/messages"),
            Some(&eve.access),
            json!({"content": "mine now", "images": [stored]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // Knowledge: a base in the other process answers the chat's question, with its citation.
    let r = content
        .post(
            "/api/v1/knowledge/bases",
            Some(&ada.access),
            json!({"name": "Shop", "embedding_model": ""}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let base = r.json["id"].as_str().unwrap().to_string();
    let boundary = "split-test-boundary";
    let notes =
        "Refunds are accepted within thirty days from delivery. Shipping is free above 50 euros.";
    let r = content
        .client
        .post(content.url(&format!(
            "/api/v1/knowledge/bases/{base}/documents/upload"
        )))
        .bearer_auth(&ada.access)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"refunds.txt\"\r\n\
             Content-Type: text/plain\r\n\r\n{notes}\r\n--{boundary}--\r\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let doc: Value = r.json().await.unwrap();
    let doc = doc["id"].as_str().unwrap().to_string();
    let mut ready = false;
    for _ in 0..600 {
        let r = content
            .get(
                &format!("/api/v1/knowledge/bases/{base}/documents/{doc}"),
                Some(&ada.access),
            )
            .await;
        if r.json["status"] == "ready" {
            ready = true;
            break;
        }
        assert_ne!(r.json["status"], "failed", "{}", r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the document was never indexed");
    let id = new_conversation().await;
    let r = content
        .put(
            &format!("/api/v1/knowledge/conversations/{id}/bases"),
            Some(&ada.access),
            json!({"base_ids": [base]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ev = say(
        &chat,
        ada,
        &id,
        json!({"content": "What is the refund window?"}),
    )
    .await;
    let done = &event(&ev, "done")["message"];
    assert_eq!(done["sources"][0]["source"], "knowledge", "{done}");
    assert_eq!(done["sources"][0]["title"], "refunds.txt", "{done}");
    let sent = upstream
        .requests()
        .into_iter()
        .rfind(|r| r["model"] == "gpt-upstream")
        .unwrap();
    let system = sent["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("thirty days from delivery"), "{system}");

    // Plugin: an MCP tool published in the other process is offered, called with its
    // progress streamed back, and its result goes upstream.
    let mcp = skein_testkit::mock_mcp::MockMcp::start(None).await;
    let r = content
        .put(
            "/api/v1/admin/plugins/settings",
            Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = content
        .post(
            "/api/v1/admin/plugins",
            Some(&world.root.access),
            json!({"name": "Echo", "kind": "mcp", "server_url": mcp.url}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let plugin = r.json["id"].as_str().unwrap().to_string();
    let r = content
        .put(
            &format!("/api/v1/plugins/{plugin}/preferences"),
            Some(&ada.access),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = new_conversation().await;
    upstream.set_tool_call(Some("slow"), Some(r#"{"seconds": 1}"#));
    let ev = say(&chat, ada, &id, json!({"content": "take your time"})).await;
    upstream.set_tool_call(None, None);
    let names: Vec<&str> = ev.iter().map(|(e, _)| e.as_str()).collect();
    let progress = names.iter().position(|e| *e == "tool_progress");
    let result = names.iter().position(|e| *e == "tool_result");
    assert!(
        matches!((progress, result), (Some(p), Some(r)) if p < r),
        "progress before the result: {names:?}"
    );
    assert_eq!(event(&ev, "tool_progress")["text"], "started");
    assert_eq!(event(&ev, "tool_result")["content"], "done");
    let offered = upstream
        .requests()
        .into_iter()
        .find(|r| r["tools"].is_array())
        .expect("tools offered upstream");
    assert!(
        offered["tools"].to_string().contains("\"slow\""),
        "{offered}"
    );

    // Agent: a conversation started in the other process (the Agent service asks this
    // process's Chat to open it) answers with the assistant's version.
    let r = content
        .post(
            "/api/v1/agents",
            Some(&ada.access),
            json!({"name": "Translator", "system_prompt": "You translate.", "model": "gpt-test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let agent = r.json["id"].as_str().unwrap().to_string();
    let r = content
        .post(
            &format!("/api/v1/agents/{agent}/publish"),
            Some(&ada.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = content
        .post(
            &format!("/api/v1/agents/{agent}/conversations"),
            Some(&ada.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["conversation_id"].as_str().unwrap().to_string();
    assert_eq!(
        chat.get(
            &format!("/api/v1/chat/conversations/{id}"),
            Some(&ada.access)
        )
        .await
        .status,
        StatusCode::OK,
        "the conversation lives in the chat process"
    );
    let ev = say(&chat, ada, &id, json!({"content": "hi"})).await;
    assert_eq!(event(&ev, "done")["message"]["status"], "done", "{ev:?}");
    let sent = upstream.requests().last().unwrap().clone();
    assert_eq!(sent["messages"][0]["content"], "You translate.", "{sent}");
    let stats = content
        .get(&format!("/api/v1/agents/{agent}/stats"), Some(&ada.access))
        .await;
    assert_eq!(stats.json["messages"].as_i64(), Some(1), "{}", stats.text);
}
