//! Holds that cover what a request can cost, and holds that always end: the adversarial
//! requests of issue #10 against the mock OpenAI upstream, on both databases. After each, the
//! balance is never below the overdraft and nothing stays reserved.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_openai::Fault;
use skein_testkit::{Backend, Persona, TestApp, both_backends, on_both_backends};

use crate::relay::chat;
use skein_testkit::{RelayWorld, Upstream, relay_world};

/// Sets the user's balance to exactly `amount`.
async fn set_balance(app: &TestApp, s: &RelayWorld, amount: i64) {
    let now = quota(app, &s.user).await["balance"].as_i64().unwrap();
    if now != amount {
        app.fund(&s.root, &s.user, amount - now).await;
    }
}

async fn quota(app: &TestApp, who: &Persona) -> Value {
    app.get("/api/v1/billing/quota", Some(&who.access))
        .await
        .json
}

/// Waits until `records` usage records exist and nothing is held, then answers the balance.
async fn settled(app: &TestApp, who: &Persona, records: i64) -> i64 {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(90) {
        let usage = app.get("/api/v1/billing/usage", Some(&who.access)).await;
        let q = quota(app, who).await;
        if usage.json["total"].as_i64() == Some(records) && q["reserved"].as_i64() == Some(0) {
            return q["balance"].as_i64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{records} requests were never settled, or a hold was left behind");
}

async fn usage_records(app: &TestApp, who: &Persona) -> Vec<Value> {
    app.get("/api/v1/billing/usage", Some(&who.access))
        .await
        .json["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

both_backends! {
    async fn a_huge_one_letter_prompt_is_held_at_what_it_really_counts(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        // 150,000 one-letter words: bytes / 3 said 100,000 tokens (a hold of 200,000 units,
        // under this balance); the upstream counts 150,000 (300,000 units, over it).
        set_balance(&app, &s, 260_000).await;
        let words = "a ".repeat(150_000);
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "messages": [{"role": "user", "content": words}]})).await;
        assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", &r.text[..r.text.len().min(300)]);
        assert!(s.upstream.requests().is_empty(), "nothing was sent upstream");
        assert_eq!(quota(&app, &s.user).await["balance"], 260_000);
        assert_eq!(quota(&app, &s.user).await["reserved"], 0);

        // With the money for it, the request goes through and the charge is within the balance.
        set_balance(&app, &s, 400_000).await;
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "max_tokens": 10,
            "messages": [{"role": "user", "content": words}]})).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json["choices"][0]["finish_reason"], "length");
        let balance = settled(&app, &s.user, 1).await;
        assert_eq!(balance, 400_000 - 150_000 * 2 - 10 * 6);
    }

    async fn the_output_limit_held_is_the_limit_sent_upstream(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        // No max_tokens: the model's maximum is held and written into the upstream request.
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(s.upstream.requests()[0]["max_tokens"], 16_384);
        // A client's own limit is kept; one above the model's maximum is lowered to it.
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "max_completion_tokens": 99, "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(s.upstream.requests()[1]["max_completion_tokens"], 99);
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "max_tokens": 10_000_000, "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(s.upstream.requests()[2]["max_tokens"], 16_384);
        settled(&app, &s.user, 3).await;
    }

    async fn a_vendor_that_writes_past_its_limit_is_cut_at_the_hold(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        s.upstream.set_ignore_max_tokens(true);
        let words = "b ".repeat(3_000);
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": words}]})).await;
        assert_eq!(r.status, StatusCode::OK);
        let events: Vec<Value> = r.text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        let delivered: String = events.iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        let words_delivered = delivered.split_whitespace().count();
        // Cut a fifth past the 100 held (plus the few hundred bytes counted at a time), not at
        // the 3,001 the vendor would have written.
        assert!(words_delivered < 400, "the stream went on past the hold: {words_delivered} words");
        assert!(events.iter().any(|e| e["choices"][0]["finish_reason"] == "length"), "no length finish");
        assert!(r.text.trim_end().ends_with("data: [DONE]"), "the stream did not end properly");
        settled(&app, &s.user, 1).await;
        let record = &usage_records(&app, &s.user).await[0];
        assert_eq!(record["status"], "length_cut");
        assert!(record["completion_tokens"].as_i64().unwrap() <= 100);
    }

    async fn a_stream_is_charged_before_its_last_event(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        for n in 1..=5 {
            let r = chat(&app, &s.key, json!({"model": "gpt-test", "stream": true,
                "messages": [{"role": "user", "content": "count me"}]})).await;
            assert_eq!(r.status, StatusCode::OK);
            assert!(r.text.trim_end().ends_with("data: [DONE]"));
            // No waiting: the record is there the moment the client has [DONE].
            let usage = app.get("/api/v1/billing/usage", Some(&s.user.access)).await;
            assert_eq!(usage.json["total"], n, "[DONE] arrived before the charge");
        }
    }

    async fn a_client_that_leaves_before_the_first_byte_is_still_billed(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        // One request first, so the one under test meets a warm server.
        assert_eq!(chat(&app, &s.key, json!({"model": "gpt-test", "messages": [{"role": "user", "content": "warm"}]})).await.status, StatusCode::OK);
        s.upstream.fail_next(Fault::Delay(Duration::from_millis(1500)));
        let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
        let gone = impatient.post(app.url("/v1/chat/completions")).bearer_auth(&s.key)
            .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": "slow one"}]}))
            .send().await;
        assert!(gone.is_err(), "the client was meant to give up");
        assert_eq!(s.upstream.requests().len(), 2, "the request reached the upstream");
        // The upstream still answers and charges; so does Skein, and the hold is gone.
        let balance = settled(&app, &s.user, 2).await;
        // "warm": 1 + 2 × 6; "slow one": 2 prompt tokens at 2, "echo: slow one": 3 at 6.
        assert_eq!(balance, 1_000_000 - (2 + 2 * 6) - (2 * 2 + 3 * 6));
    }

    async fn price_changing_fields_are_refused_before_anything_is_held(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        for body in [
            json!({"model": "gpt-test", "service_tier": "priority", "messages": [{"role": "user", "content": "x"}]}),
            json!({"model": "gpt-test", "web_search_options": {}, "messages": [{"role": "user", "content": "x"}]}),
            json!({"model": "gpt-test", "modalities": ["text", "audio"], "messages": [{"role": "user", "content": "x"}]}),
        ] {
            let r = chat(&app, &s.key, body.clone()).await;
            assert_eq!((r.status, r.error_code()), (StatusCode::BAD_REQUEST, "unsupported_field"), "{body}");
        }
        // Anthropic's hosted web search, through the Messages route.
        let r = app.send(app.client.post(app.url("/v1/messages")).header("x-api-key", &s.key)
            .json(&json!({"model": "gpt-test", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}]}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(r.text.contains("unsupported_field") || r.text.contains("web_search"), "{}", r.text);
        assert!(s.upstream.requests().is_empty());
        assert_eq!(quota(&app, &s.user).await["balance"], 1_000_000);
    }
}

on_both_backends! {
    async fn the_gateway_timeout_does_not_cut_a_relayed_answer(backend) {
        let app = TestApp::spawn_with(backend, |c| c.server.request_timeout_secs = 1).await;
        let s = relay_world(&app, Upstream::OpenAi).await;
        s.upstream.fail_next(Fault::Delay(Duration::from_millis(2_000)));
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "messages": [{"role": "user", "content": "take your time"}]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let balance = settled(&app, &s.user, 1).await;
        assert_eq!(balance, 1_000_000 - 3 * 2 - 4 * 6);
    }

    async fn an_operator_may_allow_a_vendor_field(backend) {
        let app = TestApp::spawn_with(backend, |c| c.relay.extra_request_fields = vec!["x_vendor".into()]).await;
        let s = relay_world(&app, Upstream::OpenAi).await;
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "x_vendor": {"k": 1}, "messages": [{"role": "user", "content": "x"}]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(s.upstream.requests()[0]["x_vendor"], json!({"k": 1}));
    }
}

/// Many requests from one key at the edge of its balance, at once: the holds decide, and no
/// sequence of answers takes the balance below zero (the overdraft here).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_at_the_edge_of_the_balance_never_overdraw() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let s = relay_world(&app, Upstream::OpenAi).await;
        // Each request holds 10 prompt-ish tokens and 100 output tokens (about 620 units):
        // the balance pays for about eight of them.
        set_balance(&app, &s, 5_000).await;
        let mut tasks = Vec::new();
        for i in 0..24 {
            let client = app.client.clone();
            let url = app.url("/v1/chat/completions");
            let key = s.key.clone();
            tasks.push(tokio::spawn(async move {
                let body = json!({"model": "gpt-test", "max_tokens": 100, "stream": i % 2 == 0,
                    "messages": [{"role": "user", "content": "one two three four five six seven"}]});
                client.post(url).bearer_auth(key).json(&body).send().await
                    .map(|r| r.status()).ok()
            }));
        }
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Some(StatusCode::OK) => ok += 1,
                Some(StatusCode::PAYMENT_REQUIRED) => {}
                other => panic!("unexpected answer {other:?}"),
            }
        }
        assert!(ok > 0, "some requests must fit");
        let balance = settled(&app, &s.user, ok).await;
        assert!(
            balance >= 0,
            "the balance went below the overdraft: {balance}"
        );
        assert_eq!(balance, 5_000 - ok * (7 * 2 + 8 * 6));
    }
}

both_backends! {
    async fn without_max_tokens_the_hold_shrinks_to_what_the_balance_pays_for(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        // Eight answers of up to 16,384 tokens at 6 units would hold 786,432 units; the balance
        // has 200,000, so the hold shrinks and the limit sent upstream with it.
        set_balance(&app, &s, 200_000).await;
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "n": 8, "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let sent = s.upstream.requests()[0]["max_tokens"].as_i64().unwrap();
        assert!(sent * 8 * 6 <= 200_000 && (sent + 2) * 8 * 6 > 200_000, "max_tokens {sent}");
        settled(&app, &s.user, 1).await;
        // Less than a minimal answer is left: refused, saying what it needs and what is left.
        set_balance(&app, &s, 1_000).await;
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "n": 8, "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::PAYMENT_REQUIRED, "insufficient_quota"), "{}", r.text);
        assert!(r.json["error"]["message"].as_str().unwrap().contains("1000") || r.text.contains("1,000"), "{}", r.text);
        assert_eq!(s.upstream.requests().len(), 1, "nothing more was sent");
    }

    async fn usage_beyond_the_hold_stops_at_the_overdraft_and_is_recorded(app) {
        let s = relay_world(&app, Upstream::OpenAi).await;
        // The vendor counts fifty times what the relay's tokenizer does.
        s.upstream.set_prompt_scale(50);
        set_balance(&app, &s, 5_000).await;
        let words = "w ".repeat(100);
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "max_tokens": 10, "messages": [{"role": "user", "content": words}]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let balance = settled(&app, &s.user, 1).await;
        assert_eq!(balance, 0, "charged down to the overdraft (0) and no further");
        let record = &usage_records(&app, &s.user).await[0];
        let cost = 100 * 50 * 2 + 10 * 6;
        assert_eq!(record["cost"], 5_000);
        assert!(record["overrun"].as_i64().unwrap() > 0, "{record}");
        assert_eq!(record["uncollected"], cost - 5_000, "{record}");
        // The next request is refused: nothing is left to hold.
        let r = chat(&app, &s.key, json!({"model": "gpt-test", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]})).await;
        assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    }
}

on_both_backends! {
    async fn a_client_that_stops_reading_is_dropped_and_billed_once(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            c.relay.client_write_timeout_secs = 1;
            c.relay.max_output_tokens.insert("gpt-test".into(), 50_000_000);
        }).await;
        let s = relay_world(&app, Upstream::OpenAi).await;
        set_balance(&app, &s, 1_000_000_000).await;
        s.upstream.stop_recording();
        // About 5 MB of answer: more than the socket buffers on both sides can take. (Words
        // with punctuation: the tokenizer counts them in small pieces.)
        let word = "a1,".repeat(150);
        s.upstream.set_reply(&vec![word.as_str(); 10_000].join(" "));
        let words = "give me a long answer";
        // A client with a tiny receive window takes the headers and then never reads: the
        // server's writes fill the socket, and after a second the client is dropped; the
        // answer is still read to its end and billed.
        let body = json!({"model": "gpt-test", "stream": true, "messages": [{"role": "user", "content": words}]}).to_string();
        let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stalled = socket.connect(addr).await.unwrap();
        let head = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", s.key, body.len());
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stalled.write_all(head.as_bytes()).await.unwrap();
        stalled.write_all(body.as_bytes()).await.unwrap();
        let mut first = [0u8; 512];
        let n = stalled.read(&mut first).await.unwrap();
        assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first[..n]));
        let balance = settled(&app, &s.user, 1).await;
        let record = &usage_records(&app, &s.user).await[0];
        assert_eq!(balance, 1_000_000_000 - 5 * 2 - 10_000 * 6, "charged exactly what the vendor counted: {record}");
        assert_eq!(record["status"], "client_closed");
        drop(stalled);
    }

    async fn a_long_stream_keeps_its_hold_past_the_hold_lifetime(backend) {
        let app = TestApp::spawn_with(backend, |c| c.billing.reservation_ttl_secs = 2).await;
        let s = relay_world(&app, Upstream::OpenAi).await;
        // A slow stream of about eight seconds, four times the hold's lifetime.
        s.upstream.set_reply(&["slowly"; 40].join(" "));
        s.upstream.set_stream_pause(Duration::from_millis(40));
        let body = json!({"model": "gpt-test", "stream": true, "max_tokens": 100,
            "messages": [{"role": "user", "content": "a slow answer that takes its time to arrive in pieces"}]});
        let client = app.client.clone();
        let url = app.url("/v1/chat/completions");
        let key = s.key.clone();
        let stream = tokio::spawn(async move {
            client.post(url).bearer_auth(key).json(&body).send().await.unwrap().text().await.unwrap()
        });
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        // Past the hold's first expiry, it is still held (renewed), so nothing can spend it.
        let q = quota(&app, &s.user).await;
        assert!(q["reserved"].as_i64().unwrap() > 0, "the hold expired under a running stream: {q}");
        let text = stream.await.unwrap();
        assert!(text.trim_end().ends_with("data: [DONE]"));
        let balance = settled(&app, &s.user, 1).await;
        // 11 words of prompt at 2, 40 words back at 6.
        assert_eq!(balance, 1_000_000 - 11 * 2 - 40 * 6);
    }
}

/// An upstream that answers with a redirect to another host: the relay does not follow it, so
/// the channel's key never reaches that host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_upstream_gets_no_key_to_another_host() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let s = relay_world(&app, Upstream::OpenAi).await;
    let elsewhere = skein_testkit::mock_openai::MockOpenAi::start("sk-elsewhere").await;
    let target = format!("{}/v1/chat/completions", elsewhere.base_url);
    let redirector = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move {
            (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", target)],
                "moved",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirector).await });
    // The only channel for the model now points at the redirector.
    let channels = app.get("/api/v1/channels", Some(&s.root.access)).await.json;
    let id = channels.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .patch(
            &format!("/api/v1/channels/{id}"),
            Some(&s.root.access),
            json!({"base_url": redirect_url, "keys": ["sk-upstream-primary"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = chat(
        &app,
        &s.key,
        json!({"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_GATEWAY, "upstream_unavailable"),
        "{}",
        r.text
    );
    assert!(
        elsewhere.requests().is_empty(),
        "the request (and its key) reached the other host"
    );
    assert!(elsewhere.authorizations().is_empty());
    assert_eq!(quota(&app, &s.user).await["reserved"], 0);
}

/// The metrics endpoint's token in [`answers_wait_once_the_ledger_is_too_far_behind`].
const SCRAPE: &str = "scrape-token-for-the-tests-0123";

/// A ledger that cannot write (its SQLite write lock held by another connection) while whole
/// answers keep coming: answers go out before their charge is recorded, but only
/// `relay.max_settles_behind` of them; the next waits until the ledger catches up, and then
/// every charge is recorded exactly once. Without the bound the settles piled up in memory
/// without limit (issue #20's saturation run: tens of thousands within seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_wait_once_the_ledger_is_too_far_behind() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.relay.max_settles_behind = 2;
        c.server.metrics_token = Some(skein_core::secret::Secret::new(SCRAPE));
    })
    .await;
    let s = relay_world(&app, Upstream::OpenAi).await;
    let body = json!({"model": "gpt-test", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    // The first request fills the caches (key, owner, plan) the request path reads.
    assert_eq!(
        chat(&app, &s.key, body.clone()).await.status,
        StatusCode::OK
    );
    let before = settled(&app, &s.user, 1).await;

    let db = skein_db::Db::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    let lock = db.begin_write().await.unwrap();
    for _ in 0..2 {
        let r = chat(&app, &s.key, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "answers do not wait for the ledger: {}",
            r.text
        );
    }
    let behind = |report: &Value| report["gauges"]["relay.settles_behind"].as_i64();
    let report = app
        .get("/api/v1/admin/system/runtime", Some(&s.root.access))
        .await;
    assert_eq!(behind(&report.json), Some(2), "{}", report.text);

    let third = {
        let (client, url, key, body) = (
            app.client.clone(),
            app.url("/v1/chat/completions"),
            s.key.clone(),
            body.clone(),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        !third.is_finished(),
        "a third answer went out with two charges behind"
    );

    drop(lock);
    assert_eq!(third.await.unwrap(), StatusCode::OK);
    // The first request's charge, three times more: each recorded once.
    let each = 1_000_000 - before;
    assert!(each > 0);
    assert_eq!(settled(&app, &s.user, 4).await, before - 3 * each);
    let report = app
        .get("/api/v1/admin/system/runtime", Some(&s.root.access))
        .await;
    assert_eq!(behind(&report.json), Some(0));
    // Operators see the wait: one answer held back.
    let metrics = app
        .send(app.client.get(app.url("/metrics")).bearer_auth(SCRAPE))
        .await;
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l == "skein_relay_settle_waits_total 1"),
        "{}",
        metrics.text
    );
}
