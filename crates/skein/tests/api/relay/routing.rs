//! Routing that learns: a group's strategy (latency, errors, cost) decides which channel of
//! a model is tried first, from what the relay measured of mock upstreams with set delays and
//! set failures; exploration brings a recovered channel back; an open circuit breaker still
//! keeps a channel out; the request log says why.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_compat::{self, MockCompat};
use skein_testkit::mock_openai::Fault;
use skein_testkit::{
    Persona, Price, RelayWorld, TestApp, Upstream, WorldSpec, both_backends, on_both_backends,
    relay_world,
};

use crate::relay::chat;

/// A small request: its hold is small, so many in a row fit the test user's balance while
/// their settles (which run after each answer) catch up.
fn ask() -> Value {
    json!({"model": "gpt-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hello there"}]})
}

/// Sends `n` chat requests one after another; every one must be answered.
async fn send(app: &TestApp, s: &RelayWorld, n: usize) {
    for i in 0..n {
        let r = chat(app, &s.key, ask()).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text);
    }
}

async fn set_strategy(app: &TestApp, admin: &Persona, strategy: &str, explore: i64) {
    let r = app
        .put(
            "/api/v1/admin/routing/default",
            Some(&admin.access),
            json!({"strategy": strategy, "explore_percent": explore}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["strategy"], strategy);
}

async fn channel(app: &TestApp, admin: &Persona, id: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/channels/{id}"), Some(&admin.access))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

both_backends! {
    async fn the_latency_strategy_sends_traffic_to_the_fast_channel(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        // The backup shares the primary's priority, so by priority they split evenly.
        let (backup, backup_id) = s.add_backup(&app, "sk-upstream-backup", &["gpt-test"], 10).await;
        s.upstream.set_delay(Duration::from_millis(250));

        send(&app, &s, 10).await;
        let slow = s.upstream.requests().len();
        assert_eq!(slow, 5, "priority and equal weights alternate");
        assert_eq!(backup.requests().len(), 5);

        set_strategy(&app, &s.root, "latency", 10).await;
        send(&app, &s, 40).await;
        // Every tenth request explores (4 of 40): only those reach the slow channel.
        let explored = s.upstream.requests().len() - slow;
        assert_eq!(explored, 4, "the slow channel got more than its explorations");
        assert_eq!(backup.requests().len(), 5 + 36);

        let primary = channel(&app, &s.root, &s.channel_id).await;
        let fast = channel(&app, &s.root, &backup_id).await;
        let slow_ms = primary["health"]["latency_ms"].as_f64().unwrap();
        let fast_ms = fast["health"]["latency_ms"].as_f64().unwrap();
        assert!(slow_ms >= 240.0 && fast_ms < slow_ms, "{primary} {fast}");
        assert_eq!(fast["health"]["error_rate"], 0.0);

        // The request log says which strategy decided and how each channel scored. The last
        // request may be one that explored (the slow channel first, on purpose) and its row
        // may be written yet or not: the newest request that did not explore is read.
        let log = app.get("/api/v1/admin/requests?limit=3", Some(&s.root.access)).await;
        let mut routings = Vec::new();
        for item in log.json["items"].as_array().unwrap() {
            let id = item["id"].as_str().unwrap();
            let detail = app.get(&format!("/api/v1/admin/requests/{id}"), Some(&s.root.access)).await;
            routings.push(detail.json["routing"].clone());
        }
        let routing = routings.iter().find(|r| r["explored"] == false)
            .unwrap_or_else(|| panic!("three exploring requests in a row: {routings:?}"));
        assert_eq!(routing["strategy"], "latency", "{routing}");
        let scores: Vec<f64> = routing["candidates"].as_array().unwrap().iter()
            .map(|c| c["score"].as_f64().unwrap()).collect();
        assert_eq!(scores.len(), 2, "{routing}");
        assert!(scores[0] < scores[1], "the fast channel scores best: {routing}");

        // A streamed answer also gives the channel an average time to its first token.
        assert!(fast["health"]["ttft_ms"].is_null(), "no stream yet: {fast}");
        let mut streamed = ask();
        streamed["stream"] = json!(true);
        let r = chat(&app, &s.key, streamed).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        // The first token is counted when the request settles, just after the answer.
        let mut ttft = None;
        for _ in 0..100 {
            let (primary, fast) = (
                channel(&app, &s.root, &s.channel_id).await,
                channel(&app, &s.root, &backup_id).await,
            );
            ttft = fast["health"]["ttft_ms"].as_f64().or(primary["health"]["ttft_ms"].as_f64());
            if ttft.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ttft.is_some_and(|t| t > 0.0), "no time to first token measured");
    }

    async fn a_models_own_strategy_replaces_its_groups(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let (backup, _) = s.add_backup(&app, "sk-upstream-backup", &["gpt-test"], 10).await;
        s.upstream.set_delay(Duration::from_millis(250));
        // The group routes by priority (equal weights alternate), exploring one in ten.
        set_strategy(&app, &s.root, "priority", 10).await;
        send(&app, &s, 10).await;
        assert_eq!((s.upstream.requests().len(), backup.requests().len()), (5, 5));

        // The model routes by latency: only its explorations reach the slow channel.
        let route = |body: Value| app.put("/api/v1/admin/model-routes/gpt-test", Some(&s.root.access), body);
        let r = route(json!({"strategy": "latency"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["strategy"], "latency");
        assert_eq!(r.json["alias_of"], Value::Null);
        send(&app, &s, 40).await;
        assert_eq!(s.upstream.requests().len(), 5 + 4, "the slow channel got more than its explorations");
        assert_eq!(backup.requests().len(), 5 + 36);
        let log = app.get("/api/v1/admin/requests?limit=1", Some(&s.root.access)).await;
        let id = log.json["items"][0]["id"].as_str().unwrap().to_string();
        let detail = app.get(&format!("/api/v1/admin/requests/{id}"), Some(&s.root.access)).await;
        assert_eq!(detail.json["routing"]["strategy"], "latency", "{}", detail.text);
        let list = app.get("/api/v1/admin/model-routes", Some(&s.root.access)).await;
        assert_eq!(list.json[0]["strategy"], "latency", "{}", list.text);

        // An unknown strategy is refused; the route stays as it was.
        let r = route(json!({"strategy": "fastest"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        // Removed: the group's priority again.
        let r = app.send(app.client.delete(app.url("/api/v1/admin/model-routes/gpt-test")).bearer_auth(&s.root.access)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let (slow, fast) = (s.upstream.requests().len(), backup.requests().len());
        send(&app, &s, 10).await;
        assert_eq!((s.upstream.requests().len() - slow, backup.requests().len() - fast), (5, 5));
    }

    async fn the_errors_strategy_avoids_a_failing_channel_and_returns_to_it(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let (backup, _) = s.add_backup(&app, "sk-upstream-backup", &["gpt-test"], 10).await;
        set_strategy(&app, &s.root, "errors", 10).await;
        for _ in 0..3 {
            s.upstream.fail_next(Fault::Status(503));
        }
        // The primary fails its first request (the backup answers it), then sees only the
        // explorations (every tenth request: the 10th, 20th and 30th), the first two failing
        // while its faults last.
        send(&app, &s, 30).await;
        assert_eq!(s.upstream.requests().len(), 4, "under priority it would get 15");
        assert_eq!(backup.requests().len(), 29);
        // It recovered: explorations succeed, its error rate decays back into a tie, and it
        // shares the traffic again.
        send(&app, &s, 90).await;
        let before = s.upstream.requests().len();
        send(&app, &s, 40).await;
        let recent = s.upstream.requests().len() - before;
        assert!((15..=25).contains(&recent), "the recovered primary got {recent} of 40");
        let primary = channel(&app, &s.root, &s.channel_id).await;
        assert!(primary["health"]["error_rate"].as_f64().unwrap() < 0.1, "{primary}");
    }

    async fn the_cost_strategy_prefers_the_cheap_channel_until_its_breaker_opens(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let (backup, _) = s.add_backup(&app, "sk-upstream-backup", &["gpt-test"], 10).await;
        let r = app
            .patch(
                &format!("/api/v1/channels/{}", s.channel_id),
                Some(&s.root.access),
                json!({"cost_ratio_permille": 600}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["cost_ratio_permille"], 600);
        set_strategy(&app, &s.root, "cost", 10).await;
        send(&app, &s, 10).await;
        assert_eq!(s.upstream.requests().len(), 10, "the cheaper channel takes everything");
        assert_eq!(backup.requests().len(), 0, "no exploration for a static score");

        // Five failures open its breaker: however cheap, it is left alone after that.
        for _ in 0..5 {
            s.upstream.fail_next(Fault::Status(503));
        }
        send(&app, &s, 8).await;
        assert_eq!(s.upstream.requests().len(), 15);
        assert_eq!(backup.requests().len(), 8);
        assert_eq!(channel(&app, &s.root, &s.channel_id).await["circuit"], "open");
    }

    async fn upstream_balances_are_read_and_a_low_one_puts_the_channel_last(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let deepseek = MockCompat::<mock_compat::DeepSeek>::start("sk-ds").await;
        deepseek.set_balance(3.5);
        let ds = app.add_channel(&s.root, json!({"type": "deepseek", "name": "ds",
            "base_url": deepseek.base_url, "keys": [deepseek.key], "models": ["gpt-test"],
            "priority": 10, "low_balance_threshold": 5})).await;
        let ds_id = ds["id"].as_str().unwrap().to_string();
        let refresh = |id: String| {
            let app = &app;
            let access = s.root.access.clone();
            async move { app.post(&format!("/api/v1/channels/{id}/balance"), Some(&access), json!({})).await }
        };
        let r = refresh(ds_id.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["balance"], 3.5);
        assert_eq!(r.json["balance_currency"], "CNY");
        assert_eq!(r.json["balance_low"], true);
        assert!(r.json["balance_at"].is_string());
        assert!(!r.text.contains("sk-ds"), "no key in the answer");

        // Each vendor's own endpoint and shape.
        let moonshot = MockCompat::<mock_compat::Moonshot>::start("sk-ms").await;
        moonshot.set_balance(49.58894);
        let silicon = MockCompat::<mock_compat::SiliconFlow>::start("sk-sf").await;
        silicon.set_balance(88.88);
        for (kind, (base_url, key), want) in [
            ("moonshot", (&moonshot.base_url, &moonshot.key), 49.58894),
            ("siliconflow", (&silicon.base_url, &silicon.key), 88.88),
        ] {
            let c = app.add_channel(&s.root, json!({"type": kind, "name": kind,
                "base_url": format!("{base_url}/v1"), "keys": [key], "models": ["other"]})).await;
            let r = refresh(c["id"].as_str().unwrap().to_string()).await;
            assert_eq!(r.status, StatusCode::OK, "{kind}: {}", r.text);
            assert_eq!(r.json["balance"], want, "{kind}");
            assert_eq!(r.json["balance_low"], false, "{kind}: no threshold set");
        }
        let r = refresh(s.channel_id.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.error_code(), "no_balance_endpoint");
        let r = app.patch(&format!("/api/v1/channels/{ds_id}"), Some(&s.root.access),
            json!({"low_balance_threshold": -1})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Equal priorities would alternate; the low balance puts DeepSeek last.
        send(&app, &s, 6).await;
        assert_eq!(deepseek.requests().len(), 0, "a low-balance channel is tried last");
        assert_eq!(s.upstream.requests().len(), 6);
        // Topped up, it shares the traffic again.
        deepseek.set_balance(50.0);
        let r = refresh(ds_id.clone()).await;
        assert_eq!(r.json["balance_low"], false, "{}", r.text);
        send(&app, &s, 6).await;
        assert_eq!(deepseek.requests().len(), 3);
        // The balance strategy prefers the channel with the most money known.
        set_strategy(&app, &s.root, "balance", 0).await;
        send(&app, &s, 4).await;
        assert_eq!(deepseek.requests().len(), 7);
        assert_eq!(s.upstream.requests().len(), 9);
    }

    async fn the_response_cache_answers_repeats_per_user_and_bills_as_set(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let set = |body: Value| {
            let (app, access) = (&app, s.root.access.clone());
            async move { app.put("/api/v1/admin/cache/default", Some(&access), body).await }
        };
        let r = set(json!({"enabled": true, "ttl_secs": 60, "share_across_users": false, "price_percent": 0})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let zero = json!({"model": "gpt-test", "temperature": 0,
            "messages": [{"role": "user", "content": "what is two and two"}]});
        let balance = |who: &Persona| {
            let (app, access) = (&app, who.access.clone());
            async move {
                for _ in 0..200 {
                    let q = app.get("/api/v1/billing/quota", Some(&access)).await.json;
                    if q["reserved"] == 0 {
                        return q["balance"].as_i64().unwrap();
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                panic!("holds never settled");
            }
        };
        let first = chat(&app, &s.key, zero.clone()).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        assert_eq!(first.header("x-skein-cache"), Some("miss"));
        let after_first = balance(&s.user).await;
        let second = chat(&app, &s.key, zero.clone()).await;
        assert_eq!(second.header("x-skein-cache"), Some("hit"));
        assert_eq!(second.json["choices"], first.json["choices"]);
        assert_eq!(s.upstream.requests().len(), 1, "the repeat never reached the upstream");
        assert_eq!(balance(&s.user).await, after_first, "a free hit costs nothing");
        // The same question streamed: the kept answer replayed as chunks, usage last.
        let mut streamed = zero.clone();
        streamed["stream"] = json!(true);
        streamed["stream_options"] = json!({"include_usage": true});
        let r = chat(&app, &s.key, streamed.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("x-skein-cache"), Some("hit"), "{}", r.text);
        assert!(r.header("content-type").unwrap_or("").starts_with("text/event-stream"));
        let chunks: Vec<Value> = r.text.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let text: String = chunks.iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, first.json["choices"][0]["message"]["content"].as_str().unwrap());
        assert_eq!(chunks.iter().rev().find_map(|c| c["choices"][0]["finish_reason"].as_str()), Some("stop"));
        assert_eq!(chunks.last().unwrap()["usage"], first.json["usage"], "{}", r.text);
        assert!(r.text.ends_with("data: [DONE]\n\n"), "{}", r.text);
        assert_eq!(s.upstream.requests().len(), 1, "the streamed repeat never reached the upstream");
        let one_answer = 1_000_000 - after_first;
        assert!(one_answer > 0);

        // Not deterministic: not cached.
        let warm = json!({"model": "gpt-test", "temperature": 0.7,
            "messages": [{"role": "user", "content": "what is two and two"}]});
        let r = chat(&app, &s.key, warm.clone()).await;
        assert_eq!(r.header("x-skein-cache"), None);
        // Another user's identical request is theirs alone.
        let (other, other_key) = app.user_with_key("eve").await;
        app.fund(&s.root, &other, 1_000_000).await;
        let r = chat(&app, &other_key, zero.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("x-skein-cache"), Some("miss"), "never across users by default");
        assert_eq!(s.upstream.requests().len(), 3);

        // Shared and half price: eve's kept answer now serves ada, billed at 50 %.
        let r = set(json!({"enabled": true, "ttl_secs": 60, "share_across_users": true, "price_percent": 50})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = chat(&app, &other_key, zero.clone()).await;
        assert_eq!(r.header("x-skein-cache"), Some("miss"), "changing the settings dropped the cache");
        let before = balance(&s.user).await;
        let r = chat(&app, &s.key, zero.clone()).await;
        assert_eq!(r.header("x-skein-cache"), Some("hit"));
        assert_eq!(before - balance(&s.user).await, (one_answer + 1) / 2);
        assert_eq!(s.upstream.requests().len(), 4);

        let r = set(json!({"enabled": true, "ttl_secs": 0, "share_across_users": false, "price_percent": 0})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = set(json!({"enabled": true, "ttl_secs": 5, "share_across_users": false, "price_percent": 101})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let view = app.get("/api/v1/admin/cache", Some(&s.root.access)).await;
        assert_eq!(view.json["groups"][0]["enabled"], true, "{}", view.text);
        let user = app.get("/api/v1/admin/cache", Some(&s.user.access)).await;
        assert_eq!(user.status, StatusCode::FORBIDDEN);
    }

    async fn response_cache_hits_count_against_the_keys_limits(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let r = app.put("/api/v1/admin/cache/default", Some(&s.root.access),
            json!({"enabled": true, "ttl_secs": 600, "share_across_users": false, "price_percent": 0})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let zero = json!({"model": "gpt-test", "temperature": 0,
            "messages": [{"role": "user", "content": "what is two and two"}]});

        // Requests per minute: a hit is a request. Two a minute, so the third is refused
        // although the cache could answer it (a refill would take 30 s).
        let rpm_key = app.api_key_with(&s.user, "rpm", json!({"rpm_limit": 2})).await;
        let first = chat(&app, &rpm_key, zero.clone()).await;
        assert_eq!(first.header("x-skein-cache"), Some("miss"), "{}", first.text);
        let second = chat(&app, &rpm_key, zero.clone()).await;
        assert_eq!(second.header("x-skein-cache"), Some("hit"), "{}", second.text);
        let third = chat(&app, &rpm_key, zero.clone()).await;
        assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS, "{}", third.text);
        assert_eq!(s.upstream.requests().len(), 1);

        // Tokens per minute: the cache is the user's, so another key of theirs gets a hit at
        // once; the hit's tokens spend that key's budget of one token a minute, and the repeat
        // is refused before the cache can answer it (a refill would take a minute).
        let tpm_key = app.api_key_with(&s.user, "tpm", json!({"tpm_limit": 1})).await;
        let r = chat(&app, &tpm_key, zero.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("x-skein-cache"), Some("hit"), "{}", r.text);
        let r = chat(&app, &tpm_key, zero.clone()).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        assert_eq!(r.error_code(), "tokens_per_minute_exceeded", "{}", r.text);
        assert_eq!(s.upstream.requests().len(), 1, "every other answer came from the cache");
    }

    async fn embeddings_fall_back_to_another_model_at_its_price(app) {
        let s = WorldSpec::new(Upstream::OpenAi)
            .model("emb-a", None)
            .price("emb-a", Price::tokens(1_000_000, 0))
            .build(&app)
            .await;
        let (backup, _) = s.add_backup(&app, "sk-upstream-backup", &["emb-b"], 0).await;
        app.set_price(&s.root, "emb-b", Price::tokens(3_000_000, 0)).await;
        let r = app.put("/api/v1/admin/model-routes/emb-a", Some(&s.root.access),
            json!({"fallbacks": ["emb-b"]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        s.upstream.fail_next(Fault::Status(503));
        let r = app.send(app.client.post(app.url("/v1/embeddings")).bearer_auth(&s.key)
            .json(&json!({"model": "emb-a", "input": "one two three"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(s.upstream.requests().len(), 1, "emb-a was tried first");
        assert_eq!(backup.requests().len(), 1);
        assert_eq!(backup.requests()[0]["model"], "emb-b");
        let mut record = Value::Null;
        for _ in 0..200 {
            let usage = app.get("/api/v1/billing/usage", Some(&s.user.access)).await;
            record = usage.json["items"][0].clone();
            if !record.is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(record["model"], "emb-b", "billed as the fallback: {record}");
        let prompt = record["prompt_tokens"].as_i64().unwrap();
        assert_eq!(record["cost"].as_i64(), Some(prompt * 3), "at emb-b's price: {record}");
    }

    async fn routing_strategies_are_validated_and_admin_only(app) {
        let (_root, admin) = app.root_and_admin().await;
        let user = app.register("bob").await;
        let list = app.get("/api/v1/admin/routing", Some(&admin.access)).await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        assert_eq!(list.json[0]["group"], "default");
        assert_eq!(list.json[0]["strategy"], "priority");
        assert_eq!(list.json[0]["explore_percent"], 5);
        assert!(list.json[0]["updated_at"].is_null());
        let put = |body: Value, who: &Persona, group: &str| {
            let (app, access, group) = (&app, who.access.clone(), group.to_string());
            async move { app.put(&format!("/api/v1/admin/routing/{group}"), Some(&access), body).await }
        };
        let r = put(json!({"strategy": "latency"}), &user, "default").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = put(json!({"strategy": "latency"}), &admin, "nope").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = put(json!({"strategy": "fastest"}), &admin, "default").await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let r = put(json!({"strategy": "latency", "explore_percent": 80}), &admin, "default").await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.json["error"]["details"]["field"], "explore_percent", "{}", r.text);
        let r = put(json!({"strategy": "balance", "explore_percent": 0}), &admin, "default").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let list = app.get("/api/v1/admin/routing", Some(&admin.access)).await;
        assert_eq!(list.json[0]["strategy"], "balance");
        assert_eq!(list.json[0]["explore_percent"], 0);
        assert_eq!(list.json[0]["sticky"], false);
        assert!(list.json[0]["updated_at"].is_string());
        let r = put(json!({"strategy": "balanced", "sticky": "yes"}), &admin, "default").await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let r = put(json!({"strategy": "balanced", "sticky": true}), &admin, "default").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let list = app.get("/api/v1/admin/routing", Some(&admin.access)).await;
        assert_eq!(list.json[0]["strategy"], "balanced");
        assert_eq!(list.json[0]["sticky"], true);
    }

    async fn a_sticky_group_keeps_each_key_on_its_channel(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        let (backup, _) = s.add_backup(&app, "sk-upstream-backup", &["gpt-test"], 10).await;
        let r = app
            .put(
                "/api/v1/admin/routing/default",
                Some(&s.root.access),
                json!({"strategy": "priority", "sticky": true}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["sticky"], true);
        // Which channel answered each request of each key.
        let answered = |before: (usize, usize)| {
            let now = (s.upstream.requests().len(), backup.requests().len());
            assert_eq!(now.0 + now.1, before.0 + before.1 + 1, "one upstream call a request");
            (if now.0 > before.0 { "primary" } else { "backup" }, now)
        };
        let mut owners = Vec::new();
        for k in 0..16 {
            let key = app.api_key(&s.user, &format!("sticky-{k}")).await;
            let mut at = (s.upstream.requests().len(), backup.requests().len());
            let mut seen = Vec::new();
            for i in 0..4 {
                let r = chat(&app, &key, ask()).await;
                assert_eq!(r.status, StatusCode::OK, "key {k} request {i}: {}", r.text);
                let (who, now) = answered(at);
                at = now;
                seen.push(who);
            }
            // Round-robin alone would alternate; a sticky key stays where it went first.
            assert!(seen.iter().all(|w| *w == seen[0]), "key {k} moved: {seen:?}");
            owners.push(seen[0]);
        }
        // Keys spread over the two equal channels (all 16 on one: 2 in 65,536).
        assert!(owners.contains(&"primary") && owners.contains(&"backup"), "{owners:?}");
        // The request log says when stickiness, not the round-robin, chose the channel.
        let log = app.get("/api/v1/admin/requests?limit=8", Some(&s.root.access)).await;
        let mut said = 0;
        for item in log.json["items"].as_array().unwrap() {
            let id = item["id"].as_str().unwrap();
            let detail = app.get(&format!("/api/v1/admin/requests/{id}"), Some(&s.root.access)).await;
            said += usize::from(detail.json["routing"]["sticky"] == true);
        }
        assert!(said > 0, "no logged request was chosen by stickiness");

        // Not sticky: the same key's requests alternate again.
        let r = app
            .put("/api/v1/admin/routing/default", Some(&s.root.access), json!({"strategy": "priority"}))
            .await;
        assert_eq!(r.json["sticky"], false, "{}", r.text);
        let mut at = (s.upstream.requests().len(), backup.requests().len());
        let mut seen = Vec::new();
        for _ in 0..4 {
            assert_eq!(chat(&app, &s.key, ask()).await.status, StatusCode::OK);
            let (who, now) = answered(at);
            at = now;
            seen.push(who);
        }
        assert!(seen.contains(&"primary") && seen.contains(&"backup"), "{seen:?}");
    }
}

on_both_backends! {
    async fn fallbacks_are_set_per_group(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            c.relay.groups = vec!["default".into(), "vip".into()];
            c.relay.default_user_groups = vec!["default".into(), "vip".into()];
        })
        .await;
        let s = WorldSpec::new(Upstream::OpenAi)
            .model("gpt-test", None)
            .price("gpt-test", Price::tokens(2_000_000, 6_000_000))
            .channel(json!({"groups": ["default", "vip"]}))
            .build(&app)
            .await;
        let backup = skein_testkit::mock_openai::MockOpenAi::start("sk-backup").await;
        app.add_channel(&s.root, json!({"type": "openai", "name": "backup", "base_url": backup.base_url,
            "keys": [backup.key], "models": ["m-cheap", "m-better"], "priority": 0,
            "groups": ["default", "vip"]})).await;
        app.set_price(&s.root, "m-cheap", Price::tokens(1_000_000, 1_000_000)).await;
        app.set_price(&s.root, "m-better", Price::tokens(3_000_000, 9_000_000)).await;
        let vip_key = app.api_key_with(&s.user, "vip", json!({"group": "vip"})).await;
        let route = |body: Value| {
            let (app, access) = (&app, s.root.access.clone());
            async move { app.put("/api/v1/admin/model-routes/gpt-test", Some(&access), body).await }
        };
        let r = route(json!({"fallbacks": ["m-cheap"], "group_fallbacks": {"vip": ["m-better"]}})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["group_fallbacks"], json!({"vip": ["m-better"]}), "{}", r.text);

        // The primary fails each time: the default group falls back to the cheap model, the
        // vip group to the better one.
        for (key, want) in [(&s.key, "m-cheap"), (&vip_key, "m-better")] {
            s.upstream.fail_next(Fault::Status(503));
            let r = chat(&app, key, ask()).await;
            assert_eq!(r.status, StatusCode::OK, "{want}: {}", r.text);
            assert_eq!(backup.requests().last().unwrap()["model"], want);
        }
        // An empty list turns fallbacks off for the group alone.
        let r = route(json!({"fallbacks": ["m-cheap"], "group_fallbacks": {"vip": []}})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        s.upstream.fail_next(Fault::Status(503));
        let r = chat(&app, &vip_key, ask()).await;
        assert!(r.status.is_server_error(), "no fallback for vip: {}", r.text);
        assert_eq!(backup.requests().len(), 2);
        s.upstream.fail_next(Fault::Status(503));
        let r = chat(&app, &s.key, ask()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(backup.requests().last().unwrap()["model"], "m-cheap");

        // Only configured groups, and each list checked like the model's own.
        for body in [
            json!({"group_fallbacks": {"gold": ["m-cheap"]}}),
            json!({"group_fallbacks": {"vip": ["gpt-test"]}}),
            json!({"group_fallbacks": {"vip": ["a", "b", "c", "d", "e", "f"]}}),
        ] {
            let r = route(body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.text);
            assert_eq!(r.json["error"]["details"]["field"], "group_fallbacks", "{}", r.text);
        }
        let list = app.get("/api/v1/admin/model-routes", Some(&s.root.access)).await;
        assert_eq!(list.json[0]["group_fallbacks"], json!({"vip": []}), "{}", list.text);
    }

    async fn a_channels_file_is_applied_at_start_and_whenever_it_changes(backend) {
        // A YAML file mounted beside the server; its key is a variable cargo sets for every
        // test process.
        let mock = Upstream::OpenAi.start(env!("CARGO_PKG_NAME")).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("channels.yaml");
        let yaml = |weight: u32| format!(
            "channel:\n  - name: from-file\n    type: openai\n    base_url: \"{}\"\n    keys_env: [CARGO_PKG_NAME]\n    models: [file-model]\n    weight: {weight}\nprices:\n  file-model: {{input_per_mtok: 1000000, output_per_mtok: 2000000, cache_read_per_mtok: 0, cache_write_per_mtok: 0, per_call: 0}}\nroutes:\n  file-model: {{strategy: cost}}\n",
            mock.base_url);
        std::fs::write(&path, yaml(3)).unwrap();
        let file = path.clone();
        let app = TestApp::spawn_with(backend, move |c| {
            c.relay.channels_file = Some(file);
            c.relay.channels_file_check_secs = 1;
        }).await;
        let root = app.root().await;
        let weight_of = |list: &Value| list.as_array().unwrap().iter()
            .find(|c| c["name"] == "from-file").map(|c| c["weight"].clone());
        // Applied before the first request.
        let list = app.get("/api/v1/channels", Some(&root.access)).await;
        assert_eq!(weight_of(&list.json), Some(json!(3)), "{}", list.text);
        let status = app.get("/api/v1/admin/channels/file", Some(&root.access)).await;
        assert_eq!(status.status, StatusCode::OK, "{}", status.text);
        assert_eq!(status.json["path"], path.display().to_string());
        assert!(status.json["applied_at"].is_string(), "{}", status.text);
        assert!(status.json["error"].is_null(), "{}", status.text);
        assert!(status.json["changes"].as_array().unwrap().iter().any(|c| c.as_str().unwrap().contains("from-file")), "{}", status.text);
        let routes = app.get("/api/v1/admin/model-routes", Some(&root.access)).await;
        assert_eq!(routes.json[0]["strategy"], "cost", "{}", routes.text);

        // Changed: applied within a check or two.
        std::fs::write(&path, yaml(7)).unwrap();
        let mut weight = None;
        for _ in 0..100 {
            weight = weight_of(&app.get("/api/v1/channels", Some(&root.access)).await.json);
            if weight == Some(json!(7)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(weight, Some(json!(7)), "the change was never applied");

        // Broken: the channels stay as they were and the console says why.
        std::fs::write(&path, "channel: [\n").unwrap();
        let mut error = Value::Null;
        for _ in 0..100 {
            error = app.get("/api/v1/admin/channels/file", Some(&root.access)).await.json["error"].clone();
            if error.is_string() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(error.as_str().is_some_and(|e| e.contains("not valid")), "{error}");
        let list = app.get("/api/v1/channels", Some(&root.access)).await;
        assert_eq!(weight_of(&list.json), Some(json!(7)));
        // Admin only.
        let (user, _) = app.user_with_key("file-watcher").await;
        let r = app.get("/api/v1/admin/channels/file", Some(&user.access)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }

    async fn channels_as_code_export_and_apply_idempotently_with_a_plan_first(backend) {
        // The test points keys at a variable cargo sets for every test process.
        let app = TestApp::spawn_with(backend, |c| c.relay.channels_env_prefix = "CARGO_PKG_".into()).await;
        let s = relay_world(&app, Upstream::OpenAi).await;
        set_strategy(&app, &s.root, "latency", 10).await;
        let export = app.get("/api/v1/admin/channels/export", Some(&s.root.access)).await;
        assert_eq!(export.status, StatusCode::OK, "{}", export.text);
        assert!(!export.text.contains("sk-upstream-primary"), "a key was exported: {}", export.text);
        assert!(export.text.contains("keys_env = [\"SKEIN_CHANNEL_PRIMARY_KEY\"]"), "{}", export.text);
        assert!(export.text.contains("[prices.gpt-test]"), "{}", export.text);
        assert!(export.text.contains("strategy = \"latency\""), "{}", export.text);

        // The exported file with one more channel (its key from an environment variable of
        // the server's process) and a changed priority. The primary's key variable is not
        // set where the server runs, so the test points it at one that is.
        let document = export
            .text
            .replace("SKEIN_CHANNEL_PRIMARY_KEY", "CARGO_PKG_NAME")
            .replace("priority = 10", "priority = 7")
            + &format!("\n[[channel]]\nname = \"second\"\ntype = \"openai\"\nbase_url = \"{}\"\nkeys_env = [\"CARGO_PKG_NAME\"]\nmodels = [\"gpt-test\"]\n", s.upstream.base_url);
        let apply = |document: String, dry_run: bool| {
            let (app, access) = (&app, s.root.access.clone());
            async move {
                app.post("/api/v1/admin/channels/apply", Some(&access),
                    json!({"document": document, "dry_run": dry_run})).await
            }
        };
        // A variable outside the allowed prefix (the server's own secrets) is refused, even
        // in a dry run, and nothing is read or written.
        let leak = document.replacen("keys_env = [\"CARGO_PKG_NAME\"]", "keys_env = [\"SKEIN_DATABASE_URL\"]", 1);
        let refused = apply(leak, true).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
        assert!(refused.text.contains("CARGO_PKG_"), "the error names the allowed prefix: {}", refused.text);
        let plan = apply(document.clone(), true).await;
        assert_eq!(plan.status, StatusCode::OK, "{}", plan.text);
        let changes = plan.json["changes"].as_array().unwrap().clone();
        let find = |name: &str| changes.iter().find(|c| c["name"] == name).cloned().unwrap_or_default();
        assert_eq!(find("second")["action"], "create", "{}", plan.text);
        assert_eq!(find("primary")["action"], "update");
        assert_eq!(find("primary")["fields"], json!(["keys", "priority"]), "only the field names: {}", plan.text);
        let list = app.get("/api/v1/channels", Some(&s.root.access)).await;
        assert_eq!(list.json.as_array().unwrap().len(), 1, "a dry run writes nothing");

        let applied = apply(document.clone(), false).await;
        assert_eq!(applied.status, StatusCode::OK, "{}", applied.text);
        let list = app.get("/api/v1/channels", Some(&s.root.access)).await;
        let channels = list.json.as_array().unwrap();
        assert_eq!(channels.len(), 2);
        assert!(channels.iter().any(|c| c["name"] == "primary" && c["priority"] == 7));
        // The second time, nothing differs.
        let again = apply(document.clone(), false).await;
        assert_eq!(again.json["changes"], json!([]), "{}", again.text);
        // A variable the server's environment lacks is named in the error, with no value.
        let missing = document.replace("CARGO_PKG_NAME", "SKEIN_TEST_SURELY_UNSET_VAR");
        let r = apply(missing, true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert!(r.text.contains("SKEIN_TEST_SURELY_UNSET_VAR"), "{}", r.text);
        let r = apply("[[channel]]\nname = 3".into(), true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let user = app.post("/api/v1/admin/channels/apply", Some(&s.user.access),
            json!({"document": "", "dry_run": true})).await;
        assert_eq!(user.status, StatusCode::FORBIDDEN);
    }
}

/// Serves `app` (an axum router) on an ephemeral port; answers its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// What an admin action reads from a vendor is bounded, and a redirect is not followed with
/// the channel's key: a balance endpoint that redirects elsewhere is an error (the other host
/// gets nothing), one that answers more than 64 KiB is refused, and so is a model list past
/// 4 MiB (from a saved channel or from the form's "fetch models").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_answers_to_admin_actions_are_bounded_and_never_redirected() {
    let app = TestApp::spawn(skein_testkit::Backend::Sqlite).await;
    let s = relay_world(&app, Upstream::OpenAi).await;
    let elsewhere = MockCompat::<mock_compat::DeepSeek>::start("sk-ds").await;
    let target = format!("{}/user/balance", elsewhere.base_url);
    let redirector = serve(axum::Router::new().fallback(move || {
        let target = target.clone();
        async move {
            (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", target)],
                "moved",
            )
        }
    }))
    .await;
    let huge_balance = format!(
        r#"{{"is_available": true, "pad": "{}", "balance_infos": []}}"#,
        "x".repeat(70 * 1024)
    );
    let huge_models = format!(
        r#"{{"object": "list", "pad": "{}", "data": []}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let (models_a, models_b) = (huge_models.clone(), huge_models);
    let flood = serve(
        axum::Router::new()
            .route(
                "/user/balance",
                axum::routing::get(move || async move { huge_balance }),
            )
            // DeepSeek lists models under its base URL, OpenAI under `/v1`.
            .route(
                "/models",
                axum::routing::get(move || async move { models_a }),
            )
            .route(
                "/v1/models",
                axum::routing::get(move || async move { models_b }),
            ),
    )
    .await;

    let refresh = |id: String| {
        let (app, access) = (&app, s.root.access.clone());
        async move {
            app.post(
                &format!("/api/v1/channels/{id}/balance"),
                Some(&access),
                json!({}),
            )
            .await
        }
    };
    let moved = app
        .add_channel(
            &s.root,
            json!({"type": "deepseek", "name": "moved",
        "base_url": redirector, "keys": ["sk-ds"], "models": ["other"]}),
        )
        .await;
    let r = refresh(moved["id"].as_str().unwrap().to_string()).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(r.text.contains("307"), "{}", r.text);
    assert!(
        elsewhere.received().is_empty(),
        "the redirect was not followed with the key"
    );
    assert!(!r.text.contains("sk-ds"));

    let flooded = app
        .add_channel(
            &s.root,
            json!({"type": "deepseek", "name": "flooded",
        "base_url": flood, "keys": ["sk-ds"], "models": ["other"]}),
        )
        .await;
    let flooded_id = flooded["id"].as_str().unwrap().to_string();
    let r = refresh(flooded_id.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(r.text.contains("longer than 64 KiB"), "{}", r.text);
    let stored = app
        .get(
            &format!("/api/v1/channels/{flooded_id}"),
            Some(&s.root.access),
        )
        .await;
    assert!(stored.json["balance"].is_null(), "{}", stored.text);

    let r = app
        .get(
            &format!("/api/v1/channels/{flooded_id}/models"),
            Some(&s.root.access),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(r.text.contains("longer than 4096 KiB"), "{}", r.text);
    let r = app
        .post(
            "/api/v1/channels/fetch-models",
            Some(&s.root.access),
            json!({"type": "openai", "base_url": flood, "keys": ["sk-x"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(r.text.contains("longer than 4096 KiB"), "{}", r.text);
}
