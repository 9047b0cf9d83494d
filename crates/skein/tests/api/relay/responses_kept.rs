//! The Responses API's kept state through the real server: a kept response is read back
//! (`GET /v1/responses/{id}`), continued (`previous_response_id`: the upstream is sent the
//! whole conversation, whole or streamed, through any number of turns), listed
//! (`input_items`, paged) and deleted, only by its owner; background responses run after
//! their answer, are billed like any call and can be cancelled (the upstream is cut and what
//! was made is billed); rows past retention or left open by a stopped instance are pruned.

use std::time::Duration;

use super::responses::{balance, settled};
use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::{Price, RelayWorld, Resp, TestApp, Upstream, WorldSpec, on_both_backends};

/// The model clients ask for.
const MODEL: &str = "m-kept";
/// Starting balance.
const BALANCE: i64 = 1_000_000;

async fn world(app: &TestApp) -> RelayWorld {
    WorldSpec::new(Upstream::OpenAi)
        .model(MODEL, Some("up-kept"))
        .price(MODEL, Price::tokens(2_000_000, 6_000_000))
        .balance(BALANCE)
        .build(app)
        .await
}

async fn respond(app: &TestApp, key: &str, body: Value) -> Resp {
    app.send(
        app.client
            .post(app.url("/v1/responses"))
            .bearer_auth(key)
            .json(&body),
    )
    .await
}

async fn fetch(app: &TestApp, key: &str, path: &str) -> Resp {
    app.send(app.client.get(app.url(path)).bearer_auth(key))
        .await
}

/// `(role, text)` of each message the upstream was last sent.
fn sent_turns(w: &RelayWorld) -> Vec<(String, String)> {
    let sent = w.upstream.requests().last().cloned().expect("a request");
    sent["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(""),
                _ => String::new(),
            };
            (m["role"].as_str().unwrap_or("").to_string(), text)
        })
        .collect()
}

fn turns(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(r, t)| (r.to_string(), t.to_string()))
        .collect()
}

/// The `response` of a Responses stream's last event.
fn streamed_response(r: &Resp) -> Value {
    r.text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|e| e["type"] == "response.completed")
        .map(|e| e["response"].clone())
        .next_back()
        .unwrap_or_else(|| panic!("no response.completed in {}", r.text))
}

/// Waits until a kept response is no longer queued or in progress.
async fn settled_response(app: &TestApp, key: &str, id: &str) -> Value {
    for _ in 0..200 {
        let r = fetch(app, key, &format!("/v1/responses/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if !matches!(r.json["status"].as_str(), Some("queued" | "in_progress")) {
            return r.json;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} never finished");
}

on_both_backends! {
    async fn a_kept_response_continues_the_conversation_for_its_owner_only(backend) {
        let app = TestApp::spawn(backend).await;
        let w = world(&app).await;

        // Kept by default; read back exactly as answered.
        let first = respond(&app, &w.key, json!({"model": MODEL, "instructions": "first rules",
            "input": "my name is Ada"})).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        assert_eq!(first.json["store"], true);
        let id1 = first.json["id"].as_str().unwrap().to_string();
        let got = fetch(&app, &w.key, &format!("/v1/responses/{id1}")).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text);
        assert_eq!(got.json, first.json);

        // Continued: the upstream gets the conversation, with only this request's instructions.
        let second = respond(&app, &w.key, json!({"model": MODEL, "instructions": "be brief",
            "previous_response_id": id1,
            "input": [{"role": "user", "content": "what is my name"}]})).await;
        assert_eq!(second.status, StatusCode::OK, "{}", second.text);
        assert_eq!(second.json["previous_response_id"], id1.as_str());
        assert_eq!(sent_turns(&w), turns(&[
            ("system", "be brief"),
            ("user", "my name is Ada"),
            ("assistant", "echo: my name is Ada"),
            ("user", "what is my name"),
        ]));
        let id2 = second.json["id"].as_str().unwrap().to_string();
        // Billed as any call, for the whole conversation sent.
        let items = settled(&app, &w.user, 2).await;
        let mock_prompt = w.upstream.usages().last().unwrap()["prompt_tokens"].as_i64();
        let record = items.iter().find(|i| i["request_id"] == second.header("x-request-id").unwrap()).unwrap();
        assert_eq!(record["prompt_tokens"].as_i64(), mock_prompt, "{record}");

        // Streamed, and continued at once from the stream's response.
        let third = respond(&app, &w.key, json!({"model": MODEL, "stream": true,
            "previous_response_id": id2, "input": "and again"})).await;
        assert_eq!(third.status, StatusCode::OK, "{}", third.text);
        let streamed = streamed_response(&third);
        let id3 = streamed["id"].as_str().unwrap().to_string();
        let fourth = respond(&app, &w.key, json!({"model": MODEL,
            "previous_response_id": id3, "input": "last"})).await;
        assert_eq!(fourth.status, StatusCode::OK, "{}", fourth.text);
        assert_eq!(sent_turns(&w), turns(&[
            ("user", "my name is Ada"),
            ("assistant", "echo: my name is Ada"),
            ("user", "what is my name"),
            ("assistant", "echo: what is my name"),
            ("user", "and again"),
            ("assistant", "echo: and again"),
            ("user", "last"),
        ]));
        let got = fetch(&app, &w.key, &format!("/v1/responses/{id3}")).await;
        assert_eq!(got.json["status"], "completed");
        assert_eq!(got.json["output"], streamed["output"]);

        // Input items: the items the request added, newest first, paged.
        let r = fetch(&app, &w.key, &format!("/v1/responses/{id2}/input_items")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["object"], "list");
        assert_eq!(r.json["data"].as_array().map(Vec::len), Some(1), "{}", r.text);
        assert_eq!(r.json["data"][0]["content"], json!([{"type": "input_text", "text": "what is my name"}]));
        assert!(r.json["data"][0]["id"].as_str().unwrap().starts_with("msg_"));
        let many = respond(&app, &w.key, json!({"model": MODEL, "input": [
            {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
            {"role": "user", "content": "c"}]})).await;
        let many_id = many.json["id"].as_str().unwrap().to_string();
        let page = fetch(&app, &w.key, &format!("/v1/responses/{many_id}/input_items?limit=2")).await;
        let texts = |r: &Resp| r.json["data"].as_array().unwrap().iter()
            .map(|i| i["content"][0]["text"].as_str().unwrap().to_string()).collect::<Vec<_>>();
        assert_eq!(texts(&page), ["c", "b"]);
        assert_eq!(page.json["has_more"], true);
        let last = page.json["last_id"].as_str().unwrap();
        let rest = fetch(&app, &w.key, &format!("/v1/responses/{many_id}/input_items?limit=2&after={last}")).await;
        assert_eq!(texts(&rest), ["a"]);
        assert_eq!(rest.json["has_more"], false);
        let asc = fetch(&app, &w.key, &format!("/v1/responses/{many_id}/input_items?order=asc")).await;
        assert_eq!(texts(&asc), ["a", "b", "c"]);
        for query in ["limit=0", "limit=101", "order=up", "after=msg_nope"] {
            let r = fetch(&app, &w.key, &format!("/v1/responses/{many_id}/input_items?{query}")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        }

        // Another user sees none of it, and cannot continue from it (nothing is sent or billed).
        let (_other, other_key) = app.user_with_key("kept-other").await;
        let calls = w.upstream.requests().len();
        for path in [format!("/v1/responses/{id1}"), format!("/v1/responses/{id1}/input_items")] {
            let r = fetch(&app, &other_key, &path).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
            assert_eq!(r.json["error"]["code"], "response_not_found");
        }
        let r = respond(&app, &other_key, json!({"model": MODEL, "previous_response_id": id1, "input": "steal"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let r = app.send(app.client.delete(app.url(&format!("/v1/responses/{id1}"))).bearer_auth(&other_key)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert_eq!(w.upstream.requests().len(), calls);

        // store: false keeps nothing.
        let unkept = respond(&app, &w.key, json!({"model": MODEL, "store": false, "input": "forget me"})).await;
        assert_eq!(unkept.json["store"], false);
        let id = unkept.json["id"].as_str().unwrap();
        assert_eq!(fetch(&app, &w.key, &format!("/v1/responses/{id}")).await.status, StatusCode::NOT_FOUND);

        // Deleted: gone, and a conversation through it can no longer be continued.
        let r = app.send(app.client.delete(app.url(&format!("/v1/responses/{id1}"))).bearer_auth(&w.key)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json, json!({"id": id1, "object": "response", "deleted": true}));
        assert_eq!(fetch(&app, &w.key, &format!("/v1/responses/{id1}")).await.status, StatusCode::NOT_FOUND);
        let r = app.send(app.client.delete(app.url(&format!("/v1/responses/{id1}"))).bearer_auth(&w.key)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = respond(&app, &w.key, json!({"model": MODEL, "previous_response_id": id3, "input": "x"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        // It names the missing response: the first one, not the one asked for.
        assert!(r.json["error"]["message"].as_str().unwrap().contains(&id1), "{}", r.text);
    }

    async fn a_background_response_runs_after_its_answer_and_can_be_cancelled(backend) {
        let app = TestApp::spawn(backend).await;
        let w = world(&app).await;

        let r = respond(&app, &w.key, json!({"model": MODEL, "background": true,
            "input": "work in the background"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["status"], "queued");
        assert_eq!(r.json["background"], true);
        let id = r.json["id"].as_str().unwrap().to_string();
        let done = settled_response(&app, &w.key, &id).await;
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["id"], id.as_str());
        assert_eq!(done["output"][0]["content"][0]["text"], "echo: work in the background");
        // Billed at the upstream's usage, under the request that asked.
        let u = w.upstream.usages().last().cloned().unwrap();
        let cost = u["prompt_tokens"].as_i64().unwrap() * 2 + u["completion_tokens"].as_i64().unwrap() * 6;
        let items = settled(&app, &w.user, 1).await;
        assert_eq!(items[0]["request_id"], r.header("x-request-id").unwrap());
        assert_eq!(items[0]["cost"].as_i64(), Some(cost), "{}", items[0]);
        assert_eq!(done["usage"]["output_tokens"], u["completion_tokens"]);
        // Cancelling what already ended changes nothing; a foreground response is not
        // cancellable; an unknown one is not found.
        let r = app.post(&format!("/v1/responses/{id}/cancel"), Some(&w.key), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["status"], "completed");
        let fg = respond(&app, &w.key, json!({"model": MODEL, "input": "foreground"})).await;
        let fg_id = fg.json["id"].as_str().unwrap();
        let r = app.post(&format!("/v1/responses/{fg_id}/cancel"), Some(&w.key), json!({})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(r.json["error"]["code"], "not_background");
        let r = app.post("/v1/responses/resp_unknown/cancel", Some(&w.key), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);

        // A slow one, cancelled while it streams: it stays cancelled, the upstream is cut, and
        // only what was made is billed (no hold is left).
        w.upstream.set_reply("one two three four five six seven eight nine ten eleven twelve");
        w.upstream.set_stream_pause(Duration::from_millis(300));
        let r = respond(&app, &w.key, json!({"model": MODEL, "background": true, "input": "slow"})).await;
        let slow = r.json["id"].as_str().unwrap().to_string();
        // It cannot be continued before it ends.
        let early = respond(&app, &w.key, json!({"model": MODEL, "previous_response_id": slow, "input": "x"})).await;
        assert_eq!(early.status, StatusCode::BAD_REQUEST, "{}", early.text);
        assert_eq!(early.json["error"]["code"], "response_in_progress");
        tokio::time::sleep(Duration::from_millis(700)).await;
        let r = app.post(&format!("/v1/responses/{slow}/cancel"), Some(&w.key), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["status"], "cancelled");
        let items = settled(&app, &w.user, 3).await;
        let cut = items.iter().find(|i| i["completion_tokens"].as_i64().is_some_and(|t| t < 12))
            .unwrap_or_else(|| panic!("the cancelled answer was billed whole: {items:?}"));
        assert!(cut["cost"].as_i64().unwrap() > 0, "{cut}");
        let spent: i64 = items.iter().map(|i| i["cost"].as_i64().unwrap()).sum();
        assert_eq!(balance(&app, &w.user).await, BALANCE - spent);
        let got = fetch(&app, &w.key, &format!("/v1/responses/{slow}")).await;
        assert_eq!(got.json["status"], "cancelled", "{}", got.text);
    }

    async fn kept_responses_are_pruned_and_abandoned_ones_failed(backend) {
        let app = TestApp::spawn_with(backend, |c| c.relay.request_log_prune_every_secs = 1).await;
        let w = world(&app).await;
        let kept = respond(&app, &w.key, json!({"model": MODEL, "input": "keep me"})).await;
        let kept_id = kept.json["id"].as_str().unwrap().to_string();
        let user_id = w.user.id.clone();
        let db = skein_db::Db::connect(&app.config.database_url(), 1).await.unwrap();
        let now = skein_core::ids::now_ms();
        let insert = |id: &'static str, status: &'static str, created: i64, updated: i64| {
            let (db, user_id) = (db.clone(), user_id.clone());
            async move {
                skein_db::sqlx::query(
                    "INSERT INTO relay_responses (id, user_id, key_id, previous_id, status, background, input, response, created_at, updated_at) \
                     VALUES ($1, $2, 'k', NULL, $3, 1, '[]', $4, $5, $6)",
                )
                .bind(id)
                .bind(&user_id)
                .bind(status)
                .bind(json!({"id": id, "object": "response", "status": status}).to_string())
                .bind(created)
                .bind(updated)
                .execute(db.pool())
                .await
                .unwrap();
            }
        };
        // An instance ran this one and stopped two minutes ago; this one is past retention.
        insert("resp_abandoned", "in_progress", now - 120_000, now - 120_000).await;
        insert("resp_ancient", "completed", now - 40 * 86_400_000, now - 40 * 86_400_000).await;
        let mut failed = Value::Null;
        for _ in 0..100 {
            let r = fetch(&app, &w.key, "/v1/responses/resp_abandoned").await;
            if r.json["status"] == "failed" {
                failed = r.json;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(failed["status"], "failed", "never failed");
        assert_eq!(failed["error"]["code"], "server_error");
        assert_eq!(fetch(&app, &w.key, "/v1/responses/resp_ancient").await.status, StatusCode::NOT_FOUND);
        // What is within retention stays.
        assert_eq!(fetch(&app, &w.key, &format!("/v1/responses/{kept_id}")).await.status, StatusCode::OK);
    }
}
