//! OpenAI's Realtime API relayed (`GET /v1/realtime`) through the real server to the mock
//! Realtime upstream, with a real WebSocket client: frames both ways, each response billed
//! once from its `usage`, refusals before anything is opened upstream, and an upstream that
//! goes away mid-session.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_openai::Fault;
use skein_testkit::{Persona, RelayWorld, TestApp, Upstream, both_backends, relay_world};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn url(app: &TestApp, model: &str) -> String {
    app.url(&format!("/v1/realtime?model={model}"))
        .replacen("http://", "ws://", 1)
}

/// Opens a session as OpenAI's SDKs do: the key in `Authorization`.
async fn open(app: &TestApp, key: &str, model: &str) -> Result<Socket, Error> {
    let mut request = url(app, model).into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

fn refused(result: Result<Socket, Error>) -> (StatusCode, Value) {
    match result {
        Err(Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
                .unwrap_or(Value::Null);
            (
                StatusCode::from_u16(response.status().as_u16()).unwrap(),
                body,
            )
        }
        Err(other) => panic!("refused otherwise: {other}"),
        Ok(_) => panic!("the session opened"),
    }
}

async fn send(socket: &mut Socket, event: Value) {
    socket
        .send(Message::Text(event.to_string().into()))
        .await
        .unwrap();
}

/// The next event, or `None` once the session ended.
async fn next(socket: &mut Socket) -> Option<Value> {
    loop {
        match socket.next().await? {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn say(socket: &mut Socket, text: &str) {
    send(
        socket,
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": text}]}}),
    )
    .await;
    let created = next(socket).await.unwrap();
    assert_eq!(created["type"], "conversation.item.created", "{created}");
    assert_eq!(created["item"]["content"][0]["text"], text);
}

/// Asks for a response and reads it: its text and its `response.done`.
async fn respond(socket: &mut Socket) -> (String, Value) {
    send(socket, json!({"type": "response.create"})).await;
    let mut text = String::new();
    loop {
        let event = next(socket)
            .await
            .expect("the session ended in the middle of a response");
        match event["type"].as_str().unwrap() {
            "response.output_text.delta" => text.push_str(event["delta"].as_str().unwrap()),
            "response.done" => return (text, event),
            _ => {}
        }
    }
}

/// The user's balance once every hold is settled or released.
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

/// What a response's usage costs at the world's prices (2 per input token, 6 per output).
fn cost(usage: &Value) -> i64 {
    usage["input_tokens"].as_i64().unwrap() * 2 + usage["output_tokens"].as_i64().unwrap() * 6
}

async fn usage_records(app: &TestApp, who: &Persona) -> Vec<Value> {
    app.get("/api/v1/billing/usage", Some(&who.access))
        .await
        .json["items"]
        .as_array()
        .unwrap()
        .clone()
}

both_backends! {
    async fn frames_are_relayed_and_each_response_billed_once(app) {
        let RelayWorld { user, key, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let before = settled_balance(&app, &user).await;

        let mut socket = open(&app, &key, "gpt-test").await.unwrap();
        // The upstream's own first event, for the mapped model.
        let created = next(&mut socket).await.unwrap();
        assert_eq!((created["type"].as_str(), created["session"]["model"].as_str()), (Some("session.created"), Some("gpt-upstream")), "{created}");
        send(&mut socket, json!({"type": "session.update", "session": {"instructions": "be brief"}})).await;
        assert_eq!(next(&mut socket).await.unwrap()["session"]["instructions"], "be brief");

        // Turn one: text and some audio in, the answer out a word at a time.
        say(&mut socket, "hello there").await;
        send(&mut socket, json!({"type": "input_audio_buffer.append", "audio": "A".repeat(250)})).await;
        let (text, done) = respond(&mut socket).await;
        assert_eq!(text, "echo: hello there");
        let first = done["response"]["usage"].clone();
        assert_eq!((first["input_tokens"].as_i64(), first["input_token_details"]["audio_tokens"].as_i64()), (Some(5), Some(3)), "{first}");
        // Turn two: the conversation so far is its input.
        say(&mut socket, "and now goodbye").await;
        let (text, done) = respond(&mut socket).await;
        assert_eq!(text, "echo: and now goodbye");
        let second = done["response"]["usage"].clone();
        // An unknown event gets the upstream's own error, relayed.
        send(&mut socket, json!({"type": "dance"})).await;
        assert_eq!(next(&mut socket).await.unwrap()["type"], "error");
        socket.close(None).await.unwrap();
        while socket.next().await.is_some() {}

        // Each response settled once, at its own usage; the hold for a third was released.
        assert_eq!(upstream.usages(), vec![first.clone(), second.clone()]);
        let expected = cost(&first) + cost(&second);
        assert_eq!(settled_balance(&app, &user).await, before - expected);
        let records = usage_records(&app, &user).await;
        assert_eq!(records.len(), 2, "{records:?}");
        let mut costs: Vec<i64> = records.iter().map(|r| r["cost"].as_i64().unwrap()).collect();
        costs.sort();
        let mut wanted = vec![cost(&first), cost(&second)];
        wanted.sort();
        assert_eq!(costs, wanted);
        assert!(records.iter().all(|r| r["model"] == "gpt-test"), "{records:?}");
        let ledger = app.get("/api/v1/billing/ledger?kind=consume", Some(&user.access)).await.json;
        assert_eq!(ledger["total"], 2, "{ledger}");
    }

    async fn audio_is_billed_at_the_models_audio_rates(app) {
        let RelayWorld { root, user, key, upstream: _upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        // The world's text rates (2 in, 6 out) with audio priced apart: 20 in, 40 out.
        let rates = json!({"input_per_mtok": 2_000_000, "output_per_mtok": 6_000_000,
            "cache_read_per_mtok": 0, "cache_write_per_mtok": 0, "per_call": 0,
            "audio_input_per_mtok": 20_000_000, "audio_output_per_mtok": 40_000_000});
        let r = app.put("/api/v1/admin/pricing/gpt-test", Some(&root.access), rates.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["audio_input_per_mtok"], 20_000_000);
        let listed = app.get("/api/v1/pricing", Some(&user.access)).await.json;
        let listed = listed.as_array().unwrap().iter().find(|p| p["model"] == "gpt-test").cloned().unwrap();
        assert_eq!((listed["audio_input_per_mtok"].as_i64(), listed["audio_output_per_mtok"].as_i64()), (Some(20_000_000), Some(40_000_000)), "{listed}");
        let mut bad = rates.clone();
        bad["audio_output_per_mtok"] = json!(-1);
        let r = app.put("/api/v1/admin/pricing/gpt-test", Some(&root.access), bad).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let before = settled_balance(&app, &user).await;

        let mut socket = open(&app, &key, "gpt-test").await.unwrap();
        assert_eq!(next(&mut socket).await.unwrap()["type"], "session.created");
        say(&mut socket, "hello there").await;
        // One audio token per 100 base64 characters at the mock.
        send(&mut socket, json!({"type": "input_audio_buffer.append", "audio": "A".repeat(1_000)})).await;
        let (_, done) = respond(&mut socket).await;
        socket.close(None).await.unwrap();
        while socket.next().await.is_some() {}
        let usage = &done["response"]["usage"];
        let audio = usage["input_token_details"]["audio_tokens"].as_i64().unwrap();
        assert_eq!(audio, 10, "{usage}");
        let text = usage["input_tokens"].as_i64().unwrap() - audio;
        let output = usage["output_tokens"].as_i64().unwrap();
        // Text at the text rate, audio at ten times it: not the text price for everything.
        let expected = text * 2 + audio * 20 + output * 6;
        assert_eq!(settled_balance(&app, &user).await, before - expected);
        assert_ne!(expected, cost(usage), "the audio rate made a difference");
    }

    async fn a_browser_opens_a_session_with_the_key_as_a_subprotocol(app) {
        let RelayWorld { key, upstream: _upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let mut request = url(&app, "gpt-test").into_client_request().unwrap();
        request.headers_mut().insert("sec-websocket-protocol",
            HeaderValue::from_str(&format!("realtime, openai-insecure-api-key.{key}")).unwrap());
        let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.headers()["sec-websocket-protocol"], "realtime");
        assert_eq!(next(&mut socket).await.unwrap()["type"], "session.created");
        socket.close(None).await.unwrap();
    }

    async fn refusals_come_before_anything_is_opened_upstream(app) {
        let RelayWorld { user, key, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let (_broke, broke_key) = app.user_with_key("broke").await;
        let sessions = || upstream.requests().iter().filter(|r| r.get("realtime").is_some()).count();

        let (status, body) = refused(open(&app, &broke_key, "gpt-test").await);
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::PAYMENT_REQUIRED, Some("insufficient_quota")), "{body}");
        let (status, _) = refused(open(&app, "sk-wrong", "gpt-test").await);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = refused(open(&app, &key, "no-such-model").await);
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("model_not_found")), "{body}");
        let (status, _) = refused(tokio_tungstenite::connect_async(url(&app, "gpt-test")).await.map(|(s, _)| s));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // None of them reached the upstream.
        assert_eq!(sessions(), 0, "{:?}", upstream.requests());

        // An upstream that refuses the session: the client gets an error, and its hold is freed.
        let before = settled_balance(&app, &user).await;
        upstream.fail_next(Fault::Status(500));
        let (status, body) = refused(open(&app, &key, "gpt-test").await);
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_GATEWAY, Some("upstream_unavailable")), "{body}");
        assert_eq!(settled_balance(&app, &user).await, before);
        assert!(usage_records(&app, &user).await.is_empty());
        assert_eq!(sessions(), 1);
    }

    async fn an_upstream_that_closes_mid_session_settles_what_was_used(app) {
        let RelayWorld { user, key, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let before = settled_balance(&app, &user).await;
        // One response finishes; the upstream goes away in the middle of the next.
        upstream.fail_next(Fault::DieAfter(1));
        let mut socket = open(&app, &key, "gpt-test").await.unwrap();
        assert_eq!(next(&mut socket).await.unwrap()["type"], "session.created");
        say(&mut socket, "one two three").await;
        let (_, done) = respond(&mut socket).await;
        let used = done["response"]["usage"].clone();
        say(&mut socket, "four five six").await;
        send(&mut socket, json!({"type": "response.create"})).await;
        let mut seen = Vec::new();
        while let Some(event) = next(&mut socket).await {
            seen.push(event["type"].as_str().unwrap().to_string());
        }
        assert!(seen.contains(&"response.created".to_string()) && !seen.contains(&"response.done".to_string()), "{seen:?}");

        // The finished response is billed, the cut one is not, and no hold is left.
        assert_eq!(settled_balance(&app, &user).await, before - cost(&used));
        let records = usage_records(&app, &user).await;
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0]["cost"].as_i64(), Some(cost(&used)));
    }
}

/// Each `response.create` counts against the key's requests per minute as an HTTP request
/// would; the one over the limit is answered with an error event and never reaches the
/// upstream, and the session stays open.
#[tokio::test]
async fn each_response_asked_for_counts_against_the_key_limit() {
    let app = TestApp::spawn_with(skein_testkit::Backend::Sqlite, |c| {
        c.limits.api_per_key_per_minute = 3;
    })
    .await;
    let RelayWorld { key, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
    // Opening the session is the first of three.
    let mut socket = open(&app, &key, "gpt-test").await.unwrap();
    assert_eq!(next(&mut socket).await.unwrap()["type"], "session.created");
    say(&mut socket, "one").await;
    respond(&mut socket).await;
    respond(&mut socket).await;
    send(&mut socket, json!({"type": "response.create"})).await;
    let refused = next(&mut socket).await.unwrap();
    assert_eq!(
        (refused["type"].as_str(), refused["error"]["code"].as_str()),
        (Some("error"), Some("rate_limited")),
        "{refused}"
    );
    assert_eq!(refused["error"]["type"], "rate_limit_exceeded");
    // Still open: other events go through.
    say(&mut socket, "two").await;
    socket.close(None).await.unwrap();
    while socket.next().await.is_some() {}
    assert_eq!(
        upstream.usages().len(),
        2,
        "the refused response was never asked for upstream"
    );
}
