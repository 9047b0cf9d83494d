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
use skein_testkit::{Backend, Persona, TestApp, redis_url};

const TOKEN: &str = "internal-token-for-split-tests-0123456789";

/// A free local port for an internal listener: each process must know the other's address
/// before either starts.
fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Two processes on one PostgreSQL and Redis: `first` (with User and Billing, whose internal
/// listener the second calls) and `second` (with the Relay, which the first calls).
async fn two_processes(first: &str, second: &str) -> (TestApp, TestApp) {
    let first_internal = free_port();
    let second_internal = free_port();
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
    let r = users
        .post(
            &format!("/api/v1/admin/billing/users/{}/adjust", ada.id),
            Some(&root.access),
            json!({"amount": 1_000_000, "memo": "test balance"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
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
    let r = relay
        .post("/api/v1/channels", Some(&root.access), json!({
            "type": "openai", "name": "primary", "base_url": upstream.base_url, "keys": [upstream.key],
            "models": ["gpt-test"], "model_mapping": {"gpt-test": "gpt-upstream"}, "priority": 10
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = relay
        .put("/api/v1/admin/pricing/gpt-test", Some(&root.access), json!({
            "input_per_mtok": 2_000_000, "output_per_mtok": 6_000_000, "cache_read_per_mtok": 0, "cache_write_per_mtok": 0, "per_call": 0
        }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let key = relay
        .post("/api/v1/keys", Some(&ada.access), json!({"name": "split"}))
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
    let key = key.json["key"].as_str().unwrap().to_string();

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
    let r = users
        .post(
            &format!("/api/v1/admin/billing/users/{}/adjust", ada.id),
            Some(&root.access),
            json!({"amount": -after_stream, "memo": "empty it"}),
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
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "insufficient_quota", "{}", r.text);
    let r = users
        .post(
            &format!("/api/v1/admin/billing/users/{}/adjust", ada.id),
            Some(&root.access),
            json!({"amount": 1_000_000, "memo": "refill"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

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
    let r = chat
        .post(
            &format!("/api/v1/admin/billing/users/{}/adjust", ada.id),
            Some(&root.access),
            json!({"amount": 1_000_000, "memo": "test balance"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Channels and prices are the relay process's.
    let upstream = MockOpenAi::start("sk-upstream-split").await;
    let r = relay
        .post("/api/v1/channels", Some(&root.access), json!({
            "type": "openai", "name": "primary", "base_url": upstream.base_url, "keys": [upstream.key],
            "models": ["gpt-test"], "model_mapping": {"gpt-test": "gpt-upstream"}, "priority": 10
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = relay
        .put("/api/v1/admin/pricing/gpt-test", Some(&root.access), json!({
            "input_per_mtok": 2_000_000, "output_per_mtok": 6_000_000, "cache_read_per_mtok": 0, "cache_write_per_mtok": 0, "per_call": 0
        }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
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
