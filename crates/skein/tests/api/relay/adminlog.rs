//! The admin request log and channel statistics: every relayed request — answered, failed on
//! every channel, or refused — with its routing decisions and upstream attempts in order,
//! visible to admins only, filterable, paged by cursor, and pruned to its retention.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_openai::Fault;
use skein_testkit::{Persona, TestApp, Upstream, both_backends, relay_world};

use crate::relay::chat;

/// The log's rows matching `query`, once there are `n` of them (rows are written in batches
/// off the request path, so a test waits for them).
async fn rows(app: &TestApp, admin: &Persona, query: &str, n: usize) -> Vec<Value> {
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = app
            .get(
                &format!("/api/v1/admin/requests?{query}"),
                Some(&admin.access),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let items = r.json["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return items;
        }
        last = r.json;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{n} rows never appeared for {query}: {last}");
}

async fn detail(app: &TestApp, admin: &Persona, id: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/admin/requests/{id}"), Some(&admin.access))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

fn ask(text: &str) -> Value {
    json!({"model": "gpt-test", "messages": [{"role": "user", "content": text}]})
}

both_backends! {
    async fn failover_attempts_are_recorded_in_order(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let (_backup, backup_id) = s.add_backup(&app, "sk-upstream-backup", &["gpt-test"], 0).await;

        // The primary fails, the backup answers.
        s.upstream.fail_next(Fault::Status(503));
        let r = chat(&app, &s.key, ask("a very private prompt")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let items = rows(&app, &s.root, "", 1).await;
        let row = &items[0];
        assert_eq!(row["status"], "ok", "{row}");
        assert_eq!(row["user_id"], s.user.id.as_str());
        assert!(row["key_id"].is_string(), "{row}");
        assert_eq!(row["model"], "gpt-test");
        assert_eq!(row["attempt_count"], 2);
        assert_eq!(row["channel_id"], backup_id.as_str());
        assert_eq!(row["channel_name"], "backup");
        assert_eq!(row["http_status"], 200);
        assert_eq!(row["request_id"], r.header("x-request-id").unwrap());
        let d = detail(&app, &s.root, row["id"].as_str().unwrap()).await;
        let attempts = d["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "{d}");
        assert_eq!(attempts[0]["channel_id"], s.channel_id.as_str());
        assert_eq!(attempts[0]["channel_name"], "primary");
        assert_eq!(attempts[0]["outcome"], "retry");
        assert_eq!(attempts[0]["http_status"], 503);
        assert_eq!(attempts[0]["cost"], 0);
        assert_eq!(attempts[1]["channel_id"], backup_id.as_str());
        assert_eq!(attempts[1]["outcome"], "ok");
        assert!(attempts[1]["latency_ms"].is_i64() && attempts[1]["ttfb_ms"].is_i64(), "{d}");
        // The charge in the log is the charge on the user's usage record.
        let usage = app.get("/api/v1/billing/usage", Some(&s.user.access)).await;
        let cost = usage.json["items"][0]["cost"].as_i64().unwrap();
        assert!(cost > 0);
        assert_eq!(d["request"]["cost"], cost);
        assert_eq!(attempts[1]["cost"], cost);
        assert_eq!(d["routing"]["group"], "default");
        let candidates: Vec<&str> = d["routing"]["candidates"].as_array().unwrap().iter()
            .map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(candidates, ["primary", "backup"]);
        // Never the prompt, the answer or an upstream key.
        let text = d.to_string();
        for secret in ["very private", "echo:", "sk-upstream"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }

        // Every channel failing is a row too, with both attempts.
        s.upstream.fail_next(Fault::Status(500));
        _backup.fail_next(Fault::Status(502));
        let r = chat(&app, &s.key, ask("hi")).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        let items = rows(&app, &s.root, "status=error", 1).await;
        assert_eq!(items[0]["detail"], "upstream_unavailable");
        assert_eq!(items[0]["http_status"], 502);
        assert_eq!(items[0]["cost"], 0);
        let d = detail(&app, &s.root, items[0]["id"].as_str().unwrap()).await;
        let outcomes: Vec<(&str, i64)> = d["attempts"].as_array().unwrap().iter()
            .map(|a| (a["channel_name"].as_str().unwrap(), a["http_status"].as_i64().unwrap())).collect();
        assert_eq!(outcomes, [("primary", 500), ("backup", 502)]);

        // An upstream's own refusal: a row with the status and error type, never its message.
        s.upstream.fail_next(Fault::Status(400));
        let r = chat(&app, &s.key, ask("refuse me")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        let items = rows(&app, &s.root, "status=refused", 1).await;
        assert_eq!(items[0]["detail"], "upstream_refused");
        assert_eq!(items[0]["http_status"], 400);
        let d = detail(&app, &s.root, items[0]["id"].as_str().unwrap()).await;
        assert_eq!(d["attempts"][0]["outcome"], "refused");
        assert_eq!(d["attempts"][0]["http_status"], 400);
        assert!(!d.to_string().contains("refuse me"), "{d}");

        // The channel list shows the last failure and the breaker at once.
        let channel = app.get(&format!("/api/v1/channels/{}", s.channel_id), Some(&s.root.access)).await;
        assert_eq!(channel.json["circuit"], "closed");
        assert!(channel.json["last_error"].as_str().unwrap().contains("500"), "{}", channel.text);
        assert!(channel.json["last_error_at"].is_string());

        // Statistics count each channel's attempts.
        let stats = app.get("/api/v1/admin/requests/channel-stats", Some(&s.root.access)).await;
        assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
        let of = |name: &str| stats.json["channels"].as_array().unwrap().iter()
            .find(|c| c["channel_name"] == name).cloned().unwrap_or_else(|| panic!("{name}: {}", stats.text));
        let primary = of("primary");
        assert_eq!(primary["totals"]["requests"], 3, "{primary}");
        assert_eq!(primary["totals"]["errors"], 3, "{primary}");
        let backup = of("backup");
        assert_eq!(backup["totals"]["requests"], 2, "{backup}");
        assert_eq!(backup["totals"]["errors"], 1, "{backup}");
        assert_eq!(backup["totals"]["cost"], cost);
        assert!(backup["totals"]["latency_avg_ms"].is_i64(), "{backup}");
        // One answered attempt: its latency is both the median and the average.
        assert_eq!(backup["totals"]["latency_p50_ms"], backup["totals"]["latency_avg_ms"], "{backup}");
        assert_eq!(backup["days"].as_array().unwrap().len(), 1);
        assert_eq!(backup["days"][0]["requests"], 2);
    }

    async fn only_admins_see_the_log(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let r = chat(&app, &s.key, ask("mine")).await;
        assert_eq!(r.status, StatusCode::OK);
        let admin = app.register("boss").await;
        let r = app.patch(&format!("/api/v1/admin/users/{}", admin.id), Some(&s.root.access), json!({"role": "admin"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let admin = app.login("boss", &admin.password).await;
        // Another admin sees ada's request; ada and another user see nothing, not even a count.
        let items = rows(&app, &admin, "", 1).await;
        let id = items[0]["id"].as_str().unwrap();
        assert_eq!(items[0]["user_id"], s.user.id.as_str());
        let bob = app.register("bob").await;
        for who in [&s.user, &bob] {
            for path in [
                "/api/v1/admin/requests".to_string(),
                format!("/api/v1/admin/requests/{id}"),
                "/api/v1/admin/requests/channel-stats".to_string(),
            ] {
                let r = app.get(&path, Some(&who.access)).await;
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
                assert!(!r.text.contains(&s.user.id), "{}", r.text);
            }
            let r = app.post("/api/v1/admin/requests/prune", Some(&who.access), json!({"older_than_days": 0})).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN);
        }
        // API keys are not admin credentials either.
        let r = app.send(app.client.get(app.url("/api/v1/admin/requests")).bearer_auth(&s.key)).await;
        assert!(r.status == StatusCode::FORBIDDEN || r.status == StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_eq!(app.get("/api/v1/admin/requests", None).await.status, StatusCode::UNAUTHORIZED);
        // Unknown ids are 404 alike.
        let r = app.get("/api/v1/admin/requests/0190a0a0-0000-7000-8000-000000000000", Some(&admin.access)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.get("/api/v1/admin/requests/nope", Some(&admin.access)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }

    async fn filters_and_cursor_pages_work(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let (backup, backup_id) = s.add_backup(&app, "sk-upstream-backup", &["gpt-test", "gpt-other"], 0).await;
        app.set_price(&s.root, "gpt-other", skein_testkit::Price::tokens(1_000_000, 1_000_000)).await;
        let bob = app.register("bob").await;
        app.fund(&s.root, &bob, 1_000_000).await;
        let bob_key = app.api_key(&bob, "bob").await;

        assert_eq!(chat(&app, &s.key, ask("one")).await.status, StatusCode::OK);
        assert_eq!(chat(&app, &bob_key, ask("two")).await.status, StatusCode::OK);
        let other = json!({"model": "gpt-other", "messages": [{"role": "user", "content": "three"}]});
        assert_eq!(chat(&app, &s.key, other).await.status, StatusCode::OK);
        s.upstream.fail_next(Fault::Status(500));
        backup.fail_next(Fault::Status(500));
        assert_eq!(chat(&app, &bob_key, ask("four")).await.status, StatusCode::BAD_GATEWAY);
        let all = rows(&app, &s.root, "", 4).await;
        assert_eq!(all.len(), 4);

        let ada_rows = rows(&app, &s.root, &format!("user_id={}", s.user.id), 2).await;
        assert_eq!(ada_rows.len(), 2);
        assert!(ada_rows.iter().all(|r| r["user_id"] == s.user.id.as_str()));
        let key_id = ada_rows[0]["key_id"].as_str().unwrap();
        assert_eq!(rows(&app, &s.root, &format!("key_id={key_id}"), 2).await.len(), 2);
        let other_rows = rows(&app, &s.root, "model=gpt-other", 1).await;
        assert_eq!(other_rows.len(), 1);
        assert_eq!(other_rows[0]["channel_id"], backup_id.as_str());
        // A channel filter finds every request that tried the channel, served or not.
        let on_backup = rows(&app, &s.root, &format!("channel_id={backup_id}"), 2).await;
        assert_eq!(on_backup.len(), 2, "{on_backup:?}");
        let errors = rows(&app, &s.root, "status=error", 1).await;
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["user_id"], bob.id.as_str());
        assert_eq!(rows(&app, &s.root, "status=ok", 3).await.len(), 3);
        let future = app.get("/api/v1/admin/requests?from=2999-01-01T00:00:00Z", Some(&s.root.access)).await;
        assert_eq!(future.json["items"], json!([]));
        let past = app.get("/api/v1/admin/requests?to=2000-01-01T00:00:00Z", Some(&s.root.access)).await;
        assert_eq!(past.json["items"], json!([]));

        // Pages of one, newest first, each row once.
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let r = app.get(&format!("/api/v1/admin/requests?limit=1&cursor={cursor}"), Some(&s.root.access)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            seen.extend(r.json["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()));
            match r.json["next_cursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => break,
            }
        }
        let expected: Vec<String> = all.iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(seen, expected);

        // Bad filters are clear 422s in both languages.
        for (query, field) in [("status=maybe", "status"), ("cursor=x", "cursor"), ("from=yesterday", "from"), ("limit=0", "limit")] {
            let r = app.get(&format!("/api/v1/admin/requests?{query}"), Some(&s.root.access)).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {}", r.text);
            assert_eq!(r.json["error"]["details"]["field"], field);
        }
        let zh = app.send(app.client.get(app.url("/api/v1/admin/requests?status=maybe"))
            .bearer_auth(&s.root.access).header("accept-language", "zh-CN")).await;
        assert!(zh.json["error"]["message"].as_str().unwrap().contains("必须"), "{}", zh.text);
        let r = app.get("/api/v1/admin/requests/channel-stats?from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", Some(&s.root.access)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn retention_pruning_removes_old_rows(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        assert_eq!(chat(&app, &s.key, ask("one")).await.status, StatusCode::OK);
        assert_eq!(chat(&app, &s.key, ask("two")).await.status, StatusCode::OK);
        rows(&app, &s.root, "", 2).await;
        // Nothing is a day old yet.
        let r = app.post("/api/v1/admin/requests/prune", Some(&s.root.access), json!({"older_than_days": 1})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["removed"], 0);
        assert_eq!(rows(&app, &s.root, "", 2).await.len(), 2);
        let r = app.post("/api/v1/admin/requests/prune", Some(&s.root.access), json!({"older_than_days": 4000})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

        // The background task prunes to the configured retention: another instance of this
        // deployment keeping no history removes these rows when it starts.
        let pruner = app.sibling_services("all", |c| {
            c.relay.request_log_retention_days = 0;
            c.relay.request_log_prune_every_secs = 1;
        }).await;
        for _ in 0..200 {
            let r = app.get("/api/v1/admin/requests", Some(&s.root.access)).await;
            if r.json["items"] == json!([]) {
                let stats = app.get("/api/v1/admin/requests/channel-stats", Some(&s.root.access)).await;
                assert_eq!(stats.json["channels"], json!([]), "attempts go with their requests");
                drop(pruner);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the retention task never pruned the log");
    }

    async fn channel_tools_choose_the_test_model_and_fetch_models(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let id = &s.channel_id;
        let r = app.post(&format!("/api/v1/channels/{id}/test?model=gpt-test"), Some(&s.root.access), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["ok"], true, "{}", r.text);
        assert_eq!(s.upstream.requests().last().unwrap()["model"], "gpt-upstream", "mapped like traffic");
        let r = app.post(&format!("/api/v1/channels/{id}/test?model=not-served"), Some(&s.root.access), json!({})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.json["error"]["details"]["field"], "model");

        // Models of an account before it is a channel: the key is used once and kept nowhere.
        let r = app.post("/api/v1/channels/fetch-models", Some(&s.root.access),
            json!({"type": "openai", "base_url": s.upstream.base_url, "keys": [s.upstream.key]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.json["models"].as_array().is_some_and(|m| !m.is_empty()), "{}", r.text);
        let r = app.post("/api/v1/channels/fetch-models", Some(&s.root.access),
            json!({"type": "openai", "base_url": s.upstream.base_url, "keys": ["sk-wrong"]})).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        assert!(!r.text.contains("sk-wrong"), "{}", r.text);
        let r = app.post("/api/v1/channels/fetch-models", Some(&s.root.access),
            json!({"type": "nope", "keys": ["k"]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = app.post("/api/v1/channels/fetch-models", Some(&s.user.access),
            json!({"type": "openai", "base_url": s.upstream.base_url, "keys": [s.upstream.key]})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        // A deleted channel's history stays, under the name it had.
        assert_eq!(chat(&app, &s.key, ask("before delete")).await.status, StatusCode::OK);
        rows(&app, &s.root, "", 1).await;
        let r = app.send(app.client.delete(app.url(&format!("/api/v1/channels/{id}"))).bearer_auth(&s.root.access)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let items = rows(&app, &s.root, &format!("channel_id={id}"), 1).await;
        assert_eq!(items[0]["channel_name"], "primary");
    }

    async fn every_model_of_a_channel_is_probed_on_demand_and_on_a_schedule(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let id = &s.channel_id;
        // The account lost access to one of the channel's models.
        let r = app.patch(&format!("/api/v1/channels/{id}"), Some(&s.root.access),
            json!({"models": ["gpt-test", "gpt-retired"]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        s.upstream.set_missing_models(&["gpt-retired"]);

        let path = format!("/api/v1/channels/{id}/probes");
        let r = app.get(&path, Some(&s.root.access)).await;
        assert_eq!((r.status, &r.json["items"]), (StatusCode::OK, &json!([])), "{}", r.text);
        let r = app.post(&path, Some(&s.root.access), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let items = r.json["items"].as_array().unwrap().clone();
        let names: Vec<&str> = items.iter().map(|p| p["model"].as_str().unwrap()).collect();
        let listed = app.get(&format!("/api/v1/channels/{id}"), Some(&s.root.access)).await.json["models"].clone();
        assert_eq!(json!(names), listed, "one per model, in the channel's order");
        let probe = |name: &str| items.iter().find(|p| p["model"] == name).cloned().unwrap_or_default();
        assert_eq!((probe("gpt-test")["ok"].as_bool(), probe("gpt-test")["message"].as_str()), (Some(true), Some("ok")));
        assert_eq!(probe("gpt-retired")["ok"], false);
        let retired = probe("gpt-retired");
        let why = retired["message"].as_str().unwrap();
        assert!(why.contains("404") && why.contains("model_not_found"), "{why}");
        // Sent as traffic is: the mapped name, and one token.
        let sent = s.upstream.requests();
        assert!(sent.iter().any(|r| r["model"] == "gpt-upstream" && r["max_tokens"] == 1), "{sent:?}");
        // Stored for every instance's view, and in this one's measurements per model.
        let stored = app.get(&path, Some(&s.root.access)).await;
        assert_eq!(stored.json["items"], json!(items));
        let channel = app.get(&format!("/api/v1/channels/{id}"), Some(&s.root.access)).await;
        let models = channel.json["health"]["models"].as_array().unwrap_or_else(|| panic!("{}", channel.text)).clone();
        let of = |name: &str| models.iter().find(|m| m["model"] == name).unwrap_or_else(|| panic!("{models:?}")).clone();
        assert_eq!((of("gpt-test")["samples"].as_i64(), of("gpt-test")["error_rate"].as_f64()), (Some(1), Some(0.0)));
        assert!(of("gpt-retired")["error_rate"].as_f64().unwrap() > 0.0, "{models:?}");

        // Admins only; an unknown channel is 404.
        assert_eq!(app.post(&path, Some(&s.user.access), json!({})).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get(&path, Some(&s.user.access)).await.status, StatusCode::FORBIDDEN);
        let r = app.post("/api/v1/channels/00000000-0000-0000-0000-000000000000/probes", Some(&s.root.access), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

        // On a schedule: an instance probing every second brings the failed model back once
        // the account has it again.
        s.upstream.set_missing_models(&[]);
        let prober = app.sibling_services("all", |c| c.relay.model_probe_interval_secs = 1).await;
        let mut fixed = false;
        for _ in 0..200 {
            let r = app.get(&path, Some(&s.root.access)).await;
            if r.json["items"].as_array().is_some_and(|items| items.len() == 2 && items.iter().all(|p| p["ok"] == true)) {
                fixed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        drop(prober);
        assert!(fixed, "the scheduled probe never ran");
    }
}

#[tokio::test]
async fn an_open_breaker_shows_since_when_and_skipped_channels_are_recorded() {
    let app = TestApp::spawn(skein_testkit::Backend::Sqlite).await;
    let s = relay_world(&app, Upstream::OpenAi).await;
    let (_backup, _) = s
        .add_backup(&app, "sk-upstream-backup", &["gpt-test"], 0)
        .await;
    for _ in 0..5 {
        s.upstream.fail_next(Fault::Status(503));
    }
    for _ in 0..5 {
        assert_eq!(chat(&app, &s.key, ask("hi")).await.status, StatusCode::OK);
    }
    let channel = app
        .get(
            &format!("/api/v1/channels/{}", s.channel_id),
            Some(&s.root.access),
        )
        .await;
    assert_eq!(channel.json["circuit"], "open", "{}", channel.text);
    assert!(
        channel.json["circuit_since"].is_string(),
        "{}",
        channel.text
    );
    assert!(channel.json["last_error"].as_str().unwrap().contains("503"));
    // The next request skips the resting primary, and its routing says so.
    assert_eq!(
        chat(&app, &s.key, ask("again")).await.status,
        StatusCode::OK
    );
    let items = rows(&app, &s.root, "", 6).await;
    let d = detail(&app, &s.root, items[0]["id"].as_str().unwrap()).await;
    assert_eq!(d["routing"]["skipped"][0]["name"], "primary", "{d}");
    assert_eq!(d["routing"]["skipped"][0]["reason"], "circuit_open");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
}
