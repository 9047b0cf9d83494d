//! The relay end to end: channels and prices set by an admin, a user's key, chat completions
//! (whole and streamed) through a mock OpenAI upstream, failover, refusals, and exact billing.

pub(crate) mod adminlog;
pub(crate) mod audio;
pub(crate) mod endpoints;
pub(crate) mod in_process;
pub(crate) mod keys;
pub(crate) mod pricing;
pub(crate) mod providers;
pub(crate) mod realtime;
pub(crate) mod responses;
pub(crate) mod responses_kept;
pub(crate) mod routing;
pub(crate) mod sdk;
pub(crate) mod vendors;

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_openai::{Fault, MockOpenAi, prompt_tokens, reply_to};
use skein_testkit::{Backend, Persona, RelayWorld, TestApp, Upstream, both_backends, relay_world};

/// Rates used throughout: 2,000,000 per million prompt tokens (2 per token), 6 per completion token.
const INPUT: i64 = 2_000_000;
const OUTPUT: i64 = 6_000_000;

fn cost(messages: &Value) -> i64 {
    let completion = reply_to(messages).split_whitespace().count() as i64;
    prompt_tokens(messages) * 2 + completion * 6
}

/// `POST /v1/chat/completions` with `key`.
pub(crate) async fn chat(app: &TestApp, key: &str, body: Value) -> skein_testkit::Resp {
    app.send(
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body),
    )
    .await
}

/// The balance once every hold is settled or released: the relay settles right after it
/// answers, off the response path, so a test waits for that before reading money.
async fn balance(app: &TestApp, who: &Persona) -> i64 {
    for _ in 0..500 {
        let q = app
            .get("/api/v1/billing/quota", Some(&who.access))
            .await
            .json;
        if q["reserved"] == 0 {
            return q["balance"].as_i64().unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("holds were never settled");
}

/// The balance once `records` requests have their usage records: on SQLite holds live in
/// memory, so `reserved` can read 0 before a stream's settle commits; the record commits with
/// the charge.
async fn balance_after(app: &TestApp, who: &Persona, records: i64) -> i64 {
    for _ in 0..500 {
        let usage = app.get("/api/v1/billing/usage", Some(&who.access)).await;
        if usage.json["total"].as_i64() == Some(records) {
            return balance(app, who).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{records} requests were never settled");
}

both_backends! {
    async fn a_chat_completion_is_relayed_and_billed_exactly(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let messages = json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there relay"}]);
        // A field the relay cannot price is refused before anything is held or sent.
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "messages": messages, "x_unknown": 1})).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_field")), "{}", r.text);
        assert!(s.upstream.requests().is_empty());
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "messages": messages, "temperature": 0.2})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["choices"][0]["message"]["content"], "echo: hello there relay");
        // The upstream got the mapped model, its own key, the client's fields, and the output
        // limit that was held (the model's maximum, as the client set none).
        let sent = &s.upstream.requests()[0];
        assert_eq!(sent["model"], "gpt-upstream");
        assert_eq!(sent["temperature"], 0.2);
        assert_eq!(sent["max_tokens"], 16_384);
        assert_eq!(s.upstream.authorizations()[0], format!("Bearer {}", s.upstream.key));

        let expected = cost(&messages);
        assert_eq!(balance(&app, &s.user).await, 1_000_000 - expected);
        let usage = app.get("/api/v1/billing/usage", Some(&s.user.access)).await;
        let record = &usage.json["items"][0];
        assert_eq!((record["cost"].as_i64(), record["model"].as_str()), (Some(expected), Some("gpt-test")));
        assert_eq!((record["prompt_tokens"].as_i64(), record["completion_tokens"].as_i64()), (Some(5), Some(4)));
        assert!(record["key_id"].as_str().is_some());
        let pricing: Value = serde_json::from_str(record["pricing"].as_str().unwrap()).unwrap();
        assert_eq!((pricing["input_per_mtok"].as_i64(), pricing["output_per_mtok"].as_i64()), (Some(INPUT), Some(OUTPUT)));
        assert_eq!(app.get("/api/v1/billing/quota", Some(&s.user.access)).await.json["reserved"], 0);

        let models = app.send(app.client.get(app.url("/v1/models")).bearer_auth(&s.key)).await;
        assert_eq!(models.json["data"][0]["id"], "gpt-test");
        let _ = &s.root;
    }

    async fn a_stream_is_relayed_and_billed_from_upstream_usage(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let messages = json!([{"role": "user", "content": "stream me some words please"}]);
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "messages": messages, "stream": true})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let events: Vec<&str> = r.text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(*events.last().unwrap(), "data: [DONE]");
        let text: String = events.iter().filter_map(|e| e.strip_prefix("data: ")).filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .map(|v| v["choices"][0]["delta"]["content"].as_str().unwrap_or("").to_string()).collect();
        assert_eq!(text, "echo: stream me some words please");
        assert!(!r.text.contains("\"usage\""), "the client did not ask for usage: {}", r.text);
        // Skein asked the upstream for usage on the client's behalf.
        assert_eq!(s.upstream.requests()[0]["stream_options"]["include_usage"], true);
        assert_eq!(balance_after(&app, &s.user, 1).await, 1_000_000 - cost(&messages));

        let with_usage = chat(&app, &s.key, json!({"model": "gpt-test", "messages": messages, "stream": true,
            "stream_options": {"include_usage": true}})).await;
        let usage_event = with_usage.text.split("\n\n").find(|e| e.contains("\"usage\":{")).expect("a usage chunk");
        let v: Value = serde_json::from_str(usage_event.trim_start_matches("data: ")).unwrap();
        assert_eq!(v["choices"], json!([]));
        assert_eq!(v["usage"]["prompt_tokens"], 5);
    }

    async fn failover_skips_a_failing_channel(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let (backup, backup_id) = s.add_backup(&app, "sk-upstream-backup", &["gpt-test"], 0).await;
        for fault in [Fault::Status(503), Fault::Status(429)] {
            s.upstream.fail_next(fault);
            let messages = json!([{"role": "user", "content": "are you there"}]);
            let r = chat(&app, &s.key, json!({"model": "gpt-test", "messages": messages})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert_eq!(r.json["choices"][0]["message"]["content"], "echo: are you there");
        }
        assert_eq!(backup.requests().len(), 2, "the backup served both");
        assert_eq!(backup.requests()[0]["model"], "gpt-test", "no mapping on the backup");
        balance(&app, &s.user).await;
        let usage = app.get("/api/v1/billing/usage", Some(&s.user.access)).await;
        assert_eq!(usage.json["items"][0]["channel_id"], backup_id.as_str());

        // Every channel failing: 502, and nothing charged.
        let before = balance(&app, &s.user).await;
        s.upstream.fail_next(Fault::Status(500));
        backup.fail_next(Fault::Status(502));
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        assert_eq!(r.json["error"]["code"], "upstream_unavailable");
        // Which channels failed, and how, is for the log: the client hears neither.
        assert!(!r.text.contains("primary") && !r.text.contains("backup") && !r.text.contains("127.0.0.1"), "{}", r.text);
        assert_eq!(balance(&app, &s.user).await, before);
        assert_eq!(app.get("/api/v1/billing/quota", Some(&s.user.access)).await.json["reserved"], 0);
    }

    async fn refusals_cost_nothing(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let before = balance(&app, &s.user).await;
        // The upstream's own 400 reaches the client unchanged.
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "messages": []})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.json["error"]["type"], "invalid_request_error");
        // A model no channel serves is not found, whether or not it has a price (one rule on
        // every route, checked before the price).
        let unknown = chat(&app, &s.key, json!({"model": "gpt-nope", "messages": [{"role": "user", "content": "x"}]})).await;
        assert_eq!((unknown.status, unknown.json["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("model_not_found")));
        let unknown = app.send(app.client.post(app.url("/v1/embeddings")).bearer_auth(&s.key)
            .json(&json!({"model": "gpt-nope", "input": "x"}))).await;
        assert_eq!((unknown.status, unknown.json["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("model_not_found")));
        app.put("/api/v1/admin/pricing/gpt-unrouted", Some(&s.root.access), json!({
            "input_per_mtok": 1, "output_per_mtok": 1, "cache_read_per_mtok": 0, "cache_write_per_mtok": 0, "per_call": 0})).await;
        let unrouted = chat(&app, &s.key, json!({"model": "gpt-unrouted", "messages": [{"role": "user", "content": "x"}]})).await;
        assert_eq!((unrouted.status, unrouted.json["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("model_not_found")));
        let narrow = app.api_key_with(&s.user, "narrow", json!({"allowed_models": ["other"]})).await;
        let r = chat(&app, &narrow, json!({"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]})).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("model_not_allowed")));
        let malformed = app.send(app.client.post(app.url("/v1/chat/completions")).bearer_auth(&s.key).header("content-type", "application/json").body("{nope")).await;
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
        assert_eq!(malformed.json["error"]["type"], "invalid_request_error");
        assert_eq!(balance(&app, &s.user).await, before, "refused requests are free");
        assert_eq!(s.upstream.requests().len(), 1, "only the first request reached the upstream");

        // A key with a tiny quota limit is refused before the upstream is called.
        let tiny = app.post("/api/v1/keys", Some(&s.user.access), json!({"name": "tiny", "quota_limit": 10})).await;
        let r = chat(&app, tiny.json["key"].as_str().unwrap(), json!({"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]})).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::PAYMENT_REQUIRED, Some("key_quota_exceeded")));
        assert_eq!(s.upstream.requests().len(), 1);
    }

    async fn a_stream_that_dies_is_billed_for_what_was_delivered(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        s.upstream.fail_next(Fault::DieAfter(2));
        let messages = json!([{"role": "user", "content": "one two three four five six"}]);
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "messages": messages, "stream": true})).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text.contains("\"code\":\"upstream_error\""), "the client is told the stream broke: {}", r.text);
        assert!(!r.text.contains("[DONE]"));
        let after = balance_after(&app, &s.user, 1).await;
        let usage = app.get("/api/v1/billing/usage", Some(&s.user.access)).await;
        let record = &usage.json["items"][0];
        assert_eq!(record["status"], "partial");
        let charged = record["cost"].as_i64().unwrap();
        assert!(charged > 0, "the delivered part is billed");
        assert!(charged < cost(&messages) * 4, "but not the whole reservation: {charged}");
        assert_eq!(after, 1_000_000 - charged);
    }
}

#[tokio::test]
async fn channel_admin_validates_and_never_shows_keys() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let root = app.root().await;
    let ada = app.register("ada").await;
    let ok = json!({"type": "openai", "name": "c", "keys": ["sk-secret-one", "sk-secret-two"], "models": ["m"],
        "headers": {"x-org": "secret-org"}});
    assert_eq!(
        app.post("/api/v1/channels", Some(&ada.access), ok.clone())
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    for (field, value) in [
        ("type", json!("smoke-signal")),
        ("keys", json!([])),
        ("models", json!([])),
        ("base_url", json!("ftp://x")),
        ("groups", json!(["vip"])),
        ("priority", json!(5000)),
        ("weight", json!(0)),
        ("headers", json!({"bad header": "x"})),
    ] {
        let mut body = ok.clone();
        body[field] = value;
        let r = app.post("/api/v1/channels", Some(&root.access), body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            r.text
        );
    }
    let azure = app
        .post(
            "/api/v1/channels",
            Some(&root.access),
            json!({"type": "azure", "name": "a", "keys": ["k"], "models": ["m"]}),
        )
        .await;
    // Azure has no default base URL: each resource has its own.
    assert_eq!(azure.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(azure.json["error"]["details"]["field"], "base_url");
    let r = app.post("/api/v1/channels", Some(&root.access), ok).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json["base_url"], "https://api.openai.com");
    assert_eq!(r.json["header_names"], json!(["x-org"]));
    let id = r.json["id"].as_str().unwrap().to_string();
    let listed = app.get("/api/v1/channels", Some(&root.access)).await;
    for text in [&r.text, &listed.text] {
        assert!(
            !text.contains("sk-secret") && !text.contains("secret-org"),
            "a secret leaked: {text}"
        );
    }
    let patched = app
        .patch(
            &format!("/api/v1/channels/{id}"),
            Some(&root.access),
            json!({"keys": ["sk-new"], "weight": 3}),
        )
        .await;
    assert_eq!(
        (
            patched.json["key_count"].as_i64(),
            patched.json["weight"].as_i64()
        ),
        (Some(1), Some(3))
    );
    assert_eq!(
        patched.json["header_names"],
        json!(["x-org"]),
        "headers kept"
    );
    // The database holds no key in the clear.
    let db = std::fs::read(app.config.data_dir.join("skein.db")).unwrap_or_default();
    let wal = std::fs::read(app.config.data_dir.join("skein.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(6).any(|w| w == b"sk-new"),
            "an upstream key is stored in the clear"
        );
    }
    assert_eq!(
        app.call(
            reqwest::Method::DELETE,
            &format!("/api/v1/channels/{id}"),
            Some(&root.access),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/v1/channels/{id}"), Some(&root.access))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_channel_test_reports_latency_and_failure() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let s = relay_world(&app, Upstream::OpenAi).await;
    let id = app.get("/api/v1/channels", Some(&s.root.access)).await.json[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .post(
            &format!("/api/v1/channels/{id}/test"),
            Some(&s.root.access),
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.json["ok"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{}",
        r.text
    );
    assert!(r.json["latency_ms"].as_i64().is_some());
    s.upstream.fail_next(Fault::Status(401));
    let r = app
        .post(
            &format!("/api/v1/channels/{id}/test"),
            Some(&s.root.access),
            json!({}),
        )
        .await;
    assert_eq!(r.json["ok"], false);
    assert!(r.json["message"].as_str().unwrap().contains("401"));
    let channel = app
        .get(&format!("/api/v1/channels/{id}"), Some(&s.root.access))
        .await;
    assert!(
        channel.json["last_test_result"]
            .as_str()
            .unwrap()
            .contains("401")
    );
}

async fn add_backup(app: &TestApp, s: &RelayWorld) -> (MockOpenAi, String) {
    s.add_backup(app, "sk-upstream-backup", &["gpt-test"], 0)
        .await
}

async fn primary_id(app: &TestApp, s: &RelayWorld) -> String {
    let list = app.get("/api/v1/channels", Some(&s.root.access)).await;
    list.json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "primary")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn repeated_failures_open_the_circuit_and_traffic_moves_away() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let s = relay_world(&app, Upstream::OpenAi).await;
    let (backup, _) = add_backup(&app, &s).await;
    let primary = primary_id(&app, &s).await;
    for _ in 0..5 {
        s.upstream.fail_next(Fault::Status(503));
    }
    let ask = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..5 {
        assert_eq!(chat(&app, &s.key, ask.clone()).await.status, StatusCode::OK);
    }
    assert_eq!(s.upstream.requests().len(), 5);
    let channel = app
        .get(&format!("/api/v1/channels/{primary}"), Some(&s.root.access))
        .await;
    assert_eq!(channel.json["circuit"], "open", "{}", channel.text);
    for _ in 0..3 {
        assert_eq!(chat(&app, &s.key, ask.clone()).await.status, StatusCode::OK);
    }
    assert_eq!(
        s.upstream.requests().len(),
        5,
        "an open circuit keeps traffic off the primary"
    );
    assert_eq!(backup.requests().len(), 8);
}

#[tokio::test]
async fn a_rejected_upstream_key_disables_the_channel_until_a_probe_succeeds() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.relay.probe_interval_secs = 1).await;
    let s = relay_world(&app, Upstream::OpenAi).await;
    let (backup, _) = add_backup(&app, &s).await;
    let primary = primary_id(&app, &s).await;
    // One request refused as unauthorised while the key still works (a model the account
    // may not use, say): the channel stays, the backup answers that one request.
    s.upstream.fail_next(Fault::Status(403));
    let ask = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]});
    let r = chat(&app, &s.key, ask.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "the backup answered: {}", r.text);
    let channel = app
        .get(&format!("/api/v1/channels/{primary}"), Some(&s.root.access))
        .await;
    assert_eq!(
        channel.json["status"], "enabled",
        "one request took a channel out"
    );
    assert_eq!(backup.requests().len(), 1);
    // The key is revoked at the vendor: confirmed, the channel is disabled.
    s.upstream.revoke_key(true);
    let r = chat(&app, &s.key, ask.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "the backup answered: {}", r.text);
    let channel = app
        .get(&format!("/api/v1/channels/{primary}"), Some(&s.root.access))
        .await;
    assert_eq!(channel.json["status"], "auto_disabled");
    assert!(
        channel.json["status_reason"]
            .as_str()
            .unwrap()
            .contains("rejected")
    );
    assert_eq!(chat(&app, &s.key, ask.clone()).await.status, StatusCode::OK);
    assert_eq!(backup.requests().len(), 3);
    // The upstream works again: the prober notices and re-enables the channel.
    s.upstream.revoke_key(false);
    let mut enabled = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let c = app
            .get(&format!("/api/v1/channels/{primary}"), Some(&s.root.access))
            .await;
        if c.json["status"] == "enabled" {
            enabled = true;
            break;
        }
    }
    assert!(enabled, "the channel was never re-enabled");
    // The prober writes the status, then reloads the routing table: a request in between
    // still goes to the backup. Traffic must be back on the primary right after that.
    let mut on_primary = false;
    for _ in 0..20 {
        let before = backup.requests().len();
        assert_eq!(chat(&app, &s.key, ask.clone()).await.status, StatusCode::OK);
        if backup.requests().len() == before {
            on_primary = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(on_primary, "traffic is back on the primary");
}

#[tokio::test]
async fn anthropic_messages_are_converted_both_ways_and_billed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let s = relay_world(&app, Upstream::OpenAi).await;
    let body = json!({"model": "gpt-test", "max_tokens": 50, "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "convert me"}]}]});
    let r = app
        .send(
            app.client
                .post(app.url("/v1/messages"))
                .header("x-api-key", &s.key)
                .header("anthropic-version", "2099-01-01")
                .json(&body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["type"], "message");
    assert_eq!(
        r.json["content"][0],
        json!({"type": "text", "text": "echo: convert me"})
    );
    assert_eq!(r.json["stop_reason"], "end_turn");
    let sent = &s.upstream.requests()[0];
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(sent["max_tokens"], 50);
    let openai_shape = json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "convert me"}]);
    assert_eq!(
        balance(&app, &s.user).await,
        1_000_000 - cost(&openai_shape)
    );

    let unsupported = app.send(app.client.post(app.url("/v1/messages")).header("x-api-key", &s.key).json(&json!({
        "model": "gpt-test", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}))).await;
    assert_eq!(unsupported.status, StatusCode::BAD_REQUEST);
    assert_eq!(unsupported.json["type"], "error");
    assert_eq!(unsupported.json["error"]["type"], "invalid_request_error");
    assert!(
        unsupported.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("document")
    );
}

#[tokio::test]
async fn a_keys_tokens_per_minute_limit_is_enforced() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let s = relay_world(&app, Upstream::OpenAi).await;
    let r = app
        .post(
            "/api/v1/keys",
            Some(&s.user.access),
            json!({"name": "tpm", "tpm_limit": 5}),
        )
        .await;
    let key = r.json["key"].as_str().unwrap().to_string();
    // 2 prompt words + 3 reply words ("echo: hi there") use the whole 5-token minute.
    let ask = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi there"}]});
    assert_eq!(chat(&app, &key, ask.clone()).await.status, StatusCode::OK);
    balance(&app, &s.user).await;
    let limited = chat(&app, &key, ask.clone()).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    assert_eq!(limited.json["error"]["code"], "tokens_per_minute_exceeded");
    assert_eq!(limited.json["error"]["type"], "rate_limit_error");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(
        s.upstream.requests().len(),
        1,
        "the limited request never reached the upstream"
    );
    // Other keys of the same user are not affected.
    assert_eq!(chat(&app, &s.key, ask).await.status, StatusCode::OK);
}

#[tokio::test]
async fn gemini_generate_content_is_converted_both_ways_and_billed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let s = relay_world(&app, Upstream::OpenAi).await;
    let body = json!({"systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [{"text": "gemini says hi"}]}], "generationConfig": {"maxOutputTokens": 30}});
    let url = |action: &str| app.url(&format!("/v1beta/models/gpt-test:{action}"));
    let r = app
        .send(
            app.client
                .post(url("generateContent"))
                .header("x-goog-api-key", &s.key)
                .json(&body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json["candidates"][0]["content"]["parts"][0]["text"],
        "echo: gemini says hi"
    );
    assert_eq!(r.json["candidates"][0]["finishReason"], "STOP");
    assert_eq!(r.json["usageMetadata"]["promptTokenCount"], 5);
    let openai_shape = json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "gemini says hi"}]);
    assert_eq!(
        balance(&app, &s.user).await,
        1_000_000 - cost(&openai_shape)
    );

    let sse = app
        .send(
            app.client
                .post(format!(
                    "{}?alt=sse&key={}",
                    url("streamGenerateContent"),
                    s.key
                ))
                .json(&body),
        )
        .await;
    assert_eq!(sse.status, StatusCode::OK);
    let items: Vec<Value> = sse
        .text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = items
        .iter()
        .filter_map(|i| i["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "echo: gemini says hi");
    assert_eq!(
        items.last().unwrap()["usageMetadata"]["candidatesTokenCount"],
        4
    );

    let array = app
        .send(
            app.client
                .post(url("streamGenerateContent"))
                .header("x-goog-api-key", &s.key)
                .json(&body),
        )
        .await;
    assert_eq!(array.header("content-type"), Some("application/json"));
    let items: Vec<Value> = serde_json::from_str(&array.text).expect("one JSON array");
    let text: String = items
        .iter()
        .filter_map(|i| i["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "echo: gemini says hi");

    let pdf = json!({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "application/pdf", "data": "x"}}]}]});
    let refused = app
        .send(
            app.client
                .post(url("generateContent"))
                .header("x-goog-api-key", &s.key)
                .json(&pdf),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(refused.json["error"]["code"], 400);
    let unknown = app
        .send(
            app.client
                .post(url("countTokens"))
                .header("x-goog-api-key", &s.key)
                .json(&body),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json["error"]["status"], "NOT_FOUND");
}

both_backends! {
    async fn a_channels_parameter_overrides_reach_the_upstream(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let channels = app.get("/api/v1/channels", Some(&s.root.access)).await;
        let id = channels.json[0]["id"].as_str().unwrap().to_string();
        let r = app.patch(&format!("/api/v1/channels/{id}"), Some(&s.root.access), json!({"param_overrides": {"temperature": 0, "seed": 7}})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["param_overrides"], json!({"temperature": 0, "seed": 7}));
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "temperature": 0.9, "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let sent = s.upstream.requests().last().unwrap().clone();
        assert_eq!((sent["temperature"].as_i64(), sent["seed"].as_i64()), (Some(0), Some(7)), "{sent}");
        assert_eq!(sent["model"], "gpt-upstream");

        // The relay's own fields cannot be overridden; `{}` clears.
        let r = app.patch(&format!("/api/v1/channels/{id}"), Some(&s.root.access), json!({"param_overrides": {"stream": true}})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let r = app.patch(&format!("/api/v1/channels/{id}"), Some(&s.root.access), json!({"param_overrides": {}})).await;
        assert_eq!(r.json["param_overrides"], json!({}));
        chat(&app, &s.key, json!({"model": "gpt-test", "temperature": 0.9, "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(s.upstream.requests().last().unwrap()["temperature"], 0.9);
    }
}

both_backends! {
    async fn moving_a_channel_to_another_host_needs_its_keys_again(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let id = primary_id(&app, &s).await;
        let elsewhere = MockOpenAi::start("sk-attacker-host").await;
        // base_url or type changed without keys: refused, and the channel stays where it was.
        for change in [json!({"base_url": elsewhere.base_url}), json!({"type": "anthropic"})] {
            let r = app.patch(&format!("/api/v1/channels/{id}"), Some(&s.root.access), change).await;
            assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("keys_required")), "{}", r.text);
        }
        let r = app.get(&format!("/api/v1/channels/{id}"), Some(&s.root.access)).await;
        assert_eq!((r.json["base_url"].as_str(), r.json["type"].as_str()), (Some(s.upstream.base_url.as_str()), Some("openai")));
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(elsewhere.requests().is_empty(), "the other host was called");
        assert!(elsewhere.authorizations().iter().all(|a| !a.contains(&s.upstream.key)), "the key reached another host");
        // The same base_url again is no move.
        let r = app.patch(&format!("/api/v1/channels/{id}"), Some(&s.root.access), json!({"base_url": format!("{}/", s.upstream.base_url)})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        // Extra headers may carry credentials too: a move needs them again (`{}` drops them).
        let r = app.patch(&format!("/api/v1/channels/{id}"), Some(&s.root.access), json!({"headers": {"x-gateway-token": "tok-for-first-host"}})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = app.patch(&format!("/api/v1/channels/{id}"), Some(&s.root.access),
            json!({"base_url": elsewhere.base_url, "keys": [elsewhere.key]})).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("headers_required")), "{}", r.text);
        // With keys (and the headers restated) the move works.
        let r = app.patch(&format!("/api/v1/channels/{id}"), Some(&s.root.access),
            json!({"base_url": elsewhere.base_url, "keys": [elsewhere.key], "headers": {}})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["base_url"].as_str(), Some(elsewhere.base_url.as_str()));
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(elsewhere.authorizations(), vec![format!("Bearer {}", elsewhere.key)]);
        assert!(elsewhere.header_values("x-gateway-token").iter().all(String::is_empty), "the first host's header moved");
    }
}
