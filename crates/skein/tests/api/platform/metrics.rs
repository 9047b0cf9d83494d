//! `/metrics`: absent without a token, refused to anyone without it, and counting a relayed
//! chat completion (HTTP, relay, billing) when scraped with it.

use reqwest::StatusCode;
use serde_json::json;
use skein_core::secret::Secret;
use skein_testkit::mock_openai::prompt_tokens;
use skein_testkit::{Backend, TestApp, Upstream, on_both_backends, redis_url, relay_world};

const TOKEN: &str = "scrape-token-for-the-tests-0123";

/// `GET /metrics` with `token`.
async fn scrape_with(app: &TestApp, token: Option<&str>) -> skein_testkit::Resp {
    let mut req = app.client.get(app.url("/metrics"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    app.send(req).await
}

/// The metrics text, scraped with the right token.
async fn scrape(app: &TestApp) -> String {
    let r = scrape_with(app, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.text
}

/// The value of the sample `name` whose labels include every one of `labels` (0 when absent,
/// as Prometheus treats a series not yet born).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

on_both_backends! {
    async fn metrics_count_a_chat_completion_and_refuse_anyone_without_the_token(backend) {
        let prefix = format!("skein-test-{}:", uuid::Uuid::now_v7().simple());
        let app = TestApp::spawn_with(backend, |c| {
            c.server.metrics_token = Some(Secret::new(TOKEN));
            c.billing.verify_every_secs = 1;
            // On PostgreSQL the deployment's shape: limits in Redis, whose health is scraped.
            if backend == Backend::Postgres {
                c.redis.url = Some(redis_url());
                c.redis.key_prefix = prefix.clone();
            }
        })
        .await;
        let s = relay_world(&app, Upstream::OpenAi).await;

        // Refused without the token, with a wrong one, and with an admin's own session: the
        // scrape token is a credential of its own.
        for token in [None, Some("wrong-token-wrong-token"), Some(s.root.access.as_str())] {
            let r = scrape_with(&app, token).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}: {}", r.text);
            assert!(!r.text.contains("skein_"), "{}", r.text);
        }
        let zh = app.send(app.client.get(app.url("/metrics")).header("accept-language", "zh-CN")).await;
        assert_eq!(zh.json["error"]["message"], "需要登录。", "{}", zh.text);

        let before = scrape(&app).await;
        let messages = json!([{"role": "user", "content": "count me in the metrics"}]);
        let r = app.send(app.client.post(app.url("/v1/chat/completions")).bearer_auth(&s.key)
            .json(&json!({"model": "gpt-test", "messages": messages}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let cost = r.json["usage"]["prompt_tokens"].as_i64().unwrap() * 2
            + r.json["usage"]["completion_tokens"].as_i64().unwrap() * 6;
        // The relay settles off the response path: wait for the usage record.
        for _ in 0..500 {
            let usage = app.get("/api/v1/billing/usage", Some(&s.user.access)).await;
            if usage.json["total"] == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let after = scrape(&app).await;
        let moved = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);

        // HTTP RED by route template and method.
        let route = [("route", "/v1/chat/completions"), ("method", "POST"), ("code", "200")];
        assert_eq!(moved("skein_http_requests_total", &route), 1.0, "{after}");
        assert_eq!(moved("skein_http_request_duration_seconds_count", &route[..2]), 1.0);
        assert_eq!(
            moved("skein_http_request_duration_seconds_bucket", &[route[0], route[1], ("le", "+Inf")]),
            1.0
        );
        // A templated route, never the raw path with its id in it.
        assert!(value(&after, "skein_http_requests_total", &[("route", "/api/v1/billing/usage")]) >= 1.0);

        // The relay, by model and channel.
        let series = [("model", "gpt-test"), ("channel", s.channel_id.as_str())];
        assert_eq!(moved("skein_relay_requests_total", &[series[0], series[1], ("status", "ok")]), 1.0, "{after}");
        assert_eq!(moved("skein_relay_request_duration_seconds_count", &series), 1.0);
        assert_eq!(moved("skein_relay_time_to_first_token_seconds_count", &series), 1.0);
        assert_eq!(
            moved("skein_relay_tokens_total", &[series[0], series[1], ("kind", "prompt")]),
            prompt_tokens(&messages) as f64
        );
        assert_eq!(moved("skein_relay_cost_quota_total", &series), cost as f64);
        assert_eq!(value(&after, "skein_relay_channel_circuit_state", &[("channel", s.channel_id.as_str()), ("name", "primary")]), 0.0);
        assert!(after.contains(&format!("skein_relay_channel_circuit_state{{channel=\"{}\",name=\"primary\"}} 0\n", s.channel_id)), "{after}");

        // Billing: one hold granted and settled.
        assert_eq!(moved("skein_billing_holds_total", &[("outcome", "granted")]), 1.0);
        assert_eq!(moved("skein_billing_settles_total", &[("outcome", "ok")]), 1.0);

        // Dependencies and the build.
        let backend_label = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
        assert_eq!(value(&after, "skein_db_up", &[("backend", backend_label)]), 1.0, "{after}");
        assert!(value(&after, "skein_db_pool_connections", &[("state", "idle")])
            + value(&after, "skein_db_pool_connections", &[("state", "in_use")]) >= 1.0);
        match backend {
            Backend::Postgres => assert_eq!(value(&after, "skein_redis_up", &[]), 1.0, "{after}"),
            Backend::Sqlite => assert!(!after.contains("skein_redis_up"), "no Redis configured"),
        }
        assert_eq!(value(&after, "skein_chat_generations_in_flight", &[]), 0.0);
        assert!(after.contains("# TYPE skein_chat_generations_in_flight gauge\n"));
        assert_eq!(value(&after, "skein_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
        assert!(value(&after, "process_resident_memory_bytes", &[]) > 1e6);

        // The scheduled ledger check ran, found the ledger and balances in agreement, and
        // says so.
        let mut checked = after.clone();
        for _ in 0..100 {
            if value(&checked, "skein_billing_ledger_verify_runs_total", &[("outcome", "clean")]) >= 1.0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            checked = scrape(&app).await;
        }
        assert!(value(&checked, "skein_billing_ledger_verify_runs_total", &[("outcome", "clean")]) >= 1.0, "{checked}");
        assert_eq!(value(&checked, "skein_billing_ledger_verify_runs_total", &[("outcome", "drift")]), 0.0);
        assert!(checked.contains("# TYPE skein_billing_ledger_drift_accounts gauge\nskein_billing_ledger_drift_accounts 0\n"), "{checked}");
        assert!(value(&checked, "skein_billing_ledger_verify_last_run_timestamp_seconds", &[]) > 1.7e9);

        // No user ids or keys in any label.
        for secret in [&s.user.id, &s.root.id, &s.key] {
            assert!(!after.contains(secret.as_str()), "{secret} leaked into the metrics");
        }
    }
}

on_both_backends! {
    async fn without_a_token_there_is_no_metrics_endpoint(backend) {
        let app = TestApp::spawn(backend).await;
        let root = app.root().await;
        for token in [None, Some(root.access.as_str())] {
            let r = scrape_with(&app, token).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
            assert!(!r.text.contains("skein_"), "not the metrics, nor the web app: {}", r.text);
        }
    }
}

#[tokio::test]
async fn refusals_before_the_handler_are_counted_under_their_route_template() {
    // The rate limit and the key check answer before the handler runs, and a path no route
    // serves has no template: each must still land on the right `route` label.
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.metrics_token = Some(Secret::new(TOKEN));
    })
    .await;
    let s = relay_world(&app, Upstream::OpenAi).await;
    let key = app
        .api_key_with(&s.user, "one a minute", json!({"rpm_limit": 1}))
        .await;
    let before = scrape(&app).await;
    let body = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]});
    let chat = |key: &str| {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
    };
    assert_eq!(app.send(chat(&key)).await.status, StatusCode::OK);
    let limited = app.send(chat(&key)).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    // Still the vendor's error shape, with the request id the edge gave it.
    assert!(
        limited.json["error"]["message"].is_string(),
        "{}",
        limited.text
    );
    assert!(
        limited
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty())
    );
    let stranger = app.send(chat("sk-not-a-key")).await;
    assert_eq!(
        stranger.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        stranger.text
    );
    let nowhere = app
        .send(app.client.post(app.url("/v1/no-such-route")))
        .await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND, "{}", nowhere.text);
    let after = scrape(&app).await;

    let moved = |labels: &[(&str, &str)]| {
        value(&after, "skein_http_requests_total", labels)
            - value(&before, "skein_http_requests_total", labels)
    };
    let chat_route = ("route", "/v1/chat/completions");
    for code in ["200", "429", "401"] {
        assert_eq!(
            moved(&[chat_route, ("method", "POST"), ("code", code)]),
            1.0,
            "{code}: {after}"
        );
    }
    assert_eq!(
        moved(&[
            ("route", "<unmatched>"),
            ("method", "POST"),
            ("code", "404")
        ]),
        1.0,
        "{after}"
    );
}
